//! What a killed `faultline run` leaves behind, and cleaning it up, with the
//! real binary on real netns clusters (root): `cluster status` reports the
//! orphan with its nodes and faults; `cluster down` without a name removes
//! every trace of it (namespaces, veth, node processes, rules, state) and
//! leaves a hand-made cluster and a live run alone. Also: an error from
//! several hosts names each host once.
//!
//! Each test keeps its clusters in its own `FAULTLINE_CLUSTERS_DIR`, so the
//! no-name cleanup sees only that test's clusters.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const EXE: &str = env!("CARGO_BIN_EXE_faultline");

/// `faultline ARGS` with the test's clusters dir.
fn faultline(dir: &Path, args: &[&str]) -> Output {
    Command::new(EXE)
        .args(args)
        .env("FAULTLINE_CLUSTERS_DIR", dir)
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

/// `faultline run` in the background, with its cluster's name read from its
/// first lines (`hosts: runXXXXXX (netns), ...`).
struct Run {
    child: Child,
    cluster: String,
}

/// Starts `faultline run ARGS` and waits (bounded) for its `hosts:` line.
fn start_run(dir: &Path, results: &Path, args: &[&str]) -> Run {
    let mut child = Command::new(EXE)
        .arg("run")
        .args(args)
        .arg("--results-dir")
        .arg(results)
        .env("FAULTLINE_CLUSTERS_DIR", dir)
        .env("CI", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("faultline run starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    // Keeps reading, so the run never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("hosts: ") {
                let _ = tx.send(rest.split(' ').next().unwrap_or_default().to_string());
            }
        }
    });
    let cluster = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the run names its cluster in its first lines");
    Run { child, cluster }
}

/// Kills the runs and removes the clusters a test made, even when it fails.
struct Cleanup {
    dir: PathBuf,
    runs: Vec<Child>,
    clusters: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for run in &mut self.runs {
            let _ = run.kill();
            let _ = run.wait();
        }
        for name in &self.clusters {
            let _ = faultline(&self.dir, &["cluster", "down", "--name", name]);
        }
    }
}

