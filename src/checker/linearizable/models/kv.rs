//! `kv`: one string value per key, with `get`, `put` and `append` (the
//! porcupine-kv semantics). A key never written reads as the empty string, and
//! so does a `get` that returned `null`.
//!
//! The key itself is split off before the model sees an op (one model per
//! key), so a state is the key's current string. Strings are never built
//! during the search: a string is an id, either a literal from the history or
//! an append node (string, piece), with its length and a polynomial hash
//! kept incrementally. Ids are canonical (one id per content: on a hash match
//! the contents are compared), so a get compares two ids, and appends are
//! memoised per (state, piece).

use crate::checker::linearizable::fxhash::FxHashMap;
use crate::checker::linearizable::model::{Model, Observed};
use serde_json::Value;
use std::sync::Arc;

/// The base of the polynomial string hash (odd, so powers never vanish mod 2^64).
const HASH_BASE: u64 = 0x100_0000_01b3;

#[derive(Debug)]
enum Repr {
    Literal(Arc<str>),
    Append { head: u32, piece: u32 },
}

#[derive(Debug)]
struct Str {
    len: usize,
    /// Sum of byte[i] * HASH_BASE^(len - 1 - i), wrapping.
    hash: u64,
    /// HASH_BASE^len, wrapping: what the hash of a string appended in front is multiplied by.
    pow: u64,
    repr: Repr,
}

#[derive(Debug)]
pub struct Kv {
    strs: Vec<Str>,
    /// (hash, length) -> the last id with that hash and length; earlier ones
    /// (almost never any) are chained through `same_content`.
    by_content: FxHashMap<(u64, usize), u32>,
    same_content: Vec<u32>,
    /// (state, appended piece) -> state after the append.
    appends: FxHashMap<(u32, u32), u32>,
    literal_bytes: usize,
}

impl Default for Kv {
    fn default() -> Self {
        let mut kv = Kv {
            strs: Vec::new(),
            by_content: FxHashMap::default(),
            same_content: Vec::new(),
            appends: FxHashMap::default(),
            literal_bytes: 0,
        };
        let empty = kv.literal("");
        debug_assert_eq!(empty, EMPTY);
        kv
    }
}

const EMPTY: u32 = 0;
const NONE: u32 = u32::MAX;

impl Kv {
    /// The id of a string from the history.
    fn literal(&mut self, s: &str) -> u32 {
        let (hash, pow) = s.bytes().fold((0u64, 1u64), |(h, p), b| {
            (
                h.wrapping_mul(HASH_BASE).wrapping_add(b as u64),
                p.wrapping_mul(HASH_BASE),
            )
        });
        self.canonical(Str {
            len: s.len(),
            hash,
            pow,
            repr: Repr::Literal(s.into()),
        })
    }

    /// The id of `head` followed by `piece`.
    fn append(&mut self, head: u32, piece: u32) -> u32 {
        let (h, p) = (&self.strs[head as usize], &self.strs[piece as usize]);
        let s = Str {
            len: h.len + p.len,
            hash: h.hash.wrapping_mul(p.pow).wrapping_add(p.hash),
            pow: h.pow.wrapping_mul(p.pow),
            repr: Repr::Append { head, piece },
        };
        self.canonical(s)
    }

    /// The existing id of `s`'s content, or a new one.
    fn canonical(&mut self, s: Str) -> u32 {
        let content = (s.hash, s.len);
        let first = self.by_content.get(&content).copied().unwrap_or(NONE);
        if first != NONE {
            let text = self.text_of(&s.repr);
            let mut at = first;
            while at != NONE {
                if self.text(at) == text {
                    return at;
                }
                at = self.same_content[at as usize];
            }
        }
        let id = u32::try_from(self.strs.len()).expect("fewer than 2^32 distinct strings");
        if let Repr::Literal(l) = &s.repr {
            self.literal_bytes += l.len();
        }
        self.strs.push(s);
        self.same_content.push(first);
        self.by_content.insert(content, id);
        id
    }

    /// The string itself (built only to compare on a hash match, and for people).
    fn text(&self, id: u32) -> String {
        self.text_of(&self.strs[id as usize].repr)
    }

    fn text_of(&self, repr: &Repr) -> String {
        let mut pieces = Vec::new();
        let mut at = repr;
        loop {
            match at {
                Repr::Literal(l) => {
                    pieces.push(&**l);
                    break;
                }
                Repr::Append { head, piece } => {
                    pieces.push(self.literal_of(*piece));
                    at = &self.strs[*head as usize].repr;
                }
            }
        }
        pieces.iter().rev().copied().collect()
    }

