//! `--db redis`: Debian's redis-server and redis-sentinel on a 3-node netns
//! cluster (root; the packages installed, as .ci/run does), driven by real
//! `faultline run`s. Without faults the register and the lock are valid;
//! with the primary cut off, Sentinel fails over while the old primary
//! still takes writes from the clients that follow its own Sentinel: the
//! register is not linearizable and the lock is held by two clients at
//! once. As in the bug matrix, a fault only sometimes lines up, so the
//! faulty runs are tried with a few seeds and one must catch it.
//! Runs are kept under cargo's target tmp dir (`redis/`).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const EXE: &str = env!("CARGO_BIN_EXE_faultline");

/// The primary that Sentinel names is cut off for 10 s, twice in a run.
const ISOLATE_PRIMARY: &str =
    "nemesis: {faults: [{partition: {shape: primaries, duration: 10s, interval: 5s}}]}\n";

struct Outcome {
    exit: i32,
    anomalies: Vec<String>,
    summary: String,
    dir: PathBuf,
}

fn run(name: &str, yaml: &str, seed: u64) -> Outcome {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("redis")
        .join(format!("{name}-{seed}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let test = dir.join("test.yaml");
    std::fs::write(&test, format!("db: redis\nnodes: 3\nrecovery: 3s\n{yaml}")).unwrap();
    let out = Command::new(EXE)
        .arg("run")
        .arg(&test)
        .args(["--seed", &seed.to_string(), "--no-install", "--results-dir"])
        .arg(dir.join("results"))
        .env("CI", "true")
        .output()
        .expect("faultline runs");
    let summary = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let exit = out.status.code().unwrap_or(-1);
    assert!(
        exit != 3,
        "{name} (seed {seed}): the harness failed\n{summary}"
    );
    let results = dir.join("results/latest/results.json");
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(&results)
            .unwrap_or_else(|e| panic!("{}: {e}\n{summary}", results.display())),
    )
    .unwrap();
    let anomalies = json["run"]["anomalies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(String::from))
        .collect();
    Outcome {
        exit,
        anomalies,
        summary,
        dir: dir.join("results/latest"),
    }
}

/// Valid on one seed, with every op ending one way or another and both
/// logs of every node collected.
fn valid_without_faults(name: &str, workload: &str) -> Outcome {
    let o = run(
        name,
        &format!("time_limit: 15s\nworkload: {workload}\nnemesis: none\n"),
        1,
    );
    assert_eq!(o.exit, 0, "{name} without faults:\n{}", o.summary);
    for node in ["n1", "n2", "n3"] {
        for log in ["node.log", "sentinel.log"] {
            let path = o.dir.join("nodes").join(node).join(log);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!text.is_empty(), "{} is empty", path.display());
        }
    }
    o
}

/// One of `seeds` makes the run invalid with `anomaly`.
fn caught_with_a_failover(name: &str, yaml: &str, anomaly: &str, seeds: &[u64]) {
    let mut tried = Vec::new();
    for &seed in seeds {
        let o = run(name, yaml, seed);
        if o.exit == 1 && o.anomalies.iter().any(|a| a == anomaly) {
            return;
        }
        tried.push(format!(
            "seed {seed}: exit {}, anomalies {:?}\n{}",
            o.exit, o.anomalies, o.summary
        ));
    }
    panic!(
        "{name}: no run found {anomaly} with seeds {seeds:?}:\n{}",
        tried.join("\n")
    );
}

#[test]
fn register_without_faults_is_valid() {
    let o = valid_without_faults("register-none", "register");
    // The primary is the first host, and the replicas say so.
    let conf = std::fs::read_to_string(o.dir.join("nodes/n2/redis.conf")).unwrap();
    assert!(conf.contains("replicaof "), "{conf}");
}

#[test]
fn lock_without_faults_is_valid() {
    let o = valid_without_faults("lock-none", "lock");
    // Locks were taken and given back, not only refused.
    let history = std::fs::read_to_string(o.dir.join("history.jsonl")).unwrap();
    let ok = |f: &str| {
        history
            .lines()
            .filter(|l| l.contains("\"type\":\"ok\"") && l.contains(&format!("\"f\":\"{f}\"")))
            .count()
    };
    assert!(
        ok("acquire") > 10 && ok("release") > 10,
        "acquires {} releases {}",
        ok("acquire"),
        ok("release")
    );
}

/// Writes taken by the cut-off primary are not seen by the new one's
/// clients, and vanish when the old primary is made its replica.
#[test]
fn a_partitioned_primary_breaks_the_register() {
    caught_with_a_failover(
        "register-isolate-primary",
        &format!("time_limit: 30s\nworkload: register\n{ISOLATE_PRIMARY}"),
        "not-linearizable",
        &[1, 2, 3],
    );
}

/// Clients of the old and of the new primary both acquire the lock.
#[test]
fn a_partitioned_primary_lets_two_clients_hold_the_lock() {
    caught_with_a_failover(
        "lock-isolate-primary",
        &format!("time_limit: 30s\nworkload: lock\n{ISOLATE_PRIMARY}"),
        "not-linearizable",
        &[1, 2, 3],
    );
}
