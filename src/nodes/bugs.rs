//! The named bugs a node can be started with (`--bug NAME`), off by default.
//!
//! Each is a realistic mistake that a matching faultline test catches; the
//! code that misbehaves checks `bugs.has(Bug::...)` right where the correct
//! code would do the right thing, so the bug is easy to find by name.

use super::System;
use std::collections::BTreeSet;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bug {
    StaleRead,
    LeaseReadWallclock,
    NoFsync,
    ForgetVote,
    SkipPromiseCheck,
    CommitWithoutAllVotes,
    ReadUncommitted,
    NoTermination,
    VoteBeforeFsync,
}

/// Every bug: the systems it exists in, its name and what it does.
pub const CATALOG: &[(Bug, &[System], &str, &str)] = &[
    (
        Bug::StaleRead,
        &[System::Raft],
        "stale-read",
        "followers answer reads from their local state instead of redirecting to the leader",
    ),
    (
        Bug::LeaseReadWallclock,
        &[System::Raft],
        "lease-read-wallclock",
        "the leader answers reads under a lease measured with the wall clock, so clock skew lets a deposed leader serve stale reads",
    ),
    (
        Bug::NoFsync,
        &[System::Raft, System::Paxos],
        "no-fsync",
        "acknowledges records written but never fsync'd: a power loss (the lose-unfsynced disk fault) loses them, kill -9 alone does not",
    ),
    (
        Bug::ForgetVote,
        &[System::Raft],
        "forget-vote",
        "votedFor is not persisted, so a restarted node can vote twice in one term (two leaders)",
    ),
    (
        Bug::SkipPromiseCheck,
        &[System::Paxos],
        "skip-promise-check",
        "acceptors accept proposals with a ballot lower than the one they promised",
    ),
    (
        Bug::CommitWithoutAllVotes,
        &[System::Twopc],
        "commit-without-all-votes",
        "the coordinator commits when a participant's vote times out",
    ),
    (
        Bug::ReadUncommitted,
        &[System::Twopc],
        "read-uncommitted",
        "reads ignore locks and see writes of transactions not yet committed",
    ),
    (
        Bug::NoTermination,
        &[System::Threepc],
        "no-termination",
        "a participant whose coordinator is silent decides alone by its timeout (and a restarted one at once) instead of asking the other participants",
    ),
    (
        Bug::VoteBeforeFsync,
        &[System::Twopc],
        "vote-before-fsync",
        "a participant votes yes once its prepare record is written, before it is fsync'd: a power loss (the lose-unfsynced disk fault) forgets a transaction its coordinator committed; kill -9 alone does not",
    ),
];

impl Bug {
    pub fn name(self) -> &'static str {
        CATALOG.iter().find(|e| e.0 == self).map_or("?", |e| e.2)
    }

    /// The bug called `name` in `system`; the error lists the valid names.
    pub fn parse(system: System, name: &str) -> Result<Bug, String> {
        let valid: Vec<&str> = CATALOG
            .iter()
            .filter(|e| e.1.contains(&system))
            .map(|e| e.2)
            .collect();
        CATALOG
            .iter()
            .find(|e| e.2 == name && e.1.contains(&system))
            .map(|e| e.0)
            .ok_or_else(|| {
                format!(
                    "{system} has no bug named {name:?}; it has: {}",
                    valid.join(", ")
                )
            })
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The bugs a node runs with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bugs(BTreeSet<Bug>);

impl Bugs {
    pub fn new(bugs: impl IntoIterator<Item = Bug>) -> Bugs {
        Bugs(bugs.into_iter().collect())
    }

    pub fn has(&self, bug: Bug) -> bool {
        self.0.contains(&bug)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The text of `faultline node --list-bugs`.
pub fn list() -> String {
    let mut out = String::new();
    for (_, systems, name, what) in CATALOG {
        let systems: Vec<String> = systems.iter().map(|s| s.to_string()).collect();
        out.push_str(&format!("{:<26} {:<12} {what}\n", name, systems.join(",")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bug_names_parse_per_system() {
        assert_eq!(Bug::parse(System::Raft, "no-fsync"), Ok(Bug::NoFsync));
        assert_eq!(Bug::parse(System::Paxos, "no-fsync"), Ok(Bug::NoFsync));
        let err = Bug::parse(System::Twopc, "stale-read").unwrap_err();
        assert!(err.contains("commit-without-all-votes"), "{err}");
        assert_eq!(list().lines().count(), CATALOG.len());
    }
}
