//! Two-phase commit over sharded data: `faultline node twopc`.
//!
//! Every node is a participant ([`participant`]) owning the keys, accounts
//! and set elements that hash to it ([`message::owner`]), and any node
//! coordinates the requests its clients send ([`coordinator`]). The
//! coordinator splits a request into steps per participant and sends each a
//! prepare. A participant locks what its steps touch without waiting (a
//! conflict votes no), runs the steps against committed data, writes a
//! durable prepare record with the staged writes, then votes yes with its
//! results. All yes: the coordinator writes its commit decision durably,
//! then tells the participants and answers the client `ok`. A no or a
//! missing vote (after the vote timeout): abort, and the client gets a
//! definite `fail`. Participants apply on commit and confirm once the commit
//! record is durable; the coordinator resends the decision until they do.
//!
//! After a crash a participant replays its file: prepared transactions with
//! no outcome are in doubt; it takes their locks again and asks their
//! coordinator until it learns the decision. Blocking is correct here: while
//! the coordinator is down, requests touching those locks abort or time out.
//!
//! Not here: replication (a participant's data lives on one node), the
//! read-only optimisation, or coordinator failover.

pub mod coordinator;
pub mod message;
pub mod participant;

use super::NodeConfig;
use super::bugs::Bug;
use super::durable::Durable;
use super::event_loop::{self, Handler};
use super::server::{self, ClientCall, PeerSender};
use super::wal::{GroupCommit, SyncMode, Wal};
use super::wire::{FailCode, Operation, Output, Reply, Status};
use anyhow::Context;
use coordinator::{Decided, Split};
use message::{Msg, PartResult, Placed, Record, TxnId};
use participant::Participant;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Rounds of "deliver local messages, act on what became durable" per pass.
const MAX_READY_ROUNDS: usize = 16;
/// Transactions one coordinator runs at once; more are refused `unavailable`.
const MAX_ACTIVE_TXNS: usize = 16_384;

/// Runs a 2PC node until the process is killed.
pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    let path = config.data_dir.join("twopc.log");
    let (mut wal, recovered) = Wal::open(&path, SyncMode::Fsync)?;
    if recovered.torn_bytes > 0 {
        tracing::warn!(path = %path.display(), bytes = recovered.torn_bytes, "cut a torn tail off the data file");
    }
    let records = recovered
        .records
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            serde_json::from_slice::<Record>(bytes).map_err(|e| {
                anyhow::anyhow!("{}: record {i} is not a 2PC record: {e}", path.display())
            })
        })
        .collect::<anyhow::Result<Vec<Record>>>()?;
    let (boot, decided) = coordinator::replay(&records);
    // The boot count must be on disk before any transaction id uses it.
    wal.append(&Record::Boot { boot }.encode());
    wal.commit()?;
    let (inbox, net) = server::start::<Msg>(&config.id, &config.listen, &config.peers)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let (durable_tx, durable_rx) = mpsc::channel(1024);
    let storage = Durable::new(GroupCommit::spawn(wal, durable_tx));
    let mut node = Node::new(config, boot, decided, storage, net);
    for r in &records {
        node.participant.replay(r);
    }
    let in_doubt = node.participant.relock();
    tracing::info!(
        boot,
        in_doubt = in_doubt.len(),
        decisions_pending = node.decided.len(),
        applied = node.participant.applied,
        "recovered"
    );
    let tick = node.timing.heartbeat;
    event_loop::run(&mut node, inbox, durable_rx, tick).await;
    Ok(())
}

/// What waits until the records queued before it are durable.
enum After {
    Send(String, Msg),
    Reply(ClientCall, Reply),
    /// The commit decision of this transaction is durable.
    Decided(TxnId),
}

/// A transaction this node coordinates, collecting votes.
struct Active {
    call: ClientCall,
    split: Split,
    votes: BTreeMap<String, Vec<PartResult>>,
    deadline: Instant,
}

struct Node {
    id: String,
    /// Every node id, sorted: what [`message::owner`] indexes.
    members: Vec<String>,
    timing: super::Timing,
    bank: super::state_machine::BankConfig,
    participant: Participant,
    /// When this node last asked about each transaction in doubt.
    asked: BTreeMap<TxnId, Instant>,
    boot: u64,
    next_seq: u64,
    active: BTreeMap<TxnId, Active>,
    decided: BTreeMap<TxnId, Decided>,
    /// Messages this node sends itself (it is one of the participants).
    local: VecDeque<Msg>,
    storage: Durable<After>,
    net: PeerSender<Msg>,
    /// The `commit-without-all-votes` bug.
    commit_on_timeout: bool,
    /// The `vote-before-fsync` bug: a yes vote leaves once the prepare
    /// record is written, before it is durable.
    vote_before_fsync: bool,
}

impl Handler for Node {
    type Msg = Msg;

