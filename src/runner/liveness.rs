//! Watching the nodes' processes while a run goes. A node whose process is
//! gone when the nemesis did not kill it exited on its own: a crash, the
//! kernel's OOM killer, someone's `kill -9`. Each such exit is reported (which
//! node, when it was seen, the tail of its log) and makes the verdict at best
//! unknown unless the test allows nodes to exit.
//!
//! One look a second, every host at once, from deploy until teardown. A look
//! during which the nemesis killed or restarted a node proves nothing and is
//! dropped (see [`crate::nemesis::hosts::Killed`]).

use crate::nemesis::hosts::Killed;
use crate::system::Db;
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the processes are looked at.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// Log lines kept with an exit.
const LOG_TAIL_LINES: usize = 10;

/// A node found not running when the nemesis had not killed it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeExit {
    pub node: String,
    /// When the exit was first seen, in ns since the run started (the
    /// history's clock); it happened within [`LOOK_EVERY`] before.
    pub seen_ns: u64,
    /// The last lines of its log, as they were when the exit was seen.
    pub log_tail: Vec<String>,
}

/// One look: the nodes not running that the nemesis did not kill, and the
/// nodes running. `None` when the look proves nothing.
fn look(db: &dyn Db, killed: &Killed) -> Option<(Vec<String>, Vec<String>)> {
    let before = killed.snapshot();
    let pids = db.pids();
    let after = killed.snapshot();
    if before.0 != after.0 {
        return None;
    }
    let (mut gone, mut running) = (Vec::new(), Vec::new());
    for (node, pid) in pids {
        match pid {
            Ok(Some(_)) => running.push(node),
            Ok(None) if !after.1.contains(&node) => gone.push(node),
            // Killed by the nemesis, or the host did not answer: no news.
            _ => {}
        }
    }
    Some((gone, running))
}

/// Looks every second until `stop` turns true, then once more; returns every
/// exit seen. A node that comes back and exits again is reported again.
pub async fn watch(
    db: Arc<dyn Db>,
    killed: Arc<Killed>,
    start: Instant,
    mut stop: watch::Receiver<bool>,
) -> Vec<NodeExit> {
    let mut exits = Vec::new();
    let mut gone_now: BTreeSet<String> = BTreeSet::new();
    let mut last = false;
    loop {
        let (d, k) = (db.clone(), killed.clone());
        let looked = tokio::task::spawn_blocking(move || look(d.as_ref(), &k))
            .await
            .ok()
            .flatten();
        if let Some((gone, running)) = looked {
            for node in running {
                gone_now.remove(&node);
            }
            for node in gone {
                if gone_now.insert(node.clone()) {
                    let seen_ns = start.elapsed().as_nanos() as u64;
                    let d = db.clone();
                    let n = node.clone();
                    let log_tail =
                        tokio::task::spawn_blocking(move || d.log_tail(&n, LOG_TAIL_LINES))
                            .await
                            .unwrap_or_default();
                    tracing::warn!(%node, "the node's process exited, and not by the nemesis");
                    exits.push(NodeExit {
                        node,
                        seen_ns,
                        log_tail,
                    });
                }
            }
        }
        if last {
            return exits;
        }
        tokio::select! {
            _ = tokio::time::sleep(LOOK_EVERY) => {}
            // Stopped, or the sender is gone: one last look.
            _ = stop.wait_for(|s| *s) => last = true,
        }
    }
}
