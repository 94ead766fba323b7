//! Multi-Paxos with a distinguished proposer: `faultline node paxos`.
//!
//! Every node is an acceptor ([`acceptor`]) and a learner; one at a time
//! leads. A follower that hears no leader for a random election timeout
//! picks a ballot above every ballot it has seen and runs phase 1 for all
//! open slots at once (from its first unlearned slot on, in chunks). With
//! promises from a majority it leads: it proposes again, under its own
//! ballot, the highest-ballot value reported for each open slot (a no-op
//! where none was), then proposes client writes in fresh slots, each slot a
//! phase 2 of its own. A slot is chosen once a majority accepted it under
//! the leader's ballot; every node applies chosen slots in slot order to
//! the shared [`StateMachine`]. Reads go through a read barrier: the leader
//! answers once a majority acknowledged a heartbeat round sent after the
//! read arrived (so no higher ballot was promised by a majority then) and
//! it applied every slot it had proposed when the read arrived.
//!
//! Acceptors make promises and accepted values durable before they answer
//! ([`Durable`]). A leader steps down when an acceptor refuses its ballot
//! (including its own acceptor, which has promised a higher one) or when it
//! has not heard from a majority for two election timeouts. Followers answer
//! clients with `not-leader` and a hint.
//!
//! Not here: snapshots and log compaction (slots are kept forever), or
//! membership changes.

pub mod acceptor;
pub mod message;

use super::NodeConfig;
use super::bugs::Bug;
use super::durable::Durable;
use super::event_loop::{self, Handler};
use super::server::{self, ClientCall, PeerSender};
use super::state_machine::StateMachine;
use super::wal::{GroupCommit, SyncMode, Wal};
use super::wire::{LeaderHint, Operation, Output, Reply, Status};
use acceptor::Acceptor;
use anyhow::Context;
use message::{Ballot, Command, Entry, Msg, Record};
use rand::{RngExt, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Entries in one Accept message.
const MAX_ENTRIES_PER_MSG: usize = 512;
/// Slots a leader sends a peer beyond what the peer has matched.
const SEND_WINDOW_SLOTS: u64 = 4096;
/// Rounds of "act on what became durable" per pass; what is left waits for
/// the next event.
const MAX_READY_ROUNDS: usize = 8;

/// Runs a Paxos node until the process is killed.
pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    let mode = if config.bugs.has(Bug::NoFsync) {
        SyncMode::Lazy
    } else {
        SyncMode::Fsync
    };
    let path = config.data_dir.join("paxos.log");
    let (wal, recovered) = Wal::open(&path, mode)?;
    if recovered.torn_bytes > 0 {
        tracing::warn!(path = %path.display(), bytes = recovered.torn_bytes, "cut a torn tail off the data file");
    }
    let (acceptor, chosen_hint) =
        Acceptor::recover(&recovered.records, config.bugs.has(Bug::SkipPromiseCheck))
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let (inbox, net) = server::start::<Msg>(&config.id, &config.listen, &config.peers)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let (durable_tx, durable_rx) = mpsc::channel(1024);
    let storage = Durable::new(GroupCommit::spawn(wal, durable_tx));
    let mut node = Node::new(config, acceptor, storage, net);
    node.learn_upto(chosen_hint);
    tracing::info!(promised = %node.acceptor.promised(), learned = node.learned, slots = node.acceptor.last_slot(), "recovered");
    let tick = node.timing.heartbeat;
    event_loop::run(&mut node, inbox, durable_rx, tick).await;
    Ok(())
}

/// What waits until the records queued before it are durable.
enum After {
    Send(String, Msg),
    /// This node's own promise of `ballot` is durable: count it for the
    /// chunk starting at `from`.
    SelfPromised {
        ballot: Ballot,
        from: u64,
    },
    /// This node's own acceptance of every slot up to `upto` is durable.
    SelfAccepted {
        ballot: Ballot,
        upto: u64,
    },
}

enum Role {
    Follower,
    Candidate(Candidate),
    Leader(Leader),
}

/// Phase 1 in progress.
struct Candidate {
    ballot: Ballot,
    /// The chunk being prepared: slots from here on.
    chunk: u64,
    promised_by: BTreeSet<String>,
    more: bool,
    /// The highest-ballot value reported for each slot.
    merged: BTreeMap<u64, (Ballot, Command)>,
}

