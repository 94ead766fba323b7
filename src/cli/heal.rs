//! `faultline heal`: undo the faults left on hosts by their heal journals,
//! or clean every orphaned run cluster (also `cluster down` without a name).

use crate::cluster;
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct HealArgs {
    /// A local cluster made by `cluster up` (or a run's, `runXXXXXX`): heal its hosts.
    #[arg(long, conflicts_with = "inventory")]
    name: Option<String>,
    /// An SSH lab: hosts.yaml (see README): heal its hosts.
    #[arg(long)]
    inventory: Option<PathBuf>,
}

/// Heals the hosts of the cluster or inventory named, or cleans every orphan.
pub fn run(args: HealArgs) -> anyhow::Result<()> {
    let cluster = match (args.name, args.inventory) {
        (Some(name), _) => cluster::open(&name)?,
        (None, Some(path)) => cluster::inventory::open(&path)?,
        (None, None) => return clean_orphans(),
    };
    let started = Instant::now();
    let undone =
        crate::nemesis::heal::heal_hosts(&cluster.remotes(), crate::net::DEFAULT_STATE_DIR)?;
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
pub fn clean_orphans() -> anyhow::Result<()> {
    let started = Instant::now();
    let crate::nemesis::leftovers::Sweep { cleaned, left } =
        crate::nemesis::leftovers::clean_orphans();
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
