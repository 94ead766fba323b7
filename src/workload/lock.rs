//! The lock workload, as Jepsen's etcd and Redis lock tests: clients acquire
//! and release a few named locks, each held through a lease of `lease` that
//! the system expires if its holder stops renewing it. Checked for
//! linearizability against the `mutex` model, lock by lock: two clients that
//! both hold a lock at once make the history impossible.
//!
//! The generator does not know which worker holds which lock: a client asked
//! to release a lock it does not hold (or to acquire one it holds) fails the
//! call at once without asking the system, a definite `fail` that the
//! checker leaves out.

use super::{Check, Generate, Operation, Plan, check_mix, positive, weighted};
use crate::checker::linearizable::ModelKind;
use crate::span::Span;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Lock {
    /// Locks in use (`0..locks`).
    pub locks: u32,
    /// How long a holder keeps a lock without renewing it: etcd's lease
    /// TTL (whole seconds, at least 1), Redis' `PX`.
    pub lease: Span,
    pub mix: Mix,
}

impl Default for Lock {
    fn default() -> Self {
        Lock {
            locks: 1,
            lease: Span(Duration::from_secs(2)),
            mix: Mix::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mix {
    pub acquire: u32,
    pub release: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            acquire: 1,
            release: 1,
        }
    }
}

impl Plan for Lock {
    fn name(&self) -> &'static str {
        "lock"
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        positive("locks", self.locks)?;
        if self.lease.0 < Duration::from_secs(1) {
            return Err(("lease", "`lease` must be at least 1s".into()));
        }
        check_mix(&[self.mix.acquire, self.mix.release])
    }

    fn checks(&self) -> Vec<Check> {
        vec![Check::Linearizable(ModelKind::Mutex)]
    }

    fn generator(&self, rng: ChaCha8Rng) -> Box<dyn Generate> {
        Box::new(Generator {
            rng,
            locks: i64::from(self.locks),
            weights: [self.mix.acquire, self.mix.release],
        })
    }
}

pub struct Generator {
    rng: ChaCha8Rng,
    locks: i64,
    weights: [u32; 2],
}

impl Generate for Generator {
    fn next_op(&mut self) -> Operation {
        let key = self.rng.random_range(0..self.locks);
        match weighted(&mut self.rng, &self.weights) {
            0 => Operation::Acquire { key },
            _ => Operation::Release { key },
        }
    }

    /// A lock's history is checked where each call falls.
    fn final_reads(&self) -> Vec<Operation> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn acquires_and_releases_name_locks_in_range_and_a_short_lease_is_refused() {
        let w = Lock {
            locks: 3,
            ..Lock::default()
        };
        let mut g = w.generator(ChaCha8Rng::seed_from_u64(4));
        let ops: Vec<Operation> = (0..300).map(|_| g.next_op()).collect();
        let keys: Vec<i64> = ops
            .iter()
            .map(|o| match o {
                Operation::Acquire { key } | Operation::Release { key } => *key,
                other => panic!("not a lock op: {other:?}"),
            })
            .collect();
        assert!(keys.iter().all(|k| (0..3).contains(k)), "{keys:?}");
        assert!(keys.contains(&0) && keys.contains(&2));
        let acquires = ops
            .iter()
            .filter(|o| matches!(o, Operation::Acquire { .. }))
            .count();
        assert!((100..200).contains(&acquires), "about half: {acquires}");
        assert_eq!(Operation::Acquire { key: 2 }.f(), "acquire");
        assert_eq!(
            Operation::Release { key: 2 }.history_value(),
            serde_json::json!([2, null])
        );
        let short = Lock {
            lease: Span(Duration::from_millis(500)),
            ..Lock::default()
        };
        assert_eq!(short.validate().unwrap_err().0, "lease");
    }
}
