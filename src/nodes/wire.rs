//! What travels between clients and nodes, and between nodes: the client
//! protocol, the peer hello and the bounded newline-delimited JSON framing
//! both use.
//!
//! Client protocol: one TCP connection carries newline-delimited JSON. A
//! client sends [`Request`]s (`{"id":7,"op":"cas","key":3,"from":1,"to":2}`)
//! and may pipeline them; the node answers each with a [`Reply`] carrying the
//! same id, possibly out of order. A reply is `ok` with the value the history's
//! completion op gets, a definite `fail` (it did not happen) with a
//! [`FailCode`], or an indefinite `info` (it may or may not have happened).
//!
//! Peer protocol: a node opens a connection to each peer, sends a
//! [`PeerHello`] line, then one system-specific message per line. Both kinds of
//! connection arrive at the node's single `--listen` address; the first line
//! tells them apart ([`FirstLine`]).
//!
//! This file is an API shared with `client/` and every system: keep it stable.
//! It is not the place for any system's peer messages (each system has its own).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use thiserror::Error;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// A key of a register, list or account. The history format uses integers.
pub type Key = i64;
/// A value written, appended, transferred or added.
pub type Val = i64;

/// The longest line either protocol accepts; a longer one closes the connection.
pub const MAX_FRAME_BYTES: usize = 8 << 20;

/// One client request: an id the reply echoes, and the operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    #[serde(flatten)]
    pub op: Operation,
}

/// What a client asks a node to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Operation {
    /// Register read; ok value `[key, value|null]`.
    Read { key: Key },
    /// Register write; ok value `[key, value]`.
    Write { key: Key, value: Val },
    /// Register compare-and-set; fails `cas-mismatch` when the register is not `from`.
    Cas { key: Key, from: Val, to: Val },
    /// A transaction of micro-ops, applied atomically; ok value is the micro-ops
    /// with reads filled in.
    Txn { ops: Vec<MicroOp> },
    /// Bank transfer; fails `insufficient-funds` when `from` would go negative.
    Transfer { from: Key, to: Key, amount: Val },
    /// Bank read of every account; ok value `{account: balance}`.
    BankRead,
    /// Set add; ok value `v`.
    SetAdd { value: Val },
    /// Set read; ok value `[v...]`, sorted.
    SetRead,
    /// Counter add (`value` ≥ 0); ok value `value`.
    CounterAdd { value: Val },
    /// Counter read; ok value the counter.
    CounterRead,
    /// Lock acquire (lock `key`, held through a lease); ok value `[key, null]`.
    /// No bundled node runs it: real systems' clients do (etcd, Redis).
    Acquire { key: Key },
    /// Lock release by its holder; ok value `[key, null]`.
    Release { key: Key },
    /// Health and role; ok value a [`Status`]. Never goes through the log.
    Status,
}

impl Operation {
    /// The history `f` of the operation.
    pub fn f(&self) -> &'static str {
        match self {
            Operation::Read { .. }
            | Operation::BankRead
            | Operation::SetRead
            | Operation::CounterRead => "read",
            Operation::Write { .. } => "write",
            Operation::Cas { .. } => "cas",
            Operation::Txn { .. } => "txn",
            Operation::Transfer { .. } => "transfer",
            Operation::SetAdd { .. } | Operation::CounterAdd { .. } => "add",
            Operation::Acquire { .. } => "acquire",
            Operation::Release { .. } => "release",
            Operation::Status => "status",
        }
    }

    /// The history value of the operation's invocation (reads carry `null`).
    pub fn history_value(&self) -> Value {
        match self {
            Operation::Read { key } | Operation::Acquire { key } | Operation::Release { key } => {
                json!([key, null])
            }
            Operation::Write { key, value } => json!([key, value]),
            Operation::Cas { key, from, to } => json!([key, [from, to]]),
            Operation::Txn { ops } => json!(ops),
            Operation::Transfer { from, to, amount } => {
                json!({"from": from, "to": to, "amount": amount})
            }
            Operation::SetAdd { value } | Operation::CounterAdd { value } => json!(value),
            Operation::BankRead
            | Operation::SetRead
            | Operation::CounterRead
            | Operation::Status => Value::Null,
        }
    }

    /// True when the operation changes nothing, so a system may serve it
    /// without writing it to its log.
    pub fn is_read_only(&self) -> bool {
        match self {
            Operation::Read { .. }
            | Operation::BankRead
            | Operation::SetRead
            | Operation::CounterRead
            | Operation::Status => true,
            Operation::Txn { ops } => ops.iter().all(|m| matches!(m, MicroOp::Read(..))),
            _ => false,
        }
    }
}

