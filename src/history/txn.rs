//! Transactions in compact, typed form: the `txn` operations of a history,
//! paired invocation to completion, with their micro-ops decoded once.
//!
//! Transactional checkers (Elle) read this instead of [`Op`]s. A million
//! transactions as `Op`s with `serde_json::Value` payloads take gigabytes;
//! here a micro-op takes 24 bytes and a read element 8. [`read_jsonl`] parses
//! a JSONL history straight into this form, on all cores, without building a
//! `Value` per op; [`Txns::from_ops`] converts ops from any importer.
//!
//! Micro-ops are `["append", k, v]`, `["w", k, v]` and `["r", k, value]`
//! (DESIGN.md). Keys are integers or strings; written values are integers.
//! Only client ops with `f == "txn"` are transactions: nemesis ops and other
//! functions are skipped. Not here: what the ops mean (that is the checker's).

use super::jsonl::HistoryError;
use super::op::{Op, OpType, Process};
use super::pair::Outcome;
use super::text::{bad_utf8_at, clip_message, excerpt};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use thiserror::Error;

/// A key, interned: an index into [`Txns::key_name`].
pub type KeyId = u32;

/// A key as the history wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyName {
    Int(i64),
    Str(String),
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            KeyName::Int(k) => write!(f, "{k}"),
            KeyName::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// A run of read elements in [`Txns::elements`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elements {
    pub start: u32,
    pub len: u32,
}

/// One micro-op of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mop {
    Append {
        key: KeyId,
        value: i64,
    },
    Write {
        key: KeyId,
        value: i64,
    },
    /// `values` is `None` for a `null` read, and for every read of a
    /// transaction that did not complete `ok` (its reads are unknown).
    /// `scalar` tells a register read (`5`) from a list read (`[5]`).
    Read {
        key: KeyId,
        values: Option<Elements>,
        scalar: bool,
    },
}

impl Mop {
    pub fn key(&self) -> KeyId {
        match *self {
            Mop::Append { key, .. } | Mop::Write { key, .. } | Mop::Read { key, .. } => key,
        }
    }
}

/// One transaction: its invocation and, if any, its completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub process: u64,
    pub outcome: Outcome,
    pub invoke_index: u64,
    pub complete_index: Option<u64>,
    pub invoke_time: u64,
    pub complete_time: Option<u64>,
    /// Positions of the invocation and completion among the history's
    /// events, in file order: what "completed before invoked" compares.
    pub invoke_seq: u32,
    pub complete_seq: Option<u32>,
    mops_start: u32,
    mops_len: u32,
}

impl Txn {
    /// The index that names this transaction: its completion's, as Elle does,
    /// or its invocation's when it never completed.
    pub fn index(&self) -> u64 {
        self.complete_index.unwrap_or(self.invoke_index)
    }
}

/// Every transaction of a history, in invocation order, with shared storage
/// for micro-ops, read elements and key names.
#[derive(Debug, Default, Clone)]
pub struct Txns {
    pub txns: Vec<Txn>,
    mops: Vec<Mop>,
    elements: Vec<i64>,
    keys: Vec<KeyName>,
}

impl Txns {
    pub fn mops(&self, t: &Txn) -> &[Mop] {
        &self.mops[t.mops_start as usize..(t.mops_start + t.mops_len) as usize]
    }

    pub fn elements(&self, e: Elements) -> &[i64] {
        &self.elements[e.start as usize..(e.start + e.len) as usize]
    }

    /// The elements a read saw, `None` for a nil or unknown read.
    pub fn read_values(&self, m: &Mop) -> Option<&[i64]> {
        match *m {
            Mop::Read {
                values: Some(e), ..
            } => Some(self.elements(e)),
            _ => None,
        }
    }

    pub fn key_name(&self, k: KeyId) -> &KeyName {
        &self.keys[k as usize]
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// A transaction's micro-ops as the history writes them:
    /// `[["append",7,4],["r",7,[1,2]]]`.
    pub fn mops_json(&self, t: &Txn) -> String {
        let mut out = String::from("[");
        for (i, m) in self.mops(t).iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let key = match self.key_name(m.key()) {
                KeyName::Int(k) => k.to_string(),
                KeyName::Str(s) => Value::String(s.clone()).to_string(),
            };
            match *m {
                Mop::Append { value, .. } => out += &format!("[\"append\",{key},{value}]"),
                Mop::Write { value, .. } => out += &format!("[\"w\",{key},{value}]"),
                Mop::Read { values, scalar, .. } => {
                    let v = match values {
                        None => "null".to_string(),
                        Some(e) if scalar => self.elements(e)[0].to_string(),
                        Some(e) => format!("{:?}", self.elements(e)).replace(' ', ""),
                    };
                    out += &format!("[\"r\",{key},{v}]");
                }
            }
        }
        out.push(']');
        out
    }

