//! The linearizability checker: is there a total order of the operations,
//! consistent with their real-time order, that a sequential model accepts?
//!
//! The search is Wing & Gong's with Lowe's memoisation, as in Porcupine
//! ([`search`]); a keyed history is split by key and the keys are checked in
//! parallel (Horn & Kroening's P-compositionality, [`partition`]). Ops that
//! ended `info` or never completed are open ended: they may take effect at any
//! time after their invocation, or never. `fail` ops did not happen.
//!
//! Bounded: a deadline (verdict `unknown` when it passes) and a memory budget
//! shared by all keys (verdict `unknown` when the configuration caches would
//! outgrow it). Once one key is found invalid the others are cancelled.
//!
//! Not here: reading files, the results.json schema (`report::results`),
//! printing (`runner::check`).

pub mod explain;
pub mod fxhash;
pub mod model;
pub mod models;
pub mod notation;
pub mod partition;
pub mod search;

use crate::checker::Verdict;
use crate::history::pair::PairError;
use crate::history::{Op, Process};
use explain::Explanation;
use model::{Model, Observed};
pub use models::register::{NilRead, RegisterOptions};
pub use partition::KeysMode;
use search::{Entry, Limits, MemoryBudget, Search, StopReason};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Which sequential model to check against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    Register,
    CasRegister,
    Kv,
    Set,
    Mutex,
}

impl ModelKind {
    pub const NAMES: [&str; 5] = ["register", "cas-register", "kv", "set", "mutex"];

    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::Kv => "kv",
            ModelKind::Set => "set",
            ModelKind::Mutex => "mutex",
        }
    }
}

impl std::str::FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ModelKind::NAMES
            .iter()
            .position(|&n| n == s)
            .map(|i| {
                [
                    ModelKind::Register,
                    ModelKind::CasRegister,
                    ModelKind::Kv,
                    ModelKind::Set,
                    ModelKind::Mutex,
                ][i]
            })
            .ok_or_else(|| {
                format!(
                    "unknown model {s:?}; expected one of {}",
                    ModelKind::NAMES.join(", ")
                )
            })
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub model: ModelKind,
    pub keys: KeysMode,
    /// Initial value and nil-read meaning of `register` and `cas-register`.
    pub register: RegisterOptions,
    pub time_limit: Duration,
    /// Bound on the configuration caches of all keys together.
    pub memory_limit_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            model: ModelKind::CasRegister,
            keys: KeysMode::Auto,
            register: RegisterOptions::default(),
            time_limit: Duration::from_secs(60),
            memory_limit_bytes: 2 << 30,
        }
    }
}

