//! The side-by-side overhead suite: what a sandboxed command costs against the same command
//! bare, under greywall, bubblewrap, the static C reference launcher and the peer sandboxes.
//!
//! ```text
//! cargo run --release -p greywall-benches --bin overhead -- [--quick] [--rounds N]
//!     [--out DIR] [--publish] [--baseline FILE] [--save-baseline FILE] [--floor PCT]
//!     [--from RESULT.json]
//! ```
//!
//! Every workload runs under every setup in turn, the starting setup rotating each round, so
//! drift in machine speed hits all setups alike. Ratios are per-round `setup / bare` from the
//! same round; their median is reported, with its standard error from the spread across rounds.
//! See docs/benchmarks.md for the method and what each table measures.
//!
//! Results go to `target/greywall-bench/` (report.md, overhead.svg, overhead.json);
//! `--publish` also writes them into docs/. `--baseline FILE` compares this run's ratios with a
//! stored result and exits 1 on a regression beyond the noise.
//!
//! Hidden modes used by the suite itself: `__rss -- CMD…` (runs CMD, prints the peak RSS of its
//! process tree in KiB) and `__loop N -- CMD…` (runs CMD N times, prints each wall time in ms).

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use greywall_benches::baseline::{self, Thresholds, Verdict};
use greywall_benches::report::{Cell, Described, FORMAT, Machine, Report, Skipped};
use greywall_benches::setups::*;
use greywall_benches::steps::step_plans;
use greywall_benches::{chart, markdown, stats};
use greywall_compiler::plan::LinuxPlan;

const EXIT_REGRESSION: u8 = 1;
const EXIT_USAGE: u8 = 2;

