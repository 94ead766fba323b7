//! Drawing an Elle cycle as a graph: with Graphviz `dot` when it is
//! installed, else with our own ring layout (a cycle is a ring). Either way
//! the transactions link to their operations in the timeline and the edges
//! are coloured by relation.
//!
//! The DOT text is written here from the case's structured steps, never
//! taken from results.json, so every label is escaped by us; dot's SVG is
//! also checked for active content before it is embedded.

use super::html::{Esc, truncate, visible};
use super::results::{CycleStep, ElleCase};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A cycle drawing never takes longer than this; past it, the ring layout.
const DOT_TIMEOUT: Duration = Duration::from_secs(10);
/// Micro-ops text shown in a node.
const NODE_OPS_CHARS: usize = 48;

/// How cycles are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Graphviz when `dot` runs, else the ring.
    Auto,
    Ring,
}

/// The transactions of a cycle in the order the steps visit them.
fn nodes(steps: &[CycleStep]) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    for s in steps {
        for t in [s.from, s.to] {
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

/// The micro-ops of transaction `t`, from the case's transactions.
fn ops_of(case: &ElleCase, t: u64) -> Option<String> {
    case.txns
        .iter()
        .find(|w| w.index == t)
        .map(|w| truncate(&w.ops, NODE_OPS_CHARS))
}

fn process_of(case: &ElleCase, t: u64) -> Option<String> {
    case.txns
        .iter()
        .find(|w| w.index == t)
        .map(|w| w.process.to_string())
}

fn edge_label(s: &CycleStep) -> String {
    match &s.key {
        Some(k) => format!("{} {k}", s.relation),
        None => s.relation.clone(),
    }
}

/// CSS class of a relation; unknown relations share one.
pub fn rel_class(rel: &str) -> &'static str {
    match rel {
        "ww" => "ww",
        "wr" => "wr",
        "rw" => "rw",
        "process" => "po",
        "realtime" => "rt",
        _ => "other",
    }
}

fn rel_colour(rel: &str) -> &'static str {
    match rel {
        "ww" => "#2b59c3",
        "wr" => "#1a8a5a",
        "rw" => "#d23c3c",
        _ => "#777777",
    }
}

/// The cycle's SVG (with class `cycle-graph`); `id` makes its element ids unique.
pub fn cycle_svg(case: &ElleCase, id: usize, layout: Layout) -> String {
    if layout == Layout::Auto
        && let Ok(svg) = dot_svg(case, id)
    {
        return svg;
    }
    ring_svg(case)
}

/// DOT text for the case, labels escaped for DOT's quoted strings (and
/// control and bidirectional characters made visible first).
pub fn dot_text(case: &ElleCase) -> String {
    let q = |s: &str| {
        visible(s)
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', " ")
    };
    let mut out = String::from(
        "digraph cycle {\n  rankdir=LR; bgcolor=\"transparent\"; nodesep=0.4;\n  node [shape=box, style=\"rounded,filled\", fillcolor=\"#f7f7fb\", color=\"#8888aa\", fontname=\"monospace\", fontsize=11];\n  edge [fontname=\"sans-serif\", fontsize=11, penwidth=1.6];\n",
    );
    for t in nodes(&case.steps) {
        let mut label = format!("T{t}");
        if let Some(p) = process_of(case, t) {
            label += &format!("  (process {p})");
        }
        if let Some(ops) = ops_of(case, t) {
            label += &format!("\\n{}", q(&ops));
        }
        let _ = writeln!(
            out,
            "  t{t} [label=\"{label}\", URL=\"#op-{t}\", tooltip=\"T{t}: show in the timeline\"];"
        );
    }
    for s in &case.steps {
        let c = rel_colour(&s.relation);
        let _ = writeln!(
            out,
            "  t{} -> t{} [label=\"{}\", color=\"{c}\", fontcolor=\"{c}\", tooltip=\"{}\"];",
            s.from,
            s.to,
            q(&edge_label(s)),
            q(&truncate(&s.text, 300))
        );
    }
    out.push_str("}\n");
    out
}

