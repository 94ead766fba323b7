//! What a run leaves on a local cluster when its controller is killed, and
//! cleaning it up: `faultline cluster status` (per host: does it answer, does
//! its node run, what does the node say, which faults are still in place;
//! per cluster: who made it and whether that process still runs) and
//! `faultline cluster down` / `faultline heal` (heal every host by its
//! journal, kill the nodes, remove the cluster).
//!
//! Everything here is found from the hosts and the cluster's state file
//! alone, since the controller that knew is gone. Without a name, only
//! orphans are cleaned: clusters made for a run whose controller process is
//! gone ([`cluster::orphans`]); a hand-made cluster, one left running on
//! purpose and one whose run still runs are never touched.

use crate::cluster::{self, ClusterError, Host, Resource, Standing, State};
use crate::net::{self, InPlace};
use crate::system::bundled::db::{self, NodeReport};
use crate::system::{Layout, daemon};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// How long a host may take to run `true` before it counts as not answering.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// One host as `cluster status` shows it.
#[derive(Debug)]
pub struct HostReport {
    pub name: String,
    pub addr: std::net::IpAddr,
    /// How long `true` took on the host, or why it failed.
    pub answers: Result<f64, String>,
    /// The deployed node; `None` when the host does not answer.
    pub node: Option<Result<NodeReport, String>>,
    /// The heal journal's entries and what is in place for each; `None`
    /// when the host does not answer.
    pub faults: Option<Result<Vec<InPlace>, String>>,
}

/// A local cluster as `cluster status` shows it.
#[derive(Debug)]
pub struct ClusterReport {
    pub state: State,
    pub standing: Standing,
    pub hosts: Vec<HostReport>,
}

/// Looks at every host of the local cluster `name` in parallel.
pub fn inspect(name: &str) -> Result<ClusterReport, ClusterError> {
    cluster::validate_name(name)?;
    let state = State::load(name)?;
    let c = cluster::open_state(&state)?;
    let layout = Layout::new(&c.host_dir);
    let inspected = crate::fan_out::on_every(&c.hosts, |h| inspect_host(h, &layout));
    let hosts = c
        .hosts
        .iter()
        .zip(inspected)
        .map(|(h, report)| {
            report.unwrap_or_else(|panicked| HostReport {
                name: h.name.clone(),
                addr: h.addr,
                answers: Err(format!("the inspection panicked: {panicked}")),
                node: None,
                faults: None,
            })
        })
        .collect();
    Ok(ClusterReport {
        standing: state.standing(),
        state,
        hosts,
    })
}

fn inspect_host(host: &Host, layout: &Layout) -> HostReport {
    let started = Instant::now();
    let answers = host
        .remote
        .run("true", PROBE_TIMEOUT)
        .map(|_| started.elapsed().as_secs_f64() * 1e3)
        .map_err(|e| e.to_string());
    let (node, faults) = if answers.is_ok() {
        (
            Some(db::inspect_node(host, layout).map_err(|e| e.to_string())),
            Some(
                net::in_place(host.remote.as_ref(), net::DEFAULT_STATE_DIR)
                    .map_err(|e| e.to_string()),
            ),
        )
    } else {
        (None, None)
    };
    HostReport {
        name: host.name.clone(),
        addr: host.addr,
        answers,
        node,
        faults,
    }
}

