//! [`Unsynced`]: what a file system's page cache holds that the disk does
//! not, kept as undo records over the backing files.
//!
//! Every write goes to the backing file at once (so reads, sizes and
//! listings are the backing directory's own), and what it overwrote is kept
//! here until an fsync makes it durable. Name changes — creates, renames,
//! unlinks and rmdirs — go through at once too and are kept, in order, until
//! an fsync of their directory (both directories, for a rename across two)
//! makes them durable, as on ext4 without `dirsync`. A removed or replaced
//! file is not deleted but moved to a hidden stash directory in the backing
//! directory ([`STASH_NAME`], which the file system never shows), so that it
//! can come back.
//!
//! A power loss ([`Unsynced::lose`]) undoes, newest first, every name change
//! not durable (a renamed file goes back to its old name, a file it replaced
//! comes back, an unlinked file comes back, a created one is removed), then
//! puts back everything overwritten since each file's last fsync: the
//! backing directory is then what a disk would hold after the machine lost
//! power. Undo rather than redo records keep the pass-through trivially
//! right: nothing reads through this cache.
//!
//! A name change made durable makes durable with it every earlier change to
//! the same file or the same name (a journal commits in order), so that the
//! changes left to undo never depend on one that stays.
//!
//! Bounded: past [`MAX_HELD_BYTES`] of overwritten data a file's records
//! are dropped; past [`MAX_NAME_CHANGES`] changes or [`MAX_STASHED_BYTES`]
//! in the stash the oldest change is made durable; both as if the OS had
//! written them back on its own, and counted.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The most bytes of overwritten data the cache holds. Past it, a file's
/// records are dropped as if the OS had written that file back on its own
/// (a real page cache does, under memory pressure), and counted.
pub const MAX_HELD_BYTES: u64 = 256 << 20;
/// The most bytes of removed or replaced files kept in the stash (disk, not
/// memory: they are renamed there, never copied). Past it the oldest name
/// change is made durable and its stashed file deleted.
pub const MAX_STASHED_BYTES: u64 = 1 << 30;
/// The most name changes held un-synced.
pub const MAX_NAME_CHANGES: usize = 65_536;
/// The hidden directory, in the backing directory, that holds removed and
/// replaced files until their removal is durable.
pub const STASH_NAME: &str = ".faultline-lazyfs-stash";
/// The root's inode number, as the file system shows it.
pub const ROOT: u64 = 1;
/// How deep a path may be rebuilt from parents (a cycle would be a bug).
const MAX_DEPTH: usize = 4096;

/// Inode -> (parent inode, name): where each inode was last seen.
pub type Nodes = HashMap<u64, (u64, OsString)>;

