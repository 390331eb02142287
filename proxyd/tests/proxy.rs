//! End-to-end tests of the real `greywall-proxyd` binary on a temporary socket, driven by real
//! clients (curl, python's urllib, openssl's TLS server, raw SOCKS5) against local servers on
//! 127.0.0.x that the daemon reaches through `--resolve`. Traffic goes to loopback only.
//!
//! The launcher's bridge is replaced by a tiny one here: a TCP listener on 127.0.0.1 that
//! prefixes every connection with `GW1 CONNECT <token> <proto>\n`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use greywall_compiler::egress;
use greywall_compiler::load::{Input, load};
use serde_json::Value;
use sha2::{Digest, Sha256};

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "proxyd-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

struct Daemon {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
    log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn start(name: &str, extra: &[&str]) -> Daemon {
        let dir = scratch(name);
        let sockdir = dir.join("run");
        std::fs::create_dir(&sockdir).unwrap();
        std::fs::set_permissions(&sockdir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let socket = sockdir.join("proxyd.sock");
        let log = dir.join("state/proxyd.log");
        let child = Command::new(env!("CARGO_BIN_EXE_greywall-proxyd"))
            .arg("--socket")
            .arg(&socket)
            .arg("--log")
            .arg(&log)
            .args(["--idle-timeout", "60", "--head-timeout", "2"])
            .args(extra)
            .env_remove("XDG_CONFIG_HOME")
            .env("HOME", &dir)
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .unwrap();
        let d = Daemon {
            child,
            dir,
            socket,
            log,
        };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(mut s) = UnixStream::connect(&d.socket) {
                s.write_all(b"GW1 PING\n").unwrap();
                let mut line = String::new();
                BufReader::new(s).read_line(&mut line).unwrap();
                assert!(line.starts_with("OK greywall-proxyd "), "{line:?}");
                return d;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("proxyd did not start: {}", d.stderr());
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// Writes the ruleset of a policy's `network` section, 0600.
    fn ruleset(&self, name: &str, network: &str) -> (PathBuf, String) {
        let l = load(&Input::Text {
            name: format!("{name}.json"),
            text: format!("{{\"network\": {network}}}"),
            dir: ".".into(),
        });
        let p = l
            .policy
            .clone()
            .unwrap_or_else(|| panic!("{:?}", l.diagnostics));
        let bytes = egress::rules(&p, &l.sources).to_bytes();
        let path = self.dir.join(format!("{name}.rules.json"));
        std::fs::write(&path, &bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        (path, hex(&Sha256::digest(&bytes)))
    }

    /// Sends a first line and returns the connection and the reply line.
    fn line(&self, line: &str) -> (UnixStream, String) {
        let mut s = UnixStream::connect(&self.socket).unwrap();
        s.write_all(line.as_bytes()).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut reply = String::new();
        r.read_line(&mut reply).unwrap();
        (s, reply)
    }

    /// Registers a policy; the registration lives as long as the returned stream.
    fn register(&self, name: &str, network: &str) -> Registration {
        let (path, sha) = self.ruleset(name, network);
        let (conn, reply) = self.line(&format!("GW1 REGISTER {} {sha} {name}\n", path.display()));
        let words: Vec<&str> = reply.split_whitespace().collect();
        assert_eq!(words.len(), 3, "{reply:?} {}", self.stderr());
        assert_eq!(words[0], "OK");
        assert_eq!(words[2].len(), 64);
        Registration {
            conn,
            token: words[2].to_string(),
        }
    }

    fn bridge(&self, token: &str, proto: &str) -> u16 {
        bridge(
            self.socket.clone(),
            format!("GW1 CONNECT {token} {proto}\n"),
        )
    }

    fn log_lines(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        // Whole lines only: proxyd may be writing the last one.
        let whole = text.rfind('\n').map_or("", |end| &text[..end]);
        whole
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits until a log line satisfies `f` (connections are logged when they end).
    fn wait_log(&self, f: impl Fn(&Value) -> bool) -> Value {
        let t0 = Instant::now();
        loop {
            if let Some(v) = self.log_lines().into_iter().find(|v| f(v)) {
                return v;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "no such log line; log:\n{:#?}",
                self.log_lines()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

struct Registration {
    conn: UnixStream,
    token: String,
}

/// The test's stand-in for the launcher's bridge.
fn bridge(socket: PathBuf, prefix: String) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for c in l.incoming() {
            let Ok(tcp) = c else { return };
            let Ok(mut unix) = UnixStream::connect(&socket) else {
                continue;
            };
            if unix.write_all(prefix.as_bytes()).is_err() {
                continue;
            }
            let (mut t2, mut u2) = (tcp.try_clone().unwrap(), unix.try_clone().unwrap());
            thread::spawn(move || {
                let _ = std::io::copy(&mut t2, &mut u2);
                let _ = u2.shutdown(Shutdown::Write);
            });
            let (mut t3, mut u3) = (tcp, unix);
            thread::spawn(move || {
                let _ = std::io::copy(&mut u3, &mut t3);
                let _ = t3.shutdown(Shutdown::Write);
            });
        }
    });
    port
}

/// A one-response-per-connection HTTP server that echoes the request head in its body.
fn http_server(ip: &str, name: &'static str) -> u16 {
    let l = TcpListener::bind((ip, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            thread::spawn(move || {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match c.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                let mut body = vec![0u8; len];
                c.read_exact(&mut body).unwrap();
                let reply = format!(
                    "hello from {name}\n{head}{}",
                    String::from_utf8_lossy(&body)
                );
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n\r\n{reply}",
                    reply.len()
                );
            });
        }
    });
    port
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .expect("curl is installed (.ci/run installs it)")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const RESOLVE: &[&str] = &[
    "--resolve",
    "allowed.test=127.0.0.2",
    "--resolve",
    "denied.test=127.0.0.2",
    "--resolve",
    "other.test=127.0.0.2",
    "--resolve",
    "tls.test=127.0.0.3",
];

#[test]
fn http_forwarding_and_connect_with_curl() {
    let d = Daemon::start("http", RESOLVE);
    let web = http_server("127.0.0.2", "web");
    let reg = d.register(
        "web",
        r#"{"allowedDomains": ["allowed.test", "*.example.test"], "deniedDomains": ["denied.test"]}"#,
    );
    let p = d.bridge(&reg.token, "http");
    let proxy = format!("http://127.0.0.1:{p}");

    // Allowed name, absolute-form: forwarded, hop-by-hop headers gone both ways.
    let o = curl(&[
        "-i",
        "-x",
        &proxy,
        "-H",
        "Connection: X-Secret",
        "-H",
        "X-Secret: 1",
        "-H",
        "Proxy-Authorization: Basic Zm9vOmJhcg==",
        "-H",
        "X-Kept: yes",
        "-H",
        "Host: denied.test",
        &format!("http://allowed.test:{web}/path?q=1"),
    ]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("HTTP/1.1 200 OK"), "{out}");
    assert!(out.contains("hello from web"), "{out}");
    assert!(
        out.contains("GET /path?q=1 HTTP/1.1"),
        "origin-form upstream: {out}"
    );
    assert!(out.to_ascii_lowercase().contains("x-kept: yes"), "{out}");
    assert!(
        out.contains(&format!("host: allowed.test:{web}")),
        "Host follows the target: {out}"
    );
    let lower = out.to_ascii_lowercase();
    assert!(
        !lower.contains("x-secret"),
        "Connection-named header forwarded: {out}"
    );
    assert!(!lower.contains("proxy-authorization"), "{out}");
    assert!(
        !lower.contains("x-hop: 1"),
        "response hop-by-hop header kept: {out}"
    );
    assert!(!lower.contains("keep-alive: timeout"), "{out}");

    // POST bodies pass.
    let o = curl(&[
        "-x",
        &proxy,
        "--data-binary",
        "payload-123",
        &format!("http://allowed.test:{web}/post"),
    ]);
    assert!(text(&o).contains("payload-123"), "{}", text(&o));

    // Allowed name through CONNECT (curl -p tunnels plain HTTP too).
    let o = curl(&[
        "-p",
        "-x",
        &proxy,
        &format!("http://allowed.test:{web}/tunnel"),
    ]);
    assert!(text(&o).contains("GET /tunnel HTTP/1.1"), "{}", text(&o));

    // Denied name: 403 naming the rule.
    let o = curl(&["-i", "-x", &proxy, &format!("http://denied.test:{web}/")]);
    let out = text(&o);
    assert!(out.contains("HTTP/1.1 403"), "{out}");
    assert!(
        out.contains("x-greywall-rule: denied.test (web.json:1:"),
        "{out}"
    );
    assert!(out.contains("denied by rule"), "{out}");
    assert!(!out.contains("hello from web"), "{out}");
    // Not allowed (no rule), through CONNECT too.
    let o = curl(&[
        "-i",
        "-p",
        "-x",
        &proxy,
        &format!("http://other.test:{web}/"),
    ]);
    assert!(text(&o).contains("HTTP/1.1 403"), "{}", text(&o));
    // A raw IP no rule names: 403, even though it is the same server.
    let o = curl(&["-i", "-x", &proxy, &format!("http://127.0.0.2:{web}/")]);
    assert!(text(&o).contains("HTTP/1.1 403"), "{}", text(&o));
    // Allowed by name, but it does not resolve (no --resolve, no DNS here): 502.
    let o = curl(&["-i", "-x", &proxy, "http://nowhere.example.test/"]);
    assert!(text(&o).contains("HTTP/1.1 502"), "{}", text(&o));

    // The audit log has the decisions, with bytes and rules.
    let v = d.wait_log(|v| v["decision"] == "allow" && v["host"] == "allowed.test");
    assert_eq!(v["label"], "web");
    assert_eq!(v["address"], format!("127.0.0.2:{web}"));
    assert_eq!(v["rule"]["text"], "allowed.test");
    assert!(v["bytes_down"].as_u64().unwrap() > 0, "{v}");
    assert!(v["bytes_up"].as_u64().unwrap() > 0, "{v}");
    let v = d.wait_log(|v| v["decision"] == "deny" && v["host"] == "denied.test");
    assert_eq!(v["rule"]["text"], "denied.test");
    assert_eq!(v["port"], web);
    d.wait_log(|v| v["decision"] == "error" && v["host"] == "nowhere.example.test");
    drop(reg);
}

#[test]
fn https_through_connect_to_a_tls_server() {
    let d = Daemon::start("tls", RESOLVE);
    let dir = d.dir.clone();
    let keygen = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=tls.test",
            "-addext",
            "subjectAltName=DNS:tls.test",
            "-keyout",
        ])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("openssl is installed (.ci/run installs it)");
    assert!(keygen.status.success(), "{}", text(&keygen));
    let port = TcpListener::bind("127.0.0.3:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.3:{port}"))
        .arg("-cert")
        .arg(dir.join("cert.pem"))
        .arg("-key")
        .arg(dir.join("key.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.3", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "s_server did not start"
        );
        thread::sleep(Duration::from_millis(20));
    }
    let reg = d.register("tls", r#"{"allowedDomains": ["tls.test:443", "tls.test"]}"#);
    let p = d.bridge(&reg.token, "http");
    let o = curl(&[
        "--cacert",
        dir.join("cert.pem").to_str().unwrap(),
        "-x",
        &format!("http://127.0.0.1:{p}"),
        &format!("https://tls.test:{port}/"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("s_server"), "{}", text(&o));
    // The server stays up until proxyd has logged the tunnel's end: killed earlier, it would
    // reset the connection proxyd may still be closing.
    let v = d.wait_log(|v| v["host"] == "tls.test" && v["decision"] == "allow");
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(v["rule"]["text"], "tls.test");
    assert_eq!(v["reason"], "address mapped with --resolve");
    assert!(v["bytes_down"].as_u64().unwrap() > 500, "{v}");
}

#[test]
fn python_urllib_through_the_proxy() {
    let d = Daemon::start("python", RESOLVE);
    let web = http_server("127.0.0.2", "py");
    let reg = d.register("py", r#"{"allowedDomains": ["allowed.test"]}"#);
    let p = d.bridge(&reg.token, "http");
    let script = r#"
import sys, urllib.request, urllib.error
proxy, web = sys.argv[1], sys.argv[2]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))
print(opener.open("http://allowed.test:%s/py" % web, timeout=10).read().decode().splitlines()[0])
try:
    opener.open("http://denied.test:%s/" % web, timeout=10)
    print("denied.test: reached")
except urllib.error.HTTPError as e:
    print("denied.test:", e.code, e.headers.get("X-Greywall-Reason"))
"#;
    let o = Command::new("python3")
        .args([
            "-c",
            script,
            &format!("http://127.0.0.1:{p}"),
            &web.to_string(),
        ])
        .output()
        .expect("python3");
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("hello from py"), "{out}");
    assert!(
        out.contains("denied.test: 403 no allowedDomains rule matches"),
        "{out}"
    );
}

fn socks_request(port: u16, atyp_and_addr: &[u8], dport: u16) -> (TcpStream, u8) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&[5, 1, 0]).unwrap();
    let mut m = [0u8; 2];
    s.read_exact(&mut m).unwrap();
    assert_eq!(m, [5, 0]);
    let mut req = vec![5, 1, 0];
    req.extend_from_slice(atyp_and_addr);
    req.extend_from_slice(&dport.to_be_bytes());
    s.write_all(&req).unwrap();
    let mut head = [0u8; 10];
    s.read_exact(&mut head).unwrap();
    (s, head[1])
}

fn name(n: &str) -> Vec<u8> {
    let mut v = vec![3, n.len() as u8];
    v.extend_from_slice(n.as_bytes());
    v
}

#[test]
fn socks5_names_ipv4_ipv6_and_curl() {
    let d = Daemon::start("socks", RESOLVE);
    let web = http_server("127.0.0.2", "socks");
    let v6 = TcpListener::bind("[::1]:0").is_ok();
    let web6 = if v6 { http_server("::1", "v6") } else { 0 };
    let reg = d.register(
        "socks",
        r#"{"allowedDomains": ["allowed.test", "127.0.0.2", "[::1]"], "deniedDomains": ["denied.test"]}"#,
    );
    let p = d.bridge(&reg.token, "socks5");

    // curl with remote resolution (domain names go to proxyd).
    let o = curl(&[
        "--socks5-hostname",
        &format!("127.0.0.1:{p}"),
        &format!("http://allowed.test:{web}/s"),
    ]);
    assert!(text(&o).contains("hello from socks"), "{}", text(&o));
    let o = curl(&[
        "--socks5-hostname",
        &format!("127.0.0.1:{p}"),
        &format!("http://denied.test:{web}/"),
    ]);
    assert!(
        !o.status.success() && !text(&o).contains("hello"),
        "{}",
        text(&o)
    );

    // Raw replies: a denied name gets 0x02, an allowed one 0x00 and a working stream.
    let (_, code) = socks_request(p, &name("denied.test"), web);
    assert_eq!(code, 0x02);
    let (_, code) = socks_request(p, &name("other.test"), web);
    assert_eq!(code, 0x02);
    let (mut s, code) = socks_request(p, &name("allowed.test"), web);
    assert_eq!(code, 0x00);
    s.write_all(b"GET /raw HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = String::new();
    let _ = s.read_to_string(&mut got);
    assert!(got.contains("GET /raw"), "{got}");
    // IPv4: named by a rule → allowed; another loopback address → 0x02.
    let (_, code) = socks_request(p, &[1, 127, 0, 0, 2], web);
    assert_eq!(code, 0x00);
    let (_, code) = socks_request(p, &[1, 127, 0, 0, 1], web);
    assert_eq!(code, 0x02);
    // Metadata address: refused at the decision layer, nothing is sent there.
    let (_, code) = socks_request(p, &[1, 169, 254, 169, 254], 80);
    assert_eq!(code, 0x02);
    // Allowed but nothing listens: connection refused (0x05).
    let closed = TcpListener::bind("127.0.0.2:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_, code) = socks_request(p, &[1, 127, 0, 0, 2], closed);
    assert_eq!(code, 0x05);
    // IPv6.
    let mut a6 = vec![4];
    a6.extend_from_slice(&"::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
    if v6 {
        let (_, code) = socks_request(p, &a6, web6);
        assert_eq!(code, 0x00);
    } else {
        eprintln!("SKIP: no IPv6 loopback here; only the IPv6 refusal is tested");
        assert!(
            std::env::var_os("GREYWALL_REQUIRE_KERNEL").is_none(),
            "IPv6 loopback required"
        );
    }
    let mut a6b = vec![4];
    a6b.extend_from_slice(&"::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
    let (_, code) = socks_request(p, &a6b, 80);
    assert_eq!(code, 0x02);

    // Malformed: wrong version → closed, logged; BIND → 0x07.
    let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&[4, 1, 0, 80, 127, 0, 0, 1, 0]).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(buf.is_empty(), "{buf:?}");
    let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&[5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 2, 0, 80])
        .unwrap();
    let mut r = [0u8; 12];
    s.read_exact(&mut r).unwrap();
    assert_eq!(&r[2..4], &[5, 7], "method reply then 0x07");
    d.wait_log(|v| {
        v["decision"] == "error"
            && v["proto"] == "socks5"
            && v["reason"]
                .as_str()
                .unwrap()
                .contains("malformed SOCKS5 request: not SOCKS version 5")
    });
    d.wait_log(|v| v["decision"] == "deny" && v["host"] == "169.254.169.254");
}

#[test]
fn two_sandboxes_get_different_answers_and_dead_tokens_are_refused() {
    let d = Daemon::start("multi", RESOLVE);
    let web = http_server("127.0.0.2", "multi");
    let a = d.register("a", r#"{"allowedDomains": ["allowed.test"]}"#);
    let b = d.register("b", r#"{"allowedDomains": ["other.test"]}"#);
    let (pa, pb) = (d.bridge(&a.token, "http"), d.bridge(&b.token, "http"));
    let code = |p: u16, host: &str| {
        let o = curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-x",
            &format!("http://127.0.0.1:{p}"),
            &format!("http://{host}:{web}/"),
        ]);
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    assert_eq!(code(pa, "allowed.test"), "200");
    assert_eq!(code(pa, "other.test"), "403");
    assert_eq!(code(pb, "allowed.test"), "403");
    assert_eq!(code(pb, "other.test"), "200");

    // Watch a's decisions.
    let mut w = UnixStream::connect(&d.socket).unwrap();
    w.write_all(format!("GW1 WATCH {}\n", a.token).as_bytes())
        .unwrap();
    thread::sleep(Duration::from_millis(100));
    assert_eq!(code(pa, "other.test"), "403");
    let mut line = String::new();
    w.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    BufReader::new(&w).read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (v["decision"].as_str(), v["host"].as_str()),
        (Some("deny"), Some("other.test"))
    );

    // When a's registration closes, its token is dead: the connection is closed unanswered.
    let dead = a.token.clone();
    drop(a.conn);
    let t0 = Instant::now();
    while code(pa, "allowed.test") != "000" {
        assert!(t0.elapsed() < Duration::from_secs(10), "token stayed alive");
        thread::sleep(Duration::from_millis(20));
    }
    // The watch ends with the registration.
    let mut rest = String::new();
    let _ = BufReader::new(&w).read_line(&mut rest);
    assert_eq!(rest, "");
    // b is unaffected.
    assert_eq!(code(pb, "other.test"), "200");
    // A made-up token is refused the same way, and both are logged.
    let forged = d.bridge(&"ab".repeat(32), "http");
    assert_eq!(code(forged, "allowed.test"), "000");
    d.wait_log(|v| {
        v["reason"]
            .as_str()
            .is_some_and(|r| r.contains("unknown or dead token"))
    });
    assert_ne!(dead, b.token);
}

#[test]
fn malformed_and_slow_http_clients() {
    let d = Daemon::start("malformed", RESOLVE);
    let reg = d.register("m", r#"{"allowedDomains": ["allowed.test"]}"#);
    let p = d.bridge(&reg.token, "http");
    let send = |bytes: &[u8]| {
        let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(bytes).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    assert!(send(b"GARBAGE\r\n\r\n").starts_with("HTTP/1.1 400"));
    assert!(
        send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 400"),
        "origin-form"
    );
    assert!(
        send(b"GET https://allowed.test/ HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 400")
    );
    assert!(send(b"CONNECT allowed.test HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 400"));
    d.wait_log(|v| v["decision"] == "error" && v["proto"] == "http");

    // A client that sends half a head is cut off after --head-timeout (2 s).
    let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
    s.write_all(b"GET http://allowed.test/ HTTP/1.1\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let t0 = Instant::now();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let waited = t0.elapsed();
    assert!(
        waited < Duration::from_secs(10),
        "slow client not cut off ({waited:?})"
    );
    // And one that sends nothing at all.
    let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let t0 = Instant::now();
    let _ = s.read_to_end(&mut out);
    let waited = t0.elapsed();
    assert!(
        waited < Duration::from_secs(10),
        "silent client not cut off ({waited:?})"
    );
    // Same on the control socket: a first line that never ends.
    let mut u = UnixStream::connect(&d.socket).unwrap();
    u.write_all(b"GW1 PI").unwrap();
    u.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let t0 = Instant::now();
    let _ = u.read_to_end(&mut out);
    assert!(t0.elapsed() < Duration::from_secs(10));
    // Control-line errors.
    assert_eq!(
        d.line("GW1 NOPE\n").1,
        "ERR unknown GW1 command or wrong number of fields\n"
    );
    let long = format!("GW1 {}\n", "A".repeat(5000));
    assert!(d.line(&long).1.starts_with("ERR first line is longer"));
    // proxyd is still fine.
    assert!(d.line("GW1 PING\n").1.starts_with("OK greywall-proxyd"));
}

#[test]
fn registrations_are_checked() {
    let d = Daemon::start("register", &[]);
    let (path, sha) = d.ruleset("r", r#"{"allowedDomains": ["allowed.test"]}"#);
    let wrong = "0".repeat(64);
    let (_, r) = d.line(&format!("GW1 REGISTER {} {wrong} x\n", path.display()));
    assert!(r.starts_with("ERR sha256 of"), "{r}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (_, r) = d.line(&format!("GW1 REGISTER {} {sha} x\n", path.display()));
    assert!(r.contains("writable by group or others"), "{r}");
    let (_, r) = d.line(&format!("GW1 REGISTER /nonexistent/x.json {sha} x\n"));
    assert!(r.starts_with("ERR cannot open"), "{r}");
    let junk = d.dir.join("junk.json");
    std::fs::write(&junk, b"{\"format\": 9}").unwrap();
    std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o600)).unwrap();
    let sha = hex(&Sha256::digest(b"{\"format\": 9}"));
    let (_, r) = d.line(&format!("GW1 REGISTER {} {sha} x\n", junk.display()));
    assert!(r.starts_with("ERR egress rules"), "{r}");
}

/// A rule set is named by its hash: once read, a registration of the same hash takes it from
/// memory (no read, hash or parse on the launch's path); another hash is read and checked.
#[test]
fn a_known_rule_set_is_not_read_again() {
    let d = Daemon::start("known", &[]);
    let (path, sha) = d.ruleset("k", r#"{"allowedDomains": ["allowed.test"]}"#);
    let line = format!("GW1 REGISTER {} {sha} x\n", path.display());
    let (_first, r) = d.line(&line);
    assert!(r.starts_with("OK"), "{r}");
    std::fs::remove_file(&path).unwrap();
    let (_second, r) = d.line(&line);
    assert!(r.starts_with("OK"), "{r}");
    let other = "1".repeat(64);
    let (_, r) = d.line(&format!("GW1 REGISTER {} {other} x\n", path.display()));
    assert!(r.starts_with("ERR cannot open"), "{r}");
}

#[test]
fn idle_exit_and_single_instance() {
    let mut d = Daemon::start("idle", &["--idle-timeout", "1"]);
    // A second daemon on the same socket refuses to start.
    let o = Command::new(env!("CARGO_BIN_EXE_greywall-proxyd"))
        .arg("--socket")
        .arg(&d.socket)
        .arg("--no-log")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("already listening"), "{}", text(&o));
    // A registration keeps it alive past the idle timeout.
    let reg = d.register("idle", r#"{"allowedDomains": ["allowed.test"]}"#);
    thread::sleep(Duration::from_millis(2500));
    assert!(
        d.child.try_wait().unwrap().is_none(),
        "exited with a live registration"
    );
    drop(reg);
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "did not exit when idle"
        );
        thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    assert!(!d.socket.exists(), "socket left behind");
    // A new daemon on the same path works again.
    let d2 = Daemon::start("idle2", &[]);
    assert!(d2.line("GW1 PING\n").1.starts_with("OK"));
}

#[test]
fn socket_directory_and_ruleset_file_checks() {
    use greywall_proxyd::paths::{ensure_private_dir, own_uid, read_ruleset};
    let tmp = scratch("paths");
    let uid = own_uid();
    let d = tmp.join("sock");
    ensure_private_dir(&d, uid).unwrap();
    assert_eq!(
        std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
        0o700
    );
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(
        ensure_private_dir(&d, uid).is_err(),
        "group/world access refused"
    );
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(
        ensure_private_dir(&d, uid + 1).is_err(),
        "foreign owner refused"
    );
    let f = tmp.join("r.json");
    std::fs::write(&f, b"{}").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(read_ruleset(&f, uid).unwrap(), b"{}");
    assert!(read_ruleset(&f, uid + 1).is_err());
    let l = tmp.join("link.json");
    std::os::unix::fs::symlink(&f, &l).unwrap();
    assert!(read_ruleset(&l, uid).is_err(), "symlinks refused");
    assert!(read_ruleset(&tmp, uid).is_err(), "directories refused");
    // A daemon refuses a socket directory others can enter.
    let open = tmp.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_greywall-proxyd"))
        .arg("--socket")
        .arg(open.join("proxyd.sock"))
        .arg("--no-log")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!open.join("proxyd.sock").exists());
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// The daemon's open sockets and pipe ends.
fn sockets_and_pipes(pid: u32) -> (usize, usize) {
    let (mut sockets, mut pipes) = (0, 0);
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let Ok(target) = std::fs::read_link(e.unwrap().path()) else {
            continue;
        };
        let t = target.to_string_lossy();
        if t.starts_with("socket:") {
            sockets += 1;
        } else if t.starts_with("pipe:") {
            pipes += 1;
        }
    }
    (sockets, pipes)
}

/// Empty pipes proxyd keeps for reuse (`relay::POOL`), two ends each.
const POOLED_PIPE_ENDS: usize = 2 * 8;

#[test]
fn aborted_connections_release_descriptors() {
    let d = Daemon::start("abort", RESOLVE);
    // A server that never stops sending.
    let l = TcpListener::bind("127.0.0.2:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            thread::spawn(move || while c.write_all(&[0u8; 16384]).is_ok() {});
        }
    });
    let reg = d.register("abort", r#"{"allowedDomains": ["allowed.test"]}"#);
    let pid = d.child.id();
    thread::sleep(Duration::from_millis(200));
    let before = fd_count(pid);
    let (sockets_before, pipes_before) = sockets_and_pipes(pid);
    let mut open = Vec::new();
    for i in 0..40 {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        let proto = if i % 2 == 0 { "http" } else { "socks5" };
        s.write_all(format!("GW1 CONNECT {} {proto}\n", reg.token).as_bytes())
            .unwrap();
        if proto == "http" {
            s.write_all(format!("CONNECT allowed.test:{port} HTTP/1.1\r\n\r\n").as_bytes())
                .unwrap();
        } else {
            let mut req = vec![5, 1, 0, 5, 1, 0, 3, 12];
            req.extend_from_slice(b"allowed.test");
            req.extend_from_slice(&port.to_be_bytes());
            s.write_all(&req).unwrap();
        }
        // Read some of the stream so the tunnel is established and busy.
        let mut buf = [0u8; 4096];
        s.read_exact(&mut buf).unwrap();
        open.push(s);
    }
    assert!(fd_count(pid) >= before + 80, "tunnels hold descriptors");
    // Each tunnel's download direction is stuck with bytes the client does not read: spliced
    // tunnels hold them in a pipe.
    let t0 = Instant::now();
    while sockets_and_pipes(pid).1 < pipes_before + 2 * 40 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "tunnels do not splice: {:?} (sockets, pipes)",
            sockets_and_pipes(pid)
        );
        thread::sleep(Duration::from_millis(50));
    }
    // The clients vanish mid-download: every socket goes, and every pipe but the few kept
    // empty for reuse.
    drop(open);
    let t0 = Instant::now();
    loop {
        let (sockets, pipes) = sockets_and_pipes(pid);
        if sockets <= sockets_before && pipes <= pipes_before + POOLED_PIPE_ENDS {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "descriptors leaked: {sockets_before} sockets and {pipes_before} pipe ends before, \
             {sockets} and {pipes} after"
        );
        thread::sleep(Duration::from_millis(50));
    }
    // Every tunnel is in the log, with the bytes it moved.
    let t0 = Instant::now();
    loop {
        let n = d
            .log_lines()
            .iter()
            .filter(|v| v["host"] == "allowed.test" && v["bytes_down"].as_u64() >= Some(4096))
            .count();
        if n == 40 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{n} of 40 logged");
        thread::sleep(Duration::from_millis(50));
    }
}

/// A minimal SOCKS5 upstream (username/password required) that records what it was asked
/// for and maps `allowed.test` to 127.0.0.2 itself (as a socks5h upstream resolves names).
fn upstream_socks() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let log = seen.clone();
    thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let log = log.clone();
            thread::spawn(move || {
                let mut g = [0u8; 3];
                c.read_exact(&mut g).unwrap();
                assert_eq!(g, [5, 1, 2], "credentials offered");
                c.write_all(&[5, 2]).unwrap();
                let mut a = [0u8; 2];
                c.read_exact(&mut a).unwrap();
                let mut user = vec![0u8; a[1] as usize + 1];
                c.read_exact(&mut user).unwrap();
                let mut pass = vec![0u8; user.pop().unwrap() as usize];
                c.read_exact(&mut pass).unwrap();
                let ok = user == b"u" && pass == b"pw";
                c.write_all(&[1, if ok { 0 } else { 1 }]).unwrap();
                if !ok {
                    return;
                }
                let mut h = [0u8; 4];
                c.read_exact(&mut h).unwrap();
                let target = match h[3] {
                    1 => {
                        let mut b = [0u8; 4];
                        c.read_exact(&mut b).unwrap();
                        std::net::Ipv4Addr::from(b).to_string()
                    }
                    3 => {
                        let mut n = [0u8; 1];
                        c.read_exact(&mut n).unwrap();
                        let mut b = vec![0u8; n[0] as usize];
                        c.read_exact(&mut b).unwrap();
                        String::from_utf8(b).unwrap()
                    }
                    _ => return,
                };
                let mut p = [0u8; 2];
                c.read_exact(&mut p).unwrap();
                let port = u16::from_be_bytes(p);
                log.lock().unwrap().push(format!("{target}:{port}"));
                let ip = if target == "allowed.test" {
                    "127.0.0.2"
                } else {
                    &target
                };
                let Ok(up) = TcpStream::connect((ip, port)) else {
                    let _ = c.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]);
                    return;
                };
                c.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap();
                let (mut c2, mut up2) = (c.try_clone().unwrap(), up.try_clone().unwrap());
                thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut up2);
                    let _ = up2.shutdown(Shutdown::Write);
                });
                let (mut up3, mut c3) = (up, c);
                let _ = std::io::copy(&mut up3, &mut c3);
                let _ = c3.shutdown(Shutdown::Write);
            });
        }
    });
    (port, seen)
}

