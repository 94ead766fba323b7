//! Redis and Sentinel on a [`Cluster`]: two daemons per host
//! (`redis-server` and `redis-sentinel`, each with its pidfile and log),
//! their configuration files under faultline's directory, and control of
//! them afterwards.
//!
//! Files on a host, under [`Layout`]: `redis/redis.conf` and
//! `redis/sentinel.conf` (both rewritten by Redis itself: Sentinel records
//! what it learns, and makes servers rewrite theirs when it changes their
//! role), the server's data in `data/`, `log/node.log` and
//! `log/sentinel.log`, `run/node.pid` and `run/sentinel.pid`. A restarted
//! server reads the configuration Sentinel last gave it.

use super::SENTINEL_PORT_OFFSET;
use super::client::MASTER_NAME;
use super::resp::{Reply, call_blocking};
use crate::cluster::{Cluster, Host};
use crate::control::{RemoteError, on_all, shell_quote};
use crate::system::daemon::Daemon;
use crate::system::{Db, DbError, DeployOptions, Endpoint, Layout, host_index};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);
/// One question to a server or a Sentinel from the controller.
const ASK_TIMEOUT: Duration = Duration::from_millis(500);

/// How long a primary may not answer before a Sentinel thinks it down.
pub const DOWN_AFTER_MS: u64 = 2000;
/// Sentinel's failover timeout: how long a failover may take, and (twice
/// it) before a Sentinel tries again to fail over the same primary.
pub const FAILOVER_TIMEOUT_MS: u64 = 6000;

const SERVER: &str = "/usr/bin/redis-server";
const SENTINEL: &str = "/usr/bin/redis-sentinel";

/// A deployed Redis: the cluster, the options, two daemons per host.
pub struct RedisDb {
    cluster: Cluster,
    options: DeployOptions,
    layout: Layout,
    servers: Vec<Daemon>,
    sentinels: Vec<Daemon>,
}

/// Writes fresh configurations and data directories on every host (killing
/// whatever ran there before), then starts the servers and the Sentinels.
pub fn start(cluster: &Cluster, options: &DeployOptions) -> Result<RedisDb, DbError> {
    if options.port.checked_add(SENTINEL_PORT_OFFSET).is_none() {
        return Err(DbError::Local(format!(
            "port {} leaves no room for Sentinel's, {SENTINEL_PORT_OFFSET} above it",
            options.port
        )));
    }
    let db = RedisDb::attach(cluster, options)?;
    crate::system::on_hosts(&db.cluster, |i, host| {
        let remote = host.remote.as_ref();
        db.sentinels[i].kill(remote)?;
        db.servers[i].kill(remote)?;
        db.write_files(i, host)
    })?;
    crate::system::on_hosts(&db.cluster, |i, host| db.start_daemon(host, &db.servers[i]))?;
    crate::system::on_hosts(&db.cluster, |i, host| {
        db.start_daemon(host, &db.sentinels[i])
    })?;
    Ok(db)
}

