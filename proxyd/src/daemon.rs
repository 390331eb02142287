//! What proxyd does for itself when the launcher starts it in the background: leave the
//! launcher's session (`--new-session`), and keep the file its standard error goes to bounded
//! (`--stderr PATH`, rotated to `PATH.1`).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Makes proxyd the leader of a new session with no controlling terminal, so that nothing the
/// launcher's terminal or session sends (hangup, job control, Ctrl-C) reaches it.
pub fn new_session() -> io::Result<()> {
    nix::unistd::setsid().map(drop).map_err(io::Error::from)
}

/// `PATH.1`: where a full file goes.
pub fn rotated(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".1");
    PathBuf::from(p)
}

/// Opens `path` for appending, creating it 0600.
pub fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// The file proxyd's standard error is written to. Past `max` bytes it is renamed to
/// `PATH.1` (replacing the previous one) and a new one is started, so the two hold at most
/// about `2 × max` bytes.
#[derive(Debug)]
pub struct StderrFile {
    path: PathBuf,
    max: u64,
}

impl StderrFile {
    /// Points standard error at `path` (appending), rotating it first if it is already full.
    pub fn open(path: &Path, max: u64) -> io::Result<StderrFile> {
        let s = StderrFile {
            path: path.to_path_buf(),
            max,
        };
        if !s.rotate_if_full()? {
            nix::unistd::dup2_stderr(open_append(path)?)?;
        }
        Ok(s)
    }

    /// Starts a new file when this one has grown past the limit (or was removed); `true` when
    /// it did.
    pub fn rotate_if_full(&self) -> io::Result<bool> {
        let len = match std::fs::metadata(&self.path) {
            Ok(m) => Some(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        match len {
            Some(n) if n <= self.max => return Ok(false),
            Some(_) => std::fs::rename(&self.path, rotated(&self.path))?,
            None => {}
        }
        nix::unistd::dup2_stderr(open_append(&self.path)?)?;
        Ok(true)
    }
}
