//! `faultline suite`: a matrix of tests for nightly CI. Runs each test (or a
//! deterministic share of them with `--shard M/N`), continues past failures,
//! prints a table, writes junit.xml, appends a Markdown table to
//! `$GITHUB_STEP_SUMMARY` when set, writes the per-case summary
//! (`summary.md`, `summary.json`: see `summary`), and exits with the worst outcome
//! (harness error 3 > unknown 2 > invalid 1 > valid 0).
//!
//! A test with `expect: invalid` (a named bug that must be caught) passes
//! when it comes out invalid, and fails when it does not.

use super::args::HarnessArgs;
use super::junit;
use super::output::failure_message;
use super::summary::{self, Summary};
use crate::outcome::Outcome;
use crate::suite::Suite;
use crate::suite::test::Shard;
use anyhow::Context;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct SuiteArgs {
    /// The suite file (suites/nightly.yaml, suites/smoke.yaml, ...).
    #[arg(value_name = "SUITE_YAML")]
    pub suite: PathBuf,
    /// Run only share M of N (1-based), e.g. 2/4: tests M, M+N, M+2N, ...
    #[arg(long, value_name = "M/N")]
    pub shard: Option<Shard>,
    /// Where to write the JUnit XML (default: <results-dir>/junit.xml).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    #[command(flatten)]
    pub harness: HarnessArgs,
}

/// One finished test of the suite.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    /// What the run gave.
    pub outcome: Outcome,
    /// The outcome judged against `expect`: valid when as expected.
    pub judged: Outcome,
    pub message: String,
    pub seed: u64,
    pub results_dir: String,
    pub duration: Duration,
    /// What the test expects (`expect:`), if it says.
    pub expect: Option<crate::checker::Verdict>,
    /// From the start of the run to its first anomalous operation.
    pub first_anomaly_ms: Option<f64>,
}

/// Runs the suite; returns the worst of its tests' outcomes, each judged
/// against what the test expects.
pub fn suite_command(args: &SuiteArgs) -> anyhow::Result<Outcome> {
    let (suite, text) = Suite::load(&args.suite)?;
    let name = suite.name.clone().unwrap_or_else(|| {
        args.suite
            .file_stem()
            .map_or("suite".into(), |s| s.to_string_lossy().into_owned())
    });
    // Printed, and written into junit.xml and the step summary: no escapes.
    let name = crate::history::text::excerpt(&name);
    let options = args.harness.options();
    // Resolve the whole matrix before running any of it: a misspelt name
    // fails the suite at once (exit 3, with file:line:column), on every shard
    // alike, rather than hours later as error rows.
    let tests = suite.resolve(&args.suite, &text)?;
    let total = tests.len();
    let chosen: Vec<_> = tests
        .into_iter()
        .enumerate()
        .filter(|(i, _)| args.shard.is_none_or(|s| s.contains(*i)))
        .map(|(_, t)| t)
        .collect();
    eprintln!(
        "suite {name}: {} of {} tests{}",
        chosen.len(),
        total,
        args.shard.map_or(String::new(), |s| format!(
            " (shard {}/{})",
            s.index, s.count
        ))
    );

    let mut rows = Vec::new();
    for test in chosen {
        let started = Instant::now();
        let row = match super::run::run(&test, &options) {
            Err(e) => Row {
                name: test.name.clone(),
                outcome: Outcome::HarnessError,
                judged: Outcome::HarnessError,
                message: format!("{e:#}"),
                seed: test.seed,
                results_dir: String::new(),
                duration: started.elapsed(),
                expect: test.expect,
                first_anomaly_ms: None,
            },
            Ok(report) => {
                print!("{}", super::output::summary(&test, &report));
                let outcome = report.outcome();
                let (judged, message) = match test.expect {
                    Some(expected) if outcome != Outcome::HarnessError => {
                        if Outcome::from(expected) == outcome {
                            (
                                Outcome::Valid,
                                format!("{outcome} as expected: {}", failure_message(&report)),
                            )
                        } else {
                            (
                                // Not what was expected: a failure, at least.
                                outcome.combine(Outcome::Invalid),
                                format!(
                                    "expected {}, got {outcome}: {}",
                                    expected.as_str(),
                                    failure_message(&report)
                                ),
                            )
                        }
                    }
                    _ => (outcome, failure_message(&report)),
                };
                Row {
                    name: test.name.clone(),
                    outcome,
                    judged,
                    message,
                    seed: test.seed,
                    results_dir: report.dir.path.display().to_string(),
                    duration: report.duration,
                    expect: test.expect,
                    first_anomaly_ms: report.checks.first_anomaly.as_ref().map(|a| a.time_ms),
                }
            }
        };
        rows.push(row);
    }

    print!("{}", table(&name, &rows));
    let runs: Vec<summary::Run> = rows
        .iter()
        .map(|r| summary::Run {
            test: &r.name,
            seed: r.seed,
            expect: r.expect,
            outcome: r.outcome,
            first_anomaly_ms: r.first_anomaly_ms,
        })
        .collect();
    let summary = Summary::of(&name, &runs);
    if summary.has_repeats() {
        print!("{}", summary.table());
    }
    let junit_path = args
        .junit
        .clone()
        .unwrap_or_else(|| args.harness.results_dir.join("junit.xml"));
    let cases: Vec<junit::Case> = rows
        .iter()
        .map(|r| junit::Case {
            name: r.name.clone(),
            outcome: r.judged,
            message: r.message.clone(),
            seed: r.seed,
            results_dir: r.results_dir.clone(),
            duration: r.duration,
        })
        .collect();
    if let Some(dir) = junit_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&junit_path, junit::xml(&name, &cases))
        .with_context(|| format!("cannot write {}", junit_path.display()))?;
    println!("junit: {}", junit_path.display());
    // Beside junit.xml: the per-case summary, for people and for machines.
    let dir = junit_path.parent().unwrap_or(std::path::Path::new(""));
    for (file, text) in [
        ("summary.md", summary.markdown()),
        (
            "summary.json",
            serde_json::to_string_pretty(&summary)? + "\n",
        ),
    ] {
        let path = dir.join(file);
        crate::atomic_file::write(&path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("summary: {}", dir.join("summary.md").display());
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        let mut text = markdown(&name, &rows);
        if summary.has_repeats() {
            text.push_str(&summary.markdown());
        }
        append(&PathBuf::from(path), &text)?;
    }
    Ok(Outcome::worst(rows.iter().map(|r| r.judged)))
}

