//! The checks section: per checker its verdict (or "not run"), its summary
//! and anomalies, and for each anomaly the evidence, in a form a person can
//! follow. Linearizability: the operation that could not be placed, drawn
//! on a small timeline with the operations concurrent with it and the end
//! of the longest linearizable prefix, and the model states. Elle: every
//! case with its witnesses, every cycle drawn as a graph with each edge in
//! words. Every other checker: its [`Evidence`] (facts, and tables of ops,
//! log lines, values and anomaly names), drawn the same way whatever the
//! checker, so a new checker needs nothing here.
//!
//! Operations link to the timeline (`#op-<index>`), log lines to the node's
//! log.

use super::findings::{
    Check, Elle, ElleCase, Evidence, Explanation, Findings, LinAnomaly, OpRef, Status,
};
use super::graph::{self, Layout};
use super::html::{Esc, esc, rel_url, truncate};
use super::results::{Cell, Table};
use super::svg::Linear;
use crate::checker::Verdict;
use crate::history::Op;
use std::collections::BTreeSet;
use std::fmt::Write;

/// Cycles drawn at most per report (each may run `dot`).
const GRAPHS_MAX: usize = 64;

pub fn verdict_word(v: Option<Verdict>) -> &'static str {
    match v {
        Some(Verdict::Valid) => "valid",
        Some(Verdict::Invalid) => "invalid",
        Some(Verdict::Unknown) => "unknown",
        None => "not checked",
    }
}

pub fn verdict_class(v: Option<Verdict>) -> &'static str {
    match v {
        Some(Verdict::Valid) => "valid",
        Some(Verdict::Invalid) => "invalid",
        Some(Verdict::Unknown) => "unknown",
        None => "none",
    }
}

