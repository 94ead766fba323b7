//! Checking a run: the workload's checkers on the history, and a scan of the
//! node logs for panics and fatal errors (Jepsen's log-file-pattern idea: a
//! node that panicked makes the run invalid, whatever the history says) and
//! for two Raft leaders in one term.
//! Verdicts combine worst-first.

use super::check::{Checked, Checker, FileCheck};
use super::liveness::NodeExit;
use crate::checker::availability::{self, Availability};
use crate::checker::elle;
use crate::checker::linearizable::{self, KeysMode};
use crate::checker::{Verdict, bank, set};
use crate::history::Op;
use crate::store::RunDir;
use crate::suite::Test;
use crate::workload::Check;
use serde::Serialize;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// One checker's answer, in words and as data.
#[derive(Debug, Clone, Serialize)]
pub struct CheckerOutcome {
    pub name: String,
    pub verdict: Verdict,
    /// One line: what was found.
    pub summary: String,
    /// Anomaly names (`lost`, `wrong-total`, `G1c`, `not-linearizable`, `panic`, ...).
    pub anomalies: Vec<String>,
    /// The checker's own result.
    pub detail: Value,
}

/// A line of a node log that says the node failed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LogFinding {
    pub node: String,
    pub line: usize,
    pub text: String,
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
    for check in test.workload.plan().checks() {
        if client_ops == 0 {
            let why = match run.harness_error {
                Some(e) => format!("the run stopped before its workload: {e}"),
                None => "no client operation was recorded".to_string(),
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
            Check::Bank { accounts, total } => checkers.push(check_bank(accounts, total, ops)),
            Check::Set => checkers.push(check_set(ops)),
        }
    }
    checkers.extend(scan_logs(&dir.path.join("nodes"), run.nodes));
    if let Some(exits) = run.node_exits {
        checkers.push(node_exits(exits, test.allow_node_exits));
    }
    let verdict = checkers
        .iter()
        .fold(Verdict::Valid, |v, c| v.combine(c.verdict));
    RunChecks {
        verdict,
        checkers,
        file,
        availability: (client_ops > 0).then(|| availability::measure(ops, run.main_end_ns)),
    }
}

/// A checker that had nothing to check.
fn not_run(name: &str, why: &str) -> CheckerOutcome {
    CheckerOutcome {
        name: name.into(),
        verdict: Verdict::Unknown,
        summary: format!("not run: {why}"),
        anomalies: vec![],
        detail: Value::Null,
    }
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
    CheckerOutcome {
        name: "nodes".into(),
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
        detail: serde_json::json!({ "exits": exits, "allowed": allowed }),
    }
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
            name: name.into(),
            verdict,
            summary,
            anomalies,
            detail: Value::Null,
        },
        (file, checker),
    )
}

fn check_bank(accounts: u32, total: i64, ops: &[Op]) -> CheckerOutcome {
    let options = bank::BankOptions {
        accounts: (0..accounts).map(|a| a.to_string()).collect(),
        total,
    };
    let r = bank::check(ops, &options);
    let mut anomalies: Vec<String> = r
        .bad_reads
        .iter()
        .map(|b| {
            serde_json::to_value(&b.kind)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        })
        .collect();
    anomalies.sort();
    anomalies.dedup();
    let summary = match r.bad_reads.first() {
        None => format!(
            "{} reads, every one summed to {}",
            r.reads_checked, options.total
        ),
        Some(b) => format!(
            "{} of {} reads wrong; first at op {} ({}): total {} (expected {}){}",
            r.bad_reads.len(),
            r.reads_checked,
            b.index,
            anomalies.join(", "),
            b.total.map_or("?".into(), |t| t.to_string()),
            b.expected_total,
            if b.faults.is_empty() {
                String::new()
            } else {
                format!(" during {}", b.faults.join(" + "))
            }
        ),
    };
    CheckerOutcome {
        name: "bank".into(),
        verdict: r.verdict,
        summary,
        anomalies,
        detail: serde_json::to_value(&r).unwrap_or_default(),
    }
}

fn check_set(ops: &[Op]) -> CheckerOutcome {
    let r = set::check(ops);
    let mut anomalies = Vec::new();
    if r.lost > 0 {
        anomalies.push("lost".to_string());
    }
    if r.unexpected > 0 {
        anomalies.push("unexpected".to_string());
    }
    let summary = match &r.error {
        Some(e) => format!("cannot check: {e}"),
        None => format!(
            "{} acknowledged of {} attempted: {} stable, {} stale, {} lost, {} never read, {} unexpected",
            r.acknowledged, r.attempted, r.stable, r.stale, r.lost, r.never_read, r.unexpected
        ),
    };
    CheckerOutcome {
        name: "set".into(),
        verdict: r.verdict,
        summary,
        anomalies,
        detail: serde_json::to_value(&r).unwrap_or_default(),
    }
}

