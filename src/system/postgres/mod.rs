//! PostgreSQL 15 (Debian's postgresql package) as a system under test: one
//! independent instance per host (`db.rs`: no replication), and a client
//! (`client.rs`) that runs the workloads against the first instance, the
//! primary, over PostgreSQL's own protocol (tokio-postgres).
//!
//! What a run checks is PostgreSQL's isolation levels, as Jepsen's
//! PostgreSQL analysis did: `db_options: {isolation: serializable |
//! repeatable-read | read-committed}` (serializable by default) is the
//! level every transaction of `list-append` and `rw-register` runs at.
//! Faults on the primary (kill, pause, partitions, clock skew under
//! libfaketime, disk faults) test that committed transactions survive a
//! crash and that the client tells a failed transaction from one whose
//! commit went unanswered; `db_options: {fsync: false}` turns PostgreSQL's
//! fsync off, which a power loss (`disk: {mode: lose-unfsynced}`) shows.
//!
//! The `bank` workload runs across all instances instead (`bank.rs`):
//! accounts spread over them, a transfer between two instances one global
//! transaction of PostgreSQL's two-phase commit, with faultline's client as
//! its transaction manager (`tm.rs`: the decision log, recovery). Its two
//! bugs are the manager's.

pub mod bank;
mod client;
pub mod db;
pub mod tm;

use crate::checker::logs::LogPatterns;
use crate::cluster::Cluster;
use crate::os::Requirement;
use crate::system::{Clients, Db, DbError, DbOptions, DeployOptions, Endpoint, System, Values};
use crate::workload::Workload;
use std::sync::Arc;
use std::time::Duration;

/// PostgreSQL, by name `postgres`.
pub struct Postgres;

/// The options `db_options:` may set, and what each does.
const OPTIONS: &[(&str, &str, Values)] = &[
    (
        "isolation",
        "the isolation level of every transaction: serializable (the default), \
         repeatable-read (PostgreSQL's snapshot isolation) or read-committed",
        Values::OneOf(&Isolation::NAMES),
    ),
    (
        "fsync",
        "PostgreSQL's fsync setting: true (the default) or false, which \
         acknowledges commits that a power loss (a lose-unfsynced disk fault) loses",
        Values::Bool,
    ),
];

/// The `fsync` option (checked already): true by default.
pub fn fsync(options: &DbOptions) -> bool {
    crate::system::bool_option(options, "fsync", true)
}

/// A transaction isolation level PostgreSQL offers (read uncommitted is
/// read committed there, so it is not offered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    Serializable,
    RepeatableRead,
    ReadCommitted,
}

impl Isolation {
    const ALL: [Isolation; 3] = [
        Isolation::Serializable,
        Isolation::RepeatableRead,
        Isolation::ReadCommitted,
    ];

    /// Each of [`Isolation::ALL`] as a test writes it.
    const NAMES: [&'static str; 3] = ["serializable", "repeatable-read", "read-committed"];

    /// As a test writes it.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// As SQL writes it (`BEGIN ISOLATION LEVEL ...`).
    pub fn sql(self) -> &'static str {
        match self {
            Isolation::Serializable => "SERIALIZABLE",
            Isolation::RepeatableRead => "REPEATABLE READ",
            Isolation::ReadCommitted => "READ COMMITTED",
        }
    }

    /// The level `options` set (checked already), serializable by default.
    pub fn of(options: &DbOptions) -> Isolation {
        options
            .get("isolation")
            .and_then(serde_yaml_ng::Value::as_str)
            .and_then(|s| Isolation::ALL.into_iter().find(|i| i.name() == s))
            .unwrap_or(Isolation::Serializable)
    }
}

