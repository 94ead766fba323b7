//! Nemesis files (`nemeses/*.yaml`): which faults, and when.
//!
//! Every fault in a file runs on its own timeline: wait about `interval`,
//! start, last `duration`, heal, wait about `interval`, repeat until the run
//! stops. Several faults in one file overlap freely (like Jepsen's combined
//! package); each kind may appear once, so no fault heals another's change.
//! Waits are staggered uniformly in [interval/2, 3·interval/2] by the run's
//! seed, so a seed replays the same schedule. A duration may be a range
//! (`200ms..5s`): each start draws its own length from it (see [`Lasting`]).

use super::fault::FaultSpec;
pub use super::lasting::Lasting;
use crate::history::text::excerpt;
use crate::yaml::{self, KeyPath};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;
use thiserror::Error;

/// The longest duration or interval a nemesis file may ask for.
/// Used when neither the fault nor the file says.
pub use crate::span::Span;

pub const DEFAULT_DURATION: Lasting = Lasting::fixed(Duration::from_secs(10));
pub const DEFAULT_INTERVAL: Span = Span(Duration::from_secs(10));

/// The presets shipped in `nemeses/`, built into the binary so a run needs
/// no checkout.
pub const PRESETS: &[(&str, &str)] = &[
    ("none", include_str!("../../nemeses/none.yaml")),
    (
        "partition-halves",
        include_str!("../../nemeses/partition-halves.yaml"),
    ),
    (
        "partition-ring",
        include_str!("../../nemeses/partition-ring.yaml"),
    ),
    (
        "partition-bridge",
        include_str!("../../nemeses/partition-bridge.yaml"),
    ),
    (
        "isolate-primary",
        include_str!("../../nemeses/isolate-primary.yaml"),
    ),
    (
        "packet-loss",
        include_str!("../../nemeses/packet-loss.yaml"),
    ),
    (
        "packet-delay",
        include_str!("../../nemeses/packet-delay.yaml"),
    ),
    ("clock-skew", include_str!("../../nemeses/clock-skew.yaml")),
    (
        "clock-strobe",
        include_str!("../../nemeses/clock-strobe.yaml"),
    ),
    ("kill", include_str!("../../nemeses/kill.yaml")),
    ("kill-all", include_str!("../../nemeses/kill-all.yaml")),
    ("pause", include_str!("../../nemeses/pause.yaml")),
    ("combined", include_str!("../../nemeses/combined.yaml")),
    (
        "kill-voters",
        include_str!("../../nemeses/kill-voters.yaml"),
    ),
    (
        "lose-unfsynced",
        include_str!("../../nemeses/lose-unfsynced.yaml"),
    ),
    (
        "lose-unfsynced-slow",
        include_str!("../../nemeses/lose-unfsynced-slow.yaml"),
    ),
];

/// A parsed nemesis file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    #[serde(default)]
    pub description: String,
    /// How long each fault lasts, unless the fault says.
    #[serde(default = "default_duration")]
    pub duration: Lasting,
    /// About how long between one fault healing and the next starting.
    #[serde(default = "default_interval")]
    pub interval: Span,
    /// Each entry a one-key map (`- partition: {...}`), not a YAML tag.
    #[serde(default, with = "serde_yaml_ng::with::singleton_map_recursive")]
    pub faults: Vec<FaultSpec>,
}

fn default_duration() -> Lasting {
    DEFAULT_DURATION
}

fn default_interval() -> Span {
    DEFAULT_INTERVAL
}

#[derive(Debug, Error)]
pub enum ScheduleError {
    #[error("{origin}:{line}:{column}: {message}")]
    At {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// About the whole file: it cannot be read, or is too big.
    #[error("{origin}: {message}")]
    Whole { origin: String, message: String },
    #[error("no nemesis file or preset named \"{}\"; presets: {}", excerpt(name), PRESETS.iter().map(|p| p.0).collect::<Vec<_>>().join(", "))]
    Unknown { name: String },
}

impl Schedule {
    /// Whether it has disk faults: the nodes' data directories are then on
    /// the lazy file system (FUSE), which the hosts must be able to mount.
    pub fn has_disk_faults(&self) -> bool {
        self.faults.iter().any(|f| matches!(f, FaultSpec::Disk(_)))
    }

