//! One Raft node's state and its reactions to events: client calls, peer
//! messages, timer ticks and "the log is durable up to here" notices.
//!
//! Handlers only change state and queue messages; nothing here blocks.
//! Durability: every record goes to the group-commit writer, and every
//! message that promises something about the disk (a vote, an append
//! acknowledgement) is held until the writer reports it durable. The leader
//! counts itself towards a majority only for entries on its own disk.

use super::BECAME_LEADER;
use super::log::{Command, Entry, Log, Record};
use super::message::Msg;
use crate::nodes::bugs::{Bug, Bugs};
use crate::nodes::server::{ClientCall, PeerSender};
use crate::nodes::state_machine::StateMachine;
use crate::nodes::wal::GroupCommit;
use crate::nodes::wire::{FailCode, LeaderHint, Operation, Output, Reply, Status};
use crate::nodes::{NodeConfig, Timing};
use rand::{RngExt, SeedableRng};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime};

/// Entries per AppendEntries message.
const MAX_ENTRIES_PER_APPEND: usize = 512;
/// Entries sent to a follower and not yet acknowledged; beyond, only heartbeats.
const MAX_INFLIGHT_ENTRIES: u64 = 8192;
/// Entries the leader holds uncommitted; beyond, writes fail `unavailable`.
const MAX_UNCOMMITTED: u64 = 20_000;
/// Reads waiting for a heartbeat round or for the state machine to catch up.
const MAX_PENDING_READS: usize = 20_000;
/// Heartbeat rounds remembered for the lease (bug `lease-read-wallclock`).
const MAX_LEASE_ROUNDS: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// What the leader knows of one follower.
struct Progress {
    /// The next index to send (optimistic: advanced when sent).
    next: u64,
    /// The highest index known to be on the follower's disk.
    matched: u64,
    /// The highest heartbeat round the follower acknowledged in our term.
    acked_seq: u64,
    last_ack: Instant,
}

/// A linearizable read waiting for ReadIndex: a heartbeat round numbered
/// `seq` acknowledged by a majority, and the state machine at `read_index`.
struct PendingRead {
    call: ClientCall,
    seq: u64,
    read_index: u64,
}

pub struct Raft {
    id: String,
    listen: String,
    peers: Vec<String>,
    peer_addrs: HashMap<String, String>,
    timing: Timing,
    bugs: Bugs,
    rng: rand_chacha::ChaCha8Rng,

    // Persistent (through `wal`).
    term: u64,
    voted_for: Option<String>,
    log: Log,

    role: Role,
    leader: Option<String>,
    commit: u64,
    applied: u64,
    sm: StateMachine,
    election_deadline: Instant,
    last_leader_contact: Option<Instant>,
    votes: HashSet<String>,
    /// When a candidate last sent its vote requests (they are re-sent).
    votes_asked_at: Instant,

    // Leader only.
    progress: HashMap<String, Progress>,
    became_leader_at: Instant,
    /// The index of this term's no-op: reads wait until it is applied.
    term_start: u64,
    proposals: HashMap<u64, ClientCall>,
    reads: VecDeque<PendingRead>,
    read_seq: u64,
    need_round: bool,
    last_round: Instant,
    /// Wall-clock send times of heartbeat rounds (bug `lease-read-wallclock`).
    lease_rounds: VecDeque<(u64, SystemTime)>,
    lease_until: Option<SystemTime>,

    // Durability.
    wal: GroupCommit,
    unpersisted: Vec<Entry>,
    durable_seq: u64,
    /// Messages waiting for a record batch to be durable: (batch seq, to, msg).
    held: VecDeque<(u64, String, Msg)>,
    /// (batch seq, last log index when it was submitted).
    marks: VecDeque<(u64, u64)>,
    /// The last log index known to be on this node's disk.
    durable_index: u64,
    net: PeerSender<Msg>,
}

