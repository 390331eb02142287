//! SSH host patterns (`ssh.allowedHosts`, `ssh.deniedHosts`).
//!
//! Globs with `*` and `?` anywhere, matched case-insensitively against the host as typed on the
//! ssh command line. Following Greywall: no scheme, no path, no `user@`, and no `:port` — but
//! IPv6 addresses, which contain colons, are accepted.

use std::fmt;

use super::PatternError;
use crate::diagnostic::Code;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPattern(String);

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl HostPattern {
    pub fn parse(raw: &str) -> Result<HostPattern, PatternError> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(PatternError::new(
                Code::EmptyString,
                "empty SSH host pattern",
            ));
        }
        if s != raw {
            return Err(PatternError::new(
                Code::InvalidHost,
                "SSH host pattern has leading or trailing whitespace",
            ));
        }
        if s.contains("://") {
            return Err(
                PatternError::new(Code::InvalidHost, "SSH host pattern includes a scheme")
                    .help("write only the host, as in \"github.com\""),
            );
        }
        if s.contains('/') {
            return Err(PatternError::new(
                Code::InvalidHost,
                "SSH host pattern includes a path",
            ));
        }
        if let Some((user, host)) = s.split_once('@') {
            return Err(PatternError::new(
                Code::InvalidHost,
                format!("SSH host pattern includes a user name (`{user}@`)"),
            )
            .help(format!("host rules apply to every user; write \"{host}\"")));
        }
        let colons = s.matches(':').count();
        let looks_v6 = s.contains("::") || colons >= 2;
        if colons > 0 && !looks_v6 {
            let host = s.split(':').next().unwrap_or(s);
            return Err(
                PatternError::new(Code::InvalidHost, "SSH host pattern includes a port")
                    .help(format!("host rules apply to every port; write \"{host}\"")),
            );
        }
        if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(PatternError::new(
                Code::InvalidHost,
                format!("{c:?} is not allowed in an SSH host pattern"),
            ));
        }
        Ok(HostPattern(s.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Glob match (`*` any run, `?` one character), case-insensitive.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.to_lowercase();
        glob_chars(self.0.as_bytes(), host.as_bytes())
    }
}

/// Iterative wildcard matching with single-star backtracking: linear in practice, no recursion.
fn glob_chars(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(HostPattern::parse("github.com").is_ok());
        assert!(HostPattern::parse("*.internal").is_ok());
        assert!(HostPattern::parse("*").is_ok());
        assert!(HostPattern::parse("fe80::1").is_ok());
        assert!(HostPattern::parse("2001:db8::*").is_ok());
        for bad in [
            "",
            "git@github.com",
            "github.com:22",
            "ssh://github.com",
            "a/b",
            "a b",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching() {
        let p = HostPattern::parse("*.Example.com").unwrap();
        assert!(p.matches("git.example.COM"));
        assert!(!p.matches("example.com"));
        assert!(HostPattern::parse("*").unwrap().matches("anything"));
        assert!(
            HostPattern::parse("db-?.corp")
                .unwrap()
                .matches("db-1.corp")
        );
        assert!(HostPattern::parse("a*b*c").unwrap().matches("axxbyyc"));
        assert!(!HostPattern::parse("a*b*c").unwrap().matches("axxbyy"));
    }
}
