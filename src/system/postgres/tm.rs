//! faultline's client as the transaction manager of PostgreSQL's two-phase
//! commit across independent instances (each instance a participant).
//!
//! A transaction with a global id (`gid`) is prepared on every participant
//! (`PREPARE TRANSACTION`), then the manager decides: commit only when every
//! participant prepared. The decision to commit is logged durably on the
//! controller ([`DecisionLog`]: appended, fsynced) *before* phase two
//! (`COMMIT PREPARED` on each), so that whatever dies after it, the outcome
//! is known. Recovery ([`Tm::recover`]) resolves an in-doubt prepared
//! transaction (listed in `pg_prepared_xacts`, owned by no operation in
//! flight) from the log: committed if its commit was logged, rolled back
//! otherwise (presumed abort: an abort is never logged).
//!
//! The injectable bug `forget-in-doubt` lives here: recovery rolls back
//! every in-doubt transaction, even one whose commit was logged (and whose
//! other participants may have committed already).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// What the transaction manager decided for a global transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Commit,
    Abort,
}

impl Decision {
    fn word(self) -> &'static str {
        match self {
            Decision::Commit => "commit",
            Decision::Abort => "abort",
        }
    }
}

/// The manager's decisions, one line per decision (`<gid> commit`), in an
/// append-only file that is fsynced before a decision is acted on. A last
/// line cut short by a crash (no newline) was never acted on: it is not a
/// decision (presumed abort).
pub struct DecisionLog {
    path: PathBuf,
    file: Mutex<std::fs::File>,
    decided: Mutex<HashMap<String, Decision>>,
}

