//! [`Unsynced`]: what a file system's page cache holds that the disk does
//! not, kept as undo records over the backing files.
//!
//! Every write goes to the backing file at once (so reads, sizes and
//! listings are the backing directory's own), and what it overwrote is kept
//! here until an fsync makes it durable. A power loss ([`Unsynced::clear`])
//! puts back, newest first, everything that was overwritten since the last
//! fsync of each file, and removes files whose creation no fsync of their
//! directory made durable: the backing directory is then what a disk would
//! hold after the machine lost power. Undo rather than redo records keep
//! the pass-through trivially right: nothing reads through this cache.
//!
//! Not tracked: renames and unlinks (a power loss does not bring back a
//! removed or replaced file).

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The most bytes of overwritten data the cache holds. Past it, a file's
/// records are dropped as if the OS had written that file back on its own
/// (a real page cache does, under memory pressure), and counted.
pub const MAX_HELD_BYTES: u64 = 256 << 20;

/// What one un-synced change overwrote: writing `old` back at `offset` and
/// setting the length to `old_len` undoes it.
#[derive(Debug)]
struct Undo {
    offset: u64,
    old: Vec<u8>,
    old_len: u64,
}

/// The last un-synced write to a file, whole, so that a torn power loss can
/// put a prefix of it back.
#[derive(Debug)]
struct LastWrite {
    offset: u64,
    data: Vec<u8>,
}

#[derive(Debug, Default)]
struct FileLog {
    undo: Vec<Undo>,
    last: Option<LastWrite>,
    held: u64,
}

/// How a power loss treats the last un-synced write to each file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Every un-synced write is gone.
    Clear,
    /// Every un-synced write is gone but the last one to each file, of which
    /// a strict prefix (half, rounded down) is on disk.
    Torn,
}

/// What a power loss did to one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lost {
    pub path: String,
    /// Writes and truncations undone.
    pub changes: usize,
    /// With [`Loss::Torn`]: the bytes of the last write kept, and its length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub torn: Option<(u64, u64)>,
    /// The file was created and never made durable: it is gone.
    pub removed: bool,
}

/// The un-synced changes of every file, by inode number.
#[derive(Debug, Default)]
pub struct Unsynced {
    files: BTreeMap<u64, FileLog>,
    /// Files and directories created and not yet made durable by an fsync
    /// of their parent directory.
    created: BTreeSet<u64>,
    held: u64,
    /// Files whose records were dropped at [`MAX_HELD_BYTES`].
    pub written_back: u64,
}

impl Unsynced {
    /// Records what writing `data` at `offset` of `file` (inode `ino`) will
    /// overwrite; call it right before the write.
    pub fn before_write(
        &mut self,
        ino: u64,
        file: &File,
        offset: u64,
        data: &[u8],
    ) -> io::Result<()> {
        let old_len = file.metadata()?.len();
        let end = (offset + data.len() as u64).min(old_len);
        let old = read_range(file, offset, end)?;
        self.push(
            ino,
            Undo {
                offset,
                old,
                old_len,
            },
            Some(LastWrite {
                offset,
                data: data.to_vec(),
            }),
        );
        Ok(())
    }

    /// Records what setting `file`'s length to `new_len` will cut off.
    pub fn before_truncate(&mut self, ino: u64, file: &File, new_len: u64) -> io::Result<()> {
        let old_len = file.metadata()?.len();
        let old = read_range(file, new_len, old_len)?;
        self.push(
            ino,
            Undo {
                offset: new_len.min(old_len),
                old,
                old_len,
            },
            None,
        );
        Ok(())
    }

    fn push(&mut self, ino: u64, undo: Undo, last: Option<LastWrite>) {
        let size = (undo.old.len() + last.as_ref().map_or(0, |l| l.data.len())) as u64;
        let log = self.files.entry(ino).or_default();
        // Only the last write is kept whole.
        let previous_last = log.last.take().map_or(0, |l| l.data.len() as u64);
        log.held = log.held - previous_last + size;
        self.held = self.held - previous_last + size;
        log.undo.push(undo);
        log.last = last;
        if self.held > MAX_HELD_BYTES {
            self.synced(ino);
            self.written_back += 1;
        }
        debug_assert_eq!(
            self.held,
            self.files.values().map(|l| l.held).sum::<u64>(),
            "the held total is the files' sum"
        );
    }

