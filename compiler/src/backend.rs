//! Backends: pure functions from a resolved policy to platform artifacts.

pub mod bwrap;
pub mod linux;
pub mod seatbelt;
pub mod seccomp;
