//! The faults a nemesis file can name, and the [`Action`]s that start and
//! stop each one. Deciding *what* (nodes, offsets, grudges) happens here,
//! from the run's seeded generator; *how* is `net`, *when* is `schedule`.

use super::lasting::Lasting;
use super::partition::{self, Grudge, Shape};
use super::process::Targets;
use crate::net::{Distribution, PacketFault};
use crate::span::Span;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// One thing the nemesis does to the cluster; each becomes a `nemesis` op.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    StartPartition {
        shape: String,
        grudge: Grudge,
    },
    StopPartition,
    StartPacket {
        nodes: Vec<String>,
        fault: PacketFault,
        seed: u64,
    },
    StopPacket {
        nodes: Vec<String>,
    },
    BumpClock {
        offsets_ms: BTreeMap<String, i64>,
    },
    StrobeClock {
        nodes: Vec<String>,
        delta_ms: i64,
        period_ms: u64,
        duration_ms: u64,
    },
    ResetClock {
        nodes: Vec<String>,
    },
    Kill {
        nodes: Vec<String>,
    },
    Start {
        nodes: Vec<String>,
    },
    Pause {
        nodes: Vec<String>,
    },
    Resume {
        nodes: Vec<String>,
    },
    /// A disk fault on the nodes' lazy file systems: a power loss or bit
    /// flips (the nodes are killed first and stay down until
    /// [`Action::StopDisk`]), or a slow or full disk under running nodes.
    StartDisk {
        nodes: Vec<String>,
        fault: DiskFault,
    },
    /// Ends a [`Action::StartDisk`] of `mode`: starts the nodes it took
    /// down, or makes their disks fast or gives them space again.
    StopDisk {
        nodes: Vec<String>,
        mode: DiskMode,
    },
}

impl Action {
    /// The op's `f`.
    pub fn f(&self) -> &'static str {
        match self {
            Action::StartPartition { .. } => "start-partition",
            Action::StopPartition => "stop-partition",
            Action::StartPacket { .. } => "start-packet",
            Action::StopPacket { .. } => "stop-packet",
            Action::BumpClock { .. } => "bump-clock",
            Action::StrobeClock { .. } => "strobe-clock",
            Action::ResetClock { .. } => "reset-clock",
            Action::Kill { .. } => "kill",
            Action::Start { .. } => "start",
            Action::Pause { .. } => "pause",
            Action::Resume { .. } => "resume",
            Action::StartDisk { .. } => "start-disk",
            Action::StopDisk { .. } => "stop-disk",
        }
    }

    /// The invocation's `value`: what is about to be done.
    pub fn value(&self) -> Value {
        match self {
            Action::StartPartition { shape, grudge } => json!({"shape": shape, "grudge": grudge}),
            Action::StopPartition => Value::Null,
            Action::StartPacket { nodes, fault, seed } => {
                json!({"nodes": nodes, "fault": fault, "seed": seed})
            }
            Action::BumpClock { offsets_ms } => json!({"offsets_ms": offsets_ms}),
            Action::StrobeClock {
                nodes,
                delta_ms,
                period_ms,
                duration_ms,
            } => {
                json!({"nodes": nodes, "delta_ms": delta_ms, "period_ms": period_ms, "duration_ms": duration_ms})
            }
            Action::StartDisk { nodes, fault } => {
                let mut value = json!({ "nodes": nodes });
                if let (Value::Object(v), Ok(Value::Object(f))) =
                    (&mut value, serde_json::to_value(fault))
                {
                    v.extend(f);
                }
                value
            }
            Action::StopDisk { nodes, mode } => json!({"nodes": nodes, "mode": mode}),
            Action::StopPacket { nodes }
            | Action::ResetClock { nodes }
            | Action::Kill { nodes }
            | Action::Start { nodes }
            | Action::Pause { nodes }
            | Action::Resume { nodes } => json!({ "nodes": nodes }),
        }
    }
}

