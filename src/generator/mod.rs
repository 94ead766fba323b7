//! How fast clients issue operations ([`Pacer`]: the test's rate over all
//! workers), `synthetic`: a simulated database writing histories for the
//! Elle checker's tests and benchmarks, and `register`: a simulated cas
//! register with crashed operations, for the linearizability checker's.
//!
//! Not here: which operations (each workload's generator, `workload/`),
//! talking to nodes (`client/`), phases and time limits (`runner/`).

pub mod register;
pub mod synthetic;

use std::time::{Duration, Instant};

/// Spaces operations `1/rate` apart over all workers, without bursts after a
/// stall: a worker that finds its slot in the past starts from now.
pub struct Pacer {
    interval: Duration,
    next_at: Instant,
}

impl Pacer {
    pub fn new(rate_per_s: f64) -> Pacer {
        debug_assert!(rate_per_s > 0.0);
        Pacer {
            interval: Duration::from_secs_f64(1.0 / rate_per_s),
            next_at: Instant::now(),
        }
    }

    /// The instant the caller may start its next operation (claims that slot).
    pub fn claim(&mut self) -> Instant {
        let now = Instant::now();
        let at = self.next_at.max(now);
        self.next_at = at + self.interval;
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_spaces_claims_by_the_interval() {
        let mut p = Pacer::new(100.0);
        let a = p.claim();
        let b = p.claim();
        let c = p.claim();
        assert_eq!(b - a, Duration::from_millis(10));
        assert_eq!(c - b, Duration::from_millis(10));
    }
}
