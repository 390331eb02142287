//! Enforcement conformance: `greywall exec` with real policies, on the real kernel, for both
//! backends (the native launcher and bwrap), observed by a probe.
//!
//! Each test builds a scratch corner of a machine under `CARGO_TARGET_TMPDIR` (not `/tmp`,
//! which the sandbox replaces with a private tmpfs): a fake home (`.ssh/id_rsa`,
//! `.aws/credentials`, `.bashrc`, `.cache/`, the probe in `.local/bin`), a git-like workspace
//! (`.git/hooks/`, `.git/config`, `src/main.rs`, `.env`, an executable `tool`), an artifact
//! cache, files outside the workspace, and listeners the test owns outside the sandbox (TCP on
//! `127.0.0.1`, a Unix socket, an abstract Unix socket) plus a victim process. It then runs
//! `greywall exec -s POLICY --backend B -- greywall-probe OPS…` in the workspace and compares
//! the probe's **whole** output table with the table written in the test, for each backend;
//! the two backends must print identical tables.
//!
//! Every table is also run without the sandbox, on the same scratch files, and each line must
//! succeed there (with the exceptions [`bare_expected`] computes from this machine's
//! privileges), so that a denial in the sandbox means something. Destructive lines (`unlink`)
//! come last in a table for that reason.
//!
//! Table syntax: one operation per line, `op args… expected` (`-` for an operation without
//! arguments), exactly as the probe prints it. Placeholders (`$WS`, `$HOME`, `$S`, …; see
//! [`Scratch::vars`]) are expanded first. `expected` may list alternatives (`EBUSY|EACCES`);
//! `DENIED` stands for any denial errno. A trailing `# GAP: …` comment marks a line where
//! greywall is knowingly weaker than the policy says and `greywall check` reports the rule as
//! "approximated" ([`documented_gaps_are_reported_by_check`] keeps that honest): the line
//! records today's result, and fails (to be updated) once the gap is closed.
//!
//! A test that cannot run because the kernel lacks something (user namespaces, Landlock ABI
//! 6, bwrap) prints `SKIP: <reason>`; with `GREYWALL_REQUIRE_KERNEL=1` it fails instead.
//!
//! # Running as an unprivileged user (CI)
//!
//! `.ci/run` runs as root. Root inside the sandbox's user namespace is not the same test as a
//! normal user (uid 0 owns the host files, capabilities differ), so `.ci/unprivileged.sh` runs
//! the same test binaries again as the user `gwtest`:
//!
//! 1. `cargo test -p greywall --test conformance --test apply --no-run` builds them as root
//!    and prints their paths (`target/debug/deps/conformance-<hash>`);
//! 2. it creates `gwtest` if missing (`useradd -m`), makes the test binaries, `greywall` and
//!    `greywall-probe` readable and executable by everyone, every directory above them and
//!    above `launcher/` traversable (`chmod o+x` where it is missing), and `target/tmp` (this
//!    file's `CARGO_TARGET_TMPDIR`, where the scratch directories go) writable by everyone
//!    with the sticky bit, like `/tmp`;
//! 3. it runs each binary as that user, from the package directory:
//!    `su gwtest -s /bin/sh -c 'cd launcher && HOME=/home/gwtest GREYWALL_REQUIRE_KERNEL=1
//!    …/conformance-<hash>'`.
//!
//! `env!("CARGO_BIN_EXE_greywall")`, `env!("CARGO_BIN_EXE_greywall-probe")` and
//! `CARGO_TARGET_TMPDIR` are absolute paths baked in at build time: the binaries must stay
//! where cargo put them. The target directory must not be below a path every policy may read
//! (`/opt`, `/usr`, `/var/lib`, … in `SYSTEM_READABLE`): the tests refuse to run there.
//!
//! The tables are the same for root and for a normal user but for one errno: a path hidden
//! behind an empty mode-0 tmpfs gives `ENOENT` to root (who may search it) and `EACCES` to a
//! user; those lines accept both.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{copy_exe, skip, write_file};

use std::fmt::Write as _;
use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use greywall_compiler::protections::SYSTEM_READABLE;

const GREYWALL: &str = env!("CARGO_BIN_EXE_greywall");
const PROBE: &str = env!("CARGO_BIN_EXE_greywall-probe");

/// The tables assume Landlock signal and abstract-socket scoping (ABI 6).
const MIN_LANDLOCK_ABI: u32 = 6;

/// A TEST-NET-2 address (RFC 5737): routed by the host's default route, never answered.
const EXTERNAL_UDP: &str = "198.51.100.7:9";

/// Every errno `DENIED` stands for.
const DENIALS: &[&str] = &["EACCES", "EPERM", "EROFS", "EBUSY", "EXDEV"];

/// What `greywall check` says about this machine.
struct Kernel {
    landlock_abi: u32,
    userns: bool,
    bwrap: bool,
}

fn kernel() -> &'static Kernel {
    static KERNEL: OnceLock<Kernel> = OnceLock::new();
    KERNEL.get_or_init(|| {
        let s = Scratch::new();
        let out = s.check(r#"{"filesystem":{"allowWrite":["."]}}"#);
        let field = |name: &str| {
            out.lines()
                .find_map(|l| l.trim_start().strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("no {name:?} in greywall check:\n{out}"))
        };
        Kernel {
            landlock_abi: field("landlock")
                .strip_prefix("ABI ")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            userns: field("user namespaces") == "available",
            bwrap: field("bwrap").starts_with('/'),
        }
    })
}

/// False (with a SKIP) when the kernel cannot run the enforcement tables.
fn ready(what: &str) -> bool {
    let k = kernel();
    if !k.userns {
        skip(&format!("{what}: user namespaces are unavailable"));
        return false;
    }
    if k.landlock_abi < MIN_LANDLOCK_ABI {
        skip(&format!(
            "{what}: the tables need Landlock ABI {MIN_LANDLOCK_ABI}, the kernel has {}",
            k.landlock_abi
        ));
        return false;
    }
    true
}

