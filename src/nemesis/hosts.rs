//! [`HostFaults`]: the real [`Faults`], carrying out actions on real hosts
//! through `net` mechanisms, all targeted hosts in parallel.
//!
//! What it cannot know by itself comes from a [`NodeControl`] (the runner
//! builds one from `db`): a node's pid, how to start it again after a kill,
//! who claims leadership, and who just voted in an election.

use super::fault::{Action, DiskFault, DiskMode};
use super::{FaultError, Faults};
use crate::net::HostNet;
use crate::system::{Db, Layout};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the nemesis needs from the system under test.
pub trait NodeControl: Send + Sync {
    /// The pid of the node's running process, on its host.
    fn pid(&self, node: &str) -> Result<u32, String>;
    /// Starts the node again (after a kill).
    fn start(&self, node: &str) -> Result<(), String>;
    /// The nodes that claim to lead, asked over the client protocol.
    fn primaries(&self) -> Result<Vec<String>, String>;
    /// The nodes that just voted in an election under way, watched for up to
    /// `within` over the client protocol (see [`Faults::voters`]).
    fn voters(&self, within: Duration) -> Result<Vec<String>, String>;
    /// Whether some node may lead (see [`super::Faults::has_primaries`]).
    fn has_primaries(&self) -> bool {
        true
    }
    /// Whether elections can be watched (see [`super::Faults::has_votes`]).
    fn has_votes(&self) -> bool {
        true
    }
    /// Whether kill, pause and resume signal the node's process and its
    /// children (see [`Db::signals_children`]) rather than its pid alone.
    fn signals_children(&self, _node: &str) -> bool {
        false
    }
}

/// Faults on real hosts, one [`HostNet`] per node.
pub struct HostFaults {
    hosts: Vec<HostNet>,
    control: Arc<dyn NodeControl>,
    killed: Arc<Killed>,
    /// Where each node's lazy file system is (the same on every host), for
    /// disk faults.
    disk: Option<crate::disk::host::Paths>,
}

/// The nodes the nemesis killed and has not started again. A watcher reads
/// it to tell a node the nemesis took down from one that died on its own.
#[derive(Debug, Default)]
pub struct Killed {
    /// A count of changes, and the nodes: a reading taken before and after a
    /// look at the processes is only sound if the count did not move.
    state: Mutex<(u64, BTreeSet<String>)>,
}

impl Killed {
    pub fn snapshot(&self) -> (u64, BTreeSet<String>) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn change(&self, nodes: &[String], killed: bool) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.0 += 1;
        for n in nodes {
            if killed {
                state.1.insert(n.clone());
            } else {
                state.1.remove(n);
            }
        }
    }
}

impl HostFaults {
    pub fn new(hosts: Vec<HostNet>, control: Arc<dyn NodeControl>) -> HostFaults {
        HostFaults {
            hosts,
            control,
            killed: Arc::default(),
            disk: None,
        }
    }

    /// Disk faults act on the lazy file systems at `paths`.
    pub fn with_disk(mut self, paths: crate::disk::host::Paths) -> HostFaults {
        self.disk = Some(paths);
        self
    }

    /// Which nodes this nemesis has killed and not yet started again.
    pub fn killed(&self) -> Arc<Killed> {
        self.killed.clone()
    }

    pub fn hosts(&self) -> &[HostNet] {
        &self.hosts
    }

    fn host(&self, node: &str) -> Result<&HostNet, FaultError> {
        self.hosts
            .iter()
            .find(|h| h.name() == node)
            .ok_or_else(|| FaultError(format!("{node}: no such host")))
    }

    fn pid(&self, node: &str) -> Result<u32, FaultError> {
        self.control
            .pid(node)
            .map_err(|e| FaultError(format!("{node}: no pid for its node process: {e}")))
    }

    /// Runs `f` on the hosts of `nodes` at once. Fails with every host's
    /// error if any failed (the others' changes stay: heal undoes them).
    fn each<T, F>(&self, nodes: &[String], f: F) -> Result<BTreeMap<String, T>, FaultError>
    where
        T: Send,
        F: Fn(&HostNet) -> Result<T, FaultError> + Sync,
    {
        let hosts = nodes
            .iter()
            .map(|n| self.host(n))
            .collect::<Result<Vec<_>, _>>()?;
        super::in_parallel(&hosts, |h| h.name().to_string(), |h| f(h))
    }

    fn all_nodes(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.name().to_string()).collect()
    }
}

