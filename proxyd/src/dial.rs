//! From a requested `host:port` to an open upstream stream, or a refusal.
//!
//! [`dial`] runs the two pure decision steps of [`EgressRules`] around the only two effects,
//! name resolution and connecting, which sit behind the [`Net`] trait. Tests replace [`Net`]
//! so that a refusal (metadata, private ranges, rebinding) is checked without any packet being
//! sent: a refused address never reaches [`Net::connect`].

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};

use greywall_compiler::egress::{EgressRules, Host, Reason, Verdict};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::socks5::{self, Target, UpstreamAuth};

/// Resolution and connection: the effects of dialing.
pub trait Net: Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The addresses of a name (no `--resolve` mapping applied: [`dial`] does that).
    fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> impl Future<Output = io::Result<Vec<IpAddr>>> + Send;

    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// The real network: the system resolver and TCP.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemNet;

impl Net for SystemNet {
    type Stream = TcpStream;

    async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, port))
            .await?
            .map(|a| a.ip())
            .collect())
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(s)
    }
}

/// `--resolve HOST=IP` mappings (names lower-case, no trailing dot).
pub type Mappings = HashMap<String, Vec<IpAddr>>;

/// A successful dial.
#[derive(Debug)]
pub struct Dialed<S> {
    pub stream: S,
    /// The address connected to (the upstream proxy's when chaining).
    pub addr: SocketAddr,
    pub verdict: Verdict,
}

/// Why a dial failed.
#[derive(Debug)]
pub enum DialError {
    /// The rules refuse it.
    Denied(Verdict),
    /// The name does not resolve.
    Resolve(String),
    /// Every allowed address failed to connect; the last error.
    Connect(Option<SocketAddr>, io::Error),
    /// The upstream proxy failed or refused.
    Upstream(String),
}

impl DialError {
    /// The SOCKS5 reply code for this failure.
    pub fn socks_reply(&self) -> u8 {
        match self {
            DialError::Denied(_) => socks5::reply::NOT_ALLOWED,
            DialError::Resolve(_) => socks5::reply::HOST_UNREACHABLE,
            DialError::Connect(_, e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                socks5::reply::CONNECTION_REFUSED
            }
            DialError::Connect(..) => socks5::reply::HOST_UNREACHABLE,
            DialError::Upstream(_) => socks5::reply::GENERAL_FAILURE,
        }
    }

    /// One line for logs and error bodies.
    pub fn describe(&self) -> String {
        match self {
            DialError::Denied(v) => v.reason.to_string(),
            DialError::Resolve(e) => format!("cannot resolve: {e}"),
            DialError::Connect(Some(a), e) => format!("cannot connect to {a}: {e}"),
            DialError::Connect(None, e) => format!("cannot connect: {e}"),
            DialError::Upstream(e) => format!("upstream proxy: {e}"),
        }
    }
}

