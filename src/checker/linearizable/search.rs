//! The Wing & Gong / Lowe search over one partition (one key), Porcupine-style.
//!
//! Calls and returns sit in one doubly linked list in history order. The
//! search walks it from the front: at a call it tries to linearize that op now
//! (the model must accept it, and the resulting configuration must be new),
//! then *lifts* the op's call and return out of the list and starts over; at a
//! return it is stuck (that op should have been linearized before it returned)
//! and backtracks: it pops the last linearized op, puts its entries back
//! (*unlift*) and tries the next call after it.
//!
//! A configuration is (set of linearized ops, model state). Every one reached
//! is remembered in a cache, so none is explored twice (Lowe's improvement):
//! the set is a bitset with an incrementally kept Zobrist hash.
//!
//! Ops with an unknown outcome that are equal (same function and values)
//! are interchangeable once invoked: which of them were linearized does not
//! matter, only how many. (Those linearized were invoked, so are all the
//! earlier-invoked ones of the class; the rest of the class is the same set
//! up to equal ops.) So the bitset has one bit per op with a return, and
//! each class of equal unknown-outcome ops a run of bits filled from its
//! start: a class with k linearized sets its first k bits, whichever k.
//!
//! Equal ops with a return are not interchangeable, but one dominates
//! another: if e and f are equal, both invoked and unlinearized, and e
//! returns first, linearizing e leaves f, which can go wherever e could
//! have gone later, and more. So at f's call the search skips f while such
//! an e is still unlinearized: e was tried earlier in the same pass (its
//! call comes first), and what follows it failed.
//!
//! An op that never changes state (a read) is placed as soon as it is legal,
//! and no alternative is tried in that configuration: if a legal order exists
//! that places it later, moving it up to now keeps that order legal (every op
//! that must precede it in real time is already placed, and it changes no
//! state). When what follows it fails, the configuration before it fails too.
//! So at each new configuration the walk first looks for a legal read among
//! the invoked ops and, if there is one, starts there.
//!
//! Ops with an unknown outcome have no return entry: nothing ever forces them
//! to be linearized, and they may be linearized at any point after their call.
//! The search succeeds as soon as every `ok` op is linearized.
//!
//! Bounded: the deadline and the cancel flag are checked every
//! [`CHECK_EVERY`] steps, and the cache is charged to a shared memory budget.

use super::fxhash::FxHasher;
pub use super::model::Entry;
use super::model::Model;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

/// How many steps the search takes between looks at the clock and the cancel flag.
const CHECK_EVERY: u64 = 1 << 10;
/// How many distinct states an explanation keeps.
pub const MAX_STUCK_STATES: usize = 8;
/// Memory is reserved from the shared budget in chunks of this size.
const RESERVE_CHUNK_BYTES: usize = 1 << 20;

/// Memory that all searches of one check share.
#[derive(Debug)]
pub struct MemoryBudget {
    pub limit_bytes: usize,
    used_bytes: AtomicUsize,
}

impl MemoryBudget {
    pub fn new(limit_bytes: usize) -> MemoryBudget {
        MemoryBudget {
            limit_bytes,
            used_bytes: AtomicUsize::new(0),
        }
    }

    fn reserve(&self, bytes: usize) -> bool {
        let before = self.used_bytes.fetch_add(bytes, Ordering::Relaxed);
        before + bytes <= self.limit_bytes
    }

