//! Checkers: they read a history and decide whether it is consistent.
//!
//! Architecture invariant: checkers import only `history`. They know nothing of
//! hosts, networks or runs, so `faultline check` works on a file alone.

pub mod elle;
pub mod linearizable;

use serde::{Deserialize, Serialize};

pub mod availability;
pub mod bank;
pub mod counter;
pub mod election;
pub mod logs;
pub mod perf;
pub mod set;

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
