//! A scratch workspace for in-process benchmarks and tests, and the compile environment that
//! resolves policies against it (instead of the real home and working directory).

use std::path::{Path, PathBuf};

use greywall_compiler::backend::linux::KernelFacts;
use greywall_compiler::backend::seccomp::Arch;
use greywall_compiler::compile::CompileEnv;
use greywall_compiler::discover::DiscoverEnv;

/// Landlock ABI the in-process compiles target. Compilation cost does not depend on it beyond
/// a few bit masks; what the launcher applies is compiled by `greywall` itself.
pub const LANDLOCK_ABI: u32 = 6;

/// Creates `root/home/work` and returns the environment of a compile run there, with the
/// artifact cache in `root/cache`.
pub fn compile_env(root: &Path) -> std::io::Result<CompileEnv> {
    let home = root.join("home");
    let cwd = home.join("work");
    std::fs::create_dir_all(&cwd)?;
    Ok(CompileEnv {
        discover: DiscoverEnv {
            cwd,
            home: Some(home),
            xdg_config_home: None,
            uid: uid(),
        },
        cache_dir: Some(root.join("cache")),
        runtime_dir: None,
        kernel: KernelFacts {
            landlock_abi: LANDLOCK_ABI,
            audit_arch: Arch::host().map_or(0, Arch::audit_arch),
        },
    })
}

/// The real uid, from `/proc/self/status` (no libc call needed).
fn uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// `policies/<name>.json` in this workspace.
pub fn policy_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../policies")
        .join(format!("{name}.json"))
}
