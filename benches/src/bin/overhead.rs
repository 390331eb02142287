//! Side-by-side overhead of running a command sandboxed versus bare.
//!
//! Every workload runs under every setup in turn (A B C A B C …), so drift in machine speed
//! hits all setups alike; the report gives medians, p90 and the ratio of each setup's median to
//! the bare median from the same run.
//!
//! ```text
//! cargo run --release -p greywall-benches --bin overhead -- [--runs N] [--quick]
//! ```
//!
//! Set `GREYWALL_C_PROBE` to a built `sbx-probe` (the minimal C launcher from the reference
//! measurements) to add it as a setup.
//!
//! It runs in a scratch git repository it creates in `~/.cache/greywall-bench/`, with the
//! built-in default policy (no greywall.json there), so `greywall exec --cached` hits the
//! artifact cache after the first run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

struct Setup {
    name: &'static str,
    /// Argument vector prefix; the workload's argv is appended.
    prefix: Vec<String>,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn p90(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() * 9 / 10).min(v.len() - 1)]
}

fn run_once(argv: &[String], cwd: &Path) -> Option<f64> {
    let start = Instant::now();
    let status = Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    let t = start.elapsed().as_secs_f64() * 1000.0;
    status.success().then_some(t)
}

fn which(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(if quick { 20 } else { 200 });

    let greywall = std::env::var("GREYWALL")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/greywall")
        });
    if !greywall.is_file() {
        eprintln!("build the launcher first: cargo build --release -p greywall (or set GREYWALL)");
        std::process::exit(2);
    }

    // Not under /tmp: the sandbox replaces /tmp with a private tmpfs.
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let work = home.join(".cache/greywall-bench/workspace");
    let _ = std::fs::create_dir_all(&work);
    let git = which("git");
    if let Some(git) = git.as_ref().filter(|_| !work.join(".git").exists()) {
        {
            let _ = Command::new(git)
                .args(["init", "-q"])
                .current_dir(&work)
                .status();
            for i in 0..20 {
                let _ = std::fs::write(work.join(format!("file{i}.txt")), format!("{i}\n"));
            }
            let _ = Command::new(git)
                .args(["add", "."])
                .current_dir(&work)
                .status();
            let _ = Command::new(git)
                .args([
                    "-c",
                    "user.name=b",
                    "-c",
                    "user.email=b@b",
                    "commit",
                    "-qm",
                    "init",
                ])
                .current_dir(&work)
                .status();
        }
    }

    let gw = greywall.to_string_lossy().into_owned();
    let mut setups = vec![
        Setup {
            name: "bare",
            prefix: vec![],
        },
        Setup {
            name: "greywall exec --cached",
            prefix: vec![gw.clone(), "exec".into(), "--cached".into(), "--".into()],
        },
    ];
    if which("bwrap").is_some() {
        setups.push(Setup {
            name: "greywall --backend bwrap",
            prefix: vec![
                gw.clone(),
                "exec".into(),
                "--cached".into(),
                "--backend".into(),
                "bwrap".into(),
                "--".into(),
            ],
        });
        setups.push(Setup {
            name: "bwrap (minimal)",
            prefix: [
                "bwrap",
                "--ro-bind",
                "/",
                "/",
                "--dev",
                "/dev",
                "--unshare-net",
                "--",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        });
    }

    // The reference C launcher (user + network namespaces and Landlock, then exec), built
    // from the probes the project measures itself against, when its path is given.
    if let Ok(probe) = std::env::var("GREYWALL_C_PROBE") {
        setups.push(Setup {
            name: "C probe (userns+netns+LL)",
            prefix: vec![
                probe,
                "-L".into(),
                "-U".into(),
                "-N".into(),
                "-w".into(),
                ".".into(),
                "--".into(),
            ],
        });
    }

    let mut workloads: Vec<(&str, Vec<String>)> = vec![("true", vec!["/usr/bin/true".into()])];
    if let Some(py) = which("python3") {
        workloads.push((
            "python3 -c pass",
            vec![
                py.to_string_lossy().into_owned(),
                "-c".into(),
                "pass".into(),
            ],
        ));
    }
    if let Some(git) = &git {
        workloads.push((
            "git status",
            vec![
                git.to_string_lossy().into_owned(),
                "status".into(),
                "--short".into(),
            ],
        ));
    }

    println!("runs per cell: {runs} (interleaved), times in ms, ratio = median / bare median");
    println!(
        "{:<18} {:<26} {:>9} {:>9} {:>8}",
        "workload", "setup", "median", "p90", "ratio"
    );
    for (wname, wargv) in &workloads {
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
        // Warm-up: fills the artifact cache and the page cache.
        for s in &setups {
            let argv: Vec<String> = s
                .prefix
                .iter()
                .cloned()
                .chain(wargv.iter().cloned())
                .collect();
            let _ = run_once(&argv, &work);
        }
        for _ in 0..runs {
            for (i, s) in setups.iter().enumerate() {
                let argv: Vec<String> = s
                    .prefix
                    .iter()
                    .cloned()
                    .chain(wargv.iter().cloned())
                    .collect();
                if let Some(t) = run_once(&argv, &work) {
                    times[i].push(t);
                }
            }
        }
        let bare = median(&mut times[0].clone());
        for (i, s) in setups.iter().enumerate() {
            if times[i].is_empty() {
                println!(
                    "{wname:<18} {:<26} {:>9} {:>9} {:>8}",
                    s.name, "failed", "", ""
                );
                continue;
            }
            let m = median(&mut times[i]);
            let p = p90(&mut times[i]);
            println!(
                "{wname:<18} {:<26} {m:>9.3} {p:>9.3} {:>7.2}x",
                s.name,
                m / bare
            );
        }
    }
}
