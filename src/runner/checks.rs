//! Checking a run: the workload's checkers on the history, and the node
//! logs through the log checker (a node that panicked makes the run invalid,
//! whatever the history says) and the election checker (two Raft leaders in
//! one term), with the patterns the system under test prints.
//! Verdicts combine worst-first.
//!
//! Each checker's own result becomes its results.json `detail` here.

use super::check::{Checked, Checker, FileCheck};
use super::liveness::NodeExit;
use crate::checker::availability::{self, Availability};
use crate::checker::elle;
use crate::checker::linearizable::{self, KeysMode};
use crate::checker::logs::{LeaderPattern, LogLine, LogPatterns, NodeLog};
use crate::checker::{Verdict, bank, counter, election, logs, set};
use crate::history::Op;
use crate::report::results::{self, CheckerDetail};
use crate::store::RunDir;
use crate::suite::Test;
use crate::workload::Check;
use std::path::Path;
use std::time::{Duration, Instant};

/// One checker's answer, in words and as data.
#[derive(Debug, Clone)]
pub struct CheckerOutcome {
    pub verdict: Verdict,
    /// One line: what was found.
    pub summary: String,
    /// Anomaly names (`lost`, `wrong-total`, `G1c`, `not-linearizable`, `panic`, ...).
    pub anomalies: Vec<String>,
    /// Which checker, with its own result as results.json holds it.
    pub detail: CheckerDetail,
}

impl CheckerOutcome {
    pub fn name(&self) -> &'static str {
        self.detail.name()
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
            checkers.push(not_run(not_run_detail(&check), &why));
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
            Check::Counter => checkers.push(check_counter(ops)),
        }
    }
    checkers.extend(scan_logs(
        &dir.path.join("nodes"),
        run.nodes,
        &test.db.log_patterns(),
    ));
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

/// A checker that had nothing to check (`detail` without a result).
fn not_run(detail: CheckerDetail, why: &str) -> CheckerOutcome {
    CheckerOutcome {
        verdict: Verdict::Unknown,
        summary: format!("not run: {why}"),
        anomalies: vec![],
        detail,
    }
}

