//! Integration tests for loading policies: `extends` resolution, merge semantics and discovery.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use greywall_compiler::diagnostic::{Code, Diagnostic, Severity};
use greywall_compiler::discover::{self, DiscoverEnv, Discovered};
use greywall_compiler::load::{self, Input, Loaded, MAX_EXTENDS_DEPTH};
use greywall_compiler::source::{SourceKind, Span};

// ---------------------------------------------------------------------------------------------
// Helpers

fn write(path: &Path, text: &str) -> PathBuf {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, text).unwrap();
    path.to_path_buf()
}

fn load_file(path: &Path) -> Loaded {
    load::load(&Input::File(path.to_path_buf()))
}

fn load_text(text: &str, dir: &Path) -> Loaded {
    load::load(&Input::Text {
        name: "inline.json".to_string(),
        text: text.to_string(),
        dir: dir.to_path_buf(),
    })
}

fn codes(l: &Loaded) -> Vec<&'static str> {
    l.diagnostics.iter().map(|d| d.code.id()).collect()
}

fn dump(l: &Loaded) -> String {
    l.diagnostics
        .iter()
        .map(|d| {
            let at = d
                .primary
                .map_or_else(|| "-".to_string(), |s| l.sources.locate(s));
            format!("{} {} {}", d.code.id(), at, d.message)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The only diagnostic with `code`.
fn only(l: &Loaded, code: Code) -> &Diagnostic {
    let found: Vec<_> = l.diagnostics.iter().filter(|d| d.code == code).collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {code}, got:\n{}",
        dump(l)
    );
    found[0]
}

/// `line:col` of a span.
fn lc(l: &Loaded, span: Span) -> String {
    l.sources
        .get(span.source)
        .unwrap()
        .line_col(span.start)
        .to_string()
}

/// `line:col` of a diagnostic's primary span.
fn at(l: &Loaded, d: &Diagnostic) -> String {
    lc(l, d.primary.expect("diagnostic has a primary span"))
}

/// Asserts that `span` is in the file `path` (compared as paths, so `dir/./f` is `dir/f`) at
/// `line:col`.
fn assert_at(l: &Loaded, span: Span, path: &Path, line_col: &str) {
    let name = source_name(l, span);
    assert_eq!(Path::new(&name), path, "{name}");
    assert_eq!(lc(l, span), line_col, "{}", dump(l));
}

/// The name of the source a span is in.
fn source_name(l: &Loaded, span: Span) -> String {
    l.sources.get(span.source).unwrap().name.clone()
}

fn assert_clean(l: &Loaded) {
    assert!(
        l.diagnostics.is_empty(),
        "unexpected diagnostics:\n{}",
        dump(l)
    );
    assert!(l.policy.is_some());
}

fn domains(l: &Loaded) -> Vec<String> {
    l.policy
        .as_ref()
        .unwrap()
        .network
        .allowed_domains
        .iter()
        .map(|e| e.value.to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// extends: templates, relative and absolute paths

#[test]
fn extends_a_template() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir.path().join("greywall.json"),
        r#"{ "extends": "code", "network": { "allowedDomains": ["example.org"] } }"#,
    );
    let l = load_file(&p);
    assert_clean(&l);
    let policy = l.policy.as_ref().unwrap();
    // Inherited from the template, then the file's own entry last.
    let ds = domains(&l);
    assert_eq!(ds.first().map(String::as_str), Some("api.openai.com"));
    assert_eq!(ds.last().map(String::as_str), Some("example.org"));
    assert!(policy.allow_pty.value);
    // The template entries remember the template as their origin.
    let first = &policy.network.allowed_domains[0];
    assert!(matches!(
        l.sources.get(first.origin.source).unwrap().kind,
        SourceKind::Template(ref n) if n == "code"
    ));
    assert_eq!(source_name(&l, first.origin), "template:code");
    // Only the file on disk is a dependency.
    assert_eq!(l.files, vec![p]);
}

#[test]
fn extends_a_template_with_json_suffix() {
    let dir = tempfile::tempdir().unwrap();
    let l = load_text(r#"{"extends": "code-strict.json"}"#, dir.path());
    assert_clean(&l);
    // code-strict extends code: both layers are present.
    let policy = l.policy.unwrap();
    assert!(policy.filesystem.default_deny_read.value);
    assert!(!policy.network.allowed_domains.is_empty());
}

#[test]
fn relative_extends_resolves_against_the_extending_file_not_the_cwd() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // root/a/child.json -> ./sub/mid.json -> ./base.json must be root/a/sub/base.json
    // (relative to mid.json), not root/a/base.json (relative to the first file) or the cwd.
    let child = write(
        &root.join("a/child.json"),
        r#"{"extends": "./sub/mid.json", "network": {"allowedDomains": ["child.example"]}}"#,
    );
    write(
        &root.join("a/sub/mid.json"),
        r#"{"extends": "./base.json", "network": {"allowedDomains": ["mid.example"]}}"#,
    );
    write(
        &root.join("a/sub/base.json"),
        r#"{"network": {"allowedDomains": ["right-base.example"]}}"#,
    );
    write(
        &root.join("a/base.json"),
        r#"{"network": {"allowedDomains": ["wrong-base.example"]}}"#,
    );
    let l = load_file(&child);
    assert_clean(&l);
    assert_eq!(
        domains(&l),
        ["right-base.example", "mid.example", "child.example"]
    );
    assert_eq!(
        l.files,
        vec![
            child.clone(),
            root.join("a/sub/mid.json"),
            root.join("a/sub/base.json")
        ]
    );
}

#[test]
fn relative_extends_with_parent_dir() {
    let dir = tempfile::tempdir().unwrap();
    let child = write(
        &dir.path().join("proj/deep/greywall.json"),
        r#"{"extends": "../../shared/base.json"}"#,
    );
    write(
        &dir.path().join("shared/base.json"),
        r#"{"command": {"deny": ["git push"]}}"#,
    );
    let l = load_file(&child);
    assert_clean(&l);
    assert_eq!(
        l.policy.unwrap().command.deny[0].value.to_string(),
        "git push"
    );
}

#[test]
fn inline_text_extends_relative_to_its_dir() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("base.json"),
        r#"{"ssh": {"allowedHosts": ["github.com"]}}"#,
    );
    let l = load_text(r#"{"extends": "./base.json"}"#, dir.path());
    assert_clean(&l);
    assert_eq!(l.files, vec![dir.path().join("base.json")]);
}

#[test]
fn extends_an_absolute_path() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(
        &dir.path().join("elsewhere/base.json"),
        r#"{"filesystem": {"allowWrite": ["/srv/data"]}}"#,
    );
    let text = format!(
        r#"{{"extends": {}}}"#,
        serde_json::to_string(base.to_str().unwrap()).unwrap()
    );
    let child = write(&dir.path().join("proj/greywall.json"), &text);
    let l = load_file(&child);
    assert_clean(&l);
    let policy = l.policy.unwrap();
    assert_eq!(
        policy.filesystem.allow_write[0].value.to_string(),
        "/srv/data"
    );
    assert_eq!(l.files, vec![child, base]);
}

