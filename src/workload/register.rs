//! The register workload: independent keys, each a register, read, written
//! and compare-and-set by every client, a few keys at once. Checked for
//! linearizability key by key (faultline's register ops are `[key, value]`).

use super::{Check, Generate, Operation, Plan, check_mix, positive, weighted};
use crate::checker::linearizable::ModelKind;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Register {
    /// Keys in use.
    pub keys: u32,
    /// Values are drawn from `0..values`.
    pub values: u32,
    pub mix: Mix,
    /// The sequential model a key is checked against.
    pub model: Model,
}

impl Default for Register {
    fn default() -> Self {
        Register {
            keys: 8,
            values: 5,
            mix: Mix::default(),
            model: Model::CasRegister,
        }
    }
}

/// Relative weights of the operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mix {
    pub read: u32,
    pub write: u32,
    pub cas: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            read: 2,
            write: 1,
            cas: 1,
        }
    }
}

/// The models a register history can be checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Model {
    /// read and write.
    Register,
    /// read, write and cas.
    CasRegister,
}

impl Model {
    pub fn checker_model(self) -> ModelKind {
        match self {
            Model::Register => ModelKind::Register,
            Model::CasRegister => ModelKind::CasRegister,
        }
    }
}

impl Plan for Register {
    fn name(&self) -> &'static str {
        "register"
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        positive("keys", self.keys)?;
        positive("values", self.values)?;
        check_mix(&[self.mix.read, self.mix.write, self.mix.cas])
    }

    fn checks(&self) -> Vec<Check> {
        vec![Check::Linearizable(self.model.checker_model())]
    }

    fn generator(&self, rng: ChaCha8Rng) -> Box<dyn Generate> {
        Box::new(Generator {
            rng,
            keys: i64::from(self.keys),
            values: i64::from(self.values),
            // In the order of the ops' names, as earlier versions drew them,
            // so a seed gives the operations it gave before.
            weights: [self.mix.cas, self.mix.read, self.mix.write],
        })
    }
}

pub struct Generator {
    rng: ChaCha8Rng,
    keys: i64,
    values: i64,
    weights: [u32; 3],
}

impl Generate for Generator {
    fn next_op(&mut self) -> Operation {
        let pick = weighted(&mut self.rng, &self.weights);
        let key = self.rng.random_range(0..self.keys);
        match pick {
            0 => Operation::Cas {
                key,
                from: self.rng.random_range(0..self.values),
                to: self.rng.random_range(0..self.values),
            },
            2 => Operation::Write {
                key,
                value: self.rng.random_range(0..self.values),
            },
            _ => Operation::Read { key },
        }
    }

    fn next_read(&mut self) -> Option<Operation> {
        let key = self.rng.random_range(0..self.keys);
        Some(Operation::Read { key })
    }

    /// Registers need no final reads: every read is checked where it falls.
    fn final_reads(&self) -> Vec<Operation> {
        Vec::new()
    }
}