/// `<a href="#op-12" class="op">…</a>` around already-escaped `inner`.
fn op_link(index: u64, inner: &str) -> String {
    format!(r##"<a href="#op-{index}" class="op">{inner}</a>"##)
}

/// Escapes `text` and turns every transaction name `T<digits>` into a link.
pub fn link_txns(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let b = text.as_bytes();
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        let starts_word = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        if b[i] == b'T' && starts_word {
            let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            let ends_word = b
                .get(i + 1 + digits)
                .is_none_or(|c| !c.is_ascii_alphanumeric());
            if digits > 0 && digits < 20 && ends_word {
                out.push_str(&esc(&text[last..i]));
                let name = &text[i..i + 1 + digits];
                let index: u64 = name[1..].parse().unwrap_or(0);
                out.push_str(&op_link(index, name));
                i += 1 + digits;
                last = i;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&esc(&text[last..]));
    out
}

/// `<span class="chip">name ×n</span>` for each anomaly (×n when known).
pub fn chips(anomalies: &[(String, Option<usize>)]) -> String {
    let mut out = String::new();
    for (a, n) in anomalies {
        let count = n.map(|n| format!(" ×{n}")).unwrap_or_default();
        let _ = write!(out, r#"<span class="chip">{}{count}</span> "#, Esc(a));
    }
    out
}

/// The id of a check's part of the page.
pub fn check_id(index: usize) -> String {
    format!("check-{index}")
}

/// The whole checks section; `ops` (the history, when read) gives times
/// for the small timelines and for evidence that names ops by index.
pub fn section(findings: &Findings, ops: Option<&[Op]>, layout: Layout) -> String {
    let mut out = String::new();
    if findings.checks.is_empty() {
        out.push_str(r#"<p class="note">results.json lists no checks.</p>"#);
    }
    let mut graphs = 0usize;
    for (ci, c) in findings.checks.iter().enumerate() {
        let status = c.status();
        let _ = write!(
            out,
            r#"<section class="check" data-checker="{}" id="{}"><h3><span class="badge {}">{}</span> {}"#,
            Esc(&c.checker),
            check_id(ci),
            status.class(),
            status.word(),
            Esc(&c.checker)
        );
        if let Some(s) = &c.subject {
            let _ = write!(out, r#" <span class="muted">{}</span>"#, Esc(s));
        }
        out.push_str("</h3>");
        match (&c.not_run, &c.summary) {
            (Some(why), _) => {
                let _ = write!(out, r#"<p class="summary">Not run: {}</p>"#, Esc(why));
            }
            (None, Some(s)) if !s.is_empty() => {
                let _ = write!(out, r#"<p class="summary">{}</p>"#, Esc(s));
            }
            _ => {}
        }
        let anomalies = c.anomalies();
        if !anomalies.is_empty() && status != Status::Valid {
            let _ = write!(out, r#"<p class="found">{}</p>"#, chips(&anomalies));
        }
        facts(&mut out, c);
        for (ai, a) in c.lin.iter().enumerate() {
            lin(&mut out, a, ops, &format!("lin-{ci}-{ai}"));
        }
        if let Some(e) = &c.elle {
            elle(&mut out, e, layout, &mut graphs);
        }
        if let Some(e) = &c.evidence {
            evidence(&mut out, e, ops);
        }
        out.push_str("</section>");
    }
    out
}

/// `1.234 s` since the run started.
fn secs(ns: u64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}

/// `[12] at 1.234 s`: a link to op `index` and its time (given, or the
/// history's when read).
fn op_at_time(index: u64, time_ns: Option<u64>, ops: Option<&[Op]>) -> String {
    let time = time_ns.or_else(|| ops.and_then(|ops| op_at(ops, index)).map(|op| op.time));
    let link = op_link(index, &format!("[{index}]"));
    match time {
        Some(t) => format!("{link} at {}", secs(t)),
        None => link,
    }
}

/// Characters of a code cell shown (the whole value is in results.json).
const CODE_CHARS: usize = 400;

/// A checker's evidence: its facts, then each table with its title.
fn evidence(out: &mut String, e: &Evidence, ops: Option<&[Op]>) {
    if !e.facts.is_empty() {
        out.push_str(r#"<ul class="facts">"#);
        for f in &e.facts {
            let _ = write!(out, "<li><b>{}</b> {}</li>", Esc(&f.name), Esc(&f.value));
        }
        out.push_str("</ul>");
    }
    for t in e
        .tables
        .iter()
        .filter(|t| !t.rows.is_empty() || t.more() > 0)
    {
        table(out, t, ops);
    }
}

fn table(out: &mut String, t: &Table, ops: Option<&[Op]>) {
    if !t.title.is_empty() {
        let _ = write!(out, "<h4>{}</h4>", Esc(&t.title));
    }
    if !t.rows.is_empty() {
        out.push_str(r#"<table class="evidence">"#);
        if !t.columns.is_empty() {
            out.push_str("<thead><tr>");
            for c in &t.columns {
                let _ = write!(out, "<th>{}</th>", Esc(c));
            }
            out.push_str("</tr></thead>");
        }
        out.push_str("<tbody>");
        for row in &t.rows {
            out.push_str("<tr>");
            for c in row {
                let _ = write!(out, "<td>{}</td>", cell(c, ops));
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table>");
    }
    let more = t.more();
    if more > 0 {
        let what = if t.what.is_empty() { "rows" } else { &t.what };
        let _ = write!(
            out,
            r#"<p class="muted">… and {more} more {} (results.json keeps the first {}).</p>"#,
            Esc(what),
            t.rows.len()
        );
    }
}

/// A cell's HTML: everything from results.json escaped.
fn cell(c: &Cell, ops: Option<&[Op]>) -> String {
    match c {
        Cell::Text(s) => Esc(s).to_string(),
        Cell::Code(s) => format!("<code>{}</code>", Esc(&truncate(s, CODE_CHARS))),
        Cell::Op { index, time_ns } => op_at_time(*index, *time_ns, ops),
        Cell::LogLine { node, line } => {
            let link = format!(
                r#"<a href="{}">{}</a>"#,
                rel_url(&["nodes", node, "node.log"]),
                Esc(node)
            );
            match line {
                Some(l) => format!("{link} line {l}"),
                None => link,
            }
        }
        Cell::Chip(a) => format!(r#"<span class="chip">{}</span>"#, Esc(a)),
        Cell::Lines(lines) => {
            let lines: Vec<String> = lines.iter().map(|l| Esc(l).to_string()).collect();
            format!("<pre>{}</pre>", lines.join("\n"))
        }
    }
}

fn facts(out: &mut String, c: &Check) {
    if let Some(e) = &c.error {
        let _ = write!(out, r#"<p class="error">Could not check: {}</p>"#, Esc(e));
    }
    if !c.facts.is_empty() {
        out.push_str(r#"<ul class="facts">"#);
        for (k, v) in &c.facts {
            let _ = write!(out, "<li><b>{}</b> {}</li>", Esc(k), Esc(v));
        }
        out.push_str("</ul>");
    }
    for r in &c.unknown_reasons {
        let _ = write!(out, r#"<p class="note">Unknown: {}</p>"#, Esc(r));
    }
}

fn op_line(o: &OpRef) -> String {
    let end = match o.completion_index {
        Some(i) => format!("ok at {}", op_link(i, &format!("[{i}]"))),
        None => "outcome unknown".into(),
    };
    format!(
        "{} process {}: <code>{}</code> ({end})",
        op_link(o.index, &format!("[{}]", o.index)),
        Esc(&o.process.to_string()),
        Esc(&o.op)
    )
}

fn lin(out: &mut String, anomaly: &LinAnomaly, ops: Option<&[Op]>, id: &str) {
    let a = &anomaly.explanation;
    let key = anomaly
        .key
        .as_ref()
        .map(|k| format!(" on key <code>{}</code>", Esc(k)))
        .unwrap_or_default();
    let _ = write!(
        out,
        r#"<article class="anomaly lin" id="{id}"><h4>Not linearizable{key}: cannot place {}</h4>"#,
        op_line(&a.op)
    );
    out.push_str(&lin_timeline(a, ops));
    out.push_str(
        r#"<div class="cols"><div><h5>Model states just before it</h5><ul class="states">"#,
    );
    for s in &a.states_before {
        let _ = write!(out, "<li><code>{}</code></li>", Esc(s));
    }
    let _ = write!(
        out,
        r#"</ul><p class="muted">From none of these states can <code>{}</code> take effect, whichever order the concurrent operations take.</p></div><div>"#,
        Esc(&a.op.op)
    );
    if a.prefix.is_empty() {
        out.push_str("<h5>No operation before it could be placed</h5>");
    } else {
        let _ = write!(
            out,
            r#"<h5>Longest linearizable prefix: {} ops, ending with</h5><table class="prefix"><thead><tr><th>op</th><th>state after</th></tr></thead><tbody>"#,
            a.prefix.len()
        );
        for step in &a.prefix_tail {
            let _ = write!(
                out,
                "<tr><td>{}</td><td><code>{}</code></td></tr>",
                op_line(&step.op),
                Esc(&step.state_after)
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</div></div>");
    if a.concurrent_total > 0 {
        let _ = write!(
            out,
            r#"<details><summary>Concurrent with it: {}</summary><ul>"#,
            super::plots::plural(a.concurrent_total, "operation")
        );
        for o in &a.concurrent {
            let _ = write!(out, "<li>{}</li>", op_line(o));
        }
        if a.concurrent_total > a.concurrent.len() {
            let _ = write!(
                out,
                "<li>… and {} more</li>",
                a.concurrent_total - a.concurrent.len()
            );
        }
        out.push_str("</ul></details>");
    }
    if !a.text.is_empty() {
        let _ = write!(
            out,
            r#"<details><summary>As text</summary><pre>{}</pre></details>"#,
            Esc(&a.text)
        );
    }
    out.push_str("</article>");
}

/// An op on the small timeline, with its role.
struct Bar<'a> {
    op: &'a OpRef,
    class: &'static str,
    note: Option<&'a str>,
}

/// The op that cannot be placed, the ops concurrent with it and the end of
/// the prefix, one row per process; times from the history when read, else
/// history positions.
fn lin_timeline(a: &Explanation, ops: Option<&[Op]>) -> String {
    let mut bars: Vec<Bar> = vec![Bar {
        op: &a.op,
        class: "stuck",
        note: None,
    }];
    for s in &a.prefix_tail {
        bars.push(Bar {
            op: &s.op,
            class: "prefix",
            note: Some(&s.state_after),
        });
    }
    for o in &a.concurrent {
        if !bars.iter().any(|b| b.op.index == o.index) {
            bars.push(Bar {
                op: o,
                class: "conc",
                note: None,
            });
        }
    }
    let at = |index: u64| -> f64 {
        match ops.and_then(|ops| op_at(ops, index)) {
            Some(op) => op.time as f64 / 1e9,
            None if ops.is_some() => f64::NAN,
            None => index as f64,
        }
    };
    let unit = if ops.is_some() {
        "s"
    } else {
        "history position"
    };
    let spans: Vec<(f64, Option<f64>)> = bars
        .iter()
        .map(|b| (at(b.op.index), b.op.completion_index.map(at)))
        .collect();
    let lo = spans
        .iter()
        .map(|s| s.0)
        .filter(|v| v.is_finite())
        .fold(f64::MAX, f64::min);
    let hi = spans
        .iter()
        .flat_map(|s| [Some(s.0), s.1])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(f64::MIN, f64::max);
    if lo > hi {
        return r#"<p class="note">The operations of this explanation are not in the history: no timeline drawn.</p>"#.into();
    }
    let mut lanes: Vec<String> = bars.iter().map(|b| b.op.process.to_string()).collect();
    lanes.sort();
    lanes.dedup();
    let row = 30.0;
    let (left, width) = (110.0, 1000.0);
    let height = 26.0 + row * lanes.len() as f64;
    let pad = ((hi - lo) * 0.04).max(1e-9);
    let x = Linear::new(lo - pad, hi + pad * 6.0, left, width - 10.0);
    let mut out = format!(
        r#"<svg class="lin-timeline" viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="the operation that cannot be placed and the operations around it">"#
    );
    for (i, lane) in lanes.iter().enumerate() {
        let y = 20.0 + row * i as f64;
        let _ = write!(
            out,
            r#"<text class="lane" x="4" y="{:.1}">process {}</text><line class="lane" x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}"/>"#,
            y + 14.0,
            Esc(lane),
            width - 10.0,
            y + row - 2.0,
            y + row - 2.0
        );
    }
    let _ = write!(
        out,
        r#"<text class="axis-note" x="{}" y="12" text-anchor="end">{} {:.3} … {:.3} {unit}</text>"#,
        width - 10.0,
        if ops.is_some() { "time" } else { "position" },
        lo,
        hi
    );
    for (b, (s, e)) in bars.iter().zip(&spans) {
        if !s.is_finite() {
            continue;
        }
        let lane = lanes
            .iter()
            .position(|l| *l == b.op.process.to_string())
            .unwrap_or(0);
        let y = 20.0 + row * lane as f64;
        let x0 = x.map(*s);
        let (x1, open) = match e {
            Some(e) if e.is_finite() => (x.map(*e).max(x0 + 3.0), false),
            _ => (width - 10.0, true),
        };
        let label = match b.note {
            Some(state) => format!("{}  ⇒ {}", b.op.op, state),
            None => b.op.op.clone(),
        };
        let _ = write!(
            out,
            r##"<a href="#op-{}" class="bar {}{}"><rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="9" rx="2"/><text x="{x0:.1}" y="{:.1}">{}</text><title>[{}] process {}: {}{}</title></a>"##,
            b.op.index,
            b.class,
            if open { " open" } else { "" },
            y + 16.0,
            x1 - x0,
            y + 12.0,
            Esc(&truncate(&label, 40)),
            b.op.index,
            Esc(&b.op.process.to_string()),
            Esc(&b.op.op),
            if open {
                " (never returned: it may take effect any time after its invocation)"
            } else {
                ""
            }
        );
    }
    out.push_str("</svg>");
    out.push_str(r#"<div class="legend small"><span><i class="sw stuck"></i>cannot be placed</span><span><i class="sw prefix"></i>end of the longest linearizable prefix (⇒ state after)</span><span><i class="sw conc"></i>concurrent</span></div>"#);
    out
}

/// The op with history index `index` (ops are in index order, usually index = position).
pub fn op_at(ops: &[Op], index: u64) -> Option<&Op> {
    if let Some(op) = ops.get(index as usize).filter(|op| op.index == index) {
        return Some(op);
    }
    ops.binary_search_by_key(&index, |op| op.index)
        .ok()
        .map(|i| &ops[i])
}

fn elle(out: &mut String, e: &Elle, layout: Layout, graphs: &mut usize) {
    if !e.counts.is_empty() {
        out.push_str(r#"<ul class="facts">"#);
        for (a, n) in &e.counts {
            let _ = write!(out, r#"<li><span class="chip">{}</span> ×{n}</li>"#, Esc(a));
        }
        out.push_str("</ul>");
    }
    for (label, models) in &e.models {
        let _ = write!(
            out,
            r#"<p class="models"><b>{}</b> {}</p>"#,
            Esc(label),
            Esc(models)
        );
    }
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for (i, c) in e.cases.iter().enumerate() {
        let nth = e.cases[..i]
            .iter()
            .filter(|x| x.anomaly == c.anomaly)
            .count()
            + 1;
        let total = e
            .counts
            .iter()
            .find(|(a, _)| *a == c.anomaly)
            .map_or(nth, |(_, n)| *n);
        let first = seen.insert(c.anomaly.as_str());
        elle_case(out, c, nth, total, first, layout, graphs);
    }
}

fn elle_case(
    out: &mut String,
    c: &ElleCase,
    nth: usize,
    total: usize,
    first: bool,
    layout: Layout,
    graphs: &mut usize,
) {
    let _ = write!(
        out,
        r#"<article class="anomaly elle" data-anomaly="{}"{}><h4><span class="chip">{}</span> case {nth} of {total}</h4>"#,
        Esc(&c.anomaly),
        if first {
            format!(r#" id="anomaly-{}""#, esc(&c.anomaly))
        } else {
            String::new()
        },
        Esc(&c.anomaly)
    );
    if !c.steps.is_empty() {
        if *graphs < GRAPHS_MAX {
            *graphs += 1;
            let _ = write!(
                out,
                r#"<div class="graph-wrap">{}</div>"#,
                graph::cycle_svg(c, *graphs, layout)
            );
        } else {
            let _ = write!(
                out,
                r#"<p class="note">Not drawn: only the first {GRAPHS_MAX} cycles are drawn.</p>"#
            );
        }
        out.push_str(r#"<ol class="edges">"#);
        for s in &c.steps {
            let _ = write!(
                out,
                r#"<li><span class="rel {}">{}</span> {}</li>"#,
                graph::rel_class(&s.relation),
                Esc(&s.relation),
                link_txns(&s.text)
            );
        }
        out.push_str("</ol>");
    }
    if !c.text.is_empty() {
        out.push_str(r#"<div class="because">"#);
        for line in c.text.lines().filter(|l| !l.trim().is_empty()) {
            let _ = write!(out, "<p>{}</p>", link_txns(line));
        }
        out.push_str("</div>");
    }
    if !c.txns.is_empty() {
        out.push_str(r#"<table class="witnesses"><thead><tr><th>txn</th><th>process</th><th>outcome</th><th>ops</th></tr></thead><tbody>"#);
        for w in &c.txns {
            let _ = write!(
                out,
                r#"<tr><td>{}</td><td>{}</td><td class="{}">{}</td><td><code>{}</code></td></tr>"#,
                op_link(w.index, &format!("T{}", w.index)),
                w.process,
                Esc(&w.outcome),
                Esc(&w.outcome),
                Esc(&truncate(&w.ops, 400))
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</article>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_names_become_links_and_the_rest_is_escaped() {
        assert_eq!(
            link_txns("T12 <ww T9, not AT3 or T3x"),
            r##"<a href="#op-12" class="op">T12</a> &lt;ww <a href="#op-9" class="op">T9</a>, not AT3 or T3x"##
        );
    }
}
