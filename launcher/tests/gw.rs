//! End-to-end tests of the `.gw` tools: `greywall test`, `fmt`, `convert`, compiling and
//! discovering `.gw` policies, and environment rules reaching the sandboxed command.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch home, working directory and cache, outside /tmp (the sandbox's /tmp is private).
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        Scratch { dir }
    }
    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }
    fn cache(&self) -> PathBuf {
        self.dir.path().join("home/.cache/greywall")
    }
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.work().join(rel);
        std::fs::write(&p, text).unwrap();
        p
    }
    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_greywall"))
            .args(args)
            .current_dir(self.work())
            .env_clear()
            .env("HOME", self.dir.path().join("home"))
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }
    fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn cache_is_empty(s: &Scratch) -> bool {
    let plans = s.cache().join("plans");
    !plans.exists() || std::fs::read_dir(plans).unwrap().next().is_none()
}

const POLICY: &str = "extends \"code\"\n\nfilesystem {\n    write . except .git/hooks\n}\n\nexpect deny read ~/.ssh/id_rsa\nexpect allow write ./src/main.rs\nexpect deny run \"git push origin main\"\n";

#[test]
fn test_reports_expectations_and_exits_by_outcome() {
    let s = Scratch::new();
    s.write("ok.gw", POLICY);
    let o = s.run(&["test", "ok.gw"]);
    assert_eq!(code(&o), 0, "{}{}", out(&o), err(&o));
    assert!(
        out(&o).contains("3 expectations: 3 passed, 0 failed"),
        "{}",
        out(&o)
    );

    s.write(
        "bad.gw",
        &format!("{POLICY}expect allow read ~/.ssh/id_rsa\n"),
    );
    let o = s.run(&["test", "bad.gw"]);
    assert_eq!(code(&o), 1);
    let e = err(&o);
    assert!(e.contains("error[E615]"), "{e}");
    assert!(e.contains("--> bad.gw:10:1"), "{e}");
    assert!(e.contains("decided by filesystem.denyRead"), "{e}");

    // lint and compile run them too, and compile writes nothing.
    assert_eq!(code(&s.run(&["lint", "bad.gw"])), 1);
    let o = s.run(&["compile", "bad.gw"]);
    assert_eq!(code(&o), 1, "{}", err(&o));
    assert!(err(&o).contains("E615"));
    assert!(cache_is_empty(&s));
}

#[test]
fn compile_accepts_gw_and_refuses_malformed_ones_without_writing() {
    let s = Scratch::new();
    s.write("p.gw", POLICY);
    let o = s.run(&["compile", "p.gw"]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(!cache_is_empty(&s));

    let broken: &[(&str, &str)] = &[
        ("filesystem {\n    read \"~/.ssh\n}\n", "E601"),
        ("filesytem {\n}\n", "E604"),
        ("filesystem {\n    read $nope\n}\n", "E606"),
        ("filesystem {\n    default-deny-read = 1\n}\n", "E607"),
        ("include \"x.gw\"\n", "E608"),
        ("filesystem {\n    read \u{a0}.\n}\n", "E602"),
    ];
    for (text, want) in broken {
        let s = Scratch::new();
        s.write("x.gw", text);
        let o = s.run(&["compile", "x.gw"]);
        assert_eq!(code(&o), 1, "{text:?}: {}", err(&o));
        assert!(
            err(&o).contains(&format!("error[{want}]")),
            "{text:?}: {}",
            err(&o)
        );
        assert!(cache_is_empty(&s), "{text:?} wrote to the cache");
    }
}

#[test]
fn profiles_are_chosen_on_the_command_line() {
    let s = Scratch::new();
    s.write(
        "p.gw",
        "filesystem {\n    write .\n}\nprofile ci {\n    network {\n        allow ghcr.io\n    }\n}\n",
    );
    assert_eq!(code(&s.run(&["compile", "p.gw", "--profile", "ci"])), 0);
    let o = s.run(&["compile", "p.gw", "--profile", "cj"]);
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains("did you mean `ci`?"), "{}", err(&o));
}