/// The backing path of `ino`.
pub fn path_in(backing: &Path, nodes: &Nodes, ino: u64) -> io::Result<PathBuf> {
    let mut names = Vec::new();
    let mut at = ino;
    while at != ROOT {
        let (parent, name) = nodes
            .get(&at)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        names.push(name.as_os_str());
        at = *parent;
        if names.len() > MAX_DEPTH {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
    }
    let mut path = backing.to_path_buf();
    path.extend(names.iter().rev());
    Ok(path)
}

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

/// A name in a directory: (the directory's inode, the name).
pub type Entry = (u64, OsString);

/// A file moved into the stash: its inode, its name there, its size.
#[derive(Debug)]
struct Stashed {
    ino: u64,
    name: String,
    bytes: u64,
}

/// One name change, as it was made.
#[derive(Debug)]
enum Change {
    Created {
        ino: u64,
        at: Entry,
    },
    Renamed {
        ino: u64,
        from: Entry,
        to: Entry,
        /// The file that was at `to`, now in the stash.
        replaced: Option<Stashed>,
    },
    Unlinked {
        stashed: Stashed,
        at: Entry,
    },
}

/// What two name changes may share: a file or a name.
#[derive(Debug, PartialEq, Eq, Hash)]
enum Key {
    Ino(u64),
    Entry(u64, OsString),
}

impl Change {
    fn keys(&self) -> Vec<Key> {
        let entry = |e: &Entry| Key::Entry(e.0, e.1.clone());
        match self {
            Change::Created { ino, at } => vec![Key::Ino(*ino), entry(at)],
            Change::Renamed {
                ino,
                from,
                to,
                replaced,
            } => {
                let mut keys = vec![Key::Ino(*ino), entry(from), entry(to)];
                keys.extend(replaced.as_ref().map(|s| Key::Ino(s.ino)));
                keys
            }
            Change::Unlinked { stashed, at } => vec![Key::Ino(stashed.ino), entry(at)],
        }
    }

    fn stashed(&self) -> Option<&Stashed> {
        match self {
            Change::Renamed { replaced, .. } => replaced.as_ref(),
            Change::Unlinked { stashed, .. } => Some(stashed),
            Change::Created { .. } => None,
        }
    }
}

/// A name change and the directories whose fsync it still waits for.
#[derive(Debug)]
struct NameChange {
    change: Change,
    unsynced_dirs: Vec<u64>,
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
    /// The backing file, where it is after the power loss (or was, if removed).
    pub path: String,
    /// Writes and truncations undone.
    pub changes: usize,
    /// With [`Loss::Torn`]: the bytes of the last write kept, and its length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub torn: Option<(u64, u64)>,
    /// The file was created and never made durable: it is gone.
    pub removed: bool,
    /// A rename was undone: the file is back at `path` from this name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
    /// The file was unlinked, or replaced by a rename, and that was never
    /// made durable: it is back at `path`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub restored: bool,
}

impl Lost {
    fn name_change(path: &Path) -> Lost {
        Lost {
            path: path.display().to_string(),
            changes: 0,
            torn: None,
            removed: false,
            renamed_from: None,
            restored: false,
        }
    }
}

/// What is not durable, for `status` and `checkpoint`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pending {
    /// Files with un-synced writes or truncations.
    pub files: usize,
    pub created: usize,
    pub renamed: usize,
    pub unlinked: usize,
    /// Overwritten bytes held in memory.
    pub held_bytes: u64,
    /// Bytes of removed or replaced files in the stash.
    pub stashed_bytes: u64,
}

/// The un-synced changes of every file, by inode number, and the name
/// changes, in order.
#[derive(Debug)]
pub struct Unsynced {
    files: BTreeMap<u64, FileLog>,
    names: VecDeque<NameChange>,
    held: u64,
    /// The stash directory (created when first needed).
    stash: PathBuf,
    stashed: u64,
    next_stash: u64,
    /// Files and name changes dropped at [`MAX_HELD_BYTES`],
    /// [`MAX_NAME_CHANGES`] or [`MAX_STASHED_BYTES`].
    pub written_back: u64,
}

impl Unsynced {
    /// Nothing un-synced, over the backing directory `backing` (the stash
    /// goes in it).
    pub fn new(backing: &Path) -> Unsynced {
        Unsynced {
            files: BTreeMap::new(),
            names: VecDeque::new(),
            held: 0,
            stash: backing.join(STASH_NAME),
            stashed: 0,
            next_stash: 0,
            written_back: 0,
        }
    }

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

    /// `ino` was created as `at`: it is lost in a power loss until its
    /// directory is fsync'd.
    pub fn created(&mut self, ino: u64, at: Entry) {
        let dir = at.0;
        self.push_name(Change::Created { ino, at }, vec![dir]);
    }

