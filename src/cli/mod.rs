//! The commands that drive several parts of faultline and have no one home
//! module: their clap arguments and what they do, one file per command
//! family. `main.rs` holds the command tree and dispatch only; `run`,
//! `suite` and `check` live in `runner/`, `report` and `serve` in `report/`.
//!
//! Not here: exit codes (`main.rs`), the work itself (the modules named for
//! it).

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

pub mod bench;
pub mod clock;
pub mod cluster;
pub mod gen_history;
pub mod heal;
pub mod lazyfs;
pub mod nemesis;
pub mod netdelay;
pub mod node;

use crate::cluster::{self as clusters, Backend};
use clap::Args;
use std::path::PathBuf;

/// Which hosts: a local cluster by name, or an SSH lab by inventory.
#[derive(Args)]
pub struct TargetArgs {
    /// A local cluster made by `cluster up`.
    #[arg(long, default_value = "faultline", conflicts_with = "inventory")]
    name: String,
    /// An SSH lab: hosts.yaml (see README).
    #[arg(long)]
    inventory: Option<PathBuf>,
}

impl TargetArgs {
    pub fn open(&self) -> anyhow::Result<clusters::Cluster> {
        Ok(match &self.inventory {
            Some(path) => clusters::inventory::open(path)?,
            None => clusters::open(&self.name)?,
        })
    }
}

/// What kind of local cluster, and how big.
#[derive(Args)]
pub struct ShapeArgs {
    #[arg(long, value_enum, default_value_t = Backend::Netns)]
    backend: Backend,
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// netns: run sshd in every host and write an SSH inventory (hosts.yaml).
    #[arg(long)]
    ssh: bool,
    /// docker: give every container /dev/fuse and CAP_SYS_ADMIN, for disk
    /// faults (the lazy file system under each node); `run` does so itself
    /// for a test with disk faults.
    #[arg(long)]
    disk_faults: bool,
}

impl ShapeArgs {
    pub fn options(&self, name: &str) -> clusters::UpOptions {
        clusters::UpOptions {
            name: name.to_string(),
            backend: self.backend,
            nodes: self.nodes,
            ssh: self.ssh,
            disk_faults: self.disk_faults,
            binary: current_exe(),
        }
    }
}

#[derive(Args)]
pub struct NameArg {
    /// The cluster's name (a-z, 0-9, '-'); namespaces, interfaces, containers and subnets derive from it.
    #[arg(long, default_value = "faultline")]
    name: String,
}

/// This executable, to upload to hosts (`faultline` on the PATH when unknown).
pub fn current_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("faultline"))
}
