//! An Elle-style transactional checker: infers the dependency graph between
//! transactions from what they read, finds every Adya anomaly (cycles and
//! non-cyclic ones), explains each, and says which consistency models the
//! history rules out.
//!
//! Entry points: [`check`] over history ops, [`check_txns`] over the compact
//! form ([`crate::history::txn`], what a million-transaction history should
//! be read into). Phases: inference (`append`, `register`: version orders,
//! ww / wr / rw edges, anomalies visible without cycles), the graph with the
//! process and realtime orders (`graph`), strongly connected components,
//! then a bounded search for the shortest cycle of each shape in each
//! component (`cycle`), classified against the models (`model`) and put in
//! words (`explain`); with sessions, read atomicity and causal consistency
//! are checked over the same edges (`weak`).
//!
//! Soundness with unknown outcomes: an `info` transaction may or may not
//! have committed. It is a node, but nothing is ordered after it by process
//! or realtime, its reads are ignored, and edges leave it only when another
//! transaction observed its writes (which proves it committed). `fail`
//! transactions are not nodes; reading their writes is G1a.
//!
//! Not here: reading files (the caller does, with `history`), results.json
//! (the report's serde types map from [`ElleResult`]).

pub mod append;
pub mod cycle;
pub mod explain;
pub mod graph;
pub mod model;
pub mod notation;
pub mod register;
pub mod weak;

use crate::checker::Verdict;
use crate::history::Op;
use crate::history::Outcome;
use crate::history::txn::{KeyId, Mop, TxnError, Txns};
use cycle::CycleFound;
use graph::{Graph, GraphBuilder, NONE};
pub use model::{Anomaly, Boundary, Model, Shape, Variant};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::str::FromStr;
use std::time::{Duration, Instant};
use thiserror::Error;

/// What the transactions do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `append` and `r` of lists.
    ListAppend,
    /// `w` and `r` of registers, every written value unique per key.
    RwRegister,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::ListAppend => "list-append",
            Workload::RwRegister => "rw-register",
        }
    }
}

impl FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Workload, String> {
        match s {
            "list-append" => Ok(Workload::ListAppend),
            "rw-register" => Ok(Workload::RwRegister),
            _ => Err(format!(
                "unknown transactional workload {s:?}: expected list-append or rw-register"
            )),
        }
    }
}

/// How to check.
#[derive(Debug, Clone)]
pub struct ElleOptions {
    pub workload: Workload,
    /// The model the history must satisfy.
    pub model: Model,
    /// Order each client's transactions (for strong session models).
    pub process_order: bool,
    /// Order transactions by real time (for strong and strict models).
    pub realtime_order: bool,
    /// The whole cycle search stops here; what it could not finish is
    /// reported as incomplete (and the verdict is unknown if that matters).
    pub time_limit: Duration,
    /// Edge relaxations allowed per cycle shape per component.
    pub max_steps: u64,
    /// How many cases of each anomaly to keep with explanations.
    pub max_cases: usize,
    /// rw-register: a transaction that reads a key and then writes it
    /// installs its version after the one it read.
    pub wfr_keys: bool,
    /// rw-register: each key is sequentially consistent, so a process's
    /// later transactions see versions at least as new (an assumption about
    /// the database; off by default).
    pub sequential_keys: bool,
    /// rw-register: each key is linearizable, so a transaction invoked after
    /// another completed sees versions at least as new (an assumption about
    /// the database; off by default).
    pub linearizable_keys: bool,
}

