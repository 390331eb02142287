//! The subcommands.

mod check;
mod compile;
mod config;
mod convert;
pub mod explain;
mod fmt;
mod lint;
pub mod logs;
mod templates;
mod test;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use greywall_compiler::discover::DiscoverEnv;
use greywall_compiler::lint::LintEnv;

use crate::cli::{Color, Command, EXIT_USAGE, HELP};

pub fn run(command: Command) -> ExitCode {
    match command {
        Command::ExecPlan { plan, bridge, argv } => {
            if let Some(spec) = bridge
                && let Err(e) = crate::bridge::set_inherited(&spec)
            {
                eprintln!("greywall: {e}");
                return ExitCode::from(crate::apply::EXIT_SETUP);
            }
            crate::apply::exec_plan_file(&plan, &argv)
        }
        Command::NsPool { dir } => crate::nspool::daemon(&dir),
        Command::Exec {
            cached,
            settings,
            backend,
            require_userns,
            network,
            profile,
            argv,
        } => {
            if require_userns {
                crate::apply::require_userns();
            }
            crate::bridge::set_options(network);
            crate::exec::run(
                cached,
                settings.as_deref(),
                profile.as_deref(),
                backend,
                &argv,
            )
        }
        Command::Check {
            settings,
            target: crate::cli::Target::Macos,
        } => check::run_macos(settings.as_deref()),
        Command::Check { settings, .. } => check::run(settings.as_deref()),
        Command::Logs {
            count,
            denied,
            json,
        } => logs::run(count, denied, json),
        Command::SocksConnect {
            socks_port,
            host,
            port,
        } => crate::socks_connect::run(socks_port, &host, port),
        Command::ProbeUserns => check::probe_userns(),
        Command::Explain(args) => explain::run(&args),
        Command::Compile {
            source,
            target,
            json,
            color,
            profile,
        } => compile::run(
            &source,
            target,
            json,
            use_color(color, true),
            profile.as_deref(),
        ),
        Command::Test {
            files,
            settings,
            profile,
            color,
        } => test::run(
            &files,
            settings.as_deref(),
            profile.as_deref(),
            use_color(color, true),
        ),
        Command::Fmt { files, check } => fmt::run(&files, check),
        Command::Convert { file, to, output } => convert::run(&file, to, output.as_deref()),
        Command::Help => print(HELP),
        Command::Version => print(&format!("greywall {}\n", env!("CARGO_PKG_VERSION"))),
        Command::Schema => print(&greywall_compiler::schema::schema_text()),
        Command::TemplatesList => templates::list(),
        Command::TemplatesShow { name } => templates::show(&name),
        Command::ConfigShow {
            settings,
            json,
            color,
        } => config::show(settings.as_deref(), json, use_color(color, false)),
        Command::Lint {
            files,
            settings,
            format,
            deny_warnings,
            color,
        } => lint::run(
            &files,
            settings.as_deref(),
            format,
            deny_warnings,
            use_color(color, true),
        ),
    }
}

/// Writes to stdout; a closed pipe (`greywall schema | head`) is not an error.
pub fn print(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("greywall: cannot write output: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn use_color(c: Color, stderr: bool) -> bool {
    match c {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && if stderr {
                    std::io::stderr().is_terminal()
                } else {
                    std::io::stdout().is_terminal()
                }
        }
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

/// The facts discovery needs, read from the process environment.
pub fn discover_env() -> Result<DiscoverEnv, String> {
    let cwd = std::env::current_dir()
        .map_err(|e| format!("cannot determine the working directory: {e}"))?;
    Ok(DiscoverEnv {
        cwd,
        home: env_path("HOME"),
        xdg_config_home: env_path("XDG_CONFIG_HOME"),
        uid: crate::sys::real_uid(),
    })
}

/// The facts lint needs, read from the process environment.
pub fn lint_env() -> Result<LintEnv, String> {
    let d = discover_env()?;
    let home = d
        .home
        .clone()
        .ok_or("HOME is not set; greywall needs it to resolve `~`")?;
    let path_dirs = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .filter(|p| p.is_absolute())
                .map(|p| p.to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    Ok(LintEnv {
        home: home.to_string_lossy().into_owned(),
        cwd: d.cwd.to_string_lossy().into_owned(),
        path_dirs,
        config_dir: d.config_dir().map(|p| p.to_string_lossy().into_owned()),
        cache_dir: env_path("XDG_CACHE_HOME")
            .map(|p| p.join("greywall"))
            .or_else(|| d.home.as_ref().map(|h| h.join(".cache").join("greywall")))
            .map(|p| p.to_string_lossy().into_owned()),
    })
}

/// Writes `text` to `path` for `fmt` and `convert -o`. A regular file (or a new one) is
/// replaced atomically, through a temporary file next to it and a rename, so that a crash
/// leaves the old file or the new one, never half of each; anything else that exists
/// (`/dev/stdout`, `/dev/null`, a pipe) is written into, never replaced.
fn replace_file(path: &Path, text: &str) -> std::io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return std::fs::write(path, text);
    }
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".greywall-tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}