/// One micro-op of a transaction, written as in the history: `["append",k,v]`,
/// `["r",k,null]` (or the value read: a list, an integer or null), `["w",k,v]`.
#[derive(Debug, Clone, PartialEq)]
pub enum MicroOp {
    Append(Key, Val),
    Read(Key, Option<Cell>),
    Write(Key, Val),
}

/// What a key holds: an integer (registers, rw-register) or a list (list-append).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Cell {
    Int(Val),
    List(Vec<Val>),
}

impl Serialize for MicroOp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MicroOp::Append(k, v) => ("append", k, v).serialize(s),
            MicroOp::Read(k, c) => ("r", k, c).serialize(s),
            MicroOp::Write(k, v) => ("w", k, v).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for MicroOp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let (f, k, v): (String, Key, Value) = Deserialize::deserialize(d)?;
        let int = |v: Value| {
            v.as_i64().ok_or_else(|| {
                D::Error::custom(format!("micro-op {f:?} needs an integer value, got {v}"))
            })
        };
        match f.as_str() {
            "append" => Ok(MicroOp::Append(k, int(v.clone())?)),
            "w" => Ok(MicroOp::Write(k, int(v.clone())?)),
            "r" => Ok(MicroOp::Read(
                k,
                serde_json::from_value(v).map_err(D::Error::custom)?,
            )),
            other => Err(D::Error::custom(format!(
                "unknown micro-op {other:?}: expected \"append\", \"r\" or \"w\""
            ))),
        }
    }
}

/// A node's reply to one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub id: u64,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// How a request ended, from the client's point of view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Outcome {
    /// It happened. `value` is the history completion value (see [`Operation`]).
    Ok { value: Value },
    /// It certainly did not happen.
    Fail {
        error: FailCode,
        /// With `not-leader`: who the node believes leads, if it knows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        leader: Option<LeaderHint>,
    },
    /// It may or may not have happened (leadership lost after proposing, ...).
    Info { error: String },
}

/// Why an operation certainly did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailCode {
    /// This node does not serve the operation; try the hinted leader.
    NotLeader,
    /// Compare-and-set found another value.
    CasMismatch,
    /// The transaction was aborted (a lock conflict, a participant voted no).
    Aborted,
    /// The transfer would overdraw the source account.
    InsufficientFunds,
    /// The request was malformed or names something that does not exist.
    BadRequest,
    /// The node refused before doing anything (overloaded, no leader known).
    Unavailable,
}

impl FailCode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailCode::NotLeader => "not-leader",
            FailCode::CasMismatch => "cas-mismatch",
            FailCode::Aborted => "aborted",
            FailCode::InsufficientFunds => "insufficient-funds",
            FailCode::BadRequest => "bad-request",
            FailCode::Unavailable => "unavailable",
        }
    }
}

/// Where the leader is: its node id and the address it listens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderHint {
    pub id: String,
    pub addr: String,
}

/// The answer to a `status` request: what the harness uses for health checks
/// and to find primaries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub id: String,
    /// `leader`, `follower`, `candidate` (Raft, Paxos) or `participant` (2PC).
    pub role: String,
    /// Raft's term, Paxos' ballot round; 0 for 2PC.
    pub term: u64,
    /// The leader this node believes in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Raft: the candidate this node voted for in its current term, if any
    /// (the nemesis targets nodes that just voted, see `Targets::Voters`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voted_for: Option<String>,
    /// How many log entries (slots) this node has applied.
    pub applied: u64,
}

/// The typed result of applying an operation; [`history_value`] turns it into
/// the history completion value.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Read(Option<Val>),
    Done,
    Txn(Vec<MicroOp>),
    Balances(BTreeMap<Key, Val>),
    Set(Vec<Val>),
    Status(Status),
}

/// The history completion value of `op` when it returned `out`.
pub fn history_value(op: &Operation, out: &Output) -> Value {
    match (op, out) {
        (Operation::Read { key }, Output::Read(v)) => json!([key, v]),
        (Operation::Txn { .. }, Output::Txn(done)) => json!(done),
        (Operation::BankRead, Output::Balances(b)) => json!(b),
        (Operation::SetRead, Output::Set(s)) => json!(s),
        (Operation::CounterRead, Output::Read(v)) => json!(v.unwrap_or(0)),
        (Operation::Status, Output::Status(s)) => json!(s),
        (op, _) => op.history_value(),
    }
}

impl Reply {
    pub fn ok(id: u64, op: &Operation, out: &Output) -> Reply {
        Reply {
            id,
            outcome: Outcome::Ok {
                value: history_value(op, out),
            },
        }
    }

    pub fn fail(id: u64, error: FailCode) -> Reply {
        Reply {
            id,
            outcome: Outcome::Fail {
                error,
                leader: None,
            },
        }
    }

