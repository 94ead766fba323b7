//! Systems under test: what the controller needs from one, and the registry
//! of those it knows.
//!
//! A system is a [`System`] (its name, what it supports, how to deploy it),
//! a [`Db`] once deployed (start, stop, kill, pause, wipe and collect the
//! logs of its nodes; optionally who leads), and a [`Client`] per worker
//! (invoke one operation with a timeout, say whether a failure is definite).
//! This is Jepsen's `db` and `client` protocols in Rust. Adding a system is
//! one folder here and one line in [`SYSTEMS`]; `ARCHITECTURE.md` walks
//! through an example.
//!
//! Not here: making hosts (`cluster`), the faults (`nemesis`), what the
//! clients do (`workload`), running a test (`runner`).

pub mod bundled;
pub mod custom;
pub mod daemon;
pub mod etcd;
pub mod postgres;
pub mod redis;
pub mod zookeeper;

use crate::cluster::{Cluster, Host};
use crate::control::{Remote, RemoteError, on_all, parent_dir, shell_quote};
use crate::history::Ended;
use crate::workload::{Operation, Workload};
use daemon::Daemon;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Every system faultline can test, by name. One line per system.
pub static SYSTEMS: &[&dyn System] = &[
    &bundled::Bundled::RAFT,
    &bundled::Bundled::PAXOS,
    &bundled::Bundled::TWOPC,
    &bundled::Bundled::THREEPC,
    &redis::Redis,
    &etcd::Etcd,
    &zookeeper::ZooKeeper,
    &postgres::Postgres,
];

/// The system called `name`.
pub fn lookup(name: &str) -> Option<&'static dyn System> {
    SYSTEMS.iter().copied().find(|s| s.name() == name)
}

/// Every system's name, for errors and `--help`.
pub fn names() -> Vec<&'static str> {
    SYSTEMS.iter().map(|s| s.name()).collect()
}

/// A system as a test names it: one from the registry by name (`db: raft`),
/// or a user's own described in the test (`db: {kind: custom, ...}`). Read
/// and written as it is written, so a misspelt one is refused where it is
/// written and test.yaml replays it.
#[derive(Clone)]
pub enum SystemRef {
    Registry(&'static dyn System),
    Custom(Arc<custom::Custom>),
}

impl SystemRef {
    /// The system called `name`; the error lists the known ones.
    pub fn parse(name: &str) -> Result<SystemRef, String> {
        lookup(name).map(SystemRef::Registry).ok_or_else(|| {
            let known: Vec<String> = names().iter().map(|n| format!("`{n}`")).collect();
            format!(
                "unknown variant `{}`, expected one of {}, or a map with `kind: custom`",
                crate::history::text::excerpt(name),
                known.join(", ")
            )
        })
    }

    pub fn get(&self) -> &dyn System {
        match self {
            SystemRef::Registry(s) => *s,
            SystemRef::Custom(c) => c.as_ref(),
        }
    }

    pub fn name(&self) -> &'static str {
        self.get().name()
    }

    /// What a derived test name starts with: the system's name, or a custom
    /// system's own `name`.
    pub fn label(&self) -> String {
        match self {
            SystemRef::Registry(s) => s.name().to_string(),
            SystemRef::Custom(c) => c.label(),
        }
    }

    /// Checks what parsing cannot (placeholders, workloads, ...): the place
    /// in the `db` map and what is wrong.
    pub fn validate(&self) -> Result<(), (crate::yaml::KeyPath, String)> {
        match self {
            SystemRef::Registry(_) => Ok(()),
            SystemRef::Custom(c) => c.validate(),
        }
    }
}

impl std::ops::Deref for SystemRef {
    type Target = dyn System;
    fn deref(&self) -> &(dyn System + 'static) {
        match self {
            SystemRef::Registry(s) => *s,
            SystemRef::Custom(c) => c.as_ref(),
        }
    }
}

impl PartialEq for SystemRef {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (SystemRef::Registry(a), SystemRef::Registry(b)) => a.name() == b.name(),
            (SystemRef::Custom(a), SystemRef::Custom(b)) => a == b,
            _ => false,
        }
    }
}

impl std::fmt::Debug for SystemRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SystemRef::Registry(s) => f.write_str(s.name()),
            SystemRef::Custom(c) => c.fmt(f),
        }
    }
}