#[test]
fn discovery_finds_greywall_gw_and_refuses_two_policies() {
    let s = Scratch::new();
    s.write("greywall.gw", "filesystem {\n    write .\n}\n");
    let o = s.run(&["config", "show"]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(
        out(&o).contains("greywall.gw (project file)"),
        "{}",
        out(&o)
    );
    s.write("greywall.json", "{}");
    let o = s.run(&["compile"]);
    assert_ne!(code(&o), 0);
    assert!(err(&o).contains("E619"), "{}", err(&o));
}

#[test]
fn fmt_formats_in_place_and_check_reports() {
    let s = Scratch::new();
    let p = s.write("p.gw", "filesystem{\n  write .   # here\n\n\n}\n");
    let o = s.run(&["fmt", "--check", "p.gw"]);
    assert_eq!(code(&o), 1);
    assert!(out(&o).contains("p.gw is not formatted"));
    assert_eq!(code(&s.run(&["fmt", "p.gw"])), 0);
    let text = std::fs::read_to_string(&p).unwrap();
    assert_eq!(text, "filesystem {\n    write .  # here\n}\n");
    assert_eq!(code(&s.run(&["fmt", "--check", "p.gw"])), 0);
    s.write("bad.gw", "read \"x\n");
    assert_eq!(code(&s.run(&["fmt", "bad.gw"])), 1);
    assert_eq!(
        std::fs::read_to_string(s.work().join("bad.gw")).unwrap(),
        "read \"x\n"
    );
}

#[test]
fn convert_both_ways() {
    let s = Scratch::new();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let code_json = repo.join("policies/code.json");
    let o = s.run(&["convert", code_json.to_str().unwrap(), "-o", "code.gw"]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let o = s.run(&["convert", "code.gw", "-o", "back.json"]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    // A fixed point: converting the JSON back to .gw gives the same text, and both compile.
    let o = s.run(&["convert", "back.json"]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(
        out(&o),
        std::fs::read_to_string(s.work().join("code.gw")).unwrap()
    );
    for f in ["code.gw", "back.json"] {
        let o = s.run(&["compile", f]);
        assert_eq!(code(&o), 0, "{f}: {}", err(&o));
    }
    assert_eq!(code(&s.run(&["convert", "missing.gw"])), 2);
}

/// Environment rules reach the sandboxed command (and greywall's own edits still hold).
#[test]
fn environment_rules_take_effect() {
    let s = Scratch::new();
    s.write(
        "p.gw",
        "filesystem {\n    write .\n}\nenvironment {\n    drop AWS_*, GITHUB_TOKEN\n    pass AWS_REGION\n    set FOO = \"bar baz\"\n    set TMPDIR = \"/elsewhere\"\n}\n",
    );
    let o = s.run_env(
        &["exec", "-s", "p.gw", "--", "/usr/bin/env"],
        &[
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_REGION", "eu"),
            ("GITHUB_TOKEN", "t"),
            ("OTHER", "o"),
        ],
    );
    if code(&o) != 0 {
        let msg = format!("SKIP: the launcher cannot run here: {}", err(&o));
        assert!(
            std::env::var_os("GREYWALL_REQUIRE_KERNEL").is_none_or(|v| v != "1"),
            "{msg}"
        );
        eprintln!("{msg}");
        return;
    }
    let env = out(&o);
    let has = |line: &str| env.lines().any(|l| l == line);
    assert!(!env.contains("AWS_SECRET_ACCESS_KEY"), "{env}");
    assert!(!env.contains("GITHUB_TOKEN"), "{env}");
    assert!(has("AWS_REGION=eu"), "{env}");
    assert!(has("OTHER=o"), "{env}");
    assert!(has("FOO=bar baz"), "{env}");
    assert!(has("TMPDIR=/tmp"), "greywall's own TMPDIR wins: {env}");
}

/// A plan anchored at `$env.NAME` depends on that variable: the cached launch recompiles when
/// it changes, and never runs the plan made for the old value.
#[test]
fn cached_plans_follow_the_environment_variables_they_use() {
    let s = Scratch::new();
    // Outside the working directory, which the default policy makes writable anyway.
    let a = s.dir.path().join("out-a");
    let b = s.dir.path().join("out-b");
    for d in [&a, &b] {
        std::fs::create_dir_all(d).unwrap();
    }
    s.write(
        "greywall.gw",
        "extends \"default\"\n\nfilesystem {\n    write $env.OUT_DIR\n}\n",
    );
    let touch = |dir: &Path, file: &str| {
        let target = format!("{}/{file}", dir.display());
        s.run_env(
            &["exec", "--cached", "--", "touch", &target],
            &[("OUT_DIR", dir.to_str().unwrap())],
        )
    };
    let o = touch(&a, "one");
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(a.join("one").exists());
    // Same variable, other value: the cached plan for `a` must not be used.
    let o = touch(&b, "two");
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(b.join("two").exists());
    // And `a` is no longer writable under the plan for `b`.
    let o = s.run_env(
        &[
            "exec",
            "--cached",
            "--",
            "touch",
            a.join("three").to_str().unwrap(),
        ],
        &[("OUT_DIR", b.to_str().unwrap())],
    );
    assert_ne!(code(&o), 0, "{}", out(&o));
    assert!(!a.join("three").exists());
}

/// `greywall exec --profile NAME` runs under that profile, and its cached plan is not the one
/// plain `exec` uses.
#[test]
fn exec_runs_under_the_profile_it_names() {
    let s = Scratch::new();
    let out_dir = s.dir.path().join("artifacts");
    std::fs::create_dir_all(&out_dir).unwrap();
    s.write(
        "greywall.gw",
        &format!(
            "extends \"default\"\n\nprofile release {{\n    filesystem {{\n        write \"{}\"\n    }}\n}}\n",
            out_dir.display()
        ),
    );
    let target = out_dir.join("built");
    let target = target.to_str().unwrap();
    // Without the profile the folder is read-only.
    let o = s.run(&["exec", "--cached", "--", "touch", target]);
    assert_ne!(code(&o), 0, "{}", out(&o));
    // With it, writable; twice, the second time from the cache.
    for _ in 0..2 {
        let o = s.run(&[
            "exec",
            "--cached",
            "--profile",
            "release",
            "--",
            "touch",
            target,
        ]);
        assert_eq!(code(&o), 0, "{}", err(&o));
    }
    assert!(out_dir.join("built").exists());
    std::fs::remove_file(out_dir.join("built")).unwrap();
    // And plain exec still has its own plan.
    let o = s.run(&["exec", "--cached", "--", "touch", target]);
    assert_ne!(code(&o), 0, "{}", out(&o));
    // An unknown profile is an error, not the default policy.
    let o = s.run(&["exec", "--cached", "--profile", "relase", "--", "true"]);
    assert_ne!(code(&o), 0);
}

/// `convert -o` onto something that is not a regular file (a pipe here; `/dev/null` or
/// `/dev/stdout` in real use) writes into it rather than renaming a new file over it.
#[test]
fn convert_writes_into_a_pipe_without_replacing_it() {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let s = Scratch::new();
    s.write("p.gw", "filesystem {\n    write .\n}\n");
    let fifo = s.work().join("out.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // A reader first, non-blocking, so that the writer's open does not wait.
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_nonblock())
        .open(&fifo)
        .unwrap();
    let o = s.run(&["convert", "p.gw", "-o", fifo.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let mut got = String::new();
    let _ = reader.read_to_string(&mut got);
    assert!(got.contains("\"allowWrite\""), "{got:?}");
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
}

/// `O_NONBLOCK` on Linux (x86_64 and aarch64).
fn libc_o_nonblock() -> i32 {
    0o4000
}
