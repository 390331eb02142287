//! Measures the real `greywall-proxyd` binary; reports, asserts nothing.
//!
//! `cargo bench -p greywall-proxyd --bench measure [-- SECTION...]` (release build; sections:
//! `throughput`, `latency`, `concurrency`, `bridge`; none named: all but `bridge`).
//! `GREYWALL_PROXYD_BIN=PATH` measures another binary instead, to compare two builds in turn.
//! The first three talk to proxyd's Unix socket directly (`GW1 CONNECT <token> http` +
//! `CONNECT host:port`), so the figures are proxyd's own cost, without the launcher's bridge.
//! Traffic stays on loopback: the servers listen on 127.0.0.2, reached by name through
//! `--resolve`.
//!
//! - throughput: a bulk download of `BULK` bytes, directly (TCP to the server) and through a
//!   CONNECT tunnel (the Unix socket to proxyd, TCP from proxyd to the same server), in
//!   `PAIRS` interleaved pairs whose order alternates, for each size in `CHUNKS`. The server
//!   and the client are plain threads doing blocking `write`/`read`, the same code both ways,
//!   so neither pays for a runtime; the tunnel has proxyd as a third party on the same cores,
//!   which is what it costs. A pair during which other processes used more than
//!   `OTHER_LOAD_MAX` of the CPUs is left out (and said so). Reported: medians of each, the
//!   median of the per-pair ratios with its quartiles, and proxyd's CPU time per GiB;
//! - latency: connect + 1-byte echo round trip, direct vs tunnelled, interleaved, 1000 each;
//! - concurrency: 1000 tunnels open at once, each then does an echo round trip;
//! - RSS of the daemon idle with one registration, and after the concurrency run;
//! - bridge: the whole path, curl inside `greywall exec` (the launcher's bridge, then this
//!   proxyd) against the same curl straight to the server, a 256 MiB download each
//!   (`GREYWALL_BENCH_BRIDGE_MIB`), over an HTTP `CONNECT` tunnel and over SOCKS5, in 9
//!   interleaved rounds (`GREYWALL_BENCH_BRIDGE_ROUNDS`; the
//!   order rotates); curl's own `time_total` (so the sandbox's launch is not in it). Needs
//!   the launcher: `GREYWALL_BIN=PATH`, else `greywall` next to the proxyd binary (`cargo
//!   build --release -p greywall`); the launcher uses the bench's proxyd.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use greywall_compiler::egress;
use greywall_compiler::load::{Input, load};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UnixStream};

/// Bytes per download.
const BULK: u64 = 512 << 20;
/// Interleaved direct/tunnel pairs.
const PAIRS: usize = 15;
/// A pair during which other work took more than this share of the CPUs (%) is left out.
const OTHER_LOAD_MAX: f64 = 10.0;
/// The sizes of each `write` of the bulk server and each `read` of its client: a typical
/// client buffer, and a large one (with which direct loopback TCP is at its fastest here).
const CHUNKS: [usize; 2] = [64 << 10, 1 << 20];
const LAT_RUNS: usize = 1000;
/// Bytes per download through the whole path (`GREYWALL_BENCH_BRIDGE_MIB` MiB when set).
fn bridge_bulk() -> u64 {
    env_number("GREYWALL_BENCH_BRIDGE_MIB").map_or(256 << 20, |m| m << 20)
}
/// Interleaved rounds of (direct, CONNECT, SOCKS5) downloads (`GREYWALL_BENCH_BRIDGE_ROUNDS`).
fn bridge_rounds() -> usize {
    env_number("GREYWALL_BENCH_BRIDGE_ROUNDS").map_or(9, |n| n as usize)
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok().filter(|&n| n > 0)
}
const TUNNELS: usize = 1000;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// User + system CPU time of a process (all its threads), in milliseconds.
fn cpu_ms(pid: u32) -> u64 {
    cpu_ms_of(&format!("/proc/{pid}/stat"))
}

fn cpu_ms_of(path: &str) -> u64 {
    let stat = std::fs::read_to_string(path).unwrap();
    // Fields after the command name (which may hold spaces) end with ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest
        .split(' ')
        .skip(11)
        .take(2)
        .map(|v| v.parse().unwrap())
        .collect();
    // USER_HZ is 100 on Linux.
    (f[0] + f[1]) * 10
}

