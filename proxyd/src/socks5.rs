//! SOCKS5 (RFC 1928): the server side's pure parsers, the replies, and the client side used to
//! chain to an upstream proxy (with RFC 1929 username/password when the URL carries one).
//!
//! Only `CONNECT` (command 1) is served; `BIND` and `UDP ASSOCIATE` get reply 0x07.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Reply codes.
pub mod reply {
    pub const SUCCEEDED: u8 = 0x00;
    pub const GENERAL_FAILURE: u8 = 0x01;
    pub const NOT_ALLOWED: u8 = 0x02;
    pub const NETWORK_UNREACHABLE: u8 = 0x03;
    pub const HOST_UNREACHABLE: u8 = 0x04;
    pub const CONNECTION_REFUSED: u8 = 0x05;
    pub const COMMAND_NOT_SUPPORTED: u8 = 0x07;
    pub const ADDRESS_NOT_SUPPORTED: u8 = 0x08;
}

/// A parse that may need more bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// The value and how many bytes it used.
    Done(T, usize),
    Incomplete,
}

/// A protocol violation, with the reply code to send (if a reply is still possible).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocksError {
    pub message: &'static str,
    pub reply: Option<u8>,
}

fn err<T>(message: &'static str, reply: Option<u8>) -> Result<T, SocksError> {
    Err(SocksError { message, reply })
}

/// The requested destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A name as sent (ASCII; validated later by the rules).
    Name(String),
    Addr(IpAddr),
}

/// A `CONNECT` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub target: Target,
    pub port: u16,
}

/// The client greeting: whether it offers "no authentication".
pub fn parse_greeting(buf: &[u8]) -> Result<Parsed<bool>, SocksError> {
    match buf {
        [] => Ok(Parsed::Incomplete),
        [v, ..] if *v != 5 => err("not SOCKS version 5", None),
        [_] => Ok(Parsed::Incomplete),
        [_, 0, ..] => err("greeting offers no methods", None),
        [_, n, methods @ ..] => {
            let n = usize::from(*n);
            if methods.len() < n {
                return Ok(Parsed::Incomplete);
            }
            Ok(Parsed::Done(methods[..n].contains(&0), 2 + n))
        }
    }
}

/// The request that follows the greeting.
pub fn parse_request(buf: &[u8]) -> Result<Parsed<Request>, SocksError> {
    if buf.len() < 4 {
        if buf.first().is_some_and(|v| *v != 5) {
            return err(
                "request is not SOCKS version 5",
                Some(reply::GENERAL_FAILURE),
            );
        }
        return Ok(Parsed::Incomplete);
    }
    if buf[0] != 5 {
        return err(
            "request is not SOCKS version 5",
            Some(reply::GENERAL_FAILURE),
        );
    }
    if buf[2] != 0 {
        return err("reserved byte is not zero", Some(reply::GENERAL_FAILURE));
    }
    let (target, rest) = match buf[3] {
        1 => {
            let Some(a) = buf.get(4..8) else {
                return Ok(Parsed::Incomplete);
            };
            (
                Target::Addr(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))),
                8,
            )
        }
        4 => {
            let Some(a) = buf.get(4..20) else {
                return Ok(Parsed::Incomplete);
            };
            let mut o = [0u8; 16];
            o.copy_from_slice(a);
            (Target::Addr(IpAddr::V6(Ipv6Addr::from(o))), 20)
        }
        3 => {
            let Some(&len) = buf.get(4) else {
                return Ok(Parsed::Incomplete);
            };
            let end = 5 + usize::from(len);
            let Some(name) = buf.get(5..end) else {
                return Ok(Parsed::Incomplete);
            };
            if name.is_empty() {
                return err("empty domain name", Some(reply::GENERAL_FAILURE));
            }
            let Ok(name) = std::str::from_utf8(name) else {
                return err("domain name is not UTF-8", Some(reply::GENERAL_FAILURE));
            };
            (Target::Name(name.to_string()), end)
        }
        _ => return err("unknown address type", Some(reply::ADDRESS_NOT_SUPPORTED)),
    };
    let Some(p) = buf.get(rest..rest + 2) else {
        return Ok(Parsed::Incomplete);
    };
    if buf[1] != 1 {
        return err(
            "only CONNECT is supported",
            Some(reply::COMMAND_NOT_SUPPORTED),
        );
    }
    Ok(Parsed::Done(
        Request {
            target,
            port: u16::from_be_bytes([p[0], p[1]]),
        },
        rest + 2,
    ))
}