impl Raft {
    /// A node with the hard state and log replayed from disk.
    pub fn new(
        config: &NodeConfig,
        hard: (u64, Option<String>),
        log: Log,
        wal: GroupCommit,
        net: PeerSender<Msg>,
    ) -> Raft {
        let seed = crate::seed::draw();
        let now = Instant::now();
        let durable_index = log.last_index();
        let mut raft = Raft {
            id: config.id.clone(),
            listen: config.listen.clone(),
            peers: config.peers.iter().map(|p| p.0.clone()).collect(),
            peer_addrs: config.peers.iter().cloned().collect(),
            timing: config.timing,
            bugs: config.bugs.clone(),
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            term: hard.0,
            voted_for: hard.1,
            log,
            role: Role::Follower,
            leader: None,
            commit: 0,
            applied: 0,
            sm: StateMachine::new(config.bank),
            election_deadline: now,
            last_leader_contact: None,
            votes: HashSet::new(),
            votes_asked_at: now,
            progress: HashMap::new(),
            became_leader_at: now,
            term_start: 0,
            proposals: HashMap::new(),
            reads: VecDeque::new(),
            read_seq: 0,
            need_round: false,
            last_round: now,
            lease_rounds: VecDeque::new(),
            lease_until: None,
            wal,
            unpersisted: Vec::new(),
            durable_seq: 0,
            held: VecDeque::new(),
            marks: VecDeque::new(),
            durable_index,
            net,
        };
        raft.reset_election_deadline();
        raft
    }

    fn majority(&self) -> usize {
        let cluster_size = self.peers.len() + 1;
        cluster_size / 2 + 1
    }

    fn reset_election_deadline(&mut self) {
        let min = self.timing.election_timeout_min;
        let jitter = self.rng.random_range(0..min.as_millis().max(1) as u64);
        self.election_deadline = Instant::now() + min + Duration::from_millis(jitter);
    }

    fn heard_from_leader_recently(&self) -> bool {
        self.role == Role::Leader
            || self
                .last_leader_contact
                .is_some_and(|t| t.elapsed() < self.timing.election_timeout_min)
    }

    fn hint(&self) -> Option<LeaderHint> {
        let id = self.leader.clone()?;
        let addr = if id == self.id {
            self.listen.clone()
        } else {
            self.peer_addrs.get(&id)?.clone()
        };
        Some(LeaderHint { id, addr })
    }

    pub fn status(&self) -> Status {
        let role = match self.role {
            Role::Follower => "follower",
            Role::PreCandidate | Role::Candidate => "candidate",
            Role::Leader => "leader",
        };
        Status {
            id: self.id.clone(),
            role: role.into(),
            term: self.term,
            leader: self.leader.clone(),
            voted_for: self.voted_for.clone(),
            applied: self.applied,
        }
    }

    // ----- durability -----

    /// Hands the entries appended since the last write to the writer, so
    /// that what is submitted next (a hard state, a message that vouches
    /// for them) comes after them.
    fn submit_entries(&mut self) {
        if !self.unpersisted.is_empty() {
            let entries = std::mem::take(&mut self.unpersisted);
            self.submit(Record::Entries(entries));
        }
    }

    /// Submits `record`; once its batch is durable, so is the whole log as
    /// it is now (marks), which holds only because every entry of the log
    /// was submitted before it.
    fn submit(&mut self, record: Record) {
        debug_assert!(
            matches!(record, Record::Entries(_)) || self.unpersisted.is_empty(),
            "log entries are submitted before anything that follows them"
        );
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        let seq = self.wal.submit(vec![bytes]);
        self.marks.push_back((seq, self.log.last_index()));
    }

    fn persist_hard_state(&mut self) {
        self.submit_entries();
        // The bug `forget-vote`: the vote never reaches the disk, so after a
        // restart this node may vote again in a term it already voted in.
        let vote = if self.bugs.has(Bug::ForgetVote) {
            None
        } else {
            self.voted_for.clone()
        };
        self.submit(Record::Hard {
            term: self.term,
            vote,
        });
    }

    /// Sends `msg` once everything it vouches for is durable: the log as it
    /// is now (the entries just appended are submitted first; a follower
    /// that acknowledged entries still in memory let the leader commit what
    /// a crash of the majority then lost) and what was submitted before.
    fn send_durable(&mut self, to: &str, msg: Msg) {
        self.submit_entries();
        let seq = self.wal.last_submitted();
        if self.durable_seq >= seq && self.held.is_empty() {
            self.net.send(to, &msg);
        } else {
            self.held.push_back((seq, to.to_string(), msg));
        }
    }

