//! PostgreSQL on a [`Cluster`]: one independent instance per host (no
//! replication), Debian's `postgres` server run as the `postgres` system
//! user (it refuses to run as root) through `setpriv`, as a [`Daemon`]
//! whose pid is the postmaster's.
//!
//! Files on a host, under [`Layout`]: the cluster's data in `data/pg`
//! (made by `initdb` on the first start after a wipe), the server's output
//! in the node log (`log/node.log`), its pidfile `run/node.pid`. Settings
//! are given on the command line, so every start runs with the same ones
//! whatever the data directory holds.
//!
//! PostgreSQL is a process per connection plus helpers, all forked by the
//! postmaster (each backend in a process group of its own): kill, pause
//! and resume act on the postmaster and its children
//! ([`Daemon::kill_tree`], and [`Db::signals_children`] for the nemesis),
//! since a SIGKILLed postmaster alone leaves backends holding its shared
//! memory (a new one then refuses to start) and a SIGSTOPped one alone
//! leaves them serving. A killed instance restarts with crash recovery
//! from its WAL (`fsync` is on).

use crate::cluster::{Cluster, Host};
use crate::control::ALIVE;
use crate::control::{RemoteError, shell_quote};
use crate::system::daemon::Daemon;
use crate::system::{Db, DbError, DeployOptions, Endpoint, Layout, host_index};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where Debian's postgresql-15 puts its programs.
pub const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// The system user that runs the server (Debian's package makes it).
pub const USER: &str = "postgres";
/// Prepared transactions each instance may hold: two-phase commit across
/// the instances needs them (PostgreSQL's default, 0, refuses `PREPARE
/// TRANSACTION`).
pub const MAX_PREPARED_TRANSACTIONS: u32 = 64;
/// Connections each instance accepts (workers, the controller's checks,
/// a two-phase coordinator's).
const MAX_CONNECTIONS: u32 = 200;
/// initdb writes a whole cluster: longer than one control command.
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);
/// One `SELECT 1` from the controller.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);
/// What a clean stop sends the postmaster: a fast shutdown (SIGTERM is a
/// smart one, which waits for every client to leave).
const STOP_SIGNAL: &str = "INT";

/// A deployed set of PostgreSQL instances, one per host.
pub struct PostgresDb {
    cluster: Cluster,
    options: DeployOptions,
    layout: Layout,
    /// libfaketime's environment when the test skews clocks.
    env: Vec<(String, String)>,
}

impl PostgresDb {
    /// The deployment on `cluster`, without touching the hosts.
    pub fn attach(cluster: &Cluster, options: &DeployOptions) -> Result<PostgresDb, DbError> {
        let layout = Layout::new(&cluster.host_dir);
        let env = if options.faketime {
            crate::system::faketime_env(cluster, &layout)?
        } else {
            Vec::new()
        };
        Ok(PostgresDb {
            cluster: cluster.clone(),
            options: options.clone(),
            layout,
            env,
        })
    }

    /// Kills whatever ran, deletes old data, then starts every instance
    /// (each runs initdb first).
    pub fn start_all(&self) -> Result<(), DbError> {
        crate::system::on_hosts(&self.cluster, |_, h| {
            self.daemon(h).kill_tree(h.remote.as_ref())
        })?;
        for h in &self.cluster.hosts {
            crate::system::wipe_dir(h, &self.layout.data())?;
        }
        crate::system::on_hosts(&self.cluster, |_, h| self.start_host(h))
    }

    /// The PostgreSQL data directory (`PGDATA`): below [`Layout::data`],
    /// which is root's, so that a wipe can empty it and initdb make it anew.
    pub fn pgdata(&self) -> String {
        format!("{}/pg", self.layout.data())
    }

    fn addr(&self, h: &Host) -> SocketAddr {
        SocketAddr::new(h.addr, self.options.port)
    }

    fn host(&self, node: &str) -> Result<&Host, DbError> {
        Ok(&self.cluster.hosts[host_index(&self.cluster, node)?])
    }