#[test]
fn allowed_connections_chain_through_the_upstream_socks_proxy() {
    // No --resolve for allowed.test here: with socks5h the upstream resolves it.
    let d = Daemon::start("chain", &["--resolve", "mapped.test=127.0.0.2"]);
    let web = http_server("127.0.0.2", "chained");
    let (up, seen) = upstream_socks();
    for scheme in ["socks5h", "socks5"] {
        seen.lock().unwrap().clear();
        let reg = d.register(
            scheme,
            &format!(
                r#"{{"allowedDomains": ["allowed.test", "mapped.test"], "proxyUrl": "{scheme}://u:pw@127.0.0.1:{up}"}}"#
            ),
        );
        let p = d.bridge(&reg.token, "http");
        let proxy = format!("http://127.0.0.1:{p}");
        if scheme == "socks5h" {
            let o = curl(&["-x", &proxy, &format!("http://allowed.test:{web}/via")]);
            assert!(text(&o).contains("hello from chained"), "{}", text(&o));
        }
        let o = curl(&["-p", "-x", &proxy, &format!("http://mapped.test:{web}/via")]);
        assert!(text(&o).contains("hello from chained"), "{}", text(&o));
        // Denied names never reach the upstream.
        let o = curl(&["-i", "-x", &proxy, &format!("http://other.test:{web}/")]);
        assert!(text(&o).contains("HTTP/1.1 403"), "{}", text(&o));
        let got = seen.lock().unwrap().clone();
        let want: Vec<String> = if scheme == "socks5h" {
            // A name goes as a name; a --resolve mapping is applied by proxyd.
            vec![format!("allowed.test:{web}"), format!("127.0.0.2:{web}")]
        } else {
            vec![format!("127.0.0.2:{web}")]
        };
        assert_eq!(got, want, "{scheme}");
        let v = d.wait_log(|v| v["label"] == scheme && v["host"] == "mapped.test");
        assert_eq!(
            v["address"],
            format!("127.0.0.1:{up}"),
            "the upstream's address"
        );
    }
}

