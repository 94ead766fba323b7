//! What Multi-Paxos nodes send each other and write to their data file.
//!
//! Every peer message is one-way; a reply is a message too, matched by
//! ballot (and chunk or round), so a lost or reordered message is only a
//! delay. Records are what an acceptor must remember across a crash: the
//! ballot it promised and the values it accepted; `Chosen` is a hint that
//! saves relearning a prefix after a restart.

use crate::nodes::wire::Operation;
use serde::{Deserialize, Serialize};

/// A proposal number: ordered by round, then by node id, so two proposers
/// never share one. The default (round 0) is below every real ballot.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    pub round: u64,
    pub node: String,
}

impl Ballot {
    pub fn new(round: u64, node: &str) -> Ballot {
        Ballot {
            round,
            node: node.to_string(),
        }
    }
}

impl std::fmt::Display for Ballot {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}.{}", self.round, self.node)
    }
}

/// The value of one slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    /// Fills a slot a new leader found empty below slots that hold values.
    Noop,
    Op(Operation),
}

/// A slot and the value proposed for it.
pub type Entry = (u64, Command);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "kebab-case")]
pub enum Msg {
    /// Phase 1a for every slot from `from` on; the acceptor answers with the
    /// values it accepted in `[from, from + PROMISE_CHUNK_SLOTS)`.
    Prepare { ballot: Ballot, from: u64 },
    /// Phase 1b. `more`: the acceptor accepted values past this chunk.
    Promise {
        ballot: Ballot,
        from: u64,
        accepted: Vec<(u64, Ballot, Command)>,
        more: bool,
    },
    /// Phase 2a for `entries` (possibly none: a heartbeat). `commit`: every
    /// slot up to it is chosen, with the value this ballot proposed.
    /// `round` numbers the leader's heartbeat rounds, for read barriers.
    Accept {
        ballot: Ballot,
        entries: Vec<Entry>,
        commit: u64,
        round: u64,
    },
    /// Phase 2b. `matched`: every slot up to it is chosen here or accepted
    /// with `ballot`, so the leader may count this acceptor for all of them.
    Accepted {
        ballot: Ballot,
        matched: u64,
        round: u64,
    },
    /// The acceptor promised `promised`, above the ballot of the message
    /// it refuses.
    Nack { promised: Ballot },
}

/// One record of the Paxos data file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "kebab-case")]
pub enum Record {
    Promise {
        ballot: Ballot,
    },
    Accept {
        ballot: Ballot,
        entries: Vec<Entry>,
    },
    /// Every slot up to `upto` was chosen with the value accepted there.
    Chosen {
        upto: u64,
    },
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        // Our own types always serialize.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ballots_order_by_round_then_node() {
        assert!(Ballot::new(2, "n1") > Ballot::new(1, "n3"));
        assert!(Ballot::new(2, "n2") > Ballot::new(2, "n1"));
        assert!(Ballot::default() < Ballot::new(1, "n1"));
    }

    #[test]
    fn records_round_trip() {
        let r = Record::Accept {
            ballot: Ballot::new(3, "n2"),
            entries: vec![(7, Command::Op(Operation::SetAdd { value: 4 }))],
        };
        assert_eq!(serde_json::from_slice::<Record>(&r.encode()).unwrap(), r);
    }
}
