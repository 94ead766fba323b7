//! The set checker (Jepsen's set-full): every acknowledged add survives.
//!
//! Clients `add` elements and `read` the whole set. An element is *known* from
//! the moment its add was acknowledged or a read first returned it. Of the
//! reads that began after that moment:
//! - all contain it: `stable`;
//! - some missed it but the last one has it: `stale` (it appeared late or
//!   vanished for a while: not linearizable, but not lost);
//! - the last one misses it: `lost`;
//! - there are none: `never-read`.
//!
//! An element read that no one tried to add (or whose add failed) is
//! `unexpected`. Lost or unexpected elements make the history invalid.
//! Cost: linear in the size of the history plus a binary search per element.

use super::evidence::{Cell, Evidence, Table};
use super::{HistoryChecker, Judgement, Verdict};
use crate::history::{Op, Outcome, pair};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

/// Examples kept per category; counts are always complete.
const EXAMPLES_MAX: usize = 32;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Lost {
    pub element: Value,
    /// History index of the add's completion (or invocation if it never completed).
    pub add_index: u64,
    /// History index of the last read, which did not contain the element.
    pub last_read_index: u64,
    /// Times (ns since the run started) of those two ops.
    pub add_time_ns: u64,
    pub last_read_time_ns: u64,
}

/// An element a read missed after it was known, though the last read has it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Stale {
    pub element: Value,
    /// History index and time of the add's completion (or invocation).
    pub add_index: u64,
    pub add_time_ns: u64,
    /// The first read that began after the element was known and missed it
    /// (its completion's index and time).
    pub missed_read_index: u64,
    pub missed_read_time_ns: u64,
}

/// An element read that no one tried to add, or whose add failed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Unexpected {
    pub element: Value,
    /// The first read that returned it (its completion's index and time).
    pub read_index: u64,
    pub read_time_ns: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct SetResult {
    pub verdict: Verdict,
    pub attempted: usize,
    pub acknowledged: usize,
    pub stable: usize,
    pub stale: usize,
    pub lost: usize,
    pub never_read: usize,
    pub unexpected: usize,
    /// Adds that ended `info` and that no read ever showed: may or may not have happened.
    pub indeterminate: usize,
    pub lost_examples: Vec<Lost>,
    pub stale_examples: Vec<Value>,
    pub unexpected_examples: Vec<Value>,
    /// The stale and unexpected examples with where and when they were seen.
    pub stale_details: Vec<Stale>,
    pub unexpected_details: Vec<Unexpected>,
    /// Set when the history could not be read as set operations.
    pub error: Option<String>,
}

struct Read {
    invoke_ns: u64,
    complete_ns: u64,
    index: u64,
}

struct Element {
    value: Value,
    add_index: u64,
    add_time_ns: u64,
    outcome: Outcome,
    /// Completion time of an acknowledged add.
    ack_ns: Option<u64>,
    /// Positions (in `reads`, sorted by invocation) of the reads that contained it.
    seen_in: Vec<usize>,
}

