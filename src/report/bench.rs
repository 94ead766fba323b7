//! `faultline bench report`: writes the report of a synthetic run with a
//! large history (1,000,000 ops by default) and prints how long each phase
//! took and how big the page is. Goal: ≤ 10 s for 1,000,000 ops.
//!
//! The synthetic run is also what tests use to get a realistic folder
//! without running a cluster: a seeded register workload with partitions
//! and kills and timeouts during faults, linearizable by construction. Its
//! results.json is a fixture written through the schema's types
//! (`report::results`) that claims one read cannot be placed, so the
//! anomaly part is drawn too: the bench measures drawing, not checking
//! (tests that need a true verdict run the checker).

use super::results::{
    self, Counts, Explanation, FileResult, KeyResult, Linearizable, LinearizableOptions, OpRef,
    PrefixStep, Results, Timings, Valid,
};
use super::{Layout, REPORT_FILE};
use crate::history::jsonl::write_file;
use crate::history::{Op, OpType, Process};
use crate::suite::{NemesisRef, TestSpec, resolve, test::Source};
use crate::system::SystemRef;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What the synthetic history looks like.
#[derive(Debug, Clone)]
pub struct Synthetic {
    /// History events (invocations + completions + nemesis), about.
    pub events: usize,
    pub workers: u64,
    pub keys: u64,
    pub seed: u64,
}

impl Default for Synthetic {
    fn default() -> Self {
        Synthetic {
            events: 10_000,
            workers: 10,
            keys: 8,
            seed: 1,
        }
    }
}

/// A seeded history: workers issue register ops back to back; during a
/// partition one op in 40 times out (50 ms) (`info`, and the worker takes a new
/// process) and some fail; a kill of one node runs mid-way.
pub fn synthetic_history(s: &Synthetic) -> Vec<Op> {
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
    let calls_per_worker = (s.events / 2) as u64 / s.workers.max(1);
    // About eight partitions over the run (ops take about 1.05 ms each), each 40% of its period.
    let every_ns = (calls_per_worker * 1_050_000 / 8).max(1_000_000);
    let in_fault = |t: u64| t % every_ns > every_ns * 6 / 10;
    // (time, order, op): at equal times completions (0) sort before invocations (1),
    // so a worker's next op never starts before its last one ended.
    let mut events: Vec<(u64, u64, Op)> = Vec::with_capacity(s.events + 64);
    let mut end = 0u64;
    for w in 0..s.workers {
        let mut process = w;
        let mut t = rng.random_range(0..1_000_000u64);
        for _ in 0..calls_per_worker {
            let key = rng.random_range(0..s.keys);
            let (f, value) = match rng.random_range(0..4) {
                0 | 1 => ("read", json!([key, null])),
                2 => ("write", json!([key, rng.random_range(0..5)])),
                _ => (
                    "cas",
                    json!([key, [rng.random_range(0..5), rng.random_range(0..5)]]),
                ),
            };
            let faulty = in_fault(t);
            let mut latency = 200_000 + rng.random_range(0..1_500_000u64);
            if rng.random_range(0..200) == 0 {
                latency *= 20;
            }
            let (kind, error) = if faulty && rng.random_range(0..40) == 0 {
                latency = 50_000_000;
                (OpType::Info, Some(json!("timeout")))
            } else {
                (OpType::Ok, None)
            };
            let node = format!("n{}", 1 + (w % 5));
            let op = |kind, time, value: Value, error| Op {
                index: 0,
                time,
                process: Process::Client(process),
                kind,
                f: f.to_string(),
                value,
                node: Some(node.clone()),
                error,
            };
            events.push((t, 1, op(OpType::Invoke, t, value.clone(), None)));
            events.push((t + latency, 0, op(kind, t + latency, value, error)));
            t += latency + rng.random_range(0..200_000u64);
            if kind == OpType::Info {
                process += s.workers;
            }
        }
        end = end.max(t);
    }
    let nemesis = |time: u64, kind: OpType, f: &str, value: Value| Op {
        index: 0,
        time,
        process: Process::Nemesis,
        kind,
        f: f.into(),
        value,
        node: None,
        error: None,
    };
    let mut t = every_ns * 6 / 10;
    let mut n = 0u64;
    while t + every_ns * 4 / 10 < end && n < 100_000 {
        let grudge = json!({"n1": ["n3", "n4", "n5"], "n2": ["n3", "n4", "n5"]});
        events.push((
            t,
            0,
            nemesis(t, OpType::Invoke, "start-partition", grudge.clone()),
        ));
        events.push((
            t + 1_000_000,
            1,
            nemesis(t + 1_000_000, OpType::Info, "start-partition", grudge),
        ));
        let stop = t + every_ns * 4 / 10;
        events.push((
            stop,
            0,
            nemesis(stop, OpType::Invoke, "stop-partition", Value::Null),
        ));
        events.push((
            stop + 1_000_000,
            1,
            nemesis(
                stop + 1_000_000,
                OpType::Info,
                "stop-partition",
                Value::Null,
            ),
        ));
        t += every_ns;
        n += 1;
    }
    let kill = end / 3;
    events.push((
        kill,
        1,
        nemesis(kill, OpType::Info, "start-kill", json!(["n2"])),
    ));
    events.push((
        kill + end / 10,
        1,
        nemesis(kill + end / 10, OpType::Info, "stop-kill", json!(["n2"])),
    ));
    events.sort_by_key(|e| (e.0, e.1));
    let mut ops: Vec<Op> = events
        .into_iter()
        .enumerate()
        .map(|(i, (_, _, mut op))| {
            op.index = i as u64;
            op
        })
        .collect();
    take_effect_at_completion(&mut ops);
    ops
}

