//! What results.json says, in the shape the report draws: the verdict, one
//! entry per check (every checker of a run, with the file-level
//! linearizability or Elle result joined to its checker), and the evidence
//! each found: linearizability explanations, Elle cases with their cycles,
//! and for every other checker its [`Evidence`], which has the same shape
//! whatever the checker (facts, counts per anomaly, tables): nothing here
//! knows those checkers, and a checker added later is read the same way.
//!
//! This is the only place that knows results.json's layout. It reads it
//! through the schema's own types (`report::results`), the ones the writer
//! uses; nothing here walks JSON. Nothing here ever decides or changes the
//! verdict — that is `valid` in results.json, taken as written.

use super::results::{self, CheckerResult, FileResult, Results};
pub use super::results::{ElleCase, Evidence, Explanation, OpRef, PrefixStep};
use crate::checker::Verdict;
use serde_json::Value;

#[derive(Debug, Clone, Default)]
pub struct Findings {
    /// `None` when there is no results.json to read.
    pub verdict: Option<Verdict>,
    pub schema_version: Option<u32>,
    pub tool: Option<String>,
    pub checks: Vec<Check>,
    /// Why the harness failed (a run's results.json).
    pub harness_error: Option<String>,
    /// What went wrong in the run without stopping it.
    pub problems: Vec<String>,
    /// Why the run cannot be judged valid whatever its checkers say.
    pub incomplete: Vec<String>,
    /// How much of the workload's time the system answered.
    pub availability: Option<super::results::Availability>,
    /// The earliest operation a checker names in an anomaly.
    pub first_anomaly: Option<super::results::FirstAnomaly>,
}

/// How a check is shown: its verdict, or "not run".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Valid,
    Invalid,
    Unknown,
    /// The checker did not run (its summary says why).
    NotRun,
    /// results.json gives no verdict for it.
    None,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Valid => "valid",
            Status::Invalid => "invalid",
            Status::Unknown => "unknown",
            Status::NotRun => "not run",
            Status::None => "no verdict",
        }
    }

    /// The CSS class of its badge.
    pub fn class(self) -> &'static str {
        match self {
            Status::Valid => "valid",
            Status::Invalid => "invalid",
            Status::Unknown => "unknown",
            Status::NotRun | Status::None => "none",
        }
    }
}

/// One checker's result over one run or history.
#[derive(Debug, Clone, Default)]
pub struct Check {
    /// Which checker: `linearizable`, `elle`, `bank`, `set`, `logs`, `election`, ...
    pub checker: String,
    /// What it checked (a file path), when results.json says.
    pub subject: Option<String>,
    pub verdict: Option<Verdict>,
    /// What it found, in one line: the checker's own summary, or one made
    /// here from a file-level result.
    pub summary: Option<String>,
    /// Why it did not run (a summary `not run: <why>` with verdict unknown).
    pub not_run: Option<String>,
    /// Anomaly names as the checker listed them (`lost`, `wrong-total`, ...).
    pub anomaly_names: Vec<String>,
    /// Why it could not check.
    pub error: Option<String>,
    /// A few facts worth a line: model, counts.
    pub facts: Vec<(String, String)>,
    /// Why parts of it are unknown (time limit, memory).
    pub unknown_reasons: Vec<String>,
    pub lin: Vec<LinAnomaly>,
    pub elle: Option<Elle>,
    /// What a run's checker found, as it described it (none for a
    /// file-level result or a checker that did not run).
    pub evidence: Option<Evidence>,
}

impl Check {
    pub fn status(&self) -> Status {
        match self.verdict {
            _ if self.not_run.is_some() => Status::NotRun,
            Some(Verdict::Valid) => Status::Valid,
            Some(Verdict::Invalid) => Status::Invalid,
            Some(Verdict::Unknown) => Status::Unknown,
            None => Status::None,
        }
    }

    /// Why it is not valid, in one line (`None` for a valid check with nothing to say).
    pub fn reason(&self) -> Option<String> {
        if let Some(why) = &self.not_run {
            return Some(why.clone());
        }
        if let Some(s) = self.summary.as_ref().filter(|s| !s.is_empty()) {
            return Some(s.clone());
        }
        if let Some(e) = &self.error {
            return Some(format!("cannot check: {e}"));
        }
        (self.status() != Status::Valid).then(|| match self.status() {
            Status::None => "results.json gives no verdict".to_string(),
            _ => "results.json says no more".to_string(),
        })
    }

