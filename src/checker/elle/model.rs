//! Anomaly names, which anomalies imply which, and the consistency models
//! that prohibit them: the answer to "is this history read-committed?" and
//! "which weaker models does it still allow?".
//!
//! Names follow Elle (`G-single`, `G2-item-realtime`, `strong-session-
//! serializable`, ...), models follow Adya and Elle's hierarchy
//! (jepsen.io/consistency). One deliberate difference from Elle: every
//! anti-dependency we infer is an *item* anti-dependency (there are no
//! predicates), so a G-single or G-nonadjacent cycle is also Adya's G2-item
//! and rules out repeatable read, as Adya defines it.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// The data shape of a dependency cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    /// Write cycle: ww edges only.
    G0,
    /// Circular information flow: ww and wr, at least one wr.
    G1c,
    /// Exactly one anti-dependency (rw) edge.
    GSingle,
    /// Two or more rw edges, no two adjacent.
    GNonadjacent,
    /// Two or more rw edges, some two adjacent.
    G2Item,
}

/// Which extra order a cycle needs besides data dependencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    Data,
    /// At least one process-order edge (and no realtime edge).
    Process,
    /// At least one realtime edge.
    Realtime,
}

/// Everything the checker can report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Anomaly {
    Cycle(Shape, Variant),
    /// Aborted read: a committed read saw a failed transaction's write.
    G1a,
    /// Intermediate read: a read saw a write its transaction later overwrote.
    G1b,
    /// A committed write followed a failed one in a key's version order.
    DirtyUpdate,
    /// A transaction disagrees with its own earlier reads or writes.
    Internal,
    /// A transaction read a value it only writes later.
    FutureRead,
    /// A read holds the same appended element twice.
    DuplicateElements,
    /// Two reads of a key that cannot both be prefixes of one list.
    IncompatibleOrder,
    /// A read of a value no transaction wrote.
    GarbageRead,
    /// Two committed transactions read the same version and both wrote it.
    LostUpdate,
    /// The inferred version order of a register is cyclic.
    CyclicVersions,
    /// A read shows a transaction's appends to a key out of the order it
    /// made them, or not next to each other.
    AppendsOutOfOrder,
    /// Read atomicity broken: a transaction saw another's write (or
    /// follows it in its session) yet read an older version of a key that
    /// one also wrote (Plume's fractured reads). See `weak.rs`.
    FracturedRead,
    /// Transactional causal consistency broken, read atomicity not: a
    /// transaction read a version older than one causally before it.
    CausalityViolation,
}

pub const SHAPES: [Shape; 5] = [
    Shape::G0,
    Shape::G1c,
    Shape::GSingle,
    Shape::GNonadjacent,
    Shape::G2Item,
];

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::G0 => "G0",
            Shape::G1c => "G1c",
            Shape::GSingle => "G-single",
            Shape::GNonadjacent => "G-nonadjacent",
            Shape::G2Item => "G2-item",
        }
    }
}

impl Anomaly {
    pub fn name(self) -> String {
        match self {
            Anomaly::Cycle(s, Variant::Data) => s.name().to_string(),
            Anomaly::Cycle(s, Variant::Process) => format!("{}-process", s.name()),
            Anomaly::Cycle(s, Variant::Realtime) => format!("{}-realtime", s.name()),
            Anomaly::G1a => "G1a".into(),
            Anomaly::G1b => "G1b".into(),
            Anomaly::DirtyUpdate => "dirty-update".into(),
            Anomaly::Internal => "internal".into(),
            Anomaly::FutureRead => "future-read".into(),
            Anomaly::DuplicateElements => "duplicate-elements".into(),
            Anomaly::IncompatibleOrder => "incompatible-order".into(),
            Anomaly::GarbageRead => "garbage-read".into(),
            Anomaly::LostUpdate => "lost-update".into(),
            Anomaly::CyclicVersions => "cyclic-versions".into(),
            Anomaly::AppendsOutOfOrder => "appends-out-of-order".into(),
            Anomaly::FracturedRead => "fractured-read".into(),
            Anomaly::CausalityViolation => "causality-violation".into(),
        }
    }

