//! `faultline bench cluster`: times `cluster up`, `status` and `down` on
//! throwaway clusters and prints the figures (goal for 5 netns hosts: up and
//! down within 1 s each).

use super::{ClusterError, ClusterGuard, UpOptions, down, status, up};
use std::time::Instant;

/// Runs `rounds` up/status/down cycles of clusters shaped like `template`
/// (each named after it, the process id and the round).
/// Figures go to `out`; a closed `out` does not stop the rounds (each must
/// tear its cluster down).
pub fn run(
    template: &UpOptions,
    rounds: usize,
    out: &mut dyn std::io::Write,
) -> Result<(), ClusterError> {
    let UpOptions {
        backend,
        nodes,
        ssh,
        ..
    } = template.clone();
    let _ = writeln!(
        out,
        "bench cluster: backend {backend}, {nodes} nodes{}, {rounds} rounds",
        if ssh { ", sshd" } else { "" }
    );
    let mut ups = Vec::new();
    let mut downs = Vec::new();
    for round in 0..rounds.clamp(1, 100) {
        let name = format!("{}{}-{round}", template.name, std::process::id() % 100_000);
        let guard = ClusterGuard { name: name.clone() };
        let started = Instant::now();
        let cluster = up(&UpOptions {
            name: name.clone(),
            ..template.clone()
        })?;
        let up_ms = ms(started);
        let started = Instant::now();
        let answered = status(&cluster)
            .iter()
            .filter(|s| s.error.is_none())
            .count();
        let status_ms = ms(started);
        let started = Instant::now();
        down(&name)?;
        let down_ms = ms(started);
        std::mem::forget(guard);
        let _ = writeln!(
            out,
            "  round {round}: up {up_ms:.0} ms, status {status_ms:.0} ms ({answered}/{nodes} answered), down {down_ms:.0} ms"
        );
        ups.push(up_ms);
        downs.push(down_ms);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let _ = writeln!(
        out,
        "median: up {:.0} ms, down {:.0} ms",
        median(&mut ups),
        median(&mut downs)
    );
    Ok(())
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}