    /// Pieces are always literals from the history.
    fn literal_of(&self, id: u32) -> &str {
        match &self.strs[id as usize].repr {
            Repr::Literal(l) => l,
            Repr::Append { .. } => unreachable!("appended pieces come from the history"),
        }
    }

    fn string(&mut self, value: &Value, what: &str) -> Result<u32, String> {
        match value {
            Value::String(s) => Ok(self.literal(s)),
            Value::Null => Ok(EMPTY),
            other => Err(format!("a kv {what} must be a string, got {other}")),
        }
    }

    fn show(&self, id: u32) -> String {
        format!("{:?}", self.text(id))
    }
}

/// Ids are interned strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvOp {
    /// A get that returned this string.
    Get(u32),
    /// A get whose result is unknown.
    GetAny,
    Put(u32),
    Append(u32),
}

impl Model for Kv {
    type Op = KvOp;
    type State = u32;

    fn parse(&mut self, f: &str, value: &Value, observed: Observed<'_>) -> Result<KvOp, String> {
        match f {
            "get" => match observed {
                Observed::Ok(v) => Ok(KvOp::Get(self.string(v, "get result")?)),
                Observed::Unknown => Ok(KvOp::GetAny),
            },
            "put" => Ok(KvOp::Put(self.string(value, "put value")?)),
            "append" => Ok(KvOp::Append(self.string(value, "append value")?)),
            other => Err(format!(
                "the kv model knows get, put, append; got {other:?}"
            )),
        }
    }

    fn init(&self) -> u32 {
        EMPTY
    }

    fn step(&mut self, &state: &u32, op: &KvOp) -> Option<u32> {
        match *op {
            KvOp::Get(v) => (v == state).then_some(state),
            KvOp::GetAny => Some(state),
            KvOp::Put(v) => Some(v),
            KvOp::Append(piece) => {
                if let Some(&after) = self.appends.get(&(state, piece)) {
                    return Some(after);
                }
                let after = self.append(state, piece);
                self.appends.insert((state, piece), after);
                Some(after)
            }
        }
    }

    fn is_read_only(&self, op: &KvOp) -> bool {
        matches!(op, KvOp::Get(_) | KvOp::GetAny)
    }

    fn skippable(&self, op: &KvOp) -> bool {
        matches!(op, KvOp::GetAny)
    }

    fn memory_bytes(&self) -> usize {
        self.strs.len() * (size_of::<Str>() + 36) + self.literal_bytes + self.appends.len() * 16
    }

    fn describe_state(&self, &state: &u32) -> String {
        self.show(state)
    }

    fn describe_op(&self, op: &KvOp) -> String {
        match *op {
            KvOp::Get(v) => format!("get -> {}", self.show(v)),
            KvOp::GetAny => "get -> ?".into(),
            KvOp::Put(v) => format!("put {}", self.show(v)),
            KvOp::Append(v) => format!("append {}", self.show(v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn append_concatenates_and_a_missing_key_reads_empty() {
        let mut m = Kv::default();
        let get_empty = m
            .parse("get", &json!(null), Observed::Ok(&json!("")))
            .unwrap();
        let init = m.init();
        assert!(m.step(&init, &get_empty).is_some());
        let a = m
            .parse("append", &json!("x 1 y"), Observed::Unknown)
            .unwrap();
        let b = m
            .parse("append", &json!("x 2 y"), Observed::Unknown)
            .unwrap();
        let s1 = m.step(&init, &a).unwrap();
        let s = m.step(&s1, &b).unwrap();
        assert_eq!(m.describe_state(&s), "\"x 1 yx 2 y\"");
        let get = m
            .parse("get", &json!(null), Observed::Ok(&json!("x 1 y")))
            .unwrap();
        assert_eq!(m.step(&s, &get), None);
        assert_eq!(m.step(&s1, &get), Some(s1));
        // The memo gives the same state the second time.
        assert_eq!(m.step(&s1, &b), Some(s));
        // One id per content, however it was made: a get of the whole string matches.
        let get_whole = m
            .parse("get", &json!(null), Observed::Ok(&json!("x 1 yx 2 y")))
            .unwrap();
        assert_eq!(m.step(&s, &get_whole), Some(s));
        let put = m
            .parse("put", &json!("x 1 yx 2 y"), Observed::Unknown)
            .unwrap();
        assert_eq!(m.step(&init, &put), Some(s));
        assert!(
            m.parse("put", &json!(3), Observed::Unknown)
                .unwrap_err()
                .contains("string")
        );
    }
}