/// What in a node log means the node failed.
const FATAL_PATTERNS: &[&str] = &["panicked at", "FATAL", "fatal runtime error"];
/// What a Raft node logs when it wins an election (with a `term=N` field).
const LEADER_PATTERN: &str = "became leader";
/// Findings kept per run; the count is complete.
const FINDINGS_MAX: usize = 50;

/// Each node's `nodes/<node>/node.log`, sorted by node; unreadable ones skipped.
fn read_node_logs(nodes_dir: &Path) -> Vec<(String, String)> {
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
            Some((node, String::from_utf8_lossy(&text).into_owned()))
        })
        .collect()
}

/// Scans the node logs: for panics and fatal errors always, and for Raft's
/// election safety (at most one leader per term) when nodes log elections.
/// `expected` logs (one per node): with fewer, the scan cannot say "valid".
pub fn scan_logs(nodes_dir: &Path, expected: usize) -> Vec<CheckerOutcome> {
    let logs = read_node_logs(nodes_dir);
    if logs.is_empty() {
        let why = match expected {
            0 => "no node was deployed".to_string(),
            n => format!("none of the {n} node logs could be read"),
        };
        return vec![not_run("logs", &why)];
    }
    let mut fatal = fatal_lines(&logs);
    if logs.len() < expected && fatal.verdict == Verdict::Valid {
        fatal.verdict = Verdict::Unknown;
        fatal.summary = format!(
            "only {} of {expected} node logs could be read; {}",
            logs.len(),
            fatal.summary
        );
    }
    let mut outcomes = vec![fatal];
    outcomes.extend(election_safety(&logs));
    outcomes
}

fn finding(node: &str, n: usize, line: &str) -> LogFinding {
    LogFinding {
        node: node.to_string(),
        line: n + 1,
        text: line.chars().take(300).collect(),
    }
}

fn fatal_lines(logs: &[(String, String)]) -> CheckerOutcome {
    let mut findings = Vec::new();
    let mut total = 0usize;
    for (node, text) in logs {
        for (n, line) in text.lines().enumerate() {
            if FATAL_PATTERNS.iter().any(|p| line.contains(p)) {
                total += 1;
                if findings.len() < FINDINGS_MAX {
                    findings.push(finding(node, n, line));
                }
            }
        }
    }
    let scanned = logs.len();
    let (verdict, summary) = match findings.first() {
        None => (
            Verdict::Valid,
            format!("no panics or fatal errors in {scanned} node logs"),
        ),
        Some(f) => (
            Verdict::Invalid,
            format!(
                "{total} fatal lines; first: {} line {}: {}",
                f.node, f.line, f.text
            ),
        ),
    };
    let anomalies = if total > 0 {
        vec!["node-panic".to_string()]
    } else {
        vec![]
    };
    CheckerOutcome {
        name: "logs".into(),
        verdict,
        summary,
        anomalies,
        detail: serde_json::json!({"scanned": scanned, "fatal_lines": total, "findings": findings}),
    }
}

/// The `term=N` field of a log line.
fn term_field(line: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("term="))
        .and_then(|t| t.parse().ok())
}