/// The suite's path `PATH` for every command it runs (system tools, not shims).
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match args.first().and_then(|a| a.to_str()) {
        Some("__rss") => return rss_mode(&args[1..]),
        Some("__loop") => return loop_mode(&args[1..]),
        _ => {}
    }
    let opts = match Options::parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("overhead: {e}\n\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if opts.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match run(&opts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("overhead: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

const USAGE: &str = "\
usage: overhead [--quick] [--rounds N] [--out DIR] [--publish]
                [--baseline FILE] [--save-baseline FILE] [--floor PCT] [--from RESULT.json]

  --quick               10 rounds per table (a check that the suite works, not figures)
  --rounds N            timed rounds per table (default 100; the launcher-steps table 2N)
  --out DIR             where report.md, overhead.svg and overhead.json go
                        (default target/greywall-bench)
  --publish             also write docs/benchmarks/overhead.{svg,json} and the tables in
                        docs/benchmarks.md (between the generated-section markers)
  --baseline FILE       compare the ratios with a stored result; exit 1 on a regression
                        beyond the noise this run and the baseline measured
  --save-baseline FILE  store this run's result as a baseline
  --floor PCT           smallest change the comparison reports (default 5)
  --from RESULT.json    use a stored result instead of running (re-render, compare, publish)

environment: GREYWALL (the greywall binary; default the static one `cargo dist` builds,
target/x86_64-unknown-linux-musl/release/greywall, else target/release/greywall),
GREYWALL_C_PROBE (a built sbx-probe; default: built from benches/probes/sbx-probe.c),
GREYWALL_BENCH_DIR (scratch directory; default ~/.cache/greywall-bench)";

#[derive(Debug, Default)]
struct Options {
    help: bool,
    quick: bool,
    rounds: Option<usize>,
    out: Option<PathBuf>,
    publish: bool,
    baseline: Option<PathBuf>,
    save_baseline: Option<PathBuf>,
    floor: Option<f64>,
    from: Option<PathBuf>,
}

impl Options {
    fn parse(args: Vec<OsString>) -> Result<Options, String> {
        use lexopt::prelude::*;
        let mut o = Options::default();
        let mut p = lexopt::Parser::from_args(args);
        let err = |e: lexopt::Error| e.to_string();
        while let Some(arg) = p.next().map_err(err)? {
            match arg {
                Short('h') | Long("help") => o.help = true,
                Long("quick") => o.quick = true,
                Long("rounds") | Long("runs") => {
                    let n: usize = p.value().map_err(err)?.parse().map_err(err)?;
                    if n < 3 {
                        return Err("--rounds needs at least 3".into());
                    }
                    o.rounds = Some(n);
                }
                Long("out") => o.out = Some(p.value().map_err(err)?.into()),
                Long("publish") => o.publish = true,
                Long("baseline") => o.baseline = Some(p.value().map_err(err)?.into()),
                Long("save-baseline") => o.save_baseline = Some(p.value().map_err(err)?.into()),
                Long("floor") => {
                    let pct: f64 = p.value().map_err(err)?.parse().map_err(err)?;
                    o.floor = Some(pct / 100.0);
                }
                Long("from") => o.from = Some(p.value().map_err(err)?.into()),
                other => return Err(other.unexpected().to_string()),
            }
        }
        Ok(o)
    }
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(opts: &Options) -> Result<ExitCode, String> {
    let report = match &opts.from {
        Some(f) => read_report(f)?,
        None => measure(opts)?,
    };
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| workspace_root().join("target/greywall-bench"));
    std::fs::create_dir_all(&out).map_err(|e| format!("create {}: {e}", out.display()))?;
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n";
    let svg = chart::render(&report);
    write(&out.join("overhead.json"), &json)?;
    write(&out.join("overhead.svg"), &svg)?;
    write(
        &out.join("report.md"),
        &markdown::render(&report, Some("overhead.svg")),
    )?;
    println!("\n{}", markdown::render(&report, None));
    println!(
        "wrote {}/{{report.md,overhead.svg,overhead.json}}",
        out.display()
    );
    if opts.publish {
        let docs = workspace_root().join("docs");
        std::fs::create_dir_all(docs.join("benchmarks")).map_err(|e| e.to_string())?;
        write(&docs.join("benchmarks/overhead.json"), &json)?;
        write(&docs.join("benchmarks/overhead.svg"), &svg)?;
        let doc_path = docs.join("benchmarks.md");
        let doc = std::fs::read_to_string(&doc_path)
            .map_err(|e| format!("read {}: {e}", doc_path.display()))?;
        let tables = markdown::render(&report, Some("benchmarks/overhead.svg"));
        let doc = markdown::splice(&doc, "overhead", &tables)
            .map_err(|e| format!("{}: {e}", doc_path.display()))?;
        write(&doc_path, &doc)?;
        println!("published to docs/benchmarks.md and docs/benchmarks/");
    }
    if let Some(f) = &opts.save_baseline {
        write(f, &json)?;
        println!("saved the baseline {}", f.display());
    }
    if let Some(f) = &opts.baseline {
        let old = read_report(f)?;
        let t = Thresholds {
            floor: opts.floor.unwrap_or(Thresholds::default().floor),
            ..Thresholds::default()
        };
        let changes = baseline::compare(&old, &report, t);
        let lost = baseline::lost(&old, &report);
        let table = baseline::render(&changes, &lost);
        write(&out.join("baseline-comparison.md"), &table)?;
        println!("\nagainst the baseline {}:\n\n{table}", f.display());
        let regressions = changes
            .iter()
            .filter(|c| c.verdict == Verdict::Regression)
            .count();
        if regressions > 0 {
            eprintln!("overhead: {regressions} ratio(s) regressed beyond the noise");
            return Ok(ExitCode::from(EXIT_REGRESSION));
        }
        println!("no regression beyond the noise");
    }
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

fn read_report(path: &Path) -> Result<Report, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let r: Report = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if r.format != FORMAT {
        return Err(format!(
            "{}: result format {}, this suite reads {FORMAT}",
            path.display(),
            r.format
        ));
    }
    Ok(r)
}

// ---- Hidden modes --------------------------------------------------------------------------

/// `__rss -- CMD…`: runs CMD once and prints `ru_maxrss` of its reaped process tree (KiB):
/// the largest single process in it, launcher images before exec included. This process has
/// no other children, so `RUSAGE_CHILDREN` is exactly that tree.
fn rss_mode(args: &[OsString]) -> ExitCode {
    let argv = match args.first() {
        Some(a) if a == "--" => &args[1..],
        _ => args,
    };
    let Some((prog, rest)) = argv.split_first() else {
        return ExitCode::from(EXIT_USAGE);
    };
    let ok = quiet(Command::new(prog).args(rest))
        .status()
        .is_ok_and(|s| s.success());
    match nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN) {
        Ok(u) => println!("{}", u.max_rss()),
        Err(_) => return ExitCode::from(EXIT_USAGE),
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `__loop N -- CMD…`: runs CMD N times, printing each wall time in ms (a driver standing in
/// for an agent that spawns tool calls).
fn loop_mode(args: &[OsString]) -> ExitCode {
    let Some(n) = args
        .first()
        .and_then(|a| a.to_str())
        .and_then(|a| a.parse::<usize>().ok())
    else {
        return ExitCode::from(EXIT_USAGE);
    };
    let argv = match args.get(1) {
        Some(a) if a == "--" => &args[2..],
        _ => &args[1..],
    };
    let Some((prog, rest)) = argv.split_first() else {
        return ExitCode::from(EXIT_USAGE);
    };
    let mut out = String::new();
    for _ in 0..n {
        let t = Instant::now();
        let ok = quiet(Command::new(prog).args(rest))
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return ExitCode::FAILURE;
        }
        out.push_str(&format!("{}\n", t.elapsed().as_secs_f64() * 1e3));
    }
    print!("{out}");
    ExitCode::SUCCESS
}

fn quiet(c: &mut Command) -> &mut Command {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
}

// ---- Set-up ----------------------------------------------------------------------------------

/// Something to do before each timed run of a setup, outside the timer.
#[derive(Clone)]
enum Before {
    Nothing,
    /// Rewrite this policy file (a new comment each time), so the next run is a cache miss.
    EditPolicy(PathBuf),
}

#[derive(Clone)]
struct Setup {
    name: String,
    /// What runs, for the report (paths shortened).
    command: String,
    prefix: Vec<OsString>,
    before: Before,
    /// Environment set for this setup only, on top of the suite's.
    env: Vec<(String, OsString)>,
}

#[derive(Clone)]
struct Workload {
    name: String,
    argv: Vec<OsString>,
}

struct Bench {
    root: PathBuf,
    home: PathBuf,
    repo: PathBuf,
    env: Vec<(String, OsString)>,
    skipped: Vec<Skipped>,
    edits: u64,
}

fn os(v: &[&str]) -> Vec<OsString> {
    v.iter().map(OsString::from).collect()
}

fn find(name: &str) -> Option<PathBuf> {
    PATH.split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn first_line(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
}

impl Bench {
    fn skip(&mut self, what: &str, why: impl Into<String>) {
        let why = why.into();
        eprintln!("overhead: skipping {what}: {why}");
        self.skipped.push(Skipped {
            what: what.into(),
            why,
        });
    }

    fn command(&self, argv: &[OsString]) -> Option<Command> {
        let (prog, rest) = argv.split_first()?;
        let mut c = Command::new(prog);
        c.args(rest)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        Some(c)
    }

    fn before(&mut self, b: &Before) {
        if let Before::EditPolicy(path) = b {
            self.edits += 1;
            let _ = std::fs::write(path, edited_policy(self.edits));
        }
    }

    /// One run, timed from spawn to exit, output discarded. `Err` carries why it failed.
    fn time(&mut self, s: &Setup, w: &Workload) -> Result<f64, String> {
        self.before(&s.before);
        let argv: Vec<OsString> = s.prefix.iter().chain(&w.argv).cloned().collect();
        let mut c = self.command(&argv).ok_or("empty command")?;
        c.envs(s.env.iter().map(|(k, v)| (k, v)));
        quiet(&mut c);
        let t = Instant::now();
        let status = c.status().map_err(|e| e.to_string())?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if status.success() {
            Ok(ms)
        } else {
            Err(format!("{status}"))
        }
    }

    /// The check run before timing (also the warm-up): on failure, why, with the first line
    /// the command printed on stderr.
    fn check(&mut self, s: &Setup, w: &Workload) -> Result<(), String> {
        self.before(&s.before);
        let argv: Vec<OsString> = s.prefix.iter().chain(&w.argv).cloned().collect();
        let mut c = self.command(&argv).ok_or("empty command")?;
        let out = c.stdin(Stdio::null()).output().map_err(|e| e.to_string())?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        // The last line that is not one of greywall's notes says what went wrong.
        let line = err
            .lines()
            .rfind(|l| !l.trim().is_empty() && !l.contains(": note: "))
            .unwrap_or("");
        Err(format!("{}: {}", out.status, line.trim())
            .trim_end_matches(": ")
            .to_string())
    }

    /// Peak RSS of one invocation, median of `n` runs through `__rss`.
    fn rss(&mut self, s: &Setup, w: &Workload, n: usize) -> Option<u64> {
        let me = std::env::current_exe().ok()?;
        let mut v = Vec::new();
        for _ in 0..n {
            self.before(&s.before);
            let mut argv: Vec<OsString> = vec![me.clone().into(), "__rss".into(), "--".into()];
            argv.extend(s.prefix.iter().chain(&w.argv).cloned());
            let out = self.command(&argv)?.stdin(Stdio::null()).output().ok()?;
            if !out.status.success() {
                return None;
            }
            v.push(
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse::<f64>()
                    .ok()?,
            );
        }
        stats::median(&v).map(|m| m as u64)
    }
}

fn edited_policy(n: u64) -> String {
    format!(
        "// edit {n}: the overhead suite rewrites this file before each run (a cache miss)\n\
         {{\n  \"extends\": \"code\",\n  \"filesystem\": {{ \"allowWrite\": [\".\"] }}\n}}\n"
    )
}

fn prepare(quick: bool) -> Result<Bench, String> {
    let real_home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .ok_or("HOME is not set")?;
    // Not under /tmp: sandboxes replace /tmp with a private tmpfs.
    let root = std::env::var_os("GREYWALL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| real_home.join(".cache/greywall-bench"));
    let home = root.join("home");
    let repo = home.join("repo");
    let mk =
        |p: &Path| std::fs::create_dir_all(p).map_err(|e| format!("create {}: {e}", p.display()));
    mk(&repo)?;
    // What the 30-entry bubblewrap policy binds and masks, so it runs the same everywhere.
    for d in [
        ".ssh",
        ".aws",
        ".gnupg",
        ".docker",
        ".kube",
        ".config/gh",
        ".config/gcloud",
        ".cache",
        ".npm",
        ".cargo",
    ] {
        mk(&home.join(d))?;
    }
    for f in [
        ".netrc",
        ".git-credentials",
        ".bashrc",
        ".profile",
        ".gitconfig",
    ] {
        let p = home.join(f);
        if !p.exists() {
            write(&p, "")?;
        }
    }
    mk(&root.join("policies"))?;
    // greywall-proxyd, started on demand by the launcher, reads its settings from the scratch
    // home: the fetch workload's host name resolves to the suite's loopback server. Its own
    // runtime directory, so that a proxyd started earlier with other settings is not reused.
    mk(&home.join(".config/greywall"))?;
    write(
        &home.join(".config/greywall/proxyd.json"),
        &format!("{{\"resolve\": {{\"{FETCH_HOST}\": \"127.0.0.1\"}}}}\n"),
    )?;
    let runtime = root.join("run");
    mk(&runtime)?;
    std::fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .map_err(|e| format!("chmod {}: {e}", runtime.display()))?;
    let user = std::env::var("USER").unwrap_or_else(|_| "bench".into());
    let env = vec![
        ("XDG_RUNTIME_DIR".to_string(), runtime.into_os_string()),
        ("HOME".to_string(), home.clone().into_os_string()),
        ("USER".to_string(), user.into()),
        ("PATH".to_string(), PATH.into()),
        ("LANG".to_string(), "C.UTF-8".into()),
    ];
    let mut b = Bench {
        root,
        home,
        repo,
        env,
        skipped: Vec::new(),
        edits: 0,
    };
    make_repo(&mut b)?;
    let _ = quick;
    std::env::set_current_dir(&b.repo).map_err(|e| format!("cd {}: {e}", b.repo.display()))?;
    Ok(b)
}

/// A git repository with 20 committed files (the reference measurements' workload) and an
/// ignored tree of 200 source files for `rg`.
fn make_repo(b: &mut Bench) -> Result<(), String> {
    let tree = b.repo.join("tree");
    if !tree.join("d9/f19.rs").exists() {
        for d in 0..10 {
            let dir = tree.join(format!("d{d}"));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            for f in 0..20 {
                let mut text = String::new();
                for l in 0..40 {
                    text.push_str(&format!(
                        "fn item_{d}_{f}_{l}(x: u64) -> u64 {{ x.wrapping_mul({l}) }}\n"
                    ));
                }
                write(&dir.join(format!("f{f}.rs")), &text)?;
            }
        }
    }
    if b.repo.join(".git").exists() {
        return Ok(());
    }
    let Some(git) = find("git") else {
        b.skip("git status", "git is not installed");
        return Ok(());
    };
    write(&b.repo.join(".gitignore"), "/tree/\n/.bench/\n")?;
    for i in 0..20 {
        write(&b.repo.join(format!("file{i}.txt")), &format!("{i}\n"))?;
    }
    let env = b.env.clone();
    let git_ok = |args: &[&str]| {
        Command::new(&git)
            .args(args)
            .current_dir(&b.repo)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let ok = git_ok(&["init", "-q"])
        && git_ok(&["add", "."])
        && git_ok(&[
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@localhost",
            "commit",
            "-qm",
            "init",
        ]);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "cannot create the git repository {}",
            b.repo.display()
        ))
    }
}

/// The host name of the fetch workload: the suite's loopback server, for bare runs through
/// curl's `--resolve` and for greywall-proxyd through its `resolve` setting.
const FETCH_HOST: &str = "bench.greywall.test";

/// A loopback HTTP server answering every request with a 2-byte body, on a thread.
fn http_server() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(&mut conn);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if line == "\r\n" || line == "\n" {
                    break;
                }
                line.clear();
            }
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            let mut sink = [0u8; 64];
            let _ = conn.read(&mut sink);
        }
    });
    Ok(port)
}