/// The machine's CPU time so far, from `/proc/stat`, in ticks: busy, total, stolen by the
/// host, and interrupt handling (hard and soft, where the kernel accounts it apart).
fn machine_ticks() -> [u64; 4] {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().unwrap())
        .collect();
    let total: u64 = f.iter().sum();
    // user nice system idle iowait irq softirq steal
    [total - f[3] - f[4], total, f[7], f[5] + f[6]]
}

/// The kernel threads that process packets when interrupts fall behind (`ksoftirqd/N`): on
/// loopback that is the bench's own traffic, not other work.
fn packet_threads() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.starts_with("ksoftirqd/"))
        })
        .collect()
}

/// Runs `f`; also says how much of the machine's CPU time went meanwhile to other work than
/// this bench, `daemon` and the packets between them (% of all CPUs: other processes, and time
/// stolen by the host).
fn others<T>(daemon: u32, f: impl FnOnce() -> T) -> (T, f64) {
    let kernel = packet_threads();
    let ours = || {
        cpu_ms_of("/proc/self/stat")
            + cpu_ms(daemon)
            + kernel
                .iter()
                .map(|p| cpu_ms_of(&format!("/proc/{p}/stat")))
                .sum::<u64>()
    };
    let (a, a_ours) = (machine_ticks(), ours());
    let r = f();
    let (b, b_ours) = (machine_ticks(), ours());
    let total = (b[1] - a[1]).max(1) as f64;
    // Ticks are 10 ms (USER_HZ 100).
    let ours = (b_ours - a_ours) as f64 / 10.0 + (b[3] - a[3]) as f64;
    let other = (b[0] - a[0] + b[2] - a[2]) as f64 - ours;
    (r, (100.0 * other / total).max(0.0))
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Sends `BULK` bytes to each connection in `chunk`-sized writes, from a thread of its own.
fn bulk_server(chunk: usize) -> u16 {
    serve_each(move |mut c| send_zeroes(&mut c, BULK, chunk))
}

/// A server on `127.0.0.2` (a free port, returned) that runs `serve` on each connection in a
/// thread of its own.
fn serve_each(serve: impl Fn(std::net::TcpStream) + Clone + Send + 'static) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let c = c.unwrap();
            let serve = serve.clone();
            std::thread::spawn(move || serve(c));
        }
    });
    port
}

/// Writes `len` zero bytes, `chunk` at a time, until done or the reader goes away.
fn send_zeroes(c: &mut impl Write, len: u64, chunk: usize) {
    let buf = vec![0u8; chunk];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        if c.write_all(&buf[..n]).is_err() {
            return;
        }
        left -= n as u64;
    }
}

/// Reads until EOF; the number of bytes.
fn drain_blocking(r: &mut impl Read, chunk: usize, mut total: u64) -> u64 {
    let mut buf = vec![0u8; chunk];
    loop {
        match r.read(&mut buf).unwrap() {
            0 => return total,
            n => total += n as u64,
        }
    }
}

/// Downloads from the bulk server directly; MiB/s.
fn download_direct(port: u16, chunk: usize) -> f64 {
    let t = Instant::now();
    let mut s = std::net::TcpStream::connect(("127.0.0.2", port)).unwrap();
    assert_eq!(drain_blocking(&mut s, chunk, 0), BULK);
    BULK as f64 / t.elapsed().as_secs_f64() / (1 << 20) as f64
}

/// Downloads from the bulk server through a CONNECT tunnel; MiB/s.
fn download_tunnel(socket: &Path, token: &str, port: u16, chunk: usize) -> f64 {
    let t = Instant::now();
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.write_all(
        format!("GW1 CONNECT {token} http\nCONNECT bench.test:{port} HTTP/1.1\r\nHost: bench.test:{port}\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let body = loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "proxyd closed the tunnel before its answer");
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break (head.len() - i - 4) as u64;
        }
    };
    assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
    assert_eq!(drain_blocking(&mut s, chunk, body), BULK);
    BULK as f64 / t.elapsed().as_secs_f64() / (1 << 20) as f64
}

