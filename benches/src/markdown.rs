//! The report as markdown tables, and splicing generated text into a document between
//! markers, so published figures are exactly what the suite produced.

use std::fmt::Write as _;

use crate::report::{Cell, Report};
use crate::setups::{BARE, GREYWALL_CACHED};

/// Commands per session in the session-cost table (as Greywall's benchmark doc).
pub const SESSION_SIZES: [u32; 3] = [1, 10, 50];

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn ratio(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}x")
    } else if v >= 10.0 {
        format!("{v:.1}x")
    } else {
        format!("{v:.2}x")
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "–".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

fn code(s: &str) -> String {
    format!("`{}`", s.replace('`', "'"))
}

fn esc(s: &str) -> String {
    s.replace('|', "\\|")
}

/// Everything the suite publishes, as one markdown fragment. `chart` is the link to the SVG
/// chart relative to the document, if there is one.
pub fn render(r: &Report, chart: Option<&str>) -> String {
    let mut out = String::new();
    machine(&mut out, r);
    if let Some(chart) = chart {
        let _ = writeln!(
            out,
            "\n![Overhead ratio against bare, per setup and workload (log scale)]({chart})\n"
        );
    }
    matrix(&mut out, r);
    details(&mut out, r);
    steps(&mut out, r);
    inside(&mut out, r);
    sessions(&mut out, r);
    skipped(&mut out, r);
    out
}

fn machine(out: &mut String, r: &Report) {
    let m = &r.machine;
    let _ = writeln!(
        out,
        "Run of {}: {} rounds{}, interleaved. Machine: {}, {} cores, Linux {}, {}, as {}.",
        m.date,
        r.rounds,
        if r.quick { " (`--quick`)" } else { "" },
        esc(&m.cpu),
        m.cores,
        esc(&m.kernel),
        esc(&m.os),
        esc(&m.user)
    );
    if !m.versions.is_empty() {
        let v: Vec<String> = m
            .versions
            .iter()
            .map(|(t, v)| format!("{t} {}", esc(v)))
            .collect();
        let _ = writeln!(out, "Versions: {}.", v.join("; "));
    }
}

fn summary_of<'a>(cells: &'a [Cell], w: &str, s: &str) -> Option<&'a Cell> {
    cells.iter().find(|c| c.workload == w && c.setup == s)
}

fn matrix(out: &mut String, r: &Report) {
    let _ = writeln!(
        out,
        "\nOverhead ratio against bare from the same rounds (median of per-round ratios), with \
         the median wall time:\n"
    );
    let mut head = String::from("| setup |");
    let mut rule = String::from("|---|");
    for w in &r.workloads {
        let _ = write!(head, " {} |", code(&w.name));
        rule.push_str("---:|");
    }
    let _ = writeln!(out, "{head}\n{rule}");
    for s in &r.setups {
        let mut row = format!("| {} |", esc(&s.name));
        for w in &r.workloads {
            let text = match summary_of(&r.overhead, &w.name, &s.name) {
                Some(Cell {
                    summary: Some(x), ..
                }) => format!("{} ({} ms)", ratio(x.ratio), ms(x.median_ms)),
                Some(Cell {
                    failure: Some(_), ..
                }) => "failed".into(),
                _ => "–".into(),
            };
            let _ = write!(row, " {text} |");
        }
        let _ = writeln!(out, "{row}");
    }
}

fn details(out: &mut String, r: &Report) {
    let _ = writeln!(
        out,
        "\nEvery cell: wall time from spawn to exit (ms), ratio ± its relative standard error, \
         the paired difference from bare (+ms), and peak RSS (MiB, `ru_maxrss` of the \
         invocation's process tree: the largest single process in it).\n"
    );
    let _ = writeln!(
        out,
        "| workload | setup | n | median | p90 | ratio | ± | +ms | peak RSS |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for c in &r.overhead {
        match &c.summary {
            Some(s) => {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {:.1}% | {} | {} |",
                    code(&c.workload),
                    esc(&c.setup),
                    s.n,
                    ms(s.median_ms),
                    ms(s.p90_ms),
                    ratio(s.ratio),
                    s.ratio_rel_se * 100.0,
                    if c.setup == BARE {
                        "–".into()
                    } else {
                        format!("{:+.2}", s.plus_ms)
                    },
                    mib(c.peak_rss_kib)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "| {} | {} | 0 | failed: {} | | | | | |",
                    code(&c.workload),
                    esc(&c.setup),
                    esc(c.failure.as_deref().unwrap_or("no successful round"))
                );
            }
        }
    }
}

