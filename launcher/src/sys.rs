//! The only place in the launcher that talks to the kernel directly. Every `unsafe` block in
//! the crate lives under this module and says why it is sound.
//!
//! Each submodule owns one kernel concept and offers small functions named for what they do;
//! they return `std::io::Error` and leave naming the failed step to the caller
//! ([`crate::apply`]).
#![allow(unsafe_code)]

pub mod caps;
pub mod exec;
pub mod fd;
pub mod heap;
pub mod kernel;
pub mod landlock;
pub mod mount;
pub mod net;
pub mod notify;
pub mod ns;
pub mod scm;
pub mod seccomp;
pub mod seqpacket;

use std::io;

/// The real user id of this process.
pub fn real_uid() -> u32 {
    // SAFETY: getuid takes no arguments, cannot fail and touches no memory of ours.
    unsafe { libc::getuid() }
}

/// Makes the whole pages inside `room` resident now, with one `madvise(MADV_POPULATE_WRITE)`
/// (Linux 5.14), instead of one page fault each as they are first written (a few
/// microseconds each on the development VM, estimated from phase timings of a launch). The
/// contents do not change (memory not yet backed reads as zeroes either way). An older kernel
/// refuses the advice (`EINVAL`), and that is all.
pub fn populate(room: &mut [std::mem::MaybeUninit<u8>]) -> io::Result<()> {
    const PAGE: usize = 4096;
    let start = room.as_mut_ptr() as usize;
    let first = start.next_multiple_of(PAGE);
    let end = (start + room.len()) / PAGE * PAGE;
    if end <= first {
        return Ok(());
    }
    // SAFETY: [first, end) lies inside `room`, memory this process owns and may write;
    // MADV_POPULATE_WRITE only faults those pages in, without changing what they hold.
    check(unsafe {
        libc::madvise(
            first as *mut libc::c_void,
            end - first,
            libc::MADV_POPULATE_WRITE,
        )
    })
    .map(drop)
}

/// Turns a `-1`-on-error return value into an `io::Result`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// [`check`] for `syscall(2)`, which returns a `long`.
fn check_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `"Operation not permitted (EPERM)"`: the kernel's description and the errno's name, for
/// one-line error messages.
pub fn describe(err: &io::Error) -> String {
    let Some(code) = err.raw_os_error() else {
        return err.to_string();
    };
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: `buf` is writable for `buf.len()` bytes; strerror_r (XSI) writes at most that
    // many bytes, NUL-terminated, and touches nothing else.
    let ok = unsafe { libc::strerror_r(code, buf.as_mut_ptr(), buf.len()) } == 0;
    let text = if ok {
        let bytes: Vec<u8> = buf
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        format!("error {code}")
    };
    match errno_name(code) {
        Some(name) => format!("{text} ({name})"),
        None => format!("{text} (errno {code})"),
    }
}

/// The symbolic name of the errno values set-up can meet.
pub fn errno_name(code: i32) -> Option<&'static str> {
    Some(match code {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ETXTBSY => "ETXTBSY",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ELOOP => "ELOOP",
        libc::ENOMSG => "ENOMSG",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EUSERS => "EUSERS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ESTALE => "ESTALE",
        _ => return None,
    })
}