struct Leader {
    ballot: Ballot,
    /// The first slot not yet proposed.
    next_slot: u64,
    /// Every slot up to here is durably accepted by this node's acceptor.
    self_matched: u64,
    /// The heartbeat round; read barriers wait for a majority to echo one.
    round: u64,
    /// Start a new round at the next flush (a read waits for it, or a
    /// heartbeat is due).
    round_wanted: bool,
    progress: BTreeMap<String, Progress>,
    /// Writes proposed and waiting to be chosen: slot -> (value, caller).
    pending: BTreeMap<u64, (Command, ClientCall)>,
    reads: VecDeque<PendingRead>,
    /// Proposed during this pass; accepted locally and sent at the flush.
    proposed: Vec<(Entry, ClientCall)>,
}

struct Progress {
    /// The next slot to send.
    next: u64,
    matched: u64,
    /// `matched` at the previous tick, to notice a peer that makes no progress.
    matched_at_tick: u64,
    /// The highest heartbeat round the peer echoed under this ballot.
    round: u64,
    /// The round of the last message sent to the peer.
    sent_round: u64,
    last_heard: Instant,
}

struct PendingRead {
    /// The last slot proposed when the read arrived.
    index: u64,
    round: u64,
    call: ClientCall,
}

struct Node {
    id: String,
    peers: Vec<(String, String)>,
    timing: super::Timing,
    acceptor: Acceptor,
    sm: StateMachine,
    /// Every slot up to here is chosen and applied.
    learned: u64,
    chosen_recorded: u64,
    role: Role,
    /// The leader this node last heard from, and when.
    leader: Option<String>,
    leader_contact: Instant,
    /// The highest ballot seen anywhere; a new ballot goes above it.
    highest_seen: Ballot,
    election_deadline: Instant,
    storage: Durable<After>,
    net: PeerSender<Msg>,
    rng: rand_chacha::ChaCha8Rng,
}

impl Handler for Node {
    type Msg = Msg;

    fn on_client(&mut self, call: ClientCall) {
        let id = call.request.id;
        if call.request.op == Operation::Status {
            let status = self.status();
            let op = call.request.op.clone();
            call.reply(Reply::ok(id, &op, &Output::Status(status)));
            return;
        }
        let ballot_admitted = match &self.role {
            Role::Leader(l) => self.acceptor.admits(&l.ballot),
            _ => false,
        };
        let Role::Leader(leader) = &mut self.role else {
            let hint = self.hint();
            call.reply(Reply::not_leader(id, hint));
            return;
        };
        if !ballot_admitted {
            self.step_down("this node's acceptor promised a higher ballot");
            call.reply(Reply::not_leader(id, None));
            return;
        }
        if call.request.op.is_read_only() {
            leader.reads.push_back(PendingRead {
                index: leader.next_slot - 1,
                round: leader.round + 1,
                call,
            });
            leader.round_wanted = true;
        } else {
            let slot = leader.next_slot;
            leader.next_slot += 1;
            let cmd = Command::Op(call.request.op.clone());
            leader.proposed.push(((slot, cmd), call));
        }
    }

    fn on_peer(&mut self, from: &str, msg: Msg) {
        match msg {
            Msg::Prepare { ballot, from: slot } => self.on_prepare(from, ballot, slot),
            Msg::Promise {
                ballot,
                from: chunk,
                accepted,
                more,
            } => {
                if matches!(&self.role, Role::Candidate(c) if c.ballot == ballot && c.chunk == chunk)
                {
                    self.on_promise(from, accepted, more);
                }
            }
            Msg::Accept {
                ballot,
                entries,
                commit,
                round,
            } => self.on_accept(from, ballot, entries, commit, round),
            Msg::Accepted {
                ballot,
                matched,
                round,
            } => self.on_accepted(from, ballot, matched, round),
            Msg::Nack { promised } => self.on_refused(promised),
        }
    }

    fn on_durable(&mut self, seq: u64) {
        self.storage.on_durable(seq);
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        if !matches!(self.role, Role::Leader(_)) {
            if now >= self.election_deadline {
                self.start_election();
            }
            return;
        }
        let majority = self.majority();
        let quorum_window = self.timing.election_timeout_min * 2;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let heard = l
            .progress
            .values()
            .filter(|p| now.duration_since(p.last_heard) < quorum_window)
            .count();
        if heard + 1 < majority {
            self.step_down("no majority heard from within two election timeouts");
            return;
        }
        l.round_wanted = true;
        // A peer that matched nothing new since the last tick may have lost
        // messages or restarted: send again from what it has.
        for p in l.progress.values_mut() {
            if p.matched == p.matched_at_tick && p.matched + 1 < l.next_slot {
                p.next = p.matched + 1;
            }
            p.matched_at_tick = p.matched;
        }
    }

