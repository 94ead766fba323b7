//! The workers' PostgreSQL client: every worker has its own connection to
//! the first instance (the primary; the instances are independent, so the
//! workload's keys live in one), made when needed and dropped after a call
//! whose outcome is unknown.
//!
//! - `list-append` and `rw-register`: one SQL transaction per operation,
//!   at the test's isolation level (`BEGIN ISOLATION LEVEL ...`), one
//!   statement per micro-op, then `COMMIT`. An append is an upsert that
//!   concatenates (`v || ',' || excluded.v`), a list read the text split
//!   back; a register write an upsert, a read the value. PostgreSQL does
//!   the concurrency control: what a run checks is its isolation level.
//! - `register`: a read, a write (upsert) and a compare-and-set
//!   (`UPDATE ... WHERE v = from`, no row changed is `cas-mismatch`), each
//!   its own autocommitted statement.
//!
//! How a call ends: an answer is `ok`. An error before `COMMIT` was sent
//! (a serialization failure, 40001; a deadlock, 40P01; a lost connection)
//! is `fail`: an unfinished transaction never commits. An error answer to
//! `COMMIT` is `fail` (PostgreSQL rolled it back); no answer to it (a lost
//! connection, a timeout) is `info`. The same for the register's writes.

use super::Isolation;
use super::db::{connect, describe};
use crate::history::Ended;
use crate::nodes::wire::{Cell, Key, MicroOp, Operation, Output, history_value};
use crate::system::{self, BoxFuture, Endpoint};
use std::time::Duration;
use tokio::time::Instant;
use tokio_postgres::Statement;

/// The tables, made by the first client that connects (all `IF NOT
/// EXISTS`): lists as comma-separated text, registers as integers.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS lists (k bigint PRIMARY KEY, v text NOT NULL);\n\
                      CREATE TABLE IF NOT EXISTS registers (k bigint PRIMARY KEY, v bigint NOT NULL);";

/// Clients of one run.
pub struct Clients {
    /// The instance every worker talks to.
    pub primary: Endpoint,
    pub connect_timeout: Duration,
    pub isolation: Isolation,
    /// Transactions' reads are of lists (list-append), not registers.
    pub lists: bool,
}

impl system::Clients for Clients {
    /// One: every worker talks to the primary.
    fn nodes(&self) -> usize {
        1
    }

    fn open(&self, _home: usize) -> Box<dyn system::Client> {
        Box::new(PgClient {
            node: self.primary.clone(),
            connect_timeout: self.connect_timeout,
            isolation: self.isolation,
            lists: self.lists,
            conn: None,
        })
    }
}

/// A connection with its prepared statements.
struct Conn {
    client: tokio_postgres::Client,
    append: Statement,
    read_list: Statement,
    write: Statement,
    read_register: Statement,
    cas: Statement,
}

/// How a call went wrong.
#[derive(Debug)]
enum CallError {
    /// Nothing that could change data reached PostgreSQL (no connection,
    /// or a transaction not committed).
    NotApplied(String),
    /// PostgreSQL answered with an error: the statement did not apply.
    Refused(String),
    /// Not applied, on a connection left in an unknown state (a
    /// transaction cut short by its deadline): the connection goes.
    Abandoned(String),
    /// Sent, and no answer came: it may have applied.
    Lost(String),
}

impl CallError {
    fn ended(self) -> Ended {
        match self {
            CallError::NotApplied(e) | CallError::Refused(e) | CallError::Abandoned(e) => {
                Ended::Fail(e)
            }
            CallError::Lost(e) => Ended::Info(e),
        }
    }
}

/// A statement's error: PostgreSQL's answer (with its SQLSTATE), or a
/// connection that failed under it.
fn classify(e: &tokio_postgres::Error) -> CallError {
    if e.as_db_error().is_some() {
        CallError::Refused(describe(e))
    } else {
        CallError::Lost(describe(e))
    }
}

/// One worker's client.
pub struct PgClient {
    node: Endpoint,
    connect_timeout: Duration,
    isolation: Isolation,
    lists: bool,
    conn: Option<Conn>,
}

