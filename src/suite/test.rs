//! One test (db + bugs + workload + nemesis + hosts + timing + seed) and
//! suites of them.
//!
//! [`TestSpec`] is what a person writes: in a YAML file, in a suite, or as
//! flags; every field is optional. [`Test`] is the resolved test: presets
//! inlined, defaults filled, the seed chosen. It is what runs, what is stored
//! as test.yaml, and what `--replay` reads back.

use super::workload::{PRESETS as WORKLOAD_PRESETS, WorkloadSpec, kind_name};
use super::{SuiteError, from_yaml};
use crate::checker::Verdict;
use crate::nemesis::schedule::{Schedule, ScheduleError};
use crate::span::Span;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Db {
    Raft,
    Paxos,
    Twopc,
}

impl Db {
    pub fn name(self) -> &'static str {
        match self {
            Db::Raft => "raft",
            Db::Paxos => "paxos",
            Db::Twopc => "twopc",
        }
    }
}

/// Where the nodes run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hosts {
    /// A network-namespace cluster made for the run and removed after.
    Local,
    /// Docker containers made for the run and removed after.
    Docker,
    /// An SSH lab described by a hosts.yaml inventory.
    Inventory(PathBuf),
}

/// A workload given by preset name or inline.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum WorkloadRef {
    Name(String),
    Inline(Box<WorkloadSpec>),
}

/// By hand rather than `untagged`, so that a mistake inside an inline
/// workload reports the field, not "did not match any variant".
impl<'de> Deserialize<'de> for WorkloadRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_yaml_ng::Value::deserialize(d)? {
            serde_yaml_ng::Value::String(name) => Ok(WorkloadRef::Name(name)),
            v => serde_yaml_ng::from_value(v)
                .map(|w| WorkloadRef::Inline(Box::new(w)))
                .map_err(serde::de::Error::custom),
        }
    }
}

/// A nemesis given by preset name or path, or inline (its schema is
/// `nemesis::Schedule`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum NemesisRef {
    Name(String),
    Inline(Box<Schedule>),
}

impl<'de> Deserialize<'de> for NemesisRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_yaml_ng::Value::deserialize(d)? {
            serde_yaml_ng::Value::String(name) => Ok(NemesisRef::Name(name)),
            v => serde_yaml_ng::from_value(v)
                .map(|s| NemesisRef::Inline(Box::new(s)))
                .map_err(serde::de::Error::custom),
        }
    }
}

/// A test as written; unset fields take defaults or the suite's `defaults`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<Db>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bugs: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nemesis: Option<NemesisRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Hosts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit: Option<Span>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Operations per second over all workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// How long the healed cluster gets to recover before the final reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Span>,
    /// Nodes may exit on their own (not by the nemesis) without making the
    /// run's verdict unknown: for a system that is meant to stop, say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_node_exits: Option<bool>,
    /// The verdict this test should reach (a suite counts a mismatch as a failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Verdict>,
}

impl TestSpec {
    /// `self` with every field that `over` sets taken from `over`.
    pub fn overridden_by(&self, over: &TestSpec) -> TestSpec {
        fn pick<T: Clone>(base: &Option<T>, over: &Option<T>) -> Option<T> {
            over.clone().or_else(|| base.clone())
        }
        TestSpec {
            name: pick(&self.name, &over.name),
            db: pick(&self.db, &over.db),
            bugs: pick(&self.bugs, &over.bugs),
            workload: pick(&self.workload, &over.workload),
            nemesis: pick(&self.nemesis, &over.nemesis),
            hosts: pick(&self.hosts, &over.hosts),
            nodes: pick(&self.nodes, &over.nodes),
            time_limit: pick(&self.time_limit, &over.time_limit),
            concurrency: pick(&self.concurrency, &over.concurrency),
            rate: pick(&self.rate, &over.rate),
            seed: pick(&self.seed, &over.seed),
            recovery: pick(&self.recovery, &over.recovery),
            allow_node_exits: pick(&self.allow_node_exits, &over.allow_node_exits),
            expect: pick(&self.expect, &over.expect),
        }
    }
}

/// A resolved test: everything a run needs, nothing left to defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Test {
    pub name: String,
    pub db: Db,
    pub bugs: Vec<String>,
    pub workload_name: String,
    pub workload: WorkloadSpec,
    pub nemesis_name: String,
    pub nemesis: Schedule,
    pub hosts: Hosts,
    pub nodes: u32,
    pub time_limit: Span,
    pub concurrency: u32,
    pub rate: f64,
    pub seed: u64,
    pub recovery: Span,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_node_exits: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Verdict>,
}

/// Bounds that keep a mistyped number from starting something absurd.
const NODES_MAX: u32 = 64;
const CONCURRENCY_MAX: u32 = 10_000;