/// A partition fault as written in a nemesis file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpec {
    pub shape: Shape,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Lasting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Span>,
}

/// A packet fault as written in a nemesis file (see [`PacketFault`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    try_from = "PacketSpecFields",
    into = "PacketSpecFields"
)]
pub struct PacketSpec {
    pub targets: Targets,
    pub fault: PacketFault,
    pub duration: Option<Lasting>,
    pub interval: Option<Span>,
}

/// The flat YAML form of [`PacketSpec`] (serde cannot flatten and reject
/// unknown keys at once).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacketSpecFields {
    #[serde(default = "all")]
    targets: Targets,
    #[serde(default)]
    delay_ms: u32,
    #[serde(default)]
    jitter_ms: u32,
    #[serde(default)]
    distribution: Distribution,
    #[serde(default)]
    loss_pct: f64,
    #[serde(default)]
    duplicate_pct: f64,
    #[serde(default)]
    reorder_pct: f64,
    #[serde(default)]
    corrupt_pct: f64,
    #[serde(default)]
    rate_kbit: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duration: Option<Lasting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interval: Option<Span>,
}

fn all() -> Targets {
    Targets::All
}

fn one() -> Targets {
    Targets::One
}

impl TryFrom<PacketSpecFields> for PacketSpec {
    type Error = String;
    fn try_from(f: PacketSpecFields) -> Result<Self, String> {
        let fault = PacketFault {
            delay_ms: f.delay_ms,
            jitter_ms: f.jitter_ms,
            distribution: f.distribution,
            loss_pct: f.loss_pct,
            duplicate_pct: f.duplicate_pct,
            reorder_pct: f.reorder_pct,
            corrupt_pct: f.corrupt_pct,
            rate_kbit: f.rate_kbit,
        };
        fault.validate()?;
        Ok(PacketSpec {
            targets: f.targets,
            fault,
            duration: f.duration,
            interval: f.interval,
        })
    }
}

impl From<PacketSpec> for PacketSpecFields {
    fn from(s: PacketSpec) -> Self {
        let f = s.fault;
        PacketSpecFields {
            targets: s.targets,
            delay_ms: f.delay_ms,
            jitter_ms: f.jitter_ms,
            distribution: f.distribution,
            loss_pct: f.loss_pct,
            duplicate_pct: f.duplicate_pct,
            reorder_pct: f.reorder_pct,
            corrupt_pct: f.corrupt_pct,
            rate_kbit: f.rate_kbit,
            duration: s.duration,
            interval: s.interval,
        }
    }
}

/// A clock fault: each target's clock jumps by a random offset of
/// magnitude in [offset_ms/2, offset_ms], forwards or backwards as
/// `direction` says (either, by default); or, with `strobe_period_ms`, flips
/// between its offset and `offset_ms` beyond it every period for the fault's
/// duration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockSpec {
    #[serde(default = "all")]
    pub targets: Targets,
    pub offset_ms: i64,
    #[serde(default, skip_serializing_if = "Direction::is_either")]
    pub direction: Direction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strobe_period_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Lasting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Span>,
}

/// Which way a clock bump goes. Backwards jumps are what break wall-clock
/// leases; forwards jumps what expire them early.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Either,
    Forward,
    Backward,
}

impl Direction {
    fn is_either(&self) -> bool {
        *self == Direction::Either
    }
}

/// A kill (SIGKILL; restarted when the fault ends) or a pause (SIGSTOP;
/// SIGCONT when it ends).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    #[serde(default = "one")]
    pub targets: Targets,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Lasting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Span>,
}

/// A disk fault on nodes whose data directory is on the lazy file system
/// (`faultline lazyfs`, mounted at deploy when a test has disk faults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSpec {
    #[serde(default = "one")]
    pub targets: Targets,
    pub mode: DiskMode,
    /// `slow` only: how much longer each fsync takes
    /// ([`DEFAULT_SLOW_DELAY`] if not written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Span>,
    /// `corrupt` and `corrupt-read` only: how many bits to flip on each target
    /// ([`DEFAULT_CORRUPT_BITS`] if not written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bits: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Lasting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Span>,
}

