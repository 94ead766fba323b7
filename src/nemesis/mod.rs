//! The nemesis: faults over time. It decides what to break, where and when
//! (partition shapes, targets, schedules), carries it out through a
//! [`Faults`] implementation, and reports every action as a `nemesis` op.
//!
//! - [`fault`]: the faults a nemesis file names and the [`Action`]s they take.
//! - [`partition`], [`process`]: grudges and targets, from the run's seed.
//! - [`schedule`]: nemesis files (`nemeses/*.yaml`) and their timing.
//! - [`hosts`]: the real [`Faults`], over `net` mechanisms on real hosts.
//! - [`heal`]: healing at start, end, on error, on Ctrl-C/SIGTERM, and after a crash.
//! - [`leftovers`]: what a killed controller left on a local cluster
//!   (`cluster status`), and cleaning orphaned clusters up.
//!
//! The runner calls [`run`] with a schedule, a [`Faults`], the run's
//! generator, a channel for [`NemesisEvent`]s and a stop signal. What is not
//! here: how a fault is made on a host (that is `net`).

pub mod fault;
pub mod heal;
pub mod hosts;
pub mod lasting;
pub mod leftovers;
pub mod partition;
pub mod process;
pub mod schedule;
pub mod standalone;

pub use fault::{Action, FaultSpec};
pub use hosts::{HostFaults, NodeControl};
pub use schedule::Schedule;

use crate::history::{Op, OpType, Process};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::{mpsc, watch};

/// Timeline cycles at most (the stop signal ends a run long before).
const CYCLES_MAX: u64 = 1_000_000;

/// How long a fault on [`process::Targets::Voters`] watches for an election
/// at most (less if its interval is shorter). The watch blocks its timeline,
/// so this also bounds how late a halted nemesis ends.
const VOTERS_WAIT_MAX: Duration = Duration::from_secs(2);

/// The pause between two watches for voters, so that a watch that fails at
/// once (nodes unreachable) does not spin.
const WATCH_PAUSE: Duration = Duration::from_millis(50);

/// Why a fault action failed; the text names the host.
#[derive(Debug, Clone, Error)]
#[error("{0}")]
pub struct FaultError(pub String);

impl From<crate::net::NetError> for FaultError {
    fn from(e: crate::net::NetError) -> Self {
        FaultError(e.to_string())
    }
}

/// What the nemesis acts through. The real one is [`HostFaults`]; tests
/// use a recording fake. Blocking: [`run`] calls it off the async threads.
pub trait Faults: Send + Sync {
    /// Every node of the cluster.
    fn nodes(&self) -> Vec<String>;
    /// The nodes that claim leadership now (asked of the nodes themselves).
    fn primaries(&self) -> Result<Vec<String>, FaultError>;
    /// Watches the nodes for up to `within` until a contested election is
    /// under way, and returns the nodes that just voted in it
    /// ([`process::Targets::Voters`]);
    /// empty if none was seen in time.
    fn voters(&self, within: Duration) -> Result<Vec<String>, FaultError>;
    /// Whether some node may lead (Raft, Paxos, the real systems); faults on
    /// the primaries of a system where none does hit one node instead
    /// ([`FaultSpec::without_primaries`]).
    fn has_primaries(&self) -> bool {
        true
    }
    /// Whether the nodes report their votes, so that a fault on the
    /// [`process::Targets::Voters`] can see an election; one on a system
    /// whose nodes do not (2PC, Paxos, the real systems) is skipped.
    fn has_votes(&self) -> bool {
        true
    }
    /// Carries out `action`; returns what exactly was done (mechanisms,
    /// offsets reached), merged into the history's completion op.
    fn apply(&self, action: &Action) -> Result<Value, FaultError>;
    /// Undoes everything faultline changed on every host (idempotent).
    fn heal(&self) -> Result<Value, FaultError>;
}

/// One nemesis op, before the runner gives it an index and a time.
#[derive(Debug, Clone, PartialEq)]
pub struct NemesisEvent {
    pub at: Instant,
    /// `Invoke` when an action starts, `Info` when it is done (or failed).
    pub kind: OpType,
    pub f: String,
    pub value: Value,
    pub error: Option<String>,
}

impl NemesisEvent {
    fn new(kind: OpType, f: &str, value: Value, error: Option<String>) -> NemesisEvent {
        NemesisEvent {
            at: Instant::now(),
            kind,
            f: f.to_string(),
            value,
            error,
        }
    }