#[test]
fn a_name_with_a_dot_prefix_is_a_path_not_a_template() {
    assert!(load::is_path("./code"));
    assert!(load::is_path(".code"));
    assert!(load::is_path("a/b"));
    assert!(load::is_path("a\\b"));
    assert!(!load::is_path("code"));
    assert!(!load::is_path("code.json"));
    let dir = tempfile::tempdir().unwrap();
    // `.code` is a file (which does not exist), not the `code` template.
    let l = load_text("{\n  \"extends\": \".code\"\n}", dir.path());
    let d = only(&l, Code::ExtendsNotFound);
    assert_eq!(at(&l, d), "2:14");
    assert!(l.policy.is_none());
}

// ---------------------------------------------------------------------------------------------
// extends: chain depth

/// Writes f0.json … f{n}.json where each f{i} extends f{i+1}; returns f0.
fn chain(dir: &Path, extends: usize) -> PathBuf {
    for i in 0..=extends {
        let text = if i < extends {
            format!(
                "{{\n  \"extends\": \"./f{}.json\",\n  \"command\": {{\"deny\": [\"cmd{i}\"]}}\n}}\n",
                i + 1
            )
        } else {
            format!("{{\"command\": {{\"deny\": [\"cmd{i}\"]}}}}\n")
        };
        write(&dir.join(format!("f{i}.json")), &text);
    }
    dir.join("f0.json")
}

#[test]
fn a_chain_of_exactly_ten_extends_loads() {
    assert_eq!(MAX_EXTENDS_DEPTH, 10);
    let dir = tempfile::tempdir().unwrap();
    let l = load_file(&chain(dir.path(), 10));
    assert_clean(&l);
    assert_eq!(l.files.len(), 11);
    let deny: Vec<String> = l
        .policy
        .unwrap()
        .command
        .deny
        .iter()
        .map(|e| e.value.to_string())
        .collect();
    // The deepest base comes first.
    let expected: Vec<String> = (0..=10).rev().map(|i| format!("cmd{i}")).collect();
    assert_eq!(deny, expected);
}

