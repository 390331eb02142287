//! Fuzzes the `.gw` front-end: parsing, lowering (variables, sections, profiles, platform
//! blocks, expectations), `fmt` and both `convert` writers. Malformed input must yield
//! diagnostics, never a panic; a policy exactly when there is no error; formatting must be
//! idempotent, and a converted layer must load back to the same layer.
#![no_main]

use std::path::PathBuf;

use greywall_compiler::diagnostic::{self, RenderOptions};
use greywall_compiler::gw;
use greywall_compiler::load::{self, Input};
use greywall_compiler::source::SourceId;
use libfuzzer_sys::fuzz_target;

fn text(name: &str, text: String) -> Input {
    Input::Text {
        name: name.to_string(),
        text,
        // Relative `extends` and `include` paths resolve into a directory that does not exist.
        dir: PathBuf::from("/nonexistent/greywall-fuzz"),
    }
}

fuzz_target!(|data: &[u8]| {
    let src = String::from_utf8_lossy(data).into_owned();
    let loaded = load::load(&text("greywall.gw", src.clone()));
    assert_eq!(loaded.policy.is_some(), !loaded.has_errors());
    let _ = diagnostic::render_all(
        &loaded.diagnostics,
        &loaded.sources,
        RenderOptions { color: false },
        usize::MAX,
    );
    if let Ok(once) = gw::fmt::format(&src, SourceId(0)) {
        let twice = gw::fmt::format(&once, SourceId(0));
        assert_eq!(twice.as_deref(), Ok(once.as_str()), "fmt is not idempotent");
    }
    let (_, layer, _) = load::read_layer(&text("greywall.gw", src));
    if let Some(layer) = layer {
        let plain = layer.without_origins();
        for (name, out) in [
            ("x.gw", gw::convert::to_gw(&layer)),
            ("x.json", gw::convert::to_json(&layer)),
        ] {
            let (_, again, diags) = load::read_layer(&text(name, out.clone()));
            let again = again.map(|l| l.without_origins());
            assert_eq!(again.as_ref(), Some(&plain), "{name}:\n{out}\n{diags:?}");
        }
    }
});
