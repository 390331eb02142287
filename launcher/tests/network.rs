//! Network egress end to end: `greywall exec` with `allowedDomains`, the launcher's bridge and
//! a proxy daemon speaking greywall-proxyd's contract on its Unix socket.
//!
//! The daemon here is a small one written in the test (`FakeProxyd`): it accepts registrations
//! (checking the rule set's SHA-256 as proxyd does), decides with the compiler's own decision
//! function (`EgressRules::decide`), and speaks HTTP-proxy (CONNECT and absolute-form GET) to
//! local servers, with names mapped to `127.0.0.1` as `--resolve` would. Everything stays on
//! loopback. What it checks is the launcher's half: registration, the in-sandbox listeners,
//! splicing, the proxy environment, fail-closed start, hiding proxyd's directory, and that a
//! client ignoring the proxy has no route.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::thread;

use greywall_compiler::cache::sha256_hex;
use greywall_compiler::egress::EgressRules;

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A scratch machine: HOME, a workspace with a policy, and a runtime directory.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new(policy: &str) -> Scratch {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        for d in ["home", "work"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir.path().join("run"))
            .unwrap();
        std::fs::write(dir.path().join("work/greywall.json"), policy).unwrap();
        Scratch { dir }
    }
    fn runtime(&self) -> PathBuf {
        self.dir.path().join("run")
    }
    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }
    fn command(&self, runtime: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_greywall"));
        c.args(args)
            .current_dir(self.work())
            .env_clear()
            .env("HOME", self.dir.path().join("home"))
            .env("XDG_RUNTIME_DIR", runtime)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin");
        c
    }
    fn run(&self, runtime: &Path, args: &[&str]) -> Output {
        self.command(runtime, args).output().unwrap()
    }
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
    let s = Scratch::new(r#"{"filesystem": {"allowWrite": ["."]}}"#);
    let o = s.run(&s.runtime(), &["exec", "--", "true"]);
    if code(&o) != 0 {
        skip(&format!("the launcher cannot run here: {}", stderr(&o)));
        return false;
    }
    for tool in ["curl", "python3"] {
        if Command::new(tool).arg("--version").output().is_err() {
            skip(&format!("{tool} is not installed"));
            return false;
        }
    }
    true
}

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

/// A daemon speaking greywall-proxyd's contract (HTTP side only), mapping every allowed name to
/// 127.0.0.1.
struct FakeProxyd {
    /// Registrations seen: (label, sha256).
    registered: Arc<Mutex<Vec<(String, String)>>>,
    /// Decisions made: (host, port, allowed).
    decisions: Arc<Mutex<Vec<(String, u16, bool)>>>,
}

type Tokens = Arc<Mutex<HashMap<String, EgressRules>>>;

impl FakeProxyd {
    fn start(runtime: &Path) -> FakeProxyd {
        let dir = runtime.join("greywall");
        std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        let l = UnixListener::bind(dir.join("proxyd.sock")).unwrap();
        let registered = Arc::new(Mutex::new(Vec::new()));
        let decisions = Arc::new(Mutex::new(Vec::new()));
        let tokens: Tokens = Arc::new(Mutex::new(HashMap::new()));
        let (reg, dec) = (registered.clone(), decisions.clone());
        thread::spawn(move || {
            for (n, s) in l.incoming().enumerate() {
                let Ok(s) = s else { continue };
                let (reg, dec, tokens) = (reg.clone(), dec.clone(), tokens.clone());
                thread::spawn(move || serve(s, n, &reg, &dec, &tokens));
            }
        });
        FakeProxyd {
            registered,
            decisions,
        }
    }
}

