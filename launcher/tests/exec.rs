//! End-to-end tests of `greywall compile` and `greywall exec`: the artifact cache (freshness,
//! staleness, tampering, file modes), Greywall's command-line forms and the launcher's exit
//! codes. Enforcement itself is covered by `apply.rs` and `conformance.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch workspace with its own HOME and cache, outside /tmp (the sandbox's /tmp is
/// private).
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new(policy: &str) -> Self {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        std::fs::write(dir.path().join("work/greywall.json"), policy).unwrap();
        Scratch { dir }
    }
    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }
    fn cache(&self) -> PathBuf {
        self.dir.path().join("home/.cache/greywall")
    }
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_greywall"))
            .args(args)
            .current_dir(self.work())
            .env_clear()
            .env("HOME", self.dir.path().join("home"))
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .output()
            .unwrap()
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const WORKSPACE: &str = r#"{"filesystem": {"allowWrite": ["."]}}"#;

/// The launcher needs user namespaces and Landlock; without them these tests cannot say
/// anything, and CI (GREYWALL_REQUIRE_KERNEL=1) must not let that pass.
fn kernel_ok() -> bool {
    common::launcher_runs(&Scratch::new(WORKSPACE).run(&["exec", "--", "true"]))
}

/// [`kernel_ok`], and bwrap installed (else a loud skip).
fn bwrap_ok() -> bool {
    if !kernel_ok() {
        return false;
    }
    if !common::bwrap_installed() {
        common::skip("bwrap is not installed");
        return false;
    }
    true
}