impl System for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn workloads(&self) -> Vec<&'static str> {
        vec!["register", "list-append", "rw-register", "bank"]
    }

    /// The transaction manager's, for the bank.
    fn bugs(&self) -> Vec<(&'static str, &'static str)> {
        bank::BUGS.to_vec()
    }

    fn check_options(&self, options: &DbOptions) -> Result<(), (String, String)> {
        crate::system::check_options_against("postgres", OPTIONS, options)
    }

    /// The server and initdb (Debian's postgresql-15, which the
    /// `postgresql` package pulls in), and setpriv to run them as the
    /// postgres user.
    fn requirements(&self) -> Vec<Requirement> {
        vec![
            Requirement {
                what: "postgres".into(),
                check: format!(
                    "test -x {bin}/postgres && test -x {bin}/initdb && id -u {user}",
                    bin = db::BIN_DIR,
                    user = db::USER
                ),
                package: Some("postgresql".into()),
            },
            Requirement::tool("setpriv", "util-linux"),
        ]
    }

    /// What PostgreSQL logs when a process dies or it cannot go on
    /// (`PANIC:`, `FATAL:` for the server itself, a backend killed by a
    /// signal). FATALs of a single connection (a client that left, a
    /// shutdown asked for) are not among them.
    fn log_patterns(&self) -> LogPatterns {
        LogPatterns {
            fatal: [
                "PANIC:  ",
                "was terminated by signal 11",
                "was terminated by signal 6",
            ]
            .map(String::from)
            .to_vec(),
            leader: None,
            notable: Vec::new(),
        }
    }

    fn start(&self, cluster: &Cluster, options: &DeployOptions) -> Result<Arc<dyn Db>, DbError> {
        let db = db::PostgresDb::attach(cluster, options)?;
        db.start_all()?;
        Ok(Arc::new(db))
    }

    fn attach(&self, cluster: &Cluster, options: &DeployOptions) -> Result<Arc<dyn Db>, DbError> {
        Ok(Arc::new(db::PostgresDb::attach(cluster, options)?))
    }

    /// The workload's clients; every one talks to the first instance, but
    /// the bank's, which talk to all of them.
    fn clients(
        &self,
        endpoints: Vec<Endpoint>,
        connect_timeout: Duration,
        options: &DeployOptions,
    ) -> Arc<dyn Clients> {
        if let Some(Workload::Bank(b)) = &options.workload {
            let settings = bank::Settings::new(endpoints, connect_timeout, b, options);
            return Arc::new(bank::Clients::new(settings));
        }
        let primary = endpoints.into_iter().next().unwrap_or_else(|| Endpoint {
            name: "none".into(),
            addr: "0.0.0.0:0".into(),
        });
        let clients = |lists: bool| client::Clients {
            primary: primary.clone(),
            connect_timeout,
            isolation: Isolation::of(&options.db_options),
            lists,
        };
        match &options.workload {
            Some(Workload::ListAppend(_)) => Arc::new(clients(true)),
            _ => Arc::new(clients(false)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(yaml: &str) -> DbOptions {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn isolation_is_a_level_and_unknown_options_are_refused_by_name() {
        for level in ["serializable", "repeatable-read", "read-committed"] {
            let o = options(&format!("isolation: {level}"));
            assert_eq!(Postgres.check_options(&o), Ok(()));
            assert_eq!(Isolation::of(&o).name(), level);
        }
        assert_eq!(Isolation::of(&DbOptions::new()), Isolation::Serializable);
        assert_eq!(Isolation::RepeatableRead.name(), "repeatable-read");
        assert_eq!(Isolation::ReadCommitted.sql(), "READ COMMITTED");
        assert_eq!(
            Isolation::of(&options("isolation: read-committed")),
            Isolation::ReadCommitted
        );
        let (at, why) = Postgres
            .check_options(&options("isolation: snapshot"))
            .unwrap_err();
        assert_eq!(at, "isolation");
        assert_eq!(
            why,
            "`isolation` is one of: serializable, repeatable-read, read-committed"
        );
        let (at, why) = Postgres
            .check_options(&options("isolaton: serializable"))
            .unwrap_err();
        assert_eq!(at, "isolaton");
        assert!(why.contains("it has: isolation, fsync"), "{why}");
    }

    #[test]
    fn fsync_is_on_unless_turned_off() {
        assert!(fsync(&DbOptions::new()));
        let off = options("fsync: false");
        assert_eq!(Postgres.check_options(&off), Ok(()));
        assert!(!fsync(&off));
        let (at, why) = Postgres.check_options(&options("fsync: off")).unwrap_err();
        assert_eq!(
            (at.as_str(), why.as_str()),
            ("fsync", "`fsync` is true or false")
        );
    }
}
