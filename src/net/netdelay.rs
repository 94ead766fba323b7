//! `faultline netdelay`: the delay helper for kernels without tc netem.
//!
//! It runs inside the host, binds NFQUEUE queue [`QUEUE_NUM`], holds each
//! packet the `faultline-out` chain hands it for a sampled delay, and then
//! lets it go. It can also let a share of packets skip the delay (reorder)
//! and flip a byte in a share of them (corrupt: the receiver's checksum
//! drops them). The iptables rule uses `--queue-bypass` and the queue is
//! fail-open, so if the helper dies or falls behind, traffic flows on.
//!
//! Not here: starting and stopping it on a host (`host.rs`).

use super::iptables::QUEUE_NUM;
use super::packet::Distribution;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Packets held at once; beyond this they pass at once (a bound, not a goal).
const HELD_MAX: usize = 65_536;
/// Packets the kernel queues for us before it lets them pass (fail-open).
const KERNEL_QUEUE_LEN: u32 = 8_192;
/// How long the loop sleeps when idle: the delay's resolution.
const IDLE_SLEEP: Duration = Duration::from_micros(250);

/// What the helper does; also its command line.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct DelayConfig {
    /// Mean delay added to each packet.
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u32,
    /// Spread of the delay (standard deviation for normal, half-width for uniform).
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u32,
    #[arg(long, value_enum, default_value_t = Distribution::Normal)]
    pub distribution: Distribution,
    /// Share of packets (percent) that skip the delay.
    #[arg(long, default_value_t = 0.0)]
    pub reorder_pct: f64,
    /// Share of packets (percent) with one byte flipped after the IP header.
    #[arg(long, default_value_t = 0.0)]
    pub corrupt_pct: f64,
    /// Seed of the helper's random choices.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Written with the helper's pid once it is bound to the queue.
    #[arg(long)]
    pub pidfile: Option<String>,
    /// The helper exits by itself after this long (a bound; heal stops it sooner).
    #[arg(long, default_value_t = 86_400)]
    pub max_runtime_s: u64,
}

impl Default for DelayConfig {
    fn default() -> Self {
        DelayConfig {
            delay_ms: 0,
            jitter_ms: 0,
            distribution: Distribution::Normal,
            reorder_pct: 0.0,
            corrupt_pct: 0.0,
            seed: 0,
            pidfile: None,
            max_runtime_s: 86_400,
        }
    }
}

impl DelayConfig {
    /// The arguments after `faultline netdelay`, as a shell fragment.
    pub fn to_args(&self) -> String {
        let mut s = format!(
            "--delay-ms {} --jitter-ms {} --distribution {} --reorder-pct {} --corrupt-pct {} --seed {} --max-runtime-s {}",
            self.delay_ms,
            self.jitter_ms,
            self.distribution.as_str(),
            self.reorder_pct,
            self.corrupt_pct,
            self.seed,
            self.max_runtime_s
        );
        if let Some(p) = &self.pidfile {
            s.push_str(&format!(" --pidfile {}", crate::control::shell_quote(p)));
        }
        s
    }

    /// The delay for one packet, never negative.
    fn sample_delay(&self, rng: &mut ChaCha8Rng) -> Duration {
        let mean = self.delay_ms as f64;
        let jitter = self.jitter_ms as f64;
        let ms = if jitter == 0.0 {
            mean
        } else if self.distribution == Distribution::Uniform {
            mean + rng.random_range(-jitter..=jitter)
        } else {
            mean + jitter * standard_normal(rng)
        };
        Duration::from_secs_f64(ms.max(0.0) / 1000.0)
    }
}

/// A standard normal sample (Box–Muller).
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // in (0, 1]: ln is finite
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A packet waiting for its release time; ordered by (time, arrival).
struct Held {
    release_at: Instant,
    seq: u64,
    msg: nfq::Message,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.release_at, self.seq) == (other.release_at, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.release_at, self.seq).cmp(&(other.release_at, other.seq))
    }
}

/// What the helper did, printed when it exits.
#[derive(Debug, Default, Clone, Copy)]
pub struct DelayStats {
    pub packets: u64,
    pub reordered: u64,
    pub corrupted: u64,
    pub passed_over_bound: u64,
}

