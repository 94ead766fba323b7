//! ZooKeeper 3.8 (Debian's `zookeeper`, on Java 17) as a system under
//! test: an ensemble of one server per host (`db.rs`), and a client per
//! worker through the async `zookeeper-client` crate (`client.rs`), one
//! ZooKeeper session each.
//!
//! Its one option, `db_options: {sync_reads: false}`, reads from the
//! server asked without a `sync` first: ZooKeeper's own reads, which its
//! documentation calls sequentially consistent, not linearizable. By
//! default every read is preceded by a `sync` of its path.

mod client;
mod db;

use crate::checker::logs::LogPatterns;
use crate::cluster::Cluster;
use crate::os::Requirement;
use crate::system::{Clients, Db, DbError, DbOptions, DeployOptions, Endpoint, System, Values};
use crate::workload::Workload;
use std::sync::Arc;
use std::time::Duration;

/// ZooKeeper, by name `zookeeper`.
pub struct ZooKeeper;

/// The options `db_options:` may set, and what each does.
const OPTIONS: &[(&str, &str, Values)] = &[(
    "sync_reads",
    "true (the default): every read is preceded by a `sync` of its path; \
     false: reads are served by the server asked, from its own state (possibly stale)",
    Values::Bool,
)];

/// A worker's session timeout when the workload does not set one (the
/// lock's `lease` does): short, so that a session cut off from a quorum by
/// a partition of a few seconds expires within a run.
const SESSION_TIMEOUT: Duration = Duration::from_secs(4);

impl ZooKeeper {
    /// Whether `options` ask for a `sync` before each read (checked already).
    fn sync_reads(options: &DbOptions) -> bool {
        crate::system::bool_option(options, "sync_reads", true)
    }
}

impl System for ZooKeeper {
    fn name(&self) -> &'static str {
        "zookeeper"
    }

    fn workloads(&self) -> Vec<&'static str> {
        vec!["register", "set", "lock"]
    }

    fn bugs(&self) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }

    fn check_options(&self, options: &DbOptions) -> Result<(), (String, String)> {
        crate::system::check_options_against("zookeeper", OPTIONS, options)
    }

    /// Java (the `zookeeper` package depends on a JRE) and the server's jar.
    fn requirements(&self) -> Vec<Requirement> {
        vec![
            Requirement::tool("java", "zookeeper"),
            Requirement {
                what: "ZooKeeper's server".into(),
                check: format!("test -r {}", db::SERVER_JAR),
                package: Some("zookeeper".into()),
            },
        ]
    }

    /// What a ZooKeeper server prints when it cannot go on: its main's
    /// abnormal exit, a database it cannot load, the JVM out of memory or
    /// crashing. Not `Severe unrecoverable error`: a follower logs that
    /// when its leader's connection breaks (a kill, a partition), then
    /// restarts its server and looks for a new leader. Elections are logged
    /// (`LEADING`, `FOLLOWING`), but not as a term's one winner: none named.
    fn log_patterns(&self) -> LogPatterns {
        LogPatterns {
            fatal: [
                "exiting abnormally",
                "Unable to load database on disk",
                "java.lang.OutOfMemoryError",
                "A fatal error has been detected by the Java Runtime Environment",
            ]
            .map(String::from)
            .to_vec(),
            leader: None,
            notable: Vec::new(),
        }
    }

    fn start(&self, cluster: &Cluster, options: &DeployOptions) -> Result<Arc<dyn Db>, DbError> {
        let db = db::ZkDb::attach(cluster, options)?;
        db.start_all()?;
        Ok(Arc::new(db))
    }

    fn attach(&self, cluster: &Cluster, options: &DeployOptions) -> Result<Arc<dyn Db>, DbError> {
        Ok(Arc::new(db::ZkDb::attach(cluster, options)?))
    }

    fn clients(
        &self,
        endpoints: Vec<Endpoint>,
        connect_timeout: Duration,
        options: &DeployOptions,
    ) -> Arc<dyn Clients> {
        let session_timeout = match &options.workload {
            // A holder keeps its lock as long as its session lives.
            Some(Workload::Lock(lock)) => lock.lease.0,
            _ => SESSION_TIMEOUT,
        };
        Arc::new(client::Clients {
            endpoints,
            settings: client::Settings {
                connect_timeout,
                session_timeout,
                sync_reads: ZooKeeper::sync_reads(&options.db_options),
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
    fn its_one_option_is_a_boolean_true_by_default_and_others_are_refused_by_name() {
        assert_eq!(
            ZooKeeper.check_options(&options("sync_reads: false")),
            Ok(())
        );
        assert!(!ZooKeeper::sync_reads(&options("sync_reads: false")));
        assert!(ZooKeeper::sync_reads(&DbOptions::new()));
        let (at, why) = ZooKeeper
            .check_options(&options("sync_read: false"))
            .unwrap_err();
        assert_eq!(at, "sync_read");
        assert!(why.contains("it has: sync_reads"), "{why}");
        let (at, why) = ZooKeeper
            .check_options(&options("sync_reads: sometimes"))
            .unwrap_err();
        assert_eq!(at, "sync_reads");
        assert!(why.contains("true or false"), "{why}");
    }
}
