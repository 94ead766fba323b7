//! Performance of a history: each operation's latency, latency percentiles
//! per function, and throughput over time.
//!
//! Not a consistency checker: it never decides a verdict. The report draws
//! these figures; the runner may print them.
//!
//! Latency is measured from an operation's invocation to its completion. An
//! operation that never completed has no latency; one that ended `info` has
//! the time until the client gave up (usually its timeout).

use crate::history::{Call, Op, Outcome};

/// One client operation's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Index into [`Perf::fs`].
    pub f: u32,
    pub outcome: Outcome,
    /// Whether the history has a completion for it (`info` counts as one).
    pub completed: bool,
    pub start_ns: u64,
    /// `None` when the operation never completed.
    pub latency_ns: Option<u64>,
}

/// Timings of every client operation of a history, in invocation order.
#[derive(Debug, Clone, Default)]
pub struct Perf {
    /// The distinct functions (`read`, `write`, ...), in order of first appearance.
    pub fs: Vec<String>,
    pub timings: Vec<Timing>,
    /// Time of the history's last event.
    pub end_ns: u64,
}

/// Timings from paired calls (see [`crate::history::pair`]).
pub fn perf(ops: &[Op], calls: &[Call]) -> Perf {
    let mut fs: Vec<String> = Vec::new();
    let mut timings = Vec::with_capacity(calls.len());
    for call in calls {
        let invoke = &ops[call.invoke];
        let f = match fs.iter().position(|f| *f == invoke.f) {
            Some(i) => i,
            None => {
                fs.push(invoke.f.clone());
                fs.len() - 1
            }
        };
        let completion = call.completion.map(|c| &ops[c]);
        timings.push(Timing {
            f: f as u32,
            outcome: call.outcome,
            completed: completion.is_some(),
            start_ns: invoke.time,
            latency_ns: completion.map(|c| c.time.saturating_sub(invoke.time)),
        });
    }
    Perf {
        fs,
        timings,
        end_ns: ops.iter().map(|op| op.time).max().unwrap_or(0),
    }
}

/// Latency percentiles of one function's `ok` operations, and its counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Percentiles {
    pub f: String,
    pub count: usize,
    pub ok: usize,
    pub fail: usize,
    /// Ended `info` or never completed.
    pub unknown: usize,
    /// Of `ok` operations; `None` when there are none.
    pub latency_ns_p50: Option<u64>,
    pub latency_ns_p90: Option<u64>,
    pub latency_ns_p99: Option<u64>,
    pub latency_ns_p999: Option<u64>,
    pub latency_ns_max: Option<u64>,
}

/// One row per function, in [`Perf::fs`] order, then one for all of them.
pub fn percentiles(perf: &Perf) -> Vec<Percentiles> {
    let mut rows: Vec<Percentiles> = (0..perf.fs.len())
        .map(|f| row(perf, perf.fs[f].clone(), |t| t.f as usize == f))
        .collect();
    if perf.fs.len() > 1 {
        rows.push(row(perf, "all".into(), |_| true));
    }
    rows
}

fn row(perf: &Perf, name: String, keep: impl Fn(&Timing) -> bool) -> Percentiles {
    let mut ok_latencies: Vec<u64> = Vec::new();
    let (mut count, mut fail, mut unknown) = (0, 0, 0);
    for t in perf.timings.iter().filter(|t| keep(t)) {
        count += 1;
        match t.outcome {
            Outcome::Ok => ok_latencies.extend(t.latency_ns),
            Outcome::Fail => fail += 1,
            Outcome::Unknown => unknown += 1,
        }
    }
    ok_latencies.sort_unstable();
    let q = |p: f64| quantile(&ok_latencies, p);
    Percentiles {
        f: name,
        count,
        ok: ok_latencies.len(),
        fail,
        unknown,
        latency_ns_p50: q(0.5),
        latency_ns_p90: q(0.9),
        latency_ns_p99: q(0.99),
        latency_ns_p999: q(0.999),
        latency_ns_max: ok_latencies.last().copied(),
    }
}

