//! Clients of the bundled systems: connect to a node, send requests with ids,
//! await the matching replies with a timeout.
//!
//! A timeout or a lost connection is [`Indefinite`]: the operation may or may
//! not have happened, and the history records it as `info`. A `fail` reply is
//! definite. [`completion`] turns either into the parts of a history op.
//! This module speaks only the wire protocol ([`crate::nodes::wire`]); what
//! to send and when is the generator's business, not this module's.

pub mod bench;
pub mod local;

use crate::history::Ended;
use crate::nodes::wire::{FailCode, Operation, Outcome, Reply, Request, encode_frame, read_frame};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// Requests one connection may have waiting to be written.
const WRITE_QUEUE: usize = 1024;

/// The operation may or may not have happened.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum Indefinite {
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("connection to {addr} lost: {why}")]
    Disconnected { addr: String, why: String },
}

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Reply>>>>;

/// One connection to one node. Calls may be made concurrently (`&self`);
/// they are pipelined on the connection and matched by id.
pub struct Client {
    addr: String,
    writes: mpsc::Sender<Vec<u8>>,
    waiters: Waiters,
    next_id: AtomicU64,
    /// Why the connection ended, once it has.
    closed: Arc<Mutex<Option<String>>>,
}

impl Client {
    /// Connects to a node at `addr` (HOST:PORT).
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Client, Indefinite> {
        let lost = |why: String| Indefinite::Disconnected {
            addr: addr.to_string(),
            why,
        };
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| lost(format!("connect timed out after {timeout:?}")))?
            .map_err(|e| lost(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (read, mut write) = stream.into_split();
        let (writes, mut write_rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
        let waiters: Waiters = Arc::default();
        let closed: Arc<Mutex<Option<String>>> = Arc::default();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Some(frame) = write_rx.recv().await {
                buf.extend_from_slice(&frame);
                while let Ok(frame) = write_rx.try_recv() {
                    buf.extend_from_slice(&frame);
                }
                if write.write_all(&buf).await.is_err() {
                    return;
                }
                buf.clear();
            }
        });
        let (w, c) = (waiters.clone(), closed.clone());
        tokio::spawn(async move {
            let why = read_replies(BufReader::new(read), &w).await;
            *lock(&c) = Some(why);
            // Dropping the senders wakes every waiting call.
            lock(&w).clear();
        });
        Ok(Client {
            addr: addr.to_string(),
            writes,
            waiters,
            next_id: AtomicU64::new(1),
            closed,
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `op` and waits for its reply at most `timeout`.
    pub async fn call(&self, op: Operation, timeout: Duration) -> Result<Outcome, Indefinite> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).insert(id, tx);
        if let Some(why) = lock(&self.closed).clone() {
            lock(&self.waiters).remove(&id);
            return Err(self.lost(why));
        }
        let frame = encode_frame(&Request { id, op });
        let result = tokio::time::timeout(timeout, async {
            self.writes
                .send(frame)
                .await
                .map_err(|_| self.lost("writer stopped".into()))?;
            rx.await
                .map_err(|_| self.lost(lock(&self.closed).clone().unwrap_or_default()))
        })
        .await;
        lock(&self.waiters).remove(&id);
        match result {
            Ok(Ok(reply)) => Ok(reply.outcome),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Indefinite::Timeout(timeout)),
        }
    }

    /// True once the connection is gone; make a new client.
    pub fn is_closed(&self) -> bool {
        lock(&self.closed).is_some()
    }

    fn lost(&self, why: String) -> Indefinite {
        Indefinite::Disconnected {
            addr: self.addr.clone(),
            why,
        }
    }
}

