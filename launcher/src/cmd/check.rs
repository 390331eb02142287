//! `greywall check`: what this machine can enforce, and how faithfully it enforces a policy.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use greywall_compiler::fidelity::{self, Level};

use super::print;
use crate::cli::EXIT_USAGE;

/// Runs in a throw-away child: can this process create user and network namespaces?
pub fn probe_userns() -> ExitCode {
    match crate::sys::kernel::try_unshare_user_net() {
        Ok(()) => ExitCode::SUCCESS,
        Err(errno) => ExitCode::from(u8::try_from(errno).unwrap_or(1).max(1)),
    }
}

fn userns_status() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "unknown (cannot find the greywall executable)".into();
    };
    match std::process::Command::new(exe)
        .arg("__probe-userns")
        .status()
    {
        Ok(s) if s.success() => "available".into(),
        Ok(s) => format!(
            "unavailable ({}): greywall falls back to Landlock and seccomp alone",
            std::io::Error::from_raw_os_error(s.code().unwrap_or(0))
        ),
        Err(e) => format!("unknown ({e})"),
    }
}

fn bwrap_status() -> String {
    for p in ["/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap"] {
        if Path::new(p).is_file() {
            let version = std::process::Command::new(p)
                .arg("--version")
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            return format!("{p} ({version})");
        }
    }
    "not installed (--backend bwrap unavailable)".into()
}

/// Whether this greywall executable is statically linked (what `cargo dist` builds: it
/// starts faster) or needs the dynamic loader (an ELF `PT_INTERP` program header).
fn launcher_linkage() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "unknown (cannot find the greywall executable)".into();
    };
    match std::fs::read(&exe)
        .ok()
        .and_then(|elf| has_interpreter(&elf))
    {
        Some(false) => format!("{} (static)", exe.display()),
        Some(true) => format!(
            "{} (dynamically linked: `cargo dist` builds the faster static one)",
            exe.display()
        ),
        None => format!("{} (not an ELF file greywall can read)", exe.display()),
    }
}

/// Whether a 64-bit little-endian ELF image has a `PT_INTERP` program header.
fn has_interpreter(elf: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    // ELFCLASS64, ELFDATA2LSB.
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    let mut found = false;
    for i in 0..phnum {
        found |= u32_at(phoff.checked_add(i.checked_mul(phentsize)?)?)? == PT_INTERP;
    }
    Some(found)
}

/// One report row as text.
fn render_row(out: &mut String, row: &fidelity::Row, sources: &greywall_compiler::source::Sources) {
    let origin = row
        .origin
        .map(|s| format!("  ({})", sources.locate(s)))
        .unwrap_or_default();
    let mark = match row.level {
        Level::Exact => "exact        ",
        Level::Approximated(_) => "approximated ",
        Level::Unenforceable(_) => "unenforceable",
    };
    let detail = match &row.level {
        Level::Exact => String::new(),
        Level::Approximated(s) | Level::Unenforceable(s) => format!("\n                   {s}"),
    };
    let _ = writeln!(out, "  {mark}  {}{origin}{detail}", row.rule);
}

/// `greywall check --target macos`: how the Seatbelt profile enforces each rule. It depends on
/// the policy alone, so it runs on any host; nothing about this machine is probed.
pub fn run_macos(settings: Option<&Path>) -> ExitCode {
    use greywall_compiler::compile::{Source, compile_macos};
    let discover = match crate::cmd::discover_env() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("greywall: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let source = Source::Discover {
        settings: settings.map(Path::to_path_buf),
    };
    let mut out = String::from("target macos (Seatbelt, applied with /usr/bin/sandbox-exec)\n");
    match compile_macos(&source, &discover) {
        Ok(c) => {
            let _ = writeln!(out, "\npolicy {}", c.origin);
            for row in fidelity::report_macos(&c.policy) {
                render_row(&mut out, &row, &c.sources);
            }
            print(&out)
        }
        Err(f) => {
            let _ = print(&out);
            let color = std::io::IsTerminal::is_terminal(&std::io::stderr());
            eprint!(
                "{}",
                greywall_compiler::diagnostic::render_all(
                    &f.diagnostics,
                    &f.sources,
                    greywall_compiler::diagnostic::RenderOptions { color },
                    50
                )
            );
            ExitCode::from(1)
        }
    }
}

pub fn run(settings: Option<&Path>) -> ExitCode {
    let env = match crate::exec::compile_env() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("greywall: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut out = String::new();
    let abi = env.kernel.landlock_abi;
    let _ = writeln!(out, "kernel");
    let _ = writeln!(out, "  identity         {}", crate::sys::kernel::identity());
    let _ = writeln!(
        out,
        "  landlock         {}",
        if abi == 0 {
            "unavailable: filesystem rules cannot be enforced".to_string()
        } else {
            format!("ABI {abi}")
        }
    );
    let _ = writeln!(out, "  user namespaces  {}", userns_status());
    let _ = writeln!(
        out,
        "  seccomp          {}",
        if crate::sys::kernel::seccomp_available() {
            "available"
        } else {
            "unavailable"
        }
    );
    let _ = writeln!(out, "  bwrap            {}", bwrap_status());
    let _ = writeln!(out, "  launcher         {}", launcher_linkage());
    let _ = writeln!(out, "  namespace pool   {}", crate::nspool::status());

    let compiled = match crate::exec::compile_here(settings, None) {
        Ok(c) => c,
        Err(code) => {
            let _ = print(&out);
            return code;
        }
    };
    let _ = writeln!(out, "\npolicy {}", compiled.origin);
    for row in fidelity::report(&compiled.policy, &compiled.resolved, &env.kernel) {
        let origin = row
            .origin
            .map(|s| format!("  ({})", compiled.sources.locate(s)))
            .unwrap_or_default();
        let mark = match row.level {
            Level::Exact => "exact        ",
            Level::Approximated(_) => "approximated ",
            Level::Unenforceable(_) => "unenforceable",
        };
        let detail = match &row.level {
            Level::Exact => String::new(),
            Level::Approximated(s) | Level::Unenforceable(s) => format!("\n                   {s}"),
        };
        let _ = writeln!(out, "  {mark}  {}{origin}{detail}", row.rule);
    }
    print(&out)
}

#[cfg(test)]
mod tests {
    use super::has_interpreter;

    #[test]
    fn reads_the_interpreter_header() {
        // The test binary itself is dynamically linked in a plain `cargo test`.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let dynamic = !cfg!(target_feature = "crt-static");
        assert_eq!(has_interpreter(&me), Some(dynamic));
        assert_eq!(has_interpreter(b"#!/bin/sh\n"), None);
        assert_eq!(has_interpreter(&me[..64]), None);
    }
}
