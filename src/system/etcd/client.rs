//! The workers' etcd client: each operation as v3 requests over the JSON
//! gateway of the worker's own member (any member serves any request; etcd
//! forwards to its leader), one HTTP/1.1 connection per worker.
//!
//! - `register`: get is a range, put a put, cas a txn comparing the value.
//! - `set`: an element is a key `s/<v>`; a read ranges over the prefix.
//! - `list-append` and `rw-register` (as Jepsen's etcd append test): read
//!   every key of the transaction (one txn of ranges, with their mod
//!   revisions), apply the micro-ops locally, then commit the writes in a
//!   txn guarded by every key's mod revision; a failed guard is `fail`. A
//!   transaction with no writes is its read.
//! - `lock`: acquire grants a lease of the workload's `lease`, keeps it
//!   alive from the client while held and locks with it (blocking until
//!   granted: a timeout is `info`); release unlocks, then stops the
//!   keepalive and revokes the lease. The client remembers the locks it
//!   holds: acquiring one it holds or releasing one it does not fails at
//!   once, without asking etcd. A holder whose member stops answering
//!   stops renewing its lease: the lease expires, another client gets the
//!   lock, and the holder, not knowing, still holds it until it releases
//!   (Jepsen's finding: a lease-based lock is no mutex).
//!
//! How a call ends: an answer is `ok`; a failed compare is `fail`; a call
//! that could not connect was never sent (`fail`); a timeout or a lost
//! connection is `info` for anything that writes, and `fail` for a read (it
//! changed nothing either way, so the worker keeps its process, as in
//! Jepsen); an error answer is `fail` only when etcd refused before
//! proposing ([`api::GatewayError::definite`]).

use super::api::{self, GatewayError};
use crate::history::Ended;
use crate::nodes::wire::{Cell, Key, MicroOp, Operation, Output, history_value};
use crate::system::{self, BoxFuture, Endpoint};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What every client of a run shares.
#[derive(Debug, Clone)]
pub struct Settings {
    pub connect_timeout: Duration,
    /// Reads served by the member asked, from its own state (etcd's
    /// serializable reads): possibly stale.
    pub serializable_reads: bool,
    /// The lock workload's lease, in whole seconds (etcd's TTL).
    pub lease_s: i64,
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
        let node = self.endpoints[home % self.endpoints.len()].clone();
        Box::new(EtcdClient {
            conn: Conn::new(node.addr.clone(), self.settings.connect_timeout),
            node,
            settings: self.settings.clone(),
            locks: HashMap::new(),
        })
    }
}

/// How a call to etcd went wrong.
#[derive(Debug)]
enum CallError {
    /// No connection could be made: nothing was sent.
    NotSent(String),
    /// Sent, and no answer came (a timeout, a lost connection).
    Lost(String),
    /// etcd answered with an error.
    Refused(GatewayError),
    /// An answer that does not read as etcd's.
    Garbled(String),
}

impl CallError {
    /// How an operation that may write ends with this error.
    fn write_ended(self) -> Ended {
        match self {
            CallError::NotSent(e) => Ended::Fail(format!("not sent: {e}")),
            CallError::Refused(e) if e.definite() => Ended::Fail(e.to_string()),
            CallError::Refused(e) => Ended::Info(e.to_string()),
            CallError::Lost(e) => Ended::Info(e),
            CallError::Garbled(e) => Ended::Info(format!("unreadable answer: {e}")),
        }
    }

    /// How an operation that changes nothing ends with it: whatever
    /// happened, nothing was written.
    fn read_ended(self) -> Ended {
        match self {
            CallError::Garbled(e) => Ended::Info(format!("unreadable answer: {e}")),
            CallError::NotSent(e) => Ended::Fail(format!("not sent: {e}")),
            CallError::Refused(e) => Ended::Fail(e.to_string()),
            CallError::Lost(e) => Ended::Fail(e),
        }
    }
}

