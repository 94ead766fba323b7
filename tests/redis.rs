//! `--db redis`: Debian's redis-server and redis-sentinel on a 3-node netns
//! cluster (root; the packages installed, as .ci/run does), driven by real
//! `faultline run`s. Without faults the register and the lock are valid;
//! with the primary cut off, Sentinel fails over while the old primary
//! still takes writes from the clients that follow its own Sentinel: the
//! register is not linearizable and the lock is held by two clients at
//! once. As in the bug matrix, a fault only sometimes lines up, so the
//! faulty runs are tried with a few seeds and one must catch it. Under
//! power losses `appendfsync: no` loses acknowledged writes and `always`
//! does not. Runs are kept under cargo's target tmp dir (`redis/`).

mod common;

use common::runs::{self, Outcome};
use std::path::Path;
use std::process::Command;

/// The primary that Sentinel names is cut off for 10 s, twice in a run.
const ISOLATE_PRIMARY: &str =
    "nemesis: {faults: [{partition: {shape: primaries, duration: 10s, interval: 5s}}]}\n";

fn run(name: &str, yaml: &str, seed: u64) -> Outcome {
    let yaml = format!("db: redis\nnodes: 3\nrecovery: 3s\n{yaml}");
    runs::run("redis", name, &yaml, seed, &[])
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
    let yaml = format!("db: redis\nnodes: 3\nrecovery: 3s\n{yaml}");
    runs::caught("redis", name, &yaml, seeds, anomaly);
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

/// A process of this test, killed when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &str, args: &[&str], log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Child(
        Command::new(program)
            .args(args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e}")),
    )
}

