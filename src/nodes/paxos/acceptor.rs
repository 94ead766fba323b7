//! The acceptor: the ballot it promised and the value it accepted in each
//! slot, rebuilt from the data file after a restart.
//!
//! Its methods decide and change memory and return the record the caller
//! must make durable before answering; they never send or write anything
//! themselves. The `skip-promise-check` bug lives in [`Acceptor::admits`].

use super::message::{Ballot, Command, Entry, Record};
use std::collections::BTreeMap;

/// How many slots one promise carries; a candidate asks for the next chunk
/// while acceptors say there is more.
pub const PROMISE_CHUNK_SLOTS: u64 = 4096;

#[derive(Debug, Default)]
pub struct Acceptor {
    promised: Ballot,
    accepted: BTreeMap<u64, (Ballot, Command)>,
    /// The `skip-promise-check` bug.
    skip_promise_check: bool,
    /// Cache for [`Acceptor::matched`]: the last answer and its ballot.
    matched_ballot: Ballot,
    matched: u64,
}

/// What a promise tells the candidate about one chunk.
pub struct PromiseChunk {
    pub accepted: Vec<(u64, Ballot, Command)>,
    pub more: bool,
}

impl Acceptor {
    /// Replays the data file. Returns the acceptor and the `Chosen` hint:
    /// every slot up to it holds its chosen value.
    pub fn recover(
        records: &[Vec<u8>],
        skip_promise_check: bool,
    ) -> Result<(Acceptor, u64), String> {
        let mut a = Acceptor {
            skip_promise_check,
            ..Acceptor::default()
        };
        let mut chosen = 0;
        for (i, bytes) in records.iter().enumerate() {
            let record: Record = serde_json::from_slice(bytes).map_err(|e| {
                format!("record {i} of the paxos data file is not a paxos record: {e}")
            })?;
            match record {
                Record::Promise { ballot } => a.promised = a.promised.clone().max(ballot),
                Record::Accept { ballot, entries } => {
                    for (slot, cmd) in entries {
                        a.accepted.insert(slot, (ballot.clone(), cmd));
                    }
                    a.promised = a.promised.clone().max(ballot);
                }
                Record::Chosen { upto } => chosen = chosen.max(upto),
            }
        }
        Ok((a, chosen))
    }

    pub fn promised(&self) -> &Ballot {
        &self.promised
    }

    /// True when this acceptor may accept values proposed with `ballot`.
    pub fn admits(&self, ballot: &Ballot) -> bool {
        // BUG skip-promise-check: a lower ballot than the promised one is
        // accepted too, so a deposed leader still gets its values chosen.
        *ballot >= self.promised || self.skip_promise_check
    }

    /// Phase 1b: promises `ballot` (not lower than any before) and reports
    /// what was accepted in the chunk starting at `from`. `Err`: the ballot
    /// promised instead.
    pub fn prepare(
        &mut self,
        ballot: &Ballot,
        from: u64,
    ) -> Result<(Option<Record>, PromiseChunk), Ballot> {
        if *ballot < self.promised {
            return Err(self.promised.clone());
        }
        let record = (*ballot > self.promised).then(|| {
            self.promised = ballot.clone();
            Record::Promise {
                ballot: ballot.clone(),
            }
        });
        Ok((record, self.chunk(from)))
    }

    /// The accepted values in `[from, from + PROMISE_CHUNK_SLOTS)`.
    pub fn chunk(&self, from: u64) -> PromiseChunk {
        let end = from.saturating_add(PROMISE_CHUNK_SLOTS);
        PromiseChunk {
            accepted: self
                .accepted
                .range(from..end)
                .map(|(s, (b, c))| (*s, b.clone(), c.clone()))
                .collect(),
            more: self.accepted.range(end..).next().is_some(),
        }
    }

    /// Phase 2b: accepts `entries` under `ballot`, except slots up to
    /// `learned`, which hold their chosen values already. `Err`: the ballot
    /// promised instead.
    pub fn accept(
        &mut self,
        ballot: &Ballot,
        entries: Vec<Entry>,
        learned: u64,
    ) -> Result<Option<Record>, Ballot> {
        if !self.admits(ballot) {
            return Err(self.promised.clone());
        }
        let raised = *ballot > self.promised;
        if raised {
            self.promised = ballot.clone();
        }
        let entries: Vec<Entry> = entries.into_iter().filter(|(s, _)| *s > learned).collect();
        for (slot, cmd) in &entries {
            self.accepted.insert(*slot, (ballot.clone(), cmd.clone()));
        }
        Ok(if !entries.is_empty() {
            Some(Record::Accept {
                ballot: ballot.clone(),
                entries,
            })
        } else if raised {
            Some(Record::Promise {
                ballot: ballot.clone(),
            })
        } else {
            None
        })
    }

