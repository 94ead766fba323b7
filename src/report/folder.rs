//! Reading one results folder for the report: the history, the resolved
//! test, results.json and the node logs, each of which may be missing or
//! unreadable. Nothing here fails: what could not be read is recorded, and
//! the report says so.
//!
//! Not here: what results.json means (`findings`), drawing anything.

use super::results::{self, Results};
use crate::history::{Format, Op, read_path};
use crate::store::RunDir;
use crate::suite::Test;
use std::path::{Path, PathBuf};

/// A file of the folder: absent, present but unreadable, or read.
#[derive(Debug)]
pub enum Loaded<T> {
    Missing,
    Bad(String),
    Read(T),
}

impl<T> Loaded<T> {
    pub fn get(&self) -> Option<&T> {
        match self {
            Loaded::Read(t) => Some(t),
            _ => None,
        }
    }
}

/// The history as read, and where it came from.
#[derive(Debug)]
pub struct History {
    pub ops: Vec<Op>,
    /// Relative to the folder when inside it (`history.jsonl`), else as found.
    pub source: String,
    /// Whether `source` is inside the folder (a link to it works).
    pub inside: bool,
    pub truncated_line: Option<usize>,
    /// The file ended with the end record a run writes once it has written
    /// everything (taken off `ops`: it is no event of the run).
    pub whole: bool,
}

/// A downloaded log file of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFile {
    pub node: String,
    pub name: String,
    pub bytes: u64,
}

/// Bounds on what a folder listing may hold: a report lists, it does not crawl.
const NODES_MAX: usize = 256;
const NODE_FILES_MAX: usize = 64;

#[derive(Debug)]
pub struct RunFolder {
    pub dir: PathBuf,
    /// `<test>` and `<timestamp>` from the folder's path, when it has that shape.
    pub test_name: String,
    pub timestamp: String,
    pub history: Loaded<History>,
    pub test: Loaded<Test>,
    pub results: Loaded<Results>,
    pub node_files: Vec<NodeFile>,
    /// Top-level files present (name, bytes), for the links section.
    pub files: Vec<(String, u64)>,
}

/// The files a run writes at the top of its folder, in the order the links show them.
pub const RUN_FILES: [&str; 5] = [
    "history.jsonl",
    "results.json",
    "test.yaml",
    "faultline.log",
    "junit.xml",
];

impl RunFolder {
    /// Reads what there is. `dir` must be a directory (checked by the caller).
    pub fn read(dir: &Path) -> RunFolder {
        let run = RunDir {
            path: dir.to_path_buf(),
            test: file_name(dir.parent().unwrap_or(dir)),
            timestamp: file_name(dir),
        };
        let results = read_results(&run.results_json());
        let history = read_history(dir, &run.history(), &results);
        let test = if run.test_yaml().exists() {
            match Test::load(&run.test_yaml()) {
                Ok(t) => Loaded::Read(t),
                Err(e) => Loaded::Bad(e.to_string()),
            }
        } else {
            Loaded::Missing
        };
        let files = RUN_FILES
            .iter()
            .filter_map(|name| {
                let meta = std::fs::metadata(dir.join(name)).ok()?;
                meta.is_file().then(|| (name.to_string(), meta.len()))
            })
            .collect();
        RunFolder {
            dir: dir.to_path_buf(),
            test_name: run.test,
            timestamp: run.timestamp,
            history,
            test,
            results,
            node_files: node_files(&dir.join("nodes")),
            files,
        }
    }

