//! A 2PC participant: the data this node owns, its lock table, and the
//! transactions it prepared and has not yet seen decided.
//!
//! Locking is no-wait: a prepare that meets a conflicting lock votes no at
//! once, so there are no deadlocks and no lock waits. A prepared
//! transaction's writes are staged beside the committed data and applied
//! only on commit. Methods change memory and return the record the caller
//! must make durable before answering; they send nothing. The
//! `read-uncommitted` bug lives in [`Participant::lock_set`] and
//! [`Participant::visible_cell`] and its siblings.

use super::message::{Item, Mode, PartOp, PartResult, Record, TxnId, Write};
use crate::nodes::wire::{Cell, FailCode, Key, Val};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A transaction that voted yes here and awaits the decision.
#[derive(Debug)]
pub struct Prepared {
    pub locks: Vec<(Item, Mode)>,
    pub writes: Vec<Write>,
    /// The results of the vote (none after a restart: the vote was sent).
    results: Option<Vec<PartResult>>,
}

#[derive(Debug, Default)]
struct Holders {
    mode: Option<Mode>,
    txns: BTreeSet<TxnId>,
}

#[derive(Debug)]
pub struct Participant {
    cells: BTreeMap<Key, Cell>,
    /// The accounts this participant owns.
    balances: BTreeMap<Key, Val>,
    /// The set elements this participant owns.
    set: BTreeSet<Val>,
    locks: HashMap<Item, Holders>,
    prepared: BTreeMap<TxnId, Prepared>,
    /// Transactions committed here.
    pub applied: u64,
    /// The `read-uncommitted` bug.
    read_uncommitted: bool,
}

impl Participant {
    /// A participant owning `accounts`, each starting at `initial_balance`.
    pub fn new(
        accounts: impl IntoIterator<Item = Key>,
        initial_balance: Val,
        read_uncommitted: bool,
    ) -> Participant {
        Participant {
            cells: BTreeMap::new(),
            balances: accounts.into_iter().map(|a| (a, initial_balance)).collect(),
            set: BTreeSet::new(),
            locks: HashMap::new(),
            prepared: BTreeMap::new(),
            applied: 0,
            read_uncommitted,
        }
    }

    /// Replays one record of the data file (records of the coordinator are
    /// not the participant's business). Locks are taken by [`Participant::relock`].
    pub fn replay(&mut self, record: &Record) {
        match record {
            Record::Prepared { txn, locks, writes } => {
                self.prepared.insert(
                    txn.clone(),
                    Prepared {
                        locks: locks.clone(),
                        writes: writes.clone(),
                        results: None,
                    },
                );
            }
            Record::Committed { txn } => {
                if let Some(p) = self.prepared.remove(txn) {
                    self.apply(&p.writes);
                }
            }
            Record::Aborted { txn } => {
                self.prepared.remove(txn);
            }
            Record::Boot { .. } | Record::Decision { .. } | Record::End { .. } => {}
        }
    }

    /// After replay: the transactions still in doubt take their locks back.
    pub fn relock(&mut self) -> Vec<TxnId> {
        let in_doubt: Vec<TxnId> = self.prepared.keys().cloned().collect();
        for txn in &in_doubt {
            let locks = self.prepared[txn].locks.clone();
            let took = self.try_lock(txn, &locks);
            debug_assert!(took, "locks held before a crash are compatible after it");
        }
        in_doubt
    }

    pub fn in_doubt(&self) -> impl Iterator<Item = &TxnId> {
        self.prepared.keys()
    }

    pub fn is_prepared(&self, txn: &TxnId) -> bool {
        self.prepared.contains_key(txn)
    }

    /// Phase 1: locks what `ops` touch (no-wait), runs them against the
    /// committed data plus this transaction's own earlier writes, and stages
    /// the writes. `Ok`: vote yes with these results once the record is
    /// durable. `Err`: vote no, nothing is held.
    pub fn prepare(
        &mut self,
        txn: &TxnId,
        ops: &[PartOp],
    ) -> Result<(Option<Record>, Vec<PartResult>), FailCode> {
        if let Some(p) = self.prepared.get(txn) {
            // A repeated prepare: the same vote again (or no, when the
            // results died with a restart; the coordinator decided anyway).
            return p
                .results
                .clone()
                .map(|r| (None, r))
                .ok_or(FailCode::Aborted);
        }
        let locks = self.lock_set(ops);
        if !self.try_lock(txn, &locks) {
            return Err(FailCode::Aborted);
        }
        match self.run(ops) {
            Ok((results, writes)) => {
                let record = Record::Prepared {
                    txn: txn.clone(),
                    locks: locks.clone(),
                    writes: writes.clone(),
                };
                self.prepared.insert(
                    txn.clone(),
                    Prepared {
                        locks,
                        writes,
                        results: Some(results.clone()),
                    },
                );
                Ok((Some(record), results))
            }
            Err(code) => {
                self.unlock(txn, &locks);
                Err(code)
            }
        }
    }

