//! Synthetic transactional histories (`faultline gen-history`): a seeded,
//! simulated database that is strictly serializable, or that commits one
//! chosen anomaly, for tests and benchmarks of the Elle checker.
//!
//! Clients draw transactions from the workload's generator (the same
//! stream a real run uses: rotating keys, unique values). A scheduler picks
//! a random client per step: an idle one invokes its next transaction, a
//! busy one completes: the database applies the whole transaction
//! atomically at that moment (inside its invocation..completion window, so
//! the history is strictly serializable), or fails it (not applied), or
//! times out as `info` (applied or not, by a coin; the client then takes a
//! new process number, as in Jepsen).
//!
//! With an anomaly, halfway through the run the database also runs a short
//! scripted scene on keys the clients recently wrote: fresh processes,
//! fresh values, and the database breaks isolation exactly as the anomaly
//! says (a failed append that became visible, a read of half a transaction,
//! ...). The rest of the history stays correct, so a checker must find the
//! needle. Randomness comes from one ChaCha8 stream per seed.
//!
//! Not here: checking (that is `checker::elle`, which this never imports).

use crate::history::{Op, OpType, Process};
use crate::workload::Workload;
use crate::workload::txn::{ListAppend, RwRegister};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{self, Write};
use std::path::Path;
use std::str::FromStr;

/// Which kind of transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnWorkload {
    ListAppend,
    RwRegister,
}

/// An anomaly the simulated database can commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inject {
    G0,
    G1a,
    G1b,
    G1c,
    GSingle,
    GNonadjacent,
    G2Item,
    LostUpdate,
    Internal,
    FutureRead,
    DirtyUpdate,
    DuplicateElements,
    IncompatibleOrder,
    GarbageRead,
    /// A read that misses a write committed before it began.
    StaleRead,
    /// A transaction sees one of another's writes but an older version of
    /// a key it also wrote: read committed, not read atomic.
    FracturedRead,
    /// A transaction misses a write causally before it (through a third
    /// transaction), and no single step shows it: read atomic, not causal.
    CausalityViolation,
}

pub const INJECTIONS: [Inject; 17] = [
    Inject::G0,
    Inject::G1a,
    Inject::G1b,
    Inject::G1c,
    Inject::GSingle,
    Inject::GNonadjacent,
    Inject::G2Item,
    Inject::LostUpdate,
    Inject::Internal,
    Inject::FutureRead,
    Inject::DirtyUpdate,
    Inject::DuplicateElements,
    Inject::IncompatibleOrder,
    Inject::GarbageRead,
    Inject::StaleRead,
    Inject::FracturedRead,
    Inject::CausalityViolation,
];

impl Inject {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Inject::G0 => "g0",
            Inject::G1a => "g1a",
            Inject::G1b => "g1b",
            Inject::G1c => "g1c",
            Inject::GSingle => "g-single",
            Inject::GNonadjacent => "g-nonadjacent",
            Inject::G2Item => "g2-item",
            Inject::LostUpdate => "lost-update",
            Inject::Internal => "internal",
            Inject::FutureRead => "future-read",
            Inject::DirtyUpdate => "dirty-update",
            Inject::DuplicateElements => "duplicate-elements",
            Inject::IncompatibleOrder => "incompatible-order",
            Inject::GarbageRead => "garbage-read",
            Inject::StaleRead => "stale-read",
            Inject::FracturedRead => "fractured-read",
            Inject::CausalityViolation => "causality-violation",
        }
    }

    /// The anomaly (Elle's name) a checker must report for it.
    pub fn expected(self) -> &'static str {
        match self {
            Inject::G0 => "G0",
            Inject::G1a => "G1a",
            Inject::G1b => "G1b",
            Inject::G1c => "G1c",
            Inject::GSingle => "G-single",
            Inject::GNonadjacent => "G-nonadjacent",
            Inject::G2Item => "G2-item",
            Inject::StaleRead => "G-single-realtime",
            other => other.name(),
        }
    }

    /// Whether the workload can show it (registers have no list order).
    pub fn supports(self, w: TxnWorkload) -> bool {
        w == TxnWorkload::ListAppend
            || !matches!(
                self,
                Inject::GNonadjacent
                    | Inject::DirtyUpdate
                    | Inject::DuplicateElements
                    | Inject::IncompatibleOrder
            )
    }
}

