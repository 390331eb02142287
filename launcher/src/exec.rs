//! `greywall exec`: find the compiled plan for this invocation, or compile one, and apply it.
//!
//! The cached path reads the invocation's index, `stat`s what the plan depends on, reads and
//! checks the plan, and hands it to [`crate::apply`]: no policy parsing, no JSON, no probes.
//! Only a miss (or a stale entry) loads the compiler.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use greywall_compiler::backend::linux::KernelFacts;
use greywall_compiler::backend::seccomp::Arch;
use greywall_compiler::cache::{self, Cache, Index};
use greywall_compiler::compile::{self, CompileEnv, Compiled, Source};
use greywall_compiler::diagnostic::{self, RenderOptions};
use greywall_compiler::plan::LinuxPlan;

use crate::apply::EXIT_SETUP;
use crate::cli::Backend;

fn fail(msg: &str) -> ExitCode {
    eprintln!("greywall: {msg}");
    ExitCode::from(EXIT_SETUP)
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

/// `$XDG_CACHE_HOME/greywall`, or `~/.cache/greywall`.
pub fn cache_root() -> Option<PathBuf> {
    env_path("XDG_CACHE_HOME")
        .or_else(|| env_path("HOME").map(|h| h.join(".cache")))
        .map(|p| p.join("greywall"))
}

/// The index name `greywall exec` uses for this working directory and settings.
pub fn invocation_for(cwd: &Path, settings: Option<&Path>) -> String {
    invocation(cwd, settings)
}

/// Everything that decides which policy an invocation loads and how it resolves, apart from
/// file contents (the index's dependencies cover those).
fn invocation(cwd: &Path, settings: Option<&Path>) -> String {
    let exe_sig = exe_signature();
    let settings = settings
        .map(|s| cwd.join(s).to_string_lossy().into_owned())
        .unwrap_or_default();
    let var = |n: &str| {
        std::env::var_os(n)
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let uid = crate::sys::real_uid().to_string();
    let kernel = crate::sys::kernel::identity();
    cache::invocation_key(&[
        env!("CARGO_PKG_VERSION").as_bytes(),
        exe_sig.as_bytes(),
        cwd.as_os_str().as_encoded_bytes(),
        settings.as_bytes(),
        var("HOME").as_bytes(),
        var("XDG_CONFIG_HOME").as_bytes(),
        var("XDG_CACHE_HOME").as_bytes(),
        var("XDG_DATA_HOME").as_bytes(),
        var("XDG_STATE_HOME").as_bytes(),
        var("XDG_RUNTIME_DIR").as_bytes(),
        uid.as_bytes(),
        kernel.as_bytes(),
    ])
}

/// This greywall executable: its inode, size and modification time (empty when it cannot be
/// found). A rebuilt or upgraded binary has another, so nothing it depends on (cached plans,
/// the namespace pool) is taken from an older one.
pub fn exe_signature() -> &'static str {
    static SIGNATURE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SIGNATURE.get_or_init(|| {
        // `stat` follows the magic link to the running file itself: one system call, and no
        // path that could have been replaced since the exec.
        cache::Signature::now("/proc/self/exe")
            .map(|s| format!("{}:{}:{}", s.ino, s.size, s.mtime_ns))
            .unwrap_or_default()
    })
}

/// The plan key of a fresh index entry, if there is one.
fn fresh_key(cache: &Cache, inv: &str) -> Option<String> {
    let bytes = std::fs::read(cache.index_path(inv)).ok()?;
    Index::fresh_key(&bytes).map(str::to_string)
}

/// Reads a cached plan and checks it is the one its name says; its bytes come along.
fn read_plan(path: &Path, key: &str) -> Option<(LinuxPlan, Vec<u8>)> {
    let bytes = std::fs::read(path).ok()?;
    if cache::content_key(&bytes) != key {
        return None;
    }
    Some((LinuxPlan::decode(&bytes).ok()?, bytes))
}

/// Whether the bwrap argument vector and the inner plan in the cache are the ones `plan` (whose
/// bytes match its name) makes: both are derived from it, so a damaged or partly written file
/// (the cache is not flushed to disk) is found, and the plan compiled again, instead of bwrap
/// running with fewer arguments than the policy asked for.
fn bwrap_artifacts_match(plan: &LinuxPlan, inner: &Path, blob: &Path) -> bool {
    use greywall_compiler::backend::bwrap;
    let inner_ok = std::fs::read(inner).is_ok_and(|b| b == bwrap::inner_plan(plan).encode());
    inner_ok && std::fs::read(blob).is_ok_and(|b| b == bwrap::args_blob(&bwrap::argv(plan)))
}

pub fn run(
    cached: bool,
    settings: Option<&Path>,
    profile: Option<&str>,
    backend: Backend,
    argv: &[OsString],
) -> ExitCode {
    // macOS: Seatbelt through sandbox-exec (the Linux backends do not exist there).
    #[cfg(target_os = "macos")]
    {
        let _ = backend;
        if profile.is_some() {
            // Never run a policy other than the one asked for.
            return fail("--profile is not supported by the macOS launcher yet");
        }
        return crate::macos::run(cached, settings, argv);
    }
    let cwd = match std::env::current_dir() {
        Ok(c) => c,
        Err(e) => return fail(&format!("cannot determine the working directory: {e}")),
    };
    let cache = cache_root().map(Cache::new);
    let inv = invocation(&cwd, profile_key(settings, profile).as_deref());

    // The namespace pool answers while the cache is checked (a plan without a network
    // namespace of its own, rare, leaves the set unused).
    let mut asked =
        (cached && backend == Backend::Native && crate::nspool::mode() != crate::nspool::Use::Off)
            .then(|| crate::nspool::request(&crate::proxyd_client::socket_dir()));
    let hit = match (&cache, cached) {
        (Some(cache), true) => fresh_key(cache, &inv).map(|key| (cache, key)),
        _ => None,
    };
    if let Some((cache, key)) = hit {
        match backend {
            Backend::Native => {
                if let Some((plan, bytes)) = read_plan(&cache.plan_path(&key), &key)
                    && crate::bridge::ruleset_intact(&plan)
                {
                    return crate::apply::run_asked(&plan, Some(&bytes), argv, asked.take());
                }
            }
            Backend::Bwrap => {
                let inner = cache.root.join("plans").join(format!("{key}.inner.plan"));
                let blob = cache.bwrap_path(&key);
                if let Some((plan, _)) = read_plan(&cache.plan_path(&key), &key)
                    && bwrap_artifacts_match(&plan, &inner, &blob)
                {
                    return run_bwrap(&plan, &blob, &inner, argv);
                }
            }
        }
    }

    // Miss, stale entry, or not cached: compile now.
    let compiled = match compile_here(settings, profile) {
        Ok(c) => c,
        Err(code) => return code,
    };
    for n in &compiled.resolved.notes {
        eprintln!("greywall: note: {n}");
    }
    // A plan with egress names its rule set in the cache, for proxyd to read.
    let needs_store = cached || backend == Backend::Bwrap || compiled.egress_bytes.is_some();
    let written = if needs_store {
        let Some(cache) = &cache else {
            return fail("cannot find a cache directory: set HOME or XDG_CACHE_HOME");
        };
        match compile::store(&compiled, cache, &inv) {
            Ok(w) => Some(w),
            Err(e) => {
                return fail(&format!(
                    "cannot write the artifact cache {}: {e}",
                    cache.root.display()
                ));
            }
        }
    } else {
        None
    };
    match (backend, written) {
        (Backend::Native, _) => crate::apply::run_asked(&compiled.plan, None, argv, asked),
        (Backend::Bwrap, Some(w)) => run_bwrap(&compiled.plan, &w.bwrap, &w.inner_plan, argv),
        (Backend::Bwrap, None) => fail("the bwrap backend needs the artifact cache"),
    }
}

/// What names an invocation's index entry: the settings file, and a profile's name after it
/// (`greywall compile --profile` writes the same entry).
pub fn profile_key(settings: Option<&Path>, profile: Option<&str>) -> Option<PathBuf> {
    match profile {
        Some(p) => Some(PathBuf::from(format!(
            "{}#profile={p}",
            settings.map_or(String::new(), |s| s.display().to_string())
        ))),
        None => settings.map(Path::to_path_buf),
    }
}

/// Compiles the policy this invocation uses. Errors are printed; the exit code is returned.
pub fn compile_here(settings: Option<&Path>, profile: Option<&str>) -> Result<Compiled, ExitCode> {
    let env = compile_env().map_err(|e| fail(&e))?;
    let source = Source::Discover {
        settings: settings.map(Path::to_path_buf),
    };
    let opts = greywall_compiler::load::LoadOptions {
        profile: profile.map(str::to_string),
    };
    compile::compile_with(&source, &env, &opts).map_err(|f| {
        let color = std::io::IsTerminal::is_terminal(&std::io::stderr());
        eprint!(
            "{}",
            diagnostic::render_all(&f.diagnostics, &f.sources, RenderOptions { color }, 50)
        );
        ExitCode::from(EXIT_SETUP)
    })
}

/// The user's runtime directory, which the sandbox does not see: `$XDG_RUNTIME_DIR`, or
/// without it `/run/user/UID` when that folder exists and is this user's (a login session's
/// bus and agents live there even for a process started without the variable, from cron or
/// `sudo -u`, say).
pub fn runtime_dir() -> Option<PathBuf> {
    env_path("XDG_RUNTIME_DIR")
        .or_else(|| login_runtime_dir(Path::new("/run/user"), crate::sys::real_uid()))
}

/// `BASE/UID` when it is a folder (not a symlink) owned by `uid`: where a login session's
/// runtime directory is.
fn login_runtime_dir(base: &Path, uid: u32) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt as _;
    let dir = base.join(uid.to_string());
    std::fs::symlink_metadata(&dir)
        .ok()
        .filter(|m| m.is_dir() && m.uid() == uid)
        .map(|_| dir)
}