#[test]
fn a_chain_of_eleven_extends_is_too_deep() {
    let dir = tempfile::tempdir().unwrap();
    let l = load_file(&chain(dir.path(), 11));
    assert!(l.policy.is_none());
    assert_eq!(codes(&l), ["E405"]);
    let d = only(&l, Code::ExtendsTooDeep);
    // Reported at the `extends` of the tenth extended file (f10.json), on its value.
    let span = d.primary.unwrap();
    assert!(source_name(&l, span).ends_with("f10.json"), "{}", dump(&l));
    assert_eq!(lc(&l, span), "2:14");
    // f11.json was never read.
    assert_eq!(l.files.len(), 11);
}

#[test]
fn templates_count_towards_the_chain_depth() {
    // 9 file extends + extends "code-strict" (10th) + code-strict extends code (11th).
    let dir = tempfile::tempdir().unwrap();
    let f0 = chain(dir.path(), 9);
    write(&dir.path().join("f9.json"), r#"{"extends": "code-strict"}"#);
    let l = load_file(&f0);
    let d = only(&l, Code::ExtendsTooDeep);
    assert_eq!(source_name(&l, d.primary.unwrap()), "template:code-strict");
    assert!(l.policy.is_none());

    // One file fewer and it fits.
    let dir = tempfile::tempdir().unwrap();
    let f0 = chain(dir.path(), 8);
    write(&dir.path().join("f8.json"), r#"{"extends": "code-strict"}"#);
    assert_clean(&load_file(&f0));
}

// ---------------------------------------------------------------------------------------------
// extends: cycles

#[test]
fn self_extends_is_a_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        &dir.path().join("a.json"),
        "{\n  \"extends\": \"./a.json\"\n}\n",
    );
    let l = load_file(&a);
    assert_eq!(codes(&l), ["E404"]);
    let d = only(&l, Code::ExtendsCycle);
    assert_at(&l, d.primary.unwrap(), &a, "2:14");
    assert!(l.policy.is_none());
}

#[test]
fn self_extends_through_a_different_spelling_is_a_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        &dir.path().join("sub/a.json"),
        r#"{"extends": "../sub/./a.json"}"#,
    );
    let l = load_file(&a);
    assert_eq!(codes(&l), ["E404"]);
}

#[test]
fn a_cycle_of_two_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(&dir.path().join("a.json"), r#"{"extends": "./b.json"}"#);
    let b = write(
        &dir.path().join("b.json"),
        "// b\n{\"extends\": \"./a.json\"}",
    );
    let l = load_file(&a);
    assert_eq!(codes(&l), ["E404"], "{}", dump(&l));
    let d = only(&l, Code::ExtendsCycle);
    // Reported in b.json, at the `extends` that leads back to a.json.
    assert_at(&l, d.primary.unwrap(), &b, "2:13");
    assert!(l.policy.is_none());
}

#[test]
fn a_cycle_of_three_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(&dir.path().join("a.json"), r#"{"extends": "./b.json"}"#);
    write(&dir.path().join("b.json"), r#"{"extends": "./c.json"}"#);
    let c = write(
        &dir.path().join("c.json"),
        "{\n\t\"extends\": \"./a.json\"\n}",
    );
    let l = load_file(&a);
    assert_eq!(codes(&l), ["E404"], "{}", dump(&l));
    let d = only(&l, Code::ExtendsCycle);
    assert_at(&l, d.primary.unwrap(), &c, "2:13");
    // The chain back to a.json is shown: a -> b (in a.json) and b -> c (in b.json).
    assert_eq!(d.secondary.len(), 2, "{d:?}");
    assert!(l.policy.is_none());
}

#[test]
fn a_cycle_entered_from_the_middle() {
    // root -> a -> b -> a: the cycle does not include the root.
    let dir = tempfile::tempdir().unwrap();
    let root = write(&dir.path().join("root.json"), r#"{"extends": "./a.json"}"#);
    write(&dir.path().join("a.json"), r#"{"extends": "./b.json"}"#);
    let b = write(&dir.path().join("b.json"), r#"{"extends": "./a.json"}"#);
    let l = load_file(&root);
    assert_eq!(codes(&l), ["E404"]);
    assert_at(
        &l,
        only(&l, Code::ExtendsCycle).primary.unwrap(),
        &b,
        "1:13",
    );
}

#[test]
fn a_file_extending_a_template_chain_is_not_a_cycle() {
    // file -> code-strict -> code: three layers, no repetition.
    let dir = tempfile::tempdir().unwrap();
    let a = write(&dir.path().join("a.json"), r#"{"extends": "code-strict"}"#);
    assert_clean(&load_file(&a));
}

// ---------------------------------------------------------------------------------------------
// extends: missing targets

#[test]
fn missing_extended_file_points_at_the_extends_value() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        &dir.path().join("greywall.json"),
        "// my policy\n{\n  \"network\": {},\n    \"extends\":   \"./nope/base.json\"\n}\n",
    );
    let l = load_file(&a);
    assert_eq!(codes(&l), ["E402"]);
    let d = only(&l, Code::ExtendsNotFound);
    assert_at(&l, d.primary.unwrap(), &a, "4:18");
    assert!(d.message.contains("nope/base.json"), "{}", d.message);
    assert!(l.policy.is_none());
}

#[test]
fn missing_file_deep_in_the_chain_points_into_the_extending_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(&dir.path().join("a.json"), r#"{"extends": "./b.json"}"#);
    let b = write(
        &dir.path().join("b.json"),
        "{\n  \"allowPty\": true,\n  \"extends\": \"./gone.json\"\n}",
    );
    let l = load_file(&a);
    let d = only(&l, Code::ExtendsNotFound);
    assert_at(&l, d.primary.unwrap(), &b, "3:14");
}

#[test]
fn unknown_template_has_a_did_you_mean() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        &dir.path().join("greywall.json"),
        "{\n  \"extends\": \"cod\"\n}\n",
    );
    let l = load_file(&a);
    assert_eq!(codes(&l), ["E403"]);
    let d = only(&l, Code::UnknownTemplate);
    assert_eq!(at(&l, d), "2:14");
    let help = d.help.as_deref().unwrap();
    assert!(help.contains("`code`"), "{help}");
    assert!(l.policy.is_none());
}

#[test]
fn unknown_template_far_from_any_name_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let l = load_text(r#"{"extends": "zzzzzzzzzz"}"#, dir.path());
    let d = only(&l, Code::UnknownTemplate);
    let help = d.help.as_deref().unwrap();
    assert!(
        help.contains("code-strict") && help.contains("npm-install"),
        "{help}"
    );
}

#[test]
fn empty_extends_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let l = load_text("{\"extends\": \"\"}", dir.path());
    let d = only(&l, Code::EmptyString);
    assert_eq!(at(&l, d), "1:13");
    assert!(l.policy.is_none());
}

