//! The `faultline` command line: parse, call into the library, map the verdict
//! to an exit code (0 valid, 1 invalid, 2 unknown, 3 the harness failed).

use clap::{Args, Parser, Subcommand};
use faultline::cluster::{self, Backend};
use faultline::outcome::Outcome;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Prints to stdout; a closed pipe (`| head`) ends the program quietly, as
/// Unix tools do, instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        if let Err(e) = write!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

/// [`say!`] with a newline.
macro_rules! sayln {
    ($($arg:tt)*) => {{
        say!($($arg)*);
        say!("\n");
    }};
}

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
    /// Check history files for linearizability; writes results.json.
    Check(faultline::runner::check::CheckArgs),
    /// Run a bundled system-under-test node (what the harness deploys).
    Node(NodeArgs),
    /// Make, inspect and remove local clusters; deploy nodes on a cluster.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Write report.html of a results folder again from its stored files.
    Report(faultline::report::cli::ReportArgs),
    /// Serve the results folder read-only over HTTP (localhost by default).
    Serve(faultline::report::cli::ServeArgs),
    /// Print performance figures.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Write a synthetic transactional history: a seeded simulated database,
    /// strictly serializable or with one anomaly injected.
    GenHistory(GenHistoryArgs),
    /// Run a nemesis file (or preset) against a deployed cluster, without a workload.
    Nemesis(NemesisArgs),
    /// Undo every fault faultline left on the hosts (after a crashed or killed run).
    ///
    /// With --name or --inventory: heal those hosts by their heal journals.
    /// Without either: clean every orphaned run cluster, as `cluster down`
    /// without --name does (heal its hosts, kill its nodes, remove it).
    Heal(HealArgs),
    /// Helper run inside a host: delay/jitter/reorder/corrupt outgoing packets via NFQUEUE
    /// (used where the kernel has no tc netem).
    Netdelay(faultline::net::netdelay::DelayConfig),
    /// Helper run on a host: shift, strobe or reset its clock (a libfaketime offset file,
    /// or the real clock with clock_settime).
    #[command(subcommand)]
    Clock(ClockCmd),
}

#[derive(Args)]
struct NemesisArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// A nemesis file, or a preset name (none, partition-halves, partition-ring, ...).
    #[arg(long, default_value = "partition-halves")]
    nemesis: String,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 30)]
    time_limit_s: u64,
    /// The seed of every random choice (printed; random when not given).
    #[arg(long)]
    seed: Option<u64>,
    /// Stop (healing everything) at the first failed nemesis action.
    #[arg(long)]
    abort_on_nemesis_error: bool,
    /// The system deployed on the cluster (as given to `cluster deploy`).
    #[arg(long, default_value = "raft")]
    db: String,
    #[arg(long, default_value_t = 7000)]
    port: u16,
    /// The nodes were deployed with --faketime (clock faults move their offset files).
    #[arg(long)]
    faketime: bool,
}