fn sh(command: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(command).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `cluster status --name NAME` (every 500 ms, at most `tries` times)
/// until `ready` accepts it; returns the last output.
fn status_until(dir: &Path, name: &str, tries: u32, ready: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..tries {
        last = text(&faultline(dir, &["cluster", "status", "--name", name]));
        if ready(&last) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    last
}

/// What of a cluster is still on this machine, listed for real.
fn traces(dir: &Path, name: &str, veth: &str, subnet_prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for ns in sh("ip netns list").lines() {
        if ns.starts_with(&format!("fl-{name}-")) {
            found.push(format!("namespace {ns}"));
        }
    }
    if sh("ip -o link show").contains(&format!(" {veth}@")) {
        found.push(format!("veth {veth}"));
    }
    // pgrep directly: a shell around it would match its own pattern.
    let procs = Command::new("pgrep")
        .args(["-af", "--", &format!("--listen {subnet_prefix}")])
        .output()
        .unwrap();
    for p in String::from_utf8_lossy(&procs.stdout).lines() {
        found.push(format!("process {p}"));
    }
    if sh("iptables-save 2>/dev/null").contains(subnet_prefix) {
        found.push("an iptables rule of the root namespace".into());
    }
    for path in [dir.join(name), Path::new("/run/faultline").join(name)] {
        if path.exists() {
            found.push(path.display().to_string());
        }
    }
    found
}

#[test]
fn a_killed_runs_cluster_is_reported_then_cleaned_and_the_others_are_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("clusters");
    let results = tmp.path().join("results");
    let mut cleanup = Cleanup {
        dir: dir.clone(),
        runs: Vec::new(),
        clusters: Vec::new(),
    };

    // A cluster made by hand: never an orphan.
    let hand = common::unique("hand");
    cleanup.clusters.push(hand.clone());
    let up = faultline(&dir, &["cluster", "up", "--name", &hand, "--nodes", "1"]);
    assert!(up.status.success(), "{}", text(&up));

    // A run that stays alive, and one that is killed mid-partition.
    let alive = start_run(
        &dir,
        &results,
        &[
            "--db",
            "raft",
            "--workload",
            "register",
            "--nemesis",
            "none",
        ]
        .into_iter()
        .chain(["--nodes", "3", "--time-limit", "300s"])
        .collect::<Vec<_>>(),
    );
    let alive_cluster = alive.cluster.clone();
    cleanup.clusters.push(alive_cluster.clone());
    let alive_pid = alive.child.id();
    cleanup.runs.push(alive.child);
    let nemesis = tmp.path().join("halves.yaml");
    std::fs::write(
        &nemesis,
        "faults: [{partition: {shape: halves, duration: 120s, interval: 200ms}}]\n",
    )
    .unwrap();
    let killed = start_run(
        &dir,
        &results,
        &[
            "--db",
            "raft",
            "--workload",
            "register",
            "--nemesis",
            nemesis.to_str().unwrap(),
            "--time-limit",
            "60s",
        ],
    );
    let name = killed.cluster.clone();
    cleanup.clusters.push(name.clone());
    let mut child = killed.child;
    let killed_pid = child.id();

    // Once all 5 nodes run and the partition is in place: SIGKILL.
    let before = status_until(&dir, &name, 240, |s| {
        s.matches("raft running").count() == 5 && s.matches("-j DROP").count() >= 5
    });
    assert_eq!(before.matches("raft running").count(), 5, "{before}");
    child.kill().unwrap();
    child.wait().unwrap();

    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(&name).join("state.json")).unwrap())
            .unwrap();
    assert_eq!(state["owner"]["purpose"], "run");
    assert_eq!(state["owner"]["pid"], killed_pid);
    let veth = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "veth")
        .and_then(|r| r["name"].as_str())
        .unwrap()
        .to_string();
    let subnet = state["subnet"].as_str().unwrap();
    let prefix = subnet.trim_end_matches("0/24").to_string();
    assert!(prefix.ends_with('.'), "{subnet}");

    // Status: orphaned, nodes still running, the partition still in place.
    let after = faultline(&dir, &["cluster", "status", "--name", &name]);
    let after = text(&after);
    assert!(
        after.contains(&format!(
            "orphaned: its run's controller (pid {killed_pid}) is gone"
        )),
        "{after}"
    );
    assert!(
        after.contains("clean with `faultline cluster down`"),
        "{after}"
    );
    assert_eq!(after.matches("answers (").count(), 5, "{after}");
    assert_eq!(after.matches("raft running, pid").count(), 5, "{after}");
    assert!(after.matches("-j DROP").count() >= 5, "{after}");
    assert!(after.contains("chains: -A faultline-in -s "), "{after}");
    let before_cleanup = traces(&dir, &name, &veth, &prefix);
    assert!(before_cleanup.len() >= 6 + 1 + 5, "{before_cleanup:?}");

    // Without --name: every cluster, each with where it stands.
    let all = text(&faultline(&dir, &["cluster", "status"]));
    assert!(all.contains(&format!("cluster {hand} (netns)")), "{all}");
    assert!(all.contains("made by hand"), "{all}");
    assert!(
        all.contains(&format!(
            "in use by its run's controller (pid {alive_pid}, running)"
        )),
        "{all}"
    );

    // The no-name cleanup: only the orphan.
    let down = faultline(&dir, &["cluster", "down"]);
    let out = text(&down);
    assert!(down.status.success(), "{out}");
    assert!(
        out.contains(&format!(
            "cluster {name}: orphaned, its run's controller (pid {killed_pid}) is gone"
        )),
        "{out}"
    );
    assert_eq!(out.matches("healed chains; node pid").count(), 5, "{out}");
    assert!(out.contains("cleaned 1 orphaned cluster"), "{out}");
    assert!(
        out.contains(&format!("left alone: {hand}: made by hand")),
        "{out}"
    );
    assert!(
        out.contains(&format!("left alone: {}: in use", alive_cluster)),
        "{out}"
    );
    let left = traces(&dir, &name, &veth, &prefix);
    assert!(left.is_empty(), "left behind: {left:?}\n{out}");

    // The others are untouched: their state, namespaces and the live run.
    for other in [&hand, &alive_cluster] {
        assert!(dir.join(other).join("state.json").exists(), "{other}");
        assert!(
            sh("ip netns list").contains(&format!("fl-{other}-n1")),
            "{other}"
        );
    }
    assert_eq!(
        cleanup.runs[0].try_wait().unwrap(),
        None,
        "the live run was stopped"
    );

    // Twice is fine: nothing left to clean.
    let again = text(&faultline(&dir, &["cluster", "down"]));
    assert!(again.contains("cleaned 0 orphaned clusters"), "{again}");
}

/// An operation that fails on 3 hosts (their namespaces are gone) prints
/// each host's error once, as `error: {:#}` in main.rs does. It printed
/// them three times when `db` and `os` errors wrapped the remote error with
/// its own text *and* as their source.
#[test]
fn an_error_on_three_hosts_names_each_host_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("clusters");
    let name = common::unique("terr");
    let _cleanup = Cleanup {
        dir: dir.clone(),
        runs: Vec::new(),
        clusters: vec![name.clone()],
    };
    let up = faultline(&dir, &["cluster", "up", "--name", &name, "--nodes", "3"]);
    assert!(up.status.success(), "{}", text(&up));
    for i in 1..=3 {
        sh(&format!("ip netns del fl-{name}-n{i}"));
    }
    let deploy = faultline(
        &dir,
        &["cluster", "deploy", "--name", &name, "--no-install"],
    );
    assert_eq!(deploy.status.code(), Some(3), "{}", text(&deploy));
    let err = String::from_utf8_lossy(&deploy.stderr);
    assert_eq!(err.matches("3 hosts failed").count(), 1, "{err}");
    for i in 1..=3 {
        let gone = format!("/run/netns/fl-{name}-n{i}:");
        assert_eq!(err.matches(&gone).count(), 1, "n{i}:\n{err}");
        assert_eq!(
            err.matches(&format!("  n{i}: `")).count(),
            1,
            "n{i}:\n{err}"
        );
    }

    // Status says so per host; down removes the rest and succeeds.
    let status = text(&faultline(&dir, &["cluster", "status", "--name", &name]));
    assert_eq!(status.matches("DOWN: ").count(), 3, "{status}");
    let down = faultline(&dir, &["cluster", "down", "--name", &name]);
    assert!(down.status.success(), "{}", text(&down));
    assert!(text(&down).contains("does not answer, nothing healed or killed"));
    assert!(!dir.join(&name).exists());
    assert!(!sh("ip netns list").contains(&format!("fl-{name}-")));
}

