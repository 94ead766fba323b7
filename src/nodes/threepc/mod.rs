//! Three-phase commit over sharded data: `faultline node threepc`.
//!
//! The data, its placement, the locks and the staged writes are 2PC's
//! ([`twopc::participant`], [`twopc::coordinator`]); what differs is the
//! protocol, which does not block when the coordinator is gone:
//!
//! 1. CanCommit: the coordinator sends each participant its steps and the
//!    list of participants. A participant locks (no-wait), stages, writes a
//!    durable prepare record and votes. A no, or a vote missing after the
//!    vote timeout, aborts.
//! 2. PreCommit: all yes, the coordinator writes a durable pre-decision and
//!    sends PreCommit; each participant records it durably and acks.
//! 3. DoCommit: with every ack (or once the ack timeout passes: the silent
//!    ones are taken to have crashed, and learn the outcome when they
//!    recover) the coordinator writes its commit decision, tells the
//!    participants and answers the client `ok`.
//!
//! A participant whose coordinator goes silent runs the termination
//! protocol: it asks the other participants and the coordinator where they
//! are, and commits if any committed or pre-committed, aborts if any aborted
//! or never voted yes, and aborts if all are uncertain. With nobody
//! answering, it decides by its own state: uncertain aborts, pre-committed
//! commits. A restarted node asks at once about every transaction it was
//! in doubt about, or had pre-decided as coordinator without deciding; it
//! answers others `uncertain` meanwhile and waits for answers rather than
//! decide blind, since they may have ended it without it while it was down.
//!
//! That last rule is 3PC's textbook weakness: it assumes that a node that
//! does not answer has crashed. Under a network partition the side with
//! the coordinator commits by timeout while an uncertain participant on the
//! other side aborts by timeout: one transaction, two outcomes. faultline's
//! bank workload shows it as money created or destroyed. Every split
//! decision is logged with what the node knew (`3pc split-risk`).

pub mod message;

use super::NodeConfig;
use super::bugs::Bug;
use super::durable::Durable;
use super::event_loop::{self, Handler};
use super::server::{self, ClientCall, PeerSender};
use super::twopc::coordinator::{self, Decided, Split};
use super::twopc::message::{self as twopc, PartResult, Placed, TxnId};
use super::twopc::participant::Participant;
use super::wal::{GroupCommit, SyncMode, Wal};
use super::wire::{FailCode, Operation, Output, Reply, Status};
use anyhow::Context;
use message::{Msg, Phase, Record, TxnState};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What every log line about a decision taken blind (by timeout, or
/// against an outcome already taken) starts with: the report lists them.
pub const SPLIT_RISK: &str = "3pc split-risk";
/// Rounds of "deliver local messages, act on what became durable" per pass.
const MAX_READY_ROUNDS: usize = 16;
/// Transactions one coordinator runs at once; more are refused `unavailable`.
const MAX_ACTIVE_TXNS: usize = 16_384;
/// Outcomes remembered to answer the termination protocol's questions.
const OUTCOMES_KEPT: usize = 200_000;

/// Runs a 3PC node until the process is killed.
pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    let path = config.data_dir.join("threepc.log");
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
                anyhow::anyhow!("{}: record {i} is not a 3PC record: {e}", path.display())
            })
        })
        .collect::<anyhow::Result<Vec<Record>>>()?;
    let base: Vec<twopc::Record> = records
        .iter()
        .filter_map(|r| match r {
            Record::Base(b) => Some(b.clone()),
            Record::Phase(_) => None,
        })
        .collect();
    let (boot, decided) = coordinator::replay(&base);
    // The boot count must be on disk before any transaction id uses it.
    wal.append(&Record::Base(twopc::Record::Boot { boot }).encode());
    wal.commit()?;
    let (inbox, net) = server::start::<Msg>(&config.id, &config.listen, &config.peers)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let (durable_tx, durable_rx) = mpsc::channel(1024);
    let storage = Durable::new(GroupCommit::spawn(wal, durable_tx));
    let mut node = Node::new(config, boot, decided, storage, net);
    node.recover(&records);
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
    /// The pre-decision is durable: the pre-commit may go out.
    PreDecided(TxnId),
}