/// How much longer an fsync takes under `mode: slow` unless `delay` says:
/// a disk an order of magnitude or two slower than an SSD's fsync.
pub const DEFAULT_SLOW_DELAY: Span = Span(std::time::Duration::from_millis(100));
/// The longest `delay` (the helper's limit, `disk::SLOW_MS_MAX`).
pub const SLOW_DELAY_MAX: Span = Span(std::time::Duration::from_secs(10));
/// How many bits `mode: corrupt` flips per target unless `bits` says: one
/// is enough to show whether checksums are read.
pub const DEFAULT_CORRUPT_BITS: u32 = 1;
/// The most bits one corrupt flips (the helper's `disk::CORRUPT_BITS_MAX`).
pub const CORRUPT_BITS_MAX: u32 = 4096;

impl DiskSpec {
    /// A field that does not fit the mode, or is out of range: the field's
    /// name and why.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let only_for = |field: &'static str, mode: DiskMode, what: &str| {
            let (mode, this) = (mode.name(), self.mode.name());
            let why = format!("`{field}` is only for `mode: {mode}` ({what}), not `mode: {this}`");
            Some((field, why))
        };
        if let Some(delay) = self.delay {
            if self.mode != DiskMode::Slow {
                return only_for("delay", DiskMode::Slow, "how much longer each fsync takes");
            }
            if delay.0 < std::time::Duration::from_millis(1) || delay > SLOW_DELAY_MAX {
                let why = format!("`delay` must be from 1ms to {SLOW_DELAY_MAX}, not {delay}");
                return Some(("delay", why));
            }
        }
        if let Some(bits) = self.bits {
            if !matches!(self.mode, DiskMode::Corrupt | DiskMode::CorruptRead) {
                let why = format!(
                    "`bits` is only for `mode: corrupt` or `mode: corrupt-read` (how many bits to flip), not `mode: {}`",
                    self.mode.name()
                );
                return Some(("bits", why));
            }
            if !(1..=CORRUPT_BITS_MAX).contains(&bits) {
                let why = format!("`bits` must be from 1 to {CORRUPT_BITS_MAX}, not {bits}");
                return Some(("bits", why));
            }
        }
        None
    }
}

/// What a disk fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskMode {
    /// Kill the node and drop every write it had not made durable (a
    /// power loss); it is started again when the fault ends.
    LoseUnfsynced,
    /// As `lose-unfsynced`, but a strict prefix of the last un-synced write
    /// to each file survives.
    Torn,
    /// Every fsync (and O_SYNC/O_DSYNC write) takes `delay` longer while
    /// the fault lasts; the node keeps running.
    Slow,
    /// Writes that would allocate fail with ENOSPC while the fault lasts;
    /// the node keeps running.
    Full,
    /// Kill the node, flip `bits` bits of its durable data at rest (at
    /// offsets drawn from the run's seed); it is started again when the
    /// fault ends.
    Corrupt,
    /// Reads of `bits` bits of durable data (drawn from the run's seed)
    /// return them flipped while the fault lasts, the data at rest
    /// unchanged: a disk or controller that reads wrong. The node keeps
    /// running.
    CorruptRead,
}

impl DiskMode {
    /// Whether the fault kills its nodes (and starts them when it ends);
    /// the others change the disk under running nodes.
    pub fn kills(self) -> bool {
        matches!(
            self,
            DiskMode::LoseUnfsynced | DiskMode::Torn | DiskMode::Corrupt
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            DiskMode::LoseUnfsynced => "lose-unfsynced",
            DiskMode::Torn => "torn",
            DiskMode::Slow => "slow",
            DiskMode::Full => "full",
            DiskMode::Corrupt => "corrupt",
            DiskMode::CorruptRead => "corrupt-read",
        }
    }
}

