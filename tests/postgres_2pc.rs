//! The bank across independent PostgreSQL 15 instances by two-phase commit,
//! faultline's client the transaction manager (root; Debian's postgresql).
//!
//! - On loopback, with instances this file starts itself (initdb, postgres
//!   as the postgres user, distinct ports and temp dirs): transfers and
//!   reads through the system's clients while one instance is killed with
//!   -9 again and again; every read sums to the total, the decision log has
//!   the commits, and no prepared transaction is left once recovery ran.
//! - `faultline run` on netns hosts: valid under kills without bugs; each
//!   bug of the transaction manager caught (a few seeds, as in
//!   `bug_matrix.rs`: a fault must line up with a transfer).
//!
//! Runs are kept under cargo's target tmp dir (`postgres_2pc/`).

mod common;

use common::runs;
use serde_json::json;

use faultline::history::Ended;
use faultline::system::postgres::bank::DECISION_LOG;
use faultline::system::{self, DeployOptions, Endpoint};
use faultline::workload::{Operation, Workload};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = "/usr/lib/postgresql/15/bin";

/// One PostgreSQL instance on 127.0.0.1, in a temp dir of its own; killed
/// with -9 when dropped.
struct Instance {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Instance {
    fn new(name: &str) -> Instance {
        let dir = std::env::temp_dir().join(format!("fl-pg2pc-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "chown {}", dir.display());
        let out = as_postgres(&format!("{BIN}/initdb"))
            .args(["--auth=trust", "-U", "postgres", "-D"])
            .arg(dir.join("data"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut i = Instance {
            dir,
            port,
            child: None,
        };
        i.start();
        i
    }

    /// Starts the postmaster and waits until it accepts sessions.
    fn start(&mut self) {
        let started = Instant::now();
        loop {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join("log"))
                .unwrap();
            let child = as_postgres(&format!("{BIN}/postgres"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-p", &self.port.to_string()])
                .args(["-c", "listen_addresses=127.0.0.1"])
                .args(["-c", "max_prepared_transactions=64"])
                .arg("-c")
                .arg(format!("unix_socket_directories={}", self.dir.display()))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            self.child = Some(child);
            loop {
                std::thread::sleep(Duration::from_millis(100));
                if let Some(Some(_)) = self.child.as_mut().map(|c| c.try_wait().unwrap()) {
                    // Exited: after a kill -9 its old backends may still
                    // hold the shared memory a moment.
                    break;
                }
                let ready = Command::new(format!("{BIN}/pg_isready"))
                    .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                    .stdout(Stdio::null())
                    .status()
                    .unwrap()
                    .success();
                if ready {
                    return;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "postgres on {} never answered",
                    self.port
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "postgres on {} never started",
                self.port
            );
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn endpoint(&self, name: &str) -> Endpoint {
        Endpoint {
            name: name.into(),
            addr: format!("127.0.0.1:{}", self.port),
        }
    }

    /// What `sql` prints on this instance (psql, unaligned).
    fn psql(&self, sql: &str) -> String {
        let out = Command::new(format!("{BIN}/psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-At",
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn as_postgres(program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        program,
    ]);
    c
}

/// The system's bank clients over `endpoints`, deployed with `bugs`,
/// logging decisions in `dir` (as a run's folder).
fn bank_clients(
    endpoints: Vec<Endpoint>,
    dir: &std::path::Path,
    bugs: &[&str],
) -> std::sync::Arc<dyn system::Clients> {
    let options = DeployOptions {
        workload: Some(Workload::Bank(Default::default())),
        bugs: bugs.iter().map(|b| b.to_string()).collect(),
        run_dir: Some(dir.to_path_buf()),
        ..DeployOptions::default()
    };
    let postgres = system::lookup("postgres").unwrap();
    postgres.clients(endpoints, Duration::from_millis(500), &options)
}

/// What a run of `workers` clients for `secs` with kills saw: ok reads'
/// totals, and counts of ok / fail / info transfers.
struct Seen {
    totals: Vec<i64>,
    transfers: [usize; 3],
}

/// Transfers and reads from `workers` clients for `secs`, killing one
/// instance with -9 every `kill_every` (and starting it again).
fn drive(
    instances: &mut [Instance],
    clients: std::sync::Arc<dyn system::Clients>,
    secs: u64,
    kill_every: Option<Duration>,
) -> Seen {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Seen {
        totals: Vec::new(),
        transfers: [0; 3],
    }));
    let mut tasks = Vec::new();
    for w in 0..8u64 {
        let (clients, stop, seen) = (clients.clone(), stop.clone(), seen.clone());
        tasks.push(rt.spawn(async move {
            let mut client = clients.open(w as usize);
            let mut n = w;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let from = ((n >> 33) % 5) as i64;
                let to = (from + 1 + ((n >> 40) % 4) as i64) % 5;
                let op = if (n >> 50) % 2 == 0 {
                    Operation::BankRead
                } else {
                    Operation::Transfer {
                        from,
                        to,
                        amount: 1 + ((n >> 20) % 5) as i64,
                    }
                };
                let (_, ended) = client.invoke(&op, Duration::from_secs(3)).await;
                let mut s = seen.lock().unwrap();
                match (&op, ended) {
                    (Operation::BankRead, Ended::Ok(v)) => {
                        let total = v
                            .as_object()
                            .unwrap()
                            .values()
                            .map(|b| b.as_i64().unwrap())
                            .sum();
                        s.totals.push(total);
                    }
                    (Operation::BankRead, _) => {}
                    (_, Ended::Ok(_)) => s.transfers[0] += 1,
                    (_, Ended::Fail(_)) => s.transfers[1] += 1,
                    (_, Ended::Info(e)) => {
                        s.transfers[2] += 1;
                        println!("info: {e}");
                    }
                }
                drop(s);
                client.reset();
            }
        }));
    }
    let started = Instant::now();
    let mut victim = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        match kill_every {
            Some(every) => {
                std::thread::sleep(every);
                victim = (victim + 1) % instances.len();
                instances[victim].kill();
                std::thread::sleep(Duration::from_millis(300));
                instances[victim].start();
            }
            None => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        rt.block_on(t).unwrap();
    }
    // A final read, once recovery has had its second.
    std::thread::sleep(Duration::from_secs(2));
    let mut client = clients.open(0);
    for _ in 0..20 {
        let (_, ended) = rt.block_on(client.invoke(&Operation::BankRead, Duration::from_secs(3)));
        if let Ended::Ok(v) = ended {
            let total = v
                .as_object()
                .unwrap()
                .values()
                .map(|b| b.as_i64().unwrap())
                .sum();
            seen.lock().unwrap().totals.push(total);
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(clients);
    let s = seen.lock().unwrap();
    Seen {
        totals: s.totals.clone(),
        transfers: s.transfers,
    }
}

#[test]
fn transfers_across_instances_keep_the_total_through_kills() {
    let mut instances: Vec<Instance> = (0..3).map(|i| Instance::new(&format!("ok{i}"))).collect();
    let dir = tempfile::tempdir().unwrap();
    let endpoints = instances
        .iter()
        .enumerate()
        .map(|(i, p)| p.endpoint(&format!("n{}", i + 1)))
        .collect();
    let clients = bank_clients(endpoints, dir.path(), &[]);
    let seen = drive(
        &mut instances,
        clients,
        20,
        Some(Duration::from_millis(1500)),
    );
    println!(
        "transfers ok/fail/info {:?}, {} reads",
        seen.transfers,
        seen.totals.len()
    );
    assert!(seen.transfers[0] > 50, "{:?}", seen.transfers);
    assert!(seen.totals.len() > 20, "{}", seen.totals.len());
    let wrong: Vec<&i64> = seen.totals.iter().filter(|&&t| t != 50).collect();
    assert!(wrong.is_empty(), "reads that do not sum to 50: {wrong:?}");
    let log = std::fs::read_to_string(dir.path().join(DECISION_LOG)).unwrap();
    assert!(
        log.lines().count() > 20 && log.lines().all(|l| l.ends_with(" commit")),
        "{log:.300}"
    );
    for i in &instances {
        assert_eq!(i.psql("SELECT count(*) FROM pg_prepared_xacts"), "0");
    }
}

#[test]
fn recovery_that_forgets_commits_loses_money_through_kills() {
    let mut instances: Vec<Instance> = (0..3).map(|i| Instance::new(&format!("fg{i}"))).collect();
    let dir = tempfile::tempdir().unwrap();
    // A kill must land between a transfer's decision and its commit on the
    // killed instance: a few rounds of 20 s, until one does.
    let mut seen_all = Vec::new();
    for _round in 0..3 {
        let endpoints = instances
            .iter()
            .enumerate()
            .map(|(i, p)| p.endpoint(&format!("n{}", i + 1)))
            .collect();
        let clients = bank_clients(endpoints, dir.path(), &["forget-in-doubt"]);
        let seen = drive(
            &mut instances,
            clients,
            20,
            Some(Duration::from_millis(1500)),
        );
        println!(
            "transfers ok/fail/info {:?}, totals {:?}",
            seen.transfers, seen.totals
        );
        if seen.totals.iter().any(|&t| t != 50) {
            return;
        }
        seen_all.push(seen.transfers);
    }
    panic!("every read summed to 50 in 3 rounds (transfers ok/fail/info {seen_all:?})");
}

#[test]
fn committing_before_preparing_breaks_reads_without_faults() {
    let mut instances: Vec<Instance> = (0..3).map(|i| Instance::new(&format!("cb{i}"))).collect();
    let dir = tempfile::tempdir().unwrap();
    let endpoints = instances
        .iter()
        .enumerate()
        .map(|(i, p)| p.endpoint(&format!("n{}", i + 1)))
        .collect();
    let clients = bank_clients(endpoints, dir.path(), &["commit-before-prepared"]);
    let seen = drive(&mut instances, clients, 10, None);
    println!(
        "transfers ok/fail/info {:?}, totals {:?}",
        seen.transfers, seen.totals
    );
    assert!(seen.totals.iter().any(|&t| t != 50), "{:?}", seen.totals);
}

/// A bank test file for `faultline run` of PostgreSQL over 3 instances,
/// with `bugs` and `faults` (the nemesis' `faults:` list, in flow style).
fn bank_test(bugs: &str, time_limit: &str, faults: &str) -> String {
    format!(
        "db: postgres\nnodes: 3\nbugs: [{bugs}]\ntime_limit: {time_limit}\nrecovery: 5s\n\
         workload: bank\nnemesis: {{faults: [{faults}]}}\n"
    )
}

/// Kills (-9, of the whole instance) and pauses of one instance at a
/// time: what leaves a transfer in doubt. Partitions change nothing here:
/// the instances never talk to each other, and the controller (the
/// transaction manager) is never cut off.
const KILLS_AND_PAUSES: &str = "{kill: {targets: one, duration: 2s, interval: 3s}}, \
     {pause: {targets: one, duration: 2s, interval: 5s}}";

#[test]
fn the_bank_across_instances_is_valid_under_kills_pauses_and_partitions() {
    let faults =
        format!("{KILLS_AND_PAUSES}, {{partition: {{shape: halves, duration: 3s, interval: 3s}}}}");
    let o = runs::run(
        "postgres_2pc",
        "bank-kill-pause-partition",
        &bank_test("", "60s", &faults),
        1,
        &[],
    );
    assert_eq!(o.checker("bank"), json!(true), "{}", o.summary);
    // Not invalid; `unknown` is allowed for one reason of the Db's, not
    // the bank's: an instance restarted right after a kill may find its
    // old postmaster's lock file and exit (node-exited).
    let others: Vec<String> = o
        .anomalies()
        .into_iter()
        .filter(|a| a != "node-exited")
        .collect();
    assert!(o.exit != 1 && others.is_empty(), "{}", o.summary);
    // The faults bit, and the transfers went on across them.
    assert!(o.count("info") + o.count("fail") > 0, "{}", o.summary);
    assert!(o.count("ok") > 200, "{}", o.summary);
    // The decision log is in the run's folder, one commit a line.
    let log = std::fs::read_to_string(o.dir.join(DECISION_LOG)).unwrap();
    assert!(log.lines().count() > 50, "{log:.300}");
    assert!(log.lines().all(|l| l.ends_with(" commit")), "{log:.300}");
}

#[test]
fn forget_in_doubt_is_caught_under_kills_and_pauses() {
    let o = runs::caught(
        "postgres_2pc",
        "bank-forget-in-doubt",
        &bank_test("forget-in-doubt", "60s", KILLS_AND_PAUSES),
        &[1, 2, 3],
        "wrong-total",
    );
    assert_eq!(o.checker("bank"), json!(false));
}

#[test]
fn commit_before_prepared_is_caught_under_kills_and_pauses() {
    let o = runs::caught(
        "postgres_2pc",
        "bank-commit-before-prepared",
        &bank_test("commit-before-prepared", "30s", KILLS_AND_PAUSES),
        &[1, 2, 3],
        "wrong-total",
    );
    assert_eq!(o.checker("bank"), json!(false));
}