    /// Converts the `txn` ops of a history (from any importer).
    pub fn from_ops(ops: &[Op]) -> Result<Txns, TxnError> {
        let mut b = Builder::default();
        for op in ops {
            let err = |message| TxnError {
                index: op.index,
                message,
            };
            if let Some(event) = event_of(op).map_err(err)? {
                b.push(event)?;
            }
        }
        Ok(b.finish())
    }
}

/// A transaction op that makes no sense, named by its op index.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("op {index}: {message}")]
pub struct TxnError {
    pub index: u64,
    pub message: String,
}

fn is_txn(process: Process, f: &str) -> bool {
    matches!(process, Process::Client(_)) && f == "txn"
}

/// The event an op is, or None if it is not a client transaction.
fn event_of(op: &Op) -> Result<Option<Event>, String> {
    if !is_txn(op.process, &op.f) {
        return Ok(None);
    }
    let mops = match op.kind {
        // Only an ok completion tells anything new; the others keep the
        // invocation's micro-ops, whatever value they carry.
        OpType::Info | OpType::Fail => None,
        _ => Some(mops_from_value(&op.value)?),
    };
    Ok(Some(Event {
        index: op.index,
        time: op.time,
        process: op.process,
        kind: op.kind,
        mops,
    }))
}

/// A micro-op as parsed, before interning.
#[derive(Debug, Clone, PartialEq)]
enum RawMop {
    Append(KeyName, i64),
    Write(KeyName, i64),
    Read(KeyName, RawRead),
}

#[derive(Debug, Clone, PartialEq)]
enum RawRead {
    Nil,
    Scalar(i64),
    List(Vec<i64>),
}

fn mops_from_value(v: &Value) -> Result<Vec<RawMop>, String> {
    let Value::Array(mops) = v else {
        return Err(format!(
            "a txn value must be an array of micro-ops, got {}",
            excerpt(&v.to_string())
        ));
    };
    mops.iter().map(mop_from_value).collect()
}

fn mop_from_value(v: &Value) -> Result<RawMop, String> {
    let bad = || {
        format!(
            "a micro-op must be [\"append\"|\"r\"|\"w\", key, value] with integer values, got {}",
            excerpt(&v.to_string())
        )
    };
    let Some([f, k, x]) = v.as_array().map(Vec::as_slice) else {
        return Err(bad());
    };
    let key = match k {
        Value::Number(n) => KeyName::Int(n.as_i64().ok_or_else(bad)?),
        Value::String(s) => KeyName::Str(s.clone()),
        _ => return Err(bad()),
    };
    match f.as_str() {
        Some("append") => Ok(RawMop::Append(key, x.as_i64().ok_or_else(bad)?)),
        Some("w") => Ok(RawMop::Write(key, x.as_i64().ok_or_else(bad)?)),
        Some("r") => {
            let read = match x {
                Value::Null => RawRead::Nil,
                Value::Number(n) => RawRead::Scalar(n.as_i64().ok_or_else(bad)?),
                Value::Array(xs) => RawRead::List(
                    xs.iter()
                        .map(|x| x.as_i64().ok_or_else(bad))
                        .collect::<Result<_, _>>()?,
                ),
                _ => return Err(bad()),
            };
            Ok(RawMop::Read(key, read))
        }
        _ => Err(bad()),
    }
}

/// One invocation or completion of a transaction.
struct Event {
    index: u64,
    time: u64,
    process: Process,
    kind: OpType,
    /// `None`: the completion carries no value; keep the invocation's.
    mops: Option<Vec<RawMop>>,
}

/// A fast hasher for the builder's maps (keys and process numbers come
/// from the history, and a slow DoS-resistant hash shows on a million
/// transactions): multiply-rotate over the written words.
#[derive(Default, Clone, Copy)]
struct WordHasher(u64);

impl std::hash::Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_i64(&mut self, w: i64) {
        self.write_u64(w as u64);
    }
    fn write_usize(&mut self, w: usize) {
        self.write_u64(w as u64);
    }
    fn write_isize(&mut self, w: isize) {
        self.write_u64(w as u64);
    }
}