impl FromStr for Inject {
    type Err = String;
    fn from_str(s: &str) -> Result<Inject, String> {
        INJECTIONS
            .iter()
            .copied()
            .find(|i| i.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = INJECTIONS.iter().map(|i| i.name()).collect();
                format!(
                    "unknown anomaly {s:?}: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    pub workload: TxnWorkload,
    pub txns: usize,
    pub clients: usize,
    /// Keys in use at a time.
    pub keys: u32,
    pub max_writes_per_key: u32,
    /// Fewest and most micro-ops per transaction.
    pub txn_len: [u32; 2],
    /// Percent of transactions that fail, and that end `info`.
    pub fail_percent: u32,
    pub info_percent: u32,
    pub anomaly: Option<Inject>,
    pub seed: u64,
}

impl SynthOptions {
    pub fn new(workload: TxnWorkload, txns: usize, seed: u64) -> SynthOptions {
        SynthOptions {
            workload,
            txns,
            clients: 20,
            keys: 1000,
            max_writes_per_key: 32,
            txn_len: [1, 4],
            fail_percent: 1,
            info_percent: 1,
            anomaly: None,
            seed,
        }
    }
}

/// What was generated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub ops: u64,
    pub txns: u64,
}

/// The simulated database: lists (list-append) or registers (rw-register).
#[derive(Default)]
struct Db {
    lists: HashMap<i64, Vec<i64>>,
    registers: HashMap<i64, i64>,
    /// Recently written keys, for the anomaly scene.
    recent: Vec<i64>,
}

impl Db {
    /// Applies a transaction atomically; returns it with its reads filled.
    fn apply(&mut self, txn: &Value) -> Value {
        let mops = txn.as_array().map(Vec::as_slice).unwrap_or(&[]);
        let out = mops
            .iter()
            .map(|m| {
                let (f, k, v) = (
                    m[0].as_str().unwrap_or(""),
                    m[1].as_i64().unwrap_or(0),
                    &m[2],
                );
                match f {
                    "append" => {
                        self.append(k, v.as_i64().unwrap_or(0));
                        m.clone()
                    }
                    "w" => {
                        self.write(k, v.as_i64().unwrap_or(0));
                        m.clone()
                    }
                    _ => json!(["r", k, self.read(k)]),
                }
            })
            .collect();
        Value::Array(out)
    }

    fn touch(&mut self, k: i64) {
        if !self.recent.contains(&k) {
            if self.recent.len() >= 64 {
                self.recent.remove(0);
            }
            self.recent.push(k);
        }
    }

    fn append(&mut self, k: i64, v: i64) {
        self.lists.entry(k).or_default().push(v);
        self.touch(k);
    }

    fn write(&mut self, k: i64, v: i64) {
        self.registers.insert(k, v);
        self.touch(k);
    }

    fn read(&self, k: i64) -> Value {
        if let Some(l) = self.lists.get(&k) {
            return json!(l);
        }
        self.registers.get(&k).map_or(Value::Null, |v| json!(v))
    }

    fn list(&self, k: i64) -> Vec<i64> {
        self.lists.get(&k).cloned().unwrap_or_default()
    }
}

/// Emits ops with dense indices and rising times.
struct Emitter<'a> {
    index: u64,
    time: u64,
    sink: &'a mut dyn FnMut(&Op) -> io::Result<()>,
    txns: u64,
}

impl Emitter<'_> {
    fn emit(&mut self, process: u64, kind: OpType, value: Value) -> io::Result<()> {
        self.time += 1_000;
        let op = Op {
            index: self.index,
            time: self.time,
            process: Process::Client(process),
            kind,
            f: "txn".into(),
            value,
            node: None,
            error: None,
        };
        self.index += 1;
        if kind != OpType::Invoke {
            self.txns += 1;
        }
        (self.sink)(&op)
    }
}

