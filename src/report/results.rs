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
//!   }]
//! }
//! ```

use crate::checker::Verdict;
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
/// "detail"}`, where `name` says which checker and so the shape of `detail`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "CheckerWire")]
pub struct CheckerResult {
    pub valid: Valid,
    /// One line: what was found (`not run: <why>` when it had nothing to check).
    pub summary: String,
    pub anomalies: Vec<String>,
    /// Which checker, with its own result.
    pub detail: CheckerDetail,
}

impl CheckerResult {
    /// `linearizable`, `elle`, `bank`, `set`, `logs`, `election`, `nodes`.
    pub fn name(&self) -> &'static str {
        self.detail.name()
    }
}

/// A checker's name and its `detail`, typed by the name. A checker that did
/// not run writes `null`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "name", content = "detail", rename_all = "lowercase")]
pub enum CheckerDetail {
    /// Its result is the history's entry in `files`; `detail` is `null`.
    Linearizable,
    /// Its result is the history's entry in `files`; `detail` is `null`.
    Elle,
    Bank(Option<BankDetail>),
    Set(Option<SetDetail>),
    Counter(Option<crate::checker::counter::CounterResult>),
    Logs(Option<LogsDetail>),
    Election(ElectionDetail),
    Nodes(NodesDetail),
}

impl CheckerDetail {
    /// The checker's name, as `name` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            CheckerDetail::Linearizable => "linearizable",
            CheckerDetail::Elle => "elle",
            CheckerDetail::Bank(_) => "bank",
            CheckerDetail::Set(_) => "set",
            CheckerDetail::Counter(_) => "counter",
            CheckerDetail::Logs(_) => "logs",
            CheckerDetail::Election(_) => "election",
            CheckerDetail::Nodes(_) => "nodes",
        }
    }
}

/// How a [`CheckerResult`] is read: `name` and `detail` through the tagged
/// enum, wherever they stand in the object.
#[derive(Deserialize)]
struct CheckerWire {
    #[serde(flatten)]
    detail: CheckerDetail,
    valid: Valid,
    summary: String,
    anomalies: Vec<String>,
}

impl From<CheckerWire> for CheckerResult {
    fn from(w: CheckerWire) -> CheckerResult {
        CheckerResult {
            valid: w.valid,
            summary: w.summary,
            anomalies: w.anomalies,
            detail: w.detail,
        }
    }
}