/// The machine facts a compile needs.
pub fn compile_env() -> Result<CompileEnv, String> {
    Ok(CompileEnv {
        discover: crate::cmd::discover_env()?,
        cache_dir: cache_root(),
        runtime_dir: runtime_dir(),
        kernel: KernelFacts {
            landlock_abi: crate::sys::kernel::landlock_abi(),
            audit_arch: Arch::host().map_or(0, Arch::audit_arch),
        },
    })
}

/// The trusted bwrap: looked up in system directories only, never through `$PATH`.
fn bwrap_path() -> Option<&'static str> {
    ["/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
}

/// What a launch through bwrap adds for `plan`'s bridge, when it has one: the prepared bridge,
/// bwrap's own arguments for it, and the inner launcher's `--bridge SPEC`.
type BwrapBridge = (
    Option<crate::bridge::Prepared>,
    Vec<OsString>,
    Vec<OsString>,
);

fn bwrap_bridge(plan: &LinuxPlan, argv: &[OsString]) -> Result<BwrapBridge, String> {
    if !crate::bridge::wanted(plan) {
        return Ok((None, Vec::new(), Vec::new()));
    }
    let label = argv
        .first()
        .map_or_else(String::new, |p| crate::bridge::label(p));
    let prepared = crate::bridge::prepare(plan, &label)?;
    let spec = prepared.hand_off()?;
    let outer = crate::bridge::bwrap_args(plan)?;
    Ok((Some(prepared), outer, vec!["--bridge".into(), spec.into()]))
}