    /// Writes what this pass produced and sends what may go now.
    fn flush(&mut self) {
        for _ in 0..MAX_READY_ROUNDS {
            self.flush_leader();
            if self.learned > self.chosen_recorded {
                self.storage
                    .record(Record::Chosen { upto: self.learned }.encode());
                self.chosen_recorded = self.learned;
            }
            self.storage.flush();
            let ready = self.storage.ready();
            if ready.is_empty() {
                break;
            }
            for action in ready {
                self.act(action);
            }
        }
    }
}

impl Node {
    fn new(
        config: NodeConfig,
        acceptor: Acceptor,
        storage: Durable<After>,
        net: PeerSender<Msg>,
    ) -> Node {
        // Only election timeouts are random; the seed is logged so a node's
        // choices can be replayed.
        let seed = crate::seed::draw();
        tracing::info!(seed, "election timer seed");
        let mut node = Node {
            id: config.id,
            peers: config.peers,
            timing: config.timing,
            highest_seen: acceptor.promised().clone(),
            acceptor,
            sm: StateMachine::new(config.bank),
            learned: 0,
            chosen_recorded: 0,
            role: Role::Follower,
            leader: None,
            leader_contact: Instant::now(),
            election_deadline: Instant::now(),
            storage,
            net,
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
        };
        node.reset_election_timer();
        node
    }

    fn majority(&self) -> usize {
        let nodes = self.peers.len() + 1;
        nodes / 2 + 1
    }

    fn reset_election_timer(&mut self) {
        let min = self.timing.election_timeout_min;
        let jitter_ms = self.rng.random_range(0..min.as_millis().max(1) as u64);
        self.election_deadline = Instant::now() + min + Duration::from_millis(jitter_ms);
    }

    fn send_all(&self, msg: &Msg) {
        for (peer, _) in &self.peers {
            self.net.send(peer, msg);
        }
    }

    fn hint(&self) -> Option<LeaderHint> {
        let leader = self.leader.as_ref()?;
        let addr = self.peers.iter().find(|(id, _)| id == leader)?.1.clone();
        Some(LeaderHint {
            id: leader.clone(),
            addr,
        })
    }

    fn status(&self) -> Status {
        let (role, leader) = match &self.role {
            Role::Leader(_) => ("leader", Some(self.id.clone())),
            Role::Candidate(_) => ("candidate", None),
            Role::Follower => ("follower", self.leader.clone()),
        };
        Status {
            id: self.id.clone(),
            role: role.into(),
            term: self.acceptor.promised().round,
            leader,
            voted_for: None,
            applied: self.learned,
        }
    }

    fn see(&mut self, ballot: &Ballot) {
        if *ballot > self.highest_seen {
            self.highest_seen = ballot.clone();
        }
    }

    /// The leader lease: while a node leads, or has heard from the leader
    /// within the shortest election timeout, it promises no one else, so a
    /// node back from a partition with a high ballot does not depose a
    /// healthy leader. Refusing a promise is always safe.
    fn in_lease_of_another(&self, ballot: &Ballot) -> bool {
        match &self.role {
            Role::Leader(_) => ballot.node != self.id,
            _ => {
                self.leader.as_ref().is_some_and(|l| *l != ballot.node)
                    && self.leader_contact.elapsed() < self.timing.election_timeout_min
            }
        }
    }

    fn on_prepare(&mut self, from: &str, ballot: Ballot, slot: u64) {
        self.see(&ballot);
        if self.in_lease_of_another(&ballot) {
            let promised = self.acceptor.promised().clone();
            self.storage
                .after(After::Send(from.into(), Msg::Nack { promised }));
            return;
        }
        match self.acceptor.prepare(&ballot, slot) {
            Ok((record, chunk)) => {
                if let Some(r) = record {
                    self.storage.record(r.encode());
                }
                self.reset_election_timer();
                self.storage.after(After::Send(
                    from.into(),
                    Msg::Promise {
                        ballot,
                        from: slot,
                        accepted: chunk.accepted,
                        more: chunk.more,
                    },
                ));
                self.check_own_ballot();
            }
            Err(promised) => self
                .storage
                .after(After::Send(from.into(), Msg::Nack { promised })),
        }
    }

