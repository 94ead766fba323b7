//! `faultline run`: one test from start to end, as DESIGN.md lays it out.
//!
//! 1. Store the resolved test (test.yaml) in a fresh results folder.
//! 2. Make the hosts (a netns or Docker cluster for the run) or reach them (an
//!    SSH inventory); prepare them; deploy the system under test.
//! 3. Heal whatever an earlier run left, then run the client workers and the
//!    nemesis until the time limit, appending every op to history.jsonl.
//! 4. Heal (always: also on error, Ctrl-C, SIGTERM), let the cluster recover,
//!    run the workload's final reads.
//! 5. Download node logs, tear down (unless `--leave-running`).
//! 6. Check the history and the logs, write results.json and junit.xml.
//!
//! A failure in steps 4–5 is reported and the history is still checked; a
//! failure before the workload starts is a harness error (exit 3) with
//! everything recorded so far kept.

use super::checks;
use super::liveness::{self, NodeExit};
use super::output::{self, RunReport};
use super::progress::Progress;
use super::recorder::Recorder;
use super::workers::{self, Source, WorkerConfig};
use crate::cluster::{self, Backend, Cluster, ClusterGuard, UpOptions};
use crate::generator::Pacer;
use crate::history::{Op, Process};
use crate::nemesis::{self, FaultSpec, Faults, HostFaults, NemesisEvent, heal};
use crate::store::{RunDir, Store};
use crate::suite::{Hosts, Test};
use crate::system::{self, Db, DeployOptions};
use anyhow::Context;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// The port every node listens on, on its host's own address.
const NODE_PORT: u16 = 7000;
/// How long one client operation may take before it ends `info`.
const OP_TIMEOUT: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// The final reads get this long after the recovery wait.
const FINAL_READS_TIME: Duration = Duration::from_secs(30);
/// SIGTERM, then SIGKILL after this, when nodes are stopped at teardown.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How long stopped workers get to finish the calls they have in flight
/// (each is bounded by [`OP_TIMEOUT`], redirects included).
const WORKERS_STOP: Duration = Duration::from_secs(10);

/// How to run, beyond what the test says.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub store: Store,
    /// The faultline executable to deploy (the running one).
    pub binary: PathBuf,
    pub leave_running: bool,
    /// Install missing packages on the hosts (as root) rather than fail.
    pub install: bool,
    pub abort_on_nemesis_error: bool,
    /// Per checker; past it the verdict is unknown.
    pub check_time_limit: Duration,
    pub progress: Progress,
}

/// Runs `test` and writes its results folder. An `Err` means not even the
/// results folder could be made; every later failure is in the report.
pub fn run(test: &Test, opts: &RunOptions) -> anyhow::Result<RunReport> {
    let dir = opts.store.create_run(&test.name).with_context(|| {
        format!(
            "cannot create a results folder under {}",
            opts.store.root.display()
        )
    })?;
    std::fs::write(dir.test_yaml(), test.to_yaml())
        .with_context(|| format!("cannot write {}", dir.test_yaml().display()))?;
    crate::logging::to_file(&dir.log());
    let started = Instant::now();
    opts.progress.line(&format!(
        "faultline run {} (seed {}) -> {}",
        test.name,
        test.seed,
        dir.path.display()
    ));
    opts.progress.line(&describe(test));

    let mut problems = Vec::new();
    let mut hosts = Vec::new();
    let (recorded, harness_error) = match execute(test, opts, &dir, &mut problems, &mut hosts) {
        Ok(recorded) => (recorded, None),
        Err(failure) => {
            tracing::error!("{:#}", failure.error);
            (failure.recorded, Some(format!("{:#}", failure.error)))
        }
    };
    opts.progress
        .line(&format!("checking {} ops", recorded.ops.len()));
    let circumstances = checks::Circumstances {
        harness_error: harness_error.as_deref(),
        nodes: hosts.len(),
        node_exits: recorded.node_exits.as_deref(),
        main_end_ns: recorded.main_end_ns,
        start_wall: recorded.start_wall,
    };
    let checks = checks::check_run(
        test,
        &recorded.ops,
        &dir,
        opts.check_time_limit,
        circumstances,
    );
    let mut report = RunReport {
        dir,
        checks,
        harness_error,
        problems,
        duration: started.elapsed(),
        hosts,
        ops: output::op_counts(&recorded.ops),
        incomplete: recorded.incomplete,
    };
    // A run whose results are not on disk has lost its record: the harness failed.
    if let Err(e) = output::write(test, &report) {
        let e = format!("the results could not be written: {e:#}");
        tracing::error!("{e}");
        match &mut report.harness_error {
            Some(_) => report.problems.push(e),
            None => report.harness_error = Some(e),
        }
    }
    // The report never changes the verdict: a failure to draw is a problem noted.
    if let Err(e) = crate::report::after_run(&opts.store.root, &report.dir.path) {
        report.problems.push(format!("writing report.html: {e}"));
    }
    crate::logging::close();
    Ok(report)
}

