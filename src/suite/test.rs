//! One test (db + bugs + workload + nemesis + hosts + timing + seed) and
//! suites of them.
//!
//! [`TestSpec`] is what a person writes: in a YAML file, in a suite, or as
//! flags; every field is optional. [`Test`] is the resolved test: presets
//! inlined, defaults filled, the seed chosen. It is what runs, what is stored
//! as test.yaml, and what `--replay` reads back.

use super::{SuiteError, from_yaml, read};
use crate::checker::Verdict;
use crate::history::text::{clip_message, excerpt};
use crate::nemesis::schedule::{Schedule, ScheduleError};
use crate::span::Span;
use crate::system::{DbOptions, SystemRef};
use crate::workload::{PRESETS as WORKLOAD_PRESETS, Workload};
use crate::yaml::KeyPath;
use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    Inline(Box<Workload>),
}

/// By hand rather than `untagged`: an inline workload is read in place from
/// the file's own parser (not through a `Value`), so a mistake inside it has
/// its real line:column and key path (`workload.kind: unknown variant ...`).
impl<'de> Deserialize<'de> for WorkloadRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Ref;
        impl<'de> Visitor<'de> for Ref {
            type Value = WorkloadRef;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a workload preset name, a path to a .yaml file, or a workload map")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<WorkloadRef, E> {
                Ok(WorkloadRef::Name(name.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<WorkloadRef, A::Error> {
                Workload::deserialize(MapAccessDeserializer::new(map))
                    .map(|w| WorkloadRef::Inline(Box::new(w)))
            }
        }
        d.deserialize_any(Ref)
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

/// As [`WorkloadRef`]'s: read in place, so errors say where.
impl<'de> Deserialize<'de> for NemesisRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Ref;
        impl<'de> Visitor<'de> for Ref {
            type Value = NemesisRef;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a nemesis preset name, a path to a nemesis file, or a nemesis map")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<NemesisRef, E> {
                Ok(NemesisRef::Name(name.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<NemesisRef, A::Error> {
                Schedule::deserialize(MapAccessDeserializer::new(map))
                    .map(|s| NemesisRef::Inline(Box::new(s)))
            }
        }
        d.deserialize_any(Ref)
    }
}

/// A test as written; unset fields take defaults or the suite's `defaults`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<SystemRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bugs: Option<Vec<String>>,
    /// What the test sets of its system (`serializable_reads: true`), as
    /// the system allows (`System::check_options`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_options: Option<DbOptions>,
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
            db_options: pick(&self.db_options, &over.db_options),
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

    /// The names (as written in YAML) of the fields this spec sets.
    pub fn set_fields(&self) -> Vec<&'static str> {
        let fields = [
            ("name", self.name.is_some()),
            ("db", self.db.is_some()),
            ("bugs", self.bugs.is_some()),
            ("db_options", self.db_options.is_some()),
            ("workload", self.workload.is_some()),
            ("nemesis", self.nemesis.is_some()),
            ("hosts", self.hosts.is_some()),
            ("nodes", self.nodes.is_some()),
            ("time_limit", self.time_limit.is_some()),
            ("concurrency", self.concurrency.is_some()),
            ("rate", self.rate.is_some()),
            ("seed", self.seed.is_some()),
            ("recovery", self.recovery.is_some()),
            ("expect", self.expect.is_some()),
        ];
        fields.iter().filter(|f| f.1).map(|f| f.0).collect()
    }

    /// Checks what parsing cannot, where it is written: an explicit name,
    /// the knobs of an inline workload, an inline nemesis. The error's place
    /// is relative to the spec (`workload.accounts`, `nemesis.faults[2]`).
    pub fn check(&self) -> Result<(), (KeyPath, String)> {
        let root = KeyPath::root();
        if let Some(name) = &self.name {
            check_name(name).map_err(|m| (root.key("name"), m))?;
        }
        if let Some(WorkloadRef::Inline(w)) = &self.workload {
            w.validate()
                .map_err(|(knob, m)| (root.key("workload").key(knob), m))?;
        }
        if let Some(NemesisRef::Inline(s)) = &self.nemesis {
            s.validate()
                .map_err(|(at, m)| (root.key("nemesis").join(&at), m))?;
        }
        Ok(())
    }

    /// Reads and checks a test file; gives the spec and the file's text.
    pub fn load(path: &Path) -> Result<(TestSpec, String), SuiteError> {
        let text = read(path)?;
        let spec: TestSpec = from_yaml(path, &text)?;
        spec.check()
            .map_err(|(at, m)| SuiteError::at(path, &text, &at, &m))?;
        Ok((spec, text))
    }
}

/// A resolved test: everything a run needs, nothing left to defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Test {
    pub name: String,
    pub db: SystemRef,
    pub bugs: Vec<String>,
    #[serde(default, skip_serializing_if = "DbOptions::is_empty")]
    pub db_options: DbOptions,
    pub workload_name: String,
    pub workload: Workload,
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

/// The longest test name: it is a folder name, and part of commands printed.
pub const NAME_CHARS_MAX: usize = 100;

impl Test {
    pub fn time_limit(&self) -> Duration {
        self.time_limit.0
    }

    /// Reads a stored test.yaml, as a report does: what an older version
    /// wrote still reads (its name may have characters no longer allowed).
    pub fn load(path: &Path) -> Result<Test, SuiteError> {
        Ok(Test::read(path)?.0)
    }