/// The invocation of a transaction: reads unknown.
fn invocation(txn: &Value) -> Value {
    let mops = txn.as_array().map(Vec::as_slice).unwrap_or(&[]);
    Value::Array(
        mops.iter()
            .map(|m| {
                if m[0] == "r" {
                    json!(["r", m[1], null])
                } else {
                    m.clone()
                }
            })
            .collect(),
    )
}

/// Generates a history, handing each op to `sink` in order.
pub fn generate(
    opts: &SynthOptions,
    sink: &mut dyn FnMut(&Op) -> io::Result<()>,
) -> io::Result<Summary> {
    if let Some(a) = opts.anomaly
        && !a.supports(opts.workload)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the {} anomaly cannot be shown by rw-register histories",
                a.name()
            ),
        ));
    }
    let (keys, max_writes_per_key) = (opts.keys.max(1), opts.max_writes_per_key.max(1));
    let txn_len = [
        opts.txn_len[0].max(1),
        opts.txn_len[1].max(opts.txn_len[0]).max(1),
    ];
    let workload = match opts.workload {
        TxnWorkload::ListAppend => Workload::ListAppend(ListAppend {
            keys,
            max_writes_per_key,
            txn_len,
            ..ListAppend::default()
        }),
        TxnWorkload::RwRegister => Workload::RwRegister(RwRegister {
            keys,
            max_writes_per_key,
            txn_len,
            ..RwRegister::default()
        }),
    };
    let mut ops_gen = workload.generator(opts.seed);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x5eed_0fdb);
    let mut db = Db::default();
    let clients = opts.clients.max(1);
    // Per client: its process number and its open transaction, if any.
    let mut procs: Vec<u64> = (0..clients as u64).collect();
    let mut open: Vec<Option<Value>> = vec![None; clients];
    let mut next_process = clients as u64;
    let mut started = 0usize;
    let mut injected = opts.anomaly.is_none();
    let mut e = Emitter {
        index: 0,
        time: 0,
        sink,
        txns: 0,
    };
    while started < opts.txns || open.iter().any(Option::is_some) {
        if !injected && started >= opts.txns / 2 {
            injected = true;
            let anomaly = opts.anomaly.expect("checked above");
            scene(anomaly, opts.workload, &mut db, &mut rng, &mut e)?;
        }
        let c = rng.random_range(0..clients);
        match open[c].take() {
            None if started < opts.txns => {
                let txn = ops_gen.next_op().history_value();
                e.emit(procs[c], OpType::Invoke, invocation(&txn))?;
                open[c] = Some(txn);
                started += 1;
            }
            None => {}
            Some(txn) => {
                let roll = rng.random_range(0..100u32);
                if roll < opts.fail_percent {
                    e.emit(procs[c], OpType::Fail, invocation(&txn))?;
                } else if roll < opts.fail_percent + opts.info_percent {
                    if rng.random_range(0..2u32) == 0 {
                        db.apply(&txn);
                    }
                    e.emit(procs[c], OpType::Info, invocation(&txn))?;
                    procs[c] = next_process;
                    next_process += 1;
                } else {
                    let done = db.apply(&txn);
                    e.emit(procs[c], OpType::Ok, done)?;
                }
            }
        }
    }
    Ok(Summary {
        ops: e.index,
        txns: e.txns,
    })
}

/// Writes a generated history to a JSONL file (through a temporary file, so
/// a reader never sees half of it).
pub fn write_jsonl(opts: &SynthOptions, path: &Path) -> io::Result<Summary> {
    crate::atomic_file::write_with(path, |w| {
        let mut w = io::BufWriter::with_capacity(1 << 20, w);
        let summary = generate(opts, &mut |op| {
            serde_json::to_writer(&mut w, op).map_err(io::Error::other)?;
            w.write_all(b"\n")
        })?;
        w.flush()?;
        Ok(summary)
    })
}

