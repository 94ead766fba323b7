//! What results.json says, in the shape the report draws: the verdict, one
//! entry per check (every checker of a run, with the file-level
//! linearizability or Elle result joined to its checker), and the evidence
//! each found: linearizability explanations, Elle cases with their cycles,
//! the bank's bad reads, the set's lost, stale and unexpected elements, the
//! fatal lines of node logs, the terms with two leaders; a checker this
//! module does not know shows its verdict, summary, anomalies and detail.
//!
//! This is the only place that knows results.json's layout. It reads it
//! through the schema's own types (`report::results`, what the writer
//! uses); a file that does not follow them (older, hand-made, another
//! tool's) is read leniently: a field it does not know is shown raw, a
//! field it misses is left empty. Nothing here ever decides or changes the
//! verdict — that is `valid` in results.json, taken as written.

use super::results::{
    self, BankDetail, CheckerResult, ElectionDetail, FileResult, LogsDetail, Results, SetDetail,
    Valid,
};
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

fn verdict(v: Valid) -> Verdict {
    match v {
        Valid::True => Verdict::Valid,
        Valid::False => Verdict::Invalid,
        Valid::Unknown => Verdict::Unknown,
    }
}

#[derive(Debug, Clone, Default)]
pub struct Findings {
    /// `None` when results.json has no readable `valid`.
    pub verdict: Option<Verdict>,
    pub schema_version: Option<u64>,
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
    /// Why results.json was read leniently, when it was.
    pub notes: Vec<String>,
}

/// What a checker found beyond its verdict and summary, when its detail
/// has a shape this module knows.
#[derive(Debug, Clone, Default)]
pub enum Evidence {
    #[default]
    None,
    Bank(BankDetail),
    Set(SetDetail),
    Logs(LogsDetail),
    Election(ElectionDetail),
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
    pub evidence: Evidence,
    /// A result this module does not know how to draw, shown as it is.
    pub raw: Option<Value>,
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

