//! The results.json schema.
//!
//! These serde types are an API, kept apart from the checkers' internal types
//! (the runner converts). Any change that renames or removes a field, or
//! changes its meaning, bumps [`SCHEMA_VERSION`]; adding an optional field
//! does not.
//!
//! ```json
//! {
//!   "schema_version": 1,
//!   "tool": "faultline 0.1.0",
//!   "valid": false,                       // true | false | "unknown": the worst file
//!   "files": [{
//!     "path": "etcd_000.log",
//!     "valid": false,
//!     "error": null,                      // set when the file could not be checked
//!     "checker": "linearizable",
//!     "timings_ms": {"read": 0.2, "check": 0.4, "total": 0.6},
//!     "linearizable": {
//!       "model": "cas-register",
//!       "options": {"keys": "single", "initial_value": null, "nil_read": "absent",
//!                   "time_limit_ms": 60000, "memory_limit_mb": 2048},
//!       "counts": {"history_ops": 170, "client_calls": 85, "failed": 19,
//!                  "unknown_outcome": 16, "truncated_line": null},
//!       "keys": [{"key": null, "valid": false, "ops": 66, "configurations": 412,
//!                 "time_ms": 0.3, "reason": null, "explanation": {...}}]
//!     }
//!   }],
//!   "run": {                              // set by `faultline run`
//!     "test": "raft-set", ..., "anomalies": ["lost"],
//!     "checkers": [{
//!       "name": "set",                    // any name: a reader need not know the checker
//!       "valid": false,
//!       "summary": "40 acknowledged of 41 attempted: 38 stable, 0 stale, 2 lost, ...",
//!       "anomalies": ["lost"],
//!       "detail": {"lost": 2, ...},       // the checker's own result, its own shape
//!       "evidence": {                     // optional; the same shape for every checker
//!         "facts": [{"name": "lost", "value": "2"}],
//!         "counts": {"lost": 2},
//!         "tables": [{"title": "...", "columns": ["element", "added"],
//!                     "rows": [[{"code": "17"}, {"op": {"index": 31, "time_ns": 1250000000}}]],
//!                     "total": 2, "what": "lost elements"}]
//!       }
//!     }],
//!     "first_anomaly": {"checker": "set", "anomaly": "lost", "index": 31, "time_ms": 1250.0}
//!   }
//! }
//! ```
//!
//! `evidence` (see `checker::evidence`) was added without a version bump:
//! it is optional, and a results.json without it reads as before.

use crate::checker::Verdict;
pub use crate::checker::evidence::{Cell, Evidence, Fact, Table};
use crate::history::Process;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

pub const SCHEMA_VERSION: u32 = 1;

/// The file name the check command writes.
pub const FILE_NAME: &str = "results.json";

/// Reads a results.json with the types that write it. The error starts
/// with `line:column: `; a file of another schema version is refused as such.
pub fn from_json(text: &str) -> Result<Results, String> {
    /// What every version has: the schema version, read before the rest.
    #[derive(Deserialize)]
    struct Version {
        schema_version: u32,
    }
    let at = |e: serde_json::Error| {
        format!(
            "{}:{}: {}",
            e.line(),
            e.column(),
            crate::history::text::clip_message(&e.to_string())
        )
    };
    let v: Version = serde_json::from_str(text).map_err(at)?;
    if v.schema_version != SCHEMA_VERSION {
        return Err(format!(
            "1:1: schema_version {} is not the schema this faultline reads ({SCHEMA_VERSION})",
            v.schema_version
        ));
    }
    serde_json::from_str(text).map_err(at)
}

/// A verdict as results.json spells it: `true`, `false` or `"unknown"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Valid {
    True,
    False,
    Unknown,
}

impl Serialize for Valid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Valid::True => s.serialize_bool(true),
            Valid::False => s.serialize_bool(false),
            Valid::Unknown => s.serialize_str("unknown"),
        }
    }
}

