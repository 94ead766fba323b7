//! What results.json says, in the shape the report draws: the verdict, one
//! entry per check, and the anomalies each found (linearizability
//! explanations, Elle cases with their cycles, or another checker's result
//! shown as it is).
//!
//! This is the only place that knows results.json's layout. It reads
//! leniently: a field it does not know is shown raw, a field it misses is
//! left empty, and nothing here ever decides or changes the verdict — that
//! is `valid` in results.json, taken as written.

pub use super::results::{Explanation, OpRef, PrefixStep};
use crate::checker::Verdict;
use serde::Deserialize;
use serde_json::Value;

/// The verdict as results.json spells it: `true`, `false` or `"unknown"`
/// (also `"valid"`/`"invalid"`).
pub fn verdict_of(v: &Value) -> Option<Verdict> {
    match v {
        Value::Bool(true) => Some(Verdict::Valid),
        Value::Bool(false) => Some(Verdict::Invalid),
        Value::String(s) => match s.as_str() {
            "unknown" => Some(Verdict::Unknown),
            "valid" | "true" => Some(Verdict::Valid),
            "invalid" | "false" => Some(Verdict::Invalid),
            _ => None,
        },
        _ => None,
    }
}

#[derive(Debug, Clone, Default)]
pub struct Findings {
    /// `None` when results.json has no readable `valid`.
    pub verdict: Option<Verdict>,
    pub schema_version: Option<u64>,
    pub tool: Option<String>,
    pub checks: Vec<Check>,
}

/// One checker's result over one history.
#[derive(Debug, Clone, Default)]
pub struct Check {
    /// Which checker: `linearizable`, `elle`, `bank`, ...
    pub checker: String,
    /// What it checked (a file path), when results.json says.
    pub subject: Option<String>,
    pub verdict: Option<Verdict>,
    /// Why it could not check.
    pub error: Option<String>,
    /// A few facts worth a line: model, counts.
    pub facts: Vec<(String, String)>,
    /// Why parts of it are unknown (time limit, memory).
    pub unknown_reasons: Vec<String>,
    pub lin: Vec<LinAnomaly>,
    pub elle: Option<Elle>,
    /// A result this module does not know how to draw, shown as it is.
    pub raw: Option<Value>,
}

impl Check {
    /// Names of the anomalies found, with how many of each.
    pub fn anomalies(&self) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        if !self.lin.is_empty() {
            out.push(("nonlinearizable".to_string(), self.lin.len()));
        }
        if let Some(elle) = &self.elle {
            out.extend(elle.counts.iter().cloned());
        }
        if out.is_empty() && self.verdict == Some(Verdict::Invalid) {
            out.push((format!("{} failed", self.checker), 1));
        }
        out
    }
}

/// Why one key (or the whole object) is not linearizable: the checker's
/// explanation as results.json's schema ([`super::results`]) has it.
#[derive(Debug, Clone, PartialEq)]
pub struct LinAnomaly {
    pub key: Option<String>,
    pub explanation: Explanation,
}

/// A transaction named in an Elle case.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Witness {
    /// The completion's op index (the invocation's if none): `T<index>`.
    pub index: u64,
    pub invoke_index: Option<u64>,
    pub process: Value,
    pub outcome: String,
    /// The micro-ops as text.
    pub ops: Value,
}