    /// Phase 2, commit: applies the staged writes and releases the locks.
    /// `None`: the transaction is unknown here (never prepared, or done).
    pub fn commit(&mut self, txn: &TxnId) -> Option<Record> {
        let p = self.prepared.remove(txn)?;
        self.apply(&p.writes);
        self.unlock(txn, &p.locks);
        Some(Record::Committed { txn: txn.clone() })
    }

    /// Phase 2, abort: drops the staged writes and releases the locks.
    pub fn abort(&mut self, txn: &TxnId) -> Option<Record> {
        let p = self.prepared.remove(txn)?;
        self.unlock(txn, &p.locks);
        Some(Record::Aborted { txn: txn.clone() })
    }

    /// The items `ops` touch, each with the one mode that covers all its uses.
    fn lock_set(&self, ops: &[PartOp]) -> Vec<(Item, Mode)> {
        let mut want: BTreeMap<Item, Mode> = BTreeMap::new();
        let mut need = |item: Item, mode: Mode| {
            let m = want.get(&item).map_or(mode, |m| m.join(mode));
            want.insert(item, m);
        };
        for op in ops {
            match op {
                PartOp::Get(k) => need(Item::Cell(*k), Mode::Read),
                PartOp::Put(k, _) | PartOp::Append(k, _) | PartOp::Cas(k, _, _) => {
                    need(Item::Cell(*k), Mode::Write)
                }
                PartOp::Debit(a, _) | PartOp::Credit(a, _) => need(Item::Account(*a), Mode::Write),
                PartOp::Balances => {
                    for a in self.balances.keys() {
                        need(Item::Account(*a), Mode::Read);
                    }
                }
                PartOp::Add(_) => need(Item::Set, Mode::Add),
                PartOp::Members => need(Item::Set, Mode::Read),
            }
        }
        want.into_iter()
            // BUG read-uncommitted: reads take no locks, so they neither wait
            // for nor block writers.
            .filter(|(_, mode)| !(self.read_uncommitted && *mode == Mode::Read))
            .collect()
    }

    /// Takes every lock or none.
    fn try_lock(&mut self, txn: &TxnId, locks: &[(Item, Mode)]) -> bool {
        let free = locks.iter().all(|(item, mode)| {
            self.locks
                .get(item)
                .and_then(|h| h.mode)
                .is_none_or(|held| held.compatible(*mode))
        });
        if free {
            for (item, mode) in locks {
                let h = self.locks.entry(item.clone()).or_default();
                h.mode = Some(*mode);
                h.txns.insert(txn.clone());
            }
        }
        free
    }

    fn unlock(&mut self, txn: &TxnId, locks: &[(Item, Mode)]) {
        for (item, _) in locks {
            if let Some(h) = self.locks.get_mut(item) {
                h.txns.remove(txn);
                if h.txns.is_empty() {
                    self.locks.remove(item);
                }
            }
        }
    }

    fn apply(&mut self, writes: &[Write]) {
        for w in writes {
            match w {
                Write::Cell(k, cell) => {
                    self.cells.insert(*k, cell.clone());
                }
                Write::Balance(a, b) => {
                    self.balances.insert(*a, *b);
                }
                Write::Add(v) => {
                    self.set.insert(*v);
                }
            }
        }
        self.applied += 1;
    }

    /// The value a read sees: the committed one, or under the
    /// `read-uncommitted` bug the newest one, staged by a prepared but
    /// undecided transaction if there is one.
    fn visible_cell(&self, k: Key) -> Option<Cell> {
        let staged = self.newest_staged(|w| match w {
            Write::Cell(key, cell) if *key == k => Some(cell.clone()),
            _ => None,
        });
        staged.or_else(|| self.cells.get(&k).cloned())
    }

