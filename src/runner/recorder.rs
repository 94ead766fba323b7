//! The history being recorded: every invocation and completion gets the next
//! index and the time since the run started, is appended to history.jsonl
//! (written whole lines at a time, at least every [`FLUSH_EVERY`], so a
//! crashed run leaves a checkable prefix), and is kept in memory for the
//! checkers. Counters feed the progress display.

use crate::history::jsonl::JsonlWriter;
use crate::history::{Op, OpType, Process};
use serde_json::Value;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Completions so far, by type (client ops only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub invoked: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

/// The longest a recorded op waits in memory before it is on its way to disk.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);

struct Inner {
    writer: Option<JsonlWriter>,
    last_flush: Instant,
    ops: Vec<Op>,
    counts: Counts,
    /// The first failure to write the file; the history stays in memory.
    write_error: Option<String>,
    /// Set by [`Recorder::finish`]: later ops are counted, never kept.
    closed: bool,
    late: u64,
}

pub struct Recorder {
    start: Instant,
    inner: Mutex<Inner>,
}

impl Recorder {
    /// Records to `path` (`None`: in memory only); time 0 is `start`.
    pub fn create(path: Option<&Path>, start: Instant) -> std::io::Result<Recorder> {
        let writer = path.map(JsonlWriter::create).transpose()?;
        Ok(Recorder {
            start,
            inner: Mutex::new(Inner {
                writer,
                last_flush: start,
                ops: Vec::new(),
                counts: Counts::default(),
                write_error: None,
                closed: false,
                late: 0,
            }),
        })
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    /// Appends an op; its index and time are assigned here, under the lock, so
    /// both grow with the history.
    pub fn record(
        &self,
        process: Process,
        kind: OpType,
        f: &str,
        value: Value,
        node: Option<String>,
        error: Option<Value>,
    ) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let index = inner.ops.len() as u64;
        if inner.closed {
            // A straggler after the history was taken: the run already
            // waited (bounded) for every worker, so this is a bug to see in
            // the log, never a reason to lose the history taken.
            inner.late += 1;
            return index;
        }
        let op = Op {
            index,
            time: self.start.elapsed().as_nanos() as u64,
            process,
            kind,
            f: f.to_string(),
            value,
            node,
            error,
        };
        debug_assert!(
            inner.ops.last().is_none_or(|last| last.time <= op.time),
            "history time never goes back"
        );
        let flush = inner.last_flush.elapsed() >= FLUSH_EVERY;
        if let Some(w) = inner.writer.as_mut()
            && let Err(e) = w
                .append(&op)
                .and_then(|()| if flush { w.flush() } else { Ok(()) })
        {
            inner.write_error.get_or_insert_with(|| e.to_string());
            inner.writer = None;
        }
        if flush {
            inner.last_flush = Instant::now();
        }
        if op.is_client() {
            match kind {
                OpType::Invoke => inner.counts.invoked += 1,
                OpType::Ok => inner.counts.ok += 1,
                OpType::Fail => inner.counts.fail += 1,
                OpType::Info => inner.counts.info += 1,
            }
        }
        inner.ops.push(op);
        index
    }

    /// Writes what waits to history.jsonl (the progress display calls this
    /// on every tick, so a quiet run is on disk too).
    pub fn flush(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = inner.writer.as_mut()
            && let Err(e) = w.flush()
        {
            inner.write_error.get_or_insert_with(|| e.to_string());
            inner.writer = None;
        }
        inner.last_flush = Instant::now();
    }

    pub fn counts(&self) -> Counts {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).counts
    }

    /// Takes the recorded history and closes the file; returns the ops and
    /// why writing the file failed, if it did. It takes `&self`, so a task
    /// that still holds the recorder can never keep the history from the
    /// checkers: what it records later is dropped and logged.
    pub fn finish(&self) -> (Vec<Op>, Option<String>) {
        self.flush();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.closed = true;
        let end_ns = self.start.elapsed().as_nanos() as u64;
        if let Some(w) = inner.writer.take()
            && let Err(e) = w.close(end_ns)
        {
            inner.write_error.get_or_insert_with(|| e.to_string());
        }
        (std::mem::take(&mut inner.ops), inner.write_error.clone())
    }

    /// Ops recorded after [`Recorder::finish`] (and dropped).
    pub fn late(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).late
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_in_order_to_file_and_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let r = Recorder::create(Some(&path), Instant::now()).unwrap();
        r.record(
            Process::Client(0),
            OpType::Invoke,
            "read",
            json!([1, null]),
            None,
            None,
        );
        r.record(
            Process::Nemesis,
            OpType::Info,
            "start-partition",
            json!({}),
            None,
            None,
        );
        r.record(
            Process::Client(0),
            OpType::Info,
            "read",
            json!([1, null]),
            Some("n1".into()),
            Some(json!("timeout")),
        );
        assert_eq!(
            r.counts(),
            Counts {
                invoked: 1,
                ok: 0,
                fail: 0,
                info: 1
            }
        );
        let (ops, err) = r.finish();
        assert_eq!(err, None);
        let mut on_disk = crate::history::jsonl::read_file(&path).unwrap().ops;
        let end = on_disk.pop().expect("the end record");
        assert_eq!(on_disk, ops);
        assert_eq!((end.f.as_str(), end.index), ("end-of-history", 3));
        assert!(crate::history::jsonl::ends_whole(&path).unwrap());
        assert_eq!(
            ops.iter().map(|o| o.index).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
    }
}
