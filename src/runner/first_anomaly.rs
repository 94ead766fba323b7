//! When a bug first showed: the earliest operation any checker names as part
//! of an anomaly, and its time since the run started. A detection suite
//! reports how long runs take to catch a bug from it (`faultline suite`).
//!
//! Which operation each checker names: linearizability, the op that cannot
//! be placed (its completion); Elle, the transactions of each case of an
//! anomaly the model forbids; every other checker, the ops in its evidence
//! tables (a bad read, a lost element's add). Anomalies found only in node
//! logs (two leaders in one term) name no operation: their time is the
//! timestamp a cited log line starts with, by the node's clock, when the
//! line has one.

use super::check::Checked;
use crate::checker::Verdict;
use crate::checker::evidence::{Cell, Evidence};
use crate::history::Op;
use crate::report::results::FirstAnomaly;

/// A checker's answer, as far as the first anomaly goes.
#[derive(Debug, Clone, Copy)]
pub struct Cites<'a> {
    pub checker: &'a str,
    pub verdict: Verdict,
    pub anomalies: &'a [String],
    pub evidence: Option<&'a Evidence>,
}

/// What a checker cites: an op of the history, or a node's log line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Cited {
    Op(u64),
    Log(String, usize),
}

/// The earliest op (or log line) named by an invalid checker, or `None`
/// when none is named with a time. `log_time` gives a node's log line
/// (1-based) as nanoseconds since the run started.
pub fn find(
    ops: &[Op],
    checkers: &[Cites<'_>],
    file: Option<&Checked>,
    log_time: &dyn Fn(&str, usize) -> Option<u64>,
) -> Option<FirstAnomaly> {
    let time_of = |index: u64| -> Option<u64> {
        // Indices are positions (history::Op::index); fall back to a search
        // for a history that is not so numbered.
        match ops.get(index as usize) {
            Some(op) if op.index == index => Some(op.time),
            _ => ops.iter().find(|op| op.index == index).map(|op| op.time),
        }
    };
    // (time, what, checker, anomaly)
    let mut found: Vec<(u64, Cited, &str, String)> = Vec::new();
    for c in checkers.iter().filter(|c| c.verdict == Verdict::Invalid) {
        let first_name = c.anomalies.first().cloned().unwrap_or_default();
        match (c.checker, file) {
            ("linearizable", Some(Checked::Linearizable(r))) => {
                for e in r.keys.iter().filter_map(|k| k.explanation.as_ref()) {
                    let index = e.op.completion_index.unwrap_or(e.op.index);
                    if let Some(t) = time_of(index) {
                        found.push((t, Cited::Op(index), c.checker, "not-linearizable".into()));
                    }
                }
            }
            ("elle", Some(Checked::Elle(r))) => {
                for case in r.cases.iter().filter(|k| r.violating.contains(&k.anomaly)) {
                    for w in &case.witnesses {
                        if let Some(t) = time_of(w.index) {
                            found.push((t, Cited::Op(w.index), c.checker, case.anomaly.name()));
                        }
                    }
                }
            }
            _ => {
                let cells = c
                    .evidence
                    .into_iter()
                    .flat_map(|e| &e.tables)
                    .flat_map(|t| &t.rows)
                    .flatten();
                for cell in cells {
                    let (time, cited) = match cell {
                        Cell::Op { index, time_ns } => {
                            (time_ns.or_else(|| time_of(*index)), Cited::Op(*index))
                        }
                        Cell::LogLine {
                            node,
                            line: Some(line),
                        } => (log_time(node, *line), Cited::Log(node.clone(), *line)),
                        _ => continue,
                    };
                    if let Some(t) = time {
                        found.push((t, cited, c.checker, first_name.clone()));
                    }
                }
            }
        }
    }
    let (time, cited, checker, anomaly) = found
        .into_iter()
        .min_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)))?;
    let (index, log_line) = match cited {
        Cited::Op(i) => (Some(i), None),
        Cited::Log(node, line) => (None, Some(format!("{node}:{line}"))),
    };
    Some(FirstAnomaly {
        checker: checker.to_string(),
        anomaly,
        index,
        log_line,
        time_ms: time as f64 / 1e6,
    })
}

