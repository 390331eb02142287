//! The overhead chart: horizontal bars of each setup's ratio against bare, grouped by
//! workload, on a logarithmic axis (ratios here span 1x to several hundred x). Plain SVG
//! written by hand; the output depends only on the report, byte for byte.

use std::fmt::Write as _;

use crate::report::Report;
use crate::setups::BARE;

const WIDTH: f64 = 900.0;
const LABEL_W: f64 = 300.0;
const RIGHT_PAD: f64 = 70.0;
const BAR_H: f64 = 14.0;
const BAR_GAP: f64 = 4.0;
const GROUP_HEAD: f64 = 24.0;
const TOP: f64 = 40.0;
const AXIS_H: f64 = 30.0;

/// Distinct, colour-blind-friendly colours (Okabe–Ito), one per setup in report order.
const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
];

const TICKS: [f64; 13] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The axis maximum: the smallest tick at or above the largest ratio (at least 2).
pub fn axis_max(largest: f64) -> f64 {
    TICKS
        .iter()
        .copied()
        .find(|t| *t >= largest && *t >= 2.0)
        .unwrap_or(TICKS[TICKS.len() - 1])
}

/// Horizontal position of `ratio` on a log axis from 1 to `max`, in `[0, width]`.
pub fn x_of(ratio: f64, max: f64, width: f64) -> f64 {
    if ratio <= 1.0 || max <= 1.0 {
        return 0.0;
    }
    (ratio.ln() / max.ln()).min(1.0) * width
}

/// The chart for the report's overhead cells (bare is the axis origin and gets no bar).
pub fn render(r: &Report) -> String {
    let setups: Vec<&str> = r
        .setups
        .iter()
        .map(|s| s.name.as_str())
        .filter(|s| *s != BARE)
        .collect();
    let groups: Vec<(&str, Vec<(usize, f64)>)> = r
        .workloads
        .iter()
        .map(|w| {
            let bars = setups
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let c = r.cell(&w.name, s)?;
                    Some((i, c.summary.as_ref()?.ratio))
                })
                .collect();
            (w.name.as_str(), bars)
        })
        .filter(|(_, bars): &(&str, Vec<(usize, f64)>)| !bars.is_empty())
        .collect();
    let largest = groups
        .iter()
        .flat_map(|(_, b)| b.iter().map(|(_, r)| *r))
        .fold(1.0, f64::max);
    let max = axis_max(largest);
    let plot_w = WIDTH - LABEL_W - RIGHT_PAD;
    let body: f64 = groups
        .iter()
        .map(|(_, b)| GROUP_HEAD + b.len() as f64 * (BAR_H + BAR_GAP))
        .sum();
    let height = TOP + body + AXIS_H;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="{WIDTH}" height="{height}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="20" font-size="14" font-weight="bold">Overhead against bare (median of per-round ratios, log scale); {} rounds, {}</text>"#,
        r.rounds,
        esc(&r.machine.date)
    );
    let bottom = height - AXIS_H;
    for t in TICKS.iter().copied().filter(|t| *t <= max) {
        let x = LABEL_W + x_of(t, max, plot_w);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#444">{t}x</text>"##,
            bottom + 15.0
        );
    }
    let mut y = TOP;
    for (workload, bars) in &groups {
        let _ = writeln!(
            s,
            r#"<text x="10" y="{:.1}" font-weight="bold">{}</text>"#,
            y + 16.0,
            esc(workload)
        );
        y += GROUP_HEAD;
        for (i, ratio) in bars {
            let w = x_of(*ratio, max, plot_w).max(1.0);
            let colour = PALETTE[i % PALETTE.len()];
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#222">{}</text><rect x="{LABEL_W}" y="{y:.1}" width="{w:.1}" height="{BAR_H}" fill="{colour}"><title>{}: {ratio:.2}x</title></rect><text x="{:.1}" y="{:.1}" fill="#222">{ratio:.2}x</text>"##,
                LABEL_W - 6.0,
                y + BAR_H - 3.0,
                esc(setups[*i]),
                esc(setups[*i]),
                LABEL_W + w + 4.0,
                y + BAR_H - 3.0,
            );
            y += BAR_H + BAR_GAP;
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markdown::tests::sample;

    #[test]
    fn axis_and_scale() {
        assert_eq!(axis_max(1.0), 2.0);
        assert_eq!(axis_max(3.2), 5.0);
        assert_eq!(axis_max(337.0), 500.0);
        assert_eq!(x_of(1.0, 10.0, 100.0), 0.0);
        assert_eq!(x_of(0.8, 10.0, 100.0), 0.0, "faster than bare draws no bar");
        assert!((x_of(10.0, 10.0, 100.0) - 100.0).abs() < 1e-9);
        assert!(x_of(2.0, 10.0, 100.0) < x_of(3.0, 10.0, 100.0));
    }

    #[test]
    fn one_bar_per_measured_cell_and_escaped_labels() {
        let mut r = sample();
        r.setups[1].name = "a<b&c".into();
        for c in &mut r.overhead {
            if c.setup == crate::setups::GREYWALL_CACHED {
                c.setup = "a<b&c".into();
            }
        }
        let svg = render(&r);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.ends_with("</svg>\n"));
        // greywall on two workloads; bwrap failed (no bar); bare is the origin
        assert_eq!(svg.matches("<title>").count(), 2, "{svg}");
        assert!(svg.contains("a&lt;b&amp;c"));
        assert!(!svg.contains("a<b"));
        assert!(svg.contains(">2.00x</text>") && svg.contains(">1.50x</text>"));
        assert_eq!(render(&r), svg, "deterministic");
    }
}