    /// Names of the anomalies found, with how many of each when known.
    pub fn anomalies(&self) -> Vec<(String, Option<usize>)> {
        let mut out: Vec<(String, Option<usize>)> = Vec::new();
        if let Some(elle) = &self.elle {
            out.extend(elle.counts.iter().map(|(a, n)| (a.clone(), Some(*n))));
        }
        for name in &self.anomaly_names {
            if !out.iter().any(|(a, _)| a == name) {
                out.push((name.clone(), self.count_of(name)));
            }
        }
        if out.is_empty() && !self.lin.is_empty() {
            out.push(("not-linearizable".to_string(), Some(self.lin.len())));
        }
        if out.is_empty() && self.verdict == Some(Verdict::Invalid) {
            out.push((format!("{} failed", self.checker), None));
        }
        out
    }

    /// How many cases of anomaly `name` were found, when known: the
    /// evidence's count, or the keys not linearizable.
    fn count_of(&self, name: &str) -> Option<usize> {
        if let Some(n) = self.evidence.as_ref().and_then(|e| e.count_of(name)) {
            return Some(n);
        }
        (name == "not-linearizable" && !self.lin.is_empty()).then_some(self.lin.len())
    }
}

/// Why one key (or the whole object) is not linearizable: the checker's
/// explanation as results.json's schema ([`super::results`]) has it.
#[derive(Debug, Clone, PartialEq)]
pub struct LinAnomaly {
    pub key: Option<String>,
    pub explanation: Explanation,
}

/// An Elle result as the report draws it.
#[derive(Debug, Clone, Default)]
pub struct Elle {
    /// Explained cases, a few per anomaly.
    pub cases: Vec<ElleCase>,
    /// Every anomaly found, with how many (more than the cases shown).
    pub counts: Vec<(String, usize)>,
    /// Lines about consistency models (violated, still possible).
    pub models: Vec<(String, String)>,
}

/// What results.json says.
pub fn findings(r: &Results) -> Findings {
    let r = r.clone();
    let mut files: Vec<Check> = r.files.into_iter().map(file_check).collect();
    let mut f = Findings {
        verdict: Some(r.valid.into()),
        schema_version: Some(r.schema_version),
        tool: Some(r.tool),
        ..Findings::default()
    };
    if let Some(run) = r.run {
        for c in run.checkers {
            let mut check = checker_check(c);
            if let Some(i) = files.iter().position(|f| f.checker == check.checker) {
                join_file(&mut check, files.remove(i));
            }
            f.checks.push(check);
        }
        f.harness_error = run.harness_error;
        f.problems = run.problems;
        f.incomplete = run.incomplete;
        f.availability = run.availability;
        f.first_anomaly = run.first_anomaly;
    }
    // File results no checker of the run claims (or `faultline check`'s).
    f.checks.extend(files);
    f
}

/// A run's checker: verdict, summary, anomalies, and its evidence (its
/// `detail` is for machines, and not read here).
fn checker_check(c: CheckerResult) -> Check {
    let v = c.valid.into();
    Check {
        checker: c.name,
        verdict: Some(v),
        not_run: not_run(v, &c.summary),
        summary: Some(c.summary),
        anomaly_names: c.anomalies,
        evidence: c.evidence,
        ..Check::default()
    }
}

/// `not run: <why>` with verdict unknown: the checker did not run.
fn not_run(v: Verdict, summary: &str) -> Option<String> {
    let why = summary.strip_prefix("not run:")?;
    (v == Verdict::Unknown).then(|| why.trim().to_string())
}

/// Joins a file-level result into the run's checker of the same name.
fn join_file(c: &mut Check, file: Check) {
    c.subject = file.subject;
    c.error = c.error.take().or(file.error);
    c.facts = file.facts;
    c.unknown_reasons = file.unknown_reasons;
    c.lin = file.lin;
    c.elle = file.elle;
}

/// One file of `faultline check` (or a run's history), typed.
fn file_check(f: FileResult) -> Check {
    let mut c = Check {
        checker: f.checker,
        subject: Some(f.path),
        verdict: Some(f.valid.into()),
        error: f.error,
        ..Check::default()
    };
    if let Some(lin) = &f.linearizable {
        linearizable(lin, &mut c);
    }
    if let Some(e) = &f.elle {
        c.elle = Some(elle(e, &mut c.facts));
    }
    c.summary = made_summary(&c);
    c
}