fn workloads(b: &mut Bench) -> Vec<Workload> {
    let mut w = vec![
        Workload {
            name: "true".into(),
            argv: os(&["/usr/bin/true"]),
        },
        Workload {
            name: "echo".into(),
            argv: os(&["/usr/bin/echo", "hello"]),
        },
    ];
    match find("python3") {
        Some(p) => w.push(Workload {
            name: "python3 -c pass".into(),
            argv: vec![p.into(), "-c".into(), "pass".into()],
        }),
        None => b.skip("python3 -c pass", "python3 is not installed"),
    }
    match find("node") {
        Some(p) => w.push(Workload {
            name: "node -e ''".into(),
            argv: vec![p.into(), "-e".into(), "".into()],
        }),
        None => b.skip("node -e ''", "node is not installed"),
    }
    if let Some(git) = find("git").filter(|_| b.repo.join(".git").exists()) {
        w.push(Workload {
            name: "git status".into(),
            argv: vec![git.into(), "status".into()],
        });
    }
    match find("rg") {
        Some(rg) => w.push(Workload {
            name: "rg over 200 files".into(),
            argv: vec![
                rg.into(),
                "--no-ignore".into(),
                "-c".into(),
                "wrapping_mul".into(),
                "tree".into(),
            ],
        }),
        None => b.skip(
            "rg over 200 files",
            "ripgrep is not installed (benches/run.sh installs it with apt)",
        ),
    }
    // By name: through a proxy (greywall's network policy) the name is what the rules allow
    // and proxyd resolves; without one, curl's `--resolve` stands in for DNS.
    let fetch = |port: u16| -> Option<Vec<OsString>> {
        let url = format!("http://{FETCH_HOST}:{port}/");
        find("curl").map(|curl| {
            vec![
                curl.into(),
                "-sf".into(),
                "--resolve".into(),
                format!("{FETCH_HOST}:{port}:127.0.0.1").into(),
                "-o".into(),
                "/dev/null".into(),
                url.into(),
            ]
        })
    };
    match http_server().map(fetch) {
        Ok(Some(argv)) => w.push(Workload {
            name: "HTTP fetch (loopback)".into(),
            argv,
        }),
        Ok(None) => b.skip("HTTP fetch (loopback)", "curl is not installed"),
        Err(e) => b.skip(
            "HTTP fetch (loopback)",
            format!("cannot listen on 127.0.0.1: {e}"),
        ),
    }
    w
}

