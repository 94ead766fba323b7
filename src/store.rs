//! Where runs are written: `results/<test>/<timestamp>/`, and the `latest`
//! links (`results/latest` and `results/<test>/latest`) to the newest run.
//!
//! `results/` is relative to the working directory unless the caller passes
//! another root (`--results-dir`). Timestamps are UTC and sort as text, so a
//! listing of a test's folder is in run order.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The results folder of one run and the files in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    pub path: PathBuf,
    pub test: String,
    pub timestamp: String,
}

impl RunDir {
    pub fn history(&self) -> PathBuf {
        self.path.join("history.jsonl")
    }
    pub fn test_yaml(&self) -> PathBuf {
        self.path.join("test.yaml")
    }
    pub fn results_json(&self) -> PathBuf {
        self.path.join("results.json")
    }
    pub fn report_html(&self) -> PathBuf {
        self.path.join("report.html")
    }
    pub fn junit_xml(&self) -> PathBuf {
        self.path.join("junit.xml")
    }
    pub fn log(&self) -> PathBuf {
        self.path.join("faultline.log")
    }
    /// Where a node's logs are downloaded to.
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.path.join("nodes").join(node)
    }
}

/// A results root folder.
#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
}

/// Runs started in the same millisecond get a suffix; more than this many is a bug.
const SAME_MS_RUNS_MAX: u32 = 1000;

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    /// Makes the folder of a new run of `test` and points the `latest` links at it.
    pub fn create_run(&self, test: &str) -> io::Result<RunDir> {
        debug_assert!(
            !test.is_empty() && !test.contains('/'),
            "test names are plain folder names"
        );
        let base = utc_timestamp(SystemTime::now());
        let test_dir = self.root.join(test);
        std::fs::create_dir_all(&test_dir)?;
        for n in 0..SAME_MS_RUNS_MAX {
            let timestamp = if n == 0 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            let path = test_dir.join(&timestamp);
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    let run = RunDir {
                        path,
                        test: test.to_string(),
                        timestamp,
                    };
                    link(
                        &self.root.join("latest"),
                        &Path::new(test).join(&run.timestamp),
                    )?;
                    link(&test_dir.join("latest"), Path::new(&run.timestamp))?;
                    return Ok(run);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(format!(
            "{SAME_MS_RUNS_MAX} runs of {test} in one millisecond"
        )))
    }

    /// Every run in the store, newest first.
    pub fn runs(&self) -> io::Result<Vec<RunDir>> {
        let mut runs = Vec::new();
        let tests = match std::fs::read_dir(&self.root) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(runs),
            Err(e) => return Err(e),
        };
        for test in tests {
            let test = test?;
            if !test.file_type()?.is_dir() {
                continue; // `latest`, index.html
            }
            let name = test.file_name().to_string_lossy().to_string();
            for run in std::fs::read_dir(test.path())? {
                let run = run?;
                if run.file_type()?.is_dir() {
                    let timestamp = run.file_name().to_string_lossy().to_string();
                    runs.push(RunDir {
                        path: run.path(),
                        test: name.clone(),
                        timestamp,
                    });
                }
            }
        }
        runs.sort_by(|a, b| {
            b.timestamp
                .cmp(&a.timestamp)
                .then_with(|| a.test.cmp(&b.test))
        });
        Ok(runs)
    }
}

/// Points the symlink `at` to `target`, replacing it atomically.
/// Points the link `at` to `target` in one rename. The temporary is this
/// call's own (process and counter): runs that start at once, in one
/// process or several, each rename a link of their own.
fn link(at: &Path, target: &Path) -> io::Result<()> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = at.with_extension(format!("tmp-link-{}-{n}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, at).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// `20261124T121503.042Z`: UTC, sortable, safe in file names.
pub fn utc_timestamp(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_and_sortable() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "19700101T000000.000Z");
        // 2026-11-24 12:15:03.042 UTC
        let t = UNIX_EPOCH + Duration::from_millis(1_795_522_503_042);
        assert_eq!(utc_timestamp(t), "20261124T121503.042Z");
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn runs_get_their_own_folders_and_latest_links_follow() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let a = store.create_run("raft-register").unwrap();
        let b = store.create_run("raft-register").unwrap();
        assert_ne!(
            a.path, b.path,
            "two runs in one millisecond still get two folders"
        );
        let c = store.create_run("paxos-bank").unwrap();
        assert_eq!(
            std::fs::canonicalize(dir.path().join("latest")).unwrap(),
            std::fs::canonicalize(&c.path).unwrap()
        );
        assert_eq!(
            std::fs::canonicalize(dir.path().join("raft-register/latest")).unwrap(),
            std::fs::canonicalize(&b.path).unwrap()
        );
        let runs = store.runs().unwrap();
        assert_eq!(runs.len(), 3);
        assert!(
            runs.windows(2).all(|w| w[0].timestamp >= w[1].timestamp),
            "newest first"
        );
    }
}