#[test]
fn missing_settings_file_is_e401() {
    let dir = tempfile::tempdir().unwrap();
    let l = load_file(&dir.path().join("nope.json"));
    assert_eq!(codes(&l), ["E401"]);
    assert!(l.policy.is_none());
}

#[test]
fn a_directory_is_not_a_policy_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("base.json")).unwrap();
    let l = load_text(r#"{"extends": "./base.json"}"#, dir.path());
    assert_eq!(codes(&l), ["E400"]);
    assert_eq!(at(&l, &l.diagnostics[0]), "1:13");
}

#[test]
fn an_oversized_extended_file_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let big = fs::File::create(dir.path().join("big.json")).unwrap();
    // Sparse: costs no disk space.
    big.set_len(load::MAX_FILE_SIZE + 1).unwrap();
    let l = load_text(r#"{"extends": "./big.json"}"#, dir.path());
    assert_eq!(codes(&l), ["E406"]);
    assert_eq!(at(&l, &l.diagnostics[0]), "1:13");
    assert!(l.files.is_empty());
}

/// Extending something that is not a regular file (a FIFO here; `/dev/zero` and `/dev/stdin`
/// are the same problem) must be refused promptly, not block or read forever.
#[test]
fn a_fifo_is_not_a_policy_file() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("base.json");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        eprintln!("SKIP a_fifo_is_not_a_policy_file: mkfifo is unavailable");
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let d = dir.path().to_path_buf();
    std::thread::spawn(move || {
        let l = load_text(r#"{"extends": "./base.json"}"#, &d);
        let _ = tx.send((codes(&l), l.policy.is_some()));
    });
    let result = rx.recv_timeout(std::time::Duration::from_secs(5));
    if result.is_err() {
        // Unblock the reader so the thread can finish.
        drop(fs::OpenOptions::new().write(true).open(&fifo));
    }
    let (codes, has_policy) = result.expect("loading a policy that extends a FIFO blocked");
    assert!(!has_policy);
    assert_eq!(codes, ["E400"]);
}

// ---------------------------------------------------------------------------------------------
// Merge semantics