    pub fn on_durable(&mut self, seq: u64) {
        debug_assert!(seq > self.durable_seq, "durable notices increase");
        self.durable_seq = seq;
        while self.marks.front().is_some_and(|m| m.0 <= seq) {
            let (_, index) = self.marks.pop_front().expect("checked non-empty");
            self.durable_index = index;
        }
        while self.held.front().is_some_and(|h| h.0 <= seq) {
            let (_, to, msg) = self.held.pop_front().expect("checked non-empty");
            self.net.send(&to, &msg);
        }
        if self.role == Role::Leader {
            self.maybe_commit();
        }
    }

    /// Writes the entries appended since the last flush, then sends what the
    /// leader owes its followers. Called after every batch of events.
    pub fn flush(&mut self) {
        self.submit_entries();
        if self.role != Role::Leader {
            return;
        }
        let now = Instant::now();
        let round = self.need_round || now.duration_since(self.last_round) >= self.timing.heartbeat;
        if round {
            self.read_seq += 1;
            self.need_round = false;
            self.last_round = now;
            if self.bugs.has(Bug::LeaseReadWallclock) {
                self.lease_rounds
                    .push_back((self.read_seq, SystemTime::now()));
                if self.lease_rounds.len() > MAX_LEASE_ROUNDS {
                    self.lease_rounds.pop_front();
                }
            }
        }
        for peer in self.peers.clone() {
            let p = &self.progress[&peer];
            let has_new =
                p.next <= self.log.last_index() && p.next - p.matched <= MAX_INFLIGHT_ENTRIES;
            if has_new || round {
                self.send_append(&peer, has_new);
            }
        }
        if self.peers.is_empty() {
            self.maybe_commit();
            self.serve_reads();
        }
    }

    fn send_append(&mut self, peer: &str, with_entries: bool) {
        let Some(p) = self.progress.get_mut(peer) else {
            return;
        };
        let prev_index = p.next - 1;
        let entries = if with_entries {
            self.log.slice(p.next, MAX_ENTRIES_PER_APPEND)
        } else {
            Vec::new()
        };
        p.next += entries.len() as u64;
        let msg = Msg::Append {
            term: self.term,
            prev_index,
            prev_term: self.log.term_at(prev_index).unwrap_or(0),
            entries,
            commit: self.commit,
            seq: self.read_seq,
        };
        self.net.send(peer, &msg);
    }

    // ----- timers -----

    pub fn tick(&mut self) {
        let now = Instant::now();
        match self.role {
            Role::Leader => {
                // Check quorum: a leader that has not heard from a majority
                // for two election timeouts steps down rather than linger.
                let limit = self.timing.election_timeout_min * 2;
                let fresh = 1 + self
                    .progress
                    .values()
                    .filter(|p| now.duration_since(p.last_ack) < limit)
                    .count();
                let mut lost =
                    fresh < self.majority() && now.duration_since(self.became_leader_at) >= limit;
                // The bug `lease-read-wallclock`: once it holds a lease, the
                // leader trusts it, on the wall clock, to tell it is still leader.
                if let Some(until) = self.lease_until {
                    lost = SystemTime::now() > until + self.timing.election_timeout_min;
                }
                if lost {
                    tracing::warn!(
                        term = self.term,
                        "lost contact with a majority; stepping down"
                    );
                    self.become_follower(self.term, None);
                }
            }
            _ if now >= self.election_deadline => self.start_pre_vote(),
            Role::Candidate if now.duration_since(self.votes_asked_at) >= self.timing.heartbeat => {
                self.ask_for_votes();
            }
            _ => {}
        }
    }

    // ----- elections -----

    fn start_pre_vote(&mut self) {
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes = HashSet::from([self.id.clone()]);
        self.reset_election_deadline();
        tracing::debug!(term = self.term + 1, "pre-vote");
        let msg = Msg::PreVote {
            term: self.term + 1,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
        };
        for peer in &self.peers {
            self.net.send(peer, &msg);
        }
        if self.votes.len() >= self.majority() {
            self.start_election();
        }
    }

    fn start_election(&mut self) {
        self.term += 1;
        self.role = Role::Candidate;
        self.voted_for = Some(self.id.clone());
        self.votes = HashSet::from([self.id.clone()]);
        self.leader = None;
        self.persist_hard_state();
        self.reset_election_deadline();
        tracing::info!(term = self.term, "starting election");
        self.ask_for_votes();
        if self.votes.len() >= self.majority() {
            self.become_leader();
        }
    }

