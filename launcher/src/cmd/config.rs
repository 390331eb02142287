//! `greywall config show`: the effective policy and where each entry came from.

use std::path::Path;
use std::process::ExitCode;

use greywall_compiler::diagnostic::{self, RenderOptions};
use greywall_compiler::discover;
use greywall_compiler::effective;
use greywall_compiler::load;

use super::{discover_env, print};
use crate::cli::EXIT_USAGE;

pub fn show(settings: Option<&Path>, json: bool, color: bool) -> ExitCode {
    let env = match discover_env() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("greywall: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut notes = Vec::new();
    let found = match discover::discover(settings, &env, &mut notes) {
        Ok(f) => f,
        Err(d) => {
            let sources = Default::default();
            eprint!(
                "{}",
                diagnostic::render(&d, &sources, RenderOptions { color })
            );
            // A missing --settings file is an I/O failure.
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let loaded = load::load(&found.input());
    let mut diags = notes;
    diags.extend(loaded.diagnostics.iter().cloned());
    if !diags.is_empty() {
        eprint!(
            "{}",
            diagnostic::render_all(&diags, &loaded.sources, RenderOptions { color }, 50)
        );
    }
    let Some(policy) = &loaded.policy else {
        return ExitCode::from(1);
    };
    let text = if json {
        effective::to_json_text(policy, &loaded.sources, &found.to_string())
    } else {
        effective::render_text(policy, &loaded.sources, &found.to_string())
    };
    print(&text)
}
