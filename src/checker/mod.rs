//! Checkers: they read a history and decide whether it is consistent.
//!
//! Architecture invariant: checkers import only `history`. They know nothing of
//! hosts, networks or runs, so `faultline check` works on a file alone.

pub mod elle;
pub mod linearizable;

use crate::history::Op;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod availability;
pub mod bank;
pub mod counter;
pub mod election;
pub mod evidence;
pub mod logs;
pub mod perf;
pub mod set;

pub use evidence::Evidence;

/// A checker a workload names that reads the whole history and judges it
/// on its own (bank, set, counter): it says what it found in words, as its
/// own data and as [`Evidence`], so the runner and the report need nothing
/// checker-specific. (Linearizability and Elle have a file-level result of
/// their own, `faultline check`'s; the runner calls them itself.)
pub trait HistoryChecker: Send + Sync + std::fmt::Debug {
    /// Its name in results and summaries (`bank`, `set`, `counter`).
    fn name(&self) -> &'static str;
    fn check(&self, ops: &[Op]) -> Judgement;
}

/// What a checker decided and found.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub verdict: Verdict,
    /// One line: what was found.
    pub summary: String,
    /// Anomaly names (`lost`, `wrong-total`, `bad-read`, `node-panic`, ...).
    pub anomalies: Vec<String>,
    /// The checker's own result, serialised: results.json's `detail`, for
    /// machine readers (the report never reads it).
    pub detail: Value,
    /// What it found, for any report to draw.
    pub evidence: Evidence,
}

/// A checker's own result as results.json's `detail`.
pub fn detail<T: Serialize>(result: &T) -> Value {
    serde_json::to_value(result)
        .unwrap_or_else(|e| Value::String(format!("the result could not be written: {e}")))
}

/// A checker's answer. Ordered worst-last so verdicts combine with `max`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Valid,
    /// The checker could not decide (time limit, missing information).
    #[default]
    Unknown,
    Invalid,
}

impl Verdict {
    /// Combines verdicts worst-first: invalid > unknown > valid.
    pub fn combine(self, other: Verdict) -> Verdict {
        match (self, other) {
            (Verdict::Invalid, _) | (_, Verdict::Invalid) => Verdict::Invalid,
            (Verdict::Unknown, _) | (_, Verdict::Unknown) => Verdict::Unknown,
            _ => Verdict::Valid,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Unknown => "unknown",
            Verdict::Invalid => "invalid",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Verdict::*;

    #[test]
    fn verdicts_combine_worst_first() {
        assert_eq!(Valid.combine(Unknown), Unknown);
        assert_eq!(Unknown.combine(Invalid), Invalid);
        assert_eq!(Invalid.combine(Valid), Invalid);
        assert_eq!(Valid.combine(Valid), Valid);
    }
}
