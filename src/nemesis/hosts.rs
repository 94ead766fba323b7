//! [`HostFaults`]: the real [`Faults`], carrying out actions on real hosts
//! through `net` mechanisms, all targeted hosts in parallel.
//!
//! What it cannot know by itself comes from a [`NodeControl`] (the runner
//! builds one from `db`): a node's pid, how to start it again after a kill,
//! who claims leadership, and who just voted in an election.

use super::fault::Action;
use super::{FaultError, Faults};
use crate::client::Client;
use crate::net::HostNet;
use crate::nodes::wire::{Operation, Outcome, Status};
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
}

/// Faults on real hosts, one [`HostNet`] per node.
pub struct HostFaults {
    hosts: Vec<HostNet>,
    control: Arc<dyn NodeControl>,
    killed: Arc<Killed>,
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
        }
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
                    h.kill(pid)?;
                    Ok(pid)
                })?;
                json!({ "signal": "SIGKILL", "pids": pids })
            }
            Action::Start { nodes } => {
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
                    h.pause(pid)?;
                    Ok(pid)
                })?;
                json!({ "signal": "SIGSTOP", "pids": pids })
            }
            Action::Resume { nodes } => {
                let pids = self.each(nodes, |h| {
                    let pid = self.pid(h.name())?;
                    h.resume(pid)?;
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

impl HostFaults {
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
    pub fn for_db(db: Arc<crate::db::Db>) -> HostFaults {
        let cluster = &db.cluster;
        let hosts = cluster
            .hosts
            .iter()
            .map(|h| {
                let clock = if db.options.faketime {
                    crate::net::HostClock::Faketime {
                        file: db.layout.faketime_file(),
                    }
                } else {
                    crate::net::HostClock::Settime
                };
                HostNet::new(h.remote.clone(), h.addr, &db.layout.binary(), clock)
                    .with_controller(cluster.controller_addr)
            })
            .collect();
        HostFaults::new(hosts, Arc::new(DbNodes { db }))
    }
}

/// [`NodeControl`] for the bundled nodes deployed by `db`.
pub struct DbNodes {
    pub db: Arc<crate::db::Db>,
}

/// How long a node may take to answer `status` when asked for primaries.
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);

/// How often each node is asked for its status while watching for voters.
/// Asks are pipelined, not one after the other: under a packet delay an
/// answer is a delay old, and a vote is only open for about a round trip.
const VOTERS_POLL: Duration = Duration::from_millis(5);

/// Status asks in flight to one node at most while watching for voters.
const VOTERS_IN_FLIGHT_MAX: usize = 64;

/// How long a node must have been a voter before it counts as one. A node
/// answers a vote request only once its vote is on disk: killed at once, it
/// dies before its answer leaves, and the vote never counted.
const VOTE_SETTLE: Duration = Duration::from_millis(10);

/// Whether `status` is a voter's: a follower that voted for another node in
/// its term and has not heard from a leader since.
fn is_voter(name: &str, status: &Status) -> bool {
    status.role == "follower"
        && status.leader.is_none()
        && status.voted_for.as_ref().is_some_and(|v| v != name)
}

/// What a watch for voters has heard: each node's latest status, and since
/// when each voter has voted as it does now (term and candidate). A vote the
/// node already had in its first answer has no time: it may be old (a node
/// cut off from the leader stays a voter for as long as the cut lasts).
#[derive(Default)]
struct Votes {
    latest: BTreeMap<String, Status>,
    since: BTreeMap<String, (Vote, Option<Instant>)>,
}

/// A term and the candidate voted for in it.
type Vote = (u64, Option<String>);

impl Votes {
    /// Takes in `name`'s status, heard at `now`; returns the nodes seen to
    /// vote during the watch that have kept that vote for [`VOTE_SETTLE`].
    fn observe(&mut self, name: String, status: Status, now: Instant) -> Vec<String> {
        if is_voter(&name, &status) {
            let vote = (status.term, status.voted_for.clone());
            if self.since.get(&name).is_none_or(|(v, _)| *v != vote) {
                let at = self.latest.contains_key(&name).then_some(now);
                self.since.insert(name.clone(), (vote, at));
            }
        } else {
            self.since.remove(&name);
        }
        self.latest.insert(name, status);
        self.since
            .iter()
            .filter(|(_, (_, at))| at.is_some_and(|at| now.duration_since(at) >= VOTE_SETTLE))
            .map(|(n, _)| n.clone())
            .collect()
    }
}

impl DbNodes {
    /// Every node's name and client address.
    fn addrs(&self) -> Result<Vec<(String, String)>, String> {
        self.db
            .cluster
            .hosts
            .iter()
            .map(|h| {
                let addr = self.db.addr(&h.name).map_err(|e| e.to_string())?;
                Ok((h.name.clone(), addr.to_string()))
            })
            .collect()
    }
}

/// Connects to every node that answers (a paused or cut-off node does not).
async fn connect_all(addrs: Vec<(String, String)>) -> Vec<(String, Arc<Client>)> {
    let mut connecting = tokio::task::JoinSet::new();
    for (name, addr) in addrs {
        connecting.spawn(async move {
            let client = Client::connect(&addr, STATUS_TIMEOUT).await.ok()?;
            Some((name, Arc::new(client)))
        });
    }
    let mut clients = Vec::new();
    while let Some(joined) = connecting.join_next().await {
        if let Ok(Some(c)) = joined {
            clients.push(c);
        }
    }
    clients.sort_by(|a, b| a.0.cmp(&b.0));
    clients
}

async fn status_of(client: &Client) -> Option<Status> {
    match client.call(Operation::Status, STATUS_TIMEOUT).await {
        Ok(Outcome::Ok { value }) => serde_json::from_value(value).ok(),
        _ => None,
    }
}

/// Runs `ask` on the caller's runtime if there is one (we are called off
/// its async threads, see [`Faults`]), else on a small one of our own.
fn block_on<T>(ask: impl std::future::Future<Output = T>) -> Result<T, String> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => Ok(handle.block_on(ask)),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(ask))
            .map_err(|e| format!("cannot start a runtime to ask the nodes: {e}")),
    }
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
        let addrs = self.addrs()?;
        block_on(async move {
            let mut leaders = Vec::new();
            for (name, client) in connect_all(addrs).await {
                if status_of(&client).await.is_some_and(|s| s.role == "leader") {
                    leaders.push(name);
                }
            }
            leaders
        })
    }

    fn voters(&self, within: Duration) -> Result<Vec<String>, String> {
        let addrs = self.addrs()?;
        block_on(async move {
            let deadline = Instant::now() + within;
            let (tx, mut heard) = tokio::sync::mpsc::channel(1024);
            let mut watchers = tokio::task::JoinSet::new();
            for (name, addr) in addrs {
                watchers.spawn(watch_status(name, addr, deadline, tx.clone()));
            }
            drop(tx);
            // Ends when every watcher has reached the deadline.
            let mut votes = Votes::default();
            while let Some((name, status)) = heard.recv().await {
                let voters = votes.observe(name, status, Instant::now());
                if !voters.is_empty() {
                    tracing::debug!(?voters, statuses = ?votes.latest, "voters seen");
                    return voters;
                }
            }
            Vec::new()
        })
    }
}

