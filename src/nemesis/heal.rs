//! Healing: undo everything faultline changed on the hosts, by each host's
//! heal journal (see `net::journal`).
//!
//! Heal runs at the start of every run (what a crashed run left), at the
//! end, on error, on Ctrl-C and SIGTERM ([`guarded`] does all four; a
//! [`HealGuard`] also covers a panic), and from `faultline heal` after the
//! controller was killed ([`heal_hosts`], which needs nothing but the hosts).

use super::{FaultError, Faults, NemesisEvent};
use crate::control::Remote;
use crate::history::OpType;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use thiserror::Error;
use tokio::sync::mpsc;

/// Heals `remotes` in parallel by their journals alone; returns what was
/// undone per host. Errors name each host that could not be healed.
pub fn heal_hosts(
    remotes: &[Arc<dyn Remote>],
    state_dir: &str,
) -> Result<BTreeMap<String, Vec<String>>, FaultError> {
    super::in_parallel(
        remotes,
        |r| r.name().to_string(),
        |r| Ok(crate::net::heal_remote(r.as_ref(), state_dir)?),
    )
}

/// Heals when dropped unless [`HealGuard::disarm`] was called: the last
/// line of defence when a run unwinds from a panic.
pub struct HealGuard {
    faults: Option<Arc<dyn Faults>>,
}

impl HealGuard {
    pub fn new(faults: Arc<dyn Faults>) -> HealGuard {
        HealGuard {
            faults: Some(faults),
        }
    }

    pub fn disarm(mut self) {
        self.faults = None;
    }
}

impl Drop for HealGuard {
    fn drop(&mut self) {
        if let Some(faults) = self.faults.take() {
            // Off the async threads: heal blocks on every host.
            let result = std::thread::spawn(move || faults.heal()).join();
            match result {
                Ok(Ok(_)) => tracing::info!("healed on the way out"),
                Ok(Err(e)) => tracing::error!("heal on the way out failed: {e}"),
                Err(_) => tracing::error!("heal on the way out panicked"),
            }
        }
    }
}

/// Heals once, recording a `heal` op pair in `sink` when given.
pub async fn heal_once(
    faults: &Arc<dyn Faults>,
    sink: Option<&mpsc::UnboundedSender<NemesisEvent>>,
) -> Result<Value, FaultError> {
    if let Some(s) = sink {
        let _ = s.send(NemesisEvent::new(OpType::Invoke, "heal", Value::Null, None));
    }
    let f = faults.clone();
    let result = tokio::task::spawn_blocking(move || f.heal())
        .await
        .unwrap_or_else(|e| Err(FaultError(format!("heal panicked: {e}"))));
    if let Some(s) = sink {
        let event = match &result {
            Ok(v) => NemesisEvent::new(OpType::Info, "heal", v.clone(), None),
            Err(e) => NemesisEvent::new(OpType::Info, "heal", Value::Null, Some(e.0.clone())),
        };
        let _ = s.send(event);
    }
    result
}

#[derive(Debug, Error)]
pub enum GuardedError {
    #[error("interrupted by {0}; every fault was healed")]
    Interrupted(&'static str),
    #[error("interrupted by {0}, and healing failed: {1}")]
    InterruptedHealFailed(&'static str, FaultError),
    #[error("healing before the run failed: {0}")]
    HealFirst(FaultError),
    #[error("healing after the run failed: {0}")]
    HealAfter(FaultError),
}

/// Heals, runs `work`, and heals again, whatever happens: normal end, an
/// error inside `work` (returned as its output), Ctrl-C, SIGTERM, or a panic
/// (by a [`HealGuard`]). On a signal `work` is dropped and the signal is
/// reported. A failed final heal is an error even if `work` succeeded.
pub async fn guarded<T>(
    faults: Arc<dyn Faults>,
    sink: Option<mpsc::UnboundedSender<NemesisEvent>>,
    work: impl Future<Output = T>,
) -> Result<T, GuardedError> {
    heal_once(&faults, sink.as_ref())
        .await
        .map_err(GuardedError::HealFirst)?;
    let guard = HealGuard::new(faults.clone());
    let outcome = tokio::select! {
        out = work => Ok(out),
        signal = interrupted() => Err(signal),
    };
    let healed = heal_once(&faults, sink.as_ref()).await;
    guard.disarm();
    match (outcome, healed) {
        (Ok(out), Ok(_)) => Ok(out),
        (Ok(_), Err(e)) => Err(GuardedError::HealAfter(e)),
        (Err(signal), Ok(_)) => Err(GuardedError::Interrupted(signal)),
        (Err(signal), Err(e)) => Err(GuardedError::InterruptedHealFailed(signal, e)),
    }
}

/// The signal that interrupted this process, once one did (0: none yet;
/// else an index into [`SIGNALS`] plus one). Every running test of a suite
/// sees it, also one that was setting up when the signal came.
static INTERRUPTED: AtomicUsize = AtomicUsize::new(0);
const SIGNALS: [&str; 2] = ["SIGINT", "SIGTERM"];

/// The signal that interrupted this process, if one did (seen by
/// [`interrupted`] or [`watch_signals`]).
pub fn interrupted_by() -> Option<&'static str> {
    SIGNALS
        .get(INTERRUPTED.load(Ordering::SeqCst).checked_sub(1)?)
        .copied()
}

/// Resolves on the first SIGINT or SIGTERM, naming it; at once when the
/// process was interrupted already.
pub async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot listen for signals; heal on Ctrl-C is off");
        return std::future::pending().await;
    };
    // Listening first, then looking: a signal between the two is not lost.
    if let Some(signal) = interrupted_by() {
        return signal;
    }
    let index = tokio::select! {
        _ = int.recv() => 0,
        _ = term.recv() => 1,
    };
    let _ = INTERRUPTED.compare_exchange(0, index + 1, Ordering::SeqCst, Ordering::SeqCst);
    SIGNALS[index]
}

