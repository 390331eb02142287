//! The Unix-socket server: peer check, the `GW1` first line, registrations, data connections
//! (HTTP or SOCKS5, on the Unix socket or on a TCP connection the bridge handed over with
//! `GW1 ADOPT`), watches, and the idle exit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use greywall_compiler::egress::{EgressRules, Verdict};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::broadcast;

use crate::adopt::{self, FirstLine};
use crate::audit::{Decision, Log, Record};
use crate::dial::{DialError, Dialed, Mappings, Net, dial};
use crate::line::{self, Command, DnsTransport, Proto, Service, Token};
use crate::paths;
use crate::registry::{Registry, Sandbox, random_bytes};
use crate::socks5::{self, Target};
use crate::stream::{Counters, Held, Prefixed};

/// Everything the connection handlers share.
#[derive(Debug)]
pub struct State<N> {
    pub net: N,
    pub registry: Registry,
    pub mappings: Mappings,
    pub log: Log,
    /// Time allowed for the first line, a SOCKS handshake or an HTTP request head.
    pub head_timeout: Duration,
    pub uid: u32,
    active: AtomicUsize,
    last_active: Mutex<Instant>,
    /// A second handle on each adopted client socket, by registration: shut down when the
    /// registration ends, as the bridge's own connections end with the supervisor.
    adopted: Mutex<HashMap<Token, HashMap<u64, std::net::TcpStream>>>,
    next_adopted: AtomicU64,
    /// Rule sets already read, by the SHA-256 of their bytes: a registration naming one of
    /// them reads, hashes and parses nothing (the hash names the content, so the rules are
    /// the same whatever file holds it). At most [`KNOWN_RULESETS`].
    rulesets: Mutex<HashMap<[u8; 32], Arc<EgressRules>>>,
}

/// Rule sets kept parsed; past this many the memory is dropped and refilled as used.
const KNOWN_RULESETS: usize = 64;

impl<N: Net> State<N> {
    pub fn new(net: N, mappings: Mappings, log: Log, head_timeout: Duration, uid: u32) -> Self {
        State {
            net,
            registry: Registry::default(),
            mappings,
            log,
            head_timeout,
            uid,
            active: AtomicUsize::new(0),
            last_active: Mutex::new(Instant::now()),
            adopted: Mutex::new(HashMap::new()),
            next_adopted: AtomicU64::new(0),
            rulesets: Mutex::new(HashMap::new()),
        }
    }

    /// The parsed rule set whose bytes hash to `sha256`: from memory, or read from `path`
    /// (checked as [`paths::read_ruleset`] does), hashed and parsed.
    fn ruleset(&self, path: &Path, sha256: [u8; 32]) -> Result<Arc<EgressRules>, String> {
        if let Some(r) = self
            .rulesets
            .lock()
            .ok()
            .and_then(|m| m.get(&sha256).cloned())
        {
            return Ok(r);
        }
        let bytes = paths::read_ruleset(path, self.uid)?;
        let got: [u8; 32] = Sha256::digest(&bytes).into();
        if got != sha256 {
            return Err(format!(
                "sha256 of {} is {}, not the one registered",
                path.display(),
                line::hex(&got)
            ));
        }
        let rules = Arc::new(EgressRules::from_bytes(&bytes).map_err(|e| e.to_string())?);
        if let Ok(mut known) = self.rulesets.lock() {
            if known.len() >= KNOWN_RULESETS {
                known.clear();
            }
            known.insert(sha256, rules.clone());
        }
        Ok(rules)
    }

    /// Records an adopted connection of the registration `token` until the guard drops;
    /// `None` when the registration has ended meanwhile (the connection is then refused).
    fn track_adopted(
        self: &Arc<Self>,
        token: Token,
        client: &TcpStream,
    ) -> Option<AdoptedGuard<N>> {
        let handle = std::net::TcpStream::from(client.as_fd().try_clone_to_owned().ok()?);
        let id = self.next_adopted.fetch_add(1, Ordering::Relaxed);
        self.adopted
            .lock()
            .ok()?
            .entry(token)
            .or_default()
            .insert(id, handle);
        let guard = AdoptedGuard(self.clone(), token, id);
        // `end_adopted` may have run between the token check and the insertion.
        self.registry.get(&token).map(|_| guard)
    }