fn greywall_path() -> PathBuf {
    if let Some(p) = std::env::var_os("GREYWALL") {
        return PathBuf::from(p);
    }
    let root = workspace_root();
    let shipped = root.join("target/x86_64-unknown-linux-musl/release/greywall");
    if shipped.is_file() {
        shipped
    } else {
        root.join("target/release/greywall")
    }
}

/// The static C reference launcher: `GREYWALL_C_PROBE`, or built from the vendored source.
fn c_probe(b: &mut Bench) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GREYWALL_C_PROBE") {
        return Some(PathBuf::from(p));
    }
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("probes/sbx-probe.c");
    let dir = workspace_root().join("target/greywall-bench");
    let out = dir.join("sbx-probe-static");
    let _ = std::fs::create_dir_all(&dir);
    let fresh = |o: &Path| {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        matches!((m(o), m(&src)), (Some(a), Some(b)) if a >= b)
    };
    if !fresh(&out) {
        let built = Command::new("gcc")
            .args(["-O2", "-static", "-o"])
            .arg(&out)
            .arg(&src)
            .stdout(Stdio::null())
            .status();
        if !built.is_ok_and(|s| s.success()) {
            b.skip(
                C_PROBE,
                "gcc -O2 -static failed (gcc and a static libc are needed)",
            );
            return None;
        }
    }
    Some(out)
}

