//! `faultline bench node`: throughput and latency of a bundled system on
//! loopback. Starts a [`LocalCluster`], runs concurrent clients for a fixed
//! time, and reports ops/s and latency percentiles of acknowledged ops.
//!
//! A figure printer, not a test: it asserts nothing about speed.

use super::LeaderClient;
use super::local::LocalCluster;
use crate::nodes::wire::{Operation, Outcome};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct BenchConfig {
    /// The faultline binary the nodes run from.
    pub exe: PathBuf,
    pub system: &'static str,
    pub nodes: usize,
    pub clients: usize,
    pub duration: Duration,
    /// Share of register reads among the ops, 0..=100; the rest are writes.
    pub reads_percent: u32,
    /// Extra node arguments (`--bug no-fsync`, ...).
    pub node_args: Vec<String>,
    /// Each node's data directory on `faultline lazyfs` (disk faults' file system).
    pub lazyfs: bool,
}

#[derive(Debug, Default)]
pub struct BenchReport {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    pub elapsed: Duration,
    /// Latencies of acknowledged ops, sorted.
    pub latencies_ns: Vec<u64>,
}

impl BenchReport {
    pub fn ops_per_s(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `p`-th percentile latency (0..=100) of acknowledged ops.
    pub fn latency_ns(&self, p: f64) -> u64 {
        if self.latencies_ns.is_empty() {
            return 0;
        }
        let rank = ((p / 100.0) * (self.latencies_ns.len() - 1) as f64).round() as usize;
        self.latencies_ns[rank.min(self.latencies_ns.len() - 1)]
    }

    pub fn render(&self, config: &BenchConfig) -> String {
        let ms = |ns: u64| ns as f64 / 1e6;
        format!(
            "{} nodes of {}{}, {} clients, {}% reads, {:.1} s\n\
             ok {}  fail {}  info {}\n\
             throughput   {:.0} ops/s\n\
             latency ms   p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\n",
            config.nodes,
            config.system,
            if config.lazyfs { " on lazyfs" } else { "" },
            config.clients,
            config.reads_percent,
            self.elapsed.as_secs_f64(),
            self.ok,
            self.fail,
            self.info,
            self.ops_per_s(),
            ms(self.latency_ns(50.0)),
            ms(self.latency_ns(90.0)),
            ms(self.latency_ns(99.0)),
            ms(self.latency_ns(100.0)),
        )
    }
}

/// Runs the benchmark: start the cluster, wait for a leader, load it.
pub async fn run(config: &BenchConfig) -> anyhow::Result<BenchReport> {
    let args: Vec<&str> = config.node_args.iter().map(String::as_str).collect();
    let cluster = if config.lazyfs {
        LocalCluster::start_on_lazyfs(&config.exe, config.system, config.nodes, &args)?
    } else {
        LocalCluster::start(&config.exe, config.system, config.nodes, &args)?
    };
    if !cluster.wait_ready(Duration::from_secs(15)).await {
        anyhow::bail!("not serving after 15 s; node logs:\n{}", cluster.logs());
    }
    let start = Instant::now();
    let deadline = start + config.duration;
    let mut tasks = Vec::with_capacity(config.clients);
    for c in 0..config.clients {
        let addrs = cluster.addrs();
        let reads_percent = u64::from(config.reads_percent);
        tasks.push(tokio::spawn(async move {
            let mut client = LeaderClient::new(addrs);
            let mut report = BenchReport::default();
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let key = (c % 100) as i64;
                // Spread reads evenly: op n is a read when n*reads% crosses an integer.
                let op = if (n * reads_percent) / 100 != ((n - 1) * reads_percent) / 100 {
                    Operation::Read { key }
                } else {
                    Operation::Write {
                        key,
                        value: n as i64,
                    }
                };
                let began = Instant::now();
                match client.call(op, Duration::from_secs(5)).await.1 {
                    Ok(Outcome::Ok { .. }) => {
                        report.ok += 1;
                        report.latencies_ns.push(began.elapsed().as_nanos() as u64);
                    }
                    Ok(Outcome::Fail { .. }) => report.fail += 1,
                    Ok(Outcome::Info { .. }) | Err(_) => report.info += 1,
                }
            }
            report
        }));
    }
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
    drop(cluster);
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_by_rank() {
        let r = BenchReport {
            ok: 4,
            latencies_ns: vec![10, 20, 30, 40],
            elapsed: Duration::from_secs(2),
            ..Default::default()
        };
        assert_eq!(r.latency_ns(0.0), 10);
        assert_eq!(r.latency_ns(100.0), 40);
        assert_eq!(r.latency_ns(50.0), 30);
        assert_eq!(r.ops_per_s(), 2.0);
    }
}
