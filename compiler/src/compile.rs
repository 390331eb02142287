//! `greywall compile`: policy in, cached artifacts out.
//!
//! Loads the policy (following discovery when no file is named), resolves it on this machine,
//! builds the Linux plan and the bwrap argument vector, and lists every file-system fact the
//! result depends on, so the launcher can tell a fresh plan from a stale one with a few `stat`s.

use std::path::PathBuf;

use crate::backend::linux::KernelFacts;
use crate::backend::seccomp::{self, Arch, SeccompOptions};
use crate::backend::{bwrap, linux};
use crate::cache::{Cache, Index, StatDep, content_key, sha256_hex};
use crate::diagnostic::{self, Code, Diagnostic};
use crate::discover::{self, DiscoverEnv, Discovered};
use crate::load::{self, Input};
use crate::model::NetworkMode;
use crate::plan::LinuxPlan;
use crate::resolve::{self, Dep, ResolveEnv, Resolved};
use crate::source::Sources;

/// Which policy to compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Discovery, with an optional `--settings` file.
    Discover { settings: Option<PathBuf> },
    /// A file or template named on the command line.
    Named(Input),
}

/// Everything about the machine compilation needs.
#[derive(Debug, Clone)]
pub struct CompileEnv {
    pub discover: DiscoverEnv,
    pub cache_dir: Option<PathBuf>,
    pub runtime_dir: Option<PathBuf>,
    pub kernel: KernelFacts,
}

/// A compiled policy.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// Where the policy came from, for messages.
    pub origin: String,
    pub sources: Sources,
    /// Warnings (errors stop compilation).
    pub diagnostics: Vec<Diagnostic>,
    pub policy: crate::model::Policy,
    pub resolved: Resolved,
    pub plan: LinuxPlan,
    pub plan_bytes: Vec<u8>,
    /// The plan bwrap's inner launcher applies.
    pub inner_plan_bytes: Vec<u8>,
    pub bwrap_argv: Vec<String>,
    pub deps: Vec<StatDep>,
    /// Content key of `plan_bytes`.
    pub key: String,
    /// The egress rule set for greywall-proxyd (filtered network mode only), stored as
    /// `<cache>/egress/<sha256>.json`; the plan names its path and hash.
    pub egress_bytes: Option<Vec<u8>>,
}

/// Compilation failed: the diagnostics say why.
#[derive(Debug, Clone)]
pub struct Failed {
    pub sources: Sources,
    pub diagnostics: Vec<Diagnostic>,
}