#[test]
fn lists_are_appended_and_deduplicated_keeping_the_first() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("base.json"),
        "{\"network\": {\"allowedDomains\": [\n  \"a.example\",\n  \"b.example\"\n]}}",
    );
    let l = load_text(
        "{\"extends\": \"./base.json\",\n \"network\": {\"allowedDomains\": [\"c.example\", \"B.example\", \"a.example\", \"c.example\"]}}",
        dir.path(),
    );
    // The repeats are reported, each pointing back at the entry that is kept.
    assert_eq!(codes(&l), ["W509", "W509", "W509"], "{}", dump(&l));
    let dups: Vec<(String, String)> = l
        .diagnostics
        .iter()
        .map(|d| {
            (
                at(&l, d),
                l.sources
                    .locate(d.secondary[0].0)
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        dups,
        [
            ("2:46".to_string(), "base.json:3:3".to_string()),
            ("2:59".to_string(), "base.json:2:3".to_string()),
            ("2:72".to_string(), "inline.json:2:33".to_string()),
        ]
    );
    assert!(l.policy.is_some());
    assert_eq!(domains(&l), ["a.example", "b.example", "c.example"]);
    let entries = &l.policy.as_ref().unwrap().network.allowed_domains;
    // b.example keeps its first occurrence, in base.json at line 3.
    assert!(source_name(&l, entries[1].origin).ends_with("base.json"));
    assert_eq!(lc(&l, entries[1].origin), "3:3");
    assert_eq!(lc(&l, entries[0].origin), "2:3");
    // c.example comes from the inline file, first occurrence.
    assert_eq!(source_name(&l, entries[2].origin), "inline.json");
    assert_eq!(lc(&l, entries[2].origin), "2:33");
}

#[test]
fn duplicate_of_a_template_entry_keeps_the_template_origin() {
    let dir = tempfile::tempdir().unwrap();
    let l = load_text(
        r#"{"extends": "code", "network": {"allowedDomains": ["github.com"]}}"#,
        dir.path(),
    );
    assert_eq!(codes(&l), ["W509"]);
    assert_eq!(at(&l, &l.diagnostics[0]), "1:52");
    let entries = &l.policy.as_ref().unwrap().network.allowed_domains;
    let gh: Vec<_> = entries
        .iter()
        .filter(|e| e.value.to_string() == "github.com")
        .collect();
    assert_eq!(gh.len(), 1);
    assert_eq!(source_name(&l, gh[0].origin), "template:code");
}

#[test]
fn bang_entry_removes_an_inherited_entry() {
    let dir = tempfile::tempdir().unwrap();
    let l = load_text(
        r#"{
  "extends": "code",
  "network": {"allowedDomains": ["!github.com", "example.org"]},
  "filesystem": {"allowWrite": ["!~/.cache"]},
  "command": {"deny": ["!git push"]}
}"#,
        dir.path(),
    );
    assert_clean(&l);
    let policy = l.policy.as_ref().unwrap();
    let ds = domains(&l);
    assert!(!ds.iter().any(|d| d == "github.com"));
    assert!(ds.iter().any(|d| d == "api.github.com"));
    assert_eq!(ds.last().map(String::as_str), Some("example.org"));
    assert!(
        !policy
            .filesystem
            .allow_write
            .iter()
            .any(|e| e.value.to_string() == "~/.cache")
    );
    assert!(
        !policy
            .command
            .deny
            .iter()
            .any(|e| e.value.to_string() == "git push")
    );
    assert!(
        policy
            .command
            .deny
            .iter()
            .any(|e| e.value.to_string() == "git reset")
    );
}

#[test]
fn bang_entry_that_removes_nothing_warns() {
    let dir = tempfile::tempdir().unwrap();
    let l = load_text(
        "{\n  \"extends\": \"code\",\n  \"network\": {\"deniedDomains\": [\"!nothing.example\"]}\n}",
        dir.path(),
    );
    assert_eq!(codes(&l), ["W309"]);
    let d = only(&l, Code::RemoveNothing);
    assert_eq!(d.severity, Severity::Warning);
    assert_eq!(at(&l, d), "3:33");
    // A warning does not stop the policy.
    assert!(l.policy.is_some());
    assert!(!l.has_errors());
}

#[test]
fn bang_entry_without_extends_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let l = load_text(r#"{"filesystem": {"denyRead": ["!~/.ssh"]}}"#, dir.path());
    assert_eq!(codes(&l), ["W309"]);
    assert_eq!(at(&l, &l.diagnostics[0]), "1:30");
}

#[test]
fn bang_entry_removes_an_entry_from_a_grandparent() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("mid.json"),
        r#"{"extends": "code", "network": {"allowedDomains": ["mid.example"]}}"#,
    );
    let l = load_text(
        r#"{"extends": "./mid.json", "network": {"allowedDomains": ["!gitlab.com", "!mid.example"]}}"#,
        dir.path(),
    );
    assert_clean(&l);
    let ds = domains(&l);
    assert!(!ds.iter().any(|d| d == "gitlab.com" || d == "mid.example"));
}

