//! Helpers shared by the node integration tests (Paxos, 2PC): workload
//! drivers with every outcome recorded, reads retried until a node answers,
//! histories from the harness's own workers for the checkers, and fake peers.

use faultline::client::LeaderClient;
use faultline::nodes::wire::{Operation, Outcome};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

pub fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_faultline"))
}

pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// How each set add ended.
#[derive(Debug, Default)]
pub struct Adds {
    pub ok: BTreeSet<i64>,
    pub fail: BTreeSet<i64>,
    pub unknown: BTreeSet<i64>,
}

impl Adds {
    fn merge(&mut self, other: Adds) {
        self.ok.extend(other.ok);
        self.fail.extend(other.fail);
        self.unknown.extend(other.unknown);
    }
}

/// Adds `values` to the set from `clients` concurrent clients (each follows
/// leader hints), one value at a time per client, until done or `stop_at`.
pub async fn add_values(
    addrs: &[String],
    values: std::ops::Range<i64>,
    clients: usize,
    stop_at: Instant,
) -> Adds {
    let mut tasks = Vec::new();
    for c in 0..clients as i64 {
        let mut client = LeaderClient::new(rotate(addrs, c as usize));
        let mine: Vec<i64> = values
            .clone()
            .filter(|v| v.rem_euclid(clients as i64) == c)
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut adds = Adds::default();
            for v in mine {
                if Instant::now() >= stop_at {
                    break;
                }
                let (_, result) = client
                    .call(Operation::SetAdd { value: v }, CALL_TIMEOUT)
                    .await;
                match result {
                    Ok(Outcome::Ok { .. }) => adds.ok.insert(v),
                    Ok(Outcome::Fail { .. }) => adds.fail.insert(v),
                    _ => {
                        // Nodes may be down for a moment; do not spin.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        adds.unknown.insert(v)
                    }
                };
            }
            adds
        }));
    }
    let mut all = Adds::default();
    for t in tasks {
        all.merge(t.await.expect("client task panicked"));
    }
    all
}

/// The addresses starting at `i`, so clients spread over the nodes.
pub fn rotate(addrs: &[String], i: usize) -> Vec<String> {
    let mut v = addrs.to_vec();
    v.rotate_left(i % addrs.len().max(1));
    v
}

