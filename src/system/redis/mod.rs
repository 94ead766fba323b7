//! Redis with Sentinel, as Debian packages them (`redis-server` 7.0,
//! `redis-sentinel`): one primary and replicas, a Sentinel on every host to
//! fail over, and clients that follow the primary Sentinel names.
//!
//! The first host starts as primary, the others as its replicas; each
//! Sentinel monitors it with a majority quorum and short timeouts, so a
//! failover happens within a minute's run. Replication is asynchronous and
//! the clients use the lock and register as applications do (no `WAIT`):
//! with a primary killed or cut off, acknowledged writes can be lost and two
//! clients can hold a lock at once. That is what a run shows.
//!
//! What the nemesis acts on is the `redis-server` process of a host (kill,
//! pause, the liveness watch); the host's Sentinel keeps running, as a
//! separate process on the same machine would, and is cut off with its host
//! by partitions. Both logs are collected (`node.log`, `sentinel.log`).

pub mod client;
pub mod db;
pub mod resp;

use crate::checker::logs::LogPatterns;
use crate::cluster::Cluster;
use crate::os::Requirement;
use crate::system::{Clients, Db, DbError, DbOptions, DeployOptions, Endpoint, System, Values};
use std::sync::Arc;
use std::time::Duration;

/// Each Sentinel listens this many ports above its server (as Redis'
/// own 6379 and 26379): 7000 and 27000 by default.
pub const SENTINEL_PORT_OFFSET: u16 = 20000;

/// What Redis logs when it crashes (`# Guru Meditation: ...`, then its bug
/// report) or cannot go on (`# Fatal error loading the DB`, ...).
pub const FATAL_LOG_LINES: [&str; 3] = ["Guru Meditation", "=== REDIS BUG REPORT", "# Fatal error"];

/// Redis with Sentinel.
pub struct Redis;

/// The options `db_options:` may set, and what each does.
const OPTIONS: &[(&str, &str, Values)] = &[(
    "appendfsync",
    "when the append-only file is fsynced: always (before each reply), everysec \
     (the default, as Redis ships) or no (left to the OS), which decides what a \
     power loss (a lose-unfsynced disk fault) takes",
    Values::OneOf(&["always", "everysec", "no"]),
)];

/// The `appendfsync` option (checked already): `everysec` by default.
pub fn appendfsync(options: &DbOptions) -> &str {
    options
        .get("appendfsync")
        .and_then(serde_yaml_ng::Value::as_str)
        .unwrap_or("everysec")
}

impl System for Redis {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn workloads(&self) -> Vec<&'static str> {
        vec!["register", "lock"]
    }

    fn bugs(&self) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }

    fn check_options(&self, options: &DbOptions) -> Result<(), (String, String)> {
        crate::system::check_options_against("redis", OPTIONS, options)
    }

    /// Sentinel logs failovers (`+switch-master`), but not as one winner
    /// per term that the election checker could hold it to.
    fn log_patterns(&self) -> LogPatterns {
        LogPatterns {
            fatal: FATAL_LOG_LINES.map(String::from).to_vec(),
            leader: None,
            notable: Vec::new(),
        }
    }

    fn requirements(&self) -> Vec<Requirement> {
        vec![
            Requirement::tool("redis-server", "redis-server"),
            Requirement::tool("redis-sentinel", "redis-sentinel"),
        ]
    }

    fn start(&self, cluster: &Cluster, options: &DeployOptions) -> Result<Arc<dyn Db>, DbError> {
        Ok(Arc::new(db::start(cluster, options)?))
    }

    fn attach(&self, cluster: &Cluster, options: &DeployOptions) -> Result<Arc<dyn Db>, DbError> {
        Ok(Arc::new(db::RedisDb::attach(cluster, options)?))
    }

    fn clients(
        &self,
        endpoints: Vec<Endpoint>,
        connect_timeout: Duration,
        options: &DeployOptions,
    ) -> Arc<dyn Clients> {
        Arc::new(client::Clients::new(
            endpoints,
            SENTINEL_PORT_OFFSET,
            options.workload.as_ref(),
            connect_timeout,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appendfsync_is_one_of_redis_own_values() {
        let options = |yaml: &str| -> DbOptions { serde_yaml_ng::from_str(yaml).unwrap() };
        assert_eq!(appendfsync(&DbOptions::new()), "everysec");
        for v in ["always", "everysec", "no"] {
            let o = options(&format!("appendfsync: {v}"));
            assert_eq!(Redis.check_options(&o), Ok(()));
            assert_eq!(appendfsync(&o), v);
        }
        let (at, why) = Redis
            .check_options(&options("appendfsync: sometimes"))
            .unwrap_err();
        assert_eq!(at, "appendfsync");
        assert_eq!(why, "`appendfsync` is one of: always, everysec, no");
        let (at, why) = Redis.check_options(&options("fsync: no")).unwrap_err();
        assert_eq!(at, "fsync");
        assert!(why.contains("it has: appendfsync"), "{why}");
    }
}