/// What one `start-disk` does, with what was drawn for it; its fields go
/// into the op's value beside `nodes` (`mode`, `delay_ms`, `bits`, `seed`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum DiskFault {
    LoseUnfsynced,
    Torn,
    Slow {
        delay_ms: u64,
    },
    Full,
    /// Each host draws its bits from `seed` plus its place among the nodes.
    Corrupt {
        bits: u32,
        seed: u64,
    },
    /// Drawn as `Corrupt`'s.
    CorruptRead {
        bits: u32,
        seed: u64,
    },
}

impl DiskFault {
    pub fn mode(&self) -> DiskMode {
        match self {
            DiskFault::LoseUnfsynced => DiskMode::LoseUnfsynced,
            DiskFault::Torn => DiskMode::Torn,
            DiskFault::Slow { .. } => DiskMode::Slow,
            DiskFault::Full => DiskMode::Full,
            DiskFault::Corrupt { .. } => DiskMode::Corrupt,
            DiskFault::CorruptRead { .. } => DiskMode::CorruptRead,
        }
    }
}

/// One entry of a nemesis file's `faults:` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultSpec {
    Partition(PartitionSpec),
    Packet(PacketSpec),
    Clock(ClockSpec),
    Kill(ProcessSpec),
    Pause(ProcessSpec),
    Disk(DiskSpec),
}

/// What a fault's start needs to know about the cluster right now.
pub struct Situation<'a> {
    /// Every node of the cluster.
    pub nodes: &'a [String],
    /// Nodes a process fault may still hit (not killed or paused already).
    pub available: &'a [String],
    /// What the nodes said when the fault needs it ([`FaultSpec::asks`]):
    /// who claims leadership, or who just voted in an election under way.
    pub asked: &'a [String],
}

