//! Making hosts: local clusters of network namespaces or Docker containers
//! (`faultline cluster up/status/down`), and SSH labs described by an
//! inventory (hosts.yaml). Whatever the kind, the result is a [`Cluster`]:
//! hosts with their names, addresses and [`Remote`]s, and the controller's
//! own address on the cluster network (which partitions must never block).
//!
//! A local cluster records everything it makes in a state file
//! (`<clusters dir>/<name>/state.json`) *before* making it, so `down` removes
//! exactly that, even after a crash half-way through `up`, and is idempotent.
//! The state also names the controller process that made the cluster and
//! why (`owner.rs`), so a run's cluster whose controller was killed is told
//! from one in use or one made by hand ([`orphans`]).
//! What is not here: preparing the OS (`os`), deploying nodes (`db`), faults.

pub mod bench;
pub mod docker;
pub mod image;
pub mod inventory;
pub mod netns;
mod owner;
mod sshlab;
mod subnet;

use crate::control::{Remote, RemoteError};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

pub use owner::{Owner, Purpose, Standing};

/// Where a host keeps faultline's files (binary, data, logs, pidfiles) unless
/// an inventory says otherwise.
pub const DEFAULT_HOST_DIR: &str = "/opt/faultline";

/// What kind of hosts a cluster has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Network namespaces on this machine.
    Netns,
    /// Docker containers on a user-defined network.
    Docker,
    /// Hosts reached over SSH, from an inventory (hosts.yaml).
    Ssh,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Netns => "netns",
            Backend::Docker => "docker",
            Backend::Ssh => "ssh",
        })
    }
}

/// One host of a cluster.
#[derive(Clone)]
pub struct Host {
    /// n1, n2, ...
    pub name: String,
    /// The host's address on the cluster network: what nodes listen on and
    /// partitions cut.
    pub addr: IpAddr,
    pub remote: Arc<dyn Remote>,
}

/// Hosts ready to be used, whatever their kind.
#[derive(Clone)]
pub struct Cluster {
    pub name: String,
    pub backend: Backend,
    pub hosts: Vec<Host>,
    /// The controller's address on the cluster network; never to be blocked.
    pub controller_addr: IpAddr,
    /// The directory faultline uses on every host (binary, data, logs).
    pub host_dir: String,
}

impl Cluster {
    /// All remotes, in host order (for [`crate::control::on_all`]).
    pub fn remotes(&self) -> Vec<Arc<dyn Remote>> {
        self.hosts.iter().map(|h| h.remote.clone()).collect()
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }
}

#[derive(Debug, Error)]
pub enum ClusterError {
    #[error("bad cluster name {0:?}: use 1-20 characters a-z, 0-9 and '-', starting with a letter")]
    BadName(String),
    #[error("cluster {0:?} already exists; run `faultline cluster down --name {0}` first")]
    Exists(String),
    #[error("no cluster named {0:?} (no state file in {1})")]
    NotFound(String, PathBuf),
    // Transparent: its text is the remote error's, and so is its source, so
    // `{:#}` prints each host's error once, not once per wrapper.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error("{path}: {detail}")]
    File { path: PathBuf, detail: String },
    #[error("{0}")]
    Setup(String),
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> ClusterError {
    ClusterError::File {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

/// Where local clusters keep their state: `$FAULTLINE_CLUSTERS_DIR`, or
/// /var/lib/faultline/clusters.
pub fn clusters_dir() -> PathBuf {
    std::env::var_os("FAULTLINE_CLUSTERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/faultline/clusters"))
}

/// What `cluster up` should make.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub name: String,
    pub backend: Backend,
    pub nodes: usize,
    /// netns only: run sshd in every host and write an SSH inventory.
    pub ssh: bool,
    /// docker only: give every container /dev/fuse and CAP_SYS_ADMIN, which
    /// the lazy file system of disk faults needs to mount (netns and SSH
    /// hosts have what their machine has).
    pub disk_faults: bool,
    /// docker only: the faultline executable baked into the node image.
    pub binary: PathBuf,
}

/// The most hosts one local cluster may have (addresses .11 to .(10+N) of a /24).
pub const MAX_NODES: usize = 200;

/// What was made, recorded before it is made (see the module doc).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub name: String,
    pub backend: Backend,
    pub subnet: String,
    pub controller_addr: IpAddr,
    pub hosts: Vec<HostState>,
    /// Everything to remove on `down`, in the order it was made.
    pub resources: Vec<Resource>,
    /// netns --ssh: the inventory written for the SSH lab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<PathBuf>,
    /// The process that made the cluster and why (absent in state written
    /// by older versions: such a cluster is never taken for an orphan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostState {
    pub name: String,
    pub addr: IpAddr,
    /// netns: the host's network namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// docker: the host's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// One thing `up` made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Resource {
    /// A claim on a 10.x.y.0/24 subnet (a file in the clusters dir).
    SubnetClaim {
        path: PathBuf,
    },
    /// A directory on the controller (state, keys, per-host files).
    Dir {
        path: PathBuf,
    },
    /// A private bind mount holding persistent namespace files.
    NsDir {
        path: PathBuf,
    },
    /// A network namespace (processes in it are killed on `down`).
    Netns {
        name: String,
    },
    /// A veth in the controller's namespace (deleting it deletes its peer).
    Veth {
        name: String,
    },
    DockerNetwork {
        name: String,
    },
    DockerContainer {
        name: String,
    },
}