pub fn check(ops: &[Op]) -> SetResult {
    let calls = match pair(ops) {
        Ok(c) => c,
        Err(e) => {
            return SetResult {
                error: Some(e.to_string()),
                ..SetResult::default()
            };
        }
    };
    let mut elements: HashMap<String, Element> = HashMap::new();
    let mut reads: Vec<(Read, &Value)> = Vec::new();
    for call in &calls {
        let inv = &ops[call.invoke];
        let done = call.completion.map(|c| &ops[c]);
        match inv.f.as_str() {
            "add" => {
                let key = inv.value.to_string();
                let e = elements.entry(key).or_insert_with(|| Element {
                    value: inv.value.clone(),
                    add_index: done.unwrap_or(inv).index,
                    add_time_ns: done.unwrap_or(inv).time,
                    outcome: call.outcome,
                    ack_ns: None,
                    seen_in: Vec::new(),
                });
                e.outcome = call.outcome;
                if call.outcome == Outcome::Ok {
                    e.ack_ns = done.map(|d| d.time);
                }
            }
            "read" if call.outcome == Outcome::Ok => {
                let Some(done) = done else { continue };
                let read = Read {
                    invoke_ns: inv.time,
                    complete_ns: done.time,
                    index: done.index,
                };
                reads.push((read, &done.value));
            }
            _ => {}
        }
    }
    reads.sort_by_key(|(r, _)| r.invoke_ns);

    let mut result = SetResult::default();
    // Unexpected elements by their text, with the first read that returned each.
    let mut unexpected: std::collections::BTreeMap<String, (Value, usize)> = Default::default();
    for (pos, (_, value)) in reads.iter().enumerate() {
        let Value::Array(items) = value else {
            return SetResult {
                error: Some(format!(
                    "read at index {} returned {value}, not a list",
                    reads[pos].0.index
                )),
                ..SetResult::default()
            };
        };
        for item in items {
            match elements.get_mut(&item.to_string()) {
                Some(e) if e.outcome != Outcome::Fail => {
                    if e.seen_in.last() != Some(&pos) {
                        e.seen_in.push(pos);
                    }
                }
                _ => {
                    unexpected
                        .entry(item.to_string())
                        .or_insert_with(|| (item.clone(), pos));
                }
            }
        }
    }
    result.unexpected = unexpected.len();
    for (value, pos) in unexpected.into_values().take(EXAMPLES_MAX) {
        let read = &reads[pos].0;
        result.unexpected_details.push(Unexpected {
            element: value.clone(),
            read_index: read.index,
            read_time_ns: read.complete_ns,
        });
        result.unexpected_examples.push(value);
    }

    let mut attempted: Vec<&Element> = elements
        .values()
        .filter(|e| e.outcome != Outcome::Fail)
        .collect();
    attempted.sort_by_key(|e| e.add_index);
    result.attempted = attempted.len();
    for e in attempted {
        if e.ack_ns.is_some() {
            result.acknowledged += 1;
        }
        let first_seen_ns = e.seen_in.first().map(|&p| reads[p].0.complete_ns);
        let known_ns = match (e.ack_ns, first_seen_ns) {
            (Some(a), Some(s)) => a.min(s),
            (Some(t), None) | (None, Some(t)) => t,
            (None, None) => {
                result.indeterminate += 1;
                continue;
            }
        };
        // Reads that began after the element was known.
        let first = reads.partition_point(|(r, _)| r.invoke_ns <= known_ns);
        let after = reads.len() - first;
        if after == 0 {
            result.never_read += 1;
            continue;
        }
        let seen_after = e.seen_in.len() - e.seen_in.partition_point(|&p| p < first);
        let last = reads.len() - 1;
        if e.seen_in.last() != Some(&last) {
            result.lost += 1;
            if result.lost_examples.len() < EXAMPLES_MAX {
                result.lost_examples.push(Lost {
                    element: e.value.clone(),
                    add_index: e.add_index,
                    last_read_index: reads[last].0.index,
                    add_time_ns: e.add_time_ns,
                    last_read_time_ns: reads[last].0.complete_ns,
                });
            }
        } else if seen_after < after {
            result.stale += 1;
            if result.stale_examples.len() < EXAMPLES_MAX {
                let missed = &reads[first_missed(&e.seen_in, first)].0;
                result.stale_details.push(Stale {
                    element: e.value.clone(),
                    add_index: e.add_index,
                    add_time_ns: e.add_time_ns,
                    missed_read_index: missed.index,
                    missed_read_time_ns: missed.complete_ns,
                });
                result.stale_examples.push(e.value.clone());
            }
        } else {
            result.stable += 1;
        }
    }
    result.verdict = if result.lost > 0 || result.unexpected > 0 {
        Verdict::Invalid
    } else {
        Verdict::Valid
    };
    result
}

/// Jepsen's set-full, as a workload names it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetChecker;

impl HistoryChecker for SetChecker {
    fn name(&self) -> &'static str {
        "set"
    }

    fn check(&self, ops: &[Op]) -> Judgement {
        judge(&check(ops))
    }
}

/// The set's result in words and as evidence: the counts, and the lost,
/// stale and unexpected elements with the ops that show them.
fn judge(r: &SetResult) -> Judgement {
    let mut anomalies = Vec::new();
    if r.lost > 0 {
        anomalies.push("lost".to_string());
    }
    if r.unexpected > 0 {
        anomalies.push("unexpected".to_string());
    }
    let summary = match &r.error {
        Some(e) => format!("cannot check: {e}"),
        None => format!(
            "{} acknowledged of {} attempted: {} stable, {} stale, {} lost, {} never read, {} unexpected",
            r.acknowledged, r.attempted, r.stable, r.stale, r.lost, r.never_read, r.unexpected
        ),
    };
    Judgement {
        verdict: r.verdict,
        summary,
        anomalies,
        detail: super::detail(r),
        evidence: evidence(r),
    }
}