fn setups(b: &mut Bench, gw: &Path) -> Vec<Setup> {
    let simple = |name: &str, command: String, prefix: Vec<OsString>| Setup {
        name: name.into(),
        command,
        prefix,
        before: Before::Nothing,
        env: Vec::new(),
    };
    let gws = gw.as_os_str().to_os_string();
    let mut s = vec![
        simple(BARE, "CMD".into(), vec![]),
        simple(
            GREYWALL_CACHED,
            "greywall exec --cached -- CMD (built-in default policy: filesystem only, no network)"
                .into(),
            vec![gws.clone(), "exec".into(), "--cached".into(), "--".into()],
        ),
    ];
    s.push(Setup {
        env: vec![("GREYWALL_NS_POOL".into(), "0".into())],
        ..simple(
            GREYWALL_NO_POOL,
            "GREYWALL_NS_POOL=0 greywall exec --cached -- CMD (the default policy; the launcher creates its namespaces itself)".into(),
            vec![gws.clone(), "exec".into(), "--cached".into(), "--".into()],
        )
    });
    let proxyd = gw.with_file_name("greywall-proxyd");
    let proxy_works = proxyd.is_file()
        && Command::new(&proxyd).arg("--help").output().is_ok_and(|o| {
            o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("not implemented")
        });
    let net = b.root.join("policies/network.json");
    if proxy_works {
        let _ = write(
            &net,
            &format!(
                "{{\n  \"filesystem\": {{ \"defaultDenyRead\": true, \"allowWrite\": [\".\"] }},\n  \
                 \"network\": {{ \"allowedDomains\": [\"{FETCH_HOST}\"] }}\n}}\n"
            ),
        );
        s.push(simple(
            GREYWALL_NETWORK,
            format!("greywall exec --cached -s network.json -- CMD (allowedDomains {FETCH_HOST}; through greywall-proxyd)"),
            vec![gws.clone(), "exec".into(), "--cached".into(), "-s".into(), net.clone().into(), "--".into()],
        ));
    } else {
        b.skip(
            GREYWALL_NETWORK,
            format!(
                "{} is missing or not implemented yet; the network rows need it",
                proxyd.display()
            ),
        );
    }
    let edited = b.root.join("policies/edited.json");
    let _ = write(&edited, &edited_policy(0));
    s.push(Setup {
        name: GREYWALL_EDITED.into(),
        command: "greywall exec --cached -s edited.json -- CMD, the policy rewritten before every run (compile + cache store)".into(),
        prefix: vec![gws.clone(), "exec".into(), "--cached".into(), "-s".into(), edited.into(), "--".into()],
        before: Before::EditPolicy(b.root.join("policies/edited.json")),
        env: Vec::new(),
    });
    match ["/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
    {
        Some(bwrap) => {
            let through_bwrap = |extra: &[OsString]| {
                let mut p = vec![
                    gws.clone(),
                    "exec".into(),
                    "--cached".into(),
                    "--backend".into(),
                    "bwrap".into(),
                ];
                p.extend_from_slice(extra);
                p.push("--".into());
                p
            };
            s.push(simple(
                GREYWALL_BWRAP,
                "greywall exec --cached --backend bwrap -- CMD (the default policy; bwrap builds \
                 the namespaces and mounts, the launcher inside adds Landlock and seccomp)"
                    .into(),
                through_bwrap(&[]),
            ));
            if proxy_works {
                s.push(simple(
                    GREYWALL_BWRAP_NETWORK,
                    format!(
                        "greywall exec --cached --backend bwrap -s network.json -- CMD \
                         (allowedDomains {FETCH_HOST}; the bridge handed into bwrap)"
                    ),
                    through_bwrap(&["-s".into(), net.clone().into()]),
                ));
            }
            s.push(simple(
                BWRAP_MINIMAL,
                "bwrap --ro-bind / / --dev /dev --proc /proc CMD".into(),
                os(&[
                    bwrap,
                    "--ro-bind",
                    "/",
                    "/",
                    "--dev",
                    "/dev",
                    "--proc",
                    "/proc",
                ]),
            ));
            let mut p = vec![OsString::from(bwrap)];
            p.extend(policy30(&b.repo, &b.home));
            s.push(simple(
                BWRAP_POLICY30,
                "bwrap with a realistic agent policy: all namespaces, read-only /, private /tmp, \
                 writable repo with hooks and config read-only, 7 credential masks, writable \
                 caches (31 filesystem entries)"
                    .into(),
                p,
            ));
        }
        None => b.skip("bwrap", "bubblewrap is not installed"),
    }
    if let Some(probe) = c_probe(b) {
        let mut p = vec![probe.into_os_string()];
        p.extend(os(&["-U", "-N", "-L", "-T", "-S", "-w"]));
        p.push(b.repo.clone().into());
        p.extend(os(&["-w", "/tmp", "--"]));
        s.push(simple(
            C_PROBE,
            "sbx-probe -U -N -L -T -S -w REPO -w /tmp -- CMD (benches/probes/sbx-probe.c, gcc -O2 -static)".into(),
            p,
        ));
    }
    match find("srt") {
        Some(srt) => {
            let settings = b.root.join("policies/srt-min.json");
            let _ = write(
                &settings,
                r#"{"network":{"allowedDomains":[],"deniedDomains":[]},"filesystem":{"denyRead":[],"allowWrite":["."],"denyWrite":[]}}"#,
            );
            s.push(simple(
                SRT,
                "srt --settings srt-min.json -- CMD (@anthropic-ai/sandbox-runtime, minimal settings)".into(),
                vec![srt.into(), "--settings".into(), settings.into(), "--".into()],
            ));
        }
        None => b.skip(
            SRT,
            "not installed (npm install -g @anthropic-ai/sandbox-runtime)",
        ),
    }
    match find("codex") {
        Some(codex) => {
            // `codex sandbox linux -- CMD` in older releases, `codex sandbox -- CMD` since.
            let forms: [&[&str]; 2] = [&["sandbox", "linux", "--"], &["sandbox", "--"]];
            let probe = Workload {
                name: "true".into(),
                argv: os(&["/usr/bin/true"]),
            };
            let mut chosen = None;
            for f in forms {
                let mut p = vec![OsString::from(&codex)];
                p.extend(os(f));
                let setup = simple(
                    CODEX,
                    format!(
                        "codex {} CMD (@openai/codex, default read-only policy)",
                        f.join(" ")
                    ),
                    p,
                );
                if b.check(&setup, &probe).is_ok() {
                    chosen = Some(setup);
                    break;
                }
            }
            match chosen {
                Some(c) => s.push(c),
                None => b.skip(
                    CODEX,
                    "neither `codex sandbox linux -- true` nor `codex sandbox -- true` works",
                ),
            }
        }
        None => b.skip(CODEX, "not installed (npm install -g @openai/codex)"),
    }
    s
}

/// bubblewrap arguments of the reference "realistic agent" policy (31 filesystem entries).
fn policy30(repo: &Path, home: &Path) -> Vec<OsString> {
    let r = |p: &str| repo.join(p).into_os_string();
    let h = |p: &str| home.join(p).into_os_string();
    let mut a = os(&[
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        "--tmpfs",
        "/var/tmp",
        "--tmpfs",
        "/run",
        "--tmpfs",
        "/dev/shm",
    ]);
    let mut pair = |flag: &str, src: OsString, dst: OsString| {
        a.push(flag.into());
        a.push(src);
        a.push(dst);
    };
    pair("--bind", repo.into(), repo.into());
    pair("--ro-bind", r(".git/hooks"), r(".git/hooks"));
    pair("--ro-bind", r(".git/config"), r(".git/config"));
    for p in [".env", ".vscode", ".idea", ".mcp.json"] {
        pair("--ro-bind-try", r(p), r(p));
    }
    let mut a2 = Vec::new();
    for d in [
        ".ssh",
        ".aws",
        ".gnupg",
        ".docker",
        ".kube",
        ".config/gh",
        ".config/gcloud",
    ] {
        a2.push(OsString::from("--tmpfs"));
        a2.push(h(d));
    }
    a.extend(a2);
    let mut pair = |flag: &str, src: OsString, dst: OsString| {
        a.push(flag.into());
        a.push(src);
        a.push(dst);
    };
    pair("--ro-bind", "/dev/null".into(), h(".netrc"));
    pair("--ro-bind", "/dev/null".into(), h(".git-credentials"));
    for d in [".cache", ".npm", ".cargo"] {
        pair("--bind", h(d), h(d));
    }
    for f in [".bashrc", ".profile", ".gitconfig"] {
        pair("--ro-bind-try", h(f), h(f));
    }
    pair(
        "--ro-bind-try",
        "/etc/resolv.conf".into(),
        "/etc/resolv.conf".into(),
    );
    pair("--setenv", "TMPDIR".into(), "/tmp".into());
    pair("--setenv", "SANDBOX".into(), "1".into());
    a.extend(os(&["--hostname", "sandbox", "--chdir"]));
    a.push(repo.into());
    a
}

// ---- Measuring -----------------------------------------------------------------------------

/// Interleaved rounds of every setup on one workload: per-setup times (`None`: failed round).
/// Setups whose check run failed are left out and get the failure.
fn interleave(
    b: &mut Bench,
    setups: &[Setup],
    w: &Workload,
    rounds: usize,
) -> Vec<Result<Vec<Option<f64>>, String>> {
    let mut res: Vec<Result<Vec<Option<f64>>, String>> = setups
        .iter()
        .map(|s| b.check(s, w).map(|()| Vec::with_capacity(rounds)))
        .collect();
    // A second warm-up pass: page cache, artifact cache, dentries.
    for s in setups {
        let _ = b.time(s, w);
    }
    let k = setups.len();
    for r in 0..rounds {
        let mut round: Vec<Option<f64>> = vec![None; k];
        for j in 0..k {
            let i = (j + r) % k;
            if res[i].is_ok() {
                round[i] = b.time(&setups[i], w).ok();
            }
        }
        for (i, t) in round.into_iter().enumerate() {
            if let Ok(v) = &mut res[i] {
                v.push(t);
            }
        }
    }
    res
}

fn cells(
    b: &mut Bench,
    setups: &[Setup],
    w: &Workload,
    rounds: usize,
    rss_runs: usize,
) -> Vec<Cell> {
    eprintln!(
        "overhead: {} ({} setups, {rounds} rounds)",
        w.name,
        setups.len()
    );
    let res = interleave(b, setups, w, rounds);
    let bare = match &res[0] {
        Ok(v) => v.clone(),
        Err(_) => vec![None; rounds],
    };
    let mut out = Vec::new();
    for (s, r) in setups.iter().zip(res) {
        let (summary, failure) = match r {
            Ok(times) => match stats::summarize(&times, &bare) {
                Some(sum) => (Some(sum), None),
                None => (
                    None,
                    Some("no round succeeded (or bare failed)".to_string()),
                ),
            },
            Err(e) => (None, Some(e)),
        };
        let peak = if summary.is_some() && rss_runs > 0 {
            b.rss(s, w, rss_runs)
        } else {
            None
        };
        out.push(Cell {
            workload: w.name.clone(),
            setup: s.name.clone(),
            summary,
            failure,
            peak_rss_kib: peak,
        });
    }
    out
}

/// The compiled plan greywall uses in the bench repository, from `greywall compile --json`.
fn compiled_plan(b: &Bench, gw: &Path) -> Result<LinuxPlan, String> {
    let mut c = b
        .command(&[gw.into(), "compile".into(), "--json".into()])
        .ok_or("no command")?;
    let out = c.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "greywall compile failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("greywall compile --json: {e}"))?;
    let path = doc["artifacts"]["linux_plan"]
        .as_str()
        .ok_or("greywall compile --json names no linux_plan")?;
    let bytes = std::fs::read(path).map_err(|e| format!("read {path}: {e}"))?;
    LinuxPlan::decode(&bytes).map_err(|e| format!("{path}: {e}"))
}

fn steps(b: &mut Bench, gw: &Path, rounds: usize) -> Vec<Cell> {
    let full = match compiled_plan(b, gw) {
        Ok(p) => p,
        Err(e) => {
            b.skip("launcher steps", e);
            return Vec::new();
        }
    };
    let dir = b.root.join("plans");
    let _ = std::fs::create_dir_all(&dir);
    let mut setups = vec![Setup {
        name: BARE.into(),
        command: "true".into(),
        prefix: vec![],
        before: Before::Nothing,
        env: Vec::new(),
    }];
    for (i, (name, plan)) in step_plans(&full).into_iter().enumerate() {
        let file = dir.join(format!("step{i}.plan"));
        if write_bytes(&file, &plan.encode()).is_err() {
            b.skip("launcher steps", format!("cannot write {}", file.display()));
            return Vec::new();
        }
        setups.push(Setup {
            name,
            command: format!("greywall __exec-plan {} -- true", file.display()),
            prefix: vec![gw.into(), "__exec-plan".into(), file.into(), "--".into()],
            before: Before::Nothing,
            env: Vec::new(),
        });
    }
    let w = Workload {
        name: "true".into(),
        argv: os(&["/usr/bin/true"]),
    };
    cells(b, &setups, &w, rounds, 0)
}

fn write_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// Per-call cost inside one long-lived sandbox: a driver (`__loop`) spawns the workload
/// `per_round` times, bare and inside `greywall exec --cached`; each round's sample is the
/// driver's median call.
fn inside(b: &mut Bench, gw: &Path, ws: &[Workload], rounds: usize) -> Vec<Cell> {
    // The driver must be visible inside the sandbox: a copy in the (git-ignored) workspace.
    let driver = b.repo.join(".bench/overhead");
    let copied = std::env::current_exe()
        .map_err(|e| e.to_string())
        .and_then(|me| {
            std::fs::create_dir_all(b.repo.join(".bench")).map_err(|e| e.to_string())?;
            let tmp = b.repo.join(".bench/overhead.tmp");
            std::fs::copy(me, &tmp).map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, &driver).map_err(|e| e.to_string())
        });
    if let Err(e) = copied {
        b.skip("per-call cost inside one sandbox", e);
        return Vec::new();
    }
    let per_round = 10;
    let drivers = [
        (BARE, vec![]),
        (
            GREYWALL_CACHED,
            vec![
                gw.as_os_str().to_os_string(),
                "exec".into(),
                "--cached".into(),
                "--".into(),
            ],
        ),
    ];
    let mut out = Vec::new();
    for w in ws.iter().filter(|w| !w.name.starts_with("HTTP")) {
        eprintln!(
            "overhead: {} inside one sandbox ({rounds} rounds × {per_round} calls)",
            w.name
        );
        let mut times: Vec<Vec<Option<f64>>> = vec![Vec::new(); drivers.len()];
        let mut failure: Vec<Option<String>> = vec![None; drivers.len()];
        for r in 0..rounds {
            for j in 0..drivers.len() {
                let i = (j + r) % drivers.len();
                if failure[i].is_some() {
                    times[i].push(None);
                    continue;
                }
                let mut argv = drivers[i].1.clone();
                argv.push(driver.clone().into());
                argv.push("__loop".into());
                argv.push(per_round.to_string().into());
                argv.push("--".into());
                argv.extend(w.argv.iter().cloned());
                let Some(mut c) = b.command(&argv) else {
                    continue;
                };
                let res = c.stdin(Stdio::null()).stderr(Stdio::null()).output();
                let sample = match res {
                    Ok(o) if o.status.success() => {
                        let v: Vec<f64> = String::from_utf8_lossy(&o.stdout)
                            .lines()
                            .filter_map(|l| l.trim().parse().ok())
                            .collect();
                        stats::median(&v)
                    }
                    Ok(o) => {
                        failure[i] = Some(format!("driver: {}", o.status));
                        None
                    }
                    Err(e) => {
                        failure[i] = Some(e.to_string());
                        None
                    }
                };
                times[i].push(sample);
            }
        }
        for (i, (name, _)) in drivers.iter().enumerate() {
            let summary = stats::summarize(&times[i], &times[0]);
            out.push(Cell {
                workload: w.name.clone(),
                setup: (*name).into(),
                failure: if summary.is_none() {
                    Some(
                        failure[i]
                            .clone()
                            .unwrap_or_else(|| "no round succeeded".into()),
                    )
                } else {
                    None
                },
                summary,
                peak_rss_kib: None,
            });
        }
    }
    out
}

