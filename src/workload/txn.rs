//! The transactional workloads, checked by Elle: `list-append` (append unique
//! values to lists, read whole lists) and `rw-register` (write unique values
//! to registers, read them). Keys retire after `max_writes_per_key` writes and
//! fresh keys take their place, so every version of a key stays in a readable
//! list (list-append) or a short history (rw-register).

use super::{Check, Generate, Operation, Plan, check_mix, positive, weighted};
use crate::checker::elle::{self, Model};
use crate::nodes::wire::MicroOp;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The longest transaction a `txn_len` may ask for.
const TXN_LEN_MAX: u32 = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListAppend {
    /// Keys in use at a time.
    pub keys: u32,
    /// Appends to a key before it retires.
    pub max_writes_per_key: u32,
    /// Fewest and most micro-ops per transaction.
    pub txn_len: [u32; 2],
    pub mix: AppendMix,
    /// The consistency model Elle checks against.
    pub consistency: Model,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RwRegister {
    pub keys: u32,
    pub max_writes_per_key: u32,
    pub txn_len: [u32; 2],
    pub mix: WriteMix,
    pub consistency: Model,
}

/// Relative weights of the micro-ops of a list-append transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppendMix {
    pub append: u32,
    pub r: u32,
}

/// Relative weights of the micro-ops of an rw-register transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriteMix {
    pub w: u32,
    pub r: u32,
}

impl Default for AppendMix {
    fn default() -> Self {
        AppendMix { append: 1, r: 1 }
    }
}

impl Default for WriteMix {
    fn default() -> Self {
        WriteMix { w: 1, r: 1 }
    }
}

impl Default for ListAppend {
    fn default() -> Self {
        ListAppend {
            keys: 10,
            max_writes_per_key: 32,
            txn_len: [1, 4],
            mix: AppendMix::default(),
            consistency: Model::StrictSerializable,
        }
    }
}

impl Default for RwRegister {
    fn default() -> Self {
        RwRegister {
            keys: 10,
            max_writes_per_key: 32,
            txn_len: [1, 4],
            mix: WriteMix::default(),
            consistency: Model::StrictSerializable,
        }
    }
}

fn validate(
    keys: u32,
    max_writes_per_key: u32,
    [lo, hi]: [u32; 2],
    weights: &[u32],
) -> Result<(), (&'static str, String)> {
    positive("keys", keys)?;
    positive("max_writes_per_key", max_writes_per_key)?;
    if lo == 0 || lo > hi || hi > TXN_LEN_MAX {
        return Err((
            "txn_len",
            format!(
                "`txn_len: [{lo}, {hi}]` must be [min, max] with 1 <= min <= max <= {TXN_LEN_MAX}"
            ),
        ));
    }
    check_mix(weights)
}

impl Plan for ListAppend {
    fn name(&self) -> &'static str {
        "list-append"
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        let w = [self.mix.append, self.mix.r];
        validate(self.keys, self.max_writes_per_key, self.txn_len, &w)
    }

    fn checks(&self) -> Vec<Check> {
        vec![Check::Elle(elle::Workload::ListAppend, self.consistency)]
    }

    fn generator(&self, rng: ChaCha8Rng) -> Box<dyn Generate> {
        Box::new(Generator::new(
            rng,
            Write::Append,
            self.keys,
            self.max_writes_per_key,
            self.txn_len,
            [self.mix.append, self.mix.r],
        ))
    }
}

impl Plan for RwRegister {
    fn name(&self) -> &'static str {
        "rw-register"
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        let w = [self.mix.w, self.mix.r];
        validate(self.keys, self.max_writes_per_key, self.txn_len, &w)
    }

    fn checks(&self) -> Vec<Check> {
        vec![Check::Elle(elle::Workload::RwRegister, self.consistency)]
    }

    fn generator(&self, rng: ChaCha8Rng) -> Box<dyn Generate> {
        Box::new(Generator::new(
            rng,
            Write::Register,
            self.keys,
            self.max_writes_per_key,
            self.txn_len,
            [self.mix.r, self.mix.w],
        ))
    }
}

/// What a write micro-op does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Append,
    Register,
}

pub struct Generator {
    rng: ChaCha8Rng,
    write: Write,
    txn_len: [u32; 2],
    /// Weights of the two micro-ops in the order of their names (`append`,
    /// `r`; `r`, `w`), as earlier versions drew them, so a seed gives the
    /// transactions it gave before.
    weights: [u32; 2],
    max_writes_per_key: u32,
    /// The keys in use; a key retires after `max_writes_per_key` writes and
    /// the next fresh key takes its slot.
    active_keys: Vec<i64>,
    writes: BTreeMap<i64, u32>,
    next_key: i64,
    /// The next unique value written.
    next_value: i64,
}

