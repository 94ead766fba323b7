//! What a finished run leaves and says: results.json and junit.xml in its
//! folder, and the summary on stdout (verdict, anomalies, where the results
//! are, the seed, and on failure the command that replays it).

use super::check::{self, write_results};
use super::checks::RunChecks;
use super::junit;
use crate::checker::Verdict;
use crate::history::OpType;
use crate::outcome::Outcome;
use crate::report::results::{self, CheckerResult, OpCounts, Results, RunResult, Valid};
use crate::store::RunDir;
use crate::suite::Test;
use std::fmt::Write;
use std::time::Duration;

/// How a run ended.
#[derive(Debug)]
pub struct RunReport {
    pub dir: RunDir,
    pub checks: RunChecks,
    /// Why the harness failed (exit 3), if it did.
    pub harness_error: Option<String>,
    /// Things that went wrong but did not stop the run (heal, logs, teardown).
    pub problems: Vec<String>,
    pub duration: Duration,
    /// `name address` of every host the run used.
    pub hosts: Vec<String>,
    pub ops: OpCounts,
    /// Why the run cannot be judged valid even where every checker says so
    /// (interrupted, the history not written whole).
    pub incomplete: Vec<String>,
}

impl RunReport {
    /// The checkers' verdict, at best unknown when the run is incomplete.
    pub fn verdict(&self) -> Verdict {
        if self.incomplete.is_empty() {
            self.checks.verdict
        } else {
            self.checks.verdict.combine(Verdict::Unknown)
        }
    }

    /// The verdict, or a harness error when the harness failed.
    pub fn outcome(&self) -> Outcome {
        match self.harness_error {
            Some(_) => Outcome::HarnessError,
            None => self.verdict().into(),
        }
    }
}

/// The command that runs `test` again with the same seed, quoted for a
/// POSIX shell: the path is data, whatever a folder or test name holds.
pub fn replay_command(test_yaml: &std::path::Path) -> String {
    format!(
        "faultline run --replay {}",
        crate::control::shell_quote(&test_yaml.to_string_lossy())
    )
}

/// results.json of a run.
pub fn results(test: &Test, report: &RunReport) -> Results {
    let mut out = match &report.checks.file {
        Some((file, checker)) => check::to_results(std::slice::from_ref(file), checker),
        None => Results {
            schema_version: results::SCHEMA_VERSION,
            tool: format!("faultline {}", env!("CARGO_PKG_VERSION")),
            valid: Valid::Unknown,
            files: vec![],
            run: None,
        },
    };
    // A harness error is `"unknown"`, with `harness_error` saying why.
    out.valid = Valid::from(report.outcome().verdict().unwrap_or(Verdict::Unknown));
    out.run = Some(RunResult {
        test: test.name.clone(),
        db: test.db.name().into(),
        bugs: test.bugs.clone(),
        workload: test.workload_name.clone(),
        nemesis: test.nemesis_name.clone(),
        seed: test.seed,
        hosts: report.hosts.clone(),
        duration_ms: report.duration.as_secs_f64() * 1e3,
        ops: report.ops,
        checkers: report
            .checks
            .checkers
            .iter()
            .map(|c| CheckerResult {
                name: c.name.to_string(),
                valid: c.verdict.into(),
                summary: c.summary.clone(),
                anomalies: c.anomalies.clone(),
                detail: c.detail.clone(),
                evidence: c.evidence.clone(),
            })
            .collect(),
        anomalies: report.checks.anomalies(),
        harness_error: report.harness_error.clone(),
        problems: report.problems.clone(),
        replay: replay_command(&report.dir.test_yaml()),
        incomplete: report.incomplete.clone(),
        availability: report.checks.availability.as_ref().map(availability),
        first_anomaly: report.checks.first_anomaly.clone(),
    });
    out
}

fn availability(a: &crate::checker::availability::Availability) -> results::Availability {
    let ms = |ns: u64| ns as f64 / 1e6;
    let stretch = |s: &crate::checker::availability::Stretch| results::Stretch {
        from_ms: ms(s.from_ns),
        to_ms: ms(s.to_ns),
        ms: ms(s.ns()),
        faults: s.faults.clone(),
    };
    results::Availability {
        span_ms: ms(a.end_ns),
        ok: a.ok,
        ok_per_s: a.ok_per_s,
        longest_without_ok: stretch(&a.longest_without_ok),
        last_heal_ms: a.last_heal_ns.map(ms),
        after_last_heal: stretch(&a.after_last_heal),
    }
}

