//! etcd (Debian's etcd-server, /usr/bin/etcd) as a system under test, for
//! real: 3-member clusters on network namespaces (root).
//!
//! - The `Db`: a leader is found from the members' status, a member killed
//!   with -9 comes back from its data, a wiped one rejoins through the
//!   membership API and serves what was written before.
//! - `faultline run` as in Jepsen's etcd 3.4.3 analysis: register under
//!   partitions and kills of the leader, and list-append under partitions,
//!   are valid with linearizable reads; serializable (local) reads are
//!   stale under partitions; the lock is no mutex when a holder's member is
//!   paused past its lease. The last two depend on a fault lining up with
//!   the workload, so, as in `bug_matrix.rs`, a few seeds are tried and one
//!   must catch it.
//!
//! Runs are kept under cargo's target tmp dir (`etcd/`) for inspection.

mod common;

use common::runs::{self, Outcome};
use common::{BINARY, make};
use faultline::cluster::Backend;
use faultline::history::Ended;
use faultline::system::{self, DeployOptions, SystemRef};
use faultline::workload::Operation;
use serde_json::json;
use std::time::Duration;

/// `faultline run` of the test file `yaml` with `seed`.
fn run(name: &str, yaml: &str, seed: u64) -> Outcome {
    runs::run("etcd", name, yaml, seed, &[])
}

fn caught(name: &str, yaml: &str, seeds: &[u64], anomaly: &str) -> Outcome {
    runs::caught("etcd", name, yaml, seeds, anomaly)
}

#[test]
fn register_under_partitions_and_leader_kills_is_linearizable() {
    let o = run(
        "register-partition-kill",
        "db: etcd\nnodes: 3\ntime_limit: 20s\nrecovery: 3s\nworkload: register\n\
         nemesis:\n  faults:\n\
         \x20   - partition: {shape: halves, duration: 3s, interval: 3s}\n\
         \x20   - kill: {targets: primaries, duration: 2s, interval: 5s}\n",
        11,
    );
    assert_eq!(o.exit, 0, "{}", o.summary);
    assert_eq!(o.checker("linearizable"), json!(true), "{}", o.summary);
    // The faults bit: some calls went unanswered, and the cluster recovered.
    assert!(o.count("info") + o.count("fail") > 0, "{}", o.summary);
    assert!(o.count("ok") > 100, "{}", o.summary);
}

#[test]
fn list_append_under_partitions_is_strict_serializable() {
    let o = run(
        "list-append-partition",
        "db: etcd\nnodes: 3\ntime_limit: 20s\nrecovery: 3s\nworkload: list-append\n\
         nemesis: {faults: [{partition: {shape: halves, duration: 3s, interval: 2s}}]}\n",
        12,
    );
    assert_eq!(o.exit, 0, "{}", o.summary);
    assert_eq!(o.checker("elle"), json!(true), "{}", o.summary);
    assert!(
        o.summary.contains("strict-serializable holds"),
        "{}",
        o.summary
    );
}

/// etcd's serializable reads are served by the member asked from its own
/// state: a member cut off in a minority answers with what it had.
#[test]
fn serializable_reads_are_stale_under_partitions() {
    let o = caught(
        "register-serializable-partition",
        "db: etcd\ndb_options: {serializable_reads: true}\nnodes: 3\ntime_limit: 12s\n\
         recovery: 2s\nworkload: {kind: register, keys: 3}\n\
         nemesis: {faults: [{partition: {shape: halves, duration: 3s, interval: 1s}}]}\n",
        &[1, 2, 3],
        "not-linearizable",
    );
    assert_eq!(o.checker("linearizable"), json!(false));
}

/// A holder whose member is paused past the lease stops renewing it, the
/// lease expires and another client takes the lock while the holder still
/// holds it. Holders keep the lock a while (acquires outnumber releases,
/// and each worker makes an operation every 1.5 s), so that the holder's
/// release comes after the other's acquire.
#[test]
fn the_lock_is_no_mutex_when_a_holders_member_pauses_past_its_lease() {
    let o = caught(
        "lock-pause",
        "db: etcd\nnodes: 3\nconcurrency: 3\nrate: 2\ntime_limit: 40s\nrecovery: 2s\n\
         workload: {kind: lock, lease: 2s, mix: {acquire: 3, release: 1}}\n\
         nemesis: {faults: [{pause: {targets: one, duration: 5s, interval: 5s}}]}\n",
        &[1, 2, 7, 3, 4],
        "not-linearizable",
    );
    assert_eq!(o.checker("linearizable"), json!(false));
}

/// The `Db` on its own: a leader from the members' status, restart after
/// kill -9 from the data kept, and rejoin after a wipe.
#[test]
fn a_killed_member_restarts_from_its_data_and_a_wiped_one_rejoins() {
    let (c, _guard) = make("etcdwipe", Backend::Netns, 3, false);
    let etcd = SystemRef::parse("etcd").unwrap();
    let options = DeployOptions {
        binary: BINARY.into(),
        install: false,
        ..DeployOptions::default()
    };
    let (db, timings) = system::deploy(etcd.get(), &c, &options).expect("deploy etcd");
    println!("deploy {timings}");
    let leaders = db.primaries().unwrap();
    assert_eq!(leaders.len(), 1, "one leader: {leaders:?}");
    let clients = etcd.clients(db.endpoints(), Duration::from_millis(500), &options);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let call = |home: usize, op: Operation| {
        rt.block_on(async {
            let mut client = clients.open(home);
            // A member that just came back may need a moment: a few tries.
            let mut last = None;
            for _ in 0..20 {
                let (_, ended) = client.invoke(&op, Duration::from_secs(2)).await;
                match ended {
                    Ended::Ok(v) => return v,
                    other => last = Some(other),
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            panic!("{op:?} on node {home}: {last:?}");
        })
    };
    call(0, Operation::Write { key: 1, value: 10 });

    // kill -9 the leader and start it again: it comes back from its data.
    let leader = &leaders[0];
    db.kill(leader).unwrap();
    assert_eq!(db.pid(leader).unwrap(), None);
    db.start(leader).unwrap();
    db.wait_ready(Duration::from_secs(30)).unwrap();
    let home = c.hosts.iter().position(|h| &h.name == leader).unwrap();
    assert_eq!(call(home, Operation::Read { key: 1 }), json!([1, 10]));

    // Stop a member, wipe it, start it: it rejoins as a new member and
    // serves the data written before.
    let wiped = &c.hosts[2].name;
    db.kill(wiped).unwrap();
    db.wipe(wiped).unwrap();
    db.start(wiped).unwrap();
    db.wait_ready(Duration::from_secs(30)).unwrap();
    assert_eq!(call(2, Operation::Read { key: 1 }), json!([1, 10]));
    call(2, Operation::Write { key: 1, value: 11 });
    assert_eq!(call(0, Operation::Read { key: 1 }), json!([1, 11]));
    assert_eq!(db.primaries().unwrap().len(), 1);

    let logs = tempfile::tempdir().unwrap();
    let files = db.download_logs(logs.path()).unwrap();
    assert_eq!(files.len(), 3, "{files:?}");
    let log = std::fs::read_to_string(&files[2]).unwrap();
    assert!(
        log.contains("\"level\":\"info\""),
        "etcd's zap log: {log:.300}"
    );
    db.stop_all(Duration::from_secs(5)).unwrap();
}
