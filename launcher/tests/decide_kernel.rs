//! The decision function agrees with the kernel: for a handful of policies, what
//! `greywall_compiler::decide` answers for reading, writing, creating and executing a set of
//! paths is what the probe observes under `greywall exec` (native launcher, and bwrap when it
//! is installed).
//!
//! Each test builds a scratch machine under `CARGO_TARGET_TMPDIR` (not `/tmp`, which the
//! sandbox replaces): a home (`.ssh/id_rsa`, `.aws/credentials`, `.bashrc`, `notes/`,
//! `.cache/`), a git-like workspace (`.git/hooks`, `.git/config`, `.env`, `.vscode`, a
//! `greywall.json`, `*.key` files, a `build/` folder, a program, and a `nested/` folder with
//! protected names of its own and a repository), files outside both, and
//! greywall's cache. The probe runs every operation once without the sandbox, where each must
//! succeed (so that a refusal inside means something), then inside; a refusal is any denial
//! errno, `ENOENT` (a path inside a hidden folder) or `empty` (a file hidden behind
//! `/dev/null`). Every disagreement is reported at once, with the rule `decide` named.
//!
//! Protected files that exist deeper than the working directory (`nested/.bashrc`, a nested
//! repository's `.git/hooks/pre-commit`, `nested/.vscode/settings.json`, `nested/.env`) are in the
//! catalogue: the launcher's supervisor refuses writing them as the policy says. Where the
//! enforcement knowingly differs from the policy (see `docs/explain.md`: `*.sample` git hooks,
//! globs matched at compile time), the catalogue simply has no such path.
//!
//! A machine without user namespaces or Landlock prints `SKIP: …`; with
//! `GREYWALL_REQUIRE_KERNEL=1` that is a failure. `.ci/unprivileged.sh` runs this binary again
//! as a normal user.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use greywall_compiler::decide::{self, Facts, Op};
use greywall_compiler::load::{self, Input};
use greywall_compiler::protections::SYSTEM_READABLE;

const GREYWALL: &str = env!("CARGO_BIN_EXE_greywall");
const PROBE: &str = env!("CARGO_BIN_EXE_greywall-probe");

/// What the probe prints for an operation the sandbox refused.
const REFUSALS: &[&str] = &[
    "EACCES", "EPERM", "EROFS", "EBUSY", "EXDEV", "ENOENT", "empty",
];

use common::{copy_exe, skip, write_file};

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// One probe operation and the decision it stands for.
#[derive(Debug, Clone)]
struct Case {
    /// `read`, `write`, `create` or `exec`.
    probe_op: &'static str,
    /// Relative to the scratch root, or absolute when it starts with `/`.
    path: String,
}