/// Interleaved direct and tunnelled downloads (the order alternates from pair to pair).
fn throughput(d: &Daemon, chunk: usize) {
    println!("throughput, {} KiB reads and writes:", chunk >> 10);
    let port = bulk_server(chunk);
    let (mut direct, mut tunnelled, mut ratios, mut cpu) = (vec![], vec![], vec![], vec![]);
    for i in 0..PAIRS {
        let tunnel = || {
            let c = cpu_ms(d.pid);
            let r = download_tunnel(&d.socket, &d.token, port, chunk);
            (r, cpu_ms(d.pid) - c)
        };
        let ((a, ao), ((b, ms), bo));
        if i % 2 == 0 {
            (a, ao) = others(d.pid, || download_direct(port, chunk));
            ((b, ms), bo) = others(d.pid, tunnel);
        } else {
            ((b, ms), bo) = others(d.pid, tunnel);
            (a, ao) = others(d.pid, || download_direct(port, chunk));
        }
        let kept = ao.max(bo) <= OTHER_LOAD_MAX;
        println!(
            "  pair {:2}: direct {a:4.0} MiB/s, tunnel {b:4.0} MiB/s ({:3.0}%), proxyd CPU {ms:3} ms; other load {ao:2.0}% / {bo:2.0}%{}",
            i + 1,
            100.0 * b / a,
            if kept { "" } else { " (left out)" },
        );
        if kept {
            cpu.push(ms as f64 / (BULK as f64 / (1u64 << 30) as f64));
            direct.push(a);
            tunnelled.push(b);
            ratios.push(b / a);
        }
    }
    if ratios.is_empty() {
        println!("throughput: every pair ran beside other work; run it again on a quieter machine");
        return;
    }
    println!(
        "throughput, {} KiB reads, {} MiB downloads, {} of {PAIRS} interleaved pairs kept, medians: direct {:.0} MiB/s, CONNECT tunnel {:.0} MiB/s; tunnel/direct per pair: median {:.0}% (quartiles {:.0}-{:.0}%); proxyd CPU {:.0} ms per GiB",
        chunk >> 10,
        BULK >> 20,
        ratios.len(),
        pct(&mut direct, 0.5),
        pct(&mut tunnelled, 0.5),
        100.0 * pct(&mut ratios, 0.5),
        100.0 * pct(&mut ratios, 0.25),
        100.0 * pct(&mut ratios, 0.75),
        pct(&mut cpu, 0.5),
    );
}

/// Echoes every byte.
async fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut c, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = c.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

/// A tunnel to `host:port` through proxyd; the stream is positioned after the `200` head.
async fn tunnel(socket: &Path, token: &str, port: u16) -> BufReader<UnixStream> {
    let mut s = UnixStream::connect(socket).await.unwrap();
    s.write_all(
        format!("GW1 CONNECT {token} http\nCONNECT bench.test:{port} HTTP/1.1\r\nHost: bench.test:{port}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line:?}");
    loop {
        line.clear();
        r.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            break;
        }
    }
    r
}