    /// Sends a vote request to every peer that has not granted one yet. A
    /// candidate repeats this every heartbeat (Raft §5.1: servers retry RPCs
    /// that get no response), so a lost request or a restarted peer does not
    /// cost a whole election timeout. Asking again is safe: a node grants a
    /// second vote in one term only to the candidate it already voted for.
    fn ask_for_votes(&mut self) {
        debug_assert_eq!(self.role, Role::Candidate);
        self.votes_asked_at = Instant::now();
        let msg = Msg::Vote {
            term: self.term,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
        };
        for peer in self.peers.clone() {
            if !self.votes.contains(&peer) {
                self.send_durable(&peer, msg.clone());
            }
        }
    }

    /// Whether a candidate's log is at least as up to date as ours.
    fn log_ok(&self, last_index: u64, last_term: u64) -> bool {
        (last_term, last_index) >= (self.log.last_term(), self.log.last_index())
    }

    fn become_follower(&mut self, term: u64, leader: Option<String>) {
        if term != self.term {
            self.term = term;
            self.voted_for = None;
            self.persist_hard_state();
        }
        if self.role == Role::Leader {
            tracing::info!(term, "no longer leader");
            for (_, call) in self.proposals.drain() {
                let id = call.request.id;
                call.reply(Reply::info(
                    id,
                    "leadership lost before the write committed; it may or may not happen",
                ));
            }
            for read in self.reads.drain(..) {
                let id = read.call.request.id;
                read.call.reply(Reply::not_leader(id, None));
            }
            self.progress.clear();
            self.lease_rounds.clear();
            self.lease_until = None;
        }
        self.role = Role::Follower;
        self.leader = leader;
    }

    fn become_leader(&mut self) {
        // The field is `TERM_FIELD` (tests/raft.rs reads the line back).
        tracing::info!(term = self.term, "{BECAME_LEADER}");
        self.role = Role::Leader;
        self.leader = Some(self.id.clone());
        let now = Instant::now();
        self.became_leader_at = now;
        let next = self.log.last_index() + 1;
        self.progress = self
            .peers
            .iter()
            .map(|p| {
                (
                    p.clone(),
                    Progress {
                        next,
                        matched: 0,
                        acked_seq: 0,
                        last_ack: now,
                    },
                )
            })
            .collect();
        self.term_start = next;
        self.append(Command::Noop);
        self.need_round = true;
    }

    fn append(&mut self, cmd: Command) -> u64 {
        let entry = Entry {
            term: self.term,
            index: self.log.last_index() + 1,
            cmd,
        };
        let index = entry.index;
        self.unpersisted.push(entry.clone());
        self.log.push(entry);
        index
    }

    // ----- peer messages -----

    pub fn on_message(&mut self, from: String, msg: Msg) {
        match msg {
            Msg::PreVote {
                term,
                last_index,
                last_term,
            } => {
                let granted = term > self.term
                    && self.log_ok(last_index, last_term)
                    && !self.heard_from_leader_recently();
                self.net.send(
                    &from,
                    &Msg::PreVoteReply {
                        term,
                        current: self.term,
                        granted,
                    },
                );
            }
            Msg::PreVoteReply {
                term,
                current,
                granted,
            } => {
                if current > self.term {
                    self.become_follower(current, None);
                } else if self.role == Role::PreCandidate && term == self.term + 1 && granted {
                    self.votes.insert(from);
                    if self.votes.len() >= self.majority() {
                        self.start_election();
                    }
                }
            }
            Msg::Vote {
                term,
                last_index,
                last_term,
            } => self.on_vote(from, term, last_index, last_term),
            Msg::VoteReply { term, granted } => {
                if term > self.term {
                    self.become_follower(term, None);
                } else if self.role == Role::Candidate && term == self.term && granted {
                    self.votes.insert(from);
                    if self.votes.len() >= self.majority() {
                        self.become_leader();
                    }
                }
            }
            Msg::Append { .. } => self.on_append(from, msg),
            Msg::AppendReply { .. } => self.on_append_reply(from, msg),
        }
    }