impl FaultSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            FaultSpec::Partition(_) => "partition",
            FaultSpec::Packet(_) => "packet",
            FaultSpec::Clock(_) => "clock",
            FaultSpec::Kill(_) => "kill",
            FaultSpec::Pause(_) => "pause",
            FaultSpec::Disk(_) => "disk",
        }
    }

    /// (duration, interval) as written, if written.
    pub fn timing(&self) -> (Option<Lasting>, Option<Span>) {
        match self {
            FaultSpec::Partition(s) => (s.duration, s.interval),
            FaultSpec::Packet(s) => (s.duration, s.interval),
            FaultSpec::Clock(s) => (s.duration, s.interval),
            FaultSpec::Kill(s) | FaultSpec::Pause(s) => (s.duration, s.interval),
            FaultSpec::Disk(s) => (s.duration, s.interval),
        }
    }

    /// What starting this fault must first ask the nodes (the primaries,
    /// the voters of an election) or wait for (a partition's cut-off
    /// nodes): [`Targets::Primaries`], [`Targets::Voters`], [`Targets::CutOff`].
    pub fn asks(&self) -> Option<Targets> {
        match self {
            FaultSpec::Partition(s) => {
                matches!(s.shape, Shape::Primaries | Shape::Random).then_some(Targets::Primaries)
            }
            FaultSpec::Packet(PacketSpec { targets, .. })
            | FaultSpec::Clock(ClockSpec { targets, .. })
            | FaultSpec::Kill(ProcessSpec { targets, .. })
            | FaultSpec::Pause(ProcessSpec { targets, .. })
            | FaultSpec::Disk(DiskSpec { targets, .. }) => match targets {
                Targets::Primaries | Targets::Voters | Targets::CutOff => Some(*targets),
                Targets::Random => Some(Targets::Primaries),
                _ => None,
            },
        }
    }

    /// Whether the ask of [`FaultSpec::asks`] may fail or find nobody and
    /// the fault still start: random targets draw among the others then.
    pub fn asks_optionally(&self) -> bool {
        match self {
            FaultSpec::Partition(s) => s.shape == Shape::Random,
            _ => self.targets() == Some(Targets::Random),
        }
    }

    fn targets(&self) -> Option<Targets> {
        match self {
            FaultSpec::Partition(_) => None,
            FaultSpec::Packet(PacketSpec { targets, .. })
            | FaultSpec::Clock(ClockSpec { targets, .. })
            | FaultSpec::Kill(ProcessSpec { targets, .. })
            | FaultSpec::Pause(ProcessSpec { targets, .. })
            | FaultSpec::Disk(DiskSpec { targets, .. }) => Some(*targets),
        }
    }

    /// This fault for a system where no node leads: the primaries become one
    /// random node (a partition cuts one node off), as Jepsen offers its
    /// `primaries` targets only for databases that have them.
    pub fn without_primaries(&self) -> FaultSpec {
        let mut fault = self.clone();
        match &mut fault {
            FaultSpec::Partition(s) if s.shape == Shape::Primaries => s.shape = Shape::Isolate,
            FaultSpec::Partition(_) => {}
            FaultSpec::Packet(PacketSpec { targets, .. })
            | FaultSpec::Clock(ClockSpec { targets, .. })
            | FaultSpec::Kill(ProcessSpec { targets, .. })
            | FaultSpec::Pause(ProcessSpec { targets, .. })
            | FaultSpec::Disk(DiskSpec { targets, .. }) => {
                if *targets == Targets::Primaries {
                    *targets = Targets::One;
                }
            }
        }
        fault
    }

    /// Process faults (and disk faults that kill) take nodes out; others
    /// must not pick them twice.
    pub fn takes_nodes_down(&self) -> bool {
        match self {
            FaultSpec::Kill(_) | FaultSpec::Pause(_) => true,
            FaultSpec::Disk(s) => s.mode.kills(),
            _ => false,
        }
    }

    /// What a fault that does not take nodes down is, for the rule that
    /// each appears once: its kind, and a disk fault's mode (a slow and a
    /// full disk are set and healed apart).
    pub fn family(&self) -> String {
        match self {
            FaultSpec::Disk(s) => format!("disk (mode: {})", s.mode.name()),
            _ => self.kind().to_string(),
        }
    }

    /// The action that starts this fault now, and the one that will end it.
    /// `duration_ms` is how long it is meant to last (for the strobe).
    pub fn start(
        &self,
        at: &Situation,
        duration_ms: u64,
        rng: &mut ChaCha8Rng,
    ) -> Result<(Action, Action), String> {
        Ok(match self {
            FaultSpec::Partition(s) => {
                let shape = partition::draw(&s.shape, at.nodes, at.asked, rng);
                let grudge = partition::grudge(&shape, at.nodes, at.asked, rng)?;
                (
                    Action::StartPartition {
                        shape: shape.name().to_string(),
                        grudge,
                    },
                    Action::StopPartition,
                )
            }
            FaultSpec::Packet(s) => {
                let nodes = s.targets.pick(at.nodes, at.asked, rng)?;
                let seed = rng.random();
                (
                    Action::StartPacket {
                        nodes: nodes.clone(),
                        fault: s.fault.clone(),
                        seed,
                    },
                    Action::StopPacket { nodes },
                )
            }
            FaultSpec::Clock(s) => {
                let nodes = s.targets.pick(at.nodes, at.asked, rng)?;
                let stop = Action::ResetClock {
                    nodes: nodes.clone(),
                };
                let start = match s.strobe_period_ms {
                    Some(period_ms) => Action::StrobeClock {
                        nodes,
                        delta_ms: s.offset_ms,
                        period_ms,
                        duration_ms,
                    },
                    None => {
                        let max = s.offset_ms.abs().max(1);
                        let offsets_ms = nodes
                            .into_iter()
                            .map(|n| {
                                let magnitude = rng.random_range((max + 1) / 2..=max);
                                let forward = match s.direction {
                                    Direction::Either => rng.random_bool(0.5),
                                    Direction::Forward => true,
                                    Direction::Backward => false,
                                };
                                (n, if forward { magnitude } else { -magnitude })
                            })
                            .collect();
                        Action::BumpClock { offsets_ms }
                    }
                };
                (start, stop)
            }
            FaultSpec::Kill(s) => {
                let nodes = s.targets.pick(at.available, at.asked, rng)?;
                (
                    Action::Kill {
                        nodes: nodes.clone(),
                    },
                    Action::Start { nodes },
                )
            }
            FaultSpec::Pause(s) => {
                let nodes = s.targets.pick(at.available, at.asked, rng)?;
                (
                    Action::Pause {
                        nodes: nodes.clone(),
                    },
                    Action::Resume { nodes },
                )
            }
            FaultSpec::Disk(s) => {
                // A slow or full disk is under a node whether it runs or not.
                let pool = if s.mode.kills() {
                    at.available
                } else {
                    at.nodes
                };
                let nodes = s.targets.pick(pool, at.asked, rng)?;
                let fault = match s.mode {
                    DiskMode::LoseUnfsynced => DiskFault::LoseUnfsynced,
                    DiskMode::Torn => DiskFault::Torn,
                    DiskMode::Slow => DiskFault::Slow {
                        delay_ms: s.delay.unwrap_or(DEFAULT_SLOW_DELAY).0.as_millis() as u64,
                    },
                    DiskMode::Full => DiskFault::Full,
                    DiskMode::Corrupt => DiskFault::Corrupt {
                        bits: s.bits.unwrap_or(DEFAULT_CORRUPT_BITS),
                        seed: rng.random(),
                    },
                    DiskMode::CorruptRead => DiskFault::CorruptRead {
                        bits: s.bits.unwrap_or(DEFAULT_CORRUPT_BITS),
                        seed: rng.random(),
                    },
                };
                (
                    Action::StartDisk {
                        nodes: nodes.clone(),
                        fault,
                    },
                    Action::StopDisk {
                        nodes,
                        mode: s.mode,
                    },
                )
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::BTreeSet;

    fn nodes() -> Vec<String> {
        (1..=5).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn clock_bumps_have_the_asked_magnitude_and_both_signs() {
        let spec = FaultSpec::Clock(ClockSpec {
            targets: Targets::All,
            offset_ms: 1000,
            direction: Direction::Either,
            strobe_period_ms: None,
            duration: None,
            interval: None,
        });
        let all = nodes();
        let at = Situation {
            nodes: &all,
            available: &all,
            asked: &[],
        };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut signs = std::collections::BTreeSet::new();
        for _ in 0..20 {
            let (start, stop) = spec.start(&at, 1000, &mut rng).unwrap();
            let Action::BumpClock { offsets_ms } = start else {
                panic!("{start:?}")
            };
            assert_eq!(offsets_ms.len(), 5);
            for ms in offsets_ms.values() {
                assert!((500..=1000).contains(&ms.abs()), "{ms}");
                signs.insert(ms.signum());
            }
            assert_eq!(stop, Action::ResetClock { nodes: all.clone() });
        }
        assert_eq!(signs.len(), 2);
        let FaultSpec::Clock(mut backward) = spec else {
            unreachable!()
        };
        backward.direction = Direction::Backward;
        let backward = FaultSpec::Clock(backward);
        for _ in 0..20 {
            let (Action::BumpClock { offsets_ms }, _) =
                backward.start(&at, 1000, &mut rng).unwrap()
            else {
                panic!()
            };
            assert!(
                offsets_ms.values().all(|ms| (-1000..=-500).contains(ms)),
                "{offsets_ms:?}"
            );
        }
    }

    #[test]
    fn process_faults_only_pick_available_nodes_and_undo_on_the_same_ones() {
        let spec = FaultSpec::Kill(ProcessSpec {
            targets: Targets::Majority,
            duration: None,
            interval: None,
        });
        let all = nodes();
        let available: Vec<String> = all[..3].to_vec();
        let at = Situation {
            nodes: &all,
            available: &available,
            asked: &[],
        };
        let (start, stop) = spec
            .start(&at, 0, &mut ChaCha8Rng::seed_from_u64(1))
            .unwrap();
        let Action::Kill { nodes } = &start else {
            panic!()
        };
        assert!(nodes.iter().all(|n| available.contains(n)), "{nodes:?}");
        assert_eq!(
            stop,
            Action::Start {
                nodes: nodes.clone()
            }
        );
    }

    fn disk(mode: DiskMode) -> FaultSpec {
        FaultSpec::Disk(DiskSpec {
            targets: Targets::Minority,
            mode,
            delay: None,
            bits: None,
            duration: None,
            interval: None,
        })
    }

    #[test]
    fn disk_faults_draw_their_nodes_and_say_what_they_do() {
        let all = nodes();
        let available: Vec<String> = all[..2].to_vec();
        let at = Situation {
            nodes: &all,
            available: &available,
            asked: &[],
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        // A slow or full disk is under nodes that are down too; the modes
        // that kill pick among the nodes still up.
        let mut slowed = BTreeSet::new();
        for _ in 0..30 {
            let (start, stop) = disk(DiskMode::Slow).start(&at, 0, &mut rng).unwrap();
            let Action::StartDisk { nodes, fault } = &start else {
                panic!("{start:?}")
            };
            assert_eq!(
                *fault,
                DiskFault::Slow { delay_ms: 100 },
                "the default delay"
            );
            slowed.extend(nodes.iter().cloned());
            assert_eq!(
                stop,
                Action::StopDisk {
                    nodes: nodes.clone(),
                    mode: DiskMode::Slow
                }
            );
            let (Action::StartDisk { nodes, .. }, _) =
                disk(DiskMode::Corrupt).start(&at, 0, &mut rng).unwrap()
            else {
                panic!()
            };
            assert!(nodes.iter().all(|n| available.contains(n)), "{nodes:?}");
        }
        assert!(slowed.iter().any(|n| !available.contains(n)), "{slowed:?}");
        assert!(!disk(DiskMode::Slow).takes_nodes_down());
        assert!(!disk(DiskMode::Full).takes_nodes_down());
        assert!(disk(DiskMode::Corrupt).takes_nodes_down());

        // The bits to flip come from the run's generator: a seed replays them.
        let draw = |seed| {
            let (start, _) = disk(DiskMode::Corrupt)
                .start(&at, 0, &mut ChaCha8Rng::seed_from_u64(seed))
                .unwrap();
            start
        };
        assert_eq!(draw(9), draw(9));
        assert_ne!(draw(9), draw(10));
        let Action::StartDisk { nodes, fault } = draw(9) else {
            panic!()
        };
        let DiskFault::Corrupt { bits: 1, seed } = fault else {
            panic!("{fault:?}")
        };
        assert_eq!(
            draw(9).value(),
            json!({"nodes": nodes, "mode": "corrupt", "bits": 1, "seed": seed})
        );
        let slow = Action::StartDisk {
            nodes: vec!["n1".into()],
            fault: DiskFault::Slow { delay_ms: 250 },
        };
        assert_eq!(
            (slow.f(), slow.value()),
            (
                "start-disk",
                json!({"nodes": ["n1"], "mode": "slow", "delay_ms": 250})
            )
        );
        let stop = Action::StopDisk {
            nodes: vec!["n1".into()],
            mode: DiskMode::Full,
        };
        assert_eq!(
            (stop.f(), stop.value()),
            ("stop-disk", json!({"nodes": ["n1"], "mode": "full"}))
        );
    }

    #[test]
    fn every_action_names_its_op() {
        let a = Action::StartPartition {
            shape: "halves".into(),
            grudge: Grudge::new(),
        };
        assert_eq!(a.f(), "start-partition");
        assert_eq!(a.value(), json!({"shape": "halves", "grudge": {}}));
        assert_eq!(
            Action::Kill {
                nodes: vec!["n1".into()]
            }
            .value(),
            json!({"nodes": ["n1"]})
        );
    }
}