    pub fn not_leader(id: u64, leader: Option<LeaderHint>) -> Reply {
        Reply {
            id,
            outcome: Outcome::Fail {
                error: FailCode::NotLeader,
                leader,
            },
        }
    }

    pub fn info(id: u64, error: impl Into<String>) -> Reply {
        Reply {
            id,
            outcome: Outcome::Info {
                error: error.into(),
            },
        }
    }
}

/// Which workload an operation belongs to. Needed to read a history op back,
/// because `read` means a register, bank or set read depending on the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpFamily {
    Register,
    /// list-append and rw-register transactions.
    Txn,
    Bank,
    Set,
}

#[derive(Debug, Error, PartialEq)]
#[error("cannot turn history op f={f:?} value={value} into a {family:?} request: {why}")]
pub struct FromHistoryError {
    pub family: OpFamily,
    pub f: String,
    pub value: Value,
    pub why: String,
}

impl OpFamily {
    /// The operation a history invocation (`f`, `value`) asks for.
    pub fn operation(self, f: &str, value: &Value) -> Result<Operation, FromHistoryError> {
        let err = |why: &str| FromHistoryError {
            family: self,
            f: f.into(),
            value: value.clone(),
            why: why.into(),
        };
        let int = |v: &Value, what: &str| {
            v.as_i64()
                .ok_or_else(|| err(&format!("{what} must be an integer")))
        };
        let pair = || match value.as_array().map(Vec::as_slice) {
            Some([k, v]) => Ok((k, v)),
            _ => Err(err("expected [key, value]")),
        };
        match (self, f) {
            (OpFamily::Register, "read") => Ok(Operation::Read {
                key: int(pair()?.0, "key")?,
            }),
            (OpFamily::Register, "write") => {
                let (k, v) = pair()?;
                Ok(Operation::Write {
                    key: int(k, "key")?,
                    value: int(v, "value")?,
                })
            }
            (OpFamily::Register, "cas") => {
                let (k, v) = pair()?;
                match v.as_array().map(Vec::as_slice) {
                    Some([from, to]) => Ok(Operation::Cas {
                        key: int(k, "key")?,
                        from: int(from, "from")?,
                        to: int(to, "to")?,
                    }),
                    _ => Err(err("cas expects [key, [from, to]]")),
                }
            }
            (OpFamily::Txn, "txn") => serde_json::from_value(value.clone())
                .map(|ops| Operation::Txn { ops })
                .map_err(|e| err(&e.to_string())),
            (OpFamily::Bank, "transfer") => {
                let field = |name: &str| int(&value[name], name);
                Ok(Operation::Transfer {
                    from: field("from")?,
                    to: field("to")?,
                    amount: field("amount")?,
                })
            }
            (OpFamily::Bank, "read") => Ok(Operation::BankRead),
            (OpFamily::Set, "add") => Ok(Operation::SetAdd {
                value: int(value, "value")?,
            }),
            (OpFamily::Set, "read") => Ok(Operation::SetRead),
            _ => Err(err("no such function in this workload")),
        }
    }
}

/// The first line a node sends on a connection to a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerHello {
    pub peer: String,
}

/// What the first line of an incoming connection says it is.
#[derive(Debug, Clone, PartialEq)]
pub enum FirstLine {
    Peer(String),
    /// A client connection; the line is its first request (or garbage).
    Client,
}

impl FirstLine {
    pub fn classify(line: &[u8]) -> FirstLine {
        match serde_json::from_slice::<PeerHello>(line) {
            Ok(h) => FirstLine::Peer(h.peer),
            Err(_) => FirstLine::Client,
        }
    }
}

#[derive(Debug, Error)]
pub enum FrameError {
    #[error("frame longer than {MAX_FRAME_BYTES} bytes")]
    TooLong,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads one newline-terminated frame into `buf` (without the newline).
/// Returns false at a clean end of stream. Never buffers more than
/// [`MAX_FRAME_BYTES`]; a cut-off last frame is an error.
pub async fn read_frame<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> Result<bool, FrameError> {
    buf.clear();
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return if buf.is_empty() {
                Ok(false)
            } else {
                Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()))
            };
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if buf.len() + take > MAX_FRAME_BYTES + 1 {
            return Err(FrameError::TooLong);
        }
        buf.extend_from_slice(&chunk[..take]);
        reader.consume(take);
        if done {
            buf.pop();
            return Ok(true);
        }
    }
}

