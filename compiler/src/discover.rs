//! Finding the policy to use, the way Greywall does, plus project files.
//!
//! Order: `--settings FILE` (which must exist); a `greywall.json` or `greywall.gw` in the
//! working directory or the nearest ancestor; `$XDG_CONFIG_HOME/greywall/greywall.json` or
//! `greywall.gw` (or the same in `~/.config/greywall/`); the legacy `~/.greywall.json`; the
//! built-in `default` template. A directory holding both `greywall.json` and `greywall.gw` is
//! an error (E619): greywall does not guess which one was meant.
//!
//! A project file that another user could have written (owned by someone other than you or
//! root, or writable by group or others) is skipped with a warning: a file planted in a shared
//! parent directory such as `/tmp` must not choose your sandbox.
#![expect(
    clippy::result_large_err,
    reason = "the error is a diagnostic shown to the user; it is built once"
)]

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::diagnostic::{Code, Diagnostic};
use crate::load::Input;

/// The name of a project policy file.
pub const PROJECT_FILE: &str = "greywall.json";
/// The name of a project policy file in the `.gw` language. A directory may hold one of the
/// two, not both (E619).
pub const PROJECT_FILE_GW: &str = "greywall.gw";
/// Both names, in the order discovery lists them.
pub const PROJECT_FILES: [&str; 2] = [PROJECT_FILE_GW, PROJECT_FILE];

/// The policy file in `dir`: `greywall.gw` or `greywall.json`; both is an error.
fn one_of(dir: &Path) -> Result<Option<PathBuf>, Diagnostic> {
    let found: Vec<PathBuf> = PROJECT_FILES
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
        .collect();
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        _ => Err(Diagnostic::new(
            Code::GwAmbiguousProject,
            format!(
                "both `{}` and `{}` are in {}",
                PROJECT_FILE_GW,
                PROJECT_FILE,
                dir.display()
            ),
        )
        .path(dir.join(PROJECT_FILE_GW).display().to_string())
        .help("keep one of them (`greywall convert` turns one into the other), or choose with --settings")),
    }
}

/// Facts discovery needs about the environment.
#[derive(Debug, Clone)]
pub struct DiscoverEnv {
    pub cwd: PathBuf,
    pub home: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    /// The real user id, for the ownership check on project files.
    pub uid: u32,
}

impl DiscoverEnv {
    /// Greywall's user configuration directory.
    pub fn config_dir(&self) -> Option<PathBuf> {
        match &self.xdg_config_home {
            Some(x) if x.is_absolute() => Some(x.join("greywall")),
            _ => self
                .home
                .as_ref()
                .map(|h| h.join(".config").join("greywall")),
        }
    }
}

/// Where the policy came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovered {
    Explicit(PathBuf),
    Project(PathBuf),
    User(PathBuf),
    Legacy(PathBuf),
    Default,
}

impl Discovered {
    pub fn input(&self) -> Input {
        match self {
            Discovered::Explicit(p)
            | Discovered::Project(p)
            | Discovered::User(p)
            | Discovered::Legacy(p) => Input::File(p.clone()),
            Discovered::Default => Input::Template("default".to_string()),
        }
    }
}

impl fmt::Display for Discovered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Discovered::Explicit(p) => write!(f, "{} (--settings)", p.display()),
            Discovered::Project(p) => write!(f, "{} (project file)", p.display()),
            Discovered::User(p) => write!(f, "{} (user configuration)", p.display()),
            Discovered::Legacy(p) => write!(f, "{} (legacy user configuration)", p.display()),
            Discovered::Default => {
                f.write_str("built-in template `default` (no greywall.json found)")
            }
        }
    }
}

/// Finds the policy. Skipped project files are reported as warnings in `diags`; an explicit
/// `--settings` path that does not exist is an error.
pub fn discover(
    explicit: Option<&Path>,
    env: &DiscoverEnv,
    diags: &mut Vec<Diagnostic>,
) -> Result<Discovered, Diagnostic> {
    if let Some(p) = explicit {
        return if p.exists() {
            Ok(Discovered::Explicit(p.to_path_buf()))
        } else {
            Err(Diagnostic::new(
                Code::SettingsNotFound,
                format!("settings file `{}` does not exist", p.display()),
            )
            .path(p.display().to_string())
            .help("check the path, or leave out --settings to use the discovered policy"))
        };
    }
    for dir in env.cwd.ancestors() {
        let Some(candidate) = one_of(dir)? else {
            continue;
        };
        let Ok(meta) = std::fs::metadata(&candidate) else {
            continue;
        };
        if let Some(why) = untrusted(&meta, env.uid) {
            diags.push(
                Diagnostic::new(
                    Code::UntrustedPolicy,
                    format!("skipping `{}`: {why}", candidate.display()),
                )
                .path(candidate.display().to_string())
                .help("if it is yours, fix its owner and mode (chmod go-w), or pass it with --settings"),
            );
            continue;
        }
        return Ok(Discovered::Project(candidate));
    }
    if let Some(dir) = env.config_dir()
        && let Some(p) = one_of(&dir)?
    {
        return Ok(Discovered::User(p));
    }
    if let Some(home) = &env.home {
        let p = home.join(".greywall.json");
        if p.is_file() {
            return Ok(Discovered::Legacy(p));
        }
    }
    Ok(Discovered::Default)
}

fn untrusted(meta: &std::fs::Metadata, uid: u32) -> Option<String> {
    if meta.uid() != uid && meta.uid() != 0 {
        return Some(format!("it is owned by uid {}, not by you", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!(
            "it is writable by {} (mode {:o})",
            if meta.mode() & 0o002 != 0 {
                "everyone"
            } else {
                "its group"
            },
            meta.mode() & 0o777
        ));
    }
    None
}
