//! Checking a run: the workload's checkers on the history, and the node
//! logs through the log checker (a node that panicked makes the run invalid,
//! whatever the history says) and the election checker (two Raft leaders in
//! one term), with the patterns the system under test prints.
//! Verdicts combine worst-first.
//!
//! A checker of the whole history (`Check::History`) judges and describes
//! what it found on its own ([`Judgement`]): nothing here knows it. Only
//! the file-level checkers (linearizability, Elle, whose results are
//! `faultline check`'s) and the node report, which needs the run, are
//! called and put in words here.

use super::check::{Checked, Checker, FileCheck};
use super::first_anomaly::Cites;
use super::liveness::NodeExit;
use crate::checker::availability::{self, Availability};
use crate::checker::elle;
use crate::checker::evidence::{Cell, Evidence, Table};
use crate::checker::linearizable::{self, KeysMode};
use crate::checker::logs::{LogPatterns, NodeLog};
use crate::checker::{Judgement, Verdict, election, logs};
use crate::history::Op;
use crate::report::results::FirstAnomaly;
use crate::store::RunDir;
use crate::suite::Test;
use crate::workload::Check;
use serde::Serialize;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// One checker's answer, in words and as data.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckerOutcome {
    /// Which checker (`linearizable`, `bank`, `logs`, ...).
    pub name: &'static str,
    pub verdict: Verdict,
    /// One line: what was found.
    pub summary: String,
    /// Anomaly names (`lost`, `wrong-total`, `G1c`, `not-linearizable`, `panic`, ...).
    pub anomalies: Vec<String>,
    /// Its own result, as results.json's `detail` holds it (`null` for
    /// linearizable and Elle, whose result is the history's entry in
    /// `files`, and for a checker that did not run).
    pub detail: Value,
    /// What it found, for the report; `None` when it did not run or its
    /// result is file-level.
    pub evidence: Option<Evidence>,
}

impl CheckerOutcome {
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Checker `name`'s judgement.
    fn judged(name: &'static str, j: Judgement) -> CheckerOutcome {
        CheckerOutcome {
            name,
            verdict: j.verdict,
            summary: j.summary,
            anomalies: j.anomalies,
            detail: j.detail,
            evidence: Some(j.evidence),
        }
    }
}

#[derive(Debug)]
pub struct RunChecks {
    pub verdict: Verdict,
    pub checkers: Vec<CheckerOutcome>,
    /// The file-level report (linearizable or Elle) for results.json's `files`.
    pub file: Option<(FileCheck, Checker)>,
    /// How much of the main phase the system answered; `None` when no
    /// client op was recorded.
    pub availability: Option<Availability>,
    /// The earliest operation an invalid checker names (see `first_anomaly`).
    pub first_anomaly: Option<FirstAnomaly>,
}

impl RunChecks {
    pub fn anomalies(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .checkers
            .iter()
            .flat_map(|c| c.anomalies.iter().cloned())
            .collect();
        all.dedup();
        all
    }
}

/// What the run knows beside the history, for the checks.
#[derive(Debug, Clone, Copy)]
pub struct Circumstances<'a> {
    /// Why the harness failed, if it did.
    pub harness_error: Option<&'a str>,
    /// How many nodes were deployed: a log is expected from each.
    pub nodes: usize,
    /// The nodes' processes were watched: these exited on their own
    /// (`None`: not watched, the run stopped before its workload).
    pub node_exits: Option<&'a [NodeExit]>,
    /// The end of the main phase on the history's clock.
    pub main_end_ns: u64,
    /// The wall-clock time of the history's time 0 (for log lines' times).
    pub start_wall: Option<std::time::SystemTime>,
}

