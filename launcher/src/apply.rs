//! Applying a Linux launch plan and exec'ing the command: the hot path.
//!
//! One process, no helper, no shell, and no fork unless the plan has create-deny rules or a
//! network bridge. In order:
//!
//! 1. The command policy (`deny_commands` unless `allow_commands`): exit 1 when blocked.
//! 2. Everything that needs no kernel: the edited environment, the `execve` vectors, the
//!    programs `$PATH` names, the seccomp programs, the create-deny rules; and the Landlock
//!    ABI check (one syscall).
//! 3. `unshare(USER|NS[|NET])` and the identity maps. Without user namespaces the launcher
//!    goes on with Landlock and seccomp alone and says what is lost, unless
//!    `GREYWALL_REQUIRE=userns`.
//! 4. The filesystem view (only with namespaces): mounts in plan order, then the working
//!    directory is entered again so that it sees them too.
//! 5. `lo` up in a new network namespace.
//! 6. With create-deny rules (or a network bridge) only: fork the supervisor, which stays
//!    outside Landlock and seccomp and refuses protected new paths ([`crate::supervise`]):
//!    beside the command with user namespaces (this process goes on and becomes the
//!    command), above it (as its parent) without.
//! 7. `no_new_privs`, 8. Landlock, 9. seccomp (last: it forbids what set-up needs): the plan's
//!    filter, or with create-deny rules its notify variant (the same decisions plus
//!    notifications), whose listener goes to the supervisor.
//! 10. `execve` of each `$PATH` candidate in turn, under the sandbox.
//!
//! Every failure is one line on stderr naming the step and the errno, and exit status 125
//! ([`EXIT_SETUP`]); 126 and 127 are for a program that cannot be executed or is not found.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fmt::Display;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::ExitCode;

use greywall_compiler::backend::seccomp::Arch;
use greywall_compiler::pattern::command;
use greywall_compiler::plan::{EnvOp, LinuxPlan, MountOp, Network, fs_access, net_access};

use crate::supervise::{self, Forked, Rules};
use crate::sys;
use crate::sys::exec::Vectors;
use crate::sys::landlock::{Handled, Ruleset};
use crate::sys::ns::Namespaces;
use crate::sys::seccomp::Filter;

/// Exit status for the launcher's own set-up failures.
pub const EXIT_SETUP: u8 = 125;
/// Exit status when the program was found but could not be executed.
pub const EXIT_CANNOT_EXEC: u8 = 126;
/// Exit status when the program was not found.
pub const EXIT_NOT_FOUND: u8 = 127;
/// Exit status when the command policy refuses the command (as Greywall does).
const EXIT_BLOCKED: u8 = 1;

/// `$PATH` when the environment has none (glibc's `_CS_PATH`, what `execvp` uses).
const DEFAULT_PATH: &[u8] = b"/bin:/usr/bin";

/// Reads, decodes and runs a plan file (`greywall __exec-plan PLAN -- CMD`).
pub fn exec_plan_file(plan: &Path, argv: &[OsString]) -> ExitCode {
    let bytes = match std::fs::read(plan) {
        Ok(b) => b,
        Err(e) => {
            return Failure::step(format_args!("cannot read {}", plan.display()), &e).exit();
        }
    };
    match LinuxPlan::decode(&bytes) {
        Ok(p) => run_asked(&p, Some(&bytes), argv, None),
        Err(e) => Failure::Setup(format!("{}: {e}", plan.display())).exit(),
    }
}

/// Applies `plan` and execs `argv`. Returns only on failure, or in the create-deny
/// supervisor once the command has ended (with its status). `encoded`: the plan's bytes when
/// the caller read them (handed on as they are instead of encoded again); `asked`: the
/// namespace pool's request when it was asked for a set ([`crate::nspool::request`]),
/// `Some(None)` when it was asked and none listened.
pub fn run_asked(
    plan: &LinuxPlan,
    encoded: Option<&[u8]>,
    argv: &[OsString],
    asked: Option<Option<crate::nspool::Request>>,
) -> ExitCode {
    match launch(plan, encoded, argv, asked) {
        Ok(Supervised(code)) => code,
        Err(f) => f.exit(),
    }
}

/// Why the launcher did not exec.
enum Failure {
    /// The command policy refused the command.
    Blocked { command: String, prefix: String },
    /// Set-up failed; the message names the step.
    Setup(String),
    /// The program was found but `execve` failed.
    CannotExec(String),
    /// The program was not found.
    NotFound(String),
}

