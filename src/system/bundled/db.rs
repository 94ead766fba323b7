//! The bundled nodes on a [`Cluster`]: `faultline node <system> ...` on every
//! host as a daemon with a pidfile and a log file (optionally under
//! libfaketime, for the clock nemesis), and control of them afterwards:
//! stop, kill -9 and restart, pause/resume, wipe data, download logs, and
//! their status over the client protocol.

use super::voters;
use crate::cluster::{Cluster, Host};
use crate::control::RemoteError;
use crate::nodes::System as Node;
use crate::nodes::wire::{
    MAX_FRAME_BYTES, Operation, Outcome, Reply, Request, Status, encode_frame,
};
use crate::system::daemon::{self, Daemon};
use crate::system::{Db, DbError, DeployOptions, Endpoint, Layout, host_index};
use crate::workload::Workload;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A deployed bundled system: the cluster, the options, one daemon per host.
pub struct BundledDb {
    pub cluster: Cluster,
    pub node: Node,
    pub options: DeployOptions,
    pub layout: Layout,
    daemons: Vec<Daemon>,
}

/// Starts `node` on every host of `cluster` (killing any running first).
pub fn start(cluster: &Cluster, node: Node, options: &DeployOptions) -> Result<BundledDb, DbError> {
    let db = BundledDb::attach(cluster, node, options)?;
    db.on_nodes(|host, d| d.kill(host.remote.as_ref()))?;
    db.on_nodes(|host, d| db.start_node(host, d))?;
    Ok(db)
}

/// Node arguments the workload needs (the bank's accounts and balances).
fn workload_args(workload: Option<&Workload>) -> Vec<String> {
    match workload {
        Some(Workload::Bank(bank)) => vec![
            "--bank-accounts".into(),
            bank.accounts.to_string(),
            "--bank-balance".into(),
            bank.initial_balance.to_string(),
        ],
        _ => Vec::new(),
    }
}

/// The command line of node `host` of a cluster running `node`.
pub fn node_argv(
    cluster: &Cluster,
    host: &Host,
    layout: &Layout,
    node: Node,
    options: &DeployOptions,
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
        node.name().into(),
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
    argv.extend(workload_args(options.workload.as_ref()));
    argv.extend(["--pidfile".into(), layout.pidfile()]);
    argv
}

fn node_daemons(
    cluster: &Cluster,
    layout: &Layout,
    node: Node,
    options: &DeployOptions,
) -> Result<Vec<Daemon>, DbError> {
    // Logs are files, not terminals: no colour codes in them.
    let mut env = vec![("NO_COLOR".to_string(), "1".to_string())];
    if options.faketime {
        env.extend(crate::system::faketime_env(cluster, layout)?);
    }
    Ok(cluster
        .hosts
        .iter()
        .map(|h| Daemon {
            argv: node_argv(cluster, h, layout, node, options),
            env: env.clone(),
            pidfile: layout.pidfile(),
            logfile: layout.log(),
            cwd: layout.dir.clone(),
        })
        .collect())
}

impl BundledDb {
    /// The daemons of a deployment made earlier (e.g. by another process),
    /// without touching the hosts.
    pub fn attach(
        cluster: &Cluster,
        node: Node,
        options: &DeployOptions,
    ) -> Result<BundledDb, DbError> {
        let layout = Layout::new(&cluster.host_dir);
        let daemons = node_daemons(cluster, &layout, node, options)?;
        Ok(BundledDb {
            cluster: cluster.clone(),
            node,
            options: options.clone(),
            layout,
            daemons,
        })
    }

    fn on_nodes(
        &self,
        action: impl Fn(&Host, &Daemon) -> Result<(), RemoteError> + Sync,
    ) -> Result<(), DbError> {
        crate::system::on_hosts(&self.cluster, |i, host| action(host, &self.daemons[i]))
    }

    fn start_node(&self, host: &Host, daemon: &Daemon) -> Result<(), RemoteError> {
        if self.options.faketime {
            crate::system::init_faketime_file(host, &self.layout)?;
        }
        daemon.start(host.remote.as_ref()).map(|_| ())
    }

    /// The address clients use for `node`.
    pub fn addr(&self, node: &str) -> Result<SocketAddr, DbError> {
        let i = host_index(&self.cluster, node)?;
        Ok(SocketAddr::new(
            self.cluster.hosts[i].addr,
            self.options.port,
        ))
    }

    /// The node's process state letter (`T` when paused), if it runs.
    pub fn process_state(&self, node: &str) -> Result<Option<char>, DbError> {
        let i = host_index(&self.cluster, node)?;
        Ok(self.daemons[i].state(self.cluster.hosts[i].remote.as_ref())?)
    }

    /// `shown` ("n1 (addr)") with the process state and the log's tail.
    fn explain(&self, shown: &str) -> String {
        let node = shown.split(' ').next().unwrap_or_default();
        let Ok(i) = host_index(&self.cluster, node) else {
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
}

impl Db for BundledDb {
    fn system(&self) -> &'static str {
        self.node.name()
    }

    fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        self.cluster
            .hosts
            .iter()
            .map(|h| Endpoint {
                name: h.name.clone(),
                addr: SocketAddr::new(h.addr, self.options.port).to_string(),
            })
            .collect()
    }

    fn faketime_file(&self) -> Option<String> {
        self.options.faketime.then(|| self.layout.faketime_file())
    }

    /// The nodes that say they lead (what the `primaries` nemesis targets).
    fn primaries(&self) -> Result<Vec<String>, String> {
        voters::primaries(self.endpoints())
    }

    fn voters(&self, within: Duration) -> Result<Vec<String>, String> {
        voters::voters(self.endpoints(), within)
    }

    fn has_primaries(&self) -> bool {
        self.node.has_leaders()
    }

    fn has_votes(&self) -> bool {
        self.node.reports_votes()
    }

    /// Starts `node` if it is not running.
    fn start(&self, node: &str) -> Result<(), DbError> {
        let i = host_index(&self.cluster, node)?;
        Ok(self.start_node(&self.cluster.hosts[i], &self.daemons[i])?)
    }

    fn process(&self, node: &str) -> Result<(&Host, Daemon), DbError> {
        let i = host_index(&self.cluster, node)?;
        Ok((&self.cluster.hosts[i], self.daemons[i].clone()))
    }

    /// Deletes `node`'s data directory (the node must be stopped).
    fn wipe(&self, node: &str) -> Result<(), DbError> {
        let host = &self.cluster.hosts[host_index(&self.cluster, node)?];
        crate::system::wipe_dir(host, &self.layout.data())
    }

    /// Copies every node's log to `dir/<node>/node.log`; returns the files written.
    fn download_logs(&self, dir: &Path) -> Result<Vec<PathBuf>, DbError> {
        crate::system::download_node_logs(&self.cluster, &self.layout, dir)
    }

    /// Waits until every node answers a `status` request on its port. When
    /// some do not, the error says for each whether its process still runs
    /// and ends with its last log lines. A node whose process has exited
    /// (a bad flag, a port in use) fails the wait at once, not at `timeout`.
    fn wait_ready(&self, timeout: Duration) -> Result<(), DbError> {
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
                        host_index(&self.cluster, name).is_ok_and(|i| {
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

    /// The last `lines` non-empty lines of `node`'s log (none if unreadable).
    fn log_tail(&self, node: &str, lines: usize) -> Vec<String> {
        match host_index(&self.cluster, node) {
            Ok(i) => crate::system::log_tail(&self.cluster.hosts[i], &self.layout, lines),
            Err(_) => Vec::new(),
        }
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
