//! Test definitions: what a test is (db, bugs, workload, nemesis, hosts,
//! timing, seed), how it is written (flags, YAML test and suite files,
//! presets), and how raw input is resolved into one validated [`TestSpec`]
//! with every default filled in. That resolved test is stored as test.yaml
//! and replays the run.
//!
//! Not here: what a nemesis spec means (`nemesis/` reads it), how hosts are
//! made (`cluster/`), how a test runs (`runner/`).

pub mod test;

pub use crate::span::Span;
pub use test::{Hosts, NemesisRef, Shard, Suite, Test, TestSpec, WorkloadRef, resolve};

use crate::yaml::{self, KeyPath, YamlError, position_near};
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

    /// An error about the place `at` in the file's `text`, or the nearest
    /// place above it that is written (the map a missing key belongs in),
    /// worded `place: message`.
    pub fn at(path: &Path, text: &str, at: &KeyPath, message: &str) -> Self {
        let (place, position) = position_near(text, at);
        SuiteError::new(path, Some(position), place.message(message))
    }

    fn yaml(path: &Path, e: YamlError) -> Self {
        SuiteError::new(path, e.position, e.message)
    }
}

/// Parses YAML text into `T`, with every error at file:line:column (see
/// `crate::yaml`: nesting and excerpt limits).
pub fn from_yaml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, SuiteError> {
    yaml::from_str(text).map_err(|e| SuiteError::yaml(path, e))
}

/// Reads a YAML file (at most `yaml::FILE_BYTES_MAX`, UTF-8).
pub fn read(path: &Path) -> Result<String, SuiteError> {
    yaml::read_file(path).map_err(|e| SuiteError::yaml(path, e))
}