    /// The history op for this event; `run_start` is time 0 of the history.
    pub fn to_op(&self, index: u64, run_start: Instant) -> Op {
        Op {
            index,
            time: self.at.saturating_duration_since(run_start).as_nanos() as u64,
            process: Process::Nemesis,
            kind: self.kind,
            f: self.f.clone(),
            value: self.value.clone(),
            node: None,
            error: self.error.clone().map(Value::String),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Stop the nemesis (healing what it did) at the first failed action.
    pub abort_on_error: bool,
}

/// What a nemesis run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub actions: u64,
    /// `f: error` for every failed action, in order.
    pub failures: Vec<String>,
}

#[derive(Debug, Error)]
pub enum NemesisError {
    #[error("nemesis action failed (--abort-on-nemesis-error): {0}")]
    Aborted(String),
}

/// State the timelines share.
struct Shared {
    faults: Arc<dyn Faults>,
    sink: mpsc::UnboundedSender<NemesisEvent>,
    /// Nodes killed or paused right now: process faults skip them.
    down: Mutex<BTreeSet<String>>,
    summary: Mutex<Summary>,
    options: Options,
    /// Set to stop every timeline (the run's stop signal, or an abort).
    halt: watch::Sender<bool>,
    /// The partition in place and the nodes it cuts off, for faults on
    /// [`process::Targets::CutOff`].
    cut: watch::Sender<Cut>,
}

/// A partition's cut-off nodes; `generation` counts partitions started.
#[derive(Debug, Default)]
struct Cut {
    generation: u64,
    nodes: Vec<String>,
}

impl Shared {
    fn send(&self, event: NemesisEvent) {
        // A closed sink means the runner is gone; the faults still get healed.
        let _ = self.sink.send(event);
    }

    fn fail(&self, f: &str, error: &str) {
        let mut summary = self.summary.lock().unwrap_or_else(|e| e.into_inner());
        summary.failures.push(format!("{f}: {error}"));
        if self.options.abort_on_error {
            let _ = self.halt.send(true);
        }
    }

    /// Records the invocation, carries out `action`, records the outcome.
    async fn apply(&self, action: &Action) -> bool {
        self.send(NemesisEvent::new(
            OpType::Invoke,
            action.f(),
            action.value(),
            None,
        ));
        let faults = self.faults.clone();
        let owned = action.clone();
        let result = tokio::task::spawn_blocking(move || faults.apply(&owned))
            .await
            .unwrap_or_else(|e| Err(FaultError(format!("the action panicked: {e}"))));
        self.summary
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .actions += 1;
        match result {
            Ok(done) => {
                self.send(NemesisEvent::new(
                    OpType::Info,
                    action.f(),
                    merge(action.value(), done),
                    None,
                ));
                true
            }
            Err(e) => {
                tracing::warn!(f = action.f(), error = %e, "nemesis action failed");
                self.send(NemesisEvent::new(
                    OpType::Info,
                    action.f(),
                    action.value(),
                    Some(e.0.clone()),
                ));
                self.fail(action.f(), &e.0);
                false
            }
        }
    }

    /// A fault that could not even be planned (no node to hit, no primary):
    /// recorded like a failed action.
    fn record_unplanned(&self, f: &str, error: &str) {
        self.send(NemesisEvent::new(OpType::Invoke, f, Value::Null, None));
        self.send(NemesisEvent::new(
            OpType::Info,
            f,
            Value::Null,
            Some(error.to_string()),
        ));
        self.fail(f, error);
    }
}

/// Runs `f` on every item at once (a thread each). Returns the results by
/// `name`, or fails with every item's error (the others' changes stay:
/// heal undoes them).
fn in_parallel<I, T, N, F>(
    items: &[I],
    name: N,
    f: F,
) -> Result<std::collections::BTreeMap<String, T>, FaultError>
where
    I: Sync,
    T: Send,
    N: Fn(&I) -> String,
    F: Fn(&I) -> Result<T, FaultError> + Sync,
{
    let mut done = std::collections::BTreeMap::new();
    let mut errors = Vec::new();
    for (item, result) in items.iter().zip(crate::fan_out::on_every(items, f)) {
        let n = name(item);
        match result {
            Ok(Ok(v)) => {
                done.insert(n, v);
            }
            Ok(Err(e)) => errors.push(e.0),
            Err(panicked) => errors.push(format!("{n}: the action panicked: {panicked}")),
        }
    }
    if errors.is_empty() {
        Ok(done)
    } else {
        Err(FaultError(errors.join("; ")))
    }
}

/// `done`'s keys laid over `asked`'s, when both are objects.
fn merge(asked: Value, done: Value) -> Value {
    match (asked, done) {
        (Value::Object(mut a), Value::Object(d)) => {
            a.extend(d);
            Value::Object(a)
        }
        (asked, Value::Null) => asked,
        (_, done) => done,
    }
}

/// Sleeps `d`, or less if `halt` turns true; returns false if halted.
async fn sleep_or_halt(d: Duration, halt: &mut watch::Receiver<bool>) -> bool {
    if *halt.borrow() {
        return false;
    }
    let halted = tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = halt.wait_for(|h| *h) => true,
    };
    !halted && !*halt.borrow()
}