/// The nearest-rank quantile of sorted values: the smallest value with at
/// least `p` of the values at or below it.
pub fn quantile(sorted: &[u64], p: f64) -> Option<u64> {
    debug_assert!(sorted.windows(2).all(|w| w[0] <= w[1]), "sorted input");
    debug_assert!((0.0..=1.0).contains(&p));
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Completions per bin of time, by function and outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Throughput {
    pub bin_ns: u64,
    /// `counts[f][outcome][bin]`, outcome 0 ok, 1 fail, 2 info.
    pub counts: Vec<[Vec<u32>; 3]>,
}

impl Throughput {
    pub fn bins(&self) -> usize {
        self.counts.first().map_or(0, |c| c[0].len())
    }
}

/// Counts completed operations in about `bins` equal bins from 0 to the
/// history's end; a bin is a round length (1, 2 or 5 × 10^k ns, at least 1 ms).
pub fn throughput(perf: &Perf, bins: usize) -> Throughput {
    let bin_ns = round_up(perf.end_ns / bins.max(1) as u64).max(1_000_000);
    let n = (perf.end_ns / bin_ns + 1) as usize;
    let mut counts: Vec<[Vec<u32>; 3]> = (0..perf.fs.len())
        .map(|_| [vec![0; n], vec![0; n], vec![0; n]])
        .collect();
    for t in &perf.timings {
        let Some(latency) = t.latency_ns else {
            continue;
        };
        let bin = ((t.start_ns + latency) / bin_ns) as usize;
        counts[t.f as usize][outcome_slot(t.outcome)][bin.min(n - 1)] += 1;
    }
    Throughput { bin_ns, counts }
}

/// The smallest of 1, 2, 5 × 10^k that is at least `x`.
fn round_up(x: u64) -> u64 {
    let mut p = 1u64;
    loop {
        for m in [1, 2, 5] {
            if m * p >= x {
                return m * p;
            }
        }
        match p.checked_mul(10) {
            Some(next) => p = next,
            None => return x,
        }
    }
}

/// 0 ok, 1 fail, 2 info (unknown).
pub fn outcome_slot(o: Outcome) -> usize {
    match o {
        Outcome::Ok => 0,
        Outcome::Fail => 1,
        Outcome::Unknown => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{OpType, Process, pair};
    use serde_json::json;

    fn op(index: u64, time: u64, process: u64, kind: OpType, f: &str) -> Op {
        Op {
            index,
            time,
            process: Process::Client(process),
            kind,
            f: f.into(),
            value: json!(null),
            node: None,
            error: None,
        }
    }

    #[test]
    fn latencies_percentiles_and_throughput() {
        let ops = vec![
            op(0, 0, 1, OpType::Invoke, "read"),
            op(1, 0, 2, OpType::Invoke, "write"),
            op(2, 2_000_000, 1, OpType::Ok, "read"),
            op(3, 3_000_000, 1, OpType::Invoke, "read"),
            op(4, 5_000_000, 2, OpType::Info, "write"),
            op(5, 7_000_000, 1, OpType::Ok, "read"),
            op(6, 7_000_000, 3, OpType::Invoke, "read"),
        ];
        let calls = pair(&ops).unwrap();
        let p = perf(&ops, &calls);
        assert_eq!(p.fs, vec!["read", "write"]);
        let lat: Vec<_> = p.timings.iter().map(|t| t.latency_ns).collect();
        assert_eq!(
            lat,
            vec![Some(2_000_000), Some(5_000_000), Some(4_000_000), None]
        );
        let rows = percentiles(&p);
        assert_eq!(rows.len(), 3, "read, write, all");
        assert_eq!((rows[0].count, rows[0].ok, rows[0].unknown), (3, 2, 1));
        assert_eq!(rows[0].latency_ns_p50, Some(2_000_000));
        assert_eq!(rows[0].latency_ns_max, Some(4_000_000));
        assert_eq!((rows[1].ok, rows[1].unknown), (0, 1));
        assert_eq!(rows[1].latency_ns_p99, None);
        let tp = throughput(&p, 4);
        assert_eq!(tp.bin_ns, 2_000_000);
        // read ok completions at 2 ms (bin 1) and 7 ms (bin 3); write info at 5 ms (bin 2)
        assert_eq!(tp.counts[0][0], vec![0, 1, 0, 1]);
        assert_eq!(tp.counts[1][2], vec![0, 0, 1, 0]);
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(quantile(&v, 0.5), Some(500));
        assert_eq!(quantile(&v, 0.999), Some(999));
        assert_eq!(quantile(&v, 1.0), Some(1000));
        assert_eq!(quantile(&v, 0.0), Some(1));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