/// One HTTP/1.1 connection to a member's gateway, made when needed and
/// dropped after a call that got no answer (a request may still be queued
/// on it).
struct Conn {
    addr: String,
    connect_timeout: Duration,
    send: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    fn new(addr: String, connect_timeout: Duration) -> Conn {
        Conn {
            addr,
            connect_timeout,
            send: None,
        }
    }

    async fn connect(&self, deadline: Instant) -> Result<SendRequest<Full<Bytes>>, String> {
        let until = deadline.min(Instant::now() + self.connect_timeout);
        let stream = tokio::time::timeout_at(until, tokio::net::TcpStream::connect(&self.addr))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let io = hyper_util::rt::TokioIo::new(stream);
        let (send, conn) =
            tokio::time::timeout_at(until, hyper::client::conn::http1::handshake(io))
                .await
                .map_err(|_| "handshake timed out".to_string())?
                .map_err(|e| format!("handshake: {e}"))?;
        // Ends when `send` is dropped or the member closes the connection.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }

    /// POSTs `body` to `path`, answering by `deadline`.
    async fn post(
        &mut self,
        path: &str,
        body: &Value,
        deadline: Instant,
    ) -> Result<Value, CallError> {
        if self.send.as_ref().is_none_or(|s| s.is_closed()) {
            self.send = Some(self.connect(deadline).await.map_err(CallError::NotSent)?);
        }
        let Some(send) = self.send.as_mut() else {
            unreachable!("connected above");
        };
        let request = hyper::Request::post(path)
            .header(hyper::header::HOST, &self.addr)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| CallError::NotSent(format!("request: {e}")))?;
        let exchange = async {
            send.ready().await.map_err(|e| e.to_string())?;
            let response = send
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let bytes = Limited::new(response.into_body(), api::MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, bytes))
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok((status, bytes))) => {
                api::parse_answer(status, &bytes).map_err(CallError::Refused)
            }
            Ok(Err(e)) => {
                self.send = None;
                Err(CallError::Lost(e))
            }
            Err(_) => {
                self.send = None;
                Err(CallError::Lost("timed out".into()))
            }
        }
    }
}

/// A lock this client holds: the key etcd made for it, its lease and the
/// task that keeps the lease alive (stopped when this is dropped).
struct Held {
    lock_key: String,
    lease: i64,
    keepalive: JoinHandle<()>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.keepalive.abort();
    }
}

/// One worker's client, talking to one member.
pub struct EtcdClient {
    node: Endpoint,
    settings: Settings,
    conn: Conn,
    locks: HashMap<Key, Held>,
}

impl system::Client for EtcdClient {
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

    /// After an `info`: a fresh connection. Locks still held stay held
    /// (their leases are kept alive): they are real, and the mutex model
    /// does not ask which process releases.
    fn reset(&mut self) {
        self.conn.send = None;
    }
}

/// etcd's key for register, list or set key `k` of each workload.
fn register_key(k: Key) -> String {
    format!("r/{k}")
}
fn txn_key(k: Key) -> String {
    format!("t/{k}")
}
const SET_PREFIX: &str = "s/";
fn lock_name(k: Key) -> String {
    format!("l/{k}")
}

