//! The bundled systems under test: Raft, Multi-Paxos and two-phase commit,
//! run as `faultline node raft|paxos|twopc|threepc ...` so that deploying a cluster
//! means uploading the faultline binary.
//!
//! Shared by all systems: the client and peer protocol ([`wire`]), the
//! network runtime ([`server`]), the state machine ([`state_machine`]), the
//! fsync'd record file ([`wal`]) and the named bugs ([`bugs`]). Each system
//! is a module with one entry point, `run(NodeConfig, Inbox, PeerSender)`.
//!
//! Architecture invariant: nothing here imports controller code (control,
//! cluster, runner, checker, ...). A node is a program on its own.

pub mod bugs;
pub mod durable;
pub mod event_loop;
pub mod paxos;
pub mod raft;
pub mod server;
pub mod state_machine;
pub mod threepc;
pub mod twopc;
pub mod wal;
pub mod wire;

use anyhow::Context;
use bugs::Bugs;
use state_machine::BankConfig;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// What a node's log holds when the node failed: Rust's panic and runtime
/// abort messages, and a FATAL-level line. The runner hands them to the log
/// checker.
pub const FATAL_LOG_LINES: [&str; 3] = ["panicked at", "FATAL", "fatal runtime error"];

/// Which protocol a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum System {
    Raft,
    Paxos,
    Twopc,
    Threepc,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Raft => "raft",
            System::Paxos => "paxos",
            System::Twopc => "twopc",
            System::Threepc => "threepc",
        }
    }
}

impl System {
    /// Whether one node leads the others (Raft's leader, Paxos's
    /// distinguished proposer); in 2PC and 3PC every node coordinates its
    /// own transactions.
    pub fn has_leaders(self) -> bool {
        matches!(self, System::Raft | System::Paxos)
    }

    /// Whether its `status` says whom the node voted for (`voted_for`):
    /// Raft's elections are votes; a Paxos proposer's prepare is not.
    pub fn reports_votes(self) -> bool {
        self == System::Raft
    }

    /// Every system's name, as `faultline node <name>` takes it.
    pub const NAMES: [&str; 4] = ["raft", "paxos", "twopc", "threepc"];
}

impl std::str::FromStr for System {
    type Err = String;
    fn from_str(name: &str) -> Result<System, String> {
        [System::Raft, System::Paxos, System::Twopc, System::Threepc]
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                format!(
                    "no system {name:?}: expected one of {}",
                    System::NAMES.join(", ")
                )
            })
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything a node needs to start; built from the command line.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub system: System,
    pub id: String,
    /// Where clients and peers connect (host:port).
    pub listen: String,
    /// The other nodes: (id, host:port).
    pub peers: Vec<(String, String)>,
    pub data_dir: PathBuf,
    pub bugs: Bugs,
    pub bank: BankConfig,
    pub pidfile: Option<PathBuf>,
    pub timing: Timing,
}

/// Protocol timers. The defaults suit a LAN or loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Elections start after a random time in [min, 2*min) without a leader.
    pub election_timeout_min: Duration,
    pub heartbeat: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            election_timeout_min: Duration::from_millis(300),
            heartbeat: Duration::from_millis(50),
        }
    }
}

/// Parses `--peers n2=host:port,n3=host:port`.
pub fn parse_peers(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| match p.split_once('=') {
            Some((id, addr)) if !id.trim().is_empty() && addr.contains(':') => {
                Ok((id.trim().to_string(), addr.trim().to_string()))
            }
            _ => Err(format!(
                "bad peer {p:?}: expected ID=HOST:PORT (e.g. n2=127.0.0.1:7002)"
            )),
        })
        .collect()
}

/// Writes this process's pid to `pidfile` whole: a watcher reading it while a
/// plain write has truncated it would see no pid, and report a running node
/// as gone (the liveness watch did, once, in CI).
fn write_pidfile(pidfile: &std::path::Path) -> anyhow::Result<()> {
    let tmp = pidfile.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&tmp, format!("{}\n", std::process::id()))
        .and_then(|()| std::fs::rename(&tmp, pidfile))
        .with_context(|| format!("cannot write pidfile {}", pidfile.display()))
}

/// Runs a node until the process is killed. Errors are startup errors (a bad
/// data dir, an address in use).
pub fn run(config: NodeConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    if let Some(pidfile) = &config.pidfile {
        write_pidfile(pidfile)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async move {
        tracing::info!(id = %config.id, system = %config.system, listen = %config.listen, bugs = ?config.bugs, "node starting");
        match config.system {
            System::Raft => raft::run(config).await,
            System::Paxos => paxos::run(config).await,
            System::Twopc => twopc::run(config).await,
            System::Threepc => threepc::run(config).await,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse_peers("n2=127.0.0.1:7002,n3=h3:7003").unwrap(),
            vec![
                ("n2".into(), "127.0.0.1:7002".into()),
                ("n3".into(), "h3:7003".into())
            ]
        );
        assert!(parse_peers("n2").unwrap_err().contains("ID=HOST:PORT"));
        assert!(parse_peers("").unwrap().is_empty());
    }

    /// A reader racing many rewrites never finds the pidfile empty or
    /// partial (a plain `fs::write` truncates first, and this catches it).
    #[test]
    fn a_pidfile_is_never_seen_half_written() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("node.pid");
        write_pidfile(&pidfile).unwrap();
        let want = format!("{}\n", std::process::id());
        let done = std::sync::atomic::AtomicBool::new(false);
        let bad = std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut bad = Vec::new();
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let got = std::fs::read_to_string(&pidfile).unwrap();
                    if got != want && bad.len() < 5 {
                        bad.push(got);
                    }
                }
                bad
            });
            for _ in 0..3_000 {
                write_pidfile(&pidfile).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            reader.join().unwrap()
        });
        assert!(bad.is_empty(), "read {bad:?}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "no temporaries left: {left:?}");
    }
}
