//! `faultline node`: run one bundled system-under-test node (what the
//! harness deploys on every host).

use crate::outcome::Outcome;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct NodeArgs {
    /// Which system to run.
    #[arg(required_unless_present = "list_bugs", value_parser = system_parser())]
    system: Option<crate::nodes::System>,
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

/// The bundled nodes' names, as `faultline node` takes them.
pub fn system_parser() -> impl clap::builder::TypedValueParser<Value = crate::nodes::System> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(crate::nodes::System::NAMES)
        .try_map(|name| name.parse::<crate::nodes::System>())
}

/// Runs a node until it is stopped, or lists the bugs; bad arguments exit 3.
pub fn run(args: NodeArgs) -> ExitCode {
    use crate::nodes::{self, bugs::Bug};
    if args.list_bugs {
        print!("{}", nodes::bugs::list());
        return ExitCode::SUCCESS;
    }
    crate::logging::init(crate::logging::Setup::Commands);
    let Some(system) = args.system else {
        unreachable!("clap requires a system without --list-bugs")
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
