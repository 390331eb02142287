//! The network bridge: loopback listeners inside the sandbox's network namespace, spliced by
//! the supervisor to greywall-proxyd (and, for `greywall exec -p PORT`, host listeners spliced
//! to a server inside).
//!
//! The sandbox has its own network namespace with only `lo`: nothing it sends leaves. When the
//! plan has an egress section, the launcher
//!
//! 1. before the namespaces exist ([`prepare`]): connects to proxyd (starting it if needed),
//!    sends the registration of the plan's rule set (`GW1 REGISTER`), keeps proxyd's socket
//!    directory open (the sandbox's view hides it), and binds the host side of `-p` ports on
//!    the host's `127.0.0.1`;
//! 2. inside the new network namespace ([`Prepared::bind_inside`]): binds `127.0.0.1` on the
//!    HTTP and SOCKS ports, on each host port the policy lets the sandbox reach
//!    (`allowLocalOutbound` with `localhost:PORT` entries), and on port 53 (UDP and TCP) for
//!    DNS, binds a `resolv.conf` naming `127.0.0.1` read-only over `/etc/resolv.conf` (the
//!    launcher is in the sandbox's mount namespace by then), then reads proxyd's answer to the
//!    registration (a token that lives as long as that connection, or a refusal: the command
//!    does not start). proxyd checks the rule set while the launcher builds the sandbox, so
//!    the round trip costs the launch little;
//! 3. in the supervisor (the parent of the command, outside Landlock and seccomp), in its one
//!    poll loop ([`Bridge::pollfds`], [`Bridge::ready`]): accepts, and, when proxyd granted
//!    the `adopt` feature at registration, hands the accepted socket itself to proxyd
//!    (`GW1 ADOPT <token> http|socks5|dns-tcp|host:PORT` with the socket attached by
//!    `SCM_RIGHTS`, on a new connection, then closes its copy): proxyd serves the client on
//!    it, so the bridge carries no bytes of these connections. With a proxyd that did not
//!    grant it (an older build) it opens a connection to proxyd, writes
//!    `GW1 CONNECT <token> http|socks5` (`GW1 DNS <token> tcp` for DNS over TCP) and copies
//!    bytes both ways with non-blocking sockets and one buffer per direction; a host port
//!    (`allowLocalOutbound`) then goes through proxyd's SOCKS5 side with a request the bridge
//!    writes. `-p` ports are always copied here (proxyd is not involved): a connection to the
//!    server inside. DNS datagrams go over one `GW1 DNS <token> udp` connection, each with a
//!    two-byte length and an id of the bridge's own ([`DnsRelay`]), and the answers go back to
//!    the client that asked.
//!
//! Nothing here runs for a plan without egress and without `-p`.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsString};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use greywall_compiler::plan::{Egress, LinuxPlan, Network};

use crate::proxyd_client::{self, Pending, Registration};

/// Bytes buffered per direction of a spliced connection.
const BUF: usize = 64 * 1024;
/// The DNS port inside the sandbox.
const DNS_PORT: u16 = 53;
/// DNS datagrams waiting for proxyd's answer; the oldest is forgotten past this.
const DNS_PENDING: usize = 256;
/// How long a DNS datagram waits for its answer before it is forgotten (clients retry).
const DNS_WAIT: Duration = Duration::from_secs(10);
/// Bytes of queries waiting to be written to proxyd; datagrams beyond are dropped.
const DNS_BACKLOG: usize = 256 * 1024;

/// Network options from the command line (`greywall exec -p PORT -m`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Ports of servers inside the sandbox to expose on the host's `127.0.0.1`.
    pub expose: Vec<u16>,
    /// Print proxyd's denials for this sandbox as they happen.
    pub monitor: bool,
}

static OPTIONS: OnceLock<Options> = OnceLock::new();

/// Sets the options for this run (once, before the launch).
pub fn set_options(o: Options) {
    let _ = OPTIONS.set(o);
}

fn options() -> &'static Options {
    static NONE: Options = Options {
        expose: Vec::new(),
        monitor: false,
    };
    OPTIONS.get().unwrap_or(&NONE)
}

/// Whether this launch needs the bridge (and so the supervisor).
pub fn wanted(plan: &LinuxPlan) -> bool {
    plan.egress.is_some() || (plan.network == Network::Isolated && !options().expose.is_empty())
}

/// `-p` ports the command may bind inside (added to the Landlock ruleset).
pub fn exposed_ports() -> &'static [u16] {
    &options().expose
}

/// Adds the plan's proxy environment (after the plan's own edits), and `GIT_SSH_COMMAND` when
/// SSH goes through SOCKS.
pub fn edit_env(plan: &LinuxPlan, env: &mut Vec<(OsString, OsString)>) {
    let Some(e) = &plan.egress else { return };
    let mut set = |name: &str, value: OsString| {
        env.retain(|(k, _)| k != name);
        env.push((name.into(), value));
    };
    for (name, value) in &e.env {
        set(name, value.into());
    }
    if e.ssh_via_socks
        && let Some(exe) = std::env::current_exe()
            .ok()
            .and_then(|p| p.to_str().map(str::to_string))
            .filter(|p| !p.contains('\''))
    {
        set(
            "GIT_SSH_COMMAND",
            format!(
                "ssh -o ProxyCommand='{exe} __socks-connect {} %h %p'",
                e.socks_port
            )
            .into(),
        );
    }
}

/// What is set up before the namespaces exist.
pub struct Prepared {
    registration: Option<Pending>,
    /// Host side of `-p` ports.
    exposed: Vec<(u16, TcpListener)>,
    /// Handed over by the launcher outside bwrap ([`inherited`]): bwrap made the network
    /// namespace, bound the sandbox's `resolv.conf` and gave this launcher the capabilities to
    /// bind port 53 and to add `lo`'s second address ([`bwrap_args`]).
    through_bwrap: bool,
}