/// Plays the scripted anomaly: fresh processes and values, keys the clients
/// recently wrote (or fresh ones early on).
fn scene(
    a: Inject,
    w: TxnWorkload,
    db: &mut Db,
    rng: &mut ChaCha8Rng,
    e: &mut Emitter,
) -> io::Result<()> {
    const FRESH: i64 = 1 << 40;
    // Four distinct keys: recently written ones (`recent` holds distinct
    // keys), or fresh ones if the run is too young.
    let n = db.recent.len();
    let start = rng.random_range(0..n.max(1));
    let keys: Vec<i64> = (0..4)
        .map(|i| {
            if n >= 4 {
                db.recent[(start + i) % n]
            } else {
                FRESH + i as i64
            }
        })
        .collect();
    let (x, y, z, wk) = (keys[0], keys[1], keys[2], keys[3]);
    let v = |i: i64| FRESH + 100 + i;
    // Processes no client uses.
    let base = (1u64 << 32) + e.index * 16;
    let (p1, p2, p3, p4) = (base + 1, base + 2, base + 3, base + 4);
    let ok = OpType::Ok;
    match (w, a) {
        (TxnWorkload::ListAppend, _) => list_scene(a, db, e, [x, y, z, wk], v, [p1, p2, p3, p4]),
        (_, Inject::G0) => {
            // T1 read y as T2 wrote it, then wrote x and y; T2 read x as T1
            // wrote it, then wrote x and y: x: a1 < a2, y: b2 < b1.
            let (t1, t2) = (
                json!([["r", y, null], ["w", x, v(1)], ["w", y, v(3)]]),
                json!([["r", x, null], ["w", x, v(2)], ["w", y, v(4)]]),
            );
            e.emit(p1, OpType::Invoke, t1)?;
            e.emit(p2, OpType::Invoke, t2)?;
            db.write(x, v(2));
            db.write(y, v(3));
            e.emit(
                p1,
                ok,
                json!([["r", y, v(4)], ["w", x, v(1)], ["w", y, v(3)]]),
            )?;
            e.emit(
                p2,
                ok,
                json!([["r", x, v(1)], ["w", x, v(2)], ["w", y, v(4)]]),
            )
        }
        (_, Inject::GSingle) => {
            let old = db.read(x);
            let t2 = json!([["r", x, null], ["w", x, v(1)], ["w", y, v(2)]]);
            e.emit(p1, OpType::Invoke, json!([["r", x, null], ["r", y, null]]))?;
            e.emit(p2, OpType::Invoke, t2)?;
            e.emit(
                p2,
                ok,
                json!([["r", x, old], ["w", x, v(1)], ["w", y, v(2)]]),
            )?;
            e.emit(p1, ok, json!([["r", x, old], ["r", y, v(2)]]))?;
            db.write(x, v(1));
            db.write(y, v(2));
            Ok(())
        }
        (_, Inject::G2Item) => {
            let (ox, oy) = (db.read(x), db.read(y));
            e.emit(
                p1,
                OpType::Invoke,
                json!([["r", x, null], ["r", y, null], ["w", y, v(1)]]),
            )?;
            e.emit(
                p2,
                OpType::Invoke,
                json!([["r", x, null], ["r", y, null], ["w", x, v(2)]]),
            )?;
            e.emit(p1, ok, json!([["r", x, ox], ["r", y, oy], ["w", y, v(1)]]))?;
            e.emit(p2, ok, json!([["r", x, ox], ["r", y, oy], ["w", x, v(2)]]))?;
            db.write(y, v(1));
            db.write(x, v(2));
            Ok(())
        }
        (_, Inject::StaleRead) => {
            let old = db.read(x);
            e.emit(p1, OpType::Invoke, json!([["r", x, null], ["w", x, v(1)]]))?;
            e.emit(p1, ok, json!([["r", x, old], ["w", x, v(1)]]))?;
            db.write(x, v(1));
            e.emit(p2, OpType::Invoke, json!([["r", x, null]]))?;
            e.emit(p2, ok, json!([["r", x, old]]))
        }
        (_, a) => {
            // The rest read and write as the list scenes do, with registers.
            register_scene(a, db, e, [x, y], v, [p1, p2, p3])
        }
    }
}

