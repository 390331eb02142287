//! The audit log: one JSON object per line per connection, appended to the log file and
//! streamed to the sandbox's `GW1 WATCH` connections.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use greywall_compiler::egress::RuleRef;
use serde_json::{Value, json};

/// What happened to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    Error,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Error => "error",
        }
    }
}

/// One audit record.
#[derive(Debug, Clone)]
pub struct Record {
    pub sandbox: Option<String>,
    pub label: Option<String>,
    pub policy: Option<String>,
    pub proto: &'static str,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub address: Option<String>,
    pub decision: Decision,
    pub rule: Option<RuleRef>,
    pub reason: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub duration_ms: u64,
}

impl Record {
    /// The JSON line (no newline), with the time given.
    pub fn to_line(&self, now: SystemTime) -> String {
        let v: Value = json!({
            "time": rfc3339(now),
            "sandbox": self.sandbox,
            "label": self.label,
            "policy": self.policy,
            "proto": self.proto,
            "host": self.host,
            "port": self.port,
            "address": self.address,
            "decision": self.decision.as_str(),
            "rule": self.rule.as_ref().map(|r| json!({"text": r.text, "origin": r.origin})),
            "reason": self.reason,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "duration_ms": self.duration_ms,
        });
        v.to_string()
    }
}

/// The log file (append-only, 0600), or nowhere.
#[derive(Debug)]
pub struct Log {
    file: Option<Mutex<Bounded>>,
}

/// The open log, its size, and where it rotates.
#[derive(Debug)]
struct Bounded {
    file: File,
    path: PathBuf,
    len: u64,
    /// Past this many bytes the log is renamed to `<log>.1` and a new one started (0: never).
    max: u64,
}

impl Bounded {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        let add = buf.len() as u64;
        if self.max > 0 && self.len > 0 && self.len + add > self.max {
            std::fs::rename(&self.path, crate::daemon::rotated(&self.path))?;
            self.file = crate::daemon::open_append(&self.path)?;
            self.len = 0;
        }
        self.file.write_all(buf)?;
        self.len += add;
        Ok(())
    }
}

impl Log {
    /// Opens (creating it 0600 and its directory 0700) the log at `path`; once it would grow
    /// past `max` bytes it is renamed to `<path>.1` (replacing the previous one) and a new log
    /// is started (`max` 0: never).
    pub fn open(path: &Path, max: u64) -> io::Result<Log> {
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let file = crate::daemon::open_append(path)?;
        let len = file.metadata()?.len();
        Ok(Log {
            file: Some(Mutex::new(Bounded {
                file,
                path: path.to_path_buf(),
                len,
                max,
            })),
        })
    }

    /// A log that writes nothing (tests of other parts).
    pub fn none() -> Log {
        Log { file: None }
    }

    /// Appends one line; a failing write is reported on stderr, never fatal.
    pub fn write(&self, line: &str) {
        let Some(f) = &self.file else { return };
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        let r = match f.lock() {
            Ok(mut f) => f.append(&buf),
            Err(_) => Err(io::Error::other("log lock poisoned")),
        };
        if let Err(e) = r {
            eprintln!("greywall-proxyd: cannot write the audit log: {e}");
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn times() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_123); // leap day 2000
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_798_761_599); // 2026-12-31T23:59:59Z
        assert_eq!(rfc3339(t), "2026-12-31T23:59:59.000Z");
    }

    #[test]
    fn record_line() {
        let r = Record {
            sandbox: Some("sb1".into()),
            label: Some("curl".into()),
            policy: Some("ab".into()),
            proto: "http",
            host: Some("x.test".into()),
            port: Some(80),
            address: None,
            decision: Decision::Deny,
            rule: Some(RuleRef {
                text: "x.test".into(),
                origin: "p.json:1:2".into(),
            }),
            reason: "denied by rule".into(),
            bytes_up: 0,
            bytes_down: 0,
            duration_ms: 1,
        };
        let v: Value = serde_json::from_str(&r.to_line(UNIX_EPOCH)).unwrap();
        assert_eq!(v["decision"], "deny");
        assert_eq!(v["rule"]["origin"], "p.json:1:2");
        assert_eq!(v["address"], Value::Null);
        assert_eq!(v["time"], "1970-01-01T00:00:00.000Z");
    }
}