fn linearizable(lin: &results::Linearizable, c: &mut Check) {
    c.facts.push(("model".into(), lin.model.clone()));
    let n = &lin.counts;
    for (k, v) in [
        ("history ops", Some(n.history_ops)),
        ("client calls", Some(n.client_calls)),
        ("failed", Some(n.failed)),
        ("unknown outcome", Some(n.unknown_outcome)),
        ("truncated line", n.truncated_line),
    ] {
        if let Some(v) = v {
            c.facts.push((k.into(), v.to_string()));
        }
    }
    for k in &lin.keys {
        let key = (!k.key.is_null()).then(|| scalar(&k.key));
        if let Some(reason) = &k.reason {
            let at = key
                .as_ref()
                .map(|k| format!("key {k}: "))
                .unwrap_or_default();
            c.unknown_reasons.push(format!("{at}{reason}"));
        }
        if let Some(e) = &k.explanation {
            c.lin.push(LinAnomaly {
                key,
                explanation: e.clone(),
            });
        }
    }
    if lin.keys.len() > 1 {
        c.facts.push(("keys".into(), lin.keys.len().to_string()));
    }
}

fn elle(e: &results::Elle, facts: &mut Vec<(String, String)>) -> Elle {
    facts.push(("workload".into(), e.workload.clone()));
    facts.push(("consistency".into(), e.consistency.clone()));
    for (k, v) in [
        ("txns", e.counts.txns),
        ("ok", e.counts.ok),
        ("info", e.counts.info),
        ("fail", e.counts.fail),
    ] {
        facts.push((k.into(), v.to_string()));
    }
    let cases = e.anomalies.clone();
    // Worst first, as `anomaly_types` lists them.
    let mut counts: Vec<(String, usize)> = e
        .anomaly_types
        .iter()
        .map(|a| (a.clone(), e.anomaly_counts.get(a).copied().unwrap_or(1)))
        .collect();
    for (a, n) in &e.anomaly_counts {
        if !counts.iter().any(|(x, _)| x == a) {
            counts.push((a.clone(), *n));
        }
    }
    let mut models = Vec::new();
    for (names, label) in [
        (&e.violating, "violates"),
        (&e.not, "not"),
        (&e.also_not, "also not"),
        (&e.strongest_possible, "still possible"),
        (&e.incomplete, "search cut short for"),
    ] {
        if !names.is_empty() {
            models.push((label.to_string(), names.join(", ")));
        }
    }
    Elle {
        cases,
        counts,
        models,
    }
}

/// A one-line summary for a check that has none of its own (a file of
/// `faultline check`): what makes it invalid or unknown.
fn made_summary(c: &Check) -> Option<String> {
    if let Some(e) = &c.error {
        return Some(format!("cannot check: {e}"));
    }
    if !c.lin.is_empty() {
        let keys: Vec<String> = c
            .lin
            .iter()
            .map(|a| {
                a.key
                    .as_ref()
                    .map_or("the register".into(), |k| format!("key {k}"))
            })
            .collect();
        let first = &c.lin[0].explanation.op;
        return Some(format!(
            "not linearizable: {} ({} cannot be placed, op {})",
            keys.join(", "),
            first.op,
            first.index
        ));
    }
    if let Some(elle) = &c.elle
        && c.verdict != Some(Verdict::Valid)
        && !elle.counts.is_empty()
    {
        let found: Vec<String> = elle
            .counts
            .iter()
            .map(|(a, n)| format!("{a} ({n})"))
            .collect();
        let model = c
            .facts
            .iter()
            .find(|(k, _)| k == "consistency")
            .map(|(_, m)| format!("not {m}: "))
            .unwrap_or_default();
        return Some(format!("{model}{}", found.join(", ")));
    }
    if !c.unknown_reasons.is_empty() {
        return Some(c.unknown_reasons.join("; "));
    }
    None
}

