//! `execve(2)` and the process state the launcher must not pass on.

use std::ffi::{CStr, CString};
use std::io;
use std::ptr;

/// The argument and environment vectors of `execve`, built before the sandbox is sealed so
/// that nothing but `execve` itself runs under the seccomp filter.
pub struct Vectors {
    // The strings the pointers below point into. Moving a `CString` does not move its bytes.
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

impl Vectors {
    pub fn new(argv: Vec<CString>, envp: Vec<CString>) -> Vectors {
        let pointers = |v: &[CString]| {
            v.iter()
                .map(|s| s.as_ptr())
                .chain([ptr::null()])
                .collect::<Vec<_>>()
        };
        Vectors {
            argv: pointers(&argv),
            envp: pointers(&envp),
            _argv: argv,
            _envp: envp,
        }
    }

    /// Replaces this process with `path`. Returns only on failure.
    pub fn execve(&self, path: &CStr) -> io::Error {
        // SAFETY: `path` is NUL-terminated; `argv` and `envp` are null-terminated arrays of
        // pointers into NUL-terminated strings owned by `self`, alive for the whole call.
        unsafe { libc::execve(path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr()) };
        io::Error::last_os_error()
    }
}

/// Restores the default action of `SIGPIPE`. Rust's runtime ignores it at start-up, and an
/// ignored signal stays ignored across `execve`: `yes | head` would then see `EPIPE` instead
/// of being killed as it expects.
pub fn default_sigpipe() -> io::Result<()> {
    // SAFETY: installing SIG_DFL runs no code of ours in signal context.
    if unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