impl Generator {
    fn new(
        rng: ChaCha8Rng,
        write: Write,
        keys: u32,
        max_writes_per_key: u32,
        txn_len: [u32; 2],
        weights: [u32; 2],
    ) -> Generator {
        Generator {
            rng,
            write,
            txn_len,
            weights,
            max_writes_per_key,
            active_keys: (0..i64::from(keys)).collect(),
            writes: BTreeMap::new(),
            next_key: i64::from(keys),
            next_value: 1,
        }
    }
}

impl Generate for Generator {
    fn next_op(&mut self) -> Operation {
        let [lo, hi] = self.txn_len;
        let len = self.rng.random_range(lo..=hi.max(lo));
        let mut ops = Vec::with_capacity(len as usize);
        for _ in 0..len {
            let slot = self.rng.random_range(0..self.active_keys.len());
            let key = self.active_keys[slot];
            let write = match self.write {
                Write::Append => 0,
                Write::Register => 1,
            };
            if weighted(&mut self.rng, &self.weights) != write {
                ops.push(MicroOp::Read(key, None));
                continue;
            }
            let value = self.next_value;
            self.next_value += 1;
            ops.push(match self.write {
                Write::Append => MicroOp::Append(key, value),
                Write::Register => MicroOp::Write(key, value),
            });
            let n = self.writes.entry(key).or_insert(0);
            *n += 1;
            if *n >= self.max_writes_per_key {
                self.writes.remove(&key);
                self.active_keys[slot] = self.next_key;
                self.next_key += 1;
            }
        }
        Operation::Txn { ops }
    }

    /// list-append: one transaction reading every key still in use, so the
    /// last appends to each are seen once the cluster has recovered. The
    /// keys are this generator's, after the main phase retired some.
    fn final_reads(&self) -> Vec<Operation> {
        match self.write {
            Write::Append => vec![Operation::Txn {
                ops: self
                    .active_keys
                    .iter()
                    .map(|k| MicroOp::Read(*k, None))
                    .collect(),
            }],
            Write::Register => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::HashSet;

    fn list_append(keys: u32, max_writes_per_key: u32) -> Box<dyn Generate> {
        ListAppend {
            keys,
            max_writes_per_key,
            ..ListAppend::default()
        }
        .generator(ChaCha8Rng::seed_from_u64(1))
    }

    #[test]
    fn list_append_values_are_unique_and_keys_retire() {
        let mut g = list_append(2, 3);
        let mut seen = HashSet::new();
        let mut appends_per_key: BTreeMap<i64, u32> = BTreeMap::new();
        for _ in 0..500 {
            let Operation::Txn { ops } = g.next_op() else {
                panic!("list-append makes transactions")
            };
            assert!((1..=4).contains(&ops.len()));
            for op in ops {
                match op {
                    MicroOp::Append(k, v) => {
                        assert!(seen.insert(v), "appended values are unique");
                        *appends_per_key.entry(k).or_default() += 1;
                    }
                    MicroOp::Read(_, None) => {}
                    other => panic!("{other:?}"),
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

    /// The bug the redesign fixed: final reads came from a fresh generator
    /// with the same seed, which read the first keys, long retired, and
    /// never the keys written last.
    #[test]
    fn final_reads_read_the_keys_still_live_after_the_main_phase() {
        let mut g = list_append(3, 2);
        let mut last_written = BTreeMap::new();
        for _ in 0..200 {
            if let Operation::Txn { ops } = g.next_op() {
                for op in ops {
                    if let MicroOp::Append(k, v) = op {
                        last_written.insert(k, v);
                    }
                }
            }
        }
        let reads = g.final_reads();
        let [Operation::Txn { ops }] = reads.as_slice() else {
            panic!("one read transaction: {reads:?}")
        };
        let read: Vec<i64> = ops
            .iter()
            .map(|op| match op {
                MicroOp::Read(k, None) => *k,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(read.len(), 3, "one read per key in use");
        assert!(
            read.iter().all(|k| *k >= 3),
            "the first keys retired long ago: {read:?}"
        );
        // Keys are handed out in order: the freshest key read is at least
        // as new as any key written.
        let newest = *last_written.keys().max().unwrap();
        assert!(
            read.iter().max() >= Some(&newest),
            "{read:?}, newest written {newest}"
        );
    }
}