    /// Sentences saying which files are missing or unreadable, and what that costs.
    pub fn missing(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.history {
            Loaded::Missing => out.push(
                "history.jsonl is missing (and results.json names no readable history): no plots and no timeline."
                    .to_string(),
            ),
            Loaded::Bad(e) => out.push(format!("the history could not be read: {e}")),
            Loaded::Read(h) => {
                if !h.inside {
                    out.push(format!(
                        "history.jsonl is not in this folder; the history was read from {}, named in results.json.",
                        h.source
                    ));
                }
                if let Some(line) = h.truncated_line {
                    out.push(format!(
                        "the history's line {line} was cut off mid-write (the run was interrupted) and is not shown."
                    ));
                } else if h.inside && !h.whole && !matches!(self.test, Loaded::Missing) {
                    out.push(
                        "the history does not end with the record a run writes once it has written everything: the run did not finish writing it, and what is shown is a prefix."
                            .to_string(),
                    );
                }
            }
        }
        match &self.results {
            Loaded::Missing => out.push(
                "results.json is missing: the history was not checked, so there is no verdict."
                    .to_string(),
            ),
            Loaded::Bad(e) => out.push(format!("results.json could not be read: {e}")),
            Loaded::Read(_) => {}
        }
        match &self.test {
            Loaded::Missing => out.push(
                "test.yaml is missing (a history checked offline): no test parameters, seed or replay command."
                    .to_string(),
            ),
            Loaded::Bad(e) => out.push(format!("test.yaml could not be read: {e}")),
            Loaded::Read(_) => {}
        }
        if self.node_files.is_empty() {
            out.push("no node logs (nodes/ is empty or missing).".to_string());
        }
        out
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A results.json, read with the schema's types.
pub fn read_results(path: &Path) -> Loaded<Results> {
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Loaded::Missing,
        Err(e) => Loaded::Bad(format!("{}: {e}", path.display())),
        Ok(text) => match results::from_json(&text) {
            Ok(r) => Loaded::Read(r),
            Err(e) => Loaded::Bad(format!("{}:{e}", path.display())),
        },
    }
}

/// history.jsonl in the folder, else the (only) history results.json names.
fn read_history(dir: &Path, path: &Path, results: &Loaded<Results>) -> Loaded<History> {
    let (path, source, inside) = if path.exists() {
        (path.to_path_buf(), "history.jsonl".to_string(), true)
    } else {
        let named = match results.get().map(|r| r.files.as_slice()) {
            Some([only]) => Some(only.path.as_str()),
            _ => None,
        };
        let Some(named) = named else {
            return Loaded::Missing;
        };
        // As given on the command line: relative to where check ran, or to the folder.
        let candidates = [PathBuf::from(named), dir.join(named)];
        match candidates.into_iter().find(|p| p.is_file()) {
            Some(p) => (p, named.to_string(), false),
            None => return Loaded::Missing,
        }
    };
    match read_path(&path, Format::Auto) {
        Ok(mut h) => {
            let whole = h
                .ops
                .last()
                .is_some_and(|o| !o.is_client() && o.f == crate::history::jsonl::END_OF_HISTORY);
            if whole {
                h.ops.pop();
            }
            Loaded::Read(History {
                ops: h.ops,
                source,
                inside,
                truncated_line: h.truncated_line,
                whole,
            })
        }
        Err(e) => Loaded::Bad(e.to_string()),
    }
}

/// `nodes/<node>/<file>`, sorted, bounded.
fn node_files(nodes: &Path) -> Vec<NodeFile> {
    let mut out = Vec::new();
    for node in sorted_entries(nodes).into_iter().take(NODES_MAX) {
        if !node.1.is_dir() {
            continue;
        }
        for file in sorted_entries(&node.1).into_iter().take(NODE_FILES_MAX) {
            if let Ok(meta) = std::fs::metadata(&file.1)
                && meta.is_file()
            {
                out.push(NodeFile {
                    node: node.0.clone(),
                    name: file.0,
                    bytes: meta.len(),
                });
            }
        }
    }
    out
}

fn sorted_entries(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{OpType, Process};
    use serde_json::json;

    fn op(index: u64, kind: OpType) -> Op {
        Op {
            index,
            time: index,
            process: Process::Client(0),
            kind,
            f: "read".into(),
            value: json!([1, null]),
            node: None,
            error: None,
        }
    }

    #[test]
    fn the_end_record_is_no_event_and_a_run_history_without_it_is_a_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let ops = vec![op(0, OpType::Invoke), op(1, OpType::Ok)];
        crate::history::jsonl::write_file(&dir.path().join("history.jsonl"), &ops).unwrap();
        std::fs::write(dir.path().join("test.yaml"), "name: t\n").unwrap();
        let folder = RunFolder::read(dir.path());
        let Loaded::Read(h) = &folder.history else {
            panic!("the history reads")
        };
        assert_eq!((h.ops.len(), h.whole), (2, true));
        let prefix = "the history does not end with the record";
        assert!(!folder.missing().iter().any(|m| m.starts_with(prefix)));

        let text = std::fs::read_to_string(dir.path().join("history.jsonl")).unwrap();
        let cut: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        std::fs::write(dir.path().join("history.jsonl"), cut).unwrap();
        let folder = RunFolder::read(dir.path());
        assert!(
            folder.missing().iter().any(|m| m.starts_with(prefix)),
            "{:?}",
            folder.missing()
        );
    }
}
