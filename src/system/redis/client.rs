//! The workers' Redis client, as a Sentinel-aware application uses Redis:
//! ask Sentinel (`SENTINEL get-master-addr-by-name`) who the primary is,
//! check with `ROLE` that it says so, and send everything there. It asks
//! again after a call goes wrong, and every second (as Sentinel clients
//! that subscribe to `+switch-master` learn of a failover): a worker
//! follows its home host's Sentinel, so during a partition workers whose
//! Sentinels disagree write to different primaries, as applications would.
//!
//! Register: `GET`, `SET`, and compare-and-set as a Lua script. Lock: the
//! standard single-instance lock, `SET key token NX PX lease` to acquire and
//! a compare-and-delete script on the token to release; the client keeps its
//! token per lock. No `WAIT`: the lock as users use it.
//!
//! What is definite: a command that never left (no primary known, no
//! connection) did not happen, nor did one refused by an error that Redis
//! returns before executing anything (`READONLY` on a replica, `LOADING`,
//! ...; [`DEFINITE_ERRORS`]). A timeout, a lost connection or any other
//! error may have been applied: `info`.

use super::resp::{Conn, Reply};
use crate::history::Ended;
use crate::system::{self, BoxFuture, Endpoint};
use crate::workload::{Operation, Workload};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The name Sentinel monitors the primary under.
pub const MASTER_NAME: &str = "faultline";

/// Error prefixes Redis answers before executing the command: it certainly
/// did not happen. `READONLY`: a replica; `LOADING`: still reading its data;
/// `MASTERDOWN`: a replica cut off from its primary; `BUSY`: a script runs;
/// `NOREPLICAS`: too few replicas for `min-replicas-to-write`; `OOM`,
/// `MISCONF`: writes refused for memory or a failing snapshot.
const DEFINITE_ERRORS: &[&str] = &[
    "READONLY",
    "LOADING",
    "MASTERDOWN",
    "BUSY",
    "NOREPLICAS",
    "OOM",
    "MISCONF",
];

/// How often a client asks Sentinel whether the primary it uses is still
/// the one Sentinel names.
const RECHECK: Duration = Duration::from_secs(1);

/// Compare-and-set: 1 when the register held `ARGV[1]` and now holds `ARGV[2]`.
const CAS: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                   redis.call('SET', KEYS[1], ARGV[2]) return 1 else return 0 end";
/// Release: deletes the lock only when it still holds this client's token.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                       return redis.call('DEL', KEYS[1]) else return 0 end";

/// Clients of one run: every host's Sentinel, and the lease of the lock workload.
pub struct Clients {
    shared: Arc<Shared>,
}

struct Shared {
    /// The Redis servers, in host order (what history ops name).
    nodes: Vec<Endpoint>,
    /// Each host's Sentinel, in the same order.
    sentinels: Vec<String>,
    connect_timeout: Duration,
    /// `PX` of an acquire, in milliseconds.
    lease_ms: u64,
}

impl Clients {
    pub fn new(
        nodes: Vec<Endpoint>,
        sentinel_port_offset: u16,
        workload: Option<&Workload>,
        connect_timeout: Duration,
    ) -> Clients {
        debug_assert!(!nodes.is_empty(), "a test has at least one node");
        let sentinels = nodes
            .iter()
            .map(|e| sentinel_addr(&e.addr, sentinel_port_offset))
            .collect();
        let lease_ms = match workload {
            Some(Workload::Lock(l)) => l.lease.0.as_millis() as u64,
            _ => 0,
        };
        Clients {
            shared: Arc::new(Shared {
                nodes,
                sentinels,
                connect_timeout,
                lease_ms,
            }),
        }
    }
}

/// The Sentinel beside a server at `addr` (HOST:PORT): the same host,
/// `offset` ports up. An unparsable address is kept as it is (its
/// connection attempt then fails, definitely).
fn sentinel_addr(addr: &str, offset: u16) -> String {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(mut a) => {
            a.set_port(a.port().saturating_add(offset));
            a.to_string()
        }
        Err(_) => addr.to_string(),
    }
}

impl system::Clients for Clients {
    fn nodes(&self) -> usize {
        self.shared.nodes.len()
    }

    fn open(&self, home: usize) -> Box<dyn system::Client> {
        Box::new(Client {
            home: home % self.shared.nodes.len(),
            shared: self.shared.clone(),
            primary: None,
            asked: Instant::now(),
            tokens: HashMap::new(),
            id: rand::random::<u32>(),
            acquires: 0,
        })
    }
}

/// One worker's client: its own connection to the primary it was told of.
pub struct Client {
    /// Whose Sentinel it asks first.
    home: usize,
    shared: Arc<Shared>,
    /// The primary's node name and the connection to it.
    primary: Option<(String, Conn)>,
    /// When Sentinel last named the primary in use.
    asked: Instant,
    /// The token of each lock this client may hold (acquired, or an acquire
    /// that ended `info`); forgotten once a release says it is not held.
    tokens: HashMap<i64, String>,
    /// Makes tokens unique across clients (a token only needs to differ
    /// from every other holder's, not to be secret).
    id: u32,
    acquires: u64,
}

