//! What operations clients issue, and how fast: seeded, reproducible.
//!
//! A [`Generator`] hands out invocations (`f` and `value` in the history
//! format of DESIGN.md) one after another from a ChaCha8 stream seeded by the
//! run's seed, so the sequence of operations replays exactly; which worker
//! gets which operation depends on timing, as in Jepsen. A [`Pacer`] spaces
//! operations to the test's rate over all workers.
//!
//! Not here: talking to nodes (`client/`), phases and time limits (`runner/`).

pub mod synthetic;

use crate::suite::{WorkloadKind, WorkloadSpec};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One operation to invoke: the history's `f` and `value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub f: String,
    pub value: Value,
}

impl Invocation {
    fn new(f: &str, value: Value) -> Self {
        Invocation {
            f: f.to_string(),
            value,
        }
    }
}

/// Operations for one workload, drawn from one seeded stream.
pub struct Generator {
    kind: WorkloadKind,
    rng: ChaCha8Rng,
    /// (operation, cumulative weight), for weighted choice.
    mix: Vec<(String, u32)>,
    keys: u64,
    values: i64,
    txn_len: [u32; 2],
    max_writes_per_key: u32,
    /// Keys in use (list-append, rw-register): each retires after
    /// `max_writes_per_key` writes and a fresh key takes its place, so Elle
    /// sees every version of a key in a readable list or a short history.
    active_keys: Vec<u64>,
    writes: BTreeMap<u64, u32>,
    next_key: u64,
    accounts: i64,
    max_transfer: i64,
    /// The next unique value: set elements, appended and written values.
    next_value: i64,
}

impl Generator {
    /// `spec` must be resolved (every knob set); missing knobs fall back to 1.
    pub fn new(spec: &WorkloadSpec, seed: u64) -> Generator {
        let mut total = 0;
        let mix = spec
            .mix
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, w)| *w > 0)
            .map(|(op, w)| {
                total += w;
                (op, total)
            })
            .collect();
        let keys = u64::from(spec.keys.unwrap_or(1));
        Generator {
            kind: spec.kind,
            rng: ChaCha8Rng::seed_from_u64(seed),
            mix,
            keys,
            values: i64::from(spec.values.unwrap_or(1)),
            txn_len: spec.txn_len.unwrap_or([1, 1]),
            max_writes_per_key: spec.max_writes_per_key.unwrap_or(u32::MAX),
            active_keys: (0..keys).collect(),
            writes: BTreeMap::new(),
            next_key: keys,
            accounts: i64::from(spec.accounts.unwrap_or(1)),
            max_transfer: spec.max_transfer.unwrap_or(1).max(1),
            next_value: 1,
        }
    }

    /// The next operation of the main phase.
    pub fn next_op(&mut self) -> Invocation {
        let op = self.pick_op();
        match self.kind {
            WorkloadKind::Register => {
                let key = self.rng.random_range(0..self.keys);
                match op.as_str() {
                    "write" => Invocation::new(
                        "write",
                        json!([key, self.rng.random_range(0..self.values)]),
                    ),
                    "cas" => {
                        let (from, to) = (
                            self.rng.random_range(0..self.values),
                            self.rng.random_range(0..self.values),
                        );
                        Invocation::new("cas", json!([key, [from, to]]))
                    }
                    _ => Invocation::new("read", json!([key, null])),
                }
            }
            WorkloadKind::ListAppend | WorkloadKind::RwRegister => self.txn(),
            WorkloadKind::Bank => match op.as_str() {
                "transfer" if self.accounts > 1 => {
                    let from = self.rng.random_range(0..self.accounts);
                    let to = (from + self.rng.random_range(1..self.accounts)) % self.accounts;
                    let amount = self.rng.random_range(1..=self.max_transfer);
                    Invocation::new(
                        "transfer",
                        json!({"from": from, "to": to, "amount": amount}),
                    )
                }
                _ => Invocation::new("read", Value::Null),
            },
            WorkloadKind::Set => match op.as_str() {
                "add" => {
                    let v = self.unique_value();
                    Invocation::new("add", json!(v))
                }
                _ => Invocation::new("read", Value::Null),
            },
        }
    }

    /// What to read once faults are healed and the cluster has recovered.
    pub fn final_reads(&self) -> Vec<Invocation> {
        match self.kind {
            WorkloadKind::Set | WorkloadKind::Bank => vec![Invocation::new("read", Value::Null)],
            WorkloadKind::ListAppend => {
                let ops: Vec<Value> = self
                    .active_keys
                    .iter()
                    .map(|k| json!(["r", k, null]))
                    .collect();
                vec![Invocation::new("txn", Value::Array(ops))]
            }
            WorkloadKind::Register | WorkloadKind::RwRegister => vec![],
        }
    }

    fn pick_op(&mut self) -> String {
        let Some(&(_, total)) = self.mix.last() else {
            return String::new();
        };
        let roll = self.rng.random_range(0..total);
        let (op, _) = self
            .mix
            .iter()
            .find(|(_, upto)| roll < *upto)
            .unwrap_or(&self.mix[0]);
        op.clone()
    }

    fn unique_value(&mut self) -> i64 {
        let v = self.next_value;
        self.next_value += 1;
        v
    }

    fn txn(&mut self) -> Invocation {
        let [lo, hi] = self.txn_len;
        let len = self.rng.random_range(lo..=hi.max(lo));
        let write_f = if self.kind == WorkloadKind::ListAppend {
            "append"
        } else {
            "w"
        };
        let mut ops = Vec::with_capacity(len as usize);
        for _ in 0..len {
            let slot = self.rng.random_range(0..self.active_keys.len());
            let key = self.active_keys[slot];
            if self.pick_op() == write_f {
                let v = self.unique_value();
                ops.push(json!([write_f, key, v]));
                let n = self.writes.entry(key).or_insert(0);
                *n += 1;
                if *n >= self.max_writes_per_key {
                    self.writes.remove(&key);
                    self.active_keys[slot] = self.next_key;
                    self.next_key += 1;
                }
            } else {
                ops.push(json!(["r", key, null]));
            }
        }
        Invocation::new("txn", Value::Array(ops))
    }
}