impl serde::Serialize for SystemRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SystemRef::Registry(r) => s.serialize_str(r.name()),
            SystemRef::Custom(c) => c.serialize(s),
        }
    }
}

/// By hand rather than `untagged`: a custom system's map is read in place
/// from the file's own parser (not through a `Value`), so a mistake inside
/// it has its real line:column (`db.strat: unknown field ...`).
impl<'de> serde::Deserialize<'de> for SystemRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Ref;
        impl<'de> serde::de::Visitor<'de> for Ref {
            type Value = SystemRef;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a system's name or a map with `kind: custom`")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<SystemRef, E> {
                SystemRef::parse(name).map_err(E::custom)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<SystemRef, A::Error> {
                use serde::Deserialize;
                custom::Custom::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|c| SystemRef::Custom(Arc::new(c)))
            }
        }
        d.deserialize_any(Ref)
    }
}

/// Whether `system` can run a `workload` workload; the error lists what it runs.
pub fn runs(system: &dyn System, workload: &str) -> Result<(), String> {
    if system.workloads().contains(&workload) {
        return Ok(());
    }
    Err(format!(
        "{} cannot run a {workload} workload; it runs: {}",
        system.name(),
        system.workloads().join(", ")
    ))
}

/// Whether `system` has a bug called `name`; the error lists those it has.
pub fn has_bug(system: &dyn System, name: &str) -> Result<(), String> {
    let known: Vec<&str> = system.bugs().iter().map(|(n, _)| *n).collect();
    if known.contains(&name) {
        return Ok(());
    }
    Err(format!(
        "{} has no bug named {name:?}; it has: {}",
        system.name(),
        known.join(", ")
    ))
}

/// The command line's parser for a system's name: `--help` lists them.
pub fn value_parser() -> impl clap::builder::TypedValueParser<Value = SystemRef> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(names()).try_map(|name| SystemRef::parse(&name))
}

/// A system under test, before it is deployed.
pub trait System: Sync + Send {
    /// Its name in tests (`db: raft`) and on the command line.
    fn name(&self) -> &'static str;
    /// The workload kinds its client can run (`register`, `bank`, ...).
    fn workloads(&self) -> Vec<&'static str>;
    /// Its injectable bugs: name and what each breaks.
    fn bugs(&self) -> Vec<(&'static str, &'static str)>;
    /// What its nodes write in their logs that the log checkers look for.
    fn log_patterns(&self) -> crate::checker::logs::LogPatterns;
    /// Checks a test's `db_options:` (what the system lets a test set);
    /// the error names the option at fault. None by default.
    fn check_options(&self, options: &DbOptions) -> Result<(), (String, String)> {
        match options.keys().next() {
            None => Ok(()),
            Some(name) => Err((name.clone(), format!("{} takes no options", self.name()))),
        }
    }
    /// What its hosts need beyond what faults need (`os::requirements`):
    /// its own programs, and the packages that have them.
    fn requirements(&self) -> Vec<crate::os::Requirement> {
        Vec::new()
    }
    /// Starts its nodes on hosts that [`deploy`] prepared, with faultline's
    /// files under [`Layout`]: the returned `Db` has every node started but
    /// not necessarily answering yet ([`Db::wait_ready`]).
    fn start(&self, cluster: &Cluster, options: &DeployOptions) -> Result<Arc<dyn Db>, DbError>;
    /// A deployment made earlier (by another process), without touching the
    /// hosts: for `faultline nemesis` and `cluster status`.
    fn attach(&self, cluster: &Cluster, options: &DeployOptions) -> Result<Arc<dyn Db>, DbError>;
    /// Clients for one run's workers against `endpoints` (they may share
    /// connections), deployed with `options`.
    fn clients(
        &self,
        endpoints: Vec<Endpoint>,
        connect_timeout: Duration,
        options: &DeployOptions,
    ) -> Arc<dyn Clients>;
}

