//! Network egress end to end: `greywall exec` (native backend) with `allowedDomains`, the
//! launcher's bridge, and the real `greywall-proxyd`, with real clients (curl, python's urllib,
//! git) against local servers.
//!
//! Every test has its own scratch machine (HOME, a workspace with a policy, a runtime
//! directory, a state directory) and, unless it tests the launcher starting the daemon, its own
//! `greywall-proxyd` on its own socket, started with `--resolve NAME=127.0.0.1` for the test's
//! names and `--log` into the scratch state directory. Every byte goes to loopback. Refusals
//! of private and metadata addresses are checked where no packet can leave: here with names the
//! system resolves to loopback (`localhost`) and with loopback literals, and for the other
//! address classes in proxyd's own tests (`proxyd/src/dial.rs`, with the connector replaced).
//!
//! The daemon is the binary cargo builds next to `greywall` (`target/<profile>/greywall-proxyd`,
//! where the launcher looks for it too). `cargo test --workspace` builds it; `cargo test -p
//! greywall` does not, so [`proxyd_binary`] runs `cargo build -p greywall-proxyd` once per test
//! binary (a no-op when it is fresh), and says so. Where cargo cannot run (the unprivileged
//! user of `.ci/unprivileged.sh`, which builds it beforehand) an existing binary is used.
//!
//! One test keeps a daemon written here (`refusing_daemon`): a registration refused by the
//! daemon, which the real one only does for a damaged cache.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The audit log's keys, exactly (`/work` contract, docs/proxyd.md).
const AUDIT_KEYS: [&str; 14] = [
    "time",
    "sandbox",
    "label",
    "policy",
    "proto",
    "host",
    "port",
    "address",
    "decision",
    "rule",
    "reason",
    "bytes_up",
    "bytes_down",
    "duration_ms",
];

// ---- The daemon's binary -----------------------------------------------------------------

/// `greywall-proxyd` next to `greywall`, built (or confirmed fresh) once per test binary.
fn proxyd_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let profile_dir = Path::new(env!("CARGO_BIN_EXE_greywall")).parent().unwrap();
        let bin = profile_dir.join("greywall-proxyd");
        let mut build = Command::new(env!("CARGO"));
        build
            .args(["build", "--quiet", "-p", "greywall-proxyd", "--bin", "greywall-proxyd"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        match build.output() {
            Ok(o) if o.status.success() => {
                eprintln!("network tests: using {} (cargo build: fresh)", bin.display())
            }
            Ok(o) if bin.exists() => eprintln!(
                "network tests: WARNING: `cargo build -p greywall-proxyd` failed ({}); using the existing {}, which may be stale",
                String::from_utf8_lossy(&o.stderr).trim(),
                bin.display()
            ),
            Err(e) if bin.exists() => eprintln!(
                "network tests: WARNING: cannot run cargo ({e}); using the existing {}, which may be stale",
                bin.display()
            ),
            Ok(o) => panic!(
                "{} is missing and `cargo build -p greywall-proxyd` failed: {}",
                bin.display(),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => panic!(
                "{} is missing and cargo cannot run ({e}): run `cargo build -p greywall-proxyd` first",
                bin.display()
            ),
        }
        assert!(
            bin.exists(),
            "cargo built greywall-proxyd, but not at {}: the launcher looks for it there",
            bin.display()
        );
        bin
    })
}

// ---- A scratch machine ---------------------------------------------------------------------

/// HOME, a workspace with a policy, a runtime directory (0700) and a state directory.
struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    fn new(policy: &str) -> Lab {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        for d in ["home", "work", "state"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir.path().join("run"))
            .unwrap();
        std::fs::write(dir.path().join("work/greywall.json"), policy).unwrap();
        Lab { dir }
    }
    /// A lab whose daemon can run in namespaces of its own (`unshare`), or a loud skip.
    fn new_if_namespaces(policy: &str) -> Option<Lab> {
        let o = Command::new("unshare")
            .args(UNSHARE)
            .args(["--", "true"])
            .output();
        match o {
            Ok(o) if o.status.success() => Some(Lab::new(policy)),
            Ok(o) => {
                skip(&format!("unshare {UNSHARE:?} fails: {}", stderr(&o)));
                None
            }
            Err(e) => {
                skip(&format!("unshare cannot run: {e}"));
                None
            }
        }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn runtime(&self) -> PathBuf {
        self.path("run")
    }
    fn work(&self) -> PathBuf {
        self.path("work")
    }
    /// Where proxyd's socket is for this lab's runtime directory.
    fn socket(&self) -> PathBuf {
        self.runtime().join("greywall/proxyd.sock")
    }
    fn audit_log(&self) -> PathBuf {
        self.path("state/greywall/proxyd.log")
    }
    /// `greywall ARGS` in the workspace, with this lab's HOME and state, and `runtime` as
    /// `XDG_RUNTIME_DIR` (`None`: unset).
    fn command_in(&self, runtime: Option<&Path>, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_greywall"));
        c.args(args)
            .current_dir(self.work())
            .env_clear()
            .env("HOME", self.path("home"))
            .env("XDG_STATE_HOME", self.path("state"))
            .env("PATH", "/usr/local/bin:/usr/bin:/bin");
        if let Some(r) = runtime {
            c.env("XDG_RUNTIME_DIR", r);
        }
        c
    }
    fn command(&self, args: &[&str]) -> Command {
        self.command_in(Some(&self.runtime()), args)
    }
    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
    /// `greywall exec -- sh -c SCRIPT`.
    fn sh(&self, script: &str) -> Output {
        self.run(&["exec", "--", "sh", "-c", script])
    }
    /// Settings for a proxyd the launcher starts (it reads `~/.config/greywall/proxyd.json`).
    fn proxyd_config(&self, json: &str) {
        let dir = self.path("home/.config/greywall");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("proxyd.json"), json).unwrap();
    }
    /// The audit log's entries, once at least `n` are there (bounded wait: proxyd writes a
    /// line when the connection ends, which can be just after the client exits).
    fn audit(&self, n: usize) -> Vec<Value> {
        audit_entries(&self.audit_log(), n)
    }
    /// The egress rule set the compiler stored for the workspace's policy (there is one).
    fn ruleset_sha(&self) -> String {
        let dir = self.path("home/.cache/greywall/egress");
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let sha = names[0].strip_suffix(".json").unwrap().to_string();
        let bytes = std::fs::read(dir.join(&names[0])).unwrap();
        assert_eq!(greywall_compiler::cache::sha256_hex(&bytes), sha);
        sha
    }
}

