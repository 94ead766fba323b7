//! A run never reports VALID when it could not judge, and never loses what it
//! recorded: Ctrl-C to the whole process group, a results disk that fills up,
//! a harness error before the workload, a node that dies on its own. Each
//! drives the real `faultline run` on real netns clusters (root).

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_faultline");

/// A `faultline run` in its own process group, its stderr lines sent to the
/// returned channel as they come.
fn start(args: &[&str], results: &Path) -> (Child, mpsc::Receiver<String>) {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(EXE)
        .args(args)
        .arg("--results-dir")
        .arg(results)
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

/// Waits (bounded) for the run to end; returns its exit code and stdout.
fn finish(mut child: Child, rx: &mpsc::Receiver<String>) -> (Option<i32>, String) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the run did not end in 180 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    let stderr: Vec<String> = rx.try_iter().collect();
    let code = child.wait().unwrap().code();
    (
        code,
        format!("{stdout}\n--- stderr:\n{}", stderr.join("\n")),
    )
}

/// The first stderr line containing `needle`, waiting up to 60 s.
fn wait_for_line(rx: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(e) => panic!("no stderr line with {needle:?}: {e}"),
        }
    }
}

/// The only run folder under `results` (results/<test>/<timestamp>).
fn run_dir(results: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(results)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !p.ends_with("latest"))
        .flat_map(|test| std::fs::read_dir(test).unwrap().flatten().map(|e| e.path()))
        .filter(|p| p.is_dir() && !p.ends_with("latest"))
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.remove(0)
}

fn lines_of(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

fn results_json(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap()
}

/// The verdict word of the summary's first line (`name — VERDICT`).
fn verdict_line(out: &str) -> &str {
    out.lines()
        .find(|l| l.contains(" — "))
        .unwrap_or_else(|| panic!("no verdict line in:\n{out}"))
}

#[test]
fn ctrl_c_to_the_process_group_stops_the_workers_and_checks_every_recorded_op() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let args = [
        "run",
        "--db",
        "raft",
        "--workload",
        "register",
        "--nemesis",
        "partition-halves",
        "--nodes",
        "3",
        "--time-limit",
        "60s",
        "--rate",
        "400",
        "--seed",
        "5",
    ];
    let (child, rx) = start(&args, &results);
    wait_for_line(&rx, "deployed raft");
    let history = run_dir(&results).join("history.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    // Some op must have completed `ok`, or the checker has nothing to check
    // (before the first election every op fails: once, 300 lines came
    // before any leader).
    let some_ok = || std::fs::read_to_string(&history).is_ok_and(|h| h.contains("\"type\":\"ok\""));
    while lines_of(&history) <= 300 || !some_ok() {
        assert!(Instant::now() < deadline, "no ok op recorded in 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    // As a terminal's Ctrl-C does: SIGINT to every process of the group.
    // SAFETY: a plain kill(2) on a process group this test made.
    let pgid = child.id() as i32;
    assert_eq!(unsafe { libc::kill(-pgid, libc::SIGINT) }, 0);
    let (code, out) = finish(child, &rx);
    assert!(
        code == Some(1) || code == Some(2),
        "an interrupted run is unknown (or invalid if an anomaly was found), exit {code:?}:\n{out}"
    );
    let verdict = verdict_line(&out);
    assert!(!verdict.ends_with("— VALID"), "{verdict}");
    assert!(out.contains("incomplete: interrupted by SIGINT"), "{out}");

    let dir = history.parent().unwrap();
    let json = results_json(dir);
    let run = &json["run"];
    assert_ne!(json["valid"], true, "{run}");
    assert!(
        run["incomplete"][0].as_str().unwrap().contains("SIGINT"),
        "{run}"
    );
    // Every recorded op was checked: the counts match the file, which holds
    // far more than the ops seen when the signal came.
    // The last line is the end record the run writes once it wrote all.
    let on_disk = lines_of(&history) as u64 - 1;
    let ops = &run["ops"];
    let counted: u64 = ["invoked", "ok", "fail", "info", "nemesis"]
        .iter()
        .map(|k| ops[k].as_u64().unwrap())
        .sum();
    assert_eq!(counted, on_disk, "{ops}");
    assert!(
        counted > 300,
        "at least what was on disk at the signal: {ops}"
    );
    let lin = run["checkers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "linearizable")
        .unwrap();
    // "linearizable (8 keys, 200 operations)": the number, not a substring,
    // since "200 operations" contains "0 operations".
    let checked: u64 = lin["summary"]
        .as_str()
        .unwrap()
        .split(", ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count of operations in {lin}"));
    assert!(checked > 0, "{lin}");
    // Every invocation before the last completion has its completion: the
    // workers finished their calls before the history was taken.
    let ops: Vec<Value> = std::fs::read_to_string(&history)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let open: Vec<&Value> = {
        let mut pending = std::collections::BTreeMap::new();
        for op in ops.iter().filter(|o| o["process"].is_u64()) {
            let p = op["process"].as_u64().unwrap();
            if op["type"] == "invoke" {
                pending.insert(p, op);
            } else {
                pending.remove(&p);
            }
        }
        pending.into_values().collect()
    };
    assert!(open.is_empty(), "ops left without a completion: {open:?}");
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount a tmpfs at {}", at.display());
        Tmpfs(at)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_results_disk_that_fills_up_is_never_valid_and_leaves_no_temporaries() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(tmp.path().join("small"), "192k");
    let results = disk.0.join("results");
    let args = [
        "run",
        "--db",
        "raft",
        "--workload",
        "register",
        "--nemesis",
        "none",
        "--nodes",
        "3",
        "--time-limit",
        "5s",
        "--recovery",
        "1s",
        "--rate",
        "500",
    ];
    let (child, rx) = start(&args, &results);
    let (code, out) = finish(child, &rx);
    assert!(
        code == Some(2) || code == Some(3),
        "a run that could not write its record is unknown or a harness error, exit {code:?}:\n{out}"
    );
    assert!(!verdict_line(&out).ends_with("— VALID"), "{out}");
    assert!(
        out.contains("is not the whole history"),
        "the summary says the history file is cut:\n{out}"
    );
    let mut leftovers = Vec::new();
    let mut stack = vec![results.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() && !e.path().is_symlink() {
                stack.push(e.path());
            } else if name.ends_with(".tmp") || name.starts_with(".tmp") {
                leftovers.push(e.path());
            }
        }
    }
    assert!(leftovers.is_empty(), "temporaries left: {leftovers:?}");
    // Checked again later, the cut history says it ends early.
    let history = run_dir(&results).join("history.jsonl");
    let again = Command::new(EXE)
        .args(["check", "--out"])
        .arg(tmp.path())
        .arg(&history)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&again.stdout);
    assert_eq!(again.status.code(), Some(2), "{said}");
    assert!(said.contains("the history ends early"), "{said}");
}

#[test]
fn a_harness_error_lists_its_checkers_as_not_run_never_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let inventory = tmp.path().join("hosts.yaml");
    // Nothing listens there: the lab cannot be reached.
    std::fs::write(
        &inventory,
        "user: root\nport: 1\nconnect_timeout_ms: 500\nhosts:\n  - {name: n1, address: 127.0.0.1}\n",
    )
    .unwrap();
    let args = [
        "run",
        "--db",
        "raft",
        "--workload",
        "register",
        "--hosts",
        inventory.to_str().unwrap(),
        "--time-limit",
        "5s",
    ];
    let (child, rx) = start(&args, &results);
    let (code, out) = finish(child, &rx);
    assert_eq!(code, Some(3), "{out}");
    let summary: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.contains(" — HARNESS ERROR"))
        .take_while(|l| !l.trim_start().starts_with("ops:"))
        .collect();
    let checker_lines: Vec<&&str> = summary
        .iter()
        .filter(|l| {
            l.trim_start().starts_with("linearizable") || l.trim_start().starts_with("logs")
        })
        .collect();
    assert_eq!(checker_lines.len(), 2, "{out}");
    for line in checker_lines {
        assert!(line.contains("not run:"), "{line}");
        assert!(!line.contains(" valid "), "{line}");
    }
    let json = results_json(&run_dir(&results));
    for c in json["run"]["checkers"].as_array().unwrap() {
        assert_ne!(c["valid"], true, "{c}");
    }
}

