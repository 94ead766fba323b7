//! results/index.html: every run in the results folder, newest first, with
//! its test, time, verdict, duration and anomalies, linking to its report.
//! Rewritten after each run from the folders alone.
//!
//! A run is a `<test>/<timestamp>/` folder that holds test.yaml or
//! results.json; other folders under the root (another tool's artifacts)
//! are not listed. Each run lands in exactly one bucket of the header:
//! invalid, unknown, harness error, incomplete (no readable verdict: the run
//! was cut short, or results.json cannot be read) or valid.

use super::anomalies::chips;
use super::findings::findings;
use super::folder::{Loaded, read_results};
use super::html::{Esc, duration_ns, pretty_timestamp, rel_url};
use super::page::head;
use super::plots::plural;
use super::{ReportError, write_atomically};
use crate::checker::Verdict;
use crate::outcome::Outcome;
use crate::store::{RunDir, Store};
use crate::suite::Test;
use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The index lists at most this many runs (the newest).
const RUNS_MAX: usize = 10_000;
/// How much of a history's end is read to find its last op's time.
const TAIL_BYTES: u64 = 64 * 1024;

pub const INDEX_FILE: &str = "index.html";

/// How a run ended, as the header counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// results.json's verdict.
    Checked(Verdict),
    /// The harness failed (results.json's `harness_error`).
    HarnessError(String),
    /// No readable verdict, and why.
    Incomplete(String),
}

impl Ended {
    /// The run's outcome, when results.json gives one.
    fn outcome(&self) -> Option<Outcome> {
        match self {
            Ended::Checked(v) => Some((*v).into()),
            Ended::HarnessError(_) => Some(Outcome::HarnessError),
            Ended::Incomplete(_) => None,
        }
    }

    fn word(&self) -> &'static str {
        match self {
            Ended::HarnessError(_) => "harness error",
            other => other.class(),
        }
    }

    /// The row's CSS class.
    fn class(&self) -> &'static str {
        self.outcome().map_or("incomplete", Outcome::name)
    }
}

/// One row of the index.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub run: RunDir,
    pub ended: Ended,
    /// Anomaly names, with how many of each when known.
    pub anomalies: Vec<(String, Option<usize>)>,
    pub duration_ns: Option<u64>,
    /// `db / workload / nemesis` and the seed, from test.yaml.
    pub what: Option<String>,
    pub seed: Option<u64>,
    pub has_report: bool,
    /// The run folder's URL from the index, ending in `/`: `<test>/<timestamp>/`
    /// under the results root; a merged index may point elsewhere (`../`).
    pub href: String,
}

/// The time of the last complete op of a JSONL history, read from its end.
pub fn last_time_ns(history: &Path) -> Option<u64> {
    let mut f = std::fs::File::open(history).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))
        .ok()?;
    let mut buf = Vec::new();
    f.take(TAIL_BYTES).read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    /// The one field of an op wanted here.
    #[derive(serde::Deserialize)]
    struct Time {
        time: u64,
    }
    text.lines()
        .rev()
        .find_map(|line| Some(serde_json::from_str::<Time>(line.trim()).ok()?.time))
}

/// Whether `run` is a run's folder: it holds test.yaml or results.json.
pub fn is_run(run: &RunDir) -> bool {
    run.test_yaml().is_file() || run.results_json().is_file()
}

pub fn row(run: RunDir) -> RunRow {
    let (f, ended) = match read_results(&run.results_json()) {
        Loaded::Missing => (
            Default::default(),
            Ended::Incomplete(
                "results.json is missing: the run did not finish (interrupted, killed, or still running)"
                    .into(),
            ),
        ),
        Loaded::Bad(e) => (
            Default::default(),
            Ended::Incomplete(format!("results.json could not be read: {e}")),
        ),
        Loaded::Read(r) => {
            let f = findings(&r);
            let ended = match &f.harness_error {
                Some(e) => Ended::HarnessError(e.clone()),
                None => Ended::Checked(r.valid.into()),
            };
            (f, ended)
        }
    };
    let test = Test::load(&run.test_yaml()).ok();
    RunRow {
        ended,
        anomalies: f.checks.iter().flat_map(|c| c.anomalies()).collect(),
        duration_ns: last_time_ns(&run.history()),
        what: test
            .as_ref()
            .map(|t| format!("{} / {} / {}", t.db.name(), t.workload_name, t.nemesis_name)),
        seed: test.as_ref().map(|t| t.seed),
        has_report: run.report_html().exists(),
        href: format!("{}/", rel_url(&[&run.test, &run.timestamp])),
        run,
    }
}