/// Raft's election safety (§5.2): two nodes that log winning the same term
/// are two leaders at once, whatever the history shows. None when no node
/// logs elections (the Paxos and 2PC nodes, or a system of the user's).
fn election_safety(logs: &[(String, String)]) -> Option<CheckerOutcome> {
    // term -> the first claim of each node that won it.
    let mut claims: std::collections::BTreeMap<u64, Vec<LogFinding>> = Default::default();
    for (node, text) in logs {
        for (n, line) in text.lines().enumerate() {
            if !line.contains(LEADER_PATTERN) {
                continue;
            }
            let Some(term) = term_field(line) else {
                continue;
            };
            let won = claims.entry(term).or_default();
            if !won.iter().any(|c| &c.node == node) {
                won.push(finding(node, n, line));
            }
        }
    }
    if claims.is_empty() {
        return None;
    }
    let elections = claims.len();
    let split: Vec<(u64, Vec<LogFinding>)> = claims
        .into_iter()
        .filter(|(_, won)| won.len() > 1)
        .take(FINDINGS_MAX)
        .collect();
    let (verdict, summary, anomalies) = match split.first() {
        None => (
            Verdict::Valid,
            format!("one leader in each of {elections} terms with an election"),
            vec![],
        ),
        Some((term, won)) => {
            let who: Vec<String> = won
                .iter()
                .map(|c| format!("{} (line {})", c.node, c.line))
                .collect();
            (
                Verdict::Invalid,
                format!(
                    "{} had two leaders; first: term {term} was won by {}",
                    match split.len() {
                        1 => "1 term".to_string(),
                        n => format!("{n} terms"),
                    },
                    who.join(" and ")
                ),
                vec!["two-leaders".to_string()],
            )
        }
    };
    let split: Vec<Value> = split
        .into_iter()
        .map(|(term, won)| serde_json::json!({"term": term, "leaders": won}))
        .collect();
    Some(CheckerOutcome {
        name: "election".into(),
        verdict,
        summary,
        anomalies,
        detail: serde_json::json!({"terms": elections, "split": split}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_a_node_log_makes_the_run_invalid() {
        let dir = tempfile::tempdir().unwrap();
        for (node, text) in [
            ("n1", "INFO started\nINFO leader\n"),
            (
                "n2",
                "INFO started\nthread 'main' panicked at src/x.rs:3:5:\nboom\n",
            ),
        ] {
            std::fs::create_dir_all(dir.path().join(node)).unwrap();
            std::fs::write(dir.path().join(node).join("node.log"), text).unwrap();
        }
        let r = fatal_lines(&read_node_logs(dir.path()));
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.anomalies, vec!["node-panic"]);
        assert!(r.summary.contains("n2 line 2"), "{}", r.summary);
        std::fs::write(dir.path().join("n2").join("node.log"), "INFO fine\n").unwrap();
        assert_eq!(
            fatal_lines(&read_node_logs(dir.path())).verdict,
            Verdict::Valid
        );
        // No node logs elections: no election checker.
        assert_eq!(scan_logs(dir.path(), 2).len(), 1);
    }

    #[test]
    fn missing_node_logs_never_scan_as_valid() {
        let dir = tempfile::tempdir().unwrap();
        let none = scan_logs(dir.path(), 3);
        assert_eq!(none.len(), 1);
        assert_eq!(none[0].verdict, Verdict::Unknown);
        assert!(
            none[0].summary.starts_with("not run:"),
            "{}",
            none[0].summary
        );
        assert!(
            scan_logs(dir.path(), 0)[0]
                .summary
                .contains("no node was deployed")
        );
        std::fs::create_dir_all(dir.path().join("n1")).unwrap();
        std::fs::write(dir.path().join("n1").join("node.log"), "INFO fine\n").unwrap();
        let some = &scan_logs(dir.path(), 3)[0];
        assert_eq!(some.verdict, Verdict::Unknown);
        assert!(some.summary.starts_with("only 1 of 3"), "{}", some.summary);
        assert_eq!(scan_logs(dir.path(), 1)[0].verdict, Verdict::Valid);
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
        assert_eq!(node_exits(&[exit], true).verdict, Verdict::Valid);
        assert_eq!(node_exits(&[], false).verdict, Verdict::Valid);
    }

    fn logs(entries: &[(&str, &str)]) -> Vec<(String, String)> {
        entries
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn two_nodes_winning_one_term_break_election_safety() {
        let won = |term| {
            format!(
                "2026-11-24T17:00:00Z  INFO faultline::nodes::raft::node: became leader term={term}\n"
            )
        };
        let ok = logs(&[
            ("n1", &(won(2) + &won(4))),
            ("n2", &won(3)),
            ("n3", "INFO starting election term=3\n"),
        ]);
        let r = election_safety(&ok).expect("elections were logged");
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.summary);
        assert!(r.summary.contains("3 terms"), "{}", r.summary);

        let split = logs(&[
            ("n1", &(won(2) + &won(4))),
            ("n2", &won(3)),
            ("n3", &format!("INFO recovered\n{}", won(4))),
        ]);
        let r = election_safety(&split).expect("elections were logged");
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.anomalies, vec!["two-leaders"]);
        assert!(
            r.summary
                .contains("term 4 was won by n1 (line 2) and n3 (line 2)"),
            "{}",
            r.summary
        );
        // A node that logs its own win twice is still one leader.
        let twice = logs(&[("n1", &(won(5) + &won(5)))]);
        assert_eq!(election_safety(&twice).unwrap().verdict, Verdict::Valid);
        assert!(election_safety(&logs(&[("n1", "INFO leading ballot=3.n1\n")])).is_none());
    }
}