/// Counts of a history, for results.json and the summary.
pub fn op_counts(ops: &[crate::history::Op]) -> OpCounts {
    let mut c = OpCounts::default();
    for op in ops {
        if !op.is_client() {
            c.nemesis += 1;
            continue;
        }
        match op.kind {
            OpType::Invoke => c.invoked += 1,
            OpType::Ok => c.ok += 1,
            OpType::Fail => c.fail += 1,
            OpType::Info => c.info += 1,
        }
    }
    c
}

/// Writes results.json and junit.xml into the run's folder.
pub fn write(test: &Test, report: &RunReport) -> anyhow::Result<()> {
    write_results(&report.dir.results_json(), &results(test, report))?;
    let case = junit::Case {
        name: test.name.clone(),
        outcome: report.outcome(),
        message: failure_message(report),
        seed: test.seed,
        results_dir: report.dir.path.display().to_string(),
        duration: report.duration,
    };
    std::fs::write(report.dir.junit_xml(), junit::xml("faultline", &[case]))?;
    Ok(())
}

/// What failed, in one line: the harness error, the anomalies, or why the
/// run is incomplete.
pub fn failure_message(report: &RunReport) -> String {
    if let Some(e) = &report.harness_error {
        return e.clone();
    }
    if !report.incomplete.is_empty() && report.checks.verdict != Verdict::Invalid {
        return report.incomplete.join("; ");
    }
    let anomalies = report.checks.anomalies();
    if anomalies.is_empty() {
        report
            .checks
            .checkers
            .iter()
            .filter(|c| c.verdict != Verdict::Valid)
            .map(|c| format!("{}: {}", c.name(), c.summary))
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        anomalies.join(", ")
    }
}

/// The end-of-run summary for stdout.
pub fn summary(test: &Test, report: &RunReport) -> String {
    let mut s = String::new();
    let verdict = match report.outcome() {
        Outcome::HarnessError => "HARNESS ERROR".to_string(),
        o => o.name().to_uppercase(),
    };
    let _ = writeln!(s, "\n{} — {verdict}", test.name);
    if let Some(e) = &report.harness_error {
        let _ = writeln!(s, "  harness error: {e}");
    }
    for why in &report.incomplete {
        let _ = writeln!(s, "  incomplete: {why}");
    }
    for c in &report.checks.checkers {
        let _ = writeln!(
            s,
            "  {:<13} {:<8} {}",
            c.name(),
            c.verdict.as_str(),
            c.summary
        );
    }
    let o = report.ops;
    let _ = writeln!(
        s,
        "  ops: {} invoked: {} ok, {} fail, {} info; {} nemesis ops; {:.1} s",
        o.invoked,
        o.ok,
        o.fail,
        o.info,
        o.nemesis,
        report.duration.as_secs_f64()
    );
    if let Some(a) = &report.checks.availability {
        let _ = writeln!(
            s,
            "  availability: {:.0} ok/s; longest without an ok op {:.1} s{}; after the last heal {:.1} s",
            a.ok_per_s,
            a.longest_without_ok.ns() as f64 / 1e9,
            match a.longest_without_ok.faults.as_slice() {
                [] => String::new(),
                f => format!(" ({})", f.join(" + ")),
            },
            a.after_last_heal.ns() as f64 / 1e9,
        );
    }
    if let Some(a) = &report.checks.first_anomaly {
        let _ = writeln!(s, "  first anomaly: {}", a.describe());
    }
    for p in &report.problems {
        let _ = writeln!(s, "  problem: {p}");
    }
    let _ = writeln!(s, "  results: {}", report.dir.path.display());
    let _ = writeln!(s, "  report:  {}", report.dir.report_html().display());
    let _ = writeln!(s, "  seed: {}", test.seed);
    if report.outcome() != Outcome::Valid {
        let _ = writeln!(s, "  replay: {}", replay_command(&report.dir.test_yaml()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_command_pasted_into_a_shell_runs_nothing_but_faultline() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("PWNED");
        let hostile = dir
            .path()
            .join(format!("r $(touch {}) `id` 'q' \"d\"; x", marker.display()))
            .join("test.yaml");
        let command = replay_command(&hostile);
        // The shell sees the path as one word, exactly as it is.
        let args = command.strip_prefix("faultline run --replay ").unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s' {args}"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            hostile.to_string_lossy()
        );
        assert!(
            !marker.exists(),
            "the shell ran code from the path: {command}"
        );
    }
}