    fn release(&self, bytes: usize) {
        self.used_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// When the search must give up.
#[derive(Debug, Clone, Copy)]
pub struct Limits<'a> {
    pub deadline: Instant,
    /// Set by another search (or the caller) to stop this one.
    pub cancel: &'a AtomicBool,
    pub memory: &'a MemoryBudget,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    TimeLimit,
    MemoryLimit,
    Cancelled,
}

/// Where an illegal history got stuck furthest.
#[derive(Debug, Clone)]
pub struct Stuck<S> {
    /// The entry that cannot be placed: the op with the latest return that
    /// any configuration reached without linearizing it.
    pub op: usize,
    /// A linearization (entry indices, in order) that reached that point.
    pub prefix: Vec<usize>,
    /// Distinct model states from which the search tried, and failed, to go
    /// on (at most [`MAX_STUCK_STATES`]).
    pub states: Vec<S>,
}

#[derive(Debug, Clone)]
pub enum Outcome<S> {
    /// Entry indices in a legal linearization order (unknown-outcome ops
    /// appear only if they were placed).
    Linearizable(Vec<usize>),
    Illegal(Stuck<S>),
    Unknown(StopReason),
}

const NONE: u32 = u32::MAX;

/// One linearized op on the search's stack.
struct Frame<S> {
    entry: usize,
    /// The state before it.
    before: S,
    /// Placed as a legal read: no alternative is tried in its place.
    forced: bool,
}
/// What one entry of the cache's hash index costs, roughly (key, value,
/// control byte, spare capacity).
const HASH_SLOT_BYTES: usize = 24;

/// A search that can be run a slice at a time ([`Search::resume`]), so many
/// keys can share a few threads fairly and a quick failure is found early.
pub struct Search<'a, M: Model> {
    model: &'a mut M,
    entries: &'a [Entry<M::Op>],
    /// The list: node 0 is the head, node `len - 1` the tail, the rest events.
    next: Vec<u32>,
    prev: Vec<u32>,
    /// For each event node: its entry, and whether it is the call.
    node_entry: Vec<u32>,
    node_is_call: Vec<bool>,
    call_node: Vec<u32>,
    ret_node: Vec<u32>,
    /// Zobrist key of each bit of the set.
    zobrist: Vec<u64>,
    /// Each entry's bit, or for an unknown-outcome entry its class's first bit.
    bit_of: Vec<u32>,
    /// For an unknown-outcome entry, its class; `NONE` otherwise.
    class_of: Vec<u32>,
    /// How many ops of each class are linearized.
    class_placed: Vec<u32>,
    /// For each entry f (a range of `dominators`): the equal entries e with a
    /// return that are invoked before f's call and return after it, but
    /// before f returns.
    dominator_start: Vec<u32>,
    dominators: Vec<u32>,
    cache: Cache<M::State>,
    memory: &'a MemoryBudget,
    reserved_bytes: usize,
    // Where the walk is.
    node: u32,
    /// `ok` ops not yet linearized; the search succeeds when none is left.
    remaining_ok: usize,
    /// The linearized set and its Zobrist hash.
    bits: Vec<u64>,
    bits_zobrist: u64,
    state: M::State,
    /// Every linearized op, in order.
    stack: Vec<Frame<M::State>>,
    stuck: Option<Stuck<M::State>>,
    steps: u64,
}

impl<M: Model> Drop for Search<'_, M> {
    fn drop(&mut self) {
        self.memory.release(self.reserved_bytes);
    }
}

