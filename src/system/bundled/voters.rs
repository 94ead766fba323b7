//! Who leads and who just voted, asked of the bundled nodes over their
//! client protocol: what the `primaries` and `voters` targets of the
//! nemesis need.

use crate::client::Client;
use crate::nodes::wire::{Operation, Outcome, Status};
use crate::system::Endpoint;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a node may take to answer `status` when asked for primaries.
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);

/// How often each node is asked for its status while watching for voters.
/// Asks are pipelined, not one after the other: under a packet delay an
/// answer is a delay old, and a vote is only open for about a round trip.
const VOTERS_POLL: Duration = Duration::from_millis(5);

/// Status asks in flight to one node at most while watching for voters.
const VOTERS_IN_FLIGHT_MAX: usize = 64;

/// How long a node must have been a voter before it counts as one. A node
/// answers a vote request only once its vote is on disk: killed at once, it
/// dies before its answer leaves, and the vote never counted.
const VOTE_SETTLE: Duration = Duration::from_millis(10);

/// Whether `status` is a voter's: a follower that voted for another node in
/// its term and has not heard from a leader since.
fn is_voter(name: &str, status: &Status) -> bool {
    status.role == "follower"
        && status.leader.is_none()
        && status.voted_for.as_ref().is_some_and(|v| v != name)
}

/// What a watch for voters has heard: each node's latest status, and since
/// when each voter has voted as it does now (term and candidate). A vote the
/// node already had in its first answer has no time: it may be old (a node
/// cut off from the leader stays a voter for as long as the cut lasts).
#[derive(Default)]
struct Votes {
    latest: BTreeMap<String, Status>,
    since: BTreeMap<String, (Vote, Option<Instant>)>,
}

/// A term and the candidate voted for in it.
type Vote = (u64, Option<String>);

impl Votes {
    /// Takes in `name`'s status, heard at `now`; returns the nodes seen to
    /// vote during the watch that have kept that vote for [`VOTE_SETTLE`],
    /// in an election another candidate contests.
    fn observe(&mut self, name: String, status: Status, now: Instant) -> Vec<String> {
        if is_voter(&name, &status) {
            let vote = (status.term, status.voted_for.clone());
            if self.since.get(&name).is_none_or(|(v, _)| *v != vote) {
                let at = self.latest.contains_key(&name).then_some(now);
                self.since.insert(name.clone(), (vote, at));
            }
        } else {
            self.since.remove(&name);
        }
        self.latest.insert(name, status);
        self.since
            .iter()
            .filter(|(_, (_, at))| at.is_some_and(|at| now.duration_since(at) >= VOTE_SETTLE))
            .filter(|(n, (vote, _))| self.contested(n, vote))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Whether a node other than `voter` was last seen in the same term
    /// with a vote for another candidate (a candidate votes for itself).
    /// Only then can a voter that forgets its vote in a restart be asked
    /// again in that term, by the other candidate: killing the voters of an
    /// election nobody contests restarts them for nothing, and leaves their
    /// election timers behind everyone else's, so that the same nodes start
    /// every election.
    fn contested(&self, voter: &str, (term, candidate): &Vote) -> bool {
        self.latest.iter().any(|(m, s)| {
            m != voter && s.term == *term && s.voted_for.is_some() && s.voted_for != *candidate
        })
    }
}

fn addrs(endpoints: Vec<Endpoint>) -> Vec<(String, String)> {
    endpoints.into_iter().map(|e| (e.name, e.addr)).collect()
}

/// The nodes that say they lead, asked over the client protocol.
pub fn primaries(endpoints: Vec<Endpoint>) -> Result<Vec<String>, String> {
    let addrs = addrs(endpoints);
    block_on(async move {
        let mut leaders = Vec::new();
        for (name, client) in connect_all(addrs).await {
            if status_of(&client).await.is_some_and(|s| s.role == "leader") {
                leaders.push(name);
            }
        }
        leaders
    })
}

/// The nodes seen to vote in an election under way within `within`: each
/// node's status is watched, several asks in flight (see [`Votes`]).
pub fn voters(endpoints: Vec<Endpoint>, within: Duration) -> Result<Vec<String>, String> {
    let addrs = addrs(endpoints);
    block_on(async move {
        let deadline = Instant::now() + within;
        let (tx, mut heard) = tokio::sync::mpsc::channel(1024);
        let mut watchers = tokio::task::JoinSet::new();
        for (name, addr) in addrs {
            watchers.spawn(watch_status(name, addr, deadline, tx.clone()));
        }
        drop(tx);
        // Ends when every watcher has reached the deadline.
        let mut votes = Votes::default();
        while let Some((name, status)) = heard.recv().await {
            let voters = votes.observe(name, status, Instant::now());
            if !voters.is_empty() {
                tracing::debug!(?voters, statuses = ?votes.latest, "voters seen");
                return voters;
            }
        }
        Vec::new()
    })
}

/// Connects to every node that answers (a paused or cut-off node does not).
async fn connect_all(addrs: Vec<(String, String)>) -> Vec<(String, Arc<Client>)> {
    let mut connecting = tokio::task::JoinSet::new();
    for (name, addr) in addrs {
        connecting.spawn(async move {
            let client = Client::connect(&addr, STATUS_TIMEOUT).await.ok()?;
            Some((name, Arc::new(client)))
        });
    }
    let mut clients = Vec::new();
    while let Some(joined) = connecting.join_next().await {
        if let Ok(Some(c)) = joined {
            clients.push(c);
        }
    }
    clients.sort_by(|a, b| a.0.cmp(&b.0));
    clients
}

async fn status_of(client: &Client) -> Option<Status> {
    match client.call(Operation::Status, STATUS_TIMEOUT).await {
        Ok(Outcome::Ok { value }) => serde_json::from_value(value).ok(),
        _ => None,
    }
}

/// Runs `ask` on the caller's runtime if there is one (we are called off
/// its async threads, see [`Faults`]), else on a small one of our own.
fn block_on<T>(ask: impl std::future::Future<Output = T>) -> Result<T, String> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => Ok(handle.block_on(ask)),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(ask))
            .map_err(|e| format!("cannot start a runtime to ask the nodes: {e}")),
    }
}