/// Listens for SIGINT and SIGTERM on a thread of its own for the rest of
/// the process, so a signal that comes while no run is in its main phase
/// (a cluster being made, a system deployed, results checked) is seen too:
/// [`interrupted_by`] says so from then on, and `on_first` is called once.
/// A second signal ends the process at once with exit code 3 (what is
/// still running is left as it is: `faultline cluster down` removes it).
pub fn watch_signals(on_first: impl Fn(&'static str) + Send + 'static) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            runtime.block_on(async {
                let signal = interrupted().await;
                on_first(signal);
                let second = second_signal().await;
                eprintln!(
                    "{second} again: exiting now; what is still running stays (faultline cluster down removes it)"
                );
                std::process::exit(3);
            })
        })?;
    Ok(())
}

/// Resolves on the next SIGINT or SIGTERM from now on.
async fn second_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::fake::Recording;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct CountingHeals {
        inner: Recording,
        heals: AtomicUsize,
    }

    impl Faults for CountingHeals {
        fn nodes(&self) -> Vec<String> {
            self.inner.nodes()
        }
        fn primaries(&self) -> Result<Vec<String>, FaultError> {
            self.inner.primaries()
        }
        fn voters(&self, within: std::time::Duration) -> Result<Vec<String>, FaultError> {
            self.inner.voters(within)
        }
        fn apply(&self, action: &crate::nemesis::Action) -> Result<Value, FaultError> {
            self.inner.apply(action)
        }
        fn heal(&self) -> Result<Value, FaultError> {
            self.heals.fetch_add(1, Ordering::SeqCst);
            Ok(Value::Null)
        }
    }

    fn counting() -> Arc<CountingHeals> {
        Arc::new(CountingHeals {
            inner: Recording::new(3),
            heals: AtomicUsize::new(0),
        })
    }

    #[tokio::test]
    async fn guarded_heals_before_and_after_and_records_it() {
        let faults = counting();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let out = guarded(faults.clone(), Some(tx), async { 42 })
            .await
            .unwrap();
        assert_eq!(out, 42);
        assert_eq!(faults.heals.load(Ordering::SeqCst), 2);
        let fs: Vec<(OpType, String)> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| (e.kind, e.f))
            .collect();
        assert_eq!(fs.len(), 4);
        assert!(fs.iter().all(|(_, f)| f == "heal"));
    }

    #[tokio::test]
    async fn guarded_heals_on_sigterm() {
        let faults = counting();
        let work = async {
            // Let `guarded` install its handler first.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            // SAFETY: raising a signal at ourselves; tokio's handler catches it.
            unsafe { libc::raise(libc::SIGTERM) };
            std::future::pending::<()>().await
        };
        let err = guarded(faults.clone(), None, work).await.unwrap_err();
        assert!(matches!(err, GuardedError::Interrupted("SIGTERM")), "{err}");
        assert_eq!(faults.heals.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_guard_heals_when_a_run_panics() {
        let faults = counting();
        let f2: Arc<dyn Faults> = faults.clone();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _guard = HealGuard::new(f2);
            panic!("the run blew up");
        }));
        assert!(r.is_err());
        assert_eq!(faults.heals.load(Ordering::SeqCst), 1);
    }
}