type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<WordHasher>>;

/// Pairs events into transactions and interns keys.
#[derive(Default)]
struct Builder {
    out: Txns,
    key_ids: FastMap<KeyName, KeyId>,
    /// process -> its open transaction (position in `out.txns`)
    open: FastMap<u64, usize>,
    seq: u32,
}

impl Builder {
    fn push(&mut self, e: Event) -> Result<(), TxnError> {
        let Process::Client(process) = e.process else {
            unreachable!("only client txn ops are pushed");
        };
        let err = |message: String| TxnError {
            index: e.index,
            message,
        };
        let seq = self.seq;
        self.seq = self
            .seq
            .checked_add(1)
            .ok_or_else(|| err("more than 4 billion transaction events".into()))?;
        if e.kind == OpType::Invoke {
            if let Some(&t) = self.open.get(&process) {
                return Err(err(format!(
                    "process {process} invokes again while its op {} is still open (a process runs one op at a time)",
                    self.out.txns[t].invoke_index
                )));
            }
            let mops = e
                .mops
                .ok_or_else(|| err("an invocation needs a value".into()))?;
            let (mops_start, mops_len) = self.add_mops(mops, false);
            self.open.insert(process, self.out.txns.len());
            self.out.txns.push(Txn {
                process,
                outcome: Outcome::Unknown,
                invoke_index: e.index,
                complete_index: None,
                invoke_time: e.time,
                complete_time: None,
                invoke_seq: seq,
                complete_seq: None,
                mops_start,
                mops_len,
            });
            return Ok(());
        }
        let Some(t) = self.open.remove(&process) else {
            return Err(err(format!(
                "process {process} completes a transaction it never invoked"
            )));
        };
        let outcome = match e.kind {
            OpType::Ok => Outcome::Ok,
            OpType::Fail => Outcome::Fail,
            _ => Outcome::Unknown,
        };
        let txn = &mut self.out.txns[t];
        txn.outcome = outcome;
        txn.complete_index = Some(e.index);
        txn.complete_time = Some(e.time);
        txn.complete_seq = Some(seq);
        let (start, len) = (txn.mops_start, txn.mops_len);
        // Only an ok completion tells what the reads saw; for the others the
        // invocation's writes are what may have happened.
        if let (OpType::Ok, Some(mops)) = (e.kind, e.mops) {
            if mops.len() != len as usize {
                return Err(err(format!(
                    "the completion has {} micro-ops but the invocation (op {}) had {len}",
                    mops.len(),
                    self.out.txns[t].invoke_index
                )));
            }
            let before: Vec<Mop> = self.out.mops[start as usize..(start + len) as usize].to_vec();
            let (new_start, _) = self.add_mops(mops, true);
            for (i, old) in before.iter().enumerate() {
                let new = self.out.mops[new_start as usize + i];
                let same = match (old, &new) {
                    (Mop::Read { key: a, .. }, Mop::Read { key: b, .. }) => a == b,
                    _ => *old == new,
                };
                if !same {
                    return Err(err(format!(
                        "micro-op {i} of the completion differs from the invocation's (op {})",
                        self.out.txns[t].invoke_index
                    )));
                }
            }
            // Keep the completion's mops in place of the invocation's.
            self.out.mops.copy_within(
                new_start as usize..new_start as usize + len as usize,
                start as usize,
            );
            self.out.mops.truncate(new_start as usize);
        }
        Ok(())
    }

    /// Interns and stores micro-ops; reads keep their values only if `reads_known`.
    fn add_mops(&mut self, mops: Vec<RawMop>, reads_known: bool) -> (u32, u32) {
        let start = self.out.mops.len() as u32;
        for m in mops {
            let mop = match m {
                RawMop::Append(k, value) => Mop::Append {
                    key: self.intern(k),
                    value,
                },
                RawMop::Write(k, value) => Mop::Write {
                    key: self.intern(k),
                    value,
                },
                RawMop::Read(k, r) => {
                    let key = self.intern(k);
                    let (values, scalar) = match r {
                        _ if !reads_known => (None, false),
                        RawRead::Nil => (None, false),
                        RawRead::Scalar(v) => (Some(self.add_elements(&[v])), true),
                        RawRead::List(vs) => (Some(self.add_elements(&vs)), false),
                    };
                    Mop::Read {
                        key,
                        values,
                        scalar,
                    }
                }
            };
            self.out.mops.push(mop);
        }
        (start, self.out.mops.len() as u32 - start)
    }