/// Runs every checker the workload names, the log scan, and the report on
/// nodes that exited. A checker with nothing to check says "not run" and why,
/// with an unknown verdict: never valid.
pub fn check_run(
    test: &Test,
    ops: &[Op],
    dir: &RunDir,
    time_limit: Duration,
    run: Circumstances<'_>,
) -> RunChecks {
    let mut checkers = Vec::new();
    let mut file = None;
    let client_ops = ops.iter().filter(|o| o.is_client()).count();
    // Only `ok` completions say what happened: a history of failures and
    // unknowns (a client that never worked) gives a checker nothing to judge.
    let ok_ops = ops
        .iter()
        .filter(|o| o.is_client() && o.kind == crate::history::OpType::Ok)
        .count();
    for check in test.workload.plan().checks() {
        if ok_ops == 0 {
            let why = match run.harness_error {
                Some(e) => format!("the run stopped before its workload: {e}"),
                None if client_ops == 0 => "no client operation was recorded".to_string(),
                None => format!(
                    "none of the {} client operations completed `ok`: nothing is known to have happened",
                    ops.iter()
                        .filter(|o| o.is_client() && o.kind == crate::history::OpType::Invoke)
                        .count()
                ),
            };
            checkers.push(not_run(check.name(), &why));
            continue;
        }
        match check {
            Check::Linearizable(model) => {
                let checker = Checker::Linearizable(linearizable::Options {
                    model,
                    // faultline's register ops are keyed: [key, value].
                    keys: KeysMode::Tuple,
                    time_limit,
                    ..linearizable::Options::default()
                });
                let (outcome, checked) = check_file_level(ops, dir, checker);
                checkers.push(outcome);
                file = Some(checked);
            }
            Check::Elle(workload, model) => {
                let mut options = elle::ElleOptions::new(workload, model);
                options.time_limit = time_limit;
                let (outcome, checked) = check_file_level(ops, dir, Checker::Elle(options));
                checkers.push(outcome);
                file = Some(checked);
            }
            Check::History(checker) => {
                checkers.push(CheckerOutcome::judged(checker.name(), checker.check(ops)))
            }
        }
    }
    // Read once: the scan, and the times of the log lines an anomaly cites.
    let logs = read_node_logs(&dir.path.join("nodes"));
    checkers.extend(scan_logs(&logs, run.nodes, &test.db.log_patterns()));
    if let Some(exits) = run.node_exits {
        checkers.push(node_exits(exits, test.allow_node_exits));
    }
    let verdict = checkers
        .iter()
        .fold(Verdict::Valid, |v, c| v.combine(c.verdict));
    let checked = file.as_ref().and_then(|(f, _)| f.outcome.as_ref().ok());
    let first_anomaly = match verdict {
        Verdict::Invalid => {
            let log_time = |node: &str, line: usize| {
                let log = logs.iter().find(|l| l.node == node)?;
                let text = log.text.lines().nth(line.checked_sub(1)?)?;
                super::first_anomaly::line_time(text, run.start_wall?)
            };
            let cites: Vec<Cites> = checkers
                .iter()
                .map(|c| Cites {
                    checker: c.name,
                    verdict: c.verdict,
                    anomalies: &c.anomalies,
                    evidence: c.evidence.as_ref(),
                })
                .collect();
            super::first_anomaly::find(ops, &cites, checked, &log_time)
        }
        _ => None,
    };
    RunChecks {
        verdict,
        checkers,
        file,
        availability: (client_ops > 0).then(|| availability::measure(ops, run.main_end_ns)),
        first_anomaly,
    }
}

/// A checker that had nothing to check (no result, no evidence).
fn not_run(name: &'static str, why: &str) -> CheckerOutcome {
    CheckerOutcome {
        name,
        verdict: Verdict::Unknown,
        summary: format!("not run: {why}"),
        anomalies: vec![],
        detail: Value::Null,
        evidence: None,
    }
}

/// `detail` of the `nodes` checker: node processes that exited on their own.
#[derive(Debug, Serialize)]
struct NodesDetail<'a> {
    exits: &'a [NodeExit],
    /// Whether the test allows nodes to exit (then they do not make the run unknown).
    allowed: bool,
}

