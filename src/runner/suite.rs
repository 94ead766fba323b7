//! `faultline suite`: a matrix of tests for nightly CI. Runs each test (or a
//! deterministic share of them with `--shard M/N`), continues past failures,
//! prints a table, writes junit.xml, appends a Markdown table to
//! `$GITHUB_STEP_SUMMARY` when set, writes the per-case summary
//! (`summary.md`, `summary.json`: see `summary`), and exits with the worst outcome
//! (harness error 3 > unknown 2 > invalid 1 > valid 0).
//!
//! With `--jobs K`, K tests run at once, each on its own cluster; the
//! table, junit.xml and the summary are in suite order whatever order the
//! tests finish in. Ctrl-C (or SIGTERM) starts no more tests, and every
//! running test heals and removes its cluster.
//!
//! A test with `expect: invalid` (a named bug that must be caught) passes
//! when it comes out invalid, and fails when it does not.

use super::args::HarnessArgs;
use super::junit;
use super::output::failure_message;
use super::progress::Progress;
use super::run::RunOptions;
use super::suite_runs::{self, RunRecord, SuiteRuns};
use super::summary::{self, Summary};
use crate::outcome::Outcome;
use crate::suite::test::Shard;
use crate::suite::{Suite, Test};
use anyhow::Context;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The most tests `--jobs` runs at once: each is a cluster of a few hosts.
const JOBS_MAX: usize = 64;

#[derive(clap::Args, Debug, Clone)]
pub struct SuiteArgs {
    /// The suite file (suites/nightly.yaml, suites/smoke.yaml, ...).
    #[arg(value_name = "SUITE_YAML")]
    pub suite: PathBuf,
    /// Run only share M of N (1-based), e.g. 2/4: tests M, M+N, M+2N, ...
    #[arg(long, value_name = "M/N")]
    pub shard: Option<Shard>,
    /// How many tests run at once, each on its own cluster (1 to 64).
    #[arg(long, value_name = "K", default_value = "1", value_parser = jobs)]
    pub jobs: usize,
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
    let (positions, chosen): (Vec<usize>, Vec<Test>) = tests
        .into_iter()
        .enumerate()
        .filter(|(i, _)| args.shard.is_none_or(|s| s.contains(*i)))
        .unzip();
    eprintln!(
        "suite {name}: {} of {} tests{}",
        chosen.len(),
        total,
        args.shard.map_or(String::new(), |s| format!(
            " (shard {}/{})",
            s.index, s.count
        ))
    );

    let ran = run_all(&chosen, &options, args.jobs);
    let interrupted = crate::nemesis::heal::interrupted_by().map(|signal| {
        let why = format!(
            "interrupted by {signal}: {} of {} tests ran",
            ran.len(),
            chosen.len()
        );
        eprintln!("{why}");
        why
    });
    let root = &args.harness.results_dir;
    let records: Vec<RunRecord> = ran
        .iter()
        .map(|(i, row)| record(row, positions[*i], root))
        .collect();
    let rows: Vec<Row> = ran.into_iter().map(|(_, row)| row).collect();
    let worst = Outcome::worst(rows.iter().map(|r| r.judged));
    // A suite cut short did not judge the tests it left out.
    let outcome = match interrupted {
        Some(_) => worst.combine(Outcome::Unknown),
        None => worst,
    };

    print!("{}", table(&name, &rows));
    let junit_path = args.junit.clone().unwrap_or_else(|| root.join("junit.xml"));
    let summary = write_junit_and_summary(&name, &rows, &junit_path)?;
    if summary.has_repeats() {
        print!("{}", summary.table());
    }
    println!("junit: {}", junit_path.display());
    let summary_dir = junit_path.parent().unwrap_or(Path::new(""));
    println!("summary: {}", summary_dir.join("summary.md").display());
    // In the results folder, whatever --junit says: what `results merge` reads.
    let runs = SuiteRuns {
        schema_version: suite_runs::SCHEMA_VERSION,
        suite: name.clone(),
        tests: total,
        outcome,
        interrupted,
        runs: records,
        merged_from: vec![],
    };
    let path = root.join(suite_runs::FILE);
    crate::atomic_file::write(&path, runs.to_json().as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        let mut text = markdown(&name, &rows);
        if summary.has_repeats() {
            text.push_str(&summary.markdown());
        }
        append(&PathBuf::from(path), &text)?;
    }
    Ok(outcome)
}