    /// Unlinks (or, with `dir`, rmdirs) `path`, the name `at` of inode
    /// `ino`, as the call would, but moves it to the stash so a power loss
    /// can bring it back. A file created and removed with nothing durable
    /// in between is simply deleted: no power loss can bring it back.
    pub fn unlink(&mut self, ino: u64, at: Entry, path: &Path, dir: bool) -> io::Result<()> {
        let meta = std::fs::symlink_metadata(path)?;
        if dir {
            if !meta.is_dir() {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            }
            if std::fs::read_dir(path)?.next().is_some() {
                return Err(io::Error::from_raw_os_error(libc::ENOTEMPTY));
            }
        } else if meta.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        if let Some(i) = self.undone_create(ino, &at) {
            if dir {
                std::fs::remove_dir(path)?;
            } else {
                std::fs::remove_file(path)?;
            }
            self.names.remove(i);
            self.synced(ino);
            return Ok(());
        }
        let stashed = self.stash_name(ino, meta.len())?;
        std::fs::rename(path, self.stash.join(&stashed.name))?;
        self.stashed += stashed.bytes;
        let parent = at.0;
        self.push_name(Change::Unlinked { stashed, at }, vec![parent]);
        Ok(())
    }

    /// Where the create of `ino` as `at` is in the list, if nothing after
    /// it touched that file or that name: removing the file now undoes it.
    fn undone_create(&self, ino: u64, at: &Entry) -> Option<usize> {
        let i = self.names.iter().rposition(
            |c| matches!(&c.change, Change::Created { ino: i, at: a } if *i == ino && a == at),
        )?;
        let keys = self.names[i].change.keys();
        let touched = self
            .names
            .iter()
            .skip(i + 1)
            .any(|c| c.change.keys().iter().any(|k| keys.contains(k)));
        (!touched).then_some(i)
    }

    /// Renames `from_path` (inode `ino`, the name `from`) to `to_path` (the
    /// name `to`) as rename(2) would; a file it replaces (`replaced`, its
    /// inode) is kept in the stash so a power loss can bring it back.
    pub fn rename(
        &mut self,
        ino: u64,
        (from, from_path): (Entry, &Path),
        (to, to_path): (Entry, &Path),
        replaced: Option<u64>,
    ) -> io::Result<()> {
        let replaced = match replaced {
            None => None,
            Some(r) => {
                let meta = std::fs::symlink_metadata(to_path)?;
                let stashed = self.stash_name(r, meta.len())?;
                let at = self.stash.join(&stashed.name);
                if meta.is_dir() {
                    // A directory cannot be linked: moved aside, and back
                    // if the rename fails (it must be empty, and `from` a
                    // directory).
                    std::fs::rename(to_path, &at)?;
                    if let Err(e) = std::fs::rename(from_path, to_path) {
                        std::fs::rename(&at, to_path)?;
                        return Err(e);
                    }
                } else {
                    std::fs::hard_link(to_path, &at)?;
                    if let Err(e) = std::fs::rename(from_path, to_path) {
                        std::fs::remove_file(&at)?;
                        return Err(e);
                    }
                }
                self.stashed += stashed.bytes;
                Some(stashed)
            }
        };
        if replaced.is_none() {
            std::fs::rename(from_path, to_path)?;
        }
        let mut dirs = vec![from.0];
        if to.0 != from.0 {
            dirs.push(to.0);
        }
        self.push_name(
            Change::Renamed {
                ino,
                from,
                to,
                replaced,
            },
            dirs,
        );
        Ok(())
    }

    /// A fresh name in the stash for `ino`, the stash made if missing.
    fn stash_name(&mut self, ino: u64, bytes: u64) -> io::Result<Stashed> {
        match std::fs::create_dir(&self.stash) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        self.next_stash += 1;
        Ok(Stashed {
            ino,
            name: format!("{}-{ino}", self.next_stash),
            bytes,
        })
    }

    fn push_name(&mut self, change: Change, unsynced_dirs: Vec<u64>) {
        self.names.push_back(NameChange {
            change,
            unsynced_dirs,
        });
        // The oldest change first: nothing earlier can depend on it.
        while self.names.len() > MAX_NAME_CHANGES || self.stashed > MAX_STASHED_BYTES {
            let Some(oldest) = self.names.pop_front() else {
                break;
            };
            self.made_durable(oldest.change);
            self.written_back += 1;
        }
    }