/// A value in a Redis configuration file: quoted, with `\` and `"` escaped.
fn conf_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl RedisDb {
    /// The daemons of a deployment made earlier, without touching the hosts.
    pub fn attach(cluster: &Cluster, options: &DeployOptions) -> Result<RedisDb, DbError> {
        let layout = Layout::new(&cluster.host_dir);
        let mut env = Vec::new();
        if options.faketime {
            env = crate::system::faketime_env(cluster, &layout)?;
        }
        let daemon = |program: &str, conf: String, name: &str| Daemon {
            argv: vec![program.to_string(), conf],
            env: env.clone(),
            pidfile: format!("{}/run/{name}.pid", layout.dir),
            logfile: format!("{}/log/{name}.log", layout.dir),
            cwd: layout.dir.clone(),
        };
        let n = cluster.hosts.len();
        let servers = (0..n)
            .map(|_| daemon(SERVER, server_conf(&layout), "node"))
            .collect();
        let sentinels = (0..n)
            .map(|_| daemon(SENTINEL, sentinel_conf(&layout), "sentinel"))
            .collect();
        debug_assert_eq!(layout.pidfile(), format!("{}/run/node.pid", layout.dir));
        debug_assert_eq!(layout.log(), format!("{}/log/node.log", layout.dir));
        Ok(RedisDb {
            cluster: cluster.clone(),
            options: options.clone(),
            layout,
            servers,
            sentinels,
        })
    }

    fn server_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.cluster.hosts[i].addr, self.options.port)
    }

    fn sentinel_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::new(
            self.cluster.hosts[i].addr,
            self.options.port.saturating_add(SENTINEL_PORT_OFFSET),
        )
    }

    /// The configuration files and an empty data directory of host `i`:
    /// the first host is the primary, the others replicate it.
    fn write_files(&self, i: usize, host: &Host) -> Result<(), RemoteError> {
        let primary = self.server_addr(0);
        let n = self.cluster.hosts.len();
        let quorum = n / 2 + 1;
        let mut server = format!(
            "# Written by faultline; Redis rewrites it when Sentinel changes its role.\n\
             bind {ip}\nport {port}\nprotected-mode no\ndaemonize no\nlogfile \"\"\n\
             dir {data}\nappendonly yes\nappendfsync {fsync}\n",
            ip = host.addr,
            port = self.options.port,
            data = conf_quote(&self.layout.data()),
            fsync = super::appendfsync(&self.options.db_options),
        );
        if i != 0 {
            server.push_str(&format!("replicaof {} {}\n", primary.ip(), primary.port()));
        }
        let sentinel = format!(
            "# Written by faultline; Sentinel rewrites it with what it learns.\n\
             bind {ip}\nport {sport}\nprotected-mode no\ndaemonize no\nlogfile \"\"\n\
             dir {dir}\n\
             sentinel monitor {MASTER_NAME} {pip} {pport} {quorum}\n\
             sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
             sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n\
             sentinel parallel-syncs {MASTER_NAME} 1\n",
            ip = host.addr,
            sport = self.sentinel_addr(i).port(),
            dir = conf_quote(&self.conf_dir()),
            pip = primary.ip(),
            pport = primary.port(),
        );
        let q = |s: &str| shell_quote(s);
        let data = q(&self.layout.data());
        host.remote.run(
            &format!(
                "{empty} && mkdir -p {conf} && printf '%s' {server} > {sconf} && printf '%s' {sentinel} > {tconf}",
                empty = crate::system::empty_dir(&data),
                conf = q(&self.conf_dir()),
                server = q(&server),
                sconf = q(&server_conf(&self.layout)),
                sentinel = q(&sentinel),
                tconf = q(&sentinel_conf(&self.layout)),
            ),
            CONTROL_TIMEOUT,
        )?;
        Ok(())
    }

    fn conf_dir(&self) -> String {
        format!("{}/redis", self.layout.dir)
    }

    fn start_daemon(&self, host: &Host, daemon: &Daemon) -> Result<(), RemoteError> {
        if self.options.faketime {
            crate::system::init_faketime_file(host, &self.layout)?;
        }
        daemon.start(host.remote.as_ref()).map(|_| ())
    }

    /// What keeps host `i` from being ready, if anything: its server does
    /// not answer `PING`, or its Sentinel does not yet see the primary up
    /// with every replica and every other Sentinel.
    fn not_ready(&self, i: usize) -> Option<String> {
        let n = self.cluster.hosts.len();
        match call_blocking(self.server_addr(i), &["PING"], ASK_TIMEOUT) {
            Ok(Reply::Simple(s)) if s == "PONG" => {}
            Ok(other) => return Some(format!("server answers PING with {other:?}")),
            Err(e) => return Some(format!("server: {e}")),
        }
        let fields = match call_blocking(
            self.sentinel_addr(i),
            &["SENTINEL", "master", MASTER_NAME],
            ASK_TIMEOUT,
        ) {
            Ok(reply) => match reply.texts() {
                Some(texts) => texts,
                None => return Some(format!("sentinel answers {reply:?}")),
            },
            Err(e) => return Some(format!("sentinel: {e}")),
        };
        let field: HashMap<&str, &str> = fields
            .chunks(2)
            .filter_map(|c| Some((c.first()?.as_str(), c.get(1)?.as_str())))
            .collect();
        let count = |k: &str| {
            field
                .get(k)
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0)
        };
        let flags = field.get("flags").copied().unwrap_or("?");
        if flags != "master" || count("num-slaves") < n - 1 || count("num-other-sentinels") < n - 1
        {
            return Some(format!(
                "sentinel sees the primary {flags} with {} of {} replicas and {} of {} other sentinels",
                count("num-slaves"),
                n - 1,
                count("num-other-sentinels"),
                n - 1
            ));
        }
        None
    }

    /// The last `lines` non-empty lines of `file` on host `i`.
    fn tail(&self, i: usize, file: &str, lines: usize) -> Vec<String> {
        self.cluster.hosts[i]
            .remote
            .run(
                &format!("tail -n {lines} {} 2>/dev/null; true", shell_quote(file)),
                CONTROL_TIMEOUT,
            )
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }
}