fn bind_loopback(port: u16) -> io::Result<TcpListener> {
    let l = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// How proxyd's log names a sandbox: its command's file name.
pub fn label(program: &std::ffi::OsStr) -> String {
    std::path::Path::new(program)
        .file_name()
        .unwrap_or(program)
        .to_string_lossy()
        .into_owned()
}

/// Registers with proxyd and binds the host side of `-p` ports. `label` names the sandbox
/// in proxyd's log. Errors are one line, for exit status 125.
pub fn prepare(plan: &LinuxPlan, label: &str) -> Result<Prepared, String> {
    let mut registration = None;
    if let Some(e) = &plan.egress {
        check_ruleset(e)?;
        let dir = proxyd_client::socket_dir();
        let conn = proxyd_client::connect_or_start(&dir)
            .map_err(|m| format!("greywall-proxyd is not available: {m}"))?;
        registration = Some(proxyd_client::register(
            conn,
            &dir,
            &e.ruleset_path,
            &e.ruleset_sha256,
            label,
        )?);
    }
    let mut exposed = Vec::new();
    if plan.network == Network::Isolated {
        for &port in &options().expose {
            let l = bind_loopback(port)
                .map_err(|e| format!("cannot listen on 127.0.0.1:{port} for -p {port}: {e}"))?;
            exposed.push((port, l));
        }
    }
    Ok(Prepared {
        registration,
        exposed,
        through_bwrap: false,
    })
}

// ---- Through bwrap: the bridge prepared outside, bound inside ------------------------------
//
// bwrap makes the sandbox's namespaces, so the launcher it runs (`__exec-plan`, inside them)
// cannot reach proxyd's hidden socket directory or bind the host side of `-p` ports. The
// launcher outside does [`prepare`] as the native one does, leaves those descriptors open
// across exec and names them on the inner launcher's command line
// (`__exec-plan --bridge SPEC`, [`Prepared::hand_off`]); the inner one takes them over
// ([`set_inherited`], [`inherited`]) and binds the listeners inside, as the native launcher
// does once it is in its namespaces.

/// What the launcher outside bwrap handed over.
struct Handed {
    /// The inode of the outside network namespace: the inside one must be another.
    outside_net: u64,
    /// The registration connection and proxyd's socket directory.
    registration: Option<(i32, i32)>,
    exposed: Vec<(u16, i32)>,
}

static HANDED: OnceLock<Handed> = OnceLock::new();

/// The inode of this process's network namespace.
fn network_namespace() -> Result<u64, String> {
    crate::sys::ns::own_identity("net")
        .map(|(_, ino)| ino)
        .map_err(|e| format!("cannot identify the network namespace: {e}"))
}

impl Prepared {
    /// Leaves the prepared descriptors open across exec and describes them (with `-p` and
    /// `-m`) for the launcher bwrap runs: `net=INODE,reg=FD,dir=FD,expose=PORT:FD+…,monitor=0|1`.
    pub fn hand_off(&self) -> Result<String, String> {
        use std::os::fd::AsFd;
        let keep = |fd: std::os::fd::BorrowedFd<'_>| {
            crate::sys::fd::keep_across_exec(fd)
                .map(|()| fd.as_raw_fd())
                .map_err(|e| format!("cannot hand the network bridge to bwrap: {e}"))
        };
        let mut spec = format!("net={}", network_namespace()?);
        if let Some(p) = &self.registration {
            let (conn, dir) = p.descriptors();
            spec.push_str(&format!(",reg={},dir={}", keep(conn)?, keep(dir)?));
        }
        let mut exposed = Vec::new();
        for (port, l) in &self.exposed {
            exposed.push(format!("{port}:{}", keep(l.as_fd())?));
        }
        spec.push_str(&format!(
            ",expose={},monitor={}",
            exposed.join("+"),
            u8::from(options().monitor)
        ));
        Ok(spec)
    }
}

/// Reads `__exec-plan --bridge SPEC` (see [`Prepared::hand_off`]) and sets the `-p`/`-m`
/// options it carries. The descriptors are taken over by [`inherited`].
pub fn set_inherited(spec: &str) -> Result<(), String> {
    let bad = || format!("malformed --bridge {spec:?}");
    let number = |v: &str| v.parse::<i32>().map_err(|_| bad());
    let (mut net, mut reg, mut dir, mut exposed, mut monitor) = (None, None, None, None, None);
    for field in spec.split(',') {
        let (k, v) = field.split_once('=').ok_or_else(bad)?;
        match k {
            "net" => net = Some(v.parse::<u64>().map_err(|_| bad())?),
            "reg" => reg = Some(number(v)?),
            "dir" => dir = Some(number(v)?),
            "expose" => {
                let mut list = Vec::new();
                for item in v.split('+').filter(|i| !i.is_empty()) {
                    let (port, fd) = item.split_once(':').ok_or_else(bad)?;
                    list.push((port.parse::<u16>().map_err(|_| bad())?, number(fd)?));
                }
                exposed = Some(list);
            }
            "monitor" => monitor = Some(v == "1"),
            _ => return Err(bad()),
        }
    }
    let (Some(outside_net), Some(exposed), Some(monitor)) = (net, exposed, monitor) else {
        return Err(bad());
    };
    let registration = match (reg, dir) {
        (Some(r), Some(d)) => Some((r, d)),
        (None, None) => None,
        _ => return Err(bad()),
    };
    // Each descriptor is taken over once ([`inherited`]): a number named twice would be
    // closed twice.
    let mut fds: Vec<i32> = registration.iter().flat_map(|&(r, d)| [r, d]).collect();
    fds.extend(exposed.iter().map(|&(_, fd)| fd));
    fds.sort_unstable();
    if fds.windows(2).any(|w| w[0] == w[1]) {
        return Err(bad());
    }
    set_options(Options {
        expose: exposed.iter().map(|(p, _)| *p).collect(),
        monitor,
    });
    HANDED
        .set(Handed {
            outside_net,
            registration,
            exposed,
        })
        .map_err(|_| "--bridge given twice".to_string())
}