impl EtcdClient {
    async fn call(&mut self, op: &Operation, deadline: Instant) -> Ended {
        let serializable = self.settings.serializable_reads;
        match op {
            Operation::Read { key } => {
                let answer = self
                    .conn
                    .post(
                        "/v3/kv/range",
                        &api::range(&register_key(*key), serializable),
                        deadline,
                    )
                    .await;
                match answer.and_then(|a| read_int(&a).map_err(CallError::Garbled)) {
                    Ok(v) => Ended::Ok(history_value(op, &Output::Read(v))),
                    Err(e) => e.read_ended(),
                }
            }
            Operation::Write { key, value } => {
                let body = api::put(&register_key(*key), &value.to_string());
                match self.conn.post("/v3/kv/put", &body, deadline).await {
                    Ok(_) => Ended::Ok(op.history_value()),
                    Err(e) => e.write_ended(),
                }
            }
            Operation::Cas { key, from, to } => {
                let k = register_key(*key);
                let body = api::txn(
                    vec![api::value_equals(&k, &from.to_string())],
                    vec![api::request_put(&k, &to.to_string())],
                );
                match self.conn.post("/v3/kv/txn", &body, deadline).await {
                    Ok(answer) if api::succeeded(&answer) => Ended::Ok(op.history_value()),
                    Ok(_) => Ended::Fail("cas-mismatch".into()),
                    Err(e) => e.write_ended(),
                }
            }
            Operation::SetAdd { value } => {
                let body = api::put(&format!("{SET_PREFIX}{value}"), "");
                match self.conn.post("/v3/kv/put", &body, deadline).await {
                    Ok(_) => Ended::Ok(op.history_value()),
                    Err(e) => e.write_ended(),
                }
            }
            Operation::SetRead => {
                let body = api::range_prefix(SET_PREFIX, serializable);
                let answer = self.conn.post("/v3/kv/range", &body, deadline).await;
                match answer.and_then(|a| set_elements(&a).map_err(CallError::Garbled)) {
                    Ok(elements) => Ended::Ok(history_value(op, &Output::Set(elements))),
                    Err(e) => e.read_ended(),
                }
            }
            Operation::Txn { ops } => self.txn(op, ops, deadline).await,
            Operation::Acquire { key } => self.acquire(op, *key, deadline).await,
            Operation::Release { key } => self.release(op, *key, deadline).await,
            other => Ended::Fail(format!("the etcd client does not run {}", other.f())),
        }
    }

    /// Reads the transaction's keys, then commits its writes guarded by
    /// their mod revisions.
    async fn txn(&mut self, op: &Operation, ops: &[MicroOp], deadline: Instant) -> Ended {
        let keys = txn_keys(ops);
        let reads: Vec<Value> = keys
            .iter()
            .map(|k| api::request_range(&txn_key(*k), self.settings.serializable_reads))
            .collect();
        let snapshot = match self
            .conn
            .post("/v3/kv/txn", &api::txn(vec![], reads), deadline)
            .await
        {
            Ok(answer) => match snapshot_of(&keys, &answer) {
                Ok(s) => s,
                Err(e) => return CallError::Garbled(e).read_ended(),
            },
            // Nothing was written yet.
            Err(e) => return e.read_ended(),
        };
        let plan = match plan_txn(ops, &snapshot) {
            Ok(p) => p,
            Err(e) => return Ended::Fail(e),
        };
        if plan.puts.is_empty() {
            return Ended::Ok(history_value(op, &Output::Txn(plan.done)));
        }
        let body = api::txn(plan.compares, plan.puts);
        match self.conn.post("/v3/kv/txn", &body, deadline).await {
            Ok(answer) if api::succeeded(&answer) => {
                Ended::Ok(history_value(op, &Output::Txn(plan.done)))
            }
            Ok(_) => Ended::Fail("conflict: a key changed since it was read".into()),
            Err(e) => e.write_ended(),
        }
    }

    async fn acquire(&mut self, op: &Operation, key: Key, deadline: Instant) -> Ended {
        if self.locks.contains_key(&key) {
            return Ended::Fail("already-held".into());
        }
        let ttl = self.settings.lease_s;
        let lease = match self
            .conn
            .post(
                "/v3/lease/grant",
                &json!({"TTL": ttl.to_string()}),
                deadline,
            )
            .await
        {
            Ok(answer) => match api::int(&answer, "ID") {
                Ok(id) if id != 0 => id,
                _ => return Ended::Fail(format!("no lease granted: {answer}")),
            },
            // No lock was asked for; a lease granted unseen expires alone.
            Err(e) => return e.read_ended(),
        };
        let keepalive = keep_alive(&self.node.addr, lease, ttl, self.settings.connect_timeout);
        let body = json!({"name": api::b64(&lock_name(key)), "lease": lease.to_string()});
        let answer = self.conn.post("/v3/lock/lock", &body, deadline).await;
        let lock_key = answer
            .as_ref()
            .ok()
            .and_then(|a| a.get("key"))
            .and_then(Value::as_str);
        match (&answer, lock_key) {
            (Ok(_), Some(k)) => {
                self.locks.insert(
                    key,
                    Held {
                        lock_key: k.to_string(),
                        lease,
                        keepalive,
                    },
                );
                Ended::Ok(op.history_value())
            }
            _ => {
                // Not held, or not known to be: stop renewing and revoke,
                // so a lock granted after the timeout is let go.
                keepalive.abort();
                revoke(&self.node.addr, lease, self.settings.connect_timeout);
                match answer {
                    Ok(a) => {
                        CallError::Garbled(format!("lock answer without a key: {a}")).write_ended()
                    }
                    Err(e) => e.write_ended(),
                }
            }
        }
    }

