//! Who made a local cluster, and whether that process still runs: what tells
//! an orphan (a run's cluster whose controller was killed) from a cluster in
//! use or one kept on purpose.
//!
//! A process is named by its pid *and* its start time (field 22 of
//! /proc/PID/stat, clock ticks after boot) and the boot id, so a pid the
//! kernel gave to another process later, or one from before a reboot, is
//! never taken for the controller. A zombie counts as gone: it runs nothing.
//! What is not here: cleaning an orphan up (`nemesis::leftovers`).

use serde::{Deserialize, Serialize};

/// Why the cluster was made, which decides whether it can be orphaned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// For one `faultline run`, removed at its end: an orphan once the run's
    /// controller is gone without removing it.
    Run,
    /// By `faultline cluster up`: kept until `cluster down --name`.
    Hand,
    /// A run's cluster that the run left running on purpose
    /// (`--leave-running`): kept like a hand-made one.
    LeftRunning,
}

/// The controller process that made a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub purpose: Purpose,
    pub pid: u32,
    /// When the process started: field 22 of /proc/PID/stat (clock ticks after boot).
    pub start_ticks: u64,
    /// /proc/sys/kernel/random/boot_id of the boot it ran in.
    pub boot_id: String,
}

/// Whether a cluster's owner still runs, and so whether it may be cleaned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Made by hand or left running on purpose: cleaned only by name.
    Kept { purpose: Purpose, pid: u32 },
    /// A run's cluster whose controller still runs.
    InUse { pid: u32 },
    /// A run's cluster whose controller is gone (`why` says how we know).
    Orphaned { pid: u32, why: String },
    /// No owner recorded (made by an older faultline): treated as kept.
    Unknown,
}

impl Standing {
    pub fn is_orphaned(&self) -> bool {
        matches!(self, Standing::Orphaned { .. })
    }
}

impl std::fmt::Display for Standing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Standing::Kept {
                purpose: Purpose::LeftRunning,
                pid,
            } => write!(
                f,
                "left running by its run (pid {pid}); kept until removed by name"
            ),
            Standing::Kept { pid, .. } => write!(
                f,
                "made by hand (`cluster up`, pid {pid}); kept until removed by name"
            ),
            Standing::InUse { pid } => {
                write!(f, "in use by its run's controller (pid {pid}, running)")
            }
            Standing::Orphaned { pid, why } => write!(
                f,
                "orphaned: its run's controller (pid {pid}) is gone ({why}); clean with `faultline cluster down`"
            ),
            Standing::Unknown => write!(
                f,
                "owner not recorded (made by an older faultline); kept until removed by name"
            ),
        }
    }
}

impl Owner {
    /// This process, as the owner of a cluster made for `purpose`. `None`
    /// when /proc cannot tell our start time (then nothing is ever taken
    /// for an orphan of ours).
    pub fn this_process(purpose: Purpose) -> Option<Owner> {
        let pid = std::process::id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (_, start_ticks) = parse_stat(&stat)?;
        Some(Owner {
            purpose,
            pid,
            start_ticks,
            boot_id: boot_id()?,
        })
    }

    /// `None` while the owner runs; else why it is gone.
    pub fn gone(&self) -> Option<String> {
        if boot_id().is_some_and(|b| b != self.boot_id) {
            return Some("the machine rebooted since".into());
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) else {
            return Some("no such process".into());
        };
        match parse_stat(&stat) {
            Some((_, ticks)) if ticks != self.start_ticks => {
                Some("its pid now belongs to a later process".into())
            }
            Some(('Z' | 'X', _)) => Some("it was killed and not yet reaped".into()),
            Some(_) => None,
            // Unreadable: say it runs; a cluster is never removed on a doubt.
            None => None,
        }
    }

    /// Where the cluster stands given this owner.
    pub fn standing(&self) -> Standing {
        match self.purpose {
            Purpose::Hand | Purpose::LeftRunning => Standing::Kept {
                purpose: self.purpose,
                pid: self.pid,
            },
            Purpose::Run => match self.gone() {
                None => Standing::InUse { pid: self.pid },
                Some(why) => Standing::Orphaned { pid: self.pid, why },
            },
        }
    }
}

/// The state letter (field 3) and start time (field 22) of a
/// /proc/PID/stat line. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its last `)`.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // After the name, field 3 is at index 0, so field 22 is at index 19.
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(id.trim().to_string()).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let line = "4242 (a b) (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 10000 300";
        assert_eq!(parse_stat(line), Some(('S', 987654)));
        assert_eq!(parse_stat("12 (x) R 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_runs_and_a_reused_pid_does_not_count() {
        let me = Owner::this_process(Purpose::Run).expect("/proc tells our start time");
        assert_eq!(me.gone(), None);
        assert_eq!(me.standing(), Standing::InUse { pid: me.pid });
        let reused = Owner {
            start_ticks: me.start_ticks + 1,
            ..me.clone()
        };
        assert!(reused.standing().is_orphaned(), "{:?}", reused.standing());
        let other_boot = Owner {
            boot_id: "not-this-boot".into(),
            ..me.clone()
        };
        assert!(other_boot.gone().is_some());
        let by_hand = Owner {
            purpose: Purpose::Hand,
            pid: u32::MAX,
            ..me
        };
        assert!(
            !by_hand.standing().is_orphaned(),
            "a hand-made cluster is never an orphan"
        );
    }

    /// A killed controller its parent has not reaped yet is a zombie: gone.
    #[test]
    fn a_killed_unreaped_process_is_gone_and_a_live_one_is_not() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
        let owner = Owner {
            purpose: Purpose::Run,
            pid: child.id(),
            start_ticks: parse_stat(&stat).unwrap().1,
            boot_id: boot_id().unwrap(),
        };
        assert_eq!(owner.gone(), None);
        child.kill().unwrap();
        // Bounded wait for the kernel to make it a zombie.
        for _ in 0..200 {
            if owner.gone().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(owner.gone().is_some(), "a zombie counts as running");
        child.wait().unwrap();
        assert_eq!(owner.gone().as_deref(), Some("no such process"));
    }
}