/// The bridge the launcher outside bwrap prepared for this plan, taken over; an error when it
/// handed none (the inner plan is only ever run by `greywall exec --backend bwrap`), or when
/// this process shares the network namespace of the launcher outside (bwrap did not make
/// one: the sandbox would reach the host's network).
pub fn inherited(plan: &LinuxPlan, label: &str) -> Result<Prepared, String> {
    let Some(h) = HANDED.get() else {
        return Err("the plan for bwrap needs the network bridge that `greywall exec --backend bwrap` prepares; run it that way".into());
    };
    if network_namespace()? == h.outside_net {
        return Err("bwrap did not give the sandbox a network namespace of its own".into());
    }
    let adopt = |fd: i32| {
        crate::sys::fd::adopt_inherited(fd)
            .map_err(|e| format!("the network bridge's descriptor {fd}: {e}"))
    };
    let registration = match (&plan.egress, h.registration) {
        (Some(e), Some((reg, dir))) => Some(Pending::inherited(
            adopt(reg)?,
            adopt(dir)?,
            &e.ruleset_path,
            &e.ruleset_sha256,
            label,
        )),
        (None, None) => None,
        _ => return Err("the network bridge handed over does not match the plan".into()),
    };
    let mut exposed = Vec::new();
    for &(port, fd) in &h.exposed {
        exposed.push((port, TcpListener::from(adopt(fd)?)));
    }
    Ok(Prepared {
        registration,
        exposed,
        through_bwrap: true,
    })
}

/// The rule set must be the one the plan names; the launcher checks before proxyd does, so
/// that a damaged cache entry says so plainly. Checked once per launch (the cached path checks
/// it before it trusts the plan, [`prepare`] finds it done).
fn check_ruleset(e: &Egress) -> Result<(), String> {
    static CHECKED: OnceLock<(String, String)> = OnceLock::new();
    if CHECKED
        .get()
        .is_some_and(|(p, s)| *p == e.ruleset_path && *s == e.ruleset_sha256)
    {
        return Ok(());
    }
    let bytes = std::fs::read(&e.ruleset_path).map_err(|err| {
        format!(
            "cannot read the egress rule set {}: {err}; run greywall compile again",
            e.ruleset_path
        )
    })?;
    if greywall_compiler::cache::sha256_hex(&bytes) != e.ruleset_sha256 {
        return Err(format!(
            "the egress rule set {} does not match its plan; run greywall compile again",
            e.ruleset_path
        ));
    }
    let _ = CHECKED.set((e.ruleset_path.clone(), e.ruleset_sha256.clone()));
    Ok(())
}

/// Is the cached rule set of `plan` present and intact? (Else the cached plan is not used.)
pub fn ruleset_intact(plan: &LinuxPlan) -> bool {
    plan.egress
        .as_ref()
        .is_none_or(|e| check_ruleset(e).is_ok())
}

/// Where an accepted connection goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// proxyd's HTTP proxy.
    Http,
    /// proxyd's SOCKS5 proxy.
    Socks,
    /// The host's `127.0.0.1:PORT`, through proxyd's SOCKS5 proxy.
    HostPort(u16),
    /// A server inside the sandbox (`-p`), from the host's side.
    Inside(u16),
    /// proxyd's DNS side, for a client's DNS-over-TCP connection.
    Dns,
}

struct Listener {
    sock: TcpListener,
    target: Target,
}

impl Prepared {
    /// Binds the in-sandbox listeners; call inside the sandbox's network namespace, `lo` up.
    pub fn bind_inside(self, plan: &LinuxPlan) -> Result<Bridge, String> {
        if self.through_bwrap && plan.egress.is_some() {
            // bwrap brought `lo` up; the second address (see `loopback_up`) is ours to add.
            crate::sys::net::loopback_up()
                .map_err(|e| format!("cannot add lo's second address inside bwrap: {e}"))?;
        }
        let mut listeners = Vec::new();
        if let Some(e) = &plan.egress {
            let mut wanted = vec![(e.http_port, Target::Http), (e.socks_port, Target::Socks)];
            wanted.extend(e.local_outbound.iter().map(|p| (*p, Target::HostPort(*p))));
            // A host service named on port 53 keeps its port; DNS then has UDP only.
            if !wanted.iter().any(|(p, _)| *p == DNS_PORT) {
                wanted.push((DNS_PORT, Target::Dns));
            }
            for (port, target) in wanted {
                let sock = bind_loopback(port).map_err(|err| {
                    format!("cannot listen on 127.0.0.1:{port} inside the sandbox: {err}")
                })?;
                listeners.push(Listener { sock, target });
            }
        }
        for (port, sock) in self.exposed {
            listeners.push(Listener {
                sock,
                target: Target::Inside(port),
            });
        }
        let dns = match &plan.egress {
            Some(_) => {
                // Through bwrap, bwrap bound it already (this launcher may not mount).
                if !self.through_bwrap {
                    bind_resolv_conf()?;
                }
                Some(DnsRelay::bind()?)
            }
            None => None,
        };
        if self.through_bwrap {
            // Port 53 is bound and `lo` has its address: the capabilities bwrap added for them
            // do not reach the command.
            crate::sys::caps::clear_ambient()
                .map_err(|e| format!("cannot drop the capabilities bwrap added: {e}"))?;
        }
        let registration = self.registration.map(Pending::finish).transpose()?;
        let mut watch = None;
        if let Some(reg) = &registration {
            if options().monitor {
                eprintln!(
                    "greywall: sandbox {} registered with greywall-proxyd; denials follow",
                    reg.sandbox_id
                );
                watch = Some(
                    reg.watch()
                        .and_then(|s| s.set_nonblocking(true).map(|()| s))
                        .map_err(|e| format!("cannot watch greywall-proxyd's decisions: {e}"))?,
                );
            }
            reg.connection
                .set_nonblocking(true)
                .map_err(|e| format!("greywall-proxyd registration: {e}"))?;
        }
        Ok(Bridge {
            listeners,
            registration,
            registered: true,
            watch,
            watch_buf: Vec::new(),
            dns,
            conns: Vec::new(),
        })
    }
}