/// Calls `op` (following leader hints) until some node answers `ok`, for at
/// most `timeout`; returns the value or the last answer.
pub async fn call_until_ok(
    addrs: &[String],
    op: Operation,
    timeout: Duration,
) -> Result<Value, String> {
    let deadline = Instant::now() + timeout;
    let mut client = LeaderClient::new(addrs.to_vec());
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        match client.call(op.clone(), CALL_TIMEOUT).await {
            (_, Ok(Outcome::Ok { value })) => return Ok(value),
            (node, other) => last = format!("{node:?}: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(last)
}

/// The set as read through the cluster, retried until a node answers.
pub async fn read_set(addrs: &[String], timeout: Duration) -> BTreeSet<i64> {
    let value = call_until_ok(addrs, Operation::SetRead, timeout)
        .await
        .unwrap_or_else(|e| panic!("no set read succeeded within {timeout:?}: {e}"));
    serde_json::from_value::<Vec<i64>>(value)
        .expect("a set read returns a list of integers")
        .into_iter()
        .collect()
}

/// Acknowledged adds missing from `read`, and values read that nobody added
/// or whose add certainly failed.
pub fn lost_and_phantom(adds: &Adds, read: &BTreeSet<i64>) -> (Vec<i64>, Vec<i64>) {
    let lost = adds.ok.difference(read).copied().collect();
    let phantom = read
        .iter()
        .filter(|v| !adds.ok.contains(v) && !adds.unknown.contains(v))
        .copied()
        .collect();
    (lost, phantom)
}

/// How one list-append transaction ended: it appended `value` to each of `keys`.
#[derive(Debug, Clone)]
pub struct AppendTxn {
    pub value: i64,
    pub keys: Vec<i64>,
    pub outcome: OpEnd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpEnd {
    Ok,
    Fail,
    Unknown,
}

/// Runs `count` transactions, each appending its own value to two of
/// `0..keys`, from `clients` concurrent clients spread over the nodes.
pub async fn append_txns(
    addrs: &[String],
    count: i64,
    keys: i64,
    clients: usize,
    stop_at: Instant,
) -> Vec<AppendTxn> {
    use faultline::nodes::wire::MicroOp;
    let mut tasks = Vec::new();
    for c in 0..clients as i64 {
        let mut client = LeaderClient::new(rotate(addrs, c as usize));
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            for value in (0..count).filter(|v| v % clients as i64 == c) {
                if Instant::now() >= stop_at {
                    break;
                }
                let a = value % keys;
                let b = match (value * 7 + 3) % keys {
                    b if b == a => (a + 1) % keys,
                    b => b,
                };
                let ops = vec![MicroOp::Append(a, value), MicroOp::Append(b, value)];
                let (_, result) = client.call(Operation::Txn { ops }, CALL_TIMEOUT).await;
                let outcome = match result {
                    Ok(Outcome::Ok { .. }) => OpEnd::Ok,
                    Ok(Outcome::Fail { .. }) => OpEnd::Fail,
                    _ => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        OpEnd::Unknown
                    }
                };
                done.push(AppendTxn {
                    value,
                    keys: vec![a, b],
                    outcome,
                });
            }
            done
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task panicked"));
    }
    all
}

/// Every list in `0..keys`, read in one transaction retried until it succeeds.
pub async fn read_lists(
    addrs: &[String],
    keys: i64,
    timeout: Duration,
) -> std::collections::BTreeMap<i64, Vec<i64>> {
    use faultline::nodes::wire::MicroOp;
    let ops = (0..keys).map(|k| MicroOp::Read(k, None)).collect();
    let value = call_until_ok(addrs, Operation::Txn { ops }, timeout)
        .await
        .unwrap_or_else(|e| panic!("no read of every list succeeded within {timeout:?}: {e}"));
    let done: Vec<MicroOp> = serde_json::from_value(value).expect("a txn returns micro-ops");
    done.into_iter()
        .filter_map(|m| match m {
            MicroOp::Read(k, Some(faultline::nodes::wire::Cell::List(l))) => Some((k, l)),
            MicroOp::Read(k, None) => Some((k, Vec::new())),
            _ => None,
        })
        .collect()
}

/// What the final lists say against how each transaction ended: an
/// acknowledged append missing, a failed one present, a transaction only
/// partly applied, or a value appended twice.
pub fn append_problems(
    txns: &[AppendTxn],
    lists: &std::collections::BTreeMap<i64, Vec<i64>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (k, list) in lists {
        let distinct: BTreeSet<&i64> = list.iter().collect();
        if distinct.len() != list.len() {
            problems.push(format!("key {k} holds a value twice: {list:?}"));
        }
    }
    for t in txns {
        let present: Vec<bool> = t
            .keys
            .iter()
            .map(|k| lists.get(k).is_some_and(|l| l.contains(&t.value)))
            .collect();
        let wrong = match t.outcome {
            OpEnd::Ok => present.contains(&false),
            OpEnd::Fail => present.contains(&true),
            OpEnd::Unknown => present.contains(&true) && present.contains(&false),
        };
        if wrong {
            problems.push(format!(
                "{t:?} but present in keys {:?}: {present:?}",
                t.keys
            ));
        }
    }
    problems
}

/// The harness's own client workers and generator running a workload preset
/// against a local cluster, recording a history for the checkers.
pub struct Workload {
    cfg: std::sync::Arc<faultline::runner::workers::WorkerConfig>,
    source: std::sync::Arc<faultline::runner::workers::Source>,
    recorder: std::sync::Arc<faultline::runner::recorder::Recorder>,
    stop: tokio::sync::watch::Sender<bool>,
    run: tokio::task::JoinHandle<()>,
}

impl Workload {
    /// Starts `concurrency` workers of the preset `name` (`bank`, `set`,
    /// `register`, `list-append`, ...) at `rate` ops/s, seeded with `seed`.
    pub fn start(
        cluster: &faultline::client::local::LocalCluster,
        db: &str,
        name: &str,
        concurrency: u32,
        rate: f64,
        seed: u64,
    ) -> Workload {
        use faultline::generator::Pacer;
        use faultline::runner::workers::{Source, WorkerConfig};
        use faultline::suite::test::{Source as SpecSource, resolve};
        use faultline::suite::{TestSpec, WorkloadRef};
        use faultline::system::Endpoint;
        use std::sync::{Arc, Mutex};
        let test = TestSpec {
            db: faultline::system::SystemRef::parse(db).ok(),
            workload: Some(WorkloadRef::Name(name.into())),
            ..TestSpec::default()
        };
        let test = resolve(&test, &SpecSource::command_line()).expect("a built-in workload preset");
        let workload = test.workload.clone();
        let cfg = Arc::new(WorkerConfig {
            concurrency,
            clients: test.db.clients(
                cluster
                    .nodes
                    .iter()
                    .map(|n| Endpoint {
                        name: n.id.clone(),
                        addr: n.addr.clone(),
                    })
                    .collect(),
                Duration::from_millis(300),
                &faultline::system::DeployOptions {
                    workload: Some(workload.clone()),
                    ..faultline::system::DeployOptions::default()
                },
            ),
            op_timeout: Duration::from_millis(1000),
        });
        let source = Arc::new(Source {
            generator: Mutex::new(workload.generator(seed)),
            pacer: Mutex::new(Pacer::new(rate)),
        });
        let recorder = Arc::new(
            faultline::runner::recorder::Recorder::create(None, Instant::now())
                .expect("an in-memory recorder"),
        );
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let run = tokio::spawn(faultline::runner::workers::run(
            cfg.clone(),
            source.clone(),
            recorder.clone(),
            stop_rx,
        ));
        Workload {
            cfg,
            source,
            recorder,
            stop,
            run,
        }
    }

    /// Stops the workers, runs the workload's final reads on every node
    /// (the cluster should have recovered by now) and returns the history.
    pub async fn finish(self) -> Vec<faultline::history::Op> {
        let _ = self.stop.send(true);
        self.run.await.expect("workers panicked");
        let reads = self
            .source
            .generator
            .lock()
            .expect("no worker panicked")
            .final_reads();
        faultline::runner::workers::final_reads(
            &self.cfg,
            &reads,
            &self.recorder,
            1_000_000,
            Instant::now() + Duration::from_secs(15),
        )
        .await;
        let (ops, error) = self.recorder.finish();
        assert_eq!(error, None, "an in-memory history has no write errors");
        ops
    }
}

/// How many ops of the history completed with `kind`.
pub fn count(ops: &[faultline::history::Op], kind: faultline::history::OpType) -> usize {
    ops.iter().filter(|o| o.kind == kind).count()
}

/// Plays a peer of a real node: listens where the node dials that peer and
/// hands the test every message the node sends it.
pub struct FakePeer<M> {
    pub id: String,
    pub inbox: tokio::sync::mpsc::Receiver<M>,
}

impl<M: serde::de::DeserializeOwned + Send + 'static> FakePeer<M> {
    pub async fn listen(id: &str, addr: &str) -> FakePeer<M> {
        use tokio::io::AsyncBufReadExt;
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let (tx, inbox) = tokio::sync::mpsc::channel(65536);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut lines = tokio::io::BufReader::new(stream).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Ok(msg) = serde_json::from_str::<M>(&line) {
                            let _ = tx.send(msg).await;
                        }
                    }
                });
            }
        });
        FakePeer {
            id: id.into(),
            inbox,
        }
    }

    /// The next message `pick` accepts, skipping others; panics after `timeout`.
    pub async fn expect<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(M) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.inbox.recv()).await {
                Ok(Some(msg)) => {
                    if let Some(t) = pick(msg) {
                        return t;
                    }
                }
                _ => panic!(
                    "{}: the expected message did not come within {timeout:?}",
                    self.id
                ),
            }
        }
    }
}