/// Bytes `offset..offset + buf.len()` of test stream `seed`: every 8-byte word depends on its
/// position, so a lost, repeated or reordered chunk shows.
fn stream_bytes(seed: u64, offset: u64, buf: &mut [u8]) {
    let (mut word, mut z) = (u64::MAX, 0u64);
    for (i, b) in buf.iter_mut().enumerate() {
        let pos = offset + i as u64;
        if pos / 8 != word {
            word = pos / 8;
            z = word.wrapping_add(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        }
        *b = (z >> (8 * (pos % 8))) as u8;
    }
}

/// Writes `len` bytes of stream `seed`, then shuts down writing.
fn send_stream(mut w: impl Write, seed: u64, len: u64, shut: impl FnOnce()) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(buf.len() as u64) as usize;
        stream_bytes(seed, off, &mut buf[..n]);
        w.write_all(&buf[..n]).unwrap();
        off += n as u64;
    }
    shut();
}

/// Reads to EOF, checking every byte against stream `seed`; returns how many arrived.
fn check_stream(mut r: impl Read, seed: u64, skip: u64) -> u64 {
    let mut buf = vec![0u8; 256 * 1024];
    let mut want = vec![0u8; 256 * 1024];
    let mut off = skip;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            return off;
        }
        stream_bytes(seed, off, &mut want[..n]);
        if let Some(i) = (0..n).find(|&i| buf[i] != want[i]) {
            panic!("stream {seed} differs at byte {}", off + i as u64);
        }
        off += n as u64;
    }
}

