//! report.html of one run: one self-contained page (inline CSS, SVG and a
//! little JavaScript; nothing from the network) assembled from the parts:
//! verdict, summary, anomalies, charts, timeline, files.
//!
//! Each part is drawn on its own; a part that cannot be drawn is replaced
//! by a note saying why, and the rest of the page still appears. The
//! verdict is results.json's, as written.

use super::anomalies::{self, verdict_class, verdict_word};
use super::findings::{Findings, Status, findings};
use super::folder::{Loaded, RunFolder};
use super::graph::{self, Layout};
use super::html::{Esc, duration_ns, pretty_timestamp, rel_url, thousands};
use super::plots;
use super::svg::{Band, FAULT_COLOURS};
use super::timeline::{self, FaultRows};
use crate::checker::perf::{self, Perf};
use crate::history::nemesis::fault_intervals;
use crate::history::{Call, Op, Outcome, pair};
use crate::suite::{Hosts, Test};
use std::collections::BTreeSet;
use std::fmt::Write;
use std::hash::{BuildHasher, Hasher};

pub const CSS: &str = include_str!("assets/report.css");
const JS: &str = include_str!("assets/report.js");

/// A rendered page and what the reader should know about it.
pub struct Rendered {
    pub html: String,
    /// Missing files and parts that could not be drawn, as sentences.
    pub notes: Vec<String>,
    pub findings: Findings,
}

/// A fresh random nonce for the page's Content-Security-Policy: only the
/// report's own script runs, even if something slipped into the markup.
pub(crate) fn nonce() -> String {
    let a = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let b = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{a:016x}{b:016x}")
}

/// `<head>` with the CSP, title and stylesheet.
pub fn head(title: &str, nonce: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{}</title>
<style>{CSS}</style></head>
"#,
        Esc(title)
    )
}

/// What drawing from the history needs, computed once.
struct Drawn<'a> {
    ops: &'a [Op],
    calls: Vec<Call>,
    perf: Perf,
    bands: Vec<Band>,
    faults: Vec<FaultRows>,
}

fn draw_input(ops: &[Op]) -> Result<Drawn<'_>, String> {
    let calls = pair(ops).map_err(|e| format!("the history's operations do not pair up ({e})"))?;
    let perf = perf::perf(ops, &calls);
    let mut names: Vec<String> = Vec::new();
    let mut bands = Vec::new();
    let mut faults = Vec::new();
    for i in fault_intervals(ops) {
        let colour = names.iter().position(|n| *n == i.fault).unwrap_or_else(|| {
            names.push(i.fault.clone());
            names.len() - 1
        }) % FAULT_COLOURS;
        let detail = if i.detail.is_null() {
            String::new()
        } else {
            super::html::truncate(&super::findings::scalar(&i.detail), 200)
        };
        let band = Band {
            fault: i.fault.clone(),
            start_s: i.start_ns as f64 / 1e9,
            end_s: i.end_ns.unwrap_or(perf.end_ns) as f64 / 1e9,
            healed: i.end_ns.is_some(),
            colour,
            detail,
        };
        faults.push(FaultRows {
            band: band.clone(),
            start_index: timeline::index_at(ops, i.start_ns),
            end_index: i.end_ns.map_or_else(
                || ops.last().map_or(0, |op| op.index),
                |e| timeline::index_at(ops, e),
            ),
        });
        bands.push(band);
    }
    Ok(Drawn {
        ops,
        calls,
        perf,
        bands,
        faults,
    })
}

/// Runs one part's drawing; a panic becomes a note instead of a lost page.
fn part(notes: &mut Vec<String>, what: &str, draw: impl FnOnce() -> String) -> String {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(draw)) {
        Ok(html) => html,
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown error".into());
            let note = format!("the {what} could not be drawn: {why}");
            notes.push(note.clone());
            format!(r#"<p class="note error">{}</p>"#, Esc(&note))
        }
    }
}