// ---- This machine, outside the sandbox -----------------------------------------------------

/// A field of `/proc/self/status`.
fn status_field(name: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

fn has_cap(bit: u32) -> bool {
    u64::from_str_radix(&status_field("CapEff"), 16).is_ok_and(|caps| caps & (1 << bit) != 0)
}

const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;

fn sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn has_default_route() -> bool {
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    routes
        .lines()
        .skip(1)
        .any(|l| l.split_whitespace().nth(1) == Some("00000000"))
}

/// What an operation does without the sandbox on this machine: `ok`, except where privileges
/// or system settings decide otherwise.
fn bare_expected(op: &str, args: &[String]) -> String {
    let admin = has_cap(CAP_SYS_ADMIN);
    let s = match op {
        "nnp" => return status_field("NoNewPrivs"),
        "mount" if !admin => "EPERM",
        // The tables only unmount what greywall mounted: outside, nothing is mounted there.
        "umount" if admin => "EINVAL",
        "umount" => "EPERM",
        "io-uring" => match sysctl("/proc/sys/kernel/io_uring_disabled").as_deref() {
            Some("2") => "EPERM",
            Some("1") if !admin => "EPERM",
            _ => "ok",
        },
        "tiocsti-pty" => {
            let legacy = sysctl("/proc/sys/dev/tty/legacy_tiocsti");
            if admin || legacy.as_deref() != Some("0") {
                "ok"
            } else {
                "EIO"
            }
        }
        "ptrace" => match sysctl("/proc/sys/kernel/yama/ptrace_scope").as_deref() {
            None | Some("0") => "ok",
            Some("1" | "2") if has_cap(CAP_SYS_PTRACE) => "ok",
            _ => "EPERM",
        },
        "udp" if !args[0].starts_with("127.") && !has_default_route() => "ENETUNREACH",
        _ => "ok",
    };
    s.to_string()
}

// ---- Scratch machines ----------------------------------------------------------------------

static SCRATCH_SEQ: AtomicUsize = AtomicUsize::new(0);

/// Which way the probe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bare,
    Native,
    Bwrap,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Bare => "no sandbox",
            Mode::Native => "native",
            Mode::Bwrap => "bwrap",
        }
    }
}

/// A scratch directory with a home, a workspace, a cache, and peers outside the sandbox.
struct Scratch {
    _dir: tempfile::TempDir,
    root: PathBuf,
    /// The environment of every run (the test's own is not passed on).
    env: Vec<(String, String)>,
    /// Placeholders, longest name first.
    vars: Vec<(String, String)>,
    _tcp: TcpListener,
    _unix: UnixListener,
    /// A stand-in for the session bus, in the scratch `$XDG_RUNTIME_DIR`.
    _bus: UnixListener,
    _abstract: UnixListener,
    victim: Child,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = self.victim.kill();
        let _ = self.victim.wait();
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let root = dir.path().canonicalize().unwrap();
        // Below a path every policy may read, the defaultDenyRead tables cannot hold.
        if let Some(sys) = SYSTEM_READABLE.iter().find(|p| root.starts_with(p)) {
            panic!(
                "the scratch directory {} is below {sys}, which defaultDenyRead policies may \
                 read: build with a CARGO_TARGET_DIR elsewhere",
                root.display()
            );
        }
        let home = root.join("home");
        let ws = root.join("ws");
        let cache = root.join("cache");

        write_file(&home.join(".ssh/id_rsa"), "ssh private key\n", 0o600);
        write_file(&home.join(".aws/credentials"), "aws secret\n", 0o600);
        write_file(&home.join(".bashrc"), "# bashrc\n", 0o644);
        write_file(&home.join("notes/todo.txt"), "notes\n", 0o644);
        copy_exe("/bin/true", &home.join("notes/tool"));
        std::fs::create_dir_all(home.join(".cache")).unwrap();
        std::fs::create_dir_all(home.join(".config")).unwrap();
        // In `~/.local/bin`, which every policy may read and execute.
        copy_exe(PROBE, &home.join(".local/bin/greywall-probe"));

        write_file(&ws.join(".git/HEAD"), "ref: refs/heads/main\n", 0o644);
        write_file(&ws.join(".git/config"), "[core]\n\tbare = false\n", 0o644);
        write_file(
            &ws.join(".git/hooks/pre-commit"),
            "#!/bin/sh\nexit 0\n",
            0o755,
        );
        write_file(&ws.join("src/main.rs"), "fn main() {}\n", 0o644);
        write_file(&ws.join(".env"), "API_KEY=secret\n", 0o644);
        write_file(&ws.join("deploy.key"), "key\n", 0o600);
        copy_exe("/bin/true", &ws.join("tool"));

