//! End-to-end tests of the `greywall` binary's policy tools: exit codes, output formats,
//! discovery and `config show`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A scratch home and working directory, so results do not depend on the machine.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        // Not under /tmp: several templates grant /tmp, which would then cover the fake home.
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::create_dir_all(dir.path().join("work/sub")).unwrap();
        Sandbox { dir }
    }
    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }
    fn run_in(&self, cwd: &Path, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_greywall"))
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .env("HOME", self.home())
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap()
    }
    fn run(&self, args: &[&str]) -> Output {
        self.run_in(&self.work(), args)
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

/// The SARIF 2.1.0 schema, compiled. Its `run.language` pattern has a stray `]` that ECMA
/// regexes accept and Rust's do not; it is escaped here (greywall never emits `language`).
fn sarif_validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo().join("launcher/tests/data/sarif-schema-2.1.0.json"))
        .unwrap();
    let text = text.replace(r#"-[a-zA-Z]{2}]?$"#, r#"-[a-zA-Z]{2}\\]?$"#);
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

const DANGEROUS: &str = r#"{
  // grants ~/.ssh reads and ~ writes
  "filesystem": {
    "defaultDenyRead": true,
    "allowRead": ["~/.ssh"],
    "allowWrite": ["~"]
  }
}
"#;