    fn on_client(&mut self, call: ClientCall) {
        let id = call.request.id;
        let op = call.request.op.clone();
        if op == Operation::Status {
            let status = Status {
                id: self.id.clone(),
                role: "participant".into(),
                term: 0,
                leader: None,
                voted_for: None,
                applied: self.participant.applied,
            };
            call.reply(Reply::ok(id, &op, &Output::Status(status)));
            return;
        }
        if self.active.len() >= MAX_ACTIVE_TXNS {
            call.reply(Reply::fail(id, FailCode::Unavailable));
            return;
        }
        let split = match coordinator::split(&op, &self.members, self.bank) {
            Ok(s) => s,
            Err(code) => {
                call.reply(Reply::fail(id, code));
                return;
            }
        };
        let txn = TxnId {
            coord: self.id.clone(),
            boot: self.boot,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        for (member, ops) in &split.parts {
            let msg = Msg::Prepare {
                txn: txn.clone(),
                ops: ops.clone(),
            };
            self.send(member, msg);
        }
        let deadline = Instant::now() + self.vote_timeout();
        self.active.insert(
            txn,
            Active {
                call,
                split,
                votes: BTreeMap::new(),
                deadline,
            },
        );
    }

    fn on_peer(&mut self, from: &str, msg: Msg) {
        match msg {
            Msg::Prepare { txn, ops } => {
                let vote = match self.participant.prepare(&txn, &ops) {
                    Ok((record, results)) => {
                        match record {
                            Some(r) if self.vote_before_fsync => {
                                self.storage.record_unsynced(r.encode())
                            }
                            Some(r) => self.storage.record(r.encode()),
                            None => {}
                        }
                        Ok(results)
                    }
                    Err(code) => Err(code),
                };
                let coord = txn.coord.clone();
                self.storage
                    .after(After::Send(coord, Msg::Vote { txn, vote }));
            }
            Msg::Vote { txn, vote } => self.on_vote(from, txn, vote),
            Msg::Decide { txn, commit } => self.on_decide(txn, commit),
            Msg::Done { txn } => {
                if let Some(d) = self.decided.get_mut(&txn) {
                    d.waiting.remove(from);
                    if d.waiting.is_empty() {
                        self.decided.remove(&txn);
                        self.storage.record(Record::End { txn }.encode());
                    }
                }
            }
            Msg::Inquire { txn } => self.on_inquire(from, txn),
        }
    }

    fn on_durable(&mut self, seq: u64) {
        self.storage.on_durable(seq);
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        let expired: Vec<TxnId> = self
            .active
            .iter()
            .filter(|(_, a)| now >= a.deadline)
            .map(|(t, _)| t.clone())
            .collect();
        for txn in expired {
            if self.commit_on_timeout {
                // BUG commit-without-all-votes: a participant that did not
                // answer in time is taken to have voted yes.
                tracing::info!(%txn, "vote timeout: committing without every vote");
                self.commit(txn);
            } else {
                self.abort(txn, FailCode::Aborted);
            }
        }
        // Decisions not confirmed within a retry interval are sent again.
        let retry = self.retry_interval();
        let mut resend = Vec::new();
        for (txn, d) in &mut self.decided {
            if d.durable && now.duration_since(d.sent_at) >= retry {
                d.sent_at = now;
                resend.extend(d.waiting.iter().map(|p| (p.clone(), txn.clone())));
            }
        }
        for (p, txn) in resend {
            self.send(&p, Msg::Decide { txn, commit: true });
        }
        let ask: Vec<TxnId> = self
            .participant
            .in_doubt()
            .filter(|t| !self.active.contains_key(t) && !self.decided.contains_key(t))
            .filter(|t| {
                self.asked
                    .get(*t)
                    .is_none_or(|at| now.duration_since(*at) >= retry)
            })
            .cloned()
            .collect();
        for txn in ask {
            self.asked.insert(txn.clone(), now);
            let coord = txn.coord.clone();
            self.send(&coord, Msg::Inquire { txn });
        }
    }

    /// Delivers local messages, writes what this pass produced, and acts on
    /// what became durable.
    fn flush(&mut self) {
        for _ in 0..MAX_READY_ROUNDS {
            while let Some(msg) = self.local.pop_front() {
                let me = self.id.clone();
                self.on_peer(&me, msg);
            }
            self.storage.flush();
            let ready = self.storage.ready();
            if ready.is_empty() && self.local.is_empty() {
                break;
            }
            for action in ready {
                match action {
                    After::Send(to, msg) => self.send(&to, msg),
                    After::Reply(call, reply) => call.reply(reply),
                    After::Decided(txn) => {
                        if let Some(d) = self.decided.get_mut(&txn) {
                            d.durable = true;
                            d.sent_at = Instant::now();
                        }
                    }
                }
            }
        }
    }
}

impl Node {
    fn new(
        config: NodeConfig,
        boot: u64,
        decided: BTreeMap<TxnId, Decided>,
        storage: Durable<After>,
        net: PeerSender<Msg>,
    ) -> Node {
        let mut members: Vec<String> = config.peers.iter().map(|p| p.0.clone()).collect();
        members.push(config.id.clone());
        members.sort();
        let me = members.iter().position(|m| *m == config.id).unwrap_or(0);
        let accounts = (0..i64::from(config.bank.accounts))
            .filter(|a| message::owner(members.len(), Placed::Account(*a)) == me);
        let participant = Participant::new(
            accounts,
            config.bank.initial_balance,
            config.bugs.has(Bug::ReadUncommitted),
        );
        Node {
            id: config.id,
            members,
            timing: config.timing,
            bank: config.bank,
            participant,
            asked: BTreeMap::new(),
            boot,
            next_seq: 1,
            active: BTreeMap::new(),
            decided,
            local: VecDeque::new(),
            storage,
            net,
            commit_on_timeout: config.bugs.has(Bug::CommitWithoutAllVotes),
            vote_before_fsync: config.bugs.has(Bug::VoteBeforeFsync),
        }
    }

