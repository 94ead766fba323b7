//! results/index.html: every run in the results folder, newest first, with
//! its test, time, verdict, duration and anomalies, linking to its report.
//! Rewritten after each run from the folders alone.

use super::anomalies::{verdict_class, verdict_word};
use super::findings::findings;
use super::html::{Esc, duration_ns, pretty_timestamp, rel_url};
use super::page::head;
use super::{ReportError, write_atomically};
use crate::checker::Verdict;
use crate::store::{RunDir, Store};
use crate::suite::Test;
use serde_json::Value;
use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The index lists at most this many runs (the newest).
const RUNS_MAX: usize = 10_000;
/// How much of a history's end is read to find its last op's time.
const TAIL_BYTES: u64 = 64 * 1024;

pub const INDEX_FILE: &str = "index.html";

/// One row of the index.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub run: RunDir,
    pub verdict: Option<Verdict>,
    pub anomalies: Vec<(String, usize)>,
    pub duration_ns: Option<u64>,
    /// `db / workload / nemesis` and the seed, from test.yaml.
    pub what: Option<String>,
    pub seed: Option<u64>,
    pub has_report: bool,
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
    text.lines().rev().find_map(|line| {
        serde_json::from_str::<Value>(line.trim())
            .ok()?
            .get("time")?
            .as_u64()
    })
}

pub fn row(run: RunDir) -> RunRow {
    let results: Option<Value> = std::fs::read_to_string(run.results_json())
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let f = results.as_ref().map(findings).unwrap_or_default();
    let test = Test::load(&run.test_yaml()).ok();
    RunRow {
        verdict: f.verdict,
        anomalies: f.checks.iter().flat_map(|c| c.anomalies()).collect(),
        duration_ns: last_time_ns(&run.history()),
        what: test
            .as_ref()
            .map(|t| format!("{} / {} / {}", t.db.name(), t.workload_name, t.nemesis_name)),
        seed: test.as_ref().map(|t| t.seed),
        has_report: run.report_html().exists(),
        run,
    }
}

/// Renders the index page of `rows` (already newest first).
pub fn render(rows: &[RunRow]) -> String {
    let nonce = super::page::nonce();
    let mut out = head("faultline results", &nonce);
    let count = |v: Option<Verdict>| rows.iter().filter(|r| r.verdict == v).count();
    let _ = write!(
        out,
        r#"<body><header class="top"><span class="brand">faultline</span><h1>Results</h1><span class="when">{} runs · {} invalid · {} unknown · {} valid</span></header><main>
<div class="filter"><input id="filter" type="search" placeholder="filter: test, verdict, anomaly, db…" aria-label="filter runs"></div>
<table class="runs"><thead><tr><th>time</th><th>test</th><th>verdict</th><th>duration</th><th>anomalies</th><th>db / workload / nemesis</th><th>seed</th><th>files</th></tr></thead><tbody>"#,
        rows.len(),
        count(Some(Verdict::Invalid)),
        count(Some(Verdict::Unknown)),
        count(Some(Verdict::Valid))
    );
    for r in rows {
        let report = rel_url(&[&r.run.test, &r.run.timestamp, super::REPORT_FILE]);
        let folder = format!("{}/", rel_url(&[&r.run.test, &r.run.timestamp]));
        let anomalies: Vec<String> = r
            .anomalies
            .iter()
            .map(|(a, n)| format!(r#"<span class="chip">{} ×{n}</span>"#, Esc(a)))
            .collect();
        let _ = write!(
            out,
            r#"<tr class="{}"><td>{}</td><td>{}</td><td class="verdict-cell">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}<a href="{folder}">folder</a></td></tr>"#,
            verdict_class(r.verdict),
            Esc(&pretty_timestamp(&r.run.timestamp)),
            if r.has_report {
                format!(r#"<a href="{report}">{}</a>"#, Esc(&r.run.test))
            } else {
                Esc(&r.run.test).to_string()
            },
            verdict_word(r.verdict),
            r.duration_ns.map(duration_ns).unwrap_or_default(),
            anomalies.join(" "),
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
    let rows: Vec<RunRow> = runs.into_iter().take(RUNS_MAX).map(row).collect();
    let path = root.join(INDEX_FILE);
    write_atomically(&path, render(&rows).as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_runs_newest_first_with_verdicts_durations_and_anomalies() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let a = store.create_run("raft-register").unwrap();
        std::fs::write(
            a.results_json(),
            json!({"valid": true, "files": []}).to_string(),
        )
        .unwrap();
        let b = store.create_run("<evil>").unwrap();
        std::fs::write(
            b.results_json(),
            json!({"valid": false, "files": [{"checker": "elle", "valid": false, "elle": {"counts": {"G-single": 2}, "cases": []}}]}).to_string(),
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
    }
}