/// A peer connection to the node at `node_addr`, introduced as `from`.
pub async fn peer_conn(from: &str, node_addr: &str) -> tokio::net::TcpStream {
    use faultline::nodes::wire::{PeerHello, encode_frame};
    use tokio::io::AsyncWriteExt;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut conn = loop {
        match tokio::net::TcpStream::connect(node_addr).await {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => {
                panic!("cannot reach the node at {node_addr}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let hello = PeerHello { peer: from.into() };
    conn.write_all(&encode_frame(&hello)).await.unwrap();
    conn
}

/// The linearizability checker's verdict on a register history (the
/// `register` preset: cas-register per key), with the explanation of the
/// first invalid key.
pub fn check_registers(ops: &[faultline::history::Op]) -> (faultline::checker::Verdict, String) {
    use faultline::checker::linearizable::{ModelKind, Options, check};
    let options = Options {
        model: ModelKind::CasRegister,
        time_limit: Duration::from_secs(60),
        ..Options::default()
    };
    let report = check(ops, &options).expect("a well-formed register history");
    let why = report
        .keys
        .iter()
        .find_map(|k| {
            k.explanation
                .as_ref()
                .map(|e| format!("key {:?}:\n{}", k.key, e.text("  ")))
        })
        .unwrap_or_default();
    (report.verdict, why)
}

/// Elle's verdict on a list-append history under strict serializability,
/// with the anomalies it found (by name) and the first explanation.
pub fn check_list_append(
    ops: &[faultline::history::Op],
) -> (faultline::checker::Verdict, Vec<String>, String) {
    use faultline::checker::elle::model::Model;
    use faultline::checker::elle::{ElleOptions, Workload, check};
    let opts = ElleOptions::new(Workload::ListAppend, Model::StrictSerializable);
    let result = check(ops, &opts).expect("a well-formed list-append history");
    let found = result.counts.keys().map(|a| format!("{a:?}")).collect();
    let first = result
        .cases
        .first()
        .map(|c| c.text.clone())
        .unwrap_or_default();
    (result.verdict, found, first)
}
