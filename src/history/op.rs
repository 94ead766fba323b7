//! The operation model: one line of `history.jsonl`.
//!
//! It mirrors Jepsen's model so Jepsen histories import without loss. This file
//! is an API: changing a field name breaks every stored history.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// Whether an operation starts, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The client is about to send the operation.
    Invoke,
    /// It happened.
    Ok,
    /// It certainly did not happen.
    Fail,
    /// Unknown: it may have happened at any time after its invocation (timeout, crash).
    Info,
}

/// How a call to the system under test ended: what its completion records.
/// A client says which: `Fail` only when the operation certainly did not
/// happen, `Info` when it may have.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    Ok(Value),
    Fail(String),
    Info(String),
}

impl Ended {
    /// The completion's type, value and error: a `fail` or `info` keeps the
    /// invocation's value (what was attempted).
    pub fn into_parts(self, invoke_value: &Value) -> (OpType, Value, Option<Value>) {
        match self {
            Ended::Ok(value) => (OpType::Ok, value, None),
            Ended::Fail(e) => (OpType::Fail, invoke_value.clone(), Some(Value::from(e))),
            Ended::Info(e) => (OpType::Info, invoke_value.clone(), Some(Value::from(e))),
        }
    }
}

impl OpType {
    pub fn as_str(self) -> &'static str {
        match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        }
    }
}

/// Who issued an operation: a client worker (an integer) or the nemesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    Client(u64),
    Nemesis,
}

impl Serialize for Process {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(p) => s.serialize_u64(*p),
            Process::Nemesis => s.serialize_str("nemesis"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Process;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a non-negative integer or \"nemesis\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Process, E> {
                Ok(Process::Client(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Process, E> {
                u64::try_from(v)
                    .map(Process::Client)
                    .map_err(|_| E::custom(format!("process must not be negative, got {v}")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Process, E> {
                if v == "nemesis" {
                    Ok(Process::Nemesis)
                } else {
                    Err(E::custom(format!(
                        "process must be an integer or \"nemesis\", got \"{}\"",
                        super::text::excerpt(v)
                    )))
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Process::Client(p) => write!(f, "{p}"),
            Process::Nemesis => f.write_str("nemesis"),
        }
    }
}

/// One event of a history: an invocation or a completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history, from 0, without gaps.
    pub index: u64,
    /// Nanoseconds since the run started (the controller's monotonic clock).
    pub time: u64,
    pub process: Process,
    #[serde(rename = "type")]
    pub kind: OpType,
    /// The function: `read`, `write`, `cas`, `txn`, `transfer`, `add`, ...
    pub f: String,
    #[serde(default)]
    pub value: Value,
    /// Which host served the operation, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Why it failed or is unknown, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

impl Op {
    /// A client's op, with no node and no error: what generators and
    /// checker tests write.
    pub fn client(index: u64, time: u64, process: u64, kind: OpType, f: &str, value: Value) -> Op {
        Op {
            index,
            time,
            process: Process::Client(process),
            kind,
            f: f.to_string(),
            value,
            node: None,
            error: None,
        }
    }

    pub fn is_invoke(&self) -> bool {
        self.kind == OpType::Invoke
    }

    pub fn is_client(&self) -> bool {
        matches!(self.process, Process::Client(_))
    }
}

/// A history for checker tests, in a tiny notation: (time, client process,
/// type, f, value) per op, indexed in order.
#[cfg(test)]
pub fn notation(events: &[(u64, u64, OpType, &str, Value)]) -> Vec<Op> {
    events
        .iter()
        .enumerate()
        .map(|(i, (t, p, k, f, v))| Op::client(i as u64, *t, *p, *k, f, v.clone()))
        .collect()
}
