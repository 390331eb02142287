//! Fuzzes the JSONC reader alone: it must return a value or an error diagnostic, never panic,
//! and every span it reports lies inside the text.
#![no_main]

use greywall_compiler::config;
use greywall_compiler::jsonc;
use greywall_compiler::source::SourceId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (root, diags) = jsonc::parse(&text, SourceId(0));
    if root.is_none() {
        assert!(diags.iter().any(|d| d.is_error()));
    }
    for d in &diags {
        if let Some(span) = d.primary {
            assert!(span.start <= span.end && span.end as usize <= text.len());
        }
    }
    if let Some(root) = root {
        let _ = root.to_json();
        let _ = config::decode_file(&root);
    }
});
