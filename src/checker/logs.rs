//! The log checker: a node whose log says it failed (a panic, a fatal error)
//! makes the run invalid, whatever the history shows (Jepsen's
//! log-file-pattern idea).
//!
//! What to look for is not this module's to know: the system under test
//! says what its nodes print ([`LogPatterns`]), and this applies it. Reading
//! the logs off the hosts is the caller's.

use super::evidence::{Cell, Evidence, Table};
use super::{Judgement, Verdict};
use serde::Serialize;

/// Findings kept per check; the counts are complete.
pub const FINDINGS_MAX: usize = 50;
/// Characters of a line kept in a finding.
const LINE_CHARS: usize = 300;

/// What a system's node logs say when something went wrong, as the system
/// that prints them describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogPatterns {
    /// A line that holds any of these means its node failed.
    pub fatal: Vec<String>,
    /// How a node logs winning an election, when it does (Raft does; a
    /// system without elections, or that does not log them, has none).
    pub leader: Option<LeaderPattern>,
}

/// A line that says its node won the election of a term: it holds `text`
/// and a word `<term_field>=N`, as in `became leader term=3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderPattern {
    pub text: String,
    pub term_field: String,
}

/// One node's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLog {
    pub node: String,
    pub text: String,
}

/// A line of a node's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub node: String,
    /// 1-based.
    pub line: usize,
    /// The line, cut to [`LINE_CHARS`] characters.
    pub text: String,
}

impl LogLine {
    /// Line `index` (0-based) of `node`'s log.
    pub fn new(node: &str, index: usize, text: &str) -> LogLine {
        LogLine {
            node: node.to_string(),
            line: index + 1,
            text: text.chars().take(LINE_CHARS).collect(),
        }
    }
}

/// What the log checker found (results.json's `detail` of `logs`, but
/// for the verdict, which is the checker's own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogsResult {
    /// Invalid when any line is fatal.
    #[serde(skip)]
    pub verdict: Verdict,
    /// Logs read.
    pub scanned: usize,
    /// Fatal lines in all (`findings` keeps the first [`FINDINGS_MAX`]).
    pub fatal_lines: usize,
    pub findings: Vec<LogLine>,
}

/// Every line of `logs` that holds one of `fatal`.
pub fn check(logs: &[NodeLog], fatal: &[String]) -> LogsResult {
    let mut findings = Vec::new();
    let mut fatal_lines = 0usize;
    for log in logs {
        for (n, line) in log.text.lines().enumerate() {
            if fatal.iter().any(|p| line.contains(p.as_str())) {
                fatal_lines += 1;
                if findings.len() < FINDINGS_MAX {
                    findings.push(LogLine::new(&log.node, n, line));
                }
            }
        }
    }
    LogsResult {
        verdict: if fatal_lines == 0 {
            Verdict::Valid
        } else {
            Verdict::Invalid
        },
        scanned: logs.len(),
        fatal_lines,
        findings,
    }
}

/// The log checker on `logs`, in words and as evidence: the fatal lines
/// by node.
pub fn judge(logs: &[NodeLog], fatal: &[String]) -> Judgement {
    let r = check(logs, fatal);
    let summary = match r.findings.first() {
        None => format!("no panics or fatal errors in {} node logs", r.scanned),
        Some(f) => format!(
            "{} fatal lines; first: {} line {}: {}",
            r.fatal_lines, f.node, f.line, f.text
        ),
    };
    let anomalies = if r.fatal_lines > 0 {
        vec!["node-panic".to_string()]
    } else {
        vec![]
    };
    let evidence = Evidence::new()
        .fact("node logs scanned", r.scanned)
        .fact("fatal lines", r.fatal_lines)
        .count("node-panic", r.fatal_lines)
        .table(lines_table("", &["where", "line"], &r.findings).of(r.fatal_lines, "fatal lines"));
    Judgement {
        verdict: r.verdict,
        summary,
        anomalies,
        detail: super::detail(&r),
        evidence,
    }
}

/// A table of log lines: where (a link to the log, at the line) and the text.
pub(super) fn lines_table(title: &str, columns: &[&str], lines: &[LogLine]) -> Table {
    Table::new(title, columns).rows(lines, |l| {
        vec![Cell::log_line(&l.node, l.line), Cell::code(&l.text)]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(node: &str, text: &str) -> NodeLog {
        NodeLog {
            node: node.into(),
            text: text.into(),
        }
    }

    #[test]
    fn a_line_with_a_fatal_pattern_makes_the_logs_invalid() {
        let fatal = vec!["panicked at".to_string(), "FATAL".to_string()];
        let logs = [
            log("n1", "INFO started\nINFO leader\n"),
            log(
                "n2",
                "INFO started\nthread 'main' panicked at src/x.rs:3:5:\nboom\n",
            ),
        ];
        let r = check(&logs, &fatal);
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!((r.scanned, r.fatal_lines), (2, 1));
        assert_eq!(r.findings[0].node, "n2");
        assert_eq!(r.findings[0].line, 2);
        assert!(r.findings[0].text.contains("panicked at"));
        let fine = check(&[log("n2", "INFO fine\n")], &fatal);
        assert_eq!(fine.verdict, Verdict::Valid);
        // Patterns are the system's: with none, nothing is fatal.
        assert_eq!(check(&logs, &[]).verdict, Verdict::Valid);
    }

    #[test]
    fn findings_are_bounded_and_the_count_is_complete() {
        let many = "FATAL x\n".repeat(FINDINGS_MAX + 7);
        let r = check(&[log("n1", &many)], &["FATAL".to_string()]);
        assert_eq!(r.fatal_lines, FINDINGS_MAX + 7);
        assert_eq!(r.findings.len(), FINDINGS_MAX);
        let long = format!("FATAL {}", "y".repeat(1000));
        let r = check(&[log("n1", &long)], &["FATAL".to_string()]);
        assert_eq!(r.findings[0].text.chars().count(), LINE_CHARS);
    }
}
