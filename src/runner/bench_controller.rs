//! `faultline bench controller`: the harness alone, against trivial nodes,
//! so the figure is the controller's ceiling (history recording, generator,
//! pacer, clients), not a consensus protocol's. Goal: ≥ 50,000 ops/s, so the
//! harness is never the bottleneck of a real run.
//!
//! A trivial node is an in-process TCP server speaking the client protocol
//! that applies each request to the shared state machine at once: no
//! replication, no disk.

use super::recorder::Recorder;
use super::workers::{self, Source, WorkerConfig};
use crate::generator::Pacer;
use crate::nodes::state_machine::{BankConfig, StateMachine};
use crate::nodes::wire::{Reply, Request, encode_frame, read_frame};
use crate::suite::test::{Source as SpecSource, resolve};
use crate::suite::{Span, TestSpec, WorkloadRef};
use crate::system::Endpoint;
use crate::system::SystemRef;
use anyhow::Context;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchControllerArgs {
    /// Workload preset the generator draws from.
    #[arg(long, default_value = "register")]
    pub workload: String,
    /// Client workers.
    #[arg(long, default_value_t = 50)]
    pub concurrency: u32,
    /// Trivial nodes the workers are bound to.
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    #[arg(long, default_value = "5s")]
    pub duration: Span,
}

/// Serves the client protocol on `listener`, applying each request to one
/// state machine per node.
async fn trivial_node(listener: TcpListener) {
    let sm = Arc::new(Mutex::new(StateMachine::new(BankConfig::default())));
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        let sm = sm.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut reader = BufReader::new(read);
            let mut buf = Vec::new();
            let mut out = Vec::new();
            while let Ok(true) = read_frame(&mut reader, &mut buf).await {
                let Ok(request) = serde_json::from_slice::<Request>(&buf) else {
                    return;
                };
                let result = sm
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .apply(&request.op);
                let reply = match result {
                    Ok(out) => Reply::ok(request.id, &request.op, &out),
                    Err(code) => Reply::fail(request.id, code),
                };
                // Replies to requests that arrived together go out together.
                out.extend_from_slice(&encode_frame(&reply));
                if reader.buffer().is_empty() {
                    if write.write_all(&out).await.is_err() {
                        return;
                    }
                    out.clear();
                }
            }
        });
    }
}

/// Runs the benchmark and prints its figures.
pub fn run(args: &BenchControllerArgs) -> anyhow::Result<u8> {
    let spec = TestSpec {
        db: SystemRef::parse("raft").ok(),
        workload: Some(WorkloadRef::Name(args.workload.clone())),
        ..TestSpec::default()
    };
    let test = resolve(&spec, &SpecSource::command_line())?;
    let dir = tempfile_dir()?;
    let history = dir.join("history.jsonl");
    // The trivial nodes get a thread and a runtime of their own, as real
    // nodes are other processes; the harness runs as in `faultline run`.
    let mut endpoints = Vec::new();
    let mut listeners = Vec::new();
    for i in 0..args.nodes {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        endpoints.push(Endpoint {
            name: format!("n{}", i + 1),
            addr: listener.local_addr()?.to_string(),
        });
        listeners.push(listener);
    }
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            for l in listeners {
                if let Ok(l) = TcpListener::from_std(l) {
                    tokio::spawn(trivial_node(l));
                }
            }
            std::future::pending::<()>().await
        });
    });
    let runtime = super::run::runtime()?;
    let (ops, elapsed, latencies_ns) = runtime.block_on(async {
        let cfg = Arc::new(WorkerConfig {
            concurrency: args.concurrency,
            clients: test.db.clients(
                endpoints,
                Duration::from_secs(1),
                &crate::system::DeployOptions::default(),
            ),
            op_timeout: Duration::from_secs(1),
        });
        // No pacing to speak of: as fast as the harness goes.
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
        let (ops, _) = recorder.finish();
        let latencies = latencies(&ops);
        anyhow::Ok((ops, elapsed, latencies))
    })?;
    let completed = latencies_ns.len();
    let bytes = std::fs::metadata(&history).map(|m| m.len()).unwrap_or(0);
    let pct = |p: f64| {
        latencies_ns
            .get(((completed as f64 * p) as usize).min(completed.saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1e3
    };
    println!(
        "controller against {} trivial nodes, {} workers, workload {}, {:.1} s",
        args.nodes,
        args.concurrency,
        args.workload,
        elapsed.as_secs_f64()
    );
    println!(
        "  operations completed  {completed} ({:.0} ops/s)",
        completed as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  history               {} events, {:.1} MB written",
        ops.len(),
        bytes as f64 / 1e6
    );
    println!(
        "  latency (us)          p50 {:.0}  p90 {:.0}  p99 {:.0}  max {:.0}",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "  peak memory           {} MiB",
        super::bench::peak_rss_bytes().unwrap_or(0) >> 20
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(0)
}

/// Completion minus invocation time of every completed op, sorted.
pub(super) fn latencies(ops: &[crate::history::Op]) -> Vec<u64> {
    let calls = crate::history::pair(ops).unwrap_or_default();
    let mut out: Vec<u64> = calls
        .iter()
        .filter_map(|c| c.completion.map(|d| ops[d].time - ops[c.invoke].time))
        .collect();
    out.sort_unstable();
    out
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir =
        std::env::temp_dir().join(format!("faultline-bench-controller-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