    /// Shuts down every adopted connection of the registration `token` (its serving tasks
    /// then end and log as usual).
    fn end_adopted(&self, token: &Token) {
        let gone = self.adopted.lock().ok().and_then(|mut m| m.remove(token));
        for (_, s) in gone.into_iter().flatten() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Marks a connection (or registration) as alive until the guard drops.
    pub fn active(self: &Arc<Self>) -> ActiveGuard<N> {
        self.active.fetch_add(1, Ordering::SeqCst);
        ActiveGuard(self.clone())
    }

    /// How long proxyd has had no connection and no registration (`None`: it has some).
    pub fn idle_for(&self) -> Option<Duration> {
        if self.active.load(Ordering::SeqCst) > 0 {
            return None;
        }
        self.last_active.lock().ok().map(|t| t.elapsed())
    }

    /// Writes an audit line and sends it to the sandbox's watchers.
    pub fn emit(&self, sandbox: Option<&Sandbox>, record: &Record) {
        let line = record.to_line(SystemTime::now());
        if let Some(s) = sandbox
            && s.watch.receiver_count() > 0
        {
            let _ = s.watch.send(Arc::from(line.as_str()));
        }
        self.log.write(&line);
    }

    /// Logs a connection that was decided and dialed, once it ends.
    pub fn log_outcome(&self, o: &Outcome, error: Option<String>) {
        let (up, down) = o.counters.get();
        let rec = Record {
            sandbox: Some(o.sandbox.id.clone()),
            label: Some(o.sandbox.label.clone()),
            policy: Some(o.sandbox.policy.clone()),
            proto: o.proto,
            host: Some(o.host.clone()),
            port: Some(o.port),
            address: Some(o.address.to_string()),
            decision: Decision::Allow,
            rule: o.verdict.rule.clone(),
            reason: match error {
                Some(e) => format!("{}; ended with: {e}", o.verdict.reason),
                None => o.verdict.reason.to_string(),
            },
            bytes_up: up,
            bytes_down: down,
            duration_ms: millis(o.started),
        };
        self.emit(Some(&o.sandbox), &rec);
    }

    /// Logs a protocol error on a sandbox's data connection (malformed request, slow head).
    pub fn log_error(&self, sandbox: &Sandbox, proto: &'static str, reason: String) {
        let rec = Record {
            sandbox: Some(sandbox.id.clone()),
            label: Some(sandbox.label.clone()),
            policy: Some(sandbox.policy.clone()),
            proto,
            host: None,
            port: None,
            address: None,
            decision: Decision::Error,
            rule: None,
            reason,
            bytes_up: 0,
            bytes_down: 0,
            duration_ms: 0,
        };
        self.emit(Some(sandbox), &rec);
    }

    /// Logs a refusal (deny) or an unreachable destination (error).
    pub fn log_dial_failure(
        &self,
        sandbox: &Sandbox,
        proto: &'static str,
        host: &str,
        port: u16,
        e: &DialError,
        started: Instant,
    ) {
        let (decision, rule) = match e {
            DialError::Denied(v) => (Decision::Deny, v.rule.clone()),
            _ => (Decision::Error, None),
        };
        let address = match e {
            DialError::Connect(Some(a), _) => Some(a.to_string()),
            _ => None,
        };
        let rec = Record {
            sandbox: Some(sandbox.id.clone()),
            label: Some(sandbox.label.clone()),
            policy: Some(sandbox.policy.clone()),
            proto,
            host: Some(host.to_string()),
            port: Some(port),
            address,
            decision,
            rule,
            reason: e.describe(),
            bytes_up: 0,
            bytes_down: 0,
            duration_ms: millis(started),
        };
        self.emit(Some(sandbox), &rec);
    }
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Keeps proxyd from idling out while alive.
#[derive(Debug)]
pub struct ActiveGuard<N: Net>(Arc<State<N>>);

impl<N: Net> Drop for ActiveGuard<N> {
    fn drop(&mut self) {
        if let Ok(mut t) = self.0.last_active.lock() {
            *t = Instant::now();
        }
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Forgets an adopted connection's second handle when it ends.
#[derive(Debug)]
struct AdoptedGuard<N: Net>(Arc<State<N>>, Token, u64);

impl<N: Net> Drop for AdoptedGuard<N> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.0.adopted.lock()
            && let Some(conns) = m.get_mut(&self.1)
        {
            conns.remove(&self.2);
            if conns.is_empty() {
                m.remove(&self.1);
            }
        }
    }
}

/// An allowed, connected destination, logged when the connection ends.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub sandbox: Arc<Sandbox>,
    pub proto: &'static str,
    pub host: String,
    pub port: u16,
    pub address: SocketAddr,
    pub verdict: Verdict,
    pub counters: Arc<Counters>,
    pub started: Instant,
}

impl Outcome {
    /// The audit record of the connection `dialed` made for `sandbox`, with fresh byte
    /// counters; and the upstream stream itself.
    pub fn of<S>(
        sandbox: &Arc<Sandbox>,
        proto: &'static str,
        host: String,
        port: u16,
        dialed: Dialed<S>,
        started: Instant,
    ) -> (Outcome, S) {
        let outcome = Outcome {
            sandbox: sandbox.clone(),
            proto,
            host,
            port,
            address: dialed.addr,
            verdict: dialed.verdict,
            counters: Arc::new(Counters::default()),
            started,
        };
        (outcome, dialed.stream)
    }
}

/// Accepts connections until proxyd has been idle for `idle_timeout`.
pub async fn run<N: Net>(state: Arc<State<N>>, listener: UnixListener, idle_timeout: Duration) {
    let tick = idle_timeout
        .min(Duration::from_secs(1))
        .max(Duration::from_millis(50));
    let mut ticker = tokio::time::interval(tick);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let st = state.clone();
                    tokio::spawn(async move { handle(st, stream).await });
                }
                Err(e) => {
                    eprintln!("greywall-proxyd: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = ticker.tick() => {
                if state.idle_for().is_some_and(|d| d >= idle_timeout) {
                    eprintln!("greywall-proxyd: idle for {}s, exiting", idle_timeout.as_secs());
                    return;
                }
            }
        }
    }
}