/// Makes the history linearizable: every ok op takes effect at its
/// completion, in history order, on registers that start absent. Reads
/// return what is there, a cas whose expected value is not there fails,
/// and timed-out ops never take effect.
fn take_effect_at_completion(ops: &mut [Op]) {
    let mut registers: std::collections::HashMap<String, Value> = Default::default();
    for op in ops
        .iter_mut()
        .filter(|op| op.is_client() && op.kind == OpType::Ok)
    {
        let (Some(key), Some(arg)) = (op.value.get(0).cloned(), op.value.get(1).cloned()) else {
            continue;
        };
        let current = registers
            .get(&key.to_string())
            .cloned()
            .unwrap_or(Value::Null);
        match op.f.as_str() {
            "read" => op.value = json!([key, current]),
            "write" => {
                registers.insert(key.to_string(), arg);
            }
            "cas" if current == arg[0] => {
                registers.insert(key.to_string(), arg[1].clone());
            }
            "cas" => {
                op.kind = OpType::Fail;
                op.error = Some(json!("cas mismatch"));
            }
            _ => {}
        }
    }
}

/// The first ok read of the history, as a linearizability explanation
/// would name it (for a realistic results.json).
fn explained(ops: &[Op]) -> Option<Explanation> {
    let done = ops
        .iter()
        .position(|op| op.kind == OpType::Ok && op.f == "read" && op.index > 40)
        .unwrap_or(ops.len().saturating_sub(1));
    let op = ops.get(done)?;
    let invoke = ops[..done]
        .iter()
        .rposition(|o| o.process == op.process && o.kind == OpType::Invoke)
        .unwrap_or(0);
    let concurrent: Vec<OpRef> = ops[invoke..done]
        .iter()
        .filter(|o| o.kind == OpType::Invoke && o.is_client() && o.process != op.process)
        .take(6)
        .map(|o| OpRef {
            index: o.index,
            completion_index: None,
            process: o.process,
            op: format!("{} {}", o.f, o.value),
        })
        .collect();
    let described = format!(
        "read -> {}",
        op.value.get(1).cloned().unwrap_or(Value::Null)
    );
    Some(Explanation {
        op: OpRef {
            index: ops[invoke].index,
            completion_index: Some(op.index),
            process: op.process,
            op: described.clone(),
        },
        prefix: vec![0, 2],
        prefix_tail: vec![PrefixStep {
            op: OpRef {
                index: 0,
                completion_index: Some(1),
                process: ops[0].process,
                op: "write 3".into(),
            },
            state_after: "3".into(),
        }],
        states_before: vec!["3".into()],
        concurrent_total: concurrent.len(),
        concurrent,
        text: format!("cannot place {described}"),
    })
}

/// results.json of the synthetic run, in the schema's own types: invalid,
/// one read on key 3 cannot be placed.
fn synthetic_results(ops: &[Op]) -> Results {
    let client_calls = ops.iter().filter(|o| o.is_client()).count() / 2;
    Results {
        schema_version: results::SCHEMA_VERSION,
        tool: "faultline bench".into(),
        valid: Valid::False,
        files: vec![FileResult {
            path: "history.jsonl".into(),
            valid: Valid::False,
            error: None,
            checker: "linearizable".into(),
            timings_ms: Timings::default(),
            ends_early: None,
            linearizable: Some(Linearizable {
                model: "cas-register".into(),
                options: LinearizableOptions {
                    keys: "tuple".into(),
                    initial_value: Value::Null,
                    nil_read: "absent".into(),
                    time_limit_ms: 60_000,
                    memory_limit_mb: 2048,
                },
                counts: Counts {
                    history_ops: ops.len(),
                    client_calls,
                    failed: 0,
                    unknown_outcome: 0,
                    truncated_line: None,
                },
                keys: vec![KeyResult {
                    key: json!(3),
                    valid: Valid::False,
                    ops: 10,
                    configurations: 10,
                    time_ms: 0.1,
                    reason: None,
                    explanation: explained(ops),
                }],
            }),
            elle: None,
        }],
        run: None,
    }
}

