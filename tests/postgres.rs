//! `--db postgres`: Debian's PostgreSQL 15, one independent instance per
//! netns host (root; the package installed, as .ci/run does), driven by
//! real `faultline run`s of list-append on few keys with ten clients, so
//! that transactions contend.
//!
//! - At `serializable` the histories are strict-serializable, with kills,
//!   pauses, partitions and clock skew on the primary; after each kill
//!   (crash recovery) and pause, operations succeed again.
//! - At `repeatable-read` (PostgreSQL's snapshot isolation) Elle finds
//!   write skew (G2-item): not serializable, snapshot isolation still
//!   possible. At `read-committed` it finds G-single and no G1 (no dirty or
//!   intermediate reads): read committed still possible. Anomalies depend
//!   on timing, so, as in `bug_matrix.rs`, a few seeds are tried and one
//!   must catch them.
//! - Under power losses (`lose-unfsynced`) `fsync: false` loses
//!   acknowledged commits and fsync on does not.
//! - The `Db` on its own: a killed instance comes back with what it
//!   committed, a wiped one comes back empty, a paused one does not answer.
//!
//! Runs are kept under cargo's target tmp dir (`postgres/`) for inspection.

mod common;

use common::runs::{self, Outcome};
use common::{BINARY, make};
use faultline::cluster::Backend;
use faultline::history::Ended;
use faultline::system::{self, DeployOptions, SystemRef};
use faultline::workload::Operation;
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

/// list-append on 3 keys, 10 clients: enough contention for anomalies
/// within a short run.
const CONTENDED: &str = "concurrency: 10\nworkload: {kind: list-append, keys: 3";

fn run(name: &str, yaml: &str, seed: u64) -> Outcome {
    runs::run("postgres", name, yaml, seed, &[])
}