/// How a call ended, before it becomes history.
enum Done {
    Ok(Value),
    Fail(String),
    Info(String),
}

impl system::Client for Client {
    fn invoke<'a>(
        &'a mut self,
        op: &'a Operation,
        timeout: Duration,
    ) -> BoxFuture<'a, (String, Ended)> {
        Box::pin(async move {
            let (node, done) = self.call(op, timeout).await;
            let ended = match done {
                Done::Ok(v) => Ended::Ok(v),
                Done::Fail(e) => Ended::Fail(e),
                Done::Info(e) => Ended::Info(e),
            };
            (node, ended)
        })
    }

    /// After an `info`: the connection's state is unknown and the primary
    /// may have moved: ask Sentinel again next time.
    fn reset(&mut self) {
        self.primary = None;
    }
}

impl Client {
    async fn call(&mut self, op: &Operation, timeout: Duration) -> (String, Done) {
        let deadline = Instant::now() + timeout;
        // Lock calls decided here, without asking Redis: definite.
        let token = match op {
            Operation::Acquire { key } if self.tokens.contains_key(key) => {
                return (self.home_name(), Done::Fail("already-held".into()));
            }
            Operation::Release { key } => match self.tokens.get(key) {
                Some(t) => Some(t.clone()),
                None => return (self.home_name(), Done::Fail("not-held".into())),
            },
            Operation::Acquire { .. } => {
                self.acquires += 1;
                Some(format!("{:08x}-{}", self.id, self.acquires))
            }
            _ => None,
        };
        if self.primary.is_some() && self.asked.elapsed() >= RECHECK {
            self.recheck(deadline).await;
        }
        if self.primary.is_none()
            && let Err(e) = self.find_primary(deadline).await
        {
            return (self.home_name(), Done::Fail(e));
        }
        let Some((node, conn)) = self.primary.as_mut() else {
            return (self.home_name(), Done::Fail("no primary".into()));
        };
        let node = node.clone();
        let (k, lease) = (key_of(op), self.shared.lease_ms.to_string());
        let args: Vec<Vec<u8>> = match op {
            Operation::Read { key } => cmd(&["GET", &register(*key)]),
            Operation::Write { key, value } => cmd(&["SET", &register(*key), &value.to_string()]),
            Operation::Cas { key, from, to } => cmd(&[
                "EVAL",
                CAS,
                "1",
                &register(*key),
                &from.to_string(),
                &to.to_string(),
            ]),
            Operation::Acquire { key } => cmd(&[
                "SET",
                &lock(*key),
                token.as_deref().unwrap_or_default(),
                "NX",
                "PX",
                &lease,
            ]),
            Operation::Release { key } => cmd(&[
                "EVAL",
                RELEASE,
                "1",
                &lock(*key),
                token.as_deref().unwrap_or_default(),
            ]),
            other => {
                return (
                    node,
                    Done::Fail(format!("redis does not run {:?} operations", other.f())),
                );
            }
        };
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let left = deadline.saturating_duration_since(Instant::now());
        let done = match conn.call(&refs, left).await {
            Err(e) => Done::Info(e),
            Ok(Reply::Error(e)) => {
                // The server may have changed roles: ask Sentinel again.
                self.primary = None;
                let code = e.split_whitespace().next().unwrap_or_default();
                if DEFINITE_ERRORS.contains(&code) {
                    Done::Fail(clip(&e))
                } else {
                    Done::Info(clip(&e))
                }
            }
            Ok(reply) => self.outcome(op, k, reply),
        };
        if let (Operation::Acquire { key }, Done::Ok(_) | Done::Info(_), Some(t)) =
            (op, &done, token)
        {
            // Held, or perhaps held: a release will tell.
            self.tokens.insert(*key, t);
        }
        if let Done::Info(_) = done {
            self.primary = None;
        }
        (node, done)
    }

    /// What a non-error reply means for `op`.
    fn outcome(&mut self, op: &Operation, key: i64, reply: Reply) -> Done {
        match (op, &reply) {
            (Operation::Read { .. }, Reply::Bulk(None)) => Done::Ok(json!([key, null])),
            (Operation::Read { .. }, Reply::Bulk(Some(b))) => {
                match std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                {
                    Some(v) => Done::Ok(json!([key, v])),
                    None => Done::Info(format!("read a value that is no integer: {reply:?}")),
                }
            }
            (Operation::Write { .. }, Reply::Simple(s)) if s == "OK" => {
                Done::Ok(op.history_value())
            }
            (Operation::Cas { .. }, Reply::Int(1)) => Done::Ok(op.history_value()),
            (Operation::Cas { .. }, Reply::Int(0)) => Done::Fail("cas-mismatch".into()),
            (Operation::Acquire { .. }, Reply::Simple(s)) if s == "OK" => {
                Done::Ok(op.history_value())
            }
            (Operation::Acquire { .. }, Reply::Bulk(None)) => Done::Fail("held-by-another".into()),
            (Operation::Release { .. }, Reply::Int(1)) => {
                self.tokens.remove(&key);
                Done::Ok(op.history_value())
            }
            (Operation::Release { .. }, Reply::Int(0)) => {
                // Expired or taken by another: this client does not hold it.
                self.tokens.remove(&key);
                Done::Fail("not-held".into())
            }
            _ => Done::Info(format!("unexpected reply {reply:?}")),
        }
    }

