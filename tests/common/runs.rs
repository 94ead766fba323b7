//! Real `faultline run`s of a test file, as a user runs them, and what
//! their results.json says: the system tests (etcd, Redis, PostgreSQL,
//! ZooKeeper, ...) share these.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How one `faultline run` ended.
pub struct Outcome {
    pub exit: i32,
    pub results: Value,
    /// stdout then stderr.
    pub summary: String,
    /// The run's results folder.
    pub dir: PathBuf,
}

impl Outcome {
    /// A checker's `valid` (true, false, "unknown") by name.
    pub fn checker(&self, name: &str) -> Value {
        self.results["run"]["checkers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == name)
            .map(|c| c["valid"].clone())
            .unwrap_or_else(|| panic!("no {name} checker in {}", self.summary))
    }

    /// The anomalies the run found, by name.
    pub fn anomalies(&self) -> Vec<String> {
        self.results["run"]["anomalies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(String::from))
            .collect()
    }

    /// Operations of the history that ended `type` (`ok`, `info`, `fail`).
    pub fn count(&self, type_: &str) -> u64 {
        self.results["run"]["ops"][type_].as_u64().unwrap_or(0)
    }
}

/// `faultline run` of the test file `yaml` with `seed`, in a fresh folder
/// `<cargo's target tmp dir>/<group>/<name>-seed<seed>` kept for
/// inspection; `extra` are more arguments. Panics when the harness itself
/// failed (exit 3) or wrote no results.json.
pub fn run(group: &str, name: &str, yaml: &str, seed: u64, extra: &[&str]) -> Outcome {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(group)
        .join(format!("{name}-seed{seed}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let test = dir.join("test.yaml");
    std::fs::write(&test, yaml).unwrap();
    let out = Command::new(super::BINARY)
        .arg("run")
        .arg(&test)
        .args(["--seed", &seed.to_string(), "--no-install", "--results-dir"])
        .arg(dir.join("results"))
        .args(extra)
        .env("CI", "true")
        .output()
        .expect("faultline runs");
    let summary = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let exit = out.status.code().unwrap_or(-1);
    println!("{name}, seed {seed}: exit {exit}\n{summary}");
    assert!(
        exit != 3,
        "{name} (seed {seed}): the harness failed\n{summary}"
    );
    let path = dir.join("results/latest/results.json");
    let results = serde_json::from_str(
        &std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}\n{summary}", path.display())),
    )
    .unwrap();
    Outcome {
        exit,
        results,
        summary,
        dir: dir.join("results/latest"),
    }
}

/// Runs with each seed until one is invalid with `anomaly`; panics with
/// every summary when none is. A fault only sometimes lines up with the
/// workload, so (as in the bug matrix) a few seeds are tried.
pub fn caught(group: &str, name: &str, yaml: &str, seeds: &[u64], anomaly: &str) -> Outcome {
    let mut tried = Vec::new();
    for &seed in seeds {
        let o = run(group, name, yaml, seed, &[]);
        if o.exit == 1 && o.anomalies().iter().any(|a| a == anomaly) {
            return o;
        }
        tried.push(format!("seed {seed}: exit {}\n{}", o.exit, o.summary));
    }
    panic!(
        "{name}: no seed of {seeds:?} found {anomaly}:\n{}",
        tried.join("\n")
    );
}

/// A power loss on every node every few seconds (`lose-unfsynced`: the
/// lazy file system under each data directory drops what was not
/// fsync'd), for the systems' durability settings.
const POWER_LOSS: &str = "nemesis: {faults: [{disk: {targets: all, mode: lose-unfsynced, duration: 2s, interval: 5s}}]}\n";

/// The register of `system` on one node under power losses: with `lossy`
/// (its `db_options:` that acknowledge writes before they are durable) it
/// loses acknowledged writes on one of a few seeds (a read finds an older
/// value, or none); with `durable` it is linearizable, and serves again
/// after every loss. One node, so that only the disk can lose a write (a
/// Redis failover to a replica that lagged loses some by itself).
pub fn durability(system: &str, lossy: &str, durable: &str) {
    let test = |options: &str| {
        format!(
            "db: {system}\nnodes: 1\ntime_limit: 20s\nrecovery: 3s\nconcurrency: 5\n\
             db_options: {{{options}}}\nworkload: register\n{POWER_LOSS}"
        )
    };
    caught(
        system,
        "power-loss-lossy",
        &test(lossy),
        &[1, 2, 3],
        "not-linearizable",
    );
    let o = run(system, "power-loss-durable", &test(durable), 1, &[]);
    assert_eq!(o.exit, 0, "{durable}:\n{}", o.summary);
    assert_eq!(
        o.checker("linearizable"),
        Value::Bool(true),
        "{}",
        o.summary
    );
    let history = std::fs::read_to_string(o.dir.join("history.jsonl")).unwrap();
    let ops: Vec<Value> = history
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let restarted = ops
        .iter()
        .position(|op| op["f"] == "stop-disk" && op["type"] == "info")
        .unwrap_or_else(|| panic!("no power loss ended:\n{}", o.summary));
    assert!(
        ops[restarted..]
            .iter()
            .any(|op| op["process"] != "nemesis" && op["type"] == "ok"),
        "nothing ok after the first power loss:\n{}",
        o.summary
    );
}

/// What a run's power losses (`lose-unfsynced` disk faults) did, from its
/// history: how many started and ended, the un-synced writes they undid,
/// and how long each start (kill, then every host's lazyfs `clear`) and
/// each stop (the restart) took.
#[derive(Debug)]
pub struct PowerLosses {
    pub started: usize,
    pub stopped: usize,
    /// Writes and truncations undone, summed over hosts and losses.
    pub changes_lost: u64,
    pub start_ms: Vec<f64>,
    pub stop_ms: Vec<f64>,
}

impl PowerLosses {
    /// Reads the run's history; panics unless every `start-disk` went
    /// through the lazy file system and says, for each of `nodes`, what it
    /// lost (a list, maybe empty).
    pub fn of(o: &Outcome, nodes: &[&str]) -> PowerLosses {
        let history = std::fs::read_to_string(o.dir.join("history.jsonl")).unwrap();
        let mut p = PowerLosses {
            started: 0,
            stopped: 0,
            changes_lost: 0,
            start_ms: Vec::new(),
            stop_ms: Vec::new(),
        };
        let done = history
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|op| op["process"] == "nemesis" && op["type"] == "info");
        for op in done {
            let v = &op["value"];
            let ms = v["elapsed_ms"].as_f64().unwrap_or(f64::NAN);
            if op["f"] == "start-disk" {
                assert_eq!(v["mechanism"], "lazyfs", "{op}\n{}", o.summary);
                for node in nodes {
                    let lost = v["hosts"][node]["lost"]
                        .as_array()
                        .unwrap_or_else(|| panic!("{node} says nothing lost: {op}"));
                    p.changes_lost += lost
                        .iter()
                        .map(|f| f["changes"].as_u64().unwrap_or(0))
                        .sum::<u64>();
                }
                p.started += 1;
                p.start_ms.push(ms);
            } else if op["f"] == "stop-disk" {
                p.stopped += 1;
                p.stop_ms.push(ms);
            }
        }
        p
    }

    /// One line of figures for the test's output.
    pub fn figures(&self) -> String {
        let range = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            match (v.first(), v.get(v.len() / 2), v.last()) {
                (Some(a), Some(m), Some(b)) => format!("min {a:.0} median {m:.0} max {b:.0} ms"),
                _ => "none".into(),
            }
        };
        format!(
            "{} power losses ({} ended), {} writes undone; apply {}; heal (restart) {}",
            self.started,
            self.stopped,
            self.changes_lost,
            range(&self.start_ms),
            range(&self.stop_ms)
        )
    }
}

/// The lazy file systems' mount time a run printed at deploy
/// (`lazyfs mount N ms`), if it mounted them.
pub fn lazyfs_mount_ms(o: &Outcome) -> Option<f64> {
    let (_, rest) = o.summary.split_once("lazyfs mount ")?;
    rest.split_whitespace().next()?.parse().ok()
}