fn audit_entries(log: &Path, n: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let entries: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        if entries.len() >= n || start.elapsed() > Duration::from_secs(5) {
            return entries;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Loud skip; a failure under GREYWALL_REQUIRE_KERNEL=1.
fn skip(why: &str) {
    let msg = format!("SKIP: {why}");
    assert!(
        std::env::var_os("GREYWALL_REQUIRE_KERNEL").is_none_or(|v| v != "1"),
        "{msg}"
    );
    eprintln!("{msg}");
}

fn ready() -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let r = READY.get_or_init(|| {
        for tool in ["curl", "python3", "openssl", "git"] {
            if Command::new(tool).arg("--version").output().is_err() {
                return Err(format!("{tool} is not installed"));
            }
        }
        let lab = Lab::new(r#"{"filesystem": {"allowWrite": ["."]}}"#);
        let o = lab.run(&["exec", "--", "true"]);
        if code(&o) != 0 {
            return Err(format!("the launcher cannot run here: {}", stderr(&o)));
        }
        proxyd_binary();
        Ok(())
    });
    match r {
        Ok(()) => true,
        Err(why) => {
            skip(why);
            false
        }
    }
}

// ---- The daemon ----------------------------------------------------------------------------

/// A greywall-proxyd this test started on the lab's socket; killed when dropped.
struct Proxyd {
    child: Child,
}

impl Proxyd {
    /// `greywall-proxyd --socket … --log … --resolve NAME=127.0.0.1 …`, once it answers.
    fn start(lab: &Lab, names: &[&str]) -> Proxyd {
        Proxyd::spawn(lab, names, Command::new(proxyd_binary()))
    }

    /// The daemon in a user, mount and network namespace of its own (same uid, so the
    /// launcher may use its socket), with `hosts` as its `/etc/hosts` and no network at all.
    fn start_isolated(lab: &Lab, hosts: &str) -> Proxyd {
        let file = lab.path("hosts");
        std::fs::write(&file, hosts).unwrap();
        let mut c = Command::new("unshare");
        c.args(UNSHARE)
            .args([
                "--",
                "sh",
                "-c",
                "mount --bind \"$1\" /etc/hosts && shift && exec \"$@\"",
                "sh",
            ])
            .arg(file)
            .arg(proxyd_binary());
        Proxyd::spawn(lab, &[], c)
    }

    fn spawn(lab: &Lab, names: &[&str], c: Command) -> Proxyd {
        Proxyd::spawn_on(lab, names, c, &lab.socket())
    }

    /// [`Proxyd::spawn`] listening on `socket` instead of the lab's.
    fn spawn_on(lab: &Lab, names: &[&str], mut c: Command, socket: &Path) -> Proxyd {
        c.arg("--socket")
            .arg(socket)
            .arg("--log")
            .arg(lab.audit_log())
            .args(["--idle-timeout", "0"])
            .env_clear()
            .env("HOME", lab.path("home"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(lab.path("proxyd.stderr"))
                    .map(Stdio::from)
                    .unwrap(),
            );
        for n in names {
            c.arg("--resolve").arg(format!("{n}=127.0.0.1"));
        }
        let child = c.spawn().unwrap();
        let mut p = Proxyd { child };
        let start = Instant::now();
        while ping(socket).is_none() {
            if let Some(status) = p.child.try_wait().unwrap() {
                panic!(
                    "greywall-proxyd exited ({status}): {}",
                    std::fs::read_to_string(lab.path("proxyd.stderr")).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "greywall-proxyd did not answer"
            );
            thread::sleep(Duration::from_millis(10));
        }
        p
    }
}

impl Drop for Proxyd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A user namespace mapping this user to itself, keeping its capabilities there (to mount
/// over `/etc/hosts`), a mount namespace, and a network namespace with no interface up.
const UNSHARE: [&str; 5] = [
    "--map-current-user",
    "--keep-caps",
    "--mount",
    "--net",
    "--propagation=private",
];

/// `GW1 PING` on `socket`: proxyd's answer.
fn ping(socket: &Path) -> Option<String> {
    let s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    (&s).write_all(b"GW1 PING\n").ok()?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).ok()?;
    Some(line)
}

/// Live greywall-proxyd processes listening on `socket` (started by a launcher: the test
/// knows them only this way).
fn proxyd_pids(socket: &Path) -> Vec<u32> {
    let want = socket.as_os_str().as_encoded_bytes();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_proxyd = args
            .first()
            .is_some_and(|a| a.ends_with(b"/greywall-proxyd"));
        let on_socket = args.windows(2).any(|w| w[0] == b"--socket" && w[1] == want);
        if is_proxyd && on_socket {
            pids.push(pid);
        }
    }
    pids
}

/// `(process group, session)` of a process, from `/proc/PID/stat`.
fn group_and_session(pid: u32) -> (u32, u32) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    (f[2].parse().unwrap(), f[3].parse().unwrap())
}

/// Ends the daemons a launcher started on `socket` (only those: found by their socket).
struct Reap(PathBuf);

impl Drop for Reap {
    fn drop(&mut self) {
        for pid in proxyd_pids(&self.0) {
            kill(pid);
        }
    }
}

fn kill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

// ---- Servers -------------------------------------------------------------------------------

/// A web server on 127.0.0.1 that answers every request with `hello from NAME`.
fn web_server(name: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                // Request line and headers.
                while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let body = format!("hello from {name}\n");
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

const SERVE_PY: &str = r#"
import functools, http.server, ssl, sys
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(
    ("127.0.0.1", 0), functools.partial(Quiet, directory=sys.argv[1]))
if len(sys.argv) > 2:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// A python file server on 127.0.0.1 (HTTPS with `tls = (cert, key)`); killed when dropped.
struct FileServer {
    child: Child,
    port: u16,
}

impl FileServer {
    fn start(root: &Path, tls: Option<(&Path, &Path)>) -> FileServer {
        let mut c = Command::new("python3");
        c.arg("-c").arg(SERVE_PY).arg(root);
        if let Some((cert, key)) = tls {
            c.arg(cert).arg(key);
        }
        let mut child = c
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| panic!("{line:?}"));
        FileServer { child, port }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed certificate for `name` (in the lab's workspace, readable inside) and its key
/// (outside it).
fn certificate(lab: &Lab, name: &str) -> (PathBuf, PathBuf) {
    let cert = lab.work().join("cert.pem");
    let key = lab.path("key.pem");
    let o = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .arg("-subj")
        .arg(format!("/CN={name}"))
        .arg("-addext")
        .arg(format!("subjectAltName=DNS:{name}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    (cert, key)
}

fn policy(domains: &[&str]) -> String {
    format!(
        r#"{{"network": {{"allowedDomains": {}}}, "filesystem": {{"allowWrite": ["."]}}}}"#,
        serde_json::json!(domains)
    )
}

/// `curl -sS --max-time 10 ARGS`, printing the body or `%{http_code}` as the caller asks.
fn curl<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["exec", "--", "curl", "-sS", "--max-time", "10"];
    v.extend_from_slice(extra);
    v
}

// ---- Tests ---------------------------------------------------------------------------------

#[test]
fn allowed_names_work_over_http_https_socks_urllib_and_git() {
    if !ready() {
        return;
    }
    let lab = Lab::new(&policy(&["allowed.test", "secure.test", "git.test"]));
    let _proxyd = Proxyd::start(&lab, &["allowed.test", "secure.test", "git.test"]);
    let port = web_server("the allowed server");
    let url = format!("http://allowed.test:{port}/");

    // Plain HTTP through HTTP_PROXY (absolute-form request).
    let o = lab.run(&curl(&["-f", &url]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello from the allowed server\n");
    // Plain HTTP through a CONNECT tunnel.
    let o = lab.run(&curl(&["-f", "-p", &url]));
    assert_eq!(
        stdout(&o),
        "hello from the allowed server\n",
        "{}",
        stderr(&o)
    );
    // SOCKS5 with the name resolved by proxyd, explicitly and through ALL_PROXY alone.
    let o = lab.run(&curl(&["-f", "--socks5-hostname", "127.0.0.1:1080", &url]));
    assert_eq!(
        stdout(&o),
        "hello from the allowed server\n",
        "{}",
        stderr(&o)
    );
    let o = lab.sh(&format!(
        "unset HTTP_PROXY http_proxy HTTPS_PROXY https_proxy; echo \"$ALL_PROXY\" >&2; curl -sS -f --max-time 10 {url}"
    ));
    assert_eq!(
        stdout(&o),
        "hello from the allowed server\n",
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("socks5h://127.0.0.1:1080"),
        "{}",
        stderr(&o)
    );

    // HTTPS: CONNECT to a local TLS server, the certificate checked against its name.
    let site = lab.path("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("hello.txt"), "hello over TLS\n").unwrap();
    let (cert, key) = certificate(&lab, "secure.test");
    let tls = FileServer::start(&site, Some((&cert, &key)));
    let https = format!("https://secure.test:{}/hello.txt", tls.port);
    let o = lab.run(&curl(&["-f", "--cacert", "cert.pem", &https]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello over TLS\n");

    // Python's urllib follows the proxy environment, for HTTP and HTTPS.
    let py = format!(
        "import ssl, urllib.request\n\
         ctx = ssl.create_default_context(cafile='cert.pem')\n\
         print(urllib.request.urlopen('{url}', timeout=10).read().decode(), end='')\n\
         print(urllib.request.urlopen('{https}', timeout=10, context=ctx).read().decode(), end='')\n"
    );
    let o = lab.run(&["exec", "--", "python3", "-c", &py]);
    assert_eq!(
        stdout(&o),
        "hello from the allowed server\nhello over TLS\n",
        "{}",
        stderr(&o)
    );

    // git clone over (dumb) HTTP.
    let repos = lab.path("repos");
    let git = |dir: &Path, args: &[&str]| {
        let o = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(dir)
            .env("HOME", lab.path("home"))
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {}", stderr(&o));
    };
    std::fs::create_dir_all(repos.join("src")).unwrap();
    let src = repos.join("src");
    git(&src, &["init", "-q"]);
    std::fs::write(src.join("README"), "cloned through greywall-proxyd\n").unwrap();
    git(&src, &["add", "README"]);
    git(&src, &["commit", "-q", "-m", "first"]);
    git(&repos, &["clone", "-q", "--bare", "src", "repo.git"]);
    git(&repos.join("repo.git"), &["update-server-info"]);
    let files = FileServer::start(&repos, None);
    let o = lab.run(&[
        "exec",
        "--",
        "git",
        "clone",
        "-q",
        &format!("http://git.test:{}/repo.git", files.port),
        "clone",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(lab.work().join("clone/README")).unwrap(),
        "cloned through greywall-proxyd\n"
    );
}

#[test]
fn denied_names_get_403_naming_the_rule_and_a_socks_refusal() {
    if !ready() {
        return;
    }
    let lab = Lab::new(
        r#"{
  "network": {
    "allowedDomains": ["allowed.test", "denied.test"],
    "deniedDomains": ["denied.test"]
  },
  "filesystem": {"allowWrite": ["."]}
}"#,
    );
    let _proxyd = Proxyd::start(&lab, &["allowed.test", "denied.test"]);
    let port = web_server("a server nobody should reach");
    let url = format!("http://denied.test:{port}/");
    // Plain HTTP: 403, with the rule and where it was written.
    let o = lab.run(&curl(&["-i", &url]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let head = stdout(&o).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 403"), "{head}");
    let origin =
        format!("{}:4:23", lab.work().join("greywall.json").display()).to_ascii_lowercase();
    assert!(
        head.lines()
            .any(|l| l.trim_end() == format!("x-greywall-rule: denied.test ({origin})")),
        "{head}"
    );
    assert!(head.contains("x-greywall-reason: denied by rule"), "{head}");
    assert!(!head.contains("nobody should reach"), "{head}");
    // HTTPS clients ask for a tunnel: refused with 403 too.
    let o = lab.run(&curl(&["-p", &url]));
    assert_eq!(code(&o), 56, "{}", stderr(&o));
    assert!(stderr(&o).contains("403"), "{}", stderr(&o));
    // SOCKS5: reply 0x02 (not allowed by the rule set); curl's exit 97.
    let o = lab.run(&curl(&["--socks5-hostname", "127.0.0.1:1080", &url]));
    assert_eq!(code(&o), 97, "{}", stderr(&o));
    assert!(stderr(&o).contains("(2)"), "{}", stderr(&o));
    // A name no rule allows: 403 without a rule.
    let lab2 = Lab::new(&policy(&["allowed.test"]));
    let _proxyd2 = Proxyd::start(&lab2, &["allowed.test", "other.test"]);
    let o = lab2.run(&curl(&["-i", &format!("http://other.test:{port}/")]));
    let head = stdout(&o).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 403"), "{head}{}", stderr(&o));
    assert!(
        head.contains("x-greywall-reason: no alloweddomains rule matches"),
        "{head}"
    );
    assert!(!head.contains("x-greywall-rule"), "{head}");
    // The allowed name still works in the same sandbox set-up.
    let o = lab.run(&curl(&["-f", &format!("http://allowed.test:{port}/")]));
    assert_eq!(
        stdout(&o),
        "hello from a server nobody should reach\n",
        "{}",
        stderr(&o)
    );
}

/// `/etc/hosts` for a proxyd in namespaces of its own: public-looking names that point at
/// the metadata service, a private range, link-local and loopback addresses.
const REBINDING_HOSTS: &str = "\
127.0.0.1 localhost
169.254.169.254 meta.rebind.test
fd00:ec2::254 meta6.rebind.test
10.1.2.3 private.rebind.test
169.254.7.7 linklocal.rebind.test
127.0.0.1 loop.rebind.test
";

#[test]
fn addresses_are_refused_unless_a_rule_names_them() {
    if !ready() {
        return;
    }
    let port = web_server("the host's loopback");
    let refused = |o: &Output, reason: &str| {
        let head = stdout(o).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 403"), "{head}{}", stderr(o));
        assert!(
            head.contains(&format!("x-greywall-reason: {reason}")),
            "{reason}: {head}"
        );
    };
    let via_proxy = |lab: &Lab, url: &str| {
        lab.run(&curl(&[
            "-x",
            "http://127.0.0.1:3128",
            "--noproxy",
            "",
            "-i",
            url,
        ]))
    };
    // Address literals are not names: refused unless a rule names the address.
    let lab = Lab::new(&policy(&["allowed.test"]));
    let _proxyd = Proxyd::start(&lab, &["allowed.test"]);
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://127.1.2.3:{port}/"),
        format!("http://[::1]:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
    ] {
        refused(&via_proxy(&lab, &url), "no alloweddomains rule matches");
    }
    let named = Lab::new(&policy(&["127.0.0.1"]));
    let _named_proxyd = Proxyd::start(&named, &[]);
    let o = via_proxy(&named, &format!("http://127.0.0.1:{port}/"));
    assert!(
        stdout(&o).ends_with("hello from the host's loopback\n"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );

    // Names the policy allows, which the system resolver (no --resolve mapping) answers with
    // addresses no rule names: refused after resolution (DNS rebinding). This daemon runs in a
    // network namespace of its own with no interface up, so even a wrong decision could not
    // send a packet: it would show as 502 (no route), not as this 403.
    let Some(lab) = Lab::new_if_namespaces(&policy(&[
        "meta.rebind.test",
        "meta6.rebind.test",
        "private.rebind.test",
        "linklocal.rebind.test",
        "loop.rebind.test",
    ])) else {
        return;
    };
    let _proxyd = Proxyd::start_isolated(&lab, REBINDING_HOSTS);
    for (name, class) in [
        ("meta.rebind.test", "cloud metadata"),
        ("meta6.rebind.test", "cloud metadata"),
        ("private.rebind.test", "private"),
        ("linklocal.rebind.test", "link-local"),
        ("loop.rebind.test", "loopback"),
    ] {
        let o = via_proxy(&lab, &format!("http://{name}/"));
        refused(&o, &format!("{class} address, not named by any rule"));
    }
    let entries = lab.audit(5);
    assert_eq!(entries.len(), 5, "{entries:?}");
    for e in &entries {
        assert_eq!(s(e, "decision"), "deny", "{e}");
        assert_eq!(e["address"], Value::Null, "never dialled: {e}");
    }
    // The control: with the addresses named by rules, the same names are dialled (and, in
    // that empty namespace, find no route: 502).
    let control = Lab::new(&policy(&[
        "meta.rebind.test",
        "169.254.169.254",
        "private.rebind.test",
        "10.0.0.0/8",
    ]));
    let _control_proxyd = Proxyd::start_isolated(&control, REBINDING_HOSTS);
    for name in ["meta.rebind.test", "private.rebind.test"] {
        let o = via_proxy(&control, &format!("http://{name}/"));
        let head = stdout(&o).to_ascii_lowercase();
        assert!(
            head.starts_with("http/1.1 502"),
            "{name}: {head}{}",
            stderr(&o)
        );
    }
}

#[test]
fn clients_ignoring_the_proxy_have_no_route() {
    if !ready() {
        return;
    }
    let lab = Lab::new(&policy(&["allowed.test"]));
    let _proxyd = Proxyd::start(&lab, &["allowed.test"]);
    let port = web_server("the host");
    // The host's loopback server is not the sandbox's loopback.
    let o = lab.run(&curl(&[
        "--noproxy",
        "*",
        &format!("http://127.0.0.1:{port}/"),
    ]));
    assert_eq!(code(&o), 7, "connection refused inside: {}", stderr(&o));
    // Anything else: no route at all.
    let direct = "import socket\nfor a in [('192.0.2.1', 80), ('169.254.169.254', 80)]:\n    try:\n        socket.create_connection(a, timeout=5)\n        print('connected')\n    except OSError as e:\n        print(e.errno)\n";
    let o = lab.run(&["exec", "--", "python3", "-c", direct]);
    let unreach = libc::ENETUNREACH.to_string();
    assert_eq!(
        stdout(&o).lines().collect::<Vec<_>>(),
        [unreach.as_str(), unreach.as_str()],
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_proxy_environment_is_set_and_proxyd_stays_hidden() {
    if !ready() {
        return;
    }
    let lab = Lab::new(&policy(&["allowed.test", "git.example.test:22"]));
    let _proxyd = Proxyd::start(&lab, &[]);
    let o = lab.run(&["exec", "--", "env"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let env = stdout(&o);
    for line in [
        "HTTP_PROXY=http://127.0.0.1:3128",
        "http_proxy=http://127.0.0.1:3128",
        "HTTPS_PROXY=http://127.0.0.1:3128",
        "https_proxy=http://127.0.0.1:3128",
        "ALL_PROXY=socks5h://127.0.0.1:1080",
        "all_proxy=socks5h://127.0.0.1:1080",
        "NO_PROXY=localhost,127.0.0.1,::1",
        "no_proxy=localhost,127.0.0.1,::1",
        "NODE_USE_ENV_PROXY=1",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} not in\n{env}");
    }
    assert!(
        env.lines()
            .any(|l| l.starts_with("GIT_SSH_COMMAND=ssh -o ProxyCommand=")
                && l.contains("__socks-connect 1080 %h %p")),
        "{env}"
    );
    // proxyd's directory is empty or unreadable inside; its socket cannot be reached.
    let probe = format!(
        "import os, socket\ntry:\n    print(os.listdir({d:?}))\nexcept OSError:\n    print('unreadable')\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect({d:?} + '/proxyd.sock')\n    print('connected')\nexcept OSError as e:\n    print('refused')\n",
        d = lab.runtime().join("greywall").to_string_lossy()
    );
    let o = lab.run(&["exec", "--", "python3", "-c", &probe]);
    let seen = stdout(&o);
    assert!(
        seen == "[]\nrefused\n" || seen == "unreadable\nrefused\n",
        "{seen}{}",
        stderr(&o)
    );
    // A policy without allowedDomains gets no proxy environment and no registration.
    let plain = Lab::new(r#"{"filesystem": {"allowWrite": ["."]}}"#);
    let o = plain
        .command_in(Some(&lab.runtime()), &["exec", "--", "env"])
        .output()
        .unwrap();
    assert!(!stdout(&o).contains("_PROXY="), "{}", stdout(&o));
}

#[test]
fn two_sandboxes_with_different_policies_get_different_answers() {
    if !ready() {
        return;
    }
    let a = Lab::new(&policy(&["a.test"]));
    let b = Lab::new(&policy(&["b.test"]));
    // One daemon, in a's runtime directory, serves both at once.
    let _proxyd = Proxyd::start(&a, &["a.test", "b.test"]);
    let port = web_server("the shared server");
    // Both sandboxes (and their registrations) live until both have asked: they overlap.
    let script = format!(
        "for h in a.test b.test; do curl -s -o /dev/null -w \"$h %{{http_code}}\\n\" --max-time 10 http://$h:{port}/; done; touch asked; \
         i=0; while [ ! -e go ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done"
    );
    let spawn = |lab: &Lab| {
        lab.command_in(Some(&a.runtime()), &["exec", "--", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (ca, cb) = (spawn(&a), spawn(&b));
    let start = Instant::now();
    while !(a.work().join("asked").exists() && b.work().join("asked").exists()) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the sandboxes never asked"
        );
        thread::sleep(Duration::from_millis(10));
    }
    // Both registered at once with the one daemon.
    let entries = a.audit(4);
    for lab in [&a, &b] {
        std::fs::write(lab.work().join("go"), "").unwrap();
    }
    let (oa, ob) = (
        ca.wait_with_output().unwrap(),
        cb.wait_with_output().unwrap(),
    );
    assert_eq!(stdout(&oa), "a.test 200\nb.test 403\n", "{}", stderr(&oa));
    assert_eq!(stdout(&ob), "a.test 403\nb.test 200\n", "{}", stderr(&ob));
    // Two sandboxes in the audit log, each with its own policy.
    let sandboxes: BTreeSet<(&str, &str)> = entries
        .iter()
        .map(|e| (s(e, "sandbox"), s(e, "policy")))
        .collect();
    assert_eq!(sandboxes.len(), 2, "{entries:?}");
    let policies: BTreeSet<&str> = sandboxes.iter().map(|x| x.1).collect();
    assert_eq!(policies.len(), 2, "{entries:?}");
}

#[test]
fn the_audit_log_has_one_line_per_connection_and_logs_and_monitor_show_denials() {
    if !ready() {
        return;
    }
    let lab = Lab::new(&policy(&["allowed.test"]));
    let _proxyd = Proxyd::start(&lab, &["allowed.test", "denied.test"]);
    let port = web_server("the logged server");
    let ok = format!("http://allowed.test:{port}/");
    let denied = format!("http://denied.test:{port}/");
    let socks = ["--socks5-hostname", "127.0.0.1:1080"];
    for args in [
        vec!["-f", ok.as_str()],
        vec!["-p", ok.as_str()],
        vec![socks[0], socks[1], ok.as_str()],
        vec![denied.as_str()],
    ] {
        let o = lab.run(&curl(&args));
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
    }
    let entries = lab.audit(4);
    thread::sleep(Duration::from_millis(200));
    let entries_later = lab.audit(4);
    assert_eq!(entries.len(), 4, "one line per connection: {entries:?}");
    assert_eq!(entries_later.len(), 4, "{entries_later:?}");
    let sha = lab.ruleset_sha();
    let mut sandboxes = BTreeSet::new();
    for e in &entries {
        let keys: BTreeSet<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, AUDIT_KEYS.into_iter().collect(), "{e}");
        assert_eq!(s(e, "policy"), sha, "{e}");
        assert_eq!(s(e, "label"), "curl", "{e}");
        assert_eq!(e["port"], port, "{e}");
        let id = s(e, "sandbox");
        assert!(
            id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{e}"
        );
        sandboxes.insert(id.to_string());
        assert!(s(e, "time").ends_with('Z'), "{e}");
        assert!(e["duration_ms"].is_u64(), "{e}");
    }
    assert_eq!(sandboxes.len(), 4, "each exec is its own sandbox");
    let seen: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| (s(e, "proto"), s(e, "host"), s(e, "decision")))
        .collect();
    assert_eq!(
        seen,
        [
            ("http", "allowed.test", "allow"),
            ("http", "allowed.test", "allow"),
            ("socks5", "allowed.test", "allow"),
            ("http", "denied.test", "deny"),
        ]
    );
    for e in &entries[..3] {
        assert_eq!(s(e, "address"), format!("127.0.0.1:{port}"), "{e}");
        assert!(e["bytes_up"].as_u64().unwrap() > 0, "{e}");
        assert!(e["bytes_down"].as_u64().unwrap() > 0, "{e}");
        assert_eq!(e["rule"]["text"], "allowed.test", "{e}");
        assert!(
            s(&e["rule"], "origin").ends_with("greywall.json:1:33"),
            "{e}"
        );
    }
    assert_eq!(entries[3]["rule"], Value::Null);
    assert_eq!(s(&entries[3], "reason"), "no allowedDomains rule matches");

    // `greywall logs`: all, denials only, JSON.
    let o = lab.run(&["logs"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[0].contains("allow") && lines[0].contains(&format!("allowed.test:{port}")));
    assert!(lines[0].contains("rule \"allowed.test\""), "{}", lines[0]);
    let o = lab.run(&["logs", "--denied"]);
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains(&format!(
            "deny   curl  denied.test:{port}  no allowedDomains rule matches"
        )),
        "{out}"
    );
    let o = lab.run(&["logs", "-n", "1", "--json"]);
    let last: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(last, entries[3]);

    // `greywall exec -m`: the denial printed as it happens, the allowed request not.
    let o = lab.sh(&format!(
        "curl -s -o /dev/null --max-time 10 {ok}; curl -s -o /dev/null --max-time 10 {denied}; sleep 0.3"
    ));
    assert!(
        !stderr(&o).contains("denied denied.test"),
        "no -m, no denials printed"
    );
    let o = lab.run(&[
        "exec",
        "-m",
        "--",
        "sh",
        "-c",
        &format!(
            "curl -s -o /dev/null --max-time 10 {ok}; curl -s -o /dev/null --max-time 10 {denied}; sleep 0.3"
        ),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let printed: Vec<String> = stderr(&o)
        .lines()
        .filter(|l| l.contains("denied ") && !l.contains("note:"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        printed,
        [format!(
            "greywall: denied denied.test:{port} (no allowedDomains rule matches)"
        )],
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_launcher_starts_one_proxyd_and_restarts_a_killed_one() {
    if !ready() {
        return;
    }
    let lab = Lab::new(&policy(&["allowed.test"]));
    lab.proxyd_config(r#"{"resolve": {"allowed.test": "127.0.0.1"}}"#);
    let _reap = Reap(lab.socket());
    let port = web_server("the autostart server");
    let url = format!("http://allowed.test:{port}/");
    assert!(ping(&lab.socket()).is_none());
    // Four launches at once, no daemon running: one starts it, under the lock.
    let launches: Vec<Child> = (0..4)
        .map(|_| {
            lab.command(&curl(&["-f", &url]))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in launches {
        let o = c.wait_with_output().unwrap();
        assert_eq!(
            stdout(&o),
            "hello from the autostart server\n",
            "{}",
            stderr(&o)
        );
    }
    let pids = proxyd_pids(&lab.socket());
    assert_eq!(pids.len(), 1, "one daemon: {pids:?}");
    // Detached: a session (and process group) of its own, not the test's (the launcher's);
    // its standard error is a file it keeps bounded.
    let (group, session) = group_and_session(pids[0]);
    assert_eq!(
        (group, session),
        (pids[0], pids[0]),
        "proxyd is a session leader"
    );
    assert_ne!(group_and_session(std::process::id()).1, pids[0]);
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pids[0])).unwrap();
    let stderr_file = lab.runtime().join("greywall/proxyd.stderr");
    let mut want = b"\0--new-session\0--stderr\0".to_vec();
    want.extend_from_slice(stderr_file.as_os_str().as_encoded_bytes());
    assert!(
        cmdline.windows(want.len()).any(|w| w == want.as_slice()),
        "{}",
        String::from_utf8_lossy(&cmdline)
    );
    let started = std::fs::read_to_string(lab.runtime().join("greywall/proxyd.stderr")).unwrap();
    assert_eq!(
        started.matches("listening on").count(),
        1,
        "one daemon ever started: {started}"
    );
    assert!(
        ping(&lab.socket())
            .unwrap()
            .starts_with("OK greywall-proxyd ")
    );
    // It writes the audit log where `greywall logs` reads it.
    assert_eq!(lab.audit(4).len(), 4);

    // Killed while a sandbox runs: that sandbox's next connection fails cleanly; the next
    // sandbox starts a new daemon.
    let script = format!(
        "curl -sS -f --max-time 10 {url}; touch first; i=0; while [ ! -e killed ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; \
         curl -sS -f --max-time 10 {url}; echo \"second: $?\""
    );
    let running = lab
        .command(&["exec", "--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !lab.work().join("first").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the sandbox never asked"
        );
        thread::sleep(Duration::from_millis(10));
    }
    kill(pids[0]);
    while !proxyd_pids(&lab.socket()).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(20));
        thread::sleep(Duration::from_millis(10));
    }
    std::fs::write(lab.work().join("killed"), "").unwrap();
    let o = running.wait_with_output().unwrap();
    let out = stdout(&o);
    assert!(
        out.starts_with("hello from the autostart server\n"),
        "{out}"
    );
    assert!(
        out.lines()
            .last()
            .is_some_and(|l| l.starts_with("second: ") && l != "second: 0"),
        "{out}{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("ended this sandbox's registration"),
        "{}",
        stderr(&o)
    );
    let o = lab.run(&curl(&["-f", &url]));
    assert_eq!(
        stdout(&o),
        "hello from the autostart server\n",
        "{}",
        stderr(&o)
    );
    let again = proxyd_pids(&lab.socket());
    assert_eq!(again.len(), 1, "{again:?}");
    assert_ne!(again[0], pids[0]);
}

#[test]
fn without_xdg_runtime_dir_the_tmp_fallback_is_used() {
    if !ready() {
        return;
    }
    // `localhost` is named by a rule, so any daemon of this user serves it the same way (it
    // needs no --resolve): the test works whether or not one already runs in /tmp/greywall-UID.
    let lab = Lab::new(&policy(&["localhost"]));
    let uid = std::fs::metadata(lab.path("home")).map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid()
    });
    let socket = PathBuf::from(format!("/tmp/greywall-{}/proxyd.sock", uid.unwrap()));
    let ours = ping(&socket).is_none();
    let _reap = ours.then(|| Reap(socket.clone()));
    let port = web_server("the fallback server");
    let o = lab
        .command_in(
            None,
            &curl(&[
                "-f",
                "-x",
                "http://127.0.0.1:3128",
                "--noproxy",
                "",
                &format!("http://localhost:{port}/"),
            ]),
        )
        .output()
        .unwrap();
    assert_eq!(
        stdout(&o),
        "hello from the fallback server\n",
        "{}",
        stderr(&o)
    );
    assert!(
        ping(&socket).is_some(),
        "a daemon listens on {}",
        socket.display()
    );
    let mode = std::fs::metadata(socket.parent().unwrap()).unwrap();
    assert_eq!(mode.permissions().mode() & 0o777, 0o700);
}

#[test]
fn without_a_usable_proxyd_the_command_does_not_run() {
    if !ready() {
        return;
    }
    let lab = Lab::new(&policy(&["allowed.test"]));
    let marker = lab.work().join("ran");
    let touch = ["exec", "--", "touch", marker.to_str().unwrap()];
    let one_error = |o: &Output| {
        let text = stderr(o);
        let errors: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with("greywall: note:"))
            .map(str::to_string)
            .collect();
        assert_eq!(errors.len(), 1, "one line: {errors:?}");
        errors[0].clone()
    };

    // A daemon that cannot start (its settings are wrong): 125, its reason, nothing runs.
    let _reap = Reap(lab.socket());
    lab.proxyd_config(r#"{"resolv": {}}"#);
    let o = lab.run(&touch);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    let line = one_error(&o);
    assert!(
        line.contains("greywall-proxyd") && line.contains("unknown key `resolv`"),
        "{line}"
    );
    assert!(
        !marker.exists(),
        "the command never runs without its network"
    );
    std::fs::remove_file(lab.path("home/.config/greywall/proxyd.json")).unwrap();

    // proxyd's directory open to others: refused, and nothing runs.
    let dir = lab.runtime().join("greywall");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = lab.run(&touch);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    assert!(one_error(&o).contains("greywall-proxyd"), "{}", stderr(&o));
    assert!(!marker.exists());
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();

    // A daemon that refuses the registration: the same.
    refusing_daemon(&lab.socket());
    let o = lab.run(&touch);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    assert!(one_error(&o).contains("not today"), "{}", stderr(&o));
    assert!(!marker.exists());
}

/// A daemon that answers every registration with `ERR not today`.
fn refusing_daemon(socket: &Path) {
    let l = UnixListener::bind(socket).unwrap();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut line = String::new();
            let _ = BufReader::new(&s).read_line(&mut line);
            let _ = (&s).write_all(b"ERR not today\n");
        }
    });
}

#[test]
fn exposed_ports_reach_a_server_inside() {
    if !ready() {
        return;
    }
    for backend in ["native", "bwrap"] {
        if backend == "bwrap" && !common::bwrap_installed() {
            skip("bwrap is not installed");
            continue;
        }
        exposed_port_reaches_a_server_inside(backend);
    }
}

fn exposed_port_reaches_a_server_inside(backend: &str) {
    let lab = Lab::new(r#"{"filesystem": {"allowWrite": ["."]}}"#);
    // A free port on the host's loopback.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!(
        "import socket\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('127.0.0.1', {port}))\ns.listen(1)\nprint('listening', flush=True)\nc, _ = s.accept()\nc.sendall(b'from inside: ' + c.recv(100))\nc.close()\n"
    );
    let mut child = lab
        .command(&[
            "exec",
            "--backend",
            backend,
            "-p",
            &port.to_string(),
            "--",
            "python3",
            "-c",
            &server,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "listening\n", "{backend}");
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"ping").unwrap();
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    assert_eq!(got, "from inside: ping", "{backend}");
    let status = child.wait().unwrap();
    assert!(status.success(), "{backend}");
}

/// `--backend bwrap` bridges a network policy as the native backend does: proxyd's HTTP and
/// SOCKS5 proxies on the sandbox's loopback, DNS for allowed names only (glibc's resolver
/// through the sandbox's resolv.conf, IPv4 alone with `AI_ADDRCONFIG` too), nothing else, and
/// no capability left to the command from the ones bwrap added for the launcher inside.
#[test]
fn the_bwrap_backend_bridges_the_network_as_the_native_one_does() {
    if !ready() {
        return;
    }
    if !common::bwrap_installed() {
        skip("bwrap is not installed");
        return;
    }
    let lab = Lab::new(&policy(&["allowed.test"]));
    let _proxyd = Proxyd::start(&lab, &["allowed.test", "other.test"]);
    let port = web_server("the allowed server");
    let script = format!(
        "curl -sS -f --max-time 10 http://allowed.test:{port}/; \
         curl -sS --max-time 10 -o /dev/null -w '%{{http_code}}\\n' http://other.test:{port}/; \
         curl -sS -f --max-time 10 --socks5-hostname 127.0.0.1:1080 http://allowed.test:{port}/; \
         getent ahostsv4 allowed.test | head -n 1 | cut -d' ' -f1; \
         getent hosts other.test || echo 'other.test: no answer'; \
         grep '^nameserver' /etc/resolv.conf; \
         curl -sS --noproxy '*' --max-time 5 http://127.0.0.1:{port}/ 2>/dev/null || echo 'direct: no route'; \
         grep CapAmb /proc/self/status"
    );
    let want = "hello from the allowed server\n403\nhello from the allowed server\n127.0.0.1\n\
                other.test: no answer\nnameserver 127.0.0.1\ndirect: no route\n\
                CapAmb:\t0000000000000000\n";
    for backend in ["native", "bwrap"] {
        let o = lab.run(&["exec", "--backend", backend, "--", "sh", "-c", &script]);
        assert_eq!(code(&o), 0, "{backend}: {}", stderr(&o));
        assert_eq!(stdout(&o), want, "{backend}: {}", stderr(&o));
    }
}

/// Sends DNS queries to the sandbox's `127.0.0.1:53` (UDP, and one over TCP) and prints one
/// line per answer: name, transport, id, response code, answer count, and the Extended DNS
/// Error text (or `-`).
const DNS_QUERY_PY: &str = r#"
import socket, struct, sys
def query(name, qid):
    out = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 1)
    for label in name.split("."):
        out += bytes([len(label)]) + label.encode()
    out += b"\0" + struct.pack(">HH", 1, 1)
    return out + b"\0" + struct.pack(">HHIH", 41, 1232, 0, 0)
def show(name, how, r):
    i = r.find(b"greywall:")
    text = r[i:].decode("ascii", "replace") if i >= 0 else "-"
    print(name, how, r[:2].hex(), r[3] & 15, struct.unpack(">H", r[6:8])[0], text)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(5)
for n, name in enumerate(sys.argv[1:]):
    u.sendto(query(name, 0x4700 + n), ("127.0.0.1", 53))
    show(name, "udp", u.recvfrom(4096)[0])
t = socket.create_connection(("127.0.0.1", 53), timeout=5)
for name in sys.argv[1:]:
    m = query(name, 0x5100)
    t.sendall(struct.pack(">H", len(m)) + m)
    head = b""
    while len(head) < 2:
        head += t.recv(2 - len(head))
    want, r = struct.unpack(">H", head)[0], b""
    while len(r) < want:
        r += t.recv(want - len(r))
    show(name, "tcp", r)
"#;

#[test]
fn names_resolve_inside_the_sandbox_only_when_the_policy_allows_them() {
    if !ready() {
        return;
    }
    let lab = Lab::new(
        r#"{
  "network": {
    "allowedDomains": ["allowed.test", "*.wild.test"],
    "deniedDomains": ["denied.test", "bad.wild.test"]
  },
  "filesystem": {"allowWrite": ["."]}
}"#,
    );
    // Every name is mapped, so only the policy can keep one from resolving.
    let _proxyd = Proxyd::start(
        &lab,
        &[
            "allowed.test",
            "denied.test",
            "x.wild.test",
            "bad.wild.test",
            "other.test",
        ],
    );
    // glibc's resolver (getent), through the bind-mounted resolv.conf.
    let o = lab.sh(
        "cat /etc/resolv.conf; for n in allowed.test ALLOWED.test. x.wild.test denied.test \
         bad.wild.test other.test; do a=$(getent ahosts $n | head -n 1 | cut -d' ' -f1); \
         echo \"$n $a\"; done",
    );
    let out = stdout(&o);
    assert_eq!(code(&o), 0, "{out}{}", stderr(&o));
    assert!(out.contains("\nnameserver 127.0.0.1\n"), "{out}");
    for allowed in ["allowed.test", "ALLOWED.test.", "x.wild.test"] {
        assert!(
            out.lines().any(|l| l == format!("{allowed} 127.0.0.1")),
            "{allowed} resolves: {out}{}",
            stderr(&o)
        );
    }
    for refused in ["denied.test", "bad.wild.test", "other.test"] {
        assert!(
            out.lines().any(|l| l == format!("{refused} ")),
            "{refused} must not resolve: {out}"
        );
    }
    // getent's own exit status (no pipe): 2 for a name that does not resolve.
    let o = lab.sh("getent hosts allowed.test; echo \"allowed $?\"; getent hosts denied.test; echo \"denied $?\"");
    let out = stdout(&o);
    assert!(
        out.contains("127.0.0.1") && out.contains("allowed.test"),
        "{out}"
    );
    assert!(out.contains("\nallowed 0\n"), "{out}");
    assert!(out.contains("\ndenied 2\n"), "{out}{}", stderr(&o));
    // One family with AI_ADDRCONFIG (getent ahostsv4): glibc answers only where an IPv4
    // address other than 127.0.0.1 exists, which the launcher adds on lo.
    let o = lab.sh("getent ahostsv4 allowed.test | head -1");
    assert!(
        stdout(&o).starts_with("127.0.0.1 "),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    // python asks getaddrinfo too.
    let o = lab.run(&[
        "exec",
        "--",
        "python3",
        "-c",
        "import socket\nprint(socket.getaddrinfo('allowed.test', 80, socket.AF_INET)[0][4][0])\n\
         try:\n  socket.getaddrinfo('denied.test', 80)\n  print('denied resolved')\n\
         except socket.gaierror as e:\n  print('denied refused')",
    ]);
    assert_eq!(stdout(&o), "127.0.0.1\ndenied refused\n", "{}", stderr(&o));
    // Node: getaddrinfo (`dns.lookup`) and its own DNS client (`dns.resolve4`, c-ares).
    if Command::new("node").arg("--version").output().is_ok() {
        let o = lab.run(&[
            "exec",
            "--",
            "node",
            "-e",
            "const dns = require('dns').promises;\n\
             const show = (p) => p.then((a) => JSON.stringify(a), (e) => e.code);\n\
             (async () => { for (const [k, p] of [\n\
               ['lookup', () => dns.lookup('allowed.test', 4).then((a) => a.address)],\n\
               ['resolve4', () => dns.resolve4('allowed.test')],\n\
               ['denied', () => dns.resolve4('denied.test')]]) console.log(k, await show(p())); })();",
        ]);
        assert_eq!(
            stdout(&o),
            "lookup \"127.0.0.1\"\nresolve4 [\"127.0.0.1\"]\ndenied EREFUSED\n",
            "{}",
            stderr(&o)
        );
    } else {
        eprintln!("note: node is not installed: Node's resolvers are not checked");
    }
    // Raw queries, over UDP and TCP: REFUSED (5) with the reason, NOERROR (0) with one
    // answer, the client's own id back.
    std::fs::write(lab.work().join("dnsq.py"), DNS_QUERY_PY).unwrap();
    let o = lab.run(&[
        "exec",
        "--",
        "python3",
        "dnsq.py",
        "allowed.test",
        "denied.test",
        "other.test",
    ]);
    let out = stdout(&o);
    assert_eq!(code(&o), 0, "{out}{}", stderr(&o));
    let lines: Vec<&str> = out.lines().collect();
    let origin = format!("{}:4:23", lab.work().join("greywall.json").display());
    assert_eq!(
        lines,
        vec![
            "allowed.test udp 4700 0 1 -".to_string(),
            format!("denied.test udp 4701 5 0 greywall: denied by rule (denied.test ({origin}))"),
            "other.test udp 4702 5 0 greywall: no allowedDomains rule matches".to_string(),
            "allowed.test tcp 5100 0 1 -".to_string(),
            format!("denied.test tcp 5100 5 0 greywall: denied by rule (denied.test ({origin}))"),
            "other.test tcp 5100 5 0 greywall: no allowedDomains rule matches".to_string(),
        ],
        "{}",
        stderr(&o)
    );
    // Each refusal is in the audit log, with its rule; allowed names are not logged.
    let log = std::fs::read_to_string(lab.audit_log()).unwrap();
    let dns: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["proto"] == "dns")
        .collect();
    assert!(dns.iter().all(|v| v["decision"] == "deny"), "{log}");
    assert!(
        dns.iter()
            .any(|v| v["host"] == "denied.test" && v["rule"]["text"] == "denied.test"),
        "{log}"
    );
    assert!(dns.iter().any(|v| v["host"] == "bad.wild.test"), "{log}");
    for v in &dns {
        let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, AUDIT_KEYS.iter().copied().collect(), "{v}");
    }
}

#[test]
fn http_proxy_url_without_proxy_url_refuses_to_run() {
    if !ready() {
        return;
    }
    // greywall-proxyd cannot chain to an HTTP proxy: the launch stops rather than connect
    // around the proxy the policy names.
    let lab = Lab::new(
        r#"{"network": {"allowedDomains": ["allowed.test"], "httpProxyUrl": "http://localhost:43051"},
            "filesystem": {"allowWrite": ["."]}}"#,
    );
    let _proxyd = Proxyd::start(&lab, &["allowed.test"]);
    let o = lab.run(&["exec", "--", "sh", "-c", "touch ran"]);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("refused the rule set: upstream proxy scheme `http` is not supported"),
        "{}",
        stderr(&o)
    );
    assert!(!lab.work().join("ran").exists(), "the command ran");
    // With proxyUrl as well, proxyUrl is the upstream and the command runs.
    std::fs::write(
        lab.work().join("greywall.json"),
        r#"{"network": {"allowedDomains": ["allowed.test"], "httpProxyUrl": "http://localhost:43051",
            "proxyUrl": "socks5://localhost:43052"}, "filesystem": {"allowWrite": ["."]}}"#,
    )
    .unwrap();
    let o = lab.run(&["exec", "--", "sh", "-c", "touch ran"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(lab.work().join("ran").exists());
}

/// A DNS server on 127.0.0.1 (UDP) that answers every query with one `A` record,
/// 192.0.2.53, and records the names it is asked.
fn dns_server() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let seen = asked.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let q = &buf[..n];
            // The question: labels from offset 12, then type and class.
            let (mut at, mut labels) = (12, Vec::new());
            while at < n && q[at] != 0 {
                let len = usize::from(q[at]);
                labels.push(String::from_utf8_lossy(&q[at + 1..at + 1 + len]).into_owned());
                at += 1 + len;
            }
            let end = at + 5;
            seen.lock().unwrap().push(labels.join("."));
            let mut r = vec![q[0], q[1], 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
            r.extend_from_slice(&q[12..end]);
            r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 53]);
            let _ = sock.send_to(&r, from);
        }
    });
    (port, asked)
}

#[test]
fn dns_addr_answers_the_allowed_names() {
    if !ready() {
        return;
    }
    let (port, asked) = dns_server();
    let lab = Lab::new(&format!(
        r#"{{"network": {{"allowedDomains": ["fwd.test", "mapped.test"], "deniedDomains": ["x.fwd.test"],
             "dnsAddr": "127.0.0.1:{port}"}}, "filesystem": {{"allowWrite": ["."]}}}}"#
    ));
    let _proxyd = Proxyd::start(&lab, &["mapped.test"]);
    let o = lab.sh("for n in fwd.test mapped.test x.fwd.test other.test; do \
         a=$(getent hosts $n | cut -d' ' -f1); echo \"$n $a\"; done");
    assert_eq!(
        stdout(&o),
        "fwd.test 192.0.2.53\nmapped.test 127.0.0.1\nx.fwd.test \nother.test \n",
        "{}",
        stderr(&o)
    );
    // glibc asks for A and AAAA; only the allowed name that is not mapped reaches the server.
    let seen: BTreeSet<String> = asked.lock().unwrap().iter().cloned().collect();
    assert_eq!(seen, BTreeSet::from(["fwd.test".to_string()]));
}

#[test]
fn the_namespace_pools_supervisor_carries_the_bridge() {
    if !ready() {
        return;
    }
    let lab = Lab::new(&policy(&["allowed.test"]));
    let _proxyd = Proxyd::start(&lab, &["allowed.test"]);
    let port = web_server("the allowed server");
    let url = format!("http://allowed.test:{port}/");
    // The first launch starts the pool; wait until a launch gets a set.
    let start = Instant::now();
    loop {
        let o = lab
            .command(&["exec", "--", "true"])
            .env("GREYWALL_NS_POOL", "require")
            .output()
            .unwrap();
        if code(&o) == 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{}", stderr(&o));
        thread::sleep(Duration::from_millis(50));
    }
    // With `require`, the launch joins a set and hands the bridge (listeners, the proxyd
    // registration, the DNS socket) to the set's waiting supervisor, or fails: it never forks
    // its own supervisor then.
    let o = lab
        .command(&curl(&["-f", &url]))
        .env("GREYWALL_NS_POOL", "require")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello from the allowed server\n");
    let o = lab
        .command(&["exec", "--", "getent", "hosts", "allowed.test"])
        .env("GREYWALL_NS_POOL", "require")
        .output()
        .unwrap();
    assert!(stdout(&o).contains("allowed.test"), "{}", stderr(&o));
    // The pool's supervisor hands connections over as a forked one does.
    assert!(
        adopted(&lab, &_proxyd, Some("require"), "allowed.test"),
        "the pool's supervisor copied a connection proxyd could have taken"
    );
}

// ---- Adoption: proxyd serves the sandbox's clients on their own sockets --------------------

/// Inside: connects to the HTTP proxy port, finds the inode of the socket the bridge accepted
/// for it (`/proc/net/tcp` of the sandbox's namespace), prints it, waits for a line on stdin,
/// then asks for `http://NAME:PORT/` on that connection and prints the status line and
/// whether the body came.
const ADOPTED_PY: &str = r#"
import socket, sys, time
name, port = sys.argv[1], int(sys.argv[2])
c = socket.create_connection(("127.0.0.1", 3128))
def hexaddr(a):
    return "%08X:%04X" % (int.from_bytes(socket.inet_aton(a[0]), "little"), a[1])
want = (hexaddr(("127.0.0.1", 3128)), hexaddr(c.getsockname()))
inode, start = "0", time.time()
while inode == "0" and time.time() - start < 5:
    for line in open("/proc/net/tcp").readlines()[1:]:
        f = line.split()
        if (f[1], f[2]) == want:
            inode = f[9]
    time.sleep(0.01)
print(inode, flush=True)
sys.stdin.readline()
c.sendall(b"GET http://%s:%d/ HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (name.encode(), port, name.encode()))
data = b""
while True:
    b = c.recv(65536)
    if not b:
        break
    data += b
print(data.split(b"\r\n")[0].decode(), data.endswith(b"hello from the web\n"), flush=True)
"#;

/// Whether `socket:[inode]` is among a process's descriptors.
fn holds_socket(pid: u32, inode: &str) -> bool {
    let want = format!("socket:[{inode}]");
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.as_os_str() == want.as_str()))
        })
        .unwrap_or(false)
}