fn ms_since(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

impl Faults for HostFaults {
    fn nodes(&self) -> Vec<String> {
        self.all_nodes()
    }

    fn primaries(&self) -> Result<Vec<String>, FaultError> {
        self.control.primaries().map_err(FaultError)
    }

    fn voters(&self, within: Duration) -> Result<Vec<String>, FaultError> {
        self.control.voters(within).map_err(FaultError)
    }

    fn has_primaries(&self) -> bool {
        self.control.has_primaries()
    }

    fn has_votes(&self) -> bool {
        self.control.has_votes()
    }

    fn apply(&self, action: &Action) -> Result<Value, FaultError> {
        let started = Instant::now();
        let mut done = match action {
            Action::StartPartition { grudge, .. } => {
                let addrs: BTreeMap<&str, std::net::IpAddr> =
                    self.hosts.iter().map(|h| (h.name(), h.addr)).collect();
                for name in grudge.keys().chain(grudge.values().flatten()) {
                    if !addrs.contains_key(name.as_str()) {
                        return Err(FaultError(format!(
                            "the grudge names {name:?}, which is not a host"
                        )));
                    }
                }
                // Every host, so one without a grudge loses any earlier rules.
                self.each(&self.all_nodes(), |h| {
                    let blocked: Vec<_> = grudge
                        .get(h.name())
                        .into_iter()
                        .flatten()
                        .map(|n| addrs[n.as_str()])
                        .collect();
                    Ok(h.partition(&blocked)?)
                })?;
                json!({"mechanism": "iptables", "chain": crate::net::iptables::CHAIN_IN})
            }
            Action::StopPartition => {
                self.each(&self.all_nodes(), |h| Ok(h.heal_partition()?))?;
                json!({"mechanism": "iptables"})
            }
            Action::StartPacket { nodes, fault, seed } => {
                let applied = self.each(nodes, |h| {
                    // One seed per host, derived from the action's, so hosts differ.
                    let i = nodes.iter().position(|n| n == h.name()).unwrap_or(0) as u64;
                    Ok(h.packet(fault, seed.wrapping_add(i))?)
                })?;
                json!({ "hosts": applied })
            }
            Action::StopPacket { nodes } => {
                self.each(nodes, |h| Ok(h.heal_packet()?))?;
                Value::Null
            }
            Action::BumpClock { offsets_ms } => {
                let nodes: Vec<String> = offsets_ms.keys().cloned().collect();
                let totals = self.each(&nodes, |h| {
                    if let Ok(pid) = self.control.pid(h.name()) {
                        h.check_faketime_loaded(pid)?;
                    }
                    Ok(h.clock_bump(offsets_ms[h.name()])?)
                })?;
                json!({ "offsets_ms_now": totals, "mechanism": self.clock_mechanism(&nodes) })
            }
            Action::StrobeClock {
                nodes,
                delta_ms,
                period_ms,
                duration_ms,
            } => {
                self.each(nodes, |h| {
                    if let Ok(pid) = self.control.pid(h.name()) {
                        h.check_faketime_loaded(pid)?;
                    }
                    Ok(h.clock_strobe(*delta_ms, *period_ms, *duration_ms)?)
                })?;
                json!({ "mechanism": self.clock_mechanism(nodes) })
            }
            Action::ResetClock { nodes } => {
                let undone = self.each(nodes, |h| Ok(h.clock_reset()?))?;
                json!({ "offsets_ms_undone": undone })
            }
            Action::Kill { nodes } => {
                // Before the kill, so no watcher sees the node gone unexplained.
                self.killed.change(nodes, true);
                let pids = self.each(nodes, |h| {
                    let pid = self.pid(h.name())?;
                    h.kill(pid, self.control.signals_children(h.name()))?;
                    Ok(pid)
                })?;
                json!({ "signal": "SIGKILL", "pids": pids })
            }
            Action::StartDisk { nodes, fault } => {
                let paths = self.disk_paths()?;
                let kills = fault.mode().kills();
                if kills {
                    self.killed.change(nodes, true);
                }
                let done = self.each(nodes, |h| {
                    let mut done = serde_json::Map::new();
                    // A power loss: the unsynced data goes as the node dies,
                    // before an fsync under way (a slow disk's) completes.
                    let pid = if kills {
                        let pid = self.pid(h.name())?;
                        h.signal_kill(pid, self.control.signals_children(h.name()))?;
                        done.insert("pid".into(), json!(pid));
                        Some(pid)
                    } else {
                        None
                    };
                    // One seed per host, derived from the action's, so hosts differ.
                    let i = nodes.iter().position(|n| n == h.name()).unwrap_or(0) as u64;
                    let answer = disk_ctl(h, paths, disk_command(fault, i))?;
                    if let Some(pid) = pid {
                        h.wait_exit(pid)?;
                    }
                    if let Value::Object(answer) = answer {
                        done.extend(answer);
                    }
                    Ok(Value::Object(done))
                })?;
                let mut out = json!({ "mechanism": "lazyfs", "hosts": done });
                if kills {
                    out["signal"] = json!("SIGKILL");
                }
                out
            }
            Action::StopDisk { nodes, mode } if !mode.kills() => {
                let paths = self.disk_paths()?;
                let command = match mode {
                    DiskMode::Slow => crate::disk::Command::Slow { delay_ms: 0 },
                    DiskMode::CorruptRead => crate::disk::Command::CorruptRead(None),
                    _ => crate::disk::Command::Full(false),
                };
                let done = self.each(nodes, |h| disk_ctl(h, paths, command))?;
                json!({ "mechanism": "lazyfs", "hosts": done })
            }
            Action::Start { nodes } | Action::StopDisk { nodes, .. } => {
                let started = self.each(nodes, |h| {
                    self.control
                        .start(h.name())
                        .map_err(|e| FaultError(format!("{}: {e}", h.name())))
                });
                // After the start, failed or not: a node that did not come
                // back is one a watcher should report.
                self.killed.change(nodes, false);
                started?;
                Value::Null
            }
            Action::Pause { nodes } => {
                let pids = self.each(nodes, |h| {
                    let pid = self.pid(h.name())?;
                    h.pause(pid, self.control.signals_children(h.name()))?;
                    Ok(pid)
                })?;
                json!({ "signal": "SIGSTOP", "pids": pids })
            }
            Action::Resume { nodes } => {
                let pids = self.each(nodes, |h| {
                    let pid = self.pid(h.name())?;
                    h.resume(pid, self.control.signals_children(h.name()))?;
                    Ok(pid)
                })?;
                json!({ "signal": "SIGCONT", "pids": pids })
            }
        };
        if let Value::Object(map) = &mut done {
            map.insert("elapsed_ms".to_string(), json!(ms_since(started)));
        } else {
            done = json!({ "elapsed_ms": ms_since(started) });
        }
        Ok(done)
    }

    fn heal(&self) -> Result<Value, FaultError> {
        let undone = self.each(&self.all_nodes(), |h| Ok(h.heal()?))?;
        Ok(json!({ "undone": undone }))
    }
}

/// The helper's command that starts `fault` on the `i`th of its hosts.
fn disk_command(fault: &DiskFault, i: u64) -> crate::disk::Command {
    use crate::disk::Command;
    match *fault {
        DiskFault::LoseUnfsynced => Command::Clear,
        DiskFault::Torn => Command::Torn,
        DiskFault::Slow { delay_ms } => Command::Slow { delay_ms },
        DiskFault::Full => Command::Full(true),
        DiskFault::Corrupt { bits, seed } => Command::Corrupt {
            bits,
            seed: seed.wrapping_add(i),
        },
        DiskFault::CorruptRead { bits, seed } => {
            Command::CorruptRead(Some((bits, seed.wrapping_add(i))))
        }
    }
}

/// Sends `command` to the lazyfs helper on `h`; its answer.
fn disk_ctl(
    h: &HostNet,
    paths: &crate::disk::host::Paths,
    command: crate::disk::Command,
) -> Result<Value, FaultError> {
    crate::disk::host::ctl(h.remote.as_ref(), paths, command)
        .map_err(|e| FaultError(format!("{}: {e}", h.name())))
}

impl HostFaults {
    fn disk_paths(&self) -> Result<&crate::disk::host::Paths, FaultError> {
        self.disk.as_ref().ok_or_else(|| {
            FaultError(
                "disk faults need the lazy file system, which these hosts were not deployed with"
                    .into(),
            )
        })
    }

    fn clock_mechanism(&self, nodes: &[String]) -> BTreeMap<String, &'static str> {
        nodes
            .iter()
            .filter_map(|n| self.host(n).ok())
            .map(|h| {
                let m = match h.clock {
                    crate::net::HostClock::Faketime { .. } => "libfaketime",
                    crate::net::HostClock::Settime => "clock_settime",
                };
                (h.name().to_string(), m)
            })
            .collect()
    }
}

