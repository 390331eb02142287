//! `greywall templates list|show`.

use std::fmt::Write as _;
use std::process::ExitCode;

use greywall_compiler::suggest::did_you_mean;
use greywall_compiler::templates;

use super::print;
use crate::cli::EXIT_USAGE;

pub fn list() -> ExitCode {
    let width = templates::names().map(str::len).max().unwrap_or(0);
    let mut out = String::new();
    for t in templates::TEMPLATES {
        let _ = writeln!(out, "{:width$}  {}", t.name, t.summary);
    }
    print(&out)
}

pub fn show(name: &str) -> ExitCode {
    match templates::find(name) {
        Some(t) => print(t.json),
        None => {
            eprintln!("greywall: no built-in template named '{name}'");
            match did_you_mean(name, templates::names()) {
                Some(s) => eprintln!("  help: did you mean '{s}'?"),
                None => eprintln!("  help: 'greywall templates list' shows them"),
            }
            ExitCode::from(EXIT_USAGE)
        }
    }
}
