//! File descriptors handed to programs we exec.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::path::Path;

/// Opens a file for reading and leaves the descriptor open across exec (for `bwrap --args`).
pub fn open_inheritable(path: &Path) -> std::io::Result<i32> {
    let file = std::fs::File::open(path)?;
    keep_across_exec(file.as_fd())?;
    Ok(file.into_raw_fd())
}

/// Leaves `fd` open across exec (for a descriptor the launcher hands to the next program:
/// bwrap, then the launcher inside it).
pub fn keep_across_exec(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    // SAFETY: F_SETFD only changes the flags of a descriptor that is open (it is borrowed).
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Takes ownership of a descriptor this process inherited, named by number (a launcher's
/// hand-off through bwrap), and marks it close-on-exec again. Fails for a number that is not
/// an open descriptor.
pub fn adopt_inherited(fd: i32) -> std::io::Result<OwnedFd> {
    if fd < 3 {
        return Err(std::io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: F_SETFD only sets a descriptor's flags; on a number that is not open it fails
    // with EBADF and changes nothing.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is open (F_SETFD succeeded) and was handed to this process to own: the
    // launcher that passed it across exec keeps no claim on it, and nothing else here does.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
