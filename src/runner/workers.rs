//! Client workers: tokio tasks that take operations from the generator at the
//! test's rate, send them to the nodes and record invocations and completions.
//!
//! As in Jepsen, worker `i` is bound to node `i mod n` and starts as process
//! `i`; when an operation ends `info` (timeout, lost connection) the worker
//! continues as process `i + concurrency`, because the old process may still
//! have that operation in flight. Every call has a timeout, so a paused or
//! cut-off node never holds a run past its time limit.

use super::recorder::Recorder;
use crate::client::{Client, Indefinite, completion};
use crate::generator::{Generator, Invocation, Pacer};
use crate::history::{OpType, Process};
use crate::nodes::wire::{FailCode, OpFamily, Operation, Outcome};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A node as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    /// HOST:PORT of its client listener.
    pub addr: String,
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub concurrency: u32,
    pub endpoints: Vec<Endpoint>,
    pub family: OpFamily,
    /// How long one operation may take before it ends `info`.
    pub op_timeout: Duration,
    pub connect_timeout: Duration,
}

/// The generator and pacer all workers draw from.
pub struct Source {
    pub generator: Mutex<Generator>,
    pub pacer: Mutex<Pacer>,
}

/// How many times one operation follows `not-leader` to another node.
const REDIRECTS_MAX: usize = 2;

/// A worker's way to the cluster: its own node first, then wherever
/// `not-leader` points. A `not-leader` reply is definite, so the operation is
/// sent again: to the hinted leader; without a hint (the node lost touch with
/// the leader), to the leader last seen, else to the next node. The worker
/// goes back to its own node for the next operation, so that follower reads
/// (and the bugs that break them) stay exercised.
struct Route {
    home: Endpoint,
    /// Open connections by address (at most one per node).
    conns: HashMap<String, Client>,
    /// The node that last answered after a redirect.
    leader: Option<Endpoint>,
}

impl Route {
    fn new(home: Endpoint) -> Route {
        Route {
            home,
            conns: HashMap::new(),
            leader: None,
        }
    }

    /// Calls `op`; returns the node that answered and how the call ended.
    /// A connection that cannot be made is a definite failure: nothing was sent.
    async fn call(
        &mut self,
        op: &Operation,
        cfg: &WorkerConfig,
    ) -> (String, Result<Outcome, Indefinite>) {
        let mut target = self.home.clone();
        let mut tried: Vec<Endpoint> = Vec::new();
        for attempt in 0..=REDIRECTS_MAX {
            if self.conns.get(&target.addr).is_none_or(Client::is_closed) {
                match Client::connect(&target.addr, cfg.connect_timeout).await {
                    Ok(c) => {
                        self.conns.insert(target.addr.clone(), c);
                    }
                    Err(e) => return (target.name, Ok(not_sent(&e))),
                }
            }
            let Some(client) = self.conns.get(&target.addr) else {
                unreachable!("connected above")
            };
            let result = client.call(op.clone(), cfg.op_timeout).await;
            match &result {
                Err(_) => {
                    self.conns.remove(&target.addr);
                    return (target.name, result);
                }
                Ok(Outcome::Fail {
                    error: FailCode::NotLeader,
                    leader: hint,
                }) if attempt < REDIRECTS_MAX => {
                    tried.push(target.clone());
                    let fresh = |e: &&Endpoint| !tried.contains(e);
                    let hinted = hint
                        .as_ref()
                        .and_then(|h| {
                            cfg.endpoints
                                .iter()
                                .find(|e| e.addr == h.addr || e.name == h.id)
                        })
                        .filter(fresh);
                    let remembered = self.leader.as_ref().filter(fresh);
                    let at = cfg.endpoints.iter().position(|e| *e == target).unwrap_or(0);
                    let next = (1..cfg.endpoints.len())
                        .map(|i| &cfg.endpoints[(at + i) % cfg.endpoints.len()])
                        .find(fresh);
                    match hinted.or(remembered).or(next) {
                        Some(e) => target = e.clone(),
                        None => return (target.name, result),
                    }
                }
                _ => {
                    if target != self.home
                        && !matches!(
                            result,
                            Ok(Outcome::Fail {
                                error: FailCode::NotLeader,
                                ..
                            })
                        )
                    {
                        self.leader = Some(target.clone());
                    }
                    return (target.name, result);
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    fn reset(&mut self) {
        self.conns.clear();
        self.leader = None;
    }
}

/// A call whose connection could not be made: nothing was sent, so it
/// certainly did not happen.
fn not_sent(e: &Indefinite) -> Outcome {
    tracing::debug!("cannot connect: {e}");
    Outcome::Fail {
        error: FailCode::Unavailable,
        leader: None,
    }
}

/// Runs one operation: records its invocation, calls, records its completion.
/// Returns the completion's type.
async fn run_one(
    inv: &Invocation,
    process: Process,
    route: &mut Route,
    cfg: &WorkerConfig,
    recorder: &Recorder,
) -> OpType {
    let op = match cfg.family.operation(&inv.f, &inv.value) {
        Ok(op) => op,
        Err(e) => {
            // The generator and the wire disagree: a bug in faultline, not in the system.
            debug_assert!(false, "{e}");
            tracing::error!("{e}");
            return OpType::Fail;
        }
    };
    recorder.record(
        process,
        OpType::Invoke,
        &inv.f,
        inv.value.clone(),
        None,
        None,
    );
    let (node, result) = route.call(&op, cfg).await;
    let (kind, value, error) = completion(&inv.value, &result);
    recorder.record(process, kind, &inv.f, value, Some(node), error);
    if kind == OpType::Info {
        route.reset();
    }
    kind
}

/// Runs `cfg.concurrency` workers until `stop` turns true.
pub async fn run(
    cfg: Arc<WorkerConfig>,
    source: Arc<Source>,
    recorder: Arc<Recorder>,
    stop: watch::Receiver<bool>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..cfg.concurrency {
        let (cfg, source, recorder, mut stop) =
            (cfg.clone(), source.clone(), recorder.clone(), stop.clone());
        tasks.spawn(async move {
            let home = cfg.endpoints[i as usize % cfg.endpoints.len()].clone();
            let mut route = Route::new(home);
            let mut process = u64::from(i);
            while !*stop.borrow() {
                let at = lock(&source.pacer).claim();
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                let inv = lock(&source.generator).next_op();
                if run_one(&inv, Process::Client(process), &mut route, &cfg, &recorder).await
                    == OpType::Info
                {
                    process += u64::from(cfg.concurrency);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// After the main phase: each node gets the workload's final reads, from a
/// fresh process, retried (bounded) until one is `ok` or `deadline` passes.
pub async fn final_reads(
    cfg: &WorkerConfig,
    reads: &[Invocation],
    recorder: &Recorder,
    first_process: u64,
    deadline: Instant,
) {
    let mut process = first_process;
    for endpoint in &cfg.endpoints {
        for inv in reads {
            let mut route = Route::new(endpoint.clone());
            for _attempt in 0..FINAL_READ_TRIES {
                let kind = run_one(inv, Process::Client(process), &mut route, cfg, recorder).await;
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
