//! The pure parts of greywall's benchmark suite: statistics, the result model, the markdown
//! and SVG renderings, and the regression check against a stored baseline. The runner is
//! `src/bin/overhead.rs`; the criterion stage benchmarks are in `benches/`.

pub mod baseline;
pub mod chart;
pub mod markdown;
pub mod report;
pub mod scratch;
pub mod setups;
pub mod stats;
pub mod steps;
