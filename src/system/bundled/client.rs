//! The bundled nodes' client for workers: operations over the wire
//! protocol, following `not-leader` to the leader.
//!
//! Workers share one pipelined connection per node ([`Pool`]): requests are
//! matched to replies by id, so sharing changes nothing in what a worker
//! sees, and many requests go out in one write (the controller's throughput
//! is bound by system calls). A call that ends `info` retires the connection
//! it used, as a Jepsen client would reconnect: later calls get a fresh one
//! instead of one stalled behind a partition's retransmission backoff.

use crate::client::{Client, Indefinite, ended};
use crate::history::Ended;
use crate::nodes::wire::{FailCode, Operation, Outcome};
use crate::system::{self, BoxFuture, Endpoint};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Clients that share one [`Pool`].
pub struct Clients(pub Arc<Pool>);

impl system::Clients for Clients {
    fn nodes(&self) -> usize {
        self.0.endpoints.len()
    }

    fn open(&self, home: usize) -> Box<dyn system::Client> {
        let home = self.0.endpoints[home % self.0.endpoints.len()].clone();
        Box::new(Route::new(home, self.0.clone()))
    }
}

impl system::Client for Route {
    fn invoke<'a>(
        &'a mut self,
        op: &'a Operation,
        timeout: Duration,
    ) -> BoxFuture<'a, (String, Ended)> {
        Box::pin(async move {
            let (node, result) = self.call(op, timeout).await;
            (node, ended(result))
        })
    }

    /// After an `info`: forget the leader (the connection was retired).
    fn reset(&mut self) {
        self.leader = None;
    }
}

/// How many times one operation follows `not-leader` to another node.
const REDIRECTS_MAX: usize = 2;

/// The open connections of all workers, at most one per node in use.
pub struct Pool {
    endpoints: Vec<Endpoint>,
    connect_timeout: Duration,
    conns: Mutex<HashMap<String, Arc<Client>>>,
}

impl Pool {
    pub fn new(endpoints: Vec<Endpoint>, connect_timeout: Duration) -> Pool {
        debug_assert!(!endpoints.is_empty(), "a test has at least one node");
        Pool {
            endpoints,
            connect_timeout,
            conns: Mutex::default(),
        }
    }

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
pub struct Route {
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
        timeout: Duration,
    ) -> (String, Result<Outcome, Indefinite>) {
        let mut target = self.home.clone();
        let mut tried: Vec<Endpoint> = Vec::new();
        for attempt in 0..=REDIRECTS_MAX {
            let client = match self.pool.get(&target.addr, self.pool.connect_timeout).await {
                Ok(c) => c,
                Err(e) => return (target.name, Ok(not_sent(&e))),
            };
            let result = client.call(op.clone(), timeout).await;
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
                            self.pool
                                .endpoints
                                .iter()
                                .find(|e| e.addr == h.addr || e.name == h.id)
                        })
                        .filter(fresh);
                    let remembered = self.leader.as_ref().filter(fresh);
                    let at = self
                        .pool
                        .endpoints
                        .iter()
                        .position(|e| *e == target)
                        .unwrap_or(0);
                    let next = (1..self.pool.endpoints.len())
                        .map(|i| &self.pool.endpoints[(at + i) % self.pool.endpoints.len()])
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
        let t = Duration::from_secs(5);
        let node = Endpoint {
            name: "n1".into(),
            addr: addr.clone(),
        };
        let pool = Pool::new(vec![node], t);
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