/// Asks the node at `addr` for its status every [`VOTERS_POLL`] until
/// `deadline`, with several asks in flight, and sends each answer to `heard`.
/// Connects again when the node restarts (a killed node refuses at once).
async fn watch_status(
    name: String,
    addr: String,
    deadline: Instant,
    heard: tokio::sync::mpsc::Sender<(String, Status)>,
) {
    let mut client: Option<Arc<Client>> = None;
    let mut asks = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(VOTERS_POLL);
    while Instant::now() < deadline {
        tick.tick().await;
        while asks.try_join_next().is_some() {}
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            client = Client::connect(&addr, VOTERS_POLL * 20)
                .await
                .ok()
                .map(Arc::new);
        }
        if let Some(c) = client.clone()
            && asks.len() < VOTERS_IN_FLIGHT_MAX
        {
            let (name, heard) = (name.clone(), heard.clone());
            asks.spawn(async move {
                if let Some(status) = status_of(&c).await {
                    let _ = heard.send((name, status)).await;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(role: &str, leader: Option<&str>, voted_for: Option<&str>) -> Status {
        Status {
            id: String::new(),
            role: role.into(),
            term: 4,
            leader: leader.map(Into::into),
            voted_for: voted_for.map(Into::into),
            applied: 0,
        }
    }

    #[test]
    fn voters_voted_for_another_node_and_know_no_leader_yet() {
        assert!(is_voter("n2", &status("follower", None, Some("n1"))));
        assert!(!is_voter("n3", &status("follower", None, None)), "no vote");
        assert!(
            !is_voter("n2", &status("follower", Some("n1"), Some("n1"))),
            "n2 heard from the leader: the vote is over"
        );
        assert!(
            !is_voter("n1", &status("candidate", None, Some("n1"))),
            "a vote for oneself is no voter's"
        );
    }

    #[test]
    fn a_voter_counts_once_seen_to_vote_and_keep_its_vote_for_a_while() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut votes = Votes::default();
        let voted = |term, v: &str| Status {
            term,
            ..status("follower", None, Some(v))
        };
        let led = status("follower", Some("n3"), Some("n3"));
        // A vote already there in the first answer may be old: never counted.
        assert!(votes.observe("n4".into(), voted(3, "n5"), ms(0)).is_empty());
        assert!(
            votes
                .observe("n4".into(), voted(3, "n5"), ms(50))
                .is_empty()
        );
        // n2 is seen to vote, then to keep its vote 10 ms: in an election
        // nobody contests, it is no target.
        assert!(votes.observe("n2".into(), led.clone(), ms(0)).is_empty());
        assert!(votes.observe("n2".into(), voted(4, "n1"), ms(1)).is_empty());
        assert!(votes.observe("n2".into(), voted(4, "n1"), ms(6)).is_empty());
        assert!(
            votes
                .observe("n2".into(), voted(4, "n1"), ms(11))
                .is_empty()
        );
        // n5 stands in term 4 too: now n2 is one.
        let candidate = |term, c: &str| Status {
            term,
            ..status("candidate", None, Some(c))
        };
        assert!(
            votes
                .observe("n5".into(), candidate(3, "n5"), ms(12))
                .is_empty(),
            "a candidate of another term contests nothing"
        );
        assert_eq!(
            votes.observe("n5".into(), candidate(4, "n5"), ms(13)),
            ["n2"]
        );
        // A vote in a new term starts the wait again.
        assert!(
            votes
                .observe("n2".into(), voted(5, "n3"), ms(14))
                .is_empty()
        );
        assert!(
            votes
                .observe("n2".into(), voted(5, "n3"), ms(25))
                .is_empty()
        );
        assert_eq!(
            votes.observe("n5".into(), candidate(5, "n5"), ms(26)),
            ["n2"]
        );
        // So does hearing from a leader in between.
        assert!(votes.observe("n2".into(), led, ms(27)).is_empty());
        assert!(
            votes
                .observe("n2".into(), voted(5, "n3"), ms(30))
                .is_empty()
        );
        assert!(
            votes
                .observe("n5".into(), candidate(5, "n5"), ms(31))
                .is_empty()
        );
    }
}