/// Where the sandbox's resolvers look.
const RESOLV_CONF: &CStr = c"/etc/resolv.conf";
/// What they find there: the bridge answers DNS on the sandbox's own `127.0.0.1:53`.
const RESOLV_CONF_TEXT: &[u8] = b"# greywall: names are resolved by greywall-proxyd through \
the sandbox's bridge, and only those the policy allows\nnameserver 127.0.0.1\n";
/// Where the file is written first: the sandbox's private `/dev/shm` (a tmpfs of its own mount
/// namespace; a file opened outside that namespace cannot be bind-mounted in it). It is
/// removed once bound, so nothing is left there.
const RESOLV_CONF_SOURCE: &str = "/dev/shm/.greywall-resolv.conf";

/// The arguments that give a sandbox bwrap makes what [`Prepared::bind_inside`] needs for
/// `plan`'s egress: the capabilities to bind port 53 and to add `lo`'s second address, for
/// the launcher inside (it clears them before the command runs; they hold in the sandbox's
/// own namespaces only), and the resolv.conf naming `127.0.0.1`, read-only over
/// `/etc/resolv.conf` (`--ro-bind-data` from a pipe this process leaves open across exec).
pub fn bwrap_args(plan: &LinuxPlan) -> Result<Vec<OsString>, String> {
    use std::os::fd::{AsFd, IntoRawFd, OwnedFd};
    if plan.egress.is_none() {
        return Ok(Vec::new());
    }
    let mut args: Vec<OsString> = vec![
        "--cap-add".into(),
        "CAP_NET_BIND_SERVICE".into(),
        "--cap-add".into(),
        "CAP_NET_ADMIN".into(),
    ];
    if std::path::Path::new("/etc/resolv.conf").exists() {
        let fail = |e: io::Error| format!("cannot pass bwrap the sandbox's resolv.conf: {e}");
        let (reader, mut writer) = io::pipe().map_err(fail)?;
        // Far below a pipe's buffer: written whole before bwrap reads it.
        writer.write_all(RESOLV_CONF_TEXT).map_err(fail)?;
        drop(writer);
        let reader = OwnedFd::from(reader);
        crate::sys::fd::keep_across_exec(reader.as_fd()).map_err(fail)?;
        // Open until the exec; bwrap owns it then.
        let fd = reader.into_raw_fd();
        args.extend([
            "--ro-bind-data".into(),
            fd.to_string().into(),
            "/etc/resolv.conf".into(),
        ]);
    }
    Ok(args)
}

/// Binds a resolv.conf naming `127.0.0.1` read-only over `/etc/resolv.conf` (over the file it
/// links to, when it is a symlink). Call in the sandbox's mount namespace, after its view is
/// built. Without one (or with a dangling link) there is nothing to cover: resolvers then ask
/// `127.0.0.1` by default.
fn bind_resolv_conf() -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;

    use crate::sys::mount;
    if !mount::exists(RESOLV_CONF) {
        return Ok(());
    }
    let fail = |what: &str, e: io::Error| format!("cannot {what} /etc/resolv.conf: {e}");
    let source = format!("{RESOLV_CONF_SOURCE}.{}", std::process::id());
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&source)
        .and_then(|mut f| f.write_all(RESOLV_CONF_TEXT));
    let bound = written
        .map_err(|e| fail(&format!("write {source} for"), e))
        .and_then(|()| {
            let c = CString::new(source.as_str())
                .map_err(|e| fail("name the source of", io::Error::other(e)))?;
            mount::bind(&c, RESOLV_CONF).map_err(|e| fail("bind a resolv.conf over", e))?;
            mount::set_read_only(RESOLV_CONF, false).map_err(|e| fail("make read-only", e))
        });
    let _ = std::fs::remove_file(&source);
    bound
}

/// The supervisor's half: listeners, the registration, and the spliced connections.
pub struct Bridge {
    listeners: Vec<Listener>,
    registration: Option<Registration>,
    /// The registration connection is still open.
    registered: bool,
    watch: Option<UnixStream>,
    watch_buf: Vec<u8>,
    /// DNS datagrams on `127.0.0.1:53` inside.
    dns: Option<DnsRelay>,
    conns: Vec<Conn>,
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// A bridge as text and descriptors, to hand to the namespace pool's waiting supervisor
/// ([`crate::supervise::Waiting`]) instead of forking one.
pub struct Parts {
    pub text: String,
    pub fds: Vec<OwnedFd>,
}

impl Target {
    /// The `GW1 ADOPT` service word of a target proxyd serves (not `-p` ports).
    fn service(self) -> Option<String> {
        Some(match self {
            Target::Http => "http".into(),
            Target::Socks => "socks5".into(),
            Target::Dns => "dns-tcp".into(),
            Target::HostPort(p) => format!("host:{p}"),
            Target::Inside(_) => return None,
        })
    }

    fn word(self) -> String {
        match self {
            Target::Http => "http".into(),
            Target::Socks => "socks".into(),
            Target::HostPort(p) => format!("host:{p}"),
            Target::Inside(p) => format!("inside:{p}"),
            Target::Dns => "dns".into(),
        }
    }

    fn parse(word: &str) -> Option<Target> {
        Some(match word {
            "http" => Target::Http,
            "socks" => Target::Socks,
            "dns" => Target::Dns,
            _ => match word.split_once(':')? {
                ("host", p) => Target::HostPort(p.parse().ok()?),
                ("inside", p) => Target::Inside(p.parse().ok()?),
                _ => return None,
            },
        })
    }
}

impl Bridge {
    /// This bridge, just bound (nothing relayed yet), as [`Parts`]: a line per listener
    /// (`L target`), the registration (`R id token`), `W` for a watch connection and `D` for
    /// the DNS socket, with their descriptors in that order.
    pub fn into_parts(self) -> Option<Parts> {
        if !self.conns.is_empty() || !self.registered {
            return None;
        }
        let mut text = String::new();
        let mut fds: Vec<OwnedFd> = Vec::new();
        for l in self.listeners {
            text.push_str(&format!("L {}\n", l.target.word()));
            fds.push(l.sock.into());
        }
        if let Some(r) = self.registration {
            let adopt = if r.adopt { " adopt" } else { "" };
            text.push_str(&format!("R {} {}{adopt}\n", r.sandbox_id, r.token));
            fds.push(r.connection.into());
            fds.push(r.dir);
        }
        if let Some(w) = self.watch {
            text.push_str("W\n");
            fds.push(w.into());
        }
        if let Some(d) = self.dns {
            if d.upstream.is_some() || !d.pending.is_empty() {
                return None;
            }
            text.push_str("D\n");
            fds.push(d.sock.into());
        }
        Some(Parts { text, fds })
    }