impl std::fmt::Display for ClusterReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.state;
        writeln!(
            f,
            "cluster {} ({}), controller {}",
            s.name, s.backend, s.controller_addr
        )?;
        writeln!(f, "  owner: {}", self.standing)?;
        if let Some(inv) = &s.inventory {
            writeln!(f, "  SSH inventory: {}", inv.display())?;
        }
        for h in &self.hosts {
            match &h.answers {
                Ok(ms) => writeln!(f, "  {:<4} {:<15} answers ({ms:.1} ms)", h.name, h.addr)?,
                Err(e) => writeln!(f, "  {:<4} {:<15} DOWN: {e}", h.name, h.addr)?,
            }
            match &h.node {
                Some(Ok(node)) => writeln!(f, "       node: {}", describe_node(node))?,
                Some(Err(e)) => writeln!(f, "       node: unknown: {e}")?,
                None => {}
            }
            match &h.faults {
                Some(Ok(faults)) if faults.is_empty() => writeln!(f, "       faults: none")?,
                Some(Ok(faults)) => {
                    writeln!(f, "       faults (heal journal):")?;
                    for fault in faults {
                        let now = if fault.now.is_empty() {
                            "(nothing in place)".to_string()
                        } else {
                            fault.now.join("; ")
                        };
                        writeln!(f, "         {}: {now}", fault.entry)?;
                    }
                }
                Some(Err(e)) => writeln!(f, "       faults: unknown: {e}")?,
                None => {}
            }
        }
        Ok(())
    }
}

/// `raft running, pid 42; leader, term 3, leader n1` and the like.
fn describe_node(node: &NodeReport) -> String {
    let mut s = match &node.system {
        Some(system) => format!("{system} {}", node.process.describe()),
        None => node.process.describe(),
    };
    match &node.status {
        Some(Ok(st)) => {
            let _ = write!(
                s,
                "; {}, term {}, leader {}",
                st.role,
                st.term,
                st.leader.as_deref().unwrap_or("none")
            );
        }
        Some(Err(e)) => {
            let _ = write!(s, "; does not answer status: {e}");
        }
        None => {}
    }
    s
}

/// What cleaning one host did.
#[derive(Debug)]
pub struct HostCleaned {
    pub name: String,
    /// Why the host did not answer; then nothing ran there (removing the
    /// cluster takes its faults and processes with it).
    pub unreachable: Option<String>,
    /// The journal entries undone, or why healing failed.
    pub healed: Result<Vec<String>, String>,
    /// The node killed (its pid), none running, or why not.
    pub killed: Result<Option<u32>, String>,
}

/// What cleaning one cluster did.
#[derive(Debug)]
pub struct Cleaned {
    pub name: String,
    pub standing: Standing,
    pub hosts: Vec<HostCleaned>,
    /// What removing the cluster removed (from its state file).
    pub removed: Vec<String>,
    /// Why removing it failed, if it did: the one failure that leaves
    /// something behind (healing and killing are undone by removal anyway).
    pub error: Option<ClusterError>,
}

/// Heals every host of the local cluster `name` by its journal, kills its
/// nodes, then removes it as `cluster down` does. Each step goes on past
/// failures (a host already gone cannot be healed: removing it removes its
/// faults too). `Ok(None)` when there is no such cluster.
pub fn clean(name: &str) -> Result<Option<Cleaned>, ClusterError> {
    cluster::validate_name(name)?;
    let state = match State::load(name) {
        Ok(s) => s,
        Err(ClusterError::NotFound(..)) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some(clean_state(state)))
}

/// What [`clean_orphans`] did.
#[derive(Debug)]
pub struct Sweep {
    /// One per orphan, in name order.
    pub cleaned: Vec<Cleaned>,
    /// The other clusters with where they stand (or why their state could
    /// not be read).
    pub left: Vec<(String, Result<Standing, ClusterError>)>,
}

/// Cleans every orphaned cluster (see the module doc).
pub fn clean_orphans() -> Sweep {
    let orphans = cluster::orphans();
    let left = cluster::list()
        .into_iter()
        .filter(|n| !orphans.iter().any(|o| &o.name == n))
        .map(|n| {
            let standing = State::load(&n).map(|s| s.standing());
            (n, standing)
        })
        .collect();
    Sweep {
        cleaned: orphans.into_iter().map(clean_state).collect(),
        left,
    }
}