fn control_error(state: &State<impl Net>, reason: String) {
    eprintln!("greywall-proxyd: {reason}");
    let rec = Record {
        sandbox: None,
        label: None,
        policy: None,
        proto: "control",
        host: None,
        port: None,
        address: None,
        decision: Decision::Error,
        rule: None,
        reason,
        bytes_up: 0,
        bytes_down: 0,
        duration_ms: 0,
    };
    state.emit(None, &rec);
}

async fn handle<N: Net>(state: Arc<State<N>>, mut stream: UnixStream) {
    let peer = stream.peer_cred().ok().map(|c| c.uid());
    if !paths::peer_allowed(peer, state.uid) {
        control_error(
            &state,
            format!(
                "refused a connection from uid {peer:?} (proxyd runs as {})",
                state.uid
            ),
        );
        return;
    }
    let active = state.active();
    let first = tokio::time::timeout(state.head_timeout, adopt::read_first_line(&stream)).await;
    let FirstLine { line, rest, fds } = match first {
        Ok(Ok(x)) => x,
        Ok(Err(why)) => {
            control_error(&state, why.to_string());
            let _ = stream.write_all(format!("ERR {why}\n").as_bytes()).await;
            return;
        }
        Err(_) => {
            control_error(&state, "first line not received in time".into());
            return;
        }
    };
    let cmd = match line::parse(&line) {
        Ok(c) => c,
        Err(e) => {
            control_error(&state, format!("malformed first line: {e}"));
            let _ = stream.write_all(format!("ERR {e}\n").as_bytes()).await;
            return;
        }
    };
    if let Command::Adopt { token, service } = cmd {
        drop(stream);
        adopt(&state, token, service, rest, fds).await;
        drop(active);
        return;
    }
    if !fds.is_empty() {
        control_error(
            &state,
            format!(
                "{} descriptor(s) came with a first line that carries none; closed",
                fds.len()
            ),
        );
        return;
    }
    match cmd {
        Command::Ping => {
            let _ = stream
                .write_all(format!("OK greywall-proxyd {}\n", env!("CARGO_PKG_VERSION")).as_bytes())
                .await;
        }
        Command::Register {
            path,
            sha256,
            label,
            features,
        } => register(&state, stream, Path::new(&path), sha256, label, features).await,
        Command::Connect { token, proto } => {
            let Some(sandbox) = state.registry.get(&token) else {
                control_error(
                    &state,
                    format!(
                        "data connection with an unknown or dead token ({})",
                        proto.as_str()
                    ),
                );
                return;
            };
            let io = Prefixed::new(rest, stream);
            match proto {
                Proto::Http => crate::http_proxy::serve(state.clone(), sandbox, io).await,
                Proto::Socks5 => socks(state.clone(), sandbox, io).await,
            }
        }
        Command::Dns { token, transport } => {
            let Some(sandbox) = state.registry.get(&token) else {
                control_error(
                    &state,
                    "DNS connection with an unknown or dead token".into(),
                );
                return;
            };
            let io = Prefixed::new(rest, stream);
            crate::dns_answer::serve(state.clone(), sandbox, io, transport).await;
        }
        Command::Watch { token } => {
            let Some(sandbox) = state.registry.get(&token) else {
                control_error(&state, "watch with an unknown or dead token".into());
                return;
            };
            let rx = sandbox.watch.subscribe();
            drop(sandbox);
            watch(stream, rx).await;
        }
        // Answered above, before the Unix connection was dropped.
        Command::Adopt { .. } => {}
    }
    drop(active);
}