fn steps(out: &mut String, r: &Report) {
    if r.steps.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nWhere greywall's time goes: `greywall __exec-plan PLAN -- true` with the set-up steps \
         of the compiled plan added one at a time (each row includes the ones above it):\n"
    );
    let _ = writeln!(
        out,
        "| plan | median ms | ratio | +ms vs bare | this step |\n|---|---:|---:|---:|---:|"
    );
    let mut prev: Option<f64> = None;
    for c in &r.steps {
        let Some(s) = &c.summary else {
            let _ = writeln!(
                out,
                "| {} | failed: {} | | | |",
                esc(&c.setup),
                esc(c.failure.as_deref().unwrap_or("no successful round"))
            );
            prev = None;
            continue;
        };
        let step = match (c.setup.as_str(), prev) {
            (BARE, _) => "–".to_string(),
            (_, Some(p)) => format!("{:+.3}", s.plus_ms - p),
            (_, None) => "–".to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            esc(&c.setup),
            ms(s.median_ms),
            ratio(s.ratio),
            if c.setup == BARE {
                "–".into()
            } else {
                format!("{:+.3}", s.plus_ms)
            },
            step
        );
        prev = Some(if c.setup == BARE { 0.0 } else { s.plus_ms });
    }
}

fn inside(out: &mut String, r: &Report) {
    if r.inside.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nPer tool call when the agent itself runs inside one sandbox: a driver process spawns \
         the command repeatedly, bare and from inside `greywall exec --cached`; ms per call:\n"
    );
    let _ = writeln!(
        out,
        "| workload | driver | median ms per call | p90 | ratio |\n|---|---|---:|---:|---:|"
    );
    for c in &r.inside {
        match &c.summary {
            Some(s) => {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} |",
                    code(&c.workload),
                    esc(&c.setup),
                    ms(s.median_ms),
                    ms(s.p90_ms),
                    ratio(s.ratio)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "| {} | {} | failed: {} | | |",
                    code(&c.workload),
                    esc(&c.setup),
                    esc(c.failure.as_deref().unwrap_or("no successful round"))
                );
            }
        }
    }
}

/// Rows of the session-cost table for one workload: a label and the cost in ms of a session
/// of each size in [`SESSION_SIZES`].
pub fn session_rows(r: &Report, workload: &str) -> Vec<(String, [f64; 3])> {
    let times = |per: f64, start: f64| SESSION_SIZES.map(|n| start + f64::from(n) * per);
    let mut rows = Vec::new();
    for s in &r.setups {
        if let Some(m) = r.median_ms(workload, &s.name) {
            let label = if s.name == BARE {
                "bare".to_string()
            } else {
                format!("{}, a fresh sandbox per command", s.name)
            };
            rows.push((label, times(m, 0.0)));
        }
    }
    let per_call = r
        .inside
        .iter()
        .find(|c| c.workload == workload && c.setup == GREYWALL_CACHED)
        .and_then(|c| c.summary.as_ref())
        .map(|s| s.median_ms);
    if let (Some(start), Some(per)) = (r.median_ms("true", GREYWALL_CACHED), per_call) {
        rows.push((
            "one greywall sandbox, commands run as its children".to_string(),
            times(per, start),
        ));
    }
    rows
}

fn sessions(out: &mut String, r: &Report) {
    for w in ["true", "git status"] {
        let rows = session_rows(r, w);
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\nSession cost of `{w}`, in ms: commands × the median per command from the table \
             above; for one long-lived sandbox, its start-up (`greywall exec --cached -- true`) \
             plus commands × the per-call median measured inside it.\n"
        );
        let mut head = String::from("| session |");
        let mut rule = String::from("|---|");
        for n in SESSION_SIZES {
            let _ = write!(head, " {n} command{} |", if n == 1 { "" } else { "s" });
            rule.push_str("---:|");
        }
        let _ = writeln!(out, "{head}\n{rule}");
        for (label, v) in rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                esc(&label),
                ms(v[0]),
                ms(v[1]),
                ms(v[2])
            );
        }
    }
}

fn skipped(out: &mut String, r: &Report) {
    if r.skipped.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nNot measured in this run:\n");
    for s in &r.skipped {
        let _ = writeln!(out, "- {}: {}", esc(&s.what), s.why);
    }
}

/// Why a document could not be updated.
#[derive(Debug, PartialEq, Eq)]
pub struct MissingMarkers {
    pub begin: String,
    pub end: String,
}

impl std::fmt::Display for MissingMarkers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the document needs the lines `{}` and `{}`, in that order",
            self.begin, self.end
        )
    }
}

/// The begin and end marker lines for a named generated section.
pub fn markers(name: &str) -> (String, String) {
    (
        format!("<!-- generated by the overhead suite: {name} -->"),
        format!("<!-- end of generated section: {name} -->"),
    )
}

