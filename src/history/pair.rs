//! Pairing invocations with their completions.
//!
//! A process runs one operation at a time, so an invocation is completed by the
//! next completion of the same process. An `info` completion, or none at all,
//! leaves the operation open: it may have taken effect at any time after its
//! invocation, or never.
//!
//! Nemesis ops are not paired: Jepsen writes them as `info` pairs (or an
//! `invoke` then an `info`), and no checker treats them as client operations.

use super::op::{Op, OpType, Process};
use std::collections::HashMap;
use thiserror::Error;

/// How a paired operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    Fail,
    /// `info`, or no completion in the history: it may or may not have happened.
    Unknown,
}

/// One operation: its invocation and, if any, its completion (positions in the op slice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    pub invoke: usize,
    pub completion: Option<usize>,
    pub outcome: Outcome,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PairError {
    #[error("op {index}: process {process} completes an operation it never invoked")]
    CompletionWithoutInvoke { index: u64, process: Process },
    #[error(
        "op {index}: process {process} invokes again while its op {pending} is still open (a process runs one op at a time)"
    )]
    DoubleInvoke {
        index: u64,
        process: Process,
        pending: u64,
    },
}

/// Pairs every client invocation with its completion, in invocation order.
pub fn pair(ops: &[Op]) -> Result<Vec<Call>, PairError> {
    let mut calls: Vec<Call> = Vec::with_capacity(ops.len() / 2 + 1);
    // process -> position in `calls` of its open invocation
    let mut open: HashMap<Process, usize> = HashMap::new();
    for (pos, op) in ops.iter().enumerate().filter(|(_, op)| op.is_client()) {
        match op.kind {
            OpType::Invoke => {
                if let Some(&c) = open.get(&op.process) {
                    return Err(PairError::DoubleInvoke {
                        index: op.index,
                        process: op.process,
                        pending: ops[calls[c].invoke].index,
                    });
                }
                open.insert(op.process, calls.len());
                calls.push(Call {
                    invoke: pos,
                    completion: None,
                    outcome: Outcome::Unknown,
                });
            }
            kind => {
                let Some(c) = open.remove(&op.process) else {
                    return Err(PairError::CompletionWithoutInvoke {
                        index: op.index,
                        process: op.process,
                    });
                };
                calls[c].completion = Some(pos);
                calls[c].outcome = match kind {
                    OpType::Ok => Outcome::Ok,
                    OpType::Fail => Outcome::Fail,
                    _ => Outcome::Unknown,
                };
            }
        }
    }
    Ok(calls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(index: u64, process: u64, kind: OpType) -> Op {
        Op {
            index,
            time: index,
            process: Process::Client(process),
            kind,
            f: "read".into(),
            value: json!(null),
            node: None,
            error: None,
        }
    }

    #[test]
    fn pairs_interleaved_processes_and_leaves_missing_completions_unknown() {
        let ops = vec![
            op(0, 1, OpType::Invoke),
            op(1, 2, OpType::Invoke),
            op(2, 2, OpType::Fail),
            op(3, 1, OpType::Ok),
            op(4, 3, OpType::Invoke),
            op(5, 4, OpType::Invoke),
            op(6, 4, OpType::Info),
            Op {
                process: Process::Nemesis,
                ..op(7, 0, OpType::Info)
            },
        ];
        let calls = pair(&ops).unwrap();
        assert_eq!(
            calls,
            vec![
                Call {
                    invoke: 0,
                    completion: Some(3),
                    outcome: Outcome::Ok
                },
                Call {
                    invoke: 1,
                    completion: Some(2),
                    outcome: Outcome::Fail
                },
                Call {
                    invoke: 4,
                    completion: None,
                    outcome: Outcome::Unknown
                },
                Call {
                    invoke: 5,
                    completion: Some(6),
                    outcome: Outcome::Unknown
                },
            ]
        );
    }

    #[test]
    fn rejects_completion_without_invoke_and_double_invoke() {
        let e = pair(&[op(0, 1, OpType::Ok)]).unwrap_err();
        assert_eq!(
            e,
            PairError::CompletionWithoutInvoke {
                index: 0,
                process: Process::Client(1)
            }
        );
        let e = pair(&[op(0, 1, OpType::Invoke), op(1, 1, OpType::Invoke)]).unwrap_err();
        assert_eq!(
            e,
            PairError::DoubleInvoke {
                index: 1,
                process: Process::Client(1),
                pending: 0
            }
        );
    }
}
