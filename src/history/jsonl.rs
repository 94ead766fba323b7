//! Streaming JSONL reading and writing of histories: one op per line.
//!
//! The writer writes each op with one `write` call, so a crashed run leaves a
//! prefix that reads back. The reader accepts such a prefix: a malformed *last*
//! line without a newline is reported as truncated, not as an error.

use super::op::{Op, OpType, Process};
use super::text::{bad_utf8_at, clip_message};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum HistoryError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}:{line}:{column}: {message}")]
    Malformed {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// The `f` of the record that ends a history a run wrote whole: a nemesis
/// `info` op after every other, its value `{"ops": N}` (the ops before it).
/// A run's history.jsonl that does not end with it was cut short, even where
/// the cut fell between two lines.
pub const END_OF_HISTORY: &str = "end-of-history";

/// The end record after `ops` ops, at `time_ns`.
fn end_of(ops: u64, time_ns: u64) -> Op {
    Op {
        index: ops,
        time: time_ns,
        process: Process::Nemesis,
        kind: OpType::Info,
        f: END_OF_HISTORY.into(),
        value: serde_json::json!({ "ops": ops }),
        node: None,
        error: None,
    }
}

/// The end record of a whole history `ops`: after its last op.
fn end_record(ops: &[Op]) -> Op {
    let last = ops.last();
    end_of(last.map_or(0, |o| o.index + 1), last.map_or(0, |o| o.time))
}

/// Whether the last line of the JSONL file at `path` is the end record.
pub fn ends_whole(path: &Path) -> io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    /// Far more than an end record takes.
    const TAIL_BYTES: u64 = 4096;
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))?;
    let mut tail = Vec::new();
    file.take(TAIL_BYTES).read_to_end(&mut tail)?;
    let Some(body) = tail.strip_suffix(b"\n") else {
        return Ok(false);
    };
    let last = body.rsplit(|&b| b == b'\n').next().unwrap_or(body);
    Ok(serde_json::from_slice::<Op>(last)
        .is_ok_and(|op| op.process == Process::Nemesis && op.f == END_OF_HISTORY))
}

/// What reading a history file gave.
#[derive(Debug, Default)]
pub struct ReadHistory {
    pub ops: Vec<Op>,
    /// Set when the last line had no newline and did not parse: the run that
    /// wrote it was cut off mid-write. Holds that line's number.
    pub truncated_line: Option<usize>,
}

/// Reads a JSONL history. A malformed line is an error naming file, line and
/// column, except a cut-off last line (see [`ReadHistory::truncated_line`]).
pub fn read_file(path: &Path) -> Result<ReadHistory, HistoryError> {
    let file = File::open(path).map_err(|source| HistoryError::Io {
        path: path.into(),
        source,
    })?;
    read(BufReader::with_capacity(1 << 20, file), path)
}

/// Like [`read_file`] over any reader; `path` only names the source in errors.
pub fn read(mut reader: impl BufRead, path: &Path) -> Result<ReadHistory, HistoryError> {
    let mut out = ReadHistory::default();
    let mut buf = Vec::new();
    let mut line = 0usize;
    let mut offset = 0usize; // of the line in the file, for UTF-8 errors
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| HistoryError::Io {
                path: path.into(),
                source,
            })?;
        if n == 0 {
            return Ok(out);
        }
        line += 1;
        let complete = buf.ends_with(b"\n");
        let text = match std::str::from_utf8(&buf) {
            Ok(text) => text.trim(),
            // A crash may cut a character in two on the last line.
            Err(_) if !complete => {
                out.truncated_line = Some(line);
                return Ok(out);
            }
            Err(e) => {
                let bad = bad_utf8_at(&buf, e.valid_up_to());
                return Err(HistoryError::Malformed {
                    path: path.into(),
                    line,
                    column: bad.column,
                    message: format!(
                        "not valid UTF-8: byte 0x{:02x} at byte offset {}",
                        bad.byte,
                        offset + bad.offset
                    ),
                });
            }
        };
        offset += n;
        if text.is_empty() {
            continue;
        }
        match serde_json::from_str::<Op>(text) {
            Ok(op) => {
                debug_assert!(!text.contains('\n'), "one op per line");
                out.ops.push(op);
            }
            Err(_) if !complete => {
                out.truncated_line = Some(line);
                return Ok(out);
            }
            Err(e) => {
                return Err(HistoryError::Malformed {
                    path: path.into(),
                    line,
                    column: e.column(),
                    message: format!("not a history op: {}", clip_message(&e.to_string())),
                });
            }
        }
    }
}

/// Appends ops to a history file, one line each. Lines are gathered and
/// written whole, when [`JsonlWriter::BATCH_BYTES`] are waiting or the caller
/// flushes, so a crash leaves whole lines behind (at most the last one cut)
/// and loses at most what was not yet flushed.
pub struct JsonlWriter {
    file: File,
    buf: Vec<u8>,
    next_index: u64,
}