/// What the workload phase leaves for the checks.
#[derive(Default)]
struct Recorded {
    ops: Vec<Op>,
    /// Why the history is not a whole run's (interrupted, not all written).
    incomplete: Vec<String>,
    /// When the main phase ended, on the history's clock.
    main_end_ns: u64,
    /// Nodes that exited on their own; `None` when they were not watched
    /// (the run stopped before its workload).
    node_exits: Option<Vec<NodeExit>>,
    /// The wall-clock time of the history's time 0.
    start_wall: Option<std::time::SystemTime>,
}

/// A failure that ended the run early, with what was recorded until then.
struct Failure {
    error: anyhow::Error,
    recorded: Recorded,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            error: e.into(),
            recorded: Recorded::default(),
        }
    }
}

/// Hosts, deploy, workload with nemesis, final reads, logs, teardown.
fn execute(
    test: &Test,
    opts: &RunOptions,
    dir: &RunDir,
    problems: &mut Vec<String>,
    hosts_used: &mut Vec<String>,
) -> Result<Recorded, Failure> {
    let mut rng = ChaCha8Rng::seed_from_u64(test.seed);
    if let Some(signal) = heal::interrupted_by() {
        return Err(anyhow::anyhow!("interrupted by {signal} before the run started").into());
    }
    let made = Instant::now();
    let (cluster, guard) = hosts(test, opts)?;
    let made_ms = made.elapsed().as_secs_f64() * 1e3;
    *hosts_used = cluster
        .hosts
        .iter()
        .map(|h| format!("{} {}", h.name, h.addr))
        .collect();
    opts.progress.line(&format!(
        "hosts: {} ({}, ready in {made_ms:.0} ms), {}",
        cluster.name,
        cluster.backend,
        hosts_line(&cluster)
    ));

    let clock_faults = test
        .nemesis
        .faults
        .iter()
        .any(|f| matches!(f, FaultSpec::Clock(_)));
    let options = DeployOptions {
        // The nodes' data directories on the lazy file system, mounted at
        // deploy, unmounted at teardown.
        lazyfs: test.nemesis.has_disk_faults(),
        port: NODE_PORT,
        bugs: test.bugs.clone(),
        db_options: test.db_options.clone(),
        workload: Some(test.workload.clone()),
        // Clock faults on hosts that share this kernel move a libfaketime offset file.
        faketime: clock_faults && cluster.backend != Backend::Ssh,
        install: opts.install,
        ready_timeout: Duration::from_secs(30),
        binary: opts.binary.clone(),
        run_dir: Some(dir.path.clone()),
    };
    let deployed = system::deploy(test.db.get(), &cluster, &options)
        .context("deploying the system under test");
    let db = match deployed {
        Ok((db, timings)) => {
            opts.progress.line(&format!(
                "deployed {} on {} hosts ({timings})",
                test.db.name(),
                cluster.hosts.len()
            ));
            db
        }
        Err(e) => {
            download_logs_and_teardown(test, None, &cluster, guard, opts, dir, problems);
            return Err(e.into());
        }
    };
    // A signal that came while the cluster was made or the system deployed
    // (a suite listens all along): no workload; the teardown removes it all.
    if let Some(signal) = heal::interrupted_by() {
        download_logs_and_teardown(test, Some(&db), &cluster, guard, opts, dir, problems);
        return Err(anyhow::anyhow!("interrupted by {signal} before the workload started").into());
    }

    let runtime = runtime()?;
    let recorded = runtime.block_on(workload_with_nemesis(
        test,
        opts,
        dir,
        db.clone(),
        &options,
        &mut rng,
        problems,
    ));
    let teardown = Instant::now();
    download_logs_and_teardown(test, Some(&db), &cluster, guard, opts, dir, problems);
    opts.progress.line(&format!(
        "node logs downloaded and cluster removed in {:.0} ms",
        teardown.elapsed().as_secs_f64() * 1e3
    ));
    recorded
}

