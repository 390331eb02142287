//! DNS for sandboxes: `GW1 DNS <token> udp|tcp` connections carry the sandbox's queries
//! (each message behind a two-byte length, as DNS over TCP frames them) and get one answer
//! per query, in any order, matched by id.
//!
//! A query is answered only for a name the sandbox's egress rules could allow on some port
//! ([`EgressRules::decide_name`]); any other gets `REFUSED` (with an Extended DNS Error saying
//! why when the client speaks EDNS) and an audit line. An allowed name is answered from the
//! `--resolve` mappings, else by the policy's `dnsAddr` server (the query is forwarded, its
//! reply checked and relayed), else by the system resolver (`A` and `AAAA` only).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use greywall_compiler::egress::{DnsServer, Host, Reason, Verdict};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{Semaphore, mpsc};

use crate::audit::{Decision, Record};
use crate::dial::Net;
use crate::dns::{self, Query, rcode, rtype};
use crate::line::DnsTransport;
use crate::registry::{Sandbox, random_bytes};
use crate::server::State;

/// Queries of one connection answered at the same time; more wait.
const IN_FLIGHT: usize = 32;
/// How long the policy's DNS server has for an answer.
const UPSTREAM_WAIT: Duration = Duration::from_secs(4);
/// TTL of answers proxyd makes itself (mappings, the system resolver): short, so a changed
/// mapping or host entry shows soon.
const TTL: u32 = 5;

/// Serves one `GW1 DNS` connection until the client closes it. Over `tcp` (a client's own
/// DNS-over-TCP connection) a client that sends nothing for `head_timeout` is dropped; the
/// bridge's `udp` connection lives as long as the sandbox.
pub async fn serve<N, S>(
    state: Arc<State<N>>,
    sandbox: Arc<Sandbox>,
    io: S,
    transport: DnsTransport,
) where
    N: Net,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(IN_FLIGHT);
    let limit = Arc::new(Semaphore::new(IN_FLIGHT));
    let idle = state.head_timeout;
    let reader = async move {
        loop {
            let next = read_frame(&mut rd);
            let msg = match transport {
                DnsTransport::Tcp => match tokio::time::timeout(idle, next).await {
                    Ok(m) => m,
                    Err(_) => break,
                },
                DnsTransport::Udp => next.await,
            };
            let Ok(msg) = msg else { break };
            let Ok(permit) = limit.clone().acquire_owned().await else {
                break;
            };
            let (st, sb, tx) = (state.clone(), sandbox.clone(), tx.clone());
            tokio::spawn(async move {
                if let Some(reply) = answer(&st, &sb, &msg, transport).await {
                    let _ = tx.send(reply).await;
                }
                drop(permit);
            });
        }
    };
    let writer = async move {
        while let Some(reply) = rx.recv().await {
            let Ok(len) = u16::try_from(reply.len()) else {
                continue;
            };
            let mut framed = Vec::with_capacity(2 + reply.len());
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&reply);
            if wr.write_all(&framed).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    };
    tokio::join!(reader, writer);
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    r.read_exact(&mut len).await?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    r.read_exact(&mut msg).await?;
    Ok(msg)
}

/// The answer to one message, or `None` when nothing may be answered (not a query).
pub async fn answer<N: Net>(
    state: &State<N>,
    sandbox: &Sandbox,
    msg: &[u8],
    transport: DnsTransport,
) -> Option<Vec<u8>> {
    let started = Instant::now();
    let q = match dns::parse_query(msg) {
        Ok(q) => q,
        Err(e) => {
            state.log_error(sandbox, "dns", format!("malformed DNS query: {}", e.why));
            return e.reply();
        }
    };
    let tcp = transport == DnsTransport::Tcp;
    let limit = q.limit(tcp);
    let host = q.name.as_deref().and_then(Host::parse);
    let verdict = match &host {
        Some(h) => sandbox.rules.decide_name(h),
        None => Verdict {
            allowed: false,
            rule: None,
            reason: Reason::BadHost,
        },
    };
    let shown = q.name.clone().unwrap_or_else(|| "(not a host name)".into());
    if !verdict.allowed {
        let why = match &verdict.rule {
            Some(r) => format!("greywall: {} ({r})", verdict.reason),
            None => format!("greywall: {}", verdict.reason),
        };
        log(
            state,
            sandbox,
            &shown,
            Decision::Deny,
            &verdict,
            None,
            started,
        );
        return Some(q.refusal(&why, limit));
    }
    let Some(Host::Name(name)) = host else {
        return Some(q.refusal("greywall: malformed host", limit));
    };
    if q.qclass != dns::CLASS_IN {
        return Some(q.answer(rcode::NOTIMP, &[], 0, limit));
    }
    if let Some(addrs) = state.mappings.get(&name) {
        return Some(q.answer(rcode::NOERROR, addrs, TTL, limit));
    }
    // An upstream that fails: logged, and SERVFAIL for the client.
    let servfail = |why: String| {
        log(
            state,
            sandbox,
            &shown,
            Decision::Error,
            &verdict,
            Some(why),
            started,
        );
        q.answer(rcode::SERVFAIL, &[], 0, limit)
    };
    if let Some(server) = sandbox.rules.dns() {
        return Some(match forward(server, &q, tcp).await {
            Ok(reply) => reply,
            Err(e) => servfail(format!("DNS server {}:{}: {e}", server.host, server.port)),
        });
    }
    if !matches!(q.qtype, rtype::A | rtype::AAAA) {
        // The system resolver knows addresses only.
        return Some(q.answer(rcode::NOTIMP, &[], 0, limit));
    }
    Some(match state.net.resolve(&name, 0).await {
        Ok(addrs) => q.answer(rcode::NOERROR, &addrs, TTL, limit),
        Err(e) if no_such_name(&e) => q.answer(rcode::NXDOMAIN, &[], 0, limit),
        Err(e) => servfail(format!("cannot resolve: {e}")),
    })
}