/// A deployed system: its nodes, one per host of its cluster, by host name.
/// Blocking calls (each bounded by its own timeout): the nemesis calls
/// them from its own threads.
pub trait Db: Send + Sync {
    fn cluster(&self) -> &Cluster;
    /// Where each node's clients connect, in host order.
    fn endpoints(&self) -> Vec<Endpoint>;
    /// Waits until every node answers; the error says which do not and why.
    fn wait_ready(&self, timeout: Duration) -> Result<(), DbError>;
    /// Starts `node` if it is not running.
    fn start(&self, node: &str) -> Result<(), DbError>;
    /// `node`'s host and the daemon that is its process: what stop, kill,
    /// pause, resume and pid act on unless a system says otherwise.
    fn process(&self, node: &str) -> Result<(&Host, Daemon), DbError>;
    /// Stops `node` cleanly (SIGTERM, then SIGKILL after `grace`).
    fn stop(&self, node: &str, grace: Duration) -> Result<(), DbError> {
        let (host, d) = self.process(node)?;
        Ok(d.stop(host.remote.as_ref(), grace)?)
    }
    /// Crashes `node` (SIGKILL); [`Db::start`] brings it back.
    fn kill(&self, node: &str) -> Result<(), DbError> {
        let (host, d) = self.process(node)?;
        Ok(d.kill(host.remote.as_ref())?)
    }
    /// SIGSTOP and SIGCONT.
    fn pause(&self, node: &str) -> Result<(), DbError> {
        let (host, d) = self.process(node)?;
        Ok(d.pause(host.remote.as_ref())?)
    }
    fn resume(&self, node: &str) -> Result<(), DbError> {
        let (host, d) = self.process(node)?;
        Ok(d.resume(host.remote.as_ref())?)
    }
    /// The pid of `node`'s running process, on its host.
    fn pid(&self, node: &str) -> Result<Option<u32>, DbError> {
        let (host, d) = self.process(node)?;
        Ok(d.pid(host.remote.as_ref())?)
    }
    /// Deletes `node`'s data (the node must be stopped).
    fn wipe(&self, node: &str) -> Result<(), DbError>;
    /// Copies every node's logs under `dir/<node>/`; returns the files written.
    fn download_logs(&self, dir: &Path) -> Result<Vec<PathBuf>, DbError>;
    /// The last `lines` lines of `node`'s log (none if unreadable).
    fn log_tail(&self, node: &str, lines: usize) -> Vec<String>;
    /// Where the clock nemesis moves each node's clock: a libfaketime
    /// offset file when the nodes run under libfaketime.
    fn faketime_file(&self) -> Option<String>;
    /// The nodes that claim to lead, asked now.
    fn primaries(&self) -> Result<Vec<String>, String> {
        Err(format!("{} has no leaders to target", self.system()))
    }
    /// Whether some node may lead: [`Db::primaries`] can name one.
    fn has_primaries(&self) -> bool {
        false
    }
    /// Whether the nodes say whom they voted for: [`Db::voters`] can see
    /// an election under way.
    fn has_votes(&self) -> bool {
        false
    }
    /// The nodes that just voted in an election under way, watched for up
    /// to `within`.
    fn voters(&self, _within: Duration) -> Result<Vec<String>, String> {
        Err(format!("{} has no elections to watch", self.system()))
    }
    /// The system's name.
    fn system(&self) -> &'static str;
    /// Whether the nemesis's kill, pause and resume signal the node's
    /// process and its children rather than its pid alone: for a node that
    /// is several processes (`control::signal_tree`).
    fn signals_children(&self) -> bool {
        false
    }

    /// kill -9, then start again.
    fn restart(&self, node: &str) -> Result<(), DbError> {
        self.kill(node)?;
        self.start(node)
    }
    /// Stops every node (SIGTERM, then SIGKILL after `grace`).
    fn stop_all(&self, grace: Duration) -> Result<(), DbError> {
        on_every_node(self.cluster(), |n| self.stop(n, grace))
            .into_iter()
            .try_for_each(|(_, r)| r)
    }
    /// Every node's pid, in host order, asked of all hosts at once.
    fn pids(&self) -> Vec<(String, Result<Option<u32>, DbError>)> {
        on_every_node(self.cluster(), |n| self.pid(n))
    }
}

/// The index of the host called `node` in `cluster`.
pub fn host_index(cluster: &Cluster, node: &str) -> Result<usize, DbError> {
    cluster
        .hosts
        .iter()
        .position(|h| h.name == node)
        .ok_or_else(|| {
            DbError::Local(format!(
                "no node named {node:?} in cluster {}",
                cluster.name
            ))
        })
}