/// Writes junit.xml at `junit_path` and, beside it, the per-case summary
/// (summary.md for people, summary.json for machines) of `rows`, in their
/// order; returns the summary.
pub fn write_junit_and_summary(
    name: &str,
    rows: &[Row],
    junit_path: &Path,
) -> anyhow::Result<Summary> {
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
    let summary = Summary::of(name, &runs);
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
    let dir = junit_path.parent().unwrap_or(Path::new(""));
    if !dir.as_os_str().is_empty() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    for (path, text) in [
        (junit_path.to_path_buf(), junit::xml(name, &cases)),
        (dir.join("summary.md"), summary.markdown()),
        (
            dir.join("summary.json"),
            serde_json::to_string_pretty(&summary)? + "\n",
        ),
    ] {
        crate::atomic_file::write(&path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(summary)
}

/// Runs `tests`, `jobs` at a time, each on its own cluster (a run's cluster
/// name, subnet and results folder never collide with another's); returns
/// the rows with their tests' places in `tests`, in that order, whatever
/// order they finish in. After
/// a SIGINT or SIGTERM no test starts, and each running one heals and
/// removes its cluster (`run` sees the signal in any phase) before it ends.
fn run_all(tests: &[Test], options: &RunOptions, jobs: usize) -> Vec<(usize, Row)> {
    debug_assert!(jobs >= 1, "--jobs is at least 1");
    let total = tests.len();
    let watching = crate::nemesis::heal::watch_signals(move |signal| {
        eprintln!(
            "{signal}: no more tests start; the running ones heal and remove their clusters (again to exit at once)"
        )
    });
    if let Err(e) = watching {
        tracing::warn!("cannot listen for signals: {e}");
    }
    let at_once = jobs > 1;
    let options = if at_once {
        // Runs at once each keep their own log file, and print no bar.
        crate::logging::runs_at_once();
        RunOptions {
            progress: Progress::Quiet,
            ..options.clone()
        }
    } else {
        options.clone()
    };
    let next = AtomicUsize::new(0);
    let running = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Row>>> = tests.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(total) {
            scope.spawn(|| {
                // Each pass takes one test: at most `total` passes over all threads.
                while crate::nemesis::heal::interrupted_by().is_none() {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(test) = tests.get(i) else { break };
                    if at_once {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        eprintln!(
                            "[{}/{total}] {} (seed {}) started; {now} running",
                            i + 1,
                            test.name,
                            test.seed
                        );
                    }
                    let row = run_one(test, &options);
                    if at_once {
                        let now = running.fetch_sub(1, Ordering::SeqCst) - 1;
                        let finished = done.fetch_add(1, Ordering::SeqCst) + 1;
                        eprintln!(
                            "[{}/{total}] {}: {} {} in {:.1}s; {now} running, {finished} of {total} done",
                            i + 1,
                            row.name,
                            status(&row),
                            row.outcome,
                            row.duration.as_secs_f64()
                        );
                    }
                    *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(row);
                }
            });
        }
    });
    slots
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| Some((i, s.into_inner().unwrap_or_else(|p| p.into_inner())?)))
        .collect()
}

/// Runs one test of the suite, prints its summary, and judges it against
/// what it expects.
fn run_one(test: &Test, options: &RunOptions) -> Row {
    let started = Instant::now();
    match super::run::run(test, options) {
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
            // One write: runs at once do not interleave their summaries.
            print!("{}", super::output::summary(test, &report));
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
    }
}

/// The suite.json record of `row`, the test at `position` of the whole
/// suite, whose results folder lies under `root` (the suite's results folder).
fn record(row: &Row, position: usize, root: &Path) -> RunRecord {
    let folder = (!row.results_dir.is_empty())
        .then(|| Path::new(&row.results_dir))
        .and_then(|dir| dir.strip_prefix(root).ok())
        .map(|rel| rel.to_string_lossy().into_owned());
    RunRecord {
        id: folder
            .clone()
            .unwrap_or_else(|| format!("{}/no-folder-{position}", row.name)),
        folder,
        position,
        name: row.name.clone(),
        seed: row.seed,
        expect: row.expect,
        outcome: row.outcome,
        judged: row.judged,
        message: row.message.clone(),
        duration_s: row.duration.as_secs_f64(),
        first_anomaly_ms: row.first_anomaly_ms,
    }
}

/// The table row of a suite.json record, its folder given as `results_dir`.
pub fn row_of(record: &RunRecord, results_dir: String) -> Row {
    Row {
        name: record.name.clone(),
        outcome: record.outcome,
        judged: record.judged,
        message: record.message.clone(),
        seed: record.seed,
        results_dir,
        duration: Duration::try_from_secs_f64(record.duration_s).unwrap_or_default(),
        expect: record.expect,
        first_anomaly_ms: record.first_anomaly_ms,
    }
}

/// `--jobs K`: at least one, at most [`JOBS_MAX`].
fn jobs(text: &str) -> Result<usize, String> {
    let bad = || {
        format!(
            "--jobs \"{}\": expected how many tests run at once, 1 to {JOBS_MAX}",
            crate::history::text::excerpt(text)
        )
    };
    match text.trim().parse::<usize>() {
        Ok(k) if (1..=JOBS_MAX).contains(&k) => Ok(k),
        _ => Err(bad()),
    }
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