impl<'a, M: Model> Search<'a, M> {
    pub fn new(model: &'a mut M, entries: &'a [Entry<M::Op>], memory: &'a MemoryBudget) -> Self {
        let mut events: Vec<(usize, u32, bool)> = Vec::with_capacity(entries.len() * 2);
        for (i, e) in entries.iter().enumerate() {
            events.push((e.call, i as u32, true));
            if let Some(r) = e.ret {
                debug_assert!(r > e.call, "an op returns after its call");
                events.push((r, i as u32, false));
            }
        }
        events.sort_unstable_by_key(|&(pos, _, _)| pos);
        debug_assert!(
            events.windows(2).all(|w| w[0].0 < w[1].0),
            "history positions are distinct"
        );
        let nodes = events.len() + 2;
        let mut node_entry = vec![NONE; nodes];
        let mut node_is_call = vec![false; nodes];
        let mut call_node = vec![NONE; entries.len()];
        let mut ret_node = vec![NONE; entries.len()];
        for (k, &(_, i, is_call)) in events.iter().enumerate() {
            let node = k + 1;
            node_entry[node] = i;
            node_is_call[node] = is_call;
            if is_call {
                call_node[i as usize] = node as u32;
            } else {
                ret_node[i as usize] = node as u32;
            }
        }
        let next = (0..nodes as u32).map(|n| n + 1).collect();
        let prev = (0..nodes as u32).map(|n| n.wrapping_sub(1)).collect();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let zobrist = (0..entries.len()).map(|_| splitmix64(&mut seed)).collect();
        // Classes of equal unknown-outcome ops, each with a run of bits.
        let mut class_of = vec![NONE; entries.len()];
        let mut classes: HashMap<&M::Op, u32> = HashMap::new();
        let mut class_size: Vec<u32> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if e.ret.is_none() {
                let next = class_size.len() as u32;
                let c = *classes.entry(&e.op).or_insert(next);
                if c == next {
                    class_size.push(0);
                }
                class_size[c as usize] += 1;
                class_of[i] = c;
            }
        }
        let (dominator_start, dominators) = dominators(entries);
        let mut class_first = Vec::with_capacity(class_size.len());
        let mut bit = 0u32;
        let mut bit_of = vec![NONE; entries.len()];
        for (i, e) in entries.iter().enumerate() {
            if e.ret.is_some() {
                bit_of[i] = bit;
                bit += 1;
            }
        }
        for size in &class_size {
            class_first.push(bit);
            bit += size;
        }
        for i in 0..entries.len() {
            if class_of[i] != NONE {
                bit_of[i] = class_first[class_of[i] as usize];
            }
        }
        let words = entries.len().div_ceil(64).max(1);
        let state = model.init();
        Search {
            model,
            entries,
            next,
            prev,
            node_entry,
            node_is_call,
            call_node,
            ret_node,
            zobrist,
            bit_of,
            class_of,
            class_placed: vec![0; class_size.len()],
            dominator_start,
            dominators,
            cache: Cache::new(),
            memory,
            reserved_bytes: 0,
            node: 1,
            remaining_ok: entries.iter().filter(|e| e.ret.is_some()).count(),
            bits: vec![0; words],
            bits_zobrist: 0,
            state,
            stack: Vec::new(),
            stuck: None,
            steps: 0,
        }
    }

    /// Distinct configurations reached so far.
    pub fn configurations(&self) -> u64 {
        self.cache.len() as u64
    }

    fn unlink(&mut self, n: u32) {
        let (p, x) = (self.prev[n as usize], self.next[n as usize]);
        self.next[p as usize] = x;
        self.prev[x as usize] = p;
    }

    /// Undoes [`Self::unlink`]; must be called in the reverse order.
    fn relink(&mut self, n: u32) {
        let (p, x) = (self.prev[n as usize], self.next[n as usize]);
        self.next[p as usize] = n;
        self.prev[x as usize] = n;
    }

    fn lift(&mut self, e: usize) {
        self.unlink(self.call_node[e]);
        if self.ret_node[e] != NONE {
            self.unlink(self.ret_node[e]);
        }
    }

    fn unlift(&mut self, e: usize) {
        if self.ret_node[e] != NONE {
            self.relink(self.ret_node[e]);
        }
        self.relink(self.call_node[e]);
    }

    /// The bit that linearizing entry `e` sets now: its own, or the next of its class's.
    fn bit_to_set(&self, e: usize) -> usize {
        let c = self.class_of[e];
        let placed = if c == NONE {
            0
        } else {
            self.class_placed[c as usize]
        };
        (self.bit_of[e] + placed) as usize
    }

    /// Whether an equal op that returns earlier is invoked and still unlinearized.
    fn dominated(&self, e: usize) -> bool {
        let range = self.dominator_start[e] as usize..self.dominator_start[e + 1] as usize;
        self.dominators[range].iter().any(|&d| {
            let b = self.bit_of[d as usize] as usize;
            self.bits[b / 64] & (1 << (b % 64)) == 0
        })
    }

    /// Charges the budget for the cache and the model's tables; false when it is spent.
    fn charge(&mut self) -> bool {
        let used = self.cache.bytes + self.model.memory_bytes();
        while used > self.reserved_bytes {
            if !self.memory.reserve(RESERVE_CHUNK_BYTES) {
                self.memory.release(RESERVE_CHUNK_BYTES);
                return false;
            }
            self.reserved_bytes += RESERVE_CHUNK_BYTES;
        }
        true
    }

    /// Runs at most about `max_steps` more steps. `None`: not finished yet.
    pub fn resume(&mut self, max_steps: u64, limits: Limits<'_>) -> Option<Outcome<M::State>> {
        const HEAD: usize = 0;
        let stop_at = self.steps.saturating_add(max_steps);
        if limits.cancel.load(Ordering::Relaxed) {
            return Some(Outcome::Unknown(StopReason::Cancelled));
        }
        loop {
            if self.remaining_ok == 0 {
                return Some(Outcome::Linearizable(
                    self.stack.iter().map(|f| f.entry).collect(),
                ));
            }
            self.steps += 1;
            if self.steps.is_multiple_of(CHECK_EVERY) || self.steps >= stop_at {
                if limits.cancel.load(Ordering::Relaxed) {
                    return Some(Outcome::Unknown(StopReason::Cancelled));
                }
                if Instant::now() >= limits.deadline {
                    return Some(Outcome::Unknown(StopReason::TimeLimit));
                }
                if self.steps >= stop_at {
                    return None;
                }
            }
            let node = self.node as usize;
            // An ok op's return is still in the list, so the walk meets it before the tail.
            debug_assert!(node < self.next.len() - 1);
            let e = self.node_entry[node] as usize;
            if self.node_is_call[node] && self.dominated(e) {
                self.node = self.next[node];
            } else if self.node_is_call[node] {
                let op = &self.entries[e].op;
                let forced = self.model.is_read_only(op);
                if let Some(after) = self.model.step(&self.state, op) {
                    let b = self.bit_to_set(e);
                    let z = self.bits_zobrist ^ self.zobrist[b];
                    self.bits[b / 64] |= 1 << (b % 64);
                    let Some(inserted) = self.cache.insert(z, &self.bits, &after) else {
                        return Some(Outcome::Unknown(StopReason::MemoryLimit));
                    };
                    if inserted {
                        if !self.charge() {
                            return Some(Outcome::Unknown(StopReason::MemoryLimit));
                        }
                        self.bits_zobrist = z;
                        if self.class_of[e] != NONE {
                            self.class_placed[self.class_of[e] as usize] += 1;
                        }
                        let before = std::mem::replace(&mut self.state, after);
                        self.stack.push(Frame {
                            entry: e,
                            before,
                            forced,
                        });
                        self.lift(e);
                        if self.entries[e].ret.is_some() {
                            self.remaining_ok -= 1;
                        }
                        self.node = self.legal_read().unwrap_or(self.next[HEAD]);
                        continue;
                    }
                    self.bits[b / 64] &= !(1 << (b % 64));
                    if forced {
                        // Placing the read was explored already and failed, so
                        // this configuration fails too.
                        if !self.backtrack() {
                            return Some(Outcome::Illegal(
                                self.stuck.take().expect("a failure was noted before"),
                            ));
                        }
                        continue;
                    }
                }
                self.node = self.next[node];
            } else {
                self.note_stuck(e);
                if !self.backtrack() {
                    return Some(Outcome::Illegal(
                        self.stuck.take().expect("noted just above"),
                    ));
                }
            }
        }
    }

    /// The call node of a read that is legal now, among the invoked ops (the
    /// calls before the first return in the list). At a new configuration
    /// the walk starts there: the read is placed and nothing else is tried
    /// in that configuration (see the module doc), where walking in call
    /// order would first try every op called before it, each with all that
    /// follows.
    fn legal_read(&mut self) -> Option<u32> {
        let mut node = self.next[0];
        // The head and the tail are not calls, so this ends at the tail at the latest.
        while self.node_is_call[node as usize] {
            let e = self.node_entry[node as usize] as usize;
            let op = &self.entries[e].op;
            if self.model.is_read_only(op)
                && !self.dominated(e)
                && self.model.step(&self.state, op).is_some()
            {
                return Some(node);
            }
            node = self.next[node as usize];
        }
        None
    }

    /// The current configuration failed: undo the last linearized op and go
    /// on with the next call after it, skipping past forced reads (their
    /// configuration fails with them). False when nothing is left to undo.
    fn backtrack(&mut self) -> bool {
        while let Some(Frame {
            entry,
            before,
            forced,
        }) = self.stack.pop()
        {
            self.state = before;
            // Frames are undone last first, so a class's last bit is this entry's.
            if self.class_of[entry] != NONE {
                self.class_placed[self.class_of[entry] as usize] -= 1;
            }
            let b = self.bit_to_set(entry);
            self.bits_zobrist ^= self.zobrist[b];
            self.bits[b / 64] &= !(1 << (b % 64));
            self.unlift(entry);
            if self.entries[entry].ret.is_some() {
                self.remaining_ok += 1;
            }
            if !forced {
                self.node = self.next[self.call_node[entry] as usize];
                return true;
            }
        }
        false
    }

    /// Remembers the furthest point the search got stuck at, for the explanation.
    fn note_stuck(&mut self, e: usize) {
        match &mut self.stuck {
            Some(s) if s.op == e => {
                if s.states.len() < MAX_STUCK_STATES && !s.states.contains(&self.state) {
                    s.states.push(self.state.clone());
                }
            }
            Some(s) if self.entries[s.op].ret >= self.entries[e].ret => {}
            _ => {
                self.stuck = Some(Stuck {
                    op: e,
                    prefix: self.stack.iter().map(|f| f.entry).collect(),
                    states: vec![self.state.clone()],
                })
            }
        }
    }
}

