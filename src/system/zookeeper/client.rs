//! The workers' ZooKeeper client: one session per worker, through the
//! worker's own server only (its connect string names no other), as etcd's
//! client talks to its own member. A worker cut off with its server cannot
//! move its session elsewhere: a partition longer than the session timeout
//! expires it.
//!
//! - `register`: key `k` is the znode `/r-k` holding the value in decimal.
//!   A read is `getData`, after a `sync` of the path unless
//!   `sync_reads: false`; a write is `setData`, or `create` when the znode
//!   is absent; a cas reads, then `setData` conditional on the version read
//!   (`BadVersion`: `fail`).
//! - `set`: an element `v` is the znode `/set/v`; a read lists `/set`'s
//!   children (after a `sync`, as above).
//! - `lock`: the standard recipe, as the crate's Curator-compatible
//!   `Client::lock` does it: an ephemeral sequential znode under
//!   `/locks/k`, held once it is the lowest (each waiter watches the one
//!   before it); release deletes it. The session's timeout is the
//!   workload's `lease`. When the session expires, ZooKeeper deletes the
//!   znode and the lock is lost, whether or not its holder knows yet; the
//!   holder learns it on its next call, and its release of that lock is
//!   `info` (the lock was let go at some moment it cannot tell).
//!
//! How a call ends: an answer is `ok`; an error that ZooKeeper answered
//! (no node, bad version, ...) is `fail`; a call made without a session
//! (none could be made in time) was never sent, `fail`; a timeout, a lost
//! connection or an expiry after the request was sent is `info` for
//! anything that writes and `fail` for a read (it changed nothing).

use crate::history::Ended;
use crate::nodes::wire::{Key, Operation, Output, history_value};
use crate::system::{self, BoxFuture, Endpoint};
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;
use zookeeper_client as zk;

/// What every client of a run shares.
#[derive(Debug, Clone)]
pub struct Settings {
    pub connect_timeout: Duration,
    /// The session timeout asked of ZooKeeper.
    pub session_timeout: Duration,
    /// A `sync` of the path before every read.
    pub sync_reads: bool,
}

/// Clients of one run.
pub struct Clients {
    pub endpoints: Vec<Endpoint>,
    pub settings: Settings,
}

impl system::Clients for Clients {
    fn nodes(&self) -> usize {
        self.endpoints.len()
    }

    fn open(&self, home: usize) -> Box<dyn system::Client> {
        debug_assert!(!self.endpoints.is_empty(), "a test has at least one node");
        Box::new(ZkClient {
            node: self.endpoints[home % self.endpoints.len()].clone(),
            settings: self.settings.clone(),
            session: None,
            locks: HashMap::new(),
        })
    }
}

/// How a call to ZooKeeper went wrong.
#[derive(Debug)]
enum CallError {
    /// No session could be had: nothing was sent.
    NotSent(String),
    /// ZooKeeper's error, or the crate's for a request sent.
    Zk(zk::Error),
    /// No answer by the deadline.
    TimedOut,
    /// An answer that does not read as the workload's.
    Garbled(String),
}

impl From<zk::Error> for CallError {
    fn from(e: zk::Error) -> Self {
        CallError::Zk(e)
    }
}

/// Whether ZooKeeper answered `e` having changed nothing (the server
/// refused the request); otherwise the request may have been applied.
fn definite(e: &zk::Error) -> bool {
    use zk::Error as E;
    matches!(
        e,
        E::NoNode
            | E::NoAuth
            | E::BadVersion
            | E::NoChildrenForEphemerals
            | E::NodeExists
            | E::NotEmpty
            | E::InvalidAcl
            | E::AuthFailed
            | E::SessionMoved
            | E::NotReadOnly
            | E::NoWatcher
            | E::QuotaExceeded
            | E::Throttled
            | E::MarshallingError
            | E::Unimplemented
            | E::ReconfigDisabled
            | E::BadArguments(_)
    )
}

impl CallError {
    /// How an operation that may write ends with this error.
    fn write_ended(self) -> Ended {
        match self {
            CallError::NotSent(e) => Ended::Fail(format!("not sent: {e}")),
            CallError::Zk(e) if definite(&e) => Ended::Fail(e.to_string()),
            CallError::Zk(e) => Ended::Info(e.to_string()),
            CallError::TimedOut => Ended::Info("timed out".into()),
            CallError::Garbled(e) => Ended::Info(format!("unreadable answer: {e}")),
        }
    }