#[test]
fn booleans_are_ored_and_an_ineffective_false_warns() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("base.json"),
        r#"{"allowPty": true, "network": {"allowLocalBinding": true}, "ssh": {"inheritDeny": true}}"#,
    );
    let l = load_text(
        "{\n  \"extends\": \"./base.json\",\n  \"allowPty\": false,\n  \"network\": {\"allowLocalBinding\": true},\n  \"filesystem\": {\"allowGitConfig\": true},\n  \"ssh\": {\"allowAllCommands\": false}\n}",
        dir.path(),
    );
    assert_eq!(codes(&l), ["W511"], "{}", dump(&l));
    let d = only(&l, Code::OrBoolean);
    assert_eq!(d.severity, Severity::Warning);
    assert_eq!(at(&l, d), "3:15");
    assert!(d.message.contains("allowPty"), "{}", d.message);
    // The secondary points at the inherited `true`.
    assert_eq!(d.secondary.len(), 1);
    assert!(source_name(&l, d.secondary[0].0).ends_with("base.json"));
    assert_eq!(lc(&l, d.secondary[0].0), "1:14");

    let p = l.policy.as_ref().unwrap();
    assert!(p.allow_pty.value);
    assert!(source_name(&l, p.allow_pty.origin.unwrap()).ends_with("base.json"));
    assert!(p.network.allow_local_binding.value);
    assert!(p.filesystem.allow_git_config.value);
    assert!(p.ssh.inherit_deny.value);
    assert!(!p.ssh.allow_all_commands.value);
}

#[test]
fn a_child_true_turns_an_inherited_false_on() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("base.json"),
        r#"{"network": {"allowAllUnixSockets": false}}"#,
    );
    let l = load_text(
        r#"{"extends": "./base.json", "network": {"allowAllUnixSockets": true}}"#,
        dir.path(),
    );
    assert_clean(&l);
    let p = l.policy.unwrap();
    assert!(p.network.allow_all_unix_sockets.value);
    assert_eq!(
        l.sources
            .get(p.network.allow_all_unix_sockets.origin.unwrap().source)
            .unwrap()
            .name,
        "inline.json"
    );
}

#[test]
fn override_settings_take_the_childs_value() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("base.json"),
        r#"{
  "filesystem": {"defaultDenyRead": false},
  "network": {
    "allowLocalOutbound": true,
    "httpProxyPort": 8080,
    "socksProxyPort": 9050,
    "proxyUrl": "socks5://base:1080",
    "httpProxyUrl": "http://base:3128",
    "dnsAddr": "base:53"
  },
  "command": {"useDefaults": true}
}"#,
    );
    let l = load_text(
        r#"{
  "extends": "./base.json",
  "filesystem": {"defaultDenyRead": true},
  "network": {
    "allowLocalOutbound": false,
    "httpProxyPort": 0,
    "socksProxyPort": 1081,
    "proxyUrl": "socks5h://child:1080",
    "dnsAddr": "[::1]:5353"
  },
  "command": {"useDefaults": false}
}"#,
        dir.path(),
    );
    assert_clean(&l);
    let p = l.policy.unwrap();
    assert!(p.filesystem.default_deny_read.value);
    assert_eq!(p.network.allow_local_outbound.value, Some(false));
    assert!(!p.command.use_defaults.value);
    // 0 means "unset": the inherited port stays.
    assert_eq!(p.network.http_proxy_port.value, 8080);
    assert_eq!(p.network.socks_proxy_port.value, 1081);
    assert_eq!(
        p.network.proxy_url.value.as_ref().unwrap().to_string(),
        "socks5h://child:1080"
    );
    // Not set by the child: inherited.
    assert_eq!(
        p.network.http_proxy_url.value.as_ref().unwrap().to_string(),
        "http://base:3128"
    );
    assert_eq!(
        p.network.dns_addr.value.as_ref().unwrap().to_string(),
        "[::1]:5353"
    );
}

#[test]
fn override_false_from_a_template_can_be_turned_on_and_off() {
    // code sets defaultDenyRead false; code-strict sets it true; a child may set it back.
    let dir = tempfile::tempdir().unwrap();
    let l = load_text(
        r#"{"extends": "code-strict", "filesystem": {"defaultDenyRead": false}}"#,
        dir.path(),
    );
    assert_clean(&l);
    assert!(!l.policy.unwrap().filesystem.default_deny_read.value);
}

#[test]
fn defaults_without_extends() {
    let dir = tempfile::tempdir().unwrap();
    let l = load_text("{}", dir.path());
    assert_clean(&l);
    let p = l.policy.unwrap();
    assert!(p.filesystem.default_deny_read.value);
    assert!(p.command.use_defaults.value);
    assert_eq!(p.network.http_proxy_port.value, 3128);
    assert_eq!(p.network.socks_proxy_port.value, 1080);
    assert!(!p.allow_pty.value);
}

#[test]
fn every_builtin_template_loads_cleanly() {
    for (name, l) in load::all_templates() {
        assert!(
            !l.has_errors() && l.policy.is_some(),
            "template {name}:\n{}",
            dump(&l)
        );
    }
}