impl<'de> Deserialize<'de> for Valid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Valid;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false or \"unknown\"")
            }
            fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Valid, E> {
                Ok(if b { Valid::True } else { Valid::False })
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Valid, E> {
                match s {
                    "unknown" => Ok(Valid::Unknown),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(s), &self)),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl From<Verdict> for Valid {
    fn from(v: Verdict) -> Valid {
        match v {
            Verdict::Valid => Valid::True,
            Verdict::Invalid => Valid::False,
            Verdict::Unknown => Valid::Unknown,
        }
    }
}

impl From<Valid> for Verdict {
    fn from(v: Valid) -> Verdict {
        match v {
            Valid::True => Verdict::Valid,
            Valid::False => Verdict::Invalid,
            Valid::Unknown => Verdict::Unknown,
        }
    }
}

/// The whole results.json of one `faultline check` call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub schema_version: u32,
    /// `faultline <version>`.
    pub tool: String,
    /// The worst of the files' verdicts (a file that could not be checked counts as unknown).
    pub valid: Valid,
    /// One per history file, in command-line order. For a run: history.jsonl,
    /// when a checker with a file-level report (linearizable) ran.
    pub files: Vec<FileResult>,
    /// Set by `faultline run`: the test, what happened, every checker's verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunResult>,
}

/// A whole run: `valid` above is this run's verdict (`"unknown"` also when
/// the harness failed, with `harness_error` saying why).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RunResult {
    pub test: String,
    pub db: String,
    pub bugs: Vec<String>,
    pub workload: String,
    pub nemesis: String,
    pub seed: u64,
    /// `name address` of every host.
    pub hosts: Vec<String>,
    pub duration_ms: f64,
    pub ops: OpCounts,
    /// Every checker that ran, the node-log scan included.
    pub checkers: Vec<CheckerResult>,
    /// The anomalies found, by name (`not-linearizable`, `lost`, `wrong-total`, `G1c`, ...).
    pub anomalies: Vec<String>,
    /// Why the harness failed (exit code 3).
    pub harness_error: Option<String>,
    /// What went wrong without stopping the run (heal, logs, teardown).
    pub problems: Vec<String>,
    /// The command that runs this test again with the same seed.
    pub replay: String,
    /// Why the run cannot be judged valid even where every checker says so
    /// (interrupted, history not written whole): `valid` is at best
    /// `"unknown"`, and these reasons come first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incomplete: Vec<String>,
    /// How much of the workload's time the system answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<Availability>,
    /// When the bug first showed: absent when the run is valid, or when no
    /// checker that found an anomaly names an operation (node logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_anomaly: Option<FirstAnomaly>,
}

/// The earliest operation a checker names as part of an anomaly
/// (`runner::first_anomaly` says which each checker names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirstAnomaly {
    /// The checker that named it.
    pub checker: String,
    /// The anomaly, when the checker names one per operation (Elle's cases,
    /// `not-linearizable`); else the checker's first anomaly.
    pub anomaly: String,
    /// The op's index in the history, when the checker names an op.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// `node:line` of a node's log, when the checker names a log line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_line: Option<String>,
    /// Milliseconds from the start of the run to the op.
    pub time_ms: f64,
}

impl FirstAnomaly {
    /// `12.3 s into the run: op 1234 (bank: wrong-total)`, or `... log
    /// line n3:42 (...)`.
    pub fn describe(&self) -> String {
        let what = match (&self.index, &self.log_line) {
            (Some(i), _) => format!("op {i}"),
            (None, Some(l)) => format!("log line {l}"),
            (None, None) => "an anomaly".to_string(),
        };
        format!(
            "{:.1} s into the run: {what} ({}: {})",
            self.time_ms / 1e3,
            self.checker,
            self.anomaly
        )
    }
}