/// For each entry f, the equal entries e with a return that dominate it:
/// `call(e) < call(f) < ret(e) < ret(f)` (no return counts as last). As CSR:
/// f's are `dominators[start[f]..start[f + 1]]`.
fn dominators<O: Eq + Hash>(entries: &[Entry<O>]) -> (Vec<u32>, Vec<u32>) {
    let mut groups: HashMap<&O, Vec<u32>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        groups.entry(&e.op).or_default().push(i as u32);
    }
    let mut per_entry: Vec<Vec<u32>> = vec![Vec::new(); entries.len()];
    for members in groups.values() {
        // Members are in entry order; sort by call to scan only earlier ones.
        let mut by_call = members.clone();
        by_call.sort_unstable_by_key(|&i| entries[i as usize].call);
        // Those still open at the current call, by return.
        let mut open: Vec<u32> = Vec::new();
        for &f in &by_call {
            let fe = &entries[f as usize];
            open.retain(|&e| entries[e as usize].ret.is_some_and(|r| r > fe.call));
            let f_ret = fe.ret.unwrap_or(usize::MAX);
            per_entry[f as usize].extend(
                open.iter()
                    .copied()
                    .filter(|&e| entries[e as usize].ret.is_some_and(|r| r < f_ret)),
            );
            if fe.ret.is_some() {
                open.push(f);
            }
        }
    }
    let mut start = Vec::with_capacity(entries.len() + 1);
    let mut flat = Vec::new();
    for d in per_entry {
        start.push(flat.len() as u32);
        flat.extend(d);
    }
    start.push(flat.len() as u32);
    (start, flat)
}

