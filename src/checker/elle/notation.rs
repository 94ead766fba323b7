//! A tiny notation for writing transactional histories by hand, after
//! Elle's tests: `"ax1 ry12"` is a transaction that appends 1 to key x and
//! reads key y = [1 2]; `"wx3 rx3"` writes register x = 3 and reads 3.
//!
//! Micro-ops are separated by spaces: `a` append, `w` write, `r` read, then a
//! one-letter key, then the value. Appended and written values are whole
//! numbers (`ax12` appends 12). A list read lists one digit per element
//! (`rx123` = [1 2 3]); a register read is a whole number (`rx12` = 12). A
//! read with no value (`rx`) is nil. Keys are the letters as strings.
//!
//! [`History`] strings transactions into ops: each [`History::ok`] is an
//! invocation and its completion, so they run one after another in real
//! time; [`History::concurrent`] invokes several before completing any.

use crate::history::{Op, OpType, Process};
use serde_json::{Value, json};

/// Whether reads return lists (list-append) or single values (rw-register).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    List,
    Register,
}

/// Parses a transaction in the notation into a `txn` value. Panics on a
/// malformed string: this is for tests and examples written by hand.
pub fn txn(reads: Reads, s: &str) -> Value {
    let mops: Vec<Value> = s
        .split_whitespace()
        .map(|tok| {
            let mut cs = tok.chars();
            let f = cs.next().expect("a micro-op");
            let key = cs.next().expect("a key letter").to_string();
            let rest: String = cs.collect();
            let number = |r: &str| {
                r.parse::<i64>()
                    .unwrap_or_else(|_| panic!("bad value in {tok:?}"))
            };
            match f {
                'a' => json!(["append", key, number(&rest)]),
                'w' => json!(["w", key, number(&rest)]),
                'r' if rest.is_empty() => json!(["r", key, null]),
                'r' if reads == Reads::List => {
                    let l: Vec<i64> = rest
                        .chars()
                        .map(|c| {
                            c.to_digit(10)
                                .unwrap_or_else(|| panic!("bad element in {tok:?}"))
                                as i64
                        })
                        .collect();
                    json!(["r", key, l])
                }
                'r' => json!(["r", key, number(&rest)]),
                _ => panic!("unknown micro-op {tok:?}"),
            }
        })
        .collect();
    Value::Array(mops)
}

/// The same transaction as its invocation carries it: reads unknown.
fn invocation(v: &Value) -> Value {
    let Value::Array(mops) = v else {
        return v.clone();
    };
    Value::Array(
        mops.iter()
            .map(|m| match m.as_array().map(Vec::as_slice) {
                Some([f, k, _]) if f == "r" => json!(["r", k, null]),
                _ => m.clone(),
            })
            .collect(),
    )
}

/// A history under construction.
#[derive(Debug, Clone)]
pub struct History {
    reads: Reads,
    pub ops: Vec<Op>,
    /// The completion index of each transaction completed so far, in the
    /// order they were added: its name is `T<index>`.
    pub names: Vec<u64>,
}

impl History {
    pub fn list() -> History {
        History {
            reads: Reads::List,
            ops: Vec::new(),
            names: Vec::new(),
        }
    }

    pub fn register() -> History {
        History {
            reads: Reads::Register,
            ..History::list()
        }
    }

    fn push(&mut self, process: u64, kind: OpType, value: Value) {
        let index = self.ops.len() as u64;
        self.ops.push(Op {
            index,
            time: index * 1_000,
            process: Process::Client(process),
            kind,
            f: "txn".into(),
            value,
            node: None,
            error: None,
        });
    }

    /// Invokes a transaction and leaves it open.
    pub fn invoke(mut self, process: u64, t: &str) -> History {
        let v = invocation(&txn(self.reads, t));
        self.push(process, OpType::Invoke, v);
        self
    }

    /// Completes the open transaction of `process` (`ok` with the reads of
    /// `t`; `info` and `fail` repeat the invocation).
    pub fn complete(mut self, process: u64, kind: OpType, t: &str) -> History {
        let v = txn(self.reads, t);
        let v = if kind == OpType::Ok {
            v
        } else {
            invocation(&v)
        };
        self.push(process, kind, v);
        self.names.push(self.ops.len() as u64 - 1);
        self
    }

    /// A transaction that runs alone and commits.
    pub fn ok(self, process: u64, t: &str) -> History {
        self.invoke(process, t).complete(process, OpType::Ok, t)
    }

    /// A transaction whose outcome is unknown.
    pub fn info(self, process: u64, t: &str) -> History {
        self.invoke(process, t).complete(process, OpType::Info, t)
    }

    /// A transaction that certainly failed.
    pub fn fail(self, process: u64, t: &str) -> History {
        self.invoke(process, t).complete(process, OpType::Fail, t)
    }

    /// Transactions that all overlap in time: all invoked, then all ok.
    pub fn concurrent(mut self, txns: &[(u64, &str)]) -> History {
        for &(p, t) in txns {
            self = self.invoke(p, t);
        }
        for &(p, t) in txns {
            self = self.complete(p, OpType::Ok, t);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_notation() {
        assert_eq!(
            txn(Reads::List, "ax1 ry12 rz"),
            json!([["append", "x", 1], ["r", "y", [1, 2]], ["r", "z", null]])
        );
        assert_eq!(
            txn(Reads::Register, "wx12 rx12"),
            json!([["w", "x", 12], ["r", "x", 12]])
        );
        let h = History::list().ok(1, "ax1").invoke(2, "rx1");
        assert_eq!(h.ops[2].value, json!([["r", "x", null]]));
        assert_eq!(h.names, vec![1]);
    }
}
