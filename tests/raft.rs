//! Raft clusters of real processes (the faultline binary, `faultline node
//! raft`) on random 127.x.y.z addresses with real TCP and real kill -9:
//! elections, replication, leader loss, restarts from the data dirs, and one
//! test per named bug showing the bug is caught.

use faultline::checker::Verdict;
use faultline::checker::logs::NodeLog;
use faultline::client::local::LocalCluster;
use faultline::client::{Client, LeaderClient, ended};
use faultline::history::{Op, OpType, Process};
use faultline::nodes::raft::message::Msg;
use faultline::nodes::wire::{FailCode, OpFamily, Operation, Outcome, PeerHello, encode_frame};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, mpsc};

const EXE: &str = env!("CARGO_BIN_EXE_faultline");
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
const LEADER_TIMEOUT: Duration = Duration::from_secs(10);

fn start(n: usize, args: &[&str]) -> LocalCluster {
    LocalCluster::start(Path::new(EXE), "raft", n, args).expect("start the cluster")
}

/// kill -9 every node at once, then start them all from their data dirs.
fn restart_all(cluster: &mut LocalCluster) {
    for i in 0..cluster.nodes.len() {
        cluster.kill(i);
    }
    for i in 0..cluster.nodes.len() {
        cluster.start_node(i).unwrap();
    }
}

async fn leader(cluster: &LocalCluster, among: &[usize]) -> usize {
    match cluster.wait_for_leader(among, LEADER_TIMEOUT).await {
        Some(i) => i,
        None => panic!(
            "no leader among {among:?} within {LEADER_TIMEOUT:?}\n{}",
            cluster.logs()
        ),
    }
}

/// Calls `op` through a leader-following client, retrying definite
/// `unavailable`/`not-leader` answers (elections) for a few seconds.
async fn call(addrs: Vec<String>, op: Operation) -> Outcome {
    let mut client = LeaderClient::new(addrs);
    let deadline = Instant::now() + LEADER_TIMEOUT;
    loop {
        let (_, result) = client.call(op.clone(), CALL_TIMEOUT).await;
        match result {
            Ok(Outcome::Fail {
                error: FailCode::NotLeader | FailCode::Unavailable,
                ..
            })
            | Err(_)
                if Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(outcome) => return outcome,
            Err(e) => panic!("{op:?}: {e}"),
        }
    }
}

fn ok_value(outcome: Outcome) -> Value {
    match outcome {
        Outcome::Ok { value } => value,
        other => panic!("expected ok, got {other:?}"),
    }
}

async fn set_read(addrs: Vec<String>) -> BTreeSet<i64> {
    serde_json::from_value(ok_value(call(addrs, Operation::SetRead).await))
        .expect("set read is a list")
}

#[tokio::test]
async fn three_nodes_elect_one_leader_replicate_and_followers_redirect() {
    let cluster = start(3, &[]);
    let l = leader(&cluster, &[0, 1, 2]).await;
    let addrs = cluster.addrs();
    for v in 1..=20 {
        ok_value(call(addrs.clone(), Operation::Write { key: 7, value: v }).await);
    }
    let mismatch = call(
        addrs.clone(),
        Operation::Cas {
            key: 7,
            from: 3,
            to: 4,
        },
    )
    .await;
    assert!(
        matches!(
            mismatch,
            Outcome::Fail {
                error: FailCode::CasMismatch,
                ..
            }
        ),
        "{mismatch:?}"
    );
    ok_value(
        call(
            addrs.clone(),
            Operation::Cas {
                key: 7,
                from: 20,
                to: 21,
            },
        )
        .await,
    );
    assert_eq!(
        ok_value(call(addrs.clone(), Operation::Read { key: 7 }).await),
        json!([7, 21])
    );

    // A follower neither serves nor forwards: it names the leader.
    let follower = (l + 1) % 3;
    let client = Client::connect(&cluster.nodes[follower].addr, CALL_TIMEOUT)
        .await
        .unwrap();
    match client
        .call(Operation::Read { key: 7 }, CALL_TIMEOUT)
        .await
        .unwrap()
    {
        Outcome::Fail {
            error: FailCode::NotLeader,
            leader: Some(hint),
        } => {
            assert_eq!(hint.addr, cluster.nodes[l].addr);
            assert_eq!(hint.id, cluster.nodes[l].id);
        }
        other => panic!("a follower answered a read: {other:?}"),
    }
    // Every node applies the same entries (followers learn the commit index
    // with the next heartbeat).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let applied: Vec<u64> = applied_per_node(&cluster).await;
    assert!(
        applied.iter().all(|&a| a == applied[0] && a >= 23),
        "applied per node: {applied:?}"
    );

    // The nodes' logs, read with the patterns the runner takes from the
    // node code: the leader's win is found, and nothing fatal.
    let patterns = faultline::system::lookup("raft").unwrap().log_patterns();
    let logs: Vec<NodeLog> = cluster
        .nodes
        .iter()
        .map(|n| NodeLog {
            node: n.id.clone(),
            text: n.log(),
        })
        .collect();
    let leader_pattern = patterns.leader.as_ref().expect("Raft logs its elections");
    let elections = faultline::checker::election::check(&logs, leader_pattern)
        .unwrap_or_else(|| panic!("no election found in the logs\n{}", cluster.logs()));
    assert_eq!(elections.verdict, Verdict::Valid, "{elections:?}");
    assert!(elections.terms >= 1);
    let fatal = faultline::checker::logs::check(&logs, &patterns);
    assert_eq!(fatal.verdict, Verdict::Valid, "{fatal:?}");
}

