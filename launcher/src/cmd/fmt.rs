//! `greywall fmt`: rewrite `.gw` files in the canonical layout, or (`--check`) list those that
//! are not. Exit status: 0 done (or all formatted), 1 a file needs formatting or has syntax
//! errors, 2 a file cannot be read or written.

use std::path::PathBuf;
use std::process::ExitCode;

use greywall_compiler::diagnostic::{self, RenderOptions};
use greywall_compiler::gw;
use greywall_compiler::source::{SourceFile, SourceKind, Sources};

use crate::cli::EXIT_USAGE;

pub fn run(files: &[PathBuf], check: bool) -> ExitCode {
    let color = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut status = ExitCode::SUCCESS;
    for f in files {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("greywall: cannot read {}: {e}", f.display());
                return ExitCode::from(EXIT_USAGE);
            }
        };
        let mut sources = Sources::new();
        let id = sources.add(SourceFile::new(
            f.display().to_string(),
            SourceKind::File(f.clone()),
            text.clone(),
        ));
        let formatted = match gw::fmt::format(&text, id) {
            Ok(t) => t,
            Err(diags) => {
                eprint!(
                    "{}",
                    diagnostic::render_all(&diags, &sources, RenderOptions { color }, 50)
                );
                status = ExitCode::from(1);
                continue;
            }
        };
        if formatted == text {
            continue;
        }
        if check {
            println!("{} is not formatted", f.display());
            status = ExitCode::from(1);
            continue;
        }
        if let Err(e) = super::replace_file(f, &formatted) {
            eprintln!("greywall: cannot write {}: {e}", f.display());
            return ExitCode::from(EXIT_USAGE);
        }
        println!("formatted {}", f.display());
    }
    status
}