    /// Unlocks. After an answer, or none (`info`), the client lets the lock
    /// go: its keepalive stops and its lease is revoked, so an unlock that
    /// never arrived is undone within a TTL. After a definite refusal it
    /// still holds the lock (and keeps it alive): the history says so.
    async fn release(&mut self, op: &Operation, key: Key, deadline: Instant) -> Ended {
        let Some(held) = self.locks.get(&key) else {
            return Ended::Fail("not-held".into());
        };
        let body = json!({"key": &held.lock_key});
        let ended = match self.conn.post("/v3/lock/unlock", &body, deadline).await {
            Ok(_) => Ended::Ok(op.history_value()),
            Err(e) => e.write_ended(),
        };
        if !matches!(ended, Ended::Fail(_))
            && let Some(held) = self.locks.remove(&key)
        {
            revoke(&self.node.addr, held.lease, self.settings.connect_timeout);
        }
        ended
    }
}

/// Renews `lease` every third of its TTL on its own connection until
/// aborted, or until etcd says the lease is gone (it cannot come back).
fn keep_alive(addr: &str, lease: i64, ttl_s: i64, connect_timeout: Duration) -> JoinHandle<()> {
    let every = Duration::from_millis((ttl_s.max(1) as u64) * 1000 / 3);
    let mut conn = Conn::new(addr.to_string(), connect_timeout);
    tokio::spawn(async move {
        let body = json!({"ID": lease.to_string()});
        loop {
            tokio::time::sleep(every).await;
            let answer = conn
                .post("/v3/lease/keepalive", &body, Instant::now() + every)
                .await;
            if let Ok(a) = answer {
                let ttl = a.get("result").map(|r| api::int(r, "TTL"));
                if matches!(ttl, Some(Ok(t)) if t <= 0) {
                    tracing::debug!("lease {lease} expired");
                    return;
                }
            }
        }
    })
}

/// Revokes `lease` in the background (once, within a second): whatever
/// lock it holds is released.
fn revoke(addr: &str, lease: i64, connect_timeout: Duration) {
    let mut conn = Conn::new(addr.to_string(), connect_timeout);
    tokio::spawn(async move {
        let body = json!({"ID": lease.to_string()});
        let deadline = Instant::now() + Duration::from_secs(1);
        let _ = conn.post("/v3/lease/revoke", &body, deadline).await;
    });
}

/// A register's value from a range answer (`None`: no such key).
fn read_int(answer: &Value) -> Result<Option<i64>, String> {
    match api::kvs(answer)?.first() {
        None => Ok(None),
        Some(kv) => kv
            .value
            .parse()
            .map(Some)
            .map_err(|_| format!("register value {:?}", kv.value)),
    }
}

/// The set's elements from a prefix range, sorted.
fn set_elements(answer: &Value) -> Result<Vec<i64>, String> {
    let mut elements = api::kvs(answer)?
        .iter()
        .map(|kv| {
            kv.key
                .strip_prefix(SET_PREFIX)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("set key {:?}", kv.key))
        })
        .collect::<Result<Vec<i64>, String>>()?;
    elements.sort_unstable();
    Ok(elements)
}