#[derive(Args)]
struct HealArgs {
    /// A local cluster made by `cluster up` (or a run's, `runXXXXXX`): heal its hosts.
    #[arg(long, conflicts_with = "inventory")]
    name: Option<String>,
    /// An SSH lab: hosts.yaml (see README): heal its hosts.
    #[arg(long)]
    inventory: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ClockCmd {
    /// Shift the clock by MS milliseconds (negative: back).
    Bump {
        #[arg(long, allow_hyphen_values = true)]
        ms: i64,
        #[command(flatten)]
        target: ClockTargetArgs,
    },
    /// Flip between the current offset and DELTA_MS beyond it every PERIOD_MS, for DURATION_MS.
    Strobe {
        #[arg(long, allow_hyphen_values = true)]
        delta_ms: i64,
        #[arg(long)]
        period_ms: u64,
        #[arg(long)]
        duration_ms: u64,
        #[command(flatten)]
        target: ClockTargetArgs,
    },
    /// Undo every shift.
    Reset {
        #[command(flatten)]
        target: ClockTargetArgs,
    },
}

/// Whose clock: a libfaketime offset file, or the real clock.
#[derive(Args)]
struct ClockTargetArgs {
    /// A libfaketime FAKETIME_TIMESTAMP_FILE to rewrite instead of the real clock.
    #[arg(long, conflicts_with_all = ["state_file", "dry_run"])]
    faketime_file: Option<String>,
    /// Real clock: where the total shift is kept, so reset can undo it.
    #[arg(long, default_value = "/run/faultline/clock-offset-ms")]
    state_file: String,
    /// Real clock: compute and print, but never call clock_settime.
    #[arg(long)]
    dry_run: bool,
}

impl ClockTargetArgs {
    fn target(self) -> faultline::net::clock::ClockTarget {
        use faultline::net::clock::ClockTarget;
        match self.faketime_file {
            Some(file) => ClockTarget::Faketime { file },
            None => ClockTarget::Settime {
                state_file: self.state_file,
                dry_run: self.dry_run,
            },
        }
    }
}

#[derive(clap::Args)]
struct GenHistoryArgs {
    #[arg(long, value_parser = ["list-append", "rw-register"])]
    workload: String,
    /// How many transactions.
    #[arg(long, default_value_t = 10_000)]
    txns: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 20)]
    clients: usize,
    /// Keys in use at a time (each retires after --max-writes-per-key writes).
    #[arg(long, default_value_t = 1000)]
    keys: u32,
    #[arg(long, default_value_t = 32)]
    max_writes_per_key: u32,
    /// Fewest and most micro-ops per transaction.
    #[arg(long, default_value_t = 1)]
    min_txn_len: u32,
    #[arg(long, default_value_t = 4)]
    max_txn_len: u32,
    /// Percent of transactions that fail, and that end info.
    #[arg(long, default_value_t = 1)]
    fail_percent: u32,
    #[arg(long, default_value_t = 1)]
    info_percent: u32,
    /// Inject an anomaly: g0, g1a, g1b, g1c, g-single, g-nonadjacent,
    /// g2-item, lost-update, internal, future-read, dirty-update,
    /// duplicate-elements, incompatible-order, garbage-read, stale-read.
    #[arg(long)]
    anomaly: Option<String>,
    /// The seed (a random one is chosen and printed if absent).
    #[arg(long)]
    seed: Option<u64>,
    /// Where to write the JSONL history.
    #[arg(long)]
    out: std::path::PathBuf,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Check the reference corpora; print per-file and total times and peak memory.
    Check(faultline::runner::bench::BenchCheckArgs),
    /// Throughput and latency of a bundled system on loopback.
    Node(BenchNodeArgs),
    /// The Elle checker on generated list-append histories: time per phase
    /// and peak memory, at growing sizes.
    Elle(BenchElleArgs),
    /// The controller alone (workers, generator, history) against trivial nodes: ops/s.
    Controller(faultline::runner::bench_controller::BenchControllerArgs),
    /// Write the report of a synthetic 1,000,000-op run; print time and size.
    Report(faultline::report::bench::BenchReportArgs),
    /// Time `cluster up`, `status` and `down` on throwaway clusters.
    Cluster {
        #[command(flatten)]
        shape: ShapeArgs,
        /// How many up/down rounds.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Make a local cluster of network namespaces or Docker containers.
    Up {
        #[command(flatten)]
        shape: ShapeArgs,
        #[command(flatten)]
        name: NameArg,
    },
    /// Show a local cluster (all clusters without --name): who made it and whether
    /// that process still runs (orphaned or not); per host whether it answers,
    /// its node (running / stopped / gone, role, term, leader) and the faults
    /// still in place by its heal journal.
    Status {
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove a local cluster: heal its hosts by their journals, kill its nodes,
    /// remove exactly what `up` made (idempotent).
    ///
    /// Without --name (the default, no --all needed): every orphaned run cluster, i.e.
    /// one made by `faultline run` whose controller process is gone (killed). A cluster made with `cluster up`,
    /// left with `run --leave-running`, or whose run still runs is never removed
    /// without --name.
    Down {
        /// The cluster to remove (e.g. `faultline`, or a run's `runXXXXXX`).
        #[arg(long)]
        name: Option<String>,
    },
    /// Check every host for what faults and nodes need; install what is missing (apt-get, as root).
    Prepare {
        #[command(flatten)]
        target: TargetArgs,
        /// Only check: fail listing what is missing on which host.
        #[arg(long)]
        no_install: bool,
    },
    /// Upload this executable to every host, start the nodes of --db and wait until all answer.
    Deploy {
        #[command(flatten)]
        target: TargetArgs,
        /// The bundled system to run.
        #[arg(long, default_value = "raft")]
        db: String,
        /// The port every node listens on.
        #[arg(long, default_value_t = 7000)]
        port: u16,
        /// Start the nodes with this named bug; repeatable.
        #[arg(long = "bug")]
        bugs: Vec<String>,
        /// Run the nodes under libfaketime (needed by the clock nemesis on netns and Docker hosts).
        #[arg(long)]
        faketime: bool,
        /// Do not install missing packages; fail listing them instead.
        #[arg(long)]
        no_install: bool,
        #[arg(long, default_value_t = 30)]
        ready_timeout_s: u64,
    },
    /// Copy every node's log to DIR/<node>/node.log.
    Logs {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value = "logs")]
        out: PathBuf,
    },
}