/// Execs bwrap with the cached argument vector (`--args FD`) and this binary as the inner
/// launcher, which adds Landlock, seccomp and the environment.
fn run_bwrap(plan: &LinuxPlan, blob: &Path, inner: &Path, argv: &[OsString]) -> ExitCode {
    let Some(bwrap) = bwrap_path() else {
        return fail(
            "bubblewrap (bwrap) is not installed in /usr/bin; use --backend native or install it",
        );
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return fail(&format!("cannot find the greywall executable: {e}")),
    };
    let fd = match crate::sys::fd::open_inheritable(blob) {
        Ok(fd) => fd,
        Err(e) => return fail(&format!("cannot open {}: {e}", blob.display())),
    };
    // A network policy (or `-p`): the bridge is prepared here, outside bwrap, and handed to
    // the launcher inside ([`crate::bridge`]); `_prepared` holds its descriptors open until
    // the exec, which bwrap and the launcher inside inherit.
    let (_prepared, extra, bridge) = match bwrap_bridge(plan, argv) {
        Ok(b) => b,
        Err(m) => return fail(&m),
    };
    // Every plan gives the sandbox its own `/tmp` and `/dev/shm`: a greywall executable or a
    // cache under either would be hidden from the inner launcher bwrap runs. Bound back in,
    // read-only, from a descriptor (bwrap creates the path in the new tmpfs, then closes it).
    let mut back = Vec::new();
    for path in [exe.as_path(), inner] {
        if greywall_compiler::backend::linux::PRIVATE_TMPFS
            .iter()
            .any(|t| path.starts_with(t))
        {
            match crate::sys::fd::open_inheritable(path) {
                Ok(fd) => back.extend([
                    "--ro-bind-fd".into(),
                    fd.to_string().into(),
                    path.as_os_str().to_owned(),
                ]),
                Err(e) => return fail(&format!("cannot open {}: {e}", path.display())),
            }
        }
    }
    let err = std::process::Command::new(bwrap)
        .arg("--args")
        .arg(fd.to_string())
        .args(&back)
        .args(&extra)
        .arg("--")
        .arg(&exe)
        .arg("__exec-plan")
        .args(&bridge)
        .arg(inner)
        .arg("--")
        .args(argv)
        .exec();
    fail(&format!("cannot execute {bwrap}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The login session's folder counts only when it is the user's own folder.
    #[test]
    fn login_runtime_dir_is_the_users_own_folder() {
        use std::os::unix::fs::MetadataExt as _;
        let base = tempfile::tempdir().unwrap();
        let me = std::fs::metadata(base.path()).unwrap().uid();
        assert_eq!(login_runtime_dir(base.path(), me), None, "missing");
        std::fs::create_dir(base.path().join(me.to_string())).unwrap();
        assert_eq!(
            login_runtime_dir(base.path(), me),
            Some(base.path().join(me.to_string()))
        );
        // Someone else's number: the folder is not owned by that user.
        let other = me + 1;
        std::fs::create_dir(base.path().join(other.to_string())).unwrap();
        assert_eq!(login_runtime_dir(base.path(), other), None, "not owned");
        // A symlink is not the folder.
        let linked = me + 2;
        std::os::unix::fs::symlink(
            base.path().join(me.to_string()),
            base.path().join(linked.to_string()),
        )
        .unwrap();
        assert_eq!(login_runtime_dir(base.path(), linked), None, "symlink");
    }
}