/// Written by hand for the order of the fields: name first, detail last.
impl Serialize for CheckerResult {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut m = s.serialize_struct("CheckerResult", 5)?;
        m.serialize_field("name", self.name())?;
        m.serialize_field("valid", &self.valid)?;
        m.serialize_field("summary", &self.summary)?;
        m.serialize_field("anomalies", &self.anomalies)?;
        match &self.detail {
            CheckerDetail::Linearizable | CheckerDetail::Elle => {
                m.serialize_field("detail", &())?
            }
            CheckerDetail::Bank(d) => m.serialize_field("detail", d)?,
            CheckerDetail::Set(d) => m.serialize_field("detail", d)?,
            CheckerDetail::Counter(d) => m.serialize_field("detail", d)?,
            CheckerDetail::Logs(d) => m.serialize_field("detail", d)?,
            CheckerDetail::Election(d) => m.serialize_field("detail", d)?,
            CheckerDetail::Nodes(d) => m.serialize_field("detail", d)?,
        }
        m.end()
    }
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
    fn a_checker_is_written_name_first_and_read_back_by_its_name() {
        let line = LogLine {
            node: "n1".into(),
            line: 2,
            text: "became leader term=3".into(),
        };
        let details = [
            CheckerDetail::Linearizable,
            CheckerDetail::Elle,
            CheckerDetail::Bank(None),
            CheckerDetail::Set(None),
            CheckerDetail::Counter(None),
            CheckerDetail::Logs(Some(LogsDetail {
                scanned: 3,
                fatal_lines: 0,
                findings: vec![],
            })),
            CheckerDetail::Election(ElectionDetail {
                terms: 1,
                split: vec![SplitTerm {
                    term: 3,
                    leaders: vec![line.clone(), line],
                }],
            }),
            CheckerDetail::Nodes(NodesDetail {
                exits: vec![],
                allowed: true,
            }),
        ];
        for detail in details {
            let c = CheckerResult {
                valid: Valid::Unknown,
                summary: "s".into(),
                anomalies: vec!["a".into()],
                detail,
            };
            let text = serde_json::to_string(&c).unwrap();
            let head = format!(r#"{{"name":"{}","valid":"unknown","#, c.name());
            assert!(text.starts_with(&head), "{text}");
            assert!(text.contains(r#""anomalies":["a"],"detail":"#), "{text}");
            let back: CheckerResult = serde_json::from_str(&text).unwrap();
            assert_eq!(back, c);
        }
        // Linearizable and Elle have their result in `files`: detail null.
        let lin = serde_json::to_value(CheckerResult {
            valid: Valid::True,
            summary: String::new(),
            anomalies: vec![],
            detail: CheckerDetail::Linearizable,
        })
        .unwrap();
        assert_eq!(lin["detail"], Value::Null);
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
        // A checker this version does not know, and a detail not of its
        // checker's shape.
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
        let logs = r#"{"name": "logs", "valid": true, "summary": "", "anomalies": [], "detail": {"scanned": 1, "fatal_lines": 0, "findings": []}}"#;
        assert!(from_json(&run(logs)).is_ok());
        for bad in [
            r#"{"name": "quorum", "valid": true, "summary": "", "anomalies": [], "detail": null}"#,
            r#"{"name": "logs", "valid": true, "summary": "", "anomalies": [], "detail": {"terms": 1}}"#,
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
}

// The `detail` of the run's checkers. The runner converts each checker's
// own result into these.

/// `detail` of the `bank` checker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BankDetail {
    /// The checker's verdict, in words (`valid`, `invalid`).
    pub verdict: Verdict,
    pub reads_checked: usize,
    pub bad_reads: Vec<BankBadRead>,
}

/// A read whose balances break the bank's invariant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BankBadRead {
    /// `wrong-total`, `negative-balance`, `unexpected-accounts`, `malformed`.
    pub kind: String,
    /// History index of the read's completion.
    pub index: u64,
    pub time_ns: u64,
    pub process: String,
    /// `{account: balance}` as read.
    pub balances: Value,
    pub total: Option<i64>,
    pub expected_total: i64,
    /// Faults in place when the read completed.
    pub faults: Vec<String>,
}

/// `detail` of the `set` checker: counts, and examples of each finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetDetail {
    /// The checker's verdict, in words (`valid`, `invalid`).
    pub verdict: Verdict,
    pub attempted: usize,
    pub acknowledged: usize,
    pub stable: usize,
    pub stale: usize,
    pub lost: usize,
    pub never_read: usize,
    pub unexpected: usize,
    /// Adds that ended `info` and that no read ever showed.
    pub indeterminate: usize,
    pub lost_examples: Vec<SetLost>,
    /// The stale and unexpected elements of the details below.
    pub stale_examples: Vec<Value>,
    pub unexpected_examples: Vec<Value>,
    pub stale_details: Vec<SetStale>,
    pub unexpected_details: Vec<SetUnexpected>,
    /// Why the history could not be checked as a set.
    pub error: Option<String>,
}

/// An acknowledged element the final read misses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetLost {
    pub element: Value,
    pub add_index: u64,
    pub last_read_index: u64,
    pub add_time_ns: u64,
    pub last_read_time_ns: u64,
}

/// An element some read missed after it was known (the last read has it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetStale {
    pub element: Value,
    pub add_index: u64,
    pub add_time_ns: u64,
    pub missed_read_index: u64,
    pub missed_read_time_ns: u64,
}

/// An element read that no one added (or whose add failed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetUnexpected {
    pub element: Value,
    pub read_index: u64,
    pub read_time_ns: u64,
}

/// `detail` of the `logs` checker: panics and fatal errors in node logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogsDetail {
    /// Node logs read.
    pub scanned: usize,
    /// Fatal lines found (all of them; `findings` keeps the first few).
    pub fatal_lines: usize,
    pub findings: Vec<LogLine>,
}

/// A line of a node's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub node: String,
    /// 1-based line number in `nodes/<node>/node.log`.
    pub line: usize,
    pub text: String,
}

/// `detail` of the `election` checker: Raft's election safety.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElectionDetail {
    /// Terms in which some node logged winning an election.
    pub terms: usize,
    /// Terms won by more than one node, each with its leaders' log lines.
    pub split: Vec<SplitTerm>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitTerm {
    pub term: u64,
    pub leaders: Vec<LogLine>,
}

/// `detail` of the `nodes` checker: node processes that exited on their own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodesDetail {
    pub exits: Vec<NodeExit>,
    /// Whether the test allows nodes to exit (then they do not make the run unknown).
    pub allowed: bool,
}

/// A node process that exited when the nemesis had not killed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeExit {
    pub node: String,
    /// When the exit was first seen, in ns since the run started.
    pub seen_ns: u64,
    /// The last lines of its log then.
    pub log_tail: Vec<String>,
}
