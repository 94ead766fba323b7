//! What a run shows while it goes: an indicatif bar on a terminal (elapsed /
//! limit, ops ok / fail / info, the faults in place), plain periodic lines
//! when stderr is not a terminal or `CI` is set. Everything goes to stderr;
//! stdout is for the final summary.

use super::recorder::Recorder;
use crate::history::nemesis::FaultTracker;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A live bar (a terminal, not CI).
    Bar,
    /// A line every few seconds (CI logs, pipes).
    Lines,
    /// Nothing but errors (tests).
    Quiet,
}

/// How often plain lines are printed.
const LINE_EVERY: Duration = Duration::from_secs(5);
/// How often the display (and the history file) is brought up to date.
const TICK: Duration = Duration::from_millis(200);

impl Progress {
    pub fn detect() -> Progress {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
        if std::io::stderr().is_terminal() && !ci {
            Progress::Bar
        } else {
            Progress::Lines
        }
    }

    /// A one-off line (a phase started or ended); also in faultline.log.
    pub fn line(&self, message: &str) {
        tracing::info!("{message}");
        if *self != Progress::Quiet {
            eprintln!("{message}");
        }
    }

    /// Shows the main phase until `limit` has passed, then returns. Every
    /// tick also flushes the history to disk.
    pub async fn main_phase(
        &self,
        limit: Duration,
        recorder: &Recorder,
        faults: &Mutex<FaultTracker>,
    ) {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + limit;
        let status = || {
            let c = recorder.counts();
            let active = faults
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .active()
                .join(" + ");
            let nemesis = if active.is_empty() {
                "none".to_string()
            } else {
                active
            };
            format!(
                "ok {} fail {} info {} | faults: {nemesis}",
                c.ok, c.fail, c.info
            )
        };
        let bar = (*self == Progress::Bar).then(|| {
            let bar = ProgressBar::new(limit.as_millis() as u64);
            bar.set_style(
                // `wide_msg` fits the message to the terminal's width (80
                // when it reports none), so a long list of faults is cut
                // instead of wrapping the bar onto new lines at every tick.
                ProgressStyle::with_template("{elapsed:>4} / {prefix} [{bar:30}] {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!("{}s", limit.as_secs()));
            bar
        });
        let mut next_line = started + LINE_EVERY;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(TICK.min(deadline - tokio::time::Instant::now())).await;
            recorder.flush();
            if let Some(bar) = &bar {
                bar.set_position(started.elapsed().as_millis() as u64);
                bar.set_message(status());
            } else if *self == Progress::Lines && Instant::now() >= next_line {
                eprintln!(
                    "{:>4.0}s/{:.0}s  {}",
                    started.elapsed().as_secs_f64(),
                    limit.as_secs_f64(),
                    status()
                );
                next_line += LINE_EVERY;
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        if *self != Progress::Quiet {
            eprintln!("{:.0}s done: {}", limit.as_secs_f64(), status());
        }
    }
}