impl Failure {
    fn step(step: impl Display, err: &io::Error) -> Failure {
        Failure::Setup(format!("{step}: {}", sys::describe(err)))
    }

    fn exit(self) -> ExitCode {
        let (code, msg) = match self {
            Failure::Blocked { command, prefix } => (
                EXIT_BLOCKED,
                format!("command blocked by policy: \"{command}\" matches \"{prefix}\""),
            ),
            Failure::Setup(m) => (EXIT_SETUP, m),
            Failure::CannotExec(m) => (EXIT_CANNOT_EXEC, m),
            Failure::NotFound(m) => (EXIT_NOT_FOUND, m),
        };
        eprintln!("greywall: {msg}");
        ExitCode::from(code)
    }
}

/// `launch` returns `Ok` only in the supervisor, with the command's exit status; the command's
/// side returns only on failure.
struct Supervised(ExitCode);

fn launch(
    plan: &LinuxPlan,
    encoded: Option<&[u8]>,
    argv: &[OsString],
    asked: Option<Option<crate::nspool::Request>>,
) -> Result<Supervised, Failure> {
    if plan.pid_namespace {
        return Err(Failure::Setup(
            "PID namespaces are not supported yet".into(),
        ));
    }
    let Some(program) = argv.first() else {
        return Err(Failure::Setup("no command to run".into()));
    };
    if let Some(prefix) = blocked_by(plan, argv) {
        return Err(Failure::Blocked {
            command: join_lossy(argv),
            prefix: prefix.join(" "),
        });
    }

    // Everything that needs no kernel, before the sandbox exists.
    let mut env = edited_env(&plan.env);
    crate::bridge::edit_env(plan, &mut env);
    let candidates = candidates(program, path_of(&env))?;
    let vectors = Vectors::new(c_strings(argv)?, env_strings(env)?);
    let filter = seccomp_filter(plan, &plan.seccomp)?;
    let notify = seccomp_filter(plan, &plan.seccomp_notify)?;
    let rules = Rules::new(&plan.create_deny).map_err(Failure::Setup)?;
    if notify.is_empty() != rules.is_empty() {
        return Err(Failure::Setup(
            "the plan's create-deny rules come without their seccomp filter".into(),
        ));
    }
    check_landlock_abi(plan)?;
    // Egress and exposed ports only: proxyd registration and host listeners, before the
    // namespaces (see `crate::bridge`).
    let bridge = if crate::bridge::wanted(plan) {
        let label = crate::bridge::label(program);
        Some(if plan.namespaces {
            crate::bridge::prepare(plan, &label)
        } else {
            // Inside bwrap, which made the namespaces: the launcher outside prepared it.
            crate::bridge::inherited(plan, &label)
        })
        .transpose()
        .map_err(Failure::Setup)?
    } else {
        None
    };

    // A prepared user and network namespace (`lo` already up) when the pool has one.
    let mut waiting = None;
    let mut tmpfs = crate::nspool::Tmpfs::default();
    let joined = plan.namespaces
        && plan.network == Network::Isolated
        && std::env::var_os(NO_USERNS_ENV).is_none()
        && join_prepared(asked, &mut waiting, &mut tmpfs)?;
    let namespaced = if joined {
        true
    } else if plan.namespaces && std::env::var_os(NO_USERNS_ENV).is_some() {
        // Re-executed after user namespaces turned out to be powerless (see `restricted`).
        without_userns(plan, &io::Error::from_raw_os_error(libc::EPERM))?
    } else {
        plan.namespaces && enter_namespaces(plan)?
    };
    if namespaced {
        build_view(&plan.mounts, tmpfs)?;
        if plan.network == Network::Isolated && !joined {
            sys::net::loopback_up().map_err(|e| Failure::step("bring up lo", &e))?;
        }
    }
    let bridge = match bridge {
        // Fail closed: without its own network namespace the sandbox would share the host's.
        // (Inside bwrap, `inherited` checked that bwrap made one.)
        Some(_) if plan.namespaces && !namespaced => {
            return Err(Failure::Setup(
                "network filtering (allowedDomains, -p) needs user and network namespaces, which are unavailable here"
                    .into(),
            ));
        }
        Some(p) => Some(p.bind_inside(plan).map_err(Failure::Setup)?),
        None => None,
    };
    // After the view (the supervisor shares it), before the sandbox (it stays outside).
    let notifying = !rules.is_empty();
    let channel = if !notifying && bridge.is_none() {
        None
    } else {
        // Beside the command where user namespaces give the supervisor the right to read the
        // command's memory; above it (as its parent) where only Yama's descendant rule does.
        let side = if namespaced {
            supervise::Side::Beside
        } else {
            supervise::Side::Above
        };
        // The supervisor the namespace pool started in the joined set takes the plan and the
        // network bridge: no fork at all.
        let mut bridge = bridge;
        let handed = match waiting.take() {
            Some(w) if side == supervise::Side::Beside => {
                let had_bridge = bridge.is_some();
                match w.hand_over(plan, encoded, bridge.take()) {
                    Ok(channel) => Some(channel),
                    // The bridge went with it: there is nothing left to fork a supervisor for.
                    Err(e) if had_bridge => {
                        return Err(Failure::step(
                            "hand the network bridge to the namespace pool's supervisor",
                            &e,
                        ));
                    }
                    Err(_) => None,
                }
            }
            _ => None,
        };
        match handed {
            Some(channel) => Some(channel),
            None => match supervise::fork(rules, bridge, side)
                .map_err(|e| Failure::step("start the create-deny supervisor", &e))?
            {
                Forked::Done(code) => return Ok(Supervised(code)),
                Forked::Child(channel) => Some(channel),
            },
        }
    };
    sys::seccomp::set_no_new_privs()
        .map_err(|e| Failure::step("prctl(PR_SET_NO_NEW_PRIVS)", &e))?;
    // Without a network namespace of its own (user namespaces unavailable), Landlock is the
    // only network barrier and handles more.
    let handled_net = if plan.namespaces && !namespaced {
        plan.landlock.handled_net_no_userns
    } else {
        plan.landlock.handled_net
    };
    restrict_self(plan, handled_net)?;
    sys::exec::default_sigpipe().map_err(|e| Failure::step("reset SIGPIPE", &e))?;
    // With create-deny rules the notify program carries the main filter's decisions as well
    // and is loaded alone: one filter costs the kernel half as much to load as two.
    let notify_channel = match channel {
        Some(c) if notifying => Some(c),
        other => {
            if let Some(c) = other {
                c.close();
            }
            None
        }
    };
    if notify_channel.is_none() && !filter.is_empty() {
        filter
            .load()
            .map_err(|e| Failure::step("load the seccomp filter", &e))?;
    }
    if let Some(channel) = notify_channel {
        let listener = notify.load_with_listener().map_err(|e| {
            let mut f = Failure::step("load the seccomp notify filter", &e);
            if let Failure::Setup(m) = &mut f
                && e.raw_os_error() == Some(libc::EBUSY)
            {
                // The kernel allows one listener per filter chain.
                m.push_str(
                    "; this process already runs under a seccomp supervisor (greywall inside \
                     greywall with create-deny rules is not supported)",
                );
            }
            f
        })?;
        channel
            .send(listener)
            .map_err(|e| Failure::step("hand the seccomp listener to the supervisor", &e))?;
    }
    Err(exec_first(&vectors, &candidates, program))
}