    /// The server on `host`: `postgres` as the postgres user, listening on
    /// the host's cluster address only (no Unix socket: a netns host's
    /// /run is its own and empty), with the settings every test runs with.
    fn daemon(&self, host: &Host) -> Daemon {
        let settings = [
            format!("listen_addresses={}", host.addr),
            format!("port={}", self.options.port),
            "unix_socket_directories=".to_string(),
            format!("max_prepared_transactions={MAX_PREPARED_TRANSACTIONS}"),
            format!("max_connections={MAX_CONNECTIONS}"),
            // Durable commits: a crash loses nothing acknowledged (unless
            // the test turns fsync off, to see a power loss lose commits).
            format!("fsync={}", on_off(super::fsync(&self.options.db_options))),
            "synchronous_commit=on".to_string(),
            // Deadlocks found well within an operation's timeout (1 s, as
            // PostgreSQL's default wait before it looks): they then fail
            // definitely instead of timing out.
            "deadlock_timeout=100ms".to_string(),
            // Three instances on one machine: small buffers.
            "shared_buffers=32MB".to_string(),
            "huge_pages=off".to_string(),
            // To stderr, which the daemon appends to the node log.
            "logging_collector=off".to_string(),
            "log_line_prefix=%m [%p] ".to_string(),
        ];
        // libfaketime is loaded into the server only, after setpriv: loaded
        // into setpriv (root) too, it would make its shared semaphore
        // root's, which the server (postgres) may then not open.
        let mut argv: Vec<String> = [
            "setpriv",
            &format!("--reuid={USER}"),
            &format!("--regid={USER}"),
            "--init-groups",
            "--",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if !self.env.is_empty() {
            argv.push("env".into());
            argv.extend(self.env.iter().map(|(k, v)| format!("{k}={v}")));
        }
        argv.extend([format!("{BIN_DIR}/postgres"), "-D".into(), self.pgdata()]);
        for s in settings {
            argv.push("-c".into());
            argv.push(s);
        }
        Daemon {
            argv,
            env: Vec::new(),
            pidfile: self.layout.pidfile(),
            logfile: self.layout.log(),
            cwd: self.layout.dir.clone(),
        }
    }

    /// Starts the instance on `host` unless it runs: makes its data
    /// directory with initdb when there is none (a first start, a wipe),
    /// else PostgreSQL recovers from its WAL.
    fn start_host(&self, host: &Host) -> Result<(), RemoteError> {
        let daemon = self.daemon(host);
        let remote = host.remote.as_ref();
        if daemon.pid(remote)?.is_some() {
            return Ok(());
        }
        if self.options.faketime {
            crate::system::init_faketime_file(host, &self.layout)?;
        }
        remote.run(&self.prepare_script(), INITDB_TIMEOUT)?;
        daemon.start(remote).map(|_| ())
    }

    /// The shell script (as root) that gives the postgres user its data
    /// directory, runs initdb if it holds no cluster, and writes the
    /// client authentication file. A lock file naming a postmaster that is
    /// gone (killed, and a zombie until its parent reaps it: PostgreSQL
    /// takes a zombie for a live postmaster and refuses to start) is
    /// removed; its children were killed with it.
    ///
    /// Authentication is `trust` for every address: this is a test
    /// harness's throwaway cluster, reachable only on the cluster's own
    /// private network, and passwords would test nothing here.
    fn prepare_script(&self) -> String {
        let q = |s: &str| shell_quote(s);
        let data = q(&self.layout.data());
        let pgdata = q(&self.pgdata());
        let log = q(&self.layout.log());
        let hba = "# Written by faultline: a test cluster on its own private network.\n\
                   host all all 0.0.0.0/0 trust\n";
        format!(
            "set -e\n\
             mkdir -p {data} {logdir}\n\
             chown {USER}:{USER} {data}\n\
             if [ ! -s {pgdata}/PG_VERSION ]; then\n\
             \x20 rm -rf {pgdata}\n\
             \x20 setpriv --reuid={USER} --regid={USER} --init-groups -- {BIN_DIR}/initdb -D {pgdata} \
             -U {USER} --auth=trust --encoding=UTF8 --locale=C.UTF-8 --no-sync --no-instructions >>{log} 2>&1\n\
             fi\n\
             printf '%s' {hba} > {pgdata}/pg_hba.conf\n\
             {ALIVE}old=$(head -n 1 {pgdata}/postmaster.pid 2>/dev/null || true)\n\
             if [ -n \"$old\" ] && ! alive \"$old\"; then rm -f {pgdata}/postmaster.pid; fi\n\
             chown {USER}:{USER} {pgdata}/pg_hba.conf",
            logdir = q(crate::control::parent_dir(&self.layout.log())),
            hba = q(hba),
        )
    }

    /// Why the instance on `host` does not answer, with whether its
    /// postmaster runs and the log's tail.
    fn explain(&self, host: &Host, why: &str) -> String {
        let running = match self.daemon(host).pid(host.remote.as_ref()) {
            Ok(Some(pid)) => format!("postmaster pid {pid} runs"),
            Ok(None) => "not running".to_string(),
            Err(e) => format!("state unknown: {e}"),
        };
        let tail = self.log_tail(&host.name, 5);
        format!(
            "{} ({}): {why}; {running}; log {}: {}",
            host.name,
            self.addr(host),
            self.layout.log(),
            if tail.is_empty() {
                "(empty)".to_string()
            } else {
                tail.join(" | ")
            }
        )
    }
}

/// Connects to the instance at `addr` as the postgres user, within
/// `timeout`; the connection's task runs on the caller's runtime.
pub async fn connect(addr: &str, timeout: Duration) -> Result<tokio_postgres::Client, String> {
    let addr: SocketAddr = addr.parse().map_err(|e| format!("address {addr:?}: {e}"))?;
    let mut config = tokio_postgres::Config::new();
    config
        .host(addr.ip().to_string())
        .port(addr.port())
        .user(USER)
        .dbname("postgres")
        .application_name("faultline")
        .connect_timeout(timeout);
    let (client, connection) = tokio::time::timeout(timeout, config.connect(tokio_postgres::NoTls))
        .await
        .map_err(|_| format!("connect timed out after {} ms", timeout.as_millis()))?
        .map_err(|e| format!("connect: {}", describe(&e)))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// An error with PostgreSQL's own message and SQLSTATE when it has them.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        ),
        None => e.to_string(),
    }
}