fn s(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The policy as it applies on `platform`: its platform blocks applied, its expectations
/// checked (failures are errors), and the rules of best-effort sections the platform cannot
/// enforce left out with a warning (W690).
pub fn for_target(
    policy: &crate::model::Policy,
    platform: crate::model::Platform,
    sources: &Sources,
    env: &DiscoverEnv,
    diags: &mut Vec<Diagnostic>,
) -> crate::model::Policy {
    let home = env.home.clone().unwrap_or_else(|| PathBuf::from("/"));
    let facts = crate::decide::Facts::new(&s(&env.cwd), &s(&home));
    diags.extend(crate::expect::check(policy, platform, &facts, sources));
    let mut view = policy.for_platform(platform, diags);
    let best_effort = |sec| {
        view.best_effort
            .iter()
            .find(|e| e.value == sec)
            .map(|e| e.origin)
    };
    if view.ssh.is_active()
        && let Some(at) = best_effort(crate::model::Section::Ssh)
    {
        diags.push(
            Diagnostic::new(
                Code::GwBestEffort,
                format!("the SSH rules are not enforced on {platform}; they are left out"),
            )
            .at(at)
            .label("best-effort")
            .note("greywall does not check ssh hosts or remote commands on this platform yet"),
        );
        view.ssh = crate::model::Ssh::default();
    }
    view
}

/// Compiles a policy for this machine.
pub fn compile(source: &Source, env: &CompileEnv) -> Result<Compiled, Failed> {
    compile_with(source, env, &load::LoadOptions::default())
}

/// Compiles a policy for this machine, with load options (`--profile`).
pub fn compile_with(
    source: &Source,
    env: &CompileEnv,
    opts: &load::LoadOptions,
) -> Result<Compiled, Failed> {
    let mut diags = Vec::new();
    let mut deps: Vec<StatDep> = Vec::new();
    let (input, origin) = match source {
        Source::Named(input) => (input.clone(), describe(input)),
        Source::Discover { settings } => {
            let found = match discover::discover(settings.as_deref(), &env.discover, &mut diags) {
                Ok(f) => f,
                Err(d) => {
                    diags.push(d);
                    return Err(Failed {
                        sources: Sources::new(),
                        diagnostics: diags,
                    });
                }
            };
            deps.extend(discovery_deps(&found, &env.discover));
            (found.input(), found.to_string())
        }
    };
    let loaded = load::load_with(&input, opts);
    diags.extend(loaded.diagnostics.iter().cloned());
    let Some(policy) = loaded.policy.clone() else {
        return Err(Failed {
            sources: loaded.sources,
            diagnostics: diags,
        });
    };
    let policy = for_target(
        &policy,
        crate::model::Platform::Linux,
        &loaded.sources,
        &env.discover,
        &mut diags,
    );
    if diagnostic::has_errors(&diags) {
        diagnostic::sort(&mut diags);
        return Err(Failed {
            sources: loaded.sources,
            diagnostics: diags,
        });
    }
    // Relative `--settings` paths are relative to the working directory.
    let policy_files: Vec<PathBuf> = loaded
        .files
        .iter()
        .map(|f| env.discover.cwd.join(f))
        .collect();
    for f in &policy_files {
        deps.push(StatDep::exact(&s(f)));
    }
    // Fail closed on rules the Linux launcher does not enforce yet.
    if policy.ssh.is_active() {
        let at = policy
            .ssh
            .allowed_hosts
            .iter()
            .chain(&policy.ssh.denied_hosts)
            .map(|e| e.origin)
            .next();
        let mut d = Diagnostic::new(
            Code::NotEnforceable,
            "the SSH policy (`ssh.*`) is not enforced by greywall on Linux yet",
        )
        .note("greywall refuses the policy rather than run ssh unchecked")
        .help("remove the `ssh` section, or run ssh outside the sandbox");
        if let Some(at) = at {
            d = d.at(at);
        }
        diags.push(d);
        return Err(Failed {
            sources: loaded.sources,
            diagnostics: diags,
        });
    }
    // The cache directory is one of the paths the plan protects: create it first, so its
    // first appearance does not make the new plan stale at once.
    if let Some(dir) = &env.cache_dir {
        let _ = Cache::new(dir.clone()).ensure_dirs();
    }
    // Likewise proxyd's socket directory, which every plan hides once it exists: a plan with
    // egress is compiled with it in place.
    if policy.network.mode() == NetworkMode::Filtered
        && let Some(rt) = env.runtime_dir.as_ref().filter(|d| d.is_dir())
    {
        use std::os::unix::fs::DirBuilderExt as _;
        let _ = std::fs::DirBuilder::new()
            .mode(0o700)
            .create(rt.join(crate::protections::PROXYD_RUNTIME_DIR));
    }
    let renv = ResolveEnv {
        root: PathBuf::from("/"),
        cwd: env.discover.cwd.clone(),
        home: env
            .discover
            .home
            .clone()
            .unwrap_or_else(|| PathBuf::from("/")),
        config_dir: env.discover.config_dir(),
        cache_dir: env.cache_dir.clone(),
        runtime_dir: env.runtime_dir.clone(),
        policy_files,
    };
    let resolved = resolve::resolve(&policy, &renv);
    for d in &resolved.deps {
        deps.push(match d {
            Dep::Path { path, .. } => StatDep::identity(path),
            Dep::Listing { path } => StatDep::exact(path),
        });
    }
    let deps = crate::cache::condense(deps, crate::cache::settled_now());

    // Fail closed: without Landlock no filesystem rule would hold.
    if env.kernel.landlock_abi == 0 {
        diags.push(
            Diagnostic::new(
                Code::NotEnforceable,
                "this kernel has no Landlock, so greywall cannot enforce filesystem rules",
            )
            .help("use Linux 5.13 or later with Landlock enabled (the `lsm=` boot parameter lists it)"),
        );
        return Err(Failed {
            sources: loaded.sources,
            diagnostics: diags,
        });
    }
    // Fail closed: without a filter for this architecture the plan would run unfiltered.
    let Some(arch) = arch_of(env.kernel.audit_arch) else {
        diags.push(
            Diagnostic::new(
                Code::NotEnforceable,
                "greywall has no seccomp filter for this machine's architecture",
            )
            .note("filters exist for x86_64 and aarch64; greywall refuses to run without one"),
        );
        return Err(Failed {
            sources: loaded.sources,
            diagnostics: diags,
        });
    };
    let filter = seccomp::to_bytes(&seccomp::build(arch, &SeccompOptions::default()));
    let mut plan = linux::plan(&resolved, &env.kernel, filter);
    // Filtered egress: the rule set goes into the cache under its SHA-256, and the plan names
    // both, so the plan's key changes with the rules and proxyd refuses a swapped file.
    let mut egress_bytes = None;
    if policy.network.mode() == NetworkMode::Filtered {
        let bytes = crate::egress::rules(&policy, &loaded.sources).to_bytes();
        let sha256 = sha256_hex(&bytes);
        let Some(cache_dir) = &env.cache_dir else {
            diags.push(
                Diagnostic::new(
                    Code::NotEnforceable,
                    "allowed domains need the artifact cache for greywall-proxyd's rule set",
                )
                .help("set HOME or XDG_CACHE_HOME"),
            );
            return Err(Failed {
                sources: loaded.sources,
                diagnostics: diags,
            });
        };
        let path = Cache::new(cache_dir.clone()).egress_path(&sha256);
        let ruleset = linux::RulesetRef {
            path: s(&path),
            sha256,
        };
        plan = linux::with_egress(plan, linux::egress(&policy.network, ruleset));
        egress_bytes = Some(bytes);
    }
    let plan_bytes = plan.encode();
    let inner_plan_bytes = bwrap::inner_plan(&plan).encode();
    let bwrap_argv = bwrap::argv(&plan);
    let key = content_key(&plan_bytes);
    diagnostic::sort(&mut diags);
    Ok(Compiled {
        origin,
        sources: loaded.sources,
        diagnostics: diags,
        policy,
        resolved,
        plan,
        plan_bytes,
        inner_plan_bytes,
        bwrap_argv,
        deps,
        key,
        egress_bytes,
    })
}

fn arch_of(audit_arch: u32) -> Option<Arch> {
    [Arch::X86_64, Arch::Aarch64]
        .into_iter()
        .find(|a| a.audit_arch() == audit_arch)
}

fn describe(input: &Input) -> String {
    match input {
        Input::File(p) => p.display().to_string(),
        Input::Template(n) => format!("built-in template `{n}`"),
        Input::Text { name, .. } => name.clone(),
    }
}

/// The files discovery looked at: the one it chose must stay as it is, and none of the ones
/// it passed over may appear.
fn discovery_deps(found: &Discovered, env: &DiscoverEnv) -> Vec<StatDep> {
    let mut out = Vec::new();
    if let Discovered::Explicit(p) = found {
        out.push(StatDep::exact(&s(p)));
        return out;
    }
    let mut candidates: Vec<PathBuf> = env
        .cwd
        .ancestors()
        .flat_map(|d| discover::PROJECT_FILES.map(|n| d.join(n)))
        .collect();
    if let Some(dir) = env.config_dir() {
        candidates.extend(discover::PROJECT_FILES.map(|n| dir.join(n)));
    }
    if let Some(h) = &env.home {
        candidates.push(h.join(".greywall.json"));
    }
    for c in candidates {
        out.push(StatDep::exact(&s(&c)));
        let chosen = matches!(found, Discovered::Project(p) | Discovered::User(p) | Discovered::Legacy(p) if *p == c);
        if chosen {
            // Its sibling must stay absent too: both in one directory is an error (E619).
            if let (Some(dir), Some(name)) = (c.parent(), c.file_name())
                && let Some(other) = discover::PROJECT_FILES.iter().find(|n| **n != name)
                && discover::PROJECT_FILES.iter().any(|n| *n == name)
            {
                out.push(StatDep::exact(&s(&dir.join(other))));
            }
            break;
        }
    }
    out
}

/// Paths of the artifacts written for one compile.
#[derive(Debug, Clone)]
pub struct Written {
    pub plan: PathBuf,
    pub inner_plan: PathBuf,
    pub bwrap: PathBuf,
    pub index: PathBuf,
}

/// Writes the artifacts and the invocation's index into the cache, atomically.
pub fn store(c: &Compiled, cache: &Cache, invocation: &str) -> std::io::Result<Written> {
    cache.ensure_dirs()?;
    let plan = cache.plan_path(&c.key);
    let inner_plan = cache
        .root
        .join("plans")
        .join(format!("{}.inner.plan", c.key));
    let bwrap_path = cache.bwrap_path(&c.key);
    // The rule set before the plan that names it.
    if let (Some(bytes), Some(e)) = (&c.egress_bytes, &c.plan.egress) {
        Cache::write_atomic(&cache.egress_path(&e.ruleset_sha256), bytes)?;
    }
    Cache::write_atomic(&plan, &c.plan_bytes)?;
    Cache::write_atomic(&inner_plan, &c.inner_plan_bytes)?;
    Cache::write_atomic(&bwrap_path, &bwrap::args_blob(&c.bwrap_argv))?;
    let index = cache.index_path(invocation);
    let idx = Index {
        key: c.key.clone(),
        deps: c.deps.clone(),
        env: resolve::env_names(&c.policy)
            .into_iter()
            .map(|n| {
                let v = std::env::var(&n).ok();
                (n, v)
            })
            .collect(),
    };
    Cache::write_atomic(&index, &idx.encode())?;
    Ok(Written {
        plan,
        inner_plan,
        bwrap: bwrap_path,
        index,
    })
}

/// A policy compiled for macOS: a Seatbelt profile, whatever the host.
#[derive(Debug, Clone)]
pub struct CompiledMacos {
    pub origin: String,
    pub sources: Sources,
    /// Warnings (errors stop compilation).
    pub diagnostics: Vec<Diagnostic>,
    pub policy: crate::model::Policy,
    pub profile: crate::backend::seatbelt::Profile,
    /// The policy files and the discovery facts the profile depends on.
    pub deps: Vec<StatDep>,
    /// Content key of the profile text.
    pub key: String,
}

/// Compiles a policy into a Seatbelt profile. Pure apart from discovery and loading: nothing
/// about this machine enters the profile except the paths of the policy files (run-time facts
/// are profile parameters), so it works on any host.
pub fn compile_macos(source: &Source, env: &DiscoverEnv) -> Result<CompiledMacos, Failed> {
    use crate::backend::seatbelt;
    let mut diags = Vec::new();
    let mut deps: Vec<StatDep> = Vec::new();
    let (input, origin) = match source {
        Source::Named(input) => (input.clone(), describe(input)),
        Source::Discover { settings } => {
            match discover::discover(settings.as_deref(), env, &mut diags) {
                Ok(found) => {
                    deps.extend(discovery_deps(&found, env));
                    (found.input(), found.to_string())
                }
                Err(d) => {
                    diags.push(d);
                    return Err(Failed {
                        sources: Sources::new(),
                        diagnostics: diags,
                    });
                }
            }
        }
    };
    let loaded = load::load(&input);
    diags.extend(loaded.diagnostics.iter().cloned());
    let Some(policy) = loaded.policy.clone() else {
        return Err(Failed {
            sources: loaded.sources,
            diagnostics: diags,
        });
    };
    let policy = for_target(
        &policy,
        crate::model::Platform::Macos,
        &loaded.sources,
        env,
        &mut diags,
    );
    if diagnostic::has_errors(&diags) {
        diagnostic::sort(&mut diags);
        return Err(Failed {
            sources: loaded.sources,
            diagnostics: diags,
        });
    }
    let policy_files: Vec<String> = loaded.files.iter().map(|f| s(&env.cwd.join(f))).collect();
    for f in &policy_files {
        deps.push(StatDep::exact(f));
    }
    if policy.ssh.is_active() {
        let mut d = Diagnostic::new(
            Code::NotEnforceable,
            "the SSH policy (`ssh.*`) is not enforced by greywall on macOS yet",
        )
        .note("greywall refuses the policy rather than run ssh unchecked")
        .help("remove the `ssh` section, or run ssh outside the sandbox");
        if let Some(at) = policy
            .ssh
            .allowed_hosts
            .iter()
            .chain(&policy.ssh.denied_hosts)
            .map(|e| e.origin)
            .next()
        {
            d = d.at(at);
        }
        diags.push(d);
        return Err(Failed {
            sources: loaded.sources,
            diagnostics: diags,
        });
    }
    let opts = seatbelt::Options { policy_files };
    let profile = match seatbelt::profile(&policy, &opts) {
        Ok(p) => p,
        Err(errors) => {
            for e in errors {
                let mut d = Diagnostic::new(
                    Code::SeatbeltUnexpressible,
                    format!("the macOS profile cannot express `{}`", e.rule),
                )
                .label(e.why)
                .help(
                    "rewrite the rule without that construct; the Linux artifacts are unaffected",
                );
                if let Some(at) = e.origin {
                    d = d.at(at);
                }
                diags.push(d);
            }
            diagnostic::sort(&mut diags);
            return Err(Failed {
                sources: loaded.sources,
                diagnostics: diags,
            });
        }
    };
    deps.sort_by(|a, b| a.path.cmp(&b.path));
    deps.dedup();
    let key = content_key(profile.text.as_bytes());
    diagnostic::sort(&mut diags);
    Ok(CompiledMacos {
        origin,
        sources: loaded.sources,
        diagnostics: diags,
        policy,
        profile,
        deps,
        key,
    })
}

/// Paths of the macOS artifacts written for one compile.
#[derive(Debug, Clone)]
pub struct WrittenMacos {
    pub profile: PathBuf,
    pub index: PathBuf,
}

/// Writes the Seatbelt profile (content-addressed, shared by every invocation that compiles to
/// the same text) and the invocation's macOS index entry, atomically.
pub fn store_macos(
    c: &CompiledMacos,
    cache: &Cache,
    invocation: &str,
) -> std::io::Result<WrittenMacos> {
    cache.ensure_dirs()?;
    let profile = cache.profile_path(&c.key);
    Cache::write_atomic(&profile, c.profile.text.as_bytes())?;
    let index = cache.macos_index_path(invocation);
    // The profile takes every machine path as a parameter at launch: no environment
    // dependency.
    let idx = Index {
        key: c.key.clone(),
        deps: c.deps.clone(),
        env: Vec::new(),
    };
    Cache::write_atomic(&index, &idx.encode())?;
    Ok(WrittenMacos { profile, index })
}