    /// The bridge [`Bridge::into_parts`] described; `None` when the parts do not fit.
    pub fn from_parts(parts: Parts) -> Option<Bridge> {
        let mut fds = parts.fds.into_iter();
        let mut bridge = Bridge {
            listeners: Vec::new(),
            registration: None,
            registered: true,
            watch: None,
            watch_buf: Vec::new(),
            dns: None,
            conns: Vec::new(),
        };
        for line in parts.text.lines() {
            let words: Vec<&str> = line.split(' ').collect();
            match words.as_slice() {
                ["L", target] => bridge.listeners.push(Listener {
                    sock: TcpListener::from(fds.next()?),
                    target: Target::parse(target)?,
                }),
                ["R", id, token, rest @ ..] => {
                    let adopt = match rest {
                        [] => false,
                        ["adopt"] => true,
                        _ => return None,
                    };
                    bridge.registration = Some(Registration {
                        connection: UnixStream::from(fds.next()?),
                        sandbox_id: (*id).to_string(),
                        token: (*token).to_string(),
                        adopt,
                        dir: fds.next()?,
                    });
                }
                ["W"] => bridge.watch = Some(UnixStream::from(fds.next()?)),
                ["D"] => bridge.dns = Some(DnsRelay::with(UdpSocket::from(fds.next()?))),
                _ => return None,
            }
        }
        fds.next().is_none().then_some(bridge)
    }

    /// Appends the descriptors to poll, in the order [`Bridge::ready`] expects.
    pub fn pollfds(&self, out: &mut Vec<libc::pollfd>) {
        for l in &self.listeners {
            out.push(pollfd(l.sock.as_raw_fd(), libc::POLLIN));
        }
        let reg = match &self.registration {
            Some(r) if self.registered => r.connection.as_raw_fd(),
            _ => -1,
        };
        out.push(pollfd(reg, libc::POLLIN));
        out.push(pollfd(
            self.watch.as_ref().map_or(-1, AsRawFd::as_raw_fd),
            libc::POLLIN,
        ));
        let (udp, up) = self
            .dns
            .as_ref()
            .map_or(((-1, 0), (-1, 0)), DnsRelay::events);
        out.push(pollfd(udp.0, udp.1));
        out.push(pollfd(up.0, up.1));
        self.conn_pollfds(out);
    }

    /// Two entries per spliced connection: the client's side, then the upstream's.
    fn conn_pollfds(&self, out: &mut Vec<libc::pollfd>) {
        for c in &self.conns {
            let (a, b) = c.events();
            out.push(pollfd(c.client.fd(), a));
            out.push(pollfd(c.upstream.fd(), b));
        }
    }

    /// Pumps each spliced connection `poll` reported on ([`Bridge::conn_pollfds`]'s entries),
    /// and forgets those that are done.
    fn pump_conns(&mut self, fds: &[libc::pollfd]) {
        for (c, pair) in self.conns.iter_mut().zip(fds.chunks(2)) {
            if pair.iter().any(|p| p.revents != 0) {
                c.pump();
            }
        }
        self.conns.retain(|c| !c.done);
    }

    /// Handles what `poll` reported on the descriptors [`Bridge::pollfds`] gave.
    pub fn ready(&mut self, fds: &[libc::pollfd]) {
        let nl = self.listeners.len();
        let (listen, rest) = fds.split_at(nl.min(fds.len()));
        let (reg, rest) = rest.split_at(1.min(rest.len()));
        let (watch, rest) = rest.split_at(1.min(rest.len()));
        let (dns, conns) = rest.split_at(2.min(rest.len()));
        // Connections first: accepting below appends to the list the descriptors describe.
        self.pump_conns(conns);
        if reg.first().is_some_and(|p| p.revents != 0) {
            self.registration_event();
        }
        if watch.first().is_some_and(|p| p.revents != 0) {
            self.watch_event();
        }
        if dns.iter().any(|p| p.revents != 0)
            && let Some(d) = &mut self.dns
        {
            let reg = self.registration.as_ref().filter(|_| self.registered);
            d.ready(reg, dns.first().is_some_and(|p| p.revents != 0));
        }
        let ready: Vec<usize> = (0..listen.len())
            .filter(|i| listen[*i].revents != 0)
            .collect();
        for i in ready {
            self.accept(i);
        }
    }

    /// Once the command has ended: pumps the spliced connections still open until what the
    /// sandbox's side sent has reached the client (a `-p` server's last answer, written just
    /// before it exited), at most `within`. Accepts nothing new.
    pub fn drain(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        let mut fds = Vec::new();
        loop {
            self.conns.retain(|c| !c.done && !c.down.shut);
            let left = deadline.saturating_duration_since(Instant::now());
            if self.conns.is_empty() || left.is_zero() {
                return;
            }
            fds.clear();
            self.conn_pollfds(&mut fds);
            let ms = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
            if crate::sys::notify::poll(&mut fds, ms.max(1)).is_err() {
                return;
            }
            self.pump_conns(&fds);
        }
    }

    fn registration_event(&mut self) {
        let Some(r) = &self.registration else { return };
        let mut buf = [0u8; 512];
        match (&r.connection).read(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // proxyd says nothing more on this connection; any end of it ends the token.
            _ => {
                self.registered = false;
                eprintln!(
                    "greywall: greywall-proxyd ended this sandbox's registration; new connections will fail"
                );
            }
        }
    }