impl ElleOptions {
    /// Options for checking `model`, with the orders it needs.
    pub fn new(workload: Workload, model: Model) -> ElleOptions {
        let (process_order, realtime_order) = model.needs_orders();
        ElleOptions {
            workload,
            model,
            process_order,
            realtime_order,
            time_limit: Duration::from_secs(60),
            max_steps: 2_000_000,
            max_cases: 8,
            wfr_keys: true,
            sequential_keys: false,
            linearizable_keys: false,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ElleError {
    #[error(transparent)]
    Txn(#[from] TxnError),
    #[error(
        "key {key}: value {value} is written by op {first} and again by op {second}; Elle needs every written value to be unique per key"
    )]
    DuplicateWrite {
        key: String,
        value: i64,
        first: u64,
        second: u64,
    },
    #[error("op {index}: {message}")]
    Workload { index: u64, message: String },
}

/// An anomaly found, before rendering: transactions by position in
/// `Txns::txns`.
#[derive(Debug, Clone)]
pub struct Found {
    anomaly: Anomaly,
    txns: Vec<u32>,
    key: Option<KeyId>,
    text: String,
    cycle: Option<CycleFound>,
    /// A cycle already explained edge by edge (read atomicity and causal
    /// consistency close theirs with commit-order edges that only their
    /// check knows why), drawn like the cycle search's.
    edges: Vec<explain::EdgeText>,
}

impl Found {
    fn new(anomaly: Anomaly, txns: Vec<u32>, key: Option<KeyId>, text: String) -> Found {
        Found {
            anomaly,
            txns,
            key,
            text,
            cycle: None,
            edges: Vec::new(),
        }
    }
}

/// What an inference keeps to explain its edges later.
pub enum Inference {
    Append(append::AppendIndex),
    Register(register::RegisterIndex),
}

impl Inference {
    /// Why a → b holds for data relation `rel`, with the key involved.
    fn explain(&self, txns: &Txns, a: u32, b: u32, rel: u8) -> Option<(KeyId, String)> {
        match self {
            Inference::Append(i) => i.explain(txns, a, b, rel),
            Inference::Register(i) => i.explain(txns, a, b, rel),
        }
    }
}

/// A transaction named in a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    /// The completion's op index (the invocation's if none): `T<index>`.
    pub index: u64,
    pub invoke_index: u64,
    pub process: u64,
    /// `ok`, `info` or `fail`.
    pub outcome: &'static str,
    /// The micro-ops as the history wrote them (`[["append",7,4]]`).
    pub ops: String,
}

impl Witness {
    pub fn name(&self) -> String {
        format!("T{}", self.index)
    }
}

/// One edge of a cycle, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleStep {
    pub from: u64,
    pub to: u64,
    /// `ww`, `wr`, `rw`, `process` or `realtime`.
    pub relation: &'static str,
    pub key: Option<String>,
    pub text: String,
}

/// One instance of an anomaly, explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub anomaly: Anomaly,
    pub witnesses: Vec<Witness>,
    pub key: Option<String>,
    /// The whole explanation, one or more sentences.
    pub text: String,
    /// For a cycle: its edges in order, and a Graphviz DOT graph of it.
    pub steps: Vec<CycleStep>,
    pub dot: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    pub infer: Duration,
    pub graph: Duration,
    pub scc: Duration,
    pub cycles: Duration,
    /// Read atomicity and causal consistency (`weak`), when sessions are
    /// checked.
    pub weak: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub txns: usize,
    pub ok: usize,
    pub info: usize,
    pub fail: usize,
    /// Graph nodes: transactions, then realtime barriers.
    pub txn_nodes: usize,
    pub barrier_nodes: usize,
    pub edges: usize,
    /// Strongly connected components with more than one node.
    pub sccs: usize,
    pub largest_scc: usize,
}

/// The checker's answer.
#[derive(Debug, Clone)]
pub struct ElleResult {
    pub verdict: Verdict,
    pub workload: Workload,
    pub model: Model,
    pub process_order: bool,
    pub realtime_order: bool,
    /// Up to `max_cases` explained cases per anomaly, worst first.
    pub cases: Vec<Case>,
    /// How many cases of each anomaly were found in all.
    pub counts: BTreeMap<Anomaly, usize>,
    /// Found anomalies that `model` prohibits (directly or as a special case).
    pub violating: Vec<Anomaly>,
    /// Cycle shapes whose search ran out of time or steps in some component.
    pub incomplete: Vec<Anomaly>,
    pub boundary: Boundary,
    pub stats: Stats,
    pub timings: Timings,
}

/// Checks a history's `txn` ops.
pub fn check(ops: &[Op], opts: &ElleOptions) -> Result<ElleResult, ElleError> {
    check_txns(&Txns::from_ops(ops)?, opts)
}

/// Checks transactions in compact form.
pub fn check_txns(txns: &Txns, opts: &ElleOptions) -> Result<ElleResult, ElleError> {
    validate(txns, opts.workload)?;
    let t0 = Instant::now();
    let mut gb = GraphBuilder::new(txns);
    let mut found = Vec::new();
    let inference = match opts.workload {
        Workload::ListAppend => Inference::Append(append::infer(txns, &mut gb, &mut found)?),
        Workload::RwRegister => {
            Inference::Register(register::infer(txns, opts, &mut gb, &mut found)?)
        }
    };
    let t1 = Instant::now();
    if opts.process_order {
        gb.add_process_order(txns);
    }
    if opts.realtime_order {
        gb.add_realtime_order(txns);
    }
    let g = gb.build();
    let t2 = Instant::now();
    let all: Vec<u32> = (0..g.node_count()).collect();
    let mut local = vec![NONE; g.node_count() as usize];
    let sccs = graph::sccs(&g, &all, 0xff, &mut local);
    drop(all);
    let t3 = Instant::now();
    let mut variants = vec![Variant::Data];
    if opts.process_order {
        variants.push(Variant::Process);
    }
    if opts.realtime_order {
        variants.push(Variant::Realtime);
    }
    let limits = cycle::Limits {
        max_steps: opts.max_steps,
        deadline: t3 + opts.time_limit,
    };
    let mut incomplete = BTreeSet::new();
    for scc in &sccs {
        let report = cycle::search_scc(&g, scc, &variants, limits, &mut local);
        incomplete.extend(report.incomplete);
        for c in report.cycles {
            let txns_in: Vec<u32> = c
                .steps
                .iter()
                .map(|s| g.node_txn[s.from as usize])
                .collect();
            found.push(Found {
                anomaly: c.anomaly,
                txns: txns_in,
                key: None,
                text: String::new(),
                cycle: Some(c),
                edges: Vec::new(),
            });
        }
    }
    let t4 = Instant::now();
    // RA and TCC order sessions: without process order they are unchecked.
    // A causal check cut short leaves only `causal` itself undecided: the
    // stronger models are judged by their cycles, as before it existed.
    if opts.process_order {
        let cut_short = weak::check(txns, &g, &inference, opts.max_cases, &mut found);
        if opts.model == Model::Causal {
            incomplete.extend(cut_short);
        }
    }
    let t5 = Instant::now();
    let timings = Timings {
        infer: t1 - t0,
        graph: t2 - t1,
        scc: t3 - t2,
        cycles: t4 - t3,
        weak: t5 - t4,
    };
    Ok(assemble(
        txns, opts, &g, &inference, found, incomplete, &sccs, timings,
    ))
}