fn append(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::options()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn status(r: &Row) -> &'static str {
    match r.judged {
        Outcome::Valid => "pass",
        Outcome::HarnessError => "ERROR",
        Outcome::Invalid | Outcome::Unknown => "FAIL",
    }
}

/// The plain-text table printed at the end.
pub fn table(suite: &str, rows: &[Row]) -> String {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let mut s = format!(
        "\nsuite {suite}\n{:<width$}  {:<6} {:<13} {:>8}  {}\n",
        "test", "status", "outcome", "time", "details"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:<width$}  {:<6} {:<13} {:>7.1}s  {}",
            r.name,
            status(r),
            r.outcome,
            r.duration.as_secs_f64(),
            r.message
        );
    }
    let failed = rows.iter().filter(|r| r.judged != Outcome::Valid).count();
    let _ = writeln!(
        s,
        "{} tests, {} passed, {failed} failed",
        rows.len(),
        rows.len() - failed
    );
    s
}

/// The Markdown table for `$GITHUB_STEP_SUMMARY`.
pub fn markdown(suite: &str, rows: &[Row]) -> String {
    let cell = |t: &str| t.replace('|', "\\|").replace('\n', " ");
    let mut s = format!(
        "### faultline suite `{}`\n\n| test | status | outcome | time | seed | details |\n|---|---|---|---|---|---|\n",
        cell(suite)
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.1}s | {} | {} |",
            cell(&r.name),
            status(r),
            r.outcome,
            r.duration.as_secs_f64(),
            r.seed,
            cell(&r.message)
        );
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, outcome: Outcome, judged: Outcome) -> Row {
        Row {
            name: name.into(),
            outcome,
            judged,
            message: "a|b".into(),
            seed: 7,
            results_dir: "r".into(),
            duration: Duration::from_secs(2),
            expect: None,
            first_anomaly_ms: None,
        }
    }

    #[test]
    fn tables_mark_passes_failures_and_errors() {
        let rows = [
            row("raft-ok", Outcome::Valid, Outcome::Valid),
            row("raft-bug", Outcome::Invalid, Outcome::Valid),
            row("paxos-bad", Outcome::Invalid, Outcome::Invalid),
            row("broken", Outcome::HarnessError, Outcome::HarnessError),
        ];
        let t = table("nightly", &rows);
        assert!(t.contains("raft-bug   pass   invalid       "), "{t}");
        assert!(t.contains("paxos-bad  FAIL   invalid       "), "{t}");
        assert!(t.contains("broken     ERROR  harness-error "), "{t}");
        assert!(t.contains("4 tests, 2 passed, 2 failed"), "{t}");
        let m = markdown("nightly", &rows);
        assert!(
            m.contains("| paxos-bad | FAIL | invalid | 2.0s | 7 | a\\|b |"),
            "{m}"
        );
    }
}
