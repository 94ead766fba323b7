//! The counter workload, as Jepsen's: clients add small non-negative amounts
//! to one counter and read it; every read must lie between the adds
//! acknowledged before it began and the adds attempted before it ended
//! (`checker::counter`). A final read once the cluster has recovered.

use super::{Check, Generate, Operation, Plan, check_mix, positive, weighted};
use crate::checker::counter::CounterChecker;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Counter {
    /// Adds are drawn from `1..=max_add`.
    pub max_add: u32,
    pub mix: Mix,
}

impl Default for Counter {
    fn default() -> Self {
        Counter {
            max_add: 5,
            mix: Mix::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mix {
    pub add: u32,
    pub read: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix { add: 1, read: 1 }
    }
}

impl Plan for Counter {
    fn name(&self) -> &'static str {
        "counter"
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        positive("max_add", self.max_add)?;
        check_mix(&[self.mix.add, self.mix.read])
    }

    fn checks(&self) -> Vec<Check> {
        vec![Check::History(Arc::new(CounterChecker))]
    }

    fn generator(&self, rng: ChaCha8Rng) -> Box<dyn Generate> {
        Box::new(Generator {
            rng,
            weights: [self.mix.add, self.mix.read],
            max_add: i64::from(self.max_add),
        })
    }
}

pub struct Generator {
    rng: ChaCha8Rng,
    weights: [u32; 2],
    max_add: i64,
}

impl Generate for Generator {
    fn next_op(&mut self) -> Operation {
        if weighted(&mut self.rng, &self.weights) == 0 {
            let value = self.rng.random_range(1..=self.max_add);
            return Operation::CounterAdd { value };
        }
        Operation::CounterRead
    }

    fn final_reads(&self) -> Vec<Operation> {
        vec![Operation::CounterRead]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn adds_are_positive_and_at_most_max_add() {
        let w = Counter {
            max_add: 3,
            mix: Mix { add: 3, read: 1 },
        };
        let mut g = w.generator(ChaCha8Rng::seed_from_u64(2));
        let ops: Vec<Operation> = (0..400).map(|_| g.next_op()).collect();
        let adds: Vec<i64> = ops
            .iter()
            .filter_map(|o| match o {
                Operation::CounterAdd { value } => Some(*value),
                _ => None,
            })
            .collect();
        assert!(adds.iter().all(|v| (1..=3).contains(v)), "{adds:?}");
        assert!(
            (250..350).contains(&adds.len()),
            "about 3 in 4 are adds: {}",
            adds.len()
        );
        assert!(adds.contains(&1) && adds.contains(&3));
        assert_eq!(g.final_reads(), vec![Operation::CounterRead]);
        let zero = Counter {
            max_add: 0,
            ..Counter::default()
        };
        assert_eq!(zero.validate().unwrap_err().0, "max_add");
    }
}
