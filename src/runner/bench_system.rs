//! `faultline bench system`: the throughput and latency of a deployed
//! system under test (Redis, etcd, ...) on a local netns cluster, through its own
//! clients and the run's workers, with no faults and no pacing to speak of.
//! The figure is the system's and its client's, on this machine, not the
//! harness's (that is `bench controller`).

use super::recorder::Recorder;
use super::workers::{self, Source, WorkerConfig};
use crate::cluster::{self, Backend, ClusterGuard, UpOptions};
use crate::generator::Pacer;
use crate::history::OpType;
use crate::suite::test::{Source as SpecSource, resolve};
use crate::suite::{Span, TestSpec, WorkloadRef};
use crate::system::{self, DeployOptions, SystemRef};
use anyhow::Context;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(clap::Args, Clone)]
pub struct BenchSystemArgs {
    /// The system under test.
    #[arg(long, default_value = "redis", value_parser = system::value_parser())]
    pub db: SystemRef,
    /// Workload preset the generator draws from.
    #[arg(long, default_value = "register")]
    pub workload: String,
    /// Hosts of the local netns cluster.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Client workers.
    #[arg(long, default_value_t = 10)]
    pub concurrency: u32,
    #[arg(long, default_value = "10s")]
    pub duration: Span,
    /// An option of the system (etcd: serializable_reads=true; zookeeper: sync_reads=false); repeatable.
    #[arg(long = "db-option", value_name = "NAME=VALUE", value_parser = super::args::db_option)]
    pub db_options: Vec<(String, serde_yaml_ng::Value)>,
}

/// Makes a netns cluster, deploys the system, drives it and prints its figures.
pub fn run(args: &BenchSystemArgs) -> anyhow::Result<u8> {
    let spec = TestSpec {
        db: Some(args.db.clone()),
        workload: Some(WorkloadRef::Name(args.workload.clone())),
        db_options: (!args.db_options.is_empty())
            .then(|| args.db_options.iter().cloned().collect()),
        ..TestSpec::default()
    };
    let test = resolve(&spec, &SpecSource::command_line())?;
    let binary = std::env::current_exe().context("finding my own executable")?;
    let name = format!("bench{:06x}", rand::random::<u32>() & 0xff_ffff);
    let cluster = cluster::up(&UpOptions {
        name: name.clone(),
        backend: Backend::Netns,
        nodes: args.nodes,
        ssh: false,
        disk_faults: false,
        binary: binary.clone(),
    })
    .with_context(|| format!("making a netns cluster of {} hosts", args.nodes))?;
    let _guard = ClusterGuard { name };
    let options = DeployOptions {
        workload: Some(test.workload.clone()),
        db_options: test.db_options.clone(),
        install: false,
        binary,
        ..DeployOptions::default()
    };
    let (db, timings) = system::deploy(test.db.get(), &cluster, &options)
        .context("deploying the system under test")?;
    let dir = std::env::temp_dir().join(format!("faultline-bench-system-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let history = dir.join("history.jsonl");
    let runtime = super::run::runtime()?;
    let (ops, elapsed) = runtime.block_on(async {
        let cfg = Arc::new(WorkerConfig {
            concurrency: args.concurrency,
            clients: test
                .db
                .clients(db.endpoints(), Duration::from_millis(500), &options),
            op_timeout: Duration::from_secs(1),
        });
        let source = Arc::new(Source {
            generator: Mutex::new(test.workload.generator(1)),
            pacer: Mutex::new(Pacer::new(1e9)),
        });
        let recorder = Arc::new(Recorder::create(Some(&history), Instant::now())?);
        let (stop_tx, stop) = watch::channel(false);
        let started = Instant::now();
        let run = tokio::spawn(workers::run(cfg, source, recorder.clone(), stop));
        tokio::time::sleep(args.duration.0).await;
        let _ = stop_tx.send(true);
        run.await?;
        let elapsed = started.elapsed();
        anyhow::Ok((recorder.finish().0, elapsed))
    })?;
    let _ = db.stop_all(Duration::from_secs(2));
    let _ = std::fs::remove_dir_all(&dir);
    let latencies = super::bench_controller::latencies(&ops);
    let count = |t: OpType| ops.iter().filter(|o| o.kind == t).count();
    let pct = |p: f64| {
        let n = latencies.len();
        latencies
            .get(((n as f64 * p) as usize).min(n.saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1e3
    };
    let secs = elapsed.as_secs_f64();
    println!(
        "{} on {} netns hosts, {} workers, workload {}, {secs:.1} s (deployed: {timings})",
        test.db.name(),
        args.nodes,
        args.concurrency,
        args.workload,
    );
    println!(
        "  completed             {} ({:.0} ops/s): {} ok, {} fail, {} info",
        latencies.len(),
        latencies.len() as f64 / secs,
        count(OpType::Ok),
        count(OpType::Fail),
        count(OpType::Info)
    );
    println!(
        "  latency (us)          p50 {:.0}  p90 {:.0}  p99 {:.0}  max {:.0}",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    Ok(0)
}