impl Test {
    pub fn time_limit(&self) -> Duration {
        self.time_limit.0
    }

    /// Reads a stored test.yaml (for `--replay`).
    pub fn load(path: &Path) -> Result<Test, SuiteError> {
        let text = read(path)?;
        let test: Test = from_yaml(path, &text)?;
        test.workload
            .validate()
            .map_err(|(knob, msg)| SuiteError::at(path, &text, knob, msg))?;
        Ok(test)
    }

    pub fn to_yaml(&self) -> String {
        // Serializing plain data to YAML cannot fail.
        serde_yaml_ng::to_string(self).unwrap_or_default()
    }
}

fn read(path: &Path) -> Result<String, SuiteError> {
    std::fs::read_to_string(path)
        .map_err(|e| SuiteError::new(path, None, format!("cannot read: {e}")))
}

/// Where a spec came from, for errors: the file and its text.
pub struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    /// Flags on the command line have no file.
    pub fn command_line() -> Source<'static> {
        Source {
            path: Path::new("<command line>"),
            text: "",
        }
    }

    fn error(&self, needle: &str, message: impl Into<String>) -> SuiteError {
        SuiteError::at(self.path, self.text, needle, message)
    }
}

/// Resolves `spec` into a [`Test`]: presets looked up (built in, or given as
/// a path), defaults filled, a seed drawn from the OS when none is given.
pub fn resolve(spec: &TestSpec, source: &Source) -> Result<Test, SuiteError> {
    let db = spec
        .db
        .ok_or_else(|| source.error("db", "no `db` given: expected raft, paxos or twopc"))?;
    let (workload_name, workload) = match spec
        .workload
        .clone()
        .unwrap_or(WorkloadRef::Name("register".into()))
    {
        WorkloadRef::Name(name) => (short_name(&name), load_workload(&name, source)?),
        WorkloadRef::Inline(w) => (kind_name(w.kind).to_string(), *w),
    };
    workload
        .validate()
        .map_err(|(knob, msg)| source.error(knob, format!("workload {workload_name}: {msg}")))?;
    let (nemesis_name, nemesis) = match spec
        .nemesis
        .clone()
        .unwrap_or(NemesisRef::Name("none".into()))
    {
        NemesisRef::Name(name) => (short_name(&name), load_nemesis(&name, source)?),
        NemesisRef::Inline(s) => {
            // Named after its faults, for the test's name: `partition+kill`.
            let kinds: Vec<&str> = s.faults.iter().map(|f| f.kind()).collect();
            let name = if kinds.is_empty() {
                "none".to_string()
            } else {
                kinds.join("+")
            };
            (name, *s)
        }
    };
    let nodes = spec.nodes.unwrap_or(5);
    if !(1..=NODES_MAX).contains(&nodes) {
        return Err(source.error(
            "nodes",
            format!("`nodes: {nodes}` must be between 1 and {NODES_MAX}"),
        ));
    }
    let concurrency = spec.concurrency.unwrap_or(2 * nodes);
    if !(1..=CONCURRENCY_MAX).contains(&concurrency) {
        return Err(source.error(
            "concurrency",
            format!("`concurrency: {concurrency}` must be between 1 and {CONCURRENCY_MAX}"),
        ));
    }
    let rate = spec.rate.unwrap_or(200.0);
    if !(rate.is_finite() && rate > 0.0) {
        return Err(source.error(
            "rate",
            format!("`rate: {rate}` must be a positive number of operations per second"),
        ));
    }
    let time_limit = spec.time_limit.unwrap_or(Span(Duration::from_secs(30)));
    if time_limit.0.is_zero() {
        return Err(source.error("time_limit", "`time_limit` must be more than 0s"));
    }
    let bugs = spec.bugs.clone().unwrap_or_default();
    let name = spec.name.clone().unwrap_or_else(|| {
        let mut name = format!("{}-{}-{}", db.name(), workload_name, nemesis_name);
        for bug in &bugs {
            name.push('-');
            name.push_str(bug);
        }
        name
    });
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(source.error("name", format!("test name {name:?} must be a plain folder name (no slashes, not starting with a dot)")));
    }
    Ok(Test {
        name,
        db,
        bugs,
        workload_name,
        workload: workload.resolved(),
        nemesis_name,
        nemesis,
        hosts: spec.hosts.clone().unwrap_or(Hosts::Local),
        nodes,
        time_limit,
        concurrency,
        rate,
        seed: spec.seed.unwrap_or_else(rand::random),
        recovery: spec.recovery.unwrap_or(Span(Duration::from_secs(5))),
        allow_node_exits: spec.allow_node_exits.unwrap_or(false),
        expect: spec.expect,
    })
}

