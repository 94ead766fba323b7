//! The coordinator's side of 2PC: splitting a client operation into one
//! list of steps per participant, putting the participants' results back
//! together, and the decisions it must remember until every participant
//! has applied them.
//!
//! Aborts are presumed: only commit decisions are written (durably, before
//! anyone hears of them), so a transaction the coordinator has no record
//! of, after a crash, was never committed and is aborted.

use super::message::{PartOp, PartResult, Placed, TxnId, owner};
use crate::nodes::state_machine::BankConfig;
use crate::nodes::wire::{Cell, FailCode, MicroOp, Operation, Output};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// An operation split over participants: each participant's steps, and
/// for every step of the operation, who runs it and at which position.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub parts: BTreeMap<String, Vec<PartOp>>,
    pub steps: Vec<(String, usize)>,
}

impl Split {
    fn new() -> Split {
        Split {
            parts: BTreeMap::new(),
            steps: Vec::new(),
        }
    }

    fn push(&mut self, member: &str, op: PartOp) {
        let ops = self.parts.entry(member.to_string()).or_default();
        ops.push(op);
        self.steps.push((member.to_string(), ops.len() - 1));
    }
}

/// Splits `op` over `members` (every node id, sorted). `Err`: the
/// operation is malformed and certainly fails.
pub fn split(op: &Operation, members: &[String], bank: BankConfig) -> Result<Split, FailCode> {
    let at = |what: Placed| members[owner(members.len(), what)].as_str();
    let mut s = Split::new();
    match op {
        Operation::Read { key } => s.push(at(Placed::Cell(*key)), PartOp::Get(*key)),
        Operation::Write { key, value } => {
            s.push(at(Placed::Cell(*key)), PartOp::Put(*key, *value))
        }
        Operation::Cas { key, from, to } => {
            s.push(at(Placed::Cell(*key)), PartOp::Cas(*key, *from, *to))
        }
        Operation::Txn { ops } => {
            for m in ops {
                let (k, step) = match m {
                    MicroOp::Append(k, v) => (k, PartOp::Append(*k, *v)),
                    MicroOp::Read(k, _) => (k, PartOp::Get(*k)),
                    MicroOp::Write(k, v) => (k, PartOp::Put(*k, *v)),
                };
                s.push(at(Placed::Cell(*k)), step);
            }
        }
        Operation::Transfer { from, to, amount } => {
            let exists = |a: &i64| (0..i64::from(bank.accounts)).contains(a);
            if *amount < 0 || from == to || !exists(from) || !exists(to) {
                return Err(FailCode::BadRequest);
            }
            s.push(at(Placed::Account(*from)), PartOp::Debit(*from, *amount));
            s.push(at(Placed::Account(*to)), PartOp::Credit(*to, *amount));
        }
        Operation::BankRead => {
            for m in members {
                s.push(m, PartOp::Balances);
            }
        }
        Operation::SetAdd { value } => s.push(at(Placed::SetElement(*value)), PartOp::Add(*value)),
        Operation::SetRead => {
            for m in members {
                s.push(m, PartOp::Members);
            }
        }
        // No counter nor lock: 2PC does not declare those workloads.
        Operation::Status
        | Operation::CounterAdd { .. }
        | Operation::CounterRead
        | Operation::Acquire { .. }
        | Operation::Release { .. } => {
            return Err(FailCode::BadRequest);
        }
    }
    Ok(s)
}