    /// Reads a stored test.yaml to run it again (`--replay`), checked as a
    /// test file is: the name names a new results folder and is printed in
    /// a command, the nemesis runs.
    pub fn load_to_run(path: &Path) -> Result<Test, SuiteError> {
        let (test, text) = Test::read(path)?;
        let root = KeyPath::root();
        let fail = |at: KeyPath, m: String| SuiteError::at(path, &text, &at, &m);
        check_name(&test.name).map_err(|m| fail(root.key("name"), m))?;
        test.db
            .validate()
            .map_err(|(at, m)| fail(root.key("db").join(&at), m))?;
        test.nemesis
            .validate()
            .map_err(|(at, m)| fail(root.key("nemesis").join(&at), m))?;
        Ok(test)
    }

    fn read(path: &Path) -> Result<(Test, String), SuiteError> {
        let text = read(path)?;
        let test: Test = from_yaml(path, &text)?;
        test.workload.validate().map_err(|(knob, m)| {
            SuiteError::at(path, &text, &KeyPath::root().key("workload").key(knob), &m)
        })?;
        Ok((test, text))
    }

    pub fn to_yaml(&self) -> String {
        // Serializing plain data to YAML cannot fail.
        serde_yaml_ng::to_string(self).unwrap_or_default()
    }
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// A test's name becomes its results folder's name and is printed in the
/// replay command, so it is kept to a safe alphabet: 1 to
/// [`NAME_CHARS_MAX`] ASCII letters, digits, `-`, `_` and `.`, not starting
/// with `.` or `-` (no hidden folder, no `..`, nothing a shell or a command
/// line reads as an option).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= NAME_CHARS_MAX
        && name.chars().all(name_char)
        && !name.starts_with(['.', '-']);
    if ok {
        return Ok(());
    }
    Err(format!(
        "test name \"{}\" must be 1 to {NAME_CHARS_MAX} letters (a-z, A-Z), digits, `-`, `_` and `.`, not starting with `.` or `-`: it names the results folder and is part of the replay command",
        excerpt(name)
    ))
}

/// A name derived from db, workload, nemesis and bugs (which may be file
/// names) made to pass [`check_name`]: other characters become `_`, a
/// leading `.` or `-` too, and it is cut at [`NAME_CHARS_MAX`].
pub fn sanitize_name(raw: &str) -> String {
    let mut name: String = raw
        .chars()
        .map(|c| if name_char(c) { c } else { '_' })
        .take(NAME_CHARS_MAX)
        .collect();
    if name.is_empty() || name.starts_with(['.', '-']) {
        name.replace_range(..name.len().min(1), "_");
    }
    name
}

/// Where a spec's fields were written, for errors.
#[derive(Debug, Clone, PartialEq)]
pub enum Place {
    /// At this key path of the file.
    At(KeyPath),
    /// On the command line.
    Flag,
}

/// Where a spec came from, for errors: the file, its text, and where in it
/// each field was written.
pub struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    /// The spec's own place in the file: the root of a test file,
    /// `tests[2]` or `matrix` in a suite. Errors about a missing field
    /// point here.
    pub at: KeyPath,
    /// Fields written elsewhere than under `at`: in a suite's `defaults`, in
    /// a matrix's lists, or as flags.
    pub fields: Vec<(&'static str, Place)>,
}

impl<'a> Source<'a> {
    /// A test file: every field at its root.
    pub fn file(path: &'a Path, text: &'a str) -> Source<'a> {
        Source {
            path,
            text,
            at: KeyPath::root(),
            fields: Vec::new(),
        }
    }

    /// Flags on the command line have no file.
    pub fn command_line() -> Source<'static> {
        Source {
            path: Path::new("<command line>"),
            text: "",
            at: KeyPath::root(),
            fields: Vec::new(),
        }
    }

    /// The same, with the fields `flags` sets said to come from flags.
    pub fn with_flags(mut self, flags: &TestSpec) -> Self {
        for field in flags.set_fields() {
            self.fields.retain(|(f, _)| *f != field);
            self.fields.push((field, Place::Flag));
        }
        self
    }

    fn is_file(&self) -> bool {
        !self.text.is_empty()
    }

    /// An error about `field`: at the place it was written, worded
    /// `place: message` (`--field: message` for a flag).
    fn error(&self, field: &str, message: &str) -> SuiteError {
        self.error_in(field, &KeyPath::root(), message)
    }

    /// An error about the part `inner` of `field` (`bugs`, `[1]`).
    fn error_in(&self, field: &str, inner: &KeyPath, message: &str) -> SuiteError {
        let place = self
            .fields
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, p)| p.clone());
        match place {
            Some(Place::At(at)) if self.is_file() => {
                SuiteError::at(self.path, self.text, &at.join(inner), message)
            }
            None if self.is_file() => SuiteError::at(
                self.path,
                self.text,
                &self.at.key(field).join(inner),
                message,
            ),
            _ => {
                let flag = match field {
                    "bugs" => "bug".to_string(),
                    "db_options" => "db-option".to_string(),
                    f => f.replace('_', "-"),
                };
                SuiteError::new(self.path, None, format!("--{flag}: {message}"))
            }
        }
    }
}