    /// Parses YAML text; `origin` names it in errors (a path or `preset NAME`).
    pub fn from_yaml(text: &str, origin: &str) -> Result<Schedule, ScheduleError> {
        let schedule: Schedule = yaml::from_str(text).map_err(|e| match e.position {
            Some((line, column)) => ScheduleError::At {
                origin: origin.to_string(),
                line,
                column,
                message: e.message,
            },
            None => ScheduleError::Whole {
                origin: origin.to_string(),
                message: e.message,
            },
        })?;
        schedule.validate().map_err(|(path, message)| {
            let (at, (line, column)) = yaml::position_near(text, &path);
            ScheduleError::At {
                origin: origin.to_string(),
                line,
                column,
                message: at.message(&message),
            }
        })?;
        Ok(schedule)
    }

    /// A path to a nemesis file, or the name of a preset.
    pub fn resolve(name_or_path: &str) -> Result<Schedule, ScheduleError> {
        let path = Path::new(name_or_path);
        if path.is_file() {
            let text = yaml::read_file(path).map_err(|e| match e.position {
                Some((line, column)) => ScheduleError::At {
                    origin: name_or_path.to_string(),
                    line,
                    column,
                    message: e.message,
                },
                None => ScheduleError::Whole {
                    origin: name_or_path.to_string(),
                    message: e.message,
                },
            })?;
            return Schedule::from_yaml(&text, name_or_path);
        }
        let (name, text) = PRESETS
            .iter()
            .find(|(n, _)| *n == name_or_path)
            .ok_or_else(|| ScheduleError::Unknown {
                name: name_or_path.to_string(),
            })?;
        Schedule::from_yaml(text, &format!("nemeses/{name}.yaml"))
    }

    /// Checks what a single field cannot: each network or clock fault kind
    /// (and a slow or a full disk) at most once, no duration or interval of
    /// zero, and a disk fault's `delay` and `bits` only with the mode that
    /// takes them. Kills, pauses and the disk faults that kill may repeat
    /// (say, of the primaries and of the voters): each restarts or resumes
    /// only the nodes it took, and no node is taken twice. The error says
    /// where in the schedule: `faults[2]`, `duration`.
    pub fn validate(&self) -> Result<(), (KeyPath, String)> {
        let zero = "must be more than 0s";
        let root = KeyPath::root();
        if let Some(why) = self.duration.problem() {
            return Err((root.key("duration"), format!("`duration` {why}")));
        }
        if self.interval.0.is_zero() {
            return Err((root.key("interval"), format!("`interval` {zero}")));
        }
        let mut seen: Vec<String> = Vec::new();
        for (i, fault) in self.faults.iter().enumerate() {
            let at = root.key("faults").index(i);
            let (duration, interval) = fault.timing();
            if let Some(why) = duration.and_then(|d| d.problem()) {
                return Err((
                    at.key(fault.kind()).key("duration"),
                    format!("`duration` {why}"),
                ));
            }
            if interval.is_some_and(|s| s.0.is_zero()) {
                return Err((
                    at.key(fault.kind()).key("interval"),
                    format!("`interval` {zero}"),
                ));
            }
            if let FaultSpec::Disk(disk) = fault
                && let Some((field, why)) = disk.problem()
            {
                return Err((at.key("disk").key(field), why));
            }
            if fault.takes_nodes_down() {
                continue;
            }
            let family = fault.family();
            if seen.contains(&family) {
                return Err((
                    at,
                    format!(
                        "the fault `{family}` appears twice; each kind may appear once (two would heal each other's changes)"
                    ),
                ));
            }
            seen.push(family);
        }
        let partitions = self.faults.iter().any(|f| f.kind() == "partition");
        if let Some(i) = self
            .faults
            .iter()
            .position(|f| f.asks() == Some(super::process::Targets::CutOff))
            && !partitions
        {
            let fault = &self.faults[i];
            return Err((
                root.key("faults").index(i).key(fault.kind()).key("targets"),
                "`targets: cut-off` needs a `partition` fault in the same file: it strikes the nodes each partition cuts off".to_string(),
            ));
        }
        Ok(())
    }

