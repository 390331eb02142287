//! The macOS profile read back: structure, escaping, and the decisions it makes.
//!
//! - the test reader refuses malformed profiles (so the golden test's read-back means
//!   something);
//! - arbitrary path strings (quotes, backslashes, parentheses, semicolons, unicode) never
//!   change a profile's structure, and come back out of it unchanged;
//! - a decision table: for (policy, operation, path) cases, the rule Seatbelt's
//!   last-match-wins order selects in the compiled profile agrees with
//!   `greywall_compiler::decide`, except where docs/platforms.md says the platforms differ
//!   (those cases state the macOS answer).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sbpl;

use std::collections::BTreeMap;

use greywall_compiler::backend::seatbelt::{self, Options, params};
use greywall_compiler::decide::{self, Facts, Op};
use greywall_compiler::load::{Input, load};
use greywall_compiler::model::Policy;
use proptest::prelude::*;
use sbpl::Object;

fn policy(json: &str) -> Policy {
    let loaded = load(&Input::Text {
        name: "t.json".into(),
        text: json.into(),
        dir: "/".into(),
    });
    loaded
        .policy
        .unwrap_or_else(|| panic!("{json}: {:?}", loaded.diagnostics))
}

fn compile(p: &Policy) -> String {
    seatbelt::profile(p, &Options::default()).unwrap().text
}

#[test]
fn the_reader_refuses_malformed_profiles() {
    let good = compile(&policy("{}"));
    sbpl::read(&good).unwrap();
    let header = good.lines().next().unwrap();
    let bad = [
        ("unbalanced", format!("{good}(allow file-read*")),
        ("extra close", format!("{good})")),
        ("unknown op", format!("{good}(allow file-everything)")),
        (
            "unknown filter",
            format!("{good}(allow file-read* (anything \"/\"))"),
        ),
        (
            "bad escape",
            format!("{good}(allow file-read* (literal \"/a\\n\"))"),
        ),
        (
            "raw newline",
            format!("{good}(allow file-read* (literal \"/a\nb\"))"),
        ),
        (
            "undeclared param",
            format!("{good}(allow file-read* (subpath (param \"NOPE\")))"),
        ),
        ("deny without filter", format!("{good}(deny file-read*)")),
        ("no header", good.replacen(header, ";; nothing", 1)),
        (
            "no deny default",
            good.replacen("(deny default)", "(allow default)", 1),
        ),
        (
            "bad regex",
            format!("{good}(allow file-read* (regex \"^(\"))"),
        ),
        (
            "bad address",
            format!("{good}(allow network-outbound (remote tcp \"example.com:80\"))"),
        ),
    ];
    for (what, text) in bad {
        assert!(sbpl::read(&text).is_err(), "{what} was accepted");
    }
}