/// Resolves `spec` into a [`Test`]: presets looked up (built in, or given as
/// a path), defaults filled, a seed drawn from the OS when none is given.
pub fn resolve(spec: &TestSpec, source: &Source) -> Result<Test, SuiteError> {
    let db = spec.db.clone().ok_or_else(|| {
        let names = crate::system::names().join(", ");
        source.error(
            "db",
            &format!("no `db` given: expected one of {names}, or a map with `kind: custom`"),
        )
    })?;
    db.validate()
        .map_err(|(at, msg)| source.error_in("db", &at, &msg))?;
    let (workload_name, workload) = match spec
        .workload
        .clone()
        .unwrap_or(WorkloadRef::Name("register".into()))
    {
        WorkloadRef::Name(name) => (short_name(&name), load_workload(&name, source)?),
        WorkloadRef::Inline(w) => (w.name().to_string(), *w),
    };
    workload
        .validate()
        .map_err(|(_, msg)| source.error("workload", &msg))?;
    if let Err(msg) = crate::system::runs(db.get(), workload.name()) {
        return Err(source.error("workload", &msg));
    }
    let (nemesis_name, nemesis) = match spec
        .nemesis
        .clone()
        .unwrap_or(NemesisRef::Name("none".into()))
    {
        NemesisRef::Name(name) => (short_name(&name), load_nemesis(&name, source)?),
        NemesisRef::Inline(s) => {
            s.validate()
                .map_err(|(at, msg)| source.error("nemesis", &at.message(&msg)))?;
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
            &format!("must be between 1 and {NODES_MAX}, not {nodes}"),
        ));
    }
    let concurrency = spec.concurrency.unwrap_or(2 * nodes);
    if !(1..=CONCURRENCY_MAX).contains(&concurrency) {
        return Err(source.error(
            "concurrency",
            &format!("must be between 1 and {CONCURRENCY_MAX}, not {concurrency}"),
        ));
    }
    let rate = spec.rate.unwrap_or(200.0);
    if !(rate.is_finite() && rate > 0.0) {
        return Err(source.error(
            "rate",
            &format!("must be a positive number of operations per second, not {rate}"),
        ));
    }
    let time_limit = spec.time_limit.unwrap_or(Span(Duration::from_secs(60)));
    if time_limit.0.is_zero() {
        return Err(source.error("time_limit", "must be more than 0s"));
    }
    let bugs = spec.bugs.clone().unwrap_or_default();
    // A misspelt bug fails here, not on the hosts after the cluster is made.
    for (i, bug) in bugs.iter().enumerate() {
        if let Err(m) = crate::system::has_bug(db.get(), bug) {
            return Err(source.error_in("bugs", &KeyPath::root().index(i), &clip_message(&m)));
        }
    }
    let db_options = spec.db_options.clone().unwrap_or_default();
    // A misspelt option fails here, where it is written.
    if let Err((option, m)) = db.check_options(&db_options) {
        return Err(source.error_in(
            "db_options",
            &KeyPath::root().key(&option),
            &clip_message(&m),
        ));
    }
    let name = match &spec.name {
        Some(name) => {
            check_name(name).map_err(|m| source.error("name", &m))?;
            name.clone()
        }
        None => derived_name(&db, &workload_name, &nemesis_name, &bugs, &db_options),
    };
    Ok(Test {
        name,
        db,
        bugs,
        db_options,
        workload_name,
        workload,
        nemesis_name,
        nemesis,
        hosts: spec.hosts.clone().unwrap_or(Hosts::Local),
        nodes,
        time_limit,
        concurrency,
        rate,
        seed: spec.seed.unwrap_or_else(crate::seed::draw),
        recovery: spec.recovery.unwrap_or(Span(Duration::from_secs(5))),
        allow_node_exits: spec.allow_node_exits.unwrap_or(false),
        expect: spec.expect,
    })
}

/// `raft-register-partition-ring-stale-read`, made a safe name; an option
/// set to true adds its name (`etcd-register-none-serializable_reads`),
/// another value its name and value.
fn derived_name(
    db: &SystemRef,
    workload: &str,
    nemesis: &str,
    bugs: &[String],
    options: &DbOptions,
) -> String {
    let mut name = format!("{}-{workload}-{nemesis}", db.label());
    for bug in bugs {
        name.push('-');
        name.push_str(bug);
    }
    for (option, value) in options {
        match value {
            serde_yaml_ng::Value::Bool(true) => name.push_str(&format!("-{option}")),
            serde_yaml_ng::Value::Bool(false) => {}
            other => {
                let text = serde_yaml_ng::to_string(other).unwrap_or_default();
                name.push_str(&format!("-{option}-{}", text.trim()));
            }
        }
    }
    sanitize_name(&name)
}

/// A preset's name, or a file's name without folder and extension: it goes
/// into the test's name, which is a folder name.
fn short_name(name: &str) -> String {
    let path = Path::new(name);
    path.file_stem()
        .map_or_else(|| name.to_string(), |s| s.to_string_lossy().into_owned())
}

