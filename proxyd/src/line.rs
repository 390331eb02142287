//! The `GW1` line protocol on proxyd's Unix socket (see `docs/proxyd.md`).
//!
//! Every connection starts with one ASCII line of at most [`MAX_LINE`] bytes, ending in `\n`.
//! This module only parses; [`crate::server`] acts on the result.

use std::fmt;

/// Longest first line, newline included.
pub const MAX_LINE: usize = 4096;

/// The protocol a data connection speaks after its `GW1 CONNECT` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Http,
    Socks5,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Http => "http",
            Proto::Socks5 => "socks5",
        }
    }
}

/// How the sandbox's client sent the DNS queries a `GW1 DNS` connection carries (it decides
/// how large an answer may be).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsTransport {
    Udp,
    Tcp,
}

/// A 32-byte token, as sent in hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token(pub [u8; 32]);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a live token in full.
        write!(f, "Token({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

impl Token {
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    fn from_hex(s: &str) -> Option<Token> {
        let bytes = from_hex(s)?;
        Some(Token(bytes.try_into().ok()?))
    }
}

/// One parsed first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Register {
        path: String,
        sha256: [u8; 32],
        label: String,
    },
    Connect {
        token: Token,
        proto: Proto,
    },
    Watch {
        token: Token,
    },
    /// DNS queries follow, each behind a two-byte length (see [`crate::dns_answer`]).
    Dns {
        token: Token,
        transport: DnsTransport,
    },
    Ping,
}

/// Why a line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError(pub &'static str);

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Parses one line, without its `\n`.
pub fn parse(line: &[u8]) -> Result<Command, LineError> {
    let line = std::str::from_utf8(line).map_err(|_| LineError("line is not ASCII"))?;
    if !line.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(LineError("line has control or non-ASCII characters"));
    }
    let words: Vec<&str> = line.split(' ').collect();
    match words.as_slice() {
        ["GW1", "REGISTER", path, sha, label] => {
            if !path.starts_with('/') {
                return Err(LineError("ruleset path must be absolute"));
            }
            let sha256 = from_hex(sha)
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or(LineError("sha256 must be 64 hex digits"))?;
            if label.is_empty() || label.len() > 64 {
                return Err(LineError("label must be 1 to 64 characters"));
            }
            Ok(Command::Register {
                path: (*path).to_string(),
                sha256,
                label: (*label).to_string(),
            })
        }
        ["GW1", "CONNECT", token, proto] => Ok(Command::Connect {
            token: Token::from_hex(token).ok_or(LineError("token must be 64 hex digits"))?,
            proto: match *proto {
                "http" => Proto::Http,
                "socks5" => Proto::Socks5,
                _ => return Err(LineError("protocol must be http or socks5")),
            },
        }),
        ["GW1", "DNS", token, transport] => Ok(Command::Dns {
            token: Token::from_hex(token).ok_or(LineError("token must be 64 hex digits"))?,
            transport: match *transport {
                "udp" => DnsTransport::Udp,
                "tcp" => DnsTransport::Tcp,
                _ => return Err(LineError("DNS transport must be udp or tcp")),
            },
        }),
        ["GW1", "WATCH", token] => Ok(Command::Watch {
            token: Token::from_hex(token).ok_or(LineError("token must be 64 hex digits"))?,
        }),
        ["GW1", "PING"] => Ok(Command::Ping),
        ["GW1", ..] => Err(LineError("unknown GW1 command or wrong number of fields")),
        _ => Err(LineError("line does not start with GW1")),
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Hex (either case) to bytes.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| char::from(c).to_digit(16);
    s.as_bytes()
        .chunks(2)
        .map(|p| u8::try_from(digit(p[0])? * 16 + digit(p[1])?).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn lines() {
        assert_eq!(parse(b"GW1 PING"), Ok(Command::Ping));
        let Ok(Command::Register {
            path,
            sha256,
            label,
        }) = parse(format!("GW1 REGISTER /tmp/x.json {H} curl").as_bytes())
        else {
            panic!("register")
        };
        assert_eq!((path.as_str(), label.as_str()), ("/tmp/x.json", "curl"));
        assert_eq!(hex(&sha256), H);
        assert_eq!(
            parse(format!("GW1 CONNECT {} socks5", H.to_uppercase()).as_bytes()),
            Ok(Command::Connect {
                token: Token::from_hex(H).unwrap(),
                proto: Proto::Socks5
            })
        );
        assert!(matches!(
            parse(format!("GW1 WATCH {H}").as_bytes()),
            Ok(Command::Watch { .. })
        ));
        assert_eq!(
            parse(format!("GW1 DNS {H} udp").as_bytes()),
            Ok(Command::Dns {
                token: Token::from_hex(H).unwrap(),
                transport: DnsTransport::Udp
            })
        );
        assert!(matches!(
            parse(format!("GW1 DNS {H} tcp").as_bytes()),
            Ok(Command::Dns {
                transport: DnsTransport::Tcp,
                ..
            })
        ));
        assert!(parse(format!("GW1 DNS {H} quic").as_bytes()).is_err());
        assert!(parse(format!("GW1 DNS {H}").as_bytes()).is_err());
        for bad in [
            "",
            "GW1",
            "GW2 PING",
            "GW1 PING extra",
            "GW1  PING",
            "GW1 CONNECT abc http",
            &format!("GW1 CONNECT {H} ftp"),
            &format!("GW1 CONNECT {H}0 http"),
            &format!("GW1 REGISTER rel.json {H} x"),
            &format!("GW1 REGISTER /a {H}"),
            "GW1 REGISTER /a zz x",
            "GW1 PING\r",
            "GW1 PING\t",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(parse(b"GW1 \xff").is_err());
        assert_eq!(from_hex("0g"), None);
        assert_eq!(from_hex("+1"), None);
        assert_eq!(format!("{:?}", Token([0xab; 32])), "Token(abab…)");
    }
}