impl system::Client for PgClient {
    fn invoke<'a>(
        &'a mut self,
        op: &'a Operation,
        timeout: Duration,
    ) -> BoxFuture<'a, (String, Ended)> {
        Box::pin(async move {
            let deadline = Instant::now() + timeout;
            let ended = match tokio::time::timeout_at(deadline, self.call(op, deadline)).await {
                Ok(Ok(ended)) => ended,
                Ok(Err(e)) => {
                    if matches!(e, CallError::Abandoned(_) | CallError::Lost(_)) {
                        self.conn = None;
                    }
                    e.ended()
                }
                // Where the call was is unknown; the connection goes.
                Err(_) => {
                    self.conn = None;
                    if op.is_read_only() {
                        Ended::Fail("timed out (a read changes nothing)".into())
                    } else {
                        Ended::Info("timed out".into())
                    }
                }
            };
            (self.node.name.clone(), ended)
        })
    }

    fn reset(&mut self) {
        self.conn = None;
    }
}

impl PgClient {
    /// The connection, made (with the tables and statements) if there is
    /// none; a failure here sent nothing.
    async fn conn(&mut self, deadline: Instant) -> Result<&mut Conn, CallError> {
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let timeout = self
                .connect_timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            let client = connect(&self.node.addr, timeout)
                .await
                .map_err(CallError::NotApplied)?;
            let setup = |e: tokio_postgres::Error| CallError::NotApplied(describe(&e));
            create_tables(&client).await.map_err(setup)?;
            let prepare = |sql: &'static str| client.prepare(sql);
            self.conn = Some(Conn {
                append: prepare(
                    "INSERT INTO lists AS t (k, v) VALUES ($1, $2) \
                     ON CONFLICT (k) DO UPDATE SET v = t.v || ',' || excluded.v",
                )
                .await
                .map_err(setup)?,
                read_list: prepare("SELECT v FROM lists WHERE k = $1")
                    .await
                    .map_err(setup)?,
                write: prepare(
                    "INSERT INTO registers (k, v) VALUES ($1, $2) \
                     ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                )
                .await
                .map_err(setup)?,
                read_register: prepare("SELECT v FROM registers WHERE k = $1")
                    .await
                    .map_err(setup)?,
                cas: prepare("UPDATE registers SET v = $3 WHERE k = $1 AND v = $2")
                    .await
                    .map_err(setup)?,
                client,
            });
        }
        match self.conn.as_mut() {
            Some(c) => Ok(c),
            None => unreachable!("connected above"),
        }
    }

    async fn call(&mut self, op: &Operation, deadline: Instant) -> Result<Ended, CallError> {
        let (isolation, lists) = (self.isolation, self.lists);
        let conn = self.conn(deadline).await?;
        match op {
            Operation::Read { key } => {
                let v = read_register(conn, *key).await.map_err(|e| match e {
                    // A read that got no answer changed nothing.
                    CallError::Lost(e) => CallError::Abandoned(e),
                    e => e,
                })?;
                Ok(Ended::Ok(history_value(op, &Output::Read(v))))
            }
            Operation::Write { key, value } => {
                conn.client
                    .execute(&conn.write, &[key, value])
                    .await
                    .map_err(|e| classify(&e))?;
                Ok(Ended::Ok(op.history_value()))
            }
            Operation::Cas { key, from, to } => {
                let changed = conn
                    .client
                    .execute(&conn.cas, &[key, from, to])
                    .await
                    .map_err(|e| classify(&e))?;
                Ok(if changed == 1 {
                    Ended::Ok(op.history_value())
                } else {
                    Ended::Fail("cas-mismatch".into())
                })
            }
            Operation::Txn { ops } => txn(conn, isolation, lists, ops, deadline)
                .await
                .map(|done| Ended::Ok(history_value(op, &Output::Txn(done)))),
            other => Ok(Ended::Fail(format!(
                "the postgres client does not run {}",
                other.f()
            ))),
        }
    }
}