    /// After this node's acceptor promised another ballot: a candidate or
    /// leader whose ballot its own acceptor no longer admits gives up.
    fn check_own_ballot(&mut self) {
        let own = match &self.role {
            Role::Follower => return,
            Role::Candidate(c) => &c.ballot,
            Role::Leader(l) => &l.ballot,
        };
        if !self.acceptor.admits(own) {
            self.step_down("this node's acceptor promised a higher ballot");
        }
    }

    fn on_accept(
        &mut self,
        from: &str,
        ballot: Ballot,
        entries: Vec<Entry>,
        commit: u64,
        round: u64,
    ) {
        self.see(&ballot);
        match self.acceptor.accept(&ballot, entries, self.learned) {
            Ok(record) => {
                if let Some(r) = record {
                    self.storage.record(r.encode());
                }
                self.check_own_ballot();
                if !matches!(self.role, Role::Leader(_)) {
                    self.leader = Some(ballot.node.clone());
                    self.leader_contact = Instant::now();
                    self.reset_election_timer();
                    self.learn_from(&ballot, commit);
                }
                let matched = self.acceptor.matched(&ballot, self.learned);
                self.storage.after(After::Send(
                    from.into(),
                    Msg::Accepted {
                        ballot,
                        matched,
                        round,
                    },
                ));
            }
            Err(promised) => self
                .storage
                .after(After::Send(from.into(), Msg::Nack { promised })),
        }
    }

    /// A follower learns the slots up to `commit` that it accepted under the
    /// leader's `ballot`: those hold the value that ballot got chosen.
    fn learn_from(&mut self, ballot: &Ballot, commit: u64) {
        let mut upto = self.learned;
        while upto < commit
            && self
                .acceptor
                .get(upto + 1)
                .is_some_and(|(b, _)| b == ballot)
        {
            upto += 1;
        }
        self.learn_upto(upto);
    }

    fn on_refused(&mut self, promised: Ballot) {
        self.see(&promised);
        let own = match &self.role {
            Role::Follower => return,
            Role::Candidate(c) => &c.ballot,
            Role::Leader(l) => &l.ballot,
        };
        if promised > *own {
            self.step_down("an acceptor promised a higher ballot");
        }
    }

    fn step_down(&mut self, why: &str) {
        let role = std::mem::replace(&mut self.role, Role::Follower);
        match role {
            Role::Follower => return,
            Role::Candidate(c) => tracing::info!(ballot = %c.ballot, "election abandoned: {why}"),
            Role::Leader(l) => {
                tracing::info!(ballot = %l.ballot, "stepping down: {why}");
                for (_, (_, call)) in l.pending {
                    let id = call.request.id;
                    call.reply(Reply::info(
                        id,
                        "leadership lost: the write may or may not be chosen",
                    ));
                }
                for ((_, _), call) in l.proposed {
                    // Never sent to any acceptor: certainly not chosen.
                    let id = call.request.id;
                    call.reply(Reply::not_leader(id, None));
                }
                for read in l.reads {
                    let id = read.call.request.id;
                    read.call.reply(Reply::not_leader(id, None));
                }
            }
        }
        self.leader = None;
        self.reset_election_timer();
    }

    fn start_election(&mut self) {
        let round = self.highest_seen.round.max(self.acceptor.promised().round) + 1;
        let ballot = Ballot::new(round, &self.id);
        self.see(&ballot);
        let from = self.learned + 1;
        match self.acceptor.prepare(&ballot, from) {
            Ok((record, _)) => {
                if let Some(r) = record {
                    self.storage.record(r.encode());
                }
            }
            Err(_) => unreachable!("a ballot above every ballot seen is admitted"),
        }
        tracing::info!(%ballot, from, "starting phase 1");
        self.role = Role::Candidate(Candidate {
            ballot: ballot.clone(),
            chunk: from,
            promised_by: BTreeSet::new(),
            more: false,
            merged: BTreeMap::new(),
        });
        self.leader = None;
        self.reset_election_timer();
        self.send_all(&Msg::Prepare {
            ballot: ballot.clone(),
            from,
        });
        self.storage.after(After::SelfPromised { ballot, from });
    }

