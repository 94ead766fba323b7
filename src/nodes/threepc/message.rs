//! What three-phase-commit nodes send each other and write to their data
//! file. The data, the split of a transaction into per-participant steps
//! and the participant's records are 2PC's ([`twopc::message`]); 3PC adds
//! the pre-commit round and the termination protocol's questions.

use crate::nodes::twopc::message::{self as twopc, PartOp, PartResult, TxnId};
use crate::nodes::wire::FailCode;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "kebab-case")]
pub enum Msg {
    /// Coordinator to participant: lock, stage, persist, vote. The
    /// participants are named so that each can ask the others if the
    /// coordinator goes silent.
    CanCommit {
        txn: TxnId,
        ops: Vec<PartOp>,
        participants: Vec<String>,
    },
    /// Participant to coordinator: yes with the results, or no with why.
    Vote {
        txn: TxnId,
        vote: Result<Vec<PartResult>, FailCode>,
    },
    /// Coordinator to participant: everyone voted yes; get ready to commit
    /// (from now on a timeout commits).
    PreCommit {
        txn: TxnId,
    },
    /// Participant to coordinator: pre-committed, durably.
    Ack {
        txn: TxnId,
    },
    /// The outcome (DoCommit or abort), from the coordinator or from a
    /// participant that ended the transaction by the termination protocol.
    Decide {
        txn: TxnId,
        commit: bool,
    },
    /// Participant to coordinator: the commit is applied and durable.
    Done {
        txn: TxnId,
    },
    /// Termination protocol: where are you with this transaction?
    Query {
        txn: TxnId,
    },
    Answer {
        txn: TxnId,
        state: TxnState,
    },
}

/// A node's state in one transaction, as the termination protocol asks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxnState {
    /// Never voted yes here (or long forgotten).
    Unknown,
    /// Voted yes, no pre-commit yet: a timeout aborts.
    Uncertain,
    /// Pre-committed: a timeout commits.
    PreCommitted,
    Committed,
    Aborted,
}

/// What 3PC writes beside 2PC's records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "kebab-case")]
pub enum Phase {
    /// Participant: voted yes in a transaction with these participants
    /// (written with 2PC's `prepared` record).
    Voted {
        txn: TxnId,
        participants: Vec<String>,
    },
    /// Participant: received the pre-commit.
    PreCommitted { txn: TxnId },
    /// Coordinator: every vote was yes; the pre-commit goes out once this
    /// is durable, and after a crash the transaction commits.
    PreDecision {
        txn: TxnId,
        participants: Vec<String>,
    },
}

/// One record of the 3PC data file: 3PC's own, or one of 2PC's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Record {
    Phase(Phase),
    Base(twopc::Record),
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        // Our own types always serialize.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl From<Phase> for Record {
    fn from(p: Phase) -> Record {
        Record::Phase(p)
    }
}

impl From<twopc::Record> for Record {
    fn from(r: twopc::Record) -> Record {
        Record::Base(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The untagged record reads back as what was written, 3PC's and 2PC's.
    #[test]
    fn records_of_both_kinds_round_trip() {
        let txn = TxnId {
            coord: "n1".into(),
            boot: 1,
            seq: 2,
        };
        let records = [
            Record::Phase(Phase::PreCommitted { txn: txn.clone() }),
            Record::Phase(Phase::PreDecision {
                txn: txn.clone(),
                participants: vec!["n1".into(), "n2".into()],
            }),
            Record::Base(twopc::Record::Committed { txn: txn.clone() }),
            Record::Base(twopc::Record::Boot { boot: 3 }),
        ];
        for r in records {
            let back: Record = serde_json::from_slice(&r.encode()).unwrap();
            assert_eq!(back, r);
        }
    }
}
