//! The run's client workers against a real 3-node Raft cluster on loopback:
//! they record a history a checker accepts through a leader kill, and they
//! stop at the stop signal even when every node is paused.

use faultline::checker::{Verdict, bank, set};
use faultline::client::local::LocalCluster;
use faultline::generator::Pacer;
use faultline::history::{OpType, Process, pair};
use faultline::runner::recorder::Recorder;
use faultline::runner::workers::{self, Source, WorkerConfig};
use faultline::suite::test::{Source as SpecSource, resolve};
use faultline::suite::{TestSpec, WorkloadRef};
use faultline::system::Endpoint;
use faultline::workload::Workload;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const EXE: &str = env!("CARGO_BIN_EXE_faultline");

fn workload(name: &str) -> Workload {
    let spec = TestSpec {
        db: faultline::system::SystemRef::parse("raft").ok(),
        workload: Some(WorkloadRef::Name(name.into())),
        ..TestSpec::default()
    };
    resolve(&spec, &SpecSource::command_line())
        .unwrap()
        .workload
}

fn config(cluster: &LocalCluster, concurrency: u32) -> WorkerConfig {
    let endpoints = cluster
        .nodes
        .iter()
        .map(|n| Endpoint {
            name: n.id.clone(),
            addr: n.addr.clone(),
        })
        .collect();
    let raft = faultline::system::SystemRef::parse("raft").unwrap();
    WorkerConfig {
        concurrency,
        clients: raft.clients(
            endpoints,
            Duration::from_millis(300),
            &faultline::system::DeployOptions::default(),
        ),
        op_timeout: Duration::from_millis(500),
    }
}

fn source(w: &Workload, seed: u64, rate: f64) -> Arc<Source> {
    Arc::new(Source {
        generator: Mutex::new(w.generator(seed)),
        pacer: Mutex::new(Pacer::new(rate)),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_workload_survives_a_leader_kill_and_checks_valid() {
    let mut cluster = LocalCluster::start(Path::new(EXE), "raft", 3, &[]).unwrap();
    let leader = cluster
        .wait_for_leader(&[0, 1, 2], Duration::from_secs(10))
        .await
        .expect("a leader");
    let w = workload("set");
    let cfg = Arc::new(config(&cluster, 6));
    let recorder = Arc::new(Recorder::create(None, Instant::now()).unwrap());
    let (stop_tx, stop) = watch::channel(false);
    let source = source(&w, 1, 400.0);
    let run = tokio::spawn(workers::run(
        cfg.clone(),
        source.clone(),
        recorder.clone(),
        stop,
    ));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    cluster.kill(leader);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    cluster.start_node(leader).unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop_tx.send(true).unwrap();
    run.await.unwrap();
    cluster
        .wait_for_leader(&[0, 1, 2], Duration::from_secs(10))
        .await
        .expect("a leader after the restart");
    let reads = source.generator.lock().unwrap().final_reads();
    workers::final_reads(
        &cfg,
        &reads,
        &recorder,
        10_000,
        Instant::now() + Duration::from_secs(10),
    )
    .await;

    let (ops, write_error) = recorder.finish();
    assert_eq!(write_error, None);
    pair(&ops).expect("every completion follows its invocation");
    let oks = ops.iter().filter(|o| o.kind == OpType::Ok).count();
    assert!(
        oks > 200,
        "only {oks} ok ops in 3 s at 400/s:\n{}",
        cluster.logs()
    );
    assert!(
        ops.iter().any(|o| o.kind == OpType::Ok && o.node.is_some()),
        "completions name the node that answered"
    );
    let result = set::check(&ops);
    assert_eq!(result.verdict, Verdict::Valid, "{result:?}");
    assert_eq!(
        result.never_read, 0,
        "the final reads saw every acknowledged add: {result:?}"
    );
    assert!(result.stable > 100, "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_stop_on_time_when_every_node_is_paused_and_info_ops_change_process() {
    let cluster = LocalCluster::start(Path::new(EXE), "raft", 3, &[]).unwrap();
    cluster
        .wait_for_leader(&[0, 1, 2], Duration::from_secs(10))
        .await
        .expect("a leader");
    let w = workload("bank");
    let cfg = Arc::new(config(&cluster, 3));
    let recorder = Arc::new(Recorder::create(None, Instant::now()).unwrap());
    let (stop_tx, stop) = watch::channel(false);
    let run = tokio::spawn(workers::run(
        cfg.clone(),
        source(&w, 2, 200.0),
        recorder.clone(),
        stop,
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..3 {
        cluster.pause(i, true);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop_tx.send(true).unwrap();
    // Bounded by the op timeout (500 ms), not by the paused nodes.
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("workers ended despite paused nodes")
        .unwrap();
    for i in 0..3 {
        cluster.pause(i, false);
    }
    let (ops, _) = recorder.finish();
    let info: Vec<_> = ops.iter().filter(|o| o.kind == OpType::Info).collect();
    assert!(!info.is_empty(), "calls to paused nodes end as info");
    // After an info op a worker continues as a new process: no process invokes after its info.
    for op in &info {
        let later_invoke = ops
            .iter()
            .any(|o| o.index > op.index && o.process == op.process && o.kind == OpType::Invoke);
        assert!(
            !later_invoke,
            "process {} invoked again after its info op {}",
            op.process, op.index
        );
    }
    assert!(
        ops.iter()
            .any(|o| matches!(o.process, Process::Client(p) if p >= 3)),
        "some worker moved on to a new process"
    );
    let result = bank::check(
        &ops,
        &bank::BankOptions {
            accounts: (0..5).map(|a| a.to_string()).collect(),
            total: 50,
        },
    );
    assert_eq!(result.verdict, Verdict::Valid, "{result:?}");
    assert!(result.reads_checked > 10, "{result:?}");
}