#[test]
fn errors_in_an_extended_file_are_reported_in_that_file() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(
        &dir.path().join("base.json"),
        "{\n  \"network\": {\"alowedDomains\": []}\n}",
    );
    let l = load_text("{\"extends\": \"./base.json\", \"bogus\": 1}", dir.path());
    assert_eq!(codes(&l), ["E200", "E200"], "{}", dump(&l));
    // Sorted by source: the inline file was registered first.
    assert_eq!(
        l.sources.locate(l.diagnostics[0].primary.unwrap()),
        "inline.json:1:28"
    );
    assert_at(&l, l.diagnostics[1].primary.unwrap(), &base, "2:15");
    assert!(l.policy.is_none());
    // The extended file remembers who pulled it in.
    let (_, f) = l
        .sources
        .iter()
        .find(|(_, f)| f.name.ends_with("base.json"))
        .unwrap();
    assert_eq!(lc(&l, f.extended_by.unwrap()), "1:13");
}

// ---------------------------------------------------------------------------------------------
// Discovery

struct DiscoverFixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    env: DiscoverEnv,
    /// The owner uid of files this test creates.
    my_uid: u32,
}

fn discover_fixture() -> DiscoverFixture {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let cwd = root.join("proj/src/deep");
    fs::create_dir_all(&cwd).unwrap();
    let home = root.join("home");
    fs::create_dir_all(&home).unwrap();
    let my_uid = fs::metadata(&home).unwrap().uid();
    let env = DiscoverEnv {
        cwd,
        home: Some(home),
        xdg_config_home: None,
        uid: my_uid,
    };
    DiscoverFixture {
        _dir: dir,
        root,
        env,
        my_uid,
    }
}

fn run_discover(
    env: &DiscoverEnv,
    explicit: Option<&Path>,
) -> (Result<Discovered, Diagnostic>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let r = discover::discover(explicit, env, &mut diags);
    (r, diags)
}

#[test]
fn discovery_finds_the_project_file_from_a_nested_directory() {
    let fx = discover_fixture();
    let p = write(&fx.root.join("proj/greywall.json"), "{}");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    // Also a user config, which the project file wins over.
    write(&fx.root.join("home/.config/greywall/greywall.json"), "{}");
    let (r, diags) = run_discover(&fx.env, None);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(r.unwrap(), Discovered::Project(p.clone()));
    assert_eq!(Discovered::Project(p.clone()).input(), Input::File(p));
}

#[test]
fn discovery_prefers_the_nearest_project_file() {
    let fx = discover_fixture();
    write(&fx.root.join("proj/greywall.json"), "{}");
    let near = write(&fx.root.join("proj/src/greywall.json"), "{}");
    for p in [&near, &fx.root.join("proj/greywall.json")] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (r, _) = run_discover(&fx.env, None);
    assert_eq!(r.unwrap(), Discovered::Project(near));
}

#[test]
fn discovery_ignores_a_directory_named_greywall_json() {
    let fx = discover_fixture();
    fs::create_dir_all(fx.root.join("proj/src/greywall.json")).unwrap();
    let p = write(&fx.root.join("proj/greywall.json"), "{}");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    let (r, _) = run_discover(&fx.env, None);
    assert_eq!(r.unwrap(), Discovered::Project(p));
}

#[test]
fn discovery_skips_a_group_writable_project_file() {
    let fx = discover_fixture();
    let bad = write(&fx.root.join("proj/greywall.json"), "{}");
    fs::set_permissions(&bad, fs::Permissions::from_mode(0o664)).unwrap();
    let user = write(&fx.root.join("home/.config/greywall/greywall.json"), "{}");
    let (r, diags) = run_discover(&fx.env, None);
    assert_eq!(r.unwrap(), Discovered::User(user));
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].code, Code::UntrustedPolicy);
    assert_eq!(diags[0].severity, Severity::Warning);
    assert!(diags[0].message.contains("group"), "{}", diags[0].message);
    assert_eq!(diags[0].path.as_deref(), Some(bad.to_str().unwrap()));
}

#[test]
fn discovery_skips_a_world_writable_project_file_and_keeps_looking_upwards() {
    let fx = discover_fixture();
    let good = write(&fx.root.join("proj/greywall.json"), "{}");
    fs::set_permissions(&good, fs::Permissions::from_mode(0o644)).unwrap();
    let bad = write(&fx.root.join("proj/src/greywall.json"), "{}");
    fs::set_permissions(&bad, fs::Permissions::from_mode(0o666)).unwrap();
    let (r, diags) = run_discover(&fx.env, None);
    assert_eq!(r.unwrap(), Discovered::Project(good));
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].code, Code::UntrustedPolicy);
    assert!(
        diags[0].message.contains("everyone"),
        "{}",
        diags[0].message
    );
}

