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

/// The allocator: memory the launcher frees is kept for its next allocation, never handed
/// back to the kernel. musl's allocator (the static build's) returns freed blocks with
/// `munmap` at once, and a launch allocates and frees enough to pay dozens of `mmap`/`munmap`
/// round trips; the long-lived supervisor's allocations recycle the same memory.
#[global_allocator]
static ALLOCATOR: rlsf::GlobalTlsf = rlsf::GlobalTlsf::new();

/// Heap a launch uses (the cached plan, its decoded form, the environment, argument vectors:
/// about 50 KiB for the default policy), made resident at once.
const WARM_HEAP: usize = 64 << 10;

fn main() -> ExitCode {
    // The allocator keeps freed memory for the next allocations: one system call here spares
    // the launch a page fault for each page of heap it touches.
    let mut warm: Vec<u8> = Vec::with_capacity(WARM_HEAP);
    let _ = sys::populate(warm.spare_capacity_mut());
    drop(warm);
    match cli::parse(std::env::args_os().skip(1)) {
        Ok(command) => cmd::run(command),
        Err(e) => {
            eprintln!("greywall: {e}");
            eprintln!("Try 'greywall --help' for more information.");
            ExitCode::from(cli::EXIT_USAGE)
        }
    }
}