/// Runs [`ADOPTED_PY`] in the lab's sandbox (with `GREYWALL_NS_POOL=pool` when given) against
/// a web server named `name`, and says whether proxyd held the socket the bridge accepted
/// (within 5 s; 1 s when it does not). The request must work either way.
fn adopted(lab: &Lab, proxyd: &Proxyd, pool: Option<&str>, name: &str) -> bool {
    let port = web_server("the web");
    let mut c = lab.command(&[
        "exec",
        "--",
        "python3",
        "-c",
        ADOPTED_PY,
        name,
        &port.to_string(),
    ]);
    if let Some(p) = pool {
        c.env("GREYWALL_NS_POOL", p);
    }
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut inode = String::new();
    out.read_line(&mut inode).unwrap();
    let inode = inode.trim().to_string();
    if !inode.parse::<u64>().is_ok_and(|i| i > 0) {
        let _ = child.kill();
        let o = child.wait_with_output().unwrap();
        panic!("no accepted socket found inside: {inode:?}; {}", stderr(&o));
    }
    let start = Instant::now();
    let wait = Duration::from_secs(if proxyd.child.id() > 0 { 5 } else { 1 });
    let mut held = holds_socket(proxyd.child.id(), &inode);
    while !held && start.elapsed() < wait {
        thread::sleep(Duration::from_millis(20));
        held = holds_socket(proxyd.child.id(), &inode);
    }
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut result = String::new();
    out.read_line(&mut result).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(result, "HTTP/1.1 200 OK True\n", "{}", stderr(&o));
    assert!(o.status.success(), "{}", stderr(&o));
    held
}

