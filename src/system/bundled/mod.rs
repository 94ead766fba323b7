//! The bundled systems under test: Raft, Multi-Paxos and two-phase commit,
//! the nodes in `crate::nodes`, run as `faultline node <name>` from
//! faultline's own executable (uploaded to every host by
//! [`crate::system::deploy`]).

pub mod client;
pub mod db;
mod voters;

use crate::checker::logs::{LeaderPattern, LogPatterns};
use crate::cluster::Cluster;
use crate::nodes::System as Node;
use crate::nodes::bugs;
use crate::system::{Clients, Db, DbError, DeployOptions, Endpoint, System};
use std::sync::Arc;
use std::time::Duration;

/// One of the bundled systems.
pub struct Bundled(Node);

impl Bundled {
    pub const RAFT: Bundled = Bundled(Node::Raft);
    pub const PAXOS: Bundled = Bundled(Node::Paxos);
    pub const TWOPC: Bundled = Bundled(Node::Twopc);
    pub const THREEPC: Bundled = Bundled(Node::Threepc);
}

impl System for Bundled {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn workloads(&self) -> Vec<&'static str> {
        // Every node runs the same state machine (`nodes::state_machine`),
        // which has no leases, so no locks; 2PC splits operations over
        // participants and has no counter (nor has 3PC, which splits the same way).
        match self.0 {
            Node::Raft | Node::Paxos => vec![
                "register",
                "list-append",
                "rw-register",
                "bank",
                "set",
                "counter",
            ],
            Node::Twopc | Node::Threepc => {
                vec!["register", "list-append", "rw-register", "bank", "set"]
            }
        }
    }

    fn bugs(&self) -> Vec<(&'static str, &'static str)> {
        bugs::CATALOG
            .iter()
            .filter(|(_, systems, ..)| systems.contains(&self.0))
            .map(|(_, _, name, what)| (*name, *what))
            .collect()
    }

    /// The nodes' own constants: what they print when they fail, and (Raft)
    /// when they win an election.
    fn log_patterns(&self) -> LogPatterns {
        LogPatterns {
            fatal: crate::nodes::FATAL_LOG_LINES.map(String::from).to_vec(),
            leader: match self.0 {
                Node::Raft => Some(LeaderPattern {
                    text: crate::nodes::raft::BECAME_LEADER.into(),
                    term_field: crate::nodes::raft::TERM_FIELD.into(),
                }),
                // They log no elections.
                Node::Paxos | Node::Twopc | Node::Threepc => None,
            },
            notable: match self.0 {
                Node::Threepc => vec![crate::nodes::threepc::SPLIT_RISK.into()],
                _ => Vec::new(),
            },
        }
    }

    fn start(&self, cluster: &Cluster, options: &DeployOptions) -> Result<Arc<dyn Db>, DbError> {
        Ok(Arc::new(db::start(cluster, self.0, options)?))
    }

    fn attach(&self, cluster: &Cluster, options: &DeployOptions) -> Result<Arc<dyn Db>, DbError> {
        Ok(Arc::new(db::BundledDb::attach(cluster, self.0, options)?))
    }

    fn clients(
        &self,
        endpoints: Vec<Endpoint>,
        connect_timeout: Duration,
        _: &DeployOptions,
    ) -> Arc<dyn Clients> {
        Arc::new(client::Clients(Arc::new(client::Pool::new(
            endpoints,
            connect_timeout,
        ))))
    }
}