/// Serves a client the bridge handed over (`GW1 ADOPT`): exactly one descriptor, nothing
/// after the line, a live token, a connected TCP socket; else it is closed and logged.
async fn adopt<N: Net>(
    state: &Arc<State<N>>,
    token: Token,
    service: Service,
    rest: Vec<u8>,
    fds: Vec<OwnedFd>,
) {
    let word = service.word();
    let fd = match <[OwnedFd; 1]>::try_from(fds) {
        Ok([fd]) => fd,
        Err(fds) => {
            control_error(
                state,
                format!("ADOPT ({word}) with {} descriptors, not one", fds.len()),
            );
            return;
        }
    };
    if !rest.is_empty() {
        control_error(
            state,
            format!("ADOPT ({word}) with bytes after the line; the descriptor was closed"),
        );
        return;
    }
    let Some(sandbox) = state.registry.get(&token) else {
        control_error(
            state,
            format!("ADOPT ({word}) with an unknown or dead token; the descriptor was closed"),
        );
        return;
    };
    let client = match adopt::tcp_client(fd) {
        Ok(c) => c,
        Err(why) => {
            control_error(
                state,
                format!("ADOPT ({word}) refused: the descriptor is {why}"),
            );
            return;
        }
    };
    let Some(tracked) = state.track_adopted(token, &client) else {
        control_error(
            state,
            format!("ADOPT ({word}): the registration ended meanwhile"),
        );
        return;
    };
    // The entry lives as long as the stream, also where hyper hands a tunnel to a task.
    let client = Held::new(client, Box::new(tracked));
    match service {
        Service::Http => crate::http_proxy::serve(state.clone(), sandbox, client).await,
        Service::Socks5 => socks(state.clone(), sandbox, client).await,
        Service::DnsTcp => {
            crate::dns_answer::serve(state.clone(), sandbox, client, DnsTransport::Tcp).await
        }
        Service::HostPort(port) => host_port(state.clone(), sandbox, client, port).await,
    }
}

/// The audit `proto` of an `allowLocalOutbound` host port reached through `GW1 ADOPT`.
const HOST_PORT_PROTO: &str = "tcp";

/// Connects an adopted client to the host's `127.0.0.1:port` and relays until both sides are
/// done. Decided as a connection to `127.0.0.1:port`, or, when no rule allows that address but
/// one allows `localhost:port` (such an entry names the loopback addresses), to
/// `localhost:port`, which then also goes to `127.0.0.1` whatever the resolver says of
/// `localhost`. A refusal names `127.0.0.1`.
async fn host_port<N, S>(state: Arc<State<N>>, sandbox: Arc<Sandbox>, mut client: S, port: u16)
where
    N: Net,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let started = Instant::now();
    let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
    let by_name = !sandbox.rules.decide(&loopback.to_string(), port).allowed
        && sandbox.rules.decide("localhost", port).allowed;
    let (host, mappings) = if !by_name {
        (loopback.to_string(), None)
    } else {
        let name = "localhost".to_string();
        let m: Mappings = [(name.clone(), vec![loopback])].into();
        (name, Some(m))
    };
    let mappings = mappings.as_ref().unwrap_or(&state.mappings);
    let dialed = match dial(&state.net, &sandbox.rules, mappings, &host, port).await {
        Ok(d) => d,
        Err(e) => {
            state.log_dial_failure(&sandbox, HOST_PORT_PROTO, &host, port, &e, started);
            return;
        }
    };
    let (outcome, mut upstream) =
        Outcome::of(&sandbox, HOST_PORT_PROTO, host, port, dialed, started);
    let relayed =
        crate::relay::tunnel(&mut client, Vec::new(), &mut upstream, &outcome.counters).await;
    state.log_outcome(&outcome, relayed.err().map(|e| e.to_string()));
}