    /// Directory `dir` was fsync'd: the name changes in it are durable
    /// (those across two directories once both are), and with them every
    /// earlier change to the same files or names.
    pub fn dir_synced(&mut self, dir: u64) {
        for c in &mut self.names {
            c.unsynced_dirs.retain(|&d| d != dir);
        }
        // Newest first: what a durable change touched makes the earlier
        // changes to it durable too.
        let mut touched: HashSet<Key> = HashSet::new();
        let mut durable = vec![false; self.names.len()];
        for (i, c) in self.names.iter().enumerate().rev() {
            let keys = c.change.keys();
            if c.unsynced_dirs.is_empty() || keys.iter().any(|k| touched.contains(k)) {
                durable[i] = true;
                touched.extend(keys);
            }
        }
        let names = std::mem::take(&mut self.names);
        for (c, durable) in names.into_iter().zip(durable) {
            if durable {
                self.made_durable(c.change);
            } else {
                self.names.push_back(c);
            }
        }
    }

    /// A name change is durable: a file it removed is gone for good.
    fn made_durable(&mut self, change: Change) {
        if let Some(s) = change.stashed() {
            let path = self.stash.join(&s.name);
            if let Err(e) = remove(&path) {
                tracing::warn!("lazyfs: cannot delete {}: {e}", path.display());
            }
            self.stashed -= s.bytes;
            let ino = s.ino;
            self.synced(ino);
        }
    }

    /// Everything is durable as it is now (a sync of the whole disk): no
    /// change is left to undo, and the stash is emptied.
    pub fn checkpoint(&mut self) {
        self.files.clear();
        self.held = 0;
        for c in std::mem::take(&mut self.names) {
            self.made_durable(c.change);
        }
        debug_assert_eq!(self.stashed, 0, "every stashed file deleted");
        self.stashed = 0;
    }

    /// At unmount: everything is durable (as an unmount syncs) and the
    /// stash directory is gone.
    pub fn close(&mut self) -> io::Result<()> {
        self.checkpoint();
        remove(&self.stash)
    }

    /// How many of a file's first bytes are as they were at its last fsync
    /// (`len` is its length now): the prefix no un-synced write or truncate
    /// touched. None of a file whose creation is not durable.
    pub fn durable_len(&self, ino: u64, len: u64) -> u64 {
        let created = self
            .names
            .iter()
            .any(|c| matches!(c.change, Change::Created { ino: i, .. } if i == ino));
        if created {
            return 0;
        }
        self.files.get(&ino).map_or(len, |log| {
            log.undo
                .iter()
                .fold(len, |end, u| end.min(u.offset).min(u.old_len))
        })
    }

    /// What is not durable.
    pub fn pending(&self) -> Pending {
        let mut p = Pending {
            files: self.files.len(),
            held_bytes: self.held,
            stashed_bytes: self.stashed,
            ..Pending::default()
        };
        for c in &self.names {
            match c.change {
                Change::Created { .. } => p.created += 1,
                Change::Renamed { .. } => p.renamed += 1,
                Change::Unlinked { .. } => p.unlinked += 1,
            }
        }
        p
    }

