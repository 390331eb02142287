//! Backends: pure functions from a resolved policy to platform artifacts.

pub mod bwrap;
pub mod linux;
pub mod seccomp;
