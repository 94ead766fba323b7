//! An append-only record file with a CRC per record, fsync'd in groups: the
//! durable storage under every bundled system.
//!
//! Each record is `[len: u32 LE][crc32: u32 LE][payload]`. Opening a file
//! replays every whole record and cuts off a torn tail (a record cut short or
//! with a bad CRC, as kill -9 or a power loss leaves it). What a record means
//! is the system's business; this file only stores bytes.
//!
//! [`GroupCommit`] runs the file on its own thread: callers submit batches of
//! records and learn, through a channel, up to which batch everything is on
//! disk. Batches that arrive while an fsync runs share the next one.
//! Under the `no-fsync` bug ([`SyncMode::Lazy`]) the same thread writes
//! each batch at once and never syncs. A batch submitted unsynced
//! ([`GroupCommit::submit_unsynced`], the `vote-before-fsync` bug) is
//! reported once written; it is durable only when a later fsync covers it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use thiserror::Error;
use tokio::sync::mpsc;

/// The largest record a file may hold; a longer length field is a torn tail.
pub const MAX_RECORD_BYTES: usize = 16 << 20;
/// How many submitted batches may wait for the writer thread before
/// [`GroupCommit::submit`] blocks.
const MAX_QUEUED_BATCHES: usize = 1024;
/// How many queued batches one fsync may cover.
const MAX_BATCHES_PER_SYNC: usize = 4096;

#[derive(Debug, Error)]
pub enum WalError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// How records reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Written and fdatasync'd before a batch is reported durable.
    Fsync,
    /// The `no-fsync` bug: a batch is written (handed to the OS) and
    /// reported durable at once, never fsync'd, and neither is the directory
    /// that holds the new file. Nothing waits in the process: kill -9 loses
    /// nothing, a power loss (the `lose-unfsynced` disk fault) loses what the
    /// OS had not written back.
    Lazy,
}

/// What opening a file found.
#[derive(Debug, Default)]
pub struct Recovered {
    pub records: Vec<Vec<u8>>,
    /// Bytes cut off the end (a torn or corrupt tail); 0 for a clean file.
    pub torn_bytes: u64,
}

pub struct Wal {
    file: File,
    path: PathBuf,
    buf: Vec<u8>,
    mode: SyncMode,
}

impl Wal {
    /// Opens or creates the file, replays it and cuts off a torn tail.
    pub fn open(path: &Path, mode: SyncMode) -> Result<(Wal, Recovered), WalError> {
        let io_err = |source| WalError::Io {
            path: path.into(),
            source,
        };
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_err)?;
        // A new file's name is durable only once its directory is synced:
        // without this a power loss can take the whole log.
        if created && mode == SyncMode::Fsync {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            File::open(dir.unwrap_or(Path::new(".")))
                .and_then(|d| d.sync_all())
                .map_err(io_err)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_err)?;
        let (records, good_len) = parse(&bytes);
        let torn_bytes = (bytes.len() - good_len) as u64;
        if torn_bytes > 0 {
            file.set_len(good_len as u64).map_err(io_err)?;
            file.sync_all().map_err(io_err)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io_err)?;
        Ok((
            Wal {
                file,
                path: path.into(),
                buf: Vec::new(),
                mode,
            },
            Recovered {
                records,
                torn_bytes,
            },
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds a record to the in-process buffer; [`Wal::commit`] writes it.
    pub fn append(&mut self, payload: &[u8]) {
        debug_assert!(!payload.is_empty(), "an empty record reads as a hole");
        debug_assert!(
            payload.len() <= MAX_RECORD_BYTES,
            "record of {} bytes is too long",
            payload.len()
        );
        self.buf
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(&crc32(payload).to_le_bytes());
        self.buf.extend_from_slice(payload);
    }

    /// Writes every appended record and makes it durable (under
    /// [`SyncMode::Lazy`]: writes it, no fsync).
    pub fn commit(&mut self) -> io::Result<()> {
        self.write_out()?;
        match self.mode {
            SyncMode::Fsync => self.file.sync_data(),
            SyncMode::Lazy => Ok(()),
        }
    }

    /// Writes every appended record (hands it to the OS) without an fsync.
    fn write_out(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// Splits a file into whole, CRC-valid records; returns them and the length
/// of the good prefix.
fn parse(bytes: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let mut records = Vec::new();
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        // No record is empty: a zero length is a hole of zeros that a
        // power loss left (crc32 of nothing is 0, so it would pass).
        let Some(payload) = bytes
            .get(at + 8..at + 8 + len)
            .filter(|_| len > 0 && len <= MAX_RECORD_BYTES)
        else {
            break;
        };
        if crc32(payload) != crc {
            break;
        }
        records.push(payload.to_vec());
        at += 8 + len;
    }
    (records, at)
}

/// CRC-32 (IEEE 802.3, as zlib), bitwise: records are small and the fsync
/// dominates, so a table buys nothing worth its lines.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// A batch for the writer thread: (sequence number, records, fsync it).
type Batch = (u64, Vec<Vec<u8>>, bool);

/// A [`Wal`] on its own thread with group commit.
pub struct GroupCommit {
    tx: std_mpsc::SyncSender<Batch>,
    next_seq: u64,
}

impl GroupCommit {
    /// Starts the writer thread. It sends the sequence number of the last
    /// durable batch on `durable` after each fsync. On a write or fsync error
    /// the process exits: a node that cannot trust its disk must not answer.
    pub fn spawn(mut wal: Wal, durable: mpsc::Sender<u64>) -> GroupCommit {
        let (tx, rx) = std_mpsc::sync_channel::<Batch>(MAX_QUEUED_BATCHES);
        std::thread::Builder::new()
            .name("wal".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let group: Vec<Batch> = std::iter::once(first)
                        .chain(rx.try_iter().take(MAX_BATCHES_PER_SYNC))
                        .collect();
                    // Runs of alike batches, in order: a synced run is
                    // fsync'd (once) before it is reported; an unsynced one
                    // (the vote-before-fsync bug) once written, before the
                    // fsync of any run after it. Without the bug every
                    // batch is synced: one run, one fsync.
                    for run in group.chunk_by(|a, b| a.2 == b.2) {
                        for (_, records, _) in run {
                            records.iter().for_each(|r| wal.append(r));
                        }
                        let done = if run[0].2 {
                            wal.commit()
                        } else {
                            wal.write_out()
                        };
                        if let Err(e) = done {
                            fatal(&wal, &e);
                        }
                        let last_seq = run[run.len() - 1].0;
                        if durable.blocking_send(last_seq).is_err() {
                            return;
                        }
                    }
                }
            })
            .unwrap_or_else(|e| panic!("cannot start the wal thread: {e}"));
        GroupCommit { tx, next_seq: 1 }
    }

    /// Queues records to be written in one go; returns the batch's sequence
    /// number (from 1, increasing). Blocks only when the writer is
    /// [`MAX_QUEUED_BATCHES`] behind.
    pub fn submit(&mut self, records: Vec<Vec<u8>>) -> u64 {
        self.send(records, true)
    }

    /// As [`GroupCommit::submit`], but the batch is reported once written
    /// (handed to the OS), not fsync'd: the `vote-before-fsync` bug. A later
    /// synced batch makes it durable.
    pub fn submit_unsynced(&mut self, records: Vec<Vec<u8>>) -> u64 {
        self.send(records, false)
    }

    fn send(&mut self, records: Vec<Vec<u8>>, sync: bool) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.tx.send((seq, records, sync)).is_err() {
            // The writer thread only stops after exiting the process.
            tracing::error!("wal writer is gone");
        }
        seq
    }

