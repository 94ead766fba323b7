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
use super::packet::{DelayConfig, Distribution};
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

/// The helper's side of [`DelayConfig`]; the config and its command line
/// are `packet.rs`'s.
impl DelayConfig {
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