/// The history cannot be checked as it is.
#[derive(Debug, Error)]
pub enum InputError {
    #[error(transparent)]
    Pairing(#[from] PairError),
    #[error("op {index} (process {process}, {f}): {message}")]
    Op {
        index: u64,
        process: Process,
        f: String,
        message: String,
    },
}

impl InputError {
    pub(crate) fn op(op: &Op, message: String) -> InputError {
        InputError::Op {
            index: op.index,
            process: op.process,
            f: op.f.clone(),
            message,
        }
    }
}

/// What the checker found in one history.
#[derive(Debug, Clone)]
pub struct Report {
    pub verdict: Verdict,
    /// Whether values were read as `[key, value]`.
    pub keyed: bool,
    pub client_calls: usize,
    pub failed: usize,
    pub unknown: usize,
    /// One per key (one in all when not keyed), in key order.
    pub keys: Vec<KeyReport>,
}

#[derive(Debug, Clone)]
pub struct KeyReport {
    pub key: Option<Value>,
    pub verdict: Verdict,
    /// Ops the search placed or tried to (after dropping fails and ops that cannot matter).
    pub ops: usize,
    pub configurations: u64,
    pub elapsed: Duration,
    /// Why the verdict is unknown.
    pub stopped: Option<StopReason>,
    /// When valid: history indices of the invocations, in a legal order.
    pub linearization: Vec<u64>,
    /// When invalid.
    pub explanation: Option<Explanation>,
}

/// Checks `ops` (a whole history) for linearizability under `options`.
pub fn check(ops: &[Op], options: &Options) -> Result<Report, InputError> {
    let deadline = Instant::now() + options.time_limit;
    let split = partition::split(ops, options.keys)?;
    let keys = match options.model {
        ModelKind::Register => check_parts(
            ops,
            &split.parts,
            || models::register::Register::new(&options.register, false),
            deadline,
            options,
        ),
        ModelKind::CasRegister => check_parts(
            ops,
            &split.parts,
            || models::register::Register::new(&options.register, true),
            deadline,
            options,
        ),
        ModelKind::Kv => check_parts(
            ops,
            &split.parts,
            models::kv::Kv::default,
            deadline,
            options,
        ),
        ModelKind::Set => check_parts(
            ops,
            &split.parts,
            models::set::Set::default,
            deadline,
            options,
        ),
        ModelKind::Mutex => check_parts(
            ops,
            &split.parts,
            models::mutex::Mutex::default,
            deadline,
            options,
        ),
    }?;
    let verdict = keys
        .iter()
        .fold(Verdict::Valid, |v, k| v.combine(k.verdict));
    Ok(Report {
        verdict,
        keyed: split.keyed,
        client_calls: split.client_calls,
        failed: split.failed,
        unknown: split.unknown,
        keys,
    })
}

/// Steps a key's search runs before it yields its thread to the next key.
/// Small enough that a key that fails fast is not held up by a hard one.
const SLICE_STEPS: u64 = 1 << 10;

fn check_parts<M>(
    ops: &[Op],
    parts: &[partition::Part<'_>],
    new_model: impl Fn() -> M + Sync,
    deadline: Instant,
    options: &Options,
) -> Result<Vec<KeyReport>, InputError>
where
    M: Model + Send,
    M::Op: Sync,
    M::State: Send,
{
    // Parse every key before searching any, so bad input fails fast and whole.
    let mut prepared = Vec::with_capacity(parts.len());
    for part in parts {
        let mut model = new_model();
        let mut entries = Vec::with_capacity(part.calls.len());
        for c in &part.calls {
            let observed = c.observed.map_or(Observed::Unknown, Observed::Ok);
            let op = model
                .parse(c.f, c.value, observed)
                .map_err(|m| InputError::op(&ops[c.invoke], m))?;
            if !model.skippable(&op) {
                entries.push(Entry {
                    op,
                    call: c.invoke,
                    ret: c.ok,
                });
            }
        }
        let left_out = model.cannot_matter(&entries);
        let mut keep = left_out.iter().map(|&out| !out);
        entries.retain(|_| keep.next().expect("one flag per entry"));
        prepared.push((model, entries));
    }
    let cancel = AtomicBool::new(false);
    let memory = MemoryBudget::new(options.memory_limit_bytes);
    let limits = Limits {
        deadline,
        cancel: &cancel,
        memory: &memory,
    };
    let finished = run_fairly(&mut prepared, limits);
    let mut keys = Vec::with_capacity(parts.len());
    for ((part, (model, entries)), (outcome, configurations, elapsed)) in
        parts.iter().zip(&mut prepared).zip(finished)
    {
        let mut report = KeyReport {
            key: part.key.cloned(),
            verdict: Verdict::Valid,
            ops: entries.len(),
            configurations,
            elapsed,
            stopped: None,
            linearization: Vec::new(),
            explanation: None,
        };
        match outcome {
            search::Outcome::Linearizable(order) => {
                report.linearization = order.iter().map(|&e| ops[entries[e].call].index).collect();
            }
            search::Outcome::Illegal(stuck) => {
                report.verdict = Verdict::Invalid;
                report.explanation = Some(explain::explain(ops, model, entries, &stuck));
            }
            search::Outcome::Unknown(reason) => {
                report.verdict = Verdict::Unknown;
                report.stopped = Some(reason);
            }
        }
        keys.push(report);
    }
    Ok(keys)
}
/// What a key's search ended with: outcome, configurations, time spent on it.
type Finished<S> = (search::Outcome<S>, u64, Duration);

/// Runs every key's search a slice at a time, round robin, on the pool's
/// threads: like Porcupine's goroutine per key, a key that fails fast is found
/// while a hard key is still searching (and then cancels it).
fn run_fairly<M>(
    prepared: &mut [(M, Vec<Entry<M::Op>>)],
    limits: Limits<'_>,
) -> Vec<Finished<M::State>>
where
    M: Model + Send,
    M::Op: Sync,
    M::State: Send,
{
    struct Task<'a, M: Model> {
        key: usize,
        search: Search<'a, M>,
        elapsed: Duration,
    }
    let keys = prepared.len();
    let queue: Mutex<VecDeque<Task<'_, M>>> = Mutex::new(
        prepared
            .iter_mut()
            .enumerate()
            .map(|(key, (model, entries))| Task {
                key,
                search: Search::new(model, entries, limits.memory),
                elapsed: Duration::ZERO,
            })
            .collect(),
    );
    let done: Mutex<Vec<Option<Finished<M::State>>>> =
        Mutex::new((0..keys).map(|_| None).collect());
    let workers = rayon::current_num_threads().min(keys);
    rayon::scope(|s| {
        for _ in 0..workers {
            s.spawn(|_| {
                loop {
                    let Some(mut task) = queue.lock().expect("no worker panics").pop_front() else {
                        return;
                    };
                    let started = Instant::now();
                    let outcome = task.search.resume(SLICE_STEPS, limits);
                    task.elapsed += started.elapsed();
                    match outcome {
                        None => queue.lock().expect("no worker panics").push_back(task),
                        Some(outcome) => {
                            if matches!(outcome, search::Outcome::Illegal(_)) {
                                limits.cancel.store(true, Ordering::Relaxed);
                            }
                            let finished = (outcome, task.search.configurations(), task.elapsed);
                            done.lock().expect("no worker panics")[task.key] = Some(finished);
                        }
                    }
                }
            });
        }
    });
    done.into_inner()
        .expect("no worker panics")
        .into_iter()
        .map(|d| d.expect("every key's search ends"))
        .collect()
}

/// Why a search stopped, for people.
pub fn describe_stop(reason: StopReason, options: &Options) -> String {
    match reason {
        StopReason::TimeLimit => format!("time limit of {:?} reached", options.time_limit),
        StopReason::MemoryLimit => {
            format!(
                "memory limit of {} MiB reached",
                options.memory_limit_bytes >> 20
            )
        }
        StopReason::Cancelled => "not finished: another key was found invalid".into(),
    }
}

#[cfg(test)]
mod tests;
