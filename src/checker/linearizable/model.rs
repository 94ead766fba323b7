//! The model trait: the sequential specification a history is checked against.
//!
//! A model is a small value: an initial state, a step function, and text for
//! explanations. Adding a model is one file under `models/` plus one line in
//! [`super::ModelKind`]. The search never looks inside states or ops; it only
//! steps, hashes and compares them.

use super::fxhash::FxHashMap;
use serde_json::Value;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

/// One operation of a partition, as the search and the model see it.
#[derive(Debug, Clone)]
pub struct Entry<O> {
    pub op: O,
    /// Position of the invocation in the history.
    pub call: usize,
    /// Position of the `ok` completion; `None` when the outcome is unknown.
    pub ret: Option<usize>,
}

/// What a completed operation observed.
#[derive(Debug, Clone, Copy)]
pub enum Observed<'a> {
    /// It completed `ok` with this value (a read's result, a write's echo).
    Ok(&'a Value),
    /// It ended `info` or never completed: it may or may not have taken
    /// effect, and what it returned is unknown.
    Unknown,
}

/// A sequential specification.
///
/// The model is built once per key (partition) and owned by that key's
/// search, so `parse` and `step` may intern values and states into `self`
/// (and memoise steps); the search then hashes and compares small ids.
/// Otherwise `step` must be a pure function of the state and the op.
pub trait Model {
    /// One operation as the model sees it: what was asked and, when known,
    /// what was observed. Two ops with an unknown outcome that are equal
    /// are interchangeable once both are invoked (the search counts them).
    type Op: Debug + Eq + Hash;
    /// Cloned on every step the search keeps and hashed into its cache: keep it small.
    type State: Clone + Eq + Hash + Debug;

    /// Reads one client operation: its function, invocation value (without
    /// the key) and what its completion observed. An error says what is wrong
    /// with the value; the caller adds where.
    fn parse(&mut self, f: &str, value: &Value, observed: Observed<'_>)
    -> Result<Self::Op, String>;

    fn init(&self) -> Self::State;

    /// The state after `op` took effect in `state`, or `None` if `op` cannot
    /// take effect there (its observed result contradicts the state).
    fn step(&mut self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;

    /// True when `op` never changes any state (a read) beyond bookkeeping
    /// that only narrows which orders are tried (the register's mark of a
    /// crashed op awaiting its observer). The search places such an op as
    /// soon as it is legal and tries no alternative there: any order that
    /// places it later can place it now instead.
    fn is_read_only(&self, _op: &Self::Op) -> bool {
        false
    }

    /// True when placing `op` can never matter: it changes no state and
    /// either observes nothing or its result is unknown. Such ops are left
    /// out of the search (a read that timed out, a Knossos `nil` read).
    fn skippable(&self, op: &Self::Op) -> bool;

    /// Which ops with an unknown outcome provably cannot change the verdict
    /// (true at their position), so the search leaves them out. Only a
    /// model that can prove it says so: by default none.
    fn cannot_matter(&self, entries: &[Entry<Self::Op>]) -> Vec<bool> {
        vec![false; entries.len()]
    }

    /// Heap bytes held by the model's own tables (interned states), for the
    /// memory bound. Kept cheap: the search asks after every new configuration.
    fn memory_bytes(&self) -> usize {
        0
    }

    /// A state for people, e.g. `3` or `"x 1 y"` or `absent`.
    fn describe_state(&self, state: &Self::State) -> String;

    /// An op for people, e.g. `read -> 3` or `cas 1 -> 2`.
    fn describe_op(&self, op: &Self::Op) -> String;
}

/// Interns JSON values so models compare and hash small integers.
/// Id 0 is reserved for `null` (an absent value).
#[derive(Debug)]
pub struct Values {
    ids: std::collections::HashMap<String, u32>,
    values: Vec<Value>,
}

impl Default for Values {
    fn default() -> Self {
        let mut v = Values {
            ids: Default::default(),
            values: Vec::new(),
        };
        let null = v.intern(&Value::Null);
        debug_assert_eq!(null, Values::NULL);
        v
    }
}

impl Values {
    pub const NULL: u32 = 0;

    pub fn intern(&mut self, value: &Value) -> u32 {
        // serde_json's default Map is ordered, so equal values print equally.
        let text = value.to_string();
        if let Some(&id) = self.ids.get(&text) {
            return id;
        }
        let id = u32::try_from(self.values.len()).expect("fewer than 2^32 distinct values");
        self.ids.insert(text, id);
        self.values.push(value.clone());
        id
    }

    pub fn get(&self, id: u32) -> &Value {
        &self.values[id as usize]
    }
}

/// Interns values of `T` (strings, sets) as dense ids, for models whose
/// states would be costly to clone, hash and compare.
#[derive(Debug)]
pub struct Table<T: ?Sized> {
    ids: FxHashMap<Arc<T>, u32>,
    items: Vec<Arc<T>>,
    /// Approximate heap bytes of the items.
    bytes: usize,
}

impl<T: ?Sized + Hash + Eq> Default for Table<T> {
    fn default() -> Self {
        Table {
            ids: FxHashMap::default(),
            items: Vec::new(),
            bytes: 0,
        }
    }
}

impl<T: ?Sized + Hash + Eq> Table<T> {
    /// The id of `item`; `size_bytes` is its heap size if it is new.
    pub fn intern(&mut self, item: Arc<T>, size_bytes: usize) -> u32 {
        if let Some(&id) = self.ids.get(&item) {
            return id;
        }
        let id = u32::try_from(self.items.len()).expect("fewer than 2^32 distinct states");
        self.items.push(item.clone());
        self.ids.insert(item, id);
        self.bytes += size_bytes + 48;
        id
    }

    pub fn get(&self, id: u32) -> &T {
        &self.items[id as usize]
    }

    pub fn memory_bytes(&self) -> usize {
        self.bytes
    }
}
