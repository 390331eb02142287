//! Order statistics over timing samples, and the noise estimate the regression check uses.
//!
//! Every figure the suite reports comes from here: medians and p90 of whole-process wall times,
//! the paired ratio against bare (the median over rounds of `sandboxed / bare` from the same
//! round), and its relative standard error, estimated from the spread of the per-round ratios.

use serde::{Deserialize, Serialize};

/// The `p`-quantile (0 ≤ p ≤ 1) with linear interpolation between order statistics; `None`
/// for no samples.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let idx = p.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = idx.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    Some(v[lo] + (v[hi] - v[lo]) * (idx - lo as f64))
}

pub fn median(samples: &[f64]) -> Option<f64> {
    percentile(samples, 0.5)
}

/// Median absolute deviation from the median.
pub fn mad(samples: &[f64]) -> Option<f64> {
    let m = median(samples)?;
    let dev: Vec<f64> = samples.iter().map(|x| (x - m).abs()).collect();
    median(&dev)
}

/// Relative standard error of the median of `samples`: the MAD scaled to a standard deviation
/// (×1.4826, exact for normal data), times the median's efficiency factor √(π/2) ≈ 1.2533,
/// over √n, divided by the median. Robust to the single 3–5× outliers these machines produce.
pub fn median_rel_se(samples: &[f64]) -> Option<f64> {
    let m = median(samples)?;
    if m <= 0.0 {
        return None;
    }
    let n = samples.len() as f64;
    Some(1.2533 * 1.4826 * mad(samples)? / n.sqrt() / m)
}

/// What one setup cost on one workload, over the rounds of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Rounds in which this setup succeeded (and, for the paired figures, bare did too).
    pub n: usize,
    pub min_ms: f64,
    pub median_ms: f64,
    pub p90_ms: f64,
    /// Median over rounds of `time / bare time` from the same round (1 for bare itself).
    pub ratio: f64,
    /// Relative standard error of `ratio` (see [`median_rel_se`]).
    pub ratio_rel_se: f64,
    /// Median over rounds of `time − bare time`, in ms.
    pub plus_ms: f64,
}

/// Summarizes one setup's per-round times against bare's per-round times (`None` for a round
/// that failed). `None` when no round succeeded.
pub fn summarize(times: &[Option<f64>], bare: &[Option<f64>]) -> Option<Summary> {
    let own: Vec<f64> = times.iter().flatten().copied().collect();
    let pairs: Vec<(f64, f64)> = times
        .iter()
        .zip(bare)
        .filter_map(|(t, b)| Some(((*t)?, (*b)?)))
        .filter(|(_, b)| *b > 0.0)
        .collect();
    let ratios: Vec<f64> = pairs.iter().map(|(t, b)| t / b).collect();
    let diffs: Vec<f64> = pairs.iter().map(|(t, b)| t - b).collect();
    Some(Summary {
        n: own.len(),
        min_ms: percentile(&own, 0.0)?,
        median_ms: median(&own)?,
        p90_ms: percentile(&own, 0.9)?,
        ratio: median(&ratios)?,
        ratio_rel_se: median_rel_se(&ratios)?,
        plus_ms: median(&diffs)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(median(&v), Some(3.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 1.0), Some(5.0));
        assert_eq!(percentile(&v, 0.9), Some(4.6));
        assert_eq!(median(&[1.0, 2.0]), Some(1.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN]), None);
    }

    #[test]
    fn mad_ignores_one_outlier() {
        let v = [10.0, 11.0, 9.0, 10.0, 50.0];
        assert_eq!(median(&v), Some(10.0));
        assert_eq!(mad(&v), Some(1.0));
    }

    #[test]
    fn rel_se_shrinks_with_more_rounds_and_is_zero_without_spread() {
        assert_eq!(median_rel_se(&[2.0; 9]), Some(0.0));
        let few: Vec<f64> = (0..10).map(|i| 2.0 + 0.1 * f64::from(i % 3)).collect();
        let many: Vec<f64> = (0..1000).map(|i| 2.0 + 0.1 * f64::from(i % 3)).collect();
        let (a, b) = (median_rel_se(&few).unwrap(), median_rel_se(&many).unwrap());
        assert!(a > 0.0 && b > 0.0 && b < a / 5.0, "{a} {b}");
    }

    #[test]
    fn summary_pairs_rounds_and_skips_failures() {
        let bare = [Some(1.0), Some(2.0), None, Some(1.0)];
        let sbx = [Some(3.0), Some(4.0), Some(9.0), None];
        let s = summarize(&sbx, &bare).unwrap();
        assert_eq!(s.n, 3, "own successes count");
        // paired rounds 0 and 1: ratios 3 and 2, diffs 2 and 2
        assert_eq!(s.ratio, 2.5);
        assert_eq!(s.plus_ms, 2.0);
        assert_eq!(s.median_ms, 4.0);
        assert_eq!(s.min_ms, 3.0);
        assert!(summarize(&[None, None], &bare).is_none());
    }
}
