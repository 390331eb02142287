//! The result of one run of the overhead suite: what was measured, on what, and what was
//! skipped. Serialized as the suite's JSON result and as a stored baseline.

use serde::{Deserialize, Serialize};

use crate::stats::Summary;

/// Format version of the JSON result.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub format: u32,
    pub machine: Machine,
    /// Timed rounds per table (every setup once per round, in rotating order).
    pub rounds: usize,
    pub quick: bool,
    pub workloads: Vec<Described>,
    pub setups: Vec<Described>,
    /// Whole-command overhead: every workload under every setup.
    pub overhead: Vec<Cell>,
    /// The launcher's set-up steps, added one at a time (`greywall __exec-plan`, `true`).
    pub steps: Vec<Cell>,
    /// One command spawned from a process already inside one long-lived sandbox (per call).
    pub inside: Vec<Cell>,
    /// Rows and setups that did not run, and why.
    pub skipped: Vec<Skipped>,
}

/// The machine and tool versions of a run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Machine {
    pub date: String,
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
    pub os: String,
    /// `root` or `unprivileged (uid N)`.
    pub user: String,
    /// `(tool, version)`, e.g. `("bwrap", "bubblewrap 0.8.0")`.
    pub versions: Vec<(String, String)>,
}

/// A workload or a setup: its short name and exactly what runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Described {
    pub name: String,
    pub command: String,
}

/// One (workload, setup) measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub workload: String,
    pub setup: String,
    /// `None` when no round succeeded (see `failure`).
    pub summary: Option<Summary>,
    /// Why the cell has no figures (the setup failed its check run, or every round failed).
    pub failure: Option<String>,
    /// Peak RSS in KiB: `ru_maxrss` of the process tree of one invocation (the largest single
    /// process in it, launcher and command alike), median of the RSS runs.
    pub peak_rss_kib: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub what: String,
    pub why: String,
}

impl Report {
    /// The overhead cell for a workload and setup.
    pub fn cell(&self, workload: &str, setup: &str) -> Option<&Cell> {
        self.overhead
            .iter()
            .find(|c| c.workload == workload && c.setup == setup)
    }

    /// Median ms of an overhead cell that has figures.
    pub fn median_ms(&self, workload: &str, setup: &str) -> Option<f64> {
        self.cell(workload, setup)?
            .summary
            .as_ref()
            .map(|s| s.median_ms)
    }
}