async fn latency(d: &Daemon) {
    let echo = echo_server().await;
    let mut lat_d = Vec::new();
    let mut lat_t = Vec::new();
    for _ in 0..LAT_RUNS {
        let t = Instant::now();
        let mut s = TcpStream::connect(("127.0.0.2", echo)).await.unwrap();
        s.set_nodelay(true).unwrap();
        s.write_all(b"x").await.unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        lat_d.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        let mut s = tunnel(&d.socket, &d.token, echo).await;
        s.get_mut().write_all(b"x").await.unwrap();
        s.read_exact(&mut b).await.unwrap();
        lat_t.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let (d50, t50) = (pct(&mut lat_d, 0.5), pct(&mut lat_t, 0.5));
    let (d90, t90) = (pct(&mut lat_d, 0.9), pct(&mut lat_t, 0.9));
    println!(
        "connect + 1-byte echo, {LAT_RUNS} interleaved: direct p50 {d50:.0} us p90 {d90:.0} us; tunnel p50 {t50:.0} us p90 {t90:.0} us; added p50 {:.0} us",
        t50 - d50
    );
}

async fn concurrency(d: &Daemon) {
    let echo = echo_server().await;
    let t = Instant::now();
    let mut opens = Vec::new();
    for _ in 0..TUNNELS {
        let (socket, token) = (d.socket.clone(), d.token.clone());
        opens.push(tokio::spawn(
            async move { tunnel(&socket, &token, echo).await },
        ));
    }
    let mut streams = Vec::new();
    let mut errors = 0;
    for o in opens {
        match o.await {
            Ok(s) => streams.push(s),
            Err(_) => errors += 1,
        }
    }
    let opened = t.elapsed();
    println!(
        "{TUNNELS} concurrent tunnels: {} open ({errors} errors) in {:.0} ms; daemon RSS {} KiB",
        streams.len(),
        opened.as_secs_f64() * 1e3,
        rss_kib(d.pid)
    );
    let mut ok = 0;
    for s in &mut streams {
        let mut b = [0u8; 1];
        if s.get_mut().write_all(b"y").await.is_ok() && s.read_exact(&mut b).await.is_ok() {
            ok += 1;
        }
    }
    println!("  echo round trip on each: {ok}/{} ok", streams.len());
    drop(streams);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fds = std::fs::read_dir(format!("/proc/{}/fd", d.pid)).map_or(0, |d| d.count());
    println!(
        "after closing them: daemon RSS {} KiB, {fds} open descriptors",
        rss_kib(d.pid)
    );
}

/// An HTTP server answering every request with `len` bytes (64 KiB writes), thread per client.
fn http_bulk_server(len: u64) -> u16 {
    serve_each(move |mut c| {
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if c.read(&mut b).unwrap_or(0) == 0 {
                return;
            }
            head.push(b[0]);
        }
        let _ = write!(
            c,
            "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        );
        send_zeroes(&mut c, len, 64 << 10);
    })
}

/// Runs curl (`argv`, a launcher command or curl itself) and returns curl's own transfer time
/// in seconds, after checking the byte count.
fn curl_seconds(argv: &[String], env: &[(&str, PathBuf)], cwd: &Path) -> f64 {
    let o = Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let (size, secs) = out
        .trim()
        .split_once(' ')
        .unwrap_or_else(|| panic!("{argv:?}: {out:?} {}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(size.parse::<u64>().unwrap(), bridge_bulk(), "{argv:?}");
    secs.parse().unwrap()
}

fn bridge(d: &Daemon) {
    let greywall = std::env::var_os("GREYWALL_BIN").map_or_else(
        || Path::new(env!("CARGO_BIN_EXE_greywall-proxyd")).with_file_name("greywall"),
        PathBuf::from,
    );
    if !greywall.exists() {
        println!(
            "bridge: {} is missing: `cargo build --release -p greywall`, or set GREYWALL_BIN",
            greywall.display()
        );
        return;
    }
    println!("launcher: {}", greywall.display());
    // Outside proxyd's socket directory, which the sandbox's view hides.
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("measure-bridge-{}", std::process::id()));
    for sub in ["home", "work", "state"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::write(
        root.join("work/greywall.json"),
        r#"{"network": {"allowedDomains": ["bench.test"]}}"#,
    )
    .unwrap();
    // The launcher finds the bench's proxyd at $XDG_RUNTIME_DIR/greywall/proxyd.sock.
    let env = [
        ("HOME", root.join("home")),
        ("XDG_STATE_HOME", root.join("state")),
        ("XDG_RUNTIME_DIR", d.dir.parent().unwrap().to_path_buf()),
    ];
    let port = http_bulk_server(bridge_bulk());
    let url = format!("http://bench.test:{port}/");
    let curl = |extra: &[&str], url: &str| -> Vec<String> {
        let mut v: Vec<String> = [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download} %{time_total}",
        ]
        .map(String::from)
        .to_vec();
        v.extend(extra.iter().map(|s| s.to_string()));
        v.push(url.to_string());
        v
    };
    let inside = |args: Vec<String>| -> Vec<String> {
        let mut v = vec![greywall.display().to_string(), "exec".into(), "--".into()];
        v.extend(args);
        v
    };
    let cases: [(&str, Vec<String>); 3] = [
        ("direct", curl(&[], &format!("http://127.0.0.2:{port}/"))),
        (
            "CONNECT",
            inside(curl(&["-p", "-x", "http://127.0.0.1:3128"], &url)),
        ),
        (
            "SOCKS5",
            inside(curl(&["--socks5-hostname", "127.0.0.1:1080"], &url)),
        ),
    ];
    // Compiles the policy, warms the cache, checks the path.
    let in_work = |argv: &[String]| curl_seconds(argv, &env, &root.join("work"));
    in_work(&cases[1].1);
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for round in 0..bridge_rounds() {
        for k in 0..cases.len() {
            let i = (round + k) % cases.len();
            times[i].push(in_work(&cases[i].1));
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mib = (bridge_bulk() >> 20) as f64;
    let direct = times[0].clone();
    for (i, (name, _)) in cases.iter().enumerate() {
        let mut ratios: Vec<f64> = times[i].iter().zip(&direct).map(|(t, d)| t / d).collect();
        let mut t = times[i].clone();
        let med = pct(&mut t, 0.5);
        println!(
            "bridge, {name:8}: median {:.0} ms ({:.0} MiB/s); time / direct per round: median {:.2}x (quartiles {:.2}-{:.2}x)",
            med * 1e3,
            mib / med,
            pct(&mut ratios, 0.5),
            pct(&mut ratios, 0.25),
            pct(&mut ratios, 0.75),
        );
    }
    let _ = std::fs::remove_dir_all(&root);
    println!(
        "bridge: {} interleaved rounds of {} MiB downloads with curl; load average after: {}",
        bridge_rounds(),
        bridge_bulk() >> 20,
        load.trim()
    );
}

/// The daemon under test, with one registration.
struct Daemon {
    child: Child,
    pid: u32,
    dir: PathBuf,
    socket: PathBuf,
    token: String,
    /// The registration lives as long as this connection.
    _reg: BufReader<UnixStream>,
}

async fn start() -> Daemon {
    // `<measure-PID>/greywall/`: the socket where a launcher with `XDG_RUNTIME_DIR` at
    // `<measure-PID>` looks (the `bridge` section).
    let runtime =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("measure-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&runtime);
    let dir = runtime.join("greywall");
    std::fs::create_dir_all(&dir).unwrap();
    for d in [&runtime, &dir] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let socket = dir.join("proxyd.sock");
    // `GREYWALL_PROXYD_BIN` measures another build (e.g. the previous one, for a comparison).
    let bin = std::env::var_os("GREYWALL_PROXYD_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_greywall-proxyd")),
        PathBuf::from,
    );
    println!("binary: {}", bin.display());
    let child = Command::new(&bin)
        .arg("--socket")
        .arg(&socket)
        .args(["--no-log", "--resolve", "bench.test=127.0.0.2"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let t0 = Instant::now();
    while UnixStream::connect(&socket).await.is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let l = load(&Input::Text {
        name: "bench.json".into(),
        text: r#"{"network": {"allowedDomains": ["bench.test"]}}"#.into(),
        dir: ".".into(),
    });
    let bytes = egress::rules(l.policy.as_ref().unwrap(), &l.sources).to_bytes();
    let rules = dir.join("rules.json");
    std::fs::write(&rules, &bytes).unwrap();
    std::fs::set_permissions(&rules, std::fs::Permissions::from_mode(0o600)).unwrap();
    let sha: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut reg = BufReader::new(UnixStream::connect(&socket).await.unwrap());
    reg.get_mut()
        .write_all(format!("GW1 REGISTER {} {sha} bench\n", rules.display()).as_bytes())
        .await
        .unwrap();
    let mut reply = String::new();
    reg.read_line(&mut reply).await.unwrap();
    let token = reply.split_whitespace().nth(2).unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("idle RSS (one registration): {} KiB", rss_kib(pid));
    Daemon {
        child,
        pid,
        dir,
        socket,
        token,
        _reg: reg,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; other arguments name the sections to run.
    let sections: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted =
        |s: &str| (sections.is_empty() && s != "bridge") || sections.iter().any(|a| a == s);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut d = rt.block_on(start());
    // Blocking threads, outside the runtime (whose workers sleep meanwhile).
    if wanted("throughput") {
        for chunk in CHUNKS {
            throughput(&d, chunk);
        }
    }
    if wanted("latency") {
        rt.block_on(latency(&d));
    }
    if wanted("concurrency") {
        rt.block_on(concurrency(&d));
    }
    if wanted("bridge") {
        bridge(&d);
    }
    let _ = d.child.kill();
    let _ = d.child.wait();
    let _ = std::fs::remove_dir_all(d.dir.parent().unwrap());
}
