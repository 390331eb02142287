//! File descriptors handed to programs we exec.

use std::os::fd::IntoRawFd;
use std::path::Path;

/// Opens a file for reading and leaves the descriptor open across exec (for `bwrap --args`).
pub fn open_inheritable(path: &Path) -> std::io::Result<i32> {
    let fd = std::fs::File::open(path)?.into_raw_fd();
    // SAFETY: `fd` is a descriptor we own (just opened); F_SETFD only changes its flags.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}