    /// How many cases of anomaly `name` the evidence shows.
    fn count_of(&self, name: &str) -> Option<usize> {
        let n = match (&self.evidence, name) {
            (Evidence::Bank(b), kind) => b.bad_reads.iter().filter(|r| r.kind == kind).count(),
            (Evidence::Set(s), "lost") => s.lost,
            (Evidence::Set(s), "unexpected") => s.unexpected,
            (Evidence::Set(s), "stale") => s.stale,
            (Evidence::Logs(l), "node-panic") => l.fatal_lines,
            (Evidence::Election(e), "two-leaders") => e.split.len(),
            (_, "not-linearizable") if !self.lin.is_empty() => self.lin.len(),
            _ => return None,
        };
        (n > 0).then_some(n)
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

/// Reads results.json: through the schema's types when it follows them,
/// else leniently.
pub fn findings(results: &Value) -> Findings {
    match Results::deserialize(results) {
        Ok(typed) => typed_findings(typed),
        Err(e) => {
            let mut f = lenient(results);
            if f.schema_version == Some(u64::from(results::SCHEMA_VERSION)) {
                f.notes.push(format!(
                    "results.json says schema {} but does not follow it ({e}); it was read as far as it could be",
                    results::SCHEMA_VERSION
                ));
            }
            f
        }
    }
}

/// A results.json that follows the schema.
fn typed_findings(r: Results) -> Findings {
    let mut files: Vec<Check> = r.files.into_iter().map(file_check).collect();
    let mut f = Findings {
        verdict: Some(verdict(r.valid)),
        schema_version: Some(u64::from(r.schema_version)),
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
    }
    // File results no checker of the run claims (or `faultline check`'s).
    f.checks.extend(files);
    f
}

/// A run's checker: verdict, summary, anomalies, and its detail typed by name.
fn checker_check(c: CheckerResult) -> Check {
    let v = verdict(c.valid);
    let mut check = Check {
        verdict: Some(v),
        not_run: not_run(v, &c.summary),
        summary: Some(c.summary),
        anomaly_names: c.anomalies,
        ..Check::default()
    };
    read_detail(&c.name, c.detail, &mut check);
    check.checker = c.name;
    check
}

/// `not run: <why>` with verdict unknown: the checker did not run.
fn not_run(v: Verdict, summary: &str) -> Option<String> {
    let why = summary.strip_prefix("not run:")?;
    (v == Verdict::Unknown).then(|| why.trim().to_string())
}

/// The checker's detail: typed when its shape is known, else shown raw.
fn read_detail(name: &str, detail: Value, c: &mut Check) {
    if detail.is_null() {
        return;
    }
    fn typed<T: for<'de> Deserialize<'de>>(v: &Value) -> Option<T> {
        T::deserialize(v).ok()
    }
    let evidence = match name {
        "bank" => typed(&detail).map(Evidence::Bank),
        "set" => typed(&detail).map(Evidence::Set),
        "logs" => typed(&detail).map(Evidence::Logs),
        "election" => typed(&detail).map(Evidence::Election),
        _ => None,
    };
    match evidence {
        Some(e) => c.evidence = e,
        None => c.raw = Some(detail),
    }
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
        verdict: Some(verdict(f.valid)),
        error: f.error,
        ..Check::default()
    };
    if let Some(lin) = &f.linearizable {
        typed_linearizable(lin, &mut c);
    }
    if let Some(e) = &f.elle {
        c.elle = Some(typed_elle(e, &mut c.facts));
    }
    c.summary = made_summary(&c);
    c
}

fn typed_linearizable(lin: &results::Linearizable, c: &mut Check) {
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

fn typed_elle(e: &results::Elle, facts: &mut Vec<(String, String)>) -> Elle {
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
    let cases = e
        .anomalies
        .iter()
        .map(|c| ElleCase {
            anomaly: c.anomaly.clone(),
            witnesses: c
                .txns
                .iter()
                .map(|t| Witness {
                    index: t.index,
                    invoke_index: Some(t.invoke_index),
                    process: Value::from(t.process),
                    outcome: t.outcome.clone(),
                    ops: Value::String(t.ops.clone()),
                })
                .collect(),
            key: c.key.clone().map(Value::String),
            text: c.text.clone(),
            steps: c
                .steps
                .iter()
                .map(|s| Step {
                    from: s.from,
                    to: s.to,
                    relation: s.relation.clone(),
                    key: s.key.clone().map(Value::String),
                    text: s.text.clone(),
                })
                .collect(),
            dot: c.dot.clone(),
        })
        .collect();
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
            .find(|(k, _)| k == "consistency" || k == "model")
            .map(|(_, m)| format!("not {m}: "))
            .unwrap_or_default();
        return Some(format!("{model}{}", found.join(", ")));
    }
    if !c.unknown_reasons.is_empty() {
        return Some(c.unknown_reasons.join("; "));
    }
    None
}

/// A results.json that does not follow the schema, read field by field.
fn lenient(results: &Value) -> Findings {
    let run = results.get("run").filter(|r| r.is_object());
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let mut f = Findings {
        verdict: results
            .get("valid")
            .or_else(|| results.get("verdict"))
            .and_then(verdict_of),
        schema_version: results.get("schema_version").and_then(Value::as_u64),
        tool: text(results.get("tool")),
        harness_error: text(run.and_then(|r| r.get("harness_error"))),
        problems: run
            .and_then(|r| r.get("problems"))
            .and_then(Value::as_array)
            .map(|a| a.iter().map(scalar).collect())
            .unwrap_or_default(),
        incomplete: run
            .and_then(|r| r.get("incomplete"))
            .and_then(Value::as_array)
            .map(|a| a.iter().map(scalar).collect())
            .unwrap_or_default(),
        availability: run
            .and_then(|r| r.get("availability"))
            .and_then(|a| super::results::Availability::deserialize(a).ok()),
        ..Findings::default()
    };
    let mut files: Vec<Check> = entries(results).into_iter().map(check).collect();
    if let Some(Value::Array(checkers)) = run.and_then(|r| r.get("checkers")) {
        for c in checkers {
            let mut check = match CheckerResult::deserialize(c) {
                Ok(typed) => checker_check(typed),
                Err(_) => check((None, c)),
            };
            if let Some(i) = files.iter().position(|f| f.checker == check.checker) {
                join_file(&mut check, files.remove(i));
            }
            f.checks.push(check);
        }
    }
    f.checks.extend(files);
    f
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
const COMMON: [&str; 12] = [
    "path",
    "valid",
    "verdict",
    "error",
    "checker",
    "name",
    "timings_ms",
    "linearizable",
    "elle",
    "summary",
    "anomalies",
    "detail",
];

fn check((name, v): (Option<String>, &Value)) -> Check {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let checker = text("checker")
        .or_else(|| text("name"))
        .or(name)
        .unwrap_or_else(|| "checker".into());
    let verdict = v
        .get("valid")
        .or_else(|| v.get("verdict"))
        .and_then(verdict_of);
    let mut c = Check {
        subject: text("path"),
        verdict,
        not_run: text("summary").and_then(|s| not_run(verdict?, &s)),
        summary: text("summary"),
        anomaly_names: v
            .get("anomalies")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
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
    if let Some(detail) = v.get("detail") {
        read_detail(&checker, detail.clone(), &mut c);
    }
    let known = c.elle.is_some() || v.get("linearizable").is_some();
    if !known
        && c.raw.is_none()
        && let Value::Object(m) = v
    {
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
    if c.summary.is_none() {
        c.summary = made_summary(&c);
    }
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
        assert_eq!(
            c.anomalies(),
            vec![("not-linearizable".to_string(), Some(1))]
        );
        assert_eq!(
            c.reason().as_deref(),
            Some("not linearizable: key 3 (read -> 3 cannot be placed, op 7)")
        );
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
        assert_eq!(
            f.checks[0].anomalies(),
            vec![("G-single".to_string(), Some(3))]
        );
        assert_eq!(
            elle.models,
            vec![("violates".to_string(), "G-single".to_string())]
        );
        assert_eq!(f.checks[1].checker, "bank");
        assert_eq!(f.checks[1].raw.as_ref().unwrap()["reads_checked"], 12);
        assert!(f.checks[1].anomalies().is_empty());
    }

    /// A run's results.json as the runner writes it: the checkers, and the
    /// history's file-level result.
    fn run_results(checkers: Value) -> Value {
        json!({
            "schema_version": 1, "tool": "faultline 0.1.0", "valid": false,
            "files": [{"path": "results/t/1/history.jsonl", "valid": false, "error": null,
                "checker": "linearizable", "timings_ms": {"read": 0.0, "check": 1.0, "total": 1.0},
                "linearizable": {"model": "cas-register",
                    "options": {"keys": "tuple", "initial_value": null, "nil_read": "absent",
                                "time_limit_ms": 1000, "memory_limit_mb": 64},
                    "counts": {"history_ops": 6, "client_calls": 3, "failed": 0,
                               "unknown_outcome": 0, "truncated_line": null},
                    "keys": [{"key": 0, "valid": false, "ops": 3, "configurations": 4, "time_ms": 0.1,
                        "reason": null, "explanation": {
                            "op": {"index": 4, "completion_index": 5, "process": 1, "op": "read -> 1"},
                            "prefix": [0, 2], "prefix_tail": [], "states_before": ["2"],
                            "concurrent": [], "concurrent_total": 0, "text": "cannot place read -> 1"}}]}}],
            "run": {"test": "t", "db": "raft", "bugs": [], "workload": "register", "nemesis": "none",
                "seed": 1, "hosts": [], "duration_ms": 1.0,
                "ops": {"invoked": 3, "ok": 3, "fail": 0, "info": 0, "nemesis": 0},
                "checkers": checkers, "anomalies": [], "harness_error": null,
                "problems": ["heal: n2 unreachable"], "replay": "faultline run --replay t"}
        })
    }

    #[test]
    fn a_runs_checkers_are_all_read_with_their_evidence_and_the_file_result_joined() {
        let line =
            |node: &str, line: usize, text: &str| json!({"node": node, "line": line, "text": text});
        let r = run_results(json!([
            {"name": "linearizable", "valid": false, "summary": "not linearizable: key 0 (read -> 1 cannot be placed)",
             "anomalies": ["not-linearizable"], "detail": null},
            {"name": "bank", "valid": false, "summary": "1 of 2 reads wrong", "anomalies": ["wrong-total"],
             "detail": {"verdict": "invalid", "reads_checked": 2, "bad_reads": [{"kind": "wrong-total", "index": 9,
                 "time_ns": 5, "process": "0", "balances": {"0": 3}, "total": 3, "expected_total": 50,
                 "faults": ["partition"]}]}},
            {"name": "logs", "valid": false, "summary": "1 fatal lines", "anomalies": ["node-panic"],
             "detail": {"scanned": 3, "fatal_lines": 1, "findings": [line("n2", 4, "panicked at x")]}},
            {"name": "election", "valid": false, "summary": "1 term had two leaders", "anomalies": ["two-leaders"],
             "detail": {"terms": 4, "split": [{"term": 3, "leaders": [line("n1", 2, "became leader term=3"), line("n2", 7, "became leader term=3")]}]}},
            {"name": "set", "valid": "unknown", "summary": "not run: the workload has no set ops", "anomalies": [], "detail": null},
            {"name": "quorum", "valid": false, "summary": "a later checker found something", "anomalies": ["split-brain"],
             "detail": {"whatever": [1, 2]}}
        ]));
        let f = findings(&r);
        assert!(f.notes.is_empty(), "read through the schema: {:?}", f.notes);
        assert_eq!(f.problems, vec!["heal: n2 unreachable"]);
        let names: Vec<&str> = f.checks.iter().map(|c| c.checker.as_str()).collect();
        assert_eq!(
            names,
            ["linearizable", "bank", "logs", "election", "set", "quorum"],
            "every checker once; the file result joined to its checker"
        );
        let lin = &f.checks[0];
        assert_eq!(lin.lin.len(), 1);
        assert_eq!(lin.subject.as_deref(), Some("results/t/1/history.jsonl"));
        assert_eq!(
            lin.reason().as_deref(),
            Some("not linearizable: key 0 (read -> 1 cannot be placed)")
        );
        assert_eq!(
            lin.anomalies(),
            vec![("not-linearizable".to_string(), Some(1))]
        );
        let Evidence::Bank(bank) = &f.checks[1].evidence else {
            panic!("bank evidence: {:?}", f.checks[1].evidence)
        };
        assert_eq!(bank.bad_reads[0].faults, vec!["partition"]);
        assert_eq!(
            f.checks[1].anomalies(),
            vec![("wrong-total".to_string(), Some(1))]
        );
        assert!(matches!(&f.checks[2].evidence, Evidence::Logs(l) if l.findings[0].node == "n2"));
        assert!(
            matches!(&f.checks[3].evidence, Evidence::Election(e) if e.split[0].leaders.len() == 2)
        );
        let set = &f.checks[4];
        assert_eq!(set.status(), Status::NotRun, "never shown as valid");
        assert_eq!(set.reason().as_deref(), Some("the workload has no set ops"));
        let later = &f.checks[5];
        assert_eq!(later.status(), Status::Invalid);
        assert_eq!(
            later.reason().as_deref(),
            Some("a later checker found something")
        );
        assert_eq!(later.anomalies(), vec![("split-brain".to_string(), None)]);
        assert_eq!(later.raw, Some(json!({"whatever": [1, 2]})));
    }

    #[test]
    fn a_run_that_breaks_the_schema_is_still_read_and_says_so() {
        let mut r = run_results(json!([
            {"name": "bank", "valid": false, "summary": "1 of 2 reads wrong", "anomalies": ["wrong-total"],
             "detail": {"reads_checked": 2, "bad_reads": []}}
        ]));
        r["files"][0]["timings_ms"] = json!("soon");
        let f = findings(&r);
        assert_eq!(f.notes.len(), 1, "{:?}", f.notes);
        assert!(f.notes[0].contains("timings_ms") || f.notes[0].contains("invalid type"));
        let names: Vec<&str> = f.checks.iter().map(|c| c.checker.as_str()).collect();
        assert_eq!(names, ["bank", "linearizable"]);
        assert_eq!(f.checks[0].reason().as_deref(), Some("1 of 2 reads wrong"));
        assert!(matches!(f.checks[0].evidence, Evidence::Bank(_)));
        assert_eq!(f.checks[1].lin.len(), 1);
    }
}