/// A preset's name, or a file's name without folder and extension: it goes
/// into the test's name, which is a folder name.
fn short_name(name: &str) -> String {
    let path = Path::new(name);
    path.file_stem()
        .map_or_else(|| name.to_string(), |s| s.to_string_lossy().into_owned())
}

/// A preset name (`register`) or a path to a YAML file (`my/workload.yaml`).
fn load_workload(name: &str, source: &Source) -> Result<WorkloadSpec, SuiteError> {
    if name.ends_with(".yaml") || name.contains('/') {
        let path = Path::new(name);
        let text = read(path)?;
        let w: WorkloadSpec = from_yaml(path, &text)?;
        w.validate()
            .map_err(|(knob, msg)| SuiteError::at(path, &text, knob, msg))?;
        return Ok(w);
    }
    let Some((_, text)) = WORKLOAD_PRESETS.iter().find(|(n, _)| *n == name) else {
        let known: Vec<&str> = WORKLOAD_PRESETS.iter().map(|(n, _)| *n).collect();
        return Err(source.error(
            name,
            format!(
                "unknown workload {name:?}: expected one of {} or a path to a .yaml file",
                known.join(", ")
            ),
        ));
    };
    from_yaml(&PathBuf::from(format!("workloads/{name}.yaml")), text)
}

/// A preset name (`partition-ring`) or a path to a nemesis file.
fn load_nemesis(name: &str, source: &Source) -> Result<Schedule, SuiteError> {
    Schedule::resolve(name).map_err(|e| match e {
        ScheduleError::At {
            origin,
            line,
            column,
            message,
        } => SuiteError::new(Path::new(&origin), Some((line, column)), message),
        ScheduleError::Unknown { .. } => source.error(name, e.to_string()),
        other => SuiteError::new(source.path, locate_in(source, name), other.to_string()),
    })
}

fn locate_in(source: &Source, needle: &str) -> Option<(usize, usize)> {
    SuiteError::at(source.path, source.text, needle, "").position
}

/// A suite: tests listed one by one and/or a matrix of them, sharing defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub defaults: TestSpec,
    #[serde(default)]
    pub tests: Vec<TestSpec>,
    #[serde(default)]
    pub matrix: Option<Matrix>,
}

/// Every combination of these, each a test.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    pub db: Vec<Db>,
    pub workload: Vec<String>,
    #[serde(default)]
    pub nemesis: Vec<String>,
    /// Bug sets; `[[]]` (the default) means no bugs.
    #[serde(default)]
    pub bugs: Vec<Vec<String>>,
    /// Seeds to run each combination with; none means one random seed.
    #[serde(default)]
    pub seeds: Vec<u64>,
}

/// The most tests a suite may expand to: a guard against a runaway matrix.
const SUITE_TESTS_MAX: usize = 10_000;

impl Suite {
    pub fn load(path: &Path) -> Result<(Suite, String), SuiteError> {
        let text = read(path)?;
        let suite: Suite = from_yaml(path, &text)?;
        Ok((suite, text))
    }

    /// The suite's tests in a fixed order (listed ones, then the matrix), each
    /// with the suite's defaults under it.
    pub fn expand(&self, path: &Path) -> Result<Vec<TestSpec>, SuiteError> {
        let mut specs: Vec<TestSpec> = self
            .tests
            .iter()
            .map(|t| self.defaults.overridden_by(t))
            .collect();
        if let Some(m) = &self.matrix {
            let nemeses = if m.nemesis.is_empty() {
                vec!["none".to_string()]
            } else {
                m.nemesis.clone()
            };
            let bug_sets = if m.bugs.is_empty() {
                vec![vec![]]
            } else {
                m.bugs.clone()
            };
            let seeds: Vec<Option<u64>> = if m.seeds.is_empty() {
                vec![None]
            } else {
                m.seeds.iter().copied().map(Some).collect()
            };
            let total =
                m.db.len() * m.workload.len() * nemeses.len() * bug_sets.len() * seeds.len();
            if specs.len() + total > SUITE_TESTS_MAX {
                return Err(SuiteError::new(
                    path,
                    None,
                    format!(
                        "the suite expands to {} tests, more than {SUITE_TESTS_MAX}",
                        specs.len() + total
                    ),
                ));
            }
            for db in &m.db {
                for workload in &m.workload {
                    for nemesis in &nemeses {
                        for bugs in &bug_sets {
                            for seed in &seeds {
                                let mut t = TestSpec {
                                    db: Some(*db),
                                    workload: Some(WorkloadRef::Name(workload.clone())),
                                    nemesis: Some(NemesisRef::Name(nemesis.clone())),
                                    bugs: Some(bugs.clone()),
                                    seed: *seed,
                                    ..TestSpec::default()
                                };
                                if let Some(s) = seed {
                                    let mut name = format!("{}-{workload}-{nemesis}", db.name());
                                    for bug in bugs {
                                        name.push('-');
                                        name.push_str(bug);
                                    }
                                    t.name = Some(format!("{name}-seed{s}"));
                                }
                                specs.push(self.defaults.overridden_by(&t));
                            }
                        }
                    }
                }
            }
        }
        if specs.is_empty() {
            return Err(SuiteError::new(
                path,
                None,
                "the suite has no `tests` and no `matrix`",
            ));
        }
        Ok(specs)
    }
}

