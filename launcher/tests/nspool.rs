//! The namespace pool (`greywall __ns-pool`, launcher/src/nspool.rs) against the real kernel:
//! sets are used, each by one sandbox only, isolated like the namespaces a launch creates
//! itself; a set that fails the launcher's checks is never joined; a pool whose directory is
//! gone does not linger.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const GREYWALL: &str = env!("CARGO_BIN_EXE_greywall");
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";
const PYTHON: &str = "/usr/bin/python3";

/// A workspace with its own HOME, cache and runtime directory (where the pool's socket
/// goes), outside /tmp.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        for d in ["home", "ws", "run"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        std::fs::set_permissions(
            dir.path().join("run"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        Scratch { dir }
    }

    fn runtime(&self) -> PathBuf {
        self.dir.path().join("run/greywall")
    }

    fn command(&self, pool: &str, script: &str) -> Command {
        let mut cmd = Command::new(GREYWALL);
        cmd.args(["exec", "--", "/bin/sh", "-c", script])
            .current_dir(self.dir.path().join("ws"))
            .env_clear()
            .env("HOME", self.dir.path().join("home"))
            .env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
            .env("PATH", PATH)
            .env("GREYWALL_NS_POOL", pool);
        cmd
    }

    fn sh(&self, pool: &str, script: &str) -> Output {
        self.command(pool, script).output().unwrap()
    }

    /// Starts the pool (a launch without it starts one) and waits for its socket.
    fn start_pool(&self) {
        let o = self.sh("1", "true");
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let start = Instant::now();
        while !self.runtime().join(pool_socket()).exists() {
            assert!(start.elapsed() < Duration::from_secs(10), "no pool socket");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pool's live processes for this scratch directory: its server, its refiller and the
    /// supervisors waiting in its sets.
    fn pool_processes(&self) -> Vec<common::Proc> {
        let dir = self.runtime().to_string_lossy().into_owned();
        common::processes()
            .into_iter()
            .filter(|p| {
                !p.zombie && p.argv.iter().any(|w| w == "__ns-pool") && p.argv.contains(&dir)
            })
            .collect()
    }

    /// The pool's server: its process whose parent is not one of the pool's.
    fn pool_pid(&self) -> Option<u32> {
        let pool = self.pool_processes();
        let ids: Vec<u32> = pool.iter().map(|p| p.pid).collect();
        pool.iter()
            .find(|p| p.parent.is_none_or(|q| !ids.contains(&q)))
            .map(|p| p.pid)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(pid) = self.pool_pid() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

/// The pool's socket name for this greywall executable (`ns-<hash>.sock`, from its inode,
/// size and modification time, as the launcher names it).
fn pool_socket() -> String {
    let sig = greywall_compiler::cache::Signature::now(GREYWALL).unwrap();
    let sig = format!("{}:{}:{}", sig.ino, sig.size, sig.mtime_ns);
    format!(
        "ns-{}.sock",
        greywall_compiler::cache::content_key(sig.as_bytes())
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// False (with a SKIP) when this kernel cannot run the sandbox.
fn ready() -> bool {
    common::launcher_runs(&Scratch::new().sh("0", "true"))
}

fn host_netns() -> String {
    std::fs::read_link("/proc/self/ns/net")
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// What a sandbox reports about its network: its namespace and its interfaces.
const REPORT: &str =
    "readlink /proc/self/ns/net; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; id -u";

#[test]
fn sandboxes_get_fresh_isolated_sets_from_the_pool() {
    if !ready() {
        return;
    }
    let s = Scratch::new();
    s.start_pool();
    // Four sandboxes alive at once, each on a set from the pool (`require`: none may create
    // its own), each holding its namespace until all have reported. The pool keeps three
    // ready and makes the next while one is used: a launch that finds it empty waits a little.
    let mut children = Vec::new();
    for _ in 0..4 {
        let start = Instant::now();
        loop {
            let mut child = s
                .command("require", &format!("{REPORT}; sleep 1"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut first = String::new();
            let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
            std::io::BufRead::read_line(&mut out, &mut first).unwrap();
            if !first.is_empty() {
                children.push((child, first, out));
                break;
            }
            let o = child.wait_with_output().unwrap();
            assert!(
                stderr(&o).contains("no set ready") && start.elapsed() < Duration::from_secs(10),
                "{}",
                stderr(&o)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mut seen = Vec::new();
    for (child, first, mut out) in children {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let out = format!("{first}{rest}");
        let lines: Vec<_> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        // Only loopback, and the user keeps its own id.
        assert_eq!(lines[1], "lo", "{out}");
        assert_eq!(lines[2], nix_uid(), "{out}");
        assert_ne!(lines[0], host_netns());
        seen.push(lines[0].to_string());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4, "a set was handed out twice: {seen:?}");
}

/// The private `/tmp`, `/dev/shm` and the hidden runtime directory of a sandbox, as its
/// `/proc/self/mountinfo` shows them without the mount ids and device numbers.
const MOUNTS: &str = "while read -r _ _ _ root point opts rest; do \
     case $point in /tmp|/dev/shm|\"$XDG_RUNTIME_DIR\") echo \"$root $point $opts $rest\";; esac; \
     done < /proc/self/mountinfo | sort";

#[test]
fn a_pooled_set_brings_its_tmpfs_mounts_and_the_view_is_the_same() {
    if !ready() {
        return;
    }
    let s = Scratch::new();
    s.start_pool();
    // The sets ready now were made before this moment: a tmpfs made with one is older.
    std::thread::sleep(Duration::from_millis(1100));
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let age = "python3 -c 'import os; print(*(os.stat(p).st_ctime_ns for p in (\"/tmp\", \"/dev/shm\")))'";
    let pooled = s.sh("require", &format!("{age}; {MOUNTS}"));
    let own = s.sh("0", &format!("{age}; {MOUNTS}"));
    for o in [&pooled, &own] {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
        assert!(!stderr(o).contains("warning"), "{}", stderr(o));
    }
    let (pooled, own) = (stdout(&pooled), stdout(&own));
    let (pooled_age, pooled_mounts) = pooled.split_once('\n').unwrap();
    let (own_age, own_mounts) = own.split_once('\n').unwrap();
    let times = |line: &str| -> Vec<u128> { line.split(' ').map(|t| t.parse().unwrap()).collect() };
    // With the pool: the tmpfs mounts the set brought, made before the launch.
    assert!(
        times(pooled_age).iter().all(|&t| t < before),
        "{pooled_age} vs {before}"
    );
    // Without: mounted by the launch.
    assert!(
        times(own_age).iter().all(|&t| t > before),
        "{own_age} vs {before}"
    );
    // The same mounts, flags and options either way: three of them (the runtime directory is
    // hidden under a read-only, empty tmpfs).
    assert_eq!(pooled_mounts, own_mounts);
    // (Below them, the host's own, if it mounts any there.)
    let ours = pooled_mounts
        .lines()
        .filter(|l| l.contains(",nosuid,nodev,"));
    assert_eq!(ours.count(), 3, "{pooled_mounts}");
    assert!(
        pooled_mounts.contains(" ro,nosuid,nodev,noexec"),
        "{pooled_mounts}"
    );
    // Each set's tmpfs is its own: nothing written in one sandbox is seen by the next.
    let first = s.sh(
        "require",
        "echo secret > /tmp/left && echo > /dev/shm/left && ls /tmp /dev/shm",
    );
    let next = s.sh("require", "ls -A /tmp /dev/shm");
    assert_eq!(
        stdout(&first),
        "/dev/shm:\nleft\n\n/tmp:\nleft\n",
        "{}",
        stderr(&first)
    );
    assert_eq!(stdout(&next), "/dev/shm:\n\n/tmp:\n", "{}", stderr(&next));
}

#[test]
fn loopback_works_and_protections_hold_on_a_pooled_set() {
    if !ready() {
        return;
    }
    let s = Scratch::new();
    s.start_pool();
    let o = s.sh(
        "require",
        "python3 -c 'import socket; a=socket.socket(type=socket.SOCK_DGRAM); \
         a.bind((\"127.0.0.1\",0)); b=socket.socket(type=socket.SOCK_DGRAM); \
         b.sendto(b\"ping\", a.getsockname()); print(\"lo-ok\" if a.recv(9) == b\"ping\" else \"\")'; \
         touch .bashrc 2>/dev/null || echo rc-refused",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "lo-ok\nrc-refused\n");
}

fn nix_uid() -> String {
    let o = Command::new("id").arg("-u").output().unwrap();
    stdout(&o).trim().to_string()
}

/// A fake pool that hands out this test process's own (the host's) user and network
/// namespaces: what a launcher must never join.
fn fake_pool(socket: &Path) -> std::process::Child {
    let script = format!(
        "import os, socket\n\
         s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n\
         s.bind({socket:?})\n\
         s.listen()\n\
         print('ready', flush=True)\n\
         u = os.open('/proc/self/ns/user', os.O_RDONLY)\n\
         n = os.open('/proc/self/ns/net', os.O_RDONLY)\n\
         while True:\n\
         \x20   c, _ = s.accept()\n\
         \x20   socket.send_fds(c, [b's\\0\\0\\0'], [u, n])\n\
         \x20   c.close()\n",
        socket = socket.to_str().unwrap()
    );
    let mut child = Command::new(PYTHON)
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

#[test]
fn a_set_of_the_hosts_namespaces_is_never_joined() {
    if !ready() {
        return;
    }
    if !Path::new(PYTHON).exists() {
        common::skip(&format!("{PYTHON} is not installed"));
        return;
    }
    let s = Scratch::new();
    std::fs::create_dir(s.runtime()).unwrap();
    std::fs::set_permissions(
        s.runtime(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let mut pool = fake_pool(&s.runtime().join(pool_socket()));
    // Preferred: the launcher refuses the set, says so, and creates its own namespaces.
    let o = s.sh("1", REPORT);
    // Required: refusing the set means refusing to run.
    let required = s.sh("require", REPORT);
    pool.kill().unwrap();
    pool.wait().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not using the namespace pool's set"),
        "{}",
        stderr(&o)
    );
    let out = stdout(&o);
    let lines: Vec<_> = out.lines().collect();
    assert_ne!(
        lines[0],
        host_netns(),
        "the sandbox joined the host's network namespace"
    );
    assert_eq!(lines[1], "lo", "{out}");
    assert_eq!(required.status.code(), Some(125), "{}", stdout(&required));
    assert!(stdout(&required).is_empty(), "{}", stdout(&required));
}

#[test]
fn a_pool_whose_directory_is_gone_exits() {
    if !ready() {
        return;
    }
    let s = Scratch::new();
    s.start_pool();
    let pid = s.pool_pid().expect("no pool process");
    std::fs::remove_dir_all(s.runtime()).unwrap();
    let start = Instant::now();
    while common::alive(pid) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!common::alive(pid), "the pool outlived its directory");
}

/// The children of any of `parents` whose process name is `name`.
fn children_named(parents: &[u32], name: &str) -> Vec<u32> {
    common::processes()
        .into_iter()
        .filter(|p| p.parent.is_some_and(|q| parents.contains(&q)) && p.name == name && !p.zombie)
        .map(|p| p.pid)
        .collect()
}

#[test]
fn the_pools_supervisor_serves_the_launch_and_fails_closed_when_killed() {
    if !ready() {
        return;
    }
    let s = Scratch::new();
    s.start_pool();
    // The pool's processes: the server, and the refiller, whose children the supervisors are.
    let pool: Vec<u32> = s.pool_processes().iter().map(|p| p.pid).collect();
    let mut child = s
        .command(
            "require",
            &format!("echo started; {}", common::CREATE_AFTER_A_LINE),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut out, &mut first).unwrap();
    assert_eq!(first, "started\n");
    // The launch forked no supervisor: the pool's, waiting in the set's user namespace, took
    // the plan (and renamed itself).
    // (It renames itself once it has the plan, which may be after the command started.)
    let start = Instant::now();
    let mut handed = children_named(&pool, "gw-supervisor");
    while handed.is_empty() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
        handed = children_named(&pool, "gw-supervisor");
    }
    assert_eq!(handed.len(), 1, "supervisors handed a launch: {handed:?}");
    let rest = common::kill_then_continue(handed[0], &mut child, &mut out);
    // Nobody answers the filter's questions: no create gets through.
    assert_eq!(rest, "end\n");
    let ws = s.dir.path().join("ws");
    assert!(!ws.join("plain").exists() && !ws.join(".bashrc").exists());
}

#[test]
fn a_pool_that_does_not_answer_delays_a_launch_once_and_never_blocks_it() {
    if !ready() {
        return;
    }
    let s = Scratch::new();
    s.start_pool();
    let server = s.pool_pid().expect("no pool server");
    let _ = Command::new("kill")
        .args(["-STOP", &server.to_string()])
        .status();
    let started = Instant::now();
    let o = s.sh("1", REPORT);
    let took = started.elapsed();
    let _ = Command::new("kill")
        .args(["-CONT", &server.to_string()])
        .status();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<_> = out.lines().collect();
    assert_ne!(lines[0], host_netns());
    assert_eq!(lines[1], "lo", "{out}");
    assert!(took < Duration::from_secs(5), "the launch waited {took:?}");
}

#[test]
fn the_pools_background_work_never_preempts_a_launch() {
    if !ready() {
        return;
    }
    let s = Scratch::new();
    s.start_pool();
    let server = s.pool_pid().expect("the pool's server");
    // The refiller and the supervisors waiting in its sets, once it has made some.
    let start = Instant::now();
    let pool = loop {
        let pool = s.pool_processes();
        if pool.len() >= 3 {
            break pool;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no sets made");
        std::thread::sleep(Duration::from_millis(20));
    };
    // The server answers launches as a normal process; making sets is batch work (no
    // wake-up preemption), which a waiting supervisor leaves once a launch is its own.
    for p in pool {
        let want = if p.pid == server { 0 } else { 3 };
        assert_eq!(p.policy, Some(want), "pool process {}", p.pid);
    }
}