#[test]
fn discovery_skips_a_project_file_owned_by_someone_else() {
    let fx = discover_fixture();
    let p = write(&fx.root.join("proj/greywall.json"), "{}");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    let mut env = fx.env.clone();
    if fx.my_uid == 0 {
        // Root-owned files are trusted; hand the file to another user.
        std::os::unix::fs::chown(&p, Some(4242), None).unwrap();
    } else {
        // Pretend to be another (non-root) user.
        env.uid = fx.my_uid + 1;
    }
    let (r, diags) = run_discover(&env, None);
    assert_eq!(r.unwrap(), Discovered::Default);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].code, Code::UntrustedPolicy);
    assert!(
        diags[0].message.contains("owned by uid"),
        "{}",
        diags[0].message
    );
}

#[test]
fn discovery_trusts_a_root_owned_project_file() {
    let fx = discover_fixture();
    if fx.my_uid != 0 {
        eprintln!("SKIP discovery_trusts_a_root_owned_project_file: needs root to chown");
        return;
    }
    let p = write(&fx.root.join("proj/greywall.json"), "{}");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    let mut env = fx.env.clone();
    env.uid = 1000;
    let (r, diags) = run_discover(&env, None);
    assert!(diags.is_empty());
    assert_eq!(r.unwrap(), Discovered::Project(p));
}

#[test]
fn discovery_uses_xdg_config_home() {
    let fx = discover_fixture();
    let xdg = fx.root.join("xdg");
    let p = write(&xdg.join("greywall/greywall.json"), "{}");
    // ~/.config is ignored when XDG_CONFIG_HOME is set.
    write(&fx.root.join("home/.config/greywall/greywall.json"), "{}");
    let mut env = fx.env.clone();
    env.xdg_config_home = Some(xdg);
    let (r, diags) = run_discover(&env, None);
    assert!(diags.is_empty());
    assert_eq!(r.unwrap(), Discovered::User(p));
}

#[test]
fn discovery_falls_back_to_dot_config_without_xdg_or_with_a_relative_one() {
    let fx = discover_fixture();
    let p = write(&fx.root.join("home/.config/greywall/greywall.json"), "{}");
    let (r, _) = run_discover(&fx.env, None);
    assert_eq!(r.unwrap(), Discovered::User(p.clone()));
    let mut env = fx.env.clone();
    env.xdg_config_home = Some(PathBuf::from("relative/xdg"));
    let (r, _) = run_discover(&env, None);
    assert_eq!(r.unwrap(), Discovered::User(p));
}

#[test]
fn discovery_uses_the_legacy_file() {
    let fx = discover_fixture();
    let legacy = write(&fx.root.join("home/.greywall.json"), "{}");
    let (r, diags) = run_discover(&fx.env, None);
    assert!(diags.is_empty());
    assert_eq!(r.unwrap(), Discovered::Legacy(legacy.clone()));
    // The user configuration wins over the legacy file.
    let user = write(&fx.root.join("home/.config/greywall/greywall.json"), "{}");
    let (r, _) = run_discover(&fx.env, None);
    assert_eq!(r.unwrap(), Discovered::User(user));
}

#[test]
fn discovery_falls_back_to_the_default_template() {
    let fx = discover_fixture();
    let (r, diags) = run_discover(&fx.env, None);
    assert!(diags.is_empty());
    let found = r.unwrap();
    assert_eq!(found, Discovered::Default);
    assert_eq!(found.input(), Input::Template("default".to_string()));
    let l = load::load(&found.input());
    assert_clean(&l);
    assert!(l.files.is_empty());

    // No home at all.
    let mut env = fx.env.clone();
    env.home = None;
    let (r, _) = run_discover(&env, None);
    assert_eq!(r.unwrap(), Discovered::Default);
}

#[test]
fn discovery_with_an_explicit_file() {
    let fx = discover_fixture();
    write(&fx.root.join("proj/greywall.json"), "{}");
    let s = write(&fx.root.join("elsewhere/policy.json"), "{}");
    let (r, diags) = run_discover(&fx.env, Some(&s));
    assert!(diags.is_empty());
    assert_eq!(r.unwrap(), Discovered::Explicit(s));
}

#[test]
fn discovery_with_an_explicit_missing_file_is_e401() {
    let fx = discover_fixture();
    // Even with a usable project file, a missing --settings is an error.
    write(&fx.root.join("proj/greywall.json"), "{}");
    let missing = fx.root.join("nope.json");
    let (r, _) = run_discover(&fx.env, Some(&missing));
    let d = r.unwrap_err();
    assert_eq!(d.code, Code::SettingsNotFound);
    assert_eq!(d.code.id(), "E401");
    assert!(d.is_error());
    assert_eq!(d.path.as_deref(), Some(missing.to_str().unwrap()));
}
