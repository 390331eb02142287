//! The native launcher against the real kernel: `greywall __exec-plan PLAN -- CMD` with plans
//! built here, each checked to hold inside the sandbox and, where it makes sense, to fail
//! without it (the same command run bare, or under a plan without the feature).
//!
//! A test whose kernel feature is missing prints `SKIP: <reason>`; with
//! `GREYWALL_REQUIRE_KERNEL=1` it fails instead.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use greywall_compiler::backend::seccomp::{
    self, Arch, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SeccompOptions, SockFilter,
};
use greywall_compiler::plan::{
    CreateDeny, EnvOp, Landlock, LinuxPlan, MountOp, Network, PathRule, fs_access, net_access,
};

const GREYWALL: &str = env!("CARGO_BIN_EXE_greywall");
const PYTHON: &str = "/usr/bin/python3";

use common::skip;

/// The running Landlock ABI, as the launcher itself reports it for a plan that asks too much.
fn landlock_abi() -> u32 {
    static ABI: OnceLock<u32> = OnceLock::new();
    *ABI.get_or_init(|| {
        let case = Case::new(0);
        let mut plan = case.plan.clone();
        plan.landlock.abi = 9999;
        plan.landlock.handled_fs = fs_access::READ;
        let out = case.run_plan(&plan, &["true"], &[]);
        let err = stderr(&out);
        let n = err
            .split("the kernel has ")
            .nth(1)
            .and_then(|s| s.split(';').next())
            .and_then(|s| s.trim().parse().ok());
        n.unwrap_or_else(|| panic!("no Landlock ABI in {err:?}"))
    })
}

/// A scratch directory with a workspace `ws/` and a plan granting read everywhere, write in
/// the workspace, and the usual devices.
struct Case {
    dir: tempfile::TempDir,
    plan: LinuxPlan,
}

impl Case {
    /// `abi` 0: no Landlock at all.
    fn new(abi: u32) -> Case {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        std::fs::create_dir(dir.path().join("ws")).unwrap();
        let ws = dir.path().join("ws").to_string_lossy().into_owned();
        let dev = fs_access::READ_FILE | fs_access::WRITE_FILE;
        let plan = LinuxPlan {
            policy_hash: 1,
            namespaces: true,
            network: Network::Host,
            pid_namespace: false,
            mounts: vec![],
            create_deny: CreateDeny::default(),
            landlock: Landlock {
                abi,
                handled_fs: if abi == 0 {
                    0
                } else {
                    fs_access::all_for_abi(abi)
                },
                handled_net: 0,
                handled_net_no_userns: 0,
                scoped: 0,
                paths: vec![
                    rule("/", fs_access::READ),
                    rule(&ws, fs_access::READ | fs_access::WRITE),
                    rule("/dev/null", dev),
                    rule("/dev/tty", dev),
                ],
                ports: vec![],
            },
            seccomp_arch: 0,
            seccomp: vec![],
            seccomp_notify: vec![],
            env: vec![
                EnvOp::UnsetPrefix("LD_".into()),
                EnvOp::Set("GREYWALL_SANDBOX".into(), "1".into()),
            ],
            deny_commands: vec![],
            allow_commands: vec![],
            without_userns: vec!["the test's private view".into(), "its network".into()],
            egress: None,
        };
        Case { dir, plan }
    }

    /// A case with Landlock at the running ABI; `None` (and a SKIP) without Landlock.
    fn landlocked(what: &str) -> Option<Case> {
        let abi = landlock_abi();
        if abi == 0 {
            skip(&format!("{what}: the kernel has no Landlock"));
            return None;
        }
        Some(Case::new(abi))
    }

    fn ws(&self) -> PathBuf {
        self.dir.path().join("ws")
    }

