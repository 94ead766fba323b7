//! `faultline nemesis`: a nemesis file (or preset) against a deployed
//! cluster, without a workload.

use super::TargetArgs;
use clap::Args;

#[derive(Args)]
pub struct NemesisArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// A nemesis file, or a preset name (none, partition-halves, partition-ring, ...).
    #[arg(long, default_value = "partition-halves")]
    nemesis: String,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 30)]
    time_limit_s: u64,
    /// The seed of every random choice (printed; random when not given).
    #[arg(long)]
    seed: Option<u64>,
    /// Stop (healing everything) at the first failed nemesis action.
    #[arg(long)]
    abort_on_nemesis_error: bool,
    /// The system deployed on the cluster (as given to `cluster deploy`).
    #[arg(long, default_value = "raft", value_parser = crate::system::value_parser())]
    db: crate::system::SystemRef,
    #[arg(long, default_value_t = 7000)]
    port: u16,
    /// The nodes were deployed with --faketime (clock faults move their offset files).
    #[arg(long)]
    faketime: bool,
}

/// Runs the nemesis for the time limit (its events go to stdout), then
/// heals and lists the actions that failed.
pub fn run(args: NemesisArgs) -> anyhow::Result<()> {
    use crate::nemesis::{self, Schedule};
    let schedule = Schedule::resolve(&args.nemesis)?;
    let cluster = args.target.open()?;
    let options = crate::system::DeployOptions {
        port: args.port,
        faketime: args.faketime,
        ..Default::default()
    };
    let db = args.db.attach(&cluster, &options)?;
    let seed = args.seed.unwrap_or_else(crate::seed::draw);
    eprintln!(
        "nemesis {} on cluster {} for {} s, seed {seed}",
        args.nemesis, cluster.name, args.time_limit_s
    );
    let options = nemesis::Options {
        abort_on_error: args.abort_on_nemesis_error,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let summary = runtime.block_on(nemesis::standalone::run(
        db,
        schedule,
        seed,
        std::time::Duration::from_secs(args.time_limit_s),
        options,
        std::io::stdout(),
    ))?;
    eprintln!(
        "{} actions, {} failed; seed {seed}",
        summary.actions,
        summary.failures.len()
    );
    for f in &summary.failures {
        eprintln!("  failed: {f}");
    }
    Ok(())
}