/// Which hosts: a local cluster by name, or an SSH lab by inventory.
#[derive(Args)]
struct TargetArgs {
    /// A local cluster made by `cluster up`.
    #[arg(long, default_value = "faultline", conflicts_with = "inventory")]
    name: String,
    /// An SSH lab: hosts.yaml (see README).
    #[arg(long)]
    inventory: Option<PathBuf>,
}

impl TargetArgs {
    fn open(&self) -> anyhow::Result<cluster::Cluster> {
        Ok(match &self.inventory {
            Some(path) => cluster::inventory::open(path)?,
            None => cluster::open(&self.name)?,
        })
    }
}

/// What kind of local cluster, and how big.
#[derive(Args)]
struct ShapeArgs {
    #[arg(long, value_enum, default_value_t = Backend::Netns)]
    backend: Backend,
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// netns: run sshd in every host and write an SSH inventory (hosts.yaml).
    #[arg(long)]
    ssh: bool,
}

impl ShapeArgs {
    fn options(&self, name: &str) -> cluster::UpOptions {
        cluster::UpOptions {
            name: name.to_string(),
            backend: self.backend,
            nodes: self.nodes,
            ssh: self.ssh,
            binary: current_exe(),
        }
    }
}

#[derive(Args)]
struct NameArg {
    /// The cluster's name (a-z, 0-9, '-'); namespaces, interfaces, containers and subnets derive from it.
    #[arg(long, default_value = "faultline")]
    name: String,
}

