//! When faults were active: nemesis ops read back as intervals.
//!
//! Convention (Jepsen's combined nemesis): a fault is in place from the
//! completion of its starting op to the completion of its ending op:
//! `start-<fault>` .. `stop-<fault>` (partition, packet), `kill` .. `start`,
//! `pause` .. `resume`, `bump-clock` or `strobe-clock` .. `reset-clock`, and
//! `heal` ends every open fault. Jepsen's older bare `start` .. `stop` is a
//! fault named `nemesis` (a bare `start` ends an open `kill` first). A fault
//! never ended runs to the end of the history.

use super::op::{Op, OpType};
use serde_json::Value;

/// One fault, from the moment it was in place until it was healed.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultInterval {
    /// `partition`, `kill`, `clock`, ...
    pub fault: String,
    pub start_ns: u64,
    /// `None` when the history ends with the fault still in place.
    pub end_ns: Option<u64>,
    /// What exactly was done (the grudge, nodes, offset), from the start op.
    pub detail: Value,
}

impl FaultInterval {
    pub fn contains(&self, time_ns: u64) -> bool {
        self.start_ns <= time_ns && self.end_ns.is_none_or(|end| time_ns <= end)
    }
}

/// What a nemesis op does to the fault intervals.
enum Effect {
    Open(String),
    Close(String),
    CloseAll,
    None,
}

fn effect(f: &str, open: &[FaultInterval]) -> Effect {
    let named = |s: &str| {
        let s = s.trim_start_matches(['-', '_']);
        if s.is_empty() {
            "nemesis".to_string()
        } else {
            s.to_string()
        }
    };
    match f {
        "heal" => Effect::CloseAll,
        "kill" => Effect::Open("kill".into()),
        "pause" => Effect::Open("pause".into()),
        "resume" => Effect::Close("pause".into()),
        "bump-clock" | "strobe-clock" => Effect::Open("clock".into()),
        "reset-clock" => Effect::Close("clock".into()),
        "start" if open.iter().any(|i| i.fault == "kill") => Effect::Close("kill".into()),
        _ => match (f.strip_prefix("start"), f.strip_prefix("stop")) {
            (Some(fault), _) => Effect::Open(named(fault)),
            (_, Some(fault)) => Effect::Close(named(fault)),
            _ => Effect::None,
        },
    }
}

/// Follows nemesis ops one at a time: the faults in place now, and the
/// intervals already over. What a live progress display and
/// [`fault_intervals`] both use.
#[derive(Debug, Default)]
pub struct FaultTracker {
    open: Vec<FaultInterval>,
    done: Vec<FaultInterval>,
}

impl FaultTracker {
    /// Takes one op; ops of clients and invocations change nothing.
    pub fn apply(&mut self, op: &Op) {
        if op.is_client() || op.kind == OpType::Invoke {
            return;
        }
        match effect(&op.f, &self.open) {
            // A second start of a fault already in place extends it.
            Effect::Open(fault) if !self.open.iter().any(|i| i.fault == fault) => {
                self.open.push(FaultInterval {
                    fault,
                    start_ns: op.time,
                    end_ns: None,
                    detail: op.value.clone(),
                });
            }
            Effect::Close(fault) => {
                if let Some(pos) = self.open.iter().position(|i| i.fault == fault) {
                    let mut interval = self.open.remove(pos);
                    interval.end_ns = Some(op.time);
                    self.done.push(interval);
                }
            }
            Effect::CloseAll => {
                for mut interval in self.open.drain(..) {
                    interval.end_ns = Some(op.time);
                    self.done.push(interval);
                }
            }
            Effect::Open(_) | Effect::None => {}
        }
    }

    /// The faults in place now, in the order they started.
    pub fn active(&self) -> Vec<&str> {
        self.open.iter().map(|i| i.fault.as_str()).collect()
    }

    /// Every interval, the open ones running to the end, in order of start.
    pub fn into_intervals(self) -> Vec<FaultInterval> {
        let mut all = self.done;
        all.extend(self.open);
        all.sort_by_key(|i| i.start_ns);
        all
    }
}

/// The fault intervals of a history, in order of their start.
pub fn fault_intervals(ops: &[Op]) -> Vec<FaultInterval> {
    let mut tracker = FaultTracker::default();
    for op in ops {
        tracker.apply(op);
    }
    tracker.into_intervals()
}

/// The faults in place at `time_ns`, by name.
pub fn faults_at(intervals: &[FaultInterval], time_ns: u64) -> Vec<String> {
    intervals
        .iter()
        .filter(|i| i.contains(time_ns))
        .map(|i| i.fault.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::op::Process;
    use serde_json::json;

    fn nemesis(time: u64, kind: OpType, f: &str) -> Op {
        Op {
            index: time,
            time,
            process: Process::Nemesis,
            kind,
            f: f.into(),
            value: json!({"at": time}),
            node: None,
            error: None,
        }
    }

    #[test]
    fn intervals_run_from_start_completion_to_stop_completion() {
        let ops = vec![
            nemesis(1, OpType::Invoke, "start-partition"),
            nemesis(2, OpType::Info, "start-partition"),
            nemesis(3, OpType::Info, "start-packet"),
            nemesis(5, OpType::Info, "stop-partition"),
            nemesis(7, OpType::Info, "start"),
            nemesis(9, OpType::Info, "heal"),
            nemesis(11, OpType::Info, "bump-clock"),
            nemesis(12, OpType::Info, "kill"),
            nemesis(13, OpType::Info, "pause"),
            nemesis(14, OpType::Info, "start"),
            nemesis(15, OpType::Info, "resume"),
        ];
        let got = fault_intervals(&ops);
        let summary: Vec<_> = got
            .iter()
            .map(|i| (i.fault.as_str(), i.start_ns, i.end_ns))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("partition", 2, Some(5)),
                ("packet", 3, Some(9)),
                ("nemesis", 7, Some(9)),
                ("clock", 11, None),
                ("kill", 12, Some(14)),
                ("pause", 13, Some(15)),
            ]
        );
        assert_eq!(got[0].detail, json!({"at": 2}));
        assert_eq!(faults_at(&got, 4), vec!["partition", "packet"]);
        assert_eq!(faults_at(&got, 100), vec!["clock"]);
    }
}