/// One fault's life: wait, start, last, heal, repeat, until halted. A fault
/// that was started is always healed, even when halted mid-way.
async fn timeline(shared: Arc<Shared>, schedule: Arc<Schedule>, index: usize, mut rng: ChaCha8Rng) {
    let (duration, interval) = schedule.timing(&schedule.faults[index]);
    let fault = &if shared.faults.has_primaries() {
        schedule.faults[index].clone()
    } else {
        schedule.faults[index].without_primaries()
    };
    let start_f = format!("start-{}", fault.kind());
    // Nodes that report no votes (2PC, Paxos, the real systems) give a
    // watch nothing to see; watching all run long would only load them.
    if fault.asks() == Some(process::Targets::Voters) && !shared.faults.has_votes() {
        tracing::info!("{start_f} on the voters: this system's nodes report no votes; skipped");
        return;
    }
    let mut halt = shared.halt.subscribe();
    // A fault on the voters waits for an election, one on the cut-off nodes
    // for a partition, not for a timer: it watches for up to its interval,
    // again and again.
    let watches = matches!(
        fault.asks(),
        Some(process::Targets::Voters | process::Targets::CutOff)
    );
    let mut cuts = shared.cut.subscribe();
    let mut cut_seen = cuts.borrow().generation;
    for _ in 0..CYCLES_MAX {
        let wait = if watches {
            WATCH_PAUSE
        } else {
            schedule::stagger(interval, &mut rng)
        };
        if !sleep_or_halt(wait, &mut halt).await {
            return;
        }
        let lasts = duration.draw(&mut rng);
        let nodes = shared.faults.nodes();
        let asked = match fault.asks() {
            None => Vec::new(),
            Some(process::Targets::CutOff) => {
                let within = interval.min(VOTERS_WAIT_MAX);
                match next_cut(&mut cuts, &mut cut_seen, within, &mut halt).await {
                    Some(nodes) => nodes,
                    None => continue,
                }
            }
            Some(what) => {
                let faults = shared.faults.clone();
                let within = interval.min(VOTERS_WAIT_MAX);
                let ask = move || match what {
                    process::Targets::Voters => faults.voters(within),
                    _ => faults.primaries(),
                };
                match tokio::task::spawn_blocking(ask).await {
                    // No election in this watch: watch again.
                    Ok(Ok(nodes)) if nodes.is_empty() && watches => continue,
                    Ok(Ok(nodes)) => nodes,
                    // Random targets only use the primaries if there are any
                    // (a system without leaders, nodes down or cut off).
                    Ok(Err(_)) if fault.asks_optionally() => Vec::new(),
                    Ok(Err(e)) => {
                        let what = what.name();
                        let why = format!("cannot ask the nodes for the {what}: {e}");
                        shared.record_unplanned(&start_f, &why);
                        continue;
                    }
                    Err(e) => {
                        let why = format!("asking the nodes panicked: {e}");
                        shared.record_unplanned(&start_f, &why);
                        continue;
                    }
                }
            }
        };
        // Pick and take under one lock: two process faults (kills of the
        // primaries and of the voters) must never take the same node.
        let picked = {
            let mut down = shared.down.lock().unwrap_or_else(|e| e.into_inner());
            let available: Vec<String> = nodes
                .iter()
                .filter(|n| !down.contains(*n))
                .cloned()
                .collect();
            let situation = fault::Situation {
                nodes: &nodes,
                available: &available,
                asked: &asked,
            };
            fault
                .start(&situation, lasts.as_millis() as u64, &mut rng)
                .map(|(start, stop)| {
                    let taken: Vec<String> = match (&start, fault.takes_nodes_down()) {
                        (
                            Action::Kill { nodes }
                            | Action::Pause { nodes }
                            | Action::StartDisk { nodes, .. },
                            true,
                        ) => nodes.clone(),
                        _ => Vec::new(),
                    };
                    down.extend(taken.iter().cloned());
                    (start, stop, taken)
                })
        };
        let (start, stop, taken) = match picked {
            Ok(picked) => picked,
            Err(why) => {
                shared.record_unplanned(&start_f, &why);
                continue;
            }
        };
        // Heal even if the start failed: it may have changed some hosts.
        let started = shared.apply(&start).await;
        if let (true, Action::StartPartition { grudge, .. }) = (started, &start) {
            let cut_off = partition::cut_off(grudge, &nodes);
            shared.cut.send_modify(|c| {
                c.generation += 1;
                c.nodes = cut_off;
            });
        }
        let lasted = sleep_or_halt(lasts, &mut halt).await;
        if stop == Action::StopPartition {
            shared.cut.send_modify(|c| c.nodes.clear());
        }
        shared.apply(&stop).await;
        {
            let mut down = shared.down.lock().unwrap_or_else(|e| e.into_inner());
            for n in &taken {
                down.remove(n);
            }
        }
        if !lasted {
            return;
        }
    }
}

