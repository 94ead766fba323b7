//! What two-phase-commit nodes send each other and write to their data
//! file, and where each key lives.
//!
//! A transaction is split into one list of [`PartOp`]s per participant
//! (the node owning the keys). Messages are one-way and matched by
//! [`TxnId`]; a lost message is retried by the side that waits (the
//! coordinator resends decisions, a participant in doubt asks again).

use crate::nodes::wire::{Cell, FailCode, Key, Val};
use serde::{Deserialize, Serialize};

/// A transaction: its coordinator, the coordinator's boot count (so ids
/// never repeat across restarts) and a sequence number within the boot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TxnId {
    pub coord: String,
    pub boot: u64,
    pub seq: u64,
}

impl std::fmt::Display for TxnId {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.coord, self.boot, self.seq)
    }
}

/// One step of a transaction at one participant, on keys it owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartOp {
    /// Read a key (a register or a list).
    Get(Key),
    /// Write an integer.
    Put(Key, Val),
    Append(Key, Val),
    /// Compare-and-set; votes no with `cas-mismatch`.
    Cas(Key, Val, Val),
    /// Take from an account; votes no with `insufficient-funds`.
    Debit(Key, Val),
    Credit(Key, Val),
    /// Read every account this participant owns.
    Balances,
    /// Add to the set.
    Add(Val),
    /// Read the set elements this participant owns.
    Members,
}

/// What one [`PartOp`] returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartResult {
    Cell(Option<Cell>),
    /// (account, balance) pairs: JSON map keys would be strings, which an
    /// internally tagged message cannot read back as integers.
    Balances(Vec<(Key, Val)>),
    Members(Vec<Val>),
    Done,
}

/// What a participant locks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Item {
    Cell(Key),
    Account(Key),
    /// The set elements this participant owns, as one item (so a read
    /// conflicts with any add, including adds of new elements).
    Set,
}

/// Lock modes. Adds to a set commute, so they share; everything else
/// that changes an item is exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Read,
    Add,
    Write,
}

impl Mode {
    pub fn compatible(self, other: Mode) -> bool {
        matches!(
            (self, other),
            (Mode::Read, Mode::Read) | (Mode::Add, Mode::Add)
        )
    }

    /// The one mode that covers both.
    pub fn join(self, other: Mode) -> Mode {
        if self == other { self } else { Mode::Write }
    }
}

/// A change a committed transaction makes, as the new value (so replaying
/// it twice is harmless).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Write {
    Cell(Key, Cell),
    Balance(Key, Val),
    Add(Val),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "kebab-case")]
pub enum Msg {
    /// Coordinator to participant: lock, stage, persist, vote.
    Prepare { txn: TxnId, ops: Vec<PartOp> },
    /// Participant to coordinator: yes with the results, or no with why.
    Vote {
        txn: TxnId,
        vote: Result<Vec<PartResult>, FailCode>,
    },
    /// Coordinator to participant: the outcome.
    Decide { txn: TxnId, commit: bool },
    /// Participant to coordinator: the commit is applied and durable.
    Done { txn: TxnId },
    /// Participant in doubt to coordinator: what was decided?
    Inquire { txn: TxnId },
}

/// One record of the 2PC data file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "kebab-case")]
pub enum Record {
    /// The node started; transaction ids of this run use this boot count.
    Boot {
        boot: u64,
    },
    /// Participant: voted yes; holds these locks and will make these writes.
    Prepared {
        txn: TxnId,
        locks: Vec<(Item, Mode)>,
        writes: Vec<Write>,
    },
    Committed {
        txn: TxnId,
    },
    Aborted {
        txn: TxnId,
    },
    /// Coordinator: decided to commit (aborts are presumed, never written).
    Decision {
        txn: TxnId,
        participants: Vec<String>,
    },
    /// Coordinator: every participant applied the commit; forget it.
    End {
        txn: TxnId,
    },
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        // Our own types always serialize.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// What decides where a piece of data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    Cell(Key),
    Account(Key),
    SetElement(Val),
}

/// The position in `members` (every node id, sorted) of the node owning
/// `what`: a fixed hash, the same on every node and in tests. Accounts go
/// round-robin instead: the bank has few (5 by default), and a hash put
/// them on 3 of 5 nodes, so most transfers had a single participant and a
/// split decision could not show in the totals.
pub fn owner(members_len: usize, what: Placed) -> usize {
    let (salt, k) = match what {
        Placed::Cell(k) => (1u64, k),
        Placed::Account(k) => return k.rem_euclid(members_len.max(1) as i64) as usize,
        Placed::SetElement(v) => (3, v),
    };
    // splitmix64 finalizer: consecutive keys spread over the nodes.
    let mut x = (k as u64) ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x % members_len.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_over_every_node() {
        let mut counts = [0; 3];
        for k in 0..300 {
            counts[owner(3, Placed::Cell(k))] += 1;
        }
        assert!(counts.iter().all(|&c| c > 60), "{counts:?}");
        assert_eq!(owner(1, Placed::Account(7)), 0);
        let accounts: Vec<usize> = (0..5).map(|a| owner(5, Placed::Account(a))).collect();
        assert_eq!(accounts, [0, 1, 2, 3, 4], "one account on each node");
    }

    #[test]
    fn lock_modes_share_only_reads_and_adds() {
        assert!(Mode::Read.compatible(Mode::Read));
        assert!(Mode::Add.compatible(Mode::Add));
        assert!(!Mode::Read.compatible(Mode::Add));
        assert!(!Mode::Write.compatible(Mode::Read));
        assert_eq!(Mode::Read.join(Mode::Add), Mode::Write);
    }

    #[test]
    fn votes_round_trip() {
        let txn = TxnId {
            coord: "n1".into(),
            boot: 2,
            seq: 3,
        };
        let yes = Ok(vec![
            PartResult::Balances(vec![(1, 5)]),
            PartResult::Cell(None),
        ]);
        for vote in [Err(FailCode::Aborted), yes] {
            let m = Msg::Vote {
                txn: txn.clone(),
                vote,
            };
            let text = serde_json::to_string(&m).unwrap();
            assert_eq!(serde_json::from_str::<Msg>(&text).unwrap(), m);
        }
    }
}
