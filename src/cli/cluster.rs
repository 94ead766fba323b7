//! `faultline cluster`: make, inspect and remove local clusters; prepare
//! hosts, deploy nodes on them and fetch their logs.

use super::{NameArg, ShapeArgs, TargetArgs, current_exe};
use crate::cluster;
use clap::Subcommand;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Subcommand)]
pub enum ClusterCmd {
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
        /// The system to run.
        #[arg(long, default_value = "raft", value_parser = crate::system::value_parser())]
        db: crate::system::SystemRef,
        /// The port every node listens on.
        #[arg(long, default_value_t = 7000)]
        port: u16,
        /// Start the nodes with this named bug; repeatable.
        #[arg(long = "bug")]
        bugs: Vec<String>,
        /// Run the nodes under libfaketime (needed by the clock nemesis on netns and Docker hosts).
        #[arg(long)]
        faketime: bool,
        /// Put each node's data directory on the lazy file system (`faultline
        /// lazyfs`), for disk faults by hand: `faultline nemesis`, `lazyfs
        /// ctl`. Needs fuse3 and /dev/fuse on every host (a Docker cluster:
        /// `cluster up --disk-faults`); `cluster down` or `heal` unmounts it.
        #[arg(long)]
        lazyfs: bool,
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

/// Runs one `cluster` subcommand; what it made or found goes to stdout.
pub fn run(cmd: ClusterCmd) -> anyhow::Result<()> {
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
                match crate::nemesis::leftovers::inspect(&name) {
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
            crate::os::prepare(
                &c.remotes(),
                &crate::os::requirements(&c.host_dir),
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
            lazyfs,
            no_install,
            ready_timeout_s,
        } => {
            let c = target.open()?;
            let options = crate::system::DeployOptions {
                port,
                bugs,
                faketime,
                lazyfs,
                install: !no_install,
                ready_timeout: std::time::Duration::from_secs(ready_timeout_s),
                binary: current_exe(),
                workload: None,
                db_options: Default::default(),
                run_dir: None,
            };
            let started = Instant::now();
            let (deployed, timings) = crate::system::deploy(db.get(), &c, &options)?;
            sayln!(
                "{} on {} hosts of {} in {:.0} ms ({timings})",
                db.name(),
                c.hosts.len(),
                c.name,
                started.elapsed().as_secs_f64() * 1e3
            );
            for e in deployed.endpoints() {
                sayln!("  {:<4} {}", e.name, e.addr);
            }
            Ok(())
        }
        ClusterCmd::Logs { target, out } => {
            let c = target.open()?;
            // The bundled nodes all keep their log in the same place.
            let raft = crate::system::SystemRef::parse("raft").map_err(anyhow::Error::msg)?;
            let db = raft.attach(&c, &crate::system::DeployOptions::default())?;
            for path in db.download_logs(&out)? {
                sayln!("{}", path.display());
            }
            Ok(())
        }
        ClusterCmd::Down { name: None } => super::heal::clean_orphans(),
        ClusterCmd::Down { name: Some(name) } => {
            let started = Instant::now();
            match crate::nemesis::leftovers::clean(&name)? {
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