/// Nodes that exited when the nemesis had not killed them: at best unknown,
/// unless the test allows it.
fn node_exits(exits: &[NodeExit], allowed: bool) -> CheckerOutcome {
    let summary = match exits {
        [] => "every node ran until the end, but for the nemesis's kills".to_string(),
        _ => {
            let each: Vec<String> = exits
                .iter()
                .map(|e| {
                    let last = e
                        .log_tail
                        .last()
                        .map_or("(empty)".to_string(), |l| l.chars().take(200).collect());
                    format!(
                        "{} exited by {:.1} s, not by the nemesis (its log ends: {last})",
                        e.node,
                        e.seen_ns as f64 / 1e9
                    )
                })
                .collect();
            let allowed = if allowed {
                "; the test allows nodes to exit"
            } else {
                ""
            };
            format!("{}{allowed}", each.join("; "))
        }
    };
    let mut evidence = Evidence::new().count("node-exited", exits.len());
    if !exits.is_empty() {
        evidence = evidence
            .fact("exited on their own", exits.len())
            .fact("allowed by the test", if allowed { "yes" } else { "no" })
            .table(
                Table::new(
                    "Node processes that exited when the nemesis had not killed them",
                    &["node", "exit seen", "the end of its log"],
                )
                .rows(exits, |e| {
                    vec![
                        Cell::log(&e.node),
                        Cell::text(format!("by {:.3} s", e.seen_ns as f64 / 1e9)),
                        Cell::lines(&e.log_tail),
                    ]
                })
                .of(exits.len(), "exits"),
            );
    }
    CheckerOutcome::judged(
        "nodes",
        Judgement {
            verdict: if exits.is_empty() || allowed {
                Verdict::Valid
            } else {
                Verdict::Unknown
            },
            summary,
            anomalies: if exits.is_empty() {
                vec![]
            } else {
                vec!["node-exited".to_string()]
            },
            detail: crate::checker::detail(&NodesDetail { exits, allowed }),
            evidence,
        },
    )
}

/// The linearizability or Elle checker on the history in memory.
fn check_file_level(
    ops: &[Op],
    dir: &RunDir,
    checker: Checker,
) -> (CheckerOutcome, (FileCheck, Checker)) {
    let started = Instant::now();
    let outcome = match &checker {
        Checker::Linearizable(o) => linearizable::check(ops, o)
            .map(Checked::Linearizable)
            .map_err(|e| e.to_string()),
        Checker::Elle(o) => elle::check(ops, o)
            .map(|r| Checked::Elle(Box::new(r)))
            .map_err(|e| e.to_string()),
    };
    let file = FileCheck {
        path: dir.history(),
        read_time: Duration::ZERO,
        check_time: started.elapsed(),
        history_ops: ops.len(),
        truncated_line: None,
        ends_early: None,
        outcome,
    };
    let name = match checker {
        Checker::Linearizable(_) => "linearizable",
        Checker::Elle(_) => "elle",
    };
    let (verdict, summary, anomalies) = match &file.outcome {
        Err(e) => (Verdict::Unknown, format!("cannot check: {e}"), vec![]),
        Ok(Checked::Linearizable(r)) => {
            let bad: Vec<String> = r
                .keys
                .iter()
                .filter(|k| k.verdict == Verdict::Invalid)
                .map(|k| {
                    k.key
                        .as_ref()
                        .map_or("the register".into(), |k| format!("key {k}"))
                })
                .collect();
            let summary = match r.verdict {
                Verdict::Valid => format!(
                    "linearizable ({} keys, {} operations)",
                    r.keys.len(),
                    r.client_calls
                ),
                Verdict::Invalid => {
                    let first = r
                        .keys
                        .iter()
                        .find_map(|k| k.explanation.as_ref())
                        .map(|e| format!(" ({} cannot be placed)", e.op.text))
                        .unwrap_or_default();
                    format!("not linearizable: {}{first}", bad.join(", "))
                }
                Verdict::Unknown => "could not decide (time or memory limit)".to_string(),
            };
            let anomalies = if r.verdict == Verdict::Invalid {
                vec!["not-linearizable".to_string()]
            } else {
                vec![]
            };
            (r.verdict, summary, anomalies)
        }
        Ok(Checked::Elle(r)) => {
            let found: Vec<String> = r
                .counts
                .iter()
                .map(|(a, n)| format!("{} ({n})", a.name()))
                .collect();
            let anomalies: Vec<String> = r.counts.keys().map(|a| a.name()).collect();
            let summary = match r.verdict {
                Verdict::Valid if found.is_empty() => format!(
                    "{} transactions, no anomalies: {} holds",
                    r.stats.txns,
                    r.model.name()
                ),
                Verdict::Valid => format!(
                    "{} transactions; {} allowed by {}",
                    r.stats.txns,
                    found.join(", "),
                    r.model.name()
                ),
                Verdict::Invalid => format!("not {}: {}", r.model.name(), found.join(", ")),
                Verdict::Unknown => format!(
                    "could not decide {} (search incomplete or nothing committed)",
                    r.model.name()
                ),
            };
            (r.verdict, summary, anomalies)
        }
    };
    (
        CheckerOutcome {
            name,
            verdict,
            summary,
            anomalies,
            detail: Value::Null,
            evidence: None,
        },
        (file, checker),
    )
}