    /// How long a coordinator waits for votes before it aborts.
    fn vote_timeout(&self) -> Duration {
        self.timing.election_timeout_min * 3
    }

    /// How often in-doubt transactions are asked about and decisions resent.
    fn retry_interval(&self) -> Duration {
        self.timing.election_timeout_min
    }

    fn send(&mut self, to: &str, msg: Msg) {
        if to == self.id {
            self.local.push_back(msg);
        } else {
            self.net.send(to, &msg);
        }
    }

    fn on_vote(&mut self, from: &str, txn: TxnId, vote: Result<Vec<PartResult>, FailCode>) {
        let Some(active) = self.active.get_mut(&txn) else {
            // Not collecting votes for it: decided already, or unknown after
            // a restart (so presumed aborted). Tell a participant that holds
            // locks for it.
            if vote.is_ok() {
                match self.decided.get(&txn) {
                    Some(d) if d.durable => self.send(from, Msg::Decide { txn, commit: true }),
                    // The decision reaches it once durable.
                    Some(_) => {}
                    None => self.send(from, Msg::Decide { txn, commit: false }),
                }
            }
            return;
        };
        match vote {
            Ok(results) => {
                active.votes.insert(from.to_string(), results);
                if active.votes.len() == active.split.parts.len() {
                    self.commit(txn);
                }
            }
            Err(code) => self.abort(txn, code),
        }
    }

    /// Decides commit: the decision record first; participants and the
    /// client hear of it once it is durable.
    fn commit(&mut self, txn: TxnId) {
        let Some(active) = self.active.remove(&txn) else {
            return;
        };
        let participants: Vec<String> = active.split.parts.keys().cloned().collect();
        self.storage.record(
            Record::Decision {
                txn: txn.clone(),
                participants: participants.clone(),
            }
            .encode(),
        );
        self.decided.insert(
            txn.clone(),
            Decided {
                durable: false,
                waiting: participants.iter().cloned().collect(),
                sent_at: Instant::now(),
            },
        );
        let id = active.call.request.id;
        let op = &active.call.request.op;
        let reply = match coordinator::assemble(op, &active.split, &active.votes) {
            Ok(out) => Reply::ok(id, op, &out),
            Err(code) => Reply::fail(id, code),
        };
        self.storage.after(After::Decided(txn.clone()));
        for p in participants {
            let msg = Msg::Decide {
                txn: txn.clone(),
                commit: true,
            };
            self.storage.after(After::Send(p, msg));
        }
        self.storage.after(After::Reply(active.call, reply));
    }

    /// Decides abort (presumed: nothing is written) and tells everyone.
    fn abort(&mut self, txn: TxnId, code: FailCode) {
        let Some(active) = self.active.remove(&txn) else {
            return;
        };
        for p in active.split.parts.keys() {
            let msg = Msg::Decide {
                txn: txn.clone(),
                commit: false,
            };
            self.send(p, msg);
        }
        let id = active.call.request.id;
        active.call.reply(Reply::fail(id, code));
    }

    fn on_decide(&mut self, txn: TxnId, commit: bool) {
        self.asked.remove(&txn);
        if !commit {
            if let Some(r) = self.participant.abort(&txn) {
                self.storage.record(r.encode());
            }
            return;
        }
        match self.participant.commit(&txn) {
            Some(r) => self.storage.record(r.encode()),
            // A resent decision this node applied already, or (only under
            // the commit-without-all-votes bug) a transaction it never
            // prepared: nothing to apply, confirm anyway.
            None => tracing::debug!(%txn, "commit of a transaction not prepared here"),
        }
        let coord = txn.coord.clone();
        self.storage.after(After::Send(coord, Msg::Done { txn }));
    }

    fn on_inquire(&mut self, from: &str, txn: TxnId) {
        if txn.coord != self.id || self.active.contains_key(&txn) {
            // Still collecting votes: the decision comes by itself.
            return;
        }
        match self.decided.get(&txn) {
            Some(d) if d.durable => self.send(from, Msg::Decide { txn, commit: true }),
            Some(_) => {}
            None => self.send(from, Msg::Decide { txn, commit: false }),
        }
    }
}