#[test]
fn the_bridge_hands_connections_to_proxyd_which_serves_them_and_logs_them() {
    if !ready() {
        return;
    }
    let lab = Lab::new(&policy(&["allowed.test"]));
    let proxyd = Proxyd::start(&lab, &["allowed.test"]);
    // The socket the bridge accepted inside is proxyd's now: the bridge copies nothing.
    assert!(
        adopted(&lab, &proxyd, None, "allowed.test"),
        "proxyd does not hold the client's socket: the bridge copied the connection"
    );
    // One audit line for it, as for a copied connection: bytes both ways and a duration.
    let entries = lab.audit(1);
    let e = entries
        .iter()
        .find(|e| s(e, "host") == "allowed.test")
        .unwrap_or_else(|| panic!("{entries:#?}"));
    assert_eq!((s(e, "proto"), s(e, "decision")), ("http", "allow"));
    assert!(e["bytes_up"].as_u64().unwrap() > 0, "{e}");
    assert!(e["bytes_down"].as_u64().unwrap() > 0, "{e}");
    assert!(e["duration_ms"].is_u64(), "{e}");
    // SOCKS5 and DNS over TCP are handed over too, and work.
    let port = web_server("socks");
    let o = lab.run(&curl(&[
        "--socks5-hostname",
        "127.0.0.1:1080",
        &format!("http://allowed.test:{port}/"),
    ]));
    assert_eq!(stdout(&o), "hello from socks\n", "{}", stderr(&o));
    let tcp_dns = r#"
import socket, struct
q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + b"\x07allowed\x04test\x00" + struct.pack(">HH", 1, 1)
c = socket.create_connection(("127.0.0.1", 53))
c.sendall(struct.pack(">H", len(q)) + q)
n = struct.unpack(">H", c.recv(2))[0]
a = b""
while len(a) < n:
    a += c.recv(n - len(a))
print(hex(struct.unpack(">H", a[:2])[0]), a[3] & 15, struct.unpack(">H", a[6:8])[0])
"#;
    let o = lab.run(&["exec", "--", "python3", "-c", tcp_dns]);
    assert_eq!(stdout(&o), "0x4242 0 1\n", "{}", stderr(&o));
}

