//! `faultline run` end to end on real 3-node netns clusters (root): the
//! results folder, replay with the same seed, bad input, and the workload
//! lasting its whole time limit.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXE: &str = env!("CARGO_BIN_EXE_faultline");

fn faultline(args: &[&str], results: &Path) -> Output {
    Command::new(EXE)
        .args(args)
        .arg("--results-dir")
        .arg(results)
        .env("CI", "true")
        .output()
        .expect("faultline runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn latest(results: &Path) -> PathBuf {
    std::fs::canonicalize(results.join("latest")).expect("results/latest points at the run")
}

fn history(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_run_leaves_a_complete_results_folder_and_replays_with_the_same_faults() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let nemesis = tmp.path().join("halves.yaml");
    std::fs::write(
        &nemesis,
        "faults: [{partition: {shape: random-halves, duration: 1s, interval: 500ms}}]\n",
    )
    .unwrap();
    let args = [
        "run",
        "--db",
        "raft",
        "--workload",
        "bank",
        "--nemesis",
        nemesis.to_str().unwrap(),
        "--nodes",
        "3",
        "--time-limit",
        "5s",
        "--recovery",
        "1s",
        "--seed",
        "11",
    ];
    let first = faultline(&args, &results);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let dir = latest(&results);
    for file in [
        "history.jsonl",
        "test.yaml",
        "results.json",
        "report.html",
        "junit.xml",
        "faultline.log",
        "nodes/n1/node.log",
        "nodes/n3/node.log",
    ] {
        assert!(
            dir.join(file).is_file(),
            "{file} missing in {}",
            dir.display()
        );
    }
    assert!(
        results.join("index.html").is_file(),
        "the results index is written after each run"
    );
    let out = text(&first);
    assert!(out.contains("seed: 11") && out.contains("VALID"), "{out}");

    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["valid"], true);
    let run = &json["run"];
    assert_eq!(
        (run["seed"].as_u64(), run["db"].as_str()),
        (Some(11), Some("raft"))
    );
    let checkers: Vec<&str> = run["checkers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(checkers, ["bank", "logs", "election", "nodes"]);
    let availability = &run["availability"];
    assert!(
        availability["ok_per_s"].as_f64().unwrap() > 10.0,
        "{availability}"
    );
    assert!(run["ops"]["ok"].as_u64().unwrap() > 100, "{run}");

    // The workload lasts its whole time limit, faults or not.
    let ops = history(&dir);
    let last_client_ns = ops
        .iter()
        .filter(|o| o["process"].is_u64())
        .map(|o| o["time"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(
        last_client_ns > 4_500_000_000,
        "the last client op came at {last_client_ns} ns of a 5 s run"
    );

    // Same seed, same schedule of faults: the grudges come out the same.
    let grudges = |ops: &[Value]| -> Vec<Value> {
        ops.iter()
            .filter(|o| o["f"] == "start-partition" && o["type"] == "invoke")
            .map(|o| o["value"]["grudge"].clone())
            .collect()
    };
    let replay = faultline(
        &["run", "--replay", dir.join("test.yaml").to_str().unwrap()],
        &results,
    );
    assert_eq!(replay.status.code(), Some(0), "{}", text(&replay));
    let again = latest(&results);
    assert_ne!(again, dir);
    assert_eq!(
        std::fs::read_to_string(again.join("test.yaml")).unwrap(),
        std::fs::read_to_string(dir.join("test.yaml")).unwrap()
    );
    let (a, b) = (grudges(&ops), grudges(&history(&again)));
    assert!(!a.is_empty(), "the nemesis partitioned at least once");
    let n = a.len().min(b.len());
    assert_eq!(a[..n], b[..n], "the replay cut the same nodes off");
}

#[test]
fn bad_input_exits_3_says_where_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let test = tmp.path().join("t.yaml");
    std::fs::write(&test, "db: raft\nworkload: register\nnemsis: kill\n").unwrap();
    let o = faultline(&["run", test.to_str().unwrap()], &results);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("t.yaml:3:1: unknown field `nemsis`"),
        "{}",
        text(&o)
    );

    let o = faultline(&["run", "--workload", "regster"], &results);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        text(&o).contains("unknown workload \"regster\""),
        "{}",
        text(&o)
    );

    let o = faultline(&["run", "--nemesis", "partition-sideways"], &results);
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o).contains("partition-sideways"), "{}", text(&o));

    let o = faultline(&["run", "--time-limit", "ten"], &results);
    assert_eq!(
        o.status.code(),
        Some(3),
        "a usage error is a harness error too"
    );

    assert!(
        !results.exists(),
        "nothing is written for a test that does not resolve"
    );
}