/// Runs `dot -Tsvg`, bounded in time; rejects output with active content.
fn dot_svg(case: &ElleCase, id: usize) -> Result<String, String> {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run dot: {e}"))?;
    let text = dot_text(case);
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status,
            None if started.elapsed() > DOT_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("dot took too long".into());
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let _ = writer.join();
    let svg = reader
        .join()
        .map_err(|_| "reader panicked")?
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("dot exited with {status}"));
    }
    let start = svg.find("<svg").ok_or("no <svg> in dot's output")?;
    let svg = &svg[start..];
    if has_active_content(svg) {
        return Err("dot's output has active content".into());
    }
    Ok(svg
        .replacen("<svg", r#"<svg class="cycle-graph dot""#, 1)
        .replace(" id=\"", &format!(" id=\"c{id}-")))
}

/// Whether SVG text could run script: a script or foreign element, a
/// `javascript:` URL, or an event-handler attribute (` onxxx="`). Text
/// content has its quotes escaped, so `="` only occurs in real attributes.
fn has_active_content(svg: &str) -> bool {
    let lower = svg.to_ascii_lowercase();
    if [
        "<script",
        "<foreignobject",
        "javascript:",
        "<iframe",
        "<!entity",
    ]
    .iter()
    .any(|bad| lower.contains(bad))
    {
        return true;
    }
    lower.match_indices(" on").any(|(i, _)| {
        let rest = &lower[i + 3..];
        let name_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        name_len > 0 && rest[name_len..].starts_with("=\"")
    })
}

/// Our own layout: transactions evenly on a circle, each edge a curve
/// bending outwards, labelled at its middle.
pub fn ring_svg(case: &ElleCase) -> String {
    let ts = nodes(&case.steps);
    let n = ts.len().max(1) as f64;
    let r = (60.0 * n / std::f64::consts::PI).max(90.0);
    let (w, h) = (2.0 * r + 320.0, 2.0 * r + 120.0);
    let (cx, cy) = (w / 2.0, h / 2.0);
    let pos = |t: u64| {
        let i = ts.iter().position(|&x| x == t).unwrap_or(0) as f64;
        let a = -std::f64::consts::FRAC_PI_2 + i * std::f64::consts::TAU / n;
        (cx + r * a.cos(), cy + r * a.sin())
    };
    let mut out = format!(
        r#"<svg class="cycle-graph ring" viewBox="0 0 {w:.0} {h:.0}" width="{w:.0}" role="img" aria-label="cycle of {} transactions">"#,
        ts.len()
    );
    for s in &case.steps {
        let (x0, y0) = pos(s.from);
        let (x1, y1) = pos(s.to);
        let (mx, my) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
        // Bend away from the centre (or sideways for an edge through it).
        let (mut nx, mut ny) = (mx - cx, my - cy);
        let len = (nx * nx + ny * ny).sqrt();
        if len < 1.0 {
            (nx, ny) = (y1 - y0, x0 - x1);
        }
        let nl = (nx * nx + ny * ny).sqrt().max(1e-9);
        let bend = 0.25 * ((x1 - x0).hypot(y1 - y0)).max(40.0);
        let (qx, qy) = (mx + nx / nl * bend, my + ny / nl * bend);
        // Stop short of the node box: pull both ends along the curve a little.
        let trim = |px: f64, py: f64| {
            let (dx, dy) = (qx - px, qy - py);
            let d = dx.hypot(dy).max(1e-9);
            (px + dx / d * 30.0, py + dy / d * 16.0)
        };
        let (sx, sy) = trim(x0, y0);
        let (ex, ey) = trim(x1, y1);
        let class = rel_class(&s.relation);
        let _ = write!(
            out,
            r#"<g class="edge {class}"><path d="M{sx:.1} {sy:.1} Q{qx:.1} {qy:.1} {ex:.1} {ey:.1}" marker-end="url(#arrow-{class})"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><title>{}</title></g>"#,
            0.5 * mx + 0.5 * qx,
            0.5 * my + 0.5 * qy - 4.0,
            Esc(&edge_label(s)),
            Esc(&s.text)
        );
    }
    for &t in &ts {
        let (x, y) = pos(t);
        let label = format!("T{t}");
        let sub = process_of(case, t)
            .map(|p| format!("process {p}"))
            .unwrap_or_default();
        let _ = write!(
            out,
            r##"<a href="#op-{t}" class="txn"><rect x="{:.1}" y="{:.1}" width="64" height="32" rx="6"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text><text class="sub" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text><title>{}</title></a>"##,
            x - 32.0,
            y - 16.0,
            y - 2.0,
            Esc(&label),
            y + 11.0,
            Esc(&sub),
            Esc(&ops_of(case, t).unwrap_or_default())
        );
    }
    out.push_str("</svg>");
    out
}

