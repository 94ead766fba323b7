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
use faultline::checker::linearizable::{Options, check};
use faultline::history::{Op, OpType};
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
        ops.push(Op::client(index, index, process, kind, f, value));
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

// ---- crashed ops: the checker against a brute-force search on small histories

/// One client call of a register history, for the brute-force search.
#[derive(Debug, Clone)]
struct BruteCall {
    call: usize,
    /// `None`: crashed (it may take effect after its call, or never).
    ret: Option<usize>,
    f: String,
    value: Value,
    observed: Value,
}

/// Whether some order of the `ok` calls and any subset of the crashed ones,
/// consistent with real time, replays on a register that starts absent
/// (`null`). Tries every such order: only for a handful of calls.
fn brute_force_linearizable(ops: &[Op]) -> bool {
    let mut calls = Vec::new();
    for c in faultline::history::pair(ops).unwrap() {
        let invoke = &ops[c.invoke];
        let done = c.completion.map(|d| &ops[d]);
        let ret = match done.map(|d| d.kind) {
            Some(OpType::Fail) => continue,
            Some(OpType::Ok) => c.completion,
            _ => None,
        };
        // A read with no result observes nothing: it cannot matter.
        if invoke.f == "read" && ret.is_none() {
            continue;
        }
        calls.push(BruteCall {
            call: c.invoke,
            ret,
            f: invoke.f.clone(),
            value: invoke.value.clone(),
            observed: done.map_or(Value::Null, |d| d.value.clone()),
        });
    }
    assert!(calls.len() <= 12, "brute force is for small histories");
    let mut placed = vec![false; calls.len()];
    brute_force_from(&calls, &mut placed, &Value::Null)
}

fn brute_force_from(calls: &[BruteCall], placed: &mut [bool], state: &Value) -> bool {
    if calls
        .iter()
        .zip(placed.iter())
        .all(|(c, &p)| p || c.ret.is_none())
    {
        return true;
    }
    for i in 0..calls.len() {
        // It may go next only if every op that returned before its call is placed.
        let ready = !placed[i]
            && calls
                .iter()
                .zip(placed.iter())
                .all(|(o, &p)| p || o.ret.is_none_or(|r| r > calls[i].call));
        if !ready {
            continue;
        }
        let c = &calls[i];
        let after = match c.f.as_str() {
            "read" if c.observed == *state => state.clone(),
            "read" => continue,
            "write" => c.value.clone(),
            "cas" if c.value[0] == *state => c.value[1].clone(),
            "cas" => continue,
            f => panic!("unexpected {f}"),
        };
        placed[i] = true;
        let found = brute_force_from(calls, placed, &after);
        placed[i] = false;
        if found {
            return true;
        }
    }
    false
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Small generated register histories with many crashed ops, some with
    /// one read changed: the checker's verdict is the brute-force search's.
    #[test]
    fn crashed_ops_verdicts_match_a_brute_force_search(
        seed in any::<u64>(),
        n in 2usize..9,
        clients in 1usize..5,
        values in 1u32..4,
        crash_percent in 10u32..40,
        lie in any::<Option<(prop::sample::Index, u8)>>(),
    ) {
        use faultline::generator::register::{RegisterSynth, generate};
        let mut synth = RegisterSynth::new(n, clients, seed);
        synth.values = values;
        synth.crash_percent = crash_percent;
        let mut ops = generate(&synth);
        let reads = ok_reads(&ops);
        if let (Some((pick, v)), false) = (lie, reads.is_empty()) {
            let v = u32::from(v) % (values + 1);
            // `values` itself stands for absent.
            ops[reads[pick.index(reads.len())]].value = if v == values { Value::Null } else { json!(v) };
        }
        let expected = brute_force_linearizable(&ops);
        let report = check(&ops, &Options::default()).unwrap();
        let verdict = if expected { Verdict::Valid } else { Verdict::Invalid };
        prop_assert_eq!(report.verdict, verdict, "{:#?}", ops);
        if expected {
            assert_witness_replays(&ops, &report.keys[0].linearization, false);
        }
    }
}

/// The cross-check above sees both verdicts, and crashed ops that matter:
/// over a fixed set of seeds, some histories are linearizable only because
/// a crashed op took effect, and some are not linearizable at all.
#[test]
fn the_brute_force_cross_check_sees_both_verdicts() {
    use faultline::generator::register::{RegisterSynth, generate};
    let (mut valid, mut invalid, mut needs_a_crashed_op) = (0, 0, 0);
    for seed in 0..400u64 {
        let mut synth = RegisterSynth::new(8, 3, seed);
        synth.values = 3;
        synth.crash_percent = 30;
        synth.corrupt = seed % 2 == 0;
        let ops = generate(&synth);
        let expected = brute_force_linearizable(&ops);
        let report = check(&ops, &Options::default()).unwrap();
        let verdict = if expected {
            Verdict::Valid
        } else {
            Verdict::Invalid
        };
        assert_eq!(report.verdict, verdict, "seed {seed}: {ops:#?}");
        if expected {
            valid += 1;
            let infos: Vec<u64> = ops
                .iter()
                .enumerate()
                .filter(|(i, o)| {
                    o.kind == OpType::Invoke
                        && completions(&ops)
                            .get(i)
                            .is_none_or(|&d| ops[d].kind == OpType::Info)
                })
                .map(|(_, o)| o.index)
                .collect();
            if report.keys[0]
                .linearization
                .iter()
                .any(|i| infos.contains(i))
            {
                needs_a_crashed_op += 1;
            }
        } else {
            invalid += 1;
        }
    }
    assert!(
        valid > 20 && invalid > 20,
        "valid {valid}, invalid {invalid}"
    );
    assert!(needs_a_crashed_op > 5, "{needs_a_crashed_op}");
}