/// `action` on every host of `cluster` at once, with its index; the error
/// names every host that failed.
pub fn on_hosts(
    cluster: &Cluster,
    action: impl Fn(usize, &Host) -> Result<(), RemoteError> + Sync,
) -> Result<(), DbError> {
    on_all(&cluster.remotes(), |r| {
        let i = host_index(cluster, r.name()).map_err(|e| RemoteError::Other {
            host: r.name().into(),
            detail: e.to_string(),
        })?;
        action(i, &cluster.hosts[i])
    })?;
    Ok(())
}

/// `f` on every node of `cluster` at once; the results in host order.
fn on_every_node<T: Send>(
    cluster: &Cluster,
    f: impl Fn(&str) -> Result<T, DbError> + Sync,
) -> Vec<(String, Result<T, DbError>)> {
    let results = crate::fan_out::on_every(&cluster.hosts, |h| f(&h.name));
    cluster
        .hosts
        .iter()
        .zip(results)
        .map(|(h, r)| {
            let r = r.unwrap_or_else(|panicked| {
                Err(DbError::Host {
                    host: h.name.clone(),
                    detail: format!("panicked: {panicked}"),
                })
            });
            (h.name.clone(), r)
        })
        .collect()
}

/// Opens a [`Client`] per worker; one per run.
pub trait Clients: Send + Sync {
    /// How many nodes there are to talk to.
    fn nodes(&self) -> usize;
    /// A client for one worker, talking to node `home` first.
    fn open(&self, home: usize) -> Box<dyn Client>;
}

/// A boxed future, as the object-safe async methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One worker's client.
pub trait Client: Send {
    /// Invokes `op`, waiting at most `timeout`; returns the node that
    /// answered and how the call ended. `Ended::Fail` only when the operation
    /// certainly did not take effect; a timeout or a lost connection is
    /// `Ended::Info`.
    fn invoke<'a>(
        &'a mut self,
        op: &'a Operation,
        timeout: Duration,
    ) -> BoxFuture<'a, (String, Ended)>;
    /// After an `info`: whatever the client learnt about the cluster may be
    /// stale; the next call starts afresh (and reconnects).
    fn reset(&mut self);
}

/// A node as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    /// HOST:PORT of its client listener.
    pub addr: String,
}

/// What a test sets of its system (`db_options:`), by option name: each
/// system says which it takes ([`System::check_options`]).
pub type DbOptions = std::collections::BTreeMap<String, serde_yaml_ng::Value>;

/// How to deploy a system for one test.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// The port every node listens on (on its host's cluster address).
    pub port: u16,
    /// Injectable bugs, checked against [`System::bugs`] when the test was
    /// resolved.
    pub bugs: Vec<String>,
    /// The test's `db_options:`, checked by [`System::check_options`].
    pub db_options: DbOptions,
    /// What the clients will run (a system may need to know: the bank's
    /// accounts and balances).
    pub workload: Option<Workload>,
    /// Start nodes under libfaketime with a per-node offset file.
    pub faketime: bool,
    /// Put each node's data directory on the lazy file system (the test
    /// has disk faults).
    pub lazyfs: bool,
    /// Install missing packages (as root) instead of failing.
    pub install: bool,
    /// How long to wait for every node to answer.
    pub ready_timeout: Duration,
    /// faultline's own executable, uploaded to every host: the bundled
    /// nodes and the fault tools run from it.
    pub binary: PathBuf,
    /// A folder on the controller for the run's own records (a
    /// `faultline run`'s results folder): PostgreSQL's transaction manager
    /// logs its decisions there. None outside a run.
    pub run_dir: Option<PathBuf>,
}

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions {
            port: 7000,
            bugs: Vec::new(),
            db_options: DbOptions::new(),
            workload: None,
            faketime: false,
            lazyfs: false,
            install: true,
            ready_timeout: Duration::from_secs(30),
            binary: std::env::current_exe().unwrap_or_default(),
            run_dir: None,
        }
    }
}

