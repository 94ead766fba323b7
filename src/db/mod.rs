//! Deploying a system under test on a [`Cluster`]: upload the controller's
//! own executable to every host (skipped when the checksum matches), start
//! `faultline node <db> ...` on each as a daemon with a pidfile and a log
//! file (optionally under libfaketime, for the clock nemesis), wait until
//! every node answers, and control nodes afterwards: stop, kill -9 and
//! restart, pause/resume, wipe data, download logs.
//!
//! Every host keeps faultline's files under the cluster's `host_dir`
//! ([`Layout`]). What is not here: making hosts (`cluster`), packages
//! (`os`), faults (`nemesis`), talking the nodes' protocol (`client`).

pub mod daemon;

use crate::cluster::{Cluster, Host};
use crate::control::{Remote, RemoteError, on_all, shell_quote};
use crate::nodes::wire::{
    MAX_FRAME_BYTES, Operation, Outcome, Reply, Request, Status, encode_frame,
};
use daemon::Daemon;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

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
}

/// What to run on the hosts.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Which bundled system: raft, paxos, twopc.
    pub db: String,
    /// The port every node listens on (on its host's cluster address).
    pub port: u16,
    /// Injectable bugs, passed as `--bug NAME` to every node.
    pub bugs: Vec<String>,
    /// Start nodes under libfaketime with a per-node offset file.
    pub faketime: bool,
    /// Install missing packages (as root) instead of failing.
    pub install: bool,
    /// How long to wait for every node to answer.
    pub ready_timeout: Duration,
    /// More arguments for every node (e.g. `--bank-accounts 5`).
    pub node_args: Vec<String>,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            db: "raft".into(),
            port: 7000,
            bugs: Vec::new(),
            faketime: false,
            install: true,
            ready_timeout: Duration::from_secs(30),
            node_args: Vec::new(),
        }
    }
}

/// A deployed system: the cluster, the options, and one daemon per host.
pub struct Db {
    pub cluster: Cluster,
    pub options: DbOptions,
    pub layout: Layout,
    daemons: Vec<Daemon>,
}

/// How long each step of [`deploy`] took.
#[derive(Debug, Clone, Default)]
pub struct DeployTimings {
    pub prepare_ms: f64,
    pub install_ms: f64,
    /// Hosts that got the executable (the others had it already).
    pub uploaded: usize,
    pub start_ms: f64,
    pub ready_ms: f64,
}

impl std::fmt::Display for DeployTimings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "prepare {:.0} ms, install {:.0} ms ({} uploads), start {:.0} ms, ready {:.0} ms",
            self.prepare_ms, self.install_ms, self.uploaded, self.start_ms, self.ready_ms
        )
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// Prepares the hosts, installs `binary`, (re)starts every node and waits
/// until all answer. Nodes already running are killed first.
pub fn deploy(
    cluster: &Cluster,
    binary: &Path,
    options: DbOptions,
) -> Result<(Db, DeployTimings), DbError> {
    let mut timings = DeployTimings::default();
    let remotes = cluster.remotes();
    let layout = Layout::new(&cluster.host_dir);
    let started = Instant::now();
    let mut reqs = crate::os::requirements(&layout.dir);
    if !options.faketime {
        reqs.retain(|r| r.what != "libfaketime");
    }
    crate::os::prepare(&remotes, &reqs, options.install)?;
    timings.prepare_ms = ms(started);

    let started = Instant::now();
    timings.uploaded = install(&remotes, binary, &layout.binary())?;
    timings.install_ms = ms(started);

    let started = Instant::now();
    let daemons = node_daemons(cluster, &layout, &options)?;
    let db = Db {
        cluster: cluster.clone(),
        options,
        layout,
        daemons,
    };
    db.on_nodes(|host, d| d.kill(host.remote.as_ref()))?;
    db.on_nodes(|host, d| db.start_node(host, d))?;
    timings.start_ms = ms(started);

    let started = Instant::now();
    db.wait_ready(db.options.ready_timeout)?;
    timings.ready_ms = ms(started);
    Ok((db, timings))
}