#[test]
fn lint_reports_ssh_reads_and_home_writes_in_every_format() {
    let s = Sandbox::new();
    let f = s.write("work/greywall.json", DANGEROUS);
    let f = f.to_str().unwrap();

    let human = s.run(&["lint", "--color", "never", f]);
    assert_eq!(code(&human), 1);
    let text = stdout(&human);
    assert!(
        text.contains("error[E504]: lets the sandbox read SSH private keys"),
        "{text}"
    );
    assert!(text.contains(&format!("--> {f}:5:19")), "{text}");
    assert!(
        text.contains("error[E500]: grants write access to your whole home directory"),
        "{text}"
    );
    assert!(text.contains(&format!("--> {f}:6:20")), "{text}");

    let json: serde_json::Value =
        serde_json::from_str(&stdout(&s.run(&["lint", "--format", "json", f]))).unwrap();
    let found: Vec<(String, u64, u64)> = json["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_string(),
                d["line"].as_u64().unwrap(),
                d["column"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(found.contains(&("E504".into(), 5, 19)), "{found:?}");
    assert!(found.contains(&("E500".into(), 6, 20)), "{found:?}");
    assert!(json["summary"]["errors"].as_u64().unwrap() >= 2);

    let sarif_out = s.run(&["lint", "--format", "sarif", f]);
    assert_eq!(code(&sarif_out), 1);
    let sarif: serde_json::Value = serde_json::from_str(&stdout(&sarif_out)).unwrap();
    let validator = sarif_validator();
    let errors: Vec<String> = validator
        .iter_errors(&sarif)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "SARIF output does not validate: {errors:?}"
    );
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let rule_ids: Vec<&str> = results
        .iter()
        .map(|r| r["ruleId"].as_str().unwrap())
        .collect();
    assert!(
        rule_ids.contains(&"E504") && rule_ids.contains(&"E500"),
        "{rule_ids:?}"
    );
    let e500 = results.iter().find(|r| r["ruleId"] == "E500").unwrap();
    assert_eq!(
        e500["locations"][0]["physicalLocation"]["region"]["startLine"],
        6
    );
    assert_eq!(
        e500["locations"][0]["physicalLocation"]["region"]["startColumn"],
        20
    );

    let gh = stdout(&s.run(&["lint", "--format", "github", f]));
    assert!(
        gh.lines().any(
            |l| l.starts_with(&format!("::error file={f},line=5,col=19,")) && l.contains("E504")
        ),
        "{gh}"
    );
    assert!(
        gh.lines().any(
            |l| l.starts_with(&format!("::error file={f},line=6,col=20,")) && l.contains("E500")
        ),
        "{gh}"
    );
}

#[test]
fn sarif_validates_even_with_no_findings_and_io_errors() {
    let s = Sandbox::new();
    let validator = sarif_validator();
    let clean = repo().join("policies/cargo.json");
    for args in [vec![clean.to_str().unwrap()], vec!["missing.json"]] {
        let mut a = vec!["lint", "--format", "sarif"];
        a.extend(args);
        let out: serde_json::Value = serde_json::from_str(&stdout(&s.run(&a))).unwrap();
        assert!(validator.is_valid(&out), "{out:#}");
    }
}

#[test]
fn exit_codes() {
    let s = Sandbox::new();
    let clean = repo().join("policies/cargo.json");
    assert_eq!(code(&s.run(&["lint", clean.to_str().unwrap()])), 0);
    let relaxed = repo().join("policies/code-relaxed.json");
    assert_eq!(
        code(&s.run(&["lint", relaxed.to_str().unwrap()])),
        0,
        "warnings alone pass"
    );
    assert_eq!(
        code(&s.run(&["lint", "--deny-warnings", relaxed.to_str().unwrap()])),
        1
    );
    let bad = s.write(
        "work/bad.json",
        "{\"filesystem\": {\"allowWrit\": [\".\"]}}",
    );
    assert_eq!(code(&s.run(&["lint", bad.to_str().unwrap()])), 1);
    assert_eq!(
        code(&s.run(&["lint", "does-not-exist.json"])),
        2,
        "unreadable input is exit 2"
    );
    assert_eq!(
        code(&s.run(&["lint", "--format", "xml"])),
        2,
        "usage error is exit 2"
    );
    assert_eq!(code(&s.run(&["frobnicate"])), 2);
    assert_eq!(code(&s.run(&["--version"])), 0);
}

#[test]
fn every_shipped_template_lints_without_errors() {
    let s = Sandbox::new();
    for entry in std::fs::read_dir(repo().join("policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let out = s.run(&["lint", "--format", "json", path.to_str().unwrap()]);
        let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let codes: Vec<&str> = json["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["code"].as_str().unwrap())
            .collect();
        let name = path.file_stem().unwrap().to_str().unwrap();
        let expected: &[&str] = if matches!(name, "code-relaxed" | "disable-telemetry") {
            &["W507"]
        } else {
            &[]
        };
        assert_eq!(codes, expected, "{name}");
        assert_eq!(code(&out), 0, "{name}");
    }
}

#[test]
fn inherited_findings_point_at_the_extends_line() {
    let s = Sandbox::new();
    s.write(
        "work/base.json",
        "{\n  \"filesystem\": {\"allowWrite\": [\"~/.bashrc\"]}\n}\n",
    );
    let top = s.write(
        "work/greywall.json",
        "{\n  // child\n  \"extends\": \"./base.json\"\n}\n",
    );
    let out = stdout(&s.run(&["lint", "--color", "never", top.to_str().unwrap()]));
    assert!(out.contains("error[E501]"), "{out}");
    assert!(
        out.contains(&format!("--> {}:3:14", top.display())),
        "{out}"
    );
    assert!(out.contains("inherited through this `extends`"), "{out}");
    assert!(out.contains("base.json:2:33"), "{out}");
}

#[test]
fn templates_list_and_show() {
    let s = Sandbox::new();
    let list = stdout(&s.run(&["templates", "list"]));
    for name in [
        "cargo",
        "code",
        "code-relaxed",
        "code-strict",
        "default",
        "disable-telemetry",
        "git-readonly",
        "local-dev-server",
        "npm-install",
        "pip-install",
    ] {
        assert!(
            list.lines().any(|l| l.starts_with(name)),
            "{name} missing from:\n{list}"
        );
    }
    let shown = stdout(&s.run(&["templates", "show", "code"]));
    assert_eq!(
        shown,
        std::fs::read_to_string(repo().join("policies/code.json")).unwrap()
    );
    let bad = s.run(&["templates", "show", "cod"]);
    assert_eq!(code(&bad), 2);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("did you mean 'code'"));
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let s = Sandbox::new();
    let out = stdout(&s.run(&["schema"]));
    assert_eq!(
        out,
        std::fs::read_to_string(repo().join("schema/greywall.schema.json")).unwrap()
    );
}

#[test]
fn config_show_names_the_origin_of_each_entry() {
    let s = Sandbox::new();
    s.write(
        "work/greywall.json",
        "{\n  \"extends\": \"code\",\n  \"filesystem\": {\"allowWrite\": [\"./out\", \"!~/.config\"]}\n}\n",
    );
    // Run from a subdirectory: the project file is found upward.
    let sub = s.work().join("sub");
    let text = stdout(&s.run_in(&sub, &["config", "show"]));
    let project = s.work().join("greywall.json");
    assert!(
        text.starts_with(&format!("policy: {} (project file)", project.display())),
        "{text}"
    );
    assert!(text.contains("extends: template:code"), "{text}");
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("./out")
            && l.ends_with(&format!("{}:3:33", project.display()))),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("~/.cache") && l.contains("template:code:")),
        "{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.trim_start().starts_with("~/.config ")),
        "removed entry still shown:\n{text}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&stdout(&s.run_in(&sub, &["config", "show", "--json"]))).unwrap();
    let writes = json["policy"]["filesystem"]["allowWrite"]
        .as_array()
        .unwrap();
    let out = writes.iter().find(|w| w["value"] == "./out").unwrap();
    assert_eq!(out["origin"]["line"], 3);
    assert_eq!(out["origin"]["column"], 33);
    assert_eq!(
        json["policy"]["filesystem"]["defaultDenyRead"]["value"],
        false
    );
    assert_eq!(json["networkMode"], "filtered");
}

#[test]
fn config_show_falls_back_to_the_default_and_rejects_missing_settings() {
    let s = Sandbox::new();
    let text = stdout(&s.run(&["config", "show"]));
    assert!(
        text.starts_with("policy: built-in template `default`"),
        "{text}"
    );
    let missing = s.run(&["config", "show", "-s", "nope.json"]);
    assert_eq!(code(&missing), 2);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("error[E401]"));
    // The user configuration directory comes before the legacy file.
    s.write("home/.greywall.json", "{}");
    assert!(stdout(&s.run(&["config", "show"])).contains("(legacy user configuration)"));
    s.write("home/.config/greywall/greywall.json", "{}");
    assert!(stdout(&s.run(&["config", "show"])).contains("(user configuration)"));
}