impl HostFaults {
    /// Faults on the hosts of a deployed system: nodes that run under
    /// libfaketime get their offset file moved, the others the real clock
    /// (refused on hosts that share the controller's kernel).
    pub fn for_db(db: Arc<dyn Db>) -> HostFaults {
        let cluster = db.cluster();
        let layout = Layout::new(&cluster.host_dir);
        let hosts = cluster
            .hosts
            .iter()
            .map(|h| {
                let clock = match db.faketime_file() {
                    Some(file) => crate::net::HostClock::Faketime { file },
                    None => crate::net::HostClock::Settime,
                };
                HostNet::new(h.remote.clone(), h.addr, &layout.binary(), clock)
                    .with_controller(cluster.controller_addr)
            })
            .collect();
        HostFaults::new(hosts, Arc::new(DbNodes { db })).with_disk(layout.lazyfs())
    }
}

/// [`NodeControl`] for a deployed system.
pub struct DbNodes {
    pub db: Arc<dyn Db>,
}

impl NodeControl for DbNodes {
    fn pid(&self, node: &str) -> Result<u32, String> {
        match self.db.pid(node) {
            Ok(Some(pid)) => Ok(pid),
            Ok(None) => Err("the node is not running".to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn start(&self, node: &str) -> Result<(), String> {
        self.db.start(node).map_err(|e| e.to_string())
    }

    fn primaries(&self) -> Result<Vec<String>, String> {
        self.db.primaries()
    }

    fn voters(&self, within: Duration) -> Result<Vec<String>, String> {
        self.db.voters(within)
    }

    fn has_primaries(&self) -> bool {
        self.db.has_primaries()
    }

    fn has_votes(&self) -> bool {
        self.db.has_votes()
    }

    fn signals_children(&self, _node: &str) -> bool {
        self.db.signals_children()
    }
}
