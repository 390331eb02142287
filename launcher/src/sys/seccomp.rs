//! `no_new_privs` and the precompiled seccomp filter.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use greywall_compiler::backend::seccomp::{self, SockFilter};

/// The kernel's `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const SockFilter,
}

/// A classic-BPF program, ready to load.
pub struct Filter(Vec<SockFilter>);

impl Filter {
    /// Reads a `struct sock_filter` array (8 little-endian bytes per instruction). `None` when
    /// the length is not a whole number of instructions or exceeds what the kernel accepts.
    pub fn from_bytes(bytes: &[u8]) -> Option<Filter> {
        seccomp::from_bytes(bytes).map(Filter)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Installs the filter on this thread (the only one) and everything it execs. Needs
    /// `no_new_privs` first.
    pub fn load(&self) -> io::Result<()> {
        let prog = self.fprog()?;
        // SAFETY: `prog` points to `len` valid instructions that outlive the call; the kernel
        // copies the program and keeps no pointer to our memory.
        let ret = unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &raw const prog,
                0,
                0,
            )
        };
        super::check(ret).map(drop)
    }

    fn fprog(&self) -> io::Result<SockFprog> {
        Ok(SockFprog {
            len: libc::c_ushort::try_from(self.0.len())
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?,
            filter: self.0.as_ptr(),
        })
    }

    /// Installs the filter like [`Filter::load`] and returns the descriptor its
    /// `SECCOMP_RET_USER_NOTIF` notifications arrive on (close-on-exec), with
    /// `seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER)` (Linux 5.0).
    pub fn load_with_listener(&self) -> io::Result<OwnedFd> {
        let prog = self.fprog()?;
        // SAFETY: `prog` points to `len` valid instructions that outlive the call; the kernel
        // copies the program and returns a new descriptor or -1.
        let fd = super::check_long(unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
                &raw const prog,
            )
        })?;
        let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        // SAFETY: `fd` is the listener the kernel just created for us; nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`: exec can no longer grant privileges (setuid bits, file
/// capabilities). Required by Landlock and seccomp for unprivileged callers.
pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: the call takes only integers and changes only this process's flags.
    super::check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }).map(drop)
}