    /// The sequence number of the last submitted batch (0 before any).
    pub fn last_submitted(&self) -> u64 {
        self.next_seq - 1
    }
}

fn fatal(wal: &Wal, e: &io::Error) -> ! {
    tracing::error!(path = %wal.path().display(), "cannot write the log, stopping: {e}");
    std::process::exit(70);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn records_survive_reopening_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (mut wal, rec) = Wal::open(&path, SyncMode::Fsync).unwrap();
        assert!(rec.records.is_empty());
        wal.append(b"one");
        wal.append(b"two");
        wal.commit().unwrap();
        drop(wal);
        // A record cut short, as kill -9 in the middle of a write leaves it.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 2, 3, 4, b'x']).unwrap();
        drop(f);
        let (mut wal, rec) = Wal::open(&path, SyncMode::Fsync).unwrap();
        assert_eq!(rec.records, vec![b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(rec.torn_bytes, 9);
        wal.append(b"three");
        wal.commit().unwrap();
        drop(wal);
        let (_, rec) = Wal::open(&path, SyncMode::Fsync).unwrap();
        assert_eq!(rec.records.len(), 3);
        assert_eq!(rec.torn_bytes, 0);
    }

    #[test]
    fn a_flipped_byte_ends_the_replay_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (mut wal, _) = Wal::open(&path, SyncMode::Fsync).unwrap();
        wal.append(b"good");
        wal.append(b"flipped");
        wal.commit().unwrap();
        drop(wal);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let (_, rec) = Wal::open(&path, SyncMode::Fsync).unwrap();
        assert_eq!(rec.records, vec![b"good".to_vec()]);
    }

    #[test]
    fn a_hole_of_zeros_ends_the_replay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (mut wal, _) = Wal::open(&path, SyncMode::Fsync).unwrap();
        wal.append(b"good");
        wal.commit().unwrap();
        drop(wal);
        // A torn power loss: a later write lost, a part of the one after it kept.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0u8; 16]).unwrap();
        f.write_all(&[4, 0, 0, 0]).unwrap();
        drop(f);
        let (_, rec) = Wal::open(&path, SyncMode::Fsync).unwrap();
        assert_eq!(rec.records, vec![b"good".to_vec()]);
        assert_eq!(rec.torn_bytes, 20);
    }

    #[tokio::test]
    async fn group_commit_reports_batches_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (wal, _) = Wal::open(&path, SyncMode::Fsync).unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let mut gc = GroupCommit::spawn(wal, tx);
        let seqs: Vec<u64> = (0..50u32)
            .map(|i| gc.submit(vec![i.to_le_bytes().to_vec()]))
            .collect();
        assert_eq!(seqs, (1..=50).collect::<Vec<u64>>());
        let mut last = 0;
        while last < 50 {
            let seq = rx.recv().await.unwrap();
            assert!(seq > last, "durable sequence numbers increase");
            last = seq;
        }
        drop(gc);
        let (_, rec) = Wal::open(&path, SyncMode::Fsync).unwrap();
        assert_eq!(rec.records.len(), 50);
    }
}
