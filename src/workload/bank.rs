//! The bank workload: transfers between accounts and reads of every account.
//! Every read must sum to the initial total (accounts × initial balance) with
//! no negative balance (Jepsen's bank test).

use super::{Check, Generate, Operation, Plan, check_mix, positive, weighted};
use crate::checker::bank::BankOptions;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bank {
    pub accounts: u32,
    /// What each account holds at the start.
    pub initial_balance: i64,
    /// The largest amount one transfer moves.
    pub max_transfer: i64,
    pub mix: Mix,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mix {
    pub transfer: u32,
    pub read: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            transfer: 1,
            read: 1,
        }
    }
}

impl Default for Bank {
    fn default() -> Self {
        Bank {
            accounts: 5,
            initial_balance: 10,
            max_transfer: 5,
            mix: Mix::default(),
        }
    }
}

impl Bank {
    /// What every read must sum to.
    pub fn total(&self) -> i64 {
        i64::from(self.accounts) * self.initial_balance
    }
}

impl Plan for Bank {
    fn name(&self) -> &'static str {
        "bank"
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        positive("accounts", self.accounts)?;
        if self.initial_balance < 0 {
            return Err((
                "initial_balance",
                "`initial_balance` must not be negative".into(),
            ));
        }
        if self.max_transfer < 1 {
            return Err(("max_transfer", "`max_transfer` must be at least 1".into()));
        }
        check_mix(&[self.mix.transfer, self.mix.read])
    }

    fn checks(&self) -> Vec<Check> {
        // Accounts are named by number, as the generator draws them.
        vec![Check::History(Arc::new(BankOptions {
            accounts: (0..self.accounts).map(|a| a.to_string()).collect(),
            total: self.total(),
        }))]
    }

    fn generator(&self, rng: ChaCha8Rng) -> Box<dyn Generate> {
        Box::new(Generator {
            rng,
            accounts: i64::from(self.accounts),
            max_transfer: self.max_transfer,
            // In the order of the ops' names, as earlier versions drew them.
            weights: [self.mix.read, self.mix.transfer],
        })
    }
}

pub struct Generator {
    rng: ChaCha8Rng,
    accounts: i64,
    max_transfer: i64,
    weights: [u32; 2],
}

impl Generate for Generator {
    fn next_op(&mut self) -> Operation {
        if weighted(&mut self.rng, &self.weights) == 1 && self.accounts > 1 {
            let from = self.rng.random_range(0..self.accounts);
            let to = (from + self.rng.random_range(1..self.accounts)) % self.accounts;
            let amount = self.rng.random_range(1..=self.max_transfer);
            return Operation::Transfer { from, to, amount };
        }
        Operation::BankRead
    }

    fn final_reads(&self) -> Vec<Operation> {
        vec![Operation::BankRead]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn transfers_move_positive_amounts_between_distinct_accounts() {
        let mut g = Bank::default().generator(ChaCha8Rng::seed_from_u64(3));
        let mut transfers = 0;
        for _ in 0..500 {
            match g.next_op() {
                Operation::Transfer { from, to, amount } => {
                    transfers += 1;
                    assert!(from != to && (0..5).contains(&from) && (0..5).contains(&to));
                    assert!((1..=5).contains(&amount));
                }
                op => assert_eq!(op, Operation::BankRead),
            }
        }
        assert!(
            transfers > 150 && transfers < 350,
            "the mix is 1:1, got {transfers} transfers in 500"
        );
    }
}