/// Which share of a suite to run: `M/N` takes tests M, M+N, M+2N, ... (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("--shard {s:?}: expected M/N with 1 <= M <= N, e.g. 2/4");
        let (m, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (
            m.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether the test at `position` in the expanded suite belongs to this shard.
    pub fn contains(&self, position: usize) -> bool {
        position % self.count == self.index - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> Result<TestSpec, SuiteError> {
        from_yaml(Path::new("t.yaml"), yaml)
    }

    #[test]
    fn resolves_presets_and_defaults_and_round_trips_through_yaml() {
        let s = spec(
            "db: raft\nworkload: register\nnemesis: partition-ring\ntime_limit: 10s\nseed: 7\n",
        )
        .unwrap();
        let t = resolve(
            &s,
            &Source {
                path: Path::new("t.yaml"),
                text: "",
            },
        )
        .unwrap();
        assert_eq!(t.name, "raft-register-partition-ring");
        assert_eq!((t.nodes, t.concurrency, t.seed), (5, 10, 7));
        assert_eq!(t.workload.model.as_deref(), Some("cas-register"));
        assert_eq!(t.workload.keys, Some(8));
        assert_eq!(t.time_limit().as_secs(), 10);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.yaml");
        std::fs::write(&path, t.to_yaml()).unwrap();
        assert_eq!(Test::load(&path).unwrap(), t);
    }

    #[test]
    fn errors_point_at_file_line_and_column() {
        let e = spec("db: raft\nworkload: register\nwrokload: x\n").unwrap_err();
        assert_eq!(e.position, Some((3, 1)), "{e}");
        assert!(
            e.to_string()
                .starts_with("t.yaml:3:1: unknown field `wrokload`"),
            "{e}"
        );

        let e = spec("db: raft\nworkload: {kind: register, keyz: 3}\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("t.yaml:2:28: unknown field `keyz`"),
            "{e}"
        );

        let e = spec("db: mysql\n").unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(1), "{e}");
        assert!(e.message.contains("raft"), "{e}");

        let text = "db: raft\nworkload: regster\n";
        let e = resolve(
            &spec(text).unwrap(),
            &Source {
                path: Path::new("t.yaml"),
                text,
            },
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.yaml:2:11: unknown workload \"regster\": expected one of register, list-append, rw-register, bank, set or a path to a .yaml file"
        );

        let text = "db: raft\nworkload: {kind: register, accounts: 3}\n";
        let e = resolve(
            &spec(text).unwrap(),
            &Source {
                path: Path::new("t.yaml"),
                text,
            },
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.yaml:2:28: workload register: `accounts` does not apply to a register workload"
        );
    }

    #[test]
    fn every_workload_preset_is_valid() {
        for (name, text) in WORKLOAD_PRESETS {
            let w: WorkloadSpec = from_yaml(Path::new(name), text).unwrap();
            w.validate().unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(kind_name(w.kind), *name);
        }
    }

    #[test]
    fn a_suite_expands_its_matrix_in_order_and_shards_split_it() {
        let text = "defaults: {time_limit: 5s}\ntests:\n  - {db: raft, bugs: [stale-read], expect: invalid}\nmatrix:\n  db: [raft, paxos]\n  workload: [register, bank]\n  nemesis: [none]\n  seeds: [1, 2]\n";
        let suite: Suite = from_yaml(Path::new("s.yaml"), text).unwrap();
        let specs = suite.expand(Path::new("s.yaml")).unwrap();
        assert_eq!(specs.len(), 1 + 2 * 2 * 2);
        assert_eq!(specs[0].expect, Some(Verdict::Invalid));
        assert!(
            specs
                .iter()
                .all(|s| s.time_limit == Some(Span(Duration::from_secs(5))))
        );
        assert_eq!(specs[1].name.as_deref(), Some("raft-register-none-seed1"));
        assert_eq!(specs[8].name.as_deref(), Some("paxos-bank-none-seed2"));
        let shards: Vec<Shard> = ["1/3", "2/3", "3/3"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        for position in 0..specs.len() {
            assert_eq!(shards.iter().filter(|s| s.contains(position)).count(), 1);
        }
        assert!(
            "0/3".parse::<Shard>().is_err()
                && "4/3".parse::<Shard>().is_err()
                && "x".parse::<Shard>().is_err()
        );
    }
}