#[test]
fn exit_codes_and_forms() {
    if !kernel_ok() {
        return;
    }
    let s = Scratch::new(WORKSPACE);
    assert_eq!(code(&s.run(&["--", "sh", "-c", "exit 7"])), 7);
    assert_eq!(code(&s.run(&["-c", "exit 9"])), 9);
    assert_eq!(code(&s.run(&["exec", "--cached", "--", "true"])), 0);
    assert_eq!(code(&s.run(&["exec", "true"])), 0, "exec without -- works");
    let nf = s.run(&["--", "no-such-command-xyz"]);
    assert_eq!(code(&nf), 127);
    assert!(stderr(&nf).contains("command not found"), "{}", stderr(&nf));
    std::fs::write(s.work().join("script.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(
        s.work().join("script.sh"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert_eq!(code(&s.run(&["--", "./script.sh"])), 126, "not executable");
    // A policy error is the launcher's own failure.
    let bad = Scratch::new(r#"{"filesystem": {"allowWrit": ["."]}}"#);
    let o = bad.run(&["--", "true"]);
    assert_eq!(code(&o), 125);
    assert!(stderr(&o).contains("error[E200]"), "{}", stderr(&o));
    // A blocked command never starts.
    let o = s.run(&["--", "shutdown", "-h", "now"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("blocked"), "{}", stderr(&o));
    // Shell strings are checked command by command, quotes respected (as Greywall did).
    let o = s.run(&["-c", "echo hi && shutdown -h now"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stdout(&o).is_empty(), "nothing ran: {}", stdout(&o));
    assert_eq!(code(&s.run(&["-c", "echo 'shutdown -h now'"])), 0);
    assert_eq!(
        code(&s.run(&["--", "bash", "-c", "true; sh -c 'reboot'"])),
        1
    );
    // Greywall's environment marker.
    assert_eq!(stdout(&s.run(&["-c", "echo $GREYWALL_SANDBOX"])), "1\n");
}

/// The command check sees through wrappers, assignments and `dd`'s operands, on the
/// launcher's own argv and in `-c` scripts alike; it runs before the sandbox exists, so the
/// refusals hold on any kernel.
#[test]
fn command_rules_look_through_wrappers_and_assignments() {
    let s =
        Scratch::new(r#"{"filesystem": {"allowWrite": ["."]}, "command": {"deny": ["git push"]}}"#);
    let blocked = |args: &[&str], prefix: &str| {
        let o = s.run(args);
        assert_eq!(code(&o), 1, "{args:?}: {}", stderr(&o));
        // One line says so (a first compile may print notes before it).
        let err = stderr(&o);
        let line = err.lines().last().unwrap_or_default();
        assert!(
            line.starts_with("greywall: command blocked by policy: \"")
                && line.ends_with(&format!("\" matches \"{prefix}\""))
                && err.matches("blocked").count() == 1,
            "{args:?}: {err}"
        );
        assert!(stdout(&o).is_empty(), "{args:?}: nothing ran");
    };
    blocked(&["-c", "X=1 git push origin main"], "git push");
    blocked(&["--", "env", "git", "push"], "git push");
    blocked(
        &[
            "--", "env", "-i", "A=b", "nice", "-n", "5", "git", "-C", ".", "push",
        ],
        "git push",
    );
    blocked(&["-c", "echo hi\n(git push)"], "git push");
    blocked(&["-c", "echo \"$(git push)\""], "git push");
    blocked(&["-c", "dd if=/dev/zero of=x bs=1 count=1"], "dd if=");
    blocked(&["--", "dd", "of=x", "if=/dev/zero", "count=1"], "dd of=");
    assert!(!s.work().join("x").exists(), "dd never ran");
    if !kernel_ok() {
        return;
    }
    // Ordinary commands, wrapped or not, still run.
    let o = s.run(&["-c", "X=1 env Y=2 sh -c 'echo $X$Y' && echo git push"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "12\ngit push\n");
    let o = s.run(&[
        "--", "env", "-i", "nice", "-n", "1", "timeout", "5", "echo", "ok",
    ]);
    assert_eq!(
        (code(&o), stdout(&o).as_str()),
        (0, "ok\n"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn cache_hits_recompiles_on_change_and_never_runs_a_tampered_plan() {
    if !kernel_ok() {
        return;
    }
    let s = Scratch::new(WORKSPACE);
    let first = s.run(&["--", "true"]);
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    assert!(
        stderr(&first).contains("note:"),
        "a miss compiles and reports notes"
    );
    let second = s.run(&["--", "true"]);
    assert_eq!(code(&second), 0);
    assert!(
        stderr(&second).is_empty(),
        "a hit is silent: {}",
        stderr(&second)
    );

    // Cache directory and file modes.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&s.cache()), 0o700);
    for dir in ["plans", "index"] {
        for e in std::fs::read_dir(s.cache().join(dir)).unwrap() {
            assert_eq!(mode(&e.unwrap().path()), 0o600);
        }
    }

    // Editing the policy makes the plan stale: the new rule applies at once.
    let probe = "(echo > \"sub/new.$$\") 2>/dev/null && echo written || echo refused";
    std::fs::create_dir_all(s.work().join("sub")).unwrap();
    std::fs::write(
        s.work().join("greywall.json"),
        r#"{"filesystem": {"allowWrite": ["."], "denyWrite": ["sub"]}}"#,
    )
    .unwrap();
    let o = s.run(&["-c", probe]);
    assert_eq!(stdout(&o), "refused\n", "{}", stderr(&o));
    std::fs::write(s.work().join("greywall.json"), WORKSPACE).unwrap();
    assert_eq!(stdout(&s.run(&["-c", probe])), "written\n");

    // A tampered plan is not run: it is recompiled.
    let plans = s.cache().join("plans");
    for e in std::fs::read_dir(&plans).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "plan") {
            let mut b = std::fs::read(&p).unwrap();
            let n = b.len();
            b[n / 2] ^= 0xff;
            std::fs::write(&p, b).unwrap();
        }
    }
    let o = s.run(&["--", "true"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("note:"),
        "tampered plan recompiled: {}",
        stderr(&o)
    );
}

/// The bwrap artifacts are checked against the plan they are made from: a cut-short argument
/// vector (what a crash can leave, since the cache is not flushed to disk) or inner plan is
/// compiled again, never handed to bwrap.
#[test]
fn damaged_bwrap_artifacts_are_compiled_again() {
    if !bwrap_ok() {
        return;
    }
    let s = Scratch::new(WORKSPACE);
    let run = || s.run(&["exec", "--cached", "--backend", "bwrap", "--", "true"]);
    let o = run();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run();
    assert!(stderr(&o).is_empty(), "a hit: {}", stderr(&o));
    let plans = s.cache().join("plans");
    let with_ext = |ext: &str| {
        std::fs::read_dir(&plans)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(ext))
            .unwrap()
    };
    for damaged in [with_ext(".bwrap"), with_ext(".inner.plan")] {
        let whole = std::fs::read(&damaged).unwrap();
        // The first arguments only: without the mounts that hide and protect.
        std::fs::write(&damaged, &whole[..whole.len() / 3]).unwrap();
        let o = run();
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(
            stderr(&o).contains("note:"),
            "{} compiled again: {}",
            damaged.display(),
            stderr(&o)
        );
        assert_eq!(std::fs::read(&damaged).unwrap(), whole, "rewritten whole");
    }
}

/// The index's guards: a new entry in the workspace or in `~` that the plan does not depend
/// on keeps the cached plan; a protected file appearing replaces it, and is protected.
#[test]
fn unrelated_entries_keep_the_plan_and_protected_ones_replace_it() {
    if !kernel_ok() {
        return;
    }
    let s = Scratch::new(WORKSPACE);
    // A folder changed within the last second guards nothing (file times are coarse).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let first = s.run(&["--", "true"]);
    assert!(stderr(&first).contains("note:"), "{}", stderr(&first));
    std::fs::write(s.work().join("notes.txt"), "x").unwrap();
    std::fs::write(s.dir.path().join("home/.bash_history"), "x").unwrap();
    let o = s.run(&["--", "true"]);
    assert_eq!(code(&o), 0);
    assert!(
        stderr(&o).is_empty(),
        "an unrelated entry made a recompile: {}",
        stderr(&o)
    );
    std::fs::write(s.work().join(".mcp.json"), "{}").unwrap();
    let o = s.run(&[
        "-c",
        "(echo x >> .mcp.json) 2>/dev/null && echo written || echo refused",
    ]);
    assert!(stderr(&o).contains("note:"), "recompiled: {}", stderr(&o));
    assert_eq!(stdout(&o), "refused\n");
    assert_eq!(
        std::fs::read_to_string(s.work().join(".mcp.json")).unwrap(),
        "{}"
    );
}

#[test]
fn a_project_file_appearing_nearer_is_picked_up() {
    if !kernel_ok() {
        return;
    }
    let s = Scratch::new(WORKSPACE);
    let sub = s.work().join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_greywall"))
            .args(args)
            .current_dir(&sub)
            .env_clear()
            .env("HOME", s.dir.path().join("home"))
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap()
    };
    let probe = "(echo > \"new.$$\") 2>/dev/null && echo written || echo refused";
    assert_eq!(
        stdout(&run(&["-c", probe])),
        "written\n",
        "the parent's policy allows the workspace"
    );
    // Discovery looked here first and found nothing; a file appearing here must win.
    std::fs::write(
        sub.join("greywall.json"),
        r#"{"filesystem": {"allowWrite": ["/nonexistent"]}}"#,
    )
    .unwrap();
    assert_eq!(stdout(&run(&["-c", probe])), "refused\n");
}

#[test]
fn the_sandbox_cannot_rewrite_its_policy_or_cache() {
    if !kernel_ok() {
        return;
    }
    let s = Scratch::new(WORKSPACE);
    assert_eq!(code(&s.run(&["--", "true"])), 0);
    let o = s.run(&["-c", "echo '{}' > greywall.json; echo x > \"$HOME/.cache/greywall/index/x\"; ls \"$HOME/.cache/greywall/plans\" >/dev/null"]);
    let err = stderr(&o);
    assert!(
        err.contains("greywall.json") && err.contains("Read-only file system")
            || err.contains("Permission denied"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(s.work().join("greywall.json")).unwrap(),
        WORKSPACE
    );
    assert!(!s.cache().join("index/x").exists());
}

#[test]
fn compile_json_names_the_artifacts() {
    if !kernel_ok() {
        return;
    }
    let s = Scratch::new(WORKSPACE);
    let o = s.run(&["compile", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    for k in ["linux_plan", "bwrap_args", "bwrap_inner_plan", "index"] {
        let p = v["artifacts"][k].as_str().unwrap();
        assert!(Path::new(p).is_file(), "{k}: {p}");
        assert!(p.starts_with(s.cache().to_str().unwrap()), "{p}");
    }
    // The compile wrote the entry `exec --cached` uses: the run is a silent hit.
    let run = s.run(&["--", "true"]);
    assert_eq!(code(&run), 0);
    assert!(stderr(&run).is_empty(), "{}", stderr(&run));
    // The bwrap argv is NUL-separated and starts with bwrap options.
    let blob = std::fs::read(v["artifacts"]["bwrap_args"].as_str().unwrap()).unwrap();
    assert!(blob.starts_with(b"--die-with-parent\0"));
    // The macOS profile compiles on any host, into the same cache.
    let mac = s.run(&["compile", "--target", "macos", "--json"]);
    assert_eq!(code(&mac), 0, "{}", stderr(&mac));
    let m: serde_json::Value = serde_json::from_str(&stdout(&mac)).unwrap();
    let sb = m["artifacts"]["seatbelt_profile"].as_str().unwrap();
    assert!(sb.starts_with(s.cache().to_str().unwrap()), "{sb}");
    let text = std::fs::read_to_string(sb).unwrap();
    assert!(text.starts_with(";; greywall-params: "), "{text}");
    assert!(text.contains("(deny default)"));
    // Compiling is deterministic: the same policy gives the same key.
    let again: serde_json::Value =
        serde_json::from_str(&stdout(&s.run(&["compile", "--json"]))).unwrap();
    assert_eq!(v["key"], again["key"]);
}

#[test]
fn both_backends_agree_on_basic_decisions() {
    if !kernel_ok() {
        return;
    }
    if !Path::new("/usr/bin/bwrap").is_file() {
        let msg = "SKIP: bubblewrap is not installed";
        assert!(
            std::env::var_os("GREYWALL_REQUIRE_KERNEL").is_none_or(|v| v != "1"),
            "{msg}"
        );
        eprintln!("{msg}");
        return;
    }
    let s = Scratch::new(WORKSPACE);
    let script = "for p in ./a /etc/x \"$HOME/y\"; do (echo > \"$p\") 2>/dev/null && echo \"$p ok\" || echo \"$p denied\"; done; rm -f ./a";
    let native = s.run(&[
        "exec",
        "--cached",
        "--backend",
        "native",
        "--",
        "sh",
        "-c",
        script,
    ]);
    let bwrap = s.run(&[
        "exec",
        "--cached",
        "--backend",
        "bwrap",
        "--",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(
        stdout(&native),
        "./a ok\n/etc/x denied\n".to_string()
            + &format!("{}/y denied\n", s.dir.path().join("home").display())
    );
    assert_eq!(
        stdout(&native),
        stdout(&bwrap),
        "native: {} bwrap: {}",
        stderr(&native),
        stderr(&bwrap)
    );
}

/// Where user namespaces are powerless (Ubuntu's AppArmor restriction), the launcher executes
/// itself again with `GREYWALL_NO_USERNS=1` and goes on with Landlock and seccomp alone. The
/// variable is what that second run sees; setting it here exercises that path.
#[test]
fn without_user_namespaces_landlock_still_holds_and_says_what_is_lost() {
    if !kernel_ok() {
        return;
    }
    let s = Scratch::new(WORKSPACE);
    let run = |extra: &[(&str, &str)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_greywall"));
        c.args(["-c", "(echo x > /etc/gw-fallback) 2>/dev/null && echo escaped; echo ok > ws.txt && echo wrote; env | grep -c GREYWALL_NO_USERNS"])
            .current_dir(s.work())
            .env_clear()
            .env("HOME", s.dir.path().join("home"))
            .env("PATH", "/usr/bin:/bin")
            .env("GREYWALL_NO_USERNS", "1");
        for (k, v) in extra {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let o = run(&[]);
    assert_eq!(stdout(&o), "wrote\n0\n", "{}", stderr(&o));
    assert!(
        stderr(&o).contains("running with Landlock and seccomp only. Not enforced:"),
        "{}",
        stderr(&o)
    );
    assert!(!Path::new("/etc/gw-fallback").exists());
    let o = run(&[("GREYWALL_REQUIRE", "userns")]);
    assert_eq!(code(&o), 125);
    assert!(stdout(&o).is_empty());
}

/// Every plan gives the sandbox a private `/tmp`: a greywall executable under the host's
/// `/tmp` is bound back in (read-only) for the inner launcher that bwrap runs, so the bwrap
/// backend works from there as the native one does.
#[test]
fn bwrap_backend_runs_a_greywall_under_tmp() {
    if !bwrap_ok() {
        return;
    }
    let s = Scratch::new(WORKSPACE);
    // Deliberately under /tmp: the case this covers.
    let tmp = tempfile::tempdir_in("/tmp").unwrap();
    let exe = tmp.path().join("bin/greywall");
    common::copy_exe(env!("CARGO_BIN_EXE_greywall"), &exe);
    for backend in ["bwrap", "native"] {
        let o = Command::new(&exe)
            .args(["exec", "--cached", "--backend", backend, "-c"])
            .arg(format!("echo {backend} > out.txt && cat out.txt"))
            .current_dir(s.work())
            .env_clear()
            .env("HOME", s.dir.path().join("home"))
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "{backend}: {}", stderr(&o));
        assert_eq!(stdout(&o), format!("{backend}\n"));
    }
}