/// Runs the helper until SIGTERM, SIGINT or `max_runtime_s`. Every packet it
/// holds is let go before it returns.
pub fn run(cfg: &DelayConfig) -> io::Result<DelayStats> {
    let stop = super::stop_on_signals();
    let mut queue = nfq::Queue::open()?;
    queue.bind(QUEUE_NUM)?;
    queue.set_fail_open(QUEUE_NUM, true)?;
    queue.set_queue_max_len(QUEUE_NUM, KERNEL_QUEUE_LEN)?;
    queue.set_nonblocking(true);
    if let Some(p) = &cfg.pidfile {
        std::fs::write(p, format!("{}\n", std::process::id()))?;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut held: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    let mut stats = DelayStats::default();
    let deadline = Instant::now() + Duration::from_secs(cfg.max_runtime_s);
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let mut got_any = false;
        // Bounded drain, so releases are never starved by a flood.
        for _ in 0..1024 {
            let mut msg = match queue.recv() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => break,
                Err(e) => return Err(e),
            };
            got_any = true;
            stats.packets += 1;
            if cfg.corrupt_pct > 0.0 && rng.random_bool(cfg.corrupt_pct / 100.0) {
                corrupt(&mut msg, &mut rng);
                stats.corrupted += 1;
            }
            let skip = cfg.reorder_pct > 0.0 && rng.random_bool(cfg.reorder_pct / 100.0);
            if skip || held.len() >= HELD_MAX {
                stats.reordered += skip as u64;
                stats.passed_over_bound += (!skip) as u64;
                msg.set_verdict(nfq::Verdict::Accept);
                queue.verdict(msg)?;
                continue;
            }
            seq += 1;
            let release_at = Instant::now() + cfg.sample_delay(&mut rng);
            held.push(Reverse(Held {
                release_at,
                seq,
                msg,
            }));
        }
        let now = Instant::now();
        while held.peek().is_some_and(|h| h.0.release_at <= now) {
            if let Some(Reverse(h)) = held.pop() {
                let mut msg = h.msg;
                msg.set_verdict(nfq::Verdict::Accept);
                queue.verdict(msg)?;
            }
        }
        if !got_any {
            std::thread::sleep(IDLE_SLEEP);
        }
    }
    while let Some(Reverse(h)) = held.pop() {
        let mut msg = h.msg;
        msg.set_verdict(nfq::Verdict::Accept);
        queue.verdict(msg)?;
    }
    let _ = queue.unbind(QUEUE_NUM);
    Ok(stats)
}

/// Flips one byte after the IP header, so the transport checksum fails.
fn corrupt(msg: &mut nfq::Message, rng: &mut ChaCha8Rng) {
    let payload = msg.get_payload_mut();
    let Some(&first) = payload.first() else {
        return;
    };
    let header_len = ((first & 0x0f) as usize) * 4;
    if payload.len() > header_len {
        let i = rng.random_range(header_len..payload.len());
        payload[i] ^= 0xff;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        cfg: DelayConfig,
    }

    #[test]
    fn the_command_line_it_is_started_with_parses_back_to_the_same_config() {
        let cfg = DelayConfig {
            delay_ms: 40,
            jitter_ms: 7,
            distribution: Distribution::Uniform,
            reorder_pct: 12.5,
            corrupt_pct: 1.0,
            seed: 99,
            pidfile: Some("/run/faultline dir/netdelay.pid".into()),
            max_runtime_s: 30,
        };
        let line = format!("faultline {}", cfg.to_args());
        let words = shell_words(&line);
        assert_eq!(Cli::try_parse_from(words).unwrap().cfg, cfg);
    }

    /// Splits like sh does for the quoting `shell_quote` produces.
    fn shell_words(s: &str) -> Vec<String> {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("for w in {s}; do printf '%s\\0' \"$w\"; done"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split('\0')
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect()
    }

    #[test]
    fn sampled_delays_have_the_asked_mean_and_spread() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for dist in [Distribution::Normal, Distribution::Uniform] {
            let cfg = DelayConfig {
                delay_ms: 50,
                jitter_ms: 10,
                distribution: dist,
                ..Default::default()
            };
            let n = 20_000;
            let xs: Vec<f64> = (0..n)
                .map(|_| cfg.sample_delay(&mut rng).as_secs_f64() * 1000.0)
                .collect();
            let mean = xs.iter().sum::<f64>() / n as f64;
            let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
            assert!((mean - 50.0).abs() < 0.5, "{dist:?} mean {mean}");
            // Uniform on ±10 has sd 10/sqrt(3).
            let want_sd = if dist == Distribution::Uniform {
                10.0 / 3f64.sqrt()
            } else {
                10.0
            };
            assert!((sd - want_sd).abs() < 0.3, "{dist:?} sd {sd}");
            if dist == Distribution::Uniform {
                assert!(xs.iter().all(|x| (40.0..=60.0).contains(x)));
            }
        }
    }

    #[test]
    fn delays_are_never_negative() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let cfg = DelayConfig {
            delay_ms: 1,
            jitter_ms: 50,
            ..Default::default()
        };
        assert!((0..1000).all(|_| cfg.sample_delay(&mut rng) >= Duration::ZERO));
        let fixed = DelayConfig {
            delay_ms: 30,
            ..Default::default()
        };
        assert_eq!(fixed.sample_delay(&mut rng), Duration::from_millis(30));
    }
}
