//! Records on their way to disk, and the actions (replies, messages) that
//! must wait until those records are durable: the "fsync before answering"
//! rule, in one place, for systems that batch their writes (Paxos, 2PC).
//!
//! A system appends records and queues actions while it handles a batch of
//! events, then calls [`Durable::flush`] once: the records go to the
//! [`GroupCommit`] thread as one batch, and each action waits for the batch
//! that was last submitted when it was queued. It knows nothing of what a
//! record or an action means.

use super::wal::GroupCommit;
use std::collections::VecDeque;

/// How many actions may wait for the disk; past this the node has fallen
/// hopelessly behind its disk, and it sheds nothing but logs loudly.
const WARN_WAITING_ACTIONS: usize = 1 << 20;

pub struct Durable<A> {
    wal: GroupCommit,
    records: Vec<Vec<u8>>,
    /// (batch sequence number that must be durable, action), in order.
    waiting: VecDeque<(u64, A)>,
    durable_seq: u64,
}

impl<A> Durable<A> {
    pub fn new(wal: GroupCommit) -> Durable<A> {
        Durable {
            wal,
            records: Vec::new(),
            waiting: VecDeque::new(),
            durable_seq: 0,
        }
    }

    /// Adds a record to the next batch.
    pub fn record(&mut self, payload: Vec<u8>) {
        self.records.push(payload);
    }

    /// The `vote-before-fsync` bug: submits what was recorded so far, then
    /// `payload` alone in a batch that is written but not fsync'd; an
    /// action queued next waits only until it is written.
    pub fn record_unsynced(&mut self, payload: Vec<u8>) {
        self.flush();
        self.wal.submit_unsynced(vec![payload]);
    }

    /// Queues `action` until every record appended so far is durable.
    pub fn after(&mut self, action: A) {
        let seq = self.wal.last_submitted() + u64::from(!self.records.is_empty());
        debug_assert!(
            self.waiting.back().is_none_or(|(s, _)| *s <= seq),
            "actions wait in batch order"
        );
        if self.waiting.len() == WARN_WAITING_ACTIONS {
            tracing::warn!("{WARN_WAITING_ACTIONS} actions wait for the disk");
        }
        self.waiting.push_back((seq, action));
    }

    /// Submits the records appended since the last flush as one batch.
    pub fn flush(&mut self) {
        if !self.records.is_empty() {
            self.wal.submit(std::mem::take(&mut self.records));
        }
    }

    /// Notes that every batch up to `seq` is on disk.
    pub fn on_durable(&mut self, seq: u64) {
        self.durable_seq = self.durable_seq.max(seq);
    }

    /// The actions whose records are now durable, in the order queued.
    pub fn ready(&mut self) -> Vec<A> {
        let mut out = Vec::new();
        while self
            .waiting
            .front()
            .is_some_and(|(seq, _)| *seq <= self.durable_seq)
        {
            if let Some((_, action)) = self.waiting.pop_front() {
                out.push(action);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::wal::{SyncMode, Wal};
    use tokio::sync::mpsc;

    #[tokio::test]
    async fn actions_wait_for_the_records_queued_before_them() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(&dir.path().join("log"), SyncMode::Fsync).unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let mut d: Durable<&str> = Durable::new(GroupCommit::spawn(wal, tx));
        d.after("nothing to wait for");
        assert_eq!(d.ready(), vec!["nothing to wait for"]);
        d.record(b"promise".to_vec());
        d.after("reply to the promise");
        d.flush();
        assert!(d.ready().is_empty(), "the record is not durable yet");
        d.on_durable(rx.recv().await.unwrap());
        assert_eq!(d.ready(), vec!["reply to the promise"]);
    }
}