    /// The anomalies this one is a special case of (one step).
    fn implies(self) -> Vec<Anomaly> {
        use Anomaly::*;
        use Shape::*;
        match self {
            Cycle(shape, variant) => {
                let mut out = Vec::new();
                // A process edge is also a realtime edge (a process runs one
                // transaction at a time, and we order only after ok ones).
                if variant == Variant::Process {
                    out.push(Cycle(shape, Variant::Realtime));
                }
                let weaker = match shape {
                    G0 => Some(G1c),
                    G1c | G2Item => None,
                    GSingle => Some(GNonadjacent),
                    // Our rw edges are item anti-dependencies: Adya's G2-item.
                    GNonadjacent => Some(G2Item),
                };
                out.extend(weaker.map(|s| Cycle(s, variant)));
                out
            }
            IncompatibleOrder | DirtyUpdate => vec![G1a],
            FutureRead => vec![Cycle(G1c, Variant::Data)],
            LostUpdate => vec![Cycle(G2Item, Variant::Data)],
            _ => vec![],
        }
    }

    /// This anomaly and everything it implies.
    pub fn closure(found: impl IntoIterator<Item = Anomaly>) -> BTreeSet<Anomaly> {
        let mut out = BTreeSet::new();
        let mut todo: Vec<Anomaly> = found.into_iter().collect();
        while let Some(a) = todo.pop() {
            if out.insert(a) {
                todo.extend(a.implies());
            }
        }
        out
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Consistency models, weakest first within each family. In YAML and JSON
/// by name (`strict-serializable`), as on the command line.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub enum Model {
    ReadUncommitted,
    ReadCommitted,
    RepeatableRead,
    SnapshotIsolation,
    Serializable,
    StrongSessionReadUncommitted,
    StrongSessionReadCommitted,
    /// Read atomicity with sessions (Plume's RA).
    ReadAtomic,
    /// Transactional causal consistency (Plume's TCC).
    Causal,
    StrongSessionSnapshotIsolation,
    StrongSessionSerializable,
    StrongReadUncommitted,
    StrongReadCommitted,
    StrongSnapshotIsolation,
    StrictSerializable,
}

pub const MODELS: [Model; 15] = [
    Model::ReadUncommitted,
    Model::ReadCommitted,
    Model::RepeatableRead,
    Model::SnapshotIsolation,
    Model::Serializable,
    Model::StrongSessionReadUncommitted,
    Model::StrongSessionReadCommitted,
    Model::ReadAtomic,
    Model::Causal,
    Model::StrongSessionSnapshotIsolation,
    Model::StrongSessionSerializable,
    Model::StrongReadUncommitted,
    Model::StrongReadCommitted,
    Model::StrongSnapshotIsolation,
    Model::StrictSerializable,
];

impl Model {
    /// Elle's name.
    pub fn name(self) -> &'static str {
        match self {
            Model::ReadUncommitted => "read-uncommitted",
            Model::ReadCommitted => "read-committed",
            Model::RepeatableRead => "repeatable-read",
            Model::SnapshotIsolation => "snapshot-isolation",
            Model::Serializable => "serializable",
            Model::StrongSessionReadUncommitted => "strong-session-read-uncommitted",
            Model::StrongSessionReadCommitted => "strong-session-read-committed",
            Model::ReadAtomic => "read-atomic",
            Model::Causal => "causal",
            Model::StrongSessionSnapshotIsolation => "strong-session-snapshot-isolation",
            Model::StrongSessionSerializable => "strong-session-serializable",
            Model::StrongReadUncommitted => "strong-read-uncommitted",
            Model::StrongReadCommitted => "strong-read-committed",
            Model::StrongSnapshotIsolation => "strong-snapshot-isolation",
            Model::StrictSerializable => "strict-serializable",
        }
    }

