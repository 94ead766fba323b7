//! Property tests of the linearizability checker.
//!
//! Histories are produced by running random concurrent clients against a
//! sequential register: each op takes effect atomically at some step between
//! its invocation and its completion (or never, when it ends `info` or `fail`
//! without having happened). Such histories are linearizable by construction;
//! the checker must say so, and its witness order must replay. Mutating one
//! read (to a value nobody wrote, or to a value overwritten before the read
//! began) must make it invalid.

use faultline::checker::Verdict;
use faultline::checker::linearizable::{KeysMode, Options, check};
use faultline::history::{Op, OpType, Process};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::HashMap;

/// One scheduling decision: which worker moves, and two numbers it uses.
#[derive(Debug, Clone)]
struct Step {
    worker: u8,
    action: u8,
    arg: u8,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(worker, action, arg)| Step {
            worker,
            action,
            arg,
        }),
        10..150,
    )
}

#[derive(Debug, Clone)]
enum Call {
    Read,
    Write(i64),
    Cas(Option<i64>, i64),
}

#[derive(Debug)]
struct Pending {
    key: i64,
    call: Call,
    /// Set once the op took effect: what a read saw, whether a cas applied.
    effect: Option<(Option<i64>, bool)>,
}

/// Runs the clients; `keys == 0` means one unkeyed register.
fn simulate(steps: &[Step], workers: u8, keys: u8) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut registers: HashMap<i64, Option<i64>> = HashMap::new();
    let mut fresh = 0i64;
    let mut process: Vec<u64> = (0..workers as u64).collect();
    let mut pending: Vec<Option<Pending>> = (0..workers).map(|_| None).collect();
    let key_value = |key: i64, v: Value| if keys == 0 { v } else { json!([key, v]) };
    let emit = |ops: &mut Vec<Op>, process: u64, kind: OpType, f: &str, value: Value| {
        let index = ops.len() as u64;
        ops.push(Op {
            index,
            time: index,
            process: Process::Client(process),
            kind,
            f: f.into(),
            value,
            node: None,
            error: None,
        });
    };
    for s in steps {
        let w = (s.worker % workers) as usize;
        match pending[w].take() {
            None => {
                let key = if keys == 0 { 0 } else { (s.arg % keys) as i64 };
                let current = registers.get(&key).copied().flatten();
                let call = match s.action % 3 {
                    0 => Call::Read,
                    1 => {
                        fresh += 1;
                        Call::Write(fresh)
                    }
                    _ => {
                        fresh += 1;
                        // Half of the cas ops expect the current value, so they apply.
                        let from = if s.arg % 2 == 0 {
                            current
                        } else {
                            Some(fresh - 1 - (s.arg % 3) as i64)
                        };
                        Call::Cas(from, fresh)
                    }
                };
                let (f, value) = match &call {
                    Call::Read => ("read", Value::Null),
                    Call::Write(v) => ("write", json!(v)),
                    Call::Cas(from, to) => ("cas", json!([from, to])),
                };
                emit(
                    &mut ops,
                    process[w],
                    OpType::Invoke,
                    f,
                    key_value(key, value),
                );
                pending[w] = Some(Pending {
                    key,
                    call,
                    effect: None,
                });
            }
            Some(mut p) => {
                let (f, invoked) = match &p.call {
                    Call::Read => ("read", Value::Null),
                    Call::Write(v) => ("write", json!(v)),
                    Call::Cas(from, to) => ("cas", json!([from, to])),
                };
                match (p.effect, s.action % 8) {
                    // Not yet happened: now it ends without happening (info or fail), or happens.
                    (None, 7) => {
                        let kind = if s.arg % 2 == 0 {
                            OpType::Info
                        } else {
                            OpType::Fail
                        };
                        emit(&mut ops, process[w], kind, f, key_value(p.key, invoked));
                        process[w] += workers as u64;
                    }
                    (None, _) => {
                        let register = registers.entry(p.key).or_insert(None);
                        let seen = *register;
                        let applied = match p.call {
                            Call::Read => true,
                            Call::Write(v) => {
                                *register = Some(v);
                                true
                            }
                            Call::Cas(from, to) if from == seen => {
                                *register = Some(to);
                                true
                            }
                            Call::Cas(..) => false,
                        };
                        p.effect = Some((seen, applied));
                        pending[w] = Some(p);
                    }
                    // Happened: it completes, sometimes as info (the client lost the answer).
                    (Some(_), 6) => {
                        emit(
                            &mut ops,
                            process[w],
                            OpType::Info,
                            f,
                            key_value(p.key, invoked),
                        );
                        process[w] += workers as u64;
                    }
                    (Some((seen, applied)), _) => {
                        let (kind, value) = match p.call {
                            Call::Read => (OpType::Ok, json!(seen)),
                            _ if applied => (OpType::Ok, invoked),
                            _ => (OpType::Fail, invoked),
                        };
                        emit(&mut ops, process[w], kind, f, key_value(p.key, value));
                    }
                }
            }
        }
    }
    ops
}