fn serve(
    s: UnixStream,
    n: usize,
    reg: &Mutex<Vec<(String, String)>>,
    dec: &Mutex<Vec<(String, u16, bool)>>,
    tokens: &Tokens,
) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let words: Vec<&str> = line.trim_end().split(' ').collect();
    match words.as_slice() {
        ["GW1", "REGISTER", path, sha, label] => {
            let bytes = std::fs::read(path).unwrap_or_default();
            if sha256_hex(&bytes) != *sha {
                let _ = (&s).write_all(b"ERR rule set does not match its hash\n");
                return;
            }
            let Ok(rules) = EgressRules::from_bytes(&bytes) else {
                let _ = (&s).write_all(b"ERR bad rule set\n");
                return;
            };
            let token = format!("{:064x}", 0xabcd_0000 + n);
            tokens.lock().unwrap().insert(token.clone(), rules);
            reg.lock()
                .unwrap()
                .push(((*label).to_string(), (*sha).to_string()));
            (&s).write_all(format!("OK sb{n} {token}\n").as_bytes())
                .unwrap();
            // The registration lives as long as the connection.
            let mut rest = Vec::new();
            let _ = r.read_to_end(&mut rest);
            tokens.lock().unwrap().remove(&token);
        }
        ["GW1", "CONNECT", token, "http"] => {
            let Some(rules) = tokens.lock().unwrap().get(*token).cloned() else {
                return;
            };
            let mut head = String::new();
            let mut l = String::new();
            while r.read_line(&mut l).is_ok_and(|k| k > 2) {
                head.push_str(&l);
                l.clear();
            }
            let first = head.lines().next().unwrap_or("").to_string();
            let mut parts = first.split(' ');
            let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let authority = if method == "CONNECT" {
                target.to_string()
            } else {
                let rest = target.strip_prefix("http://").unwrap_or("");
                rest.split('/').next().unwrap_or("").to_string()
            };
            let (host, port) = authority.rsplit_once(':').unwrap_or((&authority, "80"));
            let port: u16 = port.parse().unwrap_or(0);
            let verdict = rules.decide(host, port);
            // Only names are mapped; an address literal is not.
            let allowed = verdict.allowed && host.parse::<std::net::IpAddr>().is_err();
            dec.lock().unwrap().push((host.to_string(), port, allowed));
            if !allowed {
                let _ = (&s).write_all(
                    b"HTTP/1.1 403 Forbidden\r\nContent-Length: 7\r\nConnection: close\r\n\r\ndenied\n",
                );
                return;
            }
            let Ok(up) = TcpStream::connect(("127.0.0.1", port)) else {
                let _ = (&s).write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
                return;
            };
            if method == "CONNECT" {
                (&s).write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
            } else {
                let path = target
                    .strip_prefix("http://")
                    .and_then(|t| t.find('/').map(|i| &t[i..]))
                    .unwrap_or("/");
                let rest = head.split_once("\r\n").map_or("", |x| x.1);
                (&up)
                    .write_all(format!("{method} {path} HTTP/1.1\r\n{rest}\r\n").as_bytes())
                    .unwrap();
            }
            let buffered = r.buffer().to_vec();
            (&up).write_all(&buffered).unwrap();
            let (up2, s2) = (up.try_clone().unwrap(), s.try_clone().unwrap());
            let t = thread::spawn(move || {
                let _ = std::io::copy(&mut &up2, &mut &s2);
                let _ = s2.shutdown(Shutdown::Write);
            });
            let mut rr = r;
            let _ = std::io::copy(&mut rr, &mut &up);
            let _ = up.shutdown(Shutdown::Write);
            let _ = t.join();
        }
        _ => {}
    }
}

fn policy(domains: &[&str]) -> String {
    let list: Vec<String> = domains.iter().map(|d| format!("\"{d}\"")).collect();
    format!(
        r#"{{"network": {{"allowedDomains": [{}]}}, "filesystem": {{"allowWrite": ["."]}}}}"#,
        list.join(", ")
    )
}