async fn register<N: Net>(
    state: &Arc<State<N>>,
    mut stream: UnixStream,
    path: &Path,
    sha256: [u8; 32],
    label: String,
    features: line::Features,
) {
    let rules = match state.ruleset(path, sha256) {
        Ok(r) => r,
        Err(e) => {
            control_error(state, format!("registration refused: {e}"));
            let _ = stream
                .write_all(format!("ERR {}\n", e.replace('\n', " ")).as_bytes())
                .await;
            return;
        }
    };
    let (token, id) = match (random_bytes::<32>(), random_bytes::<4>()) {
        (Ok(t), Ok(i)) => (Token(t), line::hex(&i)),
        _ => {
            let _ = stream.write_all(b"ERR no random source\n").await;
            return;
        }
    };
    let (watch, _) = broadcast::channel(256);
    let sandbox = Arc::new(Sandbox {
        id: id.clone(),
        label,
        policy: line::hex(&sha256),
        rules,
        watch,
    });
    state.registry.insert(token, sandbox);
    eprintln!("greywall-proxyd: registered sandbox {id}");
    if stream
        .write_all(format!("OK {id} {}{}\n", token.to_hex(), features.answer()).as_bytes())
        .await
        .is_ok()
    {
        // The registration lives as long as this connection.
        let mut sink = [0u8; 256];
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    }
    state.registry.remove(&token);
    state.end_adopted(&token);
    eprintln!("greywall-proxyd: sandbox {id} is gone");
}

async fn watch(mut stream: UnixStream, mut rx: broadcast::Receiver<Arc<str>>) {
    let (mut rd, mut wr) = stream.split();
    let mut sink = [0u8; 64];
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Ok(line) => {
                    let mut b = Vec::with_capacity(line.len() + 1);
                    b.extend_from_slice(line.as_bytes());
                    b.push(b'\n');
                    if wr.write_all(&b).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let note = format!("{{\"lagged\":{n}}}\n");
                    if wr.write_all(note.as_bytes()).await.is_err() {
                        return;
                    }
                }
                // The registration is gone.
                Err(broadcast::error::RecvError::Closed) => return,
            },
            r = rd.read(&mut sink) => if matches!(r, Ok(0) | Err(_)) { return },
        }
    }
}

/// Serves one SOCKS5 client.
async fn socks<N, S>(state: Arc<State<N>>, sandbox: Arc<Sandbox>, mut io: S)
where
    N: Net,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let started = Instant::now();
    let mut buf = Vec::new();
    let handshake = async {
        let no_auth = socks5::read_parsed(&mut io, &mut buf, socks5::parse_greeting).await?;
        if !no_auth {
            let _ = io.write_all(&[5, 0xff]).await;
            return Err(socks5::SocksError {
                message: "client offers no acceptable authentication method",
                reply: None,
            });
        }
        if io.write_all(&[5, 0]).await.is_err() {
            return Err(socks5::SocksError {
                message: "client went away",
                reply: None,
            });
        }
        socks5::read_parsed(&mut io, &mut buf, socks5::parse_request).await
    };
    let req = match tokio::time::timeout(state.head_timeout, handshake).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            if let Some(code) = e.reply {
                let _ = io.write_all(&socks5::reply_bytes(code, None)).await;
            }
            state.log_error(
                &sandbox,
                "socks5",
                format!("malformed SOCKS5 request: {}", e.message),
            );
            return;
        }
        Err(_) => {
            state.log_error(
                &sandbox,
                "socks5",
                "SOCKS5 handshake not received in time".into(),
            );
            return;
        }
    };
    let host = match &req.target {
        Target::Name(n) => n.clone(),
        Target::Addr(a) => a.to_string(),
    };
    let dialed = match dial(&state.net, &sandbox.rules, &state.mappings, &host, req.port).await {
        Ok(d) => d,
        Err(e) => {
            let _ = io
                .write_all(&socks5::reply_bytes(e.socks_reply(), None))
                .await;
            state.log_dial_failure(&sandbox, "socks5", &host, req.port, &e, started);
            return;
        }
    };
    let (outcome, mut upstream) = Outcome::of(&sandbox, "socks5", host, req.port, dialed, started);
    if io
        .write_all(&socks5::reply_bytes(socks5::reply::SUCCEEDED, None))
        .await
        .is_err()
    {
        state.log_outcome(&outcome, Some("client went away".into()));
        return;
    }
    // Bytes the client sent early (pipelined after its request) go first.
    let relayed = crate::relay::tunnel(&mut io, buf, &mut upstream, &outcome.counters).await;
    state.log_outcome(&outcome, relayed.err().map(|e| e.to_string()));
}
