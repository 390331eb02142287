//! The only place in the launcher that talks to the kernel directly. Every `unsafe` block in
//! the crate lives under this module and says why it is sound.
#![allow(unsafe_code)]

/// The real user id of this process.
pub fn real_uid() -> u32 {
    // SAFETY: getuid takes no arguments, cannot fail and touches no memory of ours.
    unsafe { libc::getuid() }
}

pub mod kernel;
pub mod fd;
