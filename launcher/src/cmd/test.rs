//! `greywall test`: check the expectations (`expect`) written in policies.
//!
//! Each expectation is decided by the same pure decision function as `greywall explain`, over
//! the policy as it applies on this platform. A failure is reported at its `expect`, with the
//! rule that decided otherwise. Exit status: 0 every expectation holds, 1 one fails (or the
//! policy has errors), 2 usage or I/O failure.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use greywall_compiler::diagnostic::{self, Code, Diagnostic, RenderOptions};
use greywall_compiler::discover;
use greywall_compiler::expect;
use greywall_compiler::load::{self, Input, LoadOptions};
use greywall_compiler::model::Platform;

use super::{discover_env, print};
use crate::cli::EXIT_USAGE;

pub fn run(
    files: &[PathBuf],
    settings: Option<&Path>,
    profile: Option<&str>,
    color: bool,
) -> ExitCode {
    let mut inputs = Vec::new();
    if files.is_empty() {
        let env = match discover_env() {
            Ok(e) => e,
            Err(e) => {
                eprintln!("greywall: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        };
        let mut notes = Vec::new();
        match discover::discover(settings, &env, &mut notes) {
            Ok(found) => inputs.push((found.input(), found.to_string())),
            Err(d) => {
                eprint!(
                    "{}",
                    diagnostic::render(&d, &Default::default(), RenderOptions { color })
                );
                return ExitCode::from(EXIT_USAGE);
            }
        }
    } else {
        for f in files {
            inputs.push((Input::File(f.clone()), f.display().to_string()));
        }
    }
    let opts = LoadOptions {
        profile: profile.map(str::to_string),
    };
    let mut out = String::new();
    let (mut passed, mut failed, mut broken) = (0usize, 0usize, false);
    let mut io = false;
    for (input, name) in &inputs {
        let loaded = load::load_with(input, &opts);
        let Some(policy) = loaded.policy.as_ref() else {
            eprint!(
                "{}",
                diagnostic::render_all(
                    &loaded.diagnostics,
                    &loaded.sources,
                    RenderOptions { color },
                    50
                )
            );
            io |= loaded.diagnostics.iter().any(|d| {
                matches!(d.code, Code::Io | Code::SettingsNotFound) && d.primary.is_none()
            });
            broken = true;
            continue;
        };
        let facts = match super::explain::facts(&loaded) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("greywall: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        };
        let (outcomes, problems) = expect::run(policy, Platform::host(), &facts);
        if outcomes.is_empty() && problems.is_empty() {
            out.push_str(&format!("{name}: no expectations\n"));
            continue;
        }
        out.push_str(&format!("{name}:\n"));
        for o in &outcomes {
            let mark = if o.passed() { "ok  " } else { "FAIL" };
            out.push_str(&format!(
                "  {mark} {}  ({})\n",
                o.expectation.value,
                loaded.sources.locate(o.expectation.origin)
            ));
        }
        let mut diags: Vec<Diagnostic> = problems;
        diags.extend(expect::failures(&outcomes, &loaded.sources));
        diagnostic::sort(&mut diags);
        passed += outcomes.iter().filter(|o| o.passed()).count();
        failed += diags.iter().filter(|d| d.is_error()).count();
        if !diags.is_empty() {
            eprint!(
                "{}",
                diagnostic::render_all(&diags, &loaded.sources, RenderOptions { color }, 50)
            );
        }
    }
    out.push_str(&format!(
        "{} expectation{}: {passed} passed, {failed} failed\n",
        passed + failed,
        if passed + failed == 1 { "" } else { "s" }
    ));
    let printed = print(&out);
    if printed != ExitCode::SUCCESS {
        return printed;
    }
    if io {
        ExitCode::from(EXIT_USAGE)
    } else if broken || failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