#[test]
fn allow_local_outbound_reaches_a_host_port_through_proxyd() {
    if !ready() {
        return;
    }
    // A service on the host's loopback: answers one line with what it got.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let mut got = [0u8; 4];
            if c.read_exact(&mut got).is_ok() {
                let _ = c.write_all(
                    format!("host service got {}\n", String::from_utf8_lossy(&got)).as_bytes(),
                );
            }
        }
    });
    // Both spellings of the host's loopback in a rule reach it; proxyd decides on the one the
    // rule uses and connects to 127.0.0.1.
    for (entry, host) in [("localhost", "localhost"), ("127.0.0.1", "127.0.0.1")] {
        let lab = Lab::new(&format!(
            r#"{{"network": {{"allowLocalOutbound": true, "allowedDomains": ["allowed.test", "{entry}:{port}"]}}}}"#
        ));
        let _proxyd = Proxyd::start(&lab, &["allowed.test"]);
        let client = format!(
            "import socket\nc = socket.create_connection(('127.0.0.1', {port}))\nc.sendall(b'ping')\nprint(c.makefile().readline(), end='')\n"
        );
        let o = lab.run(&["exec", "--", "python3", "-c", &client]);
        assert_eq!(
            stdout(&o),
            "host service got ping\n",
            "{}\naudit: {:#?}",
            stderr(&o),
            lab.audit(1),
        );
        let entries = lab.audit(1);
        let e = entries
            .iter()
            .find(|e| e["port"] == port)
            .unwrap_or_else(|| panic!("{entries:#?}"));
        // Handed over: proxyd decided it itself (`tcp`, not a SOCKS5 request of the bridge's).
        assert_eq!(
            (s(e, "proto"), s(e, "host"), s(e, "decision")),
            ("tcp", host, "allow"),
            "{e}"
        );
        assert_eq!(s(e, "address"), format!("127.0.0.1:{port}"), "{e}");
        assert_eq!(
            (e["bytes_up"].as_u64(), e["bytes_down"].as_u64()),
            (Some(4), Some(22)),
            "{e}"
        );
    }
}