/// Asks the node at `addr` for its status every [`VOTERS_POLL`] until
/// `deadline`, with several asks in flight, and sends each answer to `heard`.
/// Connects again when the node restarts (a killed node refuses at once).
async fn watch_status(
    name: String,
    addr: String,
    deadline: Instant,
    heard: tokio::sync::mpsc::Sender<(String, Status)>,
) {
    let mut client: Option<Arc<Client>> = None;
    let mut asks = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(VOTERS_POLL);
    while Instant::now() < deadline {
        tick.tick().await;
        while asks.try_join_next().is_some() {}
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            client = Client::connect(&addr, VOTERS_POLL * 20)
                .await
                .ok()
                .map(Arc::new);
        }
        if let Some(c) = client.clone()
            && asks.len() < VOTERS_IN_FLIGHT_MAX
        {
            let (name, heard) = (name.clone(), heard.clone());
            asks.spawn(async move {
                if let Some(status) = status_of(&c).await {
                    let _ = heard.send((name, status)).await;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(role: &str, leader: Option<&str>, voted_for: Option<&str>) -> Status {
        Status {
            id: String::new(),
            role: role.into(),
            term: 4,
            leader: leader.map(Into::into),
            voted_for: voted_for.map(Into::into),
            applied: 0,
        }
    }

    #[test]
    fn voters_voted_for_another_node_and_know_no_leader_yet() {
        assert!(is_voter("n2", &status("follower", None, Some("n1"))));
        assert!(!is_voter("n3", &status("follower", None, None)), "no vote");
        assert!(
            !is_voter("n2", &status("follower", Some("n1"), Some("n1"))),
            "n2 heard from the leader: the vote is over"
        );
        assert!(
            !is_voter("n1", &status("candidate", None, Some("n1"))),
            "a vote for oneself is no voter's"
        );
    }

    #[test]
    fn a_voter_counts_once_seen_to_vote_and_keep_its_vote_for_a_while() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut votes = Votes::default();
        let voted = |term, v: &str| Status {
            term,
            ..status("follower", None, Some(v))
        };
        let led = status("follower", Some("n3"), Some("n3"));
        // A vote already there in the first answer may be old: never counted.
        assert!(votes.observe("n4".into(), voted(3, "n5"), ms(0)).is_empty());
        assert!(
            votes
                .observe("n4".into(), voted(3, "n5"), ms(50))
                .is_empty()
        );
        // n2 is seen to vote, then to keep its vote 10 ms.
        assert!(votes.observe("n2".into(), led.clone(), ms(0)).is_empty());
        assert!(votes.observe("n2".into(), voted(4, "n1"), ms(1)).is_empty());
        assert!(votes.observe("n2".into(), voted(4, "n1"), ms(6)).is_empty());
        assert_eq!(votes.observe("n2".into(), voted(4, "n1"), ms(11)), ["n2"]);
        // A vote in a new term starts the wait again.
        assert!(
            votes
                .observe("n2".into(), voted(5, "n3"), ms(12))
                .is_empty()
        );
        assert_eq!(votes.observe("n2".into(), voted(5, "n3"), ms(23)), ["n2"]);
        // So does hearing from a leader in between.
        assert!(votes.observe("n2".into(), led, ms(24)).is_empty());
        assert!(
            votes
                .observe("n2".into(), voted(5, "n3"), ms(30))
                .is_empty()
        );
    }
}
