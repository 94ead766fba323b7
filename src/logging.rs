//! faultline's own log (tracing), set up once per process by [`init`], the
//! same way for every command and for the nodes: to stderr, in colour only
//! on a terminal (node logs usually go to files), the level from
//! `FAULTLINE_LOG` (or `RUST_LOG`) when set. Commands that run tests show
//! only warnings and errors on stderr, so a progress bar stays readable, and
//! write everything at info and above to the run's faultline.log
//! ([`to_file`]).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

static RUN_LOG: Mutex<Option<File>> = Mutex::new(None);

/// What a command logs where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// `run` and `suite`: warnings on stderr, info to the run's log file.
    Runs,
    /// Every other command, and the nodes: info on stderr.
    Commands,
}

/// Dependencies whose warnings are a run's expected weather, kept off
/// stderr (they still reach the run's log file): a client crate that warns
/// of every connection a partition breaks.
const QUIET_CRATES: &str = "zookeeper_client=error";

/// Sets up tracing. Call once, before anything logs; a second call changes nothing.
pub fn init(setup: Setup) {
    let stderr_level = match setup {
        Setup::Runs => "warn",
        Setup::Commands => "info",
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let stderr = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .with_filter(filter(&format!("{stderr_level},{QUIET_CRATES}")));
    // Only runs have a log file: other commands (nodes above all) do not
    // format every line twice.
    let file = (setup == Setup::Runs).then(|| {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(RunLog)
            .with_filter(filter("info"))
    });
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
}

/// `FAULTLINE_LOG`, else `RUST_LOG`, else `default`.
fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_env("FAULTLINE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default))
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
