//! The macOS launch path: apply the cached Seatbelt profile with `/usr/bin/sandbox-exec`.
//!
//! `greywall exec` on macOS finds the invocation's profile in the cache (or compiles it), works
//! out this run's parameters (working and home directory, `$TMPDIR`, the XDG and git
//! directories, each with symlinks resolved, as Seatbelt sees them) and execs
//! `/usr/bin/sandbox-exec -f PROFILE -D NAME=VALUE… -- COMMAND…`, by absolute path, never
//! through `$PATH`. The profile is the same file for every working directory.
//!
//! Everything except the final `exec` is plain code that builds and tests on any host; only
//! [`run`] is macOS-only.

#![cfg_attr(not(target_os = "macos"), allow(dead_code))]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use greywall_compiler::backend::seatbelt::{self, params};
use greywall_compiler::pattern::path::{Anchors, PathBase};

/// The trusted sandbox-exec; SIP protects it.
pub const SANDBOX_EXEC: &str = "/usr/bin/sandbox-exec";

/// `path` with symlinks resolved; a missing path is returned as given (made absolute).
fn real(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .to_string_lossy()
        .trim_end_matches('/')
        .to_string()
}

fn var(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

/// The git work tree around `cwd` and its common git directory (a linked worktree's `.git`
/// file points into the main repository).
fn git_dirs(cwd: &Path) -> Option<(PathBuf, PathBuf)> {
    for dir in cwd.ancestors() {
        let dotgit = dir.join(".git");
        let Ok(meta) = std::fs::metadata(&dotgit) else {
            continue;
        };
        if meta.is_dir() {
            return Some((dir.to_path_buf(), dotgit));
        }
        let text = std::fs::read_to_string(&dotgit).ok()?;
        let gitdir = dir.join(text.strip_prefix("gitdir:")?.trim());
        let common = std::fs::read_to_string(gitdir.join("commondir"))
            .map(|c| gitdir.join(c.trim()))
            .unwrap_or(gitdir);
        return Some((dir.to_path_buf(), common));
    }
    None
}

/// This run's facts, read from the process environment and the file system.
pub fn run_facts(cache_dir: &Path, declared: &[params::Param]) -> Result<params::RunFacts, String> {
    let cwd = std::env::current_dir()
        .map_err(|e| format!("cannot determine the working directory: {e}"))?;
    let home = var("HOME").ok_or("HOME is not set; greywall needs it")?;
    let tmp = var("TMPDIR").unwrap_or_else(|| PathBuf::from("/tmp"));
    let xdg = |name: &str, default: &str| real(&var(name).unwrap_or_else(|| home.join(default)));
    let git = git_dirs(&cwd);
    let env = declared
        .iter()
        .filter_map(|p| match p {
            params::Param::Anchor {
                base: PathBase::Env(n),
                ..
            } => Some((n.clone(), var(n).map(|v| real(&v))?)),
            _ => None,
        })
        .collect();
    let config_dir = xdg("XDG_CONFIG_HOME", ".config");
    Ok(params::RunFacts {
        anchors: Anchors {
            home: real(&home),
            cwd: real(&cwd),
            tmp: real(&tmp),
            xdg_config: config_dir.clone(),
            xdg_cache: xdg("XDG_CACHE_HOME", ".cache"),
            xdg_data: xdg("XDG_DATA_HOME", ".local/share"),
            xdg_state: xdg("XDG_STATE_HOME", ".local/state"),
            git_root: git.as_ref().map(|(r, _)| real(r)),
            git_common: git.as_ref().map(|(_, c)| real(c)),
            env,
        },
        config_dir: format!("{config_dir}/greywall"),
        cache_dir: real(cache_dir),
    })
}

/// The sandbox-exec command for a profile, its text and this run's facts.
pub fn command(
    profile: &Path,
    text: &str,
    facts: &params::RunFacts,
    argv: &[OsString],
) -> Result<Command, String> {
    let declared = params::declared(text)
        .ok_or("the cached profile does not declare its parameters (recompile it)")?;
    let values = params::values(&declared, facts).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(SANDBOX_EXEC);
    cmd.arg("-f").arg(profile);
    for (k, v) in values {
        cmd.arg("-D").arg(format!("{k}={v}"));
    }
    cmd.arg("--").args(argv);
    // As on Linux: no loader injection, a marker, and the proxy variables.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("LD_") || k.starts_with("DYLD_") {
            cmd.env_remove(k.as_ref());
        }
    }
    cmd.env("GREYWALL_SANDBOX", "1");
    for (k, v) in seatbelt::declared_env(text) {
        cmd.env(k, v);
    }
    Ok(cmd)
}