/// Positions of each process's completion, by invocation position.
fn completions(ops: &[Op]) -> HashMap<usize, usize> {
    let calls = faultline::history::pair(ops).unwrap();
    calls
        .iter()
        .filter_map(|c| c.completion.map(|d| (c.invoke, d)))
        .collect()
}

/// Replays a witness order: real-time order respected, every read and cas legal.
fn assert_witness_replays(ops: &[Op], order: &[u64], keyed: bool) {
    let done = completions(ops);
    let by_index: HashMap<u64, usize> = ops.iter().enumerate().map(|(i, o)| (o.index, i)).collect();
    let mut register: Option<i64> = None;
    let positions: Vec<usize> = order.iter().map(|i| by_index[i]).collect();
    for (a, &pa) in positions.iter().enumerate() {
        for &pb in &positions[a + 1..] {
            // A later op in the order must not have completed before an earlier one began.
            // (An info op may take effect even after its completion line.)
            if let Some(&db) = done.get(&pb).filter(|&&d| ops[d].kind == OpType::Ok) {
                assert!(
                    db > pa,
                    "op {} is ordered after op {} but completed before it began",
                    ops[pb].index,
                    ops[pa].index
                );
            }
        }
        let invoke = &ops[pa];
        let value = if keyed {
            invoke.value[1].clone()
        } else {
            invoke.value.clone()
        };
        let outcome = done.get(&pa).map(|&d| &ops[d]);
        match invoke.f.as_str() {
            "read" => {
                if let Some(o) = outcome.filter(|o| o.kind == OpType::Ok) {
                    let seen = if keyed {
                        o.value[1].clone()
                    } else {
                        o.value.clone()
                    };
                    assert_eq!(seen, json!(register), "read at {} replays", invoke.index);
                }
            }
            "write" => register = value.as_i64(),
            "cas" => {
                assert_eq!(json!(register), value[0], "cas at {} applies", invoke.index);
                register = value[1].as_i64();
            }
            f => panic!("unexpected {f}"),
        }
    }
}

fn ok_reads(ops: &[Op]) -> Vec<usize> {
    ops.iter()
        .enumerate()
        .filter(|(_, o)| o.kind == OpType::Ok && o.f == "read")
        .map(|(i, _)| i)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn generated_histories_are_linearizable(steps in steps(), workers in 1u8..6) {
        let ops = simulate(&steps, workers, 0);
        // `auto` keys: a history of only cas ops ([from, to]) is one register too.
        let report = check(&ops, &Options::default()).unwrap();
        prop_assert_eq!(report.verdict, Verdict::Valid);
        prop_assert!(!report.keyed);
        assert_witness_replays(&ops, &report.keys[0].linearization, false);
    }

    #[test]
    fn generated_keyed_histories_are_linearizable_per_key(steps in steps(), workers in 1u8..6, keys in 1u8..4) {
        let ops = simulate(&steps, workers, keys);
        let report = check(&ops, &Options::default()).unwrap();
        prop_assert_eq!(report.verdict, Verdict::Valid);
        for k in &report.keys {
            let key = k.key.clone().unwrap();
            let mine: Vec<Op> = ops.iter().filter(|o| o.value[0] == key).cloned().collect();
            assert_witness_replays(&mine, &k.linearization, true);
        }
    }

    #[test]
    fn a_read_of_a_value_nobody_wrote_is_caught(steps in steps(), workers in 1u8..6, pick in any::<prop::sample::Index>()) {
        let mut ops = simulate(&steps, workers, 0);
        let reads = ok_reads(&ops);
        prop_assume!(!reads.is_empty());
        ops[reads[pick.index(reads.len())]].value = json!(1_000_000);
        prop_assert_eq!(check(&ops, &Options::default()).unwrap().verdict, Verdict::Invalid);
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_caught(steps in steps(), workers in 1u8..6, pick in any::<prop::sample::Index>()) {
        let mut ops = simulate(&steps, workers, 0);
        let done = completions(&ops);
        // (read completion position, stale value): a write of the value
        // completed before another write began, which completed before the read began.
        let writes: Vec<(usize, usize, i64)> = ops
            .iter()
            .enumerate()
            .filter(|(i, o)| o.f == "write" && o.kind == OpType::Invoke && done.get(i).is_some_and(|&d| ops[d].kind == OpType::Ok))
            .map(|(i, o)| (i, done[&i], o.value.as_i64().unwrap()))
            .collect();
        let mut candidates = Vec::new();
        for (read_invoke, read_done) in done.iter().filter(|(_, d)| ops[**d].kind == OpType::Ok && ops[**d].f == "read") {
            let overwritten = writes.iter().find(|(_, w1_done, _)| {
                writes.iter().any(|(w2, w2_done, _)| w2 > w1_done && w2_done < read_invoke)
            });
            if let Some(&(_, _, stale)) = overwritten {
                candidates.push((*read_done, stale));
            }
        }
        prop_assume!(!candidates.is_empty());
        candidates.sort();
        let (at, stale) = candidates[pick.index(candidates.len())];
        ops[at].value = json!(stale);
        prop_assert_eq!(check(&ops, &Options::default()).unwrap().verdict, Verdict::Invalid);
    }
}
