//! Applying a Linux launch plan and exec'ing the command (the hot path).
//!
//! Stub: the sandbox set-up is being written. Until then this refuses to run anything, so
//! nothing can be mistaken for sandboxed.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

/// Exit status for the launcher's own set-up failures.
pub const EXIT_SETUP: u8 = 125;

pub fn exec_plan_file(_plan: &Path, _argv: &[OsString]) -> ExitCode {
    eprintln!("greywall: the Linux launcher is not implemented yet");
    ExitCode::from(EXIT_SETUP)
}