/// Whether the system resolver said the name does not exist (glibc's and musl's messages for
/// `EAI_NONAME` and `EAI_NODATA`), rather than that it could not find out.
fn no_such_name(e: &io::Error) -> bool {
    let m = e.to_string();
    [
        "Name or service not known",
        "No address associated with hostname",
        "Name does not resolve",
    ]
    .iter()
    .any(|s| m.contains(s))
}

fn log<N: Net>(
    state: &State<N>,
    sandbox: &Sandbox,
    name: &str,
    decision: Decision,
    verdict: &Verdict,
    error: Option<String>,
    started: Instant,
) {
    let rec = Record {
        sandbox: Some(sandbox.id.clone()),
        label: Some(sandbox.label.clone()),
        policy: Some(sandbox.policy.clone()),
        proto: "dns",
        host: Some(name.to_string()),
        port: None,
        address: None,
        decision,
        rule: verdict.rule.clone(),
        reason: error.unwrap_or_else(|| verdict.reason.to_string()),
        bytes_up: 0,
        bytes_down: 0,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    state.emit(Some(sandbox), &rec);
}

/// Asks the policy's DNS server: over UDP (retried over TCP when the reply is truncated and
/// the client came over TCP), or over TCP for TCP clients when UDP gives nothing.
async fn forward(server: &DnsServer, q: &Query<'_>, tcp: bool) -> Result<Vec<u8>, String> {
    let addr = server_addr(server).await?;
    let id = u16::from_be_bytes(random_bytes::<2>().map_err(|e| e.to_string())?);
    let payload = q.edns.map_or(0, |_| dns::UDP_EDNS_MAX);
    let reply = tokio::time::timeout(
        UPSTREAM_WAIT,
        over_udp(addr, &q.forwarded(id, payload), q, id),
    )
    .await
    .map_err(|_| "no answer in time".to_string())
    .and_then(|r| r.map_err(|e| e.to_string()));
    match reply {
        Ok(r) if !(tcp && Query::truncated(&r)) => Ok(r),
        Err(e) if !tcp => Err(e),
        _ => tokio::time::timeout(UPSTREAM_WAIT, over_tcp(addr, &q.forwarded(id, 0), q, id))
            .await
            .map_err(|_| "no answer over TCP in time".to_string())?
            .map_err(|e| e.to_string()),
    }
}

async fn server_addr(server: &DnsServer) -> Result<SocketAddr, String> {
    let host = server.host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, server.port));
    }
    tokio::net::lookup_host((host, server.port))
        .await
        .map_err(|e| format!("cannot resolve: {e}"))?
        .next()
        .ok_or_else(|| "no address".to_string())
}

async fn over_udp(addr: SocketAddr, query: &[u8], q: &Query<'_>, id: u16) -> io::Result<Vec<u8>> {
    let local: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let sock = UdpSocket::bind(local).await?;
    sock.connect(addr).await?;
    sock.send(query).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = sock.recv(&mut buf).await?;
        // Anything that does not answer this query (a late or forged datagram) is dropped.
        if let Some(reply) = buf.get(..n).and_then(|r| q.relay_reply(r, id)) {
            return Ok(reply);
        }
    }
}

