//! `set`: `add` an element, `read` the whole set. A read must return exactly
//! the elements added before it (in any order; duplicates ignored).
//!
//! Elements are interned values; states are interned sorted id lists, so the
//! search hashes and compares one id, and adds are memoised.

use crate::checker::linearizable::fxhash::FxHashMap;
use crate::checker::linearizable::model::{Model, Observed, Table, Values};
use serde_json::Value;

#[derive(Debug)]
pub struct Set {
    values: Values,
    sets: Table<[u32]>,
    /// (state, element) -> state after adding it.
    adds: FxHashMap<(u32, u32), u32>,
}

const EMPTY: u32 = 0;

impl Default for Set {
    fn default() -> Self {
        let mut set = Set {
            values: Values::default(),
            sets: Table::default(),
            adds: FxHashMap::default(),
        };
        let empty = set.sets.intern(Vec::new().into(), 0);
        debug_assert_eq!(empty, EMPTY);
        set
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetOp {
    /// Adds this element (an interned value).
    Add(u32),
    /// A read that returned this set (an interned state).
    Read(u32),
    ReadAny,
}

impl Set {
    fn intern(&mut self, ids: Vec<u32>) -> u32 {
        let size = ids.len() * 4;
        self.sets.intern(ids.into(), size)
    }

    fn show(&self, set: u32) -> String {
        let items: Vec<String> = self
            .sets
            .get(set)
            .iter()
            .map(|&v| self.values.get(v).to_string())
            .collect();
        format!("#{{{}}}", items.join(" "))
    }
}

impl Model for Set {
    type Op = SetOp;
    type State = u32;

    fn parse(&mut self, f: &str, value: &Value, observed: Observed<'_>) -> Result<SetOp, String> {
        match (f, observed) {
            ("add", _) => Ok(SetOp::Add(self.values.intern(value))),
            ("read", Observed::Unknown) => Ok(SetOp::ReadAny),
            ("read", Observed::Ok(Value::Array(items))) => {
                let mut ids: Vec<u32> = items.iter().map(|v| self.values.intern(v)).collect();
                ids.sort_unstable();
                ids.dedup();
                Ok(SetOp::Read(self.intern(ids)))
            }
            ("read", Observed::Ok(other)) => {
                Err(format!("a set read must return an array, got {other}"))
            }
            (other, _) => Err(format!("the set model knows add, read; got {other:?}")),
        }
    }

    fn init(&self) -> u32 {
        EMPTY
    }

    fn step(&mut self, &state: &u32, op: &SetOp) -> Option<u32> {
        match *op {
            SetOp::Add(v) => {
                if let Some(&after) = self.adds.get(&(state, v)) {
                    return Some(after);
                }
                let current = self.sets.get(state);
                let after = match current.binary_search(&v) {
                    Ok(_) => state,
                    Err(at) => {
                        let mut next = Vec::with_capacity(current.len() + 1);
                        next.extend_from_slice(&current[..at]);
                        next.push(v);
                        next.extend_from_slice(&current[at..]);
                        self.intern(next)
                    }
                };
                self.adds.insert((state, v), after);
                Some(after)
            }
            SetOp::Read(seen) => (seen == state).then_some(state),
            SetOp::ReadAny => Some(state),
        }
    }

    fn is_read_only(&self, op: &SetOp) -> bool {
        matches!(op, SetOp::Read(_) | SetOp::ReadAny)
    }

    fn skippable(&self, op: &SetOp) -> bool {
        matches!(op, SetOp::ReadAny)
    }

    fn memory_bytes(&self) -> usize {
        self.sets.memory_bytes() + self.adds.len() * 16
    }

    fn describe_state(&self, &state: &u32) -> String {
        self.show(state)
    }

    fn describe_op(&self, op: &SetOp) -> String {
        match *op {
            SetOp::Add(v) => format!("add {}", self.values.get(v)),
            SetOp::Read(set) => format!("read -> {}", self.show(set)),
            SetOp::ReadAny => "read -> ?".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_read_must_return_exactly_the_added_elements() {
        let mut m = Set::default();
        let add1 = m.parse("add", &json!(1), Observed::Unknown).unwrap();
        let add2 = m.parse("add", &json!(2), Observed::Unknown).unwrap();
        let read21 = m
            .parse("read", &json!(null), Observed::Ok(&json!([2, 1, 2])))
            .unwrap();
        let read1 = m
            .parse("read", &json!(null), Observed::Ok(&json!([1])))
            .unwrap();
        let init = m.init();
        let one = m.step(&init, &add1).unwrap();
        let s = m.step(&one, &add2).unwrap();
        assert!(m.step(&s, &read21).is_some());
        assert_eq!(m.step(&s, &read1), None);
        assert_eq!(
            m.step(&one, &add1),
            Some(one),
            "adding twice changes nothing"
        );
        assert_eq!(m.describe_state(&s), "#{1 2}");
    }
}