/// Polls (bounded) until `addr` answers `command` with a reply that `ok` likes.
fn until(
    addr: &str,
    command: &[&str],
    ok: impl Fn(&faultline::system::redis::resp::Reply) -> bool,
) {
    use faultline::system::redis::resp::call_blocking;
    let addr = addr.parse().unwrap();
    let mut last = String::new();
    for _ in 0..100 {
        match call_blocking(addr, command, std::time::Duration::from_millis(300)) {
            Ok(r) if ok(&r) => return,
            other => last = format!("{other:?}"),
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{addr} never answered {command:?} as expected; last: {last}");
}

/// The client against one real server and its Sentinel on loopback: the
/// lock's tokens, which refusals are decided without asking Redis, which
/// replies are definite failures, and a `READONLY` server (a primary made
/// a replica behind the client's back) failing writes definitely.
#[test]
fn the_client_keeps_tokens_and_fails_only_what_certainly_did_not_happen() {
    use faultline::history::Ended;
    use faultline::system::System;
    use faultline::system::redis::{Redis, SENTINEL_PORT_OFFSET};
    use faultline::workload::{Operation, Workload, lock::Lock};
    use std::time::Duration;

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("redis/client");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Ports of this process's own: two servers and the first's Sentinel.
    let port = 21000 + (std::process::id() % 4000) as u16;
    let (p, q) = (port.to_string(), (port + 4001).to_string());
    let server = |port: &str, name: &str| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        spawn(
            "/usr/bin/redis-server",
            &[
                "--port",
                port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                d.to_str().unwrap(),
            ],
            &dir.join(format!("{name}.log")),
        )
    };
    let _a = server(&p, "a");
    let _b = server(&q, "b");
    let sentinel_port = port + SENTINEL_PORT_OFFSET;
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {sentinel_port}\nbind 127.0.0.1\ndir {}\nsentinel monitor faultline 127.0.0.1 {p} 1\n",
            dir.display()
        ),
    )
    .unwrap();
    let _s = spawn(
        "/usr/bin/redis-sentinel",
        &[conf.to_str().unwrap()],
        &dir.join("sentinel.log"),
    );
    let a = format!("127.0.0.1:{p}");
    until(&a, &["PING"], |_| true);
    until(&format!("127.0.0.1:{q}"), &["PING"], |_| true);
    until(
        &format!("127.0.0.1:{sentinel_port}"),
        &["SENTINEL", "get-master-addr-by-name", "faultline"],
        |r| r.texts().is_some_and(|t| t.len() == 2),
    );

    let lock = Workload::Lock(Lock {
        lease: faultline::span::Span(Duration::from_secs(1)),
        ..Lock::default()
    });
    let endpoints = vec![faultline::system::Endpoint {
        name: "n1".into(),
        addr: a.clone(),
    }];
    let options = faultline::system::DeployOptions {
        workload: Some(lock),
        ..faultline::system::DeployOptions::default()
    };
    let clients = Redis.clients(endpoints, Duration::from_millis(500), &options);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut c1, mut c2) = (clients.open(0), clients.open(0));
    let t = Duration::from_secs(2);
    let call = |c: &mut Box<dyn faultline::system::Client>, op: Operation| {
        let (node, ended) = rt.block_on(c.invoke(&op, t));
        assert_eq!(node, "n1");
        match ended {
            Ended::Ok(v) => format!("ok {v}"),
            Ended::Fail(e) => format!("fail {e}"),
            Ended::Info(e) => format!("info {e}"),
        }
    };
    let (acquire, release) = (Operation::Acquire { key: 0 }, Operation::Release { key: 0 });
    assert_eq!(
        call(&mut c1, release.clone()),
        "fail not-held",
        "decided locally"
    );
    assert_eq!(call(&mut c1, acquire.clone()), "ok [0,null]");
    assert_eq!(call(&mut c1, acquire.clone()), "fail already-held");
    assert_eq!(call(&mut c2, acquire.clone()), "fail held-by-another");
    assert_eq!(call(&mut c2, release.clone()), "fail not-held");
    assert_eq!(call(&mut c1, release.clone()), "ok [0,null]");
    assert_eq!(call(&mut c2, acquire.clone()), "ok [0,null]");
    // The lease runs out: c2's token is gone, its release deletes nothing.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(call(&mut c1, acquire.clone()), "ok [0,null]");
    assert_eq!(call(&mut c2, release.clone()), "fail not-held");
    assert_eq!(call(&mut c1, release.clone()), "ok [0,null]");

    assert_eq!(call(&mut c1, Operation::Read { key: 3 }), "ok [3,null]");
    assert_eq!(
        call(&mut c1, Operation::Write { key: 3, value: 7 }),
        "ok [3,7]"
    );
    assert_eq!(call(&mut c2, Operation::Read { key: 3 }), "ok [3,7]");
    assert_eq!(
        call(
            &mut c2,
            Operation::Cas {
                key: 3,
                from: 7,
                to: 8
            }
        ),
        "ok [3,[7,8]]"
    );
    assert_eq!(
        call(
            &mut c1,
            Operation::Cas {
                key: 3,
                from: 7,
                to: 9
            }
        ),
        "fail cas-mismatch"
    );

    // The primary becomes a replica; Sentinel (quorum 1, no failover to
    // make) still names it. A write there is refused before it runs.
    until(&a, &["REPLICAOF", "127.0.0.1", &q], |r| r.text().is_some());
    let refused = call(&mut c1, Operation::Write { key: 3, value: 1 });
    assert!(refused.starts_with("fail READONLY"), "{refused}");
    // Asked again, Sentinel names it, but it says it is a replica: nothing sent.
    let refused = call(&mut c1, Operation::Write { key: 3, value: 1 });
    assert!(
        refused.starts_with("fail ") && refused.contains("ROLE"),
        "{refused}"
    );
}

/// Power losses on every host (the lazy file system under each data
/// directory): with `appendfsync: no` the append-only file is left to the
/// OS and acknowledged writes are lost (the primary comes back without
/// them, and its replicas resync from it); with `always` Redis fsyncs
/// before it replies and the register stays linearizable.
#[test]
fn appendfsync_no_loses_acknowledged_writes_in_a_power_loss_and_always_does_not() {
    runs::durability("redis", "appendfsync: no", "appendfsync: always");
}