/// Whether the instance at `addr` answers `SELECT 1`, asked from a thread
/// of its own (the Db's calls are blocking, and may come from anywhere).
fn select_one(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start a runtime: {e}"))?;
            rt.block_on(async {
                let client = connect(&addr.to_string(), timeout).await?;
                let rows = tokio::time::timeout(timeout, client.query("SELECT 1", &[]))
                    .await
                    .map_err(|_| "SELECT 1 timed out".to_string())?
                    .map_err(|e| format!("SELECT 1: {}", describe(&e)))?;
                match rows.first().map(|r| r.get::<_, i32>(0)) {
                    Some(1) => Ok(()),
                    other => Err(format!("SELECT 1 answered {other:?}")),
                }
            })
        })
        .join()
        .unwrap_or_else(|_| Err("the check panicked".into()))
    })
}

impl Db for PostgresDb {
    fn system(&self) -> &'static str {
        "postgres"
    }

    fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The instances, in host order: the first is the one the
    /// transactional workloads use.
    fn endpoints(&self) -> Vec<Endpoint> {
        self.cluster
            .hosts
            .iter()
            .map(|h| Endpoint {
                name: h.name.clone(),
                addr: self.addr(h).to_string(),
            })
            .collect()
    }

    /// Every instance accepts a connection and answers `SELECT 1`. An
    /// instance whose postmaster is gone (a bad setting, a port in use)
    /// fails the wait at once.
    fn wait_ready(&self, timeout: Duration) -> Result<(), DbError> {
        let started = Instant::now();
        // Bounded: one round per 100 ms until the deadline.
        loop {
            let answers = crate::fan_out::on_every(&self.cluster.hosts, |h| {
                select_one(self.addr(h), ASK_TIMEOUT)
            });
            let waiting: Vec<(&Host, String)> = self
                .cluster
                .hosts
                .iter()
                .zip(answers)
                .filter_map(|(h, a)| match a {
                    Ok(Ok(())) => None,
                    Ok(Err(why)) => Some((h, why)),
                    Err(panicked) => Some((h, format!("panicked: {panicked}"))),
                })
                .collect();
            if waiting.is_empty() {
                return Ok(());
            }
            let gone = waiting
                .iter()
                .any(|(h, _)| self.pid(&h.name).is_ok_and(|p| p.is_none()));
            if gone || started.elapsed() > timeout {
                return Err(DbError::NotReady {
                    hosts: waiting
                        .iter()
                        .map(|(h, why)| self.explain(h, why))
                        .collect(),
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts `node` if it is not running: crash recovery from its data,
    /// or initdb after a wipe.
    fn start(&self, node: &str) -> Result<(), DbError> {
        Ok(self.start_host(self.host(node)?)?)
    }

    fn process(&self, node: &str) -> Result<(&Host, Daemon), DbError> {
        let host = self.host(node)?;
        Ok((host, self.daemon(host)))
    }

    /// A fast shutdown (SIGINT: the postmaster ends its backends, writes a
    /// checkpoint and exits), then SIGKILL to every process after `grace`.
    fn stop(&self, node: &str, grace: Duration) -> Result<(), DbError> {
        let (host, d) = self.process(node)?;
        Ok(d.stop_tree(host.remote.as_ref(), STOP_SIGNAL, grace)?)
    }

    /// SIGKILL to the postmaster and every backend at once: a crash.
    fn kill(&self, node: &str) -> Result<(), DbError> {
        let (host, d) = self.process(node)?;
        Ok(d.kill_tree(host.remote.as_ref())?)
    }

    /// SIGSTOP to every process of the instance.
    fn pause(&self, node: &str) -> Result<(), DbError> {
        let (host, d) = self.process(node)?;
        Ok(d.pause_tree(host.remote.as_ref())?)
    }

    fn resume(&self, node: &str) -> Result<(), DbError> {
        let (host, d) = self.process(node)?;
        Ok(d.resume_tree(host.remote.as_ref())?)
    }

    /// Empties `node`'s data (it must be stopped): the next start runs
    /// initdb, and the instance starts empty.
    fn wipe(&self, node: &str) -> Result<(), DbError> {
        crate::system::wipe_dir(self.host(node)?, &self.layout.data())
    }

    fn download_logs(&self, dir: &Path) -> Result<Vec<PathBuf>, DbError> {
        crate::system::download_node_logs(&self.cluster, &self.layout, dir)
    }

    fn log_tail(&self, node: &str, lines: usize) -> Vec<String> {
        match self.host(node) {
            Ok(h) => crate::system::log_tail(h, &self.layout, lines),
            Err(_) => Vec::new(),
        }
    }

    /// The postmaster and its backends are one instance: the nemesis's
    /// signals reach all of them, as `kill`, `pause` and `resume` here do.
    fn signals_children(&self) -> bool {
        true
    }

    fn faketime_file(&self) -> Option<String> {
        self.options.faketime.then(|| self.layout.faketime_file())
    }

    fn has_primaries(&self) -> bool {
        true
    }

    /// The first host: the instance the transactional workloads' clients
    /// all use (the instances are independent; none leads the others).
    fn primaries(&self) -> Result<Vec<String>, String> {
        self.cluster
            .hosts
            .first()
            .map(|h| vec![h.name.clone()])
            .ok_or_else(|| "a cluster without hosts".to_string())
    }
}

/// A boolean as PostgreSQL's settings write it.
fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}