/// The runtime the workers, the nemesis and the progress display share.
/// Its threads log to the calling thread's run log.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let log = crate::logging::current();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(move || crate::logging::adopt(log.clone()))
        .enable_all()
        .build()
}

/// Makes the run's cluster (removed when the guard drops) or opens the inventory.
fn hosts(test: &Test, opts: &RunOptions) -> anyhow::Result<(Cluster, Option<ClusterGuard>)> {
    let backend = match &test.hosts {
        Hosts::Inventory(path) => {
            let cluster = cluster::inventory::open(path)
                .with_context(|| format!("opening the SSH lab {}", path.display()))?;
            if cluster.hosts.len() != test.nodes as usize {
                tracing::info!(
                    "the inventory has {} hosts; the test asked for {}: using the inventory's",
                    cluster.hosts.len(),
                    test.nodes
                );
            }
            return Ok((cluster, None));
        }
        Hosts::Local => Backend::Netns,
        Hosts::Docker => Backend::Docker,
    };
    // A fresh name per run: runs on one machine never collide. Not from the
    // test's seed stream, so the seed replays the same operations and faults.
    let name = format!("run{:06x}", rand::random::<u32>() & 0xff_ffff);
    let up = UpOptions {
        name: name.clone(),
        backend,
        nodes: test.nodes as usize,
        ssh: false,
        // Containers get /dev/fuse and CAP_SYS_ADMIN only when the lazy file
        // system is to be mounted in them.
        disk_faults: backend == Backend::Docker && test.nemesis.has_disk_faults(),
        binary: opts.binary.clone(),
    };
    let cluster = cluster::up(&up)
        .with_context(|| format!("making a {backend} cluster of {} hosts", test.nodes))?;
    if opts.leave_running {
        // Kept on purpose: never taken for the orphan of a killed run.
        cluster::keep(&name).with_context(|| format!("marking cluster {name} as kept"))?;
    } else {
        opts.progress.line(&format!(
            "if this run is killed: faultline cluster down --name {name}"
        ));
    }
    let guard = (!opts.leave_running).then_some(ClusterGuard { name });
    Ok((cluster, guard))
}

/// What the run is about to do, in one line: a bare `faultline run` says
/// which test its defaults made before it spends half a minute on it.
fn describe(test: &Test) -> String {
    let hosts = match &test.hosts {
        Hosts::Local => format!("{} netns hosts", test.nodes),
        Hosts::Docker => format!("{} Docker containers", test.nodes),
        Hosts::Inventory(path) => format!("the SSH lab {}", path.display()),
    };
    let bugs = if test.bugs.is_empty() {
        String::new()
    } else {
        format!(" with bugs {}", test.bugs.join(", "))
    };
    format!(
        "test: {}{bugs} on {hosts}, workload {}, nemesis {}, {} then {} of recovery, {} clients at {} ops/s",
        test.db.name(),
        test.workload_name,
        test.nemesis_name,
        test.time_limit,
        test.recovery,
        test.concurrency,
        test.rate
    )
}