/// The header's counts: runs, then one bucket per outcome; the buckets
/// add up to the runs. Harness errors and incomplete runs are named only
/// when there are some.
pub fn totals(rows: &[RunRow]) -> String {
    let count = |o: Option<Outcome>| rows.iter().filter(|r| r.ended.outcome() == o).count();
    let checked = |v: Verdict| count(Some(v.into()));
    let harness = count(Some(Outcome::HarnessError));
    let incomplete = count(None);
    let mut parts = vec![
        plural(rows.len(), "run"),
        format!("{} invalid", checked(Verdict::Invalid)),
        format!("{} unknown", checked(Verdict::Unknown)),
    ];
    if harness > 0 {
        parts.push(plural(harness, "harness error"));
    }
    if incomplete > 0 {
        parts.push(format!("{incomplete} incomplete"));
    }
    parts.push(format!("{} valid", checked(Verdict::Valid)));
    parts.join(" · ")
}

/// Renders the index page of `rows` (already newest first).
pub fn render(rows: &[RunRow]) -> String {
    let nonce = super::page::nonce();
    let mut out = head("faultline results", &nonce);
    let _ = write!(
        out,
        r#"<body><header class="top"><span class="brand">faultline</span><h1>Results</h1><span class="when" id="totals">{}</span></header><main>
<div class="filter"><input id="filter" type="search" placeholder="filter: test, verdict, anomaly, db…" aria-label="filter runs"></div>
<table class="runs"><thead><tr><th>time</th><th>test</th><th>verdict</th><th>duration</th><th>anomalies</th><th>db / workload / nemesis</th><th>seed</th><th>files</th></tr></thead><tbody>"#,
        totals(rows)
    );
    for r in rows {
        let folder = &r.href;
        let report = format!("{folder}{}", rel_url(&[super::REPORT_FILE]));
        let why = match &r.ended {
            Ended::HarnessError(why) | Ended::Incomplete(why) => {
                format!(r#"<span class="why">{}</span>"#, Esc(why))
            }
            Ended::Checked(_) => String::new(),
        };
        let _ = write!(
            out,
            r#"<tr class="{}"><td>{}</td><td>{}</td><td class="verdict-cell">{}</td><td>{}</td><td>{}{why}</td><td>{}</td><td>{}</td><td>{}<a href="{folder}">folder</a></td></tr>"#,
            r.ended.class(),
            Esc(&pretty_timestamp(&r.run.timestamp)),
            if r.has_report {
                format!(r#"<a href="{report}">{}</a>"#, Esc(&r.run.test))
            } else {
                Esc(&r.run.test).to_string()
            },
            r.ended.word(),
            r.duration_ns.map(duration_ns).unwrap_or_default(),
            chips(&r.anomalies),
            Esc(r.what.as_deref().unwrap_or("")),
            r.seed.map(|s| s.to_string()).unwrap_or_default(),
            if r.has_report {
                format!(r#"<a href="{report}">report</a> · "#)
            } else {
                String::new()
            }
        );
    }
    if rows.is_empty() {
        out.push_str(r#"<tr><td colspan="8" class="muted">No runs yet.</td></tr>"#);
    }
    let _ = write!(
        out,
        r#"</tbody></table><footer>Written by faultline {}. Newest first{}.</footer></main>
<script nonce="{nonce}">"use strict";(function(){{var f=document.getElementById("filter");var rows=document.querySelectorAll("table.runs tbody tr");f.addEventListener("input",function(){{var q=f.value.toLowerCase();rows.forEach(function(r){{r.style.display=r.textContent.toLowerCase().indexOf(q)<0?"none":"";}});}});}})();</script></body></html>
"#,
        env!("CARGO_PKG_VERSION"),
        if rows.len() >= RUNS_MAX {
            format!("; only the newest {RUNS_MAX} runs are listed")
        } else {
            String::new()
        }
    );
    out
}

/// Rewrites `root/index.html` from the run folders under `root`.
pub fn write_index(root: &Path) -> Result<PathBuf, ReportError> {
    let runs = Store::new(root)
        .runs()
        .map_err(|source| ReportError::Write {
            path: root.to_path_buf(),
            source,
        })?;
    let rows: Vec<RunRow> = runs
        .into_iter()
        .filter(is_run)
        .take(RUNS_MAX)
        .map(row)
        .collect();
    let path = root.join(INDEX_FILE);
    write_atomically(&path, render(&rows).as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::results::{self, Elle, FileResult, Results, RunResult, Valid};

    /// results.json as the writer writes it.
    fn results_json(valid: Valid, files: Vec<FileResult>, run: Option<RunResult>) -> String {
        serde_json::to_string(&Results {
            schema_version: results::SCHEMA_VERSION,
            tool: "faultline test".into(),
            valid,
            files,
            run,
        })
        .unwrap()
    }

    #[test]
    fn lists_runs_newest_first_with_verdicts_durations_and_anomalies() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let a = store.create_run("raft-register").unwrap();
        std::fs::write(a.results_json(), results_json(Valid::True, vec![], None)).unwrap();
        let b = store.create_run("<evil>").unwrap();
        let elle = FileResult {
            path: "history.jsonl".into(),
            valid: Valid::False,
            error: None,
            checker: "elle".into(),
            timings_ms: Default::default(),
            ends_early: None,
            linearizable: None,
            elle: Some(Elle {
                anomaly_types: vec!["G-single".into()],
                anomaly_counts: [("G-single".to_string(), 2)].into(),
                ..Elle::default()
            }),
        };
        std::fs::write(
            b.results_json(),
            results_json(Valid::False, vec![elle], None),
        )
        .unwrap();
        std::fs::write(
            b.history(),
            "{\"index\":0,\"time\":5,\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n{\"index\":1,\"time\":2500000000,\"process\":0,\"type\":\"ok\",\"f\":\"read\"}\n{\"index\":2,\"time\":",
        )
        .unwrap();
        let path = write_index(dir.path()).unwrap();
        let html = std::fs::read_to_string(path).unwrap();
        let first = html.find("&lt;evil&gt;").expect("escaped test name");
        let second = html.find("raft-register").unwrap();
        assert!(first < second, "newest first");
        assert!(!html.contains("<evil>"));
        assert!(html.contains("G-single ×2"));
        assert!(
            html.contains("2.50 s"),
            "duration from the last complete op"
        );
        assert!(html.contains(r#"<td class="verdict-cell">invalid</td>"#));
        assert!(html.contains(r#"<td class="verdict-cell">valid</td>"#));
        assert!(html.contains(r#"id="totals">2 runs · 1 invalid · 0 unknown · 1 valid<"#));
    }

    #[test]
    fn every_run_is_in_one_bucket_and_folders_that_are_not_runs_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let one = store.create_run("raft-register").unwrap();
        std::fs::write(one.results_json(), results_json(Valid::True, vec![], None)).unwrap();
        let html = std::fs::read_to_string(write_index(dir.path()).unwrap()).unwrap();
        assert!(html.contains(r#"id="totals">1 run · 0 invalid · 0 unknown · 1 valid<"#));
        // A harness error (results.json says unknown, and why), a run cut
        // short (test.yaml only), results.json that is not JSON, one of
        // another schema, and folders that are not runs.
        let harness = store.create_run("paxos-bank").unwrap();
        let run = RunResult {
            harness_error: Some("deploying: n2 unreachable".into()),
            ..RunResult::default()
        };
        std::fs::write(
            harness.results_json(),
            results_json(Valid::Unknown, vec![], Some(run)),
        )
        .unwrap();
        let cut = store.create_run("raft-set").unwrap();
        std::fs::write(cut.test_yaml(), "name: raft-set\n").unwrap();
        let bad = store.create_run("twopc-bank").unwrap();
        std::fs::write(bad.results_json(), "{\"valid\": tru").unwrap();
        let other = store.create_run("raft-bank").unwrap();
        std::fs::write(
            other.results_json(),
            r#"{"schema_version": 2, "verdict": "valid"}"#,
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("ci-artifacts/report/valid")).unwrap();
        std::fs::create_dir_all(dir.path().join("ci-artifacts/bug-matrix")).unwrap();
        let html = std::fs::read_to_string(write_index(dir.path()).unwrap()).unwrap();
        assert!(
            html.contains(r#"id="totals">5 runs · 0 invalid · 0 unknown · 1 harness error · 3 incomplete · 1 valid<"#),
            "{html}"
        );
        assert!(!html.contains("ci-artifacts"));
        assert!(html.contains("deploying: n2 unreachable"));
        assert!(html.contains("results.json is missing"));
        assert!(html.contains("results.json could not be read: "), "{html}");
        assert!(html.contains("results.json:1:"), "{html}");
        assert!(
            html.contains("schema_version 2 is not the schema this faultline reads (1)"),
            "{html}"
        );
        assert_eq!(html.matches(r#"<tr class="incomplete">"#).count(), 3);
        assert_eq!(html.matches(r#"<tr class="harness-error">"#).count(), 1);
    }
}