// ---- 1. Command policy -------------------------------------------------------------------

/// The `deny_commands` prefix `argv` matches, unless an `allow_commands` prefix matches too.
/// The compiler's matcher decides (the one `greywall explain` uses): it also checks the
/// commands `argv` plainly starts (under `env`, `nice`, `timeout`, …, after `X=1`, and each
/// simple command of an `sh -c` script, as `greywall -c` runs). Nothing is allocated when the
/// plan denies no commands.
fn blocked_by<'p>(plan: &'p LinuxPlan, argv: &[OsString]) -> Option<&'p [String]> {
    if plan.deny_commands.is_empty() {
        return None;
    }
    let words: Vec<_> = argv.iter().map(|a| a.to_string_lossy()).collect();
    match command::check(&plan.deny_commands, &plan.allow_commands, &words) {
        command::Verdict::Blocked { deny, .. } => plan.deny_commands.get(deny).map(Vec::as_slice),
        command::Verdict::Allowed | command::Verdict::Overridden { .. } => None,
    }
}

/// The command for the one-line refusal: words joined with spaces, control characters
/// (a script's newlines) escaped so that the message stays one line.
fn join_lossy(argv: &[OsString]) -> String {
    let words: Vec<_> = argv.iter().map(|a| a.to_string_lossy()).collect();
    let line = words.join(" ");
    if !line.contains(char::is_control) {
        return line;
    }
    line.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

// ---- 2. Preparation ------------------------------------------------------------------------

/// The launcher's environment with the plan's edits applied in order.
fn edited_env(ops: &[EnvOp]) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| k != NO_USERNS_ENV)
        .collect();
    for op in ops {
        match op {
            EnvOp::UnsetPrefix(p) => env.retain(|(k, _)| !k.as_bytes().starts_with(p.as_bytes())),
            EnvOp::Unset(n) => env.retain(|(k, _)| k.as_bytes() != n.as_bytes()),
            EnvOp::UnsetPrefixExcept(p, keep) => env.retain(|(k, _)| {
                let k = k.as_bytes();
                !k.starts_with(p.as_bytes())
                    || keep.iter().any(|q| EnvOp::keep_matches(q.as_bytes(), k))
            }),
            EnvOp::Set(n, v) => {
                env.retain(|(k, _)| k.as_bytes() != n.as_bytes());
                env.push((n.into(), v.into()));
            }
        }
    }
    env
}

