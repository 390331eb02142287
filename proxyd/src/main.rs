//! `greywall-proxyd`: the egress daemon (HTTP CONNECT, plain HTTP and SOCKS5, filtered by the
//! compiled policy's network rules). See `docs/proxyd.md`.
//!
//! Exit status: 0 after an idle timeout, 1 for bad arguments or configuration, 2 when it
//! cannot run (socket, log, runtime).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use greywall_proxyd::audit::Log;
use greywall_proxyd::daemon;
use greywall_proxyd::dial::{Mappings, SystemNet, parse_mapping};
use greywall_proxyd::http_proxy::DEFAULT_HEAD_TIMEOUT;
use greywall_proxyd::paths;
use greywall_proxyd::server::{self, State};

const HELP: &str = "\
greywall-proxyd: greywall's egress proxy daemon

Usage: greywall-proxyd [OPTIONS]

Serves every sandbox of this user on one Unix socket; the launcher starts it on demand.

Options:
      --socket PATH          socket to listen on
                             [default: $XDG_RUNTIME_DIR/greywall/proxyd.sock,
                              else /tmp/greywall-<uid>/proxyd.sock]
      --log PATH             audit log [default: $XDG_STATE_HOME/greywall/proxyd.log,
                              else ~/.local/state/greywall/proxyd.log]
      --no-log               write no audit log
      --log-max BYTES        rotate the audit log to <log>.1 past BYTES [default: 16777216;
                              0: never]
      --stderr PATH          write standard error to PATH, rotated to PATH.1 past
                             --stderr-max BYTES [default: 1048576]
      --new-session          leave the caller's session and terminal (setsid); the launcher
                             starts proxyd this way
      --idle-timeout SECS    exit after SECS with no sandbox and no connection
                             [default: 600; 0: never]
      --head-timeout SECS    time a client has for a request head or handshake [default: 30]
      --resolve HOST=IP      answer HOST with IP (repeatable); such addresses count as chosen
                             on purpose, so loopback and private ones are allowed for HOST
      --config FILE          JSON settings: {\"resolve\": {\"HOST\": \"IP\" | [\"IP\", ...]}}
                             [default: $XDG_CONFIG_HOME/greywall/proxyd.json if it exists]
  -h, --help                 print this help
  -V, --version              print the version
";

/// Default bound of the audit log (and of its one rotated predecessor).
const DEFAULT_LOG_MAX: u64 = 16 << 20;
/// Default bound of the `--stderr` file.
const DEFAULT_STDERR_MAX: u64 = 1 << 20;

#[derive(Debug)]
struct Args {
    socket: Option<PathBuf>,
    log: Option<PathBuf>,
    no_log: bool,
    log_max: u64,
    stderr: Option<PathBuf>,
    stderr_max: u64,
    new_session: bool,
    idle_timeout: Duration,
    head_timeout: Duration,
    resolve: Vec<String>,
    config: Option<PathBuf>,
}

enum Parsed {
    Run(Args),
    Exit(ExitCode),
}

fn parse_args() -> Result<Parsed, String> {
    use lexopt::prelude::*;
    let mut a = Args {
        socket: None,
        log: None,
        no_log: false,
        log_max: DEFAULT_LOG_MAX,
        stderr: None,
        stderr_max: DEFAULT_STDERR_MAX,
        new_session: false,
        idle_timeout: Duration::from_secs(600),
        head_timeout: DEFAULT_HEAD_TIMEOUT,
        resolve: Vec::new(),
        config: None,
    };
    let secs = |v: std::ffi::OsString, flag: &str| -> Result<Duration, String> {
        v.to_str()
            .and_then(|s| s.parse::<u64>().ok())
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{flag} needs a whole number of seconds"))
    };
    let bytes = |v: std::ffi::OsString, flag: &str| -> Result<u64, String> {
        v.to_str()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| format!("{flag} needs a whole number of bytes"))
    };
    let mut p = lexopt::Parser::from_env();
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        let value = |p: &mut lexopt::Parser| p.value().map_err(|e| e.to_string());
        match arg {
            Long("socket") => a.socket = Some(value(&mut p)?.into()),
            Long("log") => a.log = Some(value(&mut p)?.into()),
            Long("no-log") => a.no_log = true,
            Long("log-max") => a.log_max = bytes(value(&mut p)?, "--log-max")?,
            Long("stderr") => a.stderr = Some(value(&mut p)?.into()),
            Long("stderr-max") => a.stderr_max = bytes(value(&mut p)?, "--stderr-max")?,
            Long("new-session") => a.new_session = true,
            Long("idle-timeout") => a.idle_timeout = secs(value(&mut p)?, "--idle-timeout")?,
            Long("head-timeout") => a.head_timeout = secs(value(&mut p)?, "--head-timeout")?,
            Long("resolve") => a.resolve.push(
                value(&mut p)?
                    .into_string()
                    .map_err(|_| "--resolve needs HOST=IP".to_string())?,
            ),
            Long("config") => a.config = Some(value(&mut p)?.into()),
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(Parsed::Exit(ExitCode::SUCCESS));
            }
            Short('V') | Long("version") => {
                println!("greywall-proxyd {}", env!("CARGO_PKG_VERSION"));
                return Ok(Parsed::Exit(ExitCode::SUCCESS));
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    if a.head_timeout.is_zero() {
        return Err("--head-timeout must be at least 1".into());
    }
    Ok(Parsed::Run(a))
}

/// Reads `{"resolve": {...}}`; unknown keys are errors.
fn read_config(path: &Path, uid: u32, into: &mut Mappings) -> Result<(), String> {
    let bytes = paths::read_ruleset(path, uid)?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{}: not valid JSON: {e}", path.display()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| format!("{}: expected a JSON object", path.display()))?;
    for (k, v) in obj {
        if k != "resolve" {
            return Err(format!(
                "{}: unknown key `{k}` (the only key is `resolve`)",
                path.display()
            ));
        }
        let map = v
            .as_object()
            .ok_or_else(|| format!("{}: `resolve` must be an object", path.display()))?;
        for (host, ips) in map {
            let list: Vec<&serde_json::Value> = match ips {
                serde_json::Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            for ip in list {
                let ip = ip.as_str().ok_or_else(|| {
                    format!(
                        "{}: `resolve.{host}` must hold address strings",
                        path.display()
                    )
                })?;
                let (h, a) = parse_mapping(&format!("{host}={ip}"))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                into.entry(h).or_default().push(a);
            }
        }
    }
    Ok(())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Parsed::Run(a)) => a,
        Ok(Parsed::Exit(c)) => return c,
        Err(e) => {
            eprintln!("greywall-proxyd: {e}\n\nRun `greywall-proxyd --help` for the options.");
            return ExitCode::from(1);
        }
    };
    if args.new_session
        && let Err(e) = daemon::new_session()
    {
        eprintln!("greywall-proxyd: cannot start a new session: {e}");
        return ExitCode::from(2);
    }
    let stderr_file = match &args.stderr {
        Some(p) => match daemon::StderrFile::open(p, args.stderr_max) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!(
                    "greywall-proxyd: cannot write standard error to {}: {e}",
                    p.display()
                );
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let uid = paths::own_uid();
    raise_fd_limit();
    let mut mappings = Mappings::new();
    let config = args.config.clone().or_else(|| {
        let base = env("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| env("HOME").map(|h| Path::new(&h).join(".config")))?;
        Some(base.join("greywall/proxyd.json")).filter(|p| p.exists())
    });
    if let Some(c) = &config
        && let Err(e) = read_config(c, uid, &mut mappings)
    {
        eprintln!("greywall-proxyd: {e}");
        return ExitCode::from(1);
    }
    for r in &args.resolve {
        match parse_mapping(r) {
            Ok((h, a)) => mappings.entry(h).or_default().push(a),
            Err(e) => {
                eprintln!("greywall-proxyd: --resolve: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let log = if args.no_log {
        Log::none()
    } else {
        let path = args.log.clone().or_else(|| {
            paths::default_log(env("XDG_STATE_HOME").as_deref(), env("HOME").as_deref())
        });
        match path {
            Some(p) => match Log::open(&p, args.log_max) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!(
                        "greywall-proxyd: cannot open the audit log {}: {e}",
                        p.display()
                    );
                    return ExitCode::from(2);
                }
            },
            None => {
                eprintln!("greywall-proxyd: no HOME or XDG_STATE_HOME; use --log PATH or --no-log");
                return ExitCode::from(1);
            }
        }
    };
    let socket = args.socket.clone().unwrap_or_else(|| {
        paths::default_dir(env("XDG_RUNTIME_DIR").as_deref(), uid).join("proxyd.sock")
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .min(4),
        )
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("greywall-proxyd: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        let listener = match bind(&socket, uid) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("greywall-proxyd: {e}");
                return ExitCode::from(2);
            }
        };
        let ino = std::fs::metadata(&socket).map(|m| (m.dev(), m.ino())).ok();
        let state = Arc::new(State::new(SystemNet, mappings, log, args.head_timeout, uid));
        eprintln!(
            "greywall-proxyd {}: listening on {}",
            env!("CARGO_PKG_VERSION"),
            socket.display()
        );
        if let Some(f) = stderr_file {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    if let Err(e) = f.rotate_if_full() {
                        eprintln!("greywall-proxyd: cannot rotate standard error: {e}");
                    }
                }
            });
        }
        let idle = if args.idle_timeout.is_zero() {
            Duration::MAX
        } else {
            args.idle_timeout
        };
        server::run(state, listener, idle).await;
        // Remove the socket only if it is still ours.
        if std::fs::metadata(&socket).map(|m| (m.dev(), m.ino())).ok() == ino {
            let _ = std::fs::remove_file(&socket);
        }
        ExitCode::SUCCESS
    })
}

/// Each tunnel holds two descriptors: use the hard limit, not the (often 1024) soft one.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        eprintln!("greywall-proxyd: cannot raise the descriptor limit: {e}");
    }
}

fn bind(socket: &Path, uid: u32) -> Result<tokio::net::UnixListener, String> {
    let dir = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    paths::ensure_private_dir(dir, uid).map_err(|e| format!("socket directory: {e}"))?;
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Err(format!(
                "another proxyd is already listening on {}",
                socket.display()
            ));
        }
        std::fs::remove_file(socket)
            .map_err(|e| format!("cannot remove the stale socket {}: {e}", socket.display()))?;
    }
    let l = tokio::net::UnixListener::bind(socket)
        .map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot chmod {}: {e}", socket.display()))?;
    Ok(l)
}
