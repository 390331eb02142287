//! `greywall explain`: the decision, the deciding rule with its position and `extends` chain,
//! `--json`, and the exit status (0 allowed, 1 denied, 2 usage or policy errors), run as a
//! user would run it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const GREYWALL: &str = env!("CARGO_BIN_EXE_greywall");

struct Scratch {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("home")).unwrap();
        std::fs::create_dir_all(root.join("ws/src")).unwrap();
        Scratch { _dir: dir, root }
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    fn ws(&self) -> PathBuf {
        self.root.join("ws")
    }

    fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    fn explain(&self, args: &[&str]) -> Output {
        Command::new(GREYWALL)
            .arg("explain")
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.home())
            .env("NO_COLOR", "1")
            .current_dir(self.ws())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn status(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

const POLICY: &str = "{\n  \"filesystem\": {\n    \"allowWrite\": [\".\"],\n    \"denyWrite\": [\"**/*.key\"]\n  },\n  \"command\": {\"deny\": [\"git push\"]}\n}\n";

#[test]
fn allowed_write_names_the_rule_with_a_caret() {
    let s = Scratch::new();
    let policy = s.write("policy.json", POLICY);
    let o = s.explain(&["-s", &p(&policy), "write", "src/main.rs"]);
    status(&o, 0);
    let expected = format!(
        "\
allowed: write {ws}/src/main.rs
 --> {policy}:3:20
  |
3 |     \"allowWrite\": [\".\"],
  |                    ^^^ filesystem.allowWrite \".\"
  |
  = note: allowWrite covers {ws}/src/main.rs
",
        ws = p(&s.ws()),
        policy = p(&policy)
    );
    assert_eq!(stdout(&o), expected);
}

#[test]
fn denials_exit_1_and_name_the_rule() {
    let s = Scratch::new();
    let policy = s.write("policy.json", POLICY);
    let o = s.explain(&["-s", &p(&policy), "write", "deploy.key"]);
    status(&o, 1);
    let out = stdout(&o);
    assert!(out.starts_with("denied: write "), "{out}");
    assert!(out.contains(&format!("--> {}:4:19", p(&policy))), "{out}");
    assert!(out.contains("filesystem.denyWrite \"./**/*.key\""), "{out}");

    let o = s.explain(&["-s", &p(&policy), "write", ".git/hooks/pre-commit"]);
    status(&o, 1);
    let out = stdout(&o);
    assert!(
        out.contains(" --> built-in protection \".git/hooks\"\n"),
        "{out}"
    );
    assert!(out.contains("it runs code later"), "{out}");

    // Several targets: one block each; any denial makes the status 1.
    let o = s.explain(&["-s", &p(&policy), "write", "src/a.rs", "../elsewhere"]);
    status(&o, 1);
    let out = stdout(&o);
    assert!(out.starts_with("allowed: write "), "{out}");
    assert!(out.contains("\n\ndenied: write "), "{out}");
    assert!(out.contains("writes are denied by default"), "{out}");
}

#[test]
fn symlinks_are_followed_as_the_kernel_does() {
    let s = Scratch::new();
    let policy = s.write("policy.json", POLICY);
    std::fs::create_dir_all(s.root.join("elsewhere")).unwrap();
    std::os::unix::fs::symlink(s.root.join("elsewhere"), s.ws().join("out")).unwrap();
    // Lexically inside the workspace; really outside it.
    let o = s.explain(&["-s", &p(&policy), "write", "out/x"]);
    status(&o, 1);
    let out = stdout(&o);
    let real = p(&s.root.join("elsewhere/x"));
    assert!(out.starts_with(&format!("denied: write {real}\n")), "{out}");
    assert!(
        out.contains(&format!(
            "{}/out/x is {real}, with symlinks resolved",
            p(&s.ws())
        )),
        "{out}"
    );
    let o = s.explain(&["-s", &p(&policy), "--json", "write", "out/x"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["decisions"][0]["path"], real);
    assert_eq!(v["decisions"][0]["target"], "out/x");
}

#[test]
fn reads_under_the_default_policy() {
    let s = Scratch::new();
    // No greywall.json anywhere: the built-in default (defaultDenyRead).
    let o = s.explain(&["read", "/etc/passwd", "~/.ssh/id_rsa"]);
    status(&o, 1);
    let out = stdout(&o);
    assert!(out.starts_with("allowed: read /etc/passwd\n"), "{out}");
    assert!(out.contains("built-in readable system path /etc"), "{out}");
    assert!(
        out.contains(&format!("denied: read {}/.ssh/id_rsa", p(&s.home()))),
        "{out}"
    );
    assert!(out.contains("--> template:default:"), "{out}");
}

#[test]
fn a_project_file_is_discovered() {
    let s = Scratch::new();
    s.write(
        "ws/greywall.json",
        r#"{"filesystem":{"defaultDenyRead":false}}"#,
    );
    let o = s.explain(&["read", "~/.aws/credentials"]);
    status(&o, 0);
    assert!(
        stdout(&o).contains("/ws/greywall.json:1:34\n"),
        "{}",
        stdout(&o)
    );
    // The policy file itself is never writable.
    let o = s.explain(&["write", "greywall.json"]);
    status(&o, 1);
}

#[test]
fn the_extends_chain_is_shown() {
    let s = Scratch::new();
    s.write(
        "policies/base.json",
        "{\n  \"filesystem\": {\"denyRead\": [\"~/.aws\"], \"defaultDenyRead\": false}\n}\n",
    );
    let child = s.write(
        "policies/child.json",
        "{\n  \"extends\": \"./base.json\",\n  \"filesystem\": {\"allowWrite\": [\"out\"]}\n}\n",
    );
    let base = s.root.join("policies/base.json");
    let o = s.explain(&["-s", &p(&child), "read", "~/.aws/config"]);
    status(&o, 1);
    let out = stdout(&o);
    assert!(out.contains(&format!("--> {}:2:31", p(&base))), "{out}");
    assert!(out.contains(&format!("::: {}:2:14", p(&child))), "{out}");
    assert!(out.contains("brought in by this `extends`"), "{out}");

    let o = s.explain(&["-s", &p(&child), "--json", "read", "~/.aws/config"]);
    status(&o, 1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = &v["decisions"][0];
    assert_eq!(d["operation"], "read");
    assert_eq!(d["target"], "~/.aws/config");
    assert_eq!(d["path"], format!("{}/.aws/config", p(&s.home())));
    assert_eq!(d["allowed"], false);
    assert_eq!(d["rule"]["kind"], "deny-read");
    assert_eq!(d["rule"]["builtin"], false);
    assert_eq!(d["rule"]["text"], "filesystem.denyRead \"~/.aws\"");
    assert_eq!(d["rule"]["origin"], format!("{}:2:31", p(&base)));
    assert_eq!(
        d["rule"]["extends"],
        serde_json::json!([format!("{}:2:14", p(&child))])
    );
    assert_eq!(v["policy"], format!("{} (--settings)", p(&child)));
}

#[test]
fn templates_by_name() {
    let s = Scratch::new();
    let o = s.explain(&["-s", "code", "--json", "read", "~/.ssh/id_ed25519", "src"]);
    status(&o, 1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["policy"], "built-in template `code`");
    let d = &v["decisions"];
    assert_eq!(d[0]["allowed"], false);
    assert!(
        d[0]["rule"]["origin"]
            .as_str()
            .unwrap()
            .starts_with("template:code:"),
        "{v}"
    );
    assert_eq!(d[1]["allowed"], true);
}

#[test]
fn gw_policies_and_profiles() {
    let s = Scratch::new();
    let policy = s.write(
        "policy.gw",
        "filesystem {\n    write .\n}\non macos {\n    filesystem {\n        write ~/mac\n    }\n}\non linux {\n    filesystem {\n        write ~/lin\n    }\n}\nprofile ci {\n    network {\n        allow ghcr.io\n    }\n}\n",
    );
    let o = s.explain(&["-s", &p(&policy), "connect", "ghcr.io:443"]);
    status(&o, 1);
    assert!(stdout(&o).contains("no network rules"), "{}", stdout(&o));
    let o = s.explain(&[
        "-s",
        &p(&policy),
        "--profile",
        "ci",
        "connect",
        "ghcr.io:443",
    ]);
    status(&o, 0);
    assert!(
        stdout(&o).contains(&format!("--> {}:16:15", p(&policy))),
        "{}",
        stdout(&o)
    );
    let o = s.explain(&["-s", &p(&policy), "write", "src/x"]);
    status(&o, 0);
    assert!(
        stdout(&o).contains(&format!("--> {}:2:11", p(&policy))),
        "{}",
        stdout(&o)
    );
    // Only this platform's block applies.
    let o = s.explain(&["-s", &p(&policy), "write", "~/lin/x", "~/mac/x"]);
    status(&o, 1);
    let out = stdout(&o);
    assert!(out.starts_with("allowed: write "), "{out}");
    assert!(out.contains(&format!("--> {}:11:15", p(&policy))), "{out}");
    assert!(out.contains("\n\ndenied: write "), "{out}");
    let o = s.explain(&["-s", &p(&policy), "--profile", "nope", "write", "src/x"]);
    status(&o, 2);
    assert!(
        stderr(&o).contains("no profile named `nope`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn commands() {
    let s = Scratch::new();
    let policy = s.write("policy.json", POLICY);
    let o = s.explain(&["-s", &p(&policy), "exec", "git", "push", "origin", "main"]);
    status(&o, 1);
    let out = stdout(&o);
    assert!(
        out.starts_with("denied: exec git push origin main\n"),
        "{out}"
    );
    assert!(out.contains("command.deny \"git push\""), "{out}");
    // One argument with blanks is a command line, checked command by command.
    let o = s.explain(&["-s", &p(&policy), "exec", "cargo build && git push"]);
    status(&o, 1);
    assert!(stdout(&o).contains("the shell script runs `git push`"));
    let o = s.explain(&["-s", &p(&policy), "exec", "git", "status"]);
    status(&o, 0);
    // Built-in denied commands.
    let o = s.explain(&[
        "-s",
        &p(&policy),
        "exec",
        "--",
        "/sbin/shutdown",
        "-h",
        "now",
    ]);
    status(&o, 1);
    assert!(
        stdout(&o).contains("built-in denied command \"shutdown\""),
        "{}",
        stdout(&o)
    );
}

#[test]
fn connections() {
    let s = Scratch::new();
    let isolated = s.write("isolated.json", "{}");
    let o = s.explain(&["-s", &p(&isolated), "connect", "github.com:443"]);
    status(&o, 1);
    assert!(stdout(&o).contains("no network rules"), "{}", stdout(&o));
    let filtered = s.write(
        "filtered.json",
        r#"{"network":{"allowedDomains":["github.com"],"deniedDomains":["*.evil.example"]}}"#,
    );
    let o = s.explain(&["-s", &p(&filtered), "connect", "github.com:22"]);
    status(&o, 0);
    assert!(
        stdout(&o).contains("network.allowedDomains \"github.com\""),
        "{}",
        stdout(&o)
    );
    let o = s.explain(&[
        "-s",
        &p(&filtered),
        "--json",
        "connect",
        "a.evil.example:443",
        "[::1]:80",
    ]);
    status(&o, 1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["decisions"][0]["rule"]["kind"], "denied-domain");
    assert_eq!(v["decisions"][1]["host"], "::1");
    assert_eq!(v["decisions"][1]["port"], 80);
    assert_eq!(v["decisions"][1]["allowed"], false);
}

#[test]
fn usage_and_policy_errors_exit_2() {
    let s = Scratch::new();
    for args in [
        &["--nope", "read", "x"][..],
        &["read"],
        &["frobnicate", "x"],
        &["connect", "github.com"],
        &["-s", "/nonexistent/policy.json", "read", "x"],
    ] {
        let o = s.explain(args);
        status(&o, 2);
        assert!(o.stdout.is_empty(), "{args:?}: {}", stdout(&o));
        assert!(!stderr(&o).is_empty(), "{args:?}");
    }
    let broken = s.write(
        "broken.json",
        "{\n  \"filesystem\": {\"allowWrite\": [\".\"]\n",
    );
    let o = s.explain(&["-s", &p(&broken), "read", "x"]);
    status(&o, 2);
    assert!(stderr(&o).contains("error[E101]"), "{}", stderr(&o));
    let unknown = s.write("unknown.json", r#"{"filesystem":{"allowWrites":["."]}}"#);
    let o = s.explain(&["-s", &p(&unknown), "read", "x"]);
    status(&o, 2);
    assert!(stderr(&o).contains("allowWrite"), "{}", stderr(&o));
}
