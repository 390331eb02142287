//! `greywall`: run commands in a sandbox, and the policy tools around it.
//!
//! Two executables share this crate. `greywall` is the launcher: it runs a command from a
//! cached plan and holds nothing of the policy compiler, so that starting it costs as little
//! as an executable can. Everything else — compiling a policy on a cache miss, `compile`,
//! `lint`, `explain`, `check` and the other tools — is `greywall-tools`, which the launcher
//! executes in its own place, with the same arguments ([`exe`]). Users only ever type
//! `greywall`.
//!
//! The command line is parsed by hand-written code over `lexopt`, so that the exec path
//! touches no parser beyond argv.

mod apply;
mod bridge;
mod cli;
mod cmd;
mod exe;
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

/// `greywall`: runs a command from the plan cache, and the launcher's internal commands
/// (the namespace pool, the bwrap backend's inner step, SSH's SOCKS helper). Anything else,
/// a cache miss included, is handed to `greywall-tools`.
pub fn launcher_main() -> ExitCode {
    exe::set_role(exe::Role::Launcher);
    // The allocator keeps freed memory for the next allocations: one system call here spares
    // the launch a page fault for each page of heap it touches.
    let mut warm: Vec<u8> = Vec::with_capacity(WARM_HEAP);
    let _ = sys::populate(warm.spare_capacity_mut());
    drop(warm);
    // A usage error is the tools' to explain (they hold the help text).
    let Ok(command) = cli::parse(std::env::args_os().skip(1)) else {
        return exe::forward(cli::EXIT_USAGE);
    };
    launch(command)
}

/// What the launcher does itself; the rest goes to the tools.
fn launch(command: cli::Command) -> ExitCode {
    use cli::Command;
    match command {
        Command::ExecPlan { plan, argv } => apply::exec_plan_file(&plan, &argv),
        Command::NsPool { dir } => nspool::daemon(&dir),
        Command::SocksConnect {
            socks_port,
            host,
            port,
        } => socks_connect::run(socks_port, &host, port),
        Command::Exec {
            cached: true,
            settings,
            backend,
            require_userns,
            network,
            profile,
            argv,
        } if cfg!(target_os = "linux") => {
            if require_userns {
                apply::require_userns();
            }
            bridge::set_options(network);
            match exec::run_cached(settings.as_deref(), profile.as_deref(), backend, &argv) {
                Ok(code) => code,
                // Dropping the pool's answer unread hands its set back to nobody: the
                // daemon's descriptors for it are closed either way.
                Err(exec::Miss { .. }) => exe::forward(apply::EXIT_SETUP),
            }
        }
        Command::Version => cmd::print(&format!("greywall {}\n", env!("CARGO_PKG_VERSION"))),
        // Usage errors come back from the tools with exit status 2, and so does this
        // launcher's own failure to run them.
        _ => exe::forward(cli::EXIT_USAGE),
    }
}

/// `greywall-tools`: every command, a cache miss of `greywall exec` included (it compiles,
/// stores the plan for the next launch, and runs the command).
pub fn tools_main() -> ExitCode {
    exe::set_role(exe::Role::Tools);
    match cli::parse(std::env::args_os().skip(1)) {
        Ok(command) => cmd::run(command),
        Err(e) => {
            eprintln!("greywall: {e}");
            eprintln!("Try 'greywall --help' for more information.");
            ExitCode::from(cli::EXIT_USAGE)
        }
    }
}
