//! The counter checker: every read lies between what was surely added and
//! what may have been added.
//!
//! Clients `add` non-negative amounts and `read` the counter. A read must be
//! at least the sum of adds acknowledged before it was invoked, and at most
//! the sum of adds invoked before it completed (failed adds excluded; `info`
//! adds may count or not).

use super::evidence::{Cell, Evidence, Table};
use super::{HistoryChecker, Judgement, Verdict};
use crate::history::{Op, Outcome, pair};
use serde::{Deserialize, Serialize};

const EXAMPLES_MAX: usize = 32;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BadCounterRead {
    /// History index of the read's completion.
    pub index: u64,
    pub value: i64,
    pub lower: i64,
    pub upper: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct CounterResult {
    pub verdict: Verdict,
    pub reads_checked: usize,
    pub bad_reads: usize,
    pub bad_read_examples: Vec<BadCounterRead>,
    pub error: Option<String>,
}

/// An event on the time line; at equal times starts come before ends so the
/// bounds stay generous.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// An add was invoked: it may count from now on (upper bound).
    AddInvoked(i64),
    /// A read was invoked: take the lower bound now.
    ReadInvoked(usize),
    /// An add was acknowledged: it counts from now on (lower bound).
    AddAcked(i64),
    /// A read completed: take the upper bound now.
    ReadDone(usize),
}

pub fn check(ops: &[Op]) -> CounterResult {
    let fail = |e: String| CounterResult {
        error: Some(e),
        ..CounterResult::default()
    };
    let calls = match pair(ops) {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let mut events: Vec<(u64, Event)> = Vec::new();
    // (completion index, value, lower, upper) per ok read
    let mut reads: Vec<(u64, i64, i64, i64)> = Vec::new();
    for call in calls.iter().filter(|c| c.outcome != Outcome::Fail) {
        let inv = &ops[call.invoke];
        match (
            inv.f.as_str(),
            call.outcome,
            call.completion.map(|c| &ops[c]),
        ) {
            ("add", outcome, done) => {
                let Some(amount) = inv.value.as_i64().filter(|a| *a >= 0) else {
                    return fail(format!(
                        "add at index {} has amount {}, not a non-negative integer",
                        inv.index, inv.value
                    ));
                };
                events.push((inv.time, Event::AddInvoked(amount)));
                if let (Outcome::Ok, Some(done)) = (outcome, done) {
                    events.push((done.time, Event::AddAcked(amount)));
                }
            }
            ("read", Outcome::Ok, Some(done)) => {
                let Some(value) = done.value.as_i64() else {
                    return fail(format!(
                        "read at index {} returned {}, not an integer",
                        done.index, done.value
                    ));
                };
                events.push((inv.time, Event::ReadInvoked(reads.len())));
                events.push((done.time, Event::ReadDone(reads.len())));
                reads.push((done.index, value, 0, 0));
            }
            _ => {}
        }
    }
    events.sort();
    let (mut acked, mut invoked) = (0i64, 0i64);
    for (_, event) in events {
        match event {
            Event::AddInvoked(a) => invoked = invoked.saturating_add(a),
            Event::AddAcked(a) => acked = acked.saturating_add(a),
            Event::ReadInvoked(r) => reads[r].2 = acked,
            Event::ReadDone(r) => reads[r].3 = invoked,
        }
    }
    let mut result = CounterResult {
        reads_checked: reads.len(),
        ..CounterResult::default()
    };
    for &(index, value, lower, upper) in &reads {
        if value < lower || value > upper {
            result.bad_reads += 1;
            if result.bad_read_examples.len() < EXAMPLES_MAX {
                result.bad_read_examples.push(BadCounterRead {
                    index,
                    value,
                    lower,
                    upper,
                });
            }
        }
    }
    result.verdict = if result.bad_reads == 0 {
        Verdict::Valid
    } else {
        Verdict::Invalid
    };
    result
}

/// The counter checker, as a workload names it.
#[derive(Debug, Clone, Copy, Default)]
pub struct CounterChecker;

impl HistoryChecker for CounterChecker {
    fn name(&self) -> &'static str {
        "counter"
    }

    fn check(&self, ops: &[Op]) -> Judgement {
        judge(&check(ops))
    }
}

/// The counter's result in words and as evidence: each read out of its
/// bounds.
fn judge(r: &CounterResult) -> Judgement {
    let summary = match (&r.error, r.bad_read_examples.first()) {
        (Some(e), _) => format!("cannot check: {e}"),
        (None, None) => format!("{} reads, every one within its bounds", r.reads_checked),
        (None, Some(b)) => format!(
            "{} of {} reads out of bounds; first at op {}: {} not within [{}, {}]",
            r.bad_reads, r.reads_checked, b.index, b.value, b.lower, b.upper
        ),
    };
    let evidence = match &r.error {
        Some(e) => Evidence::new().fact("cannot check", e),
        None => Evidence::new()
            .fact("reads checked", r.reads_checked)
            .fact("out of bounds", r.bad_reads)
            .count("bad-read", r.bad_reads)
            .table(
                Table::new(
                    "Reads outside what the adds allow",
                    &[
                        "read",
                        "value",
                        "acknowledged before it",
                        "attempted before its end",
                    ],
                )
                .rows(&r.bad_read_examples, |b| {
                    vec![
                        Cell::op(b.index, None),
                        Cell::text(b.value.to_string()),
                        Cell::text(b.lower.to_string()),
                        Cell::text(b.upper.to_string()),
                    ]
                })
                .of(r.bad_reads, "bad reads"),
            ),
    };
    Judgement {
        verdict: r.verdict,
        summary,
        anomalies: if r.bad_reads > 0 {
            vec!["bad-read".into()]
        } else {
            Vec::new()
        },
        detail: super::detail(r),
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpType;
    use OpType::*;
    use serde_json::{Value, json};

    use crate::history::op::notation as h;

    #[test]
    fn reads_must_lie_between_acknowledged_and_attempted_sums() {
        let ops = h(&[
            (1, 0, Invoke, "add", json!(5)),
            (2, 0, Ok, "add", json!(5)),
            (3, 0, Invoke, "add", json!(3)),
            (4, 1, Invoke, "read", Value::Null),
            (5, 1, Ok, "read", json!(8)), // 5 <= 8 <= 8: fine (the info add may count)
            (6, 0, Info, "add", json!(3)),
            (7, 1, Invoke, "read", Value::Null),
            (8, 1, Ok, "read", json!(4)), // below the acknowledged 5
            (9, 2, Invoke, "add", json!(1)),
            (10, 2, Fail, "add", json!(1)),
            (11, 1, Invoke, "read", Value::Null),
            (12, 1, Ok, "read", json!(9)), // above 8: the failed add must not count
        ]);
        let r = check(&ops);
        assert_eq!(
            (r.verdict, r.reads_checked, r.bad_reads),
            (Verdict::Invalid, 3, 2)
        );
        assert_eq!(
            r.bad_read_examples,
            vec![
                BadCounterRead {
                    index: 7,
                    value: 4,
                    lower: 5,
                    upper: 8
                },
                BadCounterRead {
                    index: 11,
                    value: 9,
                    lower: 5,
                    upper: 8
                }
            ]
        );
        let mut fixed = ops.clone();
        fixed[7].value = json!(5);
        fixed[11].value = json!(8);
        assert_eq!(check(&fixed).verdict, Verdict::Valid);
    }
}
