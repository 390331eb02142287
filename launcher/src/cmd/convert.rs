//! `greywall convert`: a greywall.json as `.gw`, or a `.gw` file as greywall.json.
//!
//! Converts one file (its `extends` stays a reference; `include`d fragments are inlined), and
//! checks the result: the output is loaded again and must give the same rules, or nothing is
//! written. Comments and variables do not carry over. Exit status: 0 converted, 1 the policy
//! has errors, 2 usage or I/O failure.

use std::path::Path;
use std::process::ExitCode;

use greywall_compiler::diagnostic::{self, RenderOptions};
use greywall_compiler::gw;
use greywall_compiler::load::{self, Input};

use super::print;
use crate::cli::{EXIT_USAGE, Lang};

pub fn run(file: &Path, to: Option<Lang>, output: Option<&Path>) -> ExitCode {
    let color = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let from_gw = load::is_gw(file);
    let to = to.unwrap_or(if from_gw { Lang::Json } else { Lang::Gw });
    let (sources, layer, diags) = load::read_layer(&Input::File(file.to_path_buf()));
    if !diags.is_empty() {
        eprint!(
            "{}",
            diagnostic::render_all(&diags, &sources, RenderOptions { color }, 50)
        );
    }
    let Some(layer) = layer else {
        let io = diags
            .iter()
            .any(|d| d.primary.is_none() && d.path.is_some());
        return ExitCode::from(if io { EXIT_USAGE } else { 1 });
    };
    let (text, name) = match to {
        Lang::Gw => (gw::convert::to_gw(&layer), "converted.gw"),
        Lang::Json => (gw::convert::to_json(&layer), "converted.json"),
    };
    // Check the conversion before anyone relies on it.
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let (_, again, _) = load::read_layer(&Input::Text {
        name: name.into(),
        text: text.clone(),
        dir: dir.to_path_buf(),
    });
    if again.map(|l| l.without_origins()) != Some(layer.without_origins()) {
        eprintln!(
            "greywall: internal error: the converted policy does not say the same as {}; nothing written",
            file.display()
        );
        return ExitCode::from(EXIT_USAGE);
    }
    match output {
        None => print(&text),
        Some(out) => match super::replace_file(out, &text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("greywall: cannot write {}: {e}", out.display());
                ExitCode::from(EXIT_USAGE)
            }
        },
    }
}
