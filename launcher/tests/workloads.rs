//! Real tools at work inside `greywall exec --cached`, on both backends: what an agent does in
//! a repository (git, python, node, a cargo build) works where the policy allows it, the same
//! way through the native launcher and through bwrap, and the sandbox still refuses what it
//! refuses. `.ci/unprivileged.sh` runs this as a normal user too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const GREYWALL: &str = env!("CARGO_BIN_EXE_greywall");
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// The workspace writable, everything else as the built-in default policy has it.
const POLICY: &str = r#"{"filesystem": {"allowWrite": ["."]}}"#;

/// A repository (made outside the sandbox, as a user's is) in a scratch home, outside /tmp.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        Repo::new_in(Path::new(env!("CARGO_TARGET_TMPDIR")))
    }

    fn new_in(base: &Path) -> Repo {
        let dir = tempfile::tempdir_in(base).unwrap();
        for d in ["home", "run", "ws"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        std::fs::set_permissions(
            dir.path().join("run"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let r = Repo { dir };
        std::fs::write(r.ws().join("greywall.json"), POLICY).unwrap();
        std::fs::write(r.ws().join("README"), "hello\n").unwrap();
        let git = |args: &[&str]| {
            let o = Command::new("git")
                .args(args)
                .current_dir(r.ws())
                .env("HOME", r.dir.path().join("home"))
                .output()
                .unwrap();
            assert!(o.status.success(), "git {args:?}: {}", stderr(&o));
        };
        git(&["init", "-q"]);
        git(&["add", "."]);
        git(&[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-qm",
            "first",
        ]);
        r
    }

    fn ws(&self) -> PathBuf {
        self.dir.path().join("ws")
    }

    /// `greywall exec --cached [--backend bwrap] -- sh -c SCRIPT` in the workspace.
    fn sh(&self, backend: &str, script: &str, env: &[(&str, &Path)]) -> Output {
        let mut cmd = Command::new(GREYWALL);
        cmd.args([
            "exec",
            "--cached",
            "--backend",
            backend,
            "--",
            "/bin/sh",
            "-c",
            script,
        ])
        .current_dir(self.ws())
        .env_clear()
        .env("HOME", self.dir.path().join("home"))
        .env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
        .env("PATH", PATH);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn assert_ok(o: &Output, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{what}: {}{}",
        stdout(o),
        stderr(o)
    );
}

/// The backends this machine can run (the native one must; bwrap says so when missing).
fn backends() -> Vec<&'static str> {
    let probe = Repo::new();
    if !common::launcher_runs(&probe.sh("native", "true", &[])) {
        return Vec::new();
    }
    let mut b = vec!["native"];
    if common::bwrap_installed() {
        b.push("bwrap");
    } else {
        common::skip("bwrap is not installed: only the native backend runs");
    }
    b
}

/// Whether `tool` is on PATH for this user (a missing tool is said, not failed: these tests
/// are about the sandbox, not the machine's toolset).
fn tool(tool: &str) -> bool {
    let found = Command::new("/bin/sh")
        .args(["-c", &format!("command -v {tool}")])
        .env("PATH", PATH)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIP: {tool} is not installed for this user");
    }
    found
}

#[test]
fn git_edit_commit_branch_and_log_work_and_hooks_stay_refused() {
    if !tool("git") {
        return;
    }
    for backend in backends() {
        let r = Repo::new();
        let o = r.sh(
            backend,
            "set -e; echo more >> README; git status --short; git add README; \
             git -c user.name=t -c user.email=t@example.invalid commit -qm second; \
             git switch -qc topic; echo new > NEW; git add NEW; \
             git -c user.name=t -c user.email=t@example.invalid commit -qm third; \
             git log --oneline | wc -l; git diff --stat HEAD~1 | tail -n 1; \
             git stash list | wc -l",
            &[],
        );
        assert_ok(&o, backend);
        let out = stdout(&o);
        let lines: Vec<&str> = out.lines().map(str::trim).collect();
        assert_eq!(lines[0], "M README", "{backend}: {out}");
        assert_eq!(lines[1], "3", "{backend}: {out}");
        assert!(lines[2].contains("1 file changed"), "{backend}: {out}");
        // A hook cannot be planted, and the repository's config cannot be rewritten.
        let o = r.sh(
            backend,
            "echo 'echo pwned' > .git/hooks/pre-commit; git config core.hooksPath /tmp/x",
            &[],
        );
        assert_ne!(o.status.code(), Some(0), "{backend}");
        assert!(!r.ws().join(".git/hooks/pre-commit").exists(), "{backend}");
        let config = std::fs::read_to_string(r.ws().join(".git/config")).unwrap();
        assert!(!config.contains("hooksPath"), "{backend}: {config}");
    }
}

#[test]
fn python_writes_files_uses_tmp_subprocesses_and_a_venv() {
    if !tool("python3") {
        return;
    }
    let script = "import os, subprocess, sys, tempfile\n\
                  open('out.txt', 'w').write('from python\\n')\n\
                  with tempfile.NamedTemporaryFile(dir='/tmp') as t:\n\
                  \x20   t.write(b'x'); t.flush(); print('tmp', os.path.getsize(t.name))\n\
                  print(subprocess.run(['cat', 'out.txt'], capture_output=True, text=True).stdout.strip())\n\
                  try:\n\
                  \x20   open(os.path.expanduser('~/.bashrc'), 'a')\n\
                  \x20   print('bashrc writable')\n\
                  except OSError as e:\n\
                  \x20   print('bashrc refused')\n";
    for backend in backends() {
        let r = Repo::new();
        std::fs::write(r.ws().join("work.py"), script).unwrap();
        let o = r.sh(
            backend,
            "python3 work.py && python3 -m venv --without-pip .venv && \
             .venv/bin/python -c 'import sys; print(sys.prefix != sys.base_prefix)'",
            &[],
        );
        assert_ok(&o, backend);
        assert_eq!(
            stdout(&o),
            "tmp 1\nfrom python\nbashrc refused\nTrue\n",
            "{backend}"
        );
        assert_eq!(
            std::fs::read_to_string(r.ws().join("out.txt")).unwrap(),
            "from python\n"
        );
    }
}

#[test]
fn node_writes_files_spawns_and_is_refused_outside() {
    if !tool("node") {
        return;
    }
    let script = "const fs = require('fs'), cp = require('child_process'), os = require('os');\n\
                  fs.writeFileSync('out.json', JSON.stringify({ok: true}));\n\
                  fs.writeFileSync(os.tmpdir() + '/scratch', 'x');\n\
                  console.log(cp.execFileSync('cat', ['out.json']).toString());\n\
                  try { fs.writeFileSync('/etc/greywall-test', 'x'); console.log('etc writable'); }\n\
                  catch (e) { console.log('etc refused ' + e.code); }\n\
                  try { fs.writeFileSync(os.homedir() + '/planted', 'x'); console.log('home writable'); }\n\
                  catch (e) { console.log('home refused ' + e.code); }\n";
    for backend in backends() {
        let r = Repo::new();
        std::fs::write(r.ws().join("work.js"), script).unwrap();
        let o = r.sh(backend, "node work.js", &[]);
        assert_ok(&o, backend);
        let out = stdout(&o);
        assert!(out.starts_with("{\"ok\":true}\n"), "{backend}: {out}");
        assert!(out.contains("etc refused E"), "{backend}: {out}");
        assert!(!Path::new("/etc/greywall-test").exists());
        // The home folder is the user's own to write without a sandbox, as root or not.
        assert!(out.contains("home refused E"), "{backend}: {out}");
        assert!(!r.dir.path().join("home/planted").exists(), "{backend}");
    }
}

/// The Rust toolchain this test process was built with, when this user can run it: its
/// `cargo` and `rustc`, used directly (no rustup proxy, which would want its home writable).
fn toolchain() -> Option<(PathBuf, PathBuf)> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(stdout(&o).trim()))?;
    let (cargo, rustc) = (sysroot.join("bin/cargo"), sysroot.join("bin/rustc"));
    let runs = Command::new(&rustc)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    (runs && cargo.is_file()).then_some((cargo, rustc))
}