/// What a proxyd from before `GW1 ADOPT` answers a line it does not know.
const OLD_PARSER_REFUSAL: &[u8] = b"ERR unknown GW1 command or wrong number of fields\n";

/// A stand-in for a proxyd of an older build, in front of the real one on `real`: it refuses
/// the lines that build did not know (a `REGISTER` with features, `ADOPT`) as its parser did,
/// and passes every other connection through. Returns the first lines it saw.
fn old_proxyd_front(socket: &Path, real: PathBuf) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let l = UnixListener::bind(socket).unwrap();
    let log = seen.clone();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            // Plain reads, as that build did: a descriptor sent along is dropped.
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let words: Vec<&str> = line.trim_end().split(' ').collect();
            log.lock()
                .unwrap()
                .push(words[..words.len().min(2)].join(" "));
            let unknown = matches!(
                words.as_slice(),
                ["GW1", "REGISTER", _, _, _, _, ..] | ["GW1", "ADOPT", ..]
            );
            if unknown {
                let _ = (&s).write_all(OLD_PARSER_REFUSAL);
                continue;
            }
            let Ok(up) = UnixStream::connect(&real) else {
                continue;
            };
            let _ = (&up).write_all(line.as_bytes());
            let _ = (&up).write_all(r.buffer());
            let (mut a, mut b) = (s.try_clone().unwrap(), up.try_clone().unwrap());
            thread::spawn(move || {
                let _ = std::io::copy(&mut a, &mut b);
                let _ = b.shutdown(std::net::Shutdown::Write);
            });
            let (mut a, mut b) = (up, s);
            thread::spawn(move || {
                let _ = std::io::copy(&mut a, &mut b);
                let _ = b.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    seen
}

#[test]
fn with_an_older_proxyd_the_bridge_copies_as_before() {
    if !ready() {
        return;
    }
    let lab = Lab::new(&policy(&["allowed.test"]));
    let real = lab.runtime().join("real.sock");
    let proxyd = Proxyd::spawn_on(
        &lab,
        &["allowed.test"],
        Command::new(proxyd_binary()),
        &real,
    );
    std::fs::create_dir_all(lab.socket().parent().unwrap()).unwrap();
    std::fs::set_permissions(
        lab.socket().parent().unwrap(),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let seen = old_proxyd_front(&lab.socket(), real);
    assert!(
        !adopted(&lab, &proxyd, None, "allowed.test"),
        "proxyd holds the client's socket though it never granted adopt"
    );
    let lines = seen.lock().unwrap().clone();
    // Registered twice (with the offer, refused; then without), then one copied connection.
    assert_eq!(
        lines.iter().filter(|l| *l == "GW1 REGISTER").count(),
        2,
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l == "GW1 CONNECT"), "{lines:?}");
    assert!(!lines.iter().any(|l| l == "GW1 ADOPT"), "{lines:?}");
}

/// The launcher inside bwrap takes the bridge only into a network namespace of its own: run
/// in the outer one (bwrap made none), it refuses, and so it does a hand-off it cannot read.
#[test]
fn the_inner_launcher_refuses_the_outer_network_namespace() {
    use std::os::unix::fs::MetadataExt;
    if !ready() {
        return;
    }
    let lab = Lab::new(&policy(&["allowed.test"]));
    let o = lab.run(&["compile", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let json: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let inner = json["artifacts"]["bwrap_inner_plan"]
        .as_str()
        .unwrap()
        .to_string();
    let outside = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
    let spec = format!("net={outside},expose=,monitor=0");
    let o = lab.run(&[
        "__exec-plan",
        "--bridge",
        &spec,
        &inner,
        "--",
        "touch",
        "ran",
    ]);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("bwrap did not give the sandbox a network namespace of its own"),
        "{}",
        stderr(&o)
    );
    // Unreadable, and a descriptor named twice (it would be closed twice).
    for spec in ["net=x", "net=1,reg=7,dir=7,expose=,monitor=0"] {
        let o = lab.run(&[
            "__exec-plan",
            "--bridge",
            spec,
            &inner,
            "--",
            "touch",
            "ran",
        ]);
        assert_eq!(code(&o), 125, "{spec}: {}", stderr(&o));
        assert!(stderr(&o).contains("malformed --bridge"), "{}", stderr(&o));
    }
    // Without a hand-off at all, an inner plan with egress does not run either.
    let o = lab.run(&["__exec-plan", &inner, "--", "touch", "ran"]);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    assert!(!lab.work().join("ran").exists(), "nothing ran");
}
