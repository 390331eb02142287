//! `greywall lint`: every problem in one or more policies, in the format CI wants.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use greywall_compiler::diagnostic::{self, Code, Diagnostic, RenderOptions, Severity};
use greywall_compiler::discover;
use greywall_compiler::lint::{self, LintEnv};
use greywall_compiler::load::{self, Input};
use greywall_compiler::report::{self, FileReport};
use greywall_compiler::source::{SourceId, Sources};

use super::{discover_env, lint_env, print};
use crate::cli::{EXIT_USAGE, Format};

/// Loads and lints one policy.
fn check(input: &Input, env: &LintEnv) -> FileReport {
    let loaded = load::load(input);
    let mut diags = loaded.diagnostics.clone();
    if let Some(policy) = &loaded.policy {
        // The policy as it applies here (platform blocks), and its own expectations.
        let host = greywall_compiler::model::Platform::host();
        let view = policy.for_platform(host, &mut diags);
        diags.extend(lint::lint(&view, &loaded.sources, SourceId(0), env));
        if let Ok(facts) = super::explain::facts(&loaded) {
            diags.extend(greywall_compiler::expect::check(
                policy,
                host,
                &facts,
                &loaded.sources,
            ));
        }
    }
    diagnostic::sort(&mut diags);
    FileReport {
        sources: loaded.sources,
        diagnostics: diags,
    }
}

pub fn run(
    files: &[PathBuf],
    settings: Option<&Path>,
    format: Format,
    deny_warnings: bool,
    color: bool,
) -> ExitCode {
    let env = match lint_env() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("greywall: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut reports = Vec::new();
    if files.is_empty() {
        let denv = match discover_env() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("greywall: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        };
        let mut notes = Vec::new();
        match discover::discover(settings, &denv, &mut notes) {
            Ok(found) => {
                let mut r = check(&found.input(), &env);
                notes.extend(r.diagnostics);
                r.diagnostics = notes;
                reports.push(r);
            }
            Err(d) => {
                notes.push(d);
                reports.push(FileReport {
                    sources: Sources::new(),
                    diagnostics: notes,
                });
            }
        }
    } else {
        for f in files {
            reports.push(check(&Input::File(f.clone()), &env));
        }
    }

    let text = match format {
        Format::Human => human(&reports, files.len().max(1), color),
        Format::Json => report::json(&reports),
        Format::Sarif => report::sarif(&reports, env!("CARGO_PKG_VERSION")),
        Format::Github => report::github(&reports),
    };
    let printed = print(&text);
    if printed != ExitCode::SUCCESS {
        return printed;
    }

    let all: Vec<&Diagnostic> = reports.iter().flat_map(|r| &r.diagnostics).collect();
    // A file that cannot be read at all is an I/O failure, not a policy problem.
    let io_failure = all
        .iter()
        .any(|d| matches!(d.code, Code::Io | Code::SettingsNotFound) && d.primary.is_none());
    if io_failure {
        return ExitCode::from(EXIT_USAGE);
    }
    let errors = all.iter().any(|d| d.severity == Severity::Error);
    let warnings = all.iter().any(|d| d.severity == Severity::Warning);
    if errors || (deny_warnings && warnings) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn human(reports: &[FileReport], n_files: usize, color: bool) -> String {
    let mut out = String::new();
    let mut all = Vec::new();
    for r in reports {
        for d in &r.diagnostics {
            out.push_str(&diagnostic::render(d, &r.sources, RenderOptions { color }));
            out.push('\n');
            all.push(d.severity);
        }
    }
    let errors = all.iter().filter(|s| **s == Severity::Error).count();
    let warnings = all.iter().filter(|s| **s == Severity::Warning).count();
    let files = if n_files == 1 { "policy" } else { "policies" };
    if errors + warnings == 0 {
        out.push_str(&format!("checked {n_files} {files}: no problems found\n"));
    } else {
        out.push_str(&format!(
            "checked {n_files} {files}: {errors} error{}, {warnings} warning{}\n",
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" }
        ));
    }
    out
}
