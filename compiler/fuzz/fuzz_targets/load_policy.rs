//! Fuzzes the whole loader: JSONC parsing, decoding, lowering, `extends`, merging and
//! diagnostic rendering. Malformed input must yield diagnostics, never a panic, and a policy
//! exactly when there is no error.
#![no_main]

use std::path::PathBuf;

use greywall_compiler::diagnostic::{self, RenderOptions};
use greywall_compiler::load::{self, Input};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let loaded = load::load(&Input::Text {
        name: "greywall.json".to_string(),
        text: String::from_utf8_lossy(data).into_owned(),
        // Relative `extends` paths resolve into a directory that does not exist.
        dir: PathBuf::from("/nonexistent/greywall-fuzz"),
    });
    assert_eq!(loaded.policy.is_some(), !loaded.has_errors());
    for d in &loaded.diagnostics {
        if let Some(span) = d.primary {
            let _ = loaded.sources.locate(span);
        }
    }
    let _ = diagnostic::render_all(
        &loaded.diagnostics,
        &loaded.sources,
        RenderOptions { color: true },
        usize::MAX,
    );
});