#[test]
fn a_suite_with_a_misspelt_name_exits_3_before_running_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let suite = tmp.path().join("s.yaml");
    // The bad name is in the last cell of the matrix, and in a shard that
    // would not run it: the suite still fails at once.
    std::fs::write(
        &suite,
        "name: s\nmatrix:\n  db: [raft]\n  workload: [register]\n  nemesis: [kill, kill-votrs]\n  seeds: [1]\n",
    )
    .unwrap();
    let o = faultline(
        &["suite", suite.to_str().unwrap(), "--shard", "1/2"],
        &results,
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("s.yaml:") && text(&o).contains("kill-votrs"),
        "{}",
        text(&o)
    );
    assert!(!results.exists(), "no test ran, no junit.xml was written");
}

/// Final reads read the keys the main phase left in use. They used to come
/// from a fresh generator with the run's seed, which read the first keys,
/// retired long before, and never the keys written last.
#[test]
fn final_reads_read_the_keys_written_last() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let workload = tmp.path().join("la.yaml");
    std::fs::write(
        &workload,
        "kind: list-append\nkeys: 2\nmax_writes_per_key: 4\ntxn_len: [1, 2]\n",
    )
    .unwrap();
    let o = faultline(
        &[
            "run",
            "--db",
            "raft",
            "--workload",
            workload.to_str().unwrap(),
            "--nemesis",
            "none",
            "--nodes",
            "3",
            "--time-limit",
            "2s",
            "--recovery",
            "500ms",
            "--seed",
            "5",
        ],
        &results,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let ops = history(&latest(&results));
    let keys_of = |op: &Value, f: &str| -> Vec<u64> {
        op["value"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m[0] == f)
            .map(|m| m[1].as_u64().unwrap())
            .collect()
    };
    let invokes: Vec<&Value> = ops
        .iter()
        .filter(|o| o["type"] == "invoke" && o["f"] == "txn")
        .collect();
    let newest_appended = invokes
        .iter()
        .flat_map(|o| keys_of(o, "append"))
        .max()
        .unwrap();
    assert!(
        newest_appended >= 4,
        "keys retired during the run: {newest_appended}"
    );
    let last = invokes.last().unwrap();
    let read = keys_of(last, "r");
    assert_eq!(
        read.len(),
        2,
        "the last op is a final read of every key in use: {last}"
    );
    assert!(
        read.contains(&newest_appended),
        "the final reads read {read:?}, not the key appended last ({newest_appended})"
    );
}

/// The counter workload on the systems that declare it, and refused at once
/// (exit 3, before any host is made) on the one that does not.
#[test]
fn counter_runs_on_raft_and_twopc_refuses_it_before_making_hosts() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let args = |db: &'static str| {
        [
            "run",
            "--db",
            db,
            "--workload",
            "counter",
            "--nemesis",
            "none",
            "--nodes",
            "3",
            "--time-limit",
            "2s",
            "--recovery",
            "500ms",
            "--seed",
            "3",
        ]
    };
    let o = faultline(&args("raft"), &results);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let dir = latest(&results);
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let counter = &json["run"]["checkers"][0];
    assert_eq!(counter["name"], "counter", "{json}");
    assert_eq!(counter["valid"], true, "{counter}");
    assert!(
        counter["detail"]["reads_checked"].as_u64().unwrap() > 10,
        "{counter}"
    );
    let ops = history(&dir);
    assert!(
        ops.iter().any(|o| o["f"] == "add" && o["type"] == "ok"),
        "acknowledged adds"
    );

    let refused = tmp.path().join("refused");
    let o = faultline(&args("twopc"), &refused);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("twopc cannot run a counter workload; it runs: register"),
        "{}",
        text(&o)
    );
    assert!(!refused.exists(), "nothing was run or written");
}