fn list_scene(
    a: Inject,
    db: &mut Db,
    e: &mut Emitter,
    k: [i64; 4],
    v: impl Fn(i64) -> i64,
    p: [u64; 4],
) -> io::Result<()> {
    let [x, y, z, w] = k;
    let [p1, p2, p3, p4] = p;
    let ok = OpType::Ok;
    let ap = |k: i64, v: i64| json!(["append", k, v]);
    let r = |k: i64, l: &[i64]| json!(["r", k, l]);
    let rn = |k: i64| json!(["r", k, null]);
    let with = |l: Vec<i64>, extra: &[i64]| [l, extra.to_vec()].concat();
    let (sx, sy, sz) = (db.list(x), db.list(y), db.list(z));
    match a {
        Inject::G0 => {
            e.emit(p1, OpType::Invoke, json!([ap(x, v(1)), ap(y, v(3))]))?;
            e.emit(p2, OpType::Invoke, json!([ap(x, v(2)), ap(y, v(4))]))?;
            db.append(x, v(1));
            db.append(x, v(2));
            db.append(y, v(4));
            db.append(y, v(3));
            e.emit(p1, ok, json!([ap(x, v(1)), ap(y, v(3))]))?;
            e.emit(p2, ok, json!([ap(x, v(2)), ap(y, v(4))]))?;
            e.emit(p3, OpType::Invoke, json!([rn(x), rn(y)]))?;
            e.emit(p3, ok, json!([r(x, &db.list(x)), r(y, &db.list(y))]))
        }
        Inject::G1a | Inject::DirtyUpdate => {
            e.emit(p1, OpType::Invoke, json!([ap(x, v(1))]))?;
            e.emit(p1, OpType::Fail, json!([ap(x, v(1))]))?;
            db.append(x, v(1));
            if a == Inject::DirtyUpdate {
                e.emit(p2, OpType::Invoke, json!([ap(x, v(2))]))?;
                db.append(x, v(2));
                e.emit(p2, ok, json!([ap(x, v(2))]))?;
            }
            e.emit(p3, OpType::Invoke, json!([rn(x)]))?;
            e.emit(p3, ok, json!([r(x, &db.list(x))]))
        }
        Inject::G1b => {
            e.emit(p1, OpType::Invoke, json!([ap(x, v(1)), ap(x, v(2))]))?;
            e.emit(p2, OpType::Invoke, json!([rn(x)]))?;
            e.emit(p2, ok, json!([r(x, &with(sx, &[v(1)]))]))?;
            db.append(x, v(1));
            db.append(x, v(2));
            e.emit(p1, ok, json!([ap(x, v(1)), ap(x, v(2))]))
        }
        Inject::G1c => {
            e.emit(p1, OpType::Invoke, json!([ap(x, v(1)), rn(y)]))?;
            e.emit(p2, OpType::Invoke, json!([ap(y, v(2)), rn(x)]))?;
            db.append(x, v(1));
            db.append(y, v(2));
            e.emit(p1, ok, json!([ap(x, v(1)), r(y, &db.list(y))]))?;
            e.emit(p2, ok, json!([ap(y, v(2)), r(x, &db.list(x))]))
        }
        Inject::GSingle => {
            e.emit(p1, OpType::Invoke, json!([rn(x), rn(y)]))?;
            e.emit(p2, OpType::Invoke, json!([ap(x, v(1)), ap(y, v(2))]))?;
            db.append(x, v(1));
            db.append(y, v(2));
            e.emit(p2, ok, json!([ap(x, v(1)), ap(y, v(2))]))?;
            e.emit(p1, ok, json!([r(x, &sx), r(y, &db.list(y))]))
        }
        Inject::GNonadjacent => {
            e.emit(p1, OpType::Invoke, json!([rn(x), rn(w)]))?;
            e.emit(p2, OpType::Invoke, json!([ap(x, v(1)), ap(y, v(2))]))?;
            e.emit(p3, OpType::Invoke, json!([rn(y), rn(z)]))?;
            e.emit(p4, OpType::Invoke, json!([ap(z, v(3)), ap(w, v(4))]))?;
            for (k, val) in [(x, v(1)), (y, v(2)), (z, v(3)), (w, v(4))] {
                db.append(k, val);
            }
            e.emit(p2, ok, json!([ap(x, v(1)), ap(y, v(2))]))?;
            e.emit(p4, ok, json!([ap(z, v(3)), ap(w, v(4))]))?;
            e.emit(p1, ok, json!([r(x, &sx), r(w, &db.list(w))]))?;
            e.emit(p3, ok, json!([r(y, &db.list(y)), r(z, &sz)]))
        }
        Inject::G2Item => {
            e.emit(p1, OpType::Invoke, json!([rn(x), ap(y, v(1))]))?;
            e.emit(p2, OpType::Invoke, json!([rn(y), ap(x, v(2))]))?;
            db.append(y, v(1));
            db.append(x, v(2));
            e.emit(p1, ok, json!([r(x, &sx), ap(y, v(1))]))?;
            e.emit(p2, ok, json!([r(y, &sy), ap(x, v(2))]))?;
            e.emit(p3, OpType::Invoke, json!([rn(x), rn(y)]))?;
            e.emit(p3, ok, json!([r(x, &db.list(x)), r(y, &db.list(y))]))
        }
        Inject::LostUpdate => {
            e.emit(p1, OpType::Invoke, json!([rn(x), ap(x, v(1))]))?;
            e.emit(p2, OpType::Invoke, json!([rn(x), ap(x, v(2))]))?;
            db.append(x, v(1));
            db.append(x, v(2));
            e.emit(p1, ok, json!([r(x, &sx), ap(x, v(1))]))?;
            e.emit(p2, ok, json!([r(x, &sx), ap(x, v(2))]))
        }
        Inject::Internal => {
            e.emit(p1, OpType::Invoke, json!([ap(x, v(1)), rn(x)]))?;
            db.append(x, v(1));
            e.emit(p1, ok, json!([ap(x, v(1)), r(x, &sx)]))
        }
        Inject::FutureRead => {
            e.emit(p1, OpType::Invoke, json!([rn(x), ap(x, v(1))]))?;
            db.append(x, v(1));
            e.emit(p1, ok, json!([r(x, &db.list(x)), ap(x, v(1))]))
        }
        Inject::DuplicateElements => {
            e.emit(p1, OpType::Invoke, json!([ap(x, v(1))]))?;
            db.append(x, v(1));
            db.append(x, v(1));
            e.emit(p1, ok, json!([ap(x, v(1))]))?;
            e.emit(p2, OpType::Invoke, json!([rn(x)]))?;
            e.emit(p2, ok, json!([r(x, &db.list(x))]))
        }
        Inject::IncompatibleOrder => {
            e.emit(p1, OpType::Invoke, json!([ap(x, v(1))]))?;
            e.emit(p2, OpType::Invoke, json!([ap(x, v(2))]))?;
            db.append(x, v(1));
            db.append(x, v(2));
            e.emit(p1, ok, json!([ap(x, v(1))]))?;
            e.emit(p2, ok, json!([ap(x, v(2))]))?;
            e.emit(p3, OpType::Invoke, json!([rn(x)]))?;
            e.emit(p3, ok, json!([r(x, &db.list(x))]))?;
            e.emit(p4, OpType::Invoke, json!([rn(x)]))?;
            e.emit(p4, ok, json!([r(x, &with(sx, &[v(2), v(1)]))]))
        }
        Inject::GarbageRead => {
            e.emit(p1, OpType::Invoke, json!([rn(x)]))?;
            e.emit(p1, ok, json!([r(x, &with(sx, &[v(9)]))]))
        }
        Inject::FracturedRead => {
            // T2 sees T1's append to x but not its append to y.
            e.emit(p1, OpType::Invoke, json!([ap(x, v(1)), ap(y, v(2))]))?;
            db.append(x, v(1));
            db.append(y, v(2));
            e.emit(p1, ok, json!([ap(x, v(1)), ap(y, v(2))]))?;
            e.emit(p2, OpType::Invoke, json!([rn(x), rn(y)]))?;
            e.emit(p2, ok, json!([r(x, &db.list(x)), r(y, &sy)]))
        }
        Inject::CausalityViolation => {
            // T1 appends to x; T2 sees it and appends to y; T3 sees T2's
            // append but not T1's.
            e.emit(p1, OpType::Invoke, json!([ap(x, v(1))]))?;
            db.append(x, v(1));
            e.emit(p1, ok, json!([ap(x, v(1))]))?;
            e.emit(p2, OpType::Invoke, json!([rn(x), ap(y, v(2))]))?;
            let seen = db.list(x);
            db.append(y, v(2));
            e.emit(p2, ok, json!([r(x, &seen), ap(y, v(2))]))?;
            e.emit(p3, OpType::Invoke, json!([rn(y), rn(x)]))?;
            e.emit(p3, ok, json!([r(y, &db.list(y)), r(x, &sx)]))
        }
        Inject::StaleRead => {
            e.emit(p1, OpType::Invoke, json!([ap(x, v(1))]))?;
            db.append(x, v(1));
            e.emit(p1, ok, json!([ap(x, v(1))]))?;
            e.emit(p2, OpType::Invoke, json!([rn(x)]))?;
            e.emit(p2, ok, json!([r(x, &sx)]))
        }
    }
}