#[test]
fn allowed_names_pass_denied_names_and_direct_connections_do_not() {
    if !ready() {
        return;
    }
    let s = Scratch::new(&policy(&["allowed.test"]));
    let proxyd = FakeProxyd::start(&s.runtime());
    let port = web_server("the allowed server");
    let curl = |url: String| {
        s.run(
            &s.runtime(),
            &["exec", "--", "curl", "-sS", "-f", "--max-time", "10", &url],
        )
    };
    let o = curl(format!("http://allowed.test:{port}/"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello from the allowed server\n");
    // Through CONNECT as well (what HTTPS clients do).
    let o = s.run(
        &s.runtime(),
        &[
            "exec",
            "--",
            "curl",
            "-sS",
            "-f",
            "-p",
            "--max-time",
            "10",
            &format!("http://allowed.test:{port}/"),
        ],
    );
    assert_eq!(
        stdout(&o),
        "hello from the allowed server\n",
        "{}",
        stderr(&o)
    );
    // A name the policy does not allow: proxyd's 403.
    let o = curl(format!("http://denied.test:{port}/"));
    assert_eq!(code(&o), 22, "curl -f on 403: {}", stderr(&o));
    assert!(stderr(&o).contains("403"), "{}", stderr(&o));
    // A raw address: not a name the policy allows.
    let o = curl(format!("http://127.0.0.1:{port}/"));
    assert_ne!(code(&o), 0, "{}", stdout(&o));
    // A client that ignores the proxy: the sandbox has no route out, and the host's loopback
    // server is not its loopback.
    let o = s.run(
        &s.runtime(),
        &[
            "exec",
            "--",
            "curl",
            "-sS",
            "--noproxy",
            "*",
            "--max-time",
            "5",
            &format!("http://127.0.0.1:{port}/"),
        ],
    );
    assert_eq!(code(&o), 7, "connection refused inside: {}", stderr(&o));
    let direct = "import socket\ntry:\n    socket.create_connection(('192.0.2.1', 80), timeout=5)\n    print('connected')\nexcept OSError as e:\n    print(e.errno)\n";
    let o = s.run(&s.runtime(), &["exec", "--", "python3", "-c", direct]);
    assert_eq!(
        stdout(&o).trim(),
        libc::ENETUNREACH.to_string(),
        "{}",
        stderr(&o)
    );
    // Python's urllib follows the proxy environment.
    let py = format!(
        "import urllib.request\nprint(urllib.request.urlopen('http://allowed.test:{port}/', timeout=10).read().decode(), end='')"
    );
    let o = s.run(&s.runtime(), &["exec", "--", "python3", "-c", &py]);
    assert_eq!(
        stdout(&o),
        "hello from the allowed server\n",
        "{}",
        stderr(&o)
    );
    let reg = proxyd.registered.lock().unwrap().clone();
    assert!(reg.iter().any(|(label, _)| label == "curl"), "{reg:?}");
    assert!(reg.iter().any(|(label, _)| label == "python3"), "{reg:?}");
    let dec = proxyd.decisions.lock().unwrap().clone();
    assert!(
        dec.contains(&("allowed.test".into(), port, true)),
        "{dec:?}"
    );
    assert!(
        dec.contains(&("denied.test".into(), port, false)),
        "{dec:?}"
    );
}

#[test]
fn the_proxy_environment_is_set_and_proxyd_stays_hidden() {
    if !ready() {
        return;
    }
    let s = Scratch::new(&policy(&["allowed.test", "git.example.test:22"]));
    let _proxyd = FakeProxyd::start(&s.runtime());
    let o = s.run(&s.runtime(), &["exec", "--", "env"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let env = stdout(&o);
    for line in [
        "HTTP_PROXY=http://127.0.0.1:3128",
        "https_proxy=http://127.0.0.1:3128",
        "ALL_PROXY=socks5h://127.0.0.1:1080",
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
    // proxyd's directory is an empty read-only folder inside; its socket cannot be reached.
    let dir = s.runtime().join("greywall");
    let probe = format!(
        "import os, socket\ntry:\n    print(os.listdir({d:?}))\nexcept OSError:\n    print('unreadable')\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect({d:?} + '/proxyd.sock')\n    print('connected')\nexcept OSError as e:\n    print('refused')\n",
        d = dir.to_string_lossy()
    );
    let o = s.run(&s.runtime(), &["exec", "--", "python3", "-c", &probe]);
    let seen = stdout(&o);
    assert!(
        seen == "[]\nrefused\n" || seen == "unreadable\nrefused\n",
        "{seen}{}",
        stderr(&o)
    );
    // A policy without allowedDomains gets no proxy environment at all.
    let plain = Scratch::new(r#"{"filesystem": {"allowWrite": ["."]}}"#);
    let o = plain.run(&s.runtime(), &["exec", "--", "env"]);
    assert!(!stdout(&o).contains("_PROXY="), "{}", stdout(&o));
}

#[test]
fn two_sandboxes_with_different_policies_get_different_answers() {
    if !ready() {
        return;
    }
    let a = Scratch::new(&policy(&["a.test"]));
    let b = Scratch::new(&policy(&["b.test"]));
    // One daemon, in a's runtime directory, serves both.
    let runtime = a.runtime();
    let _proxyd = FakeProxyd::start(&runtime);
    let port = web_server("the shared server");
    let script = format!(
        "for h in a.test b.test; do curl -s -o /dev/null -w \"$h %{{http_code}}\\n\" --max-time 10 http://$h:{port}/; done"
    );
    let ca = a
        .command(&runtime, &["exec", "--", "sh", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let cb = b
        .command(&runtime, &["exec", "--", "sh", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (oa, ob) = (
        ca.wait_with_output().unwrap(),
        cb.wait_with_output().unwrap(),
    );
    assert_eq!(stdout(&oa), "a.test 200\nb.test 403\n", "{}", stderr(&oa));
    assert_eq!(stdout(&ob), "a.test 403\nb.test 200\n", "{}", stderr(&ob));
}

#[test]
fn without_a_usable_proxyd_the_command_does_not_run() {
    if !ready() {
        return;
    }
    let s = Scratch::new(&policy(&["allowed.test"]));
    // proxyd's directory open to others: refused, and nothing runs.
    let dir = s.runtime().join("greywall");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let marker = s.work().join("ran");
    let o = s.run(
        &s.runtime(),
        &["exec", "--", "touch", marker.to_str().unwrap()],
    );
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    assert!(stderr(&o).contains("greywall-proxyd"), "{}", stderr(&o));
    let errors = stderr(&o);
    let errors: Vec<&str> = errors
        .lines()
        .filter(|l| !l.starts_with("greywall: note:"))
        .collect();
    assert_eq!(errors.len(), 1, "one line: {errors:?}");
    assert!(
        !marker.exists(),
        "the command never runs without its network"
    );
    // A daemon that refuses the registration: the same.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let l = UnixListener::bind(dir.join("proxyd.sock")).unwrap();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut line = String::new();
            let _ = BufReader::new(&s).read_line(&mut line);
            let _ = (&s).write_all(b"ERR not today\n");
        }
    });
    let o = s.run(
        &s.runtime(),
        &["exec", "--", "touch", marker.to_str().unwrap()],
    );
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    assert!(stderr(&o).contains("not today"), "{}", stderr(&o));
    assert!(!marker.exists());
}

#[test]
fn exposed_ports_reach_a_server_inside() {
    if !ready() {
        return;
    }
    let s = Scratch::new(r#"{"filesystem": {"allowWrite": ["."]}}"#);
    // A free port on the host's loopback.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!(
        "import socket\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('127.0.0.1', {port}))\ns.listen(1)\nprint('listening', flush=True)\nc, _ = s.accept()\nc.sendall(b'from inside: ' + c.recv(100))\nc.close()\n"
    );
    let mut child = s
        .command(
            &s.runtime(),
            &[
                "exec",
                "-p",
                &port.to_string(),
                "--",
                "python3",
                "-c",
                &server,
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "listening\n");
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"ping").unwrap();
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    assert_eq!(got, "from inside: ping");
    let status = child.wait().unwrap();
    assert!(status.success());
}