/// Rejects micro-ops the workload does not have.
fn validate(txns: &Txns, workload: Workload) -> Result<(), ElleError> {
    for t in &txns.txns {
        for m in txns.mops(t) {
            let bad = match (workload, m) {
                (Workload::ListAppend, Mop::Write { .. }) => Some("a \"w\" micro-op"),
                (Workload::ListAppend, Mop::Read { scalar: true, .. }) => {
                    Some("a read of a single value (list-append reads return lists)")
                }
                (Workload::RwRegister, Mop::Append { .. }) => Some("an \"append\" micro-op"),
                (
                    Workload::RwRegister,
                    Mop::Read {
                        values: Some(_),
                        scalar: false,
                        ..
                    },
                ) => Some("a read of a list (rw-register reads return one value or null)"),
                _ => None,
            };
            if let Some(what) = bad {
                return Err(ElleError::Workload {
                    index: t.invoke_index,
                    message: format!("{what} in a {} history", workload.name()),
                });
            }
        }
    }
    Ok(())
}

/// Orders, counts, caps and renders the cases; decides the verdict.
#[allow(clippy::too_many_arguments)]
fn assemble(
    txns: &Txns,
    opts: &ElleOptions,
    g: &Graph,
    inference: &Inference,
    mut found: Vec<Found>,
    incomplete: BTreeSet<Anomaly>,
    sccs: &[Vec<u32>],
    timings: Timings,
) -> ElleResult {
    found.sort_by_key(|f| (f.anomaly, f.cycle.as_ref().map_or(0, |c| c.steps.len())));
    let mut counts: BTreeMap<Anomaly, usize> = BTreeMap::new();
    let mut cases = Vec::new();
    for f in &found {
        let n = counts.entry(f.anomaly).or_default();
        *n += 1;
        if *n <= opts.max_cases {
            cases.push(render_case(txns, g, inference, f));
        }
    }
    let kinds: BTreeSet<Anomaly> = counts.keys().copied().collect();
    let prohibited = opts.model.prohibited();
    let implied = Anomaly::closure(kinds.iter().copied());
    let violating: Vec<Anomaly> = implied.intersection(&prohibited).copied().collect();
    let boundary = model::boundary(&kinds, opts.process_order, opts.realtime_order);
    let ok = txns
        .txns
        .iter()
        .filter(|t| t.outcome == Outcome::Ok)
        .count();
    let fail = txns
        .txns
        .iter()
        .filter(|t| t.outcome == Outcome::Fail)
        .count();
    let undecided = incomplete.iter().any(|a| prohibited.contains(a))
        || boundary.unchecked.contains(&opts.model)
        || ok == 0;
    let verdict = if !violating.is_empty() {
        Verdict::Invalid
    } else if undecided {
        Verdict::Unknown
    } else {
        Verdict::Valid
    };
    ElleResult {
        verdict,
        workload: opts.workload,
        model: opts.model,
        process_order: opts.process_order,
        realtime_order: opts.realtime_order,
        cases,
        counts,
        violating,
        incomplete: incomplete.into_iter().collect(),
        boundary,
        stats: Stats {
            txns: txns.txns.len(),
            ok,
            info: txns.txns.len() - ok - fail,
            fail,
            txn_nodes: g.txn_nodes as usize,
            barrier_nodes: (g.node_count() - g.txn_nodes) as usize,
            edges: g.edge_count(),
            sccs: sccs.len(),
            largest_scc: sccs.iter().map(Vec::len).max().unwrap_or(0),
        },
        timings,
    }
}