    /// `ino` was fsync'd (or fdatasync'd): its data is durable.
    pub fn synced(&mut self, ino: u64) {
        if let Some(log) = self.files.remove(&ino) {
            self.held -= log.held;
        }
    }

    /// `ino` was created: it is lost in a power loss until its directory is fsync'd.
    pub fn created(&mut self, ino: u64) {
        self.created.insert(ino);
    }

    /// Directory `dir` was fsync'd: the entries in it now are durable.
    pub fn dir_synced(&mut self, dir: u64, parent_of: impl Fn(u64) -> Option<u64>) {
        self.created.retain(|&ino| parent_of(ino) != Some(dir));
    }

    /// Everything is durable as it is now (a sync of the whole disk): no
    /// change is left to undo.
    pub fn checkpoint(&mut self) {
        self.files.clear();
        self.created.clear();
        self.held = 0;
    }

    /// `ino` was removed: nothing of it is left to undo.
    pub fn forget(&mut self, ino: u64) {
        self.synced(ino);
        self.created.remove(&ino);
    }

    /// How many of a file's first bytes are as they were at its last fsync
    /// (`len` is its length now): the prefix no un-synced write or truncate
    /// touched. None of a file whose creation is not durable.
    pub fn durable_len(&self, ino: u64, len: u64) -> u64 {
        if self.created.contains(&ino) {
            return 0;
        }
        self.files.get(&ino).map_or(len, |log| {
            log.undo
                .iter()
                .fold(len, |end, u| end.min(u.offset).min(u.old_len))
        })
    }

    /// How many files have un-synced changes, and how many bytes are held.
    pub fn pending(&self) -> (usize, usize, u64) {
        (self.files.len(), self.created.len(), self.held)
    }

    /// The power loss: undoes every un-synced change on the backing files
    /// (found by `path_of`), removes every file not made durable, and makes
    /// the result durable. Forgets everything it undid.
    pub fn lose(
        &mut self,
        loss: Loss,
        path_of: impl Fn(u64) -> Option<PathBuf>,
    ) -> io::Result<Vec<Lost>> {
        let mut lost = Vec::new();
        for (ino, log) in std::mem::take(&mut self.files) {
            let Some(path) = path_of(ino) else { continue };
            if self.created.contains(&ino) {
                continue; // removed below
            }
            let file = OpenOptions::new().write(true).open(&path)?;
            for u in log.undo.iter().rev() {
                file.write_all_at(&u.old, u.offset)?;
                file.set_len(u.old_len)?;
            }
            let torn = match (loss, &log.last) {
                (Loss::Torn, Some(last)) if !last.data.is_empty() => {
                    let keep = last.data.len() / 2;
                    debug_assert!(keep < last.data.len(), "a strict prefix");
                    file.write_all_at(&last.data[..keep], last.offset)?;
                    Some((keep as u64, last.data.len() as u64))
                }
                _ => None,
            };
            file.sync_all()?;
            lost.push(Lost {
                path: path.display().to_string(),
                changes: log.undo.len(),
                torn,
                removed: false,
            });
        }
        self.held = 0;
        // Children before their directories: deepest paths first.
        let mut created: Vec<PathBuf> = std::mem::take(&mut self.created)
            .into_iter()
            .filter_map(&path_of)
            .collect();
        created.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for path in created {
            remove(&path)?;
            if let Some(dir) = path.parent() {
                File::open(dir)?.sync_all()?;
            }
            lost.push(Lost {
                path: path.display().to_string(),
                changes: 0,
                torn: None,
                removed: true,
            });
        }
        Ok(lost)
    }
}

/// Bytes `[from, to)` of `file` (fewer if it is shorter).
fn read_range(file: &File, from: u64, to: u64) -> io::Result<Vec<u8>> {
    if to <= from {
        return Ok(Vec::new());
    }
    let mut buf = vec![0u8; (to - from) as usize];
    let mut got = 0usize;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], from + got as u64)? {
            0 => break,
            n => got += n,
        }
    }
    buf.truncate(got);
    Ok(buf)
}

