//! suite.json: every run of a suite as the suite judged it, beside
//! junit.xml. `faultline results merge` reads it from each shard's results
//! folder and writes it again for the merged folder, so merges merge too.
//!
//! A run's `id` is its results folder's `<test>/<timestamp>`: the same run
//! read twice (a shard merged twice) has the same id and counts once.

use crate::checker::Verdict;
use crate::outcome::Outcome;
use serde::{Deserialize, Serialize};

pub const FILE: &str = "suite.json";
/// Bumped when a field changes meaning; another version is refused.
pub const SCHEMA_VERSION: u32 = 1;

/// One suite invocation's runs (or several merged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteRuns {
    pub schema_version: u32,
    pub suite: String,
    /// Tests in the whole suite, every shard's.
    pub tests: usize,
    /// How the suite ended: the worst judged run, at least unknown when it
    /// was cut short. Its exit code is the command's.
    pub outcome: Outcome,
    /// Why some tests did not run (`interrupted by SIGINT`), if any did not.
    pub interrupted: Option<String>,
    /// In suite order.
    pub runs: Vec<RunRecord>,
    /// The folders a `results merge` made this of; empty for a suite's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
}

/// One run: a suite table row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRecord {
    /// `<test>/<timestamp>` of its results folder; `<test>/no-folder-<position>`
    /// for a run that could not make one.
    pub id: String,
    /// Its results folder, relative to the folder of suite.json; none when
    /// the run made none.
    pub folder: Option<String>,
    /// Its place in the whole suite (0-based), for suite order across shards.
    pub position: usize,
    pub name: String,
    pub seed: u64,
    pub expect: Option<Verdict>,
    pub outcome: Outcome,
    /// The outcome judged against `expect`.
    pub judged: Outcome,
    pub message: String,
    pub duration_s: f64,
    pub first_anomaly_ms: Option<f64>,
}

impl SuiteRuns {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}