fn path_of(env: &[(OsString, OsString)]) -> &[u8] {
    env.iter()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_bytes())
}

/// The paths `execvp` would try for `program`, in order.
fn candidates(program: &OsStr, path: &[u8]) -> Result<Vec<CString>, Failure> {
    let name = program.as_bytes();
    if name.is_empty() {
        return Err(Failure::NotFound("'': command not found".into()));
    }
    if name.contains(&b'/') {
        return Ok(vec![c_string(name)?]);
    }
    path.split(|b| *b == b':')
        .map(|dir| {
            // An empty entry is the working directory, as POSIX says.
            let dir = if dir.is_empty() { b".".as_slice() } else { dir };
            let mut full = Vec::with_capacity(dir.len() + 1 + name.len());
            full.extend_from_slice(dir);
            full.push(b'/');
            full.extend_from_slice(name);
            c_string(&full)
        })
        .collect()
}

fn c_string(bytes: &[u8]) -> Result<CString, Failure> {
    CString::new(bytes).map_err(|_| {
        Failure::Setup(format!(
            "{:?} contains a NUL byte",
            String::from_utf8_lossy(bytes)
        ))
    })
}

fn c_strings(argv: &[OsString]) -> Result<Vec<CString>, Failure> {
    argv.iter().map(|a| c_string(a.as_bytes())).collect()
}

fn env_strings(env: Vec<(OsString, OsString)>) -> Result<Vec<CString>, Failure> {
    env.into_iter()
        .map(|(mut k, v)| {
            k.push("=");
            k.push(v);
            c_string(k.as_bytes())
        })
        .collect()
}

fn seccomp_filter(plan: &LinuxPlan, program: &[u8]) -> Result<Filter, Failure> {
    let filter = Filter::from_bytes(program)
        .ok_or_else(|| Failure::Setup("the plan's seccomp program is malformed".into()))?;
    let host = Arch::host().map(Arch::audit_arch);
    if !filter.is_empty() && host != Some(plan.seccomp_arch) {
        return Err(Failure::Setup(format!(
            "the plan's seccomp filter is for architecture {:#x}, not this machine's; run \
             greywall compile again",
            plan.seccomp_arch
        )));
    }
    Ok(filter)
}

/// The plan's rights must all exist in the running kernel; a lower ABI would silently drop
/// some of them.
fn check_landlock_abi(plan: &LinuxPlan) -> Result<(), Failure> {
    let l = &plan.landlock;
    if l.abi == 0 {
        return Ok(());
    }
    let running = sys::kernel::landlock_abi();
    if running < l.abi {
        return Err(Failure::Setup(format!(
            "the plan needs Landlock ABI {}, the kernel has {running}; run greywall compile again",
            l.abi
        )));
    }
    Ok(())
}

// ---- 3. Namespaces -------------------------------------------------------------------------