async fn applied_per_node(cluster: &LocalCluster) -> Vec<u64> {
    let mut out = Vec::new();
    for i in 0..cluster.nodes.len() {
        out.push(cluster.status(i).await.map(|s| s.applied).unwrap_or(0));
    }
    out
}

#[tokio::test]
async fn five_nodes_survive_the_loss_of_their_leader() {
    let mut cluster = start(5, &[]);
    let old = leader(&cluster, &[0, 1, 2, 3, 4]).await;
    let old_term = cluster.status(old).await.unwrap().term;
    let addrs = cluster.addrs();
    ok_value(call(addrs.clone(), Operation::Write { key: 1, value: 10 }).await);

    cluster.kill(old);
    let rest: Vec<usize> = (0..5).filter(|&i| i != old).collect();
    let new = leader(&cluster, &rest).await;
    assert_ne!(new, old);
    assert!(cluster.status(new).await.unwrap().term > old_term);
    let live: Vec<String> = rest.iter().map(|&i| addrs[i].clone()).collect();
    assert_eq!(
        ok_value(call(live.clone(), Operation::Read { key: 1 }).await),
        json!([1, 10])
    );
    ok_value(call(live, Operation::Write { key: 1, value: 11 }).await);

    // The old leader comes back from its data dir and follows the new one
    // (PreVote: it does not disturb the healthy leader).
    let new_term = cluster.status(new).await.unwrap().term;
    cluster.start_node(old).unwrap();
    let deadline = Instant::now() + LEADER_TIMEOUT;
    loop {
        let s = cluster.status(old).await;
        if let Ok(s) = &s
            && s.leader.as_deref() == Some(cluster.nodes[new].id.as_str())
            && s.applied >= 3
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "old leader did not rejoin: {s:?}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        cluster.status(new).await.unwrap().term,
        new_term,
        "the returning node must not force a new term"
    );
    assert_eq!(
        ok_value(call(addrs, Operation::Read { key: 1 }).await),
        json!([1, 11])
    );
}

/// A history being recorded by concurrent workers, in the harness's format.
struct Recorder {
    started: Instant,
    ops: Vec<Op>,
}

impl Recorder {
    fn push(&mut self, process: u64, kind: OpType, f: &str, value: Value, error: Option<Value>) {
        let index = self.ops.len() as u64;
        let time = self.started.elapsed().as_nanos() as u64;
        let process = Process::Client(process);
        self.ops.push(Op {
            index,
            time,
            process,
            kind,
            f: f.into(),
            value,
            node: None,
            error,
        });
    }
}

