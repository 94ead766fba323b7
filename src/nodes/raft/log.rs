//! The Raft log in memory, and what Raft writes to its [`Wal`](crate::nodes::wal::Wal):
//! hard-state records (term, vote) and entry batches.
//!
//! The record file is append-only, so a conflict truncation is written as a
//! batch whose first index is at or below the current end: replaying it cuts
//! the log there first. Replaying the file in order rebuilds exactly the log
//! and hard state the node had acknowledged. No snapshots: the log starts at
//! index 1 and keeps everything.

use crate::nodes::wire::Operation;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub term: u64,
    pub index: u64,
    pub cmd: Command,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    /// Appended by every new leader so it can commit an entry of its own term.
    Noop,
    Op(Operation),
}

/// One record of the Raft data file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Record {
    Hard {
        term: u64,
        vote: Option<String>,
    },
    /// Entries with consecutive indexes; on replay they replace the log from
    /// their first index on.
    Entries(Vec<Entry>),
}

#[derive(Debug, Default)]
pub struct Log {
    entries: Vec<Entry>,
}

impl Log {
    pub fn last_index(&self) -> u64 {
        self.entries.len() as u64
    }

    pub fn last_term(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.term)
    }

    /// The term of the entry at `index`; 0 for index 0, None past the end.
    pub fn term_at(&self, index: u64) -> Option<u64> {
        match index {
            0 => Some(0),
            i => self.entries.get(i as usize - 1).map(|e| e.term),
        }
    }

    pub fn get(&self, index: u64) -> Option<&Entry> {
        index
            .checked_sub(1)
            .and_then(|i| self.entries.get(i as usize))
    }

    /// Up to `max` entries from `from` on.
    pub fn slice(&self, from: u64, max: usize) -> Vec<Entry> {
        let start = (from.max(1) - 1) as usize;
        self.entries.iter().skip(start).take(max).cloned().collect()
    }

    /// Drops every entry from `index` on.
    pub fn truncate_from(&mut self, index: u64) {
        self.entries.truncate(index.saturating_sub(1) as usize);
    }

    pub fn push(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index() + 1, "log indexes are dense");
        self.entries.push(entry);
    }

    /// The first index of the run of entries with the same term as `index`,
    /// never below `floor`: where a follower asks the leader to resume.
    pub fn first_of_term(&self, index: u64, floor: u64) -> u64 {
        let Some(term) = self.term_at(index) else {
            return self.last_index() + 1;
        };
        let mut i = index;
        while i > floor.max(1) && self.term_at(i - 1) == Some(term) {
            i -= 1;
        }
        i
    }

    /// Applies a replayed record; returns the hard state if it was one.
    pub fn replay(&mut self, record: Record) -> Option<(u64, Option<String>)> {
        match record {
            Record::Hard { term, vote } => Some((term, vote)),
            Record::Entries(entries) => {
                if let Some(first) = entries.first() {
                    self.truncate_from(first.index);
                }
                for e in entries {
                    // A gap would mean a lost record: stop rather than invent.
                    if e.index != self.last_index() + 1 {
                        tracing::error!(
                            index = e.index,
                            last = self.last_index(),
                            "gap in the replayed log; ignoring the rest of this batch"
                        );
                        break;
                    }
                    self.push(e);
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(term: u64, index: u64) -> Entry {
        Entry {
            term,
            index,
            cmd: Command::Noop,
        }
    }

    #[test]
    fn replay_overwrites_from_a_batch_start() {
        let mut log = Log::default();
        assert_eq!(
            log.replay(Record::Entries(vec![e(1, 1), e(1, 2), e(1, 3)])),
            None
        );
        assert_eq!(
            log.replay(Record::Hard {
                term: 2,
                vote: Some("n2".into())
            }),
            Some((2, Some("n2".into())))
        );
        log.replay(Record::Entries(vec![e(2, 2)]));
        assert_eq!(log.last_index(), 2);
        assert_eq!(log.term_at(2), Some(2));
        assert_eq!(log.term_at(3), None);
    }

    #[test]
    fn first_of_term_finds_the_start_of_a_run() {
        let mut log = Log::default();
        for (t, i) in [(1, 1), (1, 2), (3, 3), (3, 4), (3, 5)] {
            log.push(e(t, i));
        }
        assert_eq!(log.first_of_term(5, 0), 3);
        assert_eq!(log.first_of_term(5, 4), 4);
        assert_eq!(log.first_of_term(2, 0), 1);
        assert_eq!(log.first_of_term(9, 0), 6);
    }
}
