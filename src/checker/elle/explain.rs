//! Explanations in words: transaction names, lists, each cycle edge as a
//! sentence, a cycle as text and as a Graphviz DOT graph.
//!
//! A transaction is named `T<index>` after its completion op's index in the
//! history (its invocation's if it never completed), so a reader can find it
//! with grep.

use super::Inference;
use super::cycle::{CycleFound, Step};
use super::graph::{ARB, Graph, PROCESS, REALTIME, RW, WR, WW, node_txn};
use crate::history::txn::{KeyId, KeyName, Txn, Txns};

/// `T12`.
pub fn tname(t: &Txn) -> String {
    format!("T{}", t.index())
}

/// A key as the explanations write it; a string key with control
/// characters or bidirectional overrides escaped (keys come from the history).
pub fn key_str(txns: &Txns, k: KeyId) -> String {
    match txns.key_name(k) {
        KeyName::Int(i) => i.to_string(),
        KeyName::Str(s) => crate::history::text::escape(s).into_owned(),
    }
}

/// `[1 2 3]`, or `[1 2 3 … 40] (40 elements)` when long.
pub fn fmt_list(l: &[i64]) -> String {
    const HEAD: usize = 8;
    let join = |xs: &[i64]| {
        xs.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    if l.len() <= HEAD + 2 {
        format!("[{}]", join(l))
    } else {
        format!(
            "[{} … {}] ({} elements)",
            join(&l[..HEAD]),
            l[l.len() - 1],
            l.len()
        )
    }
}

pub fn rel_name(rel: u8) -> &'static str {
    match rel {
        WW => "ww",
        WR => "wr",
        RW => "rw",
        PROCESS => "process",
        REALTIME => "realtime",
        ARB => "co",
        _ => "?",
    }
}

/// One edge of a cycle, explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeText {
    pub from: u32,
    pub to: u32,
    pub rel: u8,
    pub key: Option<KeyId>,
    pub text: String,
}

/// Explains every step of a cycle (steps are graph nodes; the result names
/// transactions by position in `Txns::txns`).
pub fn cycle_edges(g: &Graph, txns: &Txns, inf: &Inference, c: &CycleFound) -> Vec<EdgeText> {
    c.steps
        .iter()
        .map(|&Step { from, to, rel }| edge_text(g, txns, inf, from, to, rel))
        .collect()
}

/// One edge between graph nodes `from` → `to` of relation `rel`, in words.
pub fn edge_text(g: &Graph, txns: &Txns, inf: &Inference, from: u32, to: u32, rel: u8) -> EdgeText {
    let (a, b) = (g.node_txn[from as usize], g.node_txn[to as usize]);
    let (ta, tb) = (node_txn(g, txns, from), node_txn(g, txns, to));
    let (key, text) = match rel {
        PROCESS => (
            None,
            format!(
                "{} and {} were both issued by process {}, {} first and completed ok, so {} <process {}",
                tname(ta),
                tname(tb),
                ta.process,
                tname(ta),
                tname(ta),
                tname(tb)
            ),
        ),
        REALTIME => (
            None,
            format!(
                "{} completed (op {}) before {} was invoked (op {}), so {} <realtime {}",
                tname(ta),
                ta.complete_index.unwrap_or(ta.invoke_index),
                tname(tb),
                tb.invoke_index,
                tname(ta),
                tname(tb)
            ),
        ),
        _ => match inf.explain(txns, a, b, rel) {
            Some((k, t)) => (Some(k), t),
            None => (
                None,
                format!("{} <{} {}", tname(ta), rel_name(rel), tname(tb)),
            ),
        },
    };
    EdgeText {
        from: a,
        to: b,
        rel,
        key,
        text,
    }
}

/// The cycle as a paragraph: every edge, then the contradiction.
pub fn cycle_text(txns: &Txns, edges: &[EdgeText]) -> String {
    let mut out = String::new();
    for (i, e) in edges.iter().enumerate() {
        let lead = if i == 0 { "" } else { "Then " };
        out += &format!("{lead}{}.\n", capitalize_first(&e.text, i == 0));
    }
    if let Some(first) = edges.first() {
        let t = tname(&txns.txns[first.from as usize]);
        out += &format!("So {t} must come before itself: a contradiction.\n");
    }
    out
}

fn capitalize_first(s: &str, yes: bool) -> String {
    if !yes {
        return s.to_string();
    }
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// A Graphviz DOT graph of the cycle: transactions as boxes with their
/// micro-ops, edges labelled with relation and key.
pub fn cycle_dot(txns: &Txns, name: &str, edges: &[EdgeText]) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
        esc(name)
    );
    for e in edges {
        let t = &txns.txns[e.from as usize];
        out += &format!(
            "  \"{}\" [label=\"{} (process {})\\n{}\"];\n",
            tname(t),
            tname(t),
            t.process,
            esc(&txns.mops_json(t))
        );
    }
    for e in edges {
        let label = match e.key {
            Some(k) => format!("{} {}", rel_name(e.rel), key_str(txns, k)),
            None => rel_name(e.rel).to_string(),
        };
        let colour = match e.rel {
            RW => "red",
            PROCESS | REALTIME => "gray40",
            _ => "black",
        };
        out += &format!(
            "  \"{}\" -> \"{}\" [label=\"{}\", color={colour}, fontcolor={colour}];\n",
            tname(&txns.txns[e.from as usize]),
            tname(&txns.txns[e.to as usize]),
            esc(&label)
        );
    }
    out += "}\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_are_abbreviated() {
        assert_eq!(fmt_list(&[1, 2, 3]), "[1 2 3]");
        let l: Vec<i64> = (1..=40).collect();
        assert_eq!(fmt_list(&l), "[1 2 3 4 5 6 7 8 … 40] (40 elements)");
    }
}
