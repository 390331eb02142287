//! The launcher's side of the greywall-proxyd contract: find the daemon's socket, start the
//! daemon when nobody listens (under a lock, so concurrent launches start one), register a
//! sandbox's rule set, and open data and watch connections.
//!
//! The protocol is one ASCII line per request (`GW1 REGISTER|ADOPT|CONNECT|DNS|WATCH|PING …`),
//! see `docs/proxyd.md`. Nothing here runs unless a plan has an egress section.
//!
//! The registration offers the `adopt` feature; a proxyd that grants it takes accepted
//! connections whole ([`Registration::hand_over`]), and one that does not (an older build,
//! still running) gets today's `GW1 CONNECT` copies. A proxyd from before features refuses the
//! offer as a malformed line; the launcher then registers again without it.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use greywall_compiler::protections::{PROXYD_RUNTIME_DIR, PROXYD_TMP_PREFIX};

/// The daemon's socket, lock and (when the launcher starts it) stderr, in [`socket_dir`].
pub const SOCKET: &str = "proxyd.sock";
const LOCK: &str = "proxyd.lock";
const STDERR: &str = "proxyd.stderr";
/// The daemon's binary, looked up next to the launcher's own executable, then on `$PATH`.
pub const BINARY: &str = "greywall-proxyd";
/// Longest line either side sends.
const MAX_LINE: usize = 4096;
/// How long a cold start may take before the launcher gives up.
const START_WAIT: Duration = Duration::from_secs(2);
/// How long proxyd may take to answer a registration.
const REPLY_WAIT: Duration = Duration::from_secs(5);
/// The feature the registration offers: the bridge hands accepted connections over.
const ADOPT: &str = "adopt";
/// What a proxyd from before registration features answers a line with one (its parser's
/// fixed text for a line with an unexpected number of fields).
const OLD_PARSER_REFUSAL: &str = "ERR unknown GW1 command or wrong number of fields";

/// `$XDG_RUNTIME_DIR/greywall`, or `/tmp/greywall-<uid>`.
pub fn socket_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        Some(rt) => rt.join(PROXYD_RUNTIME_DIR),
        None => PathBuf::from(format!("{PROXYD_TMP_PREFIX}{}", crate::sys::real_uid())),
    }
}

/// Creates the socket directory (0700) if needed, and refuses one that another user owns or
/// others can enter.
pub(crate) fn checked_dir(dir: &Path) -> Result<(), String> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() || meta.uid() != crate::sys::real_uid() {
        return Err(format!(
            "{} is not a directory owned by this user; refusing to use it",
            dir.display()
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{} is open to other users (mode {:o}); refusing to use it",
            dir.display(),
            meta.permissions().mode() & 0o777
        ));
    }
    Ok(())
}

/// A connection to a running proxyd, starting one if nobody listens.
pub fn connect_or_start(dir: &Path) -> Result<UnixStream, String> {
    checked_dir(dir)?;
    let sock = dir.join(SOCKET);
    if let Ok(s) = UnixStream::connect(&sock) {
        return Ok(s);
    }
    // Cold path: one launcher starts the daemon, the others wait on the lock and find it.
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join(LOCK))
        .map_err(|e| format!("cannot open {}: {e}", dir.join(LOCK).display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", dir.join(LOCK).display()))?;
    if let Ok(s) = UnixStream::connect(&sock) {
        return Ok(s);
    }
    let bin = binary().ok_or_else(|| {
        format!("{BINARY} is not installed next to greywall or on $PATH; it is needed for allowedDomains")
    })?;
    let stderr = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(dir.join(STDERR))
        .map_err(|e| format!("cannot open {}: {e}", dir.join(STDERR).display()))?;
    // Detached: proxyd makes itself the leader of a session of its own at once
    // (`--new-session`, setsid), so the terminal's and the session's signals miss it; no
    // terminal on its standard streams; its standard error goes to `proxyd.stderr`, which it
    // keeps bounded (`--stderr`: rotated to `proxyd.stderr.1` past 1 MiB). The file is also
    // its standard error from the start, so that a failure before it parses its arguments is
    // there too. It outlives this launcher and exits when idle.
    let mut child = Command::new(&bin)
        .arg("--socket")
        .arg(&sock)
        .arg("--new-session")
        .arg("--stderr")
        .arg(dir.join(STDERR))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let start = Instant::now();
    loop {
        if let Ok(s) = UnixStream::connect(&sock) {
            // Reaped by init once we exit; it is a daemon now.
            drop(child);
            return Ok(s);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{} exited at start ({status}){}",
                bin.display(),
                last_line(&dir.join(STDERR))
                    .map(|l| format!(": {l}"))
                    .unwrap_or_default()
            ));
        }
        if start.elapsed() > START_WAIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{} did not open {} within {} s",
                bin.display(),
                sock.display(),
                START_WAIT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn last_line(path: &Path) -> Option<String> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::to_string)
}