/// Decides and connects. `mappings` are the `--resolve` entries.
pub async fn dial<N: Net>(
    net: &N,
    rules: &EgressRules,
    mappings: &Mappings,
    host: &str,
    port: u16,
) -> Result<Dialed<N::Stream>, DialError> {
    let Some(parsed) = Host::parse(host) else {
        return Err(DialError::Denied(rules.decide(host, port)));
    };
    let name_verdict = rules.decide_host(&parsed, port);
    if !name_verdict.allowed {
        return Err(DialError::Denied(name_verdict));
    }
    let upstream = rules.upstream();
    // socks5h: the upstream resolves the name; proxyd cannot see (or check) its addresses.
    if let (Some(u), Host::Name(n)) = (upstream, &parsed)
        && u.scheme == "socks5h"
        && !mappings.contains_key(n)
    {
        return via_upstream(net, rules, &Target::Name(n.clone()), port, name_verdict).await;
    }
    let (addrs, mapped) = match &parsed {
        Host::Addr(a) => (vec![*a], false),
        Host::Name(n) => match mappings.get(n) {
            Some(a) => (a.clone(), true),
            None => (
                net.resolve(n, port)
                    .await
                    .map_err(|e| DialError::Resolve(e.to_string()))?,
                false,
            ),
        },
    };
    if addrs.is_empty() {
        return Err(DialError::Resolve("no addresses".into()));
    }
    let mut allowed = Vec::new();
    let mut first_refusal = None;
    for a in addrs {
        let v = rules.check_address(&name_verdict, a, port, mapped);
        if v.allowed {
            allowed.push((a, v));
        } else if v.reason == Reason::DeniedByRule {
            // An explicit deny of any address of the name refuses the name.
            return Err(DialError::Denied(v));
        } else {
            first_refusal.get_or_insert(v);
        }
    }
    if allowed.is_empty() {
        return Err(DialError::Denied(first_refusal.unwrap_or(name_verdict)));
    }
    if upstream.is_some() {
        let (a, v) = allowed.swap_remove(0);
        return via_upstream(net, rules, &Target::Addr(a), port, v).await;
    }
    let mut last = None;
    for (a, v) in allowed {
        let addr = SocketAddr::new(a, port);
        match net.connect(addr).await {
            Ok(stream) => {
                return Ok(Dialed {
                    stream,
                    addr,
                    verdict: v,
                });
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    match last {
        Some((a, e)) => Err(DialError::Connect(Some(a), e)),
        None => Err(DialError::Connect(None, io::Error::other("no address"))),
    }
}

async fn via_upstream<N: Net>(
    net: &N,
    rules: &EgressRules,
    target: &Target,
    port: u16,
    verdict: Verdict,
) -> Result<Dialed<N::Stream>, DialError> {
    let Some(u) = rules.upstream() else {
        return Err(DialError::Upstream("no upstream".into()));
    };
    let addrs = match u.host.parse::<IpAddr>() {
        Ok(a) => vec![a],
        Err(_) => net
            .resolve(&u.host, u.port)
            .await
            .map_err(|e| DialError::Upstream(format!("cannot resolve {}: {e}", u.host)))?,
    };
    let Some(a) = addrs.first() else {
        return Err(DialError::Upstream(format!("{} has no address", u.host)));
    };
    let addr = SocketAddr::new(*a, u.port);
    let mut stream = net
        .connect(addr)
        .await
        .map_err(|e| DialError::Upstream(format!("cannot connect to {addr}: {e}")))?;
    let auth = UpstreamAuth {
        username: u.username.as_deref(),
        password: u.password.as_deref(),
    };
    match socks5::client_connect(&mut stream, target, port, &auth).await {
        Ok(()) => Ok(Dialed {
            stream,
            addr,
            verdict,
        }),
        Err(socks5::ClientError::Refused(code)) => Err(DialError::Upstream(format!(
            "refused the connection (SOCKS reply {code:#04x})"
        ))),
        Err(e) => Err(DialError::Upstream(format!("{e:?}"))),
    }
}

/// Parses `HOST=IP` (`--resolve`).
pub fn parse_mapping(s: &str) -> Result<(String, IpAddr), String> {
    let (host, ip) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not HOST=IP"))?;
    let Some(Host::Name(name)) = Host::parse(host) else {
        return Err(format!("`{host}` is not a host name"));
    };
    let ip = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map_err(|_| format!("`{ip}` is not an IP address"))?;
    Ok((name, ip))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use greywall_compiler::egress::AddressClass;
    use greywall_compiler::load::{Input, load};

    use super::*;

    /// A network that answers from a table and records every connect; it never opens a socket.
    #[derive(Default)]
    struct FakeNet {
        dns: HashMap<String, Vec<IpAddr>>,
        connects: Mutex<Vec<SocketAddr>>,
    }

    impl Net for FakeNet {
        type Stream = tokio::io::DuplexStream;

        async fn resolve(&self, host: &str, _port: u16) -> io::Result<Vec<IpAddr>> {
            self.dns
                .get(host)
                .cloned()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such host"))
        }

        async fn connect(&self, addr: SocketAddr) -> io::Result<Self::Stream> {
            self.connects.lock().unwrap().push(addr);
            Ok(tokio::io::duplex(64).0)
        }
    }

    fn rules(network: &str) -> EgressRules {
        let l = load(&Input::Text {
            name: "p.json".into(),
            text: format!("{{\"network\": {network}}}"),
            dir: ".".into(),
        });
        let p = l
            .policy
            .clone()
            .unwrap_or_else(|| panic!("{:?}", l.diagnostics));
        greywall_compiler::egress::rules(&p, &l.sources)
    }

    fn net(entries: &[(&str, &str)]) -> FakeNet {
        let mut n = FakeNet::default();
        for (h, a) in entries {
            n.dns
                .entry((*h).to_string())
                .or_default()
                .push(a.parse().unwrap());
        }
        n
    }

    #[tokio::test]
    async fn refusals_never_connect() {
        let r = rules(
            r#"{"allowedDomains": ["*.example.com", "*"], "deniedDomains": ["bad.example.com"]}"#,
        );
        let n = net(&[
            ("meta.example.com", "169.254.169.254"),
            ("meta6.example.com", "fd00:ec2::254"),
            ("lan.example.com", "192.168.0.10"),
            ("mixed.example.com", "10.0.0.1"),
            ("mixed.example.com", "93.184.216.34"),
            ("bad.example.com", "93.184.216.34"),
            ("good.example.com", "93.184.216.34"),
        ]);
        let m = Mappings::new();
        for (host, class) in [
            ("meta.example.com", Some(AddressClass::Metadata)),
            ("meta6.example.com", Some(AddressClass::Metadata)),
            ("lan.example.com", Some(AddressClass::Private)),
            ("169.254.169.254", Some(AddressClass::Metadata)),
            ("[::ffff:127.0.0.1]", Some(AddressClass::Loopback)),
            ("bad.example.com", None),
            ("a b", None),
        ] {
            match dial(&n, &r, &m, host, 80).await {
                Err(DialError::Denied(v)) => {
                    if let Some(c) = class {
                        assert_eq!(v.reason, Reason::Address(c), "{host}");
                    }
                }
                other => panic!("{host}: {other:?}"),
            }
        }
        assert!(n.connects.lock().unwrap().is_empty());
        // A name with a private and a public address: only the public one is dialed.
        let d = dial(&n, &r, &m, "mixed.example.com", 443).await.unwrap();
        assert_eq!(d.addr, "93.184.216.34:443".parse().unwrap());
        dial(&n, &r, &m, "good.example.com", 443).await.unwrap();
        assert_eq!(
            *n.connects.lock().unwrap(),
            vec![
                "93.184.216.34:443".parse::<SocketAddr>().unwrap(),
                "93.184.216.34:443".parse().unwrap()
            ]
        );
    }

    #[tokio::test]
    async fn mapped_names_reach_loopback() {
        let r = rules(r#"{"allowedDomains": ["app.test"]}"#);
        let n = net(&[("app.test", "127.0.0.1")]);
        let mut m = Mappings::new();
        // Resolved by DNS to loopback: refused (rebinding).
        assert!(matches!(
            dial(&n, &r, &m, "app.test", 80).await,
            Err(DialError::Denied(_))
        ));
        let (h, a) = parse_mapping("App.Test.=127.0.0.7").unwrap();
        m.insert(h, vec![a]);
        let d = dial(&n, &r, &m, "app.test", 80).await.unwrap();
        assert_eq!(d.addr, "127.0.0.7:80".parse().unwrap());
        assert_eq!(d.verdict.reason, Reason::Mapped);
        assert!(parse_mapping("x").is_err());
        assert!(parse_mapping("a.test=nope").is_err());
        assert!(parse_mapping("1.2.3.4=1.2.3.4").is_err());
        assert_eq!(
            parse_mapping("v6.test=[::1]").unwrap().1,
            "::1".parse::<IpAddr>().unwrap()
        );
    }

    #[tokio::test]
    async fn unresolvable_and_upstream() {
        let r = rules(r#"{"allowedDomains": ["*.example.com"]}"#);
        let n = net(&[]);
        let e = dial(&n, &r, &Mappings::new(), "x.example.com", 80)
            .await
            .unwrap_err();
        assert_eq!(e.socks_reply(), socks5::reply::HOST_UNREACHABLE);
        // With socks5h the name goes to the upstream unresolved; the upstream is dialed, not
        // the name (the fake upstream closes, so the handshake fails).
        let r =
            rules(r#"{"allowedDomains": ["*.example.com"], "proxyUrl": "socks5h://127.0.0.1:9"}"#);
        let e = dial(&n, &r, &Mappings::new(), "x.example.com", 80)
            .await
            .unwrap_err();
        assert!(matches!(e, DialError::Upstream(_)), "{e:?}");
        assert_eq!(
            *n.connects.lock().unwrap(),
            vec!["127.0.0.1:9".parse::<SocketAddr>().unwrap()]
        );
        // Denied names never reach the upstream either.
        assert!(matches!(
            dial(&n, &r, &Mappings::new(), "other.org", 80).await,
            Err(DialError::Denied(_))
        ));
        assert_eq!(n.connects.lock().unwrap().len(), 1);
    }
}