#[derive(clap::Args)]
struct BenchElleArgs {
    /// Transaction counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    txns: Vec<usize>,
    #[arg(long, default_value_t = 20)]
    clients: usize,
    #[arg(long, default_value_t = 1000)]
    keys: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The consistency model to check (it decides the orders built).
    #[arg(long, default_value = "strict-serializable")]
    consistency: String,
    /// Where to write the generated histories (a temporary folder if absent).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

#[derive(clap::Args)]
struct BenchNodeArgs {
    /// Which system to start.
    #[arg(long, value_enum, default_value = "raft")]
    db: SystemArg,
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    #[arg(long, default_value_t = 50)]
    clients: usize,
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Share of register reads, 0..=100; the rest are writes.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    reads_percent: u32,
    /// Start the nodes with this named bug (e.g. no-fsync); repeatable.
    #[arg(long = "bug")]
    bugs: Vec<String>,
}

#[derive(clap::Args)]
struct NodeArgs {
    /// Which system to run.
    #[arg(value_enum, required_unless_present = "list_bugs")]
    system: Option<SystemArg>,
    /// Print the injectable bugs and exit.
    #[arg(long)]
    list_bugs: bool,
    /// This node's id, e.g. n1.
    #[arg(long, required_unless_present = "list_bugs")]
    id: Option<String>,
    /// Address for clients and peers, HOST:PORT.
    #[arg(long, required_unless_present = "list_bugs")]
    listen: Option<String>,
    /// The other nodes: ID=HOST:PORT,... (empty for a single node).
    #[arg(long, default_value = "")]
    peers: String,
    /// Where the node keeps its log.
    #[arg(long, required_unless_present = "list_bugs")]
    data_dir: Option<std::path::PathBuf>,
    /// Inject a named bug (see --list-bugs); repeatable.
    #[arg(long = "bug")]
    bugs: Vec<String>,
    /// Write the process id here.
    #[arg(long)]
    pidfile: Option<std::path::PathBuf>,
    /// Bank workload: number of accounts (0..N).
    #[arg(long, default_value_t = 5)]
    bank_accounts: u32,
    /// Bank workload: each account's starting balance.
    #[arg(long, default_value_t = 10)]
    bank_balance: i64,
    /// Shortest election timeout; elections start after [t, 2t) without a leader.
    #[arg(long, default_value_t = 300)]
    election_timeout_ms: u64,
    /// Leader heartbeat interval.
    #[arg(long, default_value_t = 50)]
    heartbeat_ms: u64,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SystemArg {
    Raft,
    Paxos,
    Twopc,
}

fn main() -> ExitCode {
    // A panic is a harness failure (3), never Rust's default 101.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::exit(Outcome::HarnessError.exit_code().into());
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
            faultline::runner::log::init();
            exit_with(faultline::runner::args::run_command(&args).map(Outcome::exit_code))
        }
        Command::Suite(args) => {
            faultline::runner::log::init();
            exit_with(faultline::runner::suite::suite_command(&args).map(Outcome::exit_code))
        }
        Command::Check(args) => {
            exit_with(faultline::runner::check::run(&args).map(Outcome::exit_code))
        }
        Command::Node(args) => node(args),
        Command::Bench(BenchCommand::Check(args)) => {
            exit_with(faultline::runner::bench::run(&args))
        }
        Command::Bench(BenchCommand::Node(args)) => bench_node(args),
        Command::Bench(BenchCommand::Elle(args)) => bench_elle(args),
        Command::Bench(BenchCommand::Controller(args)) => {
            exit_with(faultline::runner::bench_controller::run(&args))
        }
        Command::GenHistory(args) => gen_history(args),
        Command::Bench(BenchCommand::Report(args)) => {
            exit_with(faultline::report::bench::run(&args))
        }
        Command::Report(args) => exit_with(faultline::report::cli::report(&args)),
        Command::Serve(args) => exit_with(faultline::report::cli::serve(&args)),
        Command::Cluster(cmd) => {
            init_tracing();
            exit_with(run_cluster(cmd).map(|()| 0))
        }
        Command::Bench(BenchCommand::Cluster { shape, rounds }) => exit_with(
            cluster::bench::run(&shape.options("bench"), rounds, &mut std::io::stdout())
                .map(|()| 0)
                .map_err(anyhow::Error::from),
        ),
        Command::Nemesis(args) => {
            init_tracing();
            exit_with(run_nemesis(args).map(|()| 0))
        }
        Command::Heal(args) => {
            init_tracing();
            exit_with(heal(args).map(|()| 0))
        }
        Command::Netdelay(cfg) => {
            init_tracing();
            exit_with(netdelay(cfg).map(|()| 0))
        }
        Command::Clock(cmd) => exit_with(clock(cmd).map(|()| 0)),
    }
}

/// A command's exit code, or a harness error's with the error on stderr.
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

fn node(args: NodeArgs) -> ExitCode {
    use faultline::nodes::{self, System, bugs::Bug};
    if args.list_bugs {
        print!("{}", nodes::bugs::list());
        return ExitCode::SUCCESS;
    }
    init_tracing();
    let system = match args.system {
        Some(SystemArg::Raft) => System::Raft,
        Some(SystemArg::Paxos) => System::Paxos,
        Some(SystemArg::Twopc) => System::Twopc,
        None => unreachable!("clap requires a system without --list-bugs"),
    };
    let parsed = (|| -> Result<nodes::NodeConfig, String> {
        let bugs = args
            .bugs
            .iter()
            .map(|b| Bug::parse(system, b))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(nodes::NodeConfig {
            system,
            id: args.id.unwrap_or_default(),
            listen: args.listen.unwrap_or_default(),
            peers: nodes::parse_peers(&args.peers)?,
            data_dir: args.data_dir.unwrap_or_default(),
            bugs: nodes::bugs::Bugs::new(bugs),
            bank: nodes::state_machine::BankConfig {
                accounts: args.bank_accounts,
                initial_balance: args.bank_balance,
            },
            pidfile: args.pidfile,
            timing: nodes::Timing {
                election_timeout_min: std::time::Duration::from_millis(
                    args.election_timeout_ms.max(1),
                ),
                heartbeat: std::time::Duration::from_millis(args.heartbeat_ms.max(1)),
            },
        })
    })();
    let config = match parsed {
        Ok(c) => c,
        Err(e) => {
            eprintln!("faultline node: {e}");
            return ExitCode::from(Outcome::HarnessError);
        }
    };
    match nodes::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faultline node: {e:#}");
            ExitCode::from(Outcome::HarnessError)
        }
    }
}