    fn on_vote(&mut self, from: String, term: u64, last_index: u64, last_term: u64) {
        // Leader stickiness: while we hear from a leader, a candidate is one
        // that missed it (a partition); it must not force a new term on us.
        if term < self.term || (term > self.term && self.heard_from_leader_recently()) {
            self.net.send(
                &from,
                &Msg::VoteReply {
                    term: self.term,
                    granted: false,
                },
            );
            return;
        }
        if term > self.term {
            self.become_follower(term, None);
        }
        let granted = self.voted_for.as_ref().is_none_or(|v| *v == from)
            && self.log_ok(last_index, last_term);
        if granted {
            if self.voted_for.is_none() {
                tracing::info!(term = self.term, candidate = %from, "voted");
                self.voted_for = Some(from.clone());
                self.persist_hard_state();
            }
            self.reset_election_deadline();
        } else {
            tracing::debug!(term, candidate = %from, voted_for = ?self.voted_for, "refused a vote");
        }
        self.send_durable(
            &from,
            Msg::VoteReply {
                term: self.term,
                granted,
            },
        );
    }

    fn on_append(&mut self, from: String, msg: Msg) {
        let Msg::Append {
            term,
            prev_index,
            prev_term,
            entries,
            commit,
            seq,
        } = msg
        else {
            return debug_assert!(false, "on_append takes appends");
        };
        if term < self.term {
            let reply = Msg::AppendReply {
                term: self.term,
                success: false,
                match_index: 0,
                hint: 0,
                seq,
            };
            self.net.send(&from, &reply);
            return;
        }
        if term > self.term || self.role != Role::Follower {
            self.become_follower(term, Some(from.clone()));
        }
        self.leader = Some(from.clone());
        self.last_leader_contact = Some(Instant::now());
        self.reset_election_deadline();

        let fail = |hint| Msg::AppendReply {
            term,
            success: false,
            match_index: 0,
            hint,
            seq,
        };
        match self.log.term_at(prev_index) {
            None => return self.send_durable(&from, fail(self.log.last_index() + 1)),
            Some(t) if t != prev_term => {
                debug_assert!(prev_index > self.commit, "committed entries never conflict");
                let hint = self.log.first_of_term(prev_index, self.commit + 1);
                return self.send_durable(&from, fail(hint));
            }
            Some(_) => {}
        }
        let last_new = prev_index + entries.len() as u64;
        let known = entries
            .iter()
            .take_while(|e| self.log.term_at(e.index) == Some(e.term))
            .count();
        let fresh: Vec<Entry> = entries.into_iter().skip(known).collect();
        if let Some(first) = fresh.first() {
            if first.index <= self.log.last_index() {
                debug_assert!(
                    first.index > self.commit,
                    "a leader never overwrites committed entries"
                );
                self.truncate_from(first.index);
            }
            for e in fresh {
                self.unpersisted.push(e.clone());
                self.log.push(e);
            }
        }
        if commit > self.commit {
            self.commit = commit.min(last_new);
            self.apply_committed();
        }
        self.send_durable(
            &from,
            Msg::AppendReply {
                term,
                success: true,
                match_index: last_new,
                hint: 0,
                seq,
            },
        );
    }

    fn truncate_from(&mut self, index: u64) {
        tracing::info!(
            index,
            last = self.log.last_index(),
            "truncating conflicting entries"
        );
        self.log.truncate_from(index);
        self.unpersisted.retain(|e| e.index < index);
        let keep = index - 1;
        self.durable_index = self.durable_index.min(keep);
        for mark in self.marks.iter_mut() {
            mark.1 = mark.1.min(keep);
        }
    }

    fn on_append_reply(&mut self, from: String, msg: Msg) {
        let Msg::AppendReply {
            term,
            success,
            match_index,
            hint,
            seq,
        } = msg
        else {
            return debug_assert!(false, "on_append_reply takes append replies");
        };
        if term > self.term {
            self.become_follower(term, None);
            return;
        }
        if self.role != Role::Leader || term < self.term {
            return;
        }
        let Some(p) = self.progress.get_mut(&from) else {
            return;
        };
        p.last_ack = Instant::now();
        p.acked_seq = p.acked_seq.max(seq);
        if success {
            p.matched = p.matched.max(match_index);
            p.next = p.next.max(p.matched + 1);
            self.maybe_commit();
        } else if hint > 0 {
            p.next = (p.matched + 1).max(p.next.min(hint));
        }
        self.serve_reads();
    }

