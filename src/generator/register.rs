//! Synthetic register histories with crashed operations (`faultline
//! gen-history --workload cas-register`): a seeded, simulated cas register
//! run by concurrent clients, for tests and benchmarks of the
//! linearizability checker on what a kill nemesis leaves behind.
//!
//! A scheduler picks a random client per step. An idle client invokes a
//! read, a write or a cas of values drawn from `0..values`. A busy client
//! whose op has not taken effect applies it now (atomically, so the history
//! is linearizable), or, for a write or cas chosen to crash, ends it `info`
//! and takes a new process number, as in Jepsen; a crashed op takes effect
//! (or not, by a coin) at a random later step, possibly after its `info`.
//! A busy client whose op took effect completes it: `ok`, or `fail` for a
//! cas whose expected value was not there.
//!
//! With `corrupt`, one `ok` read in the second half of the run reports a
//! value other than the one it saw (the history may or may not stay
//! linearizable: the checker decides). Randomness comes from one ChaCha8
//! stream per seed.
//!
//! Not here: checking (that is `checker::linearizable`, which this never imports).

use crate::history::{Op, OpType};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct RegisterSynth {
    /// Client operations (invocations).
    pub ops: usize,
    pub clients: usize,
    /// Values are drawn from `0..values`.
    pub values: u32,
    /// Percent of the operations that crash (half writes, half cas).
    pub crash_percent: u32,
    /// One ok read lies about what it saw.
    pub corrupt: bool,
    pub seed: u64,
}