fn register_scene(
    a: Inject,
    db: &mut Db,
    e: &mut Emitter,
    k: [i64; 2],
    v: impl Fn(i64) -> i64,
    p: [u64; 3],
) -> io::Result<()> {
    let [x, y] = k;
    let [p1, p2, p3] = p;
    let ok = OpType::Ok;
    let wr = |k: i64, v: i64| json!(["w", k, v]);
    let rn = |k: i64| json!(["r", k, null]);
    let old = db.read(x);
    match a {
        Inject::G1a => {
            e.emit(p1, OpType::Invoke, json!([wr(x, v(1))]))?;
            e.emit(p1, OpType::Fail, json!([wr(x, v(1))]))?;
            db.write(x, v(1));
            e.emit(p2, OpType::Invoke, json!([rn(x)]))?;
            e.emit(p2, ok, json!([["r", x, v(1)]]))
        }
        Inject::G1b => {
            e.emit(p1, OpType::Invoke, json!([wr(x, v(1)), wr(x, v(2))]))?;
            e.emit(p2, OpType::Invoke, json!([rn(x)]))?;
            e.emit(p2, ok, json!([["r", x, v(1)]]))?;
            db.write(x, v(2));
            e.emit(p1, ok, json!([wr(x, v(1)), wr(x, v(2))]))
        }
        Inject::G1c => {
            e.emit(p1, OpType::Invoke, json!([wr(x, v(1)), rn(y)]))?;
            e.emit(p2, OpType::Invoke, json!([wr(y, v(2)), rn(x)]))?;
            db.write(x, v(1));
            db.write(y, v(2));
            e.emit(p1, ok, json!([wr(x, v(1)), ["r", y, v(2)]]))?;
            e.emit(p2, ok, json!([wr(y, v(2)), ["r", x, v(1)]]))
        }
        Inject::LostUpdate => {
            e.emit(p1, OpType::Invoke, json!([rn(x), wr(x, v(1))]))?;
            e.emit(p2, OpType::Invoke, json!([rn(x), wr(x, v(2))]))?;
            db.write(x, v(2));
            e.emit(p1, ok, json!([["r", x, old], wr(x, v(1))]))?;
            e.emit(p2, ok, json!([["r", x, old], wr(x, v(2))]))
        }
        Inject::Internal => {
            e.emit(p1, OpType::Invoke, json!([wr(x, v(1)), rn(x)]))?;
            db.write(x, v(1));
            e.emit(p1, ok, json!([wr(x, v(1)), ["r", x, old]]))
        }
        Inject::FutureRead => {
            e.emit(p1, OpType::Invoke, json!([rn(x), wr(x, v(1))]))?;
            db.write(x, v(1));
            e.emit(p1, ok, json!([["r", x, v(1)], wr(x, v(1))]))
        }
        Inject::GarbageRead => {
            e.emit(p1, OpType::Invoke, json!([rn(x)]))?;
            e.emit(p1, ok, json!([["r", x, v(9)]]))
        }
        Inject::FracturedRead => {
            // T1 read both keys before writing them (so its versions follow
            // the old ones); T2 sees its x but the old y.
            let oy = db.read(y);
            let t1 = json!([["r", x, old], ["r", y, oy], wr(x, v(1)), wr(y, v(2))]);
            e.emit(p1, OpType::Invoke, invocation(&t1))?;
            db.write(x, v(1));
            db.write(y, v(2));
            e.emit(p1, ok, t1)?;
            e.emit(p2, OpType::Invoke, json!([rn(x), rn(y)]))?;
            e.emit(p2, ok, json!([["r", x, v(1)], ["r", y, oy]]))
        }
        Inject::CausalityViolation => {
            // T1 overwrites x; T2 sees it and writes y; T3 sees T2's y but
            // the x before T1's.
            let t1 = json!([["r", x, old], wr(x, v(1))]);
            e.emit(p1, OpType::Invoke, invocation(&t1))?;
            db.write(x, v(1));
            e.emit(p1, ok, t1)?;
            e.emit(p2, OpType::Invoke, json!([rn(x), wr(y, v(2))]))?;
            db.write(y, v(2));
            e.emit(p2, ok, json!([["r", x, v(1)], wr(y, v(2))]))?;
            e.emit(p3, OpType::Invoke, json!([rn(y), rn(x)]))?;
            e.emit(p3, ok, json!([["r", y, v(2)], ["r", x, old]]))
        }
        _ => unreachable!("handled by scene or rejected by supports()"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(opts: &SynthOptions) -> Vec<Op> {
        let mut ops = Vec::new();
        generate(opts, &mut |op| {
            ops.push(op.clone());
            Ok(())
        })
        .unwrap();
        ops
    }

    #[test]
    fn the_same_seed_gives_the_same_history() {
        let mut o = SynthOptions::new(TxnWorkload::ListAppend, 300, 7);
        o.anomaly = Some(Inject::G1c);
        let (a, b) = (collect(&o), collect(&o));
        assert_eq!(a, b);
        o.seed = 8;
        assert_ne!(a, collect(&o));
        // every invocation is completed, indices are dense
        assert_eq!(
            a.iter().filter(|op| op.kind == OpType::Invoke).count() * 2,
            a.len()
        );
        assert!(a.iter().enumerate().all(|(i, op)| op.index == i as u64));
    }

    #[test]
    fn registers_refuse_list_only_anomalies() {
        let mut o = SynthOptions::new(TxnWorkload::RwRegister, 10, 1);
        o.anomaly = Some(Inject::DuplicateElements);
        assert!(generate(&o, &mut |_| Ok(())).is_err());
    }
}
