//! faultline's own log: tracing to stderr (warnings and errors only, so a
//! progress bar stays readable) and, during a run, everything at info and
//! above to the run's faultline.log.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

static RUN_LOG: Mutex<Option<File>> = Mutex::new(None);

/// Sets up tracing for commands that run tests. Call once.
pub fn init() {
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(
            EnvFilter::try_from_env("FAULTLINE_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        );
    let file = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(RunLog)
        .with_filter(
            EnvFilter::try_from_env("FAULTLINE_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        );
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
}

/// From now on, log lines also go to `path` (the run's faultline.log).
pub fn to_file(path: &Path) {
    let file = File::options().create(true).append(true).open(path);
    match file {
        Ok(f) => *lock() = Some(f),
        Err(e) => eprintln!("warning: cannot write {}: {e}", path.display()),
    }
}

/// Stops writing to the run's log file.
pub fn close() {
    *lock() = None;
}

fn lock() -> std::sync::MutexGuard<'static, Option<File>> {
    RUN_LOG.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Clone, Copy)]
struct RunLog;

impl Write for RunLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(f) = lock().as_mut() {
            f.write_all(buf)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for RunLog {
    type Writer = RunLog;
    fn make_writer(&'a self) -> RunLog {
        RunLog
    }
}