impl RegisterSynth {
    pub fn new(ops: usize, clients: usize, seed: u64) -> RegisterSynth {
        RegisterSynth {
            ops,
            clients,
            values: 5,
            crash_percent: 2,
            corrupt: false,
            seed,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Call {
    Read,
    Write(u32),
    Cas(u32, u32),
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    call: Call,
    crash: bool,
    /// Set once the op took effect: the value a read saw, whether a cas applied.
    effect: Option<(Option<u32>, bool)>,
}

/// The history, in order. Deterministic in the options.
pub fn generate(o: &RegisterSynth) -> Vec<Op> {
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
    let clients = o.clients.max(1);
    let values = o.values.max(1);
    let mut ops: Vec<Op> = Vec::with_capacity(o.ops * 2);
    let mut register: Option<u32> = None;
    let mut process: Vec<u64> = (0..clients as u64).collect();
    let mut next_process = clients as u64;
    let mut pending: Vec<Option<Pending>> = vec![None; clients];
    // Crashed ops not yet resolved: they take effect (or not) at a later step.
    let mut crashed: Vec<Call> = Vec::new();
    let mut invoked = 0usize;
    let corrupt_after = o.ops / 2;
    let mut corrupted = !o.corrupt;
    let emit = |ops: &mut Vec<Op>, process: u64, kind: OpType, call: Call, value: Value| {
        let index = ops.len() as u64;
        let f = match call {
            Call::Read => "read",
            Call::Write(_) => "write",
            Call::Cas(..) => "cas",
        };
        ops.push(Op::client(index, index, process, kind, f, value));
    };
    let invocation = |call: Call| match call {
        Call::Read => Value::Null,
        Call::Write(v) => json!(v),
        Call::Cas(from, to) => json!([from, to]),
    };
    // Every step moves one client or resolves one crashed op; bounded by the ops.
    let max_steps = o.ops.saturating_mul(4) + clients * 4 + 16;
    for _ in 0..max_steps {
        let busy = pending.iter().any(Option::is_some);
        if invoked >= o.ops && !busy {
            break;
        }
        if !crashed.is_empty() && rng.random_range(0..8u32) == 0 {
            // A crashed op resolves: it takes effect now, or never.
            let call = crashed.swap_remove(rng.random_range(0..crashed.len()));
            if rng.random_bool(0.5) {
                apply(&mut register, call);
            }
            continue;
        }
        let w = rng.random_range(0..clients);
        match pending[w].take() {
            None if invoked < o.ops => {
                invoked += 1;
                let call = match rng.random_range(0..3u32) {
                    0 => Call::Read,
                    1 => Call::Write(rng.random_range(0..values)),
                    _ => Call::Cas(rng.random_range(0..values), rng.random_range(0..values)),
                };
                // Half of the crashes are writes, half cas: each is chosen
                // with twice the crash rate among its third of the ops.
                let crash = !matches!(call, Call::Read)
                    && rng.random_range(0..200u32) < o.crash_percent * 3;
                emit(&mut ops, process[w], OpType::Invoke, call, invocation(call));
                pending[w] = Some(Pending {
                    call,
                    crash,
                    effect: None,
                });
            }
            None => {}
            Some(p) if p.crash => {
                emit(
                    &mut ops,
                    process[w],
                    OpType::Info,
                    p.call,
                    invocation(p.call),
                );
                crashed.push(p.call);
                process[w] = next_process;
                next_process += 1;
            }
            Some(mut p) if p.effect.is_none() => {
                let seen = register;
                let applied = apply(&mut register, p.call);
                p.effect = Some((seen, applied));
                pending[w] = Some(p);
            }
            Some(p) => {
                let (seen, applied) = p.effect.expect("matched above");
                let (kind, value) = match p.call {
                    Call::Read => {
                        let mut seen = seen;
                        if !corrupted && invoked > corrupt_after {
                            corrupted = true;
                            seen = Some(seen.map_or(0, |v| (v + 1) % values));
                        }
                        (OpType::Ok, json!(seen))
                    }
                    _ if applied => (OpType::Ok, invocation(p.call)),
                    _ => (OpType::Fail, invocation(p.call)),
                };
                emit(&mut ops, process[w], kind, p.call, value);
            }
        }
    }
    ops
}

/// Applies `call` to the register; false for a cas whose expected value was not there.
fn apply(register: &mut Option<u32>, call: Call) -> bool {
    match call {
        Call::Read => true,
        Call::Write(v) => {
            *register = Some(v);
            true
        }
        Call::Cas(from, to) if *register == Some(from) => {
            *register = Some(to);
            true
        }
        Call::Cas(..) => false,
    }
}

/// Writes the history as JSONL; returns how many ops.
pub fn write_jsonl(o: &RegisterSynth, path: &std::path::Path) -> std::io::Result<usize> {
    use std::io::Write;
    let ops = generate(o);
    crate::atomic_file::write_with(path, |w| {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, w);
        for op in &ops {
            serde_json::to_writer(&mut w, op).map_err(std::io::Error::other)?;
            w.write_all(b"\n")?;
        }
        w.flush()
    })?;
    Ok(ops.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_has_the_asked_shape_and_is_deterministic() {
        let o = RegisterSynth::new(5000, 30, 7);
        let ops = generate(&o);
        assert_eq!(ops, generate(&o));
        let invokes = ops.iter().filter(|op| op.kind == OpType::Invoke).count();
        assert_eq!(invokes, 5000);
        let info: Vec<&Op> = ops.iter().filter(|op| op.kind == OpType::Info).collect();
        // About 2% crashed, half writes and half cas.
        assert!((60..=140).contains(&info.len()), "{}", info.len());
        let writes = info.iter().filter(|op| op.f == "write").count();
        assert!(
            writes * 3 > info.len() && writes * 3 < info.len() * 2,
            "{writes}"
        );
        assert!(
            ops.iter()
                .all(|op| op.kind != OpType::Info || op.f != "read")
        );
        // Every invocation but the crashed ones completes ok or fail.
        let done = ops
            .iter()
            .filter(|op| matches!(op.kind, OpType::Ok | OpType::Fail))
            .count();
        assert_eq!(done + info.len(), invokes);
        assert_ne!(generate(&RegisterSynth::new(5000, 30, 8)), ops);
    }
}