    fn watch_event(&mut self) {
        let Some(w) = &self.watch else { return };
        let mut buf = [0u8; 4096];
        loop {
            match (&*w).read(&mut buf) {
                Ok(0) => {
                    self.watch = None;
                    return;
                }
                Ok(n) => self.watch_buf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.watch = None;
                    return;
                }
            }
        }
        while let Some(i) = self.watch_buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.watch_buf.drain(..=i).collect();
            if let Some(text) = crate::cmd::logs::denial_line(&line[..i]) {
                eprintln!("greywall: {text}");
            }
        }
        if self.watch_buf.len() > 64 * 1024 {
            self.watch_buf.clear();
        }
    }

    fn accept(&mut self, i: usize) {
        let target = self.listeners[i].target;
        // Each readiness can stand for several pending connections.
        for _ in 0..64 {
            let client = match self.listeners[i].sock.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => return,
            };
            if let Some(c) = self.open(client, target) {
                self.conns.push(c);
            }
        }
    }

    /// The other end for a new client; `None` closes the client at once (also once it is
    /// handed over to proxyd).
    fn open(&self, client: TcpStream, target: Target) -> Option<Conn> {
        if let Some(reg) = self
            .registration
            .as_ref()
            .filter(|r| self.registered && r.adopt)
            && let Some(service) = target.service()
        {
            // proxyd serves the client on its own socket from now on; a failure closes it,
            // as a failed connection to proxyd does below.
            let _ = reg.hand_over(&client, &service);
            return None;
        }
        client.set_nonblocking(true).ok()?;
        let _ = client.set_nodelay(true);
        let (upstream, preamble, socks_reply) = match target {
            Target::Inside(port) => {
                let s = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).ok()?;
                let _ = s.set_nodelay(true);
                (Stream::Tcp(s), Vec::new(), None)
            }
            Target::Dns => {
                let reg = self.registration.as_ref().filter(|_| self.registered)?;
                (
                    Stream::Unix(reg.connect().ok()?),
                    reg.dns_preamble("tcp"),
                    None,
                )
            }
            Target::Http | Target::Socks | Target::HostPort(_) => {
                let reg = self.registration.as_ref().filter(|_| self.registered)?;
                let s = reg.connect().ok()?;
                let proto = if target == Target::Http {
                    "http"
                } else {
                    "socks5"
                };
                let mut pre = reg.connect_preamble(proto);
                let mut reply = None;
                if let Target::HostPort(port) = target {
                    // Greeting (no authentication) and CONNECT 127.0.0.1:port; proxyd's two
                    // replies are read and dropped before the client sees a byte.
                    pre.extend_from_slice(&[5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1]);
                    pre.extend_from_slice(&port.to_be_bytes());
                    reply = Some(Vec::new());
                }
                (Stream::Unix(s), pre, reply)
            }
        };
        upstream.set_nonblocking().ok()?;
        let mut up = Pipe::new();
        up.buf[..preamble.len()].copy_from_slice(&preamble);
        up.hi = preamble.len();
        Some(Conn {
            client: Stream::Tcp(client),
            upstream,
            up,
            down: Pipe::new(),
            socks_reply,
            done: false,
        })
    }
}

/// DNS datagrams from inside, carried over one `GW1 DNS <token> udp` connection to proxyd.
///
/// Each query gets an id of the relay's own (several clients may pick the same one), goes to
/// proxyd behind a two-byte length, and its answer goes back to the client that asked, with
/// the client's id. Queries that wait more than [`DNS_WAIT`] are forgotten; if proxyd closes
/// the connection, waiting queries are dropped (clients retry) and the next query opens a new
/// one.
struct DnsRelay {
    sock: UdpSocket,
    upstream: Option<UnixStream>,
    /// Framed queries (after the first line) not yet written to proxyd.
    out: Vec<u8>,
    /// Bytes from proxyd not yet a whole answer.
    input: Vec<u8>,
    /// The relay's id → the client, its id, and when it asked.
    pending: HashMap<u16, (SocketAddr, u16, Instant)>,
    next_id: u16,
}