/// The distinct keys of a transaction, in first-use order.
fn txn_keys(ops: &[MicroOp]) -> Vec<Key> {
    let mut keys = Vec::new();
    for m in ops {
        let (MicroOp::Append(k, _) | MicroOp::Read(k, _) | MicroOp::Write(k, _)) = m;
        if !keys.contains(k) {
            keys.push(*k);
        }
    }
    keys
}

/// What each key held when read: its cell and mod revision (0: absent).
type Snapshot = BTreeMap<Key, (Option<Cell>, i64)>;

/// The read txn's answer, one range per key of `keys`.
fn snapshot_of(keys: &[Key], answer: &Value) -> Result<Snapshot, String> {
    let ranges = api::txn_ranges(answer)?;
    if ranges.len() != keys.len() {
        return Err(format!("{} ranges for {} keys", ranges.len(), keys.len()));
    }
    keys.iter()
        .zip(ranges)
        .map(|(k, kvs)| match kvs.first() {
            None => Ok((*k, (None, 0))),
            Some(kv) => serde_json::from_str::<Cell>(&kv.value)
                .map(|c| (*k, (Some(c), kv.mod_revision)))
                .map_err(|e| format!("value of {:?}: {e}", kv.key)),
        })
        .collect()
}

/// A transaction applied to what was read: the micro-ops with their reads
/// filled in, the commit's guards (every key's mod revision as read) and
/// its puts (each written key's final cell).
#[derive(Debug, PartialEq)]
struct TxnPlan {
    done: Vec<MicroOp>,
    compares: Vec<Value>,
    puts: Vec<Value>,
}