/// A preset name (`register`) or a path to a YAML file (`my/workload.yaml`).
fn load_workload(name: &str, source: &Source) -> Result<Workload, SuiteError> {
    if name.ends_with(".yaml") || name.contains('/') {
        let path = Path::new(name);
        let text = match read(path) {
            // Cannot read it, too big: say where it was named.
            Err(e) if e.position.is_none() => {
                return Err(source.error("workload", &e.to_string()));
            }
            other => other?,
        };
        let w: Workload = from_yaml(path, &text)?;
        w.validate()
            .map_err(|(knob, msg)| SuiteError::at(path, &text, &KeyPath::root().key(knob), &msg))?;
        return Ok(w);
    }
    let Some((_, text)) = WORKLOAD_PRESETS.iter().find(|(n, _)| *n == name) else {
        let known: Vec<&str> = WORKLOAD_PRESETS.iter().map(|(n, _)| *n).collect();
        return Err(source.error(
            "workload",
            &format!(
                "unknown workload \"{}\": expected one of {} or a path to a .yaml file",
                excerpt(name),
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
        // Unknown, cannot read, too big: say where it was named.
        other => source.error("nemesis", &other.to_string()),
    })
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
    /// Seeds to run each listed test with (one run per seed, named
    /// `<test>-seed<N>`), unless the test sets its own `seed`; the matrix
    /// has its own `seeds`.
    #[serde(default)]
    pub seeds: Vec<u64>,
    #[serde(default)]
    pub matrix: Option<Matrix>,
}

/// Every combination of these, each a test.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    pub db: Vec<SystemRef>,
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

/// One test of a suite, before it is resolved: its spec (the suite's
/// defaults under it) and where each field was written.
#[derive(Debug, Clone)]
pub struct Entry {
    pub spec: TestSpec,
    pub at: KeyPath,
    pub fields: Vec<(&'static str, Place)>,
    /// Set for a listed test run once per suite seed: its name gets
    /// `-seed<N>` after it is resolved.
    pub seed_suffix: Option<u64>,
}

impl Suite {
    /// Reads and checks a suite file; gives the suite and the file's text.
    pub fn load(path: &Path) -> Result<(Suite, String), SuiteError> {
        let text = read(path)?;
        let suite: Suite = from_yaml(path, &text)?;
        let root = KeyPath::root();
        let specs = std::iter::once((root.key("defaults"), &suite.defaults)).chain(
            suite
                .tests
                .iter()
                .enumerate()
                .map(|(i, t)| (root.key("tests").index(i), t)),
        );
        for (at, spec) in specs {
            spec.check()
                .map_err(|(inner, m)| SuiteError::at(path, &text, &at.join(&inner), &m))?;
        }
        Ok((suite, text))
    }

    /// Every test of the suite resolved, in order; the first error stops it
    /// (file:line:column of the entry, matrix cell or default at fault).
    pub fn resolve(&self, path: &Path, text: &str) -> Result<Vec<Test>, SuiteError> {
        self.expand(path, text)?
            .into_iter()
            .map(|entry| {
                let source = Source {
                    path,
                    text,
                    at: entry.at,
                    fields: entry.fields,
                };
                let mut test = resolve(&entry.spec, &source)?;
                if let Some(seed) = entry.seed_suffix {
                    test.name = sanitize_name(&format!("{}-seed{seed}", test.name));
                }
                Ok(test)
            })
            .collect()
    }

    /// The suite's tests in a fixed order (listed ones, then the matrix), each
    /// with the suite's defaults under it.
    pub fn expand(&self, path: &Path, text: &str) -> Result<Vec<Entry>, SuiteError> {
        let root = KeyPath::root();
        let defaults: Vec<(&'static str, Place)> = self
            .defaults
            .set_fields()
            .into_iter()
            .map(|f| (f, Place::At(root.key("defaults").key(f))))
            .collect();
        // `fields` (where the cell's own fields are) over the defaults'.
        let entry = |spec: &TestSpec, at: KeyPath, fields: Vec<(&'static str, Place)>| {
            let mut all: Vec<_> = defaults
                .iter()
                .filter(|(f, _)| !fields.iter().any(|(g, _)| g == f))
                .cloned()
                .collect();
            all.extend(fields);
            Entry {
                spec: self.defaults.overridden_by(spec),
                at,
                fields: all,
                seed_suffix: None,
            }
        };
        let mut entries: Vec<Entry> = Vec::new();
        for (i, t) in self.tests.iter().enumerate() {
            let at = root.key("tests").index(i);
            let fields: Vec<_> = t
                .set_fields()
                .into_iter()
                .map(|f| (f, Place::At(at.key(f))))
                .collect();
            if self.seeds.is_empty() || t.seed.is_some() || self.defaults.seed.is_some() {
                entries.push(entry(t, at, fields));
                continue;
            }
            for (k, seed) in self.seeds.iter().enumerate() {
                let mut fields = fields.clone();
                fields.push(("seed", Place::At(root.key("seeds").index(k))));
                let spec = TestSpec {
                    seed: Some(*seed),
                    ..t.clone()
                };
                let mut e = entry(&spec, at.clone(), fields);
                e.seed_suffix = Some(*seed);
                entries.push(e);
            }
            if entries.len() > SUITE_TESTS_MAX {
                return Err(SuiteError::at(
                    path,
                    text,
                    &root.key("seeds"),
                    &format!(
                        "the suite's tests and seeds expand to more than {SUITE_TESTS_MAX} tests"
                    ),
                ));
            }
        }
        if let Some(m) = &self.matrix {
            let matrix = root.key("matrix");
            let list = |field: &str, len: usize| -> Vec<Option<Place>> {
                if len == 0 {
                    vec![None]
                } else {
                    (0..len)
                        .map(|i| Some(Place::At(matrix.key(field).index(i))))
                        .collect()
                }
            };
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
            if entries.len() + total > SUITE_TESTS_MAX {
                return Err(SuiteError::at(
                    path,
                    text,
                    &matrix,
                    &format!(
                        "the suite expands to {} tests, more than {SUITE_TESTS_MAX}",
                        entries.len() + total
                    ),
                ));
            }
            let places = [
                list("db", m.db.len()),
                list("workload", m.workload.len()),
                list("nemesis", m.nemesis.len()),
                list("bugs", m.bugs.len()),
                list("seeds", m.seeds.len()),
            ];
            for (a, db) in m.db.iter().enumerate() {
                for (b, workload) in m.workload.iter().enumerate() {
                    for (c, nemesis) in nemeses.iter().enumerate() {
                        for (d, bugs) in bug_sets.iter().enumerate() {
                            for (e, seed) in seeds.iter().enumerate() {
                                let mut t = TestSpec {
                                    db: Some(db.clone()),
                                    workload: Some(WorkloadRef::Name(workload.clone())),
                                    nemesis: Some(NemesisRef::Name(nemesis.clone())),
                                    bugs: Some(bugs.clone()),
                                    seed: *seed,
                                    ..TestSpec::default()
                                };
                                if let Some(s) = seed {
                                    let name = derived_name(
                                        db,
                                        &short_name(workload),
                                        &short_name(nemesis),
                                        bugs,
                                        &self.defaults.db_options.clone().unwrap_or_default(),
                                    );
                                    t.name = Some(sanitize_name(&format!("{name}-seed{s}")));
                                }
                                let fields = ["db", "workload", "nemesis", "bugs", "seed"]
                                    .into_iter()
                                    .zip([a, b, c, d, e].into_iter().zip(&places))
                                    .filter_map(|(f, (i, p))| Some((f, p[i].clone()?)))
                                    .collect();
                                entries.push(entry(&t, matrix.clone(), fields));
                            }
                        }
                    }
                }
            }
        }
        if entries.is_empty() {
            let (at, message) = match self.matrix {
                Some(_) => (
                    root.key("matrix"),
                    "the suite has no `tests` and its `matrix` has an empty list: nothing to run",
                ),
                None => (
                    root.key("tests"),
                    "the suite has no `tests` and no `matrix`: nothing to run",
                ),
            };
            return Err(SuiteError::at(path, text, &at, message));
        }
        Ok(entries)
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
        let bad = || {
            format!(
                "--shard \"{}\": expected M/N with 1 <= M <= N, e.g. 2/4",
                excerpt(s)
            )
        };
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

    /// Loads `text` as a test file and resolves it: the error, as printed.
    fn error_of(text: &str) -> String {
        let path = Path::new("t.yaml");
        let spec = match spec(text).and_then(|s| {
            s.check()
                .map_err(|(at, m)| SuiteError::at(path, text, &at, &m))
                .map(|()| s)
        }) {
            Ok(s) => s,
            Err(e) => return e.to_string(),
        };
        match resolve(&spec, &Source::file(path, text)) {
            Ok(t) => panic!("{text} resolved to {t:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// Loads `text` as a suite and resolves every test: the error, as printed.
    fn suite_error_of(text: &str) -> String {
        let path = Path::new("s.yaml");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.yaml");
        std::fs::write(&file, text).unwrap();
        let (suite, text) = match Suite::load(&file) {
            Ok(s) => s,
            Err(e) => return e.to_string().replace(&file.display().to_string(), "s.yaml"),
        };
        match suite.resolve(path, &text) {
            Ok(t) => panic!("resolved to {t:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn db_options_are_the_systems_to_check_and_name_the_test() {
        assert_eq!(
            error_of("db: etcd\ndb_options:\n  serializable_read: true\n"),
            "t.yaml:3:22: db_options.serializable_read: etcd has no option `serializable_read`; it has: serializable_reads"
        );
        assert_eq!(
            error_of("db: raft\ndb_options: {serializable_reads: true}\n"),
            "t.yaml:2:34: db_options.serializable_reads: raft takes no options"
        );
        let text = "db: etcd\ndb_options: {serializable_reads: true}\nseed: 1\n";
        let t = resolve(
            &spec(text).unwrap(),
            &Source::file(Path::new("t.yaml"), text),
        )
        .unwrap();
        assert_eq!(t.name, "etcd-register-none-serializable_reads");
        assert_eq!(
            t.db_options["serializable_reads"],
            serde_yaml_ng::Value::Bool(true)
        );
        // Stored and read back as test.yaml is.
        let back: Test = serde_yaml_ng::from_str(&serde_yaml_ng::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
        let plain = "db: etcd\nseed: 1\n";
        let t = resolve(
            &spec(plain).unwrap(),
            &Source::file(Path::new("t.yaml"), plain),
        )
        .unwrap();
        assert!(!serde_yaml_ng::to_string(&t).unwrap().contains("db_options"));
    }

    #[test]
    fn resolves_presets_and_defaults_and_round_trips_through_yaml() {
        let s = spec(
            "db: raft\nworkload: register\nnemesis: partition-ring\ntime_limit: 10s\nseed: 7\n",
        )
        .unwrap();
        let t = resolve(&s, &Source::file(Path::new("t.yaml"), "")).unwrap();
        assert_eq!(t.name, "raft-register-partition-ring");
        assert_eq!((t.nodes, t.concurrency, t.seed), (5, 10, 7));
        let crate::workload::Workload::Register(register) = &t.workload else {
            panic!("{:?}", t.workload)
        };
        assert_eq!(
            (register.model, register.keys),
            (crate::workload::register::Model::CasRegister, 8)
        );
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
                .starts_with("t.yaml:2:34: workload.keyz: unknown field `keyz`, expected one of `keys`, `values`, `mix`, `model`"),
            "{e}"
        );

        let e = spec("db: mysql\n").unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(1), "{e}");
        assert!(e.message.contains("raft"), "{e}");

        assert_eq!(
            error_of("db: raft\nworkload: regster\n"),
            "t.yaml:2:11: workload: unknown workload \"regster\": expected one of register, list-append, rw-register, bank, set, counter, lock or a path to a .yaml file"
        );
        assert_eq!(
            error_of("db: raft\nworkload: {kind: register, accounts: 3}\n"),
            "t.yaml:2:38: workload.accounts: unknown field `accounts`, expected one of `keys`, `values`, `mix`, `model`"
        );
        assert_eq!(
            error_of("db: raft\nnodes: 99\n"),
            "t.yaml:2:8: nodes: must be between 1 and 64, not 99"
        );
        let e = error_of("db: raft\nbugs: [stale-read, skip-promise-check]\n");
        assert!(
            e.starts_with("t.yaml:2:20: bugs[1]: raft has no bug named \"skip-promise-check\"; it has: stale-read"),
            "{e}"
        );
        let s = TestSpec {
            db: Some(SystemRef::parse("paxos").unwrap()),
            bugs: Some(vec!["x".repeat(500)]),
            ..TestSpec::default()
        };
        let e = resolve(&s, &Source::command_line())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("<command line>: --bug: paxos has no bug named \"xxx"),
            "{e}"
        );
        assert!(e.len() < 300, "{e}");
    }

    /// Mistakes inside inline blocks are reported as well as in standalone
    /// files: the real line:column, the key path, the same words.
    #[test]
    fn inline_blocks_report_line_column_and_key_path() {
        assert_eq!(
            error_of("db: raft\nworkload:\n  kind: regster\n"),
            "t.yaml:3:9: workload.kind: unknown variant `regster`, expected one of `register`, `list-append`, `rw-register`, `bank`, `set`, `counter`, `lock`"
        );
        let e =
            error_of("db: raft\nnemesis:\n  faults:\n    - partition:\n        shape: hlaves\n");
        assert!(
            e.starts_with(
                "t.yaml:5:16: nemesis.faults[0].partition.shape: unknown variant `hlaves`"
            ),
            "{e}"
        );
        let e = error_of(
            "db: raft\nnemesis:\n  faults:\n    - packet: {delay_ms: 5}\n    - packet: {loss_pct: 5}\n",
        );
        assert!(
            e.starts_with("t.yaml:5:7: nemesis.faults[1]: the fault `packet` appears twice"),
            "{e}"
        );
        let e = error_of("db: raft\nnemesis: {faults: [{kill: {}}], duration: 0s}\n");
        assert!(
            e.starts_with("t.yaml:2:43: nemesis.duration: `duration` must be more than 0s"),
            "{e}"
        );
        // In a suite: the entry's place, the defaults', a matrix cell's.
        let e = suite_error_of(
            "tests:\n  - {db: raft}\n  - db: paxos\n    workload: {kind: bank, keys: 3}\n",
        );
        assert!(
            e.starts_with(
                "s.yaml:4:34: tests[1].workload.keys: unknown field `keys`, expected one of `accounts`, `initial_balance`, `max_transfer`, `mix`"
            ),
            "{e}"
        );
        let e = suite_error_of("defaults:\n  workload:\n    kind: bnak\ntests:\n  - {db: raft}\n");
        assert!(
            e.starts_with("s.yaml:3:11: defaults.workload.kind: unknown variant `bnak`"),
            "{e}"
        );
        let e = suite_error_of("defaults: {workload: regster}\ntests:\n  - {db: raft}\n");
        assert!(
            e.starts_with("s.yaml:1:22: defaults.workload: unknown workload \"regster\""),
            "{e}"
        );
        let e = suite_error_of(
            "matrix:\n  db: [raft]\n  workload: [register]\n  nemesis: [kill, kill-votrs]\n",
        );
        assert!(
            e.starts_with(
                "s.yaml:4:19: matrix.nemesis[1]: no nemesis file or preset named \"kill-votrs\""
            ),
            "{e}"
        );
    }

    /// Errors that had no position: a missing `db`, an empty suite, two
    /// documents, a fault given twice in a nemesis file.
    #[test]
    fn every_error_about_a_file_has_a_position() {
        assert_eq!(
            error_of("workload: register\n"),
            "t.yaml:1:1: no `db` given: expected one of raft, paxos, twopc, threepc, redis, etcd, zookeeper, postgres, or a map with `kind: custom`"
        );
        let e = suite_error_of("tests:\n  - {db: raft}\n  - {workload: bank}\n");
        assert!(e.starts_with("s.yaml:3:5: tests[1]: no `db` given"), "{e}");
        let e = suite_error_of("name: empty\n");
        assert!(
            e.starts_with("s.yaml:1:1: the suite has no `tests` and no `matrix`"),
            "{e}"
        );
        let e = suite_error_of("name: empty\ntests: []\n");
        assert!(e.starts_with("s.yaml:2:8: tests: the suite has no"), "{e}");
        let e = suite_error_of("matrix:\n  db: []\n  workload: [register]\n");
        assert!(
            e.starts_with(
                "s.yaml:2:3: matrix: the suite has no `tests` and its `matrix` has an empty list"
            ),
            "{e}"
        );
        let e = spec("db: raft\n---\ndb: paxos\n").unwrap_err();
        assert!(
            e.to_string().starts_with("t.yaml:2:1: ")
                && e.message.contains("more than one document"),
            "{e}"
        );
    }

    /// `db` is a registry system's name or a custom system's map; the map's
    /// mistakes are reported where they are written.
    #[test]
    fn a_custom_db_is_a_typed_map_with_its_mistakes_placed() {
        let good = "db:\n  kind: custom\n  name: kv\n  start: kv --listen {addr}:{port} --dir {data_dir}\n  client: python3 c.py\n  workloads: [register, set]\nworkload: set\nseed: 3\n";
        let t = resolve(
            &spec(good).unwrap(),
            &Source::file(Path::new("t.yaml"), good),
        )
        .unwrap();
        assert_eq!(t.name, "kv-set-none");
        assert_eq!(t.db.name(), "custom");
        assert_eq!(t.db.workloads(), ["register", "set"]);
        // test.yaml replays it: the map round-trips.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.yaml");
        std::fs::write(&path, t.to_yaml()).unwrap();
        assert_eq!(Test::load_to_run(&path).unwrap(), t);

        let e = spec("db:\n  kind: custom\n  strat: x\n  client: c\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("t.yaml:3:3: db: unknown field `strat`, expected one of `kind`,"),
            "{e}"
        );
        let e = spec("db:\n  kind: custom\n  client: c\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("t.yaml:2:3: db: missing field `start`"),
            "{e}"
        );
        let e = spec("db: {kind: etcd, start: x, client: c}\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("t.yaml:1:12: db.kind: unknown variant `etcd`, expected `custom`"),
            "{e}"
        );
        assert_eq!(
            error_of("db:\n  kind: custom\n  start: kv --dir {datadir}\n  client: c\n"),
            "t.yaml:3:10: db.start: unknown placeholder {datadir}: expected one of {id}, {addr}, {port}, {peers}, {data_dir}, {log_file}"
        );
        assert_eq!(
            error_of(
                "db:\n  kind: custom\n  start: kv\n  client: c\n  workloads: [register, bnak]\n"
            ),
            "t.yaml:5:25: db.workloads[1]: unknown workload kind \"bnak\": expected one of register, list-append, rw-register, bank, set, counter, lock"
        );
        assert_eq!(
            error_of("db:\n  kind: custom\n  start: kv\n  client: c\nworkload: bank\n"),
            "t.yaml:5:11: workload: custom cannot run a bank workload; it runs: register"
        );
        assert_eq!(
            error_of(
                "db:\n  kind: custom\n  start: kv\n  pidfile: /p\n  process: kv\n  client: c\n"
            ),
            "t.yaml:5:12: db.process: give `pidfile` or `process`, not both"
        );
    }

    #[test]
    fn names_are_kept_to_a_safe_alphabet() {
        for good in [
            "raft-register-none",
            "t_1.2",
            "A",
            &"x".repeat(NAME_CHARS_MAX),
        ] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in [
            "t$(touch${IFS}PWNED-REPLAY)",
            "",
            ".hidden",
            "..",
            "-rf",
            "a/b",
            "a b",
            "é",
            "a\u{1b}[31m",
            &"x".repeat(NAME_CHARS_MAX + 1),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        let e = error_of("name: t$(touch${IFS}PWNED-REPLAY)\ndb: raft\n");
        assert!(
            e.starts_with("t.yaml:1:7: name: test name \"t$(touch${IFS}PWNED-REPLAY)\" must be"),
            "{e}"
        );
        let e = suite_error_of("tests:\n  - {db: raft, name: ../up}\n");
        assert!(
            e.starts_with("s.yaml:2:22: tests[0].name: test name"),
            "{e}"
        );
        assert_eq!(
            sanitize_name("raft-register-my nemesis+kill"),
            "raft-register-my_nemesis_kill"
        );
        assert_eq!(sanitize_name(".x"), "_x");
        assert_eq!(sanitize_name(&"y".repeat(500)).len(), NAME_CHARS_MAX);
    }

    /// A name derived from a nemesis or workload FILE keeps working: it is
    /// made safe, not refused.
    #[test]
    fn names_derived_from_file_paths_are_sanitised() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("my dir");
        std::fs::create_dir(&sub).unwrap();
        let nemesis = sub.join("my $(nemesis).yaml");
        std::fs::write(&nemesis, "faults:\n  - kill: {targets: one}\n").unwrap();
        let s = TestSpec {
            db: Some(SystemRef::parse("raft").unwrap()),
            nemesis: Some(NemesisRef::Name(nemesis.display().to_string())),
            bugs: Some(vec!["stale-read".into()]),
            ..TestSpec::default()
        };
        let t = resolve(&s, &Source::command_line()).unwrap();
        assert_eq!(t.name, "raft-register-my___nemesis_-stale-read");
        assert_eq!(t.nemesis_name, "my $(nemesis)");
        assert_eq!(check_name(&t.name), Ok(()));
        let s = TestSpec {
            db: Some(SystemRef::parse("raft").unwrap()),
            nemesis: Some(NemesisRef::Inline(Box::new(
                Schedule::from_yaml("faults: [{partition: {shape: halves}}, {kill: {}}]", "n")
                    .unwrap(),
            ))),
            ..TestSpec::default()
        };
        let t = resolve(&s, &Source::command_line()).unwrap();
        assert_eq!(
            (t.name.as_str(), t.nemesis_name.as_str()),
            ("raft-register-partition_kill", "partition+kill")
        );
    }

    #[test]
    fn a_replayed_test_yaml_is_checked_like_a_test_file() {
        let s = spec("db: raft\nseed: 1\n").unwrap();
        let mut t = resolve(&s, &Source::command_line()).unwrap();
        t.name = "t$(touch${IFS}PWNED-REPLAY)".into();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.yaml");
        std::fs::write(&path, t.to_yaml()).unwrap();
        let e = Test::load_to_run(&path).unwrap_err();
        assert_eq!(e.position, Some((1, 7)), "{e}");
        assert!(e.message.starts_with("name: test name"), "{e}");
        // A report still reads it.
        assert_eq!(Test::load(&path).unwrap().name, t.name);
    }

    #[test]
    fn a_suite_expands_its_matrix_in_order_and_shards_split_it() {
        let text = "defaults: {time_limit: 5s}\ntests:\n  - {db: raft, bugs: [stale-read], expect: invalid}\nmatrix:\n  db: [raft, paxos]\n  workload: [register, bank]\n  nemesis: [none]\n  seeds: [1, 2]\n";
        let suite: Suite = from_yaml(Path::new("s.yaml"), text).unwrap();
        let entries = suite.expand(Path::new("s.yaml"), text).unwrap();
        let specs: Vec<&TestSpec> = entries.iter().map(|e| &e.spec).collect();
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

    #[test]
    fn suite_seeds_repeat_each_listed_test_that_has_no_seed_of_its_own() {
        let text = "seeds: [4, 9]\ntests:\n  - {db: raft, bugs: [stale-read], nemesis: partition-halves, expect: invalid}\n  - {db: paxos, seed: 1}\n  - {name: mine, db: twopc, workload: bank, seedz: 3}\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.yaml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Suite::load(&path)
        };
        let e = load(text).unwrap_err();
        assert_eq!(e.position, Some((5, 45)), "{e}");
        let (suite, text) = load(&text.replace(", seedz: 3", "")).unwrap();
        let tests = suite.resolve(&path, &text).unwrap();
        let names: Vec<(&str, u64)> = tests.iter().map(|t| (t.name.as_str(), t.seed)).collect();
        assert_eq!(
            names,
            [
                ("raft-register-partition-halves-stale-read-seed4", 4),
                ("raft-register-partition-halves-stale-read-seed9", 9),
                ("paxos-register-none", 1),
                ("mine-seed4", 4),
                ("mine-seed9", 9),
            ]
        );
        assert!(
            tests[..2]
                .iter()
                .all(|t| t.expect == Some(Verdict::Invalid))
        );
        // A bad seed list is reported where it is written.
        let bad = "seeds: [4, x]\ntests:\n  - {db: raft}\n";
        let e = load(bad).unwrap_err();
        assert_eq!(e.position, Some((1, 12)), "{e}");
    }

    /// suites/detection.yaml measures every named bug of the bundled systems
    /// with a preset and with `combined`, and runs each bug's command
    /// without the bug too.
    #[test]
    fn the_detection_suite_runs_every_bundled_bug_with_a_preset_with_combined_and_clean() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("suites/detection.yaml");
        let (suite, text) = Suite::load(&path).unwrap();
        let tests = suite.resolve(&path, &text).unwrap();
        let seeds = suite.seeds.len();
        assert_eq!(seeds, 20);
        let bundled = ["raft", "paxos", "twopc", "threepc"];
        for system in crate::system::SYSTEMS
            .iter()
            .filter(|s| bundled.contains(&s.name()))
        {
            for (bug, _) in system.bugs() {
                let with = |combined: bool| {
                    tests
                        .iter()
                        .filter(|t| {
                            t.db.name() == system.name()
                                && t.bugs == [bug]
                                && (t.nemesis_name == "combined") == combined
                                && t.expect == Some(Verdict::Invalid)
                        })
                        .collect::<Vec<_>>()
                };
                let (preset, combined) = (with(false), with(true));
                assert_eq!(preset.len(), seeds, "{} {bug}: a one-liner", system.name());
                // `combined` has no disk faults (they need a FUSE mount under
                // every node): a bug only a power loss shows is not under it,
                // and its run under kills alone must stay valid.
                let power_loss = preset[0].nemesis_name.starts_with("lose-unfsynced");
                assert_eq!(
                    combined.len(),
                    if power_loss { 0 } else { seeds },
                    "{} {bug}: under combined",
                    system.name()
                );
                if power_loss {
                    let under_kills = tests.iter().filter(|t| {
                        t.db.name() == system.name()
                            && t.bugs == [bug]
                            && t.nemesis_name == "kill-all"
                            && t.expect.is_none()
                    });
                    assert_eq!(
                        under_kills.count(),
                        seeds,
                        "{} {bug}: kills alone",
                        system.name()
                    );
                }
                let clean = tests.iter().filter(|t| {
                    t.db.name() == system.name()
                        && t.bugs.is_empty()
                        && t.workload_name == preset[0].workload_name
                        && t.nemesis_name == preset[0].nemesis_name
                        && t.expect.is_none()
                });
                assert_eq!(
                    clean.count(),
                    seeds,
                    "{} {bug}: its command without it",
                    system.name()
                );
            }
        }
        assert!(
            tests
                .iter()
                .all(|t| t.time_limit() == Duration::from_secs(60))
        );
    }
}