impl DnsRelay {
    fn bind() -> Result<DnsRelay, String> {
        let sock = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], DNS_PORT)))
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|e| {
                format!("cannot listen on 127.0.0.1:{DNS_PORT}/udp inside the sandbox: {e}")
            })?;
        Ok(DnsRelay::with(sock))
    }

    /// A relay on a bound, non-blocking datagram socket, nothing asked yet.
    fn with(sock: UdpSocket) -> DnsRelay {
        DnsRelay {
            sock,
            upstream: None,
            out: Vec::new(),
            input: Vec::new(),
            pending: HashMap::new(),
            next_id: 0,
        }
    }

    /// `(fd, events)` for the datagram socket and the connection to proxyd.
    fn events(&self) -> ((RawFd, libc::c_short), (RawFd, libc::c_short)) {
        let udp = if self.out.len() < DNS_BACKLOG {
            libc::POLLIN
        } else {
            0
        };
        let up = match &self.upstream {
            Some(u) => {
                let mut ev = libc::POLLIN;
                if !self.out.is_empty() {
                    ev |= libc::POLLOUT;
                }
                (u.as_raw_fd(), ev)
            }
            None => (-1, 0),
        };
        ((self.sock.as_raw_fd(), udp), up)
    }

    fn ready(&mut self, reg: Option<&Registration>, datagrams: bool) {
        let now = Instant::now();
        self.pending
            .retain(|_, (_, _, t)| now.duration_since(*t) < DNS_WAIT);
        if datagrams {
            self.receive(reg, now);
        }
        if self.upstream.is_some() && self.exchange().is_err() {
            self.upstream = None;
            self.out.clear();
            self.input.clear();
            self.pending.clear();
        }
    }

    /// Reads the waiting datagrams and queues them for proxyd.
    fn receive(&mut self, reg: Option<&Registration>, now: Instant) {
        let mut buf = [0u8; 4096];
        for _ in 0..64 {
            let (n, from) = match self.sock.recv_from(&mut buf) {
                Ok(x) => x,
                Err(_) => return,
            };
            // Shorter than a header: not a query.
            let Some(msg) = buf.get(..n).filter(|m| m.len() >= 12) else {
                continue;
            };
            if self.out.len() >= DNS_BACKLOG {
                continue;
            }
            if self.upstream.is_none() {
                // Without a live registration there is nowhere to ask.
                let Some((reg, s)) = reg.and_then(|r| {
                    let s = r.connect().ok()?;
                    s.set_nonblocking(true).ok()?;
                    Some((r, s))
                }) else {
                    continue;
                };
                self.upstream = Some(s);
                self.out = reg.dns_preamble("udp");
                self.input.clear();
                self.pending.clear();
            }
            if self.pending.len() >= DNS_PENDING
                && let Some(oldest) = self
                    .pending
                    .iter()
                    .min_by_key(|(_, (_, _, t))| *t)
                    .map(|(id, _)| *id)
            {
                self.pending.remove(&oldest);
            }
            let mut id = self.next_id;
            while self.pending.contains_key(&id) {
                id = id.wrapping_add(1);
            }
            self.next_id = id.wrapping_add(1);
            self.pending
                .insert(id, (from, u16::from_be_bytes([msg[0], msg[1]]), now));
            let len = u16::try_from(n).unwrap_or(u16::MAX);
            self.out.extend_from_slice(&len.to_be_bytes());
            self.out.extend_from_slice(&id.to_be_bytes());
            self.out.extend_from_slice(&msg[2..]);
        }
    }

    /// Writes queued queries and reads answers; an error ends the connection.
    fn exchange(&mut self) -> io::Result<()> {
        let Some(up) = &self.upstream else {
            return Ok(());
        };
        while !self.out.is_empty() {
            match (&*up).write(&self.out) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if would_block(&e) => break,
                Err(e) => return Err(e),
            }
        }
        let mut buf = [0u8; 8192];
        loop {
            match (&*up).read(&mut buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(e) if would_block(&e) => break,
                Err(e) => return Err(e),
            }
        }
        let mut at = 0;
        while let Some(len) = self
            .input
            .get(at..at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        {
            let Some(msg) = self.input.get(at + 2..at + 2 + len) else {
                break;
            };
            if let Some(head) = msg.get(..2)
                && let Some((client, client_id, _)) =
                    self.pending.remove(&u16::from_be_bytes([head[0], head[1]]))
            {
                let mut reply = msg.to_vec();
                reply[..2].copy_from_slice(&client_id.to_be_bytes());
                let _ = self.sock.send_to(&reply, client);
            }
            at += 2 + len;
        }
        self.input.drain(..at);
        Ok(())
    }
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }
    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(true),
            Stream::Unix(s) => s.set_nonblocking(true),
        }
    }
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
        }
    }
    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write(buf),
            Stream::Unix(s) => (&*s).write(buf),
        }
    }
    fn shutdown_write(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        };
    }
}

/// One direction of a connection.
/// Buffers a connection's pump moves in one wake-up, at most.
const PUMP_ROUNDS: usize = 16;

struct Pipe {
    buf: Box<[u8]>,
    lo: usize,
    hi: usize,
    /// The source has ended.
    eof: bool,
    /// The destination was told (shutdown of its write side).
    shut: bool,
}

