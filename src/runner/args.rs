//! `faultline run` on the command line: raw flags, resolved once into a
//! [`Test`] (test file + flags, or a stored test.yaml to replay) and
//! [`RunOptions`].

use super::progress::Progress;
use super::run::RunOptions;
use crate::outcome::Outcome;
use crate::store::Store;
use crate::suite::test::Source;
use crate::suite::{Hosts, NemesisRef, Span, Test, TestSpec, WorkloadRef};
use crate::system::SystemRef;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct TestArgs {
    /// The system under test.
    #[arg(long, value_parser = crate::system::value_parser())]
    pub db: Option<SystemRef>,
    /// A workload preset by kind (register, list-append, ...: an unknown one lists them all) or a YAML file.
    #[arg(long)]
    pub workload: Option<String>,
    /// A nemesis preset (none, partition-ring, kill, clock-skew, combined, ...) or a YAML file.
    #[arg(long)]
    pub nemesis: Option<String>,
    /// Start the nodes with this named bug (see `faultline node --list-bugs`); repeatable.
    #[arg(long = "bug", value_name = "NAME")]
    pub bugs: Vec<String>,
    /// Set an option of the system under test (etcd: serializable_reads=true; zookeeper: sync_reads=false); repeatable.
    #[arg(long = "db-option", value_name = "NAME=VALUE", value_parser = db_option)]
    pub db_options: Vec<(String, serde_yaml_ng::Value)>,
    /// How long the workload runs, e.g. 60s.
    #[arg(long)]
    pub time_limit: Option<Span>,
    /// Client workers.
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Operations per second over all workers.
    #[arg(long)]
    pub rate: Option<f64>,
    /// The seed of every random choice (printed and stored; random when not given).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Nodes of a local cluster.
    #[arg(long)]
    pub nodes: Option<u32>,
    /// How long the healed cluster recovers before the final reads.
    #[arg(long)]
    pub recovery: Option<Span>,
    /// Run on an SSH lab described by this inventory (hosts.yaml) instead of a local netns cluster.
    #[arg(long, value_name = "HOSTS_YAML", conflicts_with = "docker")]
    pub hosts: Option<PathBuf>,
    /// Run on Docker containers instead of a local netns cluster.
    #[arg(long)]
    pub docker: bool,
    /// A node that exits on its own (not killed by the nemesis) does not make
    /// the verdict unknown.
    #[arg(long)]
    pub allow_node_exits: bool,
}

impl TestArgs {
    /// The flags as a test spec (unset flags stay unset).
    pub fn spec(&self) -> TestSpec {
        TestSpec {
            db: self.db.clone(),
            bugs: (!self.bugs.is_empty()).then(|| self.bugs.clone()),
            db_options: (!self.db_options.is_empty())
                .then(|| self.db_options.iter().cloned().collect()),
            workload: self.workload.clone().map(WorkloadRef::Name),
            nemesis: self.nemesis.clone().map(NemesisRef::Name),
            hosts: match (&self.hosts, self.docker) {
                (Some(p), _) => Some(Hosts::Inventory(p.clone())),
                (None, true) => Some(Hosts::Docker),
                (None, false) => None,
            },
            nodes: self.nodes,
            time_limit: self.time_limit,
            concurrency: self.concurrency,
            rate: self.rate,
            seed: self.seed,
            recovery: self.recovery,
            allow_node_exits: self.allow_node_exits.then_some(true),
            ..TestSpec::default()
        }
    }
}

/// `NAME=VALUE`, the value read as a YAML scalar (`true`, `3`, `text`).
pub fn db_option(text: &str) -> Result<(String, serde_yaml_ng::Value), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {text:?}"))?;
    let value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(value).map_err(|e| format!("{name}: {e}"))?;
    Ok((name.trim().to_string(), value))
}

/// Options that are about this invocation, not the test.
#[derive(clap::Args, Debug, Clone)]
pub struct HarnessArgs {
    /// Where results go (`<dir>/<test>/<timestamp>/`).
    #[arg(long, default_value = "results", value_name = "DIR")]
    pub results_dir: PathBuf,
    /// Keep the cluster and nodes running after the run (local clusters print how to remove them).
    #[arg(long)]
    pub leave_running: bool,
    /// Do not install missing packages on the hosts; fail listing them.
    #[arg(long)]
    pub no_install: bool,
    /// Stop the run at the first nemesis action that fails (healing first).
    #[arg(long)]
    pub abort_on_nemesis_error: bool,
    /// Per checker; past it the verdict is unknown.
    #[arg(long, default_value = "60s")]
    pub check_time_limit: Span,
}

impl HarnessArgs {
    pub fn options(&self) -> RunOptions {
        RunOptions {
            store: Store::new(&self.results_dir),
            binary: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("faultline")),
            leave_running: self.leave_running,
            install: !self.no_install,
            abort_on_nemesis_error: self.abort_on_nemesis_error,
            check_time_limit: if self.check_time_limit.0.is_zero() {
                Duration::from_secs(60)
            } else {
                self.check_time_limit.0
            },
            progress: Progress::detect(),
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// A test file (YAML: db, workload, nemesis, ...); flags override it.
    #[arg(value_name = "TEST_YAML", conflicts_with = "replay")]
    pub test: Option<PathBuf>,
    /// Run a stored test.yaml again, exactly (same seed).
    #[arg(long, value_name = "TEST_YAML")]
    pub replay: Option<PathBuf>,
    #[command(flatten)]
    pub test_args: TestArgs,
    #[command(flatten)]
    pub harness: HarnessArgs,
}

impl RunArgs {
    /// The test to run.
    pub fn resolve(&self) -> anyhow::Result<Test> {
        let flags = self.test_args.spec();
        if let Some(path) = &self.replay {
            anyhow::ensure!(
                flags == TestSpec::default(),
                "--replay runs the stored test exactly as it was; drop the test flags (or edit a copy of the file and run it without --replay)"
            );
            return Ok(Test::load_to_run(path)?);
        }
        let text;
        let (base, source) = match &self.test {
            Some(path) => {
                let spec;
                (spec, text) = TestSpec::load(path)?;
                (spec, Source::file(path, &text).with_flags(&flags))
            }
            None => (TestSpec::default(), Source::command_line()),
        };
        let mut spec = base.overridden_by(&flags);
        if spec.db.is_none() && self.test.is_none() {
            spec.db = SystemRef::parse("raft").ok();
        }
        Ok(crate::suite::resolve(&spec, &source)?)
    }
}

/// `faultline run`: resolves, runs, prints the summary; returns how it ended.
pub fn run_command(args: &RunArgs) -> anyhow::Result<Outcome> {
    let test = args.resolve()?;
    let options = args.harness.options();
    let report = super::run::run(&test, &options)?;
    print!("{}", super::output::summary(&test, &report));
    Ok(report.outcome())
}
