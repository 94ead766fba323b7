//! A cluster of node processes on this machine's loopback, for the node
//! tests and `faultline bench node`: each node is a child process of the
//! faultline binary, on a random 127.x.y.z address, so kill -9 is real.
//!
//! Not the harness's deployment (that is `db/`, on real hosts): no uploads,
//! no namespaces, no log collection beyond one file per node.

use super::{Client, Indefinite};
use crate::nodes::wire::{Operation, Outcome, Status};
use rand::{RngExt, SeedableRng};
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct LocalNode {
    pub id: String,
    pub addr: String,
    pub data_dir: PathBuf,
    child: Option<Child>,
}

impl LocalNode {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The node's stderr so far (its log), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("node.log")).unwrap_or_default()
    }
}

pub struct LocalCluster {
    exe: PathBuf,
    system: &'static str,
    dir: PathBuf,
    pub nodes: Vec<LocalNode>,
    /// Extra arguments for every node (`--bug ...`, timers).
    args: Vec<String>,
    /// `faultline lazyfs` helpers under the nodes' data directories.
    lazyfs: Vec<Child>,
}

impl LocalCluster {
    /// Starts `n` nodes of `system` (`raft`, `paxos`, `twopc`) from `exe`,
    /// with `args` added to each command line.
    pub fn start(
        exe: &Path,
        system: &'static str,
        n: usize,
        args: &[&str],
    ) -> std::io::Result<LocalCluster> {
        LocalCluster::new(exe, system, n, args)?.started()
    }

    /// As [`LocalCluster::start`], with each node's data directory on its
    /// own `faultline lazyfs` (root and /dev/fuse): `bench node --lazyfs`.
    pub fn start_on_lazyfs(
        exe: &Path,
        system: &'static str,
        n: usize,
        args: &[&str],
    ) -> std::io::Result<LocalCluster> {
        let mut cluster = LocalCluster::new(exe, system, n, args)?;
        for i in 0..n {
            cluster.mount_lazyfs(i)?;
        }
        cluster.started()
    }

    /// Starts every node.
    fn started(mut self) -> std::io::Result<LocalCluster> {
        for i in 0..self.nodes.len() {
            self.start_node(i)?;
        }
        Ok(self)
    }