/// Prepares the hosts (packages, faultline's executable), starts `system`
/// on them and waits until every node answers. Nodes already running are
/// killed first.
pub fn deploy(
    system: &dyn System,
    cluster: &Cluster,
    options: &DeployOptions,
) -> Result<(Arc<dyn Db>, DeployTimings), DbError> {
    let mut timings = DeployTimings::default();
    let remotes = cluster.remotes();
    let layout = Layout::new(&cluster.host_dir);
    let started = Instant::now();
    let mut reqs = crate::os::requirements(&layout.dir);
    if !options.faketime {
        reqs.retain(|r| r.what != "libfaketime");
    }
    if options.lazyfs {
        reqs.extend(crate::os::fuse_requirements());
    }
    reqs.extend(system.requirements());
    crate::os::prepare(&remotes, &reqs, options.install)?;
    timings.prepare_ms = ms(started);

    let started = Instant::now();
    timings.uploaded = install(&remotes, &options.binary, &layout.binary())?;
    timings.install_ms = ms(started);

    if options.lazyfs {
        let started = Instant::now();
        let paths = layout.lazyfs();
        on_all(&remotes, |r| crate::disk::host::mount(r, &paths))?;
        timings.lazyfs_ms = Some(ms(started));
    }

    let started = Instant::now();
    let db = system.start(cluster, options)?;
    timings.start_ms = ms(started);

    let started = Instant::now();
    db.wait_ready(options.ready_timeout)?;
    if options.lazyfs {
        // What the set-up wrote is made durable before the workload (the
        // helper's `checkpoint`), as on a machine up for a while: a power
        // loss then takes only what the run wrote since. (Redis 7.0, for
        // one, never fsyncs the directory that holds the appendonlydir it
        // makes at first start; PostgreSQL's initdb runs with --no-sync.)
        let paths = layout.lazyfs();
        on_all(&remotes, |r| {
            crate::disk::host::ctl(r, &paths, crate::disk::Command::Checkpoint)
                .map(drop)
                .map_err(|detail| RemoteError::Other {
                    host: r.name().to_string(),
                    detail: format!("lazyfs checkpoint: {detail}"),
                })
        })?;
    }
    timings.ready_ms = ms(started);
    Ok((db, timings))
}

const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum DbError {
    // Transparent: a `"{0}"` message with a `#[from]` source repeats the
    // source's text in every `{:#}` chain (once per wrapper).
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Os(#[from] crate::os::OsError),
    #[error("{host}: {detail}")]
    Host { host: String, detail: String },
    #[error("nodes not answering after {waited_ms} ms:\n  {}", .hosts.join("\n  "))]
    NotReady { hosts: Vec<String>, waited_ms: u64 },
    #[error("{0}")]
    Local(String),
}

/// Where faultline's files live on a host.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: String,
}

impl Layout {
    pub fn new(dir: &str) -> Self {
        Layout {
            dir: dir.trim_end_matches('/').to_string(),
        }
    }
    pub fn binary(&self) -> String {
        format!("{}/bin/faultline", self.dir)
    }
    pub fn data(&self) -> String {
        format!("{}/data", self.dir)
    }
    pub fn log(&self) -> String {
        format!("{}/log/node.log", self.dir)
    }
    pub fn pidfile(&self) -> String {
        format!("{}/run/node.pid", self.dir)
    }
    /// libfaketime's FAKETIME_TIMESTAMP_FILE for the node: the clock
    /// nemesis writes an offset (`+0`, `-3s`, ...) here.
    pub fn faketime_file(&self) -> String {
        format!("{}/run/faketime", self.dir)
    }
    /// Where the node's lazy file system (disk faults) lives: its backing
    /// directory holds the data, and it is mounted on [`Layout::data`].
    pub fn lazyfs(&self) -> crate::disk::host::Paths {
        crate::disk::host::Paths {
            helper: self.binary(),
            backing: format!("{}/data.lazyfs", self.dir),
            mount: self.data(),
            socket: format!("{}/run/lazyfs.sock", self.dir),
            state_dir: crate::net::DEFAULT_STATE_DIR.to_string(),
        }
    }
}

