//! The two greywall executables, and how each finds the other.
//!
//! `greywall`, the launcher, runs commands from the plan cache and holds nothing of the
//! compiler: the smaller the executable a launch starts, the fewer pages it relocates and
//! faults in (see docs/benchmarks.md). `greywall-tools` holds everything: the compiler, the
//! policy tools, and the launcher's code as well. They are installed side by side, and each
//! finds the other next to its own file (`/proc/self/exe`, so a symlink to `greywall` on
//! `$PATH` works). The launcher executes the tools in its own place, with its own arguments,
//! for every command it does not run itself and for a cache miss ([`forward`]).
//!
//! A cached plan is compiled by one executable and applied by the other, so the cache's
//! invocation key holds both files' signatures ([`signatures`]): replacing either one
//! (an upgrade, a rebuild) makes the next launch compile again. The namespace pool's waiting
//! supervisors run the launcher's code; the pool is named for the launcher alone
//! ([`launcher_signature`]), and it is always the launcher that starts it ([`launcher`]).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use greywall_compiler::cache::Signature;

/// The launcher's file name.
pub const LAUNCHER: &str = "greywall";
/// The tools' file name, next to the launcher.
pub const TOOLS: &str = "greywall-tools";

/// Which of the two executables this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Launcher,
    Tools,
}

static IS_TOOLS: AtomicBool = AtomicBool::new(false);

/// Set once, first thing in `main`.
pub fn set_role(role: Role) {
    IS_TOOLS.store(role == Role::Tools, Ordering::Relaxed);
}

fn role() -> Role {
    if IS_TOOLS.load(Ordering::Relaxed) {
        Role::Tools
    } else {
        Role::Launcher
    }
}

/// This executable's own path, resolved by the kernel (not `argv[0]`, not `$PATH`).
fn own() -> Option<&'static Path> {
    static OWN: OnceLock<Option<PathBuf>> = OnceLock::new();
    OWN.get_or_init(|| std::env::current_exe().ok()).as_deref()
}

fn beside_own(name: &str) -> Option<PathBuf> {
    own().and_then(Path::parent).map(|dir| dir.join(name))
}

/// The launcher executable: this one, or for the tools the `greywall` next to them (the
/// tools themselves when there is none: they can do everything the launcher does).
pub fn launcher() -> Option<PathBuf> {
    match role() {
        Role::Launcher => own().map(Path::to_path_buf),
        Role::Tools => beside_own(LAUNCHER)
            .filter(|p| p.is_file())
            .or_else(|| own().map(Path::to_path_buf)),
    }
}

/// The tools executable: this one, or for the launcher the `greywall-tools` next to it.
pub fn tools() -> Option<PathBuf> {
    match role() {
        Role::Launcher => beside_own(TOOLS),
        Role::Tools => own().map(Path::to_path_buf),
    }
}

/// A file's inode, size and modification time; empty when it cannot be read. `stat` of
/// `/proc/self/exe` follows the magic link to the running file itself: no path that could
/// have been replaced since the exec.
fn signature_of(path: &Path) -> String {
    std::fs::metadata(path)
        .ok()
        .map(|m| Signature::of(&m))
        .map(|s| format!("{}:{}:{}", s.ino, s.size, s.mtime_ns))
        .unwrap_or_default()
}

fn running() -> &'static Path {
    Path::new("/proc/self/exe")
}

/// The launcher's signature: what names the namespace pool it uses.
pub fn launcher_signature() -> &'static str {
    static SIGNATURE: OnceLock<String> = OnceLock::new();
    SIGNATURE.get_or_init(|| match role() {
        Role::Launcher => signature_of(running()),
        Role::Tools => launcher().map_or_else(String::new, |p| signature_of(&p)),
    })
}

/// Both executables' signatures, the launcher's first: part of every invocation key, so that
/// no plan is taken from a cache another build wrote.
pub fn signatures() -> &'static str {
    static SIGNATURES: OnceLock<String> = OnceLock::new();
    SIGNATURES.get_or_init(|| {
        let tools = match role() {
            Role::Launcher => tools().map_or_else(String::new, |p| signature_of(&p)),
            Role::Tools => signature_of(running()),
        };
        format!("{}|{tools}", launcher_signature())
    })
}

/// Executes `greywall-tools` in this process's place, with this process's arguments and
/// environment. Returns only when that fails, with `failure` as the exit status and a line
/// that says what is missing.
pub fn forward(failure: u8) -> ExitCode {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| OsString::from(LAUNCHER));
    let Some(tools) = tools() else {
        eprintln!("greywall: cannot find this executable's folder, where {TOOLS} should be");
        return ExitCode::from(failure);
    };
    let err = std::process::Command::new(&tools)
        .arg0(argv0)
        .args(args)
        .exec();
    eprintln!(
        "greywall: cannot run {}: {err} (it compiles policies and runs every command but a \
         launch from the plan cache; install it next to {LAUNCHER})",
        tools.display()
    );
    ExitCode::from(failure)
}
