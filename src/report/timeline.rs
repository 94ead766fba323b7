//! The timeline of operations per process (Jepsen's timeline.html idea),
//! made for long histories: the report embeds every operation in a compact
//! columnar JSON block, and a little JavaScript (assets/report.js) draws
//! only a window of it, with paging, a scrubber and "go to op".
//!
//! Layout of the data (one entry per client operation, in invocation order;
//! numbers delta-encoded where they grow):
//!
//! ```text
//! n      history length (largest index + 1)
//! f      function names;  fn[i]  index into f
//! p[i]   process          i[i]   invocation index, minus the previous op's
//! c[i]   completion index minus invocation index, -1 when none
//! t[i]   invocation time µs, minus the previous op's;  d[i] latency µs, -1 none
//! k[i]   0 ok, 1 fail, 2 info, 3 never completed
//! v[i]   the value shown (the completion's when ok), cut to VALUE_CHARS
//! nodes  node names;  nd[i] index into nodes, -1 none
//! e      [[i, error text], ...] for operations with an error
//! faults [[fault, colour, start index, end index, detail], ...]
//! ```

use super::html::{json_for_script, truncate, visible};
use super::svg::Band;
use crate::history::{Call, Op, Outcome};
use serde_json::Value;
use std::fmt::Write;

/// Longest value text kept per operation; the raw history has the rest.
pub const VALUE_CHARS: usize = 60;

/// A fault interval in history positions, for the timeline.
#[derive(Debug, Clone)]
pub struct FaultRows {
    pub band: Band,
    pub start_index: u64,
    pub end_index: u64,
}

/// The history index of the first op at or after `time_ns` (ops are in time order).
pub fn index_at(ops: &[Op], time_ns: u64) -> u64 {
    let pos = ops.partition_point(|op| op.time < time_ns);
    ops.get(pos).or(ops.last()).map_or(0, |op| op.index)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// `s` as a JSON string, its control and bidirectional characters made
/// visible escapes first (the script shows the strings as they are).
fn push_json_str(out: &mut String, s: &str) {
    // Serialising a &str cannot fail.
    out.push_str(&serde_json::to_string(&visible(s)).unwrap_or_default());
}

/// Names as a JSON array of strings, each made visible.
fn json_names(names: &[&str]) -> String {
    let mut out = String::from("[");
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(&mut out, n);
    }
    out.push(']');
    out
}

