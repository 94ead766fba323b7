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
    /// Kill the nodes, then make their disks lose what was not durable
    /// (a power loss); they stay down until [`Action::StopDisk`].
    LoseDisk {
        nodes: Vec<String>,
        mode: DiskMode,
    },
    /// Start the nodes a [`Action::LoseDisk`] took down.
    StopDisk {
        nodes: Vec<String>,
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
            Action::LoseDisk { .. } => "start-disk",
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
            Action::LoseDisk { nodes, mode } => json!({"nodes": nodes, "mode": mode}),
            Action::StopPacket { nodes }
            | Action::StopDisk { nodes }
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Lasting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Span>,
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

    /// Process faults take nodes out; others must not pick them twice.
    pub fn takes_nodes_down(&self) -> bool {
        matches!(
            self,
            FaultSpec::Kill(_) | FaultSpec::Pause(_) | FaultSpec::Disk(_)
        )
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
                let nodes = s.targets.pick(at.available, at.asked, rng)?;
                (
                    Action::LoseDisk {
                        nodes: nodes.clone(),
                        mode: s.mode,
                    },
                    Action::StopDisk { nodes },
                )
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

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
