//! The user documentation covers what the code defines: every diagnostic code has a section in
//! `docs/diagnostics.md`, every `greywall.json` key is described in `docs/configuration.md`, and
//! every built-in template has a section in `docs/templates.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use greywall_compiler::config::{
    CommandConfig, ConfigFile, FilesystemConfig, NetworkConfig, SshConfig,
};
use greywall_compiler::diagnostic::Code;
use greywall_compiler::templates::TEMPLATES;

fn doc(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("docs")
        .join(name);
    std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
        .unwrap()
}

/// The text of every Markdown heading (`#`, `##`, …) outside fenced code blocks.
fn headings(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let level = line.chars().take_while(|c| *c == '#').count();
        if level > 0 && line[level..].starts_with(' ') {
            out.push((level, line[level..].trim().to_string()));
        }
    }
    out
}

#[test]
fn every_diagnostic_code_has_a_section() {
    let text = doc("diagnostics.md");
    let h2: Vec<String> = headings(&text)
        .into_iter()
        .filter(|(level, _)| *level == 2)
        .map(|(_, h)| h)
        .collect();
    let missing: Vec<String> = Code::ALL
        .iter()
        .filter(|c| {
            !h2.iter()
                .any(|h| h.split_whitespace().next() == Some(c.id()))
        })
        .map(|c| format!("## {} {}", c.id(), c.name()))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/diagnostics.md has no section for:\n{}",
        missing.join("\n")
    );

    // And no section for a code that does not exist (a renamed or removed code).
    let known: Vec<&str> = Code::ALL.iter().map(|c| c.id()).collect();
    let stale: Vec<&String> = h2
        .iter()
        .filter(|h| {
            let first = h.split_whitespace().next().unwrap_or("");
            first.len() == 4
                && (first.starts_with('E') || first.starts_with('W'))
                && first[1..].chars().all(|c| c.is_ascii_digit())
                && !known.contains(&first)
        })
        .collect();
    assert!(
        stale.is_empty(),
        "docs/diagnostics.md documents codes that do not exist: {stale:?}"
    );
}

#[test]
fn every_config_key_is_documented() {
    let text = doc("configuration.md");
    let sections: [(&str, &[&str]); 5] = [
        ("top level", ConfigFile::KEYS),
        ("network", NetworkConfig::KEYS),
        ("filesystem", FilesystemConfig::KEYS),
        ("command", CommandConfig::KEYS),
        ("ssh", SshConfig::KEYS),
    ];
    let mut missing = Vec::new();
    for (section, keys) in sections {
        for key in keys {
            if !text.contains(&format!("`{key}`")) {
                missing.push(format!("{section}: {key}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not mention these keys (as `key`):\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_template_has_a_section() {
    let text = doc("templates.md");
    let names: Vec<String> = headings(&text)
        .into_iter()
        .map(|(_, h)| h.trim_matches('`').to_string())
        .collect();
    let missing: Vec<&str> = TEMPLATES
        .iter()
        .map(|t| t.name)
        .filter(|n| !names.iter().any(|h| h == n))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/templates.md has no heading for these templates: {missing:?}"
    );
}
