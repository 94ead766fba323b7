//! The `faultline` command line: parse, call into the library, map the verdict
//! to an exit code (0 valid, 1 invalid, 2 unknown, 3 the harness failed).
//! This file is the command tree and its dispatch; each command's arguments
//! and handler live in the library (`cli/`, `runner/`, `report/`).

use clap::{Parser, Subcommand};
use faultline::cli;
use faultline::logging::{self, Setup};
use faultline::outcome::Outcome;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "faultline",
    version,
    about = "Jepsen-style fault-injection testing with fast consistency checkers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a test: make or reach the hosts, deploy, drive the workload under the nemesis, check.
    Run(faultline::runner::args::RunArgs),
    /// Run a suite (a matrix of tests) for nightly CI; writes junit.xml.
    Suite(faultline::runner::suite::SuiteArgs),
    /// Work on results folders: merge the shards of a suite.
    #[command(subcommand)]
    Results(ResultsCommand),
    /// Run a suite's shards on Kubernetes: write the manifest.
    #[command(subcommand)]
    K8s(K8sCommand),
    /// Build the container image that runs suites (for Kubernetes, docker run).
    #[command(subcommand)]
    Image(ImageCommand),
    /// Check history files for linearizability; writes results.json.
    Check(faultline::runner::check::CheckArgs),
    /// Run a bundled system-under-test node (what the harness deploys).
    Node(cli::node::NodeArgs),
    /// Make, inspect and remove local clusters; deploy nodes on a cluster.
    #[command(subcommand)]
    Cluster(cli::cluster::ClusterCmd),
    /// Write report.html of a results folder again from its stored files.
    Report(faultline::report::cli::ReportArgs),
    /// Serve the results folder read-only over HTTP (localhost by default).
    Serve(faultline::report::cli::ServeArgs),
    /// Print performance figures.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Write a synthetic transactional history: a seeded simulated database,
    /// strictly serializable or with one anomaly injected.
    GenHistory(cli::gen_history::GenHistoryArgs),
    /// Run a nemesis file (or preset) against a deployed cluster, without a workload.
    Nemesis(cli::nemesis::NemesisArgs),
    /// Undo every fault faultline left on the hosts (after a crashed or killed run).
    ///
    /// With --name or --inventory: heal those hosts by their heal journals.
    /// Without either: clean every orphaned run cluster, as `cluster down`
    /// without --name does (heal its hosts, kill its nodes, remove it).
    Heal(cli::heal::HealArgs),
    /// Helper run inside a host: delay/jitter/reorder/corrupt outgoing packets via NFQUEUE
    /// (used where the kernel has no tc netem).
    Netdelay(faultline::net::packet::DelayConfig),
    /// Helper run on a host: shift, strobe or reset its clock (a libfaketime offset file,
    /// or the real clock with clock_settime).
    #[command(subcommand)]
    Clock(cli::clock::ClockCmd),
    /// Helper run on a host: a FUSE file system over a node's data directory that can lose
    /// what was not fsync'd (disk faults), and its control command.
    #[command(subcommand)]
    Lazyfs(cli::lazyfs::LazyfsCmd),
}

#[derive(Subcommand)]
enum ResultsCommand {
    /// Merge the results folders of a suite's shards (or machines) into one:
    /// junit.xml, summary.md, summary.json and index.html over every run;
    /// exits with the worst outcome.
    Merge(faultline::runner::merge::MergeArgs),
}

#[derive(Subcommand)]
enum K8sCommand {
    /// Write the manifest of an Indexed Job whose pod i runs shard i+1 of N
    /// of a suite, and of the suspended Job that merges their results.
    Job(faultline::fleet::k8s::K8sJobArgs),
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Build the image from this machine's files (no registry needed); print its tag.
    Build(faultline::fleet::image::ImageBuildArgs),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Check the reference corpora; print per-file and total times and peak memory.
    Check(faultline::runner::bench::BenchCheckArgs),
    /// Throughput and latency of a bundled system on loopback.
    Node(cli::bench::BenchNodeArgs),
    /// The Elle checker on generated list-append histories: time per phase
    /// and peak memory, at growing sizes.
    Elle(cli::bench::BenchElleArgs),
    /// The linearizability checker on generated cas-register histories with
    /// crashed operations: verdict, time and peak memory per clients and seed.
    Register(faultline::runner::bench_register::BenchRegisterArgs),
    /// The controller alone (workers, generator, history) against trivial nodes: ops/s.
    Controller(faultline::runner::bench_controller::BenchControllerArgs),
    /// Write the report of a synthetic 1,000,000-op run; print time and size.
    Report(faultline::report::bench::BenchReportArgs),
    /// Time `cluster up`, `status` and `down` on throwaway clusters.
    Cluster(cli::bench::BenchClusterArgs),
    /// Throughput and latency of a deployed system (Redis) on a local netns cluster.
    System(faultline::runner::bench_system::BenchSystemArgs),
}

