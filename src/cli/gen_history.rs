//! `faultline gen-history`: a synthetic transactional history from a seeded
//! simulated database, strictly serializable or with one anomaly injected;
//! or (`--workload cas-register`) a register history with crashed operations.

use crate::outcome::Outcome;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct GenHistoryArgs {
    #[arg(long, value_parser = ["list-append", "rw-register", "cas-register"])]
    workload: String,
    /// cas-register: how many operations.
    #[arg(long, default_value_t = 5000)]
    ops: usize,
    /// cas-register: values are drawn from 0..values.
    #[arg(long, default_value_t = 5)]
    values: u32,
    /// cas-register: percent of the operations that crash (end info), half
    /// writes and half cas.
    #[arg(long, default_value_t = 2)]
    crash_percent: u32,
    /// cas-register: one ok read in the second half reports a value it did not see.
    #[arg(long)]
    corrupt: bool,
    /// How many transactions.
    #[arg(long, default_value_t = 10_000)]
    txns: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 20)]
    clients: usize,
    /// Keys in use at a time (each retires after --max-writes-per-key writes).
    #[arg(long, default_value_t = 1000)]
    keys: u32,
    #[arg(long, default_value_t = 32)]
    max_writes_per_key: u32,
    /// Fewest and most micro-ops per transaction.
    #[arg(long, default_value_t = 1)]
    min_txn_len: u32,
    #[arg(long, default_value_t = 4)]
    max_txn_len: u32,
    /// Percent of transactions that fail, and that end info.
    #[arg(long, default_value_t = 1)]
    fail_percent: u32,
    #[arg(long, default_value_t = 1)]
    info_percent: u32,
    /// Inject an anomaly: g0, g1a, g1b, g1c, g-single, g-nonadjacent,
    /// g2-item, lost-update, internal, future-read, dirty-update,
    /// duplicate-elements, incompatible-order, garbage-read, stale-read,
    /// fractured-read, causality-violation.
    #[arg(long)]
    anomaly: Option<String>,
    /// The seed (a random one is chosen and printed if absent).
    #[arg(long)]
    seed: Option<u64>,
    /// Where to write the JSONL history.
    #[arg(long)]
    out: std::path::PathBuf,
}

/// Writes the history and says what is in it (its seed, the anomaly).
pub fn run(args: GenHistoryArgs) -> ExitCode {
    use crate::generator::synthetic::{self, Inject, SynthOptions, TxnWorkload};
    let workload = match args.workload.as_str() {
        "cas-register" => return register(&args),
        "rw-register" => TxnWorkload::RwRegister,
        _ => TxnWorkload::ListAppend,
    };
    let anomaly = match args
        .anomaly
        .as_deref()
        .map(str::parse::<Inject>)
        .transpose()
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("faultline gen-history: {e}");
            return ExitCode::from(Outcome::HarnessError);
        }
    };
    let seed = args.seed.unwrap_or_else(crate::seed::draw);
    let mut o = SynthOptions::new(workload, args.txns, seed);
    o.clients = args.clients;
    o.keys = args.keys;
    o.max_writes_per_key = args.max_writes_per_key;
    o.txn_len = [args.min_txn_len, args.max_txn_len];
    o.fail_percent = args.fail_percent;
    o.info_percent = args.info_percent;
    o.anomaly = anomaly;
    match synthetic::write_jsonl(&o, &args.out) {
        Ok(s) => {
            let expect = anomaly.map_or(String::new(), |a| {
                format!(
                    ", anomaly {} (a checker should report {})",
                    a.name(),
                    a.expected()
                )
            });
            println!(
                "wrote {} transactions ({} ops) to {}, seed {seed}{expect}",
                s.txns,
                s.ops,
                args.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("faultline gen-history: {}: {e}", args.out.display());
            ExitCode::from(Outcome::HarnessError)
        }
    }
}

/// `--workload cas-register`: the simulated register with crashed ops.
fn register(args: &GenHistoryArgs) -> ExitCode {
    use crate::generator::register::{RegisterSynth, write_jsonl};
    let seed = args.seed.unwrap_or_else(crate::seed::draw);
    let mut o = RegisterSynth::new(args.ops, args.clients, seed);
    o.values = args.values;
    o.crash_percent = args.crash_percent;
    o.corrupt = args.corrupt;
    match write_jsonl(&o, &args.out) {
        Ok(n) => {
            println!(
                "wrote {} register operations ({n} ops) from {} clients to {}, seed {seed}",
                args.ops,
                args.clients,
                args.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("faultline gen-history: {}: {e}", args.out.display());
            ExitCode::from(Outcome::HarnessError)
        }
    }
}
