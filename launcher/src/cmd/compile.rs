//! `greywall compile`: write the artifacts for a policy into the cache and say where.
//!
//! `--target linux` (the default) builds the launch plan and the bwrap argument vector for this
//! machine; `--target macos` builds the Seatbelt profile, which depends on the policy alone and
//! can be built on any host; `--target all` builds both.

use std::path::PathBuf;
use std::process::ExitCode;

use greywall_compiler::cache::Cache;
use greywall_compiler::compile::{self, Failed, Source};
use greywall_compiler::diagnostic::{self, Diagnostic, RenderOptions};
use greywall_compiler::load::Input;
use greywall_compiler::source::Sources;
use greywall_compiler::templates;

use super::print;
use crate::cli::{CompileSource, EXIT_USAGE, Target};
use crate::exec::{cache_root, compile_env};

/// Prints the diagnostics of a failed compile; the exit code.
fn failed(f: &Failed, color: bool) -> ExitCode {
    eprint!(
        "{}",
        diagnostic::render_all(&f.diagnostics, &f.sources, RenderOptions { color }, 50)
    );
    let io = f
        .diagnostics
        .iter()
        .any(|d| d.primary.is_none() && d.path.is_some());
    ExitCode::from(if io { EXIT_USAGE } else { 1 })
}

fn warnings(diags: &[Diagnostic], sources: &Sources, color: bool) {
    if !diags.is_empty() {
        eprint!(
            "{}",
            diagnostic::render_all(diags, sources, RenderOptions { color }, 50)
        );
    }
}

pub fn run(
    source: &CompileSource,
    target: Target,
    json: bool,
    color: bool,
    profile: Option<&str>,
) -> ExitCode {
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
                || name.ends_with(".gw")
                || name.ends_with(".json") && templates::find(name).is_none()
            {
                Source::Named(Input::File(path))
            } else {
                Source::Named(Input::Template(name.clone()))
            }
        }
    };
    let Some(root) = cache_root() else {
        eprintln!("greywall: cannot find a cache directory: set HOME or XDG_CACHE_HOME");
        return ExitCode::from(EXIT_USAGE);
    };
    let cache = Cache::new(root);
    let cwd = env.discover.cwd.clone();
    // The index entry `greywall exec` will look for: discovery, or `exec -s FILE`.
    let settings = match (source, &src) {
        (CompileSource::Discover(s), _) => s.clone(),
        (_, Source::Named(Input::File(p))) => Some(p.clone()),
        (CompileSource::Named(n), _) => Some(PathBuf::from(format!("template:{n}"))),
    };
    // A profile's plan has an index entry of its own, never the one plain `exec` reads.
    let settings = crate::exec::profile_key(settings.as_deref(), profile);
    let inv = crate::exec::invocation_for(&cwd, settings.as_deref());
    let write_error = |e: std::io::Error| {
        eprintln!(
            "greywall: cannot write the artifact cache {}: {e}",
            cache.root.display()
        );
        ExitCode::from(EXIT_USAGE)
    };

    let mut doc = serde_json::Map::new();
    let mut artifacts = serde_json::Map::new();
    let mut text = String::new();
    let target_name = match target {
        Target::Linux => "linux",
        Target::Macos => "macos",
        Target::All => "all",
    };
    doc.insert("target".into(), target_name.into());

    if matches!(target, Target::Linux | Target::All) {
        let opts = greywall_compiler::load::LoadOptions {
            profile: profile.map(str::to_string),
        };
        let compiled = match compile::compile_with(&src, &env, &opts) {
            Ok(c) => c,
            Err(f) => return failed(&f, color),
        };
        warnings(&compiled.diagnostics, &compiled.sources, color);
        let written = match compile::store(&compiled, &cache, &inv) {
            Ok(w) => w,
            Err(e) => return write_error(e),
        };
        doc.insert("key".into(), compiled.key.clone().into());
        doc.insert("policy".into(), compiled.origin.clone().into());
        artifacts.insert("linux_plan".into(), path_value(&written.plan));
        artifacts.insert("bwrap_args".into(), path_value(&written.bwrap));
        artifacts.insert("bwrap_inner_plan".into(), path_value(&written.inner_plan));
        artifacts.insert("index".into(), path_value(&written.index));
        doc.insert("notes".into(), compiled.resolved.notes.clone().into());
        text.push_str(&format!(
            "compiled {} -> {}\n",
            compiled.origin, compiled.key
        ));
        text.push_str(&format!("  linux plan   {}\n", written.plan.display()));
        text.push_str(&format!("  bwrap argv   {}\n", written.bwrap.display()));
        for n in &compiled.resolved.notes {
            text.push_str(&format!("  note: {n}\n"));
        }
    }

    if matches!(target, Target::Macos | Target::All) {
        let compiled = match compile::compile_macos(&src, &env.discover) {
            Ok(c) => c,
            Err(f) => return failed(&f, color),
        };
        if target == Target::Macos {
            warnings(&compiled.diagnostics, &compiled.sources, color);
            doc.insert("key".into(), compiled.key.clone().into());
            doc.insert("policy".into(), compiled.origin.clone().into());
            text.push_str(&format!(
                "compiled {} -> {}\n",
                compiled.origin, compiled.key
            ));
        }
        let written = match compile::store_macos(&compiled, &cache, &inv) {
            Ok(w) => w,
            Err(e) => return write_error(e),
        };
        let params: Vec<String> = compiled.profile.params.iter().map(|p| p.name()).collect();
        artifacts.insert("seatbelt_profile".into(), path_value(&written.profile));
        artifacts.insert("seatbelt_index".into(), path_value(&written.index));
        doc.insert("seatbelt_key".into(), compiled.key.clone().into());
        doc.insert("seatbelt_params".into(), params.clone().into());
        text.push_str(&format!("  seatbelt     {}\n", written.profile.display()));
        text.push_str(&format!("  parameters   {}\n", params.join(" ")));
    }
    doc.insert("artifacts".into(), artifacts.into());

    let out = if json {
        let mut t =
            serde_json::to_string_pretty(&serde_json::Value::Object(doc)).unwrap_or_default();
        t.push('\n');
        t
    } else {
        text
    };
    print(&out)
}

fn path_value(p: &std::path::Path) -> serde_json::Value {
    p.to_string_lossy().into_owned().into()
}
