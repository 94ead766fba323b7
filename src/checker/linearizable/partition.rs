//! From history ops to the parts the search checks: pair invocations with
//! completions, drop what cannot matter, and split by key.
//!
//! Dropped before the search: nemesis ops (`pair` skips them), `fail` ops (they certainly did not
//! happen). Ops whose outcome is unknown (`info`, or no completion) stay, open
//! ended. With keys, each key is checked on its own (P-compositionality: a
//! history is linearizable iff each key's sub-history is).

use super::InputError;
use crate::history::{Op, Outcome, pair};
use serde_json::Value;
use std::collections::HashMap;

/// How op values carry keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeysMode {
    /// Keyed iff every client op value is a two-element array `[key, value]`,
    /// and every cas value `[key, [from, to]]` (so a register history of only
    /// cas ops, `[from, to]`, is one object).
    #[default]
    Auto,
    /// The whole history is one object; values are used as they are.
    Single,
    /// Every value is `[key, value]`; each key is checked on its own.
    Tuple,
}

impl KeysMode {
    pub const NAMES: [&str; 3] = ["auto", "single", "tuple"];

    pub fn as_str(self) -> &'static str {
        match self {
            KeysMode::Auto => "auto",
            KeysMode::Single => "single",
            KeysMode::Tuple => "tuple",
        }
    }
}

impl std::str::FromStr for KeysMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(KeysMode::Auto),
            "single" => Ok(KeysMode::Single),
            "tuple" => Ok(KeysMode::Tuple),
            _ => Err(format!(
                "unknown keys mode {s:?}; expected one of {}",
                KeysMode::NAMES.join(", ")
            )),
        }
    }
}

/// One client operation that may have happened, with its key split off.
#[derive(Debug, Clone, Copy)]
pub struct Call<'h> {
    /// Position of the invocation in the op slice.
    pub invoke: usize,
    /// Position of the `ok` completion; `None` when the outcome is unknown.
    pub ok: Option<usize>,
    pub f: &'h str,
    /// The invocation's value, without the key.
    pub value: &'h Value,
    /// The `ok` completion's value, without the key.
    pub observed: Option<&'h Value>,
}

#[derive(Debug)]
pub struct Part<'h> {
    /// `None` when the history is not keyed.
    pub key: Option<&'h Value>,
    pub calls: Vec<Call<'h>>,
}

/// What [`split`] found.
#[derive(Debug)]
pub struct Split<'h> {
    pub parts: Vec<Part<'h>>,
    pub keyed: bool,
    /// Client operations (invocations).
    pub client_calls: usize,
    /// Of those, how many completed `fail` and were dropped.
    pub failed: usize,
    /// Of those, how many have an unknown outcome.
    pub unknown: usize,
}

pub fn split(ops: &[Op], keys: KeysMode) -> Result<Split<'_>, InputError> {
    let paired = pair(ops)?;
    let mut calls = Vec::with_capacity(paired.len());
    let (mut client_calls, mut failed, mut unknown) = (0, 0, 0);
    for c in paired {
        // `pair` leaves nemesis ops out: these are client operations.
        let op = &ops[c.invoke];
        client_calls += 1;
        match c.outcome {
            Outcome::Fail => failed += 1,
            Outcome::Unknown => {
                unknown += 1;
                calls.push(Call {
                    invoke: c.invoke,
                    ok: None,
                    f: &op.f,
                    value: &op.value,
                    observed: None,
                });
            }
            Outcome::Ok => {
                let done = c.completion.expect("an ok call has a completion");
                calls.push(Call {
                    invoke: c.invoke,
                    ok: Some(done),
                    f: &op.f,
                    value: &op.value,
                    observed: Some(&ops[done].value),
                });
            }
        }
    }
    let keyed = match keys {
        KeysMode::Single => false,
        KeysMode::Tuple => true,
        KeysMode::Auto => {
            !calls.is_empty()
                && calls.iter().all(|c| {
                    keyed_shape(c.f, c.value) && c.observed.is_none_or(|o| keyed_shape(c.f, o))
                })
        }
    };
    let parts = if keyed {
        by_key(ops, calls)?
    } else {
        vec![Part { key: None, calls }]
    };
    Ok(Split {
        parts,
        keyed,
        client_calls,
        failed,
        unknown,
    })
}

fn is_pair(v: &Value) -> bool {
    v.as_array().is_some_and(|a| a.len() == 2)
}

/// Whether `value` can be a keyed value of an `f` op: `[key, value]`, and
/// for a cas `[key, [from, to]]` (an unkeyed cas is `[from, to]`).
fn keyed_shape(f: &str, value: &Value) -> bool {
    match value.as_array().map(Vec::as_slice) {
        Some([_, v]) => f != "cas" || is_pair(v),
        _ => false,
    }
}

fn by_key<'h>(ops: &'h [Op], calls: Vec<Call<'h>>) -> Result<Vec<Part<'h>>, InputError> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut parts: Vec<Part<'h>> = Vec::new();
    for mut c in calls {
        let (key, value) = key_value(&ops[c.invoke], c.value)?;
        c.value = value;
        if let (Some(done), Some(observed)) = (c.ok, c.observed) {
            let (done_key, observed) = key_value(&ops[done], observed)?;
            if done_key != key {
                return Err(InputError::op(
                    &ops[done],
                    format!("completes an op on key {key} with key {done_key}"),
                ));
            }
            c.observed = Some(observed);
        }
        let at = *index.entry(key.to_string()).or_insert_with(|| {
            parts.push(Part {
                key: Some(key),
                calls: Vec::new(),
            });
            parts.len() - 1
        });
        parts[at].calls.push(c);
    }
    parts.sort_by(|a, b| key_order(a.key, b.key));
    Ok(parts)
}

fn key_value<'h>(op: &Op, value: &'h Value) -> Result<(&'h Value, &'h Value), InputError> {
    match value.as_array().map(Vec::as_slice) {
        Some([k, v]) => Ok((k, v)),
        _ => Err(InputError::op(
            op,
            format!("with keys, a value must be [key, value], got {value}"),
        )),
    }
}

/// Numbers by value, then everything else by its JSON text.
pub fn key_order(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    let rank = |v: Option<&Value>| {
        (
            v.and_then(Value::as_f64).is_none(),
            v.and_then(Value::as_f64),
            v.map(Value::to_string),
        )
    };
    let (ra, rb) = (rank(a), rank(b));
    ra.0.cmp(&rb.0)
        .then(ra.1.partial_cmp(&rb.1).unwrap_or(std::cmp::Ordering::Equal))
        .then(ra.2.cmp(&rb.2))
}