impl Pipe {
    fn new() -> Pipe {
        Pipe {
            buf: vec![0; BUF].into_boxed_slice(),
            lo: 0,
            hi: 0,
            eof: false,
            shut: false,
        }
    }
    fn can_read(&self) -> bool {
        !self.eof && self.hi < self.buf.len()
    }
    fn has_data(&self) -> bool {
        self.lo < self.hi
    }
    /// Moves what it can from `src` to `dst` without blocking: buffer after buffer while the
    /// source has bytes and the destination takes them all (at most [`PUMP_ROUNDS`] buffers a
    /// wake-up, so that one busy connection does not starve the others), where one buffer a
    /// wake-up made a bulk transfer a `poll` per 64 KiB.
    fn pump(&mut self, src: &Stream, dst: &Stream) -> io::Result<()> {
        for _ in 0..PUMP_ROUNDS {
            let mut got = 0;
            if self.can_read() {
                match src.read(&mut self.buf[self.hi..]) {
                    Ok(0) => self.eof = true,
                    Ok(n) => {
                        self.hi += n;
                        got = n;
                    }
                    Err(e) if would_block(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            self.flush(dst)?;
            if got == 0 || self.has_data() {
                break;
            }
        }
        Ok(())
    }
    fn flush(&mut self, dst: &Stream) -> io::Result<()> {
        if self.has_data() {
            match dst.write(&self.buf[self.lo..self.hi]) {
                Ok(n) => self.lo += n,
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(e),
            }
            if self.lo == self.hi {
                self.lo = 0;
                self.hi = 0;
            }
        }
        if self.eof && !self.has_data() && !self.shut {
            dst.shutdown_write();
            self.shut = true;
        }
        Ok(())
    }
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

struct Conn {
    /// The side that was accepted.
    client: Stream,
    upstream: Stream,
    /// Client to upstream.
    up: Pipe,
    /// Upstream to client.
    down: Pipe,
    /// A SOCKS5 exchange the bridge made itself: proxyd's replies, until complete.
    socks_reply: Option<Vec<u8>>,
    done: bool,
}

impl Conn {
    /// Poll events for the client and the upstream.
    fn events(&self) -> (libc::c_short, libc::c_short) {
        let mut a = 0;
        let mut b = 0;
        if self.socks_reply.is_some() {
            // The client waits until proxyd has answered the bridge's own request.
            b |= libc::POLLIN;
            if self.up.has_data() {
                b |= libc::POLLOUT;
            }
            return (a, b);
        }
        if self.up.can_read() {
            a |= libc::POLLIN;
        }
        if self.down.has_data() {
            a |= libc::POLLOUT;
        }
        if self.down.can_read() {
            b |= libc::POLLIN;
        }
        if self.up.has_data() {
            b |= libc::POLLOUT;
        }
        (a, b)
    }

    fn pump(&mut self) {
        let result = self.pump_inner();
        if result.is_err() || (self.up.shut && self.down.shut) {
            self.done = true;
        }
    }

    fn pump_inner(&mut self) -> io::Result<()> {
        if self.socks_reply.is_some() {
            self.up.flush(&self.upstream)?;
            return self.read_socks_reply();
        }
        self.up.pump(&self.client, &self.upstream)?;
        self.down.pump(&self.upstream, &self.client)
    }

    /// Reads proxyd's method and CONNECT replies; what follows them is the client's.
    fn read_socks_reply(&mut self) -> io::Result<()> {
        let Some(got) = self.socks_reply.as_mut() else {
            return Ok(());
        };
        let mut buf = [0u8; 512];
        let n = match self.upstream.read(&mut buf) {
            Ok(0) => return Err(io::ErrorKind::ConnectionAborted.into()),
            Ok(n) => n,
            Err(e) if would_block(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        got.extend_from_slice(&buf[..n]);
        let Some(len) = socks_reply_len(got)? else {
            return Ok(());
        };
        let rest = got.split_off(len);
        self.down.buf[..rest.len()].copy_from_slice(&rest);
        self.down.hi = rest.len();
        self.socks_reply = None;
        self.down.flush(&self.client)
    }
}

/// Length of a complete `[method reply][CONNECT reply]` prefix; an error when proxyd refused.
fn socks_reply_len(b: &[u8]) -> io::Result<Option<usize>> {
    let refused = || io::Error::from(io::ErrorKind::ConnectionRefused);
    if b.len() < 2 {
        return Ok(None);
    }
    if b[0] != 5 || b[1] != 0 {
        return Err(refused());
    }
    if b.len() < 2 + 5 {
        return Ok(None);
    }
    if b[2] != 5 || b[3] != 0 {
        return Err(refused());
    }
    let addr = match b[5] {
        1 => 4,
        4 => 16,
        3 => 1 + usize::from(b[6]),
        _ => return Err(refused()),
    };
    let len = 2 + 4 + addr + 2;
    Ok((b.len() >= len).then_some(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socks_replies_are_measured_and_refusals_seen() {
        let ok4 = [5, 0, 5, 0, 0, 1, 127, 0, 0, 1, 0, 80, b'x'];
        assert_eq!(socks_reply_len(&ok4).unwrap(), Some(12));
        assert_eq!(socks_reply_len(&ok4[..11]).unwrap(), None);
        assert_eq!(socks_reply_len(&[5]).unwrap(), None);
        let name = [5, 0, 5, 0, 0, 3, 1, b'a', 0, 80];
        assert_eq!(socks_reply_len(&name).unwrap(), Some(10));
        assert!(socks_reply_len(&[5, 0, 5, 2, 0, 1, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(socks_reply_len(&[5, 0xff]).is_err());
    }

    #[test]
    fn dns_datagrams_with_the_same_id_get_their_own_answers() {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_nonblocking(true).unwrap();
        let at = sock.local_addr().unwrap();
        let (up, proxyd) = UnixStream::pair().unwrap();
        up.set_nonblocking(true).unwrap();
        let mut relay = DnsRelay {
            sock,
            upstream: Some(up),
            out: Vec::new(),
            input: Vec::new(),
            pending: HashMap::new(),
            next_id: 7,
        };
        let clients: Vec<UdpSocket> = (0..2)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        for (i, c) in clients.iter().enumerate() {
            let mut q = vec![0x11, 0x11, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            q.push(b'a' + i as u8);
            c.send_to(&q, at).unwrap();
        }
        // Both datagrams go to proxyd, framed, with the relay's ids 7 and 8.
        let mut framed = Vec::new();
        for _ in 0..50 {
            relay.ready(None, true);
            let _ = proxyd.set_nonblocking(true);
            let mut buf = [0u8; 256];
            if let Ok(n) = (&proxyd).read(&mut buf) {
                framed.extend_from_slice(&buf[..n]);
            }
            if framed.len() >= 2 * 15 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(&framed[..4], &[0, 13, 0, 7]);
        assert_eq!(&framed[15..19], &[0, 13, 0, 8]);
        assert_eq!((framed[14], framed[29]), (b'a', b'b'));
        // Answers in the other order, one of them split across two reads.
        let answer = |id: u8, mark: u8| [0, 3, 0, id, mark];
        (&proxyd).write_all(&answer(8, b'B')).unwrap();
        (&proxyd).write_all(&answer(7, b'A')[..2]).unwrap();
        relay.ready(None, false);
        (&proxyd).write_all(&answer(7, b'A')[2..]).unwrap();
        relay.ready(None, false);
        for (c, mark) in clients.iter().zip([b'A', b'B']) {
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 16];
            let (n, from) = c.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&[0x11, 0x11, mark][..], at));
        }
        assert!(relay.pending.is_empty());
    }

    #[test]
    fn splices_both_ways_and_half_closes() {
        let (a, a_peer) = UnixStream::pair().unwrap();
        let (b, b_peer) = UnixStream::pair().unwrap();
        let mut c = Conn {
            client: Stream::Unix(a),
            upstream: Stream::Unix(b),
            up: Pipe::new(),
            down: Pipe::new(),
            socks_reply: None,
            done: false,
        };
        c.client.set_nonblocking().unwrap();
        c.upstream.set_nonblocking().unwrap();
        (&a_peer).write_all(b"hello").unwrap();
        a_peer.shutdown(Shutdown::Write).unwrap();
        (&b_peer).write_all(b"world").unwrap();
        for _ in 0..4 {
            c.pump();
        }
        let mut got = [0u8; 5];
        (&b_peer).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");
        let mut end = [0u8; 1];
        assert_eq!((&b_peer).read(&mut end).unwrap(), 0, "EOF passed on");
        (&a_peer).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"world");
        assert!(!c.done);
        b_peer.shutdown(Shutdown::Write).unwrap();
        for _ in 0..2 {
            c.pump();
        }
        assert!(c.done, "both sides ended");
    }
}