#[test]
fn cargo_builds_and_runs_a_crate_offline() {
    let Some((cargo, rustc)) = toolchain() else {
        eprintln!("SKIP: no Rust toolchain this user can run");
        return;
    };
    for backend in backends() {
        // Not below this repository: cargo reads the configuration of every folder above the
        // crate, and this repository's (target/tmp is in it) is not the sandbox's to read.
        let r = Repo::new_in(Path::new("/var/tmp"));
        let krate = r.ws().join("hello");
        std::fs::create_dir_all(krate.join("src")).unwrap();
        std::fs::write(
            krate.join("Cargo.toml"),
            "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .unwrap();
        std::fs::write(
            krate.join("src/main.rs"),
            "fn main() { println!(\"built in the sandbox\"); }\n",
        )
        .unwrap();
        // The toolchain lives under a home the default policy does not show (here root's).
        let sysroot = rustc.parent().and_then(Path::parent).unwrap();
        std::fs::write(
            r.ws().join("greywall.json"),
            format!(
                r#"{{"filesystem": {{"allowWrite": ["."], "allowRead": [{:?}]}}}}"#,
                sysroot.display().to_string()
            ),
        )
        .unwrap();
        let cargo_home = r.ws().join(".cargo-home");
        let o = r.sh(
            backend,
            "cd hello && \"$CARGO\" build --offline -q && ./target/debug/hello",
            &[
                ("CARGO", &cargo),
                ("RUSTC", &rustc),
                ("CARGO_HOME", &cargo_home),
            ],
        );
        assert_ok(&o, backend);
        assert_eq!(stdout(&o), "built in the sandbox\n", "{backend}");
    }
}
