//! Client workers: tokio tasks that take operations from the generator at the
//! test's rate, send them to the nodes and record invocations and completions.
//!
//! As in Jepsen, worker `i` is bound to node `i mod n` and starts as process
//! `i`; when an operation ends `info` (timeout, lost connection) the worker
//! continues as process `i + concurrency`, because the old process may still
//! have that operation in flight. Every call has a timeout, so a paused or
//! cut-off node never holds a run past its time limit.
//!
//! Workers share one pipelined connection per node ([`Pool`]): requests are
//! matched to replies by id, so sharing changes nothing in what a worker
//! sees, and many requests go out in one write (the controller's throughput
//! is bound by system calls). A call that ends `info` retires the connection
//! it used, as a Jepsen client would reconnect: later calls get a fresh one
//! instead of one stalled behind a partition's retransmission backoff.

use super::recorder::Recorder;
use crate::client::{Client, Indefinite, completion};
use crate::generator::Pacer;
use crate::history::{OpType, Process};
use crate::nodes::wire::{FailCode, Operation, Outcome};
use crate::workload::Generate;
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
    /// How long one operation may take before it ends `info`.
    pub op_timeout: Duration,
    pub connect_timeout: Duration,
}

/// The generator and pacer all workers draw from.
pub struct Source {
    pub generator: Mutex<Box<dyn Generate>>,
    pub pacer: Mutex<Pacer>,
}

/// How many times one operation follows `not-leader` to another node.
const REDIRECTS_MAX: usize = 2;

/// The open connections of all workers, at most one per node in use.
#[derive(Default)]
pub struct Pool {
    conns: Mutex<HashMap<String, Arc<Client>>>,
}

impl Pool {
    /// The open connection to `addr`, made if there is none. Connecting
    /// happens outside the lock, so workers never wait on each other's
    /// connection attempts; when two connect at once, the first kept wins.
    async fn get(&self, addr: &str, timeout: Duration) -> Result<Arc<Client>, Indefinite> {
        if let Some(c) = lock(&self.conns).get(addr).filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let fresh = Arc::new(Client::connect(addr, timeout).await?);
        let mut conns = lock(&self.conns);
        match conns.get(addr) {
            Some(kept) if !kept.is_closed() => Ok(kept.clone()),
            _ => {
                conns.insert(addr.to_string(), fresh.clone());
                Ok(fresh)
            }
        }
    }

    /// Stops handing out `client` (unless it was already replaced).
    fn retire(&self, client: &Arc<Client>) {
        let mut conns = lock(&self.conns);
        if conns
            .get(client.addr())
            .is_some_and(|kept| Arc::ptr_eq(kept, client))
        {
            conns.remove(client.addr());
        }
    }
}

/// A worker's way to the cluster: its own node first, then wherever
/// `not-leader` points. A `not-leader` reply is definite, so the operation is
/// sent again: to the hinted leader; without a hint (the node lost touch with
/// the leader), to the leader last seen, else to the next node. The worker
/// goes back to its own node for the next operation, so that follower reads
/// (and the bugs that break them) stay exercised.
struct Route {
    home: Endpoint,
    pool: Arc<Pool>,
    /// The node that last answered after a redirect.
    leader: Option<Endpoint>,
}

impl Route {
    fn new(home: Endpoint, pool: Arc<Pool>) -> Route {
        Route {
            home,
            pool,
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
            let client = match self.pool.get(&target.addr, cfg.connect_timeout).await {
                Ok(c) => c,
                Err(e) => return (target.name, Ok(not_sent(&e))),
            };
            let result = client.call(op.clone(), cfg.op_timeout).await;
            match &result {
                Err(_) => {
                    self.pool.retire(&client);
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

    /// After an `info`: forget the leader (the connection was retired).
    fn reset(&mut self) {
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
    op: &Operation,
    process: Process,
    route: &mut Route,
    cfg: &WorkerConfig,
    recorder: &Recorder,
) -> OpType {
    let value = op.history_value();
    recorder.record(process, OpType::Invoke, op.f(), value.clone(), None, None);
    let (node, result) = route.call(op, cfg).await;
    let (kind, value, error) = completion(&value, &result);
    recorder.record(process, kind, op.f(), value, Some(node), error);
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
    let pool = Arc::new(Pool::default());
    for i in 0..cfg.concurrency {
        let (cfg, source, recorder, pool, mut stop) = (
            cfg.clone(),
            source.clone(),
            recorder.clone(),
            pool.clone(),
            stop.clone(),
        );
        tasks.spawn(async move {
            let home = cfg.endpoints[i as usize % cfg.endpoints.len()].clone();
            let mut route = Route::new(home, pool);
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
                let op = lock(&source.generator).next_op();
                if run_one(&op, Process::Client(process), &mut route, &cfg, &recorder).await
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
    reads: &[Operation],
    recorder: &Recorder,
    first_process: u64,
    deadline: Instant,
) {
    let mut process = first_process;
    let pool = Arc::new(Pool::default());
    for endpoint in &cfg.endpoints {
        for op in reads {
            let mut route = Route::new(endpoint.clone(), pool.clone());
            for _attempt in 0..FINAL_READ_TRIES {
                let kind = run_one(op, Process::Client(process), &mut route, cfg, recorder).await;
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

    /// A listener that accepts and holds connections, counting them.
    async fn listener() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(s);
            }
        });
        (addr, accepted)
    }

    #[tokio::test]
    async fn workers_share_a_connection_until_a_call_retires_it() {
        let (addr, accepted) = listener().await;
        let pool = Pool::default();
        let t = Duration::from_secs(5);
        let first = pool.get(&addr, t).await.unwrap();
        let again = pool.get(&addr, t).await.unwrap();
        assert!(Arc::ptr_eq(&first, &again), "one connection per node");
        pool.retire(&first);
        let fresh = pool.get(&addr, t).await.unwrap();
        assert!(
            !Arc::ptr_eq(&first, &fresh),
            "a retired connection is not handed out"
        );
        // A second worker retiring the old connection leaves the fresh one.
        pool.retire(&first);
        assert!(Arc::ptr_eq(&fresh, &pool.get(&addr, t).await.unwrap()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