/// One edge of a cycle.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Step {
    pub from: u64,
    pub to: u64,
    /// `ww`, `wr`, `rw`, `process`, `realtime`.
    pub relation: String,
    pub key: Option<Value>,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ElleCase {
    pub anomaly: String,
    #[serde(alias = "txns")]
    pub witnesses: Vec<Witness>,
    pub key: Option<Value>,
    pub text: String,
    pub steps: Vec<Step>,
    pub dot: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Elle {
    pub cases: Vec<ElleCase>,
    /// Every anomaly found, with how many (more than the cases shown).
    pub counts: Vec<(String, usize)>,
    /// Lines about consistency models (violated, still possible).
    pub models: Vec<(String, String)>,
}

/// Reads results.json leniently.
pub fn findings(results: &Value) -> Findings {
    Findings {
        verdict: results
            .get("valid")
            .or_else(|| results.get("verdict"))
            .and_then(verdict_of),
        schema_version: results.get("schema_version").and_then(Value::as_u64),
        tool: results
            .get("tool")
            .and_then(Value::as_str)
            .map(str::to_string),
        checks: entries(results).into_iter().map(check).collect(),
    }
}

/// The per-check entries: `files` (faultline check), `checks`/`checkers`
/// (an array, or a map from checker name to result).
fn entries(results: &Value) -> Vec<(Option<String>, &Value)> {
    for field in ["files", "checks", "checkers"] {
        match results.get(field) {
            Some(Value::Array(a)) => return a.iter().map(|v| (None, v)).collect(),
            Some(Value::Object(m)) => return m.iter().map(|(k, v)| (Some(k.clone()), v)).collect(),
            _ => {}
        }
    }
    Vec::new()
}

/// Fields every entry may have, not worth showing raw.
const COMMON: [&str; 9] = [
    "path",
    "valid",
    "verdict",
    "error",
    "checker",
    "name",
    "timings_ms",
    "linearizable",
    "elle",
];

fn check((name, v): (Option<String>, &Value)) -> Check {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let checker = text("checker")
        .or_else(|| text("name"))
        .or(name)
        .unwrap_or_else(|| "checker".into());
    let mut c = Check {
        subject: text("path"),
        verdict: v
            .get("valid")
            .or_else(|| v.get("verdict"))
            .and_then(verdict_of),
        error: text("error"),
        ..Check::default()
    };
    if let Some(lin) = v.get("linearizable").filter(|l| l.is_object()) {
        read_linearizable(lin, &mut c);
    }
    if let Some(elle) = v.get("elle").filter(|e| e.is_object()) {
        c.elle = Some(read_elle(elle, &mut c.facts));
    } else if checker == "elle" && v.get("cases").is_some() {
        c.elle = Some(read_elle(v, &mut c.facts));
    }
    let known = c.elle.is_some() || v.get("linearizable").is_some();
    if !known && let Value::Object(m) = v {
        let rest: serde_json::Map<String, Value> = m
            .iter()
            .filter(|(k, _)| !COMMON.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !rest.is_empty() {
            c.raw = Some(Value::Object(rest));
        }
    }
    c.checker = checker;
    c
}

fn read_linearizable(lin: &Value, c: &mut Check) {
    if let Some(model) = lin.get("model").and_then(Value::as_str) {
        c.facts.push(("model".into(), model.into()));
    }
    if let Some(counts) = lin.get("counts").and_then(Value::as_object) {
        for (k, v) in counts.iter().filter(|(_, v)| !v.is_null()) {
            c.facts.push((k.replace('_', " "), scalar(v)));
        }
    }
    let keys = lin
        .get("keys")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for k in keys {
        let key = k.get("key").filter(|k| !k.is_null()).map(scalar);
        if let Some(reason) = k.get("reason").and_then(Value::as_str) {
            let at = key
                .as_ref()
                .map(|k| format!("key {k}: "))
                .unwrap_or_default();
            c.unknown_reasons.push(format!("{at}{reason}"));
        }
        if let Some(e) = k.get("explanation").filter(|e| e.is_object()) {
            match Explanation::deserialize(e) {
                Ok(explanation) => c.lin.push(LinAnomaly { key, explanation }),
                Err(err) => c.unknown_reasons.push(format!(
                    "an explanation in results.json could not be read: {err}"
                )),
            }
        }
    }
    if keys.len() > 1 {
        c.facts.push(("keys".into(), keys.len().to_string()));
    }
}

fn read_elle(e: &Value, facts: &mut Vec<(String, String)>) -> Elle {
    for k in ["workload", "model", "consistency"] {
        if let Some(v) = e.get(k).filter(|v| !v.is_null()) {
            facts.push((k.into(), scalar(v)));
        }
    }
    let cases: Vec<ElleCase> = e
        .get("cases")
        .or_else(|| e.get("anomalies"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| ElleCase::deserialize(c).ok())
                .collect()
        })
        .unwrap_or_default();
    // `anomaly_counts` by anomaly; `counts` holds either those or the
    // transaction counts (`txns`, `ok`, `info`, `fail`).
    let mut counts: Vec<(String, usize)> = Vec::new();
    match (e.get("anomaly_counts"), e.get("counts")) {
        (Some(Value::Object(m)), _) => {
            counts = m
                .iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(1) as usize))
                .collect();
        }
        (_, Some(Value::Object(m))) if !m.contains_key("txns") => {
            counts = m
                .iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(1) as usize))
                .collect();
        }
        _ => {}
    }
    if let Some(Value::Object(m)) = e.get("counts").filter(|c| c.get("txns").is_some()) {
        for k in ["txns", "ok", "info", "fail"] {
            if let Some(v) = m.get(k) {
                facts.push((k.into(), scalar(v)));
            }
        }
    }
    if counts.is_empty() {
        for c in &cases {
            match counts.iter_mut().find(|(a, _)| *a == c.anomaly) {
                Some((_, n)) => *n += 1,
                None => counts.push((c.anomaly.clone(), 1)),
            }
        }
    }
    let mut models = Vec::new();
    for (k, label) in [
        ("violating", "violates"),
        ("not", "not"),
        ("also_not", "also not"),
        ("strongest_possible", "still possible"),
        ("incomplete", "search cut short for"),
    ] {
        let v = e
            .get(k)
            .or_else(|| e.get("boundary").and_then(|b| b.get(k)));
        if let Some(Value::Array(a)) = v
            && !a.is_empty()
        {
            let names: Vec<String> = a.iter().map(scalar).collect();
            models.push((label.to_string(), names.join(", ")));
        }
    }
    Elle {
        cases,
        counts,
        models,
    }
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

    #[test]
    fn reads_a_linearizability_result_and_keeps_the_verdict_as_written() {
        let r = json!({
            "schema_version": 1, "tool": "faultline 0.1.0", "valid": false,
            "files": [{"path": "h.jsonl", "valid": false, "error": null, "checker": "linearizable",
                "timings_ms": {"read": 1.0, "check": 1.0, "total": 2.0},
                "linearizable": {"model": "cas-register",
                    "counts": {"history_ops": 10, "client_calls": 5, "truncated_line": null},
                    "keys": [
                        {"key": 3, "valid": false, "explanation": {
                            "op": {"index": 7, "completion_index": 9, "process": 2, "op": "read -> 3"},
                            "prefix": [0, 2], "prefix_tail": [{"op": {"index": 2, "completion_index": 4, "process": 1, "op": "write 1"}, "state_after": "1"}],
                            "states_before": ["1"], "concurrent": [], "concurrent_total": 0, "text": "cannot place"}},
                        {"key": 4, "valid": "unknown", "reason": "time limit 60 s reached", "explanation": null}
                    ]}}]
        });
        let f = findings(&r);
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
        assert_eq!(c.anomalies(), vec![("nonlinearizable".to_string(), 1)]);
        assert!(c.raw.is_none());
    }

    #[test]
    fn reads_elle_cases_and_shows_unknown_checkers_raw() {
        let r = json!({"valid": "unknown", "checks": [
            {"checker": "elle", "valid": false, "elle": {"model": "serializable",
                "counts": {"G-single": 3},
                "violating": ["G-single"],
                "cases": [{"anomaly": "G-single", "witnesses": [{"index": 5, "process": 1, "outcome": "ok", "ops": "[]"}],
                           "text": "T5 ...", "steps": [{"from": 5, "to": 8, "relation": "rw", "key": "x", "text": "because"}],
                           "dot": "digraph {}"}]}},
            {"checker": "bank", "valid": true, "reads_checked": 12, "bad_reads": []}
        ]});
        let f = findings(&r);
        assert_eq!(f.verdict, Some(Verdict::Unknown));
        let elle = f.checks[0].elle.as_ref().unwrap();
        assert_eq!(elle.cases[0].steps[0].relation, "rw");
        assert_eq!(f.checks[0].anomalies(), vec![("G-single".to_string(), 3)]);
        assert_eq!(
            elle.models,
            vec![("violates".to_string(), "G-single".to_string())]
        );
        assert_eq!(f.checks[1].checker, "bank");
        assert_eq!(f.checks[1].raw.as_ref().unwrap()["reads_checked"], 12);
        assert!(f.checks[1].anomalies().is_empty());
    }
}
