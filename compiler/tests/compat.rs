//! Greywall and Fence configurations load unchanged: every file in `fixtures/greywall/` is
//! written the way Greywall's own templates and documentation write them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use greywall_compiler::diagnostic::Severity;
use greywall_compiler::load::{Input, load};

#[test]
fn greywall_and_fence_configs_load_unchanged() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/greywall");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let loaded = load(&Input::File(path.clone()));
        let errors: Vec<_> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| format!("{} {}", d.code, d.message))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        assert!(loaded.policy.is_some(), "{}", path.display());
        n += 1;
    }
    assert!(n >= 10, "expected the Greywall fixtures, found {n}");
}

#[test]
fn greywall_code_template_means_what_it_meant() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/greywall/code.json");
    let loaded = load(&Input::File(path));
    let p = loaded.policy.unwrap();
    assert_eq!(p.network.allowed_domains.len(), 31);
    assert_eq!(p.network.denied_domains.len(), 5);
    // `~/.cache/**` and `~/.cache` are the same rule; `~/.claude*` and `~/.claude/**` are not.
    assert_eq!(p.filesystem.allow_write.len(), 19);
    assert_eq!(p.filesystem.deny_read.len(), 14);
    assert_eq!(p.command.deny.len(), 35);
    assert!(p.allow_pty.value && p.network.allow_local_binding.value);
    assert!(p.network.local_outbound());
    // Fence-era files did not set defaultDenyRead; greywall defaults to deny-by-default reads.
    assert!(p.filesystem.default_deny_read.value);
}