fn hosts_line(cluster: &Cluster) -> String {
    cluster
        .hosts
        .iter()
        .map(|h| format!("{} {}", h.name, h.addr))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Steps 3 and 4: workers and nemesis until the time limit, healing around
/// them, then the recovery wait and the final reads. The nodes' processes are
/// watched throughout. Whatever ends the main phase (the time limit, an
/// error, Ctrl-C or SIGTERM), the workers are stopped and waited for before
/// the history is taken, so the checkers see all of it.
async fn workload_with_nemesis(
    test: &Test,
    opts: &RunOptions,
    dir: &RunDir,
    db: Arc<dyn Db>,
    options: &DeployOptions,
    rng: &mut ChaCha8Rng,
    problems: &mut Vec<String>,
) -> Result<Recorded, Failure> {
    let recorder = Arc::new(Recorder::create(Some(&dir.history()), Instant::now())?);
    let host_faults = Arc::new(HostFaults::for_db(db.clone()));
    let (watch_stop, watching) = watch::channel(false);
    let watcher = tokio::spawn(liveness::watch(
        db.clone(),
        host_faults.killed(),
        recorder.start(),
        watching,
    ));
    let faults: Arc<dyn Faults> = host_faults;
    let (sink, events) = mpsc::unbounded_channel::<NemesisEvent>();
    let active = Arc::new(Mutex::new(crate::history::nemesis::FaultTracker::default()));
    let forwarder = tokio::spawn(forward_nemesis(events, recorder.clone(), active.clone()));

    let cfg = Arc::new(WorkerConfig {
        concurrency: test.concurrency,
        clients: test.db.clients(db.endpoints(), CONNECT_TIMEOUT, options),
        op_timeout: OP_TIMEOUT,
    });
    let generator_seed = rng.next_u64();
    let mut nemesis_rng = ChaCha8Rng::seed_from_u64(rng.next_u64());
    let source = Arc::new(Source {
        generator: Mutex::new(test.workload.generator(generator_seed)),
        pacer: Mutex::new(Pacer::new(test.rate)),
    });

    let (stop_tx, stop) = watch::channel(false);
    let mut workers_task: Option<tokio::task::JoinHandle<()>> = None;
    let mut main_end: Option<Duration> = None;
    let main_phase = async {
        let workers = workers_task.insert(tokio::spawn(workers::run(
            cfg.clone(),
            source.clone(),
            recorder.clone(),
            stop.clone(),
        )));
        let options = nemesis::Options {
            abort_on_error: opts.abort_on_nemesis_error,
        };
        let nemesis = nemesis::run(
            test.nemesis.clone(),
            faults.clone(),
            &mut nemesis_rng,
            sink.clone(),
            stop.clone(),
            options,
        );
        let clock = opts
            .progress
            .main_phase(test.time_limit(), &recorder, &active);
        tokio::pin!(nemesis);
        tokio::pin!(clock);
        let summary = tokio::select! {
            // The nemesis ends early when it aborts on an error, or when it has
            // nothing to do (`none`): only the first stops the workload.
            s = &mut nemesis => {
                if s.is_ok() {
                    clock.await;
                }
                main_end = Some(recorder.start().elapsed());
                let _ = stop_tx.send(true);
                s
            }
            () = &mut clock => {
                main_end = Some(recorder.start().elapsed());
                let _ = stop_tx.send(true);
                nemesis.await
            }
        };
        let _ = workers.await;
        summary
    };
    let guarded = heal::guarded(faults.clone(), Some(sink.clone()), main_phase).await;
    let main_end = main_end.unwrap_or_else(|| recorder.start().elapsed());
    let _ = stop_tx.send(true);
    if let Some(task) = workers_task.take()
        && !task.is_finished()
        && tokio::time::timeout(WORKERS_STOP, task).await.is_err()
    {
        problems.push(format!(
            "the workers did not stop within {} s; what they record later is not checked",
            WORKERS_STOP.as_secs()
        ));
    }

    let mut incomplete = Vec::new();
    let mut failure: Option<anyhow::Error> = None;
    match guarded {
        Ok(Ok(summary)) => {
            for f in &summary.failures {
                problems.push(format!("nemesis: {f}"));
            }
        }
        Ok(Err(e)) => failure = Some(anyhow::Error::from(e)),
        Err(heal::GuardedError::HealAfter(e)) => {
            problems.push(format!("heal after the run failed: {e}"))
        }
        Err(heal::GuardedError::Interrupted(signal)) => {
            incomplete.push(interrupted(signal, main_end, test.time_limit()));
        }
        Err(heal::GuardedError::InterruptedHealFailed(signal, e)) => {
            incomplete.push(interrupted(signal, main_end, test.time_limit()));
            failure = Some(anyhow::anyhow!("healing after {signal} failed: {e}"));
        }
        Err(e @ heal::GuardedError::HealFirst(_)) => failure = Some(anyhow::Error::from(e)),
    }

    if failure.is_none() && incomplete.is_empty() {
        opts.progress
            .line(&format!("healed; recovering for {}", test.recovery));
        tokio::time::sleep(test.recovery.0).await;
        // From the live generator: what the main phase left to read (the
        // keys still in use), not what a fresh generator would start with.
        let reads = source
            .generator
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .final_reads();
        if !reads.is_empty() {
            // Fresh processes, past any the main phase used.
            let first = u64::from(test.concurrency) * 1_000_000;
            workers::final_reads(
                &cfg,
                &reads,
                &recorder,
                first,
                Instant::now() + FINAL_READS_TIME,
            )
            .await;
        }
    }
    let _ = watch_stop.send(true);
    let node_exits = watcher.await.unwrap_or_default();
    drop(sink);
    let _ = forwarder.await;
    let (ops, write_error) = recorder.finish();
    if recorder.late() > 0 {
        problems.push(format!(
            "{} ops were recorded after the history was taken and are not in it",
            recorder.late()
        ));
    }
    if let Some(e) = write_error {
        incomplete.push(format!(
            "{} is not the whole history: writing it failed ({e}); the checkers saw the whole history, kept in memory",
            dir.history().display()
        ));
    }
    let recorded = Recorded {
        ops,
        incomplete,
        main_end_ns: main_end.as_nanos() as u64,
        node_exits: Some(node_exits),
        start_wall: std::time::SystemTime::now().checked_sub(recorder.start().elapsed()),
    };
    match failure {
        None => Ok(recorded),
        Some(error) => Err(Failure { error, recorded }),
    }
}

/// Why an interrupted run cannot be valid.
fn interrupted(signal: &str, after: Duration, limit: Duration) -> String {
    format!(
        "interrupted by {signal} after {:.1} s of {:.0} s: every fault was healed and the history \
         was checked as far as it went, without the final reads",
        after.as_secs_f64(),
        limit.as_secs_f64()
    )
}

/// Appends nemesis events to the history as they come, and keeps the live
/// view of which faults are in place.
async fn forward_nemesis(
    mut events: mpsc::UnboundedReceiver<NemesisEvent>,
    recorder: Arc<Recorder>,
    active: Arc<Mutex<crate::history::nemesis::FaultTracker>>,
) {
    while let Some(e) = events.recv().await {
        let index = recorder.record(
            Process::Nemesis,
            e.kind,
            &e.f,
            e.value.clone(),
            None,
            e.error.clone().map(Value::String),
        );
        let op = e.to_op(index, recorder.start());
        active.lock().unwrap_or_else(|p| p.into_inner()).apply(&op);
    }
}

/// Step 5. Each failure is a problem to report, never the end of the run.
fn download_logs_and_teardown(
    test: &Test,
    db: Option<&Arc<dyn Db>>,
    cluster: &Cluster,
    guard: Option<ClusterGuard>,
    opts: &RunOptions,
    dir: &RunDir,
    problems: &mut Vec<String>,
) {
    let db = match db {
        Some(db) => db.clone(),
        None => match test.db.get().attach(cluster, &DeployOptions::default()) {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("cannot reach the nodes for their logs: {e}"));
                drop(guard);
                return;
            }
        },
    };
    if let Err(e) = db.download_logs(&dir.path.join("nodes")) {
        problems.push(format!("downloading node logs: {e}"));
    }
    if opts.leave_running {
        opts.progress.line(&format!(
            "left running: cluster {} (remove with `faultline cluster down --name {}`)",
            cluster.name, cluster.name
        ));
        return;
    }
    if let Err(e) = db.stop_all(STOP_GRACE) {
        problems.push(format!("stopping the nodes: {e}"));
    }
    // The nodes are stopped: what outlived the faults (the lazy file
    // system under their data) goes too, as the journal says.
    if test.nemesis.has_disk_faults() {
        let healed = heal::heal_hosts(&cluster.remotes(), crate::net::DEFAULT_STATE_DIR);
        if let Err(e) = healed {
            problems.push(format!("unmounting the lazy file systems: {e}"));
        }
    }
    if let Some(guard) = guard {
        let name = guard.name.clone();
        std::mem::forget(guard);
        match cluster::down(&name) {
            Ok(_) => {}
            Err(e) => problems.push(format!("removing cluster {name}: {e}")),
        }
    }
}