/// `s` written as a greywall.json path segment that means `s` literally.
fn escape_glob(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn segment() -> impl Strategy<Value = String> {
    // Anything but `/`, NUL and control characters (which path patterns refuse), never `.`
    // or `..`, no surrounding whitespace.
    proptest::string::string_regex(r#"[^/\p{Cc}]{1,12}"#)
        .unwrap()
        .prop_map(|s| s.trim().to_string())
        .prop_filter("a plain name", |s| !s.is_empty() && s != "." && s != "..")
        .prop_map(|s| {
            // Mix in the characters that matter most; never a leading `$` or `~` (anchors).
            format!("n{s}\"\\();#é{s}")
        })
}

/// Every string literal in the profile's rules.
fn literals(p: &sbpl::Profile) -> Vec<String> {
    fn walk(f: &sbpl::Filter, out: &mut Vec<String>) {
        match f {
            sbpl::Filter::Literal(s) | sbpl::Filter::Subpath(s) | sbpl::Filter::Regex(s) => {
                fn lits(s: &sbpl::StrExpr, out: &mut Vec<String>) {
                    match s {
                        sbpl::StrExpr::Lit(l) => out.push(l.clone()),
                        sbpl::StrExpr::Param(_) => {}
                        sbpl::StrExpr::Concat(v) => v.iter().for_each(|x| lits(x, out)),
                    }
                }
                lits(s, out);
            }
            sbpl::Filter::All(v) => v.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for r in &p.rules {
        for f in &r.filters {
            walk(f, &mut out);
        }
    }
    out
}

fn with_paths(name: &str) -> String {
    let abs = serde_json::to_string(&format!("/data/{}", escape_glob(name))).unwrap();
    let home = serde_json::to_string(&format!("~/{}", escape_glob(name))).unwrap();
    let rel = serde_json::to_string(&escape_glob(name)).unwrap();
    let glob = serde_json::to_string(&format!("{}/*.x", escape_glob(name))).unwrap();
    format!(
        r#"{{"filesystem": {{"defaultDenyRead": true, "allowRead": [{abs}], "allowWrite": [{rel}, {home}],
            "denyWrite": [{glob}], "denyRead": [{home}]}},
            "network": {{"allowUnixSockets": [{abs}]}}}}"#
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn path_strings_never_change_the_structure(name in segment()) {
        let base = sbpl::read(&compile(&policy(&with_paths("plain")))).unwrap();
        let text = compile(&policy(&with_paths(&name)));
        let got = sbpl::read(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(got.shape(), base.shape());
        // The name comes back out of the profile unchanged: as a path and, escaped, in a regex.
        let lits = literals(&got);
        prop_assert!(lits.contains(&format!("/data/{name}")), "{lits:?}");
        prop_assert!(lits.contains(&format!("/{name}")), "{lits:?}");
        let re = format!("/{}/[^/]*\\.x(/.*)?$", params::ancestors_regex(&name)
            .trim_start_matches("^/(").trim_end_matches(")?$"));
        prop_assert!(lits.contains(&re), "{re} not in {lits:?}");
    }

    #[test]
    fn regex_literals_match_exactly_their_names(name in segment(), other in segment()) {
        // `NAME/*.x` below the working directory matches NAME/a.x and nothing of OTHER.
        let p = policy(&format!(r#"{{"filesystem": {{"allowWrite": ["."], "denyWrite": [{}]}}}}"#,
            serde_json::to_string(&format!("{}/*.x", escape_glob(&name))).unwrap()));
        let prof = sbpl::read(&compile(&p)).unwrap();
        let values = bind(&Facts::new("/w/p(1)", "/h"));
        let path = |n: &str| Object::Path(format!("/w/p(1)/{n}/a.x"));
        prop_assert!(!prof.allows("file-write-data", &path(&name), &values));
        if other != name {
            prop_assert!(prof.allows("file-write-data", &path(&other), &values));
        }
    }
}

/// The profile parameters for a set of facts.
fn bind(f: &Facts) -> BTreeMap<String, String> {
    let facts = params::RunFacts {
        anchors: f.anchors.clone(),
        config_dir: f.config_dir(),
        cache_dir: f.cache_dir(),
    };
    let all: Vec<params::Param> = [
        "CWD",
        "CWD_RE",
        "CWD_ANCESTORS_RE",
        "HOME",
        "HOME_RE",
        "HOME_ANCESTORS_RE",
        "TMPDIR",
        "TMPDIR_RE",
        "GIT_COMMON",
        "GIT_COMMON_RE",
        "GIT_ROOT",
        "GIT_ROOT_RE",
        "XDG_CONFIG",
        "XDG_CONFIG_RE",
        "XDG_CACHE",
        "XDG_CACHE_RE",
        "GREYWALL_CONFIG",
        "GREYWALL_CACHE",
        "CWD_UP1",
        "CWD_UP1_RE",
    ]
    .iter()
    .map(|n| params::Param::from_name(n).unwrap())
    .collect();
    params::values(&all, &facts).unwrap().into_iter().collect()
}

/// What the table expects where the platforms differ by design (docs/platforms.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// macOS decides as `decide` does.
    Same,
    /// macOS decides this way, whatever `decide` (the Linux semantics) says.
    Macos(bool),
}

/// Whether a profile section states the same kind of rule as `decide` names.
fn same_kind(kind: decide::RuleKind, section: &str) -> bool {
    use decide::RuleKind as K;
    let prefixes: &[&str] = match kind {
        K::AllowWrite => &["allowWrite.", "Writable roots are readable."],
        K::AllowRead => &["allowRead."],
        K::DenyRead => &["denyRead:"],
        K::DenyWrite => &["denyWrite."],
        K::SecretFile => &["Environment files"],
        K::Protection => &["Mandatory protections"],
        K::DefaultDenyWrite => &["(deny default)"],
        K::DefaultDenyRead => &["(deny default)", "Reads: everything"],
        K::SystemReadable => &["Reads (defaultDenyRead)"],
        K::SandboxPrivate => &["Writes: the per-user temporary directory"],
        _ => return false,
    };
    prefixes.iter().any(|p| section.starts_with(p))
}

const CWD: &str = "/Users/dev/project";
const HOME: &str = "/Users/dev";

#[test]
fn decision_table_agrees_with_decide() {
    use Expect::{Macos, Same};
    let code = load(&Input::Template("code".into())).policy.unwrap();
    let strict = load(&Input::Template("code-strict".into())).policy.unwrap();
    let default = load(&Input::Template("default".into())).policy.unwrap();
    let custom = policy(
        r#"{"filesystem": {"defaultDenyRead": true, "allowRead": ["../shared"],
            "allowWrite": [".", "~/.cache", "/opt/data"], "denyWrite": ["*.key", "a/**/secret", "build/[!x]?"],
            "denyRead": ["~/.ssh/id_*", "notes (old).txt"], "allowGitConfig": true}}"#,
    );
    let policies: [(&str, &Policy); 4] = [
        ("code", &code),
        ("code-strict", &strict),
        ("default", &default),
        ("custom", &custom),
    ];
    let c = |p: &str| format!("{CWD}/{p}");
    let h = |p: &str| format!("{HOME}/{p}");
    // (policy, op, path, expectation)
    let cases: Vec<(&str, &str, String, Expect)> = vec![
        ("code", "write", c("src/main.rs"), Same),
        ("code", "write", c(".git/hooks/pre-commit"), Same),
        ("code", "write", c("sub/dir/.git/hooks/post-merge"), Same),
        ("code", "write", c(".git/config"), Same),
        ("code", "write", c(".git/objects/ab"), Same),
        ("code", "write", c("sub/.bashrc"), Same),
        ("code", "write", c(".vscode/tasks.json"), Same),
        ("code", "write", c(".claude/commands/x.md"), Same),
        ("code", "write", c(".claude/settings.json"), Same),
        ("code", "write", c(".env"), Same),
        ("code", "read", c(".env"), Same),
        ("code", "read", c(".env.local"), Same),
        ("code", "write", c("config/.env.production"), Same),
        ("code", "write", c("server.key"), Same),
        ("code", "write", c("certs/deep/server.pem"), Same),
        ("code", "write", c("server.keys"), Same),
        ("code", "read", h(".ssh/id_ed25519"), Same),
        ("code", "read", h(".ssh/known_hosts"), Same),
        ("code", "write", h(".ssh/known_hosts"), Same),
        ("code", "read", h(".aws/credentials"), Same),
        ("code", "write", h(".cache/pip/x"), Same),
        ("code", "write", h(".cache/greywall/plans/x.plan"), Same),
        ("code", "write", h(".config/gh/hosts.yml"), Same),
        ("code", "write", h(".config/git/config"), Same),
        ("code", "write", h(".config/fish/config.fish"), Same),
        ("code", "write", h(".config/greywall/greywall.json"), Same),
        ("code", "write", h(".claude.json"), Same),
        ("code", "write", h(".bashrc"), Same),
        ("code", "write", h("Documents/x"), Same),
        ("code", "write", c("greywall.json"), Same),
        ("code", "write", h("greywall.json"), Same),
        ("code", "write", "/etc/passwd".into(), Same),
        ("code", "read", "/usr/bin/git".into(), Same),
        ("code", "write", "/usr/local/bin/x".into(), Same),
        ("code-strict", "read", h("Documents/tax.pdf"), Same),
        ("code-strict", "read", c("README.md"), Same),
        ("code-strict", "read", h(".claude/settings.json"), Same),
        ("code-strict", "read", h(".config/gh/hosts.yml"), Same),
        ("code-strict", "read", h(".rustup/toolchains/x"), Same),
        ("code-strict", "read", "/usr/lib/libc.so".into(), Same),
        ("default", "write", c("src/main.rs"), Same),
        ("default", "read", c(".env"), Same),
        ("default", "read", h("notes.txt"), Same),
        ("custom", "write", c("server.key"), Same),
        ("custom", "write", c("sub/server.key"), Same),
        ("custom", "write", c("a/secret"), Same),
        ("custom", "write", c("a/b/c/secret/x"), Same),
        ("custom", "write", c("b/secret"), Same),
        ("custom", "write", c("build/ab"), Same),
        ("custom", "write", c("build/xb"), Same),
        ("custom", "write", c("build/abc"), Same),
        ("custom", "write", c(".git/config"), Same),
        ("custom", "write", c(".git/hooks/x"), Same),
        ("custom", "read", c("notes (old).txt"), Same),
        ("custom", "read", c("notes (old)xtxt"), Same),
        ("custom", "read", "/Users/dev/shared/lib.rs".into(), Same),
        ("custom", "read", "/Users/dev/other/lib.rs".into(), Same),
        ("custom", "write", "/opt/data/x".into(), Same),
        ("custom", "read", h(".ssh/id_rsa"), Same),
        ("custom", "read", h(".ssh/config"), Same),
        ("custom", "write", h(".cache/x"), Same),
        // Where the platforms differ by design (docs/platforms.md).
        // Linux's /tmp is private and always writable; macOS grants the per-user $TMPDIR.
        ("default", "write", "/private/tmp/x".into(), Macos(false)),
        (
            "default",
            "write",
            "/private/var/folders/xy/T/x".into(),
            Macos(true),
        ),
        // macOS protects greywall.json anywhere, Linux around the working directory.
        (
            "code",
            "write",
            "/private/tmp/elsewhere/greywall.json".into(),
            Macos(false),
        ),
        // The system readable lists are the platforms' own.
        (
            "code-strict",
            "read",
            "/System/Library/x".into(),
            Macos(true),
        ),
        (
            "code-strict",
            "read",
            "/private/etc/hosts".into(),
            Macos(true),
        ),
        (
            "code-strict",
            "read",
            "/proc/self/status".into(),
            Macos(false),
        ),
    ];
    let mut facts = Facts::new(CWD, HOME);
    facts.anchors.tmp = "/private/var/folders/xy/T".into();
    facts.anchors.git_common = Some(c(".git"));
    let values = bind(&facts);
    let mut failures = Vec::new();
    let mut differences = 0;
    for (name, op, path, expect) in &cases {
        let (_, pol) = policies.iter().find(|(n, _)| n == name).unwrap();
        let text = compile(pol);
        let prof = sbpl::read(&text).unwrap();
        let (sb_op, model_op) = match *op {
            "read" => ("file-read-data", Op::Read(path.clone())),
            _ => ("file-write-data", Op::Write(path.clone())),
        };
        let rule = prof.decide(sb_op, &Object::Path(path.clone()), &values);
        let model = decide::decide(pol, &facts, &model_op);
        let want = match expect {
            Same => model.allowed,
            Macos(w) => {
                differences += usize::from(*w != model.allowed);
                *w
            }
        };
        // Where the platforms agree, the deciding rule is the same kind of rule.
        if *expect == Same
            && let Some(r) = &model.rule
            && !same_kind(r.kind, &rule.section)
        {
            failures.push(format!(
                "{name}: {op} {path}: decided by the profile's `{}` (line {}), by decide's {:?}",
                rule.section, rule.line, r.kind
            ));
        }
        if rule.allow != want {
            failures.push(format!(
                "{name}: {op} {path}: profile says {} (rule at line {}), expected {} (decide: {})",
                if rule.allow { "allow" } else { "deny" },
                rule.line,
                if want { "allow" } else { "deny" },
                model.because
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        differences >= 3,
        "the documented differences are real differences"
    );
}

#[test]
fn rename_guards_cover_protected_parents() {
    let code = load(&Input::Template("code".into())).policy.unwrap();
    let prof = sbpl::read(&compile(&code)).unwrap();
    let values = bind(&Facts::new(CWD, HOME));
    let unlink = |p: &str| prof.allows("file-write-unlink", &Object::Path(p.into()), &values);
    // Moving `.git` (or the working directory, or an ancestor) away would take `.git/hooks`
    // out of its rule's reach.
    assert!(!unlink(&format!("{CWD}/.git")));
    assert!(!unlink(&format!("{CWD}/sub/.git")));
    assert!(!unlink(CWD));
    assert!(!unlink("/Users"));
    assert!(!unlink(&format!("{HOME}/.ssh")));
    // Ordinary files stay removable.
    assert!(unlink(&format!("{CWD}/src/main.rs")));
    assert!(unlink(&format!("{CWD}/.gitignore")));
}

#[test]
fn network_only_reaches_the_proxy_ports() {
    let p = policy(r#"{"network": {"allowedDomains": ["github.com"], "httpProxyPort": 8080}}"#);
    let prof = sbpl::read(&compile(&p)).unwrap();
    let v = BTreeMap::new();
    assert!(prof.allows("network-outbound", &Object::Loopback(8080), &v));
    assert!(prof.allows("network-outbound", &Object::Loopback(1080), &v));
    assert!(!prof.allows("network-outbound", &Object::Loopback(3128), &v));
    assert!(!prof.allows("network-outbound", &Object::Other, &v));
    assert!(!prof.allows("network-bind", &Object::Loopback(8080), &v));
    let none = sbpl::read(&compile(&policy("{}"))).unwrap();
    assert!(!none.allows("network-outbound", &Object::Loopback(3128), &v));
    let sock = policy(r#"{"network": {"allowUnixSockets": ["/private/var/run/x.sock"]}}"#);
    let prof = sbpl::read(&compile(&sock)).unwrap();
    let path = |s: &str| Object::Path(s.into());
    assert!(prof.allows("network-outbound", &path("/private/var/run/x.sock"), &v));
    assert!(!prof.allows(
        "network-outbound",
        &path("/private/var/run/docker.sock"),
        &v
    ));
    assert!(!prof.allows(
        "network-outbound",
        &path("/private/tmp/greywall-501/proxyd.sock"),
        &v
    ));
    let relaxed = sbpl::read(&compile(&policy(
        r#"{"network": {"allowedDomains": ["*"]}}"#,
    )))
    .unwrap();
    assert!(relaxed.allows("network-outbound", &Object::Other, &v));
}