    pub fn get(&self, slot: u64) -> Option<&(Ballot, Command)> {
        self.accepted.get(&slot)
    }

    pub fn last_slot(&self) -> u64 {
        self.accepted.keys().next_back().copied().unwrap_or(0)
    }

    /// The highest slot such that every slot above `learned` up to it was
    /// accepted with `ballot`: a leader of `ballot` may count this acceptor
    /// for all of them (the slots up to `learned` are chosen already).
    pub fn matched(&mut self, ballot: &Ballot, learned: u64) -> u64 {
        if self.matched_ballot != *ballot {
            self.matched_ballot = ballot.clone();
            self.matched = 0;
        }
        let mut m = self.matched.max(learned);
        while self
            .accepted
            .get(&(m + 1))
            .is_some_and(|(b, _)| b == ballot)
        {
            m += 1;
        }
        self.matched = m;
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::wire::Operation;

    fn op(v: i64) -> Command {
        Command::Op(Operation::SetAdd { value: v })
    }

    #[test]
    fn promises_only_rise_and_refusals_name_the_promise() {
        let mut a = Acceptor::default();
        let (b1, b2) = (Ballot::new(1, "n1"), Ballot::new(2, "n2"));
        assert!(a.prepare(&b2, 1).unwrap().0.is_some());
        assert!(
            a.prepare(&b2, 1).unwrap().0.is_none(),
            "same ballot: no new record"
        );
        assert_eq!(a.prepare(&b1, 1).err(), Some(b2.clone()));
        assert_eq!(a.accept(&b1, vec![(1, op(1))], 0).err(), Some(b2.clone()));
        assert!(a.get(1).is_none());
    }

    #[test]
    fn skip_promise_check_accepts_a_lower_ballot() {
        let mut a = Acceptor {
            skip_promise_check: true,
            ..Acceptor::default()
        };
        let (b1, b2) = (Ballot::new(1, "n1"), Ballot::new(2, "n2"));
        a.prepare(&b2, 1).unwrap();
        assert!(a.accept(&b1, vec![(1, op(1))], 0).is_ok());
        assert_eq!(a.get(1).map(|e| &e.0), Some(&b1));
        assert_eq!(a.promised(), &b2, "the promise itself never falls");
    }

    #[test]
    fn a_promise_reports_accepted_values_by_chunk() {
        let mut a = Acceptor::default();
        let b = Ballot::new(1, "n1");
        let entries = (1..=PROMISE_CHUNK_SLOTS + 2)
            .map(|s| (s, op(s as i64)))
            .collect();
        a.accept(&b, entries, 0).unwrap();
        let (_, first) = a.prepare(&Ballot::new(2, "n2"), 1).unwrap();
        assert_eq!(first.accepted.len() as u64, PROMISE_CHUNK_SLOTS);
        assert!(first.more);
        let second = a.chunk(1 + PROMISE_CHUNK_SLOTS);
        assert_eq!(second.accepted.len(), 2);
        assert!(!second.more);
    }

    #[test]
    fn matched_counts_a_contiguous_run_of_the_ballot() {
        let mut a = Acceptor::default();
        let (b1, b2) = (Ballot::new(1, "n1"), Ballot::new(2, "n2"));
        a.accept(&b1, vec![(1, op(1)), (2, op(2)), (3, op(3))], 0)
            .unwrap();
        a.accept(&b2, vec![(2, op(2)), (4, op(4))], 0).unwrap();
        assert_eq!(a.matched(&b2, 0), 0, "slot 1 is b1's");
        assert_eq!(a.matched(&b2, 1), 2, "slot 3 is still b1's");
        a.accept(&b2, vec![(3, op(3))], 1).unwrap();
        assert_eq!(a.matched(&b2, 1), 4);
    }

    #[test]
    fn recovery_replays_promises_accepts_and_the_chosen_hint() {
        let (b1, b2) = (Ballot::new(1, "n1"), Ballot::new(2, "n2"));
        let records = [
            Record::Accept {
                ballot: b1.clone(),
                entries: vec![(1, op(1)), (2, op(2))],
            },
            Record::Chosen { upto: 1 },
            Record::Promise { ballot: b2.clone() },
        ];
        let bytes: Vec<Vec<u8>> = records.iter().map(Record::encode).collect();
        let (a, chosen) = Acceptor::recover(&bytes, false).unwrap();
        assert_eq!(a.promised(), &b2);
        assert_eq!(a.get(2), Some(&(b1, op(2))));
        assert_eq!(chosen, 1);
        assert!(Acceptor::recover(&[b"{}".to_vec()], false).is_err());
    }
}
