//! `faultline nemesis`: a nemesis file against a deployed cluster, with no
//! workload — to watch faults happen, try a new nemesis file, or leave a
//! cluster broken on purpose. Every op is printed as one history line.
//!
//! The full run (workload, checkers, report) is the runner's; this is the
//! same [`super::run`] inside [`super::heal::guarded`].

use super::heal::{GuardedError, guarded};
use super::{Faults, HostFaults, NemesisError, NemesisEvent, Options, Schedule, Summary};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::{mpsc, watch};

#[derive(Debug, Error)]
pub enum StandaloneError {
    #[error(transparent)]
    Heal(#[from] GuardedError),
    #[error(transparent)]
    Nemesis(#[from] NemesisError),
}

/// Runs `schedule` on `db`'s hosts for `time_limit`, healing before and
/// after (and on Ctrl-C/SIGTERM), printing each op as JSONL to `out`.
pub async fn run(
    db: Arc<dyn crate::system::Db>,
    schedule: Schedule,
    seed: u64,
    time_limit: Duration,
    options: Options,
    mut out: impl Write + Send + 'static,
) -> Result<Summary, StandaloneError> {
    let faults: Arc<dyn Faults> = Arc::new(HostFaults::for_db(db));
    let (tx, mut rx) = mpsc::unbounded_channel::<NemesisEvent>();
    let started = Instant::now();
    let printer = tokio::spawn(async move {
        let mut index = 0u64;
        while let Some(event) = rx.recv().await {
            if let Ok(line) = serde_json::to_string(&event.to_op(index, started)) {
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            index += 1;
        }
    });
    let work = {
        let faults = faults.clone();
        let tx = tx.clone();
        async move {
            let (stop_tx, stop_rx) = watch::channel(false);
            let timer = tokio::spawn(async move {
                tokio::time::sleep(time_limit).await;
                let _ = stop_tx.send(true);
            });
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let result = super::run(schedule, faults, &mut rng, tx, stop_rx, options).await;
            timer.abort();
            result
        }
    };
    let result = guarded(faults, Some(tx), work).await;
    let _ = printer.await;
    Ok(result??)
}