    /// The power loss: undoes every name change not durable, newest first
    /// (paths found from `nodes`, which follows the files back), then every
    /// un-synced write on the backing files under `backing`, and makes the
    /// result durable. Forgets everything it undid.
    pub fn lose(&mut self, loss: Loss, backing: &Path, nodes: &mut Nodes) -> io::Result<Vec<Lost>> {
        let mut lost = Vec::new();
        let mut gone = HashSet::new();
        let mut dirs = BTreeSet::new();
        let names = std::mem::take(&mut self.names);
        self.stashed = 0;
        for c in names.into_iter().rev() {
            let path = |e: &Entry, nodes: &Nodes| -> io::Result<PathBuf> {
                Ok(path_in(backing, nodes, e.0)?.join(&e.1))
            };
            match c.change {
                Change::Created { ino, at } => {
                    let p = path(&at, nodes)?;
                    remove(&p)?;
                    nodes.remove(&ino);
                    gone.insert(ino);
                    dirs.insert(parent(&p));
                    lost.push(Lost {
                        removed: true,
                        ..Lost::name_change(&p)
                    });
                }
                Change::Renamed {
                    ino,
                    from,
                    to,
                    replaced,
                } => {
                    let (from_p, to_p) = (path(&from, nodes)?, path(&to, nodes)?);
                    std::fs::rename(&to_p, &from_p)?;
                    nodes.insert(ino, from);
                    if let Some(s) = replaced {
                        std::fs::rename(self.stash.join(&s.name), &to_p)?;
                        nodes.insert(s.ino, to);
                        lost.push(Lost {
                            restored: true,
                            ..Lost::name_change(&to_p)
                        });
                    }
                    dirs.extend([parent(&from_p), parent(&to_p)]);
                    lost.push(Lost {
                        renamed_from: Some(to_p.display().to_string()),
                        ..Lost::name_change(&from_p)
                    });
                }
                Change::Unlinked { stashed, at } => {
                    let p = path(&at, nodes)?;
                    std::fs::rename(self.stash.join(&stashed.name), &p)?;
                    nodes.insert(stashed.ino, at);
                    dirs.insert(parent(&p));
                    lost.push(Lost {
                        restored: true,
                        ..Lost::name_change(&p)
                    });
                }
            }
        }
        for (ino, log) in std::mem::take(&mut self.files) {
            if gone.contains(&ino) {
                continue;
            }
            let Ok(path) = path_in(backing, nodes, ino) else {
                continue;
            };
            let file = match OpenOptions::new().write(true).open(&path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                other => other?,
            };
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
                changes: log.undo.len(),
                torn,
                ..Lost::name_change(&path)
            });
        }
        self.held = 0;
        for dir in dirs {
            // A directory removed with its parent has nothing to sync.
            match File::open(&dir) {
                Ok(d) => d.sync_all()?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(lost)
    }
}

/// The directory `path` is in.
fn parent(path: &Path) -> PathBuf {
    path.parent().unwrap_or(path).to_path_buf()
}