    /// Asks the Sentinels, home first, who the primary is (the first
    /// that answers decides); connects to it and checks with `ROLE` that it
    /// is one. Nothing of an operation has been sent yet, so every failure
    /// here is definite.
    async fn find_primary(&mut self, deadline: Instant) -> Result<(), String> {
        let (node, addr) = self.named(deadline).await?;
        let step = || {
            deadline
                .saturating_duration_since(Instant::now())
                .min(self.shared.connect_timeout)
        };
        let mut conn = Conn::connect(&addr, step()).await?;
        let role = conn
            .call(&[b"ROLE"], step())
            .await
            .map_err(|e| format!("ROLE on {node}: {e}"))?;
        match role {
            Reply::Array(Some(items))
                if items.first().and_then(Reply::text).as_deref() == Some("master") =>
            {
                self.primary = Some((node, conn));
                self.asked = Instant::now();
                Ok(())
            }
            // Sentinel's view is behind its server (a failover under way).
            other => Err(format!(
                "{node}, named primary by sentinel, says ROLE {other:?}"
            )),
        }
    }

    /// The node and HOST:PORT of the primary that the first Sentinel to
    /// answer names, home first.
    async fn named(&self, deadline: Instant) -> Result<(String, String), String> {
        let n = self.shared.sentinels.len();
        let mut why = Vec::new();
        for i in 0..n {
            let s = (self.home + i) % n;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                why.push("out of time".into());
                break;
            }
            match ask_sentinel(
                &self.shared.sentinels[s],
                left.min(self.shared.connect_timeout),
            )
            .await
            {
                Ok(addr) => match self.node_at(&addr) {
                    Some(node) => return Ok((node, addr)),
                    None => why.push(format!(
                        "sentinel names {addr}, which is no node of this cluster"
                    )),
                },
                Err(e) => why.push(e),
            }
        }
        Err(format!("no primary known: {}", why.join("; ")))
    }

    /// Asks Sentinel again, as a client subscribed to its `+switch-master`
    /// would hear of a failover: when it names another primary, the
    /// connection is dropped and the next call goes there. No answer keeps
    /// the primary in use.
    async fn recheck(&mut self, deadline: Instant) {
        let budget = deadline.saturating_duration_since(Instant::now()) / 2;
        let asked = self.named(Instant::now() + budget).await;
        if let (Ok((named, _)), Some((node, _))) = (&asked, &self.primary)
            && named != node
        {
            self.primary = None;
        }
        self.asked = Instant::now();
    }

    /// The node whose server listens at `addr`.
    fn node_at(&self, addr: &str) -> Option<String> {
        self.shared
            .nodes
            .iter()
            .find(|e| e.addr == addr)
            .map(|e| e.name.clone())
    }

    fn home_name(&self) -> String {
        self.shared.nodes[self.home].name.clone()
    }
}

/// HOST:PORT of the primary that the Sentinel at `addr` names.
async fn ask_sentinel(addr: &str, timeout: Duration) -> Result<String, String> {
    let mut conn = Conn::connect(addr, timeout).await?;
    let reply = conn
        .call(
            &[
                b"SENTINEL",
                b"get-master-addr-by-name",
                MASTER_NAME.as_bytes(),
            ],
            timeout,
        )
        .await
        .map_err(|e| format!("sentinel {addr}: {e}"))?;
    match reply.texts().as_deref() {
        Some([ip, port]) => Ok(format!("{ip}:{port}")),
        _ => Err(format!("sentinel {addr} names no primary: {reply:?}")),
    }
}

fn key_of(op: &Operation) -> i64 {
    match op {
        Operation::Read { key }
        | Operation::Write { key, .. }
        | Operation::Cas { key, .. }
        | Operation::Acquire { key }
        | Operation::Release { key } => *key,
        _ => 0,
    }
}

/// A register's Redis key.
fn register(key: i64) -> String {
    format!("register:{key}")
}

/// A lock's Redis key.
fn lock(key: i64) -> String {
    format!("lock:{key}")
}

fn cmd(args: &[&str]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.as_bytes().to_vec()).collect()
}

/// A server's error message, as the history keeps it.
fn clip(e: &str) -> String {
    crate::history::text::excerpt(e).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinels_listen_beside_their_servers() {
        assert_eq!(sentinel_addr("10.1.2.3:7000", 20000), "10.1.2.3:27000");
        assert_eq!(sentinel_addr("nonsense", 20000), "nonsense");
    }
}