impl State {
    fn path(name: &str) -> PathBuf {
        clusters_dir().join(name).join("state.json")
    }

    pub fn load(name: &str) -> Result<State, ClusterError> {
        let path = State::path(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ClusterError::NotFound(name.to_string(), clusters_dir()));
            }
            Err(e) => return Err(file_err(&path, e)),
        };
        serde_json::from_str(&text)
            .map_err(|e| file_err(&path, format!("corrupt cluster state: {e}")))
    }

    /// Writes the state atomically (a crash leaves the old or the new one).
    fn save(&self) -> Result<(), ClusterError> {
        let path = State::path(&self.name);
        let text = serde_json::to_string_pretty(self).map_err(|e| file_err(&path, e))?;
        crate::atomic_file::write(&path, text.as_bytes()).map_err(|e| file_err(&path, e))
    }

    /// Records `resource` (and saves) before the caller makes it.
    fn record(&mut self, resource: Resource) -> Result<(), ClusterError> {
        self.resources.push(resource);
        self.save()
    }

    pub fn dir(&self) -> PathBuf {
        clusters_dir().join(&self.name)
    }

    /// Whether the cluster is in use, kept, or orphaned (see [`Standing`]).
    pub fn standing(&self) -> Standing {
        self.owner
            .as_ref()
            .map_or(Standing::Unknown, Owner::standing)
    }
}

pub fn validate_name(name: &str) -> Result<(), ClusterError> {
    let ok = (1..=20).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ClusterError::BadName(name.to_string()))
    }
}

/// Makes a local cluster (see [`UpOptions`]) and returns it ready to use.
/// On failure, whatever was made is removed again. The state records this
/// process as the owner, the cluster being for its use only
/// ([`Purpose::Run`]): once the process is gone without removing it, the
/// cluster is an orphan that `cluster down` and `heal` clean up.
pub fn up(opts: &UpOptions) -> Result<Cluster, ClusterError> {
    up_as(opts, Purpose::Run)
}

