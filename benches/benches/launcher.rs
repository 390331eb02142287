//! The launcher's set-up steps.
//!
//! In process, where that leaks nothing into the benchmark process: creating the Landlock
//! ruleset of the compiled `code` plan (its handled rights and every path rule, then dropped),
//! restricting a throwaway thread with it (Landlock and `no_new_privs` are per thread), and
//! loading the plan's seccomp filter on a throwaway thread. The thread floor (spawn and join,
//! nothing else) is its own benchmark; subtract it.
//!
//! As whole processes, for the steps that cannot be undone inside a process (namespaces, the
//! mount plan, the create-deny supervisor): `greywall __exec-plan PLAN -- true` with the plan
//! of the scratch workspace cut down to each step in turn (see `greywall_benches::steps`);
//! neighbouring rows differ by one step. These need the release `greywall` (`GREYWALL` or
//! `target/release/greywall`) and are skipped with a note without it. The overhead suite
//! measures the same variants interleaved (its launcher-steps table), which is the better
//! figure on a noisy machine.
//!
//! `cargo bench -p greywall-benches --bench launcher`. Not run in CI (timing).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use criterion::{Criterion, criterion_group, criterion_main};
use greywall_benches::{scratch, steps};
use greywall_compiler::backend::seccomp;
use greywall_compiler::compile::{self, Compiled, Source};
use greywall_compiler::load::Input;
use greywall_compiler::plan::{LinuxPlan, fs_access};
use landlock::{
    ABI, AccessFs, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-launcher")
}

fn compiled() -> Option<Compiled> {
    let env = scratch::compile_env(&root()).ok()?;
    let source = Source::Named(Input::File(scratch::policy_file("code")));
    compile::compile(&source, &env).ok()
}

/// The plan's ruleset, created and filled (not applied).
fn ruleset(plan: &LinuxPlan) -> Option<landlock::RulesetCreated> {
    let handled: BitFlags<AccessFs> = BitFlags::from_bits_truncate(plan.landlock.handled_fs);
    let files = AccessFs::from_file(ABI::V5);
    let mut rs = Ruleset::default()
        .handle_access(handled)
        .ok()?
        .create()
        .ok()?;
    for rule in &plan.landlock.paths {
        let Ok(fd) = PathFd::new(&rule.path) else {
            continue;
        };
        let is_dir = Path::new(&rule.path).is_dir();
        let mut access: BitFlags<AccessFs> =
            BitFlags::from_bits_truncate(rule.access & plan.landlock.handled_fs);
        if !is_dir {
            access &= files;
            access &= BitFlags::from_bits_truncate(!fs_access::DIR_ONLY);
        }
        if access.is_empty() {
            continue;
        }
        rs = rs.add_rule(PathBeneath::new(fd, access)).ok()?;
    }
    Some(rs)
}

fn in_process(c: &mut Criterion) {
    let Some(compiled) = compiled() else {
        eprintln!("the code template does not compile here: skipping the launcher benchmarks");
        return;
    };
    let plan = compiled.plan;
    let mut g = c.benchmark_group("launcher in process");
    g.bench_function("thread spawn + join (floor)", |b| {
        b.iter(|| std::thread::spawn(|| black_box(1)).join().is_ok())
    });
    let n = plan.landlock.paths.len();
    g.bench_function(format!("Landlock ruleset: create + {n} rules"), |b| {
        b.iter(|| black_box(ruleset(&plan).is_some()))
    });
    g.bench_function(
        format!("Landlock: create + {n} rules + restrict a thread"),
        |b| {
            b.iter(|| {
                let rs = ruleset(&plan);
                std::thread::spawn(move || rs.map(|r| r.restrict_self().is_ok()))
                    .join()
                    .ok()
                    .flatten()
            })
        },
    );
    let program: Vec<seccompiler::sock_filter> = seccomp::from_bytes(&plan.seccomp)
        .unwrap_or_default()
        .into_iter()
        .map(|f| seccompiler::sock_filter {
            code: f.code,
            jt: f.jt,
            jf: f.jf,
            k: f.k,
        })
        .collect();
    if program.is_empty() {
        eprintln!("the plan has no seccomp filter: skipping the seccomp benchmark");
    } else {
        let len = program.len();
        g.bench_function(
            format!("seccomp: load the {len}-instruction filter on a thread"),
            |b| {
                b.iter(|| {
                    let p = program.clone();
                    std::thread::spawn(move || seccompiler::apply_filter(&p).is_ok())
                        .join()
                        .unwrap_or(false)
                })
            },
        );
    }
    g.finish();
}

fn greywall() -> Option<PathBuf> {
    let p = std::env::var_os("GREYWALL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/greywall")
        });
    p.is_file().then_some(p)
}

fn run_quiet(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn processes(c: &mut Criterion) {
    let Some(gw) = greywall() else {
        eprintln!("no release greywall (build it, or set GREYWALL): skipping the process steps");
        return;
    };
    let Some(compiled) = compiled() else {
        return;
    };
    let dir = root().join("plans");
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let work = root().join("home/work");
    let mut g = c.benchmark_group("launcher steps (greywall __exec-plan PLAN -- true)");
    g.bench_function("bare true", |b| {
        b.iter(|| run_quiet(Command::new("/usr/bin/true").current_dir(&work)))
    });
    for (i, (name, plan)) in steps::step_plans(&compiled.plan).into_iter().enumerate() {
        let file = dir.join(format!("step{i}.plan"));
        if std::fs::write(&file, plan.encode()).is_err() {
            continue;
        }
        let mut cmd = Command::new(&gw);
        cmd.arg("__exec-plan")
            .arg(&file)
            .args(["--", "/usr/bin/true"])
            .current_dir(&work);
        let check = cmd.stdin(Stdio::null()).output();
        if !check.as_ref().is_ok_and(|o| o.status.success()) {
            let why = check.map_or_else(
                |e| e.to_string(),
                |o| String::from_utf8_lossy(&o.stderr).trim().to_string(),
            );
            eprintln!("skipping `{name}`: {} fails: {why}", gw.display());
            continue;
        }
        g.bench_function(format!("{i}: {name}"), |b| b.iter(|| run_quiet(&mut cmd)));
    }
    g.finish();
}

criterion_group!(benches, in_process, processes);
criterion_main!(benches);