    fn on_promise(&mut self, from: &str, accepted: Vec<(u64, Ballot, Command)>, more: bool) {
        let majority = self.majority();
        let Role::Candidate(c) = &mut self.role else {
            return;
        };
        for (slot, ballot, cmd) in accepted {
            if c.merged.get(&slot).is_none_or(|(b, _)| ballot > *b) {
                c.merged.insert(slot, (ballot, cmd));
            }
        }
        c.more |= more;
        c.promised_by.insert(from.to_string());
        if c.promised_by.len() < majority {
            return;
        }
        if c.more {
            c.chunk += acceptor::PROMISE_CHUNK_SLOTS;
            c.more = false;
            c.promised_by.clear();
            let (ballot, chunk) = (c.ballot.clone(), c.chunk);
            self.send_all(&Msg::Prepare {
                ballot: ballot.clone(),
                from: chunk,
            });
            self.storage.after(After::SelfPromised {
                ballot,
                from: chunk,
            });
        } else {
            self.become_leader();
        }
    }

    fn become_leader(&mut self) {
        let Role::Candidate(c) = std::mem::replace(&mut self.role, Role::Follower) else {
            return;
        };
        let last = c
            .merged
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .max(self.learned);
        // Propose again every open slot: the highest-ballot value reported,
        // or a no-op where no acceptor of the majority accepted anything.
        let mut merged = c.merged;
        let entries: Vec<Entry> = (self.learned + 1..=last)
            .map(|s| (s, merged.remove(&s).map_or(Command::Noop, |(_, cmd)| cmd)))
            .collect();
        for chunk in entries.chunks(MAX_ENTRIES_PER_MSG) {
            match self
                .acceptor
                .accept(&c.ballot, chunk.to_vec(), self.learned)
            {
                Ok(Some(r)) => self.storage.record(r.encode()),
                Ok(None) => {}
                Err(_) => unreachable!("the candidate's acceptor promised its ballot"),
            }
        }
        tracing::info!(ballot = %c.ballot, learned = self.learned, reproposed = entries.len(), "leading");
        let now = Instant::now();
        let progress = self
            .peers
            .iter()
            .map(|(peer, _)| {
                let p = Progress {
                    next: self.learned + 1,
                    matched: 0,
                    matched_at_tick: 0,
                    round: 0,
                    sent_round: 0,
                    last_heard: now,
                };
                (peer.clone(), p)
            })
            .collect();
        self.storage.after(After::SelfAccepted {
            ballot: c.ballot.clone(),
            upto: last,
        });
        self.leader = Some(self.id.clone());
        self.role = Role::Leader(Leader {
            ballot: c.ballot,
            next_slot: last + 1,
            self_matched: self.learned,
            round: 0,
            round_wanted: true,
            progress,
            pending: BTreeMap::new(),
            reads: VecDeque::new(),
            proposed: Vec::new(),
        });
    }

    fn on_accepted(&mut self, from: &str, ballot: Ballot, matched: u64, round: u64) {
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if ballot != l.ballot {
            return;
        }
        let Some(p) = l.progress.get_mut(from) else {
            return;
        };
        p.matched = matched;
        p.round = p.round.max(round);
        p.last_heard = Instant::now();
        if p.next <= matched {
            p.next = matched + 1;
        }
        self.advance();
        self.send_to(from);
    }

    /// A leader learns every slot a majority matched, then answers the
    /// reads whose barrier passed.
    fn advance(&mut self) {
        let majority = self.majority();
        let Role::Leader(l) = &self.role else {
            return;
        };
        let mut matched: Vec<u64> = l.progress.values().map(|p| p.matched).collect();
        matched.push(l.self_matched);
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let chosen = matched[majority - 1];
        let mut rounds: Vec<u64> = l.progress.values().map(|p| p.round).collect();
        rounds.push(l.round);
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        let confirmed_round = rounds[majority - 1];
        self.learn_upto(chosen);
        let learned = self.learned;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        while l
            .reads
            .front()
            .is_some_and(|r| r.round <= confirmed_round && r.index <= learned)
        {
            let Some(read) = l.reads.pop_front() else {
                break;
            };
            let op = &read.call.request.op;
            let reply = match self.sm.apply(op) {
                Ok(out) => Reply::ok(read.call.request.id, op, &out),
                Err(code) => Reply::fail(read.call.request.id, code),
            };
            read.call.reply(reply);
        }
    }