    fn add_elements(&mut self, vs: &[i64]) -> Elements {
        let start = self.out.elements.len() as u32;
        self.out.elements.extend_from_slice(vs);
        Elements {
            start,
            len: vs.len() as u32,
        }
    }

    fn intern(&mut self, k: KeyName) -> KeyId {
        if let Some(&id) = self.key_ids.get(&k) {
            return id;
        }
        let id = self.out.keys.len() as KeyId;
        self.out.keys.push(k.clone());
        self.key_ids.insert(k, id);
        id
    }

    fn finish(self) -> Txns {
        self.out
    }
}

// ---------------------------------------------------------------------------
// The fast JSONL path: typed serde straight into RawMops, in parallel chunks.

/// What [`read_jsonl`] gives.
#[derive(Debug, Default)]
pub struct ReadTxns {
    pub txns: Txns,
    /// As [`super::ReadHistory::truncated_line`]: a cut-off last line.
    pub truncated_line: Option<usize>,
}

/// Reads the transactions of a JSONL history without building `Op`s: lines
/// are parsed in parallel chunks with typed serde, then paired in order.
/// Errors name the file and line, as [`super::jsonl::read_file`] does.
pub fn read_jsonl(path: &Path) -> Result<ReadTxns, HistoryError> {
    let bytes = std::fs::read(path).map_err(|source| HistoryError::Io {
        path: path.into(),
        source,
    })?;
    read_jsonl_bytes(&bytes, path)
}

/// [`read_jsonl`] over bytes in memory; `path` only names the source in errors.
pub fn read_jsonl_bytes(bytes: &[u8], path: &Path) -> Result<ReadTxns, HistoryError> {
    use rayon::prelude::*;
    // Chunks of about 4 MB, parsed a batch at a time on all cores and paired
    // in order, so parsed-but-unpaired events never pile up.
    let chunks = split_lines(bytes, bytes.len() / (4 << 20) + 1);
    let batch = rayon::current_num_threads() * 2;
    let mut b = Builder::default();
    let mut truncated_line = None;
    let ends_with_newline = bytes.last().is_none_or(|&c| c == b'\n');
    let total = chunks.len();
    'batches: for (bi, group) in chunks.chunks(batch).enumerate() {
        let parsed: Vec<_> = group
            .par_iter()
            .map(|&(first_line, chunk)| parse_chunk(chunk, first_line, path))
            .collect();
        for (j, chunk) in parsed.into_iter().enumerate() {
            let events = match chunk {
                Ok(events) => events,
                // A cut-off last line is truncation, as in `jsonl::read`.
                Err(HistoryError::Malformed { line, .. })
                    if bi * batch + j + 1 == total
                        && !ends_with_newline
                        && line == last_line(bytes) =>
                {
                    truncated_line = Some(line);
                    break 'batches;
                }
                Err(e) => return Err(e),
            };
            for (line, event) in events {
                if let Some(event) = event {
                    b.push(event).map_err(|e| HistoryError::Malformed {
                        path: path.into(),
                        line,
                        column: 1,
                        message: e.message,
                    })?;
                }
            }
        }
    }
    Ok(ReadTxns {
        txns: b.finish(),
        truncated_line,
    })
}

/// The number of the last line (1-based) of a text.
fn last_line(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&c| c == b'\n').count() + 1
}

/// Splits text into about `n` chunks of whole lines, each with the number of
/// its first line.
fn split_lines(bytes: &[u8], n: usize) -> Vec<(usize, &[u8])> {
    let target = bytes.len() / n.max(1) + 1;
    let mut out = Vec::with_capacity(n + 1);
    let (mut start, mut line) = (0usize, 1usize);
    while start < bytes.len() {
        let mut end = (start + target).min(bytes.len());
        while end < bytes.len() && bytes[end - 1] != b'\n' {
            end += 1;
        }
        let chunk = &bytes[start..end];
        out.push((line, chunk));
        line += chunk.iter().filter(|&&c| c == b'\n').count();
        start = end;
    }
    out
}

