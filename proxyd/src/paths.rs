//! Where proxyd's socket and log live, and the ownership checks on them and on ruleset files.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The process's real user id.
pub fn own_uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

/// Whether a peer (from `SO_PEERCRED`) may use the socket: only the same user.
pub fn peer_allowed(peer_uid: Option<u32>, own: u32) -> bool {
    peer_uid == Some(own)
}

/// The socket directory: `$XDG_RUNTIME_DIR/greywall`, else `/tmp/greywall-<uid>`.
pub fn default_dir(xdg_runtime_dir: Option<&str>, uid: u32) -> PathBuf {
    match xdg_runtime_dir.filter(|d| d.starts_with('/')) {
        Some(d) => Path::new(d).join("greywall"),
        None => PathBuf::from(format!("/tmp/greywall-{uid}")),
    }
}

/// `$XDG_STATE_HOME/greywall/proxyd.log`, else `~/.local/state/greywall/proxyd.log`.
pub fn default_log(xdg_state_home: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
    let base = match (xdg_state_home.filter(|d| d.starts_with('/')), home) {
        (Some(d), _) => PathBuf::from(d),
        (None, Some(h)) if h.starts_with('/') => Path::new(h).join(".local/state"),
        _ => return None,
    };
    Some(base.join("greywall/proxyd.log"))
}

/// Creates `dir` with mode 0700, or checks that an existing one is a directory owned by `uid`
/// that nobody else can enter.
pub fn ensure_private_dir(dir: &Path, uid: u32) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let m = fs::symlink_metadata(dir)?;
    if !m.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    if m.uid() != uid {
        return Err(io::Error::other(format!(
            "{} is owned by uid {}, not {uid}",
            dir.display(),
            m.uid()
        )));
    }
    if m.permissions().mode() & 0o077 != 0 {
        return Err(io::Error::other(format!(
            "{} is accessible to other users (mode {:o}); expected 0700",
            dir.display(),
            m.permissions().mode() & 0o777
        )));
    }
    Ok(())
}

/// Largest ruleset read.
const MAX_RULESET: u64 = 16 * 1024 * 1024;

/// Reads a ruleset file: a regular file (not a symlink) owned by `uid`, not writable by group
/// or others.
pub fn read_ruleset(path: &Path, uid: u32) -> Result<Vec<u8>, String> {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let m = f
        .metadata()
        .map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
    if !m.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if m.uid() != uid {
        return Err(format!(
            "{} is owned by uid {}, not {uid}",
            path.display(),
            m.uid()
        ));
    }
    if m.mode() & 0o022 != 0 {
        return Err(format!("{} is writable by group or others", path.display()));
    }
    if m.len() > MAX_RULESET {
        return Err(format!("{} is larger than 16 MiB", path.display()));
    }
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_uid_check() {
        assert!(peer_allowed(Some(1000), 1000));
        assert!(!peer_allowed(Some(0), 1000), "not even root");
        assert!(!peer_allowed(Some(1001), 1000));
        assert!(!peer_allowed(None, 1000), "unknown peer");
    }

    #[test]
    fn defaults() {
        assert_eq!(
            default_dir(Some("/run/user/7"), 7),
            PathBuf::from("/run/user/7/greywall")
        );
        assert_eq!(default_dir(None, 7), PathBuf::from("/tmp/greywall-7"));
        assert_eq!(
            default_dir(Some("rel"), 7),
            PathBuf::from("/tmp/greywall-7")
        );
        assert_eq!(
            default_log(None, Some("/home/u")),
            Some(PathBuf::from("/home/u/.local/state/greywall/proxyd.log"))
        );
        assert_eq!(
            default_log(Some("/s"), Some("/home/u")),
            Some(PathBuf::from("/s/greywall/proxyd.log"))
        );
        assert_eq!(default_log(None, None), None);
    }
}