/// Reads replies until the connection ends; returns why it ended.
async fn read_replies(
    mut reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    waiters: &Waiters,
) -> String {
    let mut line = Vec::new();
    loop {
        match read_frame(&mut reader, &mut line).await {
            Ok(true) => {}
            Ok(false) => return "closed by the node".into(),
            Err(e) => return e.to_string(),
        }
        match serde_json::from_slice::<Reply>(&line) {
            Ok(reply) => {
                if let Some(tx) = lock(waiters).remove(&reply.id) {
                    let _ = tx.send(reply);
                }
            }
            Err(e) => return format!("malformed reply: {e}"),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave them inconsistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A client that follows `not-leader` hints: it reconnects to the hinted
/// leader and resends, which is safe because `not-leader` is definite.
pub struct LeaderClient {
    addrs: Vec<String>,
    current: Option<Client>,
    next_addr: usize,
    pub connect_timeout: Duration,
    /// How many hints one call follows before giving up with the last reply.
    pub max_redirects: usize,
}

impl LeaderClient {
    /// `addrs`: every node of the cluster; the first is tried first.
    pub fn new(addrs: Vec<String>) -> LeaderClient {
        LeaderClient {
            addrs,
            current: None,
            next_addr: 0,
            connect_timeout: Duration::from_secs(1),
            max_redirects: 3,
        }
    }

    /// Calls `op`, following leader hints. Returns the node that answered.
    pub async fn call(
        &mut self,
        op: Operation,
        timeout: Duration,
    ) -> (Option<String>, Result<Outcome, Indefinite>) {
        let mut redirects = 0;
        loop {
            let client = match self.client().await {
                Ok(c) => c,
                Err(e) => return (None, Err(e)),
            };
            let addr = client.addr().to_string();
            let result = client.call(op.clone(), timeout).await;
            match &result {
                Ok(Outcome::Fail {
                    error: FailCode::NotLeader,
                    leader,
                }) if redirects < self.max_redirects => {
                    redirects += 1;
                    self.current = None;
                    match leader {
                        Some(hint) => self
                            .addrs
                            .iter()
                            .position(|a| *a == hint.addr)
                            .map(|i| self.next_addr = i),
                        None => {
                            // No leader known yet (an election): wait a little, then try the next node.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            None
                        }
                    };
                }
                Err(_) => {
                    self.current = None;
                    return (Some(addr), result);
                }
                _ => return (Some(addr), result),
            }
        }
    }

    async fn client(&mut self) -> Result<&Client, Indefinite> {
        if self.current.as_ref().is_some_and(Client::is_closed) {
            self.current = None;
        }
        if self.current.is_none() {
            let addr = self.addrs[self.next_addr % self.addrs.len()].clone();
            self.next_addr = (self.next_addr + 1) % self.addrs.len();
            self.current = Some(Client::connect(&addr, self.connect_timeout).await?);
        }
        Ok(self.current.as_ref().expect("set above"))
    }
}

/// How a call ended, for the history: a timeout or a lost connection may
/// or may not have happened (`info`), a `fail` reply certainly did not.
pub fn ended(result: Result<Outcome, Indefinite>) -> Ended {
    match result {
        Ok(Outcome::Ok { value }) => Ended::Ok(value),
        Ok(Outcome::Fail { error, .. }) => Ended::Fail(error.as_str().to_string()),
        Ok(Outcome::Info { error }) => Ended::Info(error),
        Err(e) => Ended::Info(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpType;
    use serde_json::Value;
    use serde_json::json;

    #[test]
    fn completions_keep_the_invocation_value_unless_ok() {
        let inv = json!([1, null]);
        let ok = Ok(Outcome::Ok {
            value: json!([1, 5]),
        });
        let completion =
            |inv: &Value, r: &Result<Outcome, Indefinite>| ended(r.clone()).into_parts(inv);
        assert_eq!(completion(&inv, &ok), (OpType::Ok, json!([1, 5]), None));
        let fail = Ok(Outcome::Fail {
            error: FailCode::CasMismatch,
            leader: None,
        });
        assert_eq!(
            completion(&inv, &fail),
            (OpType::Fail, inv.clone(), Some(json!("cas-mismatch")))
        );
        let lost = Err(Indefinite::Timeout(Duration::from_millis(5)));
        assert_eq!(completion(&inv, &lost).0, OpType::Info);
    }
}
