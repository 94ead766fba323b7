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
    /// Percent of transactions that end `info` (each gives its client a
    /// new process, so a new session for `causal`).
    #[arg(long, default_value_t = 1)]
    info_percent: u32,
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
    /// Put each node's data directory on `faultline lazyfs`, the file system of
    /// disk faults (root and /dev/fuse), to compare with a plain directory.
    #[arg(long)]
    lazyfs: bool,
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
        lazyfs: args.lazyfs,
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
        info_percent: args.info_percent,
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