/// Waits up to `within` for a partition started after `seen` that cuts
/// some node off; returns those nodes. None if none started in time, or
/// halted.
async fn next_cut(
    cuts: &mut watch::Receiver<Cut>,
    seen: &mut u64,
    within: Duration,
    halt: &mut watch::Receiver<bool>,
) -> Option<Vec<String>> {
    let after = *seen;
    let fresh = |c: &Cut| c.generation > after && !c.nodes.is_empty();
    let found = tokio::select! {
        cut = tokio::time::timeout(within, cuts.wait_for(fresh)) => match cut {
            Ok(Ok(cut)) => Some((cut.generation, cut.nodes.clone())),
            _ => None,
        },
        _ = halt.wait_for(|h| *h) => None,
    };
    let (generation, nodes) = found?;
    *seen = generation;
    Some(nodes)
}

/// Runs `schedule` until `stop` turns true (or, with
/// [`Options::abort_on_error`], until an action fails). Each fault heals its
/// own change before this returns; a full [`heal`] stays the caller's job
/// (see [`heal::guarded`]). Every action is sent to `sink` as an invoke and
/// an info event. The same `rng` state gives the same schedule.
pub async fn run(
    schedule: Schedule,
    faults: Arc<dyn Faults>,
    rng: &mut ChaCha8Rng,
    sink: mpsc::UnboundedSender<NemesisEvent>,
    mut stop: watch::Receiver<bool>,
    options: Options,
) -> Result<Summary, NemesisError> {
    if let Err(why) = schedule.check_nodes(&faults.nodes()) {
        let shared_summary = Summary {
            actions: 0,
            failures: vec![why.clone()],
        };
        return if options.abort_on_error {
            Err(NemesisError::Aborted(why))
        } else {
            Ok(shared_summary)
        };
    }
    let (halt, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        faults,
        sink,
        down: Mutex::new(BTreeSet::new()),
        summary: Mutex::new(Summary::default()),
        options,
        halt,
        cut: watch::channel(Cut::default()).0,
    });
    let schedule = Arc::new(schedule);
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..schedule.faults.len() {
        let seeded = ChaCha8Rng::seed_from_u64(rng.next_u64());
        tasks.spawn(timeline(shared.clone(), schedule.clone(), index, seeded));
    }
    let mut halted = shared.halt.subscribe();
    tokio::select! {
        _ = stop.wait_for(|s| *s) => {}
        _ = halted.wait_for(|h| *h) => {}
        _ = async { while tasks.join_next().await.is_some() {} } => {}
    }
    let _ = shared.halt.send(true);
    while tasks.join_next().await.is_some() {}
    let summary = shared
        .summary
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match summary.failures.first() {
        Some(first) if options.abort_on_error => Err(NemesisError::Aborted(first.clone())),
        _ => Ok(summary),
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A recording [`Faults`]: the nemesis logic is tested against it; the
    //! real mechanisms are tested on real netns clusters in `tests/`.
    use super::*;

    pub struct Recording {
        pub nodes: Vec<String>,
        pub primaries: Vec<String>,
        pub voters: Vec<String>,
        pub log: Mutex<Vec<Action>>,
        /// Actions whose `f` is listed here fail.
        pub failing: Vec<&'static str>,
        /// Whether primaries exists at all ([`Faults::has_primaries`]).
        pub leads: bool,
        /// Whether the nodes report votes ([`Faults::has_votes`]).
        pub votes: bool,
        /// How many times the voters were asked for.
        pub voter_asks: std::sync::atomic::AtomicUsize,
    }

    impl Recording {
        pub fn new(n: usize) -> Recording {
            Recording {
                nodes: (1..=n).map(|i| format!("n{i}")).collect(),
                primaries: vec!["n1".to_string()],
                voters: vec!["n2".to_string()],
                log: Mutex::new(Vec::new()),
                failing: Vec::new(),
                leads: true,
                votes: true,
                voter_asks: Default::default(),
            }
        }

        pub fn actions(&self) -> Vec<Action> {
            self.log.lock().unwrap().clone()
        }
    }

    impl Faults for Recording {
        fn nodes(&self) -> Vec<String> {
            self.nodes.clone()
        }
        fn primaries(&self) -> Result<Vec<String>, FaultError> {
            Ok(self.primaries.clone())
        }
        fn voters(&self, _within: Duration) -> Result<Vec<String>, FaultError> {
            self.voter_asks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(self.voters.clone())
        }
        fn has_primaries(&self) -> bool {
            self.leads
        }
        fn has_votes(&self) -> bool {
            self.votes
        }
        fn apply(&self, action: &Action) -> Result<Value, FaultError> {
            self.log.lock().unwrap().push(action.clone());
            if self.failing.contains(&action.f()) {
                return Err(FaultError(format!("n1: {} refused", action.f())));
            }
            Ok(serde_json::json!({"mechanism": "fake"}))
        }
        fn heal(&self) -> Result<Value, FaultError> {
            Ok(Value::Null)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::Recording;
    use super::*;
    use std::collections::BTreeMap;

    async fn run_for(
        schedule: &str,
        faults: Arc<Recording>,
        seed: u64,
        run_ms: u64,
        options: Options,
    ) -> (Result<Summary, NemesisError>, Vec<NemesisEvent>) {
        let schedule = Schedule::from_yaml(schedule, "test.yaml").unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(run_ms)).await;
            let _ = stop_tx.send(true);
            stop_tx
        });
        let result = run(schedule, faults, &mut rng, tx, stop_rx, options).await;
        drop(stopper);
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        (result, events)
    }

    const HALVES: &str =
        "description: t\nduration: 1s\ninterval: 2s\nfaults:\n  - partition: {shape: halves}\n";

    #[tokio::test(start_paused = true)]
    async fn a_fault_starts_lasts_heals_and_repeats() {
        let faults = Arc::new(Recording::new(5));
        let (result, events) = run_for(HALVES, faults.clone(), 1, 20_000, Options::default()).await;
        let summary = result.unwrap();
        let actions = faults.actions();
        // Each cycle takes 1 s + a wait in [1 s, 3 s]: 5..=10 cycles in 20 s.
        assert!(
            (10..=20).contains(&actions.len()),
            "{} actions",
            actions.len()
        );
        for pair in actions.chunks(2) {
            assert!(matches!(pair[0], Action::StartPartition { .. }), "{pair:?}");
            if pair.len() == 2 {
                assert_eq!(pair[1], Action::StopPartition);
            }
        }
        assert_eq!(
            actions.last(),
            Some(&Action::StopPartition),
            "the last fault is healed"
        );
        assert_eq!(summary.actions as usize, actions.len());
        assert_eq!(
            events.len(),
            2 * actions.len(),
            "an invoke and an info per action"
        );
        assert!(
            events
                .chunks(2)
                .all(|p| p[0].kind == OpType::Invoke && p[1].kind == OpType::Info)
        );
        assert_eq!(events[1].value["mechanism"], "fake");
        assert!(
            events[1].value["grudge"].is_object(),
            "{:?}",
            events[1].value
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_same_seed_gives_the_same_schedule() {
        let combined = Schedule::resolve("combined").unwrap();
        let text = serde_yaml_ng::to_string(&combined).unwrap();
        let mut runs = Vec::new();
        for seed in [4, 4, 5] {
            let faults = Arc::new(Recording::new(5));
            run_for(&text, faults.clone(), seed, 120_000, Options::default())
                .await
                .0
                .unwrap();
            // Each fault's own sequence is fixed by the seed; how two faults'
            // actions interleave when they coincide is up to the scheduler.
            let mut per_fault: BTreeMap<&str, Vec<Action>> = BTreeMap::new();
            for a in faults.actions() {
                let family = match a {
                    Action::StartPartition { .. } | Action::StopPartition => "partition",
                    Action::Kill { .. } | Action::Start { .. } => "kill",
                    Action::Pause { .. } | Action::Resume { .. } => "pause",
                    _ => "clock",
                };
                per_fault.entry(family).or_default().push(a);
            }
            runs.push(per_fault);
        }
        assert_eq!(runs[0], runs[1]);
        assert_ne!(runs[0], runs[2], "another seed, another schedule");
        let kinds: BTreeSet<&str> = runs[0].values().flatten().map(Action::f).collect();
        for f in [
            "start-partition",
            "kill",
            "start",
            "pause",
            "resume",
            "bump-clock",
            "reset-clock",
        ] {
            assert!(kinds.contains(f), "combined never did {f}: {kinds:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn kill_and_pause_never_hit_a_node_twice_at_once() {
        let text = "description: t\nduration: 3s\ninterval: 1s\nfaults:\n  - kill: {targets: majority}\n  - pause: {targets: majority}\n";
        let faults = Arc::new(Recording::new(5));
        run_for(text, faults.clone(), 9, 60_000, Options::default())
            .await
            .0
            .unwrap();
        let mut down = BTreeSet::new();
        for a in faults.actions() {
            match a {
                Action::Kill { nodes } | Action::Pause { nodes } => {
                    for n in nodes {
                        assert!(down.insert(n.clone()), "{n} hit while already down");
                    }
                }
                Action::Start { nodes } | Action::Resume { nodes } => {
                    for n in nodes {
                        assert!(down.remove(&n));
                    }
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(down.is_empty(), "every node is back at the end: {down:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_clock_on_the_cut_off_nodes_jumps_as_each_partition_starts() {
        let text = "faults:\n  - partition: {shape: random-halves, duration: 3s, interval: 2s}\n  - clock: {targets: cut-off, offset_ms: 4000, duration: 1s, interval: 1s}\n";
        let faults = Arc::new(Recording::new(5));
        let (result, _) = run_for(text, faults.clone(), 6, 60_000, Options::default()).await;
        assert!(result.unwrap().failures.is_empty());
        let mut cut: Option<Vec<String>> = None;
        let (mut partitions, mut bumps) = (0, 0);
        for a in faults.actions() {
            match a {
                Action::StartPartition { grudge, .. } => {
                    partitions += 1;
                    cut = Some(partition::cut_off(&grudge, &faults.nodes));
                }
                Action::StopPartition => cut = None,
                Action::BumpClock { offsets_ms } => {
                    bumps += 1;
                    let nodes: Vec<String> = offsets_ms.into_keys().collect();
                    assert_eq!(Some(nodes), cut, "a jump off a partition's cut-off nodes");
                }
                _ => {}
            }
        }
        // The clock lasts 1 s, the partition 3 s: every partition gets its
        // jump, at once (paused time: nothing else moves the clock).
        assert!(partitions >= 8, "{partitions} partitions");
        assert_eq!(bumps, partitions, "one jump per partition");
    }

    #[tokio::test(start_paused = true)]
    async fn faults_on_the_primaries_of_a_leaderless_system_hit_one_node() {
        let text = "faults:\n  - kill: {targets: primaries, duration: 1s, interval: 1s}\n  - partition: {shape: primaries, duration: 1s, interval: 1s}\n";
        let mut leaderless = Recording::new(5);
        leaderless.leads = false;
        leaderless.primaries = Vec::new();
        let faults = Arc::new(leaderless);
        let (result, _) = run_for(text, faults.clone(), 2, 20_000, Options::default()).await;
        assert!(result.unwrap().failures.is_empty(), "nothing unplanned");
        let actions = faults.actions();
        let kills: Vec<&Vec<String>> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Kill { nodes } => Some(nodes),
                _ => None,
            })
            .collect();
        assert!(
            kills.len() >= 4 && kills.iter().all(|k| k.len() == 1),
            "{kills:?}"
        );
        let shapes: BTreeSet<&str> = actions
            .iter()
            .filter_map(|a| match a {
                Action::StartPartition { shape, .. } => Some(shape.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(shapes, BTreeSet::from(["isolate"]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_disk_fault_takes_its_nodes_down_and_restarts_the_same_ones() {
        let text = "description: t\nduration: 2s\ninterval: 1s\nfaults:\n  - disk: {targets: majority, mode: torn}\n  - kill: {targets: majority}\n";
        let faults = Arc::new(Recording::new(5));
        let (result, events) = run_for(text, faults.clone(), 4, 30_000, Options::default()).await;
        assert!(result.unwrap().failures.is_empty());
        let mut down = BTreeSet::new();
        let mut losses = 0;
        for a in faults.actions() {
            match a {
                Action::StartDisk { nodes, fault } => {
                    assert_eq!(fault, fault::DiskFault::Torn);
                    losses += 1;
                    for n in nodes {
                        assert!(down.insert(n.clone()), "{n} hit while already down");
                    }
                }
                Action::Kill { nodes } => {
                    for n in nodes {
                        assert!(down.insert(n.clone()), "{n} hit while already down");
                    }
                }
                Action::StopDisk { nodes, .. } | Action::Start { nodes } => {
                    for n in nodes {
                        assert!(down.remove(&n), "{n} started but not down");
                    }
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(losses > 0);
        assert!(down.is_empty(), "every node is back at the end: {down:?}");
        let ops: Vec<&str> = events.iter().map(|e| e.f.as_str()).collect();
        assert!(
            ops.contains(&"start-disk") && ops.contains(&"stop-disk"),
            "{ops:?}"
        );
        let lost = events
            .iter()
            .find(|e| e.f == "start-disk" && e.kind == OpType::Info)
            .unwrap();
        assert_eq!(lost.value["mode"], "torn", "{}", lost.value);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_or_full_disk_leaves_its_nodes_up_for_other_faults() {
        let text = "description: t\nduration: 2s\ninterval: 1s\nfaults:\n  - disk: {targets: all, mode: slow, delay: 300ms}\n  - disk: {targets: all, mode: full}\n  - kill: {targets: all}\n";
        let faults = Arc::new(Recording::new(3));
        let (result, events) = run_for(text, faults.clone(), 5, 30_000, Options::default()).await;
        assert!(result.unwrap().failures.is_empty());
        let (mut slow, mut full, mut killed_under_slow) = (0, 0, 0);
        let mut slowed = false;
        for a in faults.actions() {
            match a {
                Action::StartDisk { nodes, fault } => {
                    assert_eq!(nodes.len(), 3, "all, whether killed or not");
                    match fault {
                        fault::DiskFault::Slow { delay_ms: 300 } => {
                            slow += 1;
                            slowed = true;
                        }
                        fault::DiskFault::Full => full += 1,
                        other => panic!("{other:?}"),
                    }
                }
                Action::StopDisk {
                    mode: fault::DiskMode::Slow,
                    ..
                } => slowed = false,
                Action::Kill { .. } if slowed => killed_under_slow += 1,
                _ => {}
            }
        }
        assert!(slow > 3 && full > 3, "{slow} slow, {full} full");
        assert!(
            killed_under_slow > 0,
            "a kill never came while the disk was slow"
        );
        let stop = events
            .iter()
            .find(|e| e.f == "stop-disk" && e.kind == OpType::Invoke)
            .unwrap();
        assert!(
            ["slow", "full"].contains(&stop.value["mode"].as_str().unwrap()),
            "{}",
            stop.value
        );
        let start = events
            .iter()
            .find(|e| e.f == "start-disk" && e.value["mode"] == "slow")
            .unwrap();
        assert_eq!(start.value["delay_ms"], 300, "{}", start.value);
    }

    #[tokio::test(start_paused = true)]
    async fn kills_of_primaries_and_of_voters_hit_what_the_nodes_said() {
        let text = "description: t\nduration: 1s\ninterval: 2s\nfaults:\n  - kill: {targets: primaries}\n  - kill: {targets: voters}\n";
        let faults = Arc::new(Recording::new(5));
        let (result, _) = run_for(text, faults.clone(), 3, 20_000, Options::default()).await;
        assert!(result.unwrap().failures.is_empty());
        let killed: Vec<Vec<String>> = faults
            .actions()
            .into_iter()
            .filter_map(|a| match a {
                Action::Kill { nodes } => Some(nodes),
                _ => None,
            })
            .collect();
        assert!(killed.contains(&vec!["n1".to_string()]), "{killed:?}");
        assert!(killed.contains(&vec!["n2".to_string()]), "{killed:?}");
        assert!(killed.iter().flatten().all(|n| n == "n1" || n == "n2"));
        // Voters are killed as soon as an election is seen, not a timer later:
        // more voter kills than the timer of the primaries allows.
        let voter_kills = killed.iter().filter(|k| k[0] == "n2").count();
        let primary_kills = killed.len() - voter_kills;
        assert!(voter_kills > primary_kills, "{killed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_that_sees_no_election_is_no_failure() {
        let mut rec = Recording::new(3);
        rec.voters = Vec::new();
        let faults = Arc::new(rec);
        let text = "description: t\nfaults:\n  - kill: {targets: voters}\n";
        let (result, events) = run_for(text, faults.clone(), 3, 10_000, Options::default()).await;
        assert!(result.unwrap().failures.is_empty());
        assert!(faults.actions().is_empty(), "{:?}", faults.actions());
        assert!(events.is_empty(), "{events:?}");
    }

    /// A system whose nodes report no votes (2PC, Paxos) is never watched
    /// for voters: `kill-voters`' kill of the voters does nothing there,
    /// and its other kills go on.
    #[tokio::test(start_paused = true)]
    async fn voters_are_not_watched_where_nodes_report_no_votes() {
        let text = "description: t\nfaults:\n  - kill: {targets: voters, duration: 10ms, interval: 500ms}\n  - kill: {targets: one, duration: 1s, interval: 2s}\n";
        let mut rec = Recording::new(3);
        rec.votes = false;
        let faults = Arc::new(rec);
        let (result, _) = run_for(text, faults.clone(), 3, 20_000, Options::default()).await;
        assert!(result.unwrap().failures.is_empty());
        assert_eq!(
            faults.voter_asks.load(std::sync::atomic::Ordering::Relaxed),
            0
        );
        let kills = faults
            .actions()
            .into_iter()
            .filter(|a| matches!(a, Action::Kill { .. }))
            .count();
        assert!(kills >= 3, "{:?}", faults.actions());
        // The same schedule where votes are reported watches for them.
        let faults = Arc::new(Recording::new(3));
        let (result, _) = run_for(text, faults.clone(), 3, 20_000, Options::default()).await;
        assert!(result.is_ok());
        assert!(faults.voter_asks.load(std::sync::atomic::Ordering::Relaxed) > 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_action_is_recorded_and_the_run_goes_on() {
        let mut rec = Recording::new(3);
        rec.failing = vec!["start-partition"];
        let faults = Arc::new(rec);
        let (result, events) = run_for(HALVES, faults.clone(), 1, 10_000, Options::default()).await;
        let summary = result.unwrap();
        assert!(summary.failures.len() >= 2, "{summary:?}");
        assert!(summary.failures[0].contains("start-partition: n1: start-partition refused"));
        let failed = events.iter().find(|e| e.error.is_some()).unwrap();
        assert_eq!(failed.kind, OpType::Info);
        let op = failed.to_op(7, failed.at);
        assert_eq!(op.process, Process::Nemesis);
        assert_eq!(
            op.error,
            Some(Value::String("n1: start-partition refused".into()))
        );
        assert!(
            faults.actions().contains(&Action::StopPartition),
            "a failed start is still healed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn abort_on_error_stops_at_the_first_failure_after_healing() {
        let mut rec = Recording::new(3);
        rec.failing = vec!["start-partition"];
        let faults = Arc::new(rec);
        let (result, _) = run_for(
            HALVES,
            faults.clone(),
            1,
            60_000,
            Options {
                abort_on_error: true,
            },
        )
        .await;
        let err = result.unwrap_err().to_string();
        assert!(err.contains("start-partition refused"), "{err}");
        assert_eq!(faults.actions(), {
            let a = faults.actions();
            vec![a[0].clone(), Action::StopPartition]
        });
    }

    #[tokio::test(start_paused = true)]
    async fn a_fault_that_cannot_be_planned_is_reported() {
        let mut rec = Recording::new(5);
        rec.primaries = Vec::new();
        let faults = Arc::new(rec);
        let text = "description: t\nfaults:\n  - partition: {shape: primaries}\n";
        let (result, events) = run_for(text, faults.clone(), 1, 30_000, Options::default()).await;
        let summary = result.unwrap();
        assert!(faults.actions().is_empty());
        assert!(
            summary.failures[0].contains("no node claims to be a primary"),
            "{summary:?}"
        );
        assert_eq!(events[1].f, "start-partition");
    }
}