/// Parses the lines of one chunk: `None` for lines that are not transactions.
fn parse_chunk(
    chunk: &[u8],
    first_line: usize,
    path: &Path,
) -> Result<Vec<(usize, Option<Event>)>, HistoryError> {
    let mut out = Vec::with_capacity(chunk.len() / 64);
    for (i, text) in chunk.split(|&c| c == b'\n').enumerate() {
        let line = first_line + i;
        let text = text.trim_ascii();
        if text.is_empty() {
            continue;
        }
        out.push((line, parse_line(text, line, path)?));
    }
    Ok(out)
}

fn parse_line(text: &[u8], line: usize, path: &Path) -> Result<Option<Event>, HistoryError> {
    match serde_json::from_slice::<TxnLine>(text) {
        Ok(l) if is_txn(l.process, &l.f) => {
            let mops = match (l.kind, l.value) {
                (OpType::Info | OpType::Fail, _) => None,
                (_, Some(v)) => Some(v.0),
                (_, None) => {
                    return Err(malformed(path, line, 1, "a txn op needs a value".into()));
                }
            };
            Ok(Some(Event {
                index: l.index,
                time: l.time,
                process: l.process,
                kind: l.kind,
                mops,
            }))
        }
        Ok(_) => Ok(None),
        // Not a typed txn line: a nemesis op with any value, or a mistake.
        // The generic parse tells which, with the right error.
        Err(_) => match serde_json::from_slice::<Op>(text) {
            Ok(op) => event_of(&op).map_err(|m| malformed(path, line, 1, m)),
            // Say exactly where the text stops being UTF-8.
            Err(_) if let Err(u) = std::str::from_utf8(text) => {
                let bad = bad_utf8_at(text, u.valid_up_to());
                Err(malformed(
                    path,
                    line,
                    bad.column,
                    format!("not valid UTF-8: byte 0x{:02x}", bad.byte),
                ))
            }
            Err(e) => Err(malformed(
                path,
                line,
                e.column(),
                format!("not a history op: {}", clip_message(&e.to_string())),
            )),
        },
    }
}

fn malformed(path: &Path, line: usize, column: usize, message: String) -> HistoryError {
    HistoryError::Malformed {
        path: path.into(),
        line,
        column,
        message,
    }
}

/// A history line read with types: the value must be micro-ops (or null).
#[derive(Deserialize)]
struct TxnLine<'a> {
    index: u64,
    time: u64,
    process: Process,
    #[serde(rename = "type")]
    kind: OpType,
    #[serde(borrow)]
    f: std::borrow::Cow<'a, str>,
    #[serde(default)]
    value: Option<TypedMops>,
}

struct TypedMops(Vec<RawMop>);

impl<'de> Deserialize<'de> for TypedMops {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TypedMops;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of micro-ops")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TypedMops, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4));
                while let Some(m) = seq.next_element::<TypedMop>()? {
                    out.push(m.0);
                }
                Ok(TypedMops(out))
            }
        }
        d.deserialize_seq(V)
    }
}

struct TypedMop(RawMop);

impl<'de> Deserialize<'de> for TypedMop {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TypedMop;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a micro-op [f, key, value]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TypedMop, A::Error> {
                let missing = || de::Error::custom("a micro-op has three elements");
                let f: std::borrow::Cow<'de, str> = seq.next_element()?.ok_or_else(missing)?;
                let TypedKey(key) = seq.next_element::<TypedKey>()?.ok_or_else(missing)?;
                let mop = match &*f {
                    "append" => RawMop::Append(key, seq.next_element()?.ok_or_else(missing)?),
                    "w" => RawMop::Write(key, seq.next_element()?.ok_or_else(missing)?),
                    "r" => {
                        let r: Option<TypedRead> = seq.next_element()?.ok_or_else(missing)?;
                        RawMop::Read(key, r.map_or(RawRead::Nil, |r| r.0))
                    }
                    other => {
                        return Err(de::Error::custom(format!(
                            "unknown micro-op \"{}\"",
                            excerpt(other)
                        )));
                    }
                };
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("a micro-op has three elements"));
                }
                Ok(TypedMop(mop))
            }
        }
        d.deserialize_seq(V)
    }
}

struct TypedKey(KeyName);