    /// Applies chosen slots up to `upto` in slot order and answers the
    /// writes this node proposed there.
    fn learn_upto(&mut self, upto: u64) {
        while self.learned < upto {
            let slot = self.learned + 1;
            let Some((_, cmd)) = self.acceptor.get(slot) else {
                tracing::warn!(slot, "cannot learn a slot this node never accepted");
                return;
            };
            let result = match cmd {
                Command::Noop => None,
                Command::Op(op) => Some(self.sm.apply(op)),
            };
            self.learned = slot;
            let Role::Leader(l) = &mut self.role else {
                continue;
            };
            let Some((proposed, call)) = l.pending.remove(&slot) else {
                continue;
            };
            let id = call.request.id;
            let reply = match (self.acceptor.get(slot), result) {
                (Some((_, chosen)), Some(result)) if *chosen == proposed => match result {
                    Ok(out) => Reply::ok(id, &call.request.op, &out),
                    Err(code) => Reply::fail(id, code),
                },
                _ => Reply::info(id, "another value was chosen in the slot of this write"),
            };
            call.reply(reply);
        }
    }

    /// A leader starts the round reads wait for, accepts this pass's
    /// proposals locally (one record) and sends each peer what it lacks.
    fn flush_leader(&mut self) {
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if l.round_wanted {
            l.round += 1;
            l.round_wanted = false;
        }
        let proposed = std::mem::take(&mut l.proposed);
        if let Some(((upto, _), _)) = proposed.last() {
            let (ballot, upto) = (l.ballot.clone(), *upto);
            let entries: Vec<Entry> = proposed.iter().map(|(e, _)| e.clone()).collect();
            match self.acceptor.accept(&ballot, entries, self.learned) {
                Ok(record) => {
                    if let Some(r) = record {
                        self.storage.record(r.encode());
                    }
                    for ((slot, cmd), call) in proposed {
                        l.pending.insert(slot, (cmd, call));
                    }
                    self.storage.after(After::SelfAccepted { ballot, upto });
                }
                Err(_) => {
                    for (_, call) in proposed {
                        let id = call.request.id;
                        call.reply(Reply::not_leader(id, None));
                    }
                    self.step_down("this node's acceptor promised a higher ballot");
                    return;
                }
            }
        }
        // With no peers, this node's own round confirms the reads.
        self.advance();
        for peer in self.peers.iter().map(|p| p.0.clone()).collect::<Vec<_>>() {
            self.send_to(&peer);
        }
    }

    fn act(&mut self, action: After) {
        match action {
            After::Send(to, msg) => {
                self.net.send(&to, &msg);
            }
            After::SelfPromised { ballot, from } => {
                if matches!(&self.role, Role::Candidate(c) if c.ballot == ballot && c.chunk == from)
                {
                    let chunk = self.acceptor.chunk(from);
                    let id = self.id.clone();
                    self.on_promise(&id, chunk.accepted, chunk.more);
                }
            }
            After::SelfAccepted { ballot, upto } => {
                if let Role::Leader(l) = &mut self.role
                    && l.ballot == ballot
                {
                    l.self_matched = l.self_matched.max(upto);
                    self.advance();
                }
            }
        }
    }

    /// Sends `peer` the slots it lacks
    /// (within the window), or a heartbeat when a new round has not reached it.
    fn send_to(&mut self, peer: &str) {
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let Some(p) = l.progress.get_mut(peer) else {
            return;
        };
        // Proposals of this pass are not accepted locally yet: they go at the flush.
        let accepted_end = l.proposed.first().map_or(l.next_slot, |((s, _), _)| *s);
        let end = accepted_end.min(p.matched + SEND_WINDOW_SLOTS + 1);
        while p.next < end || p.sent_round < l.round {
            let upto = end.min(p.next + MAX_ENTRIES_PER_MSG as u64).max(p.next);
            let entries: Vec<Entry> = (p.next..upto)
                .filter_map(|s| self.acceptor.get(s).map(|(_, cmd)| (s, cmd.clone())))
                .collect();
            self.net.send(
                peer,
                &Msg::Accept {
                    ballot: l.ballot.clone(),
                    entries,
                    commit: self.learned,
                    round: l.round,
                },
            );
            p.next = upto;
            p.sent_round = l.round;
        }
    }
}