fn machine(gw: &Path, setups: &[Setup]) -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "unknown OS".into());
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_string))
        })
        .unwrap_or_default();
    let user = if uid == "0" {
        "root".to_string()
    } else {
        format!("an unprivileged user (uid {uid})")
    };
    let mut versions = Vec::new();
    let gws = gw.to_string_lossy();
    let has = |n: &str| setups.iter().any(|s| s.name == n);
    let mut tools: Vec<(&str, String, Vec<&str>)> = vec![
        ("greywall", gws.to_string(), vec!["--version"]),
        ("git", "git".into(), vec!["--version"]),
        ("python3", "python3".into(), vec!["--version"]),
        ("node", "node".into(), vec!["--version"]),
        ("rg", "rg".into(), vec!["--version"]),
        ("curl", "curl".into(), vec!["--version"]),
    ];
    if has(BWRAP_MINIMAL) {
        tools.push(("bwrap", "bwrap".into(), vec!["--version"]));
    }
    if has(SRT) {
        tools.push(("srt", "srt".into(), vec!["--version"]));
    }
    if has(CODEX) {
        tools.push(("codex", "codex".into(), vec!["--version"]));
    }
    for (name, cmd, args) in tools {
        let path = if cmd.contains('/') {
            Some(PathBuf::from(&cmd))
        } else {
            find(&cmd)
        };
        if let Some(v) = path.and_then(|p| first_line(&p.to_string_lossy(), &args)) {
            versions.push((name.to_string(), v));
        }
    }
    Machine {
        date: today(),
        cpu,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel,
        os,
        user,
        versions,
    }
}