    /// How an operation that changes nothing ends with it.
    fn read_ended(self) -> Ended {
        match self {
            CallError::Garbled(e) => Ended::Info(format!("unreadable answer: {e}")),
            CallError::NotSent(e) => Ended::Fail(format!("not sent: {e}")),
            CallError::Zk(e) => Ended::Fail(e.to_string()),
            CallError::TimedOut => Ended::Fail("timed out".into()),
        }
    }
}

/// `call` answered by `deadline`.
async fn within<T>(
    deadline: Instant,
    call: impl Future<Output = Result<T, zk::Error>>,
) -> Result<T, CallError> {
    match tokio::time::timeout_at(deadline, call).await {
        Ok(r) => r.map_err(CallError::Zk),
        Err(_) => Err(CallError::TimedOut),
    }
}

/// A lock this client holds: the recipe's znode (deleted in the background
/// if this is dropped while its session lives) and the session that holds
/// it.
struct Held {
    lock: zk::OwnedLockClient,
    session: zk::SessionId,
}

/// One worker's client, with its session to its own server.
pub struct ZkClient {
    node: Endpoint,
    settings: Settings,
    session: Option<zk::Client>,
    locks: HashMap<Key, Held>,
}

impl system::Client for ZkClient {
    fn invoke<'a>(
        &'a mut self,
        op: &'a Operation,
        timeout: Duration,
    ) -> BoxFuture<'a, (String, Ended)> {
        Box::pin(async move {
            let ended = self.call(op, Instant::now() + timeout).await;
            (self.node.name.clone(), ended)
        })
    }

    /// A ZooKeeper session outlives a lost connection (the crate
    /// reconnects within it): it is kept, and so are the locks it holds.
    /// One that has expired is replaced on the next call.
    fn reset(&mut self) {}
}

/// The znode of register `k`.
fn register_path(k: Key) -> String {
    format!("/r-{k}")
}
const SET_DIR: &str = "/set";
fn lock_dir(k: Key) -> String {
    format!("/locks/{k}")
}

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

/// Whether a session in `state` can no longer be used.
fn terminal(state: zk::SessionState) -> bool {
    matches!(
        state,
        zk::SessionState::Expired | zk::SessionState::Closed | zk::SessionState::AuthFailed
    )
}

impl ZkClient {
    /// The worker's session, made now if it has none or its last one ended
    /// (expired, closed): within the connect timeout and the deadline.
    async fn session(&mut self, deadline: Instant) -> Result<zk::Client, CallError> {
        if let Some(s) = &self.session
            && !terminal(s.state())
        {
            return Ok(s.clone());
        }
        self.session = None;
        let until = deadline.min(Instant::now() + self.settings.connect_timeout);
        let connect = zk::Client::connector()
            .with_session_timeout(self.settings.session_timeout)
            .connect(&self.node.addr);
        let client = match tokio::time::timeout_at(until, connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(CallError::NotSent(format!("connect: {e}"))),
            Err(_) => return Err(CallError::NotSent("connect timed out".into())),
        };
        self.session = Some(client.clone());
        Ok(client)
    }

