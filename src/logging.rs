//! faultline's own log (tracing), set up once per process by [`init`], the
//! same way for every command and for the nodes: to stderr, in colour only
//! on a terminal (node logs usually go to files), the level from
//! `FAULTLINE_LOG` (or `RUST_LOG`) when set. Commands that run tests show
//! only warnings and errors on stderr, so a progress bar stays readable, and
//! write everything at info and above to the run's faultline.log
//! ([`to_file`]).
//!
//! Runs at once (`faultline suite --jobs K`) each have their own log file:
//! a run's file belongs to the thread that opened it and to the threads it
//! hands it on to ([`current`], [`adopt`]: its tokio runtime's threads, its
//! per-host threads). One run at a time also writes, from any thread, to the
//! one process-wide file, as before.

use std::cell::RefCell;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

static RUN_LOG: Mutex<Option<Arc<Mutex<File>>>> = Mutex::new(None);
/// Set while runs go at once: then no run's file is the process's.
static RUNS_AT_ONCE: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The log file of the run this thread works for.
    static THREAD_LOG: RefCell<Option<RunLogFile>> = const { RefCell::new(None) };
}

/// One run's faultline.log, shared by the threads that work for the run.
#[derive(Clone)]
pub struct RunLogFile(Arc<Mutex<File>>);

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

/// From now on, this thread's log lines also go to `path` (the run's
/// faultline.log), and, unless runs go at once, every thread's.
pub fn to_file(path: &Path) {
    let file = File::options().create(true).append(true).open(path);
    match file {
        Ok(f) => {
            let shared = Arc::new(Mutex::new(f));
            if !RUNS_AT_ONCE.load(Ordering::Relaxed) {
                *lock() = Some(shared.clone());
            }
            adopt(Some(RunLogFile(shared)));
        }
        Err(e) => eprintln!("warning: cannot write {}: {e}", path.display()),
    }
}

/// Stops writing to this thread's run log file (and the process's).
pub fn close() {
    if !RUNS_AT_ONCE.load(Ordering::Relaxed) {
        *lock() = None;
    }
    adopt(None);
}

/// From now on runs go at once: each run's log lines go only to its own
/// file, from its own threads.
pub fn runs_at_once() {
    RUNS_AT_ONCE.store(true, Ordering::Relaxed);
    *lock() = None;
}

/// The run log file of this thread, to hand on to threads it starts.
pub fn current() -> Option<RunLogFile> {
    THREAD_LOG.with(|t| t.borrow().clone())
}

/// This thread works for the run whose log file is `file` (none: no run).
pub fn adopt(file: Option<RunLogFile>) {
    THREAD_LOG.with(|t| *t.borrow_mut() = file);
}

fn lock() -> std::sync::MutexGuard<'static, Option<Arc<Mutex<File>>>> {
    RUN_LOG.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Clone, Copy)]
struct RunLog;

impl Write for RunLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let file = current().map(|f| f.0).or_else(|| lock().clone());
        if let Some(f) = file {
            f.lock().unwrap_or_else(|p| p.into_inner()).write_all(buf)?;
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
