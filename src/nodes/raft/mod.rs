//! Raft: leader election with PreVote, log replication with the consistency
//! check and conflict truncation, commitment of current-term entries by
//! majority, a group-committed durable log, ReadIndex reads.
//!
//! One task owns the node ([`node::Raft`]) and reacts to events in batches:
//! everything that arrived is handled, then [`node::Raft::flush`] writes the
//! batch's entries in one record and sends what followers are owed. Under
//! load that puts many client writes behind each fsync (group commit).
//! Named bugs: `stale-read`, `lease-read-wallclock`, `no-fsync`, `forget-vote`.

pub mod log;
pub mod message;
pub mod node;

use crate::nodes::NodeConfig;
use crate::nodes::bugs::Bug;
use crate::nodes::server;
use crate::nodes::wal::{GroupCommit, SyncMode, Wal};
use anyhow::Context;
use log::{Log, Record};
use message::Msg;
use std::time::Duration;
use tokio::sync::mpsc;

/// What a Raft node logs when it wins an election, with the term as a
/// [`TERM_FIELD`]`=N` word: `became leader term=3`. The runner hands both
/// to the election checker.
pub const BECAME_LEADER: &str = "became leader";
/// The field of that line that holds the term.
pub const TERM_FIELD: &str = "term";

/// Events handled before one flush; bounds the latency a batch adds.
const MAX_EVENTS_PER_BATCH: usize = 1024;
const TICK: Duration = Duration::from_millis(10);

/// Runs a Raft node until the process ends.
pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    let path = config.data_dir.join("raft.log");
    let mode = if config.bugs.has(Bug::NoFsync) {
        SyncMode::Lazy
    } else {
        SyncMode::Fsync
    };
    let (wal, recovered) = Wal::open(&path, mode)
        .with_context(|| format!("cannot open the raft log {}", path.display()))?;
    if recovered.torn_bytes > 0 {
        tracing::warn!(path = %path.display(), bytes = recovered.torn_bytes, "cut a torn tail off the log");
    }
    let mut log = Log::default();
    let mut hard = (0, None);
    for (n, bytes) in recovered.records.iter().enumerate() {
        let record: Record = serde_json::from_slice(bytes)
            .with_context(|| format!("{}: record {n} is not a raft record", path.display()))?;
        if let Some(h) = log.replay(record) {
            hard = h;
        }
    }
    tracing::info!(term = hard.0, vote = ?hard.1, entries = log.last_index(), "recovered from disk");

    let (inbox, net) = server::start::<Msg>(&config.id, &config.listen, &config.peers)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let (durable_tx, mut durable_rx) = mpsc::channel(1024);
    let wal = GroupCommit::spawn(wal, durable_tx);
    let mut raft = node::Raft::new(&config, hard, log, wal, net);
    let server::Inbox {
        mut clients,
        mut peers,
    } = inbox;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = ticker.tick() => raft.tick(),
            Some(seq) = durable_rx.recv() => raft.on_durable(seq),
            Some((from, msg)) = peers.recv() => raft.on_message(from, msg),
            Some(call) = clients.recv() => raft.on_client(call),
        }
        for _ in 0..MAX_EVENTS_PER_BATCH {
            if let Ok(seq) = durable_rx.try_recv() {
                raft.on_durable(seq);
            } else if let Ok((from, msg)) = peers.try_recv() {
                raft.on_message(from, msg);
            } else if let Ok(call) = clients.try_recv() {
                raft.on_client(call);
            } else {
                break;
            }
        }
        raft.flush();
    }
}