    fn ws_str(&self, rel: &str) -> String {
        let p = if rel.is_empty() {
            self.ws()
        } else {
            self.ws().join(rel)
        };
        p.to_string_lossy().into_owned()
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.ws().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    fn plan_file(&self, plan: &LinuxPlan) -> PathBuf {
        let n = std::fs::read_dir(self.dir.path()).unwrap().count();
        let path = self.dir.path().join(format!("plan{n}.bin"));
        std::fs::write(&path, plan.encode()).unwrap();
        path
    }

    fn command(&self, plan: &LinuxPlan, argv: &[&str]) -> Command {
        let mut cmd = Command::new(GREYWALL);
        cmd.arg("__exec-plan")
            .arg(self.plan_file(plan))
            .arg("--")
            .args(argv)
            .current_dir(self.ws())
            .env("PATH", "/usr/bin:/bin")
            .env("GREYWALL_REQUIRE", "userns");
        cmd
    }

    fn run_plan(&self, plan: &LinuxPlan, argv: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(plan, argv);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn run(&self, argv: &[&str]) -> Output {
        self.run_plan(&self.plan, argv, &[])
    }

    /// The same command without the sandbox, in the same directory.
    fn bare(&self, argv: &[&str]) -> Output {
        Command::new(argv[0])
            .args(&argv[1..])
            .current_dir(self.ws())
            .output()
            .unwrap()
    }
}

fn rule(path: &str, access: u64) -> PathRule {
    PathRule {
        path: path.into(),
        access,
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn assert_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// False (with a SKIP) when the launcher could not create user namespaces.
fn has_userns(o: &Output) -> bool {
    if o.status.code() == Some(125) && stderr(o).contains("user namespaces are unavailable") {
        skip(&format!(
            "user namespaces are unavailable: {}",
            stderr(o).trim()
        ));
        return false;
    }
    true
}

fn python() -> bool {
    if Path::new(PYTHON).exists() {
        return true;
    }
    skip(&format!("{PYTHON} is not installed"));
    false
}

fn sh(script: &str) -> Vec<&str> {
    vec!["/bin/sh", "-c", script]
}

// ---- Plan handling and exit codes ----------------------------------------------------------

#[test]
fn corrupt_plan_exits_125() {
    let case = Case::new(0);
    let path = case.dir.path().join("corrupt.bin");
    let mut bytes = case.plan.encode();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let out = Command::new(GREYWALL)
        .args(["__exec-plan"])
        .arg(&path)
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_code(&out, 125);
    let err = stderr(&out);
    assert!(
        err.starts_with("greywall: ") && err.contains("checksum"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");

    let out = Command::new(GREYWALL)
        .args(["__exec-plan", "/nonexistent/plan", "--", "true"])
        .output()
        .unwrap();
    assert_code(&out, 125);
}

#[test]
fn exit_status_and_signals_propagate() {
    let case = Case::new(landlock_abi());
    let out = case.run(&sh("exit 7"));
    if !has_userns(&out) {
        return;
    }
    assert_code(&out, 7);
    let out = case.run(&sh("kill -TERM $$"));
    assert_eq!(out.status.signal(), Some(15), "{:?}", out.status);
}

#[test]
fn missing_program_is_127_and_unexecutable_is_126() {
    let case = Case::new(landlock_abi());
    let out = case.run(&["greywall-no-such-command"]);
    if !has_userns(&out) {
        return;
    }
    assert_code(&out, 127);
    assert_eq!(
        stderr(&out).trim(),
        "greywall: greywall-no-such-command: command not found"
    );
    assert_code(&case.run(&["./missing"]), 127);

    let script = case.write("script", "#!/bin/sh\necho hi\n");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = case.run(&["./script"]);
    assert_code(&out, 126);
    assert!(stderr(&out).contains("EACCES"), "{}", stderr(&out));
    // A file without a `#!` line is not handed to a shell.
    common::write_file(&case.ws().join("raw"), "echo hi\n", 0o755);
    let out = case.run(&["./raw"]);
    assert_code(&out, 126);
    assert!(stderr(&out).contains("ENOEXEC"), "{}", stderr(&out));
}

#[test]
fn landlock_abi_above_the_kernel_is_refused() {
    let case = Case::new(0);
    let mut plan = case.plan.clone();
    plan.landlock.abi = 9999;
    plan.landlock.handled_fs = fs_access::READ;
    let out = case.run_plan(&plan, &["true"], &[]);
    assert_code(&out, 125);
    assert!(
        stderr(&out).starts_with("greywall: the plan needs Landlock ABI 9999, the kernel has "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn pid_namespace_is_refused() {
    let case = Case::new(0);
    let mut plan = case.plan.clone();
    plan.pid_namespace = true;
    let out = case.run_plan(&plan, &["true"], &[]);
    assert_code(&out, 125);
    assert!(stderr(&out).contains("PID namespaces are not supported yet"));
}

#[test]
fn deny_commands_block_with_exit_1_unless_allowed() {
    let case = Case::new(0);
    let mut plan = case.plan.clone();
    plan.deny_commands = vec![vec!["echo".into(), "hi".into()]];
    let out = case.run_plan(&plan, &["/bin/echo", "hi", "there"], &[]);
    assert_code(&out, 1);
    assert_eq!(
        stderr(&out).trim(),
        r#"greywall: command blocked by policy: "/bin/echo hi there" matches "echo hi""#
    );
    assert!(stdout(&out).is_empty());
    // Whole words only.
    let out = case.run_plan(&plan, &["echo", "hint"], &[]);
    if !has_userns(&out) {
        return;
    }
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "hint\n");
    // An allow prefix wins.
    plan.allow_commands = vec![vec!["echo".into(), "hi".into(), "there".into()]];
    let out = case.run_plan(&plan, &["echo", "hi", "there"], &[]);
    assert_code(&out, 0);
    assert_code(&case.run_plan(&plan, &["echo", "hi", "you"], &[]), 1);
}

// ---- Landlock ------------------------------------------------------------------------------

#[test]
fn landlock_denies_writes_outside_writable_dirs() {
    let Some(mut case) = Case::landlocked("write denial") else {
        return;
    };
    std::fs::create_dir(case.ws().join("rw")).unwrap();
    std::fs::create_dir(case.ws().join("ro")).unwrap();
    let rw = case.ws_str("rw");
    case.plan.landlock.paths = vec![
        rule("/", fs_access::READ),
        rule(&rw, fs_access::READ | fs_access::WRITE),
    ];
    let out = case.run(&sh("echo a > rw/f && cat rw/f"));
    if !has_userns(&out) {
        return;
    }
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "a\n");
    let out = case.run(&sh("echo a > ro/f"));
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    assert!(!case.ws().join("ro/f").exists());
    // Without the sandbox the same write works.
    assert_code(&case.bare(&sh("echo a > ro/f")), 0);
}

#[test]
fn landlock_denies_reads_outside_readable_paths() {
    let Some(mut case) = Case::landlocked("read denial") else {
        return;
    };
    case.write("pub/data", "public\n");
    case.write("secret/data", "secret\n");
    let mut paths: Vec<PathRule> = ["/usr", "/bin", "/lib", "/lib64", "/etc"]
        .iter()
        .map(|p| rule(p, fs_access::READ))
        .collect();
    paths.push(rule(&case.ws_str("pub"), fs_access::READ));
    case.plan.landlock.paths = paths;
    let out = case.run(&["cat", "pub/data"]);
    if !has_userns(&out) {
        return;
    }
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "public\n");
    let out = case.run(&["cat", "secret/data"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
    assert_eq!(stdout(&case.bare(&["cat", "secret/data"])), "secret\n");
}

/// A rule naming a file with rights only folders have (the compiler does not stat its rules'
/// paths): the launcher keeps the file rights and drops the rest, rather than failing.
#[test]
fn landlock_rule_on_a_file_keeps_the_file_rights() {
    let Some(mut case) = Case::landlocked("file rule") else {
        return;
    };
    case.write("pub/data", "public\n");
    case.write("pub/other", "other\n");
    let mut paths: Vec<PathRule> = ["/usr", "/bin", "/lib", "/lib64", "/etc"]
        .iter()
        .map(|p| rule(p, fs_access::READ))
        .collect();
    // READ includes READ_DIR, which a file cannot carry.
    assert_ne!(fs_access::READ & fs_access::DIR_ONLY, 0);
    paths.push(rule(&case.ws_str("pub/data"), fs_access::READ));
    case.plan.landlock.paths = paths;
    let out = case.run(&["cat", "pub/data"]);
    if !has_userns(&out) {
        return;
    }
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "public\n");
    let out = case.run(&["cat", "pub/other"]);
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn no_new_privs_is_set() {
    let case = Case::new(0);
    let out = case.run(&["grep", "NoNewPrivs", "/proc/self/status"]);
    if !has_userns(&out) {
        return;
    }
    assert_code(&out, 0);
    assert_eq!(stdout(&out).split_whitespace().nth(1), Some("1"));
    let bare = case.bare(&["grep", "NoNewPrivs", "/proc/self/status"]);
    assert_eq!(stdout(&bare).split_whitespace().nth(1), Some("0"));
}

// ---- Mounts --------------------------------------------------------------------------------

#[test]
fn read_only_mount_inside_a_writable_dir() {
    let Some(mut case) = Case::landlocked("read-only mounts") else {
        return;
    };
    case.write("hooks/pre-commit", "#!/bin/sh\n");
    std::fs::create_dir(case.ws().join("hooks/sub")).unwrap();
    case.plan.mounts = vec![
        // A mount below the read-only path becomes read-only too.
        MountOp::Tmpfs {
            path: case.ws_str("hooks/sub"),
            mode: 0o755,
        },
        MountOp::ReadOnly {
            path: case.ws_str("hooks"),
        },
    ];
    let out = case.run(&sh("touch other && echo ok"));
    if !has_userns(&out) {
        return;
    }
    assert_code(&out, 0);
    for script in [
        "touch hooks/new",
        "echo evil > hooks/pre-commit",
        "rm hooks/pre-commit",
        "touch hooks/sub/new",
    ] {
        let out = case.run(&sh(script));
        assert_ne!(out.status.code(), Some(0), "{script}");
        assert!(
            stderr(&out).contains("Read-only file system"),
            "{script}: {}",
            stderr(&out)
        );
    }
    // Relative paths from a working directory inside the read-only tree are covered too.
    let mut cmd = case.command(&case.plan, &["touch", "relative"]);
    let out = cmd.current_dir(case.ws().join("hooks")).output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
    // The host's view is untouched, and there the same writes work.
    assert_code(&case.bare(&sh("touch hooks/new hooks/sub/new")), 0);
    assert_eq!(
        std::fs::read_to_string(case.ws().join("hooks/pre-commit")).unwrap(),
        "#!/bin/sh\n"
    );
}

#[test]
fn read_only_without_mount_setattr_falls_back_to_remount() {
    let Some(mut case) = Case::landlocked("remount fallback") else {
        return;
    };
    std::fs::create_dir(case.ws().join("hooks")).unwrap();
    case.plan.mounts = vec![MountOp::ReadOnly {
        path: case.ws_str("hooks"),
    }];
    // An outer launcher whose seccomp filter makes mount_setattr look absent (ENOSYS).
    let outer = outer_plan(libc::SYS_mount_setattr, libc::ENOSYS);
    let inner = case.plan_file(&case.plan);
    let inner = inner.to_str().unwrap();
    let argv = [GREYWALL, "__exec-plan", inner, "--", "/bin/sh", "-c"];
    let out = case.run_plan(&outer, &[&argv[..], &["touch ok"]].concat(), &[]);
    if !has_userns(&out) {
        return;
    }
    assert_code(&out, 0);
    let out = case.run_plan(&outer, &[&argv[..], &["touch hooks/x"]].concat(), &[]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn hide_file_and_hide_dir() {
    let Some(mut case) = Case::landlocked("hiding") else {
        return;
    };
    case.write("secret.txt", "TOPSECRET\n");
    case.write(".aws/credentials", "AWSKEY\n");
    case.plan.mounts = vec![
        MountOp::HideFile {
            path: case.ws_str("secret.txt"),
        },
        MountOp::HideDir {
            path: case.ws_str(".aws"),
        },
    ];
    let out = case.run(&["cat", "secret.txt"]);
    if !has_userns(&out) {
        return;
    }
    // The /dev/null over the file is nodev: it cannot be opened at all.
    assert_code(&out, 1);
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    let out = case.run(&sh("cat .aws/credentials; ls -A .aws; touch .aws/x"));
    assert!(!stdout(&out).contains("AWSKEY") && !stdout(&out).contains("credentials"));
    assert_ne!(out.status.code(), Some(0));
    let out = case.run(&sh("echo x > secret.txt; cat secret.txt"));
    assert_eq!(stdout(&out), "");
    // The /dev/null over the file is read-only and nodev: touching it fails too.
    let out = case.run(&["touch", "secret.txt"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("Read-only file system")
            || stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    // Bare, both are there and unchanged.
    assert_eq!(stdout(&case.bare(&["cat", "secret.txt"])), "TOPSECRET\n");
    assert_eq!(stdout(&case.bare(&["cat", ".aws/credentials"])), "AWSKEY\n");
}

/// Root inside the sandbox keeps its capabilities in the new user namespace; Landlock (and,
/// for other users, the lack of capabilities) still forbids undoing the view.
#[test]
fn attack_unmounting_or_remounting_the_view() {
    if !python() {
        return;
    }
    let Some(mut case) = Case::landlocked("mount attacks") else {
        return;
    };
    case.write("secret.txt", "TOPSECRET\n");
    std::fs::create_dir(case.ws().join("hooks")).unwrap();
    case.plan.mounts = vec![
        MountOp::HideFile {
            path: case.ws_str("secret.txt"),
        },
        MountOp::ReadOnly {
            path: case.ws_str("hooks"),
        },
    ];
    let script = "import ctypes
libc = ctypes.CDLL(None, use_errno=True)
MS_REMOUNT, MS_BIND, MNT_DETACH = 32, 4096, 2
print(libc.umount2(b'secret.txt', MNT_DETACH), libc.umount2(b'hooks', MNT_DETACH),
      libc.mount(None, b'hooks', None, MS_REMOUNT | MS_BIND, None))
try:
    open('secret.txt').read()
except PermissionError:
    print('hidden')
open('hooks/x', 'w')";
    let out = case.run(&[PYTHON, "-c", script]);
    if !has_userns(&out) {
        return;
    }
    assert_eq!(stdout(&out), "-1 -1 -1\nhidden\n");
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn no_descriptors_leak_into_the_command() {
    if !python() {
        return;
    }
    let mut case = Case::new(landlock_abi());
    case.plan.network = Network::Isolated;
    std::fs::create_dir(case.ws().join("hidden")).unwrap();
    case.plan.mounts = vec![MountOp::HideDir {
        path: case.ws_str("hidden"),
    }];
    let argv = [
        PYTHON,
        "-c",
        "import os; print(sorted(os.listdir('/proc/self/fd')))",
    ];
    let out = case.run(&argv);
    if !has_userns(&out) {
        return;
    }
    assert_code(&out, 0);
    assert_eq!(stdout(&out), stdout(&case.bare(&argv)));
}

#[test]
fn missing_mount_points_are_skipped() {
    let Some(mut case) = Case::landlocked("missing mount points") else {
        return;
    };
    case.plan.mounts = vec![
        MountOp::Tmpfs {
            path: case.ws_str("no/tmp"),
            mode: 0o1777,
        },
        MountOp::ReadOnly {
            path: case.ws_str("no/ro"),
        },
        MountOp::HideDir {
            path: case.ws_str("no/dir"),
        },
        MountOp::HideFile {
            path: case.ws_str("no/file"),
        },
    ];
    case.plan
        .landlock
        .paths
        .push(rule(&case.ws_str("no/rule"), fs_access::READ));
    let out = case.run(&["true"]);
    if !has_userns(&out) {
        return;
    }
    assert_code(&out, 0);
    assert_eq!(stderr(&out), "");
}

#[test]
fn tmpfs_gives_a_private_empty_tmp() {
    let Some(mut case) = Case::landlocked("private /tmp") else {
        return;
    };
    let marker = format!("/tmp/greywall-apply-test-{}", std::process::id());
    std::fs::write(&marker, "host").unwrap();
    let inside = format!("{marker}-inside");
    case.plan.mounts = vec![MountOp::Tmpfs {
        path: "/tmp".into(),
        mode: 0o1777,
    }];
    case.plan
        .landlock
        .paths
        .push(rule("/tmp", fs_access::READ | fs_access::WRITE));
    let script = format!("ls -A /tmp; stat -c %a /tmp; echo hi > {inside} && cat {inside}");
    let out = case.run(&sh(&script));
    let _ = std::fs::remove_file(&marker);
    if !has_userns(&out) {
        return;
    }
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "1777\nhi\n");
    assert!(!Path::new(&inside).exists());
}

// ---- Network -------------------------------------------------------------------------------

const CONNECT: &str = "import socket, sys
try:
    socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)
    print('connected')
except OSError as e:
    print('errno', e.errno)";

#[test]
fn isolated_network_cannot_reach_the_host() {
    if !python() {
        return;
    }
    let mut case = Case::new(landlock_abi());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let argv = [PYTHON, "-c", CONNECT, &port];
    // Host network: reachable, through the same launcher.
    let out = case.run(&argv);
    if !has_userns(&out) {
        return;
    }
    assert_eq!(stdout(&out), "connected\n", "{}", stderr(&out));
    case.plan.network = Network::Isolated;
    let out = case.run(&argv);
    assert_code(&out, 0);
    assert_eq!(stdout(&out), format!("errno {}\n", libc::ECONNREFUSED));
    assert_eq!(stdout(&case.bare(&argv)), "connected\n");
}

#[test]
fn loopback_works_inside_an_isolated_network() {
    if !python() {
        return;
    }
    let mut case = Case::new(landlock_abi());
    case.plan.network = Network::Isolated;
    let script = "import socket
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)
c = socket.create_connection(s.getsockname(), timeout=5)
a, _ = s.accept(); a.sendall(b'pong'); print(c.recv(4).decode())";
    let out = case.run(&[PYTHON, "-c", script]);
    if !has_userns(&out) {
        return;
    }
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "pong\n");
}

// ---- User namespaces unavailable -----------------------------------------------------------

/// A plan for an outer launcher that only loads a filter failing syscall `nr` with `errno`,
/// to run an inner launcher under it.
fn outer_plan(nr: libc::c_long, errno: i32) -> LinuxPlan {
    let arch = Arch::host().unwrap().audit_arch();
    let f = |code, jt, jf, k| SockFilter { code, jt, jf, k };
    let prog = [
        f(0x20, 0, 0, 4),                                // A = arch
        f(0x15, 0, 3, arch),                             // foreign arch: allow
        f(0x20, 0, 0, 0),                                // A = nr
        f(0x15, 0, 1, u32::try_from(nr).unwrap()),       // nr: fail
        f(0x06, 0, 0, SECCOMP_RET_ERRNO | errno as u32), //
        f(0x06, 0, 0, SECCOMP_RET_ALLOW),                // everything else
    ];
    let mut plan = Case::new(0).plan;
    plan.namespaces = false;
    plan.seccomp_arch = arch;
    plan.seccomp = seccomp::to_bytes(&prog);
    plan.env = vec![];
    plan
}

/// The namespace pool off: a launch that joined a prepared network namespace before finding
/// `unshare` refused (as the outer filter here does) stays in that namespace, stricter than
/// what these tests look at.
const NO_POOL: (&str, &str) = ("GREYWALL_NS_POOL", "0");

#[test]
fn without_user_namespaces_landlock_handles_the_network() {
    if !python() {
        return;
    }
    let abi = landlock_abi();
    if abi < 4 {
        skip("Landlock TCP rules need ABI 4");
        return;
    }
    let mut case = Case::new(abi);
    case.plan.network = Network::Isolated;
    case.plan.landlock.handled_net = net_access::BIND_TCP;
    case.plan.landlock.handled_net_no_userns = net_access::BIND_TCP | net_access::CONNECT_TCP;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let outer = outer_plan(libc::SYS_unshare, libc::EPERM);
    let inner = case.plan_file(&case.plan);
    let argv = [
        GREYWALL,
        "__exec-plan",
        inner.to_str().unwrap(),
        "--",
        PYTHON,
        "-c",
        CONNECT,
        &port,
    ];
    let out = case.run_plan(&outer, &argv, &[("GREYWALL_REQUIRE", ""), NO_POOL]);
    assert_code(&out, 0);
    assert_eq!(
        stderr(&out).trim(),
        "greywall: user namespaces are unavailable (EPERM); running with Landlock and seccomp \
         only. Not enforced: the test's private view; its network"
    );
    // No network namespace, so Landlock refuses the connection.
    assert_eq!(stdout(&out), format!("errno {}\n", libc::EACCES));

    // Without CONNECT_TCP in the no-userns set the host is reachable: the denial above is
    // Landlock's.
    case.plan.landlock.handled_net_no_userns = net_access::BIND_TCP;
    let inner = case.plan_file(&case.plan);
    let mut argv = argv;
    argv[2] = inner.to_str().unwrap();
    let out = case.run_plan(&outer, &argv, &[("GREYWALL_REQUIRE", ""), NO_POOL]);
    assert_eq!(stdout(&out), "connected\n");

    // Demanding user namespaces fails closed.
    let out = case.run_plan(
        &outer,
        &argv,
        &[("GREYWALL_REQUIRE", "landlock,userns"), NO_POOL],
    );
    assert_code(&out, 125);
    assert!(
        stderr(&out).contains("user namespaces are unavailable (EPERM)"),
        "{}",
        stderr(&out)
    );
}

// ---- Seccomp -------------------------------------------------------------------------------

#[test]
fn seccomp_filter_blocks_ptrace_and_unshare() {
    if !python() {
        return;
    }
    let Some(arch) = Arch::host() else {
        skip("no seccomp filter for this architecture");
        return;
    };
    let mut case = Case::new(landlock_abi());
    let script = "import ctypes
libc = ctypes.CDLL(None, use_errno=True)
for name, call in [('ptrace', lambda: libc.ptrace(-1, 0, 0, 0)),
                   ('unshare', lambda: libc.unshare(0x10000000))]:
    r = call(); print(name, r, ctypes.get_errno() if r == -1 else 0)";
    let argv = [PYTHON, "-c", script];
    // Same launcher, no filter: ptrace finds no process 0 (ESRCH) and unshare works.
    let out = case.run(&argv);
    if !has_userns(&out) {
        return;
    }
    assert_eq!(
        stdout(&out),
        format!("ptrace -1 {}\nunshare 0 0\n", libc::ESRCH),
        "{}",
        stderr(&out)
    );
    case.plan.seccomp_arch = arch.audit_arch();
    case.plan.seccomp = seccomp::to_bytes(&seccomp::build(arch, &SeccompOptions::default()));
    let out = case.run(&argv);
    assert_code(&out, 0);
    assert_eq!(
        stdout(&out),
        format!("ptrace -1 {0}\nunshare -1 {0}\n", libc::EPERM)
    );
    let out = case.run(&["grep", "^Seccomp:", "/proc/self/status"]);
    assert_eq!(stdout(&out).split_whitespace().nth(1), Some("2"));
    // A shell and its children run normally under the filter.
    assert_code(&case.run(&sh("/bin/true && exit 3")), 3);
}

// ---- Create-deny supervisor ---------------------------------------------------------------
// (More in create_deny.rs, through `greywall exec` with policies.)

/// A plan refusing new `.bashrc` files anywhere in the workspace and `*.key` files.
fn create_deny_plan(case: &Case) -> Option<LinuxPlan> {
    let arch = Arch::host()?;
    let mut plan = case.plan.clone();
    plan.create_deny = CreateDeny {
        paths: vec![case.ws_str("exact")],
        names: vec![(case.ws_str(""), vec![".bashrc".into()])],
        globs: vec![format!("{}/**/*.key", case.ws_str(""))],
    };
    plan.seccomp_arch = arch.audit_arch();
    plan.seccomp_notify =
        seccomp::to_bytes(&seccomp::build_notify(arch, &SeccompOptions::default()));
    Some(plan)
}

#[test]
fn create_deny_rules_are_enforced_by_a_supervisor() {
    let case = Case::new(landlock_abi());
    let Some(plan) = create_deny_plan(&case) else {
        skip("no seccomp filter for this architecture");
        return;
    };
    let script = "echo x > .bashrc; mkdir -p a/b && touch a/b/.bashrc a/b/k.key exact; \
                  touch ok; echo $$; grep Seccomp_filters: /proc/self/status";
    let out = case.run_plan(&plan, &sh(script), &[]);
    if !has_userns(&out) {
        return;
    }
    assert_code(&out, 0);
    let err = stderr(&out);
    assert_eq!(err.matches("Permission denied").count(), 4, "{err}");
    for p in [".bashrc", "a/b/.bashrc", "a/b/k.key", "exact"] {
        assert!(!case.ws().join(p).exists(), "{p} created");
    }
    assert!(case.ws().join("ok").exists());
    // The command runs under the notify filter (this plan has no main filter).
    let text = stdout(&out);
    assert!(text.ends_with("Seccomp_filters:\t1\n"), "{text}");
    // Without rules there is no supervisor: the launcher execs the command itself.
    let out = case.run(&sh(
        "echo x > .bashrc; grep Seccomp_filters: /proc/self/status",
    ));
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "Seccomp_filters:\t0\n");
    assert!(case.ws().join(".bashrc").exists());
}

#[test]
fn create_deny_rules_without_their_filter_are_refused() {
    let case = Case::new(0);
    let Some(mut plan) = create_deny_plan(&case) else {
        return;
    };
    plan.seccomp_arch = 0x1234;
    let out = case.run_plan(&plan, &["true"], &[]);
    assert_code(&out, 125);
    assert!(stderr(&out).contains("architecture"), "{}", stderr(&out));
}

#[test]
fn seccomp_filter_for_another_architecture_is_refused() {
    let mut case = Case::new(0);
    case.plan.seccomp_arch = 0x1234;
    case.plan.seccomp = vec![0x06, 0, 0, 0, 0, 0, 0xff, 0x7f];
    let out = case.run(&["true"]);
    assert_code(&out, 125);
    assert!(stderr(&out).contains("architecture"), "{}", stderr(&out));
}

// ---- Environment and exec ------------------------------------------------------------------

#[test]
fn environment_edits_apply_and_path_is_searched_in_the_edited_environment() {
    let mut case = Case::new(landlock_abi());
    common::write_file(
        &case.ws().join("bin/hello"),
        "#!/bin/sh\necho hello from bin\n",
        0o755,
    );
    case.plan.env.extend([
        EnvOp::Unset("GW_TEST_DROP".into()),
        EnvOp::Set("GW_TEST_KEEP".into(), "new".into()),
        EnvOp::Set(
            "PATH".into(),
            format!("{}:/usr/bin:/bin", case.ws_str("bin")),
        ),
    ]);
    let env = [
        ("LD_LIBRARY_PATH", "/nonexistent"),
        ("LD_PRELOAD", ""),
        ("GW_TEST_DROP", "1"),
        ("GW_TEST_KEEP", "old"),
        ("GW_TEST_OTHER", "kept"),
    ];
    let out = case.run_plan(&case.plan, &["env"], &env);
    if !has_userns(&out) {
        return;
    }
    assert_code(&out, 0);
    let vars = stdout(&out);
    let lines: Vec<&str> = vars.lines().collect();
    assert!(!lines.iter().any(|l| l.starts_with("LD_")), "{vars}");
    assert!(
        !lines.iter().any(|l| l.starts_with("GW_TEST_DROP=")),
        "{vars}"
    );
    for want in [
        "GREYWALL_SANDBOX=1",
        "GW_TEST_KEEP=new",
        "GW_TEST_OTHER=kept",
    ] {
        assert!(lines.contains(&want), "{want} missing from {vars}");
    }
    let out = case.run(&["hello"]);
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "hello from bin\n");
    // The launcher's own PATH does not have it.
    let mut plain = case.plan.clone();
    plain.env.pop();
    assert_code(&case.run_plan(&plain, &["hello"], &[]), 127);
}

#[test]
fn sigpipe_is_not_left_ignored() {
    let case = Case::new(0);
    let out = case.run(&["grep", "^SigIgn:", "/proc/self/status"]);
    if !has_userns(&out) {
        return;
    }
    let mask = u64::from_str_radix(stdout(&out).split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(mask & (1 << (libc::SIGPIPE - 1)), 0, "SigIgn {mask:#x}");
}

/// Everything at once, as the compiler's plans look.
#[test]
fn a_full_plan_runs_a_shell() {
    let abi = landlock_abi();
    let Some(arch) = Arch::host() else {
        skip("no seccomp filter for this architecture");
        return;
    };
    let mut case = Case::new(abi);
    case.write("repo/.git/hooks/x", "");
    case.write(".netrc", "machine x password y\n");
    let p = &mut case.plan;
    p.network = Network::Isolated;
    p.mounts = vec![
        MountOp::Tmpfs {
            path: "/tmp".into(),
            mode: 0o1777,
        },
        MountOp::Tmpfs {
            path: "/dev/shm".into(),
            mode: 0o1777,
        },
        MountOp::ReadOnly {
            path: format!("{}/repo/.git/hooks", case.dir.path().join("ws").display()),
        },
        MountOp::HideFile {
            path: format!("{}/.netrc", case.dir.path().join("ws").display()),
        },
    ];
    p.landlock
        .paths
        .push(rule("/tmp", fs_access::READ | fs_access::WRITE));
    if abi >= 4 {
        p.landlock.handled_net = net_access::BIND_TCP;
        p.landlock.ports = vec![(8080, net_access::BIND_TCP)];
    }
    if abi >= 6 {
        p.landlock.scoped = greywall_compiler::plan::scope::SIGNAL
            | greywall_compiler::plan::scope::ABSTRACT_UNIX_SOCKET;
    }
    p.seccomp_arch = arch.audit_arch();
    p.seccomp = seccomp::to_bytes(&seccomp::build(arch, &SeccompOptions::default()));
    let out = case.run(&sh(
        "echo ok > /tmp/f && cat /tmp/f && ! cat .netrc 2>/dev/null && ls repo/.git/hooks && echo done > out",
    ));
    if !has_userns(&out) {
        return;
    }
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "ok\nx\n");
    assert_eq!(stderr(&out), "");
}
