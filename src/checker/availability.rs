//! Availability: how much of the workload's time the system answered. Not a
//! consistency checker, it never fails a run: a cluster that stops answering
//! after a fault, and never recovers, is valid to every consistency checker,
//! and this is where it shows. Over the workload's main phase `[0, end]`: `ok`
//! completions per second, the longest stretch without one (and the faults in
//! place during it), and the longest stretch without one after the last fault
//! healed.

use crate::history::nemesis::{FaultInterval, fault_intervals};
use crate::history::{Op, OpType};

/// A stretch of time with no `ok` completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Stretch {
    pub from_ns: u64,
    pub to_ns: u64,
    /// Faults in place at some time during the stretch, by name, deduplicated.
    pub faults: Vec<String>,
}

impl Stretch {
    pub fn ns(&self) -> u64 {
        self.to_ns - self.from_ns
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Availability {
    /// The end of the main phase, in ns since the run started.
    pub end_ns: u64,
    /// `ok` client completions up to `end_ns`.
    pub ok: u64,
    pub ok_per_s: f64,
    pub longest_without_ok: Stretch,
    /// When the last fault that healed before `end_ns` healed; `None` when
    /// none did (no faults, or the last lasted to the end).
    pub last_heal_ns: Option<u64>,
    /// The longest stretch without `ok` from the last heal to `end_ns`, or
    /// from the start when no fault healed.
    pub after_last_heal: Stretch,
}

/// Measures `ops` over `[0, end_ns]`.
pub fn measure(ops: &[Op], end_ns: u64) -> Availability {
    let intervals = fault_intervals(ops);
    let oks: Vec<u64> = ops
        .iter()
        .filter(|o| o.is_client() && o.kind == OpType::Ok && o.time <= end_ns)
        .map(|o| o.time)
        .collect();
    debug_assert!(oks.windows(2).all(|w| w[0] <= w[1]), "history time grows");
    let last_heal_ns = intervals
        .iter()
        .filter_map(|i| i.end_ns)
        .filter(|&end| end < end_ns)
        .max();
    let after = last_heal_ns.unwrap_or(0);
    Availability {
        end_ns,
        ok: oks.len() as u64,
        ok_per_s: if end_ns == 0 {
            0.0
        } else {
            oks.len() as f64 / (end_ns as f64 / 1e9)
        },
        longest_without_ok: longest_gap(&oks, 0, end_ns, &intervals),
        last_heal_ns,
        after_last_heal: longest_gap(&oks, after, end_ns, &intervals),
    }
}

/// The longest stretch of `[from, to]` holding no time of `oks` (sorted).
fn longest_gap(oks: &[u64], from: u64, to: u64, intervals: &[FaultInterval]) -> Stretch {
    let inside = oks.iter().copied().filter(|&t| from <= t && t <= to);
    let mut edges = std::iter::once(from)
        .chain(inside)
        .chain(std::iter::once(to.max(from)));
    let mut prev = edges.next().unwrap_or(from);
    let (mut best_from, mut best_to) = (from, from);
    for t in edges {
        if t - prev > best_to - best_from {
            (best_from, best_to) = (prev, t);
        }
        prev = t;
    }
    let mut faults: Vec<String> = intervals
        .iter()
        .filter(|i| i.start_ns <= best_to && i.end_ns.is_none_or(|e| e >= best_from))
        .map(|i| i.fault.clone())
        .collect();
    faults.sort();
    faults.dedup();
    Stretch {
        from_ns: best_from,
        to_ns: best_to,
        faults,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Process;
    use serde_json::Value;

    const S: u64 = 1_000_000_000;

    fn op(time: u64, process: Process, kind: OpType, f: &str) -> Op {
        Op {
            index: 0,
            time,
            process,
            kind,
            f: f.into(),
            value: Value::Null,
            node: None,
            error: None,
        }
    }

    fn ok(time: u64) -> Op {
        op(time, Process::Client(0), OpType::Ok, "read")
    }

    fn nemesis(time: u64, f: &str) -> Op {
        op(time, Process::Nemesis, OpType::Info, f)
    }

    #[test]
    fn a_cluster_that_never_recovers_shows_in_the_stretch_after_the_last_heal() {
        // ok every second until a partition at 4 s, healed at 12 s, then nothing.
        let mut ops: Vec<Op> = (1..=4).map(|s| ok(s * S)).collect();
        ops.push(nemesis(4 * S + 1, "start-partition"));
        ops.push(nemesis(12 * S, "stop-partition"));
        ops.push(nemesis(30 * S, "start-partition"));
        let a = measure(&ops, 30 * S);
        assert_eq!(a.ok, 4);
        assert!((a.ok_per_s - 4.0 / 30.0).abs() < 1e-9);
        assert_eq!(a.last_heal_ns, Some(12 * S));
        assert_eq!(
            (a.after_last_heal.from_ns, a.after_last_heal.to_ns),
            (12 * S, 30 * S)
        );
        assert_eq!(a.after_last_heal.faults, ["partition"]);
        assert_eq!(a.longest_without_ok.from_ns, 4 * S);
        assert_eq!(a.longest_without_ok.ns(), 26 * S);
    }

    #[test]
    fn a_cluster_that_recovers_has_a_short_stretch_after_the_heal() {
        let mut ops = vec![ok(S), nemesis(2 * S, "start-partition")];
        ops.push(nemesis(5 * S, "stop-partition"));
        ops.extend((6..=10).map(|s| ok(s * S)));
        let a = measure(&ops, 10 * S);
        assert_eq!(a.after_last_heal.ns(), S, "{a:?}");
        assert_eq!(a.after_last_heal.from_ns, 5 * S);
        assert_eq!(a.longest_without_ok.from_ns, S);
        assert_eq!(a.longest_without_ok.to_ns, 6 * S);
        assert_eq!(a.longest_without_ok.faults, ["partition"]);
    }

    #[test]
    fn without_faults_the_stretch_after_the_heal_is_over_the_whole_phase() {
        let ops = vec![ok(2 * S), ok(3 * S), ok(11 * S)];
        let a = measure(&ops, 10 * S);
        assert_eq!(a.ok, 2, "ops after the end are not counted");
        assert_eq!(a.last_heal_ns, None);
        assert_eq!(a.after_last_heal, a.longest_without_ok);
        assert_eq!(
            (a.longest_without_ok.from_ns, a.longest_without_ok.to_ns),
            (3 * S, 10 * S)
        );
        assert!(a.longest_without_ok.faults.is_empty());
    }

    #[test]
    fn no_ok_op_at_all_is_one_stretch_over_everything() {
        let a = measure(&[], 5 * S);
        assert_eq!(a.ok, 0);
        assert_eq!(a.longest_without_ok.ns(), 5 * S);
    }
}
