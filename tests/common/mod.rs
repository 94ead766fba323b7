//! Helpers shared by the cluster and deployment tests: real clusters with
//! unique names, torn down by a guard even when the test fails.
#![allow(dead_code)] // each test binary uses a part

/// Workload drivers, histories and fake peers for the node tests.
pub mod nodes;
/// `faultline run` of a test file and its results, for the system tests.
pub mod runs;

use faultline::cluster::{self, Backend, Cluster, ClusterGuard, UpOptions};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The faultline executable cargo built for the integration tests.
pub const BINARY: &str = env!("CARGO_BIN_EXE_faultline");

/// A cluster name unique on this machine (tests of one binary run in separate processes).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id() % 1_000_000)
}

/// Makes a local cluster of `nodes` hosts and prints how long it took. With
/// `ssh`, the hosts come back as the SSH lab of its generated inventory.
pub fn make(prefix: &str, backend: Backend, nodes: usize, ssh: bool) -> (Cluster, ClusterGuard) {
    let name = unique(prefix);
    let guard = ClusterGuard { name: name.clone() };
    let started = Instant::now();
    let opts = UpOptions {
        name: name.clone(),
        backend,
        nodes,
        ssh,
        disk_faults: false,
        binary: BINARY.into(),
    };
    let direct = cluster::up(&opts).expect("cluster up");
    println!(
        "{backend}{}: cluster up {:.0} ms",
        if ssh { "+ssh" } else { "" },
        started.elapsed().as_secs_f64() * 1e3
    );
    if !ssh {
        return (direct, guard);
    }
    (
        cluster::inventory::open(&inventory_of(&name)).unwrap(),
        guard,
    )
}

/// The hosts.yaml that `cluster up --ssh` wrote for cluster `name`.
pub fn inventory_of(name: &str) -> PathBuf {
    cluster::State::load(name)
        .unwrap()
        .inventory
        .expect("an inventory was written")
}

/// A fresh ed25519 key pair at `path` (and `path.pub`).
pub fn keygen(path: &Path) {
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "ssh-keygen {}", path.display());
}

/// Fails the test unless a Docker engine answers (CI has one).
pub fn docker_ok() {
    let ok = std::process::Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map(|o| o.status.success());
    assert!(
        matches!(ok, Ok(true)),
        "this test needs a running Docker engine (docker info failed)"
    );
}

/// Whether this runs under CI (`CI` set, and not to `false`): there, what a
/// test needs must be present, and a missing piece fails the test.
pub fn ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

/// A path inside the reference corpora (Porcupine's, Knossos' and Elle's
/// histories with their published verdicts; README, "The reference
/// corpora"): `$FAULTLINE_CORPUS/<rel>`, else `../shared/corpus/<rel>` beside
/// the checkout, where CI keeps them. A fresh clone has neither: `None`, and
/// the caller skips its test after a note on stderr. Under CI it fails.
pub fn corpus(rel: &str) -> Option<PathBuf> {
    let root = match std::env::var_os("FAULTLINE_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"),
    };
    if root.is_dir() {
        return Some(root.join(rel));
    }
    let note = format!(
        "SKIPPED: the reference corpora are not at {}; set FAULTLINE_CORPUS to where they are \
         (README, \"The reference corpora\")",
        root.display()
    );
    assert!(!ci(), "{note}: CI must have them");
    eprintln!("{note}");
    None
}