/// Makes the tables. Two clients making one at once can collide on
/// PostgreSQL's catalogue (a unique violation, 23505, or "already
/// exists", 42P07): the other made it, which is what was wanted.
async fn create_tables(client: &tokio_postgres::Client) -> Result<(), tokio_postgres::Error> {
    match client.batch_execute(SCHEMA).await {
        Ok(()) => Ok(()),
        Err(e)
            if e.code().is_some_and(|c| {
                *c == tokio_postgres::error::SqlState::UNIQUE_VIOLATION
                    || *c == tokio_postgres::error::SqlState::DUPLICATE_TABLE
            }) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

async fn read_register(conn: &Conn, key: Key) -> Result<Option<i64>, CallError> {
    let row = conn
        .client
        .query_opt(&conn.read_register, &[&key])
        .await
        .map_err(|e| classify(&e))?;
    Ok(row.map(|r| r.get::<_, i64>(0)))
}

/// Runs `ops` as one transaction at `isolation`, each statement answered
/// by `deadline`; returns the micro-ops with their reads filled in. Any
/// failure before `COMMIT` is sent is definite: the transaction rolls back
/// (or its connection goes, which rolls it back).
async fn txn(
    conn: &mut Conn,
    isolation: Isolation,
    lists: bool,
    ops: &[MicroOp],
    deadline: Instant,
) -> Result<Vec<MicroOp>, CallError> {
    let begin = format!("BEGIN ISOLATION LEVEL {}", isolation.sql());
    let before_commit = async {
        conn.client
            .batch_execute(&begin)
            .await
            .map_err(|e| describe(&e))?;
        let mut done = Vec::with_capacity(ops.len());
        for m in ops {
            done.push(micro_op(conn, lists, m).await?);
        }
        Ok::<_, String>(done)
    };
    let done = match tokio::time::timeout_at(deadline, before_commit).await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            // Leave the connection usable (the caller drops it otherwise).
            let rollback = conn.client.batch_execute("ROLLBACK");
            if tokio::time::timeout_at(deadline, rollback).await.is_err() {
                return Err(CallError::Abandoned(e));
            }
            return Err(CallError::NotApplied(e));
        }
        Err(_) => return Err(CallError::Abandoned("timed out before COMMIT".into())),
    };
    match tokio::time::timeout_at(deadline, conn.client.batch_execute("COMMIT")).await {
        Ok(Ok(())) => Ok(done),
        Ok(Err(e)) => Err(classify(&e)),
        Err(_) => Err(CallError::Lost("timed out waiting for COMMIT".into())),
    }
}

async fn micro_op(conn: &Conn, lists: bool, m: &MicroOp) -> Result<MicroOp, String> {
    let e = |e: tokio_postgres::Error| describe(&e);
    match m {
        MicroOp::Append(k, v) => {
            conn.client
                .execute(&conn.append, &[k, &v.to_string()])
                .await
                .map_err(e)?;
            Ok(m.clone())
        }
        MicroOp::Write(k, v) => {
            conn.client.execute(&conn.write, &[k, v]).await.map_err(e)?;
            Ok(m.clone())
        }
        MicroOp::Read(k, _) => read_cell(conn, lists, *k)
            .await
            .map(|c| MicroOp::Read(*k, c)),
    }
}

/// A key as read in a transaction: a list (list-append) or an integer
/// (rw-register); a key never written reads as nothing.
async fn read_cell(conn: &Conn, lists: bool, k: Key) -> Result<Option<Cell>, String> {
    let e = |e: tokio_postgres::Error| describe(&e);
    let statement = if lists {
        &conn.read_list
    } else {
        &conn.read_register
    };
    let row = conn.client.query_opt(statement, &[&k]).await.map_err(e)?;
    match row {
        None => Ok(None),
        Some(r) if lists => parse_list(r.get::<_, &str>(0)).map(|l| Some(Cell::List(l))),
        Some(r) => Ok(Some(Cell::Int(r.get::<_, i64>(0)))),
    }
}

/// `"1,2,3"` as the list `[1, 2, 3]`.
fn parse_list(text: &str) -> Result<Vec<i64>, String> {
    text.split(',')
        .map(|v| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| format!("list element {v:?} in {text:?}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_reads_back_from_its_text() {
        assert_eq!(parse_list("1,2,30").unwrap(), vec![1, 2, 30]);
        assert_eq!(parse_list("7").unwrap(), vec![7]);
        assert!(parse_list("1,,2").is_err());
    }

    #[test]
    fn an_answered_error_and_an_uncommitted_txn_are_fail_and_silence_is_info() {
        assert!(matches!(
            CallError::Refused("40001".into()).ended(),
            Ended::Fail(_)
        ));
        assert!(matches!(
            CallError::NotApplied("closed".into()).ended(),
            Ended::Fail(_)
        ));
        assert!(matches!(
            CallError::Lost("closed".into()).ended(),
            Ended::Info(_)
        ));
    }
}
