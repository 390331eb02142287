//! `greywall logs [-n N] [--denied] [--json]`: the last decisions in greywall-proxyd's audit
//! log (`$XDG_STATE_HOME/greywall/proxyd.log`, one JSON object per line), and the one-line
//! form `greywall exec -m` prints for a denial.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Value;

use crate::cli::EXIT_USAGE;

/// Bytes read from the end of the log per requested line (lines are a few hundred bytes).
const TAIL_PER_LINE: u64 = 2048;

/// `$XDG_STATE_HOME/greywall/proxyd.log`, or `~/.local/state/greywall/proxyd.log`.
pub fn log_path() -> Option<PathBuf> {
    let abs = |n: &str| {
        std::env::var_os(n)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    abs("XDG_STATE_HOME")
        .or_else(|| abs("HOME").map(|h| h.join(".local/state")))
        .map(|d| d.join("greywall/proxyd.log"))
}

pub fn run(count: usize, denied_only: bool, json: bool) -> ExitCode {
    let Some(path) = log_path() else {
        eprintln!("greywall: cannot find the log: set HOME or XDG_STATE_HOME");
        return ExitCode::from(EXIT_USAGE);
    };
    let lines = match tail(&path, count, denied_only) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "greywall: no audit log at {} yet (greywall-proxyd writes it once a sandbox uses the network)",
                path.display()
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("greywall: cannot read {}: {e}", path.display());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut out = String::new();
    for (raw, v) in &lines {
        if json {
            out.push_str(raw);
        } else {
            out.push_str(&human(v));
        }
        out.push('\n');
    }
    super::print(&out)
}

/// The last `count` entries (denials only, if asked), oldest first, as text and parsed.
fn tail(
    path: &std::path::Path,
    count: usize,
    denied_only: bool,
) -> std::io::Result<Vec<(String, Value)>> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    // Denials may be rare: read more of the end, then all of it if that was not enough.
    let mut window = TAIL_PER_LINE.saturating_mul(count.max(1) as u64);
    if denied_only {
        window = window.saturating_mul(8);
    }
    loop {
        let start = len.saturating_sub(window);
        f.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        f.by_ref().take(len - start).read_to_end(&mut bytes)?;
        let text = String::from_utf8_lossy(&bytes);
        let mut lines: Vec<&str> = text.lines().collect();
        // The first line of a window that starts mid-file is partial.
        if start > 0 && !lines.is_empty() {
            lines.remove(0);
        }
        let picked: Vec<(String, Value)> = lines
            .iter()
            .filter_map(|l| {
                serde_json::from_str::<Value>(l)
                    .ok()
                    .map(|v| (l.to_string(), v))
            })
            .filter(|(_, v)| !denied_only || is_denial(v))
            .collect();
        if picked.len() >= count || start == 0 {
            let skip = picked.len().saturating_sub(count);
            return Ok(picked.into_iter().skip(skip).collect());
        }
        window = window.saturating_mul(4);
    }
}

fn is_denial(v: &Value) -> bool {
    v.get("decision").and_then(Value::as_str) == Some("deny")
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("-")
}

/// `rule "text" (origin)` or `reason`.
fn why(v: &Value) -> String {
    match v.get("rule") {
        Some(Value::Object(r)) => {
            let t = r.get("text").and_then(Value::as_str).unwrap_or("?");
            match r.get("origin").and_then(Value::as_str) {
                Some(o) => format!("rule \"{t}\" ({o})"),
                None => format!("rule \"{t}\""),
            }
        }
        Some(Value::String(t)) => format!("rule \"{t}\""),
        _ => v
            .get("reason")
            .and_then(Value::as_str)
            .map_or_else(String::new, str::to_string),
    }
}

fn destination(v: &Value) -> String {
    let host = text(v, "host");
    // A name lookup through the sandbox's DNS bridge has no port.
    let Some(port) = v.get("port").and_then(Value::as_u64) else {
        return match v.get("proto").and_then(Value::as_str) {
            Some(proto) => format!("{host} ({proto})"),
            None => host.to_string(),
        };
    };
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// One entry for people: `TIME  DECISION  LABEL  HOST:PORT  WHY`.
fn human(v: &Value) -> String {
    format!(
        "{}  {:<5}  {}  {}  {}",
        text(v, "time"),
        text(v, "decision"),
        text(v, "label"),
        destination(v),
        why(v)
    )
}

/// The line `greywall exec -m` prints for an audit entry, if it is a denial.
pub fn denial_line(json: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(json).ok()?;
    if !is_denial(&v) {
        return None;
    }
    let why = why(&v);
    Some(if why.is_empty() {
        format!("denied {}", destination(&v))
    } else {
        format!("denied {} ({why})", destination(&v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_are_one_line() {
        let deny = br#"{"time":"2026-01-01T00:00:00Z","decision":"deny","host":"evil.test","port":443,"reason":"no rule allows evil.test"}"#;
        assert_eq!(
            denial_line(deny).unwrap(),
            "denied evil.test:443 (no rule allows evil.test)"
        );
        let dns = br#"{"decision":"deny","host":"denied.test","port":null,"proto":"dns"}"#;
        assert_eq!(
            destination(&serde_json::from_slice(dns).unwrap()),
            "denied.test (dns)"
        );
        let allow = br#"{"decision":"allow","host":"a","port":1}"#;
        assert_eq!(denial_line(allow), None);
        assert_eq!(denial_line(b"not json"), None);
        let ruled = br#"{"decision":"deny","host":"::1","port":80,"rule":{"text":"::1","origin":"p.json:3:5"}}"#;
        assert_eq!(
            denial_line(ruled).unwrap(),
            "denied [::1]:80 (rule \"::1\" (p.json:3:5))"
        );
    }

    #[test]
    fn tail_keeps_the_last_entries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("proxyd.log");
        let mut text = String::new();
        for i in 0..500 {
            let d = if i % 10 == 0 { "deny" } else { "allow" };
            text.push_str(&format!(
                "{{\"decision\":\"{d}\",\"host\":\"h{i}\",\"port\":1}}\n"
            ));
        }
        std::fs::write(&p, text).unwrap();
        let last = tail(&p, 3, false).unwrap();
        let hosts: Vec<&str> = last.iter().map(|(_, v)| text_of(v)).collect();
        assert_eq!(hosts, ["h497", "h498", "h499"]);
        let denied = tail(&p, 2, true).unwrap();
        let hosts: Vec<&str> = denied.iter().map(|(_, v)| text_of(v)).collect();
        assert_eq!(hosts, ["h480", "h490"]);
        assert_eq!(tail(&p, 1000, true).unwrap().len(), 50);
    }

    fn text_of(v: &Value) -> &str {
        v.get("host").and_then(Value::as_str).unwrap()
    }
}