/// A transaction this node coordinates, before its commit decision.
struct Active {
    /// None after a restart: the client's call died with the process.
    call: Option<ClientCall>,
    split: Split,
    votes: BTreeMap<String, Vec<PartResult>>,
    /// Pre-committing: who acked (only once every vote was yes).
    acks: Option<BTreeSet<String>>,
    /// Vote timeout, then ack timeout.
    deadline: Instant,
}

/// A transaction this node voted yes in, as a participant, not yet ended.
struct Voted {
    participants: Vec<String>,
    pre_committed: bool,
    /// Read back from the data file after a crash: others may have ended
    /// the transaction while this node was down, so it answers
    /// `Uncertain` and decides only on what it hears, never by timeout.
    recovered: bool,
    /// When it entered its state (the timeout counts from here).
    since: Instant,
    /// The termination protocol under way: when it asked, and the answers.
    asked: Option<(Instant, BTreeMap<String, TxnState>)>,
}

struct Node {
    id: String,
    /// Every node id, sorted: what [`twopc::owner`] indexes.
    members: Vec<String>,
    timing: super::Timing,
    bank: super::state_machine::BankConfig,
    participant: Participant,
    voted: BTreeMap<TxnId, Voted>,
    /// Outcomes seen here (true: committed), oldest first, bounded.
    outcomes: BTreeMap<TxnId, bool>,
    outcome_order: VecDeque<TxnId>,
    boot: u64,
    next_seq: u64,
    active: BTreeMap<TxnId, Active>,
    decided: BTreeMap<TxnId, Decided>,
    /// Messages this node sends itself (it is one of the participants).
    local: VecDeque<Msg>,
    storage: Durable<After>,
    net: PeerSender<Msg>,
    /// The `no-termination` bug.
    no_termination: bool,
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
        let participants: Vec<String> = split.parts.keys().cloned().collect();
        for (member, ops) in &split.parts {
            let msg = Msg::CanCommit {
                txn: txn.clone(),
                ops: ops.clone(),
                participants: participants.clone(),
            };
            self.send(member, msg);
        }
        let deadline = Instant::now() + self.vote_timeout();
        self.active.insert(
            txn,
            Active {
                call: Some(call),
                split,
                votes: BTreeMap::new(),
                acks: None,
                deadline,
            },
        );
    }

    fn on_peer(&mut self, from: &str, msg: Msg) {
        match msg {
            Msg::CanCommit {
                txn,
                ops,
                participants,
            } => self.on_can_commit(txn, &ops, participants),
            Msg::Vote { txn, vote } => self.on_vote(from, txn, vote),
            Msg::PreCommit { txn } => self.on_pre_commit(txn),
            Msg::Ack { txn } => {
                let all = match self.active.get_mut(&txn) {
                    Some(Active {
                        acks: Some(acks),
                        split,
                        ..
                    }) => {
                        acks.insert(from.to_string());
                        acks.len() == split.parts.len()
                    }
                    _ => false,
                };
                if all {
                    self.commit(txn);
                }
            }
            Msg::Decide { txn, commit } => self.on_decide(txn, commit),
            Msg::Done { txn } => {
                if let Some(d) = self.decided.get_mut(&txn) {
                    d.waiting.remove(from);
                    if d.waiting.is_empty() {
                        self.decided.remove(&txn);
                        self.storage
                            .record(Record::Base(twopc::Record::End { txn }).encode());
                    }
                }
            }
            Msg::Query { txn } => {
                let state = self.state_of(&txn);
                self.send(from, Msg::Answer { txn, state });
            }
            Msg::Answer { txn, state } => {
                if let Some(Voted {
                    asked: Some((_, answers)),
                    ..
                }) = self.voted.get_mut(&txn)
                {
                    answers.insert(from.to_string(), state);
                }
                self.maybe_terminate(&txn, false);
            }
        }
    }

    fn on_durable(&mut self, seq: u64) {
        self.storage.on_durable(seq);
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        let expired: Vec<(TxnId, bool)> = self
            .active
            .iter()
            .filter(|(_, a)| now >= a.deadline)
            .map(|(t, a)| (t.clone(), a.acks.is_some()))
            .collect();
        for (txn, pre_committing) in expired {
            if pre_committing {
                // Everyone voted yes; who did not ack is taken to have
                // crashed and learns the commit when it recovers.
                tracing::info!(%txn, "3pc ack timeout: committing without every ack");
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
        // Participants whose coordinator went silent.
        let silent: Vec<TxnId> = self
            .voted
            .iter()
            .filter(|(_, v)| v.asked.is_none() && now >= v.since + self.silence_timeout())
            .map(|(t, _)| t.clone())
            .collect();
        for txn in silent {
            self.start_termination(txn);
        }
        let unanswered: Vec<TxnId> = self
            .voted
            .iter()
            .filter(|(_, v)| {
                v.asked
                    .as_ref()
                    .is_some_and(|(at, _)| now >= *at + self.answer_timeout())
            })
            .map(|(t, _)| t.clone())
            .collect();
        for txn in unanswered {
            self.maybe_terminate(&txn, true);
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
                    After::PreDecided(txn) => self.send_pre_commits(&txn),
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
        let accounts: Vec<i64> = (0..i64::from(config.bank.accounts))
            .filter(|a| twopc::owner(members.len(), Placed::Account(*a)) == me)
            .collect();
        Node {
            id: config.id,
            members,
            timing: config.timing,
            bank: config.bank,
            participant: Participant::new(accounts, config.bank.initial_balance, false),
            voted: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            outcome_order: VecDeque::new(),
            boot,
            next_seq: 1,
            active: BTreeMap::new(),
            decided,
            local: VecDeque::new(),
            storage,
            net,
            no_termination: config.bugs.has(Bug::NoTermination),
        }
    }

    /// Rebuilds the participant's data and states from the data file. A
    /// transaction still in doubt asks the others at once (its timeout is
    /// taken as passed), and so does one this node pre-decided as
    /// coordinator but had not decided.
    fn recover(&mut self, records: &[Record]) {
        let mut pre_decided: BTreeMap<TxnId, Vec<String>> = BTreeMap::new();
        for r in records {
            match r {
                Record::Base(b) => {
                    self.participant.replay(b);
                    match b {
                        twopc::Record::Committed { txn } => self.remember(txn, true),
                        twopc::Record::Aborted { txn } => self.remember(txn, false),
                        twopc::Record::Decision { txn, .. } => {
                            pre_decided.remove(txn);
                        }
                        _ => {}
                    }
                }
                Record::Phase(Phase::Voted { txn, participants }) => {
                    self.voted.insert(
                        txn.clone(),
                        Voted {
                            participants: participants.clone(),
                            pre_committed: false,
                            recovered: true,
                            since: Instant::now(),
                            asked: None,
                        },
                    );
                }
                Record::Phase(Phase::PreCommitted { txn }) => {
                    if let Some(v) = self.voted.get_mut(txn) {
                        v.pre_committed = true;
                    }
                }
                Record::Phase(Phase::PreDecision { txn, participants }) => {
                    pre_decided.insert(txn.clone(), participants.clone());
                }
            }
        }
        let in_doubt = self.participant.relock();
        self.voted.retain(|t, _| in_doubt.contains(t));
        let now = Instant::now();
        let long_ago = now.checked_sub(self.silence_timeout()).unwrap_or(now);
        for v in self.voted.values_mut() {
            v.since = long_ago;
        }
        // Every participant voted yes to these, but the participants may
        // have ended them by the termination protocol while this node was
        // down (all uncertain: abort). The coordinator asks them as a
        // recovered participant would; with the bug, it commits alone.
        let pre_decided_count = pre_decided.len();
        for (txn, participants) in pre_decided {
            if self.no_termination {
                tracing::info!(%txn, "3pc recovered a pre-decision: committing alone");
                self.record_commit(&txn, &participants);
            } else if let Some(&commit) = self.outcomes.get(&txn) {
                self.end_as_coordinator(&txn, &participants, commit);
            } else {
                tracing::info!(%txn, "3pc recovered a pre-decision: asking the participants");
                self.voted.entry(txn).or_insert(Voted {
                    participants,
                    pre_committed: false,
                    recovered: true,
                    since: long_ago,
                    asked: None,
                });
            }
        }
        tracing::info!(
            boot = self.boot,
            in_doubt = self.voted.len(),
            pre_decided = pre_decided_count,
            decisions_pending = self.decided.len(),
            applied = self.participant.applied,
            "recovered"
        );
    }

    /// How long a coordinator waits for votes, and then for acks.
    fn vote_timeout(&self) -> Duration {
        self.timing.election_timeout_min * 3
    }

    /// How long a participant waits in a state before it asks the others:
    /// past the coordinator's own timeout for that phase, so that without
    /// faults the coordinator always speaks first.
    fn silence_timeout(&self) -> Duration {
        self.vote_timeout() + self.timing.election_timeout_min * 3
    }

    /// How long the termination protocol waits for answers.
    fn answer_timeout(&self) -> Duration {
        self.timing.election_timeout_min * 2
    }

    /// How often decisions are resent.
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

    fn remember(&mut self, txn: &TxnId, committed: bool) {
        if self.outcomes.insert(txn.clone(), committed).is_none() {
            self.outcome_order.push_back(txn.clone());
        }
        while self.outcome_order.len() > OUTCOMES_KEPT {
            if let Some(old) = self.outcome_order.pop_front() {
                self.outcomes.remove(&old);
            }
        }
    }

    fn on_can_commit(&mut self, txn: TxnId, ops: &[twopc::PartOp], participants: Vec<String>) {
        let coord = txn.coord.clone();
        if self.outcomes.contains_key(&txn) {
            // Ended here already (by the termination protocol): no.
            self.send(
                &coord,
                Msg::Vote {
                    txn,
                    vote: Err(FailCode::Aborted),
                },
            );
            return;
        }
        let vote = match self.participant.prepare(&txn, ops) {
            Ok((record, results)) => {
                if let Some(r) = record {
                    self.storage.record(Record::Base(r).encode());
                    self.storage.record(
                        Record::Phase(Phase::Voted {
                            txn: txn.clone(),
                            participants: participants.clone(),
                        })
                        .encode(),
                    );
                    self.voted.insert(
                        txn.clone(),
                        Voted {
                            participants,
                            pre_committed: false,
                            recovered: false,
                            since: Instant::now(),
                            asked: None,
                        },
                    );
                }
                Ok(results)
            }
            Err(code) => Err(code),
        };
        self.storage
            .after(After::Send(coord, Msg::Vote { txn, vote }));
    }

    fn on_vote(&mut self, from: &str, txn: TxnId, vote: Result<Vec<PartResult>, FailCode>) {
        let Some(active) = self.active.get_mut(&txn) else {
            // Decided already, or unknown after a restart (aborted).
            if vote.is_ok() {
                match self.decided.get(&txn) {
                    Some(d) if d.durable => self.send(from, Msg::Decide { txn, commit: true }),
                    Some(_) => {}
                    None => self.send(from, Msg::Decide { txn, commit: false }),
                }
            }
            return;
        };
        if active.acks.is_some() {
            return;
        }
        match vote {
            Ok(results) => {
                active.votes.insert(from.to_string(), results);
                if active.votes.len() == active.split.parts.len() {
                    self.pre_decide(txn);
                }
            }
            Err(code) => self.abort(txn, code),
        }
    }

    /// Every vote was yes: the pre-decision record first, then PreCommit.
    fn pre_decide(&mut self, txn: TxnId) {
        let deadline = Instant::now() + self.vote_timeout();
        let Some(active) = self.active.get_mut(&txn) else {
            return;
        };
        active.acks = Some(BTreeSet::new());
        active.deadline = deadline;
        let participants = active.split.parts.keys().cloned().collect();
        self.storage.record(
            Record::Phase(Phase::PreDecision {
                txn: txn.clone(),
                participants,
            })
            .encode(),
        );
        self.storage.after(After::PreDecided(txn));
    }

    fn send_pre_commits(&mut self, txn: &TxnId) {
        let Some(active) = self.active.get(txn) else {
            return;
        };
        let to: Vec<String> = active.split.parts.keys().cloned().collect();
        for p in to {
            self.send(&p, Msg::PreCommit { txn: txn.clone() });
        }
    }

    fn on_pre_commit(&mut self, txn: TxnId) {
        let coord = txn.coord.clone();
        match self.voted.get_mut(&txn) {
            Some(v) => {
                if !v.pre_committed {
                    v.pre_committed = true;
                    v.since = Instant::now();
                    v.asked = None;
                    self.storage
                        .record(Record::Phase(Phase::PreCommitted { txn: txn.clone() }).encode());
                }
                self.storage.after(After::Send(coord, Msg::Ack { txn }));
            }
            None => match self.outcomes.get(&txn) {
                Some(true) => self.send(&coord, Msg::Ack { txn }),
                Some(false) => tracing::warn!(
                    %txn,
                    "3pc split-risk: pre-commit for a transaction this node already aborted"
                ),
                None => {}
            },
        }
    }

    /// Decides commit: the decision record first; participants and the
    /// client hear of it once it is durable.
    fn commit(&mut self, txn: TxnId) {
        let Some(active) = self.active.remove(&txn) else {
            return;
        };
        let participants: Vec<String> = active.split.parts.keys().cloned().collect();
        self.record_commit(&txn, &participants);
        if let Some(call) = active.call {
            let id = call.request.id;
            let op = &call.request.op;
            let reply = match coordinator::assemble(op, &active.split, &active.votes) {
                Ok(out) => Reply::ok(id, op, &out),
                Err(code) => Reply::fail(id, code),
            };
            self.storage.after(After::Reply(call, reply));
        }
    }

    /// The commit decision record, then DoCommit to every participant.
    fn record_commit(&mut self, txn: &TxnId, participants: &[String]) {
        self.storage.record(
            Record::Base(twopc::Record::Decision {
                txn: txn.clone(),
                participants: participants.to_vec(),
            })
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
        self.storage.after(After::Decided(txn.clone()));
        for p in participants {
            let msg = Msg::Decide {
                txn: txn.clone(),
                commit: true,
            };
            self.storage.after(After::Send(p.clone(), msg));
        }
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
        if let Some(call) = active.call {
            let id = call.request.id;
            call.reply(Reply::fail(id, code));
        }
    }

    /// Ends `txn` here as a participant, as told or as decided here.
    fn on_decide(&mut self, txn: TxnId, commit: bool) {
        self.voted.remove(&txn);
        if let Some(&before) = self.outcomes.get(&txn)
            && before != commit
        {
            tracing::warn!(
                %txn,
                "3pc split-risk: told to {} a transaction this node {}",
                if commit { "commit" } else { "abort" },
                if before { "committed" } else { "aborted" }
            );
        }
        if !commit {
            if let Some(r) = self.participant.abort(&txn) {
                self.storage.record(Record::Base(r).encode());
                self.remember(&txn, false);
            }
            return;
        }
        if let Some(r) = self.participant.commit(&txn) {
            self.storage.record(Record::Base(r).encode());
            self.remember(&txn, true);
        }
        let coord = txn.coord.clone();
        self.storage.after(After::Send(coord, Msg::Done { txn }));
    }

    /// Where this node is with `txn`, for another node's termination
    /// protocol. The coordinator speaks for its own transactions: one it
    /// is still collecting votes for is aborted now, so that the asker and
    /// the coordinator cannot decide differently.
    fn state_of(&mut self, txn: &TxnId) -> TxnState {
        if txn.coord == self.id {
            if let Some(a) = self.active.get(txn) {
                if a.acks.is_some() {
                    return TxnState::PreCommitted;
                }
                self.abort(txn.clone(), FailCode::Aborted);
                return TxnState::Aborted;
            }
            if self.decided.contains_key(txn) {
                return TxnState::Committed;
            }
        }
        if let Some(v) = self.voted.get(txn) {
            return if v.pre_committed && !v.recovered {
                TxnState::PreCommitted
            } else {
                TxnState::Uncertain
            };
        }
        match self.outcomes.get(txn) {
            Some(true) => TxnState::Committed,
            Some(false) => TxnState::Aborted,
            // The coordinator has no record: never pre-decided (aborts are
            // presumed).
            None if txn.coord == self.id => TxnState::Aborted,
            None => TxnState::Unknown,
        }
    }

    /// The coordinator has been silent for too long: ask the coordinator
    /// and the other participants (or, with the bug, decide alone).
    fn start_termination(&mut self, txn: TxnId) {
        let Some(v) = self.voted.get_mut(&txn) else {
            return;
        };
        if self.no_termination {
            // BUG no-termination: decide alone by this node's own state,
            // as if nobody else could know better.
            let commit = v.pre_committed;
            tracing::info!(%txn, commit, "3pc timeout: deciding alone");
            self.on_decide(txn, commit);
            return;
        }
        v.asked = Some((Instant::now(), BTreeMap::new()));
        let mut ask: BTreeSet<String> = v.participants.iter().cloned().collect();
        ask.insert(txn.coord.clone());
        ask.remove(&self.id);
        for to in ask {
            self.send(&to, Msg::Query { txn: txn.clone() });
        }
    }

    /// Decides `txn` by the termination protocol once the answers settle
    /// it, or once the answer timeout passed (`timed_out`).
    fn maybe_terminate(&mut self, txn: &TxnId, timed_out: bool) {
        let Some(v) = self.voted.get(txn) else {
            return;
        };
        let Some((_, answers)) = &v.asked else {
            return;
        };
        let mut others: BTreeSet<String> = v.participants.iter().cloned().collect();
        others.insert(txn.coord.clone());
        others.remove(&self.id);
        let own = match (v.recovered, v.pre_committed) {
            (true, _) => Own::Recovered,
            (false, true) => Own::PreCommitted,
            (false, false) => Own::Uncertain,
        };
        let Some((commit, why)) = termination(own, &v.participants, &others, answers, timed_out)
        else {
            if timed_out && own == Own::Recovered {
                self.ask_again(txn, &others);
            }
            return;
        };
        if why == Why::Timeout {
            // Nobody that could know answered: they are taken to have
            // crashed. Under a partition they have not, and may decide
            // the other way.
            let silent: Vec<&String> = others
                .iter()
                .filter(|o| !answers.contains_key(*o))
                .collect();
            tracing::warn!(
                %txn,
                commit,
                "3pc split-risk: no answer from {silent:?}; deciding by timeout ({})",
                if commit { "pre-committed: commit" } else { "uncertain: abort" }
            );
        }
        tracing::info!(%txn, commit, why = ?why, "3pc termination");
        if txn.coord == self.id && v.recovered {
            let participants = v.participants.clone();
            self.voted.remove(txn);
            self.end_as_coordinator(txn, &participants, commit);
            return;
        }
        let tell: Vec<String> = v
            .participants
            .iter()
            .filter(|p| **p != self.id)
            .cloned()
            .collect();
        self.on_decide(txn.clone(), commit);
        for p in tell {
            self.send(
                &p,
                Msg::Decide {
                    txn: txn.clone(),
                    commit,
                },
            );
        }
    }

    /// A recovered node heard from not everyone: it asks the silent ones
    /// again rather than decide blind (the answers so far are kept).
    fn ask_again(&mut self, txn: &TxnId, others: &BTreeSet<String>) {
        let Some(Voted {
            asked: Some((at, answers)),
            ..
        }) = self.voted.get_mut(txn)
        else {
            return;
        };
        *at = Instant::now();
        let silent: Vec<String> = others
            .iter()
            .filter(|o| !answers.contains_key(*o))
            .cloned()
            .collect();
        tracing::debug!(%txn, ?silent, "3pc recovered: asking the silent ones again");
        for to in silent {
            self.send(&to, Msg::Query { txn: txn.clone() });
        }
    }

    /// Ends a transaction this node coordinated and pre-decided before a
    /// crash, as its participants' answers decided: a commit is recorded
    /// and resent until every participant confirms; an abort is presumed
    /// (nothing written) and told to each.
    fn end_as_coordinator(&mut self, txn: &TxnId, participants: &[String], commit: bool) {
        if commit {
            self.record_commit(txn, participants);
            return;
        }
        self.remember(txn, false);
        for p in participants {
            let msg = Msg::Decide {
                txn: txn.clone(),
                commit: false,
            };
            self.send(p, msg);
        }
    }
}

/// What the node running the termination protocol knows itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Own {
    Uncertain,
    PreCommitted,
    /// Recovered after a crash (see [`Voted::recovered`]).
    Recovered,
}

/// Why the termination protocol decided as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    OtherCommitted,
    /// Another node aborted, or a participant never voted yes (so the
    /// coordinator cannot have pre-committed anyone).
    OtherAborted,
    /// Someone is pre-committed: the coordinator had every yes.
    PreCommitted,
    /// Everyone answered and nobody is past uncertain.
    AllUncertain,
    /// Not everyone answered in time: this node's own state decides
    /// (uncertain aborts, pre-committed commits).
    Timeout,
}

/// The termination protocol's rule, for a node whose own state is `own`,
/// given the `answers` of `others` (the coordinator and the other
/// participants): `Some((commit, why))` once they settle it, `None` while
/// it must wait for more. A recovered node's own pre-commit counts for
/// nothing (others may have aborted without it), and it never decides by
/// timeout.
fn termination(
    own: Own,
    participants: &[String],
    others: &BTreeSet<String>,
    answers: &BTreeMap<String, TxnState>,
    timed_out: bool,
) -> Option<(bool, Why)> {
    let heard = |s: TxnState| answers.values().any(|a| *a == s);
    let participant_unknown = answers
        .iter()
        .any(|(who, s)| *s == TxnState::Unknown && participants.contains(who));
    let all_answered = others.iter().all(|o| answers.contains_key(o));
    if heard(TxnState::Committed) {
        Some((true, Why::OtherCommitted))
    } else if heard(TxnState::Aborted) || participant_unknown {
        Some((false, Why::OtherAborted))
    } else if heard(TxnState::PreCommitted) || own == Own::PreCommitted && all_answered {
        Some((true, Why::PreCommitted))
    } else if all_answered {
        Some((false, Why::AllUncertain))
    } else if timed_out && own != Own::Recovered {
        Some((own == Own::PreCommitted, Why::Timeout))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(of: &[(&str, TxnState)]) -> BTreeMap<String, TxnState> {
        of.iter().map(|(n, s)| (n.to_string(), *s)).collect()
    }

    /// n2 asks; n1 coordinates; n2 and n3 participate.
    fn ask(pre: bool, of: &[(&str, TxnState)], timed_out: bool) -> Option<(bool, Why)> {
        let own = if pre {
            Own::PreCommitted
        } else {
            Own::Uncertain
        };
        ask_as(own, of, timed_out)
    }

    fn ask_as(own: Own, of: &[(&str, TxnState)], timed_out: bool) -> Option<(bool, Why)> {
        let participants = vec!["n2".to_string(), "n3".to_string()];
        let others = ["n1", "n3"].map(String::from).into_iter().collect();
        termination(own, &participants, &others, &answers(of), timed_out)
    }

    #[test]
    fn any_later_state_decides_at_once() {
        use TxnState::*;
        assert_eq!(
            ask(false, &[("n3", Committed)], false),
            Some((true, Why::OtherCommitted))
        );
        assert_eq!(
            ask(true, &[("n1", Aborted)], false),
            Some((false, Why::OtherAborted))
        );
        assert_eq!(
            ask(false, &[("n3", PreCommitted)], false),
            Some((true, Why::PreCommitted))
        );
        // A participant that never voted yes: the coordinator had no yes
        // from it, so nobody can be pre-committed.
        assert_eq!(
            ask(false, &[("n3", Unknown)], false),
            Some((false, Why::OtherAborted))
        );
    }

    #[test]
    fn uncertain_answers_wait_for_everyone_or_the_timeout() {
        use TxnState::*;
        assert_eq!(ask(false, &[("n3", Uncertain)], false), None);
        assert_eq!(
            ask(false, &[("n3", Uncertain), ("n1", Uncertain)], false),
            Some((false, Why::AllUncertain))
        );
        assert_eq!(
            ask(true, &[("n3", Uncertain), ("n1", Uncertain)], false),
            Some((true, Why::PreCommitted))
        );
        // Silence: the node's own state decides, which is where a
        // partition splits the outcome.
        assert_eq!(ask(false, &[], false), None);
        assert_eq!(ask(false, &[], true), Some((false, Why::Timeout)));
        assert_eq!(
            ask(true, &[("n3", Uncertain)], true),
            Some((true, Why::Timeout))
        );
    }

    /// A node back from a crash: n3 and the coordinator may have aborted
    /// by timeout while it was down (all uncertain), so its own pre-commit
    /// must not make it commit, and silence must not make it decide.
    #[test]
    fn a_recovered_node_decides_only_on_what_it_hears() {
        use TxnState::*;
        let r = Own::Recovered;
        assert_eq!(ask_as(r, &[], true), None);
        assert_eq!(ask_as(r, &[("n3", Uncertain)], true), None);
        assert_eq!(
            ask_as(r, &[("n3", Uncertain), ("n1", Uncertain)], false),
            Some((false, Why::AllUncertain))
        );
        assert_eq!(
            ask_as(r, &[("n3", Aborted)], false),
            Some((false, Why::OtherAborted))
        );
        assert_eq!(
            ask_as(r, &[("n1", PreCommitted)], false),
            Some((true, Why::PreCommitted))
        );
        assert_eq!(
            ask_as(r, &[("n3", Committed)], false),
            Some((true, Why::OtherCommitted))
        );
    }
}