fn plan_txn(ops: &[MicroOp], snapshot: &Snapshot) -> Result<TxnPlan, String> {
    let mut cells: BTreeMap<Key, Option<Cell>> =
        snapshot.iter().map(|(k, (c, _))| (*k, c.clone())).collect();
    let mut written: Vec<Key> = Vec::new();
    let mut done = Vec::with_capacity(ops.len());
    for m in ops {
        match m {
            MicroOp::Read(k, _) => done.push(MicroOp::Read(*k, cells.get(k).cloned().flatten())),
            MicroOp::Append(k, v) => {
                match cells.entry(*k).or_insert(None) {
                    Some(Cell::List(list)) => list.push(*v),
                    cell @ None => *cell = Some(Cell::List(vec![*v])),
                    Some(Cell::Int(_)) => return Err(format!("append to the integer at key {k}")),
                }
                written.push(*k);
                done.push(m.clone());
            }
            MicroOp::Write(k, v) => {
                cells.insert(*k, Some(Cell::Int(*v)));
                written.push(*k);
                done.push(m.clone());
            }
        }
    }
    written.sort_unstable();
    written.dedup();
    let compares = snapshot
        .iter()
        .map(|(k, (_, rev))| api::mod_revision_equals(&txn_key(*k), *rev))
        .collect();
    let puts = written
        .iter()
        .map(|k| {
            let cell = cells.get(k).cloned().flatten();
            let text = serde_json::to_string(&cell).unwrap_or_default();
            api::request_put(&txn_key(*k), &text)
        })
        .collect();
    Ok(TxnPlan {
        done,
        compares,
        puts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_append_txn_reads_then_puts_the_appended_lists_guarded_by_every_key() {
        let ops = vec![
            MicroOp::Read(1, None),
            MicroOp::Append(1, 5),
            MicroOp::Append(2, 6),
            MicroOp::Read(3, None),
        ];
        assert_eq!(txn_keys(&ops), vec![1, 2, 3]);
        let snapshot: Snapshot = [
            (1, (Some(Cell::List(vec![4])), 7)),
            (2, (None, 0)),
            (3, (Some(Cell::List(vec![1, 2])), 9)),
        ]
        .into();
        let plan = plan_txn(&ops, &snapshot).unwrap();
        assert_eq!(
            plan.done,
            vec![
                MicroOp::Read(1, Some(Cell::List(vec![4]))),
                MicroOp::Append(1, 5),
                MicroOp::Append(2, 6),
                MicroOp::Read(3, Some(Cell::List(vec![1, 2]))),
            ]
        );
        assert_eq!(
            plan.compares,
            vec![
                api::mod_revision_equals("t/1", 7),
                api::mod_revision_equals("t/2", 0),
                api::mod_revision_equals("t/3", 9),
            ]
        );
        assert_eq!(
            plan.puts,
            vec![
                api::request_put("t/1", "[4,5]"),
                api::request_put("t/2", "[6]")
            ]
        );
    }

    #[test]
    fn a_read_sees_the_txns_own_earlier_writes_and_a_read_only_txn_puts_nothing() {
        let ops = vec![
            MicroOp::Write(1, 3),
            MicroOp::Read(1, None),
            MicroOp::Read(2, None),
        ];
        let snapshot: Snapshot = [(1, (Some(Cell::Int(1)), 4)), (2, (None, 0))].into();
        let plan = plan_txn(&ops, &snapshot).unwrap();
        assert_eq!(plan.done[1], MicroOp::Read(1, Some(Cell::Int(3))));
        assert_eq!(plan.done[2], MicroOp::Read(2, None));
        assert_eq!(plan.puts, vec![api::request_put("t/1", "3")]);
        let reads = vec![MicroOp::Read(2, None)];
        assert!(plan_txn(&reads, &snapshot).unwrap().puts.is_empty());
        let bad = vec![MicroOp::Append(1, 2)];
        assert!(plan_txn(&bad, &snapshot).is_err(), "append to an integer");
    }

    #[test]
    fn the_read_txn_answer_becomes_a_snapshot_key_by_key() {
        let answer = json!({"succeeded": true, "responses": [
            {"response_range": {"kvs": [{"key": api::b64("t/1"), "value": api::b64("[1,2]"), "mod_revision": "5"}]}},
            {"response_range": {}}
        ]});
        let s = snapshot_of(&[1, 2], &answer).unwrap();
        assert_eq!(s[&1], (Some(Cell::List(vec![1, 2])), 5));
        assert_eq!(s[&2], (None, 0));
        assert!(snapshot_of(&[1], &answer).is_err(), "one range per key");
    }

    #[test]
    fn registers_and_sets_read_back_from_range_answers() {
        let one = json!({"kvs": [{"key": api::b64("r/1"), "value": api::b64("7")}]});
        assert_eq!(read_int(&one).unwrap(), Some(7));
        assert_eq!(read_int(&json!({})).unwrap(), None);
        assert!(
            read_int(&json!({"kvs": [{"key": api::b64("r/1"), "value": api::b64("x")}]})).is_err()
        );
        let set = json!({"kvs": [
            {"key": api::b64("s/10")}, {"key": api::b64("s/2")}
        ]});
        assert_eq!(set_elements(&set).unwrap(), vec![2, 10]);
    }

    #[test]
    fn a_timeout_is_info_for_a_write_and_fail_for_a_read_and_a_refusal_is_fail_only_when_definite()
    {
        let lost = || CallError::Lost("timed out".into());
        assert!(matches!(lost().write_ended(), Ended::Info(_)));
        assert!(matches!(lost().read_ended(), Ended::Fail(_)));
        let not_sent = || CallError::NotSent("refused".into());
        assert!(matches!(not_sent().write_ended(), Ended::Fail(_)));
        let refused = |code| {
            CallError::Refused(GatewayError {
                code: Some(code),
                message: "x".into(),
            })
        };
        assert!(matches!(refused(3).write_ended(), Ended::Fail(_)));
        assert!(matches!(refused(14).write_ended(), Ended::Info(_)));
        assert!(matches!(refused(14).read_ended(), Ended::Fail(_)));
        assert!(matches!(
            CallError::Garbled("?".into()).read_ended(),
            Ended::Info(_)
        ));
    }
}