/// `greywall-proxyd` next to the running launcher, else the first on `$PATH`.
fn binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok();
    let beside = exe
        .as_deref()
        .and_then(Path::parent)
        .map(|d| d.join(BINARY));
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d.is_absolute())
        .map(|d| d.join(BINARY));
    beside.into_iter().chain(on_path).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Reads one `\n`-terminated line (without it), at most [`MAX_LINE`] bytes.
pub fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    r.take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a whole line",
        ));
    }
    line.pop();
    String::from_utf8(line).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8"))
}

/// A sandbox registered with proxyd: the registration lives as long as `connection`.
pub struct Registration {
    pub connection: UnixStream,
    pub sandbox_id: String,
    pub token: String,
    /// proxyd takes accepted connections over (`GW1 ADOPT`): it granted the `adopt` feature.
    pub adopt: bool,
    /// proxyd's socket directory, held open: the sandbox's view hides it, and data
    /// connections reach the socket through this descriptor.
    pub dir: OwnedFd,
}

/// A registration sent and not yet answered: proxyd reads and checks the rule set while the
/// launcher builds the sandbox, and [`Pending::finish`] reads the answer before the command
/// starts.
pub struct Pending {
    connection: UnixStream,
    dir: OwnedFd,
    /// The request without features, for a proxyd that does not know them.
    plain: String,
}

/// Sends `GW1 REGISTER <ruleset> <sha256> <label>` on `connection` and opens proxyd's socket
/// directory (`dir`) for later connections; call before the sandbox's view hides `dir`.
pub fn register(
    connection: UnixStream,
    dir: &Path,
    ruleset: &str,
    sha256: &str,
    label: &str,
) -> Result<Pending, String> {
    let (plain, request) = register_lines(ruleset, sha256, label);
    (&connection)
        .write_all(request.as_bytes())
        .map_err(|e| format!("cannot register with greywall-proxyd: {e}"))?;
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)
        .map_err(|e| format!("cannot open {}: {e}", dir.display()))?;
    Ok(Pending {
        connection,
        dir: dir.into(),
        plain,
    })
}

/// The registration request without features (for a proxyd that does not know them), and
/// with the ones this launcher offers.
fn register_lines(ruleset: &str, sha256: &str, label: &str) -> (String, String) {
    let label: String = label
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect();
    let label = if label.is_empty() { "-".into() } else { label };
    (
        format!("GW1 REGISTER {ruleset} {sha256} {label}\n"),
        format!("GW1 REGISTER {ruleset} {sha256} {label} {ADOPT}\n"),
    )
}

impl Pending {
    /// The registration connection and proxyd's socket directory: what a launcher hands to
    /// the one inside bwrap ([`Pending::inherited`]).
    pub fn descriptors(&self) -> (BorrowedFd<'_>, BorrowedFd<'_>) {
        (self.connection.as_fd(), self.dir.as_fd())
    }

    /// The registration another launcher sent (for the same rule set and command), from the
    /// descriptors it handed over.
    pub fn inherited(
        connection: OwnedFd,
        dir: OwnedFd,
        ruleset: &str,
        sha256: &str,
        label: &str,
    ) -> Pending {
        Pending {
            connection: UnixStream::from(connection),
            dir,
            plain: register_lines(ruleset, sha256, label).0,
        }
    }

    /// proxyd's answer: `OK <sandbox-id> <token> [<feature>...]`, or its `ERR` reason as the
    /// error. A proxyd that does not know features is asked again without them (on a new
    /// connection, through the held directory).
    pub fn finish(self) -> Result<Registration, String> {
        let line = answer(&self.connection)?;
        if line == OLD_PARSER_REFUSAL {
            let again = UnixStream::connect(socket_through(&self.dir))
                .and_then(|c| (&c).write_all(self.plain.as_bytes()).map(|()| c))
                .map_err(|e| format!("cannot register with greywall-proxyd again: {e}"))?;
            let line = answer(&again)?;
            return registration(again, &line, self.dir);
        }
        registration(self.connection, &line, self.dir)
    }
}