/// Today's UTC date, `YYYY-MM-DD` (civil-from-days, Howard Hinnant's algorithm).
fn today() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn measure(opts: &Options) -> Result<Report, String> {
    let rounds = opts.rounds.unwrap_or(if opts.quick { 10 } else { 100 });
    let rss_runs = if opts.quick { 1 } else { 3 };
    let gw = greywall_path();
    if !gw.is_file() {
        return Err(format!(
            "{} does not exist: build it first (cargo build --release -p greywall), or set GREYWALL",
            gw.display()
        ));
    }
    let mut b = prepare(opts.quick)?;
    let ws = workloads(&mut b);
    let ss = setups(&mut b, &gw);
    let mut overhead = Vec::new();
    for w in &ws {
        if w.name.starts_with("HTTP") {
            // Only setups that give the command a network: the others refuse it by design.
            let (net, isolated): (Vec<Setup>, Vec<Setup>) = ss.iter().cloned().partition(|s| {
                [
                    BARE,
                    GREYWALL_NETWORK,
                    GREYWALL_BWRAP_NETWORK,
                    BWRAP_MINIMAL,
                ]
                .contains(&s.name.as_str())
            });
            overhead.extend(cells(&mut b, &net, w, rounds, rss_runs));
            overhead.extend(isolated.iter().map(|s| Cell {
                workload: w.name.clone(),
                setup: s.name.clone(),
                summary: None,
                failure: Some("no network in this setup (by design)".into()),
                peak_rss_kib: None,
            }));
            continue;
        }
        overhead.extend(cells(&mut b, &ss, w, rounds, rss_runs));
    }
    let steps = steps(&mut b, &gw, rounds * 2);
    let inside = inside(&mut b, &gw, &ws, rounds);
    let machine = machine(&gw, &ss);
    let shorten = |s: &str| {
        s.replace(&b.repo.to_string_lossy().into_owned(), "REPO")
            .replace(&b.home.to_string_lossy().into_owned(), "HOME")
            .replace(&b.root.to_string_lossy().into_owned(), "BENCH")
    };
    Ok(Report {
        format: FORMAT,
        machine,
        rounds,
        quick: opts.quick,
        workloads: ws
            .iter()
            .map(|w| Described {
                name: w.name.clone(),
                command: shorten(
                    &w.argv
                        .iter()
                        .map(|a| a.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
            })
            .collect(),
        setups: ss
            .iter()
            .map(|s| Described {
                name: s.name.clone(),
                command: shorten(&s.command),
            })
            .collect(),
        overhead,
        steps,
        inside,
        skipped: b.skipped,
    })
}