const BULK: u64 = 64 << 20;
/// Bytes of the upload the client sends together with its request, so that proxyd reads them
/// ahead with the request and must pass them on before the rest.
const EARLY: u64 = 1000;

/// One 64 MiB transfer each way through a tunnel of `proto`, checked byte for byte, and the
/// audit line's byte counts.
fn bulk_both_ways(d: &Daemon, token: &str, proto: &str, port: u16, seed: u64) {
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut early = vec![0u8; EARLY as usize];
    stream_bytes(seed, 0, &mut early);
    let mut hello = format!("GW1 CONNECT {token} {proto}\n").into_bytes();
    if proto == "http" {
        hello.extend_from_slice(
            format!("CONNECT allowed.test:{port} HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
                .as_bytes(),
        );
    } else {
        hello.extend_from_slice(&[5, 1, 0, 5, 1, 0, 3, 12]);
        hello.extend_from_slice(b"allowed.test");
        hello.extend_from_slice(&port.to_be_bytes());
    }
    hello.extend_from_slice(&early);
    s.write_all(&hello).unwrap();
    // The reply: an HTTP head, or the SOCKS method choice and a 10-byte reply.
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    if proto == "http" {
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
    } else {
        head.resize(12, 0);
        s.read_exact(&mut head).unwrap();
        assert_eq!(&head[..4], &[5, 0, 5, 0], "{head:?}");
    }
    let mut w = s.try_clone().unwrap();
    let up = thread::spawn(move || {
        // The first EARLY bytes went with the request.
        let mut rest = vec![0u8; 256 * 1024];
        let mut off = EARLY;
        while off < BULK {
            let n = (BULK - off).min(rest.len() as u64) as usize;
            stream_bytes(seed, off, &mut rest[..n]);
            w.write_all(&rest[..n]).unwrap();
            off += n as u64;
        }
        w.shutdown(Shutdown::Write).unwrap();
    });
    let got = check_stream(&s, seed + 1, 0);
    up.join().unwrap();
    assert_eq!(got, BULK, "{proto}: bytes down");
    let v = d.wait_log(|v| v["proto"] == proto && v["port"] == port);
    assert_eq!(v["bytes_up"], BULK, "{proto}: {v}");
    assert_eq!(v["bytes_down"], BULK, "{proto}: {v}");
    assert_eq!(v["decision"], "allow", "{v}");
    assert!(
        !v["reason"].as_str().unwrap().contains("ended with"),
        "{proto}: {v}"
    );
}

#[test]
fn large_transfers_arrive_intact_both_ways() {
    let d = Daemon::start("bulk", RESOLVE);
    let reg = d.register("bulk", r#"{"allowedDomains": ["allowed.test"]}"#);
    for (proto, seed) in [("http", 10), ("socks5", 20)] {
        // Per connection: check the upload (stream `seed`), send stream `seed + 1`.
        let l = TcpListener::bind("127.0.0.2:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = thread::spawn(move || {
            let (c, _) = l.accept().unwrap();
            let w = c.try_clone().unwrap();
            let sender = thread::spawn(move || {
                let shut = w.try_clone().unwrap();
                send_stream(&w, seed + 1, BULK, move || {
                    shut.shutdown(Shutdown::Write).unwrap()
                });
            });
            let got = check_stream(&c, seed, 0);
            sender.join().unwrap();
            got
        });
        bulk_both_ways(&d, &reg.token, proto, port, seed);
        assert_eq!(server.join().unwrap(), BULK, "{proto}: bytes up");
    }
}

/// A DNS server for `dnsAddr` on 127.0.0.1 (UDP and TCP on one port): answers every `A` query
/// with 192.0.2.53, over UDP with the truncation bit (and no records) for names starting with
/// `big`, and records the names it was asked.
fn dns_server() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use greywall_proxyd::dns::{Query, parse_query, rcode};
    fn reply(msg: &[u8], udp: bool) -> Option<(Vec<u8>, String)> {
        let q: Query = parse_query(msg).ok()?;
        let name = q.name.clone()?;
        let limit = if udp && name.starts_with("big") {
            0
        } else {
            65535
        };
        let a = q.answer(rcode::NOERROR, &["192.0.2.53".parse().unwrap()], 60, limit);
        Some((a, format!("{name}/{}", if udp { "udp" } else { "tcp" })))
    }
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = udp.local_addr().unwrap().port();
    let tcp = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let seen = asked.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            if let Some((a, name)) = reply(&buf[..n], true) {
                seen.lock().unwrap().push(name);
                let _ = udp.send_to(&a, from);
            }
        }
    });
    let seen = asked.clone();
    thread::spawn(move || {
        for s in tcp.incoming() {
            let Ok(mut s) = s else { return };
            let mut len = [0u8; 2];
            if s.read_exact(&mut len).is_err() {
                continue;
            }
            let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if s.read_exact(&mut msg).is_err() {
                continue;
            }
            if let Some((a, name)) = reply(&msg, false) {
                seen.lock().unwrap().push(name);
                let mut out = (a.len() as u16).to_be_bytes().to_vec();
                out.extend_from_slice(&a);
                let _ = s.write_all(&out);
            }
        }
    });
    (port, asked)
}