fn remove(path: &Path) -> io::Result<()> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn ino(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().ino()
    }

    /// Writes through the cache as the file system does: record, then write.
    fn write(cache: &mut Unsynced, path: &Path, offset: u64, data: &[u8]) {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        cache.before_write(ino(path), &f, offset, data).unwrap();
        f.write_all_at(data, offset).unwrap();
    }

    #[test]
    fn a_power_loss_puts_back_what_was_there_at_the_last_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let mut cache = Unsynced::default();
        write(&mut cache, &path, 2, b"ab");
        cache.synced(ino(&path));
        write(&mut cache, &path, 8, b"XYZW");
        write(&mut cache, &path, 0, b"Q");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        cache.before_truncate(ino(&path), &f, 3).unwrap();
        f.set_len(3).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"Q1a");
        let lost = cache
            .lose(Loss::Clear, |i| (i == ino(&path)).then(|| path.clone()))
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"01ab456789");
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].changes, 3);
        assert_eq!(cache.pending(), (0, 0, 0));
    }

    #[test]
    fn a_torn_loss_keeps_a_strict_prefix_of_the_last_write_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, b"head").unwrap();
        let mut cache = Unsynced::default();
        write(&mut cache, &path, 4, b"first");
        write(&mut cache, &path, 9, b"second");
        let lost = cache
            .lose(Loss::Torn, |i| (i == ino(&path)).then(|| path.clone()))
            .unwrap();
        // "first" is gone (a hole of zeros), half of "second" is there.
        assert_eq!(std::fs::read(&path).unwrap(), b"head\0\0\0\0\0sec");
        assert_eq!(lost[0].torn, Some((3, 6)));
    }

    #[test]
    fn a_created_file_is_gone_unless_its_directory_was_fsynced() {
        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("kept");
        let lost_file = dir.path().join("lost");
        std::fs::write(&kept, b"k").unwrap();
        std::fs::write(&lost_file, b"l").unwrap();
        let root = ino(dir.path());
        let mut cache = Unsynced::default();
        cache.created(ino(&kept));
        cache.dir_synced(root, |_| Some(root));
        cache.created(ino(&lost_file));
        let (k, l) = (ino(&kept), ino(&lost_file));
        let paths = |i| {
            if i == k {
                Some(kept.clone())
            } else if i == l {
                Some(lost_file.clone())
            } else {
                None
            }
        };
        let lost = cache.lose(Loss::Clear, paths).unwrap();
        assert!(kept.exists());
        assert!(!lost_file.exists());
        assert!(lost[0].removed);
    }

    #[test]
    fn the_durable_prefix_ends_where_the_first_unsynced_change_starts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, b"0123456789").unwrap();
        let mut cache = Unsynced::default();
        let i = ino(&path);
        assert_eq!(cache.durable_len(i, 10), 10, "nothing un-synced");
        write(&mut cache, &path, 10, b"appended");
        assert_eq!(cache.durable_len(i, 18), 10, "an append");
        write(&mut cache, &path, 4, b"x");
        assert_eq!(cache.durable_len(i, 18), 4, "an overwrite further in");
        cache.synced(i);
        assert_eq!(cache.durable_len(i, 18), 18);
        cache.created(i);
        assert_eq!(cache.durable_len(i, 18), 0, "a create not yet durable");
    }

    #[test]
    fn the_cache_is_bounded_and_says_what_it_wrote_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hot");
        let chunk = vec![7u8; 4 << 20];
        std::fs::write(&path, &chunk).unwrap();
        let mut cache = Unsynced::default();
        // Overwrites keep what they overwrote: 4 MiB each.
        for _ in 0..(MAX_HELD_BYTES / chunk.len() as u64 + 2) {
            write(&mut cache, &path, 0, &chunk);
            assert!(cache.pending().2 <= MAX_HELD_BYTES);
        }
        assert_eq!(cache.written_back, 1);
    }
}
