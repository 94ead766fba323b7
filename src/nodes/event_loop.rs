//! The event loop of a node that batches its disk writes (Paxos, 2PC): wait
//! for an event, handle whatever else already arrived (bounded), then flush
//! once, so that the records of one pass share one fsync.
//!
//! What an event means is the [`Handler`]'s business; this file only orders
//! them.

use super::server::{ClientCall, Inbox};
use std::time::Duration;
use tokio::sync::mpsc;

/// Events handled before the records they produced are flushed together.
const MAX_EVENTS_PER_PASS: usize = 512;

/// A system's reaction to each kind of event.
pub trait Handler {
    type Msg;
    fn on_client(&mut self, call: ClientCall);
    fn on_peer(&mut self, from: &str, msg: Self::Msg);
    /// Every batch up to `seq` is on disk.
    fn on_durable(&mut self, seq: u64);
    fn on_tick(&mut self);
    /// End of a pass: write what it produced, send what may go.
    fn flush(&mut self);
}

/// Runs `node` until the process ends (or every event source closed).
pub async fn run<H: Handler>(
    node: &mut H,
    inbox: Inbox<H::Msg>,
    mut durable: mpsc::Receiver<u64>,
    tick_every: Duration,
) {
    let Inbox {
        mut clients,
        mut peers,
    } = inbox;
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some(call) = clients.recv() => node.on_client(call),
            Some((from, msg)) = peers.recv() => node.on_peer(&from, msg),
            Some(seq) = durable.recv() => node.on_durable(seq),
            _ = tick.tick() => node.on_tick(),
            else => return,
        }
        for _ in 0..MAX_EVENTS_PER_PASS {
            if let Ok(call) = clients.try_recv() {
                node.on_client(call);
            } else if let Ok((from, msg)) = peers.try_recv() {
                node.on_peer(&from, msg);
            } else if let Ok(seq) = durable.try_recv() {
                node.on_durable(seq);
            } else {
                break;
            }
        }
        node.flush();
    }
}