        write_file(&root.join("outside.txt"), "outside\n", 0o644);
        copy_exe("/bin/true", &root.join("outside-tool"));
        std::fs::create_dir_all(&cache).unwrap();

        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        let free_port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let unix = UnixListener::bind(root.join("host.sock")).unwrap();
        let run = root.join("run");
        std::fs::create_dir(&run).unwrap();
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let bus = UnixListener::bind(run.join("bus")).unwrap();
        let abs_name = format!(
            "greywall-conformance-{}-{}",
            std::process::id(),
            SCRATCH_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let abs =
            UnixListener::bind_addr(&UnixAddr::from_abstract_name(&abs_name).unwrap()).unwrap();
        let victim = Command::new("sleep")
            .arg("600")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();

        let env = vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("HOME".into(), path_str(&home)),
            ("XDG_CACHE_HOME".into(), path_str(&cache)),
            ("XDG_CONFIG_HOME".into(), path_str(&home.join(".config"))),
            ("XDG_RUNTIME_DIR".into(), path_str(&run)),
            ("LC_ALL".into(), "C".into()),
        ];
        let mut vars: Vec<(String, String)> = vec![
            ("$WS".into(), path_str(&ws)),
            ("$HOME".into(), path_str(&home)),
            ("$CACHE".into(), path_str(&cache)),
            ("$S".into(), path_str(&root)),
            ("$RUN".into(), path_str(&run)),
            ("$PORT".into(), port.to_string()),
            ("$FREEPORT".into(), free_port.to_string()),
            ("$ABS".into(), abs_name),
            ("$VICTIM".into(), victim.id().to_string()),
            ("$TESTPID".into(), std::process::id().to_string()),
            ("$EXTERNAL".into(), EXTERNAL_UDP.into()),
        ];
        vars.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        Scratch {
            _dir: dir,
            root,
            env,
            vars,
            _tcp: tcp,
            _unix: unix,
            _bus: bus,
            _abstract: abs,
            victim,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn ws(&self) -> PathBuf {
        self.path("ws")
    }

    fn probe(&self) -> PathBuf {
        self.path("home/.local/bin/greywall-probe")
    }

    fn set_var(&mut self, name: &str, value: String) {
        self.vars.retain(|(k, _)| k != name);
        self.vars.push((name.into(), value));
        self.vars.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    }

    fn unset_env(&mut self, name: &str) {
        self.env.retain(|(k, _)| k != name);
    }

    fn expand(&self, text: &str) -> String {
        let mut t = text.to_string();
        for (k, v) in &self.vars {
            t = t.replace(k.as_str(), v);
        }
        t
    }

    /// Writes `text` (placeholders expanded) to `rel` in the scratch directory; returns the
    /// absolute path.
    fn write(&self, rel: &str, text: &str) -> String {
        let p = self.path(rel);
        write_file(&p, &self.expand(text), 0o644);
        path_str(&p)
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.ws())
            .stdin(Stdio::null());
        cmd
    }

