//! Stage benchmarks of the policy compiler and the launcher's cached path, in process:
//! loading `greywall.json` (the `code` template as a file), the whole compile, the cache
//! freshness check (read the index, decode it, `stat` every dependency) and the plan decode
//! (read, content-key check, decode), which is what `greywall exec --cached` does before it
//! applies the plan.
//!
//! `cargo bench -p greywall-benches --bench compile`. Not run in CI (timing).
//!
//! Also proxyd's rule matching: `EgressRules::decide` over the `code` policy's egress rules
//! (allowed, denied and unlisted hosts). Request handling in proxyd is not benchmarked yet.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use greywall_benches::scratch;
use greywall_compiler::cache::{self, Cache, Index};
use greywall_compiler::compile::{self, Source};
use greywall_compiler::egress::EgressRules;
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

    let gw = scratch::policy_file("code").with_extension("gw");
    if gw.is_file() {
        let gw = Input::File(gw);
        g.bench_function("load .gw (code)", |b| {
            b.iter(|| black_box(load::load(black_box(&gw))))
        });
    } else {
        eprintln!("no policies/code.gw: skipping the .gw benchmark");
    }

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
    g.bench_function("cache freshness check (index read, stats)", |b| {
        b.iter(|| {
            let bytes = std::fs::read(&written.index).unwrap_or_default();
            black_box(Index::fresh_key(&bytes).is_some())
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
    match compiled
        .egress_bytes
        .as_deref()
        .map(EgressRules::from_bytes)
    {
        Some(Ok(rules)) => {
            for (host, port) in [
                ("registry.npmjs.org", 443),
                ("evil.example.com", 443),
                ("10.0.0.1", 80),
            ] {
                g.bench_function(format!("egress decide {host}:{port}"), |b| {
                    b.iter(|| black_box(rules.decide(black_box(host), port)))
                });
            }
        }
        _ => eprintln!("the code policy has no egress rules: skipping the egress benchmark"),
    }
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
