//! Suites on more than one cluster at a time (root, real netns clusters):
//! `faultline suite --jobs K` runs K tests at once and still writes its
//! table, junit.xml and summary in suite order; Ctrl-C removes every
//! running test's cluster; `faultline results merge` makes one results
//! folder of the shards of a suite.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_faultline");

/// Three short raft tests; the first runs longest, so with two at once the
/// second finishes before it: an order by finishing is not suite order.
const SUITE: &str = "name: jobs\n\
    defaults: {db: raft, workload: register, nemesis: none, nodes: 3, recovery: 500ms, rate: 50}\n\
    tests:\n\
    \x20 - {name: slow, time_limit: 12s, seed: 1}\n\
    \x20 - {name: quick-a, time_limit: 2s, seed: 2}\n\
    \x20 - {name: quick-b, time_limit: 2s, seed: 3}\n";

fn faultline(args: &[&str]) -> Output {
    Command::new(EXE)
        .args(args)
        .env("CI", "true")
        .output()
        .expect("faultline runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}\n--- stderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn suite(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("suite.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// `faultline suite SUITE --results-dir RESULTS` with `extra` flags.
fn run_suite(suite: &Path, results: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "suite",
        suite.to_str().unwrap(),
        "--no-install",
        "--results-dir",
        results.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    faultline(&args)
}

/// The table's rows (test, status, outcome), without times and details.
fn table_rows(stdout: &str) -> Vec<String> {
    let table = stdout
        .split("\nsuite jobs\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no table in:\n{stdout}"));
    table
        .lines()
        .skip(1)
        .take_while(|l| !l.contains(" tests, "))
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect()
}

/// The test case names of junit.xml, in order.
fn junit_names(results: &Path) -> Vec<String> {
    let xml = std::fs::read_to_string(results.join("junit.xml")).unwrap();
    xml.split("<testcase name=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_string())
        .collect()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn case_names(summary: &Value) -> Vec<String> {
    summary["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["case"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn two_at_once_give_the_table_junit_and_summary_of_one_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = suite(tmp.path(), SUITE);
    let one = tmp.path().join("one");
    let two = tmp.path().join("two");
    let o1 = run_suite(&suite, &one, &["--jobs", "1"]);
    let o2 = run_suite(&suite, &two, &["--jobs", "2"]);
    assert_ne!(o1.status.code(), Some(3), "{}", text(&o1));
    assert_eq!(o1.status.code(), o2.status.code(), "{}", text(&o2));
    let stderr = String::from_utf8_lossy(&o2.stderr);
    // Two ran at once: the second started while the first ran.
    assert!(
        stderr.contains("[2/3] quick-a (seed 2) started; 2 running"),
        "{stderr}"
    );
    // The rows are in suite order whatever order the tests finished in
    // (quick-a, usually, first).
    let finished: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(" done"))
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(finished.len(), 3, "{stderr}");
    let rows = table_rows(&String::from_utf8_lossy(&o1.stdout));
    assert_eq!(
        rows.iter()
            .map(|r| r.split(' ').next().unwrap())
            .collect::<Vec<_>>(),
        ["slow", "quick-a", "quick-b"],
        "{}",
        text(&o1)
    );
    assert_eq!(
        table_rows(&String::from_utf8_lossy(&o2.stdout)),
        rows,
        "{}",
        text(&o2)
    );
    assert_eq!(junit_names(&two), ["slow", "quick-a", "quick-b"]);
    assert_eq!(junit_names(&one), junit_names(&two));
    let (s1, s2) = (
        json(&one.join("summary.json")),
        json(&two.join("summary.json")),
    );
    assert_eq!(case_names(&s1), ["slow", "quick-a", "quick-b"]);
    assert_eq!(s1["cases"], s2["cases"]);
    // Each run kept its own log: its own cluster, and no other run's lines.
    let logs: Vec<String> = ["slow", "quick-a", "quick-b"]
        .iter()
        .map(|t| std::fs::read_to_string(two.join(t).join("latest/faultline.log")).unwrap())
        .collect();
    for (i, log) in logs.iter().enumerate() {
        let mine = format!("faultline run {} ", ["slow", "quick-a", "quick-b"][i]);
        assert!(log.contains(&mine), "{log}");
        assert_eq!(log.matches("faultline run ").count(), 1, "{log}");
        assert_eq!(log.matches("hosts: run").count(), 1, "{log}");
    }
}

#[test]
fn jobs_zero_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = suite(tmp.path(), SUITE);
    let results = tmp.path().join("results");
    for bad in ["0", "-1", "many", "65"] {
        let o = run_suite(&suite, &results, &[&format!("--jobs={bad}")]);
        assert_eq!(o.status.code(), Some(3), "{}", text(&o));
        assert!(
            text(&o).contains(&format!(
                "--jobs \"{bad}\": expected how many tests run at once, 1 to 64"
            )),
            "{}",
            text(&o)
        );
    }
    assert!(!results.exists(), "nothing ran");
}

/// A `faultline suite` in its own process group, its stderr lines sent to
/// the returned channel as they come.
fn start(args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(EXE)
        .args(args)
        .env("CI", "true")
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("faultline starts");
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// Waits (bounded) until `done` holds, looking every 100 ms.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 120 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The cluster a run used, from its faultline.log (`hosts: runXXXXXX (...)`).
fn cluster_of(run: &Path) -> String {
    let log = std::fs::read_to_string(run.join("faultline.log")).unwrap();
    let at = log.find("hosts: ").unwrap_or_else(|| panic!("{log}")) + "hosts: ".len();
    log[at..].split_whitespace().next().unwrap().to_string()
}

#[test]
fn ctrl_c_removes_every_running_tests_cluster_and_starts_no_more() {
    let tmp = tempfile::tempdir().unwrap();
    // Two long tests run at once; the third must never start.
    let suite = suite(
        tmp.path(),
        "name: jobs\n\
         defaults: {db: raft, workload: register, nemesis: partition-halves, nodes: 3, time_limit: 60s, rate: 50}\n\
         tests:\n  - {name: one, seed: 1}\n  - {name: two, seed: 2}\n  - {name: three, seed: 3}\n",
    );
    let results = tmp.path().join("results");
    let (mut child, rx) = start(&[
        "suite",
        suite.to_str().unwrap(),
        "--jobs",
        "2",
        "--no-install",
        "--results-dir",
        results.to_str().unwrap(),
    ]);
    let runs = [results.join("one/latest"), results.join("two/latest")];
    // Both in their main phase: ops recorded in each history.
    wait_until("both runs recording ops", || {
        runs.iter().all(|r| {
            std::fs::read_to_string(r.join("history.jsonl")).is_ok_and(|h| h.lines().count() > 20)
        })
    });
    let clusters: Vec<String> = runs.iter().map(|r| cluster_of(r)).collect();
    // As a terminal's Ctrl-C does: SIGINT to every process of the group.
    // SAFETY: a plain kill(2) on a process group this test made.
    assert_eq!(unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) }, 0);
    wait_until("the suite to end", || child.try_wait().unwrap().is_some());
    let code = child.wait().unwrap().code();
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    let stderr: Vec<String> = rx.try_iter().collect();
    let out = format!("{stdout}\n--- stderr:\n{}", stderr.join("\n"));
    assert!(
        code == Some(1) || code == Some(2),
        "an interrupted suite is unknown (or invalid), exit {code:?}:\n{out}"
    );
    assert!(
        out.contains("interrupted by SIGINT: 2 of 3 tests ran"),
        "{out}"
    );
    assert!(!results.join("three").exists(), "{out}");
    for run in &runs {
        let r = json(&run.join("results.json"));
        assert!(
            r["run"]["incomplete"][0]
                .as_str()
                .unwrap()
                .contains("SIGINT"),
            "{r}"
        );
    }
    let netns = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .to_string();
    for name in &clusters {
        assert!(name.starts_with("run"), "{name}");
        assert!(
            !netns.contains(&format!("fl-{name}-")),
            "{name} left: {netns}"
        );
        assert!(
            !faultline::cluster::clusters_dir().join(name).exists(),
            "{name} is still in the clusters folder"
        );
    }
    assert_eq!(junit_names(&results), ["one", "two"]);
}

/// `faultline results merge OUT DIR...` (with `extra` flags).
fn merge(out: &Path, dirs: &[&Path], extra: &[&str]) -> Output {
    let mut args = vec!["results", "merge", out.to_str().unwrap()];
    args.extend(dirs.iter().map(|d| d.to_str().unwrap()));
    args.extend_from_slice(extra);
    faultline(&args)
}

/// The ids of suite.json's runs, in order.
fn run_ids(results: &Path) -> Vec<String> {
    json(&results.join("suite.json"))["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn merged_shards_are_the_whole_suite_once_however_often_given() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = suite(tmp.path(), SUITE);
    let whole = tmp.path().join("whole");
    let (s1, s2) = (tmp.path().join("s1"), tmp.path().join("s2"));
    let o = run_suite(&suite, &whole, &["--jobs", "2"]);
    assert_ne!(o.status.code(), Some(3), "{}", text(&o));
    let o1 = run_suite(&suite, &s1, &["--shard", "1/2", "--jobs", "2"]);
    let o2 = run_suite(&suite, &s2, &["--shard", "2/2"]);
    assert_eq!(junit_names(&s1), ["slow", "quick-b"], "{}", text(&o1));
    assert_eq!(junit_names(&s2), ["quick-a"], "{}", text(&o2));
    let worst = o1.status.code().max(o2.status.code());

    // Linked where they are: the index climbs out of the merged folder.
    let merged = tmp.path().join("merged");
    let m = merge(&merged, &[&s1, &s2], &[]);
    assert_eq!(m.status.code(), worst, "{}", text(&m));
    assert!(
        text(&m).contains("merged 3 runs of 3 tests from 2 folders"),
        "{}",
        text(&m)
    );
    assert_eq!(junit_names(&merged), junit_names(&whole));
    assert_eq!(
        case_names(&json(&merged.join("summary.json"))),
        case_names(&json(&whole.join("summary.json")))
    );
    let ids = run_ids(&merged);
    let mut shard_ids = run_ids(&s1);
    shard_ids.extend(run_ids(&s2));
    shard_ids.sort();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, shard_ids);
    let index = std::fs::read_to_string(merged.join("index.html")).unwrap();
    assert!(index.contains(r#"id="totals">3 runs"#), "{index}");
    assert!(index.contains(r#"href="../s1/slow/"#), "{index}");
    assert!(index.contains(r#"href="../s2/quick-a/"#), "{index}");
    assert!(
        std::fs::read_to_string(merged.join("summary.md"))
            .unwrap()
            .contains("quick-a")
    );

    // The same shard twice, and the merge merged again with a shard in it:
    // every run once, and the merge replaces the earlier one.
    let m = merge(&merged, &[&s1, &s2, &s1], &[]);
    assert!(
        text(&m).contains("merged 3 runs of 3 tests from 3 folders (2 given twice, counted once)"),
        "{}",
        text(&m)
    );
    assert_eq!(run_ids(&merged), ids);
    assert_eq!(junit_names(&merged), ["slow", "quick-a", "quick-b"]);
    let again = tmp.path().join("again");
    let m = merge(&again, &[&merged, &s2], &[]);
    assert_eq!(m.status.code(), worst, "{}", text(&m));
    assert_eq!(run_ids(&again), ids);

    // Copied: the runs are in the merged folder, linked from inside it.
    let copied = tmp.path().join("copied");
    let m = merge(&copied, &[&s2, &s1], &["--copy"]);
    assert_eq!(m.status.code(), worst, "{}", text(&m));
    assert_eq!(
        run_ids(&copied),
        ids,
        "suite order, whatever order the folders come in"
    );
    for id in &ids {
        assert!(copied.join(id).join("results.json").is_file(), "{id}");
        assert!(copied.join(id).join("history.jsonl").is_file(), "{id}");
    }
    let index = std::fs::read_to_string(copied.join("index.html")).unwrap();
    assert!(
        index.contains(r#"href="slow/"#) && !index.contains("../"),
        "{index}"
    );

    // Bad input: exit 3 naming the path, and the earlier merge left whole.
    let before = std::fs::read_to_string(merged.join("suite.json")).unwrap();
    let missing = tmp.path().join("no-such-shard");
    let not_results = tmp.path().join("plain");
    std::fs::create_dir_all(&not_results).unwrap();
    let corrupt = tmp.path().join("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(
        corrupt.join("suite.json"),
        "{\"schema_version\": 1, \"suite\": ",
    )
    .unwrap();
    for (bad, says) in [
        (&missing, "no-such-shard: no such folder".to_string()),
        (
            &not_results,
            "plain is not the results folder of a suite".to_string(),
        ),
        (
            &corrupt,
            format!("{}:1:", corrupt.join("suite.json").display()),
        ),
    ] {
        let m = merge(&merged, &[&s1, bad], &[]);
        assert_eq!(m.status.code(), Some(3), "{}", text(&m));
        assert!(text(&m).contains(&says), "{says}: {}", text(&m));
        assert_eq!(
            std::fs::read_to_string(merged.join("suite.json")).unwrap(),
            before
        );
    }
    let fresh = tmp.path().join("fresh");
    let m = merge(&fresh, &[&s1, &corrupt], &["--copy"]);
    assert_eq!(m.status.code(), Some(3), "{}", text(&m));
    assert!(!fresh.exists(), "nothing half-written");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A shard into itself is refused.
    let m = merge(&s1, &[&s1, &s2], &[]);
    assert_eq!(m.status.code(), Some(3), "{}", text(&m));
    assert!(text(&m).contains("overlaps the input"), "{}", text(&m));
}