/// The set of configurations seen: (linearized bitset, state), chained by hash.
///
/// Bitsets are kept run-length encoded ([`encode_runs`]): a linearized set
/// is almost all ones below the earliest unlinearized op and almost all
/// zeros above the latest op invoked, with a few words of mixed bits between
/// (about as many bits as there are clients) and the crashed classes' bits.
/// With 5,000 ops that is some 8 words instead of 79.
struct Cache<S> {
    heads: HashMap<u64, u32, BuildHasherDefault<PreHashed>>,
    /// Entry k's encoded bitset is `runs[run_start[k]..run_start[k + 1]]`
    /// (the last one's ends at `runs.len()`).
    runs: Vec<u64>,
    run_start: Vec<u32>,
    states: Vec<S>,
    /// The next entry with the same hash, or NONE.
    chain: Vec<u32>,
    /// The bitset being looked up, encoded.
    scratch: Vec<u64>,
    /// Approximate heap bytes held, for the memory budget.
    bytes: usize,
}

impl<S: Eq + Hash + Clone> Cache<S> {
    fn new() -> Self {
        Cache {
            heads: HashMap::default(),
            runs: Vec::new(),
            run_start: Vec::new(),
            states: Vec::new(),
            chain: Vec::new(),
            scratch: Vec::new(),
            bytes: 0,
        }
    }

    fn len(&self) -> usize {
        self.states.len()
    }

    /// Entry k's encoded bitset (a function of the fields, for split borrows).
    fn runs_of<'r>(runs: &'r [u64], run_start: &[u32], k: usize) -> &'r [u64] {
        let end = run_start.get(k + 1).map_or(runs.len(), |&e| e as usize);
        &runs[run_start[k] as usize..end]
    }

    /// Adds the configuration; false if it was already there. `None` when
    /// the encoded bitsets outgrow the cache's 32-bit offsets (the budget
    /// normally stops the search long before).
    fn insert(&mut self, zobrist: u64, bits: &[u64], state: &S) -> Option<bool> {
        let mut h = FxHasher::default();
        state.hash(&mut h);
        let key = mix(zobrist ^ h.finish());
        let mut scratch = std::mem::take(&mut self.scratch);
        encode_runs(bits, &mut scratch);
        let new = self.states.len() as u32;
        let first = match self.heads.entry(key) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(new);
                NONE
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                let mut k = *o.get();
                while k != NONE {
                    let at = k as usize;
                    if self.states[at] == *state
                        && Self::runs_of(&self.runs, &self.run_start, at) == scratch
                    {
                        self.scratch = scratch;
                        return Some(false);
                    }
                    k = self.chain[at];
                }
                std::mem::replace(o.get_mut(), new)
            }
        };
        let Ok(start) = u32::try_from(self.runs.len()) else {
            self.scratch = scratch;
            return None;
        };
        self.bytes += scratch.len() * 8 + 4 + size_of::<S>() + 4 + HASH_SLOT_BYTES;
        self.run_start.push(start);
        self.runs.extend_from_slice(&scratch);
        self.chain.push(first);
        self.states.push(state.clone());
        self.scratch = scratch;
        debug_assert_eq!(
            decode_runs(
                Self::runs_of(&self.runs, &self.run_start, new as usize),
                bits.len()
            ),
            bits
        );
        Some(true)
    }
}