/// A reply with a bound address (zeros when unknown).
pub fn reply_bytes(code: u8, bound: Option<SocketAddr>) -> Vec<u8> {
    let mut out = vec![5, code, 0];
    match bound {
        Some(SocketAddr::V6(a)) => {
            out.push(4);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
        }
        Some(SocketAddr::V4(a)) => {
            out.push(1);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
        }
        None => out.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0]),
    }
    out
}

/// Reads from `r` into `buf` until `parse` completes; bytes past the parsed value stay in
/// `buf`. Fails on EOF or after `limit` bytes.
pub async fn read_parsed<R, T>(
    r: &mut R,
    buf: &mut Vec<u8>,
    parse: impl Fn(&[u8]) -> Result<Parsed<T>, SocksError>,
) -> Result<T, SocksError>
where
    R: AsyncRead + Unpin,
{
    loop {
        if let Parsed::Done(v, used) = parse(buf)? {
            buf.drain(..used);
            return Ok(v);
        }
        if buf.len() > 600 {
            return err("message too long", Some(reply::GENERAL_FAILURE));
        }
        let mut chunk = [0u8; 512];
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return err("connection closed mid-handshake", None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// How the upstream should be asked to connect.
#[derive(Debug, Clone)]
pub struct UpstreamAuth<'a> {
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
}

/// Why the upstream handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    Io(String),
    Protocol(&'static str),
    /// The upstream's reply code.
    Refused(u8),
}

/// Runs the client side of a SOCKS5 CONNECT on `s` (already connected to the upstream).
pub async fn client_connect<S>(
    s: &mut S,
    target: &Target,
    port: u16,
    auth: &UpstreamAuth<'_>,
) -> Result<(), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let io = |e: std::io::Error| ClientError::Io(e.to_string());
    let creds = auth.username.map(|u| (u, auth.password.unwrap_or("")));
    let greeting: &[u8] = if creds.is_some() {
        &[5, 1, 2]
    } else {
        &[5, 1, 0]
    };
    s.write_all(greeting).await.map_err(io)?;
    let mut m = [0u8; 2];
    s.read_exact(&mut m).await.map_err(io)?;
    match (m, creds) {
        ([5, 0], None) => {}
        ([5, 2], Some((u, p))) => {
            let (ub, pb) = (u.as_bytes(), p.as_bytes());
            let (Ok(ul), Ok(pl)) = (u8::try_from(ub.len()), u8::try_from(pb.len())) else {
                return Err(ClientError::Protocol("upstream credentials are too long"));
            };
            let mut msg = vec![1, ul];
            msg.extend_from_slice(ub);
            msg.push(pl);
            msg.extend_from_slice(pb);
            s.write_all(&msg).await.map_err(io)?;
            let mut r = [0u8; 2];
            s.read_exact(&mut r).await.map_err(io)?;
            if r[1] != 0 {
                return Err(ClientError::Protocol("upstream refused the credentials"));
            }
        }
        _ => {
            return Err(ClientError::Protocol(
                "upstream refused every offered method",
            ));
        }
    }
    let mut req = vec![5, 1, 0];
    match target {
        Target::Addr(IpAddr::V4(a)) => {
            req.push(1);
            req.extend_from_slice(&a.octets());
        }
        Target::Addr(IpAddr::V6(a)) => {
            req.push(4);
            req.extend_from_slice(&a.octets());
        }
        Target::Name(n) => {
            let Ok(len) = u8::try_from(n.len()) else {
                return Err(ClientError::Protocol("name too long for SOCKS5"));
            };
            req.push(3);
            req.push(len);
            req.extend_from_slice(n.as_bytes());
        }
    }
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).await.map_err(io)?;
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await.map_err(io)?;
    if head[0] != 5 {
        return Err(ClientError::Protocol("upstream is not a SOCKS5 proxy"));
    }
    if head[1] != 0 {
        return Err(ClientError::Refused(head[1]));
    }
    let rest = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let mut l = [0u8; 1];
            s.read_exact(&mut l).await.map_err(io)?;
            usize::from(l[0]) + 2
        }
        _ => {
            return Err(ClientError::Protocol(
                "upstream reply has an unknown address type",
            ));
        }
    };
    let mut skip = vec![0u8; rest];
    s.read_exact(&mut skip).await.map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting() {
        assert_eq!(parse_greeting(&[]), Ok(Parsed::Incomplete));
        assert_eq!(parse_greeting(&[5, 2, 0]), Ok(Parsed::Incomplete));
        assert_eq!(parse_greeting(&[5, 2, 2, 0, 9]), Ok(Parsed::Done(true, 4)));
        assert_eq!(parse_greeting(&[5, 1, 2]), Ok(Parsed::Done(false, 3)));
        assert!(parse_greeting(&[4, 1, 0]).is_err());
        assert!(parse_greeting(&[5, 0]).is_err());
    }

    #[test]
    fn requests() {
        let name = [5, 1, 0, 3, 4, b'a', b'.', b'c', b'o', 0x01, 0xbb];
        assert_eq!(
            parse_request(&name),
            Ok(Parsed::Done(
                Request {
                    target: Target::Name("a.co".into()),
                    port: 443
                },
                11
            ))
        );
        for n in 0..name.len() {
            assert_eq!(parse_request(&name[..n]), Ok(Parsed::Incomplete), "{n}");
        }
        let v4 = [5, 1, 0, 1, 127, 0, 0, 1, 0, 80];
        assert_eq!(
            parse_request(&v4),
            Ok(Parsed::Done(
                Request {
                    target: Target::Addr("127.0.0.1".parse().unwrap()),
                    port: 80
                },
                10
            ))
        );
        let mut v6 = vec![5, 1, 0, 4];
        v6.extend_from_slice(&"::1".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&[0x1f, 0x90]);
        assert!(matches!(
            parse_request(&v6),
            Ok(Parsed::Done(Request { port: 8080, .. }, 22))
        ));
        let bind = [5, 2, 0, 1, 1, 2, 3, 4, 0, 1];
        assert_eq!(
            parse_request(&bind).unwrap_err().reply,
            Some(reply::COMMAND_NOT_SUPPORTED)
        );
        assert_eq!(
            parse_request(&[5, 1, 0, 9, 0, 0]).unwrap_err().reply,
            Some(reply::ADDRESS_NOT_SUPPORTED)
        );
        assert!(parse_request(&[5, 1, 1, 1]).is_err());
        assert!(parse_request(&[4]).is_err());
        assert!(parse_request(&[5, 1, 0, 3, 0, 0, 80]).is_err());
        assert!(parse_request(&[5, 1, 0, 3, 1, 0xff, 0, 80]).is_err());
    }

    #[test]
    fn replies() {
        assert_eq!(
            reply_bytes(reply::NOT_ALLOWED, None),
            [5, 2, 0, 1, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            reply_bytes(0, Some("[::1]:2".parse().unwrap())).len(),
            4 + 16 + 2
        );
    }

    #[tokio::test]
    async fn client_against_parser() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let server = tokio::spawn(async move {
            let mut buf = Vec::new();
            let ok = read_parsed(&mut b, &mut buf, parse_greeting).await.unwrap();
            assert!(!ok, "credentials were offered, not no-auth");
            b.write_all(&[5, 2]).await.unwrap();
            let mut auth = [0u8; 1 + 1 + 1 + 1 + 2];
            b.read_exact(&mut auth).await.unwrap();
            assert_eq!(auth, [1, 1, b'u', 2, b'p', b'w']);
            b.write_all(&[1, 0]).await.unwrap();
            let req = read_parsed(&mut b, &mut buf, parse_request).await.unwrap();
            b.write_all(&reply_bytes(0, None)).await.unwrap();
            req
        });
        let auth = UpstreamAuth {
            username: Some("u"),
            password: Some("pw"),
        };
        client_connect(&mut a, &Target::Name("x.test".into()), 7, &auth)
            .await
            .unwrap();
        let req = server.await.unwrap();
        assert_eq!(req.target, Target::Name("x.test".into()));
        assert_eq!(req.port, 7);
    }
}