/// Each node's `nodes/<node>/node.log`, sorted by node; unreadable ones skipped.
fn read_node_logs(nodes_dir: &Path) -> Vec<NodeLog> {
    let mut dirs: Vec<_> = std::fs::read_dir(nodes_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .filter_map(|node_dir| {
            let node = node_dir.file_name()?.to_string_lossy().into_owned();
            let text = std::fs::read(node_dir.join("node.log")).ok()?;
            Some(NodeLog {
                node,
                text: String::from_utf8_lossy(&text).into_owned(),
            })
        })
        .collect()
}

/// Scans the node logs with the system's `patterns`: for panics and fatal
/// errors always, and for election safety (at most one leader per term)
/// when the system names how it logs elections and its nodes did.
/// `expected` logs (one per node): with fewer, the scan cannot say "valid".
pub fn scan_logs(logs: &[NodeLog], expected: usize, patterns: &LogPatterns) -> Vec<CheckerOutcome> {
    if logs.is_empty() {
        let why = match expected {
            0 => "no node was deployed".to_string(),
            n => format!("none of the {n} node logs could be read"),
        };
        return vec![not_run("logs", &why)];
    }
    let mut fatal = CheckerOutcome::judged("logs", logs::judge(logs, patterns));
    if logs.len() < expected && fatal.verdict == Verdict::Valid {
        fatal.verdict = Verdict::Unknown;
        fatal.summary = format!(
            "only {} of {expected} node logs could be read; {}",
            logs.len(),
            fatal.summary
        );
    }
    let mut outcomes = vec![fatal];
    if let Some(leader) = &patterns.leader {
        outcomes
            .extend(election::judge(logs, leader).map(|j| CheckerOutcome::judged("election", j)));
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raft() -> &'static dyn crate::system::System {
        crate::system::lookup("raft").unwrap()
    }

    /// A `nodes/` folder with these logs.
    fn node_logs(entries: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (node, text) in entries {
            std::fs::create_dir_all(dir.path().join(node)).unwrap();
            std::fs::write(dir.path().join(node).join("node.log"), text).unwrap();
        }
        dir
    }

    #[test]
    fn a_panic_in_a_node_log_makes_the_run_invalid() {
        let dir = node_logs(&[
            ("n1", "INFO started\nINFO leader\n"),
            (
                "n2",
                "INFO started\nthread 'main' panicked at src/x.rs:3:5:\nboom\n",
            ),
        ]);
        let raft = raft().log_patterns();
        // No node logs elections: no election checker.
        let [r] = &scan_logs(&read_node_logs(dir.path()), 2, &raft)[..] else {
            panic!("one checker")
        };
        assert_eq!(r.name(), "logs");
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.anomalies, vec!["node-panic"]);
        assert!(r.summary.contains("n2 line 2"), "{}", r.summary);
        let d = &r.detail;
        assert_eq!(
            (&d["scanned"], &d["fatal_lines"], &d["findings"][0]["line"]),
            (&2.into(), &1.into(), &2.into())
        );
        let evidence = r.evidence.as_ref().unwrap();
        assert_eq!(evidence.count_of("node-panic"), Some(1));
        assert_eq!(
            evidence.tables[0].rows[0],
            [
                Cell::log_line("n2", 2),
                Cell::code("thread 'main' panicked at src/x.rs:3:5:")
            ]
        );
        std::fs::write(dir.path().join("n2").join("node.log"), "INFO fine\n").unwrap();
        assert_eq!(
            scan_logs(&read_node_logs(dir.path()), 2, &raft)[0].verdict,
            Verdict::Valid
        );
    }

    #[test]
    fn missing_node_logs_never_scan_as_valid() {
        let dir = tempfile::tempdir().unwrap();
        let raft = raft().log_patterns();
        let none = scan_logs(&read_node_logs(dir.path()), 3, &raft);
        assert_eq!(none.len(), 1);
        assert_eq!(none[0].verdict, Verdict::Unknown);
        assert_eq!(
            (none[0].name(), &none[0].detail, &none[0].evidence),
            ("logs", &Value::Null, &None)
        );
        assert!(
            none[0].summary.starts_with("not run:"),
            "{}",
            none[0].summary
        );
        assert!(
            scan_logs(&read_node_logs(dir.path()), 0, &raft)[0]
                .summary
                .contains("no node was deployed")
        );
        std::fs::create_dir_all(dir.path().join("n1")).unwrap();
        std::fs::write(dir.path().join("n1").join("node.log"), "INFO fine\n").unwrap();
        let some = &scan_logs(&read_node_logs(dir.path()), 3, &raft)[0];
        assert_eq!(some.verdict, Verdict::Unknown);
        assert!(some.summary.starts_with("only 1 of 3"), "{}", some.summary);
        assert_eq!(
            scan_logs(&read_node_logs(dir.path()), 1, &raft)[0].verdict,
            Verdict::Valid
        );
    }

    #[test]
    fn a_node_that_exited_on_its_own_makes_the_run_unknown_unless_allowed() {
        let exit = NodeExit {
            node: "n3".into(),
            seen_ns: 2_100_000_000,
            log_tail: vec!["INFO one".into(), "INFO last line".into()],
        };
        let seen = node_exits(std::slice::from_ref(&exit), false);
        assert_eq!(seen.verdict, Verdict::Unknown);
        assert_eq!(seen.anomalies, ["node-exited"]);
        assert!(
            seen.summary.contains("n3 exited by 2.1 s") && seen.summary.contains("INFO last line"),
            "{}",
            seen.summary
        );
        let d = &seen.detail;
        assert_eq!(
            (&d["exits"][0]["seen_ns"], &d["allowed"]),
            (&2_100_000_000_u64.into(), &false.into())
        );
        let table = &seen.evidence.as_ref().unwrap().tables[0];
        assert_eq!(
            table.rows[0],
            [
                Cell::log("n3"),
                Cell::text("by 2.100 s"),
                Cell::lines(&exit.log_tail)
            ]
        );
        assert_eq!(node_exits(&[exit], true).verdict, Verdict::Valid);
        assert_eq!(node_exits(&[], false).verdict, Verdict::Valid);
    }

    #[test]
    fn two_raft_leaders_in_one_term_are_named_and_other_systems_are_not_asked() {
        let won = |term| {
            format!(
                "2026-11-24T17:00:00Z  INFO faultline::nodes::raft::node: {} {}={term}\n",
                crate::nodes::raft::BECAME_LEADER,
                crate::nodes::raft::TERM_FIELD
            )
        };
        let dir = node_logs(&[
            ("n1", &(won(2) + &won(4))),
            ("n2", &won(3)),
            ("n3", &format!("INFO recovered\n{}", won(4))),
        ]);
        let checkers = scan_logs(&read_node_logs(dir.path()), 3, &raft().log_patterns());
        let names: Vec<&str> = checkers.iter().map(CheckerOutcome::name).collect();
        assert_eq!(names, ["logs", "election"]);
        let r = &checkers[1];
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.anomalies, vec!["two-leaders"]);
        assert!(
            r.summary.contains(
                "1 term had two leaders; first: term 4 was won by n1 (line 2) and n3 (line 2)"
            ),
            "{}",
            r.summary
        );
        let d = &r.detail;
        assert_eq!(
            (
                &d["terms"],
                &d["split"][0]["term"],
                d["split"][0]["leaders"].as_array().map(Vec::len)
            ),
            (&3.into(), &4.into(), Some(2))
        );
        let evidence = r.evidence.as_ref().unwrap();
        assert_eq!(evidence.count_of("two-leaders"), Some(1));
        assert_eq!(evidence.tables[0].title, "Term 4: 2 leaders (n1, n3)");
        // Paxos and 2PC name no election line: no election checker.
        for db in ["paxos", "twopc"] {
            let patterns = crate::system::lookup(db).unwrap().log_patterns();
            assert_eq!(
                scan_logs(&read_node_logs(dir.path()), 3, &patterns).len(),
                1
            );
        }
    }
}