async fn over_tcp(addr: SocketAddr, query: &[u8], q: &Query<'_>, id: u16) -> io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr).await?;
    let len = u16::try_from(query.len()).map_err(io::Error::other)?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    s.write_all(&framed).await?;
    let reply = read_frame(&mut s).await?;
    q.relay_reply(&reply, id)
        .ok_or_else(|| io::Error::other("the reply does not answer the query"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use greywall_compiler::egress::EgressRules;
    use greywall_compiler::load::{Input, load};
    use tokio::sync::broadcast;

    use super::*;
    use crate::audit::Log;
    use crate::dial::Mappings;
    use crate::dns::{answer_addrs, build_query, rcode_of};

    /// Answers from a table, records every name asked; opens no socket.
    #[derive(Default)]
    struct FakeNet {
        table: HashMap<String, Vec<IpAddr>>,
        asked: Mutex<Vec<String>>,
    }

    impl Net for FakeNet {
        type Stream = tokio::io::DuplexStream;

        async fn resolve(&self, host: &str, _port: u16) -> io::Result<Vec<IpAddr>> {
            if let Ok(mut a) = self.asked.lock() {
                a.push(host.to_string());
            }
            self.table.get(host).cloned().ok_or_else(|| {
                io::Error::other("failed to lookup address information: Name or service not known")
            })
        }

        async fn connect(&self, _addr: SocketAddr) -> io::Result<Self::Stream> {
            Err(io::Error::other("no connections here"))
        }
    }

    fn rules(network: &str) -> EgressRules {
        let l = load(&Input::Text {
            name: "greywall.json".into(),
            text: format!("{{\"network\": {network}}}"),
            dir: ".".into(),
        });
        greywall_compiler::egress::rules(&l.policy.unwrap(), &l.sources)
    }

    fn setup(network: &str) -> (State<FakeNet>, Sandbox) {
        let mut net = FakeNet::default();
        net.table.insert(
            "public.test".into(),
            vec!["192.0.2.7".parse().unwrap(), "2001:db8::7".parse().unwrap()],
        );
        let mut mappings = Mappings::new();
        mappings.insert("allowed.test".into(), vec!["127.0.0.1".parse().unwrap()]);
        let state = State::new(net, mappings, Log::none(), Duration::from_secs(2), 0);
        let sandbox = Sandbox {
            id: "00000001".into(),
            label: "t".into(),
            policy: "p".into(),
            rules: Arc::new(rules(network)),
            watch: broadcast::channel(16).0,
        };
        (state, sandbox)
    }

    async fn ask(state: &State<FakeNet>, sb: &Sandbox, name: &str, qtype: u16) -> Vec<u8> {
        let q = build_query(42, name, qtype, true);
        answer(state, sb, &q, DnsTransport::Udp).await.unwrap()
    }

    #[tokio::test]
    async fn allowed_names_resolve_and_others_are_refused() {
        let (state, sb) = setup(
            r#"{"allowedDomains": ["allowed.test", "public.test", "other.test"], "deniedDomains": ["denied.test"]}"#,
        );
        let mut rx = sb.watch.subscribe();
        let r = ask(&state, &sb, "allowed.test", rtype::A).await;
        assert_eq!(rcode_of(&r), Some(rcode::NOERROR));
        assert_eq!(
            answer_addrs(&r).unwrap(),
            vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        // Mappings are exact: no IPv6 address mapped, so an empty AAAA answer.
        let r = ask(&state, &sb, "allowed.test", rtype::AAAA).await;
        assert_eq!(
            (rcode_of(&r), answer_addrs(&r).unwrap().len()),
            (Some(0), 0)
        );
        let r = ask(&state, &sb, "public.test", rtype::AAAA).await;
        assert_eq!(
            answer_addrs(&r).unwrap(),
            vec!["2001:db8::7".parse::<IpAddr>().unwrap()]
        );
        let r = ask(&state, &sb, "other.test", rtype::A).await;
        assert_eq!(rcode_of(&r), Some(rcode::NXDOMAIN));
        let r = ask(&state, &sb, "public.test", 15).await;
        assert_eq!(
            rcode_of(&r),
            Some(rcode::NOTIMP),
            "MX: not from getaddrinfo"
        );

        for name in ["denied.test", "elsewhere.test"] {
            let r = ask(&state, &sb, name, rtype::A).await;
            assert_eq!(rcode_of(&r), Some(rcode::REFUSED), "{name}");
            assert!(answer_addrs(&r).unwrap().is_empty());
        }
        let asked = state.net.asked.lock().unwrap().clone();
        assert!(
            !asked
                .iter()
                .any(|n| n == "denied.test" || n == "elsewhere.test"),
            "{asked:?}"
        );
        // One audit line per refusal, with the deciding rule.
        let first: serde_json::Value = serde_json::from_str(&rx.recv().await.unwrap()).unwrap();
        assert_eq!(first["proto"], "dns");
        assert_eq!(first["host"], "denied.test");
        assert_eq!(first["decision"], "deny");
        assert_eq!(first["rule"]["text"], "denied.test");
        let second: serde_json::Value = serde_json::from_str(&rx.recv().await.unwrap()).unwrap();
        assert_eq!(second["reason"], "no allowedDomains rule matches");
        assert!(rx.try_recv().is_err(), "allowed queries are not logged");
    }

    #[tokio::test]
    async fn malformed_queries_get_formerr_or_nothing() {
        let (state, sb) = setup(r#"{"allowedDomains": ["*"]}"#);
        assert!(
            answer(&state, &sb, &[1, 2, 3], DnsTransport::Udp)
                .await
                .is_none()
        );
        let mut q = build_query(5, "a.test", rtype::A, false);
        q.push(0);
        let r = answer(&state, &sb, &q, DnsTransport::Tcp).await.unwrap();
        assert_eq!(rcode_of(&r), Some(rcode::FORMERR));
        let mut q = build_query(5, "ab.test", rtype::A, false);
        q[14] = b' ';
        let r = answer(&state, &sb, &q, DnsTransport::Udp).await.unwrap();
        assert_eq!(rcode_of(&r), Some(rcode::REFUSED), "not a host name");
    }
}