/// `greywall exec` on macOS.
#[cfg(target_os = "macos")]
pub fn run(cached: bool, settings: Option<&Path>, argv: &[OsString]) -> std::process::ExitCode {
    use std::os::unix::process::CommandExt as _;

    use greywall_compiler::cache::{self, Cache, Index};
    use greywall_compiler::compile::{self, Source};

    let fail = |m: &str| {
        eprintln!("greywall: {m}");
        std::process::ExitCode::from(crate::apply::EXIT_SETUP)
    };
    let Some(cache) = crate::exec::cache_root().map(Cache::new) else {
        return fail("cannot find a cache directory: set HOME or XDG_CACHE_HOME");
    };
    let cwd = match std::env::current_dir() {
        Ok(c) => c,
        Err(e) => return fail(&format!("cannot determine the working directory: {e}")),
    };
    let inv = crate::exec::invocation_for(&cwd, settings);
    let fresh = std::fs::read(cache.macos_index_path(&inv))
        .ok()
        .filter(|_| cached)
        .and_then(|b| Index::fresh_key(&b).map(str::to_string));
    let (path, text) = match fresh.and_then(|key| {
        let path = cache.profile_path(&key);
        let text = std::fs::read_to_string(&path).ok()?;
        (cache::content_key(text.as_bytes()) == key).then_some((path, text))
    }) {
        Some(hit) => hit,
        None => {
            let env = match crate::cmd::discover_env() {
                Ok(e) => e,
                Err(e) => return fail(&e),
            };
            let source = Source::Discover {
                settings: settings.map(Path::to_path_buf),
            };
            let compiled = match compile::compile_macos(&source, &env) {
                Ok(c) => c,
                Err(f) => {
                    eprint!(
                        "{}",
                        greywall_compiler::diagnostic::render_all(
                            &f.diagnostics,
                            &f.sources,
                            greywall_compiler::diagnostic::RenderOptions { color: false },
                            50
                        )
                    );
                    return std::process::ExitCode::from(crate::apply::EXIT_SETUP);
                }
            };
            match compile::store_macos(&compiled, &cache, &inv) {
                Ok(w) => (w.profile, compiled.profile.text),
                Err(e) => return fail(&format!("cannot write the artifact cache: {e}")),
            }
        }
    };
    let declared = params::declared(&text).unwrap_or_default();
    let facts = match run_facts(&cache.root, &declared) {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    let mut cmd = match command(&path, &text, &facts, argv) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let err = cmd.exec();
    fail(&format!("cannot execute {SANDBOX_EXEC}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_passes_every_declared_parameter_and_no_path_in_the_profile() {
        let policy =
            greywall_compiler::load::load(&greywall_compiler::load::Input::Template("code".into()))
                .policy
                .unwrap_or_default();
        let profile = seatbelt::profile(&policy, &seatbelt::Options::default()).unwrap();
        let facts = params::RunFacts {
            anchors: Anchors {
                git_root: None,
                git_common: None,
                ..Anchors::defaults("/Users/a b", "/Users/a b/pro\"j (1)")
            },
            config_dir: "/Users/a b/.config/greywall".into(),
            cache_dir: "/Users/a b/.cache/greywall".into(),
        };
        let argv = vec![OsString::from("true")];
        let cmd = command(Path::new("/c/p.sb"), &profile.text, &facts, &argv).unwrap();
        assert_eq!(cmd.get_program(), SANDBOX_EXEC);
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(&args[..2], ["-f", "/c/p.sb"]);
        assert_eq!(args.last().map(String::as_str), Some("true"));
        assert!(args.contains(&"CWD=/Users/a b/pro\"j (1)".to_string()));
        assert!(args.contains(&r#"CWD_RE=/Users/a b/pro"j \(1\)"#.to_string()));
        let defined = args.iter().filter(|a| a.as_str() == "-D").count();
        assert_eq!(defined, profile.params.len());
        assert!(!profile.text.contains("pro\"j"));
        let envs: Vec<_> = cmd.get_envs().collect();
        assert!(envs.iter().any(|(k, v)| *k == "HTTP_PROXY"
            && v.is_some_and(|v| v == "http://127.0.0.1:3128")));
    }
}