/// Runs `workers` clients of the set workload (unique adds, one read in five)
/// until `stop` is set; returns the history. A worker whose op ended `info`
/// continues as a new process, as the harness's workers do.
async fn set_workload(
    addrs: Vec<String>,
    workers: u64,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Recorder {
    let recorder = Arc::new(Mutex::new(Recorder {
        started: Instant::now(),
        ops: Vec::new(),
    }));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (addrs, recorder, stop) = (addrs.clone(), recorder.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = LeaderClient::new(addrs);
            let mut process = w;
            let mut n = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let (f, value) = if n % 5 == 0 {
                    ("read", Value::Null)
                } else {
                    ("add", json!(w as i64 * 1_000_000 + n))
                };
                let op = OpFamily::Set.operation(f, &value).unwrap();
                recorder
                    .lock()
                    .await
                    .push(process, OpType::Invoke, f, value.clone(), None);
                let result = client.call(op, CALL_TIMEOUT).await.1;
                let (kind, value, error) = ended(result.clone()).into_parts(&value);
                recorder.lock().await.push(process, kind, f, value, error);
                if kind == OpType::Info {
                    process += workers;
                }
                if kind != OpType::Ok {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(recorder).ok().unwrap().into_inner()
}

#[tokio::test]
async fn kill_9_and_restart_lose_no_acknowledged_write() {
    let mut cluster = start(3, &[]);
    leader(&cluster, &[0, 1, 2]).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workload = tokio::spawn(set_workload(cluster.addrs(), 8, stop.clone()));

    // kill -9 the leader mid-run, then a follower, restarting each.
    for round in 0..2 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let l = leader(&cluster, &[0, 1, 2]).await;
        let victim = if round == 0 { l } else { (l + 1) % 3 };
        cluster.kill(victim);
        tokio::time::sleep(Duration::from_millis(700)).await;
        cluster.start_node(victim).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut rec = workload.await.unwrap();
    let acked = rec
        .ops
        .iter()
        .filter(|o| o.kind == OpType::Ok && o.f == "add")
        .count();
    assert!(
        acked > 50,
        "too few acknowledged adds to mean anything: {acked}"
    );

    // Then every node at once, and back from disk; the final read ends the history.
    restart_all(&mut cluster);
    leader(&cluster, &[0, 1, 2]).await;
    let after = set_read(cluster.addrs()).await;
    rec.push(999, OpType::Invoke, "read", Value::Null, None);
    rec.push(999, OpType::Ok, "read", json!(after), None);
    let result = faultline::checker::set::check(&rec.ops);
    assert_eq!(result.error, None);
    assert_eq!(
        result.verdict,
        Verdict::Valid,
        "{result:?}\n{}",
        cluster.logs()
    );
    assert_eq!(
        result.lost, 0,
        "acknowledged adds lost after kill -9: {result:?}"
    );
    // ReadIndex reads are linearizable: no read misses an add acknowledged before it began.
    assert_eq!(result.stale, 0, "stale reads: {result:?}");
}

// ----- one test per named bug -----

/// `no-fsync` writes the log and never syncs it: kill -9 of every node loses
/// nothing, because the OS still has the writes (only a power loss, the
/// `lose-unfsynced` disk fault, loses them: tests/bug_matrix.rs).
#[tokio::test]
async fn no_fsync_keeps_acknowledged_writes_through_kill_9() {
    let mut cluster = start(3, &["--bug", "no-fsync"]);
    leader(&cluster, &[0, 1, 2]).await;
    let mut client = LeaderClient::new(cluster.addrs());
    let mut acked = BTreeSet::new();
    for v in 0..100 {
        if let (_, Ok(Outcome::Ok { .. })) = client
            .call(Operation::SetAdd { value: v }, CALL_TIMEOUT)
            .await
        {
            acked.insert(v);
        }
    }
    assert_eq!(acked.len(), 100);
    restart_all(&mut cluster);
    leader(&cluster, &[0, 1, 2]).await;
    let read = set_read(cluster.addrs()).await;
    let lost: Vec<_> = acked.iter().filter(|v| !read.contains(v)).collect();
    assert!(lost.is_empty(), "a kill lost acknowledged adds: {lost:?}");
}

#[tokio::test]
async fn stale_read_lets_followers_serve_old_values() {
    let cluster = start(3, &["--bug", "stale-read"]);
    let l = leader(&cluster, &[0, 1, 2]).await;
    let follower = Client::connect(&cluster.nodes[(l + 1) % 3].addr, CALL_TIMEOUT)
        .await
        .unwrap();
    let mut writer = LeaderClient::new(cluster.addrs());
    let mut stale = 0;
    for v in 1..=20 {
        ok_value(
            writer
                .call(Operation::Write { key: 3, value: v }, CALL_TIMEOUT)
                .await
                .1
                .unwrap(),
        );
        // Real time: the write was acknowledged, so a linearizable read sees it.
        let read = ok_value(
            follower
                .call(Operation::Read { key: 3 }, CALL_TIMEOUT)
                .await
                .unwrap(),
        );
        if read != json!([3, v]) {
            stale += 1;
        }
    }
    assert!(
        stale > 0,
        "every follower read was fresh: the bug is not caught"
    );
}

/// A stand-in peer for the bug tests that need to control one node's world
/// exactly: it listens where the node dials it, and can speak to the node.
struct FakePeer {
    id: String,
    inbox: mpsc::Receiver<Msg>,
}

impl FakePeer {
    async fn listen(id: &str, addr: &str) -> FakePeer {
        let listener = TcpListener::bind(addr).await.unwrap();
        let (tx, inbox) = mpsc::channel(4096);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut lines = BufReader::new(stream).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Ok(msg) = serde_json::from_str::<Msg>(&line) {
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
}

/// A connection from a fake peer to the node.
async fn peer_conn(from: &str, node_addr: &str) -> TcpStream {
    // The node may still be starting: retry for a few seconds.
    let mut tries = 0;
    let mut s = loop {
        match TcpStream::connect(node_addr).await {
            Ok(s) => break s,
            Err(e) if tries < 100 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot connect to the node at {node_addr}: {e}"),
        }
    };
    s.write_all(&encode_frame(&PeerHello { peer: from.into() }))
        .await
        .unwrap();
    s
}

/// A one-node cluster whose two peers are [`FakePeer`]s played by the test.
async fn lone_node(args: &[&str]) -> (LocalCluster, FakePeer, FakePeer) {
    // Start a 3-node cluster and replace nodes 2 and 3 by fakes on their addresses.
    let mut cluster = start(3, args);
    cluster.kill(1);
    cluster.kill(2);
    let a = FakePeer::listen("n2", &cluster.nodes[1].addr).await;
    let b = FakePeer::listen("n3", &cluster.nodes[2].addr).await;
    // Let the node's dialers find the fakes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    (cluster, a, b)
}

async fn vote_from(peer: &mut FakePeer, node_addr: &str, term: u64) -> bool {
    let mut conn = peer_conn(&peer.id, node_addr).await;
    let ask = encode_frame(&Msg::Vote {
        term,
        last_index: 100,
        last_term: term - 1,
    });
    // The reply travels on the node's own connection to this peer, which a
    // just-restarted node may not have dialed yet (a loaded machine): ask again
    // until it answers. Asking twice is safe: a vote is granted again only to
    // the same candidate in the same term.
    for _ in 0..20 {
        conn.write_all(&ask).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_millis(500), async {
            loop {
                match peer.inbox.recv().await.expect("fake peer inbox open") {
                    Msg::VoteReply { term: t, granted } if t == term => return granted,
                    _ => {}
                }
            }
        });
        if let Ok(granted) = reply.await {
            return granted;
        }
    }
    panic!("the node at {node_addr} never answered a vote request in term {term}");
}

async fn forget_vote_case(bug: bool) -> bool {
    // Long election timeouts: the node under test must not campaign itself.
    let mut args = vec!["--election-timeout-ms", "20000"];
    if bug {
        args.extend(["--bug", "forget-vote"]);
    }
    let (mut cluster, mut n2, mut n3) = lone_node(&args).await;
    let node_addr = cluster.nodes[0].addr.clone();
    assert!(
        vote_from(&mut n2, &node_addr, 5).await,
        "a fresh node grants its vote in term 5"
    );
    cluster.kill(0);
    cluster.start_node(0).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Term 5 again, another candidate: a correct node remembers its vote.
    vote_from(&mut n3, &node_addr, 5).await
}

#[tokio::test]
async fn forget_vote_lets_a_restarted_node_vote_twice_in_one_term() {
    assert!(
        !forget_vote_case(false).await,
        "a correct node voted twice in term 5"
    );
    assert!(
        forget_vote_case(true).await,
        "forget-vote did not vote twice: the bug is not caught"
    );
}

/// A candidate whose vote request got no answer asks again in the same
/// term (Raft §5.1: RPCs are retried), rather than wait out an election
/// timeout and start a new term.
#[tokio::test]
async fn a_candidate_asks_again_for_a_vote_that_got_no_answer() {
    let (cluster, mut n2, _n3) = lone_node(&[]).await;
    let mut conn = peer_conn(&n2.id, &cluster.nodes[0].addr).await;
    let mut asked: std::collections::BTreeMap<u64, usize> = Default::default();
    // Each election takes one pre-vote and at least one vote request: the
    // bound is many elections, far more than a retrying candidate needs.
    for _ in 0..200 {
        let msg = tokio::time::timeout(Duration::from_secs(5), n2.inbox.recv())
            .await
            .expect("the node campaigns")
            .expect("fake peer inbox open");
        match msg {
            // Grant pre-votes, so that the node becomes a candidate.
            Msg::PreVote { term, .. } => {
                let reply = Msg::PreVoteReply {
                    term,
                    current: 0,
                    granted: true,
                };
                conn.write_all(&encode_frame(&reply)).await.unwrap();
            }
            // Never answer a vote request.
            Msg::Vote { term, .. } => {
                *asked.entry(term).or_default() += 1;
                if asked[&term] == 2 {
                    return;
                }
                assert!(
                    asked.len() < 2,
                    "the candidate started term {term} without asking again in the last: {asked:?}"
                );
            }
            _ => {}
        }
    }
    panic!("no vote request was repeated: {asked:?}");
}

const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// Makes the node under test its fake peers' leader, lets the fakes follow
/// it for a while, then cuts them off; returns whether the node still
/// answers a read 1.5 s later (two election timeouts past: a new leader may
/// exist on the other side).
async fn cut_off_leader_answers_reads(bug: bool) -> bool {
    let mut args = vec![];
    if bug {
        args.extend(["--bug", "lease-read-wallclock"]);
    }
    let (cluster, mut n2, _n3) = lone_node(&[]).await;
    // Restart node 1 under libfaketime: its wall clock runs 100 times slower
    // (the monotonic clock is left alone), as a skewed clock would.
    let mut cluster = cluster;
    cluster.kill(0);
    let node = &cluster.nodes[0];
    let peers = format!("n2={},n3={}", cluster.nodes[1].addr, cluster.nodes[2].addr);
    let log_file = std::fs::File::create(node.data_dir.join("skewed.log")).unwrap();
    let mut child = std::process::Command::new(EXE)
        .args([
            "node", "raft", "--id", "n1", "--listen", &node.addr, "--peers", &peers,
        ])
        .arg("--data-dir")
        .arg(&node.data_dir)
        .args(&args)
        .env("LD_PRELOAD", FAKETIME_LIB)
        .env("FAKETIME", "+0 x0.01")
        .env("DONT_FAKE_MONOTONIC", "1")
        .stderr(log_file)
        .spawn()
        .unwrap();
    let addr = node.addr.clone();
    // Play a perfect follower until cut off: grant (pre-)votes, acknowledge appends.
    let mut conn = peer_conn("n2", &addr).await;
    let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let led = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (cut2, led2) = (cut.clone(), led.clone());
    let follower = tokio::spawn(async move {
        while !cut2.load(std::sync::atomic::Ordering::Relaxed) {
            let Ok(Some(msg)) =
                tokio::time::timeout(Duration::from_millis(50), n2.inbox.recv()).await
            else {
                continue;
            };
            let reply = match msg {
                Msg::PreVote { term, .. } => Msg::PreVoteReply {
                    term,
                    current: 0,
                    granted: true,
                },
                Msg::Vote { term, .. } => Msg::VoteReply {
                    term,
                    granted: true,
                },
                Msg::Append {
                    term,
                    prev_index,
                    entries,
                    seq,
                    ..
                } => {
                    led2.store(true, std::sync::atomic::Ordering::Relaxed);
                    Msg::AppendReply {
                        term,
                        success: true,
                        match_index: prev_index + entries.len() as u64,
                        hint: 0,
                        seq,
                    }
                }
                _ => continue,
            };
            if conn.write_all(&encode_frame(&reply)).await.is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + LEADER_TIMEOUT;
    while !led.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = Client::connect(&addr, CALL_TIMEOUT).await.unwrap();
    let first = client.call(Operation::SetRead, CALL_TIMEOUT).await;
    let log_path = node.data_dir.join("skewed.log");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        matches!(first, Ok(Outcome::Ok { .. })),
        "a leader with followers serves reads: {first:?}\n{}",
        log()
    );
    // Partition: the fake followers fall silent.
    cut.store(true, std::sync::atomic::Ordering::Relaxed);
    follower.await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let answered = matches!(
        client
            .call(Operation::SetRead, Duration::from_secs(1))
            .await,
        Ok(Outcome::Ok { .. })
    );
    let _ = child.kill();
    let _ = child.wait();
    answered
}

#[tokio::test]
async fn lease_read_wallclock_serves_reads_after_losing_its_followers() {
    if !Path::new(FAKETIME_LIB).exists() {
        panic!("this test needs libfaketime ({FAKETIME_LIB}): apt-get install faketime");
    }
    assert!(
        !cut_off_leader_answers_reads(false).await,
        "a correct leader answered a read without a majority"
    );
    assert!(
        cut_off_leader_answers_reads(true).await,
        "lease-read-wallclock did not serve a stale read: the bug is not caught"
    );
}
