//! `faultline bench elle`: how fast the Elle checker is on generated
//! list-append histories of growing size, phase by phase, with peak memory.
//!
//! Each size is generated to a JSONL file first (not timed), then read with
//! the fast typed reader and checked, with the process's peak resident set
//! (VmHWM) reset before each size so every row shows its own peak. Figures
//! are printed, never asserted.

use crate::checker::elle::{self, ElleOptions, Model, Workload};
use crate::generator::synthetic::{self, SynthOptions, TxnWorkload};
use crate::history::txn;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Debug, Clone)]
pub struct ElleBench {
    /// Transaction counts, one row each.
    pub sizes: Vec<usize>,
    pub clients: usize,
    pub keys: u32,
    pub seed: u64,
    pub model: Model,
    pub info_percent: u32,
}

/// One measured size.
#[derive(Debug, Clone)]
pub struct ElleRow {
    pub txns: usize,
    pub ops: u64,
    pub file_bytes: u64,
    pub parse: Duration,
    pub timings: elle::Timings,
    pub total: Duration,
    /// CPU time (user + system, all threads) of reading and of checking:
    /// on a shared machine wall time also counts waiting for a core.
    pub parse_cpu: Option<Duration>,
    pub check_cpu: Option<Duration>,
    pub peak_rss_bytes: Option<u64>,
    pub verdict: &'static str,
    pub edges: usize,
}

/// Generates, reads and checks each size; `dir` holds the generated files.
pub fn run_elle(
    b: &ElleBench,
    dir: &Path,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<Vec<ElleRow>> {
    let mut rows = Vec::new();
    for &n in &b.sizes {
        let path = dir.join(format!("list-append-{n}.jsonl"));
        let mut o = SynthOptions::new(TxnWorkload::ListAppend, n, b.seed);
        (o.clients, o.keys, o.info_percent) = (b.clients, b.keys, b.info_percent);
        progress(&format!(
            "generating {n} transactions into {}",
            path.display()
        ));
        let summary = synthetic::write_jsonl(&o, &path)?;
        let file_bytes = std::fs::metadata(&path)?.len();
        progress(&format!("checking {n} transactions"));
        reset_peak_rss();
        let (start, cpu0) = (Instant::now(), cpu_time());
        let read = txn::read_jsonl(&path)?;
        let (parse, cpu1) = (start.elapsed(), cpu_time());
        let opts = ElleOptions::new(Workload::ListAppend, b.model);
        let r = elle::check_txns(&read.txns, &opts)?;
        let (total, cpu2) = (start.elapsed(), cpu_time());
        let peak_rss_bytes = super::bench::peak_rss_bytes();
        drop(read);
        std::fs::remove_file(&path)?;
        rows.push(ElleRow {
            txns: n,
            ops: summary.ops,
            file_bytes,
            parse,
            timings: r.timings,
            total,
            parse_cpu: cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a)),
            check_cpu: cpu1.zip(cpu2).map(|(a, b)| b.saturating_sub(a)),
            peak_rss_bytes,
            verdict: r.verdict.as_str(),
            edges: r.stats.edges,
        });
    }
    Ok(rows)
}

/// The rows as a table, and the growth from each size to the next.
pub fn table(rows: &[ElleRow]) -> String {
    let ms = |d: Duration| format!("{:.0}", d.as_secs_f64() * 1e3);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>9} {:>9} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>10} {:>9} {:>8}",
        "txns",
        "ops",
        "MB",
        "edges",
        "parse",
        "infer",
        "graph",
        "scc",
        "cycles",
        "weak",
        "total ms",
        "parse cpu",
        "check cpu",
        "peak MiB",
        "verdict"
    );
    for r in rows {
        let t = &r.timings;
        let _ = writeln!(
            out,
            "{:>9} {:>9} {:>8.1} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>10} {:>9} {:>8}",
            r.txns,
            r.ops,
            r.file_bytes as f64 / 1e6,
            r.edges,
            ms(r.parse),
            ms(t.infer),
            ms(t.graph),
            ms(t.scc),
            ms(t.cycles),
            ms(t.weak),
            ms(r.total),
            r.parse_cpu.map_or("?".into(), ms),
            r.check_cpu.map_or("?".into(), ms),
            r.peak_rss_bytes.map_or("?".into(), |b| format!(
                "{:.0}",
                b as f64 / (1 << 20) as f64
            )),
            r.verdict
        );
    }
    for w in rows.windows(2) {
        let cpu = |r: &ElleRow| {
            r.parse_cpu
                .zip(r.check_cpu)
                .map(|(a, b)| (a + b).as_secs_f64())
        };
        let cpu_ratio = cpu(&w[0])
            .zip(cpu(&w[1]))
            .map_or("?".into(), |(a, b)| format!("{:.2}", b / a.max(1e-9)));
        let _ = writeln!(
            out,
            "{}x the transactions ({} -> {}) took {:.2}x the wall time, {cpu_ratio}x the CPU time",
            w[1].txns as f64 / w[0].txns.max(1) as f64,
            w[0].txns,
            w[1].txns,
            w[1].total.as_secs_f64() / w[0].total.as_secs_f64().max(1e-9)
        );
    }
    out
}

/// This process's CPU time so far, user + system, from /proc (Linux).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) closing ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // The kernel reports in USER_HZ, 100 on every Linux we run on.
    Some(Duration::from_millis(ticks * 10))
}

/// Resets the kernel's peak-RSS mark for this process (Linux; ignored elsewhere).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