    /// Checks the file against the cluster it will run on (node names in an
    /// explicit grudge).
    pub fn check_nodes(&self, nodes: &[String]) -> Result<(), String> {
        for fault in &self.faults {
            if let FaultSpec::Partition(p) = fault
                && let super::partition::Shape::Grudge(g) = &p.shape
            {
                for name in g.keys().chain(g.values().flatten()) {
                    if !nodes.contains(name) {
                        return Err(format!(
                            "the grudge names {name:?}, which is not a node ({})",
                            nodes.join(", ")
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// How long `fault` lasts (each start draws from it) and waits between runs.
    pub fn timing(&self, fault: &FaultSpec) -> (Lasting, Duration) {
        let (d, i) = fault.timing();
        (d.unwrap_or(self.duration), i.unwrap_or(self.interval).0)
    }
}

/// A wait of about `interval`: uniform in [interval/2, 3·interval/2].
pub fn stagger(interval: Duration, rng: &mut ChaCha8Rng) -> Duration {
    let ms = interval.as_millis() as u64;
    Duration::from_millis(rng.random_range(ms / 2..=ms + ms / 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::fault::{ClockSpec, PartitionSpec};
    use crate::nemesis::partition::Shape;
    use crate::nemesis::process::Targets;
    use rand::SeedableRng;

    #[test]
    fn every_preset_parses() {
        for (name, _) in PRESETS {
            let s = Schedule::resolve(name).unwrap_or_else(|e| panic!("{e}"));
            assert!(!s.description.is_empty(), "{name} has no description");
            for fault in &s.faults {
                let (lasting, _) = s.timing(fault);
                assert!(lasting.min <= lasting.max, "{name}: {lasting}");
            }
            assert_eq!(s.faults.is_empty(), *name == "none", "{name}");
            let file = format!("{}/nemeses/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
            assert!(Path::new(&file).is_file(), "{file} must be in the repo");
        }
        // combined draws its targets, shapes and lengths at every start, but
        // its clock jumps strike the nodes each partition has just cut off.
        let combined = Schedule::resolve("combined").unwrap();
        assert!(combined.faults.len() >= 4);
        for fault in &combined.faults {
            match fault {
                FaultSpec::Clock(c) => assert_eq!(c.targets, Targets::CutOff, "{fault:?}"),
                _ => assert!(fault.asks_optionally(), "{fault:?}"),
            }
            let (lasting, _) = combined.timing(fault);
            assert!(lasting.min < lasting.max, "{fault:?}");
        }
    }

    #[test]
    fn a_small_file_parses_to_what_it_says() {
        let text = "description: test\nduration: 2s\ninterval: 500ms\nfaults:\n  - partition:\n      shape: majorities-ring\n      duration: 1m\n  - clock:\n      offset_ms: 250\n      targets: minority\n";
        let s = Schedule::from_yaml(text, "t.yaml").unwrap();
        assert_eq!(
            s.faults[0],
            FaultSpec::Partition(PartitionSpec {
                shape: Shape::MajoritiesRing,
                duration: Some(Lasting::fixed(Duration::from_secs(60))),
                interval: None
            })
        );
        assert_eq!(
            s.faults[1],
            FaultSpec::Clock(ClockSpec {
                targets: Targets::Minority,
                offset_ms: 250,
                direction: Default::default(),
                strobe_period_ms: None,
                duration: None,
                interval: None
            })
        );
        assert_eq!(
            s.timing(&s.faults[0]),
            (
                Lasting::fixed(Duration::from_secs(60)),
                Duration::from_millis(500)
            )
        );
        assert_eq!(
            s.timing(&s.faults[1]),
            (
                Lasting::fixed(Duration::from_secs(2)),
                Duration::from_millis(500)
            )
        );
    }

    #[test]
    fn an_explicit_grudge_is_read_from_yaml() {
        let text = "description: g\nfaults:\n  - partition:\n      shape:\n        grudge:\n          n1: [n2, n3]\n";
        let s = Schedule::from_yaml(text, "g.yaml").unwrap();
        let FaultSpec::Partition(p) = &s.faults[0] else {
            panic!()
        };
        let Shape::Grudge(g) = &p.shape else {
            panic!("{:?}", p.shape)
        };
        assert_eq!(g["n1"], vec!["n2".to_string(), "n3".to_string()]);
        assert!(
            s.check_nodes(&["n1".into(), "n2".into(), "n3".into()])
                .is_ok()
        );
        assert!(
            s.check_nodes(&["n1".into(), "n2".into()])
                .unwrap_err()
                .contains("n3")
        );
    }

    fn error_of(text: &str) -> String {
        Schedule::from_yaml(text, "bad.yaml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_point_at_file_line_and_column() {
        let e = error_of("description: x\nfaults:\n  - partition:\n      shap: halves\n");
        assert!(e.starts_with("bad.yaml:4:"), "{e}");
        assert!(e.contains("unknown field `shap`"), "{e}");

        let e = error_of("description: x\nduration: 10 seconds\n");
        assert!(e.starts_with("bad.yaml:2:"), "{e}");
        assert!(e.contains("unknown unit"), "{e}");

        let e = error_of("description: x\nfaults:\n  - packet:\n      loss_pct: 140\n");
        assert!(e.starts_with("bad.yaml:"), "{e}");
        assert!(e.contains("loss_pct must be between 0 and 100"), "{e}");

        let e = error_of("description: x\nfaults:\n  - fire: {}\n");
        assert!(e.starts_with("bad.yaml:3:"), "{e}");

        let e = error_of("description: x\nbogus: 1\n");
        assert!(e.starts_with("bad.yaml:2:1: unknown field `bogus`"), "{e}");
    }

    #[test]
    fn network_and_clock_faults_appear_once_and_process_faults_may_repeat() {
        let e = error_of(
            "faults:\n  - packet: {delay_ms: 5}\n  - clock: {offset_ms: 100}\n  - packet: {loss_pct: 5}\n",
        );
        assert!(
            e.starts_with("bad.yaml:4:5: faults[2]: the fault `packet` appears twice"),
            "{e}"
        );
        let e = error_of(
            "faults:\n  - kill: {targets: all}\n  - clock: {offset_ms: 5, duration: 0s}\n",
        );
        assert!(
            e.starts_with(
                "bad.yaml:3:37: faults[1].clock.duration: `duration` must be more than 0s"
            ),
            "{e}"
        );
        let text = "faults:\n  - kill: {targets: primaries}\n  - kill: {targets: voters}\n";
        let s = Schedule::from_yaml(text, "ok.yaml").unwrap();
        assert_eq!(s.faults.len(), 2);
    }

    #[test]
    fn disk_faults_take_delay_and_bits_only_with_their_modes() {
        use crate::nemesis::fault::{DiskMode, DiskSpec};
        let text = "faults:\n  - disk: {mode: slow, delay: 250ms, targets: all}\n  - disk: {mode: full}\n  - disk: {mode: corrupt, bits: 3}\n  - disk: {mode: corrupt}\n  - disk: {mode: corrupt-read, bits: 5, duration: 2s}\n";
        let s = Schedule::from_yaml(text, "ok.yaml").unwrap();
        assert_eq!(
            s.faults[0],
            FaultSpec::Disk(DiskSpec {
                targets: Targets::All,
                mode: DiskMode::Slow,
                delay: Some(Span(Duration::from_millis(250))),
                bits: None,
                duration: None,
                interval: None,
            })
        );
        let FaultSpec::Disk(corrupt) = &s.faults[2] else {
            panic!()
        };
        assert_eq!((corrupt.mode, corrupt.bits), (DiskMode::Corrupt, Some(3)));
        let FaultSpec::Disk(read) = &s.faults[4] else {
            panic!()
        };
        assert_eq!((read.mode, read.bits), (DiskMode::CorruptRead, Some(5)));
        assert!(!s.faults[4].takes_nodes_down(), "the node reads on");
        let again = serde_yaml_ng::to_string(&s).unwrap();
        assert_eq!(Schedule::from_yaml(&again, "again").unwrap(), s, "{again}");

        let e = error_of("faults:\n  - disk:\n      mode: torn\n      delay: 200ms\n");
        assert!(
            e.starts_with("bad.yaml:4:14: faults[0].disk.delay: `delay` is only for `mode: slow`"),
            "{e}"
        );
        let e = error_of("faults:\n  - disk: {mode: slow, bits: 2}\n");
        assert!(e.starts_with("bad.yaml:2:"), "{e}");
        assert!(
            e.contains("`bits` is only for `mode: corrupt` or `mode: corrupt-read`"),
            "{e}"
        );
        let e = error_of("faults:\n  - disk: {mode: corrupt-read, bits: 5000}\n");
        assert!(e.contains("`bits` must be from 1 to 4096, not 5000"), "{e}");
        let e = error_of("faults:\n  - disk: {mode: corrupt-read, delay: 5ms}\n");
        assert!(e.contains("`delay` is only for `mode: slow`"), "{e}");
        let e = error_of("faults:\n  - disk: {mode: slow, delay: 0s}\n");
        assert!(e.contains("`delay` must be from 1ms to 10s, not 0s"), "{e}");
        let e = error_of("faults:\n  - disk: {mode: slow, delay: 1m}\n");
        assert!(e.contains("not 1m"), "{e}");
        let e = error_of("faults:\n  - disk: {mode: corrupt, bits: 0}\n");
        assert!(e.contains("`bits` must be from 1 to 4096, not 0"), "{e}");
        let e = error_of("faults:\n  - disk: {mode: melt}\n");
        assert!(e.starts_with("bad.yaml:2:"), "{e}");
        assert!(e.contains("slow") && e.contains("corrupt"), "{e}");
        // A slow disk and a full one are each set and healed once.
        let e = error_of(
            "faults:\n  - disk: {mode: slow}\n  - disk: {mode: full}\n  - disk: {mode: slow, delay: 5ms}\n",
        );
        assert!(
            e.starts_with("bad.yaml:4:5: faults[2]: the fault `disk (mode: slow)` appears twice"),
            "{e}"
        );
    }

    #[test]
    fn cut_off_targets_need_a_partition_in_the_file() {
        let e = error_of("faults:\n  - clock: {targets: cut-off, offset_ms: 100}\n");
        assert!(e.starts_with("bad.yaml:2:"), "{e}");
        assert!(e.contains("needs a `partition` fault"), "{e}");
        let text = "faults:\n  - clock: {targets: cut-off, offset_ms: 100}\n  - partition: {shape: halves}\n";
        assert!(Schedule::from_yaml(text, "ok.yaml").is_ok());
    }

    #[test]
    fn unknown_names_list_the_presets() {
        let e = Schedule::resolve("no-such-nemesis")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("partition-ring") && e.contains("combined"),
            "{e}"
        );
    }

    #[test]
    fn a_schedule_survives_a_yaml_round_trip() {
        for (name, _) in PRESETS {
            let s = Schedule::resolve(name).unwrap();
            let text = serde_yaml_ng::to_string(&s).unwrap();
            assert_eq!(
                Schedule::from_yaml(&text, name).unwrap(),
                s,
                "{name}:\n{text}"
            );
        }
    }

    #[test]
    fn a_duration_range_draws_every_scale_within_its_bounds() {
        let text = "description: r\nduration: 100ms..10s\nfaults:\n  - pause: {targets: one}\n  - kill: {duration: 3s}\n";
        let s = Schedule::from_yaml(text, "r.yaml").unwrap();
        let range: Lasting = "100ms..10s".parse().unwrap();
        assert_eq!(s.timing(&s.faults[0]).0, range);
        assert_eq!(
            s.timing(&s.faults[1]).0,
            Lasting::fixed(Duration::from_secs(3))
        );
        assert_eq!(range.to_string(), "100ms..10s");
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let draws: Vec<Duration> = (0..400).map(|_| range.draw(&mut rng)).collect();
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(10));
        assert!(draws.iter().all(|d| (min..=max).contains(d)), "{draws:?}");
        // Log-uniform: each decade holds about a half of the draws.
        let second = Duration::from_secs(1);
        let short = draws.iter().filter(|d| **d < second).count();
        assert!((140..=260).contains(&short), "{short} of 400 under 1 s");
        let mut again = ChaCha8Rng::seed_from_u64(7);
        assert_eq!(
            range.draw(&mut again),
            draws[0],
            "the seed replays the draws"
        );
        let fixed = Lasting::fixed(Duration::from_secs(3));
        assert_eq!(fixed.draw(&mut rng), Duration::from_secs(3));

        let e = error_of("faults:\n  - pause: {duration: 5s..1s}\n");
        assert!(
            e.contains("faults[0].pause.duration: `duration` 5s..1s is empty"),
            "{e}"
        );
        let e = error_of("duration: 0s..1s\nfaults: []\n");
        assert!(e.contains("`duration` must be more than 0s"), "{e}");
        let e = error_of("faults:\n  - pause: {duration: 1s..soon}\n");
        assert!(e.starts_with("bad.yaml:2:"), "{e}");
    }

    #[test]
    fn stagger_stays_within_half_an_interval() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let i = Duration::from_secs(10);
        let waits: Vec<Duration> = (0..200).map(|_| stagger(i, &mut rng)).collect();
        assert!(waits.iter().all(|w| *w >= i / 2 && *w <= i * 3 / 2));
        assert!(waits.iter().any(|w| *w < i) && waits.iter().any(|w| *w > i));
    }
}