/// The environment that runs a node under libfaketime with the clock
/// nemesis' offset file ([`Layout::faketime_file`]); an error names a host
/// without libfaketime.
pub fn faketime_env(cluster: &Cluster, layout: &Layout) -> Result<Vec<(String, String)>, DbError> {
    let libs = on_all(&cluster.remotes(), |r| crate::os::libfaketime(r))?;
    for (host, lib) in cluster.hosts.iter().zip(&libs) {
        if lib.is_none() {
            return Err(DbError::Host {
                host: host.name.clone(),
                detail: "libfaketime is not installed (package libfaketime)".into(),
            });
        }
    }
    let lib = libs.into_iter().flatten().next().unwrap_or_default();
    Ok(vec![
        ("LD_PRELOAD".to_string(), lib),
        (
            "FAKETIME_TIMESTAMP_FILE".to_string(),
            layout.faketime_file(),
        ),
        // Monotonic time never jumps: timeouts and elections stay sane.
        ("FAKETIME_DONT_FAKE_MONOTONIC".to_string(), "1".to_string()),
        // Re-read the offset file on every call, so a new offset applies at once.
        ("FAKETIME_NO_CACHE".to_string(), "1".to_string()),
    ])
}

/// Copies every node's log ([`Layout::log`]) to `dir/<node>/node.log`;
/// returns the files written. A node that never wrote a log is skipped.
pub fn download_node_logs(
    cluster: &Cluster,
    layout: &Layout,
    dir: &Path,
) -> Result<Vec<PathBuf>, DbError> {
    let log = layout.log();
    let exists = format!("test -e {}", shell_quote(&log));
    let written = on_all(&cluster.remotes(), |r| {
        if !r.exec(&exists, None, CONTROL_TIMEOUT)?.success() {
            return Ok(None);
        }
        let local_dir = dir.join(r.name());
        std::fs::create_dir_all(&local_dir).map_err(|e| RemoteError::Other {
            host: r.name().into(),
            detail: format!("cannot create {}: {e}", local_dir.display()),
        })?;
        let local = local_dir.join("node.log");
        r.download(&log, &local)?;
        Ok(Some(local))
    })?;
    Ok(written.into_iter().flatten().collect())
}

/// Empties `dir` on `host` (its node must be stopped): a wiped node starts
/// with no data. The directory itself stays: it may be a mount point (the
/// lazy file system of disk faults).
pub fn wipe_dir(host: &Host, dir: &str) -> Result<(), DbError> {
    host.remote
        .run(&empty_dir(&shell_quote(dir)), CONTROL_TIMEOUT)?;
    Ok(())
}

/// The boolean option `name` of `options` (checked already), or `default`.
pub fn bool_option(options: &DbOptions, name: &str, default: bool) -> bool {
    options
        .get(name)
        .and_then(serde_yaml_ng::Value::as_bool)
        .unwrap_or(default)
}

/// The shell command that makes `dir` (quoted) an empty directory, keeping
/// the directory itself: it may be a mount point (the lazy file system of
/// disk faults), which `rm -rf` cannot remove.
pub fn empty_dir(dir: &str) -> String {
    format!("mkdir -p {dir} && find {dir} -mindepth 1 -maxdepth 1 -exec rm -rf {{}} +")
}

/// Creates `host`'s libfaketime offset file ([`Layout::faketime_file`])
/// with `+0` unless the clock nemesis has written one: a node started
/// under libfaketime keeps an offset set before it (re)started.
pub fn init_faketime_file(host: &Host, layout: &Layout) -> Result<(), RemoteError> {
    let file = shell_quote(&layout.faketime_file());
    host.remote.run(
        &format!(
            "mkdir -p {} && {{ [ -s {file} ] || echo +0 > {file}; }}",
            shell_quote(parent_dir(&layout.faketime_file()))
        ),
        CONTROL_TIMEOUT,
    )?;
    Ok(())
}

/// Why `node` of `db` (clients at `addr`) is not ready, for
/// [`DbError::NotReady`]: `why`, whether its process runs, its log's tail.
pub fn explain_not_ready(db: &dyn Db, node: &str, addr: &str, why: &str) -> String {
    let running = match db.pid(node) {
        Ok(Some(pid)) => format!("pid {pid} runs"),
        Ok(None) => "not running".to_string(),
        Err(e) => format!("state unknown: {e}"),
    };
    let tail = db.log_tail(node, 5);
    format!(
        "{node} ({addr}): {why}; {running}; log: {}",
        if tail.is_empty() {
            "(empty)".to_string()
        } else {
            tail.join(" | ")
        }
    )
}