/// Joins a user and network namespace the pool prepared ([`crate::nspool`]) and makes the
/// private mount namespace. `Ok(false)`: no usable set, nothing changed (the caller creates
/// the namespaces itself); with no pool running, one is started for the next launch.
/// The supervisor the pool started for the set, if any, goes to `waiting`.
fn join_prepared(
    asked: Option<Option<crate::nspool::Request>>,
    waiting: &mut Option<supervise::Waiting>,
    tmpfs: &mut crate::nspool::Tmpfs,
) -> Result<bool, Failure> {
    use crate::nspool::{Taken, Use};
    let mode = crate::nspool::mode();
    if mode == Use::Off {
        return Ok(false);
    }
    let unavailable = |why: &str| {
        if mode == Use::Require {
            Err(Failure::Setup(format!(
                "{}=require, but {why}",
                crate::nspool::ENV
            )))
        } else {
            Ok(false)
        }
    };
    let dir = crate::proxyd_client::socket_dir();
    let asked = asked.unwrap_or_else(|| crate::nspool::request(&dir));
    let mut set = match asked.map_or(Taken::NoPool, crate::nspool::Request::answer) {
        Taken::Set(set) => set,
        Taken::Empty => return unavailable("the namespace pool has no set ready"),
        Taken::NoPool => {
            crate::nspool::start(&dir);
            return unavailable("no namespace pool was running (one is starting)");
        }
    };
    let (uid, gid) = sys::ns::effective_ids();
    if let Err(why) = set.check(uid) {
        eprintln!("greywall: warning: not using the namespace pool's set: {why}");
        return unavailable("its set failed the checks");
    }
    if let Err(e) = set.join_user() {
        return unavailable(&format!("joining its user namespace failed: {e}"));
    }
    // From here on this process is in the pool's user namespace: failures are final.
    if sys::ns::effective_ids() != (uid, gid) {
        return Err(Failure::Setup(
            "the namespace pool's user namespace does not map this user to itself".into(),
        ));
    }
    set.join_network()
        .map_err(|e| Failure::step("setns(CLONE_NEWNET) into the prepared namespace", &e))?;
    *waiting = set.take_supervisor();
    *tmpfs = set.take_tmpfs();
    sys::ns::unshare_mounts().map_err(|e| {
        let f = Failure::step("unshare(CLONE_NEWNS)", &e);
        if matches!(
            e.raw_os_error(),
            Some(libc::EPERM | libc::EINVAL | libc::ENOSPC)
        ) {
            // No private mount namespace here (a filter outside greywall refuses `unshare`):
            // this process cannot leave the namespaces it joined, so it executes itself again
            // to go on as launches without user namespaces do (see `restricted`).
            restricted(f)
        } else {
            f
        }
    })?;
    Ok(true)
}

/// Creates the namespaces and maps this user to itself. `Ok(false)`: user namespaces are
/// unavailable and the caller goes on without them.
fn enter_namespaces(plan: &LinuxPlan) -> Result<bool, Failure> {
    let ns = Namespaces {
        network: plan.network == Network::Isolated,
    };
    let (uid, gid) = sys::ns::effective_ids();
    if let Err(e) = sys::ns::unshare(ns) {
        return match e.raw_os_error() {
            Some(libc::EPERM | libc::EINVAL | libc::ENOSPC) => without_userns(plan, &e),
            _ => Err(Failure::step(ns.describe(), &e)),
        };
    }
    let maps = [
        ("setgroups", "deny".to_string()),
        ("uid_map", format!("{uid} {uid} 1")),
        ("gid_map", format!("{gid} {gid} 1")),
    ];
    for (file, content) in &maps {
        sys::ns::write_proc_self(file, content).map_err(|e| {
            let f = Failure::step(format_args!("write /proc/self/{file}"), &e);
            if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
                restricted(f)
            } else {
                f
            }
        })?;
    }
    Ok(true)
}

/// Set when the launcher re-executes itself because user namespaces are powerless here.
const NO_USERNS_ENV: &str = "GREYWALL_NO_USERNS";

/// Where user namespaces exist but are powerless (Ubuntu 23.10+: AppArmor), `unshare`
/// succeeds and the first privileged step after it fails. The process cannot leave the
/// namespace, so the launcher executes itself again, nothing else changed, with
/// [`NO_USERNS_ENV`] set: that run goes on with Landlock and seccomp alone and says what is
/// lost (or refuses, with `GREYWALL_REQUIRE=userns`). The command has not started; it never
/// runs outside the sandbox. Returns the failure when that cannot be done.
fn restricted(mut f: Failure) -> Failure {
    use std::os::unix::process::CommandExt;
    if let Failure::Setup(m) = &mut f {
        m.push_str(RESTRICTED_HINT);
    }
    if requires_userns() || std::env::var_os(NO_USERNS_ENV).is_some() {
        return f;
    }
    let mut args = std::env::args_os();
    let Some(argv0) = args.next() else { return f };
    let err = std::process::Command::new("/proc/self/exe")
        .arg0(argv0)
        .args(args)
        .env(NO_USERNS_ENV, "1")
        .exec();
    if let Failure::Setup(m) = &mut f {
        m.push_str(&format!("; re-executing without namespaces failed: {err}"));
    }
    f
}