/// Sends each query on a `GW1 DNS` connection and returns the answers by id.
fn dns_exchange(
    d: &Daemon,
    token: &str,
    transport: &str,
    queries: &[(u16, &str)],
) -> std::collections::HashMap<u16, Vec<u8>> {
    use greywall_proxyd::dns::build_query;
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = format!("GW1 DNS {token} {transport}\n").into_bytes();
    for (id, name) in queries {
        let q = build_query(*id, name, 1, true);
        out.extend_from_slice(&(q.len() as u16).to_be_bytes());
        out.extend_from_slice(&q);
    }
    s.write_all(&out).unwrap();
    let mut answers = std::collections::HashMap::new();
    while answers.len() < queries.len() {
        let mut len = [0u8; 2];
        s.read_exact(&mut len)
            .unwrap_or_else(|e| panic!("{e}: {answers:?} {}", d.stderr()));
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut msg).unwrap();
        answers.insert(u16::from_be_bytes([msg[0], msg[1]]), msg);
    }
    answers
}

#[test]
fn dns_answers_allowed_names_forwards_to_dns_addr_and_refuses_the_rest() {
    use greywall_proxyd::dns::{answer_addrs, rcode, rcode_of};
    let d = Daemon::start("dns", &["--resolve", "allowed.test=127.0.0.1"]);
    let (port, asked) = dns_server();
    let reg = d.register(
        "dns",
        &format!(
            r#"{{"allowedDomains": ["allowed.test", "fwd.test", "big.test"], "deniedDomains": ["denied.test"], "dnsAddr": "127.0.0.1:{port}"}}"#
        ),
    );
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    let a = dns_exchange(
        &d,
        &reg.token,
        "udp",
        &[
            (1, "allowed.test"),
            (2, "FWD.test."),
            (3, "denied.test"),
            (4, "elsewhere.test"),
            (5, "big.test"),
        ],
    );
    assert_eq!(
        answer_addrs(&a[&1]).unwrap(),
        vec![ip("127.0.0.1")],
        "mapped"
    );
    assert_eq!(
        answer_addrs(&a[&2]).unwrap(),
        vec![ip("192.0.2.53")],
        "forwarded"
    );
    for refused in [3, 4] {
        assert_eq!(rcode_of(&a[&refused]), Some(rcode::REFUSED));
        assert!(answer_addrs(&a[&refused]).unwrap().is_empty());
    }
    assert!(
        String::from_utf8_lossy(&a[&3])
            .contains("greywall: denied by rule (denied.test (dns.json:1:")
    );
    // A UDP client gets the truncated answer as it is (it asks again over TCP)...
    assert_eq!(a[&5][2] & 0x02, 0x02, "TC");
    // ...and a TCP client gets the whole answer: proxyd asks over TCP after the truncation.
    let t = dns_exchange(&d, &reg.token, "tcp", &[(6, "big.test")]);
    assert_eq!(answer_addrs(&t[&6]).unwrap(), vec![ip("192.0.2.53")]);
    let mut seen = asked.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            "big.test/tcp",
            "big.test/udp",
            "big.test/udp",
            "fwd.test/udp"
        ],
        "the server never hears of refused or mapped names"
    );
    // Refusals are logged with their rule; answered names are not.
    let line = d.wait_log(|v| v["proto"] == "dns" && v["host"] == "denied.test");
    assert_eq!(line["decision"], "deny");
    assert_eq!(line["rule"]["text"], "denied.test");
    d.wait_log(|v| v["proto"] == "dns" && v["host"] == "elsewhere.test");
    assert!(
        !d.log_lines()
            .iter()
            .any(|v| v["proto"] == "dns" && v["decision"] == "allow")
    );

    // Without dnsAddr: the system resolver (`localhost` is in /etc/hosts), nothing forwarded.
    let plain = d.register("plain", r#"{"allowedDomains": ["localhost", "fwd.test"]}"#);
    let before = asked.lock().unwrap().len();
    let a = dns_exchange(&d, &plain.token, "udp", &[(7, "localhost")]);
    assert_eq!(rcode_of(&a[&7]), Some(rcode::NOERROR));
    assert!(
        answer_addrs(&a[&7]).unwrap().contains(&ip("127.0.0.1")),
        "{:?}",
        answer_addrs(&a[&7])
    );
    assert_eq!(asked.lock().unwrap().len(), before);

    // A dead token: closed without an answer.
    let token = plain.token.clone();
    drop(plain);
    thread::sleep(Duration::from_millis(200));
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("GW1 DNS {token} udp\n").as_bytes())
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).unwrap(), 0);
    drop(reg);
}