struct Scratch {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let root = dir.path().canonicalize().unwrap();
        if let Some(sys) = SYSTEM_READABLE.iter().find(|p| root.starts_with(p)) {
            panic!(
                "the scratch directory {} is below {sys}, which defaultDenyRead policies may \
                 read: build with a CARGO_TARGET_DIR elsewhere",
                root.display()
            );
        }
        let home = root.join("home");
        let ws = root.join("ws");
        for (rel, text, mode) in [
            ("home/.ssh/id_rsa", "key\n", 0o600),
            ("home/.aws/credentials", "secret\n", 0o600),
            ("home/.bashrc", "# rc\n", 0o644),
            ("home/notes/todo.txt", "todo\n", 0o644),
            ("home/notes/private/diary.txt", "dear diary\n", 0o644),
            ("home/notes/plan.md", "plan\n", 0o644),
            ("home/.cache/blob.bin", "blob\n", 0o644),
            ("home/.cargo/bin/cargo-x", "#!/bin/sh\n", 0o755),
            ("home/.cargo/credentials.toml", "token\n", 0o600),
            ("ws/.git/HEAD", "ref: refs/heads/main\n", 0o644),
            ("ws/.git/config", "[core]\n", 0o644),
            ("ws/.git/hooks/pre-commit", "#!/bin/sh\n", 0o755),
            ("ws/src/main.rs", "fn main() {}\n", 0o644),
            ("ws/.env", "API_KEY=secret\n", 0o644),
            ("ws/.bashrc", "# rc\n", 0o644),
            ("ws/.vscode/settings.json", "{}\n", 0o644),
            ("ws/greywall.json", "{}\n", 0o644),
            ("ws/deploy.key", "key\n", 0o600),
            ("ws/build/out.o", "obj\n", 0o644),
            ("ws/sub/readme.md", "sub\n", 0o644),
            ("ws/nested/.bashrc", "# rc\n", 0o644),
            ("ws/nested/.vscode/settings.json", "{}\n", 0o644),
            ("ws/nested/.git/HEAD", "ref: refs/heads/main\n", 0o644),
            ("ws/nested/.git/hooks/pre-commit", "#!/bin/sh\n", 0o755),
            ("ws/nested/.env", "API_KEY=secret\n", 0o644),
            ("outside.txt", "outside\n", 0o644),
            ("cache/greywall/marker", "m\n", 0o600),
        ] {
            write_file(&root.join(rel), text, mode);
        }
        std::fs::create_dir_all(ws.join(".claude")).unwrap();
        std::fs::set_permissions(root.join("cache"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        std::fs::set_permissions(
            root.join("cache/greywall"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        copy_exe("/bin/true", &ws.join("tool"));
        copy_exe("/bin/true", &home.join("notes/tool"));
        copy_exe("/bin/true", &root.join("outside-tool"));
        // In `~/.local/bin`, which every policy may read and execute.
        copy_exe(PROBE, &home.join(".local/bin/greywall-probe"));
        Scratch { _dir: dir, root }
    }

    fn abs(&self, path: &str) -> String {
        if path.starts_with('/') {
            path.to_string()
        } else {
            s(&self.root.join(path))
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.root.join("home"))
            .env("XDG_CACHE_HOME", self.root.join("cache"))
            .env("XDG_CONFIG_HOME", self.root.join("home/.config"))
            .env("LC_ALL", "C")
            .current_dir(self.root.join("ws"))
            .stdin(Stdio::null());
        cmd
    }

    /// What decide needs to know, as the launcher would gather it here.
    fn facts(&self, policy_file: &Path) -> Facts {
        let mut f = Facts::new(&s(&self.root.join("ws")), &s(&self.root.join("home")));
        f.anchors.xdg_cache = s(&self.root.join("cache"));
        f.anchors.xdg_config = s(&self.root.join("home/.config"));
        f.policy_files = vec![s(policy_file)];
        f
    }

    /// `greywall check` output for a policy.
    fn check(&self, policy: &Path) -> String {
        let out = self
            .command(GREYWALL)
            .args(["check", "-s"])
            .arg(policy)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "greywall check failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs the probe (bare when `backend` is `None`); the result word of each operation.
    fn probe(&self, backend: Option<&str>, policy: &Path, cases: &[Case]) -> Vec<String> {
        let probe = s(&self.root.join("home/.local/bin/greywall-probe"));
        let mut cmd = match backend {
            None => self.command(&probe),
            Some(b) => {
                let mut c = self.command(GREYWALL);
                c.args(["exec", "-s"])
                    .arg(policy)
                    .args(["--backend", b, "--"])
                    .arg(&probe);
                c
            }
        };
        for c in cases {
            cmd.arg(c.probe_op).arg(self.abs(&c.path));
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{} exited with {}\nstdout:\n{stdout}\nstderr:\n{}",
            backend.unwrap_or("the bare probe"),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<String> = stdout
            .lines()
            .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
            .collect();
        assert_eq!(lines.len(), cases.len(), "probe output:\n{stdout}");
        lines
    }
}

/// Whether the machine can run the sandbox with namespaces and Landlock, and which backends.
fn backends(s: &Scratch, policy: &Path) -> Option<Vec<&'static str>> {
    let out = s.check(policy);
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.trim_start().strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    if field("user namespaces") != "available" {
        skip("decide_kernel: user namespaces are unavailable");
        return None;
    }
    if !field("landlock").starts_with("ABI ") {
        skip("decide_kernel: Landlock is unavailable");
        return None;
    }
    let mut b = vec!["native"];
    if field("bwrap").starts_with('/') {
        b.push("bwrap");
    } else {
        skip("decide_kernel: bwrap is not installed in a system directory");
    }
    Some(b)
}

fn cases(list: &[(&'static str, &str)]) -> Vec<Case> {
    list.iter()
        .map(|(op, path)| Case {
            probe_op: op,
            path: path.to_string(),
        })
        .collect()
}

/// The catalogue every policy is checked on.
fn catalogue() -> Vec<Case> {
    cases(&[
        ("read", "ws/src/main.rs"),
        ("read", "ws/.env"),
        ("read", "ws/.git/config"),
        ("read", "ws/.git/hooks/pre-commit"),
        ("read", "ws/deploy.key"),
        ("read", "ws/build/out.o"),
        ("read", "ws/nested/.bashrc"),
        ("read", "ws/nested/.git/hooks/pre-commit"),
        ("read", "ws/nested/.env"),
        ("read", "home/.ssh/id_rsa"),
        ("read", "home/.aws/credentials"),
        ("read", "home/.bashrc"),
        ("read", "home/notes/todo.txt"),
        ("read", "home/notes/private/diary.txt"),
        ("read", "home/.cache/blob.bin"),
        ("read", "outside.txt"),
        ("read", "cache/greywall/marker"),
        ("read", "/etc/passwd"),
        ("read", "home/.cargo/bin/cargo-x"),
        ("read", "home/.cargo/credentials.toml"),
        ("write", "ws/src/main.rs"),
        ("write", "ws/.env"),
        ("write", "ws/.git/config"),
        ("write", "ws/.git/hooks/pre-commit"),
        ("write", "ws/.bashrc"),
        ("write", "ws/.vscode/settings.json"),
        ("write", "ws/greywall.json"),
        ("write", "ws/deploy.key"),
        ("write", "ws/build/out.o"),
        ("write", "ws/sub/readme.md"),
        ("write", "ws/nested/.bashrc"),
        ("write", "ws/nested/.vscode/settings.json"),
        ("write", "ws/nested/.git/hooks/pre-commit"),
        ("write", "ws/nested/.git/HEAD"),
        ("write", "ws/nested/.env"),
        ("write", "home/.bashrc"),
        ("write", "home/notes/todo.txt"),
        ("write", "home/notes/plan.md"),
        ("write", "home/.cache/blob.bin"),
        ("write", "outside.txt"),
        ("write", "cache/greywall/marker"),
        ("write", "/dev/null"),
        ("create", "ws/new.txt"),
        ("create", "ws/src/new.rs"),
        ("create", "ws/new.key"),
        ("create", "ws/sub/new.key"),
        ("create", "ws/.mcp.json"),
        ("create", "ws/sub/.bashrc"),
        ("create", "ws/.env.local"),
        ("create", "ws/sub/.env"),
        ("create", "ws/.git/hooks/post-checkout"),
        ("create", "ws/.claude/commands"),
        ("create", "ws/build/new.o"),
        ("create", "home/new.txt"),
        ("create", "home/notes/new.txt"),
        ("create", "home/.cache/new.bin"),
        ("create", "new.txt"),
        ("create", "cache/greywall/new"),
        ("create", "/tmp/greywall-decide-kernel-new.txt"),
        ("exec", "ws/tool"),
        ("exec", "home/notes/tool"),
        ("exec", "outside-tool"),
    ])
}

/// Runs the catalogue under `policy` and compares the kernel with `decide`.
fn agree(name: &str, policy: &str) {
    let s = Scratch::new();
    let path = s.root.join("policy.json");
    write_file(&path, policy, 0o644);
    let Some(backends) = backends(&s, &path) else {
        return;
    };
    let loaded = load::load(&Input::File(path.clone()));
    let model = loaded
        .policy
        .clone()
        .unwrap_or_else(|| panic!("{name}: {:?}", loaded.diagnostics));
    let facts = s.facts(&path);
    let cases = catalogue();

    let mut failures = String::new();
    // Outside the sandbox every operation works: the refusals below mean something.
    for (c, got) in cases.iter().zip(s.probe(None, &path, &cases)) {
        if got != "ok" {
            let _ = writeln!(
                failures,
                "without the sandbox: {} {}: {got}",
                c.probe_op, c.path
            );
        }
    }
    let mut denied_somewhere = 0;
    for backend in &backends {
        let results = s.probe(Some(backend), &path, &cases);
        for (c, got) in cases.iter().zip(results) {
            let abs = s.abs(&c.path);
            let op = match c.probe_op {
                "read" => Op::Read(abs),
                "write" | "create" => Op::Write(abs),
                "exec" => Op::Exec(vec![abs]),
                other => panic!("unknown probe op {other}"),
            };
            let d = decide::decide(&model, &facts, &op);
            let kernel_allowed = match got.as_str() {
                "ok" => true,
                r if REFUSALS.contains(&r) => false,
                r => {
                    let _ = writeln!(
                        failures,
                        "{backend}: {} {}: unexpected result {r}",
                        c.probe_op, c.path
                    );
                    continue;
                }
            };
            if !kernel_allowed {
                denied_somewhere += 1;
            }
            if kernel_allowed != d.allowed {
                let rule = d.rule.as_ref().map_or("no rule".to_string(), |r| {
                    format!(
                        "{} ({})",
                        r.text,
                        r.origin
                            .map_or("built-in".to_string(), |o| loaded.sources.locate(o))
                    )
                });
                let _ = writeln!(
                    failures,
                    "{backend}: {} {}: the kernel says {got}, decide says {} by {rule}: {}",
                    c.probe_op,
                    c.path,
                    if d.allowed { "allowed" } else { "denied" },
                    d.because
                );
            }
        }
    }
    assert!(
        denied_somewhere > 0,
        "{name}: nothing was refused: the sandbox did not run"
    );
    assert!(failures.is_empty(), "{name}: policy {policy}\n{failures}");
}

#[test]
fn agrees_on_the_default_policy() {
    agree("default", r#"{"filesystem":{"allowWrite":["."]}}"#);
}

#[test]
fn agrees_on_a_code_like_policy() {
    agree(
        "code-like",
        r#"{"filesystem":{"defaultDenyRead":false,"allowWrite":[".","~/.cache"],
            "denyRead":["~/.ssh","~/.aws"],"denyWrite":["**/*.key","build"]}}"#,
    );
}

#[test]
fn agrees_with_allow_read_inside_default_deny_read() {
    agree(
        "allow-read",
        r#"{"filesystem":{"defaultDenyRead":true,"allowWrite":["."],
            "allowRead":["~/notes"],"denyRead":["~/notes/private"]}}"#,
    );
}

#[test]
fn agrees_with_writable_home_folders_and_git_config() {
    agree(
        "notes-writable",
        r#"{"filesystem":{"defaultDenyRead":false,"allowWrite":[".","~/notes"],
            "denyWrite":["~/notes/*.md"],"allowGitConfig":true}}"#,
    );
}

#[test]
fn agrees_on_a_policy_with_nothing_writable() {
    agree(
        "read-only",
        r#"{"filesystem":{"defaultDenyRead":false,"denyRead":["~/.ssh"]}}"#,
    );
}