    async fn call(&mut self, op: &Operation, deadline: Instant) -> Ended {
        let session = match self.session(deadline).await {
            Ok(s) => s,
            Err(e) => return e.write_ended(),
        };
        let sync = self.settings.sync_reads;
        match op {
            Operation::Read { key } => match read(&session, &register_path(*key), sync, deadline)
                .await
                .and_then(|r| parse_value(r.map(|(v, _)| v)))
            {
                Ok(v) => Ended::Ok(history_value(op, &Output::Read(v))),
                Err(e) => e.read_ended(),
            },
            Operation::Write { key, value } => {
                match write(&session, &register_path(*key), *value, deadline).await {
                    Ok(()) => Ended::Ok(op.history_value()),
                    Err(e) => e.write_ended(),
                }
            }
            Operation::Cas { key, from, to } => {
                let path = register_path(*key);
                // The version read: what the conditional write holds to.
                let (current, version) = match read(&session, &path, false, deadline).await {
                    Ok(Some((data, version))) => match parse_value(Some(data)) {
                        Ok(v) => (v, version),
                        Err(e) => return e.read_ended(),
                    },
                    Ok(None) => (None, 0),
                    Err(e) => return e.read_ended(),
                };
                if current != Some(*from) {
                    return Ended::Fail("cas-mismatch".into());
                }
                let set = session.set_data(&path, to.to_string().as_bytes(), Some(version));
                match within(deadline, set).await {
                    Ok(_) => Ended::Ok(op.history_value()),
                    Err(CallError::Zk(zk::Error::BadVersion)) => {
                        Ended::Fail("cas-mismatch: the version changed since the read".into())
                    }
                    Err(e) => e.write_ended(),
                }
            }
            Operation::SetAdd { value } => match add(&session, *value, deadline).await {
                Ok(()) => Ended::Ok(op.history_value()),
                Err(e) => e.write_ended(),
            },
            Operation::SetRead => match elements(&session, sync, deadline).await {
                Ok(set) => Ended::Ok(history_value(op, &Output::Set(set))),
                Err(e) => e.read_ended(),
            },
            Operation::Acquire { key } => self.acquire(&session, op, *key, deadline).await,
            Operation::Release { key } => self.release(&session, op, *key, deadline).await,
            other => Ended::Fail(format!("the zookeeper client does not run {}", other.f())),
        }
    }

    /// Takes lock `key` through the recipe, waiting until granted or the
    /// deadline. Cancelled at the deadline, the recipe deletes its znode in
    /// the background: a timeout is `info` (it may have been granted, and
    /// let go since).
    async fn acquire(
        &mut self,
        session: &zk::Client,
        op: &Operation,
        key: Key,
        deadline: Instant,
    ) -> Ended {
        if let Some(held) = self.locks.get(&key) {
            if held.session == session.session_id() {
                return Ended::Fail("already-held".into());
            }
            // Its session expired: ZooKeeper let it go. Not an answer to
            // this call; the release of it says so.
            return Ended::Fail("already-held (lost with an expired session, not released)".into());
        }
        let dir = lock_dir(key);
        let prefix = match zk::LockPrefix::new_curator(&dir, "lock-") {
            Ok(p) => p,
            Err(e) => return Ended::Fail(e.to_string()),
        };
        let options = match zk::LockOptions::new(zk::Acls::anyone_all())
            .with_ancestor_options(persistent())
        {
            Ok(o) => o,
            Err(e) => return Ended::Fail(e.to_string()),
        };
        let lock = within(deadline, async {
            session
                .lock(prefix, b"", options)
                .await
                .map(|l| l.into_owned())
        })
        .await;
        match lock {
            Ok(lock) => {
                self.locks.insert(
                    key,
                    Held {
                        lock,
                        session: session.session_id(),
                    },
                );
                Ended::Ok(op.history_value())
            }
            Err(e) => e.write_ended(),
        }
    }

    /// Deletes the lock's znode. A lock whose session has expired is gone
    /// already: `info`, as is a delete that got no answer (its znode is
    /// then deleted in the background, or with its session).
    async fn release(
        &mut self,
        session: &zk::Client,
        op: &Operation,
        key: Key,
        deadline: Instant,
    ) -> Ended {
        let Some(held) = self.locks.remove(&key) else {
            return Ended::Fail("not-held".into());
        };
        if held.session != session.session_id() {
            return Ended::Info(format!("lock lost: its session {} expired", held.session));
        }
        let delete = held.lock.client().delete(held.lock.lock_path(), None);
        match within(deadline, delete).await {
            Ok(()) => Ended::Ok(op.history_value()),
            Err(CallError::Zk(zk::Error::NoNode | zk::Error::SessionExpired)) => {
                Ended::Info(format!("lock lost: its session {} expired", held.session))
            }
            Err(CallError::Zk(e)) if definite(&e) => {
                // Refused, so still held: keep it.
                let ended = Ended::Fail(e.to_string());
                self.locks.insert(key, held);
                ended
            }
            Err(e) => e.write_ended(),
        }
    }
}