    /// `greywall check -s POLICY` for a policy written to the scratch directory.
    fn check(&self, policy: &str) -> String {
        let path = self.write("check-policy.json", policy);
        let out = self
            .command(GREYWALL)
            .args(["check", "-s", &path])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "greywall check failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs the probe with `ops`; the lines it printed, or why it did not run.
    fn run(&self, mode: Mode, settings: &[&str], ops: &[String]) -> Result<Vec<String>, String> {
        let probe = path_str(&self.probe());
        let mut cmd = match mode {
            Mode::Bare => self.command(&probe),
            Mode::Native | Mode::Bwrap => {
                let mut c = self.command(GREYWALL);
                c.arg("exec")
                    .args(settings)
                    .arg("--backend")
                    .arg(if mode == Mode::Native {
                        "native"
                    } else {
                        "bwrap"
                    })
                    .arg("--")
                    .arg(&probe);
                c
            }
        };
        let out = cmd.args(ops).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(format!(
                "{} exited with {}\nstdout:\n{stdout}\nstderr:\n{}",
                mode.name(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(stdout.lines().map(str::to_string).collect())
    }

    /// Runs `table` without the sandbox, natively and under bwrap, and checks every result;
    /// panics with every difference at once.
    fn assert_table(&self, name: &str, settings: &[&str], table: &str) {
        let rows = self.parse(table);
        let ops: Vec<String> = rows.iter().flat_map(|r| r.argv.clone()).collect();
        let mut failures = String::new();
        let mut tables: Vec<(Mode, Vec<String>)> = Vec::new();
        let mut modes = vec![Mode::Native];
        if kernel().bwrap {
            modes.push(Mode::Bwrap);
        } else {
            skip(&format!(
                "{name}: bwrap is not installed in a system directory"
            ));
        }
        for mode in modes {
            match self.run(mode, settings, &ops) {
                Ok(lines) => {
                    failures.push_str(&self.compare(mode, &rows, &lines, |r| r.expected.clone()));
                    tables.push((mode, lines));
                }
                Err(e) => {
                    let _ = writeln!(failures, "{name}: {e}");
                }
            }
        }
        if let [(_, native), (_, bwrap)] = tables.as_slice()
            && native != bwrap
        {
            let _ = writeln!(failures, "the native and bwrap tables differ:");
            for (n, b) in native.iter().zip(bwrap) {
                if n != b {
                    let _ = writeln!(
                        failures,
                        "  native: {}\n  bwrap:  {}",
                        self.unexpand(n),
                        self.unexpand(b)
                    );
                }
            }
        }
        // Without the sandbox every operation must work: the denials above mean something.
        match self.run(Mode::Bare, &[], &ops) {
            Ok(lines) => failures.push_str(&self.compare(Mode::Bare, &rows, &lines, |r| {
                let mut ok = vec![bare_expected(&r.argv[0], &r.argv[1..])];
                // Outside the sandbox the host's ports are shared with tests running in
                // parallel: a port taken meanwhile still shows that binding is allowed.
                if r.argv[0] == "bind-tcp" {
                    ok.push("EADDRINUSE".into());
                }
                ok
            })),
            Err(e) => {
                let _ = writeln!(failures, "{name}: {e}");
            }
        }
        if !failures.is_empty() {
            let mut table_text = String::new();
            for (mode, lines) in &tables {
                let _ = writeln!(table_text, "-- {} table:", mode.name());
                for l in lines {
                    let _ = writeln!(table_text, "   {}", self.unexpand(l));
                }
            }
            panic!("{name}:\n{failures}{table_text}");
        }
    }

    /// The differences between `lines` and the table, one line each.
    fn compare(
        &self,
        mode: Mode,
        rows: &[Row],
        lines: &[String],
        expected: impl Fn(&Row) -> Vec<String>,
    ) -> String {
        let mut out = String::new();
        if lines.len() != rows.len() {
            let _ = writeln!(
                out,
                "{}: the probe printed {} lines for {} operations:\n{}",
                mode.name(),
                lines.len(),
                rows.len(),
                lines.join("\n")
            );
            return out;
        }
        for (row, line) in rows.iter().zip(lines) {
            let want = expected(row);
            let got = line.strip_prefix(&row.prefix).map(str::trim_start);
            match got {
                Some(result) if want.iter().any(|w| w == result) => {}
                Some(result) => {
                    let _ = writeln!(
                        out,
                        "{}: {}: expected {}, got {result}{}",
                        mode.name(),
                        self.unexpand(&row.prefix),
                        want.join("|"),
                        row.gap
                            .as_ref()
                            .map(|g| format!(" ({g})"))
                            .unwrap_or_default()
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "{}: expected a line for {:?}, got {line:?}",
                        mode.name(),
                        row.prefix
                    );
                }
            }
        }
        out
    }

    /// Placeholders back in, for messages.
    fn unexpand(&self, line: &str) -> String {
        let mut words: Vec<String> = Vec::new();
        for w in line.split(' ') {
            let mut w = w.to_string();
            for (k, v) in &self.vars {
                if w == *v {
                    w = k.clone();
                } else if v.starts_with('/') && w.contains(v.as_str()) {
                    w = w.replace(v.as_str(), k);
                } else if let Some((host, port)) = w.rsplit_once(':')
                    && port == v
                {
                    w = format!("{host}:{k}");
                }
            }
            words.push(w);
        }
        words.join(" ")
    }

    fn parse(&self, table: &str) -> Vec<Row> {
        table
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (body, comment) = match l.split_once(" # ") {
                    Some((b, c)) => (b.trim(), Some(c.trim())),
                    None => (l, None),
                };
                let words: Vec<String> = body.split_whitespace().map(|w| self.expand(w)).collect();
                let (expected, op) = words.split_last().expect("an empty table line");
                assert!(op.len() >= 2, "table line without arguments column: {l:?}");
                let expected = expected
                    .split('|')
                    .flat_map(|e| {
                        if e == "DENIED" {
                            DENIALS.iter().map(|d| d.to_string()).collect()
                        } else {
                            vec![e.to_string()]
                        }
                    })
                    .collect();
                let argv: Vec<String> = op.iter().filter(|w| *w != "-").cloned().collect();
                Row {
                    prefix: op.join(" "),
                    argv,
                    expected,
                    gap: comment.filter(|c| c.starts_with("GAP")).map(str::to_string),
                }
            })
            .collect()
    }
}

/// One line of a table.
struct Row {
    /// `op args…` as the probe prints it (placeholders expanded).
    prefix: String,
    /// The probe arguments for this operation.
    argv: Vec<String>,
    /// Accepted results.
    expected: Vec<String>,
    gap: Option<String>,
}

// ---- The policy matrix ---------------------------------------------------------------------

/// Runs `table` under `policy` (written outside the workspace and passed with `-s`).
fn policy_table(name: &str, policy: &str, table: &str) {
    if !ready(name) {
        return;
    }
    let s = Scratch::new();
    let path = s.write("policy.json", policy);
    s.assert_table(name, &["-s", &path], table);
}

/// `"allowWrite": ["."]`, as the `default` template: reads are denied by default.
#[test]
fn policy_default() {
    policy_table(
        "policy_default",
        r#"{"filesystem":{"allowWrite":["."]}}"#,
        "
        read /etc/passwd ok
        read $WS/src/main.rs ok
        read $S/outside.txt EACCES
        read $HOME/.ssh/id_rsa EACCES
        read $HOME/.aws/credentials EACCES
        read $HOME/.bashrc EACCES
        read $WS/.env EACCES
        write $WS/src/main.rs ok
        create $WS/new.txt ok
        mkdir $WS/newdir ok
        rename $WS/src/main.rs $WS/src/moved.rs ok
        link $WS/src/main.rs $WS/hardlink.rs ok
        symlink $S/outside.txt $WS/symlink ok
        write $S/outside.txt EACCES
        create $S/new.txt EACCES
        write $HOME/.bashrc EACCES
        write $WS/.git/hooks/pre-commit EROFS
        create $WS/.git/hooks/post-checkout EROFS
        write $WS/.git/config EROFS
        write $WS/.env EACCES
        create $WS/.vscode EACCES
        exec /bin/true ok
        exec $WS/tool ok
        exec $S/outside-tool EACCES
        tcp 127.0.0.1:$PORT ECONNREFUSED
        udp $EXTERNAL ENETUNREACH
        unix $S/host.sock ok # GAP: Unix sockets stay connectable before Landlock ABI 9
        unix $RUN/bus ENOENT|EACCES # the user's runtime directory (session bus, agents) is hidden: an empty folder no one may search
        abstract $ABS ECONNREFUSED
        bind-tcp $FREEPORT EACCES
        ptrace $VICTIM EPERM
        kill $TESTPID EPERM
        environ $TESTPID EACCES
        mount - EPERM
        unshare-user - EPERM
        io-uring - EPERM
        tiocsti-pty - EPERM
        nnp - 1
        unlink $WS/.git/hooks/pre-commit EROFS
        unlink $HOME/.aws/credentials EACCES
        ",
    );
}

/// Two hidden folders: the second is a bind of the first one's empty, read-only tmpfs, and
/// hides as well (nothing readable, nothing can be made in either, as root or not).
#[test]
fn policy_hides_two_folders() {
    policy_table(
        "policy_hides_two_folders",
        r#"{"filesystem":{"defaultDenyRead":false,"allowWrite":["."],
            "denyRead":["~/.ssh", "~/.aws"]}}"#,
        "
        read $HOME/.ssh/id_rsa ENOENT|EACCES
        read $HOME/.aws/credentials ENOENT|EACCES
        create $HOME/.ssh/new EROFS|EACCES
        create $HOME/.aws/new EROFS|EACCES
        mkdir $HOME/.aws/dir EROFS|EACCES
        read $HOME/.bashrc ok
        read $WS/src/main.rs ok
        ",
    );
}