    /// Adya's name where there is one.
    fn adya_name(self) -> Option<&'static str> {
        match self {
            Model::ReadUncommitted => Some("PL-1"),
            Model::ReadCommitted => Some("PL-2"),
            Model::RepeatableRead => Some("PL-2.99"),
            Model::SnapshotIsolation => Some("PL-SI"),
            Model::Serializable => Some("PL-3"),
            Model::StrictSerializable => Some("PL-SS"),
            _ => None,
        }
    }

    /// The models this one directly implies (a history that satisfies it
    /// satisfies them).
    fn weaker(self) -> &'static [Model] {
        use Model::*;
        match self {
            ReadUncommitted => &[],
            StrongSessionReadUncommitted => &[ReadUncommitted],
            ReadCommitted => &[ReadUncommitted],
            RepeatableRead | SnapshotIsolation => &[ReadCommitted],
            Serializable => &[RepeatableRead, SnapshotIsolation],
            StrongSessionReadCommitted => &[ReadCommitted, StrongSessionReadUncommitted],
            // Both order each session (Plume's so ⊆ co), so they forbid the
            // session cycles strong-session read committed forbids.
            ReadAtomic => &[StrongSessionReadCommitted],
            Causal => &[ReadAtomic],
            // Snapshot isolation with sessions is causal (Cerone et al.:
            // SI ⇒ PSI ⇒ CC). Plain SI and serializability ignore sessions,
            // so they imply neither RA nor TCC as Plume defines them.
            StrongSessionSnapshotIsolation => {
                &[SnapshotIsolation, StrongSessionReadCommitted, Causal]
            }
            StrongSessionSerializable => &[Serializable, StrongSessionSnapshotIsolation],
            StrongReadUncommitted => &[StrongSessionReadUncommitted],
            StrongReadCommitted => &[StrongSessionReadCommitted, StrongReadUncommitted],
            StrongSnapshotIsolation => &[StrongSessionSnapshotIsolation, StrongReadCommitted],
            StrictSerializable => &[
                Serializable,
                StrongSnapshotIsolation,
                StrongSessionSerializable,
            ],
        }
    }

    /// Anomalies this model itself adds over the models it implies.
    fn direct_prohibitions(self) -> Vec<Anomaly> {
        use Anomaly::*;
        use Shape::*;
        use Variant::*;
        match self {
            Model::ReadUncommitted => vec![
                Cycle(G0, Data),
                DuplicateElements,
                CyclicVersions,
                GarbageRead,
            ],
            // A read that splits a transaction's appends saw it half done, as G1b.
            Model::ReadCommitted => vec![G1a, G1b, Cycle(G1c, Data), AppendsOutOfOrder],
            Model::RepeatableRead => vec![Cycle(G2Item, Data), LostUpdate],
            Model::SnapshotIsolation => vec![Internal, Cycle(GNonadjacent, Data), LostUpdate],
            Model::Serializable => vec![Internal, Cycle(G2Item, Data)],
            Model::StrongSessionReadUncommitted => vec![Cycle(G0, Process)],
            Model::StrongSessionReadCommitted => vec![Cycle(G1c, Process)],
            // Every level of Plume's hierarchy reads a transaction's own
            // writes (its INT axiom), hence internal.
            Model::ReadAtomic => vec![Internal, FracturedRead],
            Model::Causal => vec![CausalityViolation],
            Model::StrongSessionSnapshotIsolation => vec![Cycle(GNonadjacent, Process)],
            Model::StrongSessionSerializable => vec![Cycle(G2Item, Process)],
            Model::StrongReadUncommitted => vec![Cycle(G0, Realtime)],
            Model::StrongReadCommitted => vec![Cycle(G1c, Realtime)],
            Model::StrongSnapshotIsolation => vec![Cycle(GNonadjacent, Realtime)],
            Model::StrictSerializable => vec![Cycle(G2Item, Realtime)],
        }
    }

    /// This model and every model it implies.
    pub fn implied(self) -> BTreeSet<Model> {
        let mut out = BTreeSet::new();
        let mut todo = vec![self];
        while let Some(m) = todo.pop() {
            if out.insert(m) {
                todo.extend_from_slice(m.weaker());
            }
        }
        out
    }

    /// Every anomaly that rules this model out.
    pub fn prohibited(self) -> BTreeSet<Anomaly> {
        self.implied()
            .into_iter()
            .flat_map(Model::direct_prohibitions)
            .collect()
    }

    /// Whether checking this model needs the process / realtime orders.
    pub fn needs_orders(self) -> (bool, bool) {
        let prohibited = self.prohibited();
        let needs = |v| {
            prohibited
                .iter()
                .any(|a| matches!(a, Anomaly::Cycle(_, x) if *x == v))
        };
        (needs(Variant::Process), needs(Variant::Realtime))
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<String> for Model {
    type Error = String;
    fn try_from(s: String) -> Result<Model, String> {
        s.parse()
    }
}

impl From<Model> for String {
    fn from(m: Model) -> String {
        m.name().to_string()
    }
}

impl FromStr for Model {
    type Err = String;
    fn from_str(s: &str) -> Result<Model, String> {
        let aliases = [
            ("strong-serializable", Model::StrictSerializable),
            ("conflict-serializable", Model::Serializable),
            ("RA", Model::ReadAtomic),
            ("read-atomicity", Model::ReadAtomic),
            ("TCC", Model::Causal),
            ("transactional-causal", Model::Causal),
            ("transactional-causal-consistency", Model::Causal),
            ("causal-consistency", Model::Causal),
        ];
        MODELS
            .iter()
            .copied()
            .find(|m| m.name() == s || m.adya_name() == Some(s))
            .or_else(|| aliases.iter().find(|(n, _)| *n == s).map(|&(_, m)| m))
            .ok_or_else(|| {
                let names: Vec<_> = MODELS.iter().map(|m| m.name()).collect();
                format!(
                    "unknown consistency model {s:?}: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Where a history stands against the models.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Boundary {
    /// The weakest models the anomalies rule out (Elle's `:not`).
    pub not: Vec<Model>,
    /// The stronger models they also rule out (Elle's `:also-not`).
    pub also_not: Vec<Model>,
    /// Models the history still allows, as far as the checked orders show.
    pub possible: Vec<Model>,
    /// The strongest of `possible`: nothing allowed implies them.
    pub strongest_possible: Vec<Model>,
    /// Models that need an order (process, realtime) that was not checked.
    pub unchecked: Vec<Model>,
}

/// Sorts models into ruled out, possible and unchecked, given the anomalies
/// found and the orders the graph included.
pub fn boundary(found: &BTreeSet<Anomaly>, process: bool, realtime: bool) -> Boundary {
    let all = Anomaly::closure(found.iter().copied());
    let impossible: BTreeSet<Model> = MODELS
        .iter()
        .copied()
        .filter(|m| !m.prohibited().is_disjoint(&all))
        .collect();
    let mut b = Boundary::default();
    for m in MODELS {
        let (p, r) = m.needs_orders();
        if impossible.contains(&m) {
            // The weakest: no other impossible model is implied by it.
            let weakest = !m
                .implied()
                .iter()
                .any(|w| *w != m && impossible.contains(w));
            if weakest {
                b.not.push(m);
            } else {
                b.also_not.push(m);
            }
        } else if (p && !(process || realtime)) || (r && !realtime) {
            // (Realtime covers process: a process edge is a realtime edge.)
            b.unchecked.push(m);
        } else {
            b.possible.push(m);
        }
    }
    b.strongest_possible = b
        .possible
        .iter()
        .copied()
        .filter(|m| !b.possible.iter().any(|s| s != m && s.implied().contains(m)))
        .collect();
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use Anomaly::*;

    fn names(ms: &[Model]) -> Vec<&'static str> {
        ms.iter().map(|m| m.name()).collect()
    }

    #[test]
    fn g2_item_rules_out_repeatable_read_but_not_snapshot_isolation() {
        let found = BTreeSet::from([Cycle(Shape::G2Item, Variant::Data)]);
        let b = boundary(&found, true, true);
        assert_eq!(names(&b.not), ["repeatable-read"]);
        assert!(b.also_not.contains(&Model::StrictSerializable));
        assert!(b.possible.contains(&Model::SnapshotIsolation));
        assert_eq!(names(&b.strongest_possible), ["strong-snapshot-isolation"]);
    }

    #[test]
    fn g_single_rules_out_snapshot_isolation_and_repeatable_read() {
        let found = BTreeSet::from([Cycle(Shape::GSingle, Variant::Data)]);
        let b = boundary(&found, false, false);
        assert_eq!(names(&b.not), ["repeatable-read", "snapshot-isolation"]);
        assert_eq!(names(&b.strongest_possible), ["read-committed"]);
        assert!(b.unchecked.contains(&Model::StrongSessionReadCommitted));
    }

    #[test]
    fn a_realtime_cycle_only_rules_out_strong_models() {
        let found = BTreeSet::from([Cycle(Shape::GSingle, Variant::Process)]);
        let b = boundary(&found, true, true);
        assert_eq!(names(&b.not), ["strong-session-snapshot-isolation"]);
        assert!(b.also_not.contains(&Model::StrongSnapshotIsolation));
        assert!(b.also_not.contains(&Model::StrictSerializable));
        assert!(b.possible.contains(&Model::Serializable));
        let none = boundary(&BTreeSet::new(), true, true);
        assert_eq!(names(&none.strongest_possible), ["strict-serializable"]);
    }

    #[test]
    fn model_names_parse_with_adya_aliases() {
        assert_eq!("PL-SI".parse::<Model>(), Ok(Model::SnapshotIsolation));
        assert_eq!(
            "strong-serializable".parse::<Model>(),
            Ok(Model::StrictSerializable)
        );
        assert!(
            "linearizable"
                .parse::<Model>()
                .unwrap_err()
                .contains("serializable")
        );
        assert_eq!(Model::StrictSerializable.needs_orders(), (true, true));
        assert_eq!(
            Model::StrongSessionSerializable.needs_orders(),
            (true, false)
        );
        assert_eq!(Model::Serializable.needs_orders(), (false, false));
    }

    #[test]
    fn read_atomic_and_causal_sit_between_session_read_committed_and_session_si() {
        let b = boundary(&BTreeSet::from([FracturedRead]), true, false);
        assert_eq!(names(&b.not), ["read-atomic"]);
        for m in [
            Model::Causal,
            Model::StrongSessionSnapshotIsolation,
            Model::StrictSerializable,
        ] {
            assert!(b.also_not.contains(&m), "{m}");
        }
        // Plain SI and serializability ignore sessions: still possible.
        assert!(b.possible.contains(&Model::Serializable));
        assert!(b.possible.contains(&Model::StrongSessionReadCommitted));
        let b = boundary(&BTreeSet::from([CausalityViolation]), true, false);
        assert_eq!(names(&b.not), ["causal"]);
        assert!(b.possible.contains(&Model::ReadAtomic));
        // A long fork (G-nonadjacent) and a lost update are causal.
        let found = BTreeSet::from([Cycle(Shape::GNonadjacent, Variant::Data), LostUpdate]);
        let b = boundary(&found, true, false);
        assert!(b.possible.contains(&Model::Causal));
        assert!(b.also_not.contains(&Model::StrongSessionSnapshotIsolation));
        // G1c-process rules both out; they need the process order.
        let b = boundary(
            &BTreeSet::from([Cycle(Shape::G1c, Variant::Process)]),
            true,
            false,
        );
        assert!(b.also_not.contains(&Model::ReadAtomic));
        assert_eq!(Model::Causal.needs_orders(), (true, false));
        assert_eq!("TCC".parse::<Model>(), Ok(Model::Causal));
        assert_eq!("read-atomic".parse::<Model>(), Ok(Model::ReadAtomic));
    }

    #[test]
    fn dirty_update_and_incompatible_order_are_dirty_reads() {
        let b = boundary(&BTreeSet::from([DirtyUpdate]), false, false);
        assert_eq!(names(&b.not), ["read-committed"]);
        let b = boundary(&BTreeSet::from([LostUpdate]), false, false);
        assert_eq!(names(&b.not), ["repeatable-read", "snapshot-isolation"]);
    }
}