/// The detail of a workload's check that did not run.
fn not_run_detail(check: &Check) -> CheckerDetail {
    match check {
        Check::Linearizable(_) => CheckerDetail::Linearizable,
        Check::Elle(..) => CheckerDetail::Elle,
        Check::Bank { .. } => CheckerDetail::Bank(None),
        Check::Set => CheckerDetail::Set(None),
        Check::Counter => CheckerDetail::Counter(None),
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
        detail: CheckerDetail::Nodes(results::NodesDetail {
            exits: exits
                .iter()
                .map(|e| results::NodeExit {
                    node: e.node.clone(),
                    seen_ns: e.seen_ns,
                    log_tail: e.log_tail.clone(),
                })
                .collect(),
            allowed,
        }),
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
    let detail = match checker {
        Checker::Linearizable(_) => CheckerDetail::Linearizable,
        Checker::Elle(_) => CheckerDetail::Elle,
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
            verdict,
            summary,
            anomalies,
            detail,
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
        .map(|b| b.kind.name().to_string())
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
        verdict: r.verdict,
        summary,
        anomalies,
        detail: CheckerDetail::Bank(Some(bank_detail(&r))),
    }
}

fn bank_detail(r: &bank::BankResult) -> results::BankDetail {
    results::BankDetail {
        verdict: r.verdict,
        reads_checked: r.reads_checked,
        bad_reads: r
            .bad_reads
            .iter()
            .map(|b| results::BankBadRead {
                kind: b.kind.name().into(),
                index: b.index,
                time_ns: b.time_ns,
                process: b.process.clone(),
                balances: b.balances.clone(),
                total: b.total,
                expected_total: b.expected_total,
                faults: b.faults.clone(),
            })
            .collect(),
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
        verdict: r.verdict,
        summary,
        anomalies,
        detail: CheckerDetail::Set(Some(set_detail(&r))),
    }
}

fn check_counter(ops: &[Op]) -> CheckerOutcome {
    let r = counter::check(ops);
    let summary = match (&r.error, r.bad_read_examples.first()) {
        (Some(e), _) => format!("cannot check: {e}"),
        (None, None) => format!("{} reads, every one within its bounds", r.reads_checked),
        (None, Some(b)) => format!(
            "{} of {} reads out of bounds; first at op {}: {} not within [{}, {}]",
            r.bad_reads, r.reads_checked, b.index, b.value, b.lower, b.upper
        ),
    };
    CheckerOutcome {
        verdict: r.verdict,
        summary,
        anomalies: if r.bad_reads > 0 {
            vec!["bad-read".into()]
        } else {
            Vec::new()
        },
        detail: CheckerDetail::Counter(Some(r)),
    }
}

fn set_detail(r: &set::SetResult) -> results::SetDetail {
    results::SetDetail {
        verdict: r.verdict,
        attempted: r.attempted,
        acknowledged: r.acknowledged,
        stable: r.stable,
        stale: r.stale,
        lost: r.lost,
        never_read: r.never_read,
        unexpected: r.unexpected,
        indeterminate: r.indeterminate,
        lost_examples: r
            .lost_examples
            .iter()
            .map(|l| results::SetLost {
                element: l.element.clone(),
                add_index: l.add_index,
                last_read_index: l.last_read_index,
                add_time_ns: l.add_time_ns,
                last_read_time_ns: l.last_read_time_ns,
            })
            .collect(),
        stale_examples: r.stale_examples.clone(),
        unexpected_examples: r.unexpected_examples.clone(),
        stale_details: r
            .stale_details
            .iter()
            .map(|x| results::SetStale {
                element: x.element.clone(),
                add_index: x.add_index,
                add_time_ns: x.add_time_ns,
                missed_read_index: x.missed_read_index,
                missed_read_time_ns: x.missed_read_time_ns,
            })
            .collect(),
        unexpected_details: r
            .unexpected_details
            .iter()
            .map(|x| results::SetUnexpected {
                element: x.element.clone(),
                read_index: x.read_index,
                read_time_ns: x.read_time_ns,
            })
            .collect(),
        error: r.error.clone(),
    }
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
pub fn scan_logs(nodes_dir: &Path, expected: usize, patterns: &LogPatterns) -> Vec<CheckerOutcome> {
    let logs = read_node_logs(nodes_dir);
    if logs.is_empty() {
        let why = match expected {
            0 => "no node was deployed".to_string(),
            n => format!("none of the {n} node logs could be read"),
        };
        return vec![not_run(CheckerDetail::Logs(None), &why)];
    }
    let mut fatal = fatal_lines(&logs, &patterns.fatal);
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
        outcomes.extend(election_safety(&logs, leader));
    }
    outcomes
}

fn log_line(l: &LogLine) -> results::LogLine {
    results::LogLine {
        node: l.node.clone(),
        line: l.line,
        text: l.text.clone(),
    }
}

fn fatal_lines(logs: &[NodeLog], fatal: &[String]) -> CheckerOutcome {
    let r = logs::check(logs, fatal);
    let summary = match r.findings.first() {
        None => format!("no panics or fatal errors in {} node logs", r.scanned),
        Some(f) => format!(
            "{} fatal lines; first: {} line {}: {}",
            r.fatal_lines, f.node, f.line, f.text
        ),
    };
    let anomalies = if r.fatal_lines > 0 {
        vec!["node-panic".to_string()]
    } else {
        vec![]
    };
    CheckerOutcome {
        verdict: r.verdict,
        summary,
        anomalies,
        detail: CheckerDetail::Logs(Some(results::LogsDetail {
            scanned: r.scanned,
            fatal_lines: r.fatal_lines,
            findings: r.findings.iter().map(log_line).collect(),
        })),
    }
}

/// The election checker, in words. None when no node logged a win.
fn election_safety(logs: &[NodeLog], leader: &LeaderPattern) -> Option<CheckerOutcome> {
    let r = election::check(logs, leader)?;
    let (summary, anomalies) = match r.split.first() {
        None => (
            format!("one leader in each of {} terms with an election", r.terms),
            vec![],
        ),
        Some(first) => {
            let who: Vec<String> = first
                .leaders
                .iter()
                .map(|c| format!("{} (line {})", c.node, c.line))
                .collect();
            (
                format!(
                    "{} had two leaders; first: term {} was won by {}",
                    match r.split.len() {
                        1 => "1 term".to_string(),
                        n => format!("{n} terms"),
                    },
                    first.term,
                    who.join(" and ")
                ),
                vec!["two-leaders".to_string()],
            )
        }
    };
    Some(CheckerOutcome {
        verdict: r.verdict,
        summary,
        anomalies,
        detail: CheckerDetail::Election(results::ElectionDetail {
            terms: r.terms,
            split: r
                .split
                .iter()
                .map(|t| results::SplitTerm {
                    term: t.term,
                    leaders: t.leaders.iter().map(log_line).collect(),
                })
                .collect(),
        }),
    })
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
        let [r] = &scan_logs(dir.path(), 2, &raft)[..] else {
            panic!("one checker")
        };
        assert_eq!(r.name(), "logs");
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.anomalies, vec!["node-panic"]);
        assert!(r.summary.contains("n2 line 2"), "{}", r.summary);
        let CheckerDetail::Logs(Some(d)) = &r.detail else {
            panic!("{:?}", r.detail)
        };
        assert_eq!((d.scanned, d.fatal_lines, d.findings[0].line), (2, 1, 2));
        std::fs::write(dir.path().join("n2").join("node.log"), "INFO fine\n").unwrap();
        assert_eq!(scan_logs(dir.path(), 2, &raft)[0].verdict, Verdict::Valid);
    }

    #[test]
    fn missing_node_logs_never_scan_as_valid() {
        let dir = tempfile::tempdir().unwrap();
        let raft = raft().log_patterns();
        let none = scan_logs(dir.path(), 3, &raft);
        assert_eq!(none.len(), 1);
        assert_eq!(none[0].verdict, Verdict::Unknown);
        assert_eq!(none[0].detail, CheckerDetail::Logs(None));
        assert!(
            none[0].summary.starts_with("not run:"),
            "{}",
            none[0].summary
        );
        assert!(
            scan_logs(dir.path(), 0, &raft)[0]
                .summary
                .contains("no node was deployed")
        );
        std::fs::create_dir_all(dir.path().join("n1")).unwrap();
        std::fs::write(dir.path().join("n1").join("node.log"), "INFO fine\n").unwrap();
        let some = &scan_logs(dir.path(), 3, &raft)[0];
        assert_eq!(some.verdict, Verdict::Unknown);
        assert!(some.summary.starts_with("only 1 of 3"), "{}", some.summary);
        assert_eq!(scan_logs(dir.path(), 1, &raft)[0].verdict, Verdict::Valid);
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
        let CheckerDetail::Nodes(d) = &seen.detail else {
            panic!("{:?}", seen.detail)
        };
        assert_eq!((d.exits[0].seen_ns, d.allowed), (2_100_000_000, false));
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
        let checkers = scan_logs(dir.path(), 3, &raft().log_patterns());
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
        let CheckerDetail::Election(d) = &r.detail else {
            panic!("{:?}", r.detail)
        };
        assert_eq!(
            (d.terms, d.split[0].term, d.split[0].leaders.len()),
            (3, 4, 2)
        );
        // Paxos and 2PC name no election line: no election checker.
        for db in ["paxos", "twopc"] {
            let patterns = crate::system::lookup(db).unwrap().log_patterns();
            assert_eq!(scan_logs(dir.path(), 3, &patterns).len(), 1);
        }
    }
}
