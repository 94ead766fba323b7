//! A tiny notation for register histories, so tests and examples read short.
//!
//! Tokens, separated by spaces, one event each, in history order:
//! - `a:w1` process `a` invokes a write of 1 (`a:w-` writes null)
//! - `a:r` process `a` invokes a read
//! - `a:c1,2` process `a` invokes a cas from 1 to 2
//! - `a:w1@7` the same on key 7: the value becomes `[7, 1]`
//! - `a.` a's op completes ok; a read completes with its value: `a=3`, `a=-` (null)
//! - `a?` completes info; `a!` completes fail
//!
//! So `"a:w1 b:r a. b=1"` is a write of 1 and a concurrent read that saw it.
//! Processes `a`..`z` are clients 0..25. Bad notation panics: it is for tests.

use crate::history::{Op, OpType};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Builds the history `text` describes (see the module doc).
pub fn history(text: &str) -> Vec<Op> {
    let mut ops = Vec::new();
    // process -> (f, invocation value, key)
    let mut open: HashMap<u64, (String, Value, Option<i64>)> = HashMap::new();
    for token in text.split_whitespace() {
        let mut chars = token.chars();
        let p = chars.next().expect("a token starts with a process letter");
        assert!(p.is_ascii_lowercase(), "process must be a..z in {token:?}");
        let process = p as u64 - 'a' as u64;
        let rest = chars.as_str();
        let index = ops.len() as u64;
        let op = |kind, f: &str, value| Op::client(index, index, process, kind, f, value);
        if let Some(call) = rest.strip_prefix(':') {
            let (call, key) = match call.split_once('@') {
                Some((c, k)) => (c, Some(k.parse::<i64>().expect("a key is an integer"))),
                None => (call, None),
            };
            let (f, value) = match (&call[..1], &call[1..]) {
                ("r", "") => ("read", Value::Null),
                ("w", v) => ("write", scalar(v)),
                ("c", v) => {
                    let (from, to) = v.split_once(',').expect("cas is c<from>,<to>");
                    ("cas", json!([scalar(from), scalar(to)]))
                }
                _ => panic!("unknown call {token:?}"),
            };
            assert!(
                open.insert(process, (f.into(), value.clone(), key))
                    .is_none(),
                "{token:?}: process busy"
            );
            ops.push(op(OpType::Invoke, f, keyed(key, value)));
        } else {
            let (f, value, key) = open
                .remove(&process)
                .unwrap_or_else(|| panic!("{token:?}: nothing open"));
            let (kind, value) = match rest {
                "." => (OpType::Ok, value),
                "?" => (OpType::Info, value),
                "!" => (OpType::Fail, value),
                _ => (
                    OpType::Ok,
                    scalar(
                        rest.strip_prefix('=')
                            .unwrap_or_else(|| panic!("bad completion {token:?}")),
                    ),
                ),
            };
            ops.push(op(kind, &f, keyed(key, value)));
        }
    }
    ops
}

fn scalar(text: &str) -> Value {
    if text == "-" {
        Value::Null
    } else {
        json!(text.parse::<i64>().expect("values are integers or -"))
    }
}

fn keyed(key: Option<i64>, value: Value) -> Value {
    match key {
        Some(k) => json!([k, value]),
        None => value,
    }
}