/// `(process group, session)` of a process, from `/proc/PID/stat`.
fn group_and_session(pid: u32) -> (u32, u32) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    (f[2].parse().unwrap(), f[3].parse().unwrap())
}

#[test]
fn audit_log_and_stderr_are_bounded_and_new_session_detaches() {
    let dir = scratch("bounded");
    let err = dir.join("proxyd.stderr");
    let d = Daemon::start(
        "bounded",
        &[
            "--log-max",
            "2000",
            "--stderr",
            err.to_str().unwrap(),
            "--stderr-max",
            "600",
            "--new-session",
        ],
    );
    let pid = d.child.id();
    assert_eq!(
        group_and_session(pid),
        (pid, pid),
        "--new-session: its own session and group"
    );
    assert_ne!(group_and_session(std::process::id()).1, pid);
    // Each malformed first line writes an audit line and a line on standard error.
    for i in 0..40 {
        let (_, reply) = d.line(&format!("GW1 NONSENSE {i}\n"));
        assert!(reply.starts_with("ERR"), "{reply}");
    }
    let rotated = |p: &Path| {
        let mut s = p.as_os_str().to_owned();
        s.push(".1");
        PathBuf::from(s)
    };
    let log_len = std::fs::metadata(&d.log).unwrap().len();
    let old_len = std::fs::metadata(rotated(&d.log)).unwrap().len();
    assert!(log_len <= 2000 && old_len <= 2000, "{log_len} {old_len}");
    let mut lines = 0;
    for p in [rotated(&d.log), d.log.clone()] {
        for l in std::fs::read_to_string(&p).unwrap().lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["proto"], "control");
            lines += 1;
        }
    }
    assert!(lines >= 5, "whole lines survive rotation: {lines}");
    // Standard error is checked once a second.
    let t0 = Instant::now();
    loop {
        let len = std::fs::metadata(&err).map(|m| m.len()).unwrap_or(u64::MAX);
        if rotated(&err).exists() && len <= 600 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "stderr not rotated: {len} bytes"
        );
        thread::sleep(Duration::from_millis(100));
    }
    let old = std::fs::read_to_string(rotated(&err)).unwrap();
    assert!(old.contains("malformed first line"), "{old}");
    // Still answering, and still writing to the new file.
    let count = || {
        std::fs::read_to_string(&err)
            .unwrap()
            .matches("malformed first line")
            .count()
    };
    let before = count();
    let (_, reply) = d.line("GW1 NONSENSE again\n");
    assert!(reply.starts_with("ERR"));
    let t0 = Instant::now();
    while count() <= before {
        assert!(t0.elapsed() < Duration::from_secs(5));
        thread::sleep(Duration::from_millis(20));
    }
}