/// Replaces what lies between the markers of section `name` in `doc` with `content`.
pub fn splice(doc: &str, name: &str, content: &str) -> Result<String, MissingMarkers> {
    let (begin, end) = markers(name);
    let missing = || MissingMarkers {
        begin: begin.clone(),
        end: end.clone(),
    };
    let b = doc.find(&begin).ok_or_else(missing)?;
    let after_begin = b + begin.len();
    let e = doc[after_begin..].find(&end).ok_or_else(missing)? + after_begin;
    let mut out = String::with_capacity(doc.len() + content.len());
    out.push_str(&doc[..after_begin]);
    out.push('\n');
    out.push_str(content.trim_end());
    out.push('\n');
    out.push_str(&doc[e..]);
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::{Described, FORMAT, Machine, Skipped};
    use crate::stats::Summary;

    fn sum(median: f64, ratio: f64) -> Summary {
        Summary {
            n: 10,
            min_ms: median * 0.9,
            median_ms: median,
            p90_ms: median * 1.2,
            ratio,
            ratio_rel_se: 0.01,
            plus_ms: median - median / ratio,
        }
    }

    fn cell(w: &str, s: &str, median: f64, ratio: f64) -> Cell {
        Cell {
            workload: w.into(),
            setup: s.into(),
            summary: Some(sum(median, ratio)),
            failure: None,
            peak_rss_kib: Some(2048),
        }
    }

    pub(crate) fn sample() -> Report {
        let d = |n: &str| Described {
            name: n.into(),
            command: n.into(),
        };
        Report {
            format: FORMAT,
            machine: Machine {
                date: "2026-11-24".into(),
                cpu: "Test CPU".into(),
                cores: 2,
                kernel: "6.18".into(),
                os: "Debian 12".into(),
                user: "root".into(),
                versions: vec![("bwrap".into(), "bubblewrap 0.8.0".into())],
            },
            rounds: 10,
            quick: true,
            workloads: vec![d("true"), d("git status")],
            setups: vec![d(BARE), d(GREYWALL_CACHED), d("bwrap | minimal")],
            overhead: vec![
                cell("true", BARE, 1.0, 1.0),
                cell("true", GREYWALL_CACHED, 2.0, 2.0),
                cell("git status", BARE, 2.0, 1.0),
                cell("git status", GREYWALL_CACHED, 3.0, 1.5),
                Cell {
                    workload: "true".into(),
                    setup: "bwrap | minimal".into(),
                    summary: None,
                    failure: Some("exit status 1".into()),
                    peak_rss_kib: None,
                },
            ],
            steps: vec![
                cell("true", BARE, 1.0, 1.0),
                cell("true", "exec only", 1.5, 1.5),
                cell("true", "+ namespaces", 1.6, 1.6),
            ],
            inside: vec![
                cell("true", BARE, 1.0, 1.0),
                cell("true", GREYWALL_CACHED, 1.1, 1.1),
            ],
            skipped: vec![Skipped {
                what: "srt".into(),
                why: "not installed".into(),
            }],
        }
    }

    #[test]
    fn render_has_every_table_with_the_figures() {
        let md = render(&sample(), Some("benchmarks/overhead.svg"));
        assert!(md.contains("![Overhead ratio"), "{md}");
        assert!(md.contains("(benchmarks/overhead.svg)"));
        assert!(
            md.contains("| greywall exec --cached | 2.00x (2.00 ms) | 1.50x (3.00 ms) |"),
            "{md}"
        );
        assert!(
            md.contains("| bwrap \\| minimal | failed | – |"),
            "pipes escaped, missing cell dashed: {md}"
        );
        assert!(md.contains("| `true` | greywall exec --cached | 10 | 2.00 | 2.40 | 2.00x | 1.0% | +1.00 | 2.0 |"), "{md}");
        assert!(md.contains("failed: exit status 1"));
        // steps: each row's own cost is its +ms minus the row above
        assert!(
            md.contains("| + namespaces | 1.60 | 1.60x | +0.600 | +0.100 |"),
            "{md}"
        );
        assert!(md.contains("- srt: not installed"));
        // session costs: 1, 10 and 50 commands
        assert!(
            md.contains(
                "| greywall exec --cached, a fresh sandbox per command | 2.00 | 20.0 | 100 |"
            ),
            "{md}"
        );
        // one sandbox: start-up 2.0 ms + n × 1.1 ms
        assert!(
            md.contains(
                "| one greywall sandbox, commands run as its children | 3.10 | 13.0 | 57.0 |"
            ),
            "{md}"
        );
    }

    #[test]
    fn splice_replaces_only_between_markers() {
        let (b, e) = markers("overhead");
        let doc = format!("intro\n{b}\nold\ntable\n{e}\noutro\n");
        let out = splice(&doc, "overhead", "new\n\n").unwrap();
        assert_eq!(out, format!("intro\n{b}\nnew\n{e}\noutro\n"));
        // idempotent
        assert_eq!(splice(&out, "overhead", "new").unwrap(), out);
        assert!(splice("no markers", "overhead", "x").is_err());
        let reversed = format!("{e}\n{b}\n");
        assert!(splice(&reversed, "overhead", "x").is_err());
    }
}
