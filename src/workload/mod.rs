//! Workloads: what the clients do, what they read once the cluster has
//! recovered, and how the history is judged. One file per kind, each owning
//! its typed configuration (every knob defaulted by serde, unknown knobs
//! rejected with their place in the file), its generator and its check plan.
//!
//! Operations are [`Operation`]s from the generator to the workers to the
//! system's client; the history's `f` and `value` are derived from them in
//! one place ([`Operation::f`], [`Operation::history_value`]).
//!
//! Not here: talking to a system (`system/`), pacing and phases (`runner/`),
//! the checkers themselves (`checker/`).

pub mod bank;
pub mod counter;
pub mod lock;
pub mod register;
pub mod set;
pub mod txn;

pub use crate::nodes::wire::Operation;

use crate::checker::HistoryChecker;
use std::sync::Arc;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// What a workload's generator hands out, one after another, from one
/// seeded stream: the same seed gives the same operations in the same order
/// (which worker gets which depends on timing, as in Jepsen).
pub trait Generate: Send {
    /// The next operation of the main phase.
    fn next_op(&mut self) -> Operation;
    /// The next operation of a worker in a read-only stretch (see
    /// `runner::workers`), for workloads whose reads alone can see a stale
    /// value; `None` (the default) keeps every worker on [`Generate::next_op`].
    fn next_read(&mut self) -> Option<Operation> {
        None
    }
    /// What to read once faults are healed and the cluster has recovered,
    /// given what this generator handed out (the keys still live, say).
    fn final_reads(&self) -> Vec<Operation>;
}

/// What every workload's configuration provides.
pub trait Plan {
    /// Its kind, as written in YAML (`kind: list-append`).
    fn name(&self) -> &'static str;
    /// Checks what the types cannot (ranges, weights). The error names the
    /// knob; the caller adds the file and position.
    fn validate(&self) -> Result<(), (&'static str, String)>;
    /// Its generator, on the seeded stream `rng`.
    fn generator(&self, rng: ChaCha8Rng) -> Box<dyn Generate>;
    /// How its history is judged.
    fn checks(&self) -> Vec<Check>;
}

/// A checker a workload's history goes through, with what it needs to know.
#[derive(Debug, Clone)]
pub enum Check {
    /// Linearizability key by key (`[key, value]` ops) against a model.
    Linearizable(crate::checker::linearizable::ModelKind),
    /// Elle, against a consistency model.
    Elle(crate::checker::elle::Workload, crate::checker::elle::Model),
    /// A checker of the whole history that judges and describes what it
    /// found on its own (bank, set, counter): the runner and the report
    /// need nothing of it but this.
    History(Arc<dyn HistoryChecker>),
}

impl Check {
    /// The checker's name in results and summaries.
    pub fn name(&self) -> &'static str {
        match self {
            Check::Linearizable(_) => "linearizable",
            Check::Elle(..) => "elle",
            Check::History(c) => c.name(),
        }
    }
}

/// A workload, resolved: every knob set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Workload {
    /// Independent keys, each a register: read, write, cas.
    Register(register::Register),
    /// Transactions of appends and reads on lists (Elle).
    ListAppend(txn::ListAppend),
    /// Transactions of writes and reads on registers (Elle).
    RwRegister(txn::RwRegister),
    /// Transfers between accounts; the total is preserved.
    Bank(bank::Bank),
    /// Adds of unique elements, reads of the whole set.
    Set(set::Set),
    /// Adds to one counter, reads of it.
    Counter(counter::Counter),
    /// Acquires and releases of leased locks.
    Lock(lock::Lock),
}

impl Workload {
    /// Every kind, as written in YAML.
    pub const NAMES: &[&str] = &[
        "register",
        "list-append",
        "rw-register",
        "bank",
        "set",
        "counter",
        "lock",
    ];

