//! Raft's peer messages, one JSON object per line on a peer connection.
//! Every message is one-way; replies are messages too, matched by term and
//! `seq`, so a lost or reordered message is only a delay.

use super::log::Entry;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "kebab-case")]
pub enum Msg {
    /// "Would you vote for me in `term`?" Changes nothing at the receiver, so
    /// a node back from a partition cannot depose a healthy leader.
    PreVote {
        term: u64,
        last_index: u64,
        last_term: u64,
    },
    /// `term` echoes the proposed term; `current` is the receiver's own.
    PreVoteReply {
        term: u64,
        current: u64,
        granted: bool,
    },
    Vote {
        term: u64,
        last_index: u64,
        last_term: u64,
    },
    VoteReply {
        term: u64,
        granted: bool,
    },
    /// AppendEntries; empty `entries` is a heartbeat. `seq` numbers the
    /// leader's heartbeat rounds so replies confirm leadership for reads.
    Append {
        term: u64,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        commit: u64,
        seq: u64,
    },
    /// `match_index` on success; on failure, `hint` is where the leader should
    /// resume sending.
    AppendReply {
        term: u64,
        success: bool,
        match_index: u64,
        hint: u64,
        seq: u64,
    },
}