/// [`up`] with the purpose given: `cluster up` says [`Purpose::Hand`]
/// whatever the name, so a hand-made cluster is never taken for an orphan.
pub fn up_as(opts: &UpOptions, purpose: Purpose) -> Result<Cluster, ClusterError> {
    validate_name(&opts.name)?;
    if !(1..=MAX_NODES).contains(&opts.nodes) {
        return Err(ClusterError::Setup(format!(
            "--nodes must be 1 to {MAX_NODES}, not {}",
            opts.nodes
        )));
    }
    if opts.ssh && opts.backend != Backend::Netns {
        return Err(ClusterError::Setup(
            "--ssh is only for --backend netns (Docker hosts are reached with docker exec)".into(),
        ));
    }
    if opts.disk_faults && opts.backend != Backend::Docker {
        return Err(ClusterError::Setup(
            "--disk-faults is only for --backend docker (netns hosts use this machine's /dev/fuse)"
                .into(),
        ));
    }
    if opts.backend == Backend::Ssh {
        return Err(ClusterError::Setup(
            "an SSH cluster is not made, it is described: write hosts.yaml (see README)".into(),
        ));
    }
    let dir = clusters_dir().join(&opts.name);
    std::fs::create_dir_all(clusters_dir()).map_err(|e| file_err(&clusters_dir(), e))?;
    // Creating the directory is the lock on the name.
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(ClusterError::Exists(opts.name.clone()));
        }
        Err(e) => return Err(file_err(&dir, e)),
    }
    let (claim, net) = match subnet::claim(&opts.name) {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let mut state = State {
        name: opts.name.clone(),
        backend: opts.backend,
        subnet: format!("{}/24", net.base()),
        controller_addr: IpAddr::V4(net.addr(1)),
        hosts: Vec::new(),
        resources: vec![
            Resource::Dir { path: dir },
            Resource::SubnetClaim { path: claim },
        ],
        inventory: None,
        owner: Owner::this_process(purpose),
    };
    let made = state.save().and_then(|()| match opts.backend {
        Backend::Netns => netns::up(&mut state, &net, opts.nodes).and_then(|()| {
            if opts.ssh {
                sshlab::up(&mut state)
            } else {
                Ok(())
            }
        }),
        Backend::Docker => docker::up(&mut state, &net, opts),
        Backend::Ssh => unreachable!("rejected above"),
    });
    if let Err(e) = made {
        let _ = remove(&state);
        return Err(e);
    }
    open_state(&state)
}

/// Marks the cluster `name` as left running on purpose by its run
/// (`--leave-running`): from then on it is kept like a hand-made cluster,
/// not taken for an orphan once the run's controller exits.
pub fn keep(name: &str) -> Result<(), ClusterError> {
    validate_name(name)?;
    let mut state = State::load(name)?;
    if let Some(owner) = &mut state.owner {
        owner.purpose = Purpose::LeftRunning;
    }
    state.save()
}

/// The local clusters made for runs whose controller is gone (see
/// [`Standing::Orphaned`]), with their state. A state file that cannot be
/// read is left out: nothing is removed on a doubt.
pub fn orphans() -> Vec<State> {
    list()
        .into_iter()
        .filter_map(|name| State::load(&name).ok())
        .filter(|state| state.standing().is_orphaned())
        .collect()
}