/// What `faultline check` says of the run's history, checked for
/// serializability: the models ruled out and those still possible.
fn elle_verdict(o: &Outcome) -> String {
    let out = Command::new(BINARY)
        .arg("check")
        .arg(o.dir.join("history.jsonl"))
        .args(["--workload", "list-append", "--consistency", "serializable"])
        .arg("--out")
        .arg(o.dir.join("check"))
        .output()
        .expect("faultline check runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The client operations of the run's history, and the nemesis' ones.
fn history(o: &Outcome) -> Vec<Value> {
    std::fs::read_to_string(o.dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// How many client operations ended ok after the first nemesis `f` op
/// (its completion).
fn ok_after_first(history: &[Value], f: &str) -> usize {
    let Some(at) = history
        .iter()
        .position(|o| o["process"] == "nemesis" && o["f"] == f && o["type"] == "info")
    else {
        return 0;
    };
    history[at..]
        .iter()
        .filter(|o| o["process"] != "nemesis" && o["type"] == "ok")
        .count()
}

#[test]
fn serializable_list_append_is_strict_serializable() {
    let o = run(
        "serializable",
        &format!("db: postgres\nnodes: 1\ntime_limit: 20s\n{CONTENDED}}}\n"),
        1,
    );
    assert_eq!(o.exit, 0, "{}", o.summary);
    assert_eq!(o.checker("elle"), json!(true), "{}", o.summary);
    assert!(
        o.summary.contains("strict-serializable holds"),
        "{}",
        o.summary
    );
    // Transactions contended: PostgreSQL refused some (SQLSTATE 40001).
    assert!(o.count("fail") > 0, "{}", o.summary);
    assert!(o.count("ok") > 500, "{}", o.summary);
}

/// PostgreSQL's repeatable read is snapshot isolation: two transactions
/// that each read what the other writes both commit (write skew).
#[test]
fn repeatable_read_allows_write_skew_but_is_snapshot_isolation() {
    let o = runs::caught(
        "postgres",
        "repeatable-read",
        &format!(
            "db: postgres\ndb_options: {{isolation: repeatable-read}}\nnodes: 1\ntime_limit: 20s\n\
             {CONTENDED}, consistency: serializable}}\n"
        ),
        &[1, 2, 3],
        "G2-item",
    );
    let anomalies = o.anomalies();
    assert!(
        !anomalies
            .iter()
            .any(|a| a.starts_with("G1") || a.starts_with("G-single")),
        "snapshot isolation forbids these: {anomalies:?}"
    );
    let verdict = elle_verdict(&o);
    assert!(
        verdict.contains("also not serializable"),
        "{verdict}\n{}",
        o.summary
    );
    assert!(
        verdict.contains("still possible: snapshot-isolation"),
        "{verdict}"
    );
}

/// Read committed: each statement sees what committed before it, so a
/// transaction can see part of another's effects (G-single), but never
/// uncommitted or intermediate values (G1).
#[test]
fn read_committed_allows_g_single_but_no_g1() {
    let o = runs::caught(
        "postgres",
        "read-committed",
        &format!(
            "db: postgres\ndb_options: {{isolation: read-committed}}\nnodes: 1\ntime_limit: 20s\n\
             {CONTENDED}, consistency: serializable}}\n"
        ),
        &[1, 2, 3],
        "G-single",
    );
    let anomalies = o.anomalies();
    assert!(
        !anomalies.iter().any(|a| a.starts_with("G1")),
        "read committed forbids G1: {anomalies:?}"
    );
    let verdict = elle_verdict(&o);
    assert!(
        verdict.contains("still possible: read-committed"),
        "{verdict}\n{}",
        o.summary
    );
}

/// kill -9 of every process of the primary, then a start (crash recovery),
/// and SIGSTOP of all of them: committed transactions survive, and after
/// each fault transactions commit again.
#[test]
fn kills_and_pauses_of_the_primary_keep_it_strict_serializable_and_it_recovers() {
    let o = run(
        "kill-pause",
        &format!(
            "db: postgres\nnodes: 3\ntime_limit: 30s\nrecovery: 3s\n{CONTENDED}}}\n\
             nemesis:\n  faults:\n\
             \x20   - kill: {{targets: primaries, duration: 2s, interval: 6s}}\n\
             \x20   - pause: {{targets: primaries, duration: 2s, interval: 6s}}\n"
        ),
        1,
    );
    assert_eq!(o.exit, 0, "{}", o.summary);
    assert_eq!(o.checker("elle"), json!(true), "{}", o.summary);
    let h = history(&o);
    for f in ["kill", "start", "pause", "resume"] {
        assert!(
            h.iter()
                .any(|op| op["process"] == "nemesis" && op["f"] == f && op["type"] == "info"),
            "no {f}: {}",
            o.summary
        );
    }
    // Connections broke (a kill) or went unanswered (a pause).
    assert!(o.count("fail") + o.count("info") > 0, "{}", o.summary);
    assert!(ok_after_first(&h, "start") > 0, "{}", o.summary);
    assert!(ok_after_first(&h, "resume") > 0, "{}", o.summary);
}

/// Partitions between the hosts and clock jumps of the primary (under
/// libfaketime): the instances are independent and PostgreSQL orders
/// transactions without clocks, so neither breaks serializability.
#[test]
fn partitions_and_clock_skew_leave_it_strict_serializable() {
    let o = run(
        "partition-clock",
        &format!(
            "db: postgres\nnodes: 3\ntime_limit: 20s\nrecovery: 3s\n{CONTENDED}}}\n\
             nemesis:\n  faults:\n\
             \x20   - partition: {{shape: halves, duration: 3s, interval: 2s}}\n\
             \x20   - clock: {{targets: primaries, offset_ms: 5000, duration: 3s, interval: 2s}}\n"
        ),
        2,
    );
    assert_eq!(o.exit, 0, "{}", o.summary);
    assert_eq!(o.checker("elle"), json!(true), "{}", o.summary);
    let h = history(&o);
    let bumped = h.iter().any(|op| {
        op["f"] == "bump-clock"
            && op["type"] == "info"
            && op["value"]["mechanism"]["n1"] == "libfaketime"
    });
    assert!(bumped, "no clock bump through libfaketime: {}", o.summary);
}

/// The `Db` on its own: kill -9 and start keeps what was committed; a
/// paused instance answers nothing until resumed; a wiped one starts
/// empty (initdb again).
#[test]
fn a_killed_instance_keeps_its_data_and_a_wiped_one_starts_empty() {
    let (c, _guard) = make("pgwipe", Backend::Netns, 3, false);
    let postgres = SystemRef::parse("postgres").unwrap();
    let options = DeployOptions {
        binary: BINARY.into(),
        install: false,
        ..DeployOptions::default()
    };
    let (db, timings) = system::deploy(postgres.get(), &c, &options).expect("deploy postgres");
    println!("deploy {timings}");
    let primary = c.hosts[0].name.clone();
    assert_eq!(db.primaries().unwrap(), vec![primary.clone()]);
    let clients = postgres.clients(db.endpoints(), Duration::from_secs(1), &options);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut client = clients.open(0);
    let mut call = |op: Operation, timeout: Duration| {
        rt.block_on(async {
            let (_, ended) = client.invoke(&op, timeout).await;
            ended
        })
    };
    let ok = |ended: Ended| match ended {
        Ended::Ok(v) => v,
        other => panic!("{other:?}"),
    };
    ok(call(
        Operation::Write { key: 1, value: 10 },
        Duration::from_secs(5),
    ));

    // Paused, every process of it: the open connection's backend too.
    db.pause(&primary).unwrap();
    let paused = call(Operation::Read { key: 1 }, Duration::from_millis(500));
    assert!(matches!(paused, Ended::Fail(_)), "{paused:?}");
    db.resume(&primary).unwrap();
    assert_eq!(
        ok(call(Operation::Read { key: 1 }, Duration::from_secs(5))),
        json!([1, 10])
    );

    // kill -9 of the whole instance, then a start: crash recovery.
    let before = db.pid(&primary).unwrap().expect("running");
    db.kill(&primary).unwrap();
    assert_eq!(db.pid(&primary).unwrap(), None);
    db.start(&primary).unwrap();
    assert_ne!(db.pid(&primary).unwrap(), Some(before));
    db.wait_ready(Duration::from_secs(60)).unwrap();
    assert_eq!(
        ok(call(Operation::Read { key: 1 }, Duration::from_secs(5))),
        json!([1, 10])
    );

    // Stopped and wiped: it starts again from initdb, with no table.
    db.stop(&primary, Duration::from_secs(10)).unwrap();
    db.wipe(&primary).unwrap();
    db.start(&primary).unwrap();
    db.wait_ready(Duration::from_secs(60)).unwrap();
    client_reset_and_read_nothing(&rt, clients.as_ref());

    let logs = tempfile::tempdir().unwrap();
    let files = db.download_logs(logs.path()).unwrap();
    assert_eq!(files.len(), 3, "{files:?}");
    let log = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        log.contains("database system was interrupted"),
        "crash recovery in the log: {log:.600}"
    );
    db.stop_all(Duration::from_secs(10)).unwrap();
    assert!(db.pids().iter().all(|(_, p)| matches!(p, Ok(None))));
}

/// A fresh client (a new connection makes the tables again) reads key 1
/// as never written.
fn client_reset_and_read_nothing(rt: &tokio::runtime::Runtime, clients: &dyn system::Clients) {
    let mut client = clients.open(0);
    let ended = rt.block_on(async {
        let (_, ended) = client
            .invoke(&Operation::Read { key: 1 }, Duration::from_secs(5))
            .await;
        ended
    });
    assert!(
        matches!(&ended, Ended::Ok(v) if *v == json!([1, null])),
        "{ended:?}"
    );
}

/// Power losses on every instance (the lazy file system under each data
/// directory): with `fsync: false` PostgreSQL acknowledges commits that a
/// power loss then takes; with fsync on (the default) the register stays
/// linearizable.
#[test]
fn fsync_off_loses_acknowledged_writes_in_a_power_loss_and_fsync_on_does_not() {
    runs::durability("postgres", "fsync: false", "fsync: true");
}