/// Like the `code` template's file rules: reads allowed except `denyRead`, writes in the
/// workspace except `denyWrite`.
#[test]
fn policy_code_like() {
    policy_table(
        "policy_code_like",
        r#"{"filesystem":{"defaultDenyRead":false,"allowWrite":["."],
            "denyRead":["~/.ssh"],"denyWrite":["**/*.key"]}}"#,
        "
        read /etc/passwd ok
        read $WS/src/main.rs ok
        read $S/outside.txt ok
        read $HOME/.ssh/id_rsa ENOENT|EACCES # hidden: root may search the empty mode-0 tmpfs
        read $HOME/.aws/credentials ok
        read $HOME/.bashrc ok
        read $WS/.env EACCES
        write $WS/src/main.rs ok
        create $WS/new.txt ok
        mkdir $WS/newdir ok
        rename $WS/src/main.rs $WS/src/moved.rs ok
        link $WS/src/main.rs $WS/hardlink.rs ok
        symlink $S/outside.txt $WS/symlink ok
        write $S/outside.txt EACCES
        create $S/new.txt EACCES
        write $HOME/.bashrc EACCES
        write $WS/.git/hooks/pre-commit EROFS
        create $WS/.git/hooks/post-checkout EROFS
        write $WS/.git/config EROFS
        write $WS/.env EACCES
        write $WS/deploy.key EROFS
        rename $WS/deploy.key $WS/deploy.txt EBUSY
        create $WS/new.key EACCES
        exec /bin/true ok
        exec $WS/tool ok
        exec $S/outside-tool ok
        tcp 127.0.0.1:$PORT ECONNREFUSED
        udp $EXTERNAL ENETUNREACH
        unix $S/host.sock ok # GAP: Unix sockets stay connectable before Landlock ABI 9
        unix $RUN/bus ENOENT|EACCES # the user's runtime directory (session bus, agents) is hidden: an empty folder no one may search
        abstract $ABS ECONNREFUSED
        bind-tcp $FREEPORT EACCES
        ptrace $VICTIM EPERM
        kill $TESTPID EPERM
        environ $TESTPID EACCES
        mount - EPERM
        unshare-user - EPERM
        io-uring - EPERM
        tiocsti-pty - EPERM
        nnp - 1
        unlink $WS/deploy.key EBUSY
        unlink $HOME/.aws/credentials EACCES
        ",
    );
}

/// Reads denied by default, one extra readable folder.
#[test]
fn policy_deny_read_with_allow_read() {
    policy_table(
        "policy_deny_read_with_allow_read",
        r#"{"filesystem":{"defaultDenyRead":true,"allowWrite":["."],"allowRead":["~/notes"]}}"#,
        "
        read /etc/passwd ok
        read /usr/bin/env ok
        read $WS/src/main.rs ok
        read $HOME/notes/todo.txt ok
        read $S/outside.txt EACCES
        read $HOME/.ssh/id_rsa EACCES
        read $HOME/.aws/credentials EACCES
        read $HOME/.bashrc EACCES
        read $WS/.env EACCES
        write $HOME/notes/todo.txt EACCES
        create $HOME/notes/new.txt EACCES
        write $WS/src/main.rs ok
        create $WS/new.txt ok
        write $S/outside.txt EACCES
        write $WS/.git/hooks/pre-commit EROFS
        write $WS/.git/config EROFS
        exec /bin/true ok
        exec $WS/tool ok
        exec $HOME/notes/tool ok
        exec $S/outside-tool EACCES
        tcp 127.0.0.1:$PORT ECONNREFUSED
        bind-tcp $FREEPORT EACCES
        kill $TESTPID EPERM
        environ $TESTPID EACCES
        nnp - 1
        ",
    );
}

/// `allowedDomains: ["*"]`: the host network is shared; signals, ptrace and abstract sockets
/// stay scoped.
#[test]
fn policy_relaxed_network() {
    policy_table(
        "policy_relaxed_network",
        r#"{"network":{"allowedDomains":["*"]},"filesystem":{"allowWrite":["."]}}"#,
        "
        read /etc/passwd ok
        read $HOME/.ssh/id_rsa EACCES
        read $WS/.env EACCES
        write $WS/src/main.rs ok
        write $S/outside.txt EACCES
        write $WS/.git/hooks/pre-commit EROFS
        tcp 127.0.0.1:$PORT ok
        udp $EXTERNAL ok
        unix $S/host.sock ok # GAP: Unix sockets stay connectable before Landlock ABI 9
        unix $RUN/bus ENOENT|EACCES # the user's runtime directory (session bus, agents) is hidden: an empty folder no one may search
        abstract $ABS EPERM
        bind-tcp $FREEPORT EACCES
        ptrace $VICTIM EPERM
        kill $TESTPID EPERM
        environ $TESTPID EACCES
        mount - EPERM
        unshare-user - EPERM
        io-uring - EPERM
        tiocsti-pty - EPERM
        nnp - 1
        ",
    );
}

/// `allowUnixSockets` naming a socket in the user's runtime directory: that folder stays
/// visible (greywall's own sockets below it stay hidden).
#[test]
fn policy_allows_a_runtime_socket() {
    policy_table(
        "policy_allows_a_runtime_socket",
        r#"{"network":{"allowUnixSockets":["$RUN/bus"]},"filesystem":{"allowWrite":["."]}}"#,
        "
        unix $RUN/bus ok
        unix $S/host.sock ok # GAP: Unix sockets stay connectable before Landlock ABI 9
        read $HOME/.ssh/id_rsa EACCES
        write $S/outside.txt EACCES
        ",
    );
}