fn evidence(r: &SetResult) -> Evidence {
    if let Some(e) = &r.error {
        return Evidence::new().fact("cannot check", e);
    }
    let lost = Table::new(
        "Lost: acknowledged, then missing from the final read",
        &["element", "added", "final read, without it"],
    )
    .rows(&r.lost_examples, |l| {
        vec![
            Cell::value(&l.element),
            Cell::op(l.add_index, Some(l.add_time_ns)),
            Cell::op(l.last_read_index, Some(l.last_read_time_ns)),
        ]
    })
    .of(r.lost, "lost elements");
    let stale = Table::new(
        "Stale: missed by a read after it was known, present in the final read",
        &["element", "added", "missed by the read"],
    )
    .rows(&r.stale_details, |x| {
        vec![
            Cell::value(&x.element),
            Cell::op(x.add_index, Some(x.add_time_ns)),
            Cell::op(x.missed_read_index, Some(x.missed_read_time_ns)),
        ]
    })
    .of(r.stale, "stale elements");
    let unexpected = Table::new(
        "Unexpected: read, but never added (or the add failed)",
        &["element", "first read with it"],
    )
    .rows(&r.unexpected_details, |x| {
        vec![
            Cell::value(&x.element),
            Cell::op(x.read_index, Some(x.read_time_ns)),
        ]
    })
    .of(r.unexpected, "unexpected elements");
    Evidence::new()
        .fact("attempted", r.attempted)
        .fact("acknowledged", r.acknowledged)
        .fact("stable", r.stable)
        .fact("stale", r.stale)
        .fact("lost", r.lost)
        .fact("never read", r.never_read)
        .fact("unexpected", r.unexpected)
        .fact("indeterminate", r.indeterminate)
        .count("lost", r.lost)
        .count("unexpected", r.unexpected)
        .table(lost)
        .table(stale)
        .table(unexpected)
}

/// The first read position at or after `from` that is not in `seen_in`
/// (sorted positions). The caller knows there is one.
fn first_missed(seen_in: &[usize], from: usize) -> usize {
    let mut j = seen_in.partition_point(|&p| p < from);
    let mut pos = from;
    while seen_in.get(j) == Some(&pos) {
        j += 1;
        pos += 1;
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpType;
    use serde_json::json;

    use crate::history::op::notation as h;
    use OpType::*;

    #[test]
    fn classifies_stable_stale_lost_never_read_unexpected_and_indeterminate() {
        let ops = h(&[
            (1, 0, Invoke, "add", json!(1)),
            (2, 0, Ok, "add", json!(1)), // 1: acked, in every later read: stable
            (3, 0, Invoke, "add", json!(2)),
            (4, 0, Ok, "add", json!(2)), // 2: acked, missing from the first later read, then present: stale
            (5, 0, Invoke, "add", json!(3)),
            (6, 0, Ok, "add", json!(3)), // 3: acked, missing from the final read: lost
            (7, 0, Invoke, "add", json!(4)),
            (8, 0, Info, "add", json!(4)), // 4: unknown and never seen: indeterminate
            (9, 0, Invoke, "add", json!(5)),
            (10, 0, Fail, "add", json!(5)), // 5: failed yet read: unexpected
            (11, 1, Invoke, "read", Value::Null),
            (12, 1, Ok, "read", json!([1, 3, 5, 99])), // 99: never added: unexpected
            (13, 1, Invoke, "read", Value::Null),
            (14, 1, Ok, "read", json!([1, 2])),
            (15, 0, Invoke, "add", json!(6)),
            (16, 0, Ok, "add", json!(6)), // 6: acked after the last read began: never-read
        ]);
        let r = check(&ops);
        assert_eq!(r.error, None);
        assert_eq!(
            (
                r.attempted,
                r.acknowledged,
                r.stable,
                r.stale,
                r.lost,
                r.never_read,
                r.unexpected,
                r.indeterminate
            ),
            (5, 4, 1, 1, 1, 1, 2, 1)
        );
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(
            r.lost_examples,
            vec![Lost {
                element: json!(3),
                add_index: 5,
                last_read_index: 13,
                add_time_ns: 6,
                last_read_time_ns: 14,
            }]
        );
        assert_eq!(r.stale_examples, vec![json!(2)]);
        assert_eq!(r.unexpected_examples, vec![json!(5), json!(99)]);
        assert_eq!(
            r.stale_details,
            vec![Stale {
                element: json!(2),
                add_index: 3,
                add_time_ns: 4,
                missed_read_index: 11,
                missed_read_time_ns: 12,
            }]
        );
        let unexpected: Vec<(Value, u64)> = r
            .unexpected_details
            .iter()
            .map(|u| (u.element.clone(), u.read_time_ns))
            .collect();
        assert_eq!(unexpected, vec![(json!(5), 12), (json!(99), 12)]);
    }

    #[test]
    fn an_info_add_that_a_read_shows_is_known_and_must_stay() {
        let ops = h(&[
            (1, 0, Invoke, "add", json!(7)),
            (2, 0, Info, "add", json!(7)),
            (3, 1, Invoke, "read", Value::Null),
            (4, 1, Ok, "read", json!([7])),
            (5, 1, Invoke, "read", Value::Null),
            (6, 1, Ok, "read", json!([7])),
        ]);
        let r = check(&ops);
        assert_eq!((r.verdict, r.stable, r.lost), (Verdict::Valid, 1, 0));
        let mut lost = ops.clone();
        lost[5].value = json!([]);
        let r = check(&lost);
        assert_eq!((r.verdict, r.lost), (Verdict::Invalid, 1));
    }
}
