//! Test definitions: what a test is (db, bugs, workload, nemesis, hosts,
//! timing, seed), how it is written (flags, YAML test and suite files,
//! presets), and how raw input is resolved into one validated [`TestSpec`]
//! with every default filled in. That resolved test is stored as test.yaml
//! and replays the run.
//!
//! Not here: what a nemesis spec means (`nemesis/` reads it), how hosts are
//! made (`cluster/`), how a test runs (`runner/`).

pub mod test;
pub mod workload;

pub use crate::span::Span;
pub use test::{Db, Hosts, NemesisRef, Shard, Suite, Test, TestSpec, WorkloadRef, resolve};
pub use workload::{CheckerName, WorkloadKind, WorkloadSpec};

use std::fmt;
use std::path::{Path, PathBuf};

/// A bad test definition: what is wrong and where (file:line:column when known).
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteError {
    pub path: PathBuf,
    pub position: Option<(usize, usize)>,
    pub message: String,
}

impl fmt::Display for SuiteError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for SuiteError {}

impl SuiteError {
    pub fn new(path: &Path, position: Option<(usize, usize)>, message: impl Into<String>) -> Self {
        SuiteError {
            path: path.to_path_buf(),
            position,
            message: message.into(),
        }
    }

    /// An error about `needle` in `text`: points at its first occurrence when
    /// it can be found (serde reports positions only for syntax errors).
    pub fn at(path: &Path, text: &str, needle: &str, message: impl Into<String>) -> Self {
        SuiteError::new(path, locate(text, needle), message)
    }
}

/// Parses YAML text into `T`, with serde's error turned into file:line:column.
pub fn from_yaml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, SuiteError> {
    serde_yaml_ng::from_str(text).map_err(|e| {
        let message = yaml_message(&e);
        // Errors from inside an inline map lose their position (serde_yaml_ng
        // re-parses it from a value): find an unknown field by its name.
        let unknown = message
            .strip_prefix("unknown field `")
            .and_then(|m| m.split('`').next());
        let position = unknown
            .and_then(|field| locate(text, field))
            .or(e.location().map(|l| (l.line(), l.column())));
        SuiteError::new(path, position, message)
    })
}

/// serde_yaml_ng appends "at line L column C" to its messages; the position is
/// already in front, so drop it there.
fn yaml_message(e: &serde_yaml_ng::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// The 1-based line and column of the first whole-word occurrence of `needle`
/// outside comments.
fn locate(text: &str, needle: &str) -> Option<(usize, usize)> {
    if needle.is_empty() {
        return None;
    }
    for (n, line) in text.lines().enumerate() {
        let code = line.split(" #").next().unwrap_or(line);
        let mut from = 0;
        while let Some(i) = code[from..].find(needle) {
            let start = from + i;
            let end = start + needle.len();
            let word =
                |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-');
            if !word(code[..start].chars().next_back()) && !word(code[end..].chars().next()) {
                return Some((n + 1, start + 1));
            }
            from = end;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_whole_words_outside_comments() {
        let text = "a: x # keys\nkeys: 3\nmore_keys: 1\n";
        assert_eq!(locate(text, "keys"), Some((2, 1)));
        assert_eq!(locate(text, "nothing"), None);
    }
}
