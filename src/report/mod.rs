//! Reports: what a check or a run leaves for people and tools to read. The
//! results.json schema (`results`, an API others convert into), report.html
//! of a results folder (`write_report`), the results index (`index`), and a
//! read-only server over the results folder (`serve`).
//!
//! Architecture invariant: `report` reads a results folder and nothing else.
//! It imports `history`, checker result types, `suite::Test` and `store`;
//! never hosts, networks or the runner. A report can be written years after
//! the run, from the stored files alone.
//!
//! Architecture invariant: the report never decides or changes a verdict.
//! The verdict is results.json's, as written; if a part cannot be drawn the
//! page says so and everything else stands.

pub mod anomalies;
pub mod bench;
pub mod cli;
pub mod findings;
pub mod folder;
pub mod graph;
pub mod html;
pub mod index;
pub mod page;
pub mod plots;
pub mod results;
pub mod serve;
pub mod svg;
pub mod timeline;

use crate::checker::Verdict;
use folder::RunFolder;
pub use graph::Layout;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The file name of a run's report.
pub const REPORT_FILE: &str = "report.html";

#[derive(Debug, Error)]
pub enum ReportError {
    #[error("{0}: not a directory (give a run's results folder, e.g. results/<test>/latest)")]
    NotADirectory(PathBuf),
    #[error("{0}: not a results folder: it has neither history.jsonl nor results.json")]
    NotAResultsFolder(PathBuf),
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What writing a report gave.
#[derive(Debug)]
pub struct Written {
    pub path: PathBuf,
    pub bytes: u64,
    /// results.json's verdict; `None` when it is missing or unreadable.
    pub verdict: Option<Verdict>,
    /// Missing files and parts that could not be drawn.
    pub notes: Vec<String>,
}

/// Writes `dir/report.html` from the files in `dir` (atomically: a reader
/// never sees half a page).
pub fn write_report(dir: &Path, layout: Layout) -> Result<Written, ReportError> {
    if !dir.is_dir() {
        return Err(ReportError::NotADirectory(dir.to_path_buf()));
    }
    if !dir.join("history.jsonl").exists() && !dir.join("results.json").exists() {
        return Err(ReportError::NotAResultsFolder(dir.to_path_buf()));
    }
    let folder = RunFolder::read(dir);
    let rendered = page::render(&folder, layout);
    let path = dir.join(REPORT_FILE);
    write_atomically(&path, rendered.html.as_bytes())?;
    Ok(Written {
        path,
        bytes: rendered.html.len() as u64,
        verdict: rendered.findings.verdict,
        notes: rendered.notes,
    })
}

/// Writes whole, through a unique temporary file (see `atomic_file`).
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    crate::atomic_file::write(path, bytes).map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// What the runner calls after each run: the run's report, then the index
/// of the results root. A failure here never changes the run's verdict;
/// the caller reports it and goes on.
pub fn after_run(results_root: &Path, run_dir: &Path) -> Result<Written, ReportError> {
    let written = write_report(run_dir, Layout::Auto)?;
    index::write_index(results_root)?;
    Ok(written)
}