fn clean_state(state: State) -> Cleaned {
    let standing = state.standing();
    let hosts = match cluster::open_state(&state) {
        Ok(c) => {
            let layout = Layout::new(&c.host_dir);
            let cleaned = crate::fan_out::on_every(&c.hosts, |h| heal_and_kill(h, &layout));
            c.hosts
                .iter()
                .zip(cleaned)
                .map(|(h, cleaned)| {
                    cleaned.unwrap_or_else(|panicked| HostCleaned {
                        name: h.name.clone(),
                        unreachable: Some(format!("the cleaning panicked: {panicked}")),
                        healed: Ok(Vec::new()),
                        killed: Ok(None),
                    })
                })
                .collect()
        }
        Err(e) => {
            tracing::warn!("cluster {}: {e}; removing it without healing", state.name);
            Vec::new()
        }
    };
    let error = cluster::down(&state.name).err();
    Cleaned {
        name: state.name.clone(),
        standing,
        hosts,
        removed: removed(&state),
        error,
    }
}

/// Heals one host by its journal, then SIGKILLs its node if one runs.
fn heal_and_kill(host: &Host, layout: &Layout) -> HostCleaned {
    let remote = host.remote.as_ref();
    let mut done = HostCleaned {
        name: host.name.clone(),
        unreachable: None,
        healed: Ok(Vec::new()),
        killed: Ok(None),
    };
    if let Err(e) = remote.run("true", PROBE_TIMEOUT) {
        done.unreachable = Some(e.to_string());
        return done;
    }
    done.healed = net::heal_remote(remote, net::DEFAULT_STATE_DIR).map_err(|e| e.to_string());
    done.killed = daemon::inspect(remote, &layout.pidfile())
        .and_then(|p| match p {
            daemon::ProcessState::Running { pid, .. } => {
                daemon::kill_by_pidfile(remote, &layout.pidfile()).map(|()| Some(pid))
            }
            _ => Ok(None),
        })
        .map_err(|e| e.to_string());
    done
}

/// The recorded resources in words: `6 network namespaces, veth fl6401, ...`.
fn removed(state: &State) -> Vec<String> {
    let mut netns = Vec::new();
    let mut out = Vec::new();
    for r in &state.resources {
        match r {
            Resource::Netns { name } => netns.push(name.as_str()),
            Resource::Veth { name } => out.push(format!("veth {name}")),
            Resource::DockerContainer { name } => out.push(format!("container {name}")),
            Resource::DockerNetwork { name } => out.push(format!("Docker network {name}")),
            Resource::Dir { path } | Resource::NsDir { path } => {
                out.push(path.display().to_string())
            }
            Resource::SubnetClaim { .. } => {}
        }
    }
    if !netns.is_empty() {
        out.insert(
            0,
            format!("{} network namespaces ({})", netns.len(), netns.join(" ")),
        );
    }
    out
}

impl std::fmt::Display for Cleaned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.standing {
            Standing::Orphaned { pid, why } => writeln!(
                f,
                "cluster {}: orphaned, its run's controller (pid {pid}) is gone ({why})",
                self.name
            )?,
            other => writeln!(f, "cluster {}: {other}", self.name)?,
        }
        for h in &self.hosts {
            if let Some(e) = &h.unreachable {
                writeln!(
                    f,
                    "  {}: does not answer, nothing healed or killed ({e})",
                    h.name
                )?;
                continue;
            }
            let healed = match &h.healed {
                Ok(undone) if undone.is_empty() => "nothing to heal".to_string(),
                Ok(undone) => format!("healed {}", undone.join(", ")),
                Err(e) => format!("not healed ({e})"),
            };
            let killed = match &h.killed {
                Ok(Some(pid)) => format!("node pid {pid} killed"),
                Ok(None) => "no node running".to_string(),
                Err(e) => format!("node not killed ({e})"),
            };
            writeln!(f, "  {}: {healed}; {killed}", h.name)?;
        }
        match &self.error {
            None => writeln!(f, "  removed: {}", self.removed.join(", ")),
            Some(e) => writeln!(f, "  removing it FAILED: {e}"),
        }
    }
}
