//! Golden files for the macOS backend: every shipped template and every fixture policy,
//! compiled to a Seatbelt profile. The profiles hold no machine paths (those are parameters),
//! so no fixture file system is needed.
//!
//! On drift the test fails with a diff hint; `GREYWALL_BLESS=1 cargo test -p
//! greywall-compiler --test golden_macos` rewrites the files. Every profile is also read back
//! by the test SBPL reader (`tests/sbpl/`), which refuses unbalanced forms, unknown operations
//! and filters, and badly escaped strings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sbpl;

use std::path::Path;

use greywall_compiler::backend::seatbelt::{self, Options};
use greywall_compiler::load::{Input, load};
use greywall_compiler::templates::TEMPLATES;

fn compile(input: Input, opts: &Options) -> String {
    let loaded = load(&input);
    let policy = loaded
        .policy
        .unwrap_or_else(|| panic!("{input:?} loads: {:?}", loaded.diagnostics));
    match seatbelt::profile(&policy, opts) {
        Ok(p) => p.text,
        Err(e) => panic!("{input:?}: {e:?}"),
    }
}

/// Policies written for the macOS backend's edge cases: built-in anchors, `..`, glob classes,
/// metacharacters in literal names, sockets, ports, relaxed mode.
const EDGE_CASES: &[(&str, &str)] = &[
    (
        "anchors",
        r#"{"filesystem": {"defaultDenyRead": true,
            "allowRead": ["$git_root", "$xdg_config/tool", "$env.SDK_ROOT/lib"],
            "allowWrite": ["$tmp/build", "$xdg_cache/tool", "../shared", "../../up2"],
            "denyWrite": ["$git_common/info/**"], "denyRead": ["$env.SECRETS"]}}"#,
    ),
    (
        "globs",
        r#"{"filesystem": {"allowWrite": ["."],
            "denyWrite": ["*.key", "a/**/b/*.pem", "id_?", "build/[!x]?", "log[0-9].txt",
                          "c++ (copy)/$x^y|z{1}", "~/.ssh/*/known_hosts", "/opt/[]a-c]"],
            "denyRead": ["notes (old).txt", "/var/db/x.d"]}}"#,
    ),
    (
        "network-sockets",
        r#"{"network": {"allowedDomains": ["github.com"], "httpProxyPort": 8080, "socksProxyPort": 1081,
            "allowUnixSockets": ["~/.colima/docker.sock", "/tmp/agent.*"], "allowLocalBinding": true,
            "allowLocalOutbound": false},
            "allowPty": false, "filesystem": {"allowGitConfig": true, "defaultDenyRead": false}}"#,
    ),
    (
        "relaxed-all-sockets",
        r#"{"network": {"allowedDomains": ["*"], "deniedDomains": ["evil.example.com"],
            "allowAllUnixSockets": true}}"#,
    ),
];

/// (golden name, profile) for every template and every valid fixture.
fn cases() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in TEMPLATES {
        let opts = Options::default();
        out.push((
            t.name.to_string(),
            compile(Input::Template(t.name.to_string()), &opts),
        ));
    }
    for (name, json) in EDGE_CASES {
        let input = Input::Text {
            name: format!("{name}.json"),
            text: (*json).to_string(),
            dir: "/".into(),
        };
        out.push((format!("edge-{name}"), compile(input, &Options::default())));
    }
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for dir in ["greywall", "valid"] {
        let mut files: Vec<_> = std::fs::read_dir(fixtures.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for f in files {
            let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&f).unwrap();
            // A fixed name and directory: the golden must not depend on the checkout's path.
            let input = Input::Text {
                name: format!("{stem}.json"),
                text,
                dir: fixtures.join(dir),
            };
            let opts = Options {
                policy_files: vec![format!("/Users/dev/project/{stem}.json")],
            };
            let loaded = load(&input);
            if loaded.policy.is_none() {
                // Fixtures that extend files by relative path are covered by the load tests.
                continue;
            }
            out.push((format!("fixture-{dir}-{stem}"), compile(input, &opts)));
        }
    }
    out
}

#[test]
fn macos_profiles_match_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/macos");
    let bless = std::env::var_os("GREYWALL_BLESS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    let cases = cases();
    assert!(cases.len() >= TEMPLATES.len() + 5, "fixtures were found");
    for (name, text) in &cases {
        let path = dir.join(format!("{name}.sb"));
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, text).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(old) if old == *text => {}
            Ok(old) => {
                let line = old
                    .lines()
                    .zip(text.lines())
                    .position(|(a, b)| a != b)
                    .map_or(old.lines().count().min(text.lines().count()) + 1, |n| n + 1);
                stale.push(format!("{name}.sb (first difference at line {line})"));
            }
            Err(_) => stale.push(format!("{name}.sb (missing)")),
        }
    }
    if !bless {
        // No golden file without a case: a removed template must take its golden with it.
        let names: Vec<String> = cases.iter().map(|(n, _)| format!("{n}.sb")).collect();
        for e in std::fs::read_dir(&dir).unwrap() {
            let f = e.unwrap().file_name().to_string_lossy().into_owned();
            if !names.contains(&f) {
                stale.push(format!("{f} (no longer generated)"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "macOS profiles drifted: {stale:?}\nreview, then run `GREYWALL_BLESS=1 cargo test -p greywall-compiler --test golden_macos`"
    );
}

#[test]
fn every_profile_reads_back() {
    for (name, text) in cases() {
        if let Err(e) = sbpl::read(&text) {
            panic!("{name}: {e}\n{text}");
        }
    }
}