// ---- GW1 ADOPT: the bridge hands over the client's TCP socket -------------------------------

/// Sends `line` on a new connection to proxyd with `fds` attached (`SCM_RIGHTS`), as the
/// launcher's bridge does, and closes that connection.
fn send_with_fds(socket: &Path, line: &str, fds: &[std::os::fd::BorrowedFd<'_>]) {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    use std::os::fd::AsRawFd;
    let s = UnixStream::connect(socket).unwrap();
    let raw: Vec<i32> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsg };
    let n = sendmsg::<()>(
        s.as_raw_fd(),
        &[std::io::IoSlice::new(line.as_bytes())],
        cmsgs,
        MsgFlags::empty(),
        None,
    )
    .unwrap();
    assert_eq!(n, line.len());
}

/// A connected TCP pair on loopback: (the client's end, the accepted end a bridge would hold).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (accepted, _) = l.accept().unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    (client, accepted)
}

/// A TCP connection whose accepted end is handed to proxyd with `GW1 ADOPT <token>
/// <service>`, as the launcher's bridge hands one; returns the client's end.
fn adopted(socket: &Path, token: &str, service: &str) -> TcpStream {
    let (client, accepted) = tcp_pair();
    send_with_fds(
        socket,
        &format!("GW1 ADOPT {token} {service}\n"),
        &[accepted.as_fd()],
    );
    client
}

/// The client's end reads EOF: whoever held the other end closed it (a timeout fails).
fn closed(client: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    matches!(client.read(&mut b), Ok(0))
        || matches!(client.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
}

/// An echo server on 127.0.0.2.
fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.2:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { return };
            let mut w = c.try_clone().unwrap();
            thread::spawn(move || {
                let mut r = c;
                let _ = std::io::copy(&mut r, &mut w);
            });
        }
    });
    port
}