/// Availability over the workload's main phase (see `checker::availability`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Availability {
    /// The main phase's length.
    pub span_ms: f64,
    pub ok: u64,
    pub ok_per_s: f64,
    /// The longest stretch with no `ok` completion.
    pub longest_without_ok: Stretch,
    /// When the last fault that healed during the main phase healed.
    pub last_heal_ms: Option<f64>,
    /// The longest stretch with no `ok` completion after that heal (or over
    /// the whole phase when no fault healed): a long one means the system did
    /// not recover.
    pub after_last_heal: Stretch,
}

/// A stretch of time with no `ok` completion, and the faults in place in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stretch {
    pub from_ms: f64,
    pub to_ms: f64,
    pub ms: f64,
    pub faults: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct OpCounts {
    pub invoked: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    /// Nemesis ops (invocations and completions).
    pub nemesis: u64,
}

/// One checker of a run: `{"name", "valid", "summary", "anomalies",
/// "detail", "evidence"}`. `detail` is the checker's own result, for
/// machines: its shape is the checker's (`null` for `linearizable` and
/// `elle`, whose result is the history's entry in `files`, and for a
/// checker that did not run), and the report never reads it. `evidence` is
/// what it found in a shape every checker shares ([`Evidence`]), which the
/// report draws without knowing the checker. A checker this version does
/// not know is read like any other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckerResult {
    /// `linearizable`, `elle`, `logs`, `election`, `nodes`, or a workload's checker (`set`, ...).
    pub name: String,
    pub valid: Valid,
    /// One line: what was found (`not run: <why>` when it had nothing to check).
    pub summary: String,
    pub anomalies: Vec<String>,
    #[serde(default)]
    pub detail: Value,
    /// Absent when it did not run, and for `linearizable` and `elle`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileResult {
    pub path: String,
    pub valid: Valid,
    /// Why the file could not be checked (bad input), with where.
    pub error: Option<String>,
    /// Which checker ran: `linearizable`.
    pub checker: String,
    pub timings_ms: Timings,
    /// Why the file holds less than a whole history (a cut-off last line, a
    /// run's history without its end record): `valid` is then at best
    /// `"unknown"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_early: Option<String>,
    /// Set when `checker` is `linearizable` and the file could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linearizable: Option<Linearizable>,
    /// Set when `checker` is `elle` (transactional histories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elle: Option<Elle>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Timings {
    /// Reading and parsing the file.
    pub read: f64,
    /// Checking it.
    pub check: f64,
    pub total: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Linearizable {
    pub model: String,
    pub options: LinearizableOptions,
    pub counts: Counts,
    /// One per key, in key order (one with `key: null` when not keyed).
    pub keys: Vec<KeyResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearizableOptions {
    /// How values were read: `single` (one object) or `tuple` (`[key, value]`), after `auto`.
    pub keys: String,
    pub initial_value: Value,
    /// `absent` or `any`.
    pub nil_read: String,
    pub time_limit_ms: u64,
    pub memory_limit_mb: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Lines (ops) read from the file, nemesis ops included.
    pub history_ops: usize,
    /// Client operations (invocations).
    pub client_calls: usize,
    /// Client operations that completed `fail`: they did not happen and were left out.
    pub failed: usize,
    /// Client operations that ended `info` or never completed.
    pub unknown_outcome: usize,
    /// The number of a cut-off last line that was not read, if any.
    pub truncated_line: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyResult {
    /// The key, or `null` when the history is one object.
    pub key: Value,
    pub valid: Valid,
    /// Operations the search had to place (without fails and ops that cannot matter).
    pub ops: usize,
    /// Distinct (linearized set, model state) configurations explored.
    pub configurations: u64,
    pub time_ms: f64,
    /// Why the verdict is unknown.
    pub reason: Option<String>,
    /// Why the key is not linearizable.
    pub explanation: Option<Explanation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The operation that cannot be placed in any order.
    pub op: OpRef,
    /// The longest linearizable prefix found: history indices of the
    /// invocations, in the order they were placed.
    pub prefix: Vec<u64>,
    /// The last ops of that prefix, with the model state after each.
    pub prefix_tail: Vec<PrefixStep>,
    /// The states the model could be in just before `op` (at most 8).
    pub states_before: Vec<String>,
    /// Operations concurrent with `op` (at most 12 listed).
    pub concurrent: Vec<OpRef>,
    pub concurrent_total: usize,
    /// All of the above as readable text.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpRef {
    /// History index of the invocation.
    pub index: u64,
    /// History index of the `ok` completion; `null` when the outcome is unknown.
    pub completion_index: Option<u64>,
    pub process: Process,
    /// The model's description, e.g. `read -> 3`.
    pub op: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrefixStep {
    pub op: OpRef,
    pub state_after: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn valid_reads_and_writes_as_true_false_or_unknown() {
        assert_eq!(
            serde_json::to_value([Valid::True, Valid::False, Valid::Unknown]).unwrap(),
            json!([true, false, "unknown"])
        );
        let back: Vec<Valid> = serde_json::from_value(json!([true, false, "unknown"])).unwrap();
        assert_eq!(back, vec![Valid::True, Valid::False, Valid::Unknown]);
        assert!(serde_json::from_value::<Valid>(json!("maybe")).is_err());
    }

    #[test]
    fn a_checker_is_written_name_first_and_read_back_whatever_its_name() {
        let evidence = Evidence::new()
            .fact("reads checked", 3)
            .count("bad-read", 1)
            .table(Table::new("Bad reads", &["read"]).row(vec![Cell::op(7, None)]));
        for (name, detail, evidence) in [
            ("set", json!({"lost": 1}), Some(evidence)),
            ("linearizable", Value::Null, None),
            ("quorum", json!([1, 2]), Some(Evidence::new())),
        ] {
            let c = CheckerResult {
                name: name.into(),
                valid: Valid::Unknown,
                summary: "s".into(),
                anomalies: vec!["a".into()],
                detail,
                evidence,
            };
            let text = serde_json::to_string(&c).unwrap();
            let head = format!(r#"{{"name":"{name}","valid":"unknown","#);
            assert!(text.starts_with(&head), "{text}");
            assert!(text.contains(r#""anomalies":["a"],"detail":"#), "{text}");
            assert_eq!(text.contains("evidence"), c.evidence.is_some(), "{text}");
            let back: CheckerResult = serde_json::from_str(&text).unwrap();
            assert_eq!(back, c);
        }
    }

    #[test]
    fn results_json_that_is_not_the_writers_is_refused_with_where() {
        let ok = Results {
            schema_version: SCHEMA_VERSION,
            tool: "faultline test".into(),
            valid: Valid::True,
            files: vec![],
            run: None,
        };
        let text = serde_json::to_string_pretty(&ok).unwrap();
        assert_eq!(from_json(&text).unwrap(), ok);
        let e = from_json(r#"{"schema_version": 2, "verdict": "valid"}"#).unwrap_err();
        assert!(e.contains("schema_version 2 is not the schema"), "{e}");
        let e = from_json("{\n\"schema_version\": 1,\n\"tool\": 3}").unwrap_err();
        assert!(e.starts_with("3:"), "line:column first: {e}");
        // A checker this version does not know is read (a later checker;
        // its detail is its own), and so is one without evidence; evidence
        // not of the shared shape is refused.
        let run = |checker: &str| {
            format!(
                r#"{{"schema_version": 1, "tool": "t", "valid": true, "files": [], "run": {{
                "test": "t", "db": "raft", "bugs": [], "workload": "register", "nemesis": "none",
                "seed": 1, "hosts": [], "duration_ms": 1.0,
                "ops": {{"invoked": 0, "ok": 0, "fail": 0, "info": 0, "nemesis": 0}},
                "checkers": [{checker}], "anomalies": [], "harness_error": null,
                "problems": [], "replay": "r"}}}}"#
            )
        };
        for good in [
            r#"{"name": "logs", "valid": true, "summary": "", "anomalies": [], "detail": {"scanned": 1, "fatal_lines": 0, "findings": []}}"#,
            r#"{"name": "quorum", "valid": true, "summary": "", "anomalies": [], "detail": {"terms": 1},
                "evidence": {"counts": {"split": 1}, "tables": [{"rows": [[{"chip": "split"}, {"lines": ["a"]}]], "total": 1}]}}"#,
        ] {
            assert!(from_json(&run(good)).is_ok(), "{good}");
        }
        for bad in [
            r#"{"name": "logs", "valid": true, "summary": "", "anomalies": [], "detail": null, "evidence": {"tables": 3}}"#,
            r#"{"name": "logs", "valid": true, "summary": "", "anomalies": [], "detail": null, "evidence": {"tables": [{"rows": [[{"blink": "x"}]]}]}}"#,
            r#"{"valid": true, "summary": "", "anomalies": [], "detail": null}"#,
        ] {
            assert!(from_json(&run(bad)).is_err(), "{bad}");
        }
    }
}

/// The Elle checker's section of a file's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Elle {
    /// `list-append` or `rw-register`.
    pub workload: String,
    /// The model checked against, in Elle's names (`strict-serializable`, ...).
    pub consistency: String,
    /// Whether the process and realtime orders were part of the graph.
    pub process_order: bool,
    pub realtime_order: bool,
    pub counts: ElleCounts,
    /// Every anomaly found, worst first (`G-single`, `G1a`, `lost-update`, ...).
    pub anomaly_types: Vec<String>,
    /// How many cases of each were found (only a few are explained).
    pub anomaly_counts: std::collections::BTreeMap<String, usize>,
    /// The found anomalies that `consistency` prohibits.
    pub violating: Vec<String>,
    /// Cycle shapes whose search hit the time or step limit (why a verdict
    /// can be unknown).
    pub incomplete: Vec<String>,
    /// The weakest models the anomalies rule out, and the stronger ones too.
    pub not: Vec<String>,
    pub also_not: Vec<String>,
    /// Models still possible, and the strongest of them.
    pub possible: Vec<String>,
    pub strongest_possible: Vec<String>,
    /// Models that need an order (process, realtime) that was not built.
    pub unchecked: Vec<String>,
    /// Explained cases, a few per anomaly.
    pub anomalies: Vec<ElleCase>,
    pub graph: ElleGraph,
    pub phases_ms: EllePhases,
    /// The whole result as readable text.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ElleCounts {
    pub history_ops: usize,
    pub txns: usize,
    pub ok: usize,
    pub info: usize,
    pub fail: usize,
    pub truncated_line: Option<usize>,
}

/// One explained anomaly: the transactions involved and, for a cycle, each
/// edge in words and a Graphviz DOT graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElleCase {
    pub anomaly: String,
    pub key: Option<String>,
    pub txns: Vec<TxnRef>,
    pub steps: Vec<CycleStep>,
    pub dot: Option<String>,
    pub text: String,
}

/// A transaction, named `T<index>` after its completion op's index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnRef {
    pub index: u64,
    pub invoke_index: u64,
    pub process: u64,
    /// `ok`, `info` or `fail`.
    pub outcome: String,
    /// The micro-ops as the history wrote them.
    pub ops: String,
}

/// One edge of a cycle: `from` and `to` are transaction indices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CycleStep {
    pub from: u64,
    pub to: u64,
    /// `ww`, `wr`, `rw`, `process` or `realtime`.
    pub relation: String,
    pub key: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ElleGraph {
    pub txn_nodes: usize,
    /// Virtual nodes that carry the realtime order.
    pub barrier_nodes: usize,
    pub edges: usize,
    /// Strongly connected components with more than one node.
    pub sccs: usize,
    pub largest_scc: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct EllePhases {
    pub infer: f64,
    pub graph: f64,
    pub scc: f64,
    pub cycles: f64,
    /// Read atomicity and causal consistency (0 when sessions were not checked).
    #[serde(default)]
    pub weak: f64,
}