/// Spaces operations `1/rate` apart over all workers, without bursts after a
/// stall: a worker that finds its slot in the past starts from now.
pub struct Pacer {
    interval: Duration,
    next_at: Instant,
}

impl Pacer {
    pub fn new(rate_per_s: f64) -> Pacer {
        debug_assert!(rate_per_s > 0.0);
        Pacer {
            interval: Duration::from_secs_f64(1.0 / rate_per_s),
            next_at: Instant::now(),
        }
    }

    /// The instant the caller may start its next operation (claims that slot).
    pub fn claim(&mut self) -> Instant {
        let now = Instant::now();
        let at = self.next_at.max(now);
        self.next_at = at + self.interval;
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::test::{Source, resolve};
    use crate::suite::{TestSpec, WorkloadRef};

    fn workload(name: &str) -> WorkloadSpec {
        let spec = TestSpec {
            db: Some(crate::suite::Db::Raft),
            workload: Some(WorkloadRef::Name(name.into())),
            ..TestSpec::default()
        };
        resolve(&spec, &Source::command_line()).unwrap().workload
    }

    #[test]
    fn the_same_seed_gives_the_same_operations() {
        for name in ["register", "list-append", "rw-register", "bank", "set"] {
            let (mut a, mut b, mut c) = (
                Generator::new(&workload(name), 7),
                Generator::new(&workload(name), 7),
                Generator::new(&workload(name), 8),
            );
            let xs: Vec<_> = (0..200).map(|_| a.next_op()).collect();
            let ys: Vec<_> = (0..200).map(|_| b.next_op()).collect();
            let zs: Vec<_> = (0..200).map(|_| c.next_op()).collect();
            assert_eq!(xs, ys, "{name}");
            assert_ne!(xs, zs, "{name}: another seed should give other operations");
        }
    }

    #[test]
    fn list_append_values_are_unique_and_keys_retire() {
        let mut w = workload("list-append");
        w.max_writes_per_key = Some(3);
        w.keys = Some(2);
        let mut g = Generator::new(&w, 1);
        let mut seen = std::collections::HashSet::new();
        let mut appends_per_key: BTreeMap<i64, u32> = BTreeMap::new();
        for _ in 0..500 {
            let inv = g.next_op();
            assert_eq!(inv.f, "txn");
            let ops = inv.value.as_array().unwrap();
            assert!((1..=4).contains(&ops.len()));
            for op in ops {
                let (f, k) = (op[0].as_str().unwrap(), op[1].as_i64().unwrap());
                if f == "append" {
                    assert!(
                        seen.insert(op[2].as_i64().unwrap()),
                        "appended values are unique"
                    );
                    *appends_per_key.entry(k).or_default() += 1;
                } else {
                    assert_eq!((f, &op[2]), ("r", &Value::Null));
                }
            }
        }
        assert!(
            appends_per_key.len() > 10,
            "fresh keys appear as old ones retire"
        );
        assert!(
            appends_per_key.values().all(|n| *n <= 3),
            "no key takes more than max_writes_per_key appends"
        );
    }

    #[test]
    fn bank_transfers_move_positive_amounts_between_distinct_accounts() {
        let mut g = Generator::new(&workload("bank"), 3);
        let mut transfers = 0;
        for _ in 0..500 {
            let inv = g.next_op();
            if inv.f == "transfer" {
                transfers += 1;
                let (from, to, amount) = (
                    inv.value["from"].as_i64().unwrap(),
                    inv.value["to"].as_i64().unwrap(),
                    inv.value["amount"].as_i64().unwrap(),
                );
                assert!(
                    from != to
                        && (0..5).contains(&from)
                        && (0..5).contains(&to)
                        && (1..=5).contains(&amount)
                );
            } else {
                assert_eq!(inv, Invocation::new("read", Value::Null));
            }
        }
        assert!(
            transfers > 150 && transfers < 350,
            "the mix is 1:1, got {transfers} transfers in 500"
        );
    }

    #[test]
    fn the_pacer_spaces_claims_by_the_interval() {
        let mut p = Pacer::new(100.0);
        let a = p.claim();
        let b = p.claim();
        let c = p.claim();
        assert_eq!(b - a, Duration::from_millis(10));
        assert_eq!(c - b, Duration::from_millis(10));
    }
}