/// The client's result from the participants' results. A participant
/// missing from `results` (only under the `commit-without-all-votes` bug)
/// contributes nothing.
pub fn assemble(
    op: &Operation,
    split: &Split,
    results: &BTreeMap<String, Vec<PartResult>>,
) -> Result<Output, FailCode> {
    let step = |i: usize| {
        let (member, at) = &split.steps[i];
        results.get(member).and_then(|r| r.get(*at))
    };
    Ok(match op {
        Operation::Read { .. } => match step(0) {
            Some(PartResult::Cell(Some(Cell::Int(v)))) => Output::Read(Some(*v)),
            Some(PartResult::Cell(Some(Cell::List(_)))) => return Err(FailCode::BadRequest),
            _ => Output::Read(None),
        },
        Operation::Txn { ops } => Output::Txn(
            ops.iter()
                .enumerate()
                .map(|(i, m)| match (m, step(i)) {
                    (MicroOp::Read(k, _), Some(PartResult::Cell(c))) => {
                        MicroOp::Read(*k, c.clone())
                    }
                    (MicroOp::Read(k, _), _) => MicroOp::Read(*k, None),
                    (other, _) => other.clone(),
                })
                .collect(),
        ),
        Operation::BankRead => Output::Balances(
            (0..split.steps.len())
                .filter_map(step)
                .flat_map(|r| match r {
                    PartResult::Balances(b) => b.clone(),
                    _ => Vec::new(),
                })
                .collect(),
        ),
        Operation::SetRead => Output::Set(
            (0..split.steps.len())
                .filter_map(step)
                .flat_map(|r| match r {
                    PartResult::Members(m) => m.clone(),
                    _ => Vec::new(),
                })
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        ),
        _ => Output::Done,
    })
}

/// A commit decision the coordinator keeps until every participant applied it.
#[derive(Debug)]
pub struct Decided {
    /// False until the decision record is durable: until then nobody may
    /// hear of it (a crash would turn it into a presumed abort).
    pub durable: bool,
    /// Participants that have not confirmed the commit.
    pub waiting: BTreeSet<String>,
    /// When the decision was last sent to them.
    pub sent_at: Instant,
}

/// Commit decisions replayed from the data file that still wait for
/// participants, and the boot count of this run.
pub fn replay(records: &[super::message::Record]) -> (u64, BTreeMap<TxnId, Decided>) {
    use super::message::Record;
    let mut boot = 0;
    let mut decided = BTreeMap::new();
    for r in records {
        match r {
            Record::Boot { boot: b } => boot = boot.max(*b),
            Record::Decision { txn, participants } => {
                decided.insert(
                    txn.clone(),
                    Decided {
                        durable: true,
                        waiting: participants.iter().cloned().collect(),
                        sent_at: Instant::now(),
                    },
                );
            }
            Record::End { txn } => {
                decided.remove(txn);
            }
            _ => {}
        }
    }
    (boot + 1, decided)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members() -> Vec<String> {
        vec!["n1".into(), "n2".into(), "n3".into()]
    }

    #[test]
    fn a_transaction_splits_by_key_owner_and_reassembles_in_order() {
        let op = Operation::Txn {
            ops: (0..6)
                .flat_map(|k| [MicroOp::Append(k, 1), MicroOp::Read(k, None)])
                .collect(),
        };
        let s = split(&op, &members(), BankConfig::default()).unwrap();
        assert!(
            s.parts.len() > 1,
            "six keys land on more than one node: {s:?}"
        );
        let results: BTreeMap<String, Vec<PartResult>> = s
            .parts
            .iter()
            .map(|(m, ops)| {
                let r = ops
                    .iter()
                    .map(|o| match o {
                        PartOp::Get(k) => PartResult::Cell(Some(Cell::List(vec![*k]))),
                        _ => PartResult::Done,
                    })
                    .collect();
                (m.clone(), r)
            })
            .collect();
        let Ok(Output::Txn(done)) = assemble(&op, &s, &results) else {
            panic!()
        };
        for k in 0..6 {
            assert_eq!(
                done[2 * k as usize + 1],
                MicroOp::Read(k, Some(Cell::List(vec![k])))
            );
        }
    }

    #[test]
    fn malformed_transfers_fail_before_any_participant_hears() {
        let bank = BankConfig {
            accounts: 3,
            initial_balance: 10,
        };
        let t = |from, to, amount| Operation::Transfer { from, to, amount };
        for bad in [t(0, 0, 1), t(0, 3, 1), t(0, 1, -1)] {
            assert_eq!(split(&bad, &members(), bank), Err(FailCode::BadRequest));
        }
        let s = split(&t(0, 1, 5), &members(), bank).unwrap();
        assert_eq!(s.steps.len(), 2);
        let s = split(&Operation::BankRead, &members(), bank).unwrap();
        assert_eq!(s.parts.len(), 3, "a bank read asks every participant");
    }
}
