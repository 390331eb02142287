//! `greywall`: run commands in a sandbox, and the policy tools around it.
//!
//! The command line is parsed by hand-written code over `lexopt` so that the exec path (added
//! with the Linux launcher) touches no parser beyond argv.

mod apply;
mod bridge;
mod cli;
mod cmd;
mod exec;
mod macos;
mod nspool;
mod proxyd_client;
mod socks_connect;
mod supervise;
mod sys;

use std::process::ExitCode;

/// The allocator ([`sys::heap`]): a bump arena in front of TLSF. musl's own allocator (the
/// static build's) returns freed blocks with `munmap` at once, and a general-purpose one
/// spends a launch's user time on bookkeeping for memory the `exec` discards anyway.
#[global_allocator]
static ALLOCATOR: sys::heap::Heap = sys::heap::Heap::new();

/// Heap a launch uses (the cached plan, its decoded form, the environment, argument vectors:
/// about 60 KiB for the default policy), made resident at once.
const WARM_HEAP: usize = 64 << 10;

fn main() -> ExitCode {
    // One system call here spares the launch a page fault for each page of heap it touches.
    ALLOCATOR.warm(WARM_HEAP);
    match cli::parse(std::env::args_os().skip(1)) {
        Ok(command) => cmd::run(command),
        Err(e) => {
            eprintln!("greywall: {e}");
            eprintln!("Try 'greywall --help' for more information.");
            ExitCode::from(cli::EXIT_USAGE)
        }
    }
}