/// Arrowhead markers the ring graphs refer to; written once per page.
pub fn markers() -> String {
    let mut out = String::from(
        r#"<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>"#,
    );
    for (class, colour) in [
        ("ww", "ww"),
        ("wr", "wr"),
        ("rw", "rw"),
        ("po", "process"),
        ("rt", "realtime"),
        ("other", "?"),
    ] {
        let _ = write!(
            out,
            r#"<marker id="arrow-{class}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" fill="{}"/></marker>"#,
            rel_colour(colour)
        );
    }
    out.push_str("</defs></svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::results::TxnRef;

    fn case() -> ElleCase {
        let step = |from, to, relation: &str| CycleStep {
            from,
            to,
            relation: relation.into(),
            key: Some("x\"<".into()),
            text: format!("T{from} <{relation} T{to} because <b>"),
        };
        ElleCase {
            anomaly: "G-single".into(),
            txns: vec![TxnRef {
                index: 5,
                invoke_index: 4,
                process: 1,
                outcome: "ok".into(),
                ops: "[[\"r\",\"x\",\"</svg><script>alert(1)</script>\"]]".into(),
            }],
            key: None,
            text: String::new(),
            steps: vec![step(5, 9, "rw"), step(9, 12, "wr"), step(12, 5, "ww")],
            dot: None,
        }
    }

    #[test]
    fn ring_has_one_node_per_transaction_and_one_edge_per_step() {
        let svg = ring_svg(&case());
        assert_eq!(svg.matches(r#"class="txn""#).count(), 3);
        assert_eq!(svg.matches(r#"<g class="edge"#).count(), 3);
        assert!(svg.contains("href=\"#op-9\""));
        assert!(!svg.contains("<script") && !svg.contains("<b>"));
    }

    #[test]
    fn active_content_is_recognised() {
        assert!(has_active_content(r#"<svg><g onload="x()"/></svg>"#));
        assert!(has_active_content("<svg><script>x</script></svg>"));
        assert!(!has_active_content(
            r#"<svg><title>based on T5 onload=1</title></svg>"#
        ));
    }

    #[test]
    fn dot_text_escapes_labels() {
        let dot = dot_text(&case());
        assert!(dot.contains(r#"label="rw x\"<""#), "{dot}");
        let mut bidi = case();
        bidi.steps[0].key = Some("k\u{202e}\u{1b}".into());
        let dot = dot_text(&bidi);
        assert!(dot.contains(r#"label="rw k\\u{202e}\\u{1b}""#), "{dot}");
        assert_eq!(dot.matches(" -> ").count(), 3);
    }

    #[test]
    fn graphviz_output_is_embedded_with_unique_ids_when_dot_is_installed() {
        if Command::new("dot").arg("-V").output().is_err() {
            eprintln!("SKIPPED: graphviz `dot` is not installed here (CI installs it)");
            return;
        }
        let svg = dot_svg(&case(), 7).expect("dot draws the cycle");
        assert!(svg.starts_with(r#"<svg class="cycle-graph dot""#));
        assert!(svg.contains(r#"id="c7-"#));
        assert!(!svg.contains("<script"), "labels escaped: {svg}");
        assert!(svg.contains("&lt;/svg&gt;&lt;script&gt;"));
    }
}
