//! Why a history is not linearizable, in terms people can follow: the op that
//! cannot be placed, the longest linearizable prefix the search found, the
//! model states it could be in just before that op, and the ops concurrent
//! with it.

use super::model::Model;
use super::search::{Entry, Stuck};
use crate::history::{Op, Process};
use std::fmt::Write;

/// How many ops of the prefix, counted from its end, are shown with states.
pub const PREFIX_TAIL: usize = 5;
/// How many concurrent ops are listed.
pub const MAX_CONCURRENT: usize = 12;

/// One operation as shown in an explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct OpInfo {
    /// History index of the invocation.
    pub index: u64,
    /// History index of the `ok` completion; `None` when the outcome is unknown.
    pub completion_index: Option<u64>,
    pub process: Process,
    /// The model's description, e.g. `read -> 3`.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PrefixStep {
    pub op: OpInfo,
    /// The model state right after this op.
    pub state_after: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The op that cannot be placed.
    pub op: OpInfo,
    /// The longest linearizable prefix found: history indices of the
    /// invocations, in linearization order.
    pub prefix: Vec<u64>,
    /// The last ops of the prefix with the state after each.
    pub prefix_tail: Vec<PrefixStep>,
    /// States the model could be in just before the op (from which every
    /// attempt to go on failed), at most [`super::search::MAX_STUCK_STATES`].
    pub states_before: Vec<String>,
    /// Ops whose intervals overlap the op's, at most [`MAX_CONCURRENT`].
    pub concurrent: Vec<OpInfo>,
    /// How many there are in all.
    pub concurrent_total: usize,
}

pub fn explain<M: Model>(
    ops: &[Op],
    model: &mut M,
    entries: &[Entry<M::Op>],
    stuck: &Stuck<M::State>,
) -> Explanation {
    // Replay the prefix for the states after its last ops.
    let mut state = model.init();
    let mut tail_states = Vec::new();
    for (i, &e) in stuck.prefix.iter().enumerate() {
        state = model
            .step(&state, &entries[e].op)
            .expect("the search only keeps legal prefixes");
        if i + PREFIX_TAIL >= stuck.prefix.len() {
            tail_states.push((e, state.clone()));
        }
    }
    let model = &*model;
    let info = |e: usize| {
        let entry = &entries[e];
        OpInfo {
            index: ops[entry.call].index,
            completion_index: entry.ret.map(|r| ops[r].index),
            process: ops[entry.call].process,
            text: model.describe_op(&entry.op),
        }
    };
    let me = &entries[stuck.op];
    let overlaps = |e: &Entry<M::Op>| {
        e.call < me.ret.unwrap_or(usize::MAX) && e.ret.is_none_or(|r| r > me.call)
    };
    let concurrent: Vec<usize> = (0..entries.len())
        .filter(|&e| e != stuck.op && overlaps(&entries[e]))
        .collect();
    Explanation {
        op: info(stuck.op),
        prefix: stuck
            .prefix
            .iter()
            .map(|&e| ops[entries[e].call].index)
            .collect(),
        prefix_tail: tail_states
            .iter()
            .map(|(e, s)| PrefixStep {
                op: info(*e),
                state_after: model.describe_state(s),
            })
            .collect(),
        // Distinct states may read the same (bookkeeping the model keeps in them).
        states_before: stuck.states.iter().fold(Vec::new(), |mut seen, s| {
            let text = model.describe_state(s);
            if !seen.contains(&text) {
                seen.push(text);
            }
            seen
        }),
        concurrent: concurrent
            .iter()
            .take(MAX_CONCURRENT)
            .map(|&e| info(e))
            .collect(),
        concurrent_total: concurrent.len(),
    }
}

impl OpInfo {
    /// `[74] process 2: read -> 3 (ok at [75])`
    pub fn line(&self) -> String {
        let end = match self.completion_index {
            Some(i) => format!("ok at [{i}]"),
            None => "outcome unknown".into(),
        };
        format!(
            "[{}] process {}: {} ({end})",
            self.index, self.process, self.text
        )
    }
}

impl Explanation {
    /// Several lines of readable text, each starting with `indent`.
    pub fn text(&self, indent: &str) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "{indent}cannot place {}", self.op.line());
        let _ = writeln!(
            t,
            "{indent}just before it the state can be: {}",
            self.states_before.join(", ")
        );
        if self.prefix.is_empty() {
            let _ = writeln!(t, "{indent}no op before it could be placed");
        } else {
            let _ = writeln!(
                t,
                "{indent}longest linearizable prefix found: {} ops, ending with",
                self.prefix.len()
            );
            for step in &self.prefix_tail {
                let _ = writeln!(t, "{indent}  {}  => {}", step.op.line(), step.state_after);
            }
        }
        if self.concurrent_total > 0 {
            let _ = writeln!(t, "{indent}concurrent with it:");
            for op in &self.concurrent {
                let _ = writeln!(t, "{indent}  {}", op.line());
            }
            if self.concurrent_total > self.concurrent.len() {
                let _ = writeln!(
                    t,
                    "{indent}  ... and {} more",
                    self.concurrent_total - self.concurrent.len()
                );
            }
        }
        t
    }
}