impl DecisionLog {
    /// Opens (or creates) the log at `path`, reading the decisions in it.
    pub fn open(path: &Path) -> std::io::Result<DecisionLog> {
        let mut decided = HashMap::new();
        let mut cut = false;
        if let Ok(f) = std::fs::File::open(path) {
            let mut reader = std::io::BufReader::new(f);
            let mut line = String::new();
            while reader.read_line(&mut line)? > 0 {
                cut = !line.ends_with('\n');
                if let Some(whole) = line.strip_suffix('\n')
                    && let Some((gid, word)) = whole.split_once(' ')
                {
                    let d = match word {
                        "commit" => Some(Decision::Commit),
                        "abort" => Some(Decision::Abort),
                        _ => None,
                    };
                    if let Some(d) = d {
                        decided.insert(gid.to_string(), d);
                    }
                }
                line.clear();
            }
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        if cut {
            // The next decision starts on a line of its own.
            file.write_all(b"\n")?;
        }
        Ok(DecisionLog {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            decided: Mutex::new(decided),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `gid`'s decision and waits until it is on disk (blocking: call
    /// it off the runtime's threads). Only then is it a decision.
    pub fn record(&self, gid: &str, decision: Decision) -> std::io::Result<()> {
        {
            let mut f = lock(&self.file);
            f.write_all(format!("{gid} {}\n", decision.word()).as_bytes())?;
            f.sync_data()?;
        }
        lock(&self.decided).insert(gid.to_string(), decision);
        Ok(())
    }

    /// What was decided for `gid`; none: never decided (presumed abort).
    pub fn decision(&self, gid: &str) -> Option<Decision> {
        lock(&self.decided).get(gid).copied()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The transaction manager of one run's clients: global ids, the decision
/// log, and which transactions an operation is still driving (recovery
/// leaves those alone).
pub struct Tm {
    log: Arc<DecisionLog>,
    /// Every gid starts with this (`fl<tag>-`): recovery touches no other
    /// prepared transaction.
    prefix: String,
    next: AtomicU64,
    in_flight: Mutex<HashSet<String>>,
    /// The bug `forget-in-doubt`.
    forget_in_doubt: bool,
}

/// How long recovery waits before it takes a prepared transaction that no
/// operation here owns for in doubt: one prepared by a manager that is not
/// ours to race.
pub const IN_DOUBT_AGE: Duration = Duration::from_secs(1);

/// A gid an operation is driving; recovery leaves it alone until dropped.
pub struct Owned<'a> {
    tm: &'a Tm,
    pub gid: String,
}

impl Drop for Owned<'_> {
    fn drop(&mut self) {
        lock(&self.tm.in_flight).remove(&self.gid);
    }
}

impl Tm {
    /// A manager logging to `log`; `tag` (letters and digits) tells its
    /// gids from others'.
    pub fn new(log: DecisionLog, tag: &str, forget_in_doubt: bool) -> Tm {
        Tm {
            log: Arc::new(log),
            prefix: format!("fl{tag}-"),
            next: AtomicU64::new(0),
            in_flight: Mutex::new(HashSet::new()),
            forget_in_doubt,
        }
    }

    pub fn log(&self) -> &DecisionLog {
        &self.log
    }

    /// A fresh gid, owned by the caller until the guard drops.
    pub fn begin(&self) -> Owned<'_> {
        let gid = format!(
            "{}{}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        lock(&self.in_flight).insert(gid.clone());
        Owned { tm: self, gid }
    }

    /// Logs `decision` for `gid` durably (off the runtime's threads).
    pub async fn decide(&self, gid: &str, decision: Decision) -> Result<(), String> {
        let (log, gid) = (self.log.clone(), gid.to_string());
        tokio::task::spawn_blocking(move || log.record(&gid, decision))
            .await
            .map_err(|e| format!("logging the decision: {e}"))?
            .map_err(|e| format!("logging the decision: {e}"))
    }

    /// Resolves the in-doubt transactions of this manager on one instance:
    /// prepared at least `min_age` ago and owned by no operation in flight.
    /// Returns how many it committed and rolled back; the first error ends
    /// the pass (the next one retries).
    pub async fn recover(
        &self,
        conn: &tokio_postgres::Client,
        min_age: Duration,
        deadline: Instant,
    ) -> Result<(usize, usize), String> {
        let rows = within(
            deadline,
            conn.query(
                "SELECT gid FROM pg_prepared_xacts \
                 WHERE database = current_database() AND starts_with(gid, $1) \
                 AND prepared <= now() - make_interval(secs => $2) ORDER BY prepared",
                &[&self.prefix, &min_age.as_secs_f64()],
            ),
        )
        .await?;
        let (mut committed, mut rolled_back) = (0, 0);
        for row in rows {
            let gid: String = row.get(0);
            if lock(&self.in_flight).contains(&gid) || !is_ours(&gid, &self.prefix) {
                continue;
            }
            let commit = self.log.decision(&gid) == Some(Decision::Commit) && !self.forget_in_doubt;
            let sql = if commit {
                format!("COMMIT PREPARED '{gid}'")
            } else {
                format!("ROLLBACK PREPARED '{gid}'")
            };
            let logged = self.log.decision(&gid).map_or("none", Decision::word);
            match within(deadline, conn.batch_execute(&sql)).await {
                Ok(()) if commit => {
                    tracing::info!("in doubt: {gid} committed (logged: {logged})");
                    committed += 1
                }
                Ok(()) => {
                    tracing::info!("in doubt: {gid} rolled back (logged: {logged})");
                    rolled_back += 1
                }
                // Resolved meanwhile by someone else (an operation's late
                // phase two, another recovery pass).
                Err(e) if e.contains("does not exist") => {}
                Err(e) => return Err(e),
            }
        }
        Ok((committed, rolled_back))
    }
}

/// Whether `gid` is one this manager made: its prefix, then digits (so it
/// can be quoted in SQL as it is).
fn is_ours(gid: &str, prefix: &str) -> bool {
    gid.strip_prefix(prefix)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `call` by `deadline`; the error says which happened.
pub async fn within<T>(
    deadline: Instant,
    call: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout_at(deadline, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err("timed out".into()),
    }
}

/// A PostgreSQL error in one line: the server's message when it sent one.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_survive_a_reopen_and_a_cut_last_line_is_no_decision() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.log");
        let log = DecisionLog::open(&path).unwrap();
        log.record("fl1-0", Decision::Commit).unwrap();
        log.record("fl1-1", Decision::Abort).unwrap();
        assert_eq!(log.decision("fl1-0"), Some(Decision::Commit));
        drop(log);
        // A crash in the middle of a line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"fl1-2 comm")
            .unwrap();
        let log = DecisionLog::open(&path).unwrap();
        assert_eq!(log.decision("fl1-0"), Some(Decision::Commit));
        assert_eq!(log.decision("fl1-1"), Some(Decision::Abort));
        assert_eq!(log.decision("fl1-2"), None);
        assert_eq!(log.decision("fl1-3"), None);
        log.record("fl1-3", Decision::Commit).unwrap();
        drop(log);
        let log = DecisionLog::open(&path).unwrap();
        assert_eq!(log.decision("fl1-3"), Some(Decision::Commit));
    }

    #[test]
    fn only_its_own_gids_are_touched() {
        assert!(is_ours("flab-12", "flab-"));
        assert!(!is_ours("flab-", "flab-"));
        assert!(!is_ours("flab-1'; DROP", "flab-"));
        assert!(!is_ours("other-1", "flab-"));
    }

    #[test]
    fn gids_are_owned_until_their_guard_drops() {
        let dir = tempfile::tempdir().unwrap();
        let tm = Tm::new(
            DecisionLog::open(&dir.path().join("d.log")).unwrap(),
            "x",
            false,
        );
        let a = tm.begin();
        let b = tm.begin();
        assert_ne!(a.gid, b.gid);
        assert!(lock(&tm.in_flight).contains(&a.gid));
        drop(a);
        assert_eq!(lock(&tm.in_flight).len(), 1);
    }
}