    fn visible_balance(&self, a: Key) -> Option<Val> {
        let staged = self.newest_staged(|w| match w {
            Write::Balance(key, b) if *key == a => Some(*b),
            _ => None,
        });
        staged.or_else(|| self.balances.get(&a).copied())
    }

    fn visible_members(&self) -> BTreeSet<Val> {
        let mut set = self.set.clone();
        if self.read_uncommitted {
            for p in self.prepared.values() {
                set.extend(p.writes.iter().filter_map(|w| match w {
                    Write::Add(v) => Some(*v),
                    _ => None,
                }));
            }
        }
        set
    }

    /// Under the `read-uncommitted` bug: the last staged write `pick` finds
    /// among prepared transactions. Always `None` otherwise.
    fn newest_staged<T>(&self, pick: impl Fn(&Write) -> Option<T>) -> Option<T> {
        if !self.read_uncommitted {
            return None;
        }
        self.prepared
            .values()
            .flat_map(|p| p.writes.iter())
            .rev()
            .find_map(pick)
    }

    /// Runs `ops` in order on the visible data plus their own writes;
    /// returns each op's result and the writes to stage.
    fn run(&self, ops: &[PartOp]) -> Result<(Vec<PartResult>, Vec<Write>), FailCode> {
        let mut cells: BTreeMap<Key, Option<Cell>> = BTreeMap::new();
        let mut balances: BTreeMap<Key, Val> = BTreeMap::new();
        let mut adds: Vec<Val> = Vec::new();
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            let cell = |k: &Key| {
                cells
                    .get(k)
                    .cloned()
                    .unwrap_or_else(|| self.visible_cell(*k))
            };
            let balance = |a: &Key| {
                balances
                    .get(a)
                    .copied()
                    .or_else(|| self.visible_balance(*a))
            };
            let result = match op {
                PartOp::Get(k) => PartResult::Cell(cell(k)),
                PartOp::Put(k, v) => {
                    cells.insert(*k, Some(Cell::Int(*v)));
                    PartResult::Done
                }
                PartOp::Append(k, v) => {
                    let list = match cell(k) {
                        None => vec![*v],
                        Some(Cell::List(mut l)) => {
                            l.push(*v);
                            l
                        }
                        Some(Cell::Int(_)) => return Err(FailCode::BadRequest),
                    };
                    cells.insert(*k, Some(Cell::List(list)));
                    PartResult::Done
                }
                PartOp::Cas(k, from, to) => {
                    if cell(k) != Some(Cell::Int(*from)) {
                        return Err(FailCode::CasMismatch);
                    }
                    cells.insert(*k, Some(Cell::Int(*to)));
                    PartResult::Done
                }
                PartOp::Debit(a, amount) => {
                    let have = balance(a).ok_or(FailCode::BadRequest)?;
                    if have < *amount {
                        return Err(FailCode::InsufficientFunds);
                    }
                    balances.insert(*a, have - amount);
                    PartResult::Done
                }
                PartOp::Credit(a, amount) => {
                    let have = balance(a).ok_or(FailCode::BadRequest)?;
                    balances.insert(*a, have + amount);
                    PartResult::Done
                }
                PartOp::Balances => PartResult::Balances(
                    self.balances
                        .keys()
                        .map(|a| (*a, balance(a).unwrap_or_default()))
                        .collect(),
                ),
                PartOp::Add(v) => {
                    adds.push(*v);
                    PartResult::Done
                }
                PartOp::Members => {
                    let mut set = self.visible_members();
                    set.extend(adds.iter().copied());
                    PartResult::Members(set.into_iter().collect())
                }
            };
            results.push(result);
        }
        let writes = cells
            .into_iter()
            .filter_map(|(k, c)| c.map(|c| Write::Cell(k, c)))
            .chain(balances.into_iter().map(|(a, b)| Write::Balance(a, b)))
            .chain(adds.into_iter().map(Write::Add))
            .collect();
        Ok((results, writes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(seq: u64) -> TxnId {
        TxnId {
            coord: "n1".into(),
            boot: 1,
            seq,
        }
    }

    fn participant(read_uncommitted: bool) -> Participant {
        Participant::new([0, 1], 10, read_uncommitted)
    }

    #[test]
    fn a_conflicting_prepare_aborts_at_once_and_holds_nothing() {
        let mut p = participant(false);
        assert!(p.prepare(&txn(1), &[PartOp::Append(5, 1)]).is_ok());
        assert_eq!(
            p.prepare(&txn(2), &[PartOp::Get(5)]).err(),
            Some(FailCode::Aborted)
        );
        assert_eq!(
            p.prepare(&txn(3), &[PartOp::Get(6), PartOp::Put(5, 1)])
                .err(),
            Some(FailCode::Aborted)
        );
        // txn 3 took nothing: key 6 stays free for a writer.
        assert!(p.prepare(&txn(4), &[PartOp::Put(6, 2)]).is_ok());
        // Readers share; adders share; a reader and an adder do not.
        assert!(p.prepare(&txn(5), &[PartOp::Add(1)]).is_ok());
        assert!(p.prepare(&txn(6), &[PartOp::Add(2)]).is_ok());
        assert_eq!(
            p.prepare(&txn(7), &[PartOp::Members]).err(),
            Some(FailCode::Aborted)
        );
    }

    #[test]
    fn writes_apply_on_commit_only_and_reads_see_their_own_writes() {
        let mut p = participant(false);
        let (_, results) = p
            .prepare(
                &txn(1),
                &[PartOp::Append(5, 1), PartOp::Append(5, 2), PartOp::Get(5)],
            )
            .unwrap();
        assert_eq!(results[2], PartResult::Cell(Some(Cell::List(vec![1, 2]))));
        assert!(p.abort(&txn(1)).is_some());
        let (_, results) = p.prepare(&txn(2), &[PartOp::Get(5)]).unwrap();
        assert_eq!(
            results[0],
            PartResult::Cell(None),
            "an abort leaves nothing"
        );
        p.commit(&txn(2));
        p.prepare(&txn(3), &[PartOp::Append(5, 3)]).unwrap();
        p.commit(&txn(3));
        let (_, results) = p.prepare(&txn(4), &[PartOp::Get(5)]).unwrap();
        assert_eq!(results[0], PartResult::Cell(Some(Cell::List(vec![3]))));
    }

    #[test]
    fn bank_steps_check_funds_and_the_total_holds() {
        let mut p = participant(false);
        assert_eq!(
            p.prepare(&txn(1), &[PartOp::Debit(0, 11)]).err(),
            Some(FailCode::InsufficientFunds)
        );
        p.prepare(&txn(2), &[PartOp::Debit(0, 4), PartOp::Credit(1, 4)])
            .unwrap();
        p.commit(&txn(2));
        let (_, r) = p.prepare(&txn(3), &[PartOp::Balances]).unwrap();
        assert_eq!(r[0], PartResult::Balances(vec![(0, 6), (1, 14)]));
    }

    #[test]
    fn read_uncommitted_sees_a_prepared_write_that_later_aborts() {
        let mut p = participant(true);
        p.prepare(&txn(1), &[PartOp::Append(5, 1), PartOp::Debit(0, 3)])
            .unwrap();
        let (_, r) = p
            .prepare(&txn(2), &[PartOp::Get(5), PartOp::Balances])
            .unwrap();
        assert_eq!(r[0], PartResult::Cell(Some(Cell::List(vec![1]))));
        assert_eq!(r[1], PartResult::Balances(vec![(0, 7), (1, 10)]));
        p.abort(&txn(1));
        let mut correct = participant(false);
        correct.prepare(&txn(1), &[PartOp::Append(5, 1)]).unwrap();
        assert!(correct.prepare(&txn(2), &[PartOp::Get(5)]).is_err());
    }

    #[test]
    fn replay_rebuilds_committed_data_and_relocks_the_in_doubt() {
        let mut before = participant(false);
        let mut records = Vec::new();
        let (r, _) = before.prepare(&txn(1), &[PartOp::Put(5, 7)]).unwrap();
        records.extend(r);
        records.extend(before.commit(&txn(1)));
        let (r, _) = before.prepare(&txn(2), &[PartOp::Put(6, 8)]).unwrap();
        records.extend(r);
        let mut after = participant(false);
        for r in &records {
            after.replay(r);
        }
        assert_eq!(after.relock(), vec![txn(2)]);
        assert_eq!(
            after.prepare(&txn(3), &[PartOp::Get(6)]).err(),
            Some(FailCode::Aborted)
        );
        let (_, r) = after.prepare(&txn(4), &[PartOp::Get(5)]).unwrap();
        assert_eq!(r[0], PartResult::Cell(Some(Cell::Int(7))));
        assert!(after.commit(&txn(2)).is_some());
        assert_eq!(after.applied, 2);
    }
}