/// Renders report.html for a results folder.
pub fn render(folder: &RunFolder, layout: Layout) -> Rendered {
    let mut notes = folder.missing();
    let f = folder.results.get().map(findings).unwrap_or_default();
    let ops = folder.history.get().map(|h| h.ops.as_slice());
    let drawn = match ops.map(draw_input) {
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            notes.push(format!("{e}: no plots and no timeline."));
            None
        }
        None => None,
    };
    let test = folder.test.get();
    // In the store's layout (<test>/<timestamp>) the parent names the test.
    let in_store = pretty_timestamp(&folder.timestamp) != folder.timestamp;
    let title = match test {
        Some(t) => t.name.as_str(),
        None if in_store => folder.test_name.as_str(),
        None => folder.timestamp.as_str(),
    };
    let nonce = nonce();
    let mut out = head(&format!("{} · {title}", verdict_word(f.verdict)), &nonce);
    let _ = write!(
        out,
        r#"<body><header class="top"><span class="brand">faultline</span><h1>{}</h1><span class="when">{}</span></header><main>"#,
        Esc(title),
        Esc(&pretty_timestamp(&folder.timestamp))
    );
    out.push_str(&graph::markers());
    out.push_str(&verdict(&f, folder));
    out.push_str(r##"<nav class="sections"><a href="#summary">Summary</a><a href="#anomalies">Checks</a><a href="#charts">Latency &amp; throughput</a><a href="#timeline-section">Timeline</a><a href="#files">Files</a></nav>"##);
    let summary = part(&mut notes, "summary", || {
        summary(folder, test, drawn.as_ref(), &f)
    });
    let anomalies_html = part(&mut notes, "anomalies", || {
        anomalies::section(&f, ops, layout)
    });
    let charts = match &drawn {
        Some(d) => part(&mut notes, "charts", || charts(d)),
        None => r#"<p class="note">No history to plot.</p>"#.into(),
    };
    let timeline_html = match &drawn {
        Some(d) => part(&mut notes, "timeline", || {
            let data = timeline::data(d.ops, &d.calls, &d.faults);
            format!(
                r#"{}<script type="application/json" id="timeline-data">{data}</script>"#,
                timeline::section(d.calls.len())
            )
        }),
        None => r#"<p class="note">No history: no timeline.</p>"#.into(),
    };
    if !notes.is_empty() {
        out.push_str(r#"<ul class="notices" id="notices">"#);
        for n in &notes {
            let _ = write!(out, "<li>{}</li>", Esc(n));
        }
        out.push_str("</ul>");
    }
    let _ = write!(
        out,
        r#"<section id="summary"><h2>Summary</h2>{summary}</section><section id="anomalies"><h2>Checks and anomalies</h2>{anomalies_html}</section><section id="charts"><h2>Latency and throughput</h2>{charts}</section><section id="timeline-section"><h2>Timeline</h2><p class="muted">One column per process, one row per history position; hover an operation for its details. Links to operations elsewhere in this report open them here.</p>{timeline_html}</section><section id="files"><h2>Files</h2>{}</section>"#,
        files(folder)
    );
    let _ = writeln!(
        out,
        r#"<footer>Written by faultline {} from the files of this folder{}. The verdict is results.json's; this page only draws it.</footer></main><script nonce="{nonce}">{JS}</script></body></html>"#,
        env!("CARGO_PKG_VERSION"),
        match (&f.tool, f.schema_version) {
            (Some(t), Some(v)) => format!(" (results.json by {}, schema {v})", Esc(t)),
            _ => String::new(),
        }
    );
    Rendered {
        html: out,
        notes,
        findings: f,
    }
}

/// The banner: the verdict, the anomalies, and every check: one line with
/// its reason for each that is not valid, the valid ones listed.
fn verdict(f: &Findings, folder: &RunFolder) -> String {
    let mut out = format!(
        r#"<section class="verdict {}" id="verdict"><div class="big" id="verdict-word">{}</div><div class="sub">"#,
        verdict_class(f.verdict),
        verdict_word(f.verdict).to_uppercase()
    );
    if let Some(e) = &f.harness_error {
        let _ = write!(
            out,
            r#"<p class="harness-error"><b>The harness failed:</b> {}</p>"#,
            Esc(e)
        );
    }
    for why in &f.incomplete {
        let _ = write!(
            out,
            r#"<p class="incomplete"><b>Incomplete:</b> {}</p>"#,
            Esc(why)
        );
    }
    let anomalies: Vec<(String, Option<usize>)> =
        f.checks.iter().flat_map(|c| c.anomalies()).collect();
    if !anomalies.is_empty() {
        let _ = write!(
            out,
            r##"<p><a href="#anomalies">Anomalies</a>: {}</p>"##,
            anomalies::chips(&anomalies)
        );
    }
    let mut reasons = String::new();
    let mut valid: Vec<String> = Vec::new();
    for (i, c) in f.checks.iter().enumerate() {
        let status = c.status();
        let name = format!(
            r##"<a href="#{}">{}</a>"##,
            anomalies::check_id(i),
            Esc(&c.checker)
        );
        match c.reason() {
            Some(reason) if status != Status::Valid => {
                let _ = write!(
                    reasons,
                    r#"<li data-reason="{}"><b>{name}</b> <span class="word">{}</span>: {}</li>"#,
                    Esc(&c.checker),
                    status.word(),
                    Esc(&reason)
                );
            }
            _ => valid.push(format!("{name} {}", status.word())),
        }
    }
    if !reasons.is_empty() {
        let _ = write!(out, r#"<ul class="reasons">{reasons}</ul>"#);
    }
    match &folder.results {
        Loaded::Read(_) if !valid.is_empty() => {
            let _ = write!(out, "<p>Checks: {}</p>", valid.join(", "));
        }
        Loaded::Read(_) => {}
        _ => out.push_str("<p>This history has not been checked (no readable results.json).</p>"),
    }
    out.push_str("</div></section>");
    out
}

/// Single-quotes a path for a POSIX shell when it needs it.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn summary(folder: &RunFolder, test: Option<&Test>, drawn: Option<&Drawn>, f: &Findings) -> String {
    let problems = &f.problems;
    let mut out =
        String::from(r#"<div class="grid"><div class="col"><div class="card"><h3>Test</h3>"#);
    match test {
        Some(t) => out.push_str(&test_table(t)),
        None => out.push_str(
            r#"<p class="note">No test.yaml: the parameters of this run are unknown.</p>"#,
        ),
    }
    out.push_str(
        r#"</div></div><div class="col"><div class="card"><h3>Run</h3><table class="kv">"#,
    );
    let mut kv = |k: &str, v: String| {
        let _ = write!(out, "<tr><th>{}</th><td>{v}</td></tr>", Esc(k));
    };
    if let Some(d) = drawn {
        let count = |o: Outcome, completed: bool| {
            d.perf
                .timings
                .iter()
                .filter(|t| t.outcome == o && (o != Outcome::Unknown || t.completed == completed))
                .count() as u64
        };
        kv("duration", duration_ns(d.perf.end_ns));
        kv(
            "history",
            format!("{} events", thousands(d.ops.len() as u64)),
        );
        kv(
            "operations",
            format!(
                "{} · {} ok · {} fail · {} info · {} never completed",
                thousands(d.calls.len() as u64),
                thousands(count(Outcome::Ok, true)),
                thousands(count(Outcome::Fail, true)),
                thousands(count(Outcome::Unknown, true)),
                thousands(count(Outcome::Unknown, false)),
            ),
        );
        let processes: BTreeSet<_> = d.calls.iter().map(|c| d.ops[c.invoke].process).collect();
        kv("processes", thousands(processes.len() as u64));
        let mut faults: Vec<(&str, usize)> = Vec::new();
        for b in &d.bands {
            match faults.iter_mut().find(|(f, _)| *f == b.fault) {
                Some(x) => x.1 += 1,
                None => faults.push((&b.fault, 1)),
            }
        }
        let faults: Vec<String> = faults.iter().map(|(f, n)| format!("{f} ×{n}")).collect();
        kv(
            "faults",
            if faults.is_empty() {
                "none".into()
            } else {
                Esc(&faults.join(", ")).to_string()
            },
        );
    }
    if let Some(a) = &f.availability {
        kv("availability", availability(a));
    }
    if let Some(a) = &f.first_anomaly {
        kv("first anomaly", Esc(&a.describe()).to_string());
    }
    kv(
        "folder",
        format!("<code>{}</code>", Esc(&folder.dir.display().to_string())),
    );
    if !problems.is_empty() {
        let items: Vec<String> = problems
            .iter()
            .map(|p| format!("<li>{}</li>", Esc(p)))
            .collect();
        kv(
            "problems",
            format!(r#"<ul class="problems">{}</ul>"#, items.join("")),
        );
    }
    out.push_str("</table></div>");
    out.push_str(&hosts(folder, test, drawn));
    out.push_str(r#"</div><div class="col">"#);
    out.push_str(&reproduce(folder, test));
    out.push_str("</div></div>");
    out
}

/// Availability in words: ok/s, and the stretches without an ok op.
fn availability(a: &super::results::Availability) -> String {
    let stretch = |s: &super::results::Stretch| {
        let faults = if s.faults.is_empty() {
            "no fault".to_string()
        } else {
            s.faults.join(" + ")
        };
        format!(
            "{:.1} s ({:.1}–{:.1} s; {})",
            s.ms / 1e3,
            s.from_ms / 1e3,
            s.to_ms / 1e3,
            Esc(&faults)
        )
    };
    format!(
        "{:.0} ok/s · longest without an ok op: {} · after the last heal{}: {}",
        a.ok_per_s,
        stretch(&a.longest_without_ok),
        a.last_heal_ms
            .map(|ms| format!(" (at {:.1} s)", ms / 1e3))
            .unwrap_or_default(),
        stretch(&a.after_last_heal)
    )
}

fn test_table(t: &Test) -> String {
    let mut out = String::from(r#"<table class="kv">"#);
    let mut kv = |k: &str, v: String| {
        let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", Esc(k), Esc(&v));
    };
    kv("name", t.name.clone());
    kv("db", t.db.name().into());
    kv(
        "bugs",
        if t.bugs.is_empty() {
            "none".into()
        } else {
            t.bugs.join(", ")
        },
    );
    kv("workload", t.workload_name.clone());
    kv("nemesis", t.nemesis_name.clone());
    kv("nodes", t.nodes.to_string());
    kv("time limit", t.time_limit.to_string());
    kv("concurrency", t.concurrency.to_string());
    kv("rate", format!("{} ops/s", t.rate));
    kv("recovery", t.recovery.to_string());
    kv("seed", t.seed.to_string());
    if let Some(e) = t.expect {
        kv("expected", e.as_str().into());
    }
    out.push_str("</table>");
    let yaml = t.to_yaml();
    let _ = write!(
        out,
        r#"<details><summary>test.yaml (workload and nemesis in full)</summary><pre>{}</pre></details>"#,
        Esc(&yaml)
    );
    out
}

fn hosts(folder: &RunFolder, test: Option<&Test>, drawn: Option<&Drawn>) -> String {
    let mut nodes: BTreeSet<String> = folder.node_files.iter().map(|f| f.node.clone()).collect();
    if let Some(d) = drawn {
        // Bounded: node names are few; stop looking after a handful of new ones.
        for op in d.ops.iter().filter(|op| op.node.is_some()) {
            if nodes.len() >= 256 {
                break;
            }
            if let Some(n) = &op.node
                && !nodes.contains(n)
            {
                nodes.insert(n.clone());
            }
        }
    }
    let mut out = String::from(r#"<div class="card"><h3>Hosts</h3>"#);
    let kind = match test.map(|t| (&t.hosts, t.nodes)) {
        Some((Hosts::Local, n)) => format!("a local network-namespace cluster of {n} nodes"),
        Some((Hosts::Docker, n)) => format!("a Docker cluster of {n} containers"),
        Some((Hosts::Inventory(p), n)) => {
            format!("{n} SSH lab hosts from {}", p.display())
        }
        None => "unknown (no test.yaml)".into(),
    };
    let _ = write!(out, "<p>{}</p>", Esc(&kind));
    if nodes.is_empty() {
        out.push_str(r#"<p class="muted">No node names in the history or node logs.</p>"#);
    } else {
        out.push_str("<p>");
        for n in &nodes {
            let _ = write!(
                out,
                r#"<span class="chip" style="background:#eef2ff;border-color:#c7d2fe;color:#3730a3">{}</span> "#,
                Esc(n)
            );
        }
        out.push_str("</p>");
    }
    out.push_str("</div>");
    out
}

fn reproduce(folder: &RunFolder, test: Option<&Test>) -> String {
    let mut out = String::from(r#"<div class="card"><h3>Reproduce</h3>"#);
    let dir = folder.dir.display().to_string();
    let (command, what) = if test.is_some() {
        (
            format!(
                "faultline run --replay {}",
                shell_quote(&format!("{dir}/test.yaml"))
            ),
            "Runs the same test with the same seed (the same schedule of operations and faults; the network's interleavings may differ):",
        )
    } else {
        (
            format!(
                "faultline check {}",
                shell_quote(&match folder.history.get() {
                    Some(h) if !h.inside => h.source.clone(),
                    _ => format!("{dir}/history.jsonl"),
                })
            ),
            "No test.yaml, so the run cannot be replayed; the history can be checked again:",
        )
    };
    let _ = write!(
        out,
        r#"<p class="muted">{what}</p><div class="repro"><pre id="repro-cmd">{}</pre><button type="button" class="copy" data-target="repro-cmd">copy</button></div>"#,
        Esc(&command)
    );
    if let Some(t) = test {
        let _ = write!(out, r#"<p>seed <code id="seed">{}</code></p>"#, t.seed);
    }
    out.push_str("</div>");
    out
}

fn charts(d: &Drawn) -> String {
    format!(
        "{}<h3>Latency</h3>{}<h3>Throughput</h3>{}<h3>Latency percentiles</h3>{}",
        plots::fault_legend(&d.bands),
        plots::latency(&d.perf, &d.bands),
        plots::throughput_chart(&d.perf, &d.bands),
        plots::percentiles_table(&perf::percentiles(&d.perf))
    )
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn files(folder: &RunFolder) -> String {
    let mut out = String::from(r#"<ul class="files">"#);
    for (name, bytes) in &folder.files {
        let _ = write!(
            out,
            r#"<li><a href="{}">{}</a> <span class="muted">{}</span></li>"#,
            rel_url(&[name]),
            Esc(name),
            size(*bytes)
        );
    }
    out.push_str("</ul>");
    if !folder.node_files.is_empty() {
        out.push_str(r#"<h3>Node logs</h3><ul class="files">"#);
        for f in &folder.node_files {
            let _ = write!(
                out,
                r#"<li><a href="{}">{}/{}</a> <span class="muted">{}</span></li>"#,
                rel_url(&["nodes", &f.node, &f.name]),
                Esc(&f.node),
                Esc(&f.name),
                size(f.bytes)
            );
        }
        out.push_str("</ul>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(
            shell_quote("results/a/b/test.yaml"),
            "results/a/b/test.yaml"
        );
        assert_eq!(shell_quote("my dir/it's"), r"'my dir/it'\''s'");
    }
}