/// Removes everything the cluster `name` made. Returns false when there was
/// no such cluster (nothing to do).
pub fn down(name: &str) -> Result<bool, ClusterError> {
    validate_name(name)?;
    match State::load(name) {
        Ok(state) => remove(&state).map(|()| true),
        Err(ClusterError::NotFound(..)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes every recorded resource, newest first, going on past errors;
/// reports the first one. Removing something that is already gone is fine.
fn remove(state: &State) -> Result<(), ClusterError> {
    let mut first_error = None;
    let mut note = |r: Result<(), ClusterError>| {
        if let Err(e) = r {
            tracing::warn!("cluster {} down: {e}", state.name);
            first_error.get_or_insert(e);
        }
    };
    match state.backend {
        Backend::Netns => note(netns::down(state)),
        Backend::Docker => note(docker::down(state)),
        Backend::Ssh => {}
    }
    for resource in state.resources.iter().rev() {
        match resource {
            Resource::SubnetClaim { path } | Resource::Dir { path } => note(remove_path(path)),
            _ => {}
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn remove_path(path: &Path) -> Result<(), ClusterError> {
    let result = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(file_err(path, e)),
        _ => Ok(()),
    }
}

/// The cluster `name` as it was made (hosts reached directly: nsenter or docker exec).
pub fn open(name: &str) -> Result<Cluster, ClusterError> {
    validate_name(name)?;
    open_state(&State::load(name)?)
}

/// The cluster a loaded state describes (see [`open`]).
pub fn open_state(state: &State) -> Result<Cluster, ClusterError> {
    let hosts = state
        .hosts
        .iter()
        .map(|h| {
            let remote: Arc<dyn Remote> = match (state.backend, &h.netns, &h.container) {
                (Backend::Netns, Some(ns), _) => Arc::new(netns::remote(state, h, ns)),
                (Backend::Docker, _, Some(c)) => Arc::new(crate::control::docker::host(&h.name, c)),
                _ => {
                    return Err(ClusterError::Setup(format!(
                        "cluster {}: host {} has no namespace or container",
                        state.name, h.name
                    )));
                }
            };
            Ok(Host {
                name: h.name.clone(),
                addr: h.addr,
                remote,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Cluster {
        name: state.name.clone(),
        backend: state.backend,
        hosts,
        controller_addr: state.controller_addr,
        host_dir: DEFAULT_HOST_DIR.to_string(),
    })
}

/// Names of the local clusters that have a state file.
pub fn list() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(clusters_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("state.json").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// One host's health as `cluster status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    pub name: String,
    pub addr: IpAddr,
    /// Time for `true` to run on the host; `None` with `error` when it failed.
    pub exec_ms: Option<f64>,
    pub error: Option<String>,
}

/// Runs a trivial command on every host (in parallel) to see who answers.
pub fn status(cluster: &Cluster) -> Vec<HostStatus> {
    let probed = crate::fan_out::on_every(&cluster.hosts, |h| {
        let started = Instant::now();
        let result = h.remote.run("true", Duration::from_secs(10));
        let exec_ms = result
            .as_ref()
            .ok()
            .map(|_| started.elapsed().as_secs_f64() * 1e3);
        HostStatus {
            name: h.name.clone(),
            addr: h.addr,
            exec_ms,
            error: result.err().map(|e| e.to_string()),
        }
    });
    cluster
        .hosts
        .iter()
        .zip(probed)
        .map(|(h, status)| {
            status.unwrap_or_else(|panicked| HostStatus {
                name: h.name.clone(),
                addr: h.addr,
                exec_ms: None,
                error: Some(format!("the status probe panicked: {panicked}")),
            })
        })
        .collect()
}

/// Tears the cluster down when dropped, even when a test fails or panics.
pub struct ClusterGuard {
    pub name: String,
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if let Err(e) = down(&self.name) {
            eprintln!("cluster {}: teardown failed: {e}", self.name);
        }
    }
}

/// A 10.a.b.0/24 subnet claimed for one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub a: u8,
    pub b: u8,
}

impl Subnet {
    pub fn addr(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, self.a, self.b, host)
    }
    pub fn base(&self) -> Ipv4Addr {
        self.addr(0)
    }
    /// The address of host number `i` (1-based): 10.a.b.(10+i).
    pub fn node_addr(&self, i: usize) -> Ipv4Addr {
        debug_assert!((1..=MAX_NODES).contains(&i));
        self.addr(10 + i as u8)
    }
    /// A short tag unique while the claim is held, for names limited to 15
    /// characters (interfaces): `fl` + 4 hex digits.
    pub fn tag(&self) -> String {
        format!("fl{:02x}{:02x}", self.a, self.b)
    }
}

/// A few lines saying what the cluster is and how to reach it.
pub fn describe(cluster: &Cluster) -> String {
    let mut s = format!(
        "cluster {} ({}), controller {}\n",
        cluster.name, cluster.backend, cluster.controller_addr
    );
    if let Ok(state) = State::load(&cluster.name)
        && let Some(inv) = &state.inventory
    {
        s += &format!("SSH inventory: {}\n", inv.display());
    }
    for h in &cluster.hosts {
        s += &format!("  {:<4} {}\n", h.name, h.addr);
    }
    s
}