/// The kinds of run in [`encode_runs`], in a header word's top two bits.
const RUN_ZEROS: u64 = 0;
const RUN_ONES: u64 = 1;
const RUN_LITERAL: u64 = 2;
const RUN_COUNT_MASK: u64 = (1 << 62) - 1;

/// Encodes a bitset as maximal runs of all-zero words, all-one words and
/// other words (a header word, kind and count, and for other words the words
/// themselves), leaving out trailing zeros. The encoding is canonical: two
/// bitsets of one length are equal exactly when their encodings are.
fn encode_runs(bits: &[u64], out: &mut Vec<u64>) {
    out.clear();
    let kind = |w: u64| match w {
        0 => RUN_ZEROS,
        u64::MAX => RUN_ONES,
        _ => RUN_LITERAL,
    };
    let len = bits.len() - bits.iter().rev().take_while(|&&w| w == 0).count();
    let mut i = 0;
    while i < len {
        let k = kind(bits[i]);
        let run = bits[i..len].iter().take_while(|&&w| kind(w) == k).count();
        out.push(k << 62 | run as u64);
        if k == RUN_LITERAL {
            out.extend_from_slice(&bits[i..i + run]);
        }
        i += run;
    }
}

/// The bitset of `words` words that [`encode_runs`] encoded (for assertions).
fn decode_runs(runs: &[u64], words: usize) -> Vec<u64> {
    let mut bits = Vec::with_capacity(words);
    let mut i = 0;
    while i < runs.len() {
        let (k, n) = (runs[i] >> 62, (runs[i] & RUN_COUNT_MASK) as usize);
        i += 1;
        match k {
            RUN_ZEROS => bits.extend(std::iter::repeat_n(0, n)),
            RUN_ONES => bits.extend(std::iter::repeat_n(u64::MAX, n)),
            _ => {
                bits.extend_from_slice(&runs[i..i + n]);
                i += n;
            }
        }
    }
    bits.resize(words, 0);
    bits
}

/// A hasher for keys that are already well mixed hashes.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys are pre-hashed")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Murmur3's finaliser: spreads every input bit over the whole word.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod run_tests {
    use super::*;

    /// Bitsets shaped like the search's (ones, a mixed window, zeros, a few
    /// class bits), and random ones: each decodes to itself, and two encode
    /// alike exactly when they are equal.
    #[test]
    fn run_encoding_is_canonical_and_lossless() {
        let mut seed = 7u64;
        let mut sets: Vec<Vec<u64>> = vec![vec![0; 3], vec![u64::MAX; 3], vec![0; 1]];
        for _ in 0..300 {
            let words = 1 + (splitmix64(&mut seed) % 12) as usize;
            let mut bits = vec![0u64; words];
            let ones = (splitmix64(&mut seed) % words as u64) as usize;
            bits[..ones].fill(u64::MAX);
            for w in bits.iter_mut().skip(ones).take(2) {
                *w = splitmix64(&mut seed) & splitmix64(&mut seed);
            }
            if splitmix64(&mut seed).is_multiple_of(3) {
                bits[words - 1] |= splitmix64(&mut seed) % 16;
            }
            sets.push(bits);
        }
        let mut enc = Vec::new();
        let encoded: Vec<(usize, Vec<u64>)> = sets
            .iter()
            .map(|b| {
                encode_runs(b, &mut enc);
                assert_eq!(decode_runs(&enc, b.len()), *b);
                (b.len(), enc.clone())
            })
            .collect();
        for (i, a) in sets.iter().enumerate() {
            for (j, b) in sets.iter().enumerate() {
                if a.len() == b.len() {
                    assert_eq!(a == b, encoded[i] == encoded[j], "{a:x?} vs {b:x?}");
                }
            }
        }
        // The search's typical shape is much shorter than the bitset.
        let mut typical = vec![u64::MAX; 60];
        typical.extend([0x0f0f, 0x3]);
        typical.extend(vec![0; 15]);
        typical.extend([0x7, 0]);
        encode_runs(&typical, &mut enc);
        assert_eq!(enc.len(), 7, "{enc:x?}");
    }
}
