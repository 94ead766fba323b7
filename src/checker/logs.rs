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
    /// A line that holds any of these explains a verdict without making
    /// one (3PC's decisions taken blind by timeout): the report lists them.
    pub notable: Vec<String>,
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
    /// Lines with a notable pattern in all (`notable` keeps the first
    /// [`FINDINGS_MAX`]).
    pub notable_lines: usize,
    pub notable: Vec<LogLine>,
}

/// Every line of `logs` that holds one of the fatal patterns, and every
/// one that holds a notable pattern.
pub fn check(logs: &[NodeLog], patterns: &LogPatterns) -> LogsResult {
    let mut findings = Vec::new();
    let mut fatal_lines = 0usize;
    let mut notable = Vec::new();
    let mut notable_lines = 0usize;
    let holds = |line: &str, any: &[String]| any.iter().any(|p| line.contains(p.as_str()));
    for log in logs {
        for (n, line) in log.text.lines().enumerate() {
            if holds(line, &patterns.fatal) {
                fatal_lines += 1;
                if findings.len() < FINDINGS_MAX {
                    findings.push(LogLine::new(&log.node, n, line));
                }
            } else if holds(line, &patterns.notable) {
                notable_lines += 1;
                if notable.len() < FINDINGS_MAX {
                    notable.push(LogLine::new(&log.node, n, line));
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
        notable_lines,
        notable,
    }
}

/// The log checker on `logs`, in words and as evidence: the fatal lines
/// by node, then the notable ones.
pub fn judge(logs: &[NodeLog], patterns: &LogPatterns) -> Judgement {
    let r = check(logs, patterns);
    let mut summary = match r.findings.first() {
        None => format!("no panics or fatal errors in {} node logs", r.scanned),
        Some(f) => format!(
            "{} fatal lines; first: {} line {}: {}",
            r.fatal_lines, f.node, f.line, f.text
        ),
    };
    if let Some(n) = r.notable.first() {
        summary.push_str(&format!(
            "; {} notable lines, first: {} line {}: {}",
            r.notable_lines, n.node, n.line, n.text
        ));
    }
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
    let evidence = match r.notable_lines {
        0 => evidence,
        n => evidence.fact("notable lines", n),
    }
    .table(
        lines_table(
            "Notable lines (they explain, they do not judge)",
            &["where", "line"],
            &r.notable,
        )
        .of(r.notable_lines, "notable lines"),
    );
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
        let patterns = |fatal: &[String]| LogPatterns {
            fatal: fatal.to_vec(),
            ..LogPatterns::default()
        };
        let r = check(&logs, &patterns(&fatal));
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!((r.scanned, r.fatal_lines), (2, 1));
        assert_eq!(r.findings[0].node, "n2");
        assert_eq!(r.findings[0].line, 2);
        assert!(r.findings[0].text.contains("panicked at"));
        let fine = check(&[log("n2", "INFO fine\n")], &patterns(&fatal));
        assert_eq!(fine.verdict, Verdict::Valid);
        // Patterns are the system's: with none, nothing is fatal.
        assert_eq!(check(&logs, &patterns(&[])).verdict, Verdict::Valid);
    }

    #[test]
    fn findings_are_bounded_and_the_count_is_complete() {
        let fatal = LogPatterns {
            fatal: vec!["FATAL".to_string()],
            ..LogPatterns::default()
        };
        let many = "FATAL x\n".repeat(FINDINGS_MAX + 7);
        let r = check(&[log("n1", &many)], &fatal);
        assert_eq!(r.fatal_lines, FINDINGS_MAX + 7);
        assert_eq!(r.findings.len(), FINDINGS_MAX);
        let long = format!("FATAL {}", "y".repeat(1000));
        let r = check(&[log("n1", &long)], &fatal);
        assert_eq!(r.findings[0].text.chars().count(), LINE_CHARS);
    }

    /// Notable lines are listed beside the verdict and never change it.
    #[test]
    fn notable_lines_are_listed_but_judge_nothing() {
        let patterns = LogPatterns {
            fatal: vec!["FATAL".to_string()],
            notable: vec!["split-risk".to_string()],
            ..LogPatterns::default()
        };
        let logs = [log(
            "n1",
            "INFO a\nWARN 3pc split-risk: no answer\nINFO b\n",
        )];
        let j = judge(&logs, &patterns);
        assert_eq!(j.verdict, Verdict::Valid);
        assert!(
            j.summary.contains("1 notable lines, first: n1 line 2"),
            "{}",
            j.summary
        );
        // The fatal table is empty, so left out: the notable one remains.
        assert_eq!(j.evidence.tables.len(), 1);
        assert!(j.evidence.tables[0].title.starts_with("Notable"));
        assert_eq!(j.evidence.tables[0].rows.len(), 1);
    }
}