/// The data and version of `path` (`None`: no such znode), after a `sync`
/// of it when `sync`.
async fn read(
    session: &zk::Client,
    path: &str,
    sync: bool,
    deadline: Instant,
) -> Result<Option<(Vec<u8>, i32)>, CallError> {
    if sync {
        within(deadline, session.sync(path)).await?;
    }
    match within(deadline, session.get_data(path)).await {
        Ok((data, stat)) => Ok(Some((data, stat.version))),
        Err(CallError::Zk(zk::Error::NoNode)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A register's value from its znode's data.
fn parse_value(data: Option<Vec<u8>>) -> Result<Option<i64>, CallError> {
    let Some(data) = data else { return Ok(None) };
    let text = String::from_utf8_lossy(&data);
    text.trim()
        .parse()
        .map(Some)
        .map_err(|_| CallError::Garbled(format!("register value {text:?}")))
}

/// Sets `path` to `value`, creating it when absent. Each step that ZooKeeper
/// refused changed nothing, so the next is tried: set, create, set.
async fn write(
    session: &zk::Client,
    path: &str,
    value: i64,
    deadline: Instant,
) -> Result<(), CallError> {
    let data = value.to_string();
    match within(deadline, session.set_data(path, data.as_bytes(), None)).await {
        Err(CallError::Zk(zk::Error::NoNode)) => {}
        other => return other.map(|_| ()),
    }
    let options = persistent();
    match within(deadline, session.create(path, data.as_bytes(), &options)).await {
        // Created by another client meanwhile: set it.
        Err(CallError::Zk(zk::Error::NodeExists)) => {}
        other => return other.map(|_| ()),
    }
    within(deadline, session.set_data(path, data.as_bytes(), None))
        .await
        .map(|_| ())
}

/// Adds `value` to the set: its znode under [`SET_DIR`], made the first
/// time. An element already there was added (set semantics).
async fn add(session: &zk::Client, value: i64, deadline: Instant) -> Result<(), CallError> {
    let path = format!("{SET_DIR}/{value}");
    let options = persistent();
    for _ in 0..2 {
        match within(deadline, session.create(&path, b"", &options)).await {
            Ok(_) | Err(CallError::Zk(zk::Error::NodeExists)) => return Ok(()),
            Err(CallError::Zk(zk::Error::NoNode)) => {
                match within(deadline, session.create(SET_DIR, b"", &options)).await {
                    Ok(_) | Err(CallError::Zk(zk::Error::NodeExists)) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(CallError::Zk(zk::Error::NoNode))
}

/// The set's elements, sorted (none before the first add).
async fn elements(
    session: &zk::Client,
    sync: bool,
    deadline: Instant,
) -> Result<Vec<i64>, CallError> {
    if sync {
        within(deadline, session.sync(SET_DIR)).await?;
    }
    let children = match within(deadline, session.list_children(SET_DIR)).await {
        Ok(c) => c,
        Err(CallError::Zk(zk::Error::NoNode)) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut set = children
        .iter()
        .map(|c| {
            c.parse()
                .map_err(|_| CallError::Garbled(format!("set element {c:?}")))
        })
        .collect::<Result<Vec<i64>, CallError>>()?;
    set.sort_unstable();
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_fail_and_a_lost_answer_is_info_for_a_write_and_fail_for_a_read() {
        let refused = || CallError::Zk(zk::Error::BadVersion);
        assert!(matches!(refused().write_ended(), Ended::Fail(_)));
        let lost = || CallError::Zk(zk::Error::ConnectionLoss);
        assert!(matches!(lost().write_ended(), Ended::Info(_)));
        assert!(matches!(lost().read_ended(), Ended::Fail(_)));
        let expired = CallError::Zk(zk::Error::SessionExpired);
        assert!(matches!(expired.write_ended(), Ended::Info(_)));
        assert!(matches!(CallError::TimedOut.write_ended(), Ended::Info(_)));
        assert!(matches!(CallError::TimedOut.read_ended(), Ended::Fail(_)));
        let not_sent = CallError::NotSent("connect timed out".into());
        assert!(matches!(not_sent.write_ended(), Ended::Fail(_)));
        assert!(matches!(
            CallError::Garbled("x".into()).read_ended(),
            Ended::Info(_)
        ));
    }

    #[test]
    fn register_values_are_decimal_text_and_anything_else_is_garbled() {
        assert_eq!(parse_value(Some(b"42".to_vec())).unwrap(), Some(42));
        assert_eq!(parse_value(None).unwrap(), None);
        assert!(matches!(
            parse_value(Some(b"forty".to_vec())),
            Err(CallError::Garbled(_))
        ));
    }
}