/// The values an option of `db_options:` takes.
#[derive(Debug, Clone, Copy)]
pub enum Values {
    Bool,
    OneOf(&'static [&'static str]),
}

/// Checks `db_options:` against the options a system has (`known`: name,
/// what it does, its values); the error names the option at fault and,
/// for an unknown one, those the system has.
pub fn check_options_against(
    system: &str,
    known: &[(&str, &str, Values)],
    options: &DbOptions,
) -> Result<(), (String, String)> {
    for (name, value) in options {
        let Some((_, _, values)) = known.iter().find(|(n, _, _)| n == name) else {
            let names: Vec<&str> = known.iter().map(|(n, _, _)| *n).collect();
            return Err((
                name.clone(),
                format!(
                    "{system} has no option `{}`; it has: {}",
                    crate::history::text::excerpt(name),
                    names.join(", ")
                ),
            ));
        };
        match values {
            Values::Bool if !value.is_bool() => {
                return Err((name.clone(), format!("`{name}` is true or false")));
            }
            Values::OneOf(words) if !value.as_str().is_some_and(|v| words.contains(&v)) => {
                return Err((
                    name.clone(),
                    format!("`{name}` is one of: {}", words.join(", ")),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The last `lines` non-empty lines of the node log on `host` (none if unreadable).
pub fn log_tail(host: &Host, layout: &Layout, lines: usize) -> Vec<String> {
    let tail = host
        .remote
        .run(
            &format!(
                "tail -n {lines} {} 2>/dev/null; true",
                shell_quote(&layout.log())
            ),
            CONTROL_TIMEOUT,
        )
        .unwrap_or_default();
    tail.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// How long each step of [`deploy`] took.
#[derive(Debug, Clone, Default)]
pub struct DeployTimings {
    pub prepare_ms: f64,
    pub install_ms: f64,
    /// Hosts that got the executable (the others had it already).
    pub uploaded: usize,
    /// Mounting the lazy file system on every host, when it was.
    pub lazyfs_ms: Option<f64>,
    pub start_ms: f64,
    pub ready_ms: f64,
}

impl std::fmt::Display for DeployTimings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "prepare {:.0} ms, install {:.0} ms ({} uploads), ",
            self.prepare_ms, self.install_ms, self.uploaded
        )?;
        if let Some(lazyfs_ms) = self.lazyfs_ms {
            write!(f, "lazyfs mount {lazyfs_ms:.0} ms, ")?;
        }
        write!(
            f,
            "start {:.0} ms, ready {:.0} ms",
            self.start_ms, self.ready_ms
        )
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// The sha256 of a local file, as `sha256sum` prints it. Remembered per
/// path, size and modification time: a suite deploys the same executable
/// for every test, and hashing a debug build takes a second or two.
pub fn local_sha256(path: &Path) -> Result<String, DbError> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Key = (std::path::PathBuf, u64, Option<std::time::SystemTime>);
    static SUMS: OnceLock<Mutex<HashMap<Key, String>>> = OnceLock::new();
    let p = path.to_string_lossy();
    let meta = std::fs::metadata(path).map_err(|e| DbError::Local(format!("{p}: {e}")))?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    let sums = SUMS.get_or_init(Mutex::default);
    if let Some(sum) = sums.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(sum.clone());
    }
    let out = crate::control::process::run_local("sha256sum", &[&p], None, CONTROL_TIMEOUT)?;
    let sum = out
        .split_whitespace()
        .next()
        .map(str::to_string)
        .ok_or_else(|| DbError::Local(format!("sha256sum {p} printed nothing")))?;
    let mut sums = sums.lock().unwrap_or_else(|e| e.into_inner());
    // Bounded: a process deploys a few executables, never many.
    if sums.len() >= 64 {
        sums.clear();
    }
    sums.insert(key, sum.clone());
    Ok(sum)
}

/// Uploads `binary` to `target` on every host whose copy differs, and
/// records its sha256 beside it (`target.sha256`), so the next check reads
/// a few bytes instead of hashing the executable on every host. A copy is
/// the same when the recorded sum and the size both match. A host whose
/// directory is this machine's (netns) gets it linked, unhashed, unless it
/// has that very file already. Returns how many hosts got it.
pub fn install(remotes: &[Arc<dyn Remote>], binary: &Path, target: &str) -> Result<usize, DbError> {
    if remotes.iter().all(|r| r.local_path(target).is_some()) {
        use std::os::unix::fs::MetadataExt;
        let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
        let ours = id(binary);
        let uploaded = on_all(remotes, |r| {
            let there = r.local_path(target).and_then(|p| id(&p));
            if ours.is_some() && there == ours {
                return Ok(0usize);
            }
            r.upload(binary, target)?;
            Ok(1)
        })?;
        return Ok(uploaded.iter().sum());
    }
    let sum = local_sha256(binary)?;
    let size = std::fs::metadata(binary)
        .map_err(|e| DbError::Local(format!("{}: {e}", binary.display())))?
        .len();
    let (t, sidecar) = (
        shell_quote(target),
        shell_quote(&format!("{target}.sha256")),
    );
    let check = format!("cat {sidecar} 2>/dev/null; stat -c %s {t} 2>/dev/null; true");
    let expected = format!("{sum}\n{size}\n");
    let uploaded = on_all(remotes, |r| {
        if r.run(&check, CONTROL_TIMEOUT)? == expected {
            return Ok(0usize);
        }
        r.run(&format!("rm -f {sidecar}"), CONTROL_TIMEOUT)?;
        r.upload(binary, target)?;
        r.run(&format!("echo {sum} > {sidecar}"), CONTROL_TIMEOUT)?;
        Ok(1)
    })?;
    Ok(uploaded.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A system that runs one workload and has one bug: a stand-in, so that
    /// the test does not change as the registered systems grow.
    struct Narrow;

    impl System for Narrow {
        fn name(&self) -> &'static str {
            "narrow"
        }
        fn workloads(&self) -> Vec<&'static str> {
            vec!["set"]
        }
        fn bugs(&self) -> Vec<(&'static str, &'static str)> {
            vec![("lose-adds", "forgets adds")]
        }
        fn log_patterns(&self) -> crate::checker::logs::LogPatterns {
            crate::checker::logs::LogPatterns {
                fatal: Vec::new(),
                leader: None,
                notable: Vec::new(),
            }
        }
        fn start(&self, _: &Cluster, _: &DeployOptions) -> Result<Arc<dyn Db>, DbError> {
            Err(DbError::Local("not deployable".into()))
        }
        fn attach(&self, _: &Cluster, _: &DeployOptions) -> Result<Arc<dyn Db>, DbError> {
            Err(DbError::Local("not deployable".into()))
        }
        fn clients(&self, _: Vec<Endpoint>, _: Duration, _: &DeployOptions) -> Arc<dyn Clients> {
            unreachable!("never deployed")
        }
    }

    #[test]
    fn what_a_system_supports_is_checked_with_a_list_of_what_it_has() {
        assert_eq!(runs(&Narrow, "set"), Ok(()));
        assert_eq!(
            runs(&Narrow, "bank"),
            Err("narrow cannot run a bank workload; it runs: set".into())
        );
        assert_eq!(has_bug(&Narrow, "lose-adds"), Ok(()));
        assert_eq!(
            has_bug(&Narrow, "stale-read"),
            Err("narrow has no bug named \"stale-read\"; it has: lose-adds".into())
        );
    }

    #[test]
    fn the_registry_names_each_system_once_and_finds_it_by_name() {
        let names = names();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(names.len(), unique.len(), "{names:?}");
        for name in names {
            let system = lookup(name).unwrap();
            assert_eq!(system.name(), name);
            assert_eq!(SystemRef::parse(name).unwrap().name(), name);
            // A misspelt workload in a system's list would quietly refuse it.
            for w in system.workloads() {
                assert!(Workload::NAMES.contains(&w), "{name} runs {w:?}");
            }
        }
        assert_eq!(
            SystemRef::parse("mysql").unwrap_err(),
            "unknown variant `mysql`, expected one of `raft`, `paxos`, `twopc`, `threepc`, `redis`, `etcd`, `zookeeper`, `postgres`, or a map with `kind: custom`"
        );
        // Every bundled bug is one its system declares.
        for (_, systems, name, _) in crate::nodes::bugs::CATALOG {
            for s in *systems {
                assert_eq!(has_bug(lookup(s.name()).unwrap(), name), Ok(()));
            }
        }
    }
}