    /// Mounts a lazy file system on node `i`'s data directory and waits
    /// (at most 10 s) until it is mounted.
    fn mount_lazyfs(&mut self, i: usize) -> std::io::Result<()> {
        let data = &self.nodes[i].data_dir;
        let with = |ext: &str| data.with_extension(ext);
        std::fs::create_dir_all(with("backing"))?;
        let child = Command::new(&self.exe)
            .args(["lazyfs", "mount", "--backing"])
            .arg(with("backing"))
            .arg("--mount")
            .arg(data)
            .arg("--socket")
            .arg(with("sock"))
            .arg("--pidfile")
            .arg(with("pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(with("lazyfs.log"))?)
            .spawn()?;
        self.lazyfs.push(child);
        for _ in 0..1000 {
            if with("pid").exists() {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Err(std::io::Error::other(format!(
            "faultline lazyfs did not mount on {}: {}",
            data.display(),
            std::fs::read_to_string(with("lazyfs.log")).unwrap_or_default()
        )))
    }

    /// The cluster's nodes and folders, none started.
    fn new(
        exe: &Path,
        system: &'static str,
        n: usize,
        args: &[&str],
    ) -> std::io::Result<LocalCluster> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(crate::seed::draw());
        let dir = std::env::temp_dir().join(format!(
            "faultline-{system}-{}-{:x}",
            std::process::id(),
            rng.random::<u64>()
        ));
        std::fs::create_dir_all(&dir)?;
        let mut nodes = Vec::with_capacity(n);
        for i in 1..=n {
            let addr = free_loopback_addr(&mut rng)?;
            nodes.push(LocalNode {
                id: format!("n{i}"),
                addr,
                data_dir: dir.join(format!("n{i}")),
                child: None,
            });
        }
        Ok(LocalCluster {
            exe: exe.into(),
            system,
            dir,
            nodes,
            args: args.iter().map(|a| a.to_string()).collect(),
            lazyfs: Vec::new(),
        })
    }

    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    /// (Re)starts node `i` from its data dir.
    pub fn start_node(&mut self, i: usize) -> std::io::Result<()> {
        let node = &self.nodes[i];
        std::fs::create_dir_all(&node.data_dir)?;
        let peers: Vec<String> = self
            .nodes
            .iter()
            .filter(|p| p.id != node.id)
            .map(|p| format!("{}={}", p.id, p.addr))
            .collect();
        let log = File::options()
            .create(true)
            .append(true)
            .open(node.data_dir.join("node.log"))?;
        let child = Command::new(&self.exe)
            .args([
                "node",
                self.system,
                "--id",
                &node.id,
                "--listen",
                &node.addr,
                "--peers",
                &peers.join(","),
            ])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.nodes[i].child = Some(child);
        Ok(())
    }

    /// kill -9 node `i` and reap it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`) node `i`.
    pub fn pause(&self, i: usize, stop: bool) {
        if let Some(pid) = self.nodes[i].pid() {
            let signal = if stop { "-STOP" } else { "-CONT" };
            let _ = Command::new("kill")
                .args([signal, &pid.to_string()])
                .status();
        }
    }

    /// A connection to node `i`.
    pub async fn client(&self, i: usize) -> Result<Client, Indefinite> {
        Client::connect(&self.nodes[i].addr, Duration::from_secs(1)).await
    }

    /// Waits until every node in `among` answers a status request (for
    /// systems without a leader, like 2PC); false on timeout.
    pub async fn wait_until_up(&self, among: &[usize], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        for &i in among {
            while self.status(i).await.is_err() {
                if Instant::now() >= deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        true
    }

    /// Waits until the cluster serves clients: a leader agreed on (Raft,
    /// Paxos), or every node answering (2PC and 3PC, where any node coordinates).
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        match self.system {
            "twopc" | "threepc" => self.wait_until_up(&all, timeout).await,
            _ => self.wait_for_leader(&all, timeout).await.is_some(),
        }
    }

    /// Asks node `i` for its status.
    pub async fn status(&self, i: usize) -> Result<Status, Indefinite> {
        let timeout = Duration::from_millis(500);
        let client = Client::connect(&self.nodes[i].addr, timeout).await?;
        match client.call(Operation::Status, timeout).await? {
            Outcome::Ok { value } => {
                serde_json::from_value(value).map_err(|e| Indefinite::Disconnected {
                    addr: self.nodes[i].addr.clone(),
                    why: format!("bad status: {e}"),
                })
            }
            other => Err(Indefinite::Disconnected {
                addr: self.nodes[i].addr.clone(),
                why: format!("status: {other:?}"),
            }),
        }
    }

    /// Waits until one of the nodes in `among` says it leads and the others
    /// of `among` that answer agree; returns its position.
    pub async fn wait_for_leader(&self, among: &[usize], timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let mut statuses = Vec::new();
            for &i in among {
                if let Ok(s) = self.status(i).await {
                    statuses.push((i, s));
                }
            }
            let leaders: Vec<&(usize, Status)> = statuses
                .iter()
                .filter(|(_, s)| s.role == "leader")
                .collect();
            if let [(i, leader)] = leaders.as_slice() {
                let agreed = statuses
                    .iter()
                    .all(|(_, s)| s.leader.as_deref() == Some(&leader.id) && s.term == leader.term);
                if agreed && statuses.len() * 2 > self.nodes.len() {
                    return Some(*i);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Every node's log, for a failure message.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("----- {} ({})\n{}", n.id, n.addr, n.log()))
            .collect()
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.pause(i, false);
            self.kill(i);
        }
        // The helpers unmount on SIGTERM.
        for helper in &mut self.lazyfs {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(helper.id() as i32, libc::SIGTERM) };
            let _ = helper.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A random 127.x.y.z address with a port the OS says is free there. Other
/// tests run on this machine at the same time; a random address makes a
/// clash on the port between probing and the node's bind unlikely.
fn free_loopback_addr(rng: &mut rand_chacha::ChaCha8Rng) -> std::io::Result<String> {
    let ip = format!(
        "127.{}.{}.{}",
        rng.random_range(1..255u8),
        rng.random_range(0..255u8),
        rng.random_range(2..255u8)
    );
    let probe = TcpListener::bind(format!("{ip}:0"))?;
    let port = probe.local_addr()?.port();
    Ok(format!("{ip}:{port}"))
}