/// The time a log line starts with (RFC 3339, as tracing and most loggers
/// write it) as nanoseconds after `start`; `None` without one, or before it.
pub fn line_time(line: &str, start: std::time::SystemTime) -> Option<u64> {
    let stamp = line.split_whitespace().next()?;
    let at = chrono::DateTime::parse_from_rfc3339(stamp).ok()?;
    let at = std::time::SystemTime::from(at.with_timezone(&chrono::Utc));
    let after = at.duration_since(start).ok()?;
    u64::try_from(after.as_nanos()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::evidence::{Evidence, Table};
    use crate::checker::linearizable;
    use crate::history::OpType::{Invoke, Ok};
    use crate::history::op::notation;
    use serde_json::{Value, json};

    const MS: u64 = 1_000_000;

    /// A checker's outcome, and what it cites.
    struct Outcome(&'static str, Verdict, Vec<String>, Evidence);

    fn outcome(name: &'static str, verdict: Verdict, cells: Vec<Cell>) -> Outcome {
        let evidence = Evidence::new().table(Table::new("", &["x"]).rows(cells, |c| vec![c]));
        Outcome(name, verdict, vec![format!("{name}-anomaly")], evidence)
    }

    fn cites(outcomes: &[Outcome]) -> Vec<Cites<'_>> {
        outcomes
            .iter()
            .map(|o| Cites {
                checker: o.0,
                verdict: o.1,
                anomalies: &o.2,
                evidence: Some(&o.3),
            })
            .collect()
    }

    fn no_logs(_: &str, _: usize) -> Option<u64> {
        None
    }

    #[test]
    fn the_earliest_op_of_an_invalid_checker_wins_and_valid_checkers_are_not_asked() {
        let ops = notation(&[
            (10 * MS, 0, Invoke, "read", Value::Null),
            (20 * MS, 0, Ok, "read", json!(1)),
            (30 * MS, 1, Invoke, "read", Value::Null),
            (40 * MS, 1, Ok, "read", json!(2)),
        ]);
        let checkers = [
            // Valid: its earlier op is no anomaly.
            outcome("set", Verdict::Valid, vec![Cell::op(1, None)]),
            // Its time from the history (20 ms is op 1's, 40 ms op 3's).
            outcome("bank", Verdict::Invalid, vec![Cell::op(3, None)]),
            // The time a checker gives wins over the history's.
            outcome(
                "counter",
                Verdict::Invalid,
                vec![Cell::op(1, Some(35 * MS))],
            ),
        ];
        let a = find(&ops, &cites(&checkers), None, &no_logs).unwrap();
        assert_eq!((a.checker.as_str(), a.index), ("counter", Some(1)));
        assert_eq!(a.time_ms, 35.0);
        assert_eq!(a.anomaly, "counter-anomaly");
        assert_eq!(
            a.describe(),
            "0.0 s into the run: op 1 (counter: counter-anomaly)"
        );
        assert_eq!(find(&ops, &cites(&checkers[..1]), None, &no_logs), None);
    }

    #[test]
    fn a_log_line_counts_at_its_own_time_when_it_is_the_earliest() {
        let ops = notation(&[
            (10 * MS, 0, Invoke, "read", Value::Null),
            (90 * MS, 0, Ok, "read", json!(1)),
        ]);
        let log = outcome(
            "election",
            Verdict::Invalid,
            vec![Cell::LogLine {
                node: "n3".into(),
                line: Some(7),
            }],
        );
        let checkers = [
            outcome("bank", Verdict::Invalid, vec![Cell::op(1, None)]),
            log,
        ];
        let at = |node: &str, line: usize| (node == "n3" && line == 7).then_some(50 * MS);
        let a = find(&ops, &cites(&checkers), None, &at).unwrap();
        assert_eq!((a.index, a.log_line.as_deref()), (None, Some("n3:7")));
        assert_eq!(a.time_ms, 50.0);
        // Without a time for the line, the op is the first.
        assert_eq!(
            find(&ops, &cites(&checkers), None, &no_logs).unwrap().index,
            Some(1)
        );
    }

    #[test]
    fn linearizability_names_the_completion_of_the_op_that_cannot_be_placed() {
        // write 1, then a read of 2 that nothing wrote: the read cannot be placed.
        let ops = notation(&[
            (MS, 0, Invoke, "write", json!(1)),
            (2 * MS, 0, Ok, "write", json!(1)),
            (3 * MS, 1, Invoke, "read", Value::Null),
            (4 * MS, 1, Ok, "read", json!(2)),
        ]);
        let report = linearizable::check(&ops, &linearizable::Options::default()).unwrap();
        assert_eq!(report.verdict, Verdict::Invalid);
        let checked = Checked::Linearizable(report);
        let checkers = [outcome("linearizable", Verdict::Invalid, vec![])];
        let a = find(&ops, &cites(&checkers), Some(&checked), &no_logs).unwrap();
        assert_eq!((a.index, a.time_ms), (Some(3), 4.0));
        assert_eq!(a.anomaly, "not-linearizable");
    }

    #[test]
    fn log_line_times_are_read_from_an_rfc3339_prefix() {
        // 2026-12-01T10:13:20Z
        let start = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_120_000);
        let line = "2026-12-01T10:13:21.250000Z  INFO raft: became leader term=3";
        assert_eq!(line_time(line, start), Some(1_250_000_000));
        assert_eq!(line_time("no time here", start), None);
        assert_eq!(
            line_time("1999-01-01T00:00:00Z  INFO before the run", start),
            None
        );
    }
}