fn bench_node(args: BenchNodeArgs) -> ExitCode {
    use faultline::client::bench;
    let system = match args.db {
        SystemArg::Raft => "raft",
        SystemArg::Paxos => "paxos",
        SystemArg::Twopc => "twopc",
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("faultline bench node: cannot find my own executable: {e}");
            return ExitCode::from(Outcome::HarnessError);
        }
    };
    let config = bench::BenchConfig {
        exe,
        system,
        nodes: args.nodes.max(1),
        clients: args.clients.max(1),
        duration: std::time::Duration::from_secs(args.duration_s.max(1)),
        reads_percent: args.reads_percent,
        node_args: args
            .bugs
            .iter()
            .flat_map(|b| ["--bug".to_string(), b.clone()])
            .collect(),
    };
    let report = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(bench::run(&config)));
    match report {
        Ok(report) => {
            print!("{}", report.render(&config));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("faultline bench node: {e:#}");
            ExitCode::from(Outcome::HarnessError)
        }
    }
}

fn gen_history(args: GenHistoryArgs) -> ExitCode {
    use faultline::generator::synthetic::{self, Inject, SynthOptions, TxnWorkload};
    let workload = match args.workload.as_str() {
        "rw-register" => TxnWorkload::RwRegister,
        _ => TxnWorkload::ListAppend,
    };
    let anomaly = match args
        .anomaly
        .as_deref()
        .map(str::parse::<Inject>)
        .transpose()
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("faultline gen-history: {e}");
            return ExitCode::from(Outcome::HarnessError);
        }
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let mut o = SynthOptions::new(workload, args.txns, seed);
    o.clients = args.clients;
    o.keys = args.keys;
    o.max_writes_per_key = args.max_writes_per_key;
    o.txn_len = [args.min_txn_len, args.max_txn_len];
    o.fail_percent = args.fail_percent;
    o.info_percent = args.info_percent;
    o.anomaly = anomaly;
    match synthetic::write_jsonl(&o, &args.out) {
        Ok(s) => {
            let expect = anomaly.map_or(String::new(), |a| {
                format!(
                    ", anomaly {} (a checker should report {})",
                    a.name(),
                    a.expected()
                )
            });
            println!(
                "wrote {} transactions ({} ops) to {}, seed {seed}{expect}",
                s.txns,
                s.ops,
                args.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("faultline gen-history: {}: {e}", args.out.display());
            ExitCode::from(Outcome::HarnessError)
        }
    }
}

fn bench_elle(args: BenchElleArgs) -> ExitCode {
    use faultline::runner::bench_elle::{ElleBench, run_elle, table};
    let fail = |e: String| {
        eprintln!("faultline bench elle: {e}");
        ExitCode::from(Outcome::HarnessError)
    };
    let model = match args.consistency.parse() {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.as_path(),
        None => match tempfile_dir() {
            Ok(d) => {
                tmp = d;
                tmp.as_path()
            }
            Err(e) => return fail(e.to_string()),
        },
    };
    let b = ElleBench {
        sizes: args.txns,
        clients: args.clients,
        keys: args.keys,
        seed: args.seed,
        model,
    };
    let result = run_elle(&b, dir, |m| eprintln!("{m}"));
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(dir);
    }
    match result {
        Ok(rows) => {
            println!(
                "Elle on list-append, {} clients, {} keys, seed {}, checked for {model}",
                b.clients, b.keys, b.seed
            );
            print!("{}", table(&rows));
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("{e:#}")),
    }
}

