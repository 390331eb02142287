//! The regression check: compares a run's overhead ratios with a stored baseline run and
//! flags changes larger than the noise both runs measured.
//!
//! For each (table, workload, setup) present in both, the change is `new / old − 1`. The noise
//! is `k · √(se_old² + se_new²)` from each ratio's relative standard error (the spread of the
//! per-round ratios, see [`crate::stats::median_rel_se`]), but never less than `floor`: a
//! quiet run's standard error says nothing about how the machine differs between runs.

use std::fmt::Write as _;

use crate::report::{Cell, Report};
use crate::setups::BARE;

/// How the change compares with the noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Slower beyond the noise.
    Regression,
    /// Faster beyond the noise.
    Improvement,
    Within,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub table: &'static str,
    pub workload: String,
    pub setup: String,
    pub old: f64,
    pub new: f64,
    /// `new / old − 1`.
    pub change: f64,
    /// The relative change accepted as noise.
    pub noise: f64,
    pub verdict: Verdict,
}

/// Thresholds of the comparison.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Multiple of the combined standard error.
    pub k: f64,
    /// Smallest relative change ever reported (0.05 = 5 %).
    pub floor: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            k: 3.0,
            floor: 0.05,
        }
    }
}

fn pairs<'a>(
    table: &'static str,
    old: &'a [Cell],
    new: &'a [Cell],
) -> impl Iterator<Item = (&'static str, &'a Cell, &'a Cell)> + 'a {
    new.iter().filter_map(move |n| {
        let o = old
            .iter()
            .find(|o| o.workload == n.workload && o.setup == n.setup)?;
        Some((table, o, n))
    })
}

/// Every ratio present in both runs (bare excluded: it is 1 by definition).
pub fn compare(old: &Report, new: &Report, t: Thresholds) -> Vec<Change> {
    pairs("overhead", &old.overhead, &new.overhead)
        .chain(pairs("steps", &old.steps, &new.steps))
        .chain(pairs("inside", &old.inside, &new.inside))
        .filter(|(_, o, _)| o.setup != BARE)
        .filter_map(|(table, o, n)| {
            let (os, ns) = (o.summary.as_ref()?, n.summary.as_ref()?);
            if os.ratio <= 0.0 {
                return None;
            }
            let change = ns.ratio / os.ratio - 1.0;
            let se = (os.ratio_rel_se.powi(2) + ns.ratio_rel_se.powi(2)).sqrt();
            let noise = (t.k * se).max(t.floor);
            let verdict = if change > noise {
                Verdict::Regression
            } else if change < -noise {
                Verdict::Improvement
            } else {
                Verdict::Within
            };
            Some(Change {
                table,
                workload: n.workload.clone(),
                setup: n.setup.clone(),
                old: os.ratio,
                new: ns.ratio,
                change,
                noise,
                verdict,
            })
        })
        .collect()
}

/// Cells with figures in the baseline that have none now (a setup that stopped working).
pub fn lost(old: &Report, new: &Report) -> Vec<String> {
    let has = |cells: &[Cell], c: &Cell| {
        cells
            .iter()
            .any(|n| n.workload == c.workload && n.setup == c.setup && n.summary.is_some())
    };
    let mut out = Vec::new();
    for (table, o, n) in [
        ("overhead", &old.overhead, &new.overhead),
        ("steps", &old.steps, &new.steps),
        ("inside", &old.inside, &new.inside),
    ] {
        for c in o.iter().filter(|c| c.summary.is_some() && !has(n, c)) {
            out.push(format!("{table}: {} under {}", c.workload, c.setup));
        }
    }
    out
}

/// The comparison as a markdown table (every ratio, verdict last).
pub fn render(changes: &[Change], lost: &[String]) -> String {
    let mut out = String::from(
        "| table | workload | setup | baseline | now | change | noise | verdict |\n\
         |---|---|---|---:|---:|---:|---:|---|\n",
    );
    for c in changes {
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {:.2}x | {:.2}x | {:+.1}% | ±{:.1}% | {} |",
            c.table,
            c.workload,
            c.setup,
            c.old,
            c.new,
            c.change * 100.0,
            c.noise * 100.0,
            match c.verdict {
                Verdict::Regression => "REGRESSION",
                Verdict::Improvement => "improvement",
                Verdict::Within => "within noise",
            }
        );
    }
    for l in lost {
        let _ = writeln!(out, "\nno longer measured: {l}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markdown::tests::sample;
    use crate::setups::GREYWALL_CACHED;

    fn set_ratio(r: &mut Report, w: &str, ratio: f64, se: f64) {
        for c in &mut r.overhead {
            if c.workload == w && c.setup == GREYWALL_CACHED {
                let s = c.summary.as_mut().unwrap();
                s.ratio = ratio;
                s.ratio_rel_se = se;
            }
        }
    }

    fn verdict_of(changes: &[Change], w: &str) -> Verdict {
        changes
            .iter()
            .find(|c| c.table == "overhead" && c.workload == w && c.setup == GREYWALL_CACHED)
            .unwrap()
            .verdict
    }

    #[test]
    fn flags_only_changes_beyond_noise() {
        let old = sample();
        let mut new = sample();
        // true: 2.0 → 2.5 (+25 %), se 1 % each: noise max(3·1.4 %, 5 %) = 5 %: regression
        set_ratio(&mut new, "true", 2.5, 0.01);
        // git status: 1.5 → 1.56 (+4 %): inside the 5 % floor
        set_ratio(&mut new, "git status", 1.56, 0.01);
        let ch = compare(&old, &new, Thresholds::default());
        assert_eq!(verdict_of(&ch, "true"), Verdict::Regression);
        assert_eq!(verdict_of(&ch, "git status"), Verdict::Within);
        assert!(ch.iter().all(|c| c.setup != BARE));

        // the same +25 % in a run whose ratios scatter by 10 %: noise 3·√(0.01²+0.1²) ≈ 30 %
        set_ratio(&mut new, "true", 2.5, 0.1);
        let ch = compare(&old, &new, Thresholds::default());
        assert_eq!(verdict_of(&ch, "true"), Verdict::Within);

        // faster beyond noise
        set_ratio(&mut new, "true", 1.0, 0.01);
        let ch = compare(&old, &new, Thresholds::default());
        assert_eq!(verdict_of(&ch, "true"), Verdict::Improvement);
        let table = render(&ch, &[]);
        assert!(table.contains("| overhead | `true` | greywall exec --cached | 2.00x | 1.00x | -50.0% | ±5.0% | improvement |"), "{table}");
    }

    #[test]
    fn steps_and_inside_are_compared_and_lost_cells_listed() {
        let old = sample();
        let mut new = sample();
        new.steps[2].summary.as_mut().unwrap().ratio = 3.0;
        new.overhead
            .retain(|c| !(c.workload == "git status" && c.setup == GREYWALL_CACHED));
        let ch = compare(&old, &new, Thresholds::default());
        assert!(
            ch.iter()
                .any(|c| c.table == "steps" && c.verdict == Verdict::Regression)
        );
        assert!(ch.iter().any(|c| c.table == "inside"));
        assert_eq!(
            lost(&old, &new),
            vec!["overhead: git status under greywall exec --cached".to_string()]
        );
    }
}