    /// This workload's own configuration: everything else goes through it.
    pub fn plan(&self) -> &dyn Plan {
        match self {
            Workload::Register(w) => w,
            Workload::ListAppend(w) => w,
            Workload::RwRegister(w) => w,
            Workload::Bank(w) => w,
            Workload::Set(w) => w,
            Workload::Counter(w) => w,
            Workload::Lock(w) => w,
        }
    }

    pub fn name(&self) -> &'static str {
        self.plan().name()
    }

    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.plan().validate()
    }

    /// The generator of this workload, seeded.
    pub fn generator(&self, seed: u64) -> Box<dyn Generate> {
        self.plan().generator(ChaCha8Rng::seed_from_u64(seed))
    }
}

/// The workload presets built into the binary: (name, YAML text).
pub const PRESETS: &[(&str, &str)] = &[
    ("register", include_str!("../../workloads/register.yaml")),
    (
        "list-append",
        include_str!("../../workloads/list-append.yaml"),
    ),
    (
        "rw-register",
        include_str!("../../workloads/rw-register.yaml"),
    ),
    ("bank", include_str!("../../workloads/bank.yaml")),
    ("set", include_str!("../../workloads/set.yaml")),
    ("counter", include_str!("../../workloads/counter.yaml")),
    ("lock", include_str!("../../workloads/lock.yaml")),
];

/// Picks one of `weights.len()` choices by weight (at least one is positive:
/// the configuration's `validate` sees to it).
fn weighted(rng: &mut ChaCha8Rng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    debug_assert!(total > 0, "validated: some weight is positive");
    let mut roll = rng.random_range(0..total.max(1));
    for (i, w) in weights.iter().enumerate() {
        if roll < *w {
            return i;
        }
        roll -= w;
    }
    0
}

/// A mix whose weights are all zero does nothing.
fn check_mix(weights: &[u32]) -> Result<(), (&'static str, String)> {
    if weights.iter().all(|w| *w == 0) {
        return Err(("mix", "`mix` weights are all zero".into()));
    }
    Ok(())
}

/// A knob that must be at least 1.
fn positive(knob: &'static str, v: u32) -> Result<(), (&'static str, String)> {
    if v == 0 {
        return Err((knob, format!("`{knob}` must be at least 1")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preset(name: &str) -> Workload {
        let text = PRESETS.iter().find(|(n, _)| *n == name).unwrap().1;
        serde_yaml_ng::from_str(text).unwrap()
    }

    #[test]
    fn presets_read_validate_and_name_their_kind() {
        for (name, _) in PRESETS {
            let w = preset(name);
            assert_eq!(w.name(), *name);
            assert!(Workload::NAMES.contains(name));
            w.validate().unwrap();
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_operations() {
        for (name, _) in PRESETS {
            let w = preset(name);
            let (mut a, mut b, mut c) = (w.generator(7), w.generator(7), w.generator(8));
            let xs: Vec<_> = (0..200).map(|_| a.next_op()).collect();
            let ys: Vec<_> = (0..200).map(|_| b.next_op()).collect();
            let zs: Vec<_> = (0..200).map(|_| c.next_op()).collect();
            assert_eq!(xs, ys, "{name}");
            assert_ne!(xs, zs, "{name}: another seed should give other operations");
        }
    }

    #[test]
    fn unknown_knobs_and_kinds_are_refused() {
        let e = serde_yaml_ng::from_str::<Workload>("kind: register\naccounts: 3\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `accounts`"), "{e}");
        let e = serde_yaml_ng::from_str::<Workload>("kind: regster\n").unwrap_err();
        assert!(e.to_string().contains("unknown variant `regster`"), "{e}");
        let e = serde_yaml_ng::from_str::<Workload>("kind: register\nmix: {red: 1}\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `red`"), "{e}");
    }

    #[test]
    fn weighted_choice_follows_the_weights() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut counts = [0; 3];
        for _ in 0..4000 {
            counts[weighted(&mut rng, &[2, 0, 1])] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!((2400..3000).contains(&counts[0]), "{counts:?}");
    }
}