/// The sha256 of a local file, as `sha256sum` prints it.
pub fn local_sha256(path: &Path) -> Result<String, DbError> {
    let p = path.to_string_lossy();
    let out = crate::control::process::run_local("sha256sum", &[&p], None, CONTROL_TIMEOUT)?;
    out.split_whitespace()
        .next()
        .map(str::to_string)
        .ok_or_else(|| DbError::Local(format!("sha256sum {p} printed nothing")))
}

/// Uploads `binary` to `target` on every host whose copy differs, and
/// records its sha256 beside it (`target.sha256`), so the next check reads
/// a few bytes instead of hashing the executable on every host. A copy is
/// the same when the recorded sum and the size both match. Returns how many
/// hosts got it.
pub fn install(remotes: &[Arc<dyn Remote>], binary: &Path, target: &str) -> Result<usize, DbError> {
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

/// The command line of node `host` of a cluster running `options.db`.
pub fn node_argv(
    cluster: &Cluster,
    host: &Host,
    layout: &Layout,
    options: &DbOptions,
) -> Vec<String> {
    let addr = |h: &Host| SocketAddr::new(h.addr, options.port).to_string();
    let peers: Vec<String> = cluster
        .hosts
        .iter()
        .filter(|h| h.name != host.name)
        .map(|h| format!("{}={}", h.name, addr(h)))
        .collect();
    let mut argv = vec![
        layout.binary(),
        "node".into(),
        options.db.clone(),
        "--id".into(),
        host.name.clone(),
        "--listen".into(),
        addr(host),
    ];
    argv.extend([
        "--peers".into(),
        peers.join(","),
        "--data-dir".into(),
        layout.data(),
    ]);
    for bug in &options.bugs {
        argv.extend(["--bug".into(), bug.clone()]);
    }
    argv.extend(options.node_args.iter().cloned());
    argv.extend(["--pidfile".into(), layout.pidfile()]);
    argv
}

fn node_daemons(
    cluster: &Cluster,
    layout: &Layout,
    options: &DbOptions,
) -> Result<Vec<Daemon>, DbError> {
    // Logs are files, not terminals: no colour codes in them.
    let mut env = vec![("NO_COLOR".to_string(), "1".to_string())];
    if options.faketime {
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
        env.extend([
            ("LD_PRELOAD".to_string(), lib),
            (
                "FAKETIME_TIMESTAMP_FILE".to_string(),
                layout.faketime_file(),
            ),
            // Monotonic time never jumps: timeouts and elections stay sane.
            ("FAKETIME_DONT_FAKE_MONOTONIC".to_string(), "1".to_string()),
            // Re-read the offset file on every call, so a new offset applies at once.
            ("FAKETIME_NO_CACHE".to_string(), "1".to_string()),
        ]);
    }
    Ok(cluster
        .hosts
        .iter()
        .map(|h| Daemon {
            argv: node_argv(cluster, h, layout, options),
            env: env.clone(),
            pidfile: layout.pidfile(),
            logfile: layout.log(),
            cwd: layout.dir.clone(),
        })
        .collect())
}

impl Db {
    /// The daemons of a deployment made earlier (e.g. by another process),
    /// without touching the hosts.
    pub fn attach(cluster: &Cluster, options: DbOptions) -> Result<Db, DbError> {
        let layout = Layout::new(&cluster.host_dir);
        let daemons = node_daemons(cluster, &layout, &options)?;
        Ok(Db {
            cluster: cluster.clone(),
            options,
            layout,
            daemons,
        })
    }

    fn index(&self, node: &str) -> Result<usize, DbError> {
        self.cluster
            .hosts
            .iter()
            .position(|h| h.name == node)
            .ok_or_else(|| {
                DbError::Local(format!(
                    "no node named {node:?} in cluster {}",
                    self.cluster.name
                ))
            })
    }

    fn on_nodes(
        &self,
        action: impl Fn(&Host, &Daemon) -> Result<(), RemoteError> + Sync,
    ) -> Result<(), DbError> {
        let remotes = self.cluster.remotes();
        on_all(&remotes, |r| {
            let i = self.index(r.name()).map_err(|e| RemoteError::Other {
                host: r.name().into(),
                detail: e.to_string(),
            })?;
            action(&self.cluster.hosts[i], &self.daemons[i])
        })?;
        Ok(())
    }

    fn start_node(&self, host: &Host, daemon: &Daemon) -> Result<(), RemoteError> {
        if self.options.faketime {
            // Keep an offset the clock nemesis set; create the file otherwise.
            let file = shell_quote(&self.layout.faketime_file());
            host.remote.run(
                &format!(
                    "mkdir -p {} && {{ [ -s {file} ] || echo +0 > {file}; }}",
                    shell_quote(&format!("{}/run", self.layout.dir))
                ),
                CONTROL_TIMEOUT,
            )?;
        }
        daemon.start(host.remote.as_ref()).map(|_| ())
    }

    /// The address clients use for `node`.
    pub fn addr(&self, node: &str) -> Result<SocketAddr, DbError> {
        let i = self.index(node)?;
        Ok(SocketAddr::new(
            self.cluster.hosts[i].addr,
            self.options.port,
        ))
    }

    /// Starts `node` if it is not running.
    pub fn start(&self, node: &str) -> Result<(), DbError> {
        let i = self.index(node)?;
        Ok(self.start_node(&self.cluster.hosts[i], &self.daemons[i])?)
    }

    /// Stops `node` cleanly (SIGTERM, then SIGKILL after `grace`).
    pub fn stop(&self, node: &str, grace: Duration) -> Result<(), DbError> {
        let i = self.index(node)?;
        Ok(self.daemons[i].stop(self.cluster.hosts[i].remote.as_ref(), grace)?)
    }

    /// SIGKILLs `node` (a crash); [`Db::start`] brings it back.
    pub fn kill(&self, node: &str) -> Result<(), DbError> {
        let i = self.index(node)?;
        Ok(self.daemons[i].kill(self.cluster.hosts[i].remote.as_ref())?)
    }

    /// kill -9, then start again.
    pub fn restart(&self, node: &str) -> Result<(), DbError> {
        self.kill(node)?;
        self.start(node)
    }

    pub fn pause(&self, node: &str) -> Result<(), DbError> {
        let i = self.index(node)?;
        Ok(self.daemons[i].pause(self.cluster.hosts[i].remote.as_ref())?)
    }

    pub fn resume(&self, node: &str) -> Result<(), DbError> {
        let i = self.index(node)?;
        Ok(self.daemons[i].resume(self.cluster.hosts[i].remote.as_ref())?)
    }

    /// The node's pid when it runs.
    pub fn pid(&self, node: &str) -> Result<Option<u32>, DbError> {
        let i = self.index(node)?;
        Ok(self.daemons[i].pid(self.cluster.hosts[i].remote.as_ref())?)
    }

    /// The node's process state letter (`T` when paused), if it runs.
    pub fn process_state(&self, node: &str) -> Result<Option<char>, DbError> {
        let i = self.index(node)?;
        Ok(self.daemons[i].state(self.cluster.hosts[i].remote.as_ref())?)
    }

    /// Deletes `node`'s data directory (the node must be stopped).
    pub fn wipe(&self, node: &str) -> Result<(), DbError> {
        let i = self.index(node)?;
        let data = shell_quote(&self.layout.data());
        self.cluster.hosts[i].remote.run(
            &format!("rm -rf {data} && mkdir -p {data}"),
            CONTROL_TIMEOUT,
        )?;
        Ok(())
    }

    /// Stops every node (SIGTERM, then SIGKILL after `grace`).
    pub fn stop_all(&self, grace: Duration) -> Result<(), DbError> {
        self.on_nodes(|host, d| d.stop(host.remote.as_ref(), grace))
    }

    /// Copies every node's log to `dir/<node>/node.log`; returns the files written.
    /// A node that never wrote a log is skipped.
    pub fn download_logs(&self, dir: &Path) -> Result<Vec<PathBuf>, DbError> {
        let log = self.layout.log();
        let exists = format!("test -e {}", shell_quote(&log));
        let written = on_all(&self.cluster.remotes(), |r| {
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

    /// Every node's status, in host order; `None` for a node that does not answer.
    pub fn statuses(&self) -> Vec<(String, Option<Status>)> {
        let hosts = &self.cluster.hosts;
        let asked = crate::fan_out::on_every(hosts, |h| {
            let addr = SocketAddr::new(h.addr, self.options.port);
            node_status(addr, Duration::from_millis(500)).ok()
        });
        // A probe that panicked learnt nothing: as a node that does not answer.
        hosts
            .iter()
            .zip(asked)
            .map(|(h, status)| (h.name.clone(), status.ok().flatten()))
            .collect()
    }

    /// The nodes that say they lead (what the `primaries` nemesis targets).
    pub fn primaries(&self) -> Vec<String> {
        self.statuses()
            .into_iter()
            .filter(|(_, s)| s.as_ref().is_some_and(|s| s.role == "leader"))
            .map(|(n, _)| n)
            .collect()
    }

    /// Waits until every node answers a `status` request on its port. When
    /// some do not, the error says for each whether its process still runs
    /// and ends with its last log lines. A node whose process has exited
    /// (a bad flag, a port in use) fails the wait at once, not at `timeout`.
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), DbError> {
        let mut addrs: Vec<(String, SocketAddr)> = self
            .cluster
            .hosts
            .iter()
            .map(|h| (h.name.clone(), SocketAddr::new(h.addr, self.options.port)))
            .collect();
        let started = Instant::now();
        let result = loop {
            let left = timeout.saturating_sub(started.elapsed());
            match wait_until_answering(&addrs, left.min(Duration::from_secs(1))) {
                Err(DbError::NotReady { hosts, .. }) => {
                    let exited = |name: &String| {
                        self.index(name).is_ok_and(|i| {
                            let remote = self.cluster.hosts[i].remote.as_ref();
                            matches!(self.daemons[i].pid(remote), Ok(None))
                        })
                    };
                    addrs.retain(|(name, addr)| hosts.contains(&format!("{name} ({addr})")));
                    if left.is_zero() || addrs.iter().any(|(name, _)| exited(name)) {
                        break Err(DbError::NotReady {
                            hosts,
                            waited_ms: started.elapsed().as_millis() as u64,
                        });
                    }
                }
                other => break other,
            }
        };
        match result {
            Err(DbError::NotReady { hosts, waited_ms }) => {
                let explained = hosts
                    .into_iter()
                    .map(|shown| self.explain(&shown))
                    .collect();
                Err(DbError::NotReady {
                    hosts: explained,
                    waited_ms,
                })
            }
            other => other,
        }
    }

    /// `shown` ("n1 (addr)") with the process state and the log's tail.
    fn explain(&self, shown: &str) -> String {
        let node = shown.split(' ').next().unwrap_or_default();
        let Ok(i) = self.index(node) else {
            return shown.to_string();
        };
        let remote = self.cluster.hosts[i].remote.as_ref();
        let running = match self.daemons[i].pid(remote) {
            Ok(Some(pid)) => format!("pid {pid} runs"),
            Ok(None) => "not running".to_string(),
            Err(e) => format!("state unknown: {e}"),
        };
        let tail = self.log_tail(node, 5);
        format!(
            "{shown}: {running}; log {}: {}",
            self.layout.log(),
            if tail.is_empty() {
                "(empty)".to_string()
            } else {
                tail.join(" | ")
            }
        )
    }

    /// The last `lines` non-empty lines of `node`'s log (none if unreadable).
    pub fn log_tail(&self, node: &str, lines: usize) -> Vec<String> {
        let Ok(i) = self.index(node) else {
            return Vec::new();
        };
        let tail = self.cluster.hosts[i]
            .remote
            .run(
                &format!(
                    "tail -n {lines} {} 2>/dev/null; true",
                    shell_quote(&self.layout.log())
                ),
                CONTROL_TIMEOUT,
            )
            .unwrap_or_default();
        tail.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Every node's pid, in host order, asked of all hosts at once: `None`
    /// for a node whose process is not running.
    pub fn pids(&self) -> Vec<(String, Result<Option<u32>, DbError>)> {
        let nodes: Vec<_> = self.cluster.hosts.iter().zip(&self.daemons).collect();
        let pids = crate::fan_out::on_every(&nodes, |(host, daemon)| {
            daemon.pid(host.remote.as_ref()).map_err(DbError::from)
        });
        nodes
            .iter()
            .zip(pids)
            .map(|((host, _), pid)| {
                let pid = pid.unwrap_or_else(|panicked| {
                    Err(DbError::Host {
                        host: host.name.clone(),
                        detail: format!("the pid probe panicked: {panicked}"),
                    })
                });
                (host.name.clone(), pid)
            })
            .collect()
    }
}

/// A host's node as `cluster status` shows it, found from the host alone
/// (its pidfile and command line), so it works after the controller that
/// deployed it is gone.
#[derive(Debug, Clone)]
pub struct NodeReport {
    pub process: daemon::ProcessState,
    /// The system it runs (`raft`, ...), from its command line.
    pub system: Option<String>,
    /// Its `--listen` address, from its command line.
    pub listen: Option<SocketAddr>,
    /// Its answer to a `status` request; `None` when not asked (not
    /// running, stopped by SIGSTOP, or no address known).
    pub status: Option<Result<Status, String>>,
}

/// Inspects the node on `host` whose files are laid out as `layout`.
pub fn inspect_node(host: &Host, layout: &Layout) -> Result<NodeReport, RemoteError> {
    let process = daemon::inspect(host.remote.as_ref(), &layout.pidfile())?;
    let argv: &[String] = match &process {
        daemon::ProcessState::Running { argv, .. } => argv,
        _ => &[],
    };
    let after = |flag: &str| {
        argv.iter()
            .position(|a| a == flag)
            .and_then(|i| argv.get(i + 1))
    };
    let system = after("node").cloned();
    let listen = after("--listen").and_then(|a| a.parse::<SocketAddr>().ok());
    let stopped = matches!(
        process,
        daemon::ProcessState::Running {
            state: 'T' | 't',
            ..
        }
    );
    let status = match (listen, stopped) {
        (Some(addr), false) => Some(node_status(addr, Duration::from_millis(500))),
        _ => None,
    };
    Ok(NodeReport {
        process,
        system,
        listen,
        status,
    })
}

/// Asks the node at `addr` for its [`Status`] (role, term, leader) with one
/// blocking request on a fresh connection, bounded by `timeout` per step.
/// Blocking on purpose, like the rest of `db`: no runtime needed.
pub fn node_status(addr: SocketAddr, timeout: Duration) -> Result<Status, String> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(&encode_frame(&Request {
            id: 1,
            op: Operation::Status,
        }))
        .map_err(|e| format!("send: {e}"))?;
    let mut line = String::new();
    BufReader::new(stream.take(MAX_FRAME_BYTES as u64))
        .read_line(&mut line)
        .map_err(|e| format!("reply: {e}"))?;
    let reply: Reply = serde_json::from_str(line.trim_end())
        .map_err(|e| format!("bad reply {:?}: {e}", line.trim_end()))?;
    match reply.outcome {
        Outcome::Ok { value } => {
            serde_json::from_value(value).map_err(|e| format!("bad status: {e}"))
        }
        other => Err(format!("status refused: {other:?}")),
    }
}

/// Polls until every node answers a `status` request, or `timeout`.
pub fn wait_until_answering(
    addrs: &[(String, SocketAddr)],
    timeout: Duration,
) -> Result<(), DbError> {
    let started = Instant::now();
    let mut waiting: Vec<&(String, SocketAddr)> = addrs.iter().collect();
    // Bounded: one pass per 20 ms until the deadline.
    while !waiting.is_empty() {
        waiting.retain(|(_, addr)| node_status(*addr, Duration::from_millis(300)).is_err());
        if waiting.is_empty() {
            break;
        }
        if started.elapsed() > timeout {
            return Err(DbError::NotReady {
                hosts: waiting.iter().map(|(n, a)| format!("{n} ({a})")).collect(),
                waited_ms: started.elapsed().as_millis() as u64,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
