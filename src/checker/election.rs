//! The election checker: Raft's election safety (§5.2), at most one leader
//! per term. Two nodes that log winning the same term are two leaders at
//! once, whatever the history shows.
//!
//! How a win is logged is the system's to say ([`LeaderPattern`]); a system
//! that logs no elections is not checked.

use super::evidence::Evidence;
use super::logs::{FINDINGS_MAX, LeaderPattern, LogLine, NodeLog, lines_table};
use super::{Judgement, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;

/// What the election checker found (results.json's `detail` of
/// `election`, but for the verdict, which is the checker's own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElectionResult {
    /// Invalid when a term has two leaders.
    #[serde(skip)]
    pub verdict: Verdict,
    /// Terms in which some node logged winning an election.
    pub terms: usize,
    /// Terms won by more than one node (the first [`FINDINGS_MAX`]), each
    /// with the first line of each of its leaders.
    pub split: Vec<SplitTerm>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SplitTerm {
    pub term: u64,
    pub leaders: Vec<LogLine>,
}

/// The `<field>=N` word of a log line.
fn term_of(line: &str, field: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(field)?.strip_prefix('='))
        .and_then(|t| t.parse().ok())
}

/// Checks the wins `leader` finds in `logs`. `None` when no node logged one.
pub fn check(logs: &[NodeLog], leader: &LeaderPattern) -> Option<ElectionResult> {
    // term -> the first claim of each node that won it.
    let mut claims: BTreeMap<u64, Vec<LogLine>> = BTreeMap::new();
    for log in logs {
        for (n, line) in log.text.lines().enumerate() {
            if !line.contains(leader.text.as_str()) {
                continue;
            }
            let Some(term) = term_of(line, &leader.term_field) else {
                continue;
            };
            let won = claims.entry(term).or_default();
            if !won.iter().any(|c| c.node == log.node) {
                won.push(LogLine::new(&log.node, n, line));
            }
        }
    }
    if claims.is_empty() {
        return None;
    }
    let terms = claims.len();
    let split: Vec<SplitTerm> = claims
        .into_iter()
        .filter(|(_, won)| won.len() > 1)
        .take(FINDINGS_MAX)
        .map(|(term, leaders)| SplitTerm { term, leaders })
        .collect();
    Some(ElectionResult {
        verdict: if split.is_empty() {
            Verdict::Valid
        } else {
            Verdict::Invalid
        },
        terms,
        split,
    })
}

/// The election checker on `logs`, in words and as evidence: each term
/// with two leaders and their log lines. `None` when no node logged a win.
pub fn judge(logs: &[NodeLog], leader: &LeaderPattern) -> Option<Judgement> {
    let r = check(logs, leader)?;
    let (summary, anomalies) = match r.split.first() {
        None => (
            format!("one leader in each of {} terms with an election", r.terms),
            vec![],
        ),
        Some(first) => {
            let who: Vec<String> = first
                .leaders
                .iter()
                .map(|c| format!("{} (line {})", c.node, c.line))
                .collect();
            (
                format!(
                    "{} had two leaders; first: term {} was won by {}",
                    match r.split.len() {
                        1 => "1 term".to_string(),
                        n => format!("{n} terms"),
                    },
                    first.term,
                    who.join(" and ")
                ),
                vec!["two-leaders".to_string()],
            )
        }
    };
    let mut evidence = Evidence::new()
        .fact("terms with an election", r.terms)
        .fact("terms with more than one leader", r.split.len())
        .count("two-leaders", r.split.len());
    for t in &r.split {
        let who: Vec<&str> = t.leaders.iter().map(|l| l.node.as_str()).collect();
        let title = format!(
            "Term {}: {} leaders ({})",
            t.term,
            t.leaders.len(),
            who.join(", ")
        );
        evidence = evidence.table(lines_table(&title, &[], &t.leaders));
    }
    Some(Judgement {
        verdict: r.verdict,
        summary,
        anomalies,
        detail: super::detail(&r),
        evidence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs(entries: &[(&str, &str)]) -> Vec<NodeLog> {
        entries
            .iter()
            .map(|(n, t)| NodeLog {
                node: n.to_string(),
                text: t.to_string(),
            })
            .collect()
    }

    #[test]
    fn two_nodes_winning_one_term_break_election_safety() {
        let leader = LeaderPattern {
            text: "became leader".into(),
            term_field: "term".into(),
        };
        let won = |term| {
            format!(
                "2026-11-24T17:00:00Z  INFO faultline::nodes::raft::node: became leader term={term}\n"
            )
        };
        let ok = logs(&[
            ("n1", &(won(2) + &won(4))),
            ("n2", &won(3)),
            ("n3", "INFO starting election term=3\n"),
        ]);
        let r = check(&ok, &leader).expect("elections were logged");
        assert_eq!((r.verdict, r.terms), (Verdict::Valid, 3));

        let split = logs(&[
            ("n1", &(won(2) + &won(4))),
            ("n2", &won(3)),
            ("n3", &format!("INFO recovered\n{}", won(4))),
        ]);
        let r = check(&split, &leader).expect("elections were logged");
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.split.len(), 1);
        assert_eq!(r.split[0].term, 4);
        let who: Vec<(&str, usize)> = r.split[0]
            .leaders
            .iter()
            .map(|l| (l.node.as_str(), l.line))
            .collect();
        assert_eq!(who, [("n1", 2), ("n3", 2)]);
        // A node that logs its own win twice is still one leader.
        let twice = logs(&[("n1", &(won(5) + &won(5)))]);
        assert_eq!(check(&twice, &leader).unwrap().verdict, Verdict::Valid);
        assert!(check(&logs(&[("n1", "INFO leading ballot=3.n1\n")]), &leader).is_none());
    }

    #[test]
    fn the_term_is_read_from_the_field_the_system_names() {
        let leader = LeaderPattern {
            text: "is leader".into(),
            term_field: "epoch".into(),
        };
        let r = check(
            &logs(&[
                ("a", "is leader epoch=7 term=1\n"),
                ("b", "is leader epoch=7 term=2\n"),
                ("c", "is leader epochs=7\n"),
            ]),
            &leader,
        )
        .unwrap();
        assert_eq!((r.terms, r.split.len()), (1, 1));
        assert_eq!(r.split[0].term, 7);
    }
}