fn docker_names(args: &[&str], name: &str) -> Vec<String> {
    let out = Command::new("docker").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!("fl-{name}")))
        .map(str::to_string)
        .collect()
}

/// The same on Docker, cleaned by `faultline heal` without a name: the
/// containers, the network and the state go. Needs a running Docker engine.
#[test]
fn a_killed_docker_runs_cluster_is_cleaned_by_heal() {
    let info = Command::new("docker").args(["info"]).output();
    assert!(
        info.is_ok_and(|o| o.status.success()),
        "this test needs a running Docker engine (docker info failed)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("clusters");
    let nemesis = tmp.path().join("halves.yaml");
    std::fs::write(
        &nemesis,
        "faults: [{partition: {shape: halves, duration: 120s, interval: 200ms}}]\n",
    )
    .unwrap();
    let run = start_run(
        &dir,
        &tmp.path().join("results"),
        &[
            "--docker",
            "--nodes",
            "3",
            "--db",
            "raft",
            "--workload",
            "register",
            "--nemesis",
            nemesis.to_str().unwrap(),
            "--time-limit",
            "60s",
        ],
    );
    let name = run.cluster.clone();
    let mut cleanup = Cleanup {
        dir: dir.clone(),
        runs: vec![run.child],
        clusters: vec![name.clone()],
    };
    let pid = cleanup.runs[0].id();
    let before = status_until(&dir, &name, 240, |s| {
        s.matches("raft running").count() == 3 && s.matches("-j DROP").count() >= 3
    });
    assert!(before.contains("(docker)"), "{before}");
    assert_eq!(before.matches("raft running").count(), 3, "{before}");
    cleanup.runs[0].kill().unwrap();
    cleanup.runs[0].wait().unwrap();

    let after = text(&faultline(&dir, &["cluster", "status", "--name", &name]));
    assert!(
        after.contains(&format!(
            "orphaned: its run's controller (pid {pid}) is gone"
        )),
        "{after}"
    );
    assert_eq!(after.matches("raft running").count(), 3, "{after}");
    assert!(after.matches("-j DROP").count() >= 3, "{after}");

    let heal = faultline(&dir, &["heal"]);
    let out = text(&heal);
    assert!(heal.status.success(), "{out}");
    assert_eq!(out.matches("healed chains; node pid").count(), 3, "{out}");
    assert!(out.contains("cleaned 1 orphaned cluster"), "{out}");
    let containers = docker_names(&["ps", "-a", "--format", "{{.Names}}"], &name);
    let networks = docker_names(&["network", "ls", "--format", "{{.Name}}"], &name);
    assert!(containers.is_empty(), "{containers:?}");
    assert!(networks.is_empty(), "{networks:?}");
    assert!(!dir.join(&name).exists());
}

/// A run's cluster is in use while its controller (here: this test) runs;
/// once kept (`run --leave-running`), it is never taken for an orphan.
#[test]
fn a_runs_cluster_is_in_use_while_its_controller_runs_and_kept_once_left_running() {
    use faultline::cluster::{self, Backend, ClusterGuard, Purpose, Standing, UpOptions};
    let name = format!("run{:06x}", std::process::id() & 0xff_ffff);
    let _guard = ClusterGuard { name: name.clone() };
    let opts = UpOptions {
        name: name.clone(),
        backend: Backend::Netns,
        nodes: 1,
        ssh: false,
        disk_faults: false,
        binary: common::BINARY.into(),
    };
    cluster::up(&opts).expect("cluster up");
    let state = cluster::State::load(&name).unwrap();
    let owner = state.owner.clone().expect("the owner is recorded");
    assert_eq!(owner.purpose, Purpose::Run);
    assert_eq!(owner.pid, std::process::id());
    assert_eq!(state.standing(), Standing::InUse { pid: owner.pid });
    assert!(!cluster::orphans().iter().any(|o| o.name == name));
    cluster::keep(&name).unwrap();
    let kept = cluster::State::load(&name).unwrap().standing();
    assert_eq!(
        kept,
        Standing::Kept {
            purpose: Purpose::LeftRunning,
            pid: owner.pid
        }
    );
}