/// `allowLocalBinding`: servers may listen on loopback ports; there is still no network.
#[test]
fn policy_local_binding() {
    policy_table(
        "policy_local_binding",
        r#"{"network":{"allowLocalBinding":true},"filesystem":{"allowWrite":["."]}}"#,
        "
        read $HOME/.ssh/id_rsa EACCES
        read $WS/.env EACCES
        write $WS/src/main.rs ok
        write $S/outside.txt EACCES
        bind-tcp $FREEPORT ok
        tcp 127.0.0.1:$PORT ECONNREFUSED
        udp $EXTERNAL ENETUNREACH
        abstract $ABS ECONNREFUSED
        kill $TESTPID EPERM
        nnp - 1
        ",
    );
}

// ---- Attacks -------------------------------------------------------------------------------

const DEFAULT_POLICY: &str = r#"{"filesystem":{"allowWrite":["."]}}"#;
const CODE_POLICY: &str = r#"{"filesystem":{"defaultDenyRead":false,"allowWrite":["."],
    "denyRead":["~/.ssh"],"denyWrite":["**/*.key"]}}"#;

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// Symlinks planted in the workspace (a cloned repository can hold any) point at a protected
/// file, at a file outside, and at a protected folder: writing through them is denied.
#[test]
fn attack_symlink_swap() {
    if !ready("attack_symlink_swap") {
        return;
    }
    let s = Scratch::new();
    let ws = s.ws();
    std::os::unix::fs::symlink(s.path("home/.bashrc"), ws.join("link-bashrc")).unwrap();
    std::os::unix::fs::symlink("../outside.txt", ws.join("link-outside")).unwrap();
    std::os::unix::fs::symlink(s.path("home/.ssh"), ws.join("link-ssh")).unwrap();
    std::os::unix::fs::symlink(s.root.clone(), ws.join("link-root")).unwrap();
    std::os::unix::fs::symlink(".git/hooks", ws.join("link-hooks")).unwrap();
    let policy = s.write("policy.json", CODE_POLICY);
    s.assert_table(
        "attack_symlink_swap",
        &["-s", &policy],
        "
        symlink $HOME/.bashrc $WS/new-link ok
        write $WS/link-bashrc EACCES
        write $WS/link-outside EACCES
        create $WS/link-root/planted.txt EACCES
        read $WS/link-ssh/id_rsa ENOENT|EACCES # hidden behind a mode-0 tmpfs
        write $WS/link-hooks/pre-commit EROFS
        create $WS/link-hooks/post-merge EROFS
        ",
    );
    assert_eq!(read(s.path("home/.bashrc")), "# bashrc\n");
    assert_eq!(read(s.path("outside.txt")), "outside\n");
}

/// Hard links to protected or outside files cannot be made from inside, so the originals
/// cannot be modified through a workspace name.
#[test]
fn attack_hardlink_protected_file() {
    if !ready("attack_hardlink_protected_file") {
        return;
    }
    let s = Scratch::new();
    let policy = s.write("policy.json", CODE_POLICY);
    s.assert_table(
        "attack_hardlink_protected_file",
        &["-s", &policy],
        "
        link $HOME/.bashrc $WS/bashrc-link EXDEV
        link $S/outside.txt $WS/outside-link EXDEV
        link $WS/.git/hooks/pre-commit $WS/hook-link EXDEV
        link $WS/.git/config $WS/config-link EXDEV
        link $WS/deploy.key $WS/key-link EXDEV
        link $WS/src/main.rs $WS/main-link ok
        ",
    );
    // Nothing was left behind to write through.
    for name in [
        "bashrc-link",
        "outside-link",
        "hook-link",
        "config-link",
        "key-link",
    ] {
        assert!(!s.ws().join(name).exists(), "{name} exists");
    }
    assert_eq!(read(s.path("home/.bashrc")), "# bashrc\n");
    assert_eq!(
        read(s.path("ws/.git/hooks/pre-commit")),
        "#!/bin/sh\nexit 0\n"
    );
}

/// `.git/hooks` and `.git/config` cannot be moved away (to put a new one in their place), and
/// neither can the `.git` folder that holds them.
#[test]
fn attack_rename_git_hooks_away() {
    if !ready("attack_rename_git_hooks_away") {
        return;
    }
    let s = Scratch::new();
    let policy = s.write("policy.json", DEFAULT_POLICY);
    s.assert_table(
        "attack_rename_git_hooks_away",
        &["-s", &policy],
        "
        rename $WS/.git/hooks $WS/.git/hooks-away EBUSY
        rename $WS/.git/config $WS/.git/config-away EBUSY
        umount $WS/.git/hooks EPERM
        umount $WS/.git/config EPERM
        unlink $WS/.git/config EBUSY
        rename $WS/.git $WS/git-away DENIED
        rename $WS/src $WS/src-away ok
        ",
    );
}