/// Whether `name` in the root is the stash, which the file system never shows.
pub fn is_stash(parent: u64, name: &OsStr) -> bool {
    parent == ROOT && name == STASH_NAME
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
        std::fs::symlink_metadata(path).unwrap().ino()
    }

    /// A backing directory driven as the file system drives it: the calls
    /// pass through and the cache records them; inodes are the real ones.
    struct Disk {
        dir: tempfile::TempDir,
        nodes: Nodes,
        cache: Unsynced,
    }

    impl Disk {
        fn new() -> Disk {
            let dir = tempfile::tempdir().unwrap();
            let cache = Unsynced::new(dir.path());
            Disk {
                dir,
                nodes: Nodes::new(),
                cache,
            }
        }

        fn at(&self, parent: u64, name: &str) -> PathBuf {
            path_in(self.dir.path(), &self.nodes, parent)
                .unwrap()
                .join(name)
        }

        /// The file `name` in the root, durable with `data` (as before the mount).
        fn durable(&mut self, name: &str, data: &[u8]) -> u64 {
            std::fs::write(self.at(ROOT, name), data).unwrap();
            self.seen(ROOT, name)
        }

        fn seen(&mut self, parent: u64, name: &str) -> u64 {
            let i = ino(&self.at(parent, name));
            self.nodes.insert(i, (parent, name.into()));
            i
        }

        fn create(&mut self, parent: u64, name: &str, data: &[u8]) -> u64 {
            std::fs::write(self.at(parent, name), data).unwrap();
            let i = self.seen(parent, name);
            self.cache.created(i, (parent, name.into()));
            i
        }

        fn mkdir(&mut self, name: &str) -> u64 {
            std::fs::create_dir(self.at(ROOT, name)).unwrap();
            let i = self.seen(ROOT, name);
            self.cache.created(i, (ROOT, name.into()));
            i
        }

        /// Writes through the cache as the file system does: record, then write.
        fn write(&mut self, i: u64, offset: u64, data: &[u8]) {
            let path = path_in(self.dir.path(), &self.nodes, i).unwrap();
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .unwrap();
            self.cache.before_write(i, &f, offset, data).unwrap();
            f.write_all_at(data, offset).unwrap();
        }

        fn rename(&mut self, (p, name): (u64, &str), (np, newname): (u64, &str)) {
            let (from, to) = (self.at(p, name), self.at(np, newname));
            let moved = ino(&from);
            let replaced = std::fs::symlink_metadata(&to)
                .ok()
                .map(|m| m.ino())
                .filter(|&r| r != moved);
            self.cache
                .rename(
                    moved,
                    ((p, name.into()), &from),
                    ((np, newname.into()), &to),
                    replaced,
                )
                .unwrap();
            if let Some(r) = replaced {
                self.nodes.remove(&r);
            }
            self.nodes.insert(moved, (np, newname.into()));
        }

        fn unlink(&mut self, parent: u64, name: &str) {
            let path = self.at(parent, name);
            let i = ino(&path);
            self.cache
                .unlink(i, (parent, name.into()), &path, false)
                .unwrap();
            self.nodes.remove(&i);
        }

        fn lose(&mut self, loss: Loss) -> Vec<Lost> {
            self.cache
                .lose(loss, self.dir.path(), &mut self.nodes)
                .unwrap()
        }

        fn read(&self, name: &str) -> Option<Vec<u8>> {
            std::fs::read(self.dir.path().join(name)).ok()
        }

        fn stash_len(&self) -> usize {
            std::fs::read_dir(self.dir.path().join(STASH_NAME)).map_or(0, |d| d.count())
        }
    }

    #[test]
    fn a_power_loss_puts_back_what_was_there_at_the_last_fsync() {
        let mut d = Disk::new();
        let i = d.durable("f", b"0123456789");
        d.write(i, 2, b"ab");
        d.cache.synced(i);
        d.write(i, 8, b"XYZW");
        d.write(i, 0, b"Q");
        let path = d.at(ROOT, "f");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        d.cache.before_truncate(i, &f, 3).unwrap();
        f.set_len(3).unwrap();
        assert_eq!(d.read("f").unwrap(), b"Q1a");
        let lost = d.lose(Loss::Clear);
        assert_eq!(d.read("f").unwrap(), b"01ab456789");
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].changes, 3);
        assert_eq!(d.cache.pending(), Pending::default());
    }

    #[test]
    fn a_torn_loss_keeps_a_strict_prefix_of_the_last_write_only() {
        let mut d = Disk::new();
        let i = d.durable("log", b"head");
        d.write(i, 4, b"first");
        d.write(i, 9, b"second");
        let lost = d.lose(Loss::Torn);
        // "first" is gone (a hole of zeros), half of "second" is there.
        assert_eq!(d.read("log").unwrap(), b"head\0\0\0\0\0sec");
        assert_eq!(lost[0].torn, Some((3, 6)));
    }

    #[test]
    fn a_created_file_is_gone_unless_its_directory_was_fsynced() {
        let mut d = Disk::new();
        d.create(ROOT, "kept", b"k");
        d.cache.dir_synced(ROOT);
        d.create(ROOT, "lost", b"l");
        let lost = d.lose(Loss::Clear);
        assert_eq!(d.read("kept").unwrap(), b"k");
        assert_eq!(d.read("lost"), None);
        assert!(lost[0].removed);
    }

    /// The pattern every careful program uses to replace a file.
    #[test]
    fn a_rename_over_a_file_is_durable_only_once_the_directory_is_fsynced() {
        for dir_fsync in [false, true] {
            let mut d = Disk::new();
            d.durable("name", b"old");
            let tmp = d.create(ROOT, "tmp", b"");
            d.write(tmp, 0, b"new");
            d.cache.synced(tmp);
            d.rename((ROOT, "tmp"), (ROOT, "name"));
            assert_eq!(d.cache.pending().stashed_bytes, 3, "the old file kept");
            if dir_fsync {
                d.cache.dir_synced(ROOT);
                assert_eq!(d.stash_len(), 0, "the old file deleted for good");
            }
            let lost = d.lose(Loss::Clear);
            let (name, tmp) = (d.read("name").unwrap(), d.read("tmp"));
            if dir_fsync {
                assert_eq!((&name[..], tmp), (&b"new"[..], None), "{lost:?}");
                assert!(lost.is_empty(), "{lost:?}");
            } else {
                // The rename is undone (tmp back, the old file back), then
                // tmp's create: tmp is gone.
                assert_eq!((&name[..], tmp), (&b"old"[..], None), "{lost:?}");
                assert!(lost[0].restored && lost[0].path.ends_with("/name"));
                assert_eq!(
                    lost[1]
                        .renamed_from
                        .as_deref()
                        .map(|p| p.ends_with("/name")),
                    Some(true)
                );
                assert!(lost[2].removed && lost[2].path.ends_with("/tmp"));
            }
            assert_eq!(d.stash_len(), 0);
        }
    }

    #[test]
    fn a_rename_to_a_new_name_without_a_directory_fsync_is_undone() {
        let mut d = Disk::new();
        let tmp = d.create(ROOT, "tmp", b"new");
        d.cache.synced(tmp);
        d.rename((ROOT, "tmp"), (ROOT, "name"));
        d.lose(Loss::Clear);
        assert_eq!((d.read("name"), d.read("tmp")), (None, None));
    }

    #[test]
    fn an_unlinked_file_comes_back_until_its_directory_is_fsynced() {
        let mut d = Disk::new();
        d.durable("a", b"A");
        d.durable("b", b"B");
        d.unlink(ROOT, "a");
        assert_eq!(d.read("a"), None);
        let lost = d.lose(Loss::Clear);
        assert_eq!(d.read("a").unwrap(), b"A");
        assert!(lost[0].restored, "{lost:?}");
        d.seen(ROOT, "a");
        d.unlink(ROOT, "b");
        d.cache.dir_synced(ROOT);
        assert_eq!(d.stash_len(), 0);
        d.lose(Loss::Clear);
        assert_eq!((d.read("a").unwrap(), d.read("b")), (b"A".to_vec(), None));
    }

    /// write, rename, unlink, create under one name: undone newest first,
    /// the file is back under its first name with its durable data.
    #[test]
    fn chained_changes_are_undone_in_order() {
        let mut d = Disk::new();
        let a = d.durable("a", b"durable");
        d.write(a, 0, b"DURABLE, NOT");
        d.rename((ROOT, "a"), (ROOT, "b"));
        d.write(a, 0, b"x");
        d.unlink(ROOT, "b");
        d.create(ROOT, "b", b"other");
        d.create(ROOT, "a", b"third");
        let lost = d.lose(Loss::Clear);
        assert_eq!(d.read("a").unwrap(), b"durable", "{lost:?}");
        assert_eq!(d.read("b"), None);
        assert_eq!(d.cache.pending(), Pending::default());
        let names: Vec<String> = std::fs::read_dir(d.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != STASH_NAME)
            .collect();
        assert_eq!(names, ["a"]);
    }

    #[test]
    fn a_rename_across_directories_waits_for_both() {
        let mut d = Disk::new();
        let (x, y) = (d.mkdir("x"), d.mkdir("y"));
        d.cache.dir_synced(ROOT);
        d.create(x, "f", b"f");
        d.cache.dir_synced(x);
        d.rename((x, "f"), (y, "g"));
        d.cache.dir_synced(y);
        assert_eq!(d.cache.pending().renamed, 1, "x not fsync'd yet");
        d.lose(Loss::Clear);
        assert_eq!(d.read("x/f").unwrap(), b"f");
        d.seen(x, "f");
        d.rename((x, "f"), (y, "g"));
        d.cache.dir_synced(y);
        d.cache.dir_synced(x);
        d.lose(Loss::Clear);
        assert_eq!((d.read("x/f"), d.read("y/g")), (None, Some(b"f".to_vec())));
    }

    /// A change made durable takes the earlier changes to the same name with
    /// it: a create durable over an unlink not durable would otherwise be
    /// undone into a name that is taken.
    #[test]
    fn a_durable_change_makes_the_earlier_ones_to_its_name_durable() {
        let mut d = Disk::new();
        let x = d.mkdir("x");
        d.cache.dir_synced(ROOT);
        d.cache.dir_synced(x);
        d.create(x, "f", b"first");
        d.cache.dir_synced(x);
        d.rename((x, "f"), (ROOT, "g"));
        d.create(x, "f", b"second");
        d.cache.dir_synced(x);
        assert_eq!(d.cache.pending(), Pending::default());
        d.lose(Loss::Clear);
        assert_eq!(d.read("g").unwrap(), b"first");
        assert_eq!(d.read("x/f").unwrap(), b"second");
    }

    #[test]
    fn a_file_created_and_removed_unsynced_leaves_nothing_to_undo() {
        let mut d = Disk::new();
        d.create(ROOT, "tmp", b"t");
        d.unlink(ROOT, "tmp");
        assert_eq!(d.cache.pending(), Pending::default());
        assert_eq!(d.stash_len(), 0);
    }

    #[test]
    fn a_checkpoint_makes_renames_and_unlinks_durable_and_empties_the_stash() {
        let mut d = Disk::new();
        d.durable("a", b"A");
        d.durable("b", b"B");
        d.rename((ROOT, "a"), (ROOT, "b"));
        d.durable("c", b"C");
        d.unlink(ROOT, "c");
        assert_eq!(d.stash_len(), 2);
        d.cache.checkpoint();
        assert_eq!(d.stash_len(), 0);
        d.lose(Loss::Clear);
        assert_eq!(
            (d.read("a"), d.read("b"), d.read("c")),
            (None, Some(b"A".to_vec()), None)
        );
        d.cache.close().unwrap();
        assert!(!d.dir.path().join(STASH_NAME).exists());
    }

    #[test]
    fn the_durable_prefix_ends_where_the_first_unsynced_change_starts() {
        let mut d = Disk::new();
        let i = d.durable("log", b"0123456789");
        assert_eq!(d.cache.durable_len(i, 10), 10, "nothing un-synced");
        d.write(i, 10, b"appended");
        assert_eq!(d.cache.durable_len(i, 18), 10, "an append");
        d.write(i, 4, b"x");
        assert_eq!(d.cache.durable_len(i, 18), 4, "an overwrite further in");
        d.cache.synced(i);
        assert_eq!(d.cache.durable_len(i, 18), 18);
        d.cache.created(i, (ROOT, "log".into()));
        assert_eq!(d.cache.durable_len(i, 18), 0, "a create not yet durable");
    }

    #[test]
    fn the_cache_is_bounded_and_says_what_it_wrote_back() {
        let mut d = Disk::new();
        let chunk = vec![7u8; 4 << 20];
        let i = d.durable("hot", &chunk);
        // Overwrites keep what they overwrote: 4 MiB each.
        for _ in 0..(MAX_HELD_BYTES / chunk.len() as u64 + 2) {
            d.write(i, 0, &chunk);
            assert!(d.cache.pending().held_bytes <= MAX_HELD_BYTES);
        }
        assert_eq!(d.cache.written_back, 1);
    }

    #[test]
    fn the_stash_is_bounded_and_the_oldest_unlink_is_made_durable_past_it() {
        let mut d = Disk::new();
        // Sparse: the bound counts lengths, not blocks.
        for name in ["a", "b"] {
            let i = d.durable(name, b"");
            let path = d.at(ROOT, name);
            OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(MAX_STASHED_BYTES / 2 + 1)
                .unwrap();
            let _ = i;
            d.unlink(ROOT, name);
        }
        assert_eq!(d.cache.written_back, 1);
        assert_eq!(d.stash_len(), 1);
        assert_eq!(d.cache.pending().unlinked, 1);
        d.lose(Loss::Clear);
        assert_eq!(
            (d.read("a").is_some(), d.read("b").is_some()),
            (false, true)
        );
    }
}