/// A JSON scalar as text without quotes; anything else as compact JSON.
pub fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Findings {
        let r: Results = serde_json::from_value(v).expect("the writer's shape");
        findings(&r)
    }

    /// A key's result: `explanation` for an invalid key, `reason` for an unknown one.
    fn key(key: Value, valid: Value, reason: Value, explanation: Value) -> Value {
        json!({"key": key, "valid": valid, "ops": 3, "configurations": 4, "time_ms": 0.1,
               "reason": reason, "explanation": explanation})
    }

    /// A file checked for linearizability, as `to_results` writes it.
    fn lin_file(path: &str, keys: Value) -> Value {
        json!({"path": path, "valid": false, "error": null, "checker": "linearizable",
            "timings_ms": {"read": 0.0, "check": 1.0, "total": 1.0},
            "linearizable": {"model": "cas-register",
                "options": {"keys": "tuple", "initial_value": null, "nil_read": "absent",
                            "time_limit_ms": 1000, "memory_limit_mb": 64},
                "counts": {"history_ops": 10, "client_calls": 5, "failed": 0,
                           "unknown_outcome": 0, "truncated_line": null},
                "keys": keys}})
    }

    fn op_ref(index: u64, completion: u64, op: &str) -> Value {
        json!({"index": index, "completion_index": completion, "process": 1, "op": op})
    }

    #[test]
    fn reads_a_linearizability_result_and_keeps_the_verdict_as_written() {
        let explanation = json!({"op": op_ref(7, 9, "read -> 3"), "prefix": [0, 2],
            "prefix_tail": [{"op": op_ref(2, 4, "write 1"), "state_after": "1"}],
            "states_before": ["1"], "concurrent": [], "concurrent_total": 0, "text": "cannot place"});
        let f = read(json!({
            "schema_version": 1, "tool": "faultline 0.1.0", "valid": false,
            "files": [lin_file("h.jsonl", json!([
                key(json!(3), json!(false), json!(null), explanation),
                key(json!(4), json!("unknown"), json!("time limit 60 s reached"), json!(null))
            ]))]
        }));
        assert_eq!(f.verdict, Some(Verdict::Invalid));
        assert_eq!(f.schema_version, Some(1));
        let c = &f.checks[0];
        assert_eq!(c.checker, "linearizable");
        assert_eq!(c.subject.as_deref(), Some("h.jsonl"));
        assert_eq!(c.lin.len(), 1);
        assert_eq!(c.lin[0].key.as_deref(), Some("3"));
        assert_eq!(c.lin[0].explanation.op.completion_index, Some(9));
        assert_eq!(c.lin[0].explanation.prefix_tail[0].state_after, "1");
        assert_eq!(c.unknown_reasons, vec!["key 4: time limit 60 s reached"]);
        assert_eq!(
            c.anomalies(),
            vec![("not-linearizable".to_string(), Some(1))]
        );
        assert_eq!(
            c.reason().as_deref(),
            Some("not linearizable: key 3 (read -> 3 cannot be placed, op 7)")
        );
    }

    #[test]
    fn reads_elle_cases_with_their_counts_and_models() {
        let names = |n: &[&str]| json!(n);
        let f = read(json!({
            "schema_version": 1, "tool": "faultline 0.1.0", "valid": false,
            "files": [{"path": "h.jsonl", "valid": false, "error": null, "checker": "elle",
                "timings_ms": {"read": 1.0, "check": 1.0, "total": 2.0},
                "elle": {"workload": "list-append", "consistency": "serializable",
                    "process_order": false, "realtime_order": false,
                    "counts": {"history_ops": 20, "txns": 10, "ok": 9, "info": 1, "fail": 0,
                               "truncated_line": null},
                    "anomaly_types": names(&["G-single"]), "anomaly_counts": {"G-single": 3},
                    "violating": names(&["G-single"]), "incomplete": [], "not": names(&["serializable"]),
                    "also_not": [], "possible": [], "strongest_possible": names(&["read-committed"]),
                    "unchecked": [],
                    "anomalies": [{"anomaly": "G-single", "key": null,
                        "txns": [{"index": 5, "invoke_index": 4, "process": 1, "outcome": "ok", "ops": "[]"}],
                        "steps": [{"from": 5, "to": 8, "relation": "rw", "key": "x", "text": "because"}],
                        "dot": "digraph {}", "text": "T5 ..."}],
                    "graph": {"txn_nodes": 10, "barrier_nodes": 3, "edges": 20, "sccs": 1, "largest_scc": 2},
                    "phases_ms": {"infer": 0.1, "graph": 0.1, "scc": 0.1, "cycles": 0.1},
                    "text": "G-single ..."}}]
        }));
        let c = &f.checks[0];
        let elle = c.elle.as_ref().unwrap();
        assert_eq!(elle.cases[0].steps[0].relation, "rw");
        assert_eq!(elle.cases[0].txns[0].invoke_index, 4);
        assert_eq!(c.anomalies(), vec![("G-single".to_string(), Some(3))]);
        assert_eq!(
            elle.models,
            vec![
                ("violates".to_string(), "G-single".to_string()),
                ("not".to_string(), "serializable".to_string()),
                ("still possible".to_string(), "read-committed".to_string())
            ]
        );
        assert_eq!(
            c.reason().as_deref(),
            Some("not serializable: G-single (3)")
        );
    }

    /// A run's results.json as the runner writes it: the checkers, and the
    /// history's file-level result.
    fn run_results(checkers: Value) -> Value {
        let explanation = json!({"op": op_ref(4, 5, "read -> 1"), "prefix": [0, 2],
            "prefix_tail": [], "states_before": ["2"], "concurrent": [], "concurrent_total": 0,
            "text": "cannot place read -> 1"});
        json!({
            "schema_version": 1, "tool": "faultline 0.1.0", "valid": false,
            "files": [lin_file("results/t/1/history.jsonl",
                json!([key(json!(0), json!(false), json!(null), explanation)]))],
            "run": {"test": "t", "db": "raft", "bugs": [], "workload": "register", "nemesis": "none",
                "seed": 1, "hosts": [], "duration_ms": 1.0,
                "ops": {"invoked": 3, "ok": 3, "fail": 0, "info": 0, "nemesis": 0},
                "checkers": checkers, "anomalies": [], "harness_error": null,
                "problems": ["heal: n2 unreachable"], "replay": "faultline run --replay t"}
        })
    }

    #[test]
    fn a_runs_checkers_are_all_read_with_their_evidence_and_the_file_result_joined() {
        let f = read(run_results(json!([
            {"name": "linearizable", "valid": false, "summary": "not linearizable: key 0 (read -> 1 cannot be placed)",
             "anomalies": ["not-linearizable"], "detail": null},
            {"name": "bank", "valid": false, "summary": "2 of 3 reads wrong",
             "anomalies": ["negative-balance", "wrong-total"],
             "detail": {"reads_checked": 3},
             "evidence": {"facts": [{"name": "reads checked", "value": "3"}],
                 "counts": {"wrong-total": 1, "negative-balance": 1},
                 "tables": [{"columns": ["read", "faults in place"],
                     "rows": [[{"op": {"index": 9, "time_ns": 5}}, {"text": "partition"}]], "total": 2}]}},
            // A checker this version of faultline does not know, without
            // a count for its anomaly.
            {"name": "quorum", "valid": false, "summary": "2 quorums", "anomalies": ["split-quorum"],
             "detail": {"whatever": [1]}, "evidence": {"facts": [{"name": "quorums", "value": "2"}]}},
            {"name": "set", "valid": "unknown", "summary": "not run: the workload has no set ops", "anomalies": [], "detail": null},
        ])));
        assert_eq!(f.problems, vec!["heal: n2 unreachable"]);
        let names: Vec<&str> = f.checks.iter().map(|c| c.checker.as_str()).collect();
        assert_eq!(
            names,
            ["linearizable", "bank", "quorum", "set"],
            "every checker once; the file result joined to its checker"
        );
        let lin = &f.checks[0];
        assert_eq!(lin.lin.len(), 1);
        assert!(lin.evidence.is_none());
        assert_eq!(lin.subject.as_deref(), Some("results/t/1/history.jsonl"));
        assert_eq!(
            lin.reason().as_deref(),
            Some("not linearizable: key 0 (read -> 1 cannot be placed)")
        );
        assert_eq!(
            lin.anomalies(),
            vec![("not-linearizable".to_string(), Some(1))]
        );
        let bank = &f.checks[1];
        let evidence = bank.evidence.as_ref().expect("bank evidence");
        assert_eq!(
            evidence.tables[0].rows[0][1],
            results::Cell::text("partition")
        );
        assert_eq!(evidence.tables[0].more(), 1);
        assert_eq!(
            bank.anomalies(),
            vec![
                ("negative-balance".to_string(), Some(1)),
                ("wrong-total".to_string(), Some(1))
            ],
            "counts from the evidence"
        );
        let quorum = &f.checks[2];
        assert_eq!(quorum.status(), Status::Invalid);
        assert_eq!(quorum.anomalies(), vec![("split-quorum".to_string(), None)]);
        let set = &f.checks[3];
        assert_eq!(set.status(), Status::NotRun, "never shown as valid");
        assert_eq!(set.reason().as_deref(), Some("the workload has no set ops"));
        assert!(set.evidence.is_none());
    }
}
