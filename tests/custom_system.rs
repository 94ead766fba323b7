//! A user's own system (`db: {kind: custom, ...}`) through `faultline run`
//! on real 3-node netns clusters (root): the example under
//! examples/redis-register (Redis and a Python client), the same system
//! without durable writes (caught), and client programs that answer garbage
//! or die (their ops are `info`, they are restarted, the run completes).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXE: &str = env!("CARGO_BIN_EXE_faultline");
const EXAMPLE: &str = "examples/redis-register/test.yaml";

/// `faultline run` from the repository's root (the example's client path is
/// relative to it).
fn run(test: &Path, results: &Path, extra: &[&str]) -> Output {
    Command::new(EXE)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("run")
        .arg(test)
        .args(extra)
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

fn count(ops: &[Value], process_is_client: bool, kind: &str) -> usize {
    ops.iter()
        .filter(|o| o["process"].is_u64() == process_is_client && o["type"] == kind)
        .count()
}

/// The example as shipped: one Redis per host, every write fsync'd, the
/// client on the first node; partitions and kills of every node. A
/// single-node register with durable writes is linearizable.
#[test]
fn the_example_is_valid_under_partitions_and_kills() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let o = run(
        Path::new(EXAMPLE),
        &results,
        &["--time-limit", "12s", "--seed", "5"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let dir = latest(&results);
    let ops = history(&dir);
    assert!(count(&ops, true, "ok") > 100, "{}", text(&o));
    let kills: Vec<&Value> = ops
        .iter()
        .filter(|o| o["f"] == "kill" && o["type"] == "info")
        .collect();
    assert!(!kills.is_empty(), "no kill happened");
    assert!(
        kills.iter().all(|k| k["value"]["pids"]["n1"].is_u64()),
        "{kills:?}"
    );
    assert!(
        ops.iter()
            .any(|o| o["f"] == "start-partition" && o["type"] == "info"),
        "no partition happened"
    );
    for node in ["n1", "n2", "n3"] {
        let log = std::fs::read_to_string(dir.join(format!("nodes/{node}/node.log"))).unwrap();
        // Started at deploy and again after each kill.
        assert!(
            log.matches("Ready to accept connections").count() >= 2,
            "{node}: {log}"
        );
    }
}

/// The same Redis without durable writes: a killed node forgets what it
/// acknowledged, and the run says so.
#[test]
fn the_example_without_fsync_loses_writes_and_is_invalid() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(EXAMPLE)).unwrap();
    let durable = "--appendonly yes --appendfsync always";
    assert!(example.contains(durable));
    let test = tmp.path().join("volatile.yaml");
    std::fs::write(&test, example.replace(durable, "--appendonly no")).unwrap();
    let o = run(&test, &results, &["--time-limit", "12s", "--seed", "5"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("INVALID"), "{}", text(&o));
}

/// A client program that answers garbage the first time it is started,
/// exits the second, and refuses everything the third: the first two ops
/// are `info` with why, the program is started again each time (the
/// warnings say so), the run completes, and with no operation known to
/// have happened the verdict is not VALID.
#[test]
fn a_client_that_answers_garbage_or_dies_makes_info_and_is_restarted() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let client = tmp.path().join("flaky.py");
    std::fs::write(
        &client,
        r#"import json, os, sys
# How many times this worker's program was started (one worker per node here).
state = os.path.join(os.path.dirname(__file__), "starts-" + os.environ["FAULTLINE_NODE"])
try:
    starts = int(open(state).read()) + 1
except OSError:
    starts = 1
open(state, "w").write(str(starts))
for line in sys.stdin:
    op = json.loads(line)
    if starts == 1:
        print("this is not json", flush=True)
    elif starts == 2:
        sys.exit(3)
    else:
        print(json.dumps({"id": op["id"], "type": "fail", "error": "refused"}), flush=True)
"#,
    )
    .unwrap();
    let test = tmp.path().join("flaky.yaml");
    std::fs::write(
        &test,
        format!(
            "db:\n  kind: custom\n  start: redis-server --bind {{addr}} --port {{port}} --dir {{data_dir}} --save ''\n  client: python3 {}\nnodes: 3\nconcurrency: 3\nrate: 30\ntime_limit: 4s\nrecovery: 1s\nnemesis: partition-halves\n",
            client.display()
        ),
    )
    .unwrap();
    let o = run(&test, &results, &["--seed", "2"]);
    let out = text(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert_ne!(o.status.code(), Some(3), "{out}");
    let dir = latest(&results);
    let ops = history(&dir);
    assert_eq!(count(&ops, true, "ok"), 0, "{out}");
    let infos: Vec<&str> = ops
        .iter()
        .filter(|o| o["process"].is_u64() && o["type"] == "info")
        .filter_map(|o| o["error"].as_str())
        .collect();
    // Each worker's program: garbage, then (restarted) an exit, then
    // (restarted again) definite failures.
    assert!(
        infos
            .iter()
            .filter(|e| e.contains("answered \"this is not json\""))
            .count()
            >= 3,
        "{infos:?}"
    );
    assert!(
        infos
            .iter()
            .filter(|e| e.contains("the client program exited (exit status: 3)"))
            .count()
            >= 3,
        "{infos:?}"
    );
    assert!(count(&ops, true, "fail") > 10, "{out}");
    let log = std::fs::read_to_string(dir.join("faultline.log")).unwrap();
    assert!(
        log.matches("client program for").count() >= 6,
        "restarts not logged: {log}"
    );
    for node in ["n1", "n2", "n3"] {
        let addr = ops.iter().find(|o| o["node"] == node).map(|_| ()).is_some();
        assert!(addr, "no op went to {node}");
    }
    let starts: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("starts-"))
        .collect();
    assert_eq!(starts.len(), 3, "one program per worker: {starts:?}");
}