/// A fresh folder for generated files, under the system temp dir.
fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("faultline-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

fn run_nemesis(args: NemesisArgs) -> anyhow::Result<()> {
    use faultline::nemesis::{self, Schedule};
    let schedule = Schedule::resolve(&args.nemesis)?;
    let cluster = args.target.open()?;
    let options = faultline::db::DbOptions {
        db: args.db,
        port: args.port,
        faketime: args.faketime,
        ..Default::default()
    };
    let db = std::sync::Arc::new(faultline::db::Db::attach(&cluster, options)?);
    let seed = args.seed.unwrap_or_else(rand::random);
    eprintln!(
        "nemesis {} on cluster {} for {} s, seed {seed}",
        args.nemesis, cluster.name, args.time_limit_s
    );
    let options = nemesis::Options {
        abort_on_error: args.abort_on_nemesis_error,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let summary = runtime.block_on(nemesis::standalone::run(
        db,
        schedule,
        seed,
        std::time::Duration::from_secs(args.time_limit_s),
        options,
        std::io::stdout(),
    ))?;
    eprintln!(
        "{} actions, {} failed; seed {seed}",
        summary.actions,
        summary.failures.len()
    );
    for f in &summary.failures {
        eprintln!("  failed: {f}");
    }
    Ok(())
}

fn heal(args: HealArgs) -> anyhow::Result<()> {
    let cluster = match (args.name, args.inventory) {
        (Some(name), _) => cluster::open(&name)?,
        (None, Some(path)) => cluster::inventory::open(&path)?,
        (None, None) => return clean_orphans(),
    };
    let started = Instant::now();
    let undone = faultline::nemesis::heal::heal_hosts(
        &cluster.remotes(),
        faultline::net::DEFAULT_STATE_DIR,
    )?;
    for (host, lines) in &undone {
        if lines.is_empty() {
            println!("{host}: nothing to heal");
        } else {
            println!("{host}: undid {}", lines.join(", "));
        }
    }
    println!(
        "healed {} hosts in {:.0} ms",
        undone.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

/// `cluster down` and `heal` without a name: every orphaned run cluster
/// is healed, its nodes killed, and removed; the others are listed.
fn clean_orphans() -> anyhow::Result<()> {
    let started = Instant::now();
    let faultline::nemesis::leftovers::Sweep { cleaned, left } =
        faultline::nemesis::leftovers::clean_orphans();
    for c in &cleaned {
        say!("{c}");
    }
    sayln!(
        "cleaned {} orphaned cluster{} in {:.0} ms",
        cleaned.len(),
        if cleaned.len() == 1 { "" } else { "s" },
        started.elapsed().as_secs_f64() * 1e3
    );
    for (name, standing) in &left {
        match standing {
            Ok(s @ cluster::Standing::InUse { .. }) => sayln!("left alone: {name}: {s}"),
            Ok(s) => sayln!(
                "left alone: {name}: {s} (`faultline cluster down --name {name}` removes it)"
            ),
            Err(e) => sayln!("left alone: {name}: cannot read its state: {e}"),
        }
    }
    let failed: Vec<String> = cleaned
        .iter()
        .filter_map(|c| c.error.as_ref().map(|e| format!("{}: {e}", c.name)))
        .collect();
    anyhow::ensure!(
        failed.is_empty(),
        "could not remove {} cluster(s):\n  {}",
        failed.len(),
        failed.join("\n  ")
    );
    Ok(())
}

fn netdelay(cfg: faultline::net::netdelay::DelayConfig) -> anyhow::Result<()> {
    let stats = faultline::net::netdelay::run(&cfg)?;
    eprintln!(
        "netdelay: {} packets ({} reordered, {} corrupted, {} passed over the bound)",
        stats.packets, stats.reordered, stats.corrupted, stats.passed_over_bound
    );
    Ok(())
}

fn clock(cmd: ClockCmd) -> anyhow::Result<()> {
    let total = match cmd {
        ClockCmd::Bump { ms, target } => target.target().bump(ms)?,
        ClockCmd::Strobe {
            delta_ms,
            period_ms,
            duration_ms,
            target,
        } => {
            let target = target.target();
            let stop = faultline::net::stop_on_signals();
            let flips = target.strobe(delta_ms, period_ms, duration_ms, stop)?;
            eprintln!("strobe: {flips} flips");
            target.current_ms()?
        }
        ClockCmd::Reset { target } => target.target().reset()?,
    };
    println!("{}", faultline::net::total_line(total));
    Ok(())
}

fn current_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("faultline"))
}

fn run_cluster(cmd: ClusterCmd) -> anyhow::Result<()> {
    match cmd {
        ClusterCmd::Up { shape, name } => {
            let started = Instant::now();
            let opts = shape.options(&name.name);
            // By hand: never taken for an orphan, whatever its name.
            let made = cluster::up_as(&opts, cluster::Purpose::Hand)?;
            sayln!(
                "cluster {} up: {} {} hosts in {:.0} ms",
                made.name,
                made.hosts.len(),
                made.backend,
                started.elapsed().as_secs_f64() * 1e3
            );
            say!("{}", cluster::describe(&made));
            Ok(())
        }
        ClusterCmd::Status { name } => {
            let names = name.map_or_else(cluster::list, |n| vec![n]);
            if names.is_empty() {
                sayln!(
                    "no local clusters (state in {})",
                    cluster::clusters_dir().display()
                );
            }
            // One unreadable cluster does not hide the others.
            let mut failed = Vec::new();
            for name in names {
                match faultline::nemesis::leftovers::inspect(&name) {
                    Ok(report) => say!("{report}"),
                    Err(e) => {
                        sayln!("cluster {name}: cannot inspect: {e}");
                        failed.push(format!("{name}: {e}"));
                    }
                }
            }
            anyhow::ensure!(failed.is_empty(), "{}", failed.join("; "));
            Ok(())
        }
        ClusterCmd::Prepare { target, no_install } => {
            let c = target.open()?;
            let started = Instant::now();
            faultline::os::prepare(
                &c.remotes(),
                &faultline::os::requirements(&c.host_dir),
                !no_install,
            )?;
            sayln!(
                "{} hosts ready in {:.0} ms",
                c.hosts.len(),
                started.elapsed().as_secs_f64() * 1e3
            );
            Ok(())
        }
        ClusterCmd::Deploy {
            target,
            db,
            port,
            bugs,
            faketime,
            no_install,
            ready_timeout_s,
        } => {
            let c = target.open()?;
            let options = faultline::db::DbOptions {
                db,
                port,
                bugs,
                faketime,
                install: !no_install,
                ready_timeout: std::time::Duration::from_secs(ready_timeout_s),
                node_args: Vec::new(),
            };
            let started = Instant::now();
            let (deployed, timings) = faultline::db::deploy(&c, &current_exe(), options)?;
            sayln!(
                "{} on {} hosts of {} in {:.0} ms ({timings})",
                deployed.options.db,
                c.hosts.len(),
                c.name,
                started.elapsed().as_secs_f64() * 1e3
            );
            for h in &c.hosts {
                sayln!("  {:<4} {}", h.name, deployed.addr(&h.name)?);
            }
            Ok(())
        }
        ClusterCmd::Logs { target, out } => {
            let c = target.open()?;
            let db = faultline::db::Db::attach(&c, faultline::db::DbOptions::default())?;
            for path in db.download_logs(&out)? {
                sayln!("{}", path.display());
            }
            Ok(())
        }
        ClusterCmd::Down { name: None } => clean_orphans(),
        ClusterCmd::Down { name: Some(name) } => {
            let started = Instant::now();
            match faultline::nemesis::leftovers::clean(&name)? {
                Some(cleaned) => {
                    say!("{cleaned}");
                    if let Some(e) = cleaned.error {
                        return Err(e.into());
                    }
                    sayln!(
                        "cluster {name} down in {:.0} ms",
                        started.elapsed().as_secs_f64() * 1e3
                    );
                }
                None => sayln!("no cluster named {name} (nothing to do)"),
            }
            Ok(())
        }
    }
}

/// Logs go to stderr; `RUST_LOG` overrides the default `info` level.
fn init_tracing() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // Colours only on a terminal: node logs usually go to files.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}
