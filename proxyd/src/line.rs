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

/// What the sandbox's client speaks on a connection the bridge hands over with `GW1 ADOPT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The HTTP proxy port (as after `GW1 CONNECT <token> http`).
    Http,
    /// The SOCKS5 port (as after `GW1 CONNECT <token> socks5`).
    Socks5,
    /// DNS over TCP on port 53 (as after `GW1 DNS <token> tcp`).
    DnsTcp,
    /// An `allowLocalOutbound` port: the client's bytes go to the host's `127.0.0.1:PORT`,
    /// decided as a SOCKS5 `CONNECT` to that address would be.
    HostPort(u16),
}

impl Service {
    /// The word on the line.
    pub fn word(self) -> String {
        match self {
            Service::Http => "http".into(),
            Service::Socks5 => "socks5".into(),
            Service::DnsTcp => "dns-tcp".into(),
            Service::HostPort(p) => format!("host:{p}"),
        }
    }

    fn parse(word: &str) -> Option<Service> {
        Some(match word {
            "http" => Service::Http,
            "socks5" => Service::Socks5,
            "dns-tcp" => Service::DnsTcp,
            _ => {
                let port: u16 = word.strip_prefix("host:")?.parse().ok()?;
                // Digits only, no sign or leading zero: one spelling per port.
                if port == 0 || word.len() != "host:".len() + port.to_string().len() {
                    return None;
                }
                Service::HostPort(port)
            }
        })
    }
}

/// Features a launcher offers at the end of its `GW1 REGISTER` line; proxyd answers with those
/// it supports. Words it does not know are offers it declines, not errors (a newer launcher
/// meets an older proxyd).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// `adopt`: the bridge may hand over accepted connections with `GW1 ADOPT`.
    pub adopt: bool,
}

/// At most this many feature words on a `REGISTER` line.
const MAX_FEATURES: usize = 8;

impl Features {
    fn parse(words: &[&str]) -> Result<Features, LineError> {
        if words.len() > MAX_FEATURES {
            return Err(LineError("too many feature words"));
        }
        let mut f = Features::default();
        for w in words {
            if w.is_empty()
                || w.len() > 32
                || !w
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(LineError(
                    "a feature word is 1 to 32 lower-case letters, digits or dashes",
                ));
            }
            if *w == "adopt" {
                f.adopt = true;
            }
        }
        Ok(f)
    }

    /// The words proxyd answers with (after `OK <id> <token>`), each with a leading space.
    pub fn answer(self) -> &'static str {
        if self.adopt { " adopt" } else { "" }
    }
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
        /// What the launcher offered (see [`Features`]).
        features: Features,
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
    /// The connection carries one descriptor with its first line: the client's accepted TCP
    /// socket, which proxyd serves directly (see [`crate::adopt`]).
    Adopt {
        token: Token,
        service: Service,
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
        ["GW1", "REGISTER", path, sha, label, features @ ..] => {
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
                features: Features::parse(features)?,
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
        ["GW1", "ADOPT", token, service] => Ok(Command::Adopt {
            token: Token::from_hex(token).ok_or(LineError("token must be 64 hex digits"))?,
            service: Service::parse(service).ok_or(LineError(
                "service must be http, socks5, dns-tcp or host:PORT",
            ))?,
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
            features,
        }) = parse(format!("GW1 REGISTER /tmp/x.json {H} curl").as_bytes())
        else {
            panic!("register")
        };
        assert_eq!((path.as_str(), label.as_str()), ("/tmp/x.json", "curl"));
        assert_eq!(hex(&sha256), H);
        assert_eq!(features, Features::default());
        assert_eq!(features.answer(), "");
        // Features offered: known ones taken, unknown ones declined without an error.
        for (extra, adopt) in [
            (" adopt", true),
            (" later-thing adopt", true),
            (" later", false),
        ] {
            let Ok(Command::Register { features, .. }) =
                parse(format!("GW1 REGISTER /a {H} x{extra}").as_bytes())
            else {
                panic!("{extra}")
            };
            assert_eq!(features.adopt, adopt, "{extra}");
            assert_eq!(features.answer(), if adopt { " adopt" } else { "" });
        }
        for (word, service) in [
            ("http", Service::Http),
            ("socks5", Service::Socks5),
            ("dns-tcp", Service::DnsTcp),
            ("host:5432", Service::HostPort(5432)),
        ] {
            assert_eq!(
                parse(format!("GW1 ADOPT {H} {word}").as_bytes()),
                Ok(Command::Adopt {
                    token: Token::from_hex(H).unwrap(),
                    service
                })
            );
            assert_eq!(service.word(), word);
        }
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
            &format!("GW1 REGISTER /a {H} x Adopt"),
            &format!("GW1 REGISTER /a {H} x adopt "),
            &format!("GW1 REGISTER /a {H} x a b c d e f g h i"),
            &format!("GW1 ADOPT {H}"),
            &format!("GW1 ADOPT {H} dns"),
            &format!("GW1 ADOPT {H} tcp"),
            &format!("GW1 ADOPT {H} http extra"),
            &format!("GW1 ADOPT {H} host:0"),
            &format!("GW1 ADOPT {H} host:05432"),
            &format!("GW1 ADOPT {H} host:+5432"),
            &format!("GW1 ADOPT {H} host:65536"),
            "GW1 ADOPT abc http",
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