/// The same through a shell: move `.git` away, make a new `.git/hooks` with a hook.
#[test]
fn attack_replace_git_hooks_through_parent() {
    if !ready("attack_replace_git_hooks_through_parent") {
        return;
    }
    let script = "mv .git .git-away && mkdir -p .git/hooks && \
                  printf '#!/bin/sh\\necho pwned\\n' > .git/hooks/pre-commit; true";
    let mut failures = Vec::new();
    for backend in ["native", "bwrap"] {
        if backend == "bwrap" && !kernel().bwrap {
            skip("attack_replace_git_hooks_through_parent: bwrap is not installed");
            continue;
        }
        let s = Scratch::new();
        let policy = s.write("policy.json", DEFAULT_POLICY);
        let out = s
            .command(GREYWALL)
            .args(["exec", "-s", &policy, "--backend", backend, "--"])
            .args(["/bin/sh", "-c", script])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let hook = std::fs::read_to_string(s.ws().join(".git/hooks/pre-commit"));
        let away = s.ws().join(".git-away").exists();
        if away || hook.as_deref().ok() != Some("#!/bin/sh\nexit 0\n") {
            failures.push(format!(
                "{backend}: the sandbox replaced .git/hooks (pre-commit is now {hook:?}, \
                 .git-away exists: {away})"
            ));
        }
    }
    // Without the sandbox the same script does replace the hook.
    let s = Scratch::new();
    let out = s.command("/bin/sh").args(["-c", script]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        read(s.ws().join(".git/hooks/pre-commit")),
        "#!/bin/sh\necho pwned\n"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `..` out of the workspace reaches nothing the policy does not grant.
#[test]
fn attack_dotdot_traversal() {
    if !ready("attack_dotdot_traversal") {
        return;
    }
    let s = Scratch::new();
    std::fs::create_dir_all(s.ws().join("a/b")).unwrap();
    let policy = s.write("policy.json", DEFAULT_POLICY);
    s.assert_table(
        "attack_dotdot_traversal",
        &["-s", &policy],
        "
        write $WS/../outside.txt EACCES
        write $WS/a/b/../../../outside.txt EACCES
        create $WS/../planted.txt EACCES
        read $WS/../home/.ssh/id_rsa EACCES
        read $WS/a/../../home/.aws/credentials EACCES
        write $WS/../home/.bashrc EACCES
        mkdir $WS/../home/.config/autostart EACCES
        ",
    );
}

/// `/proc/self/root`, `/proc/self/cwd` and another process's `/proc/PID/root` lead nowhere
/// new.
#[test]
fn attack_proc_root_paths() {
    if !ready("attack_proc_root_paths") {
        return;
    }
    let s = Scratch::new();
    let policy = s.write("policy.json", CODE_POLICY);
    s.assert_table(
        "attack_proc_root_paths",
        &["-s", &policy],
        "
        write /proc/self/root$S/outside.txt EACCES
        write /proc/self/cwd/../outside.txt EACCES
        read /proc/self/root$HOME/.ssh/id_rsa ENOENT|EACCES # hidden behind a mode-0 tmpfs
        read /proc/self/root$WS/.env EACCES
        write /proc/self/root$WS/.git/hooks/pre-commit EROFS
        read /proc/$TESTPID/root$HOME/.ssh/id_rsa EACCES
        read /proc/$TESTPID/root$WS/.env EACCES
        write /proc/$TESTPID/root$S/outside.txt EACCES
        write /proc/$VICTIM/root$WS/.git/hooks/pre-commit EACCES
        ",
    );
}

/// The artifact cache in a writable `~/.cache` stays read-only: the sandbox cannot forge the
/// plan of its next run.
#[test]
fn attack_rewrite_cache() {
    if !ready("attack_rewrite_cache") {
        return;
    }
    let mut s = Scratch::new();
    // The cache in its default place, `~/.cache/greywall`, inside a writable `~/.cache`.
    s.unset_env("XDG_CACHE_HOME");
    let policy = s.write(
        "policy.json",
        r#"{"filesystem":{"allowWrite":[".","~/.cache"]}}"#,
    );
    let out = s
        .command(GREYWALL)
        .args(["compile", "-s", &policy])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let plans = s.path("home/.cache/greywall/plans");
    let plan = std::fs::read_dir(&plans)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "plan"))
        .unwrap_or_else(|| panic!("no plan in {}", plans.display()));
    s.set_var("$PLAN", path_str(&plan));
    s.assert_table(
        "attack_rewrite_cache",
        &["-s", &policy],
        "
        create $HOME/.cache/other-tool.txt ok
        write $PLAN EROFS
        create $HOME/.cache/greywall/plans/forged.plan EROFS
        mkdir $HOME/.cache/greywall/index/forged EROFS
        rename $HOME/.cache/greywall $HOME/.cache/greywall-away EBUSY
        unlink $PLAN EROFS
        ",
    );
}

