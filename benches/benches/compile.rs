//! Stage benchmarks of the policy compiler and the launcher's cached path, in process:
//! loading `greywall.json` (the `code` template as a file), the whole compile, the cache
//! freshness check (read the index, decode it, `stat` every dependency) and the plan decode
//! (read, content-key check, decode), which is what `greywall exec --cached` does before it
//! applies the plan.
//!
//! `cargo bench -p greywall-benches --bench compile`. Not run in CI (timing).
//!
//! Not here yet: the `.gw` front-end (no `policies/code.gw` and no public load function for it
//! exist yet) and proxyd's rule matching (`EgressRules::decide` does not exist yet); add them
//! here when they land.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use greywall_benches::scratch;
use greywall_compiler::cache::{self, Cache, Index};
use greywall_compiler::compile::{self, Source};
use greywall_compiler::load::{self, Input};
use greywall_compiler::plan::LinuxPlan;

fn scratch_root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-compile")
}

fn stages(c: &mut Criterion) {
    let root = scratch_root();
    let Ok(env) = scratch::compile_env(&root) else {
        eprintln!(
            "cannot create {}: skipping the compile benchmarks",
            root.display()
        );
        return;
    };
    let code = Input::File(scratch::policy_file("code"));
    let mut g = c.benchmark_group("compile");

    g.bench_function("load greywall.json (code)", |b| {
        b.iter(|| black_box(load::load(black_box(&code))))
    });

    let source = Source::Named(code.clone());
    g.bench_function("whole compile (code)", |b| {
        b.iter(|| black_box(compile::compile(black_box(&source), &env).is_ok()))
    });

    let Ok(compiled) = compile::compile(&source, &env) else {
        eprintln!("the code template does not compile: skipping the cache benchmarks");
        return;
    };
    let cache = Cache::new(root.join("cache"));
    let Ok(written) = compile::store(&compiled, &cache, "bench") else {
        eprintln!("cannot write the cache: skipping the cache benchmarks");
        return;
    };
    g.bench_function("cache freshness check (index read, decode, stats)", |b| {
        b.iter(|| {
            let bytes = std::fs::read(&written.index).unwrap_or_default();
            black_box(Index::decode(&bytes).is_some_and(|i| i.is_fresh()))
        })
    });
    g.bench_function("plan read, content-key check and decode", |b| {
        b.iter(|| {
            let bytes = std::fs::read(&written.plan).unwrap_or_default();
            let ok = cache::content_key(&bytes) == compiled.key;
            black_box(ok && LinuxPlan::decode(&bytes).is_ok())
        })
    });
    g.bench_function("plan decode (in memory)", |b| {
        b.iter(|| black_box(LinuxPlan::decode(black_box(&compiled.plan_bytes)).is_ok()))
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