impl<'de> Deserialize<'de> for TypedKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TypedKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer or string key")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TypedKey, E> {
                Ok(TypedKey(KeyName::Int(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TypedKey, E> {
                i64::try_from(v)
                    .map(|v| TypedKey(KeyName::Int(v)))
                    .map_err(|_| E::custom("key out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TypedKey, E> {
                Ok(TypedKey(KeyName::Str(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

struct TypedRead(RawRead);

impl<'de> Deserialize<'de> for TypedRead {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TypedRead;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer or a list of integers")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TypedRead, E> {
                Ok(TypedRead(RawRead::Scalar(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TypedRead, E> {
                i64::try_from(v)
                    .map(|v| TypedRead(RawRead::Scalar(v)))
                    .map_err(|_| E::custom("value out of range"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TypedRead, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(8));
                while let Some(v) = seq.next_element::<i64>()? {
                    out.push(v);
                }
                Ok(TypedRead(RawRead::List(out)))
            }
        }
        d.deserialize_any(V)
    }
}

// The compact form's budget: a micro-op in 24 bytes.
const _: () = assert!(std::mem::size_of::<Mop>() <= 24);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(index: u64, process: u64, kind: OpType, value: Value) -> Op {
        Op {
            index,
            time: index * 10,
            process: Process::Client(process),
            kind,
            f: "txn".into(),
            value,
            node: None,
            error: None,
        }
    }

    fn sample() -> Vec<Op> {
        vec![
            op(
                0,
                1,
                OpType::Invoke,
                json!([["append", 5, 1], ["r", 6, null]]),
            ),
            op(1, 2, OpType::Invoke, json!([["w", "x", 3]])),
            Op {
                process: Process::Nemesis,
                f: "partition".into(),
                ..op(2, 0, OpType::Info, json!({"n1": ["n2"]}))
            },
            op(
                3,
                1,
                OpType::Ok,
                json!([["append", 5, 1], ["r", 6, [1, 2]]]),
            ),
            op(4, 2, OpType::Info, json!(null)),
            op(5, 3, OpType::Invoke, json!([["r", "x", null]])),
            op(6, 3, OpType::Ok, json!([["r", "x", 3]])),
        ]
    }

    #[test]
    fn pairs_txns_and_keeps_ok_reads_only() {
        let t = Txns::from_ops(&sample()).unwrap();
        assert_eq!(t.txns.len(), 3);
        let t0 = &t.txns[0];
        assert_eq!(
            (t0.outcome, t0.index(), t0.invoke_seq, t0.complete_seq),
            (Outcome::Ok, 3, 0, Some(2))
        );
        assert_eq!(t.mops_json(t0), r#"[["append",5,1],["r",6,[1,2]]]"#);
        let t1 = &t.txns[1];
        assert_eq!((t1.outcome, t1.index()), (Outcome::Unknown, 4));
        assert_eq!(t.mops_json(t1), r#"[["w","x",3]]"#);
        assert_eq!(t.mops_json(&t.txns[2]), r#"[["r","x",3]]"#);
        assert_eq!(t.key_count(), 3);
    }

    #[test]
    fn the_fast_jsonl_path_reads_what_from_ops_reads() {
        let mut text = String::new();
        for op in sample() {
            text += &serde_json::to_string(&op).unwrap();
            text.push('\n');
        }
        let fast = read_jsonl_bytes(text.as_bytes(), Path::new("h.jsonl")).unwrap();
        let slow = Txns::from_ops(&sample()).unwrap();
        assert_eq!(fast.txns.txns, slow.txns);
        for t in &slow.txns {
            assert_eq!(fast.txns.mops_json(t), slow.mops_json(t));
        }
        // A cut-off last line is truncation; a bad line in the middle is an error.
        let cut = format!("{text}{{\"index\":7,\"ti");
        let r = read_jsonl_bytes(cut.as_bytes(), Path::new("h.jsonl")).unwrap();
        assert_eq!(r.truncated_line, Some(8));
        let bad = text.replace("[\"w\",\"x\",3]", "[\"cas\",\"x\",3]");
        let e = read_jsonl_bytes(bad.as_bytes(), Path::new("h.jsonl")).unwrap_err();
        assert!(e.to_string().starts_with("h.jsonl:2:"), "{e}");
        assert!(e.to_string().contains("micro-op"), "{e}");
    }

    #[test]
    fn rejects_unpaired_and_mismatched_completions() {
        let e = Txns::from_ops(&[op(0, 1, OpType::Ok, json!([]))]).unwrap_err();
        assert_eq!(e.index, 0);
        let ops = [
            op(0, 1, OpType::Invoke, json!([["append", 1, 1]])),
            op(1, 1, OpType::Ok, json!([["append", 1, 2]])),
        ];
        let e = Txns::from_ops(&ops).unwrap_err();
        assert!(e.message.contains("differs"), "{e}");
    }
}
