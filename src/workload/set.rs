//! The set workload: adds of unique elements, occasional reads of the whole
//! set, and a final read once the cluster has recovered: every acknowledged
//! add must be present (Jepsen's set-full).

use super::{Check, Generate, Operation, Plan, check_mix, weighted};
use crate::checker::set::SetChecker;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Set {
    pub mix: Mix,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mix {
    pub add: u32,
    pub read: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix { add: 9, read: 1 }
    }
}

impl Plan for Set {
    fn name(&self) -> &'static str {
        "set"
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        check_mix(&[self.mix.add, self.mix.read])
    }

    fn checks(&self) -> Vec<Check> {
        vec![Check::History(Arc::new(SetChecker))]
    }

    fn generator(&self, rng: ChaCha8Rng) -> Box<dyn Generate> {
        Box::new(Generator {
            rng,
            weights: [self.mix.add, self.mix.read],
            next_value: 1,
        })
    }
}

pub struct Generator {
    rng: ChaCha8Rng,
    weights: [u32; 2],
    next_value: i64,
}

impl Generate for Generator {
    fn next_op(&mut self) -> Operation {
        if weighted(&mut self.rng, &self.weights) == 0 {
            let value = self.next_value;
            self.next_value += 1;
            return Operation::SetAdd { value };
        }
        Operation::SetRead
    }

    fn final_reads(&self) -> Vec<Operation> {
        vec![Operation::SetRead]
    }
}