/// The same cache when the whole home is writable: moving `~/.cache` (the cache's parent)
/// away must not work either.
#[test]
fn attack_rewrite_cache_through_parent() {
    if !ready("attack_rewrite_cache_through_parent") {
        return;
    }
    let mut s = Scratch::new();
    s.unset_env("XDG_CACHE_HOME");
    let policy = s.write("policy.json", r#"{"filesystem":{"allowWrite":["~"]}}"#);
    let out = s
        .command(GREYWALL)
        .args(["compile", "-s", &policy])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    s.assert_table(
        "attack_rewrite_cache_through_parent",
        &["-s", &policy],
        "
        create $HOME/.cache/greywall/forged EROFS
        write $HOME/.bashrc EROFS
        rename $HOME/.cache $HOME/.cache-away DENIED
        rename $HOME/.config $HOME/.config-away DENIED
        ",
    );
}

/// The policy file cannot be rewritten from inside, whichever way it was found.
#[test]
fn attack_rewrite_policy_file() {
    if !ready("attack_rewrite_policy_file") {
        return;
    }
    let s = Scratch::new();
    // Discovered: `greywall.json` in the working directory.
    s.write("ws/greywall.json", DEFAULT_POLICY);
    s.assert_table(
        "attack_rewrite_policy_file (discovered greywall.json)",
        &[],
        "
        write $WS/greywall.json EROFS
        rename $WS/greywall.json $WS/moved.json EBUSY
        create $WS/new.txt ok
        unlink $WS/greywall.json EBUSY
        ",
    );
    // `--settings` with an absolute path, a policy that extends another file.
    s.write("ws/agent.json", r#"{"extends":"./base.json"}"#);
    s.write("ws/base.json", DEFAULT_POLICY);
    let agent = path_str(&s.ws().join("agent.json"));
    s.assert_table(
        "attack_rewrite_policy_file (-s absolute, extends)",
        &["-s", &agent],
        "
        write $WS/agent.json EROFS
        write $WS/base.json EROFS
        rename $WS/base.json $WS/moved.json EBUSY
        ",
    );
}

/// `--settings` with a path relative to the working directory protects the file just the
/// same.
#[test]
fn attack_rewrite_policy_file_relative_settings() {
    if !ready("attack_rewrite_policy_file_relative_settings") {
        return;
    }
    let s = Scratch::new();
    s.write("ws/agent.json", DEFAULT_POLICY);
    s.assert_table(
        "attack_rewrite_policy_file_relative_settings",
        &["-s", "agent.json"],
        "
        write $WS/agent.json DENIED
        rename $WS/agent.json $WS/moved.json DENIED
        ",
    );
}

/// Protected files that exist deeper than the working directory (no mount covers them) are
/// neither writable nor linkable to a new name, by any path, on either backend; they stay
/// readable, and so do ordinary files next to them writable.
#[test]
fn attack_deep_protected_files() {
    if !ready("attack_deep_protected_files") {
        return;
    }
    let s = Scratch::new();
    let files = [
        ("ws/sub/.bashrc", "# rc\n"),
        ("ws/sub/.vscode/settings.json", "{}\n"),
        ("ws/sub/.git/hooks/pre-commit", "#!/bin/sh\n"),
        ("ws/sub/.env", "API_KEY=secret\n"),
        ("ws/sub/plain.txt", "plain\n"),
    ];
    for (rel, text) in files {
        s.write(rel, text);
    }
    let policy = s.write("policy.json", DEFAULT_POLICY);
    s.assert_table(
        "attack_deep_protected_files",
        &["-s", &policy],
        "
        write $WS/sub/.bashrc EACCES
        write $WS/sub/.vscode/settings.json EACCES
        write $WS/sub/.git/hooks/pre-commit EACCES
        write $WS/sub/.env EACCES
        write /proc/self/root$WS/sub/.bashrc EACCES
        write $WS/sub/../sub/.env EACCES
        link $WS/sub/.bashrc $WS/bashrc-link EACCES
        read $WS/sub/.bashrc ok
        read $WS/sub/.env ok
        write $WS/sub/plain.txt ok
        link $WS/sub/plain.txt $WS/plain-link ok
        ",
    );
    for (rel, text) in files {
        assert_eq!(read(s.path(rel)), text, "{rel}");
    }
    assert!(!s.ws().join("bashrc-link").exists());
}

/// `.env` files in the working directory are neither readable nor writable, and cannot be
/// moved away to get at them.
#[test]
fn attack_env_file() {
    if !ready("attack_env_file") {
        return;
    }
    let s = Scratch::new();
    let policy = s.write("policy.json", CODE_POLICY);
    s.assert_table(
        "attack_env_file",
        &["-s", &policy],
        "
        read $WS/.env EACCES
        write $WS/.env EACCES
        umount $WS/.env EPERM
        rename $WS/.env $WS/env.txt EBUSY
        link $WS/.env $WS/env-link EXDEV
        read /proc/self/root$WS/.env EACCES
        ",
    );
    assert_eq!(read(s.ws().join(".env")), "API_KEY=secret\n");
    s.assert_table(
        "attack_env_file (unlink)",
        &["-s", &policy],
        "unlink $WS/.env EBUSY",
    );
}

// ---- Honesty of the tables -----------------------------------------------------------------

/// Every `# GAP` in the tables, and every refusal that has a known limit, is a downgrade
/// `greywall check` reports as approximated.
#[test]
fn documented_gaps_are_reported_by_check() {
    let s = Scratch::new();
    let out = s.check(CODE_POLICY);
    for needle in [
        // The create-deny supervisor's race, for the lines that are now refused.
        "racing multi-threaded program",
        "other Unix sockets the sandbox can see stay connectable",
    ] {
        assert!(
            out.contains(needle),
            "greywall check no longer says {needle:?}; update the # GAP lines of the tables:\n{out}"
        );
    }
}

/// `GREYWALL_TEST_LANDLOCK_ABI=N` declares the ABI the runner is expected to have; it must be
/// the running kernel's, so that a runner with an older kernel cannot pass silently.
#[test]
fn declared_landlock_abi_matches_kernel() {
    let Some(declared) = std::env::var_os("GREYWALL_TEST_LANDLOCK_ABI") else {
        eprintln!(
            "note: GREYWALL_TEST_LANDLOCK_ABI is not set; the kernel has Landlock ABI {}",
            kernel().landlock_abi
        );
        return;
    };
    let declared: u32 = declared.to_string_lossy().parse().unwrap();
    assert_eq!(
        declared,
        kernel().landlock_abi,
        "GREYWALL_TEST_LANDLOCK_ABI"
    );
}

/// The probe's own contract: it reports errno names and works bare.
#[test]
fn probe_reports_errno_names() {
    let s = Scratch::new();
    let ops: Vec<String> = [
        "read",
        "/nonexistent/greywall",
        "create",
        "/proc/version",
        "nnp",
    ]
    .iter()
    .map(|w| w.to_string())
    .collect();
    let lines = s.run(Mode::Bare, &[], &ops).unwrap();
    assert_eq!(
        lines,
        [
            "read /nonexistent/greywall ENOENT".to_string(),
            "create /proc/version EEXIST".to_string(),
            format!("nnp - {}", status_field("NoNewPrivs")),
        ]
    );
    let out = Command::new(PROBE).arg("no-such-op").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
