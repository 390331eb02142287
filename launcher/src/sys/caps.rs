//! Capabilities.

use std::io;

/// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)`: no capability survives the next exec
/// as an ambient one (bwrap raises the ones it is asked to add as ambient, so that they reach
/// the program it runs; the launcher inside needs them only until it has bound its ports).
pub fn clear_ambient() -> io::Result<()> {
    // SAFETY: this prctl takes no pointers; it only clears the calling thread's ambient set.
    super::check(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    })
    .map(drop)
}
