//! Measures the real `greywall-proxyd` binary; reports, asserts nothing.
//!
//! `cargo bench -p greywall-proxyd --bench measure` (release build; `GREYWALL_PROXYD_BIN=PATH`
//! measures another binary instead, to compare two builds in turn). Talks to proxyd's Unix
//! socket directly (`GW1 CONNECT <token> http` + `CONNECT host:port`), so the figures are
//! proxyd's own cost, without the launcher's bridge. Traffic stays on loopback: the servers
//! listen on 127.0.0.2, reached by name through `--resolve`.
//!
//! - throughput: one 1 GiB download through a CONNECT tunnel vs directly, interleaved, 3 runs;
//! - latency: connect + 1-byte echo round trip, direct vs tunnelled, interleaved, 1000 each;
//! - concurrency: 1000 tunnels open at once, each then does an echo round trip;
//! - RSS of the daemon idle with one registration, and after the concurrency run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use greywall_compiler::egress;
use greywall_compiler::load::{Input, load};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UnixStream};

const BULK: u64 = 1 << 30;
const LAT_RUNS: usize = 1000;
const TUNNELS: usize = 1000;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Sends `BULK` bytes to each connection.
async fn bulk_server() -> u16 {
    let l = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut c, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let buf = vec![0u8; 256 * 1024];
                let mut left = BULK;
                while left > 0 {
                    let n = left.min(buf.len() as u64) as usize;
                    if c.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    left -= n as u64;
                }
            });
        }
    });
    port
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

async fn drain<R: AsyncReadExt + Unpin>(mut r: R) -> u64 {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).await.unwrap();
        if n == 0 {
            return total;
        }
        total += n as u64;
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("measure-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let socket = dir.join("proxyd.sock");
    // `GREYWALL_PROXYD_BIN` measures another build (e.g. the previous one, for a comparison).
    let bin = std::env::var_os("GREYWALL_PROXYD_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_greywall-proxyd")),
        PathBuf::from,
    );
    println!("binary: {}", bin.display());
    let mut child = Command::new(&bin)
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

    let bulk = bulk_server().await;
    let echo = echo_server().await;
    let mut direct = Vec::new();
    let mut tunnelled = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let n = drain(TcpStream::connect(("127.0.0.2", bulk)).await.unwrap()).await;
        assert_eq!(n, BULK);
        direct.push(BULK as f64 / t.elapsed().as_secs_f64() / (1 << 20) as f64);
        let t = Instant::now();
        let r = tunnel(&socket, &token, bulk).await;
        let n = drain(r).await;
        assert_eq!(n, BULK);
        tunnelled.push(BULK as f64 / t.elapsed().as_secs_f64() / (1 << 20) as f64);
    }
    let (d, t) = (pct(&mut direct, 0.5), pct(&mut tunnelled, 0.5));
    println!(
        "throughput, 1 GiB, median of 3: direct {d:.0} MiB/s, CONNECT tunnel {t:.0} MiB/s ({:.0}%)",
        100.0 * t / d
    );

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
        let mut s = tunnel(&socket, &token, echo).await;
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

    let t = Instant::now();
    let mut opens = Vec::new();
    for _ in 0..TUNNELS {
        let (socket, token) = (socket.clone(), token.clone());
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
        rss_kib(pid)
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
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    println!(
        "after closing them: daemon RSS {} KiB, {fds} open descriptors",
        rss_kib(pid)
    );
    drop(reg);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
