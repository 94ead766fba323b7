//! The deterministic state machine every bundled system applies operations to:
//! registers and lists (keys), bank accounts, and a set.
//!
//! Applying the same operations in the same order gives the same state and the
//! same outputs on every node: only ordered maps, no clocks, no randomness.
//! It knows nothing of logs, leaders or the network; `status` is answered by
//! the system, not here.

use super::wire::{Cell, FailCode, Key, MicroOp, Operation, Output, Val};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The accounts of the bank workload and their starting balance. Every node
/// of a cluster must be started with the same values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankConfig {
    /// Accounts are numbered `0..accounts`.
    pub accounts: u32,
    pub initial_balance: Val,
}

impl Default for BankConfig {
    fn default() -> Self {
        BankConfig {
            accounts: 5,
            initial_balance: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateMachine {
    cells: BTreeMap<Key, Cell>,
    balances: BTreeMap<Key, Val>,
    set: BTreeSet<Val>,
    counter: Val,
}

impl StateMachine {
    pub fn new(bank: BankConfig) -> StateMachine {
        let balances = (0..i64::from(bank.accounts))
            .map(|a| (a, bank.initial_balance))
            .collect();
        StateMachine {
            cells: BTreeMap::new(),
            balances,
            set: BTreeSet::new(),
            counter: 0,
        }
    }

    /// Applies `op`. An `Err` means it changed nothing (a definite failure).
    pub fn apply(&mut self, op: &Operation) -> Result<Output, FailCode> {
        match op {
            Operation::Read { key } => match self.cells.get(key) {
                None => Ok(Output::Read(None)),
                Some(Cell::Int(v)) => Ok(Output::Read(Some(*v))),
                Some(Cell::List(_)) => Err(FailCode::BadRequest),
            },
            Operation::Write { key, value } => {
                self.cells.insert(*key, Cell::Int(*value));
                Ok(Output::Done)
            }
            Operation::Cas { key, from, to } => match self.cells.get_mut(key) {
                Some(Cell::Int(v)) if *v == *from => {
                    *v = *to;
                    Ok(Output::Done)
                }
                _ => Err(FailCode::CasMismatch),
            },
            Operation::Txn { ops } => self.txn(ops),
            Operation::Transfer { from, to, amount } => self.transfer(*from, *to, *amount),
            Operation::BankRead => Ok(Output::Balances(self.balances.clone())),
            Operation::SetAdd { value } => {
                self.set.insert(*value);
                Ok(Output::Done)
            }
            Operation::SetRead => Ok(Output::Set(self.set.iter().copied().collect())),
            Operation::CounterAdd { value } if *value < 0 => Err(FailCode::BadRequest),
            Operation::CounterAdd { value } => {
                self.counter = self.counter.saturating_add(*value);
                Ok(Output::Done)
            }
            Operation::CounterRead => Ok(Output::Read(Some(self.counter))),
            // No lock without leases: no bundled system declares the lock workload.
            Operation::Status | Operation::Acquire { .. } | Operation::Release { .. } => {
                Err(FailCode::BadRequest)
            }
        }
    }

    /// Reads a cell without changing anything (for systems that split a
    /// transaction by key, like 2PC participants).
    pub fn cell(&self, key: Key) -> Option<&Cell> {
        self.cells.get(&key)
    }

    /// A transaction: all micro-ops or none. The only way one can fail is
    /// appending to a key that holds an integer, checked before anything changes.
    fn txn(&mut self, ops: &[MicroOp]) -> Result<Output, FailCode> {
        let appends_to_int = ops
            .iter()
            .any(|m| matches!(m, MicroOp::Append(k, _) if matches!(self.cells.get(k), Some(Cell::Int(_)))));
        if appends_to_int {
            return Err(FailCode::BadRequest);
        }
        let done = ops
            .iter()
            .map(|m| match m {
                MicroOp::Append(k, v) => {
                    match self
                        .cells
                        .entry(*k)
                        .or_insert_with(|| Cell::List(Vec::new()))
                    {
                        Cell::List(list) => list.push(*v),
                        Cell::Int(_) => unreachable!("checked above: no append to an integer"),
                    }
                    m.clone()
                }
                MicroOp::Write(k, v) => {
                    self.cells.insert(*k, Cell::Int(*v));
                    m.clone()
                }
                MicroOp::Read(k, _) => MicroOp::Read(*k, self.cells.get(k).cloned()),
            })
            .collect();
        Ok(Output::Txn(done))
    }

    fn transfer(&mut self, from: Key, to: Key, amount: Val) -> Result<Output, FailCode> {
        let (Some(&have), true) = (self.balances.get(&from), self.balances.contains_key(&to))
        else {
            return Err(FailCode::BadRequest);
        };
        if amount < 0 || from == to {
            return Err(FailCode::BadRequest);
        }
        if have < amount {
            return Err(FailCode::InsufficientFunds);
        }
        *self.balances.entry(from).or_default() -= amount;
        *self.balances.entry(to).or_default() += amount;
        debug_assert!(
            self.balances.values().all(|&b| b >= 0),
            "no account goes negative"
        );
        Ok(Output::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sm() -> StateMachine {
        StateMachine::new(BankConfig {
            accounts: 3,
            initial_balance: 10,
        })
    }

    #[test]
    fn a_counter_adds_and_reads_and_refuses_negative_adds() {
        let mut s = StateMachine::new(BankConfig::default());
        assert_eq!(s.apply(&Operation::CounterRead), Ok(Output::Read(Some(0))));
        for v in [2, 3] {
            assert_eq!(
                s.apply(&Operation::CounterAdd { value: v }),
                Ok(Output::Done)
            );
        }
        assert_eq!(
            s.apply(&Operation::CounterAdd { value: -1 }),
            Err(FailCode::BadRequest)
        );
        assert_eq!(s.apply(&Operation::CounterRead), Ok(Output::Read(Some(5))));
        let read =
            crate::nodes::wire::history_value(&Operation::CounterRead, &Output::Read(Some(5)));
        assert_eq!(
            read,
            serde_json::json!(5),
            "a counter read is a plain integer"
        );
    }

    #[test]
    fn registers_read_write_and_cas() {
        let mut s = sm();
        assert_eq!(s.apply(&Operation::Read { key: 1 }), Ok(Output::Read(None)));
        assert_eq!(
            s.apply(&Operation::Cas {
                key: 1,
                from: 0,
                to: 1
            }),
            Err(FailCode::CasMismatch)
        );
        s.apply(&Operation::Write { key: 1, value: 4 }).unwrap();
        assert_eq!(
            s.apply(&Operation::Cas {
                key: 1,
                from: 3,
                to: 5
            }),
            Err(FailCode::CasMismatch)
        );
        assert_eq!(
            s.apply(&Operation::Cas {
                key: 1,
                from: 4,
                to: 5
            }),
            Ok(Output::Done)
        );
        assert_eq!(
            s.apply(&Operation::Read { key: 1 }),
            Ok(Output::Read(Some(5)))
        );
    }

    #[test]
    fn a_transaction_is_all_or_nothing_and_sees_its_own_writes() {
        let mut s = sm();
        let t = Operation::Txn {
            ops: vec![
                MicroOp::Append(1, 1),
                MicroOp::Write(2, 9),
                MicroOp::Read(1, None),
                MicroOp::Read(2, None),
            ],
        };
        let Ok(Output::Txn(done)) = s.apply(&t) else {
            panic!("txn failed")
        };
        assert_eq!(done[2], MicroOp::Read(1, Some(Cell::List(vec![1]))));
        assert_eq!(done[3], MicroOp::Read(2, Some(Cell::Int(9))));
        // Appending to an integer aborts the whole transaction: key 3 stays empty.
        let bad = Operation::Txn {
            ops: vec![MicroOp::Append(3, 1), MicroOp::Append(2, 1)],
        };
        assert_eq!(s.apply(&bad), Err(FailCode::BadRequest));
        assert_eq!(s.cell(3), None);
    }

    #[test]
    fn transfers_never_overdraw_and_conserve_money() {
        let mut s = sm();
        assert_eq!(
            s.apply(&Operation::Transfer {
                from: 0,
                to: 1,
                amount: 7
            }),
            Ok(Output::Done)
        );
        assert_eq!(
            s.apply(&Operation::Transfer {
                from: 0,
                to: 2,
                amount: 4
            }),
            Err(FailCode::InsufficientFunds)
        );
        assert_eq!(
            s.apply(&Operation::Transfer {
                from: 0,
                to: 9,
                amount: 1
            }),
            Err(FailCode::BadRequest)
        );
        let Ok(Output::Balances(b)) = s.apply(&Operation::BankRead) else {
            panic!()
        };
        assert_eq!(b, BTreeMap::from([(0, 3), (1, 17), (2, 10)]));
    }

    #[test]
    fn set_reads_are_sorted() {
        let mut s = sm();
        for v in [5, 1, 3, 1] {
            s.apply(&Operation::SetAdd { value: v }).unwrap();
        }
        assert_eq!(s.apply(&Operation::SetRead), Ok(Output::Set(vec![1, 3, 5])));
    }
}