fn server_conf(layout: &Layout) -> String {
    format!("{}/redis/redis.conf", layout.dir)
}

fn sentinel_conf(layout: &Layout) -> String {
    format!("{}/redis/sentinel.conf", layout.dir)
}

impl Db for RedisDb {
    fn system(&self) -> &'static str {
        "redis"
    }

    fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The servers (clients find their Sentinels beside them).
    fn endpoints(&self) -> Vec<Endpoint> {
        (0..self.cluster.hosts.len())
            .map(|i| Endpoint {
                name: self.cluster.hosts[i].name.clone(),
                addr: self.server_addr(i).to_string(),
            })
            .collect()
    }

    fn faketime_file(&self) -> Option<String> {
        self.options.faketime.then(|| self.layout.faketime_file())
    }

    fn has_primaries(&self) -> bool {
        true
    }

    /// The primary a majority of the Sentinels name, asked now. Without a
    /// majority (Sentinels cut off, or disagreeing during a failover) there
    /// is no answer: the error says what each said.
    fn primaries(&self) -> Result<Vec<String>, String> {
        let n = self.cluster.hosts.len();
        let endpoints = self.endpoints();
        let answers = crate::fan_out::on_every(&(0..n).collect::<Vec<_>>(), |&i| {
            let reply = call_blocking(
                self.sentinel_addr(i),
                &["SENTINEL", "get-master-addr-by-name", MASTER_NAME],
                ASK_TIMEOUT,
            )?;
            match reply.texts().as_deref() {
                Some([ip, port]) => {
                    let addr = format!("{ip}:{port}");
                    endpoints
                        .iter()
                        .find(|e| e.addr == addr)
                        .map(|e| e.name.clone())
                        .ok_or_else(|| format!("names {addr}, no node of this cluster"))
                }
                _ => Err(format!("names no primary: {reply:?}")),
            }
        });
        let mut votes: HashMap<String, usize> = HashMap::new();
        let mut said = Vec::new();
        for (i, answer) in answers.into_iter().enumerate() {
            let name = &self.cluster.hosts[i].name;
            match answer {
                Ok(Ok(primary)) => {
                    said.push(format!("{name}'s sentinel: {primary}"));
                    *votes.entry(primary).or_default() += 1;
                }
                Ok(Err(e)) => said.push(format!("{name}'s sentinel: {e}")),
                Err(panicked) => said.push(format!("{name}'s sentinel: panicked: {panicked}")),
            }
        }
        match votes.into_iter().find(|(_, v)| *v > n / 2) {
            Some((primary, _)) => Ok(vec![primary]),
            None => Err(format!(
                "no primary named by a majority of the sentinels ({})",
                said.join("; ")
            )),
        }
    }

    /// Starts `node`'s server if it is not running (and its Sentinel, which
    /// nothing stops but [`Db::stop_all`]).
    fn start(&self, node: &str) -> Result<(), DbError> {
        let i = host_index(&self.cluster, node)?;
        let host = &self.cluster.hosts[i];
        self.start_daemon(host, &self.servers[i])?;
        self.start_daemon(host, &self.sentinels[i])?;
        Ok(())
    }

    /// The server (its Sentinel is never stopped but by [`Db::stop_all`]).
    fn process(&self, node: &str) -> Result<(&Host, Daemon), DbError> {
        let i = host_index(&self.cluster, node)?;
        Ok((&self.cluster.hosts[i], self.servers[i].clone()))
    }

    /// Deletes `node`'s data (the server must be stopped).
    fn wipe(&self, node: &str) -> Result<(), DbError> {
        let host = &self.cluster.hosts[host_index(&self.cluster, node)?];
        crate::system::wipe_dir(host, &self.layout.data())
    }

    /// Servers and Sentinels.
    fn stop_all(&self, grace: Duration) -> Result<(), DbError> {
        crate::system::on_hosts(&self.cluster, |i, host| {
            let remote = host.remote.as_ref();
            self.sentinels[i].stop(remote, grace)?;
            self.servers[i].stop(remote, grace)
        })
    }

    /// Both logs and both configurations (as Redis last rewrote them) of
    /// every host, under `dir/<node>/`; files a host lacks are skipped.
    fn download_logs(&self, dir: &Path) -> Result<Vec<PathBuf>, DbError> {
        let files = [
            (self.layout.log(), "node.log"),
            (self.sentinels[0].logfile.clone(), "sentinel.log"),
            (server_conf(&self.layout), "redis.conf"),
            (sentinel_conf(&self.layout), "sentinel.conf"),
        ];
        let written = on_all(&self.cluster.remotes(), |r| {
            let local_dir = dir.join(r.name());
            let mut got = Vec::new();
            for (remote_path, local_name) in &files {
                let exists = format!("test -e {}", shell_quote(remote_path));
                if !r.exec(&exists, None, CONTROL_TIMEOUT)?.success() {
                    continue;
                }
                std::fs::create_dir_all(&local_dir).map_err(|e| RemoteError::Other {
                    host: r.name().into(),
                    detail: format!("cannot create {}: {e}", local_dir.display()),
                })?;
                let local = local_dir.join(local_name);
                r.download(remote_path, &local)?;
                got.push(local);
            }
            Ok(got)
        })?;
        Ok(written.into_iter().flatten().collect())
    }

    /// Waits until every server answers and every Sentinel sees the primary
    /// with all replicas and all other Sentinels (so that a failover can
    /// happen from the first fault on). A server or Sentinel whose process
    /// has exited fails the wait at once.
    fn wait_ready(&self, timeout: Duration) -> Result<(), DbError> {
        let started = Instant::now();
        let n = self.cluster.hosts.len();
        let hosts: Vec<usize> = (0..n).collect();
        // Bounded: one round per 200 ms until the deadline.
        loop {
            let waiting: Vec<(usize, String)> =
                crate::fan_out::on_every(&hosts, |&i| self.not_ready(i))
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, r)| match r {
                        Ok(None) => None,
                        Ok(Some(why)) => Some((i, why)),
                        Err(panicked) => Some((i, format!("panicked: {panicked}"))),
                    })
                    .collect();
            if waiting.is_empty() {
                return Ok(());
            }
            let exited = waiting.iter().any(|(i, _)| {
                let remote = self.cluster.hosts[*i].remote.as_ref();
                matches!(self.servers[*i].pid(remote), Ok(None))
                    || matches!(self.sentinels[*i].pid(remote), Ok(None))
            });
            if exited || started.elapsed() >= timeout {
                let hosts = waiting
                    .into_iter()
                    .map(|(i, why)| {
                        let name = &self.cluster.hosts[i].name;
                        let tail = self.log_tail(name, 3);
                        format!(
                            "{name} ({}): {why}; logs: {}",
                            self.server_addr(i),
                            if tail.is_empty() {
                                "(empty)".to_string()
                            } else {
                                tail.join(" | ")
                            }
                        )
                    })
                    .collect();
                return Err(DbError::NotReady {
                    hosts,
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The server log's last `lines` lines, then the Sentinel's (marked).
    fn log_tail(&self, node: &str, lines: usize) -> Vec<String> {
        let Ok(i) = host_index(&self.cluster, node) else {
            return Vec::new();
        };
        let mut out = self.tail(i, &self.layout.log(), lines);
        out.extend(
            self.tail(i, &self.sentinels[i].logfile, lines)
                .into_iter()
                .map(|l| format!("sentinel: {l}")),
        );
        out
    }
}
