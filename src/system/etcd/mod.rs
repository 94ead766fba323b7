//! etcd 3.4 (Debian's etcd-server) as a system under test, as in Jepsen's
//! etcd analysis: one member per host (`db.rs`), and a client over etcd's
//! v3 API through its JSON gateway (`api.rs`, `client.rs`), so nothing but
//! cargo is needed to build faultline.
//!
//! Its one option, `db_options: {serializable_reads: true}`, makes reads
//! local to the member asked (etcd's serializable reads, possibly stale):
//! how the client reads is the system's business, not the workload's,
//! which is the same for every system.

mod api;
mod client;
mod db;

use crate::checker::logs::LogPatterns;
use crate::cluster::Cluster;
use crate::os::Requirement;
use crate::system::{Clients, Db, DbError, DbOptions, DeployOptions, Endpoint, System, Values};
use crate::workload::Workload;
use std::sync::Arc;
use std::time::Duration;

/// etcd, by name `etcd`.
pub struct Etcd;

/// The options `db_options:` may set, and what each does.
const OPTIONS: &[(&str, &str, Values)] = &[(
    "serializable_reads",
    "true: reads are served by the member asked, from its own state (possibly stale); \
     false (the default): linearizable reads",
    Values::Bool,
)];

impl Etcd {
    /// Whether `options` ask for serializable reads (checked already).
    fn serializable_reads(options: &DbOptions) -> bool {
        crate::system::bool_option(options, "serializable_reads", false)
    }
}

impl System for Etcd {
    fn name(&self) -> &'static str {
        "etcd"
    }

    fn workloads(&self) -> Vec<&'static str> {
        vec!["register", "set", "list-append", "rw-register", "lock"]
    }

    fn bugs(&self) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }

    fn check_options(&self, options: &DbOptions) -> Result<(), (String, String)> {
        crate::system::check_options_against("etcd", OPTIONS, options)
    }

    fn requirements(&self) -> Vec<Requirement> {
        vec![Requirement::tool("etcd", "etcd-server")]
    }

    /// What etcd (Go, zap logger) prints when it dies: a fatal or panic
    /// log line, or Go's own panic and fatal error. It logs elections, but
    /// not in a form the election checker reads: none named.
    fn log_patterns(&self) -> LogPatterns {
        LogPatterns {
            fatal: [
                "\"level\":\"fatal\"",
                "\"level\":\"panic\"",
                "panic: ",
                "fatal error: ",
            ]
            .map(String::from)
            .to_vec(),
            leader: None,
            notable: Vec::new(),
        }
    }

    fn start(&self, cluster: &Cluster, options: &DeployOptions) -> Result<Arc<dyn Db>, DbError> {
        let db = db::EtcdDb::attach(cluster, options)?;
        db.start_all()?;
        Ok(Arc::new(db))
    }

    fn attach(&self, cluster: &Cluster, options: &DeployOptions) -> Result<Arc<dyn Db>, DbError> {
        Ok(Arc::new(db::EtcdDb::attach(cluster, options)?))
    }

    fn clients(
        &self,
        endpoints: Vec<Endpoint>,
        connect_timeout: Duration,
        options: &DeployOptions,
    ) -> Arc<dyn Clients> {
        let lease_s = match &options.workload {
            // etcd's TTL is whole seconds: round up.
            Some(Workload::Lock(lock)) => lock.lease.0.as_millis().div_ceil(1000) as i64,
            _ => 2,
        };
        Arc::new(client::Clients {
            endpoints,
            settings: client::Settings {
                connect_timeout,
                serializable_reads: Etcd::serializable_reads(&options.db_options),
                lease_s: lease_s.max(1),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(yaml: &str) -> DbOptions {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn its_one_option_is_a_boolean_and_others_are_refused_by_name() {
        assert_eq!(
            Etcd.check_options(&options("serializable_reads: true")),
            Ok(())
        );
        assert!(Etcd::serializable_reads(&options(
            "serializable_reads: true"
        )));
        assert!(!Etcd::serializable_reads(&DbOptions::new()));
        let (at, why) = Etcd
            .check_options(&options("serializable_read: true"))
            .unwrap_err();
        assert_eq!(at, "serializable_read");
        assert!(why.contains("it has: serializable_reads"), "{why}");
        let (at, why) = Etcd
            .check_options(&options("serializable_reads: yes please"))
            .unwrap_err();
        assert_eq!(at, "serializable_reads");
        assert!(why.contains("true or false"), "{why}");
    }
}