fn witness(txns: &Txns, t: u32) -> Witness {
    let t = &txns.txns[t as usize];
    Witness {
        index: t.index(),
        invoke_index: t.invoke_index,
        process: t.process,
        outcome: match t.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Unknown => "info",
        },
        ops: txns.mops_json(t),
    }
}

fn render_case(txns: &Txns, g: &Graph, inference: &Inference, f: &Found) -> Case {
    let witnesses = f.txns.iter().map(|&t| witness(txns, t)).collect();
    let key = f.key.map(|k| explain::key_str(txns, k));
    let edges = match &f.cycle {
        Some(c) => explain::cycle_edges(g, txns, inference, c),
        None => f.edges.clone(),
    };
    if edges.is_empty() {
        return Case {
            anomaly: f.anomaly,
            witnesses,
            key,
            text: f.text.clone(),
            steps: Vec::new(),
            dot: None,
        };
    }
    let steps = edges
        .iter()
        .map(|e| CycleStep {
            from: txns.txns[e.from as usize].index(),
            to: txns.txns[e.to as usize].index(),
            relation: explain::rel_name(e.rel),
            key: e.key.map(|k| explain::key_str(txns, k)),
            text: e.text.clone(),
        })
        .collect();
    Case {
        anomaly: f.anomaly,
        witnesses,
        key,
        text: explain::cycle_text(txns, &edges),
        steps,
        dot: Some(explain::cycle_dot(txns, &f.anomaly.name(), &edges)),
    }
}

impl ElleResult {
    /// Why the verdict is unknown, in words; `None` when it is not unknown.
    pub fn why_unknown(&self) -> Option<String> {
        if self.verdict != Verdict::Unknown {
            return None;
        }
        Some(if self.incomplete == [Anomaly::CausalityViolation] {
            format!(
                "the causal check needs more than {} vector-clock words at once (chains × live clocks)",
                weak::MAX_CLOCK_WORDS
            )
        } else if !self.incomplete.is_empty() {
            let list: Vec<String> = self.incomplete.iter().map(|a| a.name()).collect();
            format!("cycle search cut short for {}", list.join(", "))
        } else if self.boundary.unchecked.contains(&self.model) {
            let order = if self.model.needs_orders().1 {
                "realtime"
            } else {
                "process"
            };
            format!(
                "{} needs the {order} order, which was not checked",
                self.model.name()
            )
        } else {
            "no transaction committed".to_string()
        })
    }

    /// The names of the anomalies found, worst first.
    pub fn anomaly_names(&self) -> Vec<String> {
        self.counts.keys().map(|a| a.name()).collect()
    }

    /// The result as readable text: verdict, models, then every case.
    pub fn render_text(&self) -> String {
        let names = |ms: &[Model]| ms.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ");
        let mut out = String::new();
        let s = &self.stats;
        let _ = writeln!(
            out,
            "{}: {} transactions ({} ok, {} info, {} fail), checked for {}",
            self.workload.name(),
            s.txns,
            s.ok,
            s.info,
            s.fail,
            self.model
        );
        match self.why_unknown() {
            Some(why) => writeln!(out, "verdict: unknown ({why})"),
            None => writeln!(out, "verdict: {}", self.verdict.as_str()),
        }
        .ok();
        if !self.counts.is_empty() {
            let list: Vec<String> = self
                .counts
                .iter()
                .map(|(a, n)| format!("{a} ({n})"))
                .collect();
            let _ = writeln!(out, "anomalies: {}", list.join(", "));
        }
        let b = &self.boundary;
        if !b.not.is_empty() {
            let _ = writeln!(out, "not {}", names(&b.not));
        }
        if !b.also_not.is_empty() {
            let _ = writeln!(out, "also not {}", names(&b.also_not));
        }
        if !b.strongest_possible.is_empty() {
            let _ = writeln!(
                out,
                "still possible: {} (and weaker)",
                names(&b.strongest_possible)
            );
        }
        if !self.incomplete.is_empty() {
            let list: Vec<String> = self.incomplete.iter().map(|a| a.name()).collect();
            let _ = writeln!(
                out,
                "cycle search cut short (time or step limit) for: {}",
                list.join(", ")
            );
        }
        let mut last = None;
        for (i, c) in self.cases.iter().enumerate() {
            if last != Some(c.anomaly) {
                let _ = writeln!(out, "\n{} ({} found):", c.anomaly, self.counts[&c.anomaly]);
                last = Some(c.anomaly);
            }
            let _ = writeln!(out, "  case {}:", i + 1);
            for w in &c.witnesses {
                let _ = writeln!(
                    out,
                    "    {} = process {}, {}, ops {}..{}: {}",
                    w.name(),
                    w.process,
                    w.outcome,
                    w.invoke_index,
                    w.index,
                    w.ops
                );
            }
            for line in c.text.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
