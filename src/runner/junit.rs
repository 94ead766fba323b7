//! JUnit XML for CI systems: one test case per faultline test. Invalid is a
//! failure, a harness error is an error, unknown is a failure marked
//! `unknown`; each case carries the seed, the commit and the results folder.

use crate::outcome::Outcome;
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

/// One finished test, as JUnit sees it.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    /// Valid passes; invalid and unknown fail; a harness error is an error.
    pub outcome: Outcome,
    /// What failed: the anomalies, or the harness error.
    pub message: String,
    pub seed: u64,
    pub results_dir: String,
    pub duration: Duration,
}

/// The XML for `cases`, as one suite named `suite`.
pub fn xml(suite: &str, cases: &[Case]) -> String {
    let commit = commit();
    let mut ts = TestSuite::new(suite);
    for c in cases {
        let kind = match c.outcome {
            Outcome::Valid => None,
            Outcome::Invalid | Outcome::Unknown => Some(NonSuccessKind::Failure),
            Outcome::HarnessError => Some(NonSuccessKind::Error),
        };
        let status = match kind {
            None => TestCaseStatus::success(),
            Some(kind) => {
                let mut s = TestCaseStatus::non_success(kind);
                s.set_type(c.outcome.name());
                s.set_message(format!(
                    "{}: {} (report: {}/report.html)",
                    c.outcome, c.message, c.results_dir
                ));
                s
            }
        };
        let mut case = TestCase::new(c.name.as_str(), status);
        case.set_classname(suite);
        case.set_time(c.duration);
        case.add_properties([
            Property::new("seed", c.seed.to_string()),
            Property::new("commit", commit.as_str()),
            Property::new("results", c.results_dir.as_str()),
        ]);
        ts.add_test_case(case);
    }
    let mut report = Report::new("faultline");
    report.add_test_suite(ts);
    report.to_string().unwrap_or_default()
}

/// The commit under test: CI's variable, else `git rev-parse HEAD`, else `unknown`.
pub fn commit() -> String {
    if let Some(sha) = std::env::var_os("GITHUB_SHA").or_else(|| std::env::var_os("CI_COMMIT_SHA"))
    {
        return sha.to_string_lossy().into_owned();
    }
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_map_to_junit_kinds_with_properties() {
        let case = |name: &str, outcome: Outcome| Case {
            name: name.into(),
            outcome,
            message: format!("m-{name}"),
            seed: 42,
            results_dir: format!("results/{name}/t"),
            duration: Duration::from_millis(1500),
        };
        let x = xml(
            "nightly",
            &[
                case("ok", Outcome::Valid),
                case("bad", Outcome::Invalid),
                case("maybe", Outcome::Unknown),
                case("broken", Outcome::HarnessError),
            ],
        );
        assert!(
            x.contains(r#"tests="4""#)
                && x.contains(r#"failures="2""#)
                && x.contains(r#"errors="1""#),
            "{x}"
        );
        assert!(
            x.contains(r#"type="invalid""#)
                && x.contains(r#"type="unknown""#)
                && x.contains(r#"type="harness-error""#),
            "{x}"
        );
        assert!(
            x.contains("invalid: m-bad (report: results/bad/t/report.html)"),
            "{x}"
        );
        assert!(x.contains(r#"<property name="seed" value="42"/>"#), "{x}");
        assert!(x.contains(r#"name="results" value="results/ok/t""#), "{x}");
    }
}
