//! Unix `SOCK_SEQPACKET` sockets bound to a path: the namespace pool's listener and its
//! clients ([`crate::nspool`]). Message boundaries are kept, so the descriptors passed with
//! `SCM_RIGHTS` arrive with the message they were sent with ([`super::scm`]): a set of
//! namespaces, or a launch handed to a waiting supervisor, is one message and one wake-up of
//! the process receiving it.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn socket() -> io::Result<OwnedFd> {
    // SAFETY: socket takes only integers and returns a new descriptor or -1.
    let fd = super::check(unsafe {
        libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0)
    })?;
    // SAFETY: `fd` was just returned by socket and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn address(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain old data; all-zero bytes are a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    // One byte stays NUL.
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let len = size_of::<libc::sa_family_t>() + bytes.len() + 1;
    let len =
        libc::socklen_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok((addr, len))
}

/// A listening socket bound to `path` (which must not exist).
pub fn listen(path: &Path) -> io::Result<OwnedFd> {
    let fd = socket()?;
    let (addr, len) = address(path)?;
    // SAFETY: `addr` is a valid sockaddr_un of `len` bytes; bind only reads it.
    super::check(unsafe { libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), len) })?;
    // SAFETY: listen takes a descriptor and a backlog.
    super::check(unsafe { libc::listen(fd.as_raw_fd(), 64) })?;
    Ok(fd)
}

/// A socket connected to the listener at `path`.
pub fn connect(path: &Path) -> io::Result<OwnedFd> {
    let fd = socket()?;
    let (addr, len) = address(path)?;
    // SAFETY: `addr` is a valid sockaddr_un of `len` bytes; connect only reads it.
    super::check(unsafe { libc::connect(fd.as_raw_fd(), (&raw const addr).cast(), len) })?;
    Ok(fd)
}

/// The next connection on `listener` (close-on-exec).
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: null address pointers are allowed; accept4 returns a new descriptor or -1.
    let fd = super::check(unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    })?;
    // SAFETY: `fd` was just returned by accept4 and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The user id of the process at the other end (`SO_PEERCRED`).
pub fn peer_uid(fd: BorrowedFd<'_>) -> io::Result<u32> {
    // SAFETY: ucred is plain old data; all-zero bytes are a valid value.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = libc::socklen_t::try_from(size_of::<libc::ucred>())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `cred` is writable for `len` bytes; getsockopt writes at most that many.
    super::check(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &raw mut len,
        )
    })?;
    Ok(cred.uid)
}

/// `setsid(2)`: this process leaves the caller's session and process group (a daemon).
pub fn new_session() -> io::Result<()> {
    // SAFETY: setsid takes no arguments and changes only this process's attributes.
    super::check(unsafe { libc::setsid() }).map(drop)
}

/// Closes every descriptor of this process except 0, 1, 2 and `keep` (`close_range(2)`).
pub fn close_all_but(keep: BorrowedFd<'_>) -> io::Result<()> {
    let keep = libc::c_uint::try_from(keep.as_raw_fd())
        .map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    for (first, last) in [(3, keep.saturating_sub(1)), (keep + 1, libc::c_uint::MAX)] {
        if first > last {
            continue;
        }
        // SAFETY: close_range takes integers; the descriptors it closes are owned by nothing
        // this process still uses (the caller says so).
        let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
        if ret == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Points standard error at the file `fd` names.
pub fn set_stderr(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: dup2 takes two descriptors; `fd` stays open across the call.
    super::check(unsafe { libc::dup2(fd.as_raw_fd(), libc::STDERR_FILENO) }).map(drop)
}

/// `SO_RCVTIMEO`: a receive on `fd` gives up after `timeout` (`EAGAIN`).
pub fn set_receive_timeout(fd: BorrowedFd<'_>, timeout: std::time::Duration) -> io::Result<()> {
    // SAFETY: timeval is plain old data; all-zero bytes are a valid value.
    let mut tv: libc::timeval = unsafe { std::mem::zeroed() };
    tv.tv_sec = timeout
        .as_secs()
        .try_into()
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    tv.tv_usec = timeout.subsec_micros().into();
    let len = libc::socklen_t::try_from(size_of::<libc::timeval>())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `tv` is a valid timeval of `len` bytes; setsockopt only reads it.
    super::check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            len,
        )
    })
    .map(drop)
}
