//! How a run, a checked file or a suite's test ended, with its exit code and
//! its name: the one mapping that `faultline run`, `check`, `suite`, JUnit
//! and `main` share (DESIGN.md, "Exit codes").
//!
//! It extends the checkers' [`Verdict`] with the one outcome a checker never
//! gives: the harness itself failed. `checker` knows nothing of this.

use crate::checker::Verdict;
use std::fmt;

/// Valid, invalid, unknown, or the harness failed. The discriminants are the
/// exit codes, and the order is theirs: several outcomes combine worst-first
/// as their exit codes do with `max` (3 > 2 > 1 > 0).
///
/// Unlike [`Verdict::combine`] (one history: an anomaly found is certain, so
/// invalid beats unknown), outcomes of several files or tests rank unknown
/// above invalid, as DESIGN.md's exit codes do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
#[repr(u8)]
pub enum Outcome {
    /// Exit 0.
    Valid = 0,
    /// Exit 1: an anomaly was found.
    Invalid = 1,
    /// Exit 2: the checker could not decide.
    Unknown = 2,
    /// Exit 3: bad input, an unreachable host, a setup error, a panic.
    HarnessError = 3,
}

impl Outcome {
    /// Every outcome, best first.
    pub const ALL: [Outcome; 4] = [
        Outcome::Valid,
        Outcome::Invalid,
        Outcome::Unknown,
        Outcome::HarnessError,
    ];

    /// The process's exit code.
    pub const fn exit_code(self) -> u8 {
        self as u8
    }

    /// `valid`, `invalid`, `unknown`, `harness-error`.
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Valid => "valid",
            Outcome::Invalid => "invalid",
            Outcome::Unknown => "unknown",
            Outcome::HarnessError => "harness-error",
        }
    }

    /// The worse of the two (the higher exit code).
    pub fn combine(self, other: Outcome) -> Outcome {
        self.max(other)
    }

    /// The worst of `outcomes`; valid when there are none.
    pub fn worst(outcomes: impl IntoIterator<Item = Outcome>) -> Outcome {
        outcomes.into_iter().fold(Outcome::Valid, Outcome::combine)
    }

    /// The checkers' verdict this outcome is, if it is one.
    pub fn verdict(self) -> Option<Verdict> {
        match self {
            Outcome::Valid => Some(Verdict::Valid),
            Outcome::Invalid => Some(Verdict::Invalid),
            Outcome::Unknown => Some(Verdict::Unknown),
            Outcome::HarnessError => None,
        }
    }
}

impl From<Verdict> for Outcome {
    fn from(v: Verdict) -> Outcome {
        match v {
            Verdict::Valid => Outcome::Valid,
            Verdict::Invalid => Outcome::Invalid,
            Verdict::Unknown => Outcome::Unknown,
        }
    }
}

impl From<Outcome> for std::process::ExitCode {
    fn from(o: Outcome) -> std::process::ExitCode {
        std::process::ExitCode::from(o.exit_code())
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::Outcome::*;
    use super::*;

    #[test]
    fn exit_codes_and_names_are_design_mds() {
        let pinned: Vec<(u8, &str)> = Outcome::ALL
            .iter()
            .map(|o| (o.exit_code(), o.name()))
            .collect();
        assert_eq!(
            pinned,
            [
                (0, "valid"),
                (1, "invalid"),
                (2, "unknown"),
                (3, "harness-error")
            ]
        );
        assert_eq!(format!("{:<9}|", Unknown), "unknown  |", "pads as a str");
    }

    #[test]
    fn outcomes_combine_worst_first_by_exit_code() {
        assert_eq!(Valid.combine(Invalid), Invalid);
        assert_eq!(Invalid.combine(Unknown), Unknown);
        assert_eq!(Unknown.combine(HarnessError), HarnessError);
        assert_eq!(HarnessError.combine(Valid), HarnessError);
        assert_eq!(Outcome::worst([]), Valid);
        assert_eq!(Outcome::worst([Invalid, Valid, Unknown]), Unknown);
    }

    #[test]
    fn verdicts_map_to_their_outcomes_and_back() {
        for v in [Verdict::Valid, Verdict::Invalid, Verdict::Unknown] {
            let o = Outcome::from(v);
            assert_eq!(o.name(), v.as_str());
            assert_eq!(o.verdict(), Some(v));
        }
        assert_eq!(HarnessError.verdict(), None);
    }
}
