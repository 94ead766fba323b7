//! A suite's summary per case: the runs of one test over several seeds
//! counted together. For a case that expects `invalid` (a named bug): how
//! many runs caught it, and how long after the start the first anomalous
//! operation came (median and worst); for every other case, how many runs
//! came out valid. `faultline suite` prints it and writes it as Markdown and
//! JSON (`suites/detection.yaml` is measured this way).

use crate::checker::Verdict;
use crate::outcome::Outcome;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// The summary of a suite (summary.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub suite: String,
    pub cases: Vec<Case>,
}

/// One test over its seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// The test's name without its `-seedN`.
    pub case: String,
    /// `invalid` for a bug that must be caught, else `valid`.
    pub expect: Verdict,
    pub runs: usize,
    /// Runs that came out as expected: caught (invalid), or valid.
    pub as_expected: usize,
    /// Seeds whose runs did not (a harness error or unknown among them).
    pub missed_seeds: Vec<u64>,
    /// From the start of a run to its first anomalous operation, over the
    /// runs that found one (see `runner::first_anomaly`).
    pub first_anomaly_median_ms: Option<f64>,
    pub first_anomaly_worst_ms: Option<f64>,
}

/// One run of a suite, as the summary counts it.
#[derive(Debug, Clone, PartialEq)]
pub struct Run<'a> {
    pub test: &'a str,
    pub seed: u64,
    /// What the test expects (`expect:`), if it says.
    pub expect: Option<Verdict>,
    pub outcome: Outcome,
    pub first_anomaly_ms: Option<f64>,
}

/// The name of a test without the `-seedN` a suite adds per seed.
pub fn case_name(test: &str) -> &str {
    match test.rsplit_once("-seed") {
        Some((case, seed)) if !seed.is_empty() && seed.bytes().all(|b| b.is_ascii_digit()) => case,
        _ => test,
    }
}

impl Summary {
    /// Runs grouped by case, in the order each case first appears.
    pub fn of(suite: &str, runs: &[Run]) -> Summary {
        let mut cases: Vec<(Case, Vec<f64>)> = Vec::new();
        for r in runs {
            let name = case_name(r.test);
            let expect = r.expect.unwrap_or(Verdict::Valid);
            let at = match cases
                .iter()
                .position(|(c, _)| c.case == name && c.expect == expect)
            {
                Some(i) => i,
                None => {
                    cases.push((
                        Case {
                            case: name.to_string(),
                            expect,
                            runs: 0,
                            as_expected: 0,
                            missed_seeds: vec![],
                            first_anomaly_median_ms: None,
                            first_anomaly_worst_ms: None,
                        },
                        vec![],
                    ));
                    cases.len() - 1
                }
            };
            let (case, times) = &mut cases[at];
            case.runs += 1;
            if r.outcome == Outcome::from(expect) {
                case.as_expected += 1;
            } else {
                case.missed_seeds.push(r.seed);
            }
            if r.outcome == Outcome::Invalid {
                times.extend(r.first_anomaly_ms);
            }
        }
        let cases = cases
            .into_iter()
            .map(|(mut case, mut times)| {
                times.sort_by(f64::total_cmp);
                case.first_anomaly_median_ms = median(&times);
                case.first_anomaly_worst_ms = times.last().copied();
                case
            })
            .collect();
        Summary {
            suite: suite.to_string(),
            cases,
        }
    }

    /// Whether any case ran more than once: only then does the summary say
    /// more than the table of runs.
    pub fn has_repeats(&self) -> bool {
        self.cases.iter().any(|c| c.runs > 1)
    }