fn main() -> ExitCode {
    // A panic is a harness failure (3), never Rust's default 101.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        // Except in one host's work: that panic is the host's error (fan_out).
        if !faultline::fan_out::is_worker() {
            std::process::exit(Outcome::HarnessError.exit_code().into());
        }
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            // clap quotes the bad argument whole: an excerpt, escaped.
            let text = faultline::history::text::clip_message(&e.render().to_string());
            eprint!("{text}");
            return ExitCode::from(Outcome::HarnessError);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    match cli.command {
        Command::Run(args) => {
            logging::init(Setup::Runs);
            exit_with(faultline::runner::args::run_command(&args).map(Outcome::exit_code))
        }
        Command::Suite(args) => {
            logging::init(Setup::Runs);
            exit_with(faultline::runner::suite::suite_command(&args).map(Outcome::exit_code))
        }
        Command::Results(ResultsCommand::Merge(args)) => {
            exit_with(faultline::runner::merge::merge_command(&args).map(Outcome::exit_code))
        }
        Command::K8s(K8sCommand::Job(args)) => exit_with(faultline::fleet::k8s::job_command(&args)),
        Command::Image(ImageCommand::Build(args)) => {
            logging::init(Setup::Commands);
            exit_with(faultline::fleet::image::build_command(&args))
        }
        Command::Check(args) => {
            exit_with(faultline::runner::check::run(&args).map(Outcome::exit_code))
        }
        Command::Node(args) => cli::node::run(args),
        Command::Bench(BenchCommand::Check(args)) => {
            exit_with(faultline::runner::bench::run(&args))
        }
        Command::Bench(BenchCommand::Node(args)) => cli::bench::node(args),
        Command::Bench(BenchCommand::Register(args)) => {
            exit_with(faultline::runner::bench_register::run(&args))
        }
        Command::Bench(BenchCommand::Elle(args)) => cli::bench::elle(args),
        Command::Bench(BenchCommand::Controller(args)) => {
            exit_with(faultline::runner::bench_controller::run(&args))
        }
        Command::GenHistory(args) => cli::gen_history::run(args),
        Command::Bench(BenchCommand::Report(args)) => {
            exit_with(faultline::report::bench::run(&args))
        }
        Command::Report(args) => exit_with(faultline::report::cli::report(&args)),
        Command::Serve(args) => exit_with(faultline::report::cli::serve(&args)),
        Command::Cluster(cmd) => {
            logging::init(Setup::Commands);
            exit_with(cli::cluster::run(cmd).map(|()| 0))
        }
        Command::Bench(BenchCommand::Cluster(args)) => exit_with(cli::bench::cluster(args)),
        Command::Bench(BenchCommand::System(args)) => {
            exit_with(faultline::runner::bench_system::run(&args))
        }
        Command::Nemesis(args) => {
            logging::init(Setup::Commands);
            exit_with(cli::nemesis::run(args).map(|()| 0))
        }
        Command::Heal(args) => {
            logging::init(Setup::Commands);
            exit_with(cli::heal::run(args).map(|()| 0))
        }
        Command::Netdelay(cfg) => {
            logging::init(Setup::Commands);
            exit_with(cli::netdelay::run(cfg).map(|()| 0))
        }
        Command::Clock(cmd) => exit_with(cli::clock::run(cmd).map(|()| 0)),
        Command::Lazyfs(cmd) => {
            logging::init(Setup::Commands);
            exit_with(cli::lazyfs::run(cmd).map(|()| 0))
        }
    }
}

/// A command's exit code, or 3 with the error on stderr.
fn exit_with(result: anyhow::Result<u8>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // Errors quote input (excerpts); no terminal escape gets through.
            let text = format!("{e:#}");
            eprintln!(
                "error: {}",
                faultline::history::text::escape_keep_lines(&text)
            );
            ExitCode::from(Outcome::HarnessError)
        }
    }
}