/// Reads proxyd's one-line answer to a registration.
fn answer(connection: &UnixStream) -> Result<String, String> {
    let _ = connection.set_read_timeout(Some(REPLY_WAIT));
    let mut reader = BufReader::new(connection);
    let line = read_line(&mut reader)
        .map_err(|e| format!("greywall-proxyd did not answer the registration: {e}"))?;
    // Nothing may follow the answer before the connection closes.
    if !reader.buffer().is_empty() {
        return Err("greywall-proxyd sent more than one line".into());
    }
    Ok(line)
}

/// The registration proxyd's answer `line` describes.
fn registration(connection: UnixStream, line: &str, dir: OwnedFd) -> Result<Registration, String> {
    let words: Vec<&str> = line.split(' ').collect();
    let (sandbox_id, token, features) = match words.as_slice() {
        ["OK", id, token, features @ ..] if is_token(token) => {
            ((*id).to_string(), (*token).to_string(), features)
        }
        ["ERR", ..] => {
            return Err(format!(
                "greywall-proxyd refused the rule set: {}",
                line.trim_start_matches("ERR").trim()
            ));
        }
        _ => return Err(format!("greywall-proxyd answered {line:?}")),
    };
    let _ = connection.set_read_timeout(None);
    Ok(Registration {
        connection,
        sandbox_id,
        token,
        adopt: features.contains(&ADOPT),
        dir,
    })
}

/// proxyd's socket through the held directory descriptor.
fn socket_through(dir: &OwnedFd) -> String {
    format!("/proc/self/fd/{}/{SOCKET}", dir.as_raw_fd())
}

/// 32 bytes in hex.
fn is_token(t: &str) -> bool {
    t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Registration {
    /// A new connection to proxyd's socket, through the held directory (it works inside the
    /// sandbox's mount namespace, where the directory is hidden).
    pub fn connect(&self) -> io::Result<UnixStream> {
        UnixStream::connect(socket_through(&self.dir))
    }

    /// Hands an accepted client over to proxyd: `GW1 ADOPT <token> <service>` with the socket
    /// attached, on a new connection that closes at once (proxyd answers nothing; it serves
    /// the client on its socket). The caller then closes its own copy of `client`. Only when
    /// proxyd granted `adopt`.
    pub fn hand_over(&self, client: &TcpStream, service: &str) -> io::Result<()> {
        let s = self.connect()?;
        let line = format!("GW1 ADOPT {} {service}\n", self.token);
        crate::sys::scm::send(s.as_fd(), line.as_bytes(), &[client.as_fd()])
    }

    /// A data connection: `GW1 CONNECT <token> http|socks5`, not yet sent (the bridge writes
    /// it ahead of the client's bytes).
    pub fn connect_preamble(&self, proto: &str) -> Vec<u8> {
        format!("GW1 CONNECT {} {proto}\n", self.token).into_bytes()
    }

    /// A DNS connection: `GW1 DNS <token> udp|tcp`, not yet sent; DNS messages with a
    /// two-byte length follow both ways.
    pub fn dns_preamble(&self, transport: &str) -> Vec<u8> {
        format!("GW1 DNS {} {transport}\n", self.token).into_bytes()
    }

    /// `GW1 WATCH <token>`: proxyd streams this sandbox's decisions on the connection.
    pub fn watch(&self) -> io::Result<UnixStream> {
        let s = self.connect()?;
        (&s).write_all(format!("GW1 WATCH {}\n", self.token).as_bytes())?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_bounded_and_terminated() {
        let mut r = BufReader::new(&b"OK 1 ab\nrest"[..]);
        assert_eq!(read_line(&mut r).unwrap(), "OK 1 ab");
        assert!(read_line(&mut r).is_err(), "no newline: not a line");
        let long = vec![b'a'; MAX_LINE + 10];
        assert!(read_line(&mut BufReader::new(&long[..])).is_err());
    }

    #[test]
    fn tokens_are_64_hex_digits() {
        assert!(is_token(&"a1".repeat(32)));
        assert!(!is_token(&"a1".repeat(31)));
        assert!(!is_token(&"zz".repeat(32)));
    }
}