#[test]
fn a_node_that_exits_on_its_own_is_reported_and_the_run_is_not_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let args = [
        "run",
        "--db",
        "raft",
        "--workload",
        "register",
        "--nemesis",
        "none",
        "--nodes",
        "3",
        "--time-limit",
        "8s",
        "--recovery",
        "1s",
    ];
    let (child, rx) = start(&args, &results);
    // "hosts: run123456 (netns), n1 10.a.b.11, n2 10.a.b.12, n3 10.a.b.13"
    let hosts = wait_for_line(&rx, "hosts: ");
    let n2 = hosts
        .split(", ")
        .find_map(|h| h.strip_prefix("n2 "))
        .unwrap_or_else(|| panic!("no n2 in {hosts:?}"))
        .trim()
        .to_string();
    wait_for_line(&rx, "deployed raft");
    std::thread::sleep(Duration::from_secs(3));
    let killed = Command::new("pkill")
        .args(["-9", "-f", "--", &format!("--id n2 --listen {n2}:7000")])
        .status()
        .unwrap();
    assert!(killed.success(), "n2 ({n2}) was running");
    let (code, out) = finish(child, &rx);
    assert_eq!(code, Some(2), "valid histories, but a node died:\n{out}");
    let nodes_line = out
        .lines()
        .find(|l| l.trim_start().starts_with("nodes"))
        .unwrap_or_else(|| panic!("no nodes line:\n{out}"));
    assert!(
        nodes_line.contains("unknown") && nodes_line.contains("n2 exited by"),
        "{nodes_line}"
    );
    let json = results_json(&run_dir(&results));
    let nodes = json["run"]["checkers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "nodes")
        .unwrap()
        .clone();
    assert_eq!(nodes["valid"], "unknown");
    let exits = nodes["detail"]["exits"].as_array().unwrap();
    assert_eq!(exits.len(), 1, "{nodes}");
    assert_eq!(exits[0]["node"], "n2");
    let seen_s = exits[0]["seen_ns"].as_f64().unwrap() / 1e9;
    assert!((2.0..9.0).contains(&seen_s), "seen at {seen_s} s");
    assert!(!exits[0]["log_tail"].as_array().unwrap().is_empty());
    // The report's evidence: the node (a link to its log) and its log's tail.
    let row = &nodes["evidence"]["tables"][0]["rows"][0];
    assert_eq!(
        row[0],
        serde_json::json!({"log_line": {"node": "n2"}}),
        "{nodes}"
    );
    assert_eq!(row[2]["lines"], exits[0]["log_tail"], "{nodes}");
    assert!(json["run"]["availability"]["ok_per_s"].as_f64().unwrap() > 0.0);
}