    /// The plain-text table printed at the end of a suite.
    pub fn table(&self) -> String {
        let width = self
            .cases
            .iter()
            .map(|c| c.case.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut s = format!(
            "\nsummary of suite {} (per case, over its seeds)\n{:<width$}  {:<16} {:<22} {}\n",
            self.suite, "case", "result", "first anomaly", "missed seeds"
        );
        for c in &self.cases {
            let _ = writeln!(
                s,
                "{:<width$}  {:<16} {:<22} {}",
                c.case,
                c.result(),
                c.first_anomaly(),
                seeds(&c.missed_seeds)
            );
        }
        s
    }

    /// The same as a Markdown table (summary.md, `$GITHUB_STEP_SUMMARY`).
    pub fn markdown(&self) -> String {
        let cell = |t: &str| t.replace('|', "\\|").replace('\n', " ");
        let mut s = format!(
            "### faultline suite `{}`: per case\n\n| case | result | first anomaly (median / worst) | missed seeds |\n|---|---|---|---|\n",
            cell(&self.suite)
        );
        for c in &self.cases {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                cell(&c.case),
                c.result(),
                c.first_anomaly(),
                seeds(&c.missed_seeds)
            );
        }
        s.push('\n');
        s
    }
}

impl Case {
    /// `caught 19/20` or `valid 20/20`.
    pub fn result(&self) -> String {
        let word = match self.expect {
            Verdict::Invalid => "caught",
            _ => "valid",
        };
        format!("{word} {}/{}", self.as_expected, self.runs)
    }

    /// `4.2 s / 11.0 s` (median / worst), or `–`.
    pub fn first_anomaly(&self) -> String {
        match (self.first_anomaly_median_ms, self.first_anomaly_worst_ms) {
            (Some(m), Some(w)) => format!("{:.1} s / {:.1} s", m / 1e3, w / 1e3),
            _ => "–".to_string(),
        }
    }
}

fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

fn seeds(s: &[u64]) -> String {
    if s.is_empty() {
        return "–".to_string();
    }
    s.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        test: &str,
        seed: u64,
        expect: Option<Verdict>,
        outcome: Outcome,
        first_anomaly_ms: Option<f64>,
    ) -> Run<'_> {
        Run {
            test,
            seed,
            expect,
            outcome,
            first_anomaly_ms,
        }
    }

    #[test]
    fn case_names_drop_only_a_numeric_seed_suffix() {
        assert_eq!(case_name("raft-register-seed12"), "raft-register");
        assert_eq!(case_name("raft-seedless"), "raft-seedless");
        assert_eq!(case_name("raft-seed"), "raft-seed");
        assert_eq!(case_name("plain"), "plain");
    }

    #[test]
    fn cases_count_catches_and_valid_runs_with_median_and_worst_times() {
        let bug = Some(Verdict::Invalid);
        let rows = [
            row("stale-seed1", 1, bug, Outcome::Invalid, Some(4000.0)),
            row("clean-seed1", 1, None, Outcome::Valid, None),
            row("stale-seed2", 2, bug, Outcome::Valid, None),
            row("stale-seed3", 3, bug, Outcome::Invalid, Some(1000.0)),
            row("clean-seed2", 2, None, Outcome::Invalid, Some(9000.0)),
            row("stale-seed4", 4, bug, Outcome::HarnessError, None),
            row("stale-seed5", 5, bug, Outcome::Invalid, Some(2500.0)),
        ];
        let s = Summary::of("detection", &rows);
        assert_eq!(s.cases.len(), 2);
        let stale = &s.cases[0];
        assert_eq!((stale.runs, stale.as_expected), (5, 3));
        assert_eq!(stale.missed_seeds, vec![2, 4]);
        assert_eq!(stale.first_anomaly_median_ms, Some(2500.0));
        assert_eq!(stale.first_anomaly_worst_ms, Some(4000.0));
        assert_eq!(stale.result(), "caught 3/5");
        let clean = &s.cases[1];
        assert_eq!(clean.result(), "valid 1/2");
        assert_eq!(clean.missed_seeds, vec![2]);
        let t = s.table();
        assert!(t.contains("stale  caught 3/5"), "{t}");
        assert!(t.contains("2.5 s / 4.0 s"), "{t}");
        let m = s.markdown();
        assert!(
            m.contains("| clean | valid 1/2 | 9.0 s / 9.0 s | 2 |"),
            "{m}"
        );
        assert!(s.has_repeats());
        let json = serde_json::to_string(&s).unwrap();
        let back: Summary = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn an_even_number_of_times_takes_the_middle_two() {
        assert_eq!(median(&[1.0, 2.0, 4.0, 8.0]), Some(3.0));
        assert_eq!(median(&[]), None);
    }
}