/// The embedded data block, ready to sit inside a `<script type="application/json">`.
pub fn data(ops: &[Op], calls: &[Call], faults: &[FaultRows]) -> String {
    let mut fs: Vec<&str> = Vec::new();
    let mut nodes: Vec<&str> = Vec::new();
    let n = calls.len();
    let (mut p, mut ii, mut c, mut t, mut d, mut k, mut fnn, mut nd) = (
        String::with_capacity(n * 3),
        String::with_capacity(n * 2),
        String::with_capacity(n * 3),
        String::with_capacity(n * 5),
        String::with_capacity(n * 5),
        String::with_capacity(n * 2),
        String::with_capacity(n * 2),
        String::with_capacity(n * 2),
    );
    let mut v = String::with_capacity(n * 16);
    let mut e = String::new();
    let (mut last_index, mut last_us) = (0i64, 0i64);
    for (i, call) in calls.iter().enumerate() {
        let inv = &ops[call.invoke];
        let done = call.completion.map(|x| &ops[x]);
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(p, "{sep}{}", inv.process);
        let _ = write!(ii, "{sep}{}", inv.index as i64 - last_index);
        last_index = inv.index as i64;
        let _ = write!(
            c,
            "{sep}{}",
            done.map_or(-1, |x| x.index as i64 - inv.index as i64)
        );
        let us = (inv.time / 1000) as i64;
        let _ = write!(t, "{sep}{}", us - last_us);
        last_us = us;
        let _ = write!(
            d,
            "{sep}{}",
            done.map_or(-1, |x| (x.time.saturating_sub(inv.time) / 1000) as i64)
        );
        let kind = match (call.outcome, done) {
            (Outcome::Ok, _) => 0,
            (Outcome::Fail, _) => 1,
            (Outcome::Unknown, Some(_)) => 2,
            (Outcome::Unknown, None) => 3,
        };
        let _ = write!(k, "{sep}{kind}");
        let fi = fs.iter().position(|f| *f == inv.f).unwrap_or_else(|| {
            fs.push(&inv.f);
            fs.len() - 1
        });
        let _ = write!(fnn, "{sep}{fi}");
        let node = done.and_then(|x| x.node.as_deref()).or(inv.node.as_deref());
        let ni = node.map_or(-1, |name| {
            nodes.iter().position(|x| *x == name).unwrap_or_else(|| {
                nodes.push(name);
                nodes.len() - 1
            }) as i64
        });
        let _ = write!(nd, "{sep}{ni}");
        let shown = match done {
            Some(x) if call.outcome == Outcome::Ok && !x.value.is_null() => &x.value,
            _ => &inv.value,
        };
        v.push_str(sep);
        push_json_str(&mut v, &truncate(&text(shown), VALUE_CHARS));
        if let Some(err) = done.and_then(|x| x.error.as_ref()) {
            e.push_str(if e.is_empty() { "" } else { "," });
            let _ = write!(e, "[{i},");
            push_json_str(&mut e, &truncate(&text(err), VALUE_CHARS * 2));
            e.push(']');
        }
    }
    let n_events = ops.iter().map(|op| op.index + 1).max().unwrap_or(0);
    let mut out =
        String::with_capacity(p.len() + ii.len() + c.len() + t.len() + d.len() + v.len() + 512);
    let _ = write!(out, r#"{{"n":{n_events},"f":"#);
    out.push_str(&json_names(&fs));
    out.push_str(r#","nodes":"#);
    out.push_str(&json_names(&nodes));
    for (name, col) in [
        ("p", &p),
        ("i", &ii),
        ("c", &c),
        ("t", &t),
        ("d", &d),
        ("k", &k),
        ("fn", &fnn),
        ("nd", &nd),
        ("v", &v),
        ("e", &e),
    ] {
        let _ = write!(out, r#","{name}":[{col}]"#);
    }
    out.push_str(r#","faults":["#);
    for (i, fr) in faults.iter().enumerate() {
        out.push_str(if i == 0 { "[" } else { ",[" });
        push_json_str(&mut out, &fr.band.fault);
        let _ = write!(
            out,
            ",{},{},{},",
            fr.band.colour, fr.start_index, fr.end_index
        );
        push_json_str(&mut out, &fr.band.detail);
        out.push(']');
    }
    out.push_str("]}");
    json_for_script(&out)
}

/// The timeline section's markup; the script fills it from the data block.
pub fn section(total_ops: usize) -> String {
    format!(
        r##"<div class="tl-controls" id="tl-controls">
<button type="button" id="tl-first" title="first page">« first</button><button type="button" id="tl-prev" title="previous page">‹ prev</button><button type="button" id="tl-next" title="next page">next ›</button><button type="button" id="tl-last" title="last page">last »</button>
<label>rows <select id="tl-size"><option>100</option><option selected>300</option><option>600</option><option>1500</option></select></label>
<label>go to op <input id="tl-goto" type="number" min="0" placeholder="index"></label>
<span id="tl-range" class="muted"></span>
</div>
<div class="tl-overview" id="tl-overview" title="click to jump"><div id="tl-window"></div></div>
<div class="timeline" id="timeline" data-ops="{total_ops}"><p class="note">The timeline needs JavaScript.</p></div>"##
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{OpType, Process, pair};
    use serde_json::json;

    fn op(index: u64, process: u64, kind: OpType, value: Value) -> Op {
        Op {
            index,
            time: index * 1500,
            process: Process::Client(process),
            kind,
            f: "write".into(),
            value,
            node: Some("n1".into()),
            error: (kind == OpType::Info).then(|| json!("timeout")),
        }
    }

    #[test]
    fn columns_decode_to_the_history() {
        let ops = vec![
            op(0, 1, OpType::Invoke, json!([1, "</script>"])),
            op(1, 2, OpType::Invoke, json!([1, 2])),
            op(2, 1, OpType::Ok, json!([1, "</script>"])),
            op(3, 2, OpType::Info, json!([1, 2])),
            op(4, 3, OpType::Invoke, json!([2, 3])),
        ];
        let calls = pair(&ops).unwrap();
        let faults = vec![FaultRows {
            band: Band {
                fault: "partition".into(),
                start_s: 0.0,
                end_s: 1.0,
                healed: true,
                colour: 0,
                detail: "{}".into(),
            },
            start_index: 1,
            end_index: 3,
        }];
        let text = data(&ops, &calls, &faults);
        assert!(!text.contains("</"));
        let d: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(d["n"], 5);
        assert_eq!(d["p"], json!([1, 2, 3]));
        assert_eq!(
            d["i"],
            json!([0, 1, 3]),
            "delta-encoded invocation indices 0, 1, 4"
        );
        assert_eq!(d["c"], json!([2, 2, -1]));
        assert_eq!(d["k"], json!([0, 2, 3]));
        assert_eq!(d["t"], json!([0, 1, 5]), "µs deltas of 0, 1.5, 6 µs");
        assert_eq!(d["v"][0], "[1,\"</script>\"]");
        assert_eq!(d["e"], json!([[1, "timeout"]]));
        assert_eq!(d["nodes"], json!(["n1"]));
        assert_eq!(d["faults"][0][0], "partition");
        assert_eq!(d["faults"][0][3], 3);
    }

    #[test]
    fn control_and_bidi_characters_reach_the_script_as_visible_escapes() {
        let mut ops = vec![
            op(0, 1, OpType::Invoke, json!(["k\u{202e}x\u{1b}", 1])),
            op(1, 1, OpType::Info, json!(["k\u{202e}x\u{1b}", 1])),
        ];
        ops[1].node = Some("n\u{2066}1".into());
        ops[1].error = Some(json!("bad\u{85}"));
        ops[0].f = "w\u{200f}".into();
        ops[1].f = "w\u{200f}".into();
        let text = data(&ops, &pair(&ops).unwrap(), &[]);
        assert!(!text.chars().any(crate::report::html::is_hidden), "{text}");
        // What the script gets after JSON.parse: the escapes as text.
        let d: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(d["v"][0], r#"["k\u{202e}x\u001b",1]"#);
        assert_eq!(d["nodes"][0], r"n\u{2066}1");
        assert_eq!(d["e"][0][1], r"bad\u{85}");
        assert_eq!(d["f"][0], r"w\u{200f}");
    }

    #[test]
    fn index_at_finds_the_first_op_at_or_after_a_time() {
        let ops: Vec<Op> = (0..5)
            .map(|i| op(i, 1, OpType::Invoke, json!(null)))
            .collect();
        assert_eq!(index_at(&ops, 1500), 1);
        assert_eq!(index_at(&ops, 1501), 2);
        assert_eq!(index_at(&ops, 1_000_000), 4);
    }
}