#[test]
fn adopted_sockets_are_served_like_bridged_ones() {
    let d = Daemon::start("adopt", RESOLVE);
    let web = http_server("127.0.0.2", "web");
    // The feature is granted only when offered: an old launcher still gets three words.
    let (path, sha) = d.ruleset("a", r#"{"allowedDomains": ["allowed.test"]}"#);
    let (_reg, reply) = d.line(&format!(
        "GW1 REGISTER {} {sha} a some-later-feature adopt\n",
        path.display()
    ));
    let words: Vec<&str> = reply.split_whitespace().collect();
    assert_eq!(
        (words.len(), words[0], words[3]),
        (4, "OK", "adopt"),
        "{reply:?}"
    );
    let token = words[2].to_string();

    // HTTP forwarding on a handed-over socket: served, and logged as a bridged one is.
    let mut client = adopted(&d.socket, &token, "http");
    write!(
        client,
        "GET http://allowed.test:{web}/x HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut got = String::new();
    client.read_to_string(&mut got).unwrap();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.contains("hello from web"), "{got}");
    let v = d.wait_log(|v| v["host"] == "allowed.test" && v["proto"] == "http");
    assert_eq!(v["decision"], "allow");
    assert!(v["bytes_up"].as_u64().unwrap() > 0 && v["bytes_down"].as_u64().unwrap() > 0);

    // SOCKS5 CONNECT through a tunnel, with the bytes counted.
    let echo = echo_server();
    let mut client = adopted(&d.socket, &token, "socks5");
    client.write_all(&[5, 1, 0]).unwrap();
    let mut reply = [0u8; 2];
    client.read_exact(&mut reply).unwrap();
    assert_eq!(reply, [5, 0]);
    let mut req = vec![5, 1, 0];
    req.extend(name("allowed.test"));
    req.extend(echo.to_be_bytes());
    client.write_all(&req).unwrap();
    let mut head = [0u8; 10];
    client.read_exact(&mut head).unwrap();
    assert_eq!(head[1], 0, "{head:?}");
    client.write_all(b"echo me").unwrap();
    let mut back = [0u8; 7];
    client.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"echo me");
    client.shutdown(Shutdown::Write).unwrap();
    assert!(closed(&mut client));
    let v = d.wait_log(|v| v["proto"] == "socks5" && v["port"] == echo);
    assert_eq!(
        (v["bytes_up"].as_u64(), v["bytes_down"].as_u64()),
        (Some(7), Some(7))
    );

    // An allowLocalOutbound host port: decided and logged by proxyd (`tcp`).
    let (path, sha) = d.ruleset(
        "h",
        &format!(r#"{{"allowedDomains": ["127.0.0.2:{echo}"]}}"#),
    );
    let (_reg_h, reply) = d.line(&format!("GW1 REGISTER {} {sha} h adopt\n", path.display()));
    let token_h = reply.split_whitespace().nth(2).unwrap().to_string();
    // The host port is 127.0.0.1:PORT; this rule names 127.0.0.2, so it is refused.
    let mut client = adopted(&d.socket, &token_h, &format!("host:{echo}"));
    assert!(closed(&mut client));
    let v = d.wait_log(|v| v["proto"] == "tcp");
    assert_eq!(
        (v["decision"].as_str(), v["host"].as_str()),
        (Some("deny"), Some("127.0.0.1"))
    );

    // The registration ends: its adopted connections end too (here an open tunnel), and are
    // logged as they end.
    let mut client = adopted(&d.socket, &token, "http");
    write!(
        client,
        "CONNECT allowed.test:{echo} HTTP/1.1\r\nHost: allowed.test:{echo}\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        client.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    drop(_reg);
    let t0 = Instant::now();
    assert!(
        closed(&mut client),
        "the tunnel outlived its registration: {}",
        d.stderr()
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
    d.wait_log(|v| v["proto"] == "http" && v["port"] == echo && v["decision"] == "allow");
}

#[test]
fn adopt_refuses_dead_tokens_wrong_descriptors_and_closes_them() {
    let d = Daemon::start("adopt-refusals", RESOLVE);
    let reg = d.register("r", r#"{"allowedDomains": ["allowed.test"]}"#);
    let token = reg.token.clone();
    let refused = |line: String, fds: &[std::os::fd::BorrowedFd<'_>], why: &str| {
        send_with_fds(&d.socket, &line, fds);
        d.wait_log(|v| {
            v["proto"] == "control" && v["reason"].as_str().is_some_and(|r| r.contains(why))
        });
    };

    // A token no registration has: refused, and the socket closed (the client sees EOF).
    let (mut client, accepted) = tcp_pair();
    refused(
        format!("GW1 ADOPT {} http\n", "ab".repeat(32)),
        &[accepted.as_fd()],
        "ADOPT (http) with an unknown or dead token",
    );
    drop(accepted);
    assert!(closed(&mut client));

    // No descriptor, or two: refused; both of the two closed.
    refused(
        format!("GW1 ADOPT {token} http\n"),
        &[],
        "with 0 descriptors, not one",
    );
    let ((mut c1, a1), (mut c2, a2)) = (tcp_pair(), tcp_pair());
    refused(
        format!("GW1 ADOPT {token} socks5\n"),
        &[a1.as_fd(), a2.as_fd()],
        "more descriptors came with the first line",
    );
    drop((a1, a2));
    assert!(closed(&mut c1) && closed(&mut c2));

    // Not a connected TCP socket: a Unix socket, a UDP socket, a listener, a file.
    let (unix, mut unix_peer) = UnixStream::pair().unwrap();
    refused(
        format!("GW1 ADOPT {token} http\n"),
        &[unix.as_fd()],
        "refused: the descriptor is not an IPv4 or IPv6 socket",
    );
    drop(unix);
    let mut b = [0u8; 1];
    unix_peer
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(
        unix_peer.read(&mut b).unwrap(),
        0,
        "proxyd kept the Unix socket"
    );
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    refused(
        format!("GW1 ADOPT {token} dns-tcp\n"),
        &[udp.as_fd()],
        "not a stream socket",
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    refused(
        format!("GW1 ADOPT {token} http\n"),
        &[listener.as_fd()],
        "a listening socket",
    );
    let file = std::fs::File::open("/dev/null").unwrap();
    refused(
        format!("GW1 ADOPT {token} http\n"),
        &[file.as_fd()],
        "not a socket",
    );

    // A descriptor with a line that carries none: refused and closed.
    let (mut client, accepted) = tcp_pair();
    refused(
        format!("GW1 CONNECT {token} http\n"),
        &[accepted.as_fd()],
        "came with a first line that carries none",
    );
    drop(accepted);
    assert!(closed(&mut client));

    // Bytes after the line (the client's bytes belong on its own socket).
    let (mut client, accepted) = tcp_pair();
    refused(
        format!("GW1 ADOPT {token} http\nGET / HTTP/1.1\r\n\r\n"),
        &[accepted.as_fd()],
        "with bytes after the line",
    );
    drop(accepted);
    assert!(closed(&mut client));

    // A dead token: the registration closed, the right is gone.
    drop(reg.conn);
    thread::sleep(Duration::from_millis(200));
    let mut client = adopted(&d.socket, &token, "http");
    assert!(closed(&mut client));
    let dead = d
        .log_lines()
        .iter()
        .filter(|v| {
            v["reason"]
                .as_str()
                .is_some_and(|r| r.contains("unknown or dead token"))
        })
        .count();
    assert_eq!(dead, 2);
    // Nothing was served: no line names a destination.
    assert!(
        d.log_lines().iter().all(|v| v["host"].is_null()),
        "{:#?}",
        d.log_lines()
    );
}