/// Writes a whole synthetic run folder: history.jsonl, test.yaml,
/// results.json (invalid: one op cannot be placed), node logs.
pub fn write_synthetic_run(dir: &Path, s: &Synthetic) -> anyhow::Result<Vec<Op>> {
    std::fs::create_dir_all(dir)?;
    let ops = synthetic_history(s);
    write_file(&dir.join("history.jsonl"), &ops)?;
    let spec = TestSpec {
        name: Some("synthetic-register".into()),
        db: SystemRef::parse("raft").ok(),
        nemesis: Some(NemesisRef::Name("partition-halves".into())),
        seed: Some(s.seed),
        ..TestSpec::default()
    };
    let test = resolve(&spec, &Source::command_line()).map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::write(dir.join("test.yaml"), test.to_yaml())?;
    std::fs::write(
        dir.join(results::FILE_NAME),
        serde_json::to_string_pretty(&synthetic_results(&ops))?,
    )?;
    for n in 1..=5 {
        let node = dir.join("nodes").join(format!("n{n}"));
        std::fs::create_dir_all(&node)?;
        std::fs::write(node.join("node.log"), format!("n{n} started\n"))?;
    }
    Ok(ops)
}

#[derive(clap::Args, Debug, Clone)]
pub struct BenchReportArgs {
    /// History events of the synthetic run.
    #[arg(long, default_value_t = 1_000_000)]
    pub ops: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Keep the run folder here instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

/// Prints the figures; returns the exit code.
pub fn run(args: &BenchReportArgs) -> anyhow::Result<u8> {
    let tmp = tempdir()?;
    let dir = args.keep.clone().unwrap_or_else(|| tmp.clone());
    let s = Synthetic {
        events: args.ops,
        workers: 20,
        keys: 64,
        seed: args.seed,
    };
    let started = Instant::now();
    let ops = write_synthetic_run(&dir, &s)?;
    let history_bytes = std::fs::metadata(dir.join("history.jsonl"))?.len();
    println!(
        "synthetic run: {} history events ({:.1} MiB history.jsonl) written in {:.2} s",
        ops.len(),
        history_bytes as f64 / (1 << 20) as f64,
        started.elapsed().as_secs_f64()
    );
    drop(ops);
    let started = Instant::now();
    let folder = super::folder::RunFolder::read(&dir);
    let read_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let rendered = super::page::render(&folder, Layout::Auto);
    let render_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    super::write_atomically(&dir.join(REPORT_FILE), rendered.html.as_bytes())?;
    let write_s = started.elapsed().as_secs_f64();
    println!(
        "report: read {read_s:.2} s + render {render_s:.2} s + write {write_s:.2} s = {:.2} s (goal ≤ 10 s)",
        read_s + render_s + write_s
    );
    println!(
        "report.html: {:.1} MiB ({} bytes){}",
        rendered.html.len() as f64 / (1 << 20) as f64,
        rendered.html.len(),
        if args.keep.is_some() {
            format!(" at {}", dir.join(REPORT_FILE).display())
        } else {
            String::new()
        }
    );
    if args.keep.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(0)
}

/// A fresh folder under the system's temporary directory.
fn tempdir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "faultline-bench-report-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{nemesis::fault_intervals, pair};

    #[test]
    fn the_synthetic_results_follow_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        write_synthetic_run(
            dir.path(),
            &Synthetic {
                events: 2_000,
                ..Synthetic::default()
            },
        )
        .unwrap();
        let text = std::fs::read_to_string(dir.path().join(results::FILE_NAME)).unwrap();
        let f = super::super::findings::findings(&results::from_json(&text).unwrap());
        assert_eq!(f.checks.len(), 1);
        assert_eq!(f.checks[0].lin.len(), 1);
    }

    #[test]
    fn synthetic_history_pairs_and_has_faults() {
        let ops = synthetic_history(&Synthetic {
            events: 20_000,
            ..Synthetic::default()
        });
        assert!(ops.len() >= 19_000, "{}", ops.len());
        assert!(ops.windows(2).all(|w| w[0].time <= w[1].time));
        let calls = pair(&ops).expect("well-formed");
        assert!(
            calls
                .iter()
                .any(|c| c.outcome == crate::history::Outcome::Unknown)
        );
        let faults = fault_intervals(&ops);
        assert!(faults.iter().any(|f| f.fault == "partition"));
        assert!(faults.iter().any(|f| f.fault == "kill"));
    }
}
