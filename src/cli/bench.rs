//! `faultline bench node`, `bench db`, `bench elle` and `bench cluster`:
//! the figures of a bundled system on loopback, of any system deployed on
//! a local netns cluster through the harness's own client, of the Elle
//! checker on generated histories, and of making and removing clusters. (`bench check`,
//! `bench controller` and `bench report` live in `runner/` and `report/`.)

use super::ShapeArgs;
use crate::outcome::Outcome;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct BenchElleArgs {
    /// Transaction counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    txns: Vec<usize>,
    #[arg(long, default_value_t = 20)]
    clients: usize,
    #[arg(long, default_value_t = 1000)]
    keys: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The consistency model to check (it decides the orders built).
    #[arg(long, default_value = "strict-serializable")]
    consistency: String,
    /// Where to write the generated histories (a temporary folder if absent).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

#[derive(clap::Args)]
pub struct BenchNodeArgs {
    /// Which system to start.
    #[arg(long, default_value = "raft", value_parser = super::node::system_parser())]
    db: crate::nodes::System,
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    #[arg(long, default_value_t = 50)]
    clients: usize,
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Share of register reads, 0..=100; the rest are writes.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    reads_percent: u32,
    /// Start the nodes with this named bug (e.g. no-fsync); repeatable.
    #[arg(long = "bug")]
    bugs: Vec<String>,
}

/// Starts the nodes on loopback, drives them for the duration and prints
/// throughput and latency.
pub fn node(args: BenchNodeArgs) -> ExitCode {
    use crate::client::bench;
    let system = args.db.name();
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("faultline bench node: cannot find my own executable: {e}");
            return ExitCode::from(Outcome::HarnessError);
        }
    };
    let config = bench::BenchConfig {
        exe,
        system,
        nodes: args.nodes.max(1),
        clients: args.clients.max(1),
        duration: std::time::Duration::from_secs(args.duration_s.max(1)),
        reads_percent: args.reads_percent,
        node_args: args
            .bugs
            .iter()
            .flat_map(|b| ["--bug".to_string(), b.clone()])
            .collect(),
    };
    let report = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(bench::run(&config)));
    match report {
        Ok(report) => {
            print!("{}", report.render(&config));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("faultline bench node: {e:#}");
            ExitCode::from(Outcome::HarnessError)
        }
    }
}

#[derive(clap::Args)]
pub struct BenchDbArgs {
    /// The system to deploy (any of `faultline run --db`).
    #[arg(long, default_value = "etcd", value_parser = crate::system::value_parser())]
    db: crate::system::SystemRef,
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    #[arg(long, default_value_t = 50)]
    clients: usize,
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Share of register reads, 0..=100; the rest are writes.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    reads_percent: u32,
    /// An option of the system (etcd: serializable_reads=true); repeatable.
    #[arg(long = "db-option", value_name = "NAME=VALUE", value_parser = crate::runner::args::db_option)]
    db_options: Vec<(String, serde_yaml_ng::Value)>,
}

