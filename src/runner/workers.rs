//! Client workers: tokio tasks that take operations from the generator at the
//! test's rate, send them to the nodes and record invocations and completions.
//!
//! As in Jepsen, worker `i` is bound to node `i mod n` and starts as process
//! `i`; when an operation ends `info` (timeout, lost connection) the worker
//! continues as process `i + concurrency`, because the old process may still
//! have that operation in flight. Every call has a timeout, so a paused or
//! cut-off node never holds a run past its time limit.
//! How a worker talks to the system is the system's [`Client`]'s business.

use super::recorder::Recorder;
use crate::generator::Pacer;
use crate::history::{OpType, Process};
use crate::system::{Client, Clients};
use crate::workload::{Generate, Operation};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Read-only stretches. Every worker follows the leader, and one that
/// writes to a leader cut off from the others waits out its timeout and
/// moves on: without these, no client is left reading from a node that
/// still answers reads it should not (a leader trusting a lease, a
/// follower answering from local state) while the others write elsewhere,
/// and a stale read needs both. Worker `i` reads only (when the workload
/// offers reads, see [`Generate::next_read`]) for one [`READ_PHASE`] in
/// every [`READ_PHASES`], staggered, so a third of the workers read only at
/// any time.
const READ_PHASE: Duration = Duration::from_secs(2);
const READ_PHASES: u64 = 3;

/// Whether worker `worker` is in a read-only stretch `since` the start.
fn reads_only(worker: u32, since: Duration) -> bool {
    let phase = (since.as_millis() / READ_PHASE.as_millis()) as u64;
    (phase + u64::from(worker)).is_multiple_of(READ_PHASES)
}

#[derive(Clone)]
pub struct WorkerConfig {
    pub concurrency: u32,
    /// The system's clients; worker `i` opens one at node `i mod n`.
    pub clients: Arc<dyn Clients>,
    /// How long one operation may take before it ends `info`.
    pub op_timeout: Duration,
}

/// The generator and pacer all workers draw from.
pub struct Source {
    pub generator: Mutex<Box<dyn Generate>>,
    pub pacer: Mutex<Pacer>,
}

/// Runs one operation: records its invocation, calls, records its completion.
/// Returns the completion's type.
async fn run_one(
    op: &Operation,
    process: Process,
    client: &mut dyn Client,
    cfg: &WorkerConfig,
    recorder: &Recorder,
) -> OpType {
    let value = op.history_value();
    recorder.record(process, OpType::Invoke, op.f(), value.clone(), None, None);
    let (node, ended) = client.invoke(op, cfg.op_timeout).await;
    let (kind, value, error) = ended.into_parts(&value);
    recorder.record(process, kind, op.f(), value, Some(node), error);
    if kind == OpType::Info {
        client.reset();
    }
    kind
}

/// Runs `cfg.concurrency` workers until `stop` turns true. Their clients
/// are dropped together once every worker is done: a client whose drop
/// lets go of what it holds (a ZooKeeper session closed releases its locks)
/// must not do so under another worker's call still running, which would
/// then end `ok` on a release the history never shows.
pub async fn run(
    cfg: Arc<WorkerConfig>,
    source: Arc<Source>,
    recorder: Arc<Recorder>,
    stop: watch::Receiver<bool>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for i in 0..cfg.concurrency {
        let (cfg, source, recorder, mut stop) =
            (cfg.clone(), source.clone(), recorder.clone(), stop.clone());
        tasks.spawn(async move {
            let mut client = cfg.clients.open(i as usize);
            let mut process = u64::from(i);
            while !*stop.borrow() {
                let at = lock(&source.pacer).claim();
                // tokio's timer rounds up to the next millisecond: a slot due
                // now is taken at once, not a tick later.
                if at > Instant::now() {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at.into()) => {}
                        _ = stop.wait_for(|s| *s) => break,
                    }
                }
                let op = {
                    let mut generator = lock(&source.generator);
                    let read = if reads_only(i, started.elapsed()) {
                        generator.next_read()
                    } else {
                        None
                    };
                    read.unwrap_or_else(|| generator.next_op())
                };
                if run_one(
                    &op,
                    Process::Client(process),
                    client.as_mut(),
                    &cfg,
                    &recorder,
                )
                .await
                    == OpType::Info
                {
                    process += u64::from(cfg.concurrency);
                }
            }
            client
        });
    }
    let mut done = Vec::with_capacity(cfg.concurrency as usize);
    while let Some(ended) = tasks.join_next().await {
        done.extend(ended.ok());
    }
    drop(done);
}

/// After the main phase: each node gets the workload's final reads, from a
/// fresh process, retried (bounded) until one is `ok` or `deadline` passes.
pub async fn final_reads(
    cfg: &WorkerConfig,
    reads: &[Operation],
    recorder: &Recorder,
    first_process: u64,
    deadline: Instant,
) {
    let mut process = first_process;
    for node in 0..cfg.clients.nodes() {
        for op in reads {
            let mut client = cfg.clients.open(node);
            for _attempt in 0..FINAL_READ_TRIES {
                let kind =
                    run_one(op, Process::Client(process), client.as_mut(), cfg, recorder).await;
                process += 1;
                if kind == OpType::Ok || Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

const FINAL_READ_TRIES: u32 = 20;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_third_of_the_workers_read_only_at_any_time_and_each_takes_its_turn() {
        for phase in 0..6u64 {
            let since = READ_PHASE * phase as u32 + Duration::from_millis(500);
            let readers: Vec<u32> = (0..9).filter(|w| reads_only(*w, since)).collect();
            assert_eq!(readers.len(), 3, "phase {phase}: {readers:?}");
        }
        for worker in 0..4 {
            let turns = (0..READ_PHASES)
                .filter(|p| reads_only(worker, READ_PHASE * *p as u32))
                .count();
            assert_eq!(turns, 1, "worker {worker}");
        }
    }
}