/// Encodes one message as a frame: JSON and a newline.
pub fn encode_frame<T: Serialize>(msg: &T) -> Vec<u8> {
    // Serializing our own types to JSON cannot fail (no non-string map keys
    // other than integers, which serde_json supports).
    let mut out = serde_json::to_vec(msg).unwrap_or_default();
    debug_assert!(
        !out.is_empty() && !out.contains(&b'\n'),
        "one frame per line"
    );
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_documented() {
        let r: Request =
            serde_json::from_str(r#"{"id":7,"op":"cas","key":3,"from":1,"to":2}"#).unwrap();
        assert_eq!(
            r,
            Request {
                id: 7,
                op: Operation::Cas {
                    key: 3,
                    from: 1,
                    to: 2
                }
            }
        );
        let r: Request = serde_json::from_str(
            r#"{"id":8,"op":"txn","ops":[["append",5,1],["r",6,null],["w",7,2]]}"#,
        )
        .unwrap();
        assert_eq!(
            r.op,
            Operation::Txn {
                ops: vec![
                    MicroOp::Append(5, 1),
                    MicroOp::Read(6, None),
                    MicroOp::Write(7, 2)
                ]
            }
        );
        let r: Request = serde_json::from_str(r#"{"id":9,"op":"bank-read"}"#).unwrap();
        assert_eq!(r.op, Operation::BankRead);
        assert!(
            serde_json::from_str::<Request>(r#"{"id":9,"op":"txn","ops":[["x",1,1]]}"#).is_err()
        );
    }

    #[test]
    fn replies_serialize_flat() {
        let reply = Reply::ok(3, &Operation::Read { key: 4 }, &Output::Read(Some(9)));
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"id":3,"type":"ok","value":[4,9]}"#
        );
        let hint = LeaderHint {
            id: "n2".into(),
            addr: "127.0.0.1:9".into(),
        };
        let reply = Reply::not_leader(4, Some(hint));
        let text = serde_json::to_string(&reply).unwrap();
        assert_eq!(
            text,
            r#"{"id":4,"type":"fail","error":"not-leader","leader":{"id":"n2","addr":"127.0.0.1:9"}}"#
        );
        assert_eq!(serde_json::from_str::<Reply>(&text).unwrap(), reply);
    }

    #[test]
    fn history_ops_map_to_operations_and_back() {
        let cases = [
            (OpFamily::Register, "read", json!([1, null])),
            (OpFamily::Register, "write", json!([1, 5])),
            (OpFamily::Register, "cas", json!([1, [5, 6]])),
            (
                OpFamily::Txn,
                "txn",
                json!([["append", 5, 1], ["r", 6, null], ["w", 2, 3]]),
            ),
            (
                OpFamily::Bank,
                "transfer",
                json!({"from": 0, "to": 1, "amount": 3}),
            ),
            (OpFamily::Bank, "read", Value::Null),
            (OpFamily::Set, "add", json!(4)),
            (OpFamily::Set, "read", Value::Null),
        ];
        for (family, f, value) in cases {
            let op = family.operation(f, &value).unwrap();
            assert_eq!(op.f(), f);
            assert_eq!(op.history_value(), value, "{f}");
        }
        assert!(OpFamily::Register.operation("cas", &json!([1, 2])).is_err());
        assert!(OpFamily::Set.operation("write", &json!([1, 2])).is_err());
    }

    #[test]
    fn completion_values_fill_reads() {
        let txn = Operation::Txn {
            ops: vec![MicroOp::Append(1, 2), MicroOp::Read(1, None)],
        };
        let done = Output::Txn(vec![
            MicroOp::Append(1, 2),
            MicroOp::Read(1, Some(Cell::List(vec![2]))),
        ]);
        assert_eq!(
            history_value(&txn, &done),
            json!([["append", 1, 2], ["r", 1, [2]]])
        );
        let bank = Output::Balances(BTreeMap::from([(0, 7), (1, 3)]));
        assert_eq!(
            history_value(&Operation::BankRead, &bank),
            json!({"0": 7, "1": 3})
        );
        assert_eq!(
            history_value(&Operation::Write { key: 1, value: 2 }, &Output::Done),
            json!([1, 2])
        );
    }

    #[tokio::test]
    async fn frames_are_bounded_and_split_on_newlines() {
        let mut input: &[u8] = b"{\"a\":1}\n{\"b\":2}\n";
        let mut buf = Vec::new();
        assert!(read_frame(&mut input, &mut buf).await.unwrap());
        assert_eq!(buf, b"{\"a\":1}");
        assert!(read_frame(&mut input, &mut buf).await.unwrap());
        assert!(!read_frame(&mut input, &mut buf).await.unwrap());
        let long = vec![b'x'; MAX_FRAME_BYTES + 10];
        let mut input: &[u8] = &long;
        assert!(matches!(
            read_frame(&mut input, &mut buf).await,
            Err(FrameError::TooLong)
        ));
        assert_eq!(
            FirstLine::classify(br#"{"peer":"n2"}"#),
            FirstLine::Peer("n2".into())
        );
        assert_eq!(
            FirstLine::classify(br#"{"id":1,"op":"status"}"#),
            FirstLine::Client
        );
    }
}