    fn maybe_commit(&mut self) {
        let mut matched: Vec<u64> = self.progress.values().map(|p| p.matched).collect();
        matched.push(self.durable_index.min(self.log.last_index()));
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let n = matched[self.majority() - 1];
        // Only entries of the current term are committed by counting.
        if n > self.commit && self.log.term_at(n) == Some(self.term) {
            self.commit = n;
            self.apply_committed();
        }
    }

    fn apply_committed(&mut self) {
        while self.applied < self.commit {
            let index = self.applied + 1;
            let Some(entry) = self.log.get(index) else {
                break;
            };
            let result = match &entry.cmd {
                Command::Noop => None,
                Command::Op(op) => Some((op.clone(), self.sm.apply(op))),
            };
            self.applied = index;
            if let (Some(call), Some((op, result))) = (self.proposals.remove(&index), result) {
                reply_result(call, &op, result);
            }
        }
        if self.role == Role::Leader {
            self.serve_reads();
        }
    }

    // ----- reads -----

    /// The highest heartbeat round a majority (this leader included) acknowledged.
    fn quorum_seq(&self) -> u64 {
        let mut acked: Vec<u64> = self.progress.values().map(|p| p.acked_seq).collect();
        acked.push(self.read_seq);
        acked.sort_unstable_by(|a, b| b.cmp(a));
        acked[self.majority() - 1]
    }

    fn serve_reads(&mut self) {
        let quorum_seq = self.quorum_seq();
        if self.bugs.has(Bug::LeaseReadWallclock) {
            while self.lease_rounds.front().is_some_and(|r| r.0 <= quorum_seq) {
                let (_, sent) = self.lease_rounds.pop_front().expect("checked non-empty");
                self.lease_until = Some(sent + self.timing.election_timeout_min);
            }
        }
        while self
            .reads
            .front()
            .is_some_and(|r| r.seq <= quorum_seq && r.read_index <= self.applied)
        {
            let read = self.reads.pop_front().expect("checked non-empty");
            self.answer_locally(read.call);
        }
    }

    fn answer_locally(&mut self, call: ClientCall) {
        debug_assert!(
            call.request.op.is_read_only(),
            "only reads are answered from local state"
        );
        let result = self.sm.apply(&call.request.op);
        let op = call.request.op.clone();
        reply_result(call, &op, result);
    }

    // ----- clients -----

    pub fn on_client(&mut self, call: ClientCall) {
        let id = call.request.id;
        let op = &call.request.op;
        if *op == Operation::Status {
            let status = self.status();
            return call.reply(Reply::ok(id, &Operation::Status, &Output::Status(status)));
        }
        if self.role != Role::Leader {
            // The bug `stale-read`: a follower answers from whatever it has applied.
            if self.bugs.has(Bug::StaleRead) && op.is_read_only() {
                return self.answer_locally(call);
            }
            return call.reply(Reply::not_leader(id, self.hint()));
        }
        if op.is_read_only() {
            // The bug `lease-read-wallclock`: trust a lease measured on the wall clock.
            if self
                .lease_until
                .is_some_and(|until| SystemTime::now() < until)
            {
                return self.answer_locally(call);
            }
            if self.reads.len() >= MAX_PENDING_READS {
                return call.reply(Reply::fail(id, FailCode::Unavailable));
            }
            let read_index = self.commit.max(self.term_start);
            self.reads.push_back(PendingRead {
                call,
                seq: self.read_seq + 1,
                read_index,
            });
            self.need_round = true;
            return;
        }
        if self.log.last_index() - self.commit >= MAX_UNCOMMITTED {
            return call.reply(Reply::fail(id, FailCode::Unavailable));
        }
        let index = self.append(Command::Op(call.request.op.clone()));
        self.proposals.insert(index, call);
    }
}

fn reply_result(call: ClientCall, op: &Operation, result: Result<Output, FailCode>) {
    let id = call.request.id;
    let reply = match result {
        Ok(out) => Reply::ok(id, op, &out),
        Err(code) => Reply::fail(id, code),
    };
    call.reply(reply);
}
