//! `faultline bench register`: the linearizability checker on generated
//! cas-register histories with crashed operations (`generator::register`),
//! at each client count and seed: verdict, configurations, check time and
//! peak memory. Figures are printed, never asserted.
//!
//! Peak memory is the process's resident peak (VmHWM) during the check: it
//! is reset before each check through /proc/self/clear_refs, so each row is
//! its own (the generated history, held in memory, is counted in it).

use super::bench::peak_rss_bytes;
use crate::checker::linearizable::{Options, check, describe_stop};
use crate::generator::register::{RegisterSynth, generate};
use crate::history::OpType;
use std::fmt::Write;
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchRegisterArgs {
    /// Client operations per history.
    #[arg(long, default_value_t = 5000)]
    pub ops: usize,
    /// Client counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "20,35,50")]
    pub clients: Vec<usize>,
    /// Seeds to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub seeds: Vec<u64>,
    /// Percent of the operations that crash (half writes, half cas).
    #[arg(long, default_value_t = 2)]
    pub crash_percent: u32,
    /// Values are drawn from 0..values.
    #[arg(long, default_value_t = 5)]
    pub values: u32,
    /// One ok read in each history reports a value it did not see.
    #[arg(long)]
    pub corrupt: bool,
}

pub fn run(args: &BenchRegisterArgs) -> anyhow::Result<u8> {
    let options = Options::default();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "faultline bench register: {} ops, values 0..{}, {}% crashed{}, cas-register, default limits ({:?}, {} MiB), release build: {}",
        args.ops,
        args.values,
        args.crash_percent,
        if args.corrupt {
            ", one corrupt read"
        } else {
            ""
        },
        options.time_limit,
        options.memory_limit_bytes >> 20,
        !cfg!(debug_assertions)
    );
    let _ = writeln!(
        out,
        "{:>7} {:>5} {:>7} {:>7} {:>8} {:>14} {:>10} {:>10}",
        "clients", "seed", "crashed", "searched", "verdict", "configurations", "time", "peak MiB"
    );
    print!("{out}");
    for &clients in &args.clients {
        for &seed in &args.seeds {
            let mut synth = RegisterSynth::new(args.ops, clients, seed);
            synth.crash_percent = args.crash_percent;
            synth.values = args.values;
            synth.corrupt = args.corrupt;
            let ops = generate(&synth);
            let crashed = ops.iter().filter(|o| o.kind == OpType::Info).count();
            // Resets VmHWM to the current resident size (Linux; ignored elsewhere).
            let _ = std::fs::write("/proc/self/clear_refs", "5");
            let started = Instant::now();
            let report = check(&ops, &options)?;
            let elapsed = started.elapsed();
            let peak = peak_rss_bytes().map_or("?".into(), |b| (b >> 20).to_string());
            let key = &report.keys[0];
            println!(
                "{clients:>7} {seed:>5} {crashed:>7} {:>8} {:>8} {:>14} {:>9.2}s {peak:>10}",
                key.ops,
                report.verdict.as_str(),
                key.configurations,
                elapsed.as_secs_f64(),
            );
            if let Some(reason) = key.stopped {
                println!("        ({})", describe_stop(reason, &options));
            }
        }
    }
    Ok(0)
}