impl JsonlWriter {
    /// Written at once when this much is waiting.
    pub const BATCH_BYTES: usize = 64 * 1024;

    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(JsonlWriter {
            file: File::create(path)?,
            buf: Vec::with_capacity(2 * Self::BATCH_BYTES),
            next_index: 0,
        })
    }

    /// Appends `op`; its index must follow the previous one.
    pub fn append(&mut self, op: &Op) -> io::Result<()> {
        debug_assert_eq!(
            op.index, self.next_index,
            "history indices are dense and ordered"
        );
        serde_json::to_writer(&mut self.buf, op).map_err(io::Error::other)?;
        self.buf.push(b'\n');
        self.next_index = op.index + 1;
        if self.buf.len() >= Self::BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes every waiting line to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Appends the end record (see [`END_OF_HISTORY`]) at `time_ns`, writes
    /// what waits and makes the file durable: a history that is whole on
    /// return says so, and survives a crash of the machine after it.
    pub fn close(mut self, time_ns: u64) -> io::Result<()> {
        self.append(&end_of(self.next_index, time_ns))?;
        self.flush()?;
        self.file.sync_all()
    }
}

impl Drop for JsonlWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Writes a whole history to `path`, ended by the end record (through a
/// temporary file, so a reader never sees half of it).
pub fn write_file(path: &Path, ops: &[Op]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // A unique temporary, removed if anything fails before the rename.
    let mut w = io::BufWriter::new(tempfile::NamedTempFile::new_in(dir)?);
    for op in ops.iter().chain(std::iter::once(&end_record(ops))) {
        serde_json::to_writer(&mut w, op).map_err(io::Error::other)?;
        w.write_all(b"\n")?;
    }
    let tmp = w.into_inner().map_err(io::IntoInnerError::into_error)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::op::{OpType, Process};
    use serde_json::json;

    fn sample() -> Vec<Op> {
        vec![
            Op {
                index: 0,
                time: 10,
                process: Process::Client(3),
                kind: OpType::Invoke,
                f: "txn".into(),
                value: json!([["append", 5, 1], ["r", 6, null]]),
                node: None,
                error: None,
            },
            Op {
                index: 1,
                time: 20,
                process: Process::Nemesis,
                kind: OpType::Info,
                f: "partition".into(),
                value: json!({"n1": ["n2"]}),
                node: Some("n1".into()),
                error: Some(json!("timeout")),
            },
        ]
    }

    #[test]
    fn round_trips_through_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let mut w = JsonlWriter::create(&path).unwrap();
        for op in sample() {
            w.append(&op).unwrap();
        }
        assert_eq!(
            read_file(&path).unwrap().ops,
            vec![],
            "small appends wait for a flush"
        );
        w.flush().unwrap();
        let read = read_file(&path).unwrap();
        assert_eq!(read.ops, sample());
        assert_eq!(read.truncated_line, None);
    }

    #[test]
    fn a_whole_history_ends_with_its_end_record_and_a_cut_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        write_file(&path, &sample()).unwrap();
        assert!(ends_whole(&path).unwrap());
        let mut read = read_file(&path).unwrap().ops;
        let end = read.pop().unwrap();
        assert_eq!(read, sample());
        assert_eq!(end.f, END_OF_HISTORY);
        assert_eq!(end.value, json!({ "ops": sample().len() }));
        let text = std::fs::read_to_string(&path).unwrap();
        let cut = text.lines().take(2).collect::<Vec<_>>().join("\n") + "\n";
        std::fs::write(&path, cut).unwrap();
        assert!(!ends_whole(&path).unwrap(), "cut between two lines");
        std::fs::write(&path, &text[..text.len() - 1]).unwrap();
        assert!(
            !ends_whole(&path).unwrap(),
            "no newline after the end record"
        );
    }

    #[test]
    fn a_cut_off_last_line_is_truncation_not_an_error() {
        let text = "{\"index\":0,\"time\":1,\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}\n{\"index\":1,\"ti";
        let read = read(text.as_bytes(), Path::new("h.jsonl")).unwrap();
        assert_eq!(read.ops.len(), 1);
        assert_eq!(read.truncated_line, Some(2));
    }

    #[test]
    fn a_malformed_line_names_file_line_and_column() {
        let text = "{\"index\":0,\"time\":1,\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}\n{\"index\":1,\"time\":2,\"process\":0,\"type\":\"okay\",\"f\":\"read\"}\n";
        let err = read(text.as_bytes(), Path::new("h.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("h.jsonl:2:"), "{err}");
        assert!(err.contains("okay"), "{err}");
    }
}
