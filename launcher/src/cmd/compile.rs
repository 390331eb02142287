//! `greywall compile`: write the artifacts for a policy into the cache and say where.

use std::path::PathBuf;
use std::process::ExitCode;

use greywall_compiler::compile::{self, Source};
use greywall_compiler::diagnostic::{self, RenderOptions};
use greywall_compiler::load::Input;
use greywall_compiler::templates;

use super::print;
use crate::cli::{CompileSource, EXIT_USAGE, Target};
use crate::exec::{cache_root, compile_env};

pub fn run(source: &CompileSource, target: Target, json: bool, color: bool) -> ExitCode {
    if target != Target::Linux {
        eprintln!(
            "greywall: the macOS (Seatbelt) backend is not implemented yet; only --target linux is available"
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let env = match compile_env() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("greywall: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let src = match source {
        CompileSource::Discover(settings) => Source::Discover {
            settings: settings.clone(),
        },
        CompileSource::Named(name) => {
            let path = PathBuf::from(name);
            if path.exists()
                || name.contains('/')
                || name.ends_with(".json") && templates::find(name).is_none()
            {
                Source::Named(Input::File(path))
            } else {
                Source::Named(Input::Template(name.clone()))
            }
        }
    };
    let compiled = match compile::compile(&src, &env) {
        Ok(c) => c,
        Err(f) => {
            eprint!(
                "{}",
                diagnostic::render_all(&f.diagnostics, &f.sources, RenderOptions { color }, 50)
            );
            let io = f
                .diagnostics
                .iter()
                .any(|d| d.primary.is_none() && d.path.is_some());
            return ExitCode::from(if io { EXIT_USAGE } else { 1 });
        }
    };
    if !compiled.diagnostics.is_empty() {
        eprint!(
            "{}",
            diagnostic::render_all(
                &compiled.diagnostics,
                &compiled.sources,
                RenderOptions { color },
                50
            )
        );
    }
    let Some(root) = cache_root() else {
        eprintln!("greywall: cannot find a cache directory: set HOME or XDG_CACHE_HOME");
        return ExitCode::from(EXIT_USAGE);
    };
    let cache = greywall_compiler::cache::Cache::new(root);
    let cwd = env.discover.cwd.clone();
    // The index entry `greywall exec` will look for: discovery, or `exec -s FILE`.
    let settings = match (source, &src) {
        (CompileSource::Discover(s), _) => s.clone(),
        (_, Source::Named(Input::File(p))) => Some(p.clone()),
        (CompileSource::Named(n), _) => Some(PathBuf::from(format!("template:{n}"))),
    };
    let inv = crate::exec::invocation_for(&cwd, settings.as_deref());
    let written = match compile::store(&compiled, &cache, &inv) {
        Ok(w) => w,
        Err(e) => {
            eprintln!(
                "greywall: cannot write the artifact cache {}: {e}",
                cache.root.display()
            );
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let text = if json {
        let doc = serde_json::json!({
            "key": compiled.key,
            "policy": compiled.origin,
            "target": "linux",
            "artifacts": {
                "linux_plan": written.plan,
                "bwrap_args": written.bwrap,
                "bwrap_inner_plan": written.inner_plan,
                "index": written.index,
            },
            "notes": compiled.resolved.notes,
        });
        let mut t = serde_json::to_string_pretty(&doc).unwrap_or_default();
        t.push('\n');
        t
    } else {
        let mut t = format!("compiled {} -> {}\n", compiled.origin, compiled.key);
        t.push_str(&format!("  linux plan   {}\n", written.plan.display()));
        t.push_str(&format!("  bwrap argv   {}\n", written.bwrap.display()));
        for n in &compiled.resolved.notes {
            t.push_str(&format!("  note: {n}\n"));
        }
        t
    };
    print(&text)
}