/// Set by `greywall exec --require userns`.
static REQUIRE_USERNS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Refuse to run without user namespaces (`--require userns`), as `GREYWALL_REQUIRE=userns`.
pub fn require_userns() {
    REQUIRE_USERNS.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn requires_userns() -> bool {
    REQUIRE_USERNS.load(std::sync::atomic::Ordering::Relaxed)
        || std::env::var_os("GREYWALL_REQUIRE").is_some_and(|v| {
            v.as_bytes()
                .split(|b| *b == b',')
                .any(|w| w.trim_ascii() == b"userns")
        })
}

/// Where user namespaces exist but are powerless (Ubuntu 23.10+), `unshare` succeeds and the
/// first privileged step after it fails.
const RESTRICTED_HINT: &str = "; user namespaces look restricted (Ubuntu: AppArmor's \
                               kernel.apparmor_restrict_unprivileged_userns)";

fn without_userns(plan: &LinuxPlan, err: &io::Error) -> Result<bool, Failure> {
    let errno = err
        .raw_os_error()
        .and_then(sys::errno_name)
        .map_or_else(|| sys::describe(err), str::to_string);
    if requires_userns() {
        return Err(Failure::Setup(format!(
            "user namespaces are unavailable ({errno}) and they are required (--require userns or GREYWALL_REQUIRE)"
        )));
    }
    let mut msg = format!(
        "greywall: user namespaces are unavailable ({errno}); running with Landlock and seccomp \
         only."
    );
    if !plan.without_userns.is_empty() {
        msg.push_str(" Not enforced: ");
        msg.push_str(&plan.without_userns.join("; "));
    }
    eprintln!("{msg}");
    Ok(false)
}

// ---- 4. Filesystem view --------------------------------------------------------------------

/// `premade`: empty tmpfs mounts from the namespace pool, attached where the plan mounts a
/// new tmpfs of the same kind (the others, and all without the pool, are mounted here).
fn build_view(mounts: &[MountOp], mut premade: crate::nspool::Tmpfs) -> Result<(), Failure> {
    if mounts.is_empty() {
        return Ok(());
    }
    // The working directory still refers to the mount it was on: a read-only bind or a mask
    // over it would not apply to relative paths until it is entered again.
    let cwd = std::env::current_dir().ok();
    sys::mount::make_private().map_err(|e| {
        let f = Failure::step("make / a private mount tree", &e);
        if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
            restricted(f)
        } else {
            f
        }
    })?;
    // The first folder hidden under an empty tmpfs; the others get a bind of that tmpfs
    // (a bind costs the kernel a fraction of a new tmpfs).
    let mut hidden = None;
    for (i, op) in mounts.iter().enumerate() {
        // Paths to carry over into a new tmpfs must be opened before it hides them.
        let keeps: Vec<&str> = match op {
            MountOp::Tmpfs { .. } => mounts[i + 1..]
                .iter()
                .map_while(|m| match m {
                    MountOp::Keep { path } => Some(path.as_str()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let held = hold(&keeps)?;
        apply_mount(op, &mut hidden, &mut premade)?;
        carry_over(&held)?;
    }
    if let Some(cwd) = cwd {
        std::env::set_current_dir(&cwd).map_err(|e| {
            Failure::step(
                format_args!(
                    "enter the working directory {} in the sandbox's view",
                    cwd.display()
                ),
                &e,
            )
        })?;
    }
    Ok(())
}

/// A path to carry into a tmpfs, held open across the mount that hides it.
struct Held {
    path: String,
    file: std::fs::File,
    dir: bool,
}

fn hold(paths: &[&str]) -> Result<Vec<Held>, Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut out = Vec::new();
    for p in paths {
        match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH)
            .open(p)
        {
            Ok(file) => {
                let dir = file.metadata().is_ok_and(|m| m.is_dir());
                out.push(Held {
                    path: (*p).to_string(),
                    file,
                    dir,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Failure::step(format_args!("open {p} to keep it"), &e)),
        }
    }
    Ok(out)
}

/// Recreates each held path in the new tmpfs and binds the original onto it.
fn carry_over(held: &[Held]) -> Result<(), Failure> {
    use std::os::fd::AsRawFd;
    for h in held {
        let made = if h.dir {
            std::fs::create_dir_all(&h.path)
        } else {
            Path::new(&h.path)
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::File::create(&h.path).map(drop))
        };
        made.map_err(|e| {
            Failure::step(format_args!("recreate {} in the private /tmp", h.path), &e)
        })?;
        let source = c_string(format!("/proc/self/fd/{}", h.file.as_raw_fd()).as_bytes())?;
        let target = c_string(h.path.as_bytes())?;
        sys::mount::bind(&source, &target)
            .map_err(|e| Failure::step(format_args!("keep {} in the private /tmp", h.path), &e))?;
    }
    Ok(())
}

/// `Ok(false)` when the mount point does not exist (skipped silently).
fn mounted(result: io::Result<()>, target: &CStr) -> io::Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && !sys::mount::exists(target) => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Attaches a tmpfs made ahead on `target`; `None` when there is none to attach, it is not a
/// tmpfs, or the kernel refused: the caller then mounts a new one, which gives the same view.
fn attach_premade(made: Option<OwnedFd>, target: &CStr) -> Option<io::Result<bool>> {
    let made = made?;
    if !sys::mount::is_tmpfs(made.as_fd()).ok()? {
        eprintln!("greywall: warning: not using a mount from the namespace pool: not a tmpfs");
        return None;
    }
    match sys::mount::attach(made.as_fd(), target) {
        Ok(()) => Some(Ok(true)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Some(mounted(Err(e), target)),
        Err(_) => None,
    }
}

fn apply_mount(
    op: &MountOp,
    hidden: &mut Option<std::fs::File>,
    premade: &mut crate::nspool::Tmpfs,
) -> Result<(), Failure> {
    use sys::mount;
    match op {
        MountOp::Tmpfs { path, mode } => {
            let target = c_string(path.as_bytes())?;
            let made = premade
                .writable
                .pop()
                .filter(|_| *mode == greywall_compiler::backend::linux::PRIVATE_TMPFS_MODE);
            let result = attach_premade(made, &target).unwrap_or_else(|| {
                // Digits only: never a NUL byte.
                let options = CString::new(format!("mode={mode:o}"))
                    .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
                mounted(mount::tmpfs(&target, &options, false), &target)
            });
            result.map_err(|e| Failure::step(format_args!("mount a tmpfs on {path}"), &e))?;
        }
        MountOp::ReadOnly { path } => {
            let target = c_string(path.as_bytes())?;
            let bound = mounted(mount::bind(&target, &target), &target)
                .map_err(|e| Failure::step(format_args!("bind {path} onto itself"), &e))?;
            if bound {
                mount::set_read_only(&target, true)
                    .map_err(|e| Failure::step(format_args!("make {path} read-only"), &e))?;
            }
        }
        MountOp::HideDir { path } => {
            let target = c_string(path.as_bytes())?;
            if let Some(empty) = hidden {
                // The same empty, read-only tmpfs (a bind keeps its mount's read-only, nosuid,
                // nodev and noexec flags, and its superblock is read-only), reached through
                // the descriptor: whatever is mounted over its first place since.
                let source = c_string(
                    format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(empty)).as_bytes(),
                )?;
                mounted(mount::bind(&source, &target), &target)
                    .map_err(|e| Failure::step(format_args!("hide {path} under a tmpfs"), &e))?;
                return Ok(());
            }
            // Mounted read-only from the start: it stays empty, so it needs no size limit.
            let made = attach_premade(premade.hiding.take(), &target)
                .unwrap_or_else(|| mounted(mount::tmpfs(&target, c"mode=0", true), &target))
                .map_err(|e| Failure::step(format_args!("hide {path} under a tmpfs"), &e))?;
            if made {
                use std::os::unix::fs::OpenOptionsExt;
                *hidden = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)
                    .open(path)
                    .ok();
            }
        }
        // Applied with the `Tmpfs` before it (see `build_view`).
        MountOp::Keep { .. } => {}
        MountOp::Pin { path } => {
            let target = c_string(path.as_bytes())?;
            mounted(mount::bind(&target, &target), &target)
                .map_err(|e| Failure::step(format_args!("pin {path} in place"), &e))?;
        }
        MountOp::HideFile { path } => {
            let target = c_string(path.as_bytes())?;
            let bound = mounted(mount::bind(c"/dev/null", &target), &target)
                .map_err(|e| Failure::step(format_args!("bind /dev/null onto {path}"), &e))?;
            if bound {
                mount::set_read_only(&target, false).map_err(|e| {
                    Failure::step(format_args!("make the /dev/null over {path} read-only"), &e)
                })?;
            }
        }
    }
    Ok(())
}

// ---- 7. Landlock ---------------------------------------------------------------------------

/// Rule descriptors kept open until exec rather than closed one by one.
const HELD_RULE_FDS: usize = 256;

fn restrict_self(plan: &LinuxPlan, handled_net: u64) -> Result<(), Failure> {
    let l = &plan.landlock;
    let handled = Handled {
        fs: l.handled_fs,
        net: handled_net,
        scoped: l.scoped,
    };
    if handled.fs == 0 && handled.net == 0 && handled.scoped == 0 {
        return Ok(());
    }
    let ruleset = Ruleset::create(handled, l.abi)
        .map_err(|e| Failure::step("landlock_create_ruleset", &e))?;
    // The descriptors stay open until exec closes them (`O_CLOEXEC`): a `close` per rule is
    // work the launch does not need. Past a bound they are closed as they go.
    let mut left_open = 0usize;
    for rule in &l.paths {
        let path = c_string(rule.path.as_bytes())?;
        let Some(fd) = sys::landlock::open_rule_path(&path)
            .map_err(|e| Failure::step(format_args!("open {} for Landlock", rule.path), &e))?
        else {
            continue;
        };
        let access = rule.access & handled.fs;
        // The kernel refuses a rule that allows nothing (ENOMSG).
        if access == 0 {
            continue;
        }
        // Directory-only rights on a file: the kernel answers EINVAL, and the rule is retried
        // with the file rights alone (cheaper than a stat of every rule's path).
        let added = match ruleset.allow_beneath(fd.as_fd(), access) {
            Err(e)
                if e.raw_os_error() == Some(libc::EINVAL) && access & fs_access::DIR_ONLY != 0 =>
            {
                match access & !fs_access::DIR_ONLY {
                    0 => Ok(()),
                    file_access => ruleset.allow_beneath(fd.as_fd(), file_access),
                }
            }
            other => other,
        };
        added.map_err(|e| Failure::step(format_args!("Landlock rule for {}", rule.path), &e))?;
        if left_open < HELD_RULE_FDS {
            left_open += 1;
            // Not leaked: `O_CLOEXEC`, so the exec that follows closes it.
            let _ = std::os::fd::IntoRawFd::into_raw_fd(fd);
        }
    }
    for &(port, access) in &l.ports {
        let access = access & handled.net;
        if access == 0 {
            continue;
        }
        ruleset
            .allow_port(port, access)
            .map_err(|e| Failure::step(format_args!("Landlock rule for TCP port {port}"), &e))?;
    }
    // `greywall exec -p PORT`: the server inside may bind its port.
    if handled.net & net_access::BIND_TCP != 0 {
        for &port in crate::bridge::exposed_ports() {
            ruleset
                .allow_port(port, net_access::BIND_TCP)
                .map_err(|e| Failure::step(format_args!("Landlock rule for -p {port}"), &e))?;
        }
    }
    ruleset
        .restrict_self()
        .map_err(|e| Failure::step("landlock_restrict_self", &e))
}

// ---- 9. Exec -------------------------------------------------------------------------------

/// `execvp` over the candidates, without its shell fallback for `ENOEXEC`.
fn exec_first(vectors: &Vectors, candidates: &[CString], program: &OsStr) -> Failure {
    let name = program.to_string_lossy();
    let mut denied = None;
    for path in candidates {
        let err = vectors.execve(path);
        match err.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT) => {}
            Some(libc::EACCES) => {
                denied.get_or_insert(err);
            }
            _ => return Failure::CannotExec(format!("{name}: {}", sys::describe(&err))),
        }
    }
    match denied {
        Some(err) => Failure::CannotExec(format!("{name}: {}", sys::describe(&err))),
        None if program.as_bytes().contains(&b'/') => {
            Failure::NotFound(format!("{name}: No such file or directory"))
        }
        None => Failure::NotFound(format!("{name}: command not found")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_path() {
        let c = candidates(OsStr::new("ls"), b"/a::/b").unwrap_or_default();
        let c: Vec<_> = c.iter().map(|s| s.to_str().unwrap_or("")).collect();
        assert_eq!(c, ["/a/ls", "./ls", "/b/ls"]);
        let c = candidates(OsStr::new("./x"), b"/a").unwrap_or_default();
        assert_eq!(c.len(), 1);
        assert!(candidates(OsStr::new(""), b"/a").is_err());
    }
}