/// Deploys the system on a throwaway netns cluster as a run does, drives
/// the register workload's reads and writes through its client for the
/// duration (each client on its own key, as fast as answers come), and
/// prints throughput and latency. Figures only: nothing is checked.
pub fn db(args: BenchDbArgs) -> anyhow::Result<u8> {
    use crate::client::bench::{BenchConfig, BenchReport};
    use crate::cluster::{self, Backend, ClusterGuard, UpOptions};
    use crate::history::Ended;
    use crate::workload::Operation;
    use std::time::{Duration, Instant};
    let exe = std::env::current_exe()?;
    let db_options: crate::system::DbOptions = args.db_options.iter().cloned().collect();
    if let Err((option, why)) = args.db.check_options(&db_options) {
        anyhow::bail!("--db-option {option}: {why}");
    }
    let name = format!("bench{}", std::process::id() % 1_000_000);
    let guard = ClusterGuard { name: name.clone() };
    let cluster = cluster::up(&UpOptions {
        name,
        backend: Backend::Netns,
        nodes: args.nodes.max(1),
        ssh: false,
        binary: exe.clone(),
    })?;
    let options = crate::system::DeployOptions {
        binary: exe.clone(),
        db_options,
        ..Default::default()
    };
    let (deployed, timings) = crate::system::deploy(args.db.get(), &cluster, &options)?;
    eprintln!("deployed {} ({timings})", args.db.name());
    let clients = args
        .db
        .clients(deployed.endpoints(), Duration::from_secs(1), &options);
    let config = BenchConfig {
        exe,
        system: args.db.name(),
        nodes: args.nodes.max(1),
        clients: args.clients.max(1),
        duration: Duration::from_secs(args.duration_s.max(1)),
        reads_percent: args.reads_percent,
        node_args: Vec::new(),
    };
    let runtime = crate::runner::run::runtime()?;
    let report = runtime.block_on(async {
        let start = Instant::now();
        let deadline = start + config.duration;
        let tasks: Vec<_> = (0..config.clients)
            .map(|c| {
                let mut client = clients.open(c);
                let reads = u64::from(config.reads_percent);
                tokio::spawn(async move {
                    let mut r = BenchReport::default();
                    let mut n = 0u64;
                    // Bounded by the deadline: each call by its timeout.
                    while Instant::now() < deadline {
                        n += 1;
                        let key = (c % 100) as i64;
                        // Op n is a read when n*reads% crosses an integer.
                        let op = if (n * reads) / 100 != ((n - 1) * reads) / 100 {
                            Operation::Read { key }
                        } else {
                            Operation::Write {
                                key,
                                value: n as i64,
                            }
                        };
                        let began = Instant::now();
                        match client.invoke(&op, Duration::from_secs(5)).await.1 {
                            Ended::Ok(_) => {
                                r.ok += 1;
                                r.latencies_ns.push(began.elapsed().as_nanos() as u64);
                            }
                            Ended::Fail(_) => r.fail += 1,
                            Ended::Info(_) => {
                                r.info += 1;
                                client.reset();
                            }
                        }
                    }
                    r
                })
            })
            .collect();
        let mut total = BenchReport::default();
        for t in tasks {
            let r = t.await?;
            total.ok += r.ok;
            total.fail += r.fail;
            total.info += r.info;
            total.latencies_ns.extend(r.latencies_ns);
        }
        total.elapsed = start.elapsed();
        total.latencies_ns.sort_unstable();
        Ok::<_, anyhow::Error>(total)
    })?;
    let _ = deployed.stop_all(Duration::from_secs(5));
    drop(guard);
    print!("{}", report.render(&config));
    Ok(0)
}

/// Generates list-append histories of each size, checks them and prints
/// the time per phase.
pub fn elle(args: BenchElleArgs) -> ExitCode {
    use crate::runner::bench_elle::{ElleBench, run_elle, table};
    let fail = |e: String| {
        eprintln!("faultline bench elle: {e}");
        ExitCode::from(Outcome::HarnessError)
    };
    let model = match args.consistency.parse() {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.as_path(),
        None => match tempfile_dir() {
            Ok(d) => {
                tmp = d;
                tmp.as_path()
            }
            Err(e) => return fail(e.to_string()),
        },
    };
    let b = ElleBench {
        sizes: args.txns,
        clients: args.clients,
        keys: args.keys,
        seed: args.seed,
        model,
    };
    let result = run_elle(&b, dir, |m| eprintln!("{m}"));
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(dir);
    }
    match result {
        Ok(rows) => {
            println!(
                "Elle on list-append, {} clients, {} keys, seed {}, checked for {model}",
                b.clients, b.keys, b.seed
            );
            print!("{}", table(&rows));
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("{e:#}")),
    }
}

/// A fresh folder for generated files, under the system temp dir.
fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("faultline-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// `bench cluster`: how many rounds, of what shape.
#[derive(clap::Args)]
pub struct BenchClusterArgs {
    #[command(flatten)]
    shape: ShapeArgs,
    /// How many up/down rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// Times `cluster up`, `status` and `down` on throwaway clusters.
pub fn cluster(args: BenchClusterArgs) -> anyhow::Result<u8> {
    crate::cluster::bench::run(
        &args.shape.options("bench"),
        args.rounds,
        &mut std::io::stdout(),
    )?;
    Ok(0)
}
