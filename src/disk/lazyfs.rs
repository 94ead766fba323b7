//! [`LazyFs`]: a FUSE pass-through to a backing directory whose un-synced
//! writes and name changes a power loss can drop, as Jepsen's LazyFS does.
//! The file system passes every call through to the backing directory and
//! keeps, in [`Unsynced`], what each write overwrote until an fsync (fsync,
//! fdatasync, a file opened O_SYNC or O_DSYNC) makes it durable, and each
//! create, rename, unlink and rmdir until an fsync of its directory does
//! (removed files wait in a stash the file system never shows).
//!
//! Beside the power loss, [`Control`] makes the disk slow (every fsync and
//! O_SYNC/O_DSYNC write takes longer, slept on the file system's thread
//! before it starts, outside the lock), full (writes that would allocate
//! fail with ENOSPC) and corrupt (bits flipped at rest in durable data, or
//! only in what reads of it return).
//!
//! Inode numbers are the backing files' own (the root is 1, and whatever
//! file had 1 gets the root's), and a node's path is rebuilt from the
//! parent and name it was last found under. Attributes and entries are never
//! cached by the kernel (a TTL of 0): a power loss changes sizes and removes
//! files behind its back.

use super::cache::{self, Loss, Lost, Nodes, Pending, Unsynced};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirEntryExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const TTL: Duration = Duration::ZERO;

/// How many files `corrupt` looks at, at most (a node's data is a few).
const MAX_CORRUPT_FILES: usize = 100_000;
/// How deep `corrupt` walks into the backing directory.
const MAX_CORRUPT_DEPTH: usize = 64;

/// The file system's state; one lock, since the nodes write from one thread.
struct State {
    /// Where every inode found so far is.
    nodes: Nodes,
    handles: HashMap<u64, Handle>,
    next_fh: u64,
    unsynced: Unsynced,
}

struct Handle {
    file: File,
    ino: u64,
    /// Opened O_SYNC or O_DSYNC: every write is durable when it returns.
    sync: bool,
}

/// The shared half of a mounted [`LazyFs`]: what the control socket acts on.
#[derive(Clone)]
pub struct Control {
    backing: Arc<PathBuf>,
    /// The backing directory's own inode number (shown as 1).
    root_ino: u64,
    state: Arc<Mutex<State>>,
    /// Extra milliseconds every fsync takes (0: none).
    slow_ms: Arc<AtomicU64>,
    /// Writes that would allocate fail with ENOSPC.
    full: Arc<AtomicBool>,
    /// `corrupt-read`: shown inode -> offset -> the bits each read of
    /// that byte returns flipped (XOR mask). Locked after `state`, never
    /// before.
    read_flips: Arc<Mutex<ReadFlips>>,
}

type ReadFlips = HashMap<u64, BTreeMap<u64, u8>>;

/// One durable bit drawn for `corrupt` or `corrupt-read`.
struct Drawn {
    path: PathBuf,
    /// The inode number shown.
    ino: u64,
    offset: u64,
    bit: u8,
}

/// One bit `corrupt` flipped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Flipped {
    /// The backing file.
    pub path: String,
    pub offset: u64,
    /// 0 is the least significant bit.
    pub bit: u8,
    pub byte_before: u8,
    pub byte_after: u8,
}

impl Control {
    /// Drops every un-synced change (or keeps a prefix of each file's last
    /// write), as a power loss would; returns what was lost.
    pub fn lose(&self, loss: Loss) -> io::Result<Vec<Lost>> {
        let mut state = lock(&self.state);
        let State {
            nodes, unsynced, ..
        } = &mut *state;
        unsynced.lose(loss, &self.backing, nodes)
    }

    /// Makes everything durable as it is now, as a sync of the whole disk.
    pub fn checkpoint(&self) {
        lock(&self.state).unsynced.checkpoint();
    }

    /// At unmount: everything durable, the stash deleted.
    pub fn close(&self) -> io::Result<()> {
        lock(&self.state).unsynced.close()
    }

    /// What is not durable, and how many files and name changes were
    /// written back past the bounds.
    pub fn pending(&self) -> (Pending, u64) {
        let state = lock(&self.state);
        (state.unsynced.pending(), state.unsynced.written_back)
    }

    pub fn slow_ms(&self) -> u64 {
        self.slow_ms.load(Ordering::SeqCst)
    }

    /// Every fsync from now on takes `ms` more milliseconds (0: none).
    pub fn set_slow_ms(&self, ms: u64) {
        debug_assert!(ms <= super::SLOW_MS_MAX, "{ms} ms");
        self.slow_ms.store(ms, Ordering::SeqCst);
    }

    pub fn full(&self) -> bool {
        self.full.load(Ordering::SeqCst)
    }

    /// From now on, writes that would allocate fail with ENOSPC (or no longer).
    pub fn set_full(&self, full: bool) {
        self.full.store(full, Ordering::SeqCst);
    }

    /// Bit rot at rest: flips `bits` distinct bits of durable data (bytes
    /// no un-synced change touched, in files whose creation is durable),
    /// drawn uniformly over all of it from `seed`, so bigger files take
    /// more; writes them to the backing files and fsyncs. Fewer if there
    /// are fewer durable bits. The node must be down: a running one may
    /// hold the old bytes in memory.
    pub fn corrupt(&self, bits: u32, seed: u64) -> io::Result<Vec<Flipped>> {
        let state = lock(&self.state);
        let drawn = self.draw(&state.unsynced, bits, seed)?;
        let mut flipped = Vec::with_capacity(drawn.len());
        let mut open: Option<(PathBuf, File)> = None;
        for d in drawn {
            if open.as_ref().is_none_or(|(p, _)| *p != d.path) {
                if let Some((_, f)) = open.take() {
                    f.sync_all()?;
                }
                let f = OpenOptions::new().read(true).write(true).open(&d.path)?;
                open = Some((d.path.clone(), f));
            }
            let Some((_, file)) = &open else {
                unreachable!("opened above")
            };
            let mut byte = [0u8];
            file.read_exact_at(&mut byte, d.offset)?;
            let after = byte[0] ^ (1 << d.bit);
            file.write_all_at(&[after], d.offset)?;
            flipped.push(Flipped {
                path: d.path.display().to_string(),
                offset: d.offset,
                bit: d.bit,
                byte_before: byte[0],
                byte_after: after,
            });
        }
        if let Some((_, f)) = open {
            f.sync_all()?;
        }
        Ok(flipped)
    }

    /// A disk that reads wrong: from now on, reads of `bits` distinct bits
    /// of durable data, drawn from `seed` as [`Control::corrupt`] draws
    /// them, return them flipped (replacing an earlier draw); the backing
    /// files are not changed. A write over a flipped byte ends its flip.
    /// Files opened before are read through the kernel's cache, which may
    /// hold the right bytes: the node should (re)open them after.
    pub fn corrupt_reads(&self, bits: u32, seed: u64) -> io::Result<Vec<Flipped>> {
        let state = lock(&self.state);
        let drawn = self.draw(&state.unsynced, bits, seed)?;
        let mut flips = ReadFlips::new();
        let mut flipped = Vec::with_capacity(drawn.len());
        for d in drawn {
            let mut byte = [0u8];
            File::open(&d.path)?.read_exact_at(&mut byte, d.offset)?;
            let mask = flips.entry(d.ino).or_default().entry(d.offset).or_default();
            *mask |= 1 << d.bit;
            flipped.push(Flipped {
                path: d.path.display().to_string(),
                offset: d.offset,
                bit: d.bit,
                byte_before: byte[0],
                byte_after: byte[0] ^ (1 << d.bit),
            });
        }
        *lock(&self.read_flips) = flips;
        Ok(flipped)
    }

    /// Reads are right again; how many flipped bits were healed.
    pub fn heal_reads(&self) -> u32 {
        let flips = std::mem::take(&mut *lock(&self.read_flips));
        count_bits(&flips)
    }

    /// How many bits reads return flipped now.
    pub fn read_flips(&self) -> u32 {
        count_bits(&lock(&self.read_flips))
    }

    /// `bits` distinct bits of durable data (bytes no un-synced change
    /// touched, in files whose creation is durable), drawn uniformly over
    /// all of it from `seed`, so bigger files take more; in file and offset
    /// order. Fewer if there are fewer durable bits.
    fn draw(&self, unsynced: &Unsynced, bits: u32, seed: u64) -> io::Result<Vec<Drawn>> {
        use rand::SeedableRng;
        let mut files = Vec::new();
        regular_files(&self.backing, 0, &mut files)?;
        let stash = self.backing.join(cache::STASH_NAME);
        files.retain(|(path, _, _)| !path.starts_with(&stash));
        // (path, shown inode, durable bytes), in path order so a seed picks the same bits.
        let durable: Vec<(PathBuf, u64, u64)> = files
            .into_iter()
            .map(|(path, ino, len)| {
                let ino = shown(self.root_ino, ino);
                (path, ino, unsynced.durable_len(ino, len))
            })
            .filter(|(_, _, len)| *len > 0)
            .collect();
        let total_bits: u64 = durable.iter().map(|(_, _, len)| len * 8).sum();
        let amount = u64::from(bits).min(total_bits) as usize;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut picked = rand::seq::index::sample(&mut rng, total_bits as usize, amount).into_vec();
        picked.sort_unstable();
        let mut drawn = Vec::with_capacity(picked.len());
        let (mut file_at, mut file_start_bit) = (0usize, 0u64);
        for at in picked {
            let at = at as u64;
            while at >= file_start_bit + durable[file_at].2 * 8 {
                file_start_bit += durable[file_at].2 * 8;
                file_at += 1;
            }
            let (path, ino, len) = &durable[file_at];
            let (offset, bit) = ((at - file_start_bit) / 8, ((at - file_start_bit) % 8) as u8);
            debug_assert!(offset < *len, "only durable bytes are drawn");
            drawn.push(Drawn {
                path: path.clone(),
                ino: *ino,
                offset,
                bit,
            });
        }
        Ok(drawn)
    }
}

fn count_bits(flips: &ReadFlips) -> u32 {
    flips
        .values()
        .flat_map(|m| m.values())
        .map(|mask| mask.count_ones())
        .sum()
}

/// Every regular file under `dir` as (path, backing inode, length), in
/// name order; at most [`MAX_CORRUPT_FILES`], [`MAX_CORRUPT_DEPTH`] deep.
fn regular_files(dir: &Path, depth: usize, out: &mut Vec<(PathBuf, u64, u64)>) -> io::Result<()> {
    if depth > MAX_CORRUPT_DEPTH {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    entries.sort();
    for path in entries {
        if out.len() >= MAX_CORRUPT_FILES {
            break;
        }
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            regular_files(&path, depth + 1, out)?;
        } else if meta.is_file() {
            out.push((path, meta.ino(), meta.len()));
        }
    }
    Ok(())
}

/// The inode number shown for a backing inode number (root and 1 swap).
fn shown(root_ino: u64, backing_ino: u64) -> u64 {
    if backing_ino == root_ino {
        INodeNo::ROOT.0
    } else if backing_ino == INodeNo::ROOT.0 {
        root_ino
    } else {
        backing_ino
    }
}

/// ENOSPC, as a full disk answers.
fn no_space() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

pub struct LazyFs {
    control: Control,
}

/// A lock whose holder panicked is still the state: nothing is left half-done under it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LazyFs {
    pub fn new(backing: &Path) -> io::Result<(LazyFs, Control)> {
        let root_ino = std::fs::metadata(backing)?.ino();
        // A stash an earlier helper left holds removals it never undid:
        // they happened.
        let stash = backing.join(cache::STASH_NAME);
        match std::fs::remove_dir_all(&stash) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let state = State {
            nodes: Nodes::new(),
            handles: HashMap::new(),
            next_fh: 0,
            unsynced: Unsynced::new(backing),
        };
        let control = Control {
            backing: Arc::new(backing.to_path_buf()),
            root_ino,
            state: Arc::new(Mutex::new(state)),
            slow_ms: Arc::default(),
            full: Arc::default(),
            read_flips: Arc::default(),
        };
        Ok((
            LazyFs {
                control: control.clone(),
            },
            control,
        ))
    }

    /// A slow disk: sleeps the extra time an fsync takes now, on the file
    /// system's thread (the caller waits, as on a slow device) and outside
    /// the lock.
    fn stall(&self) {
        let ms = self.control.slow_ms();
        if ms > 0 {
            std::thread::sleep(Duration::from_millis(ms));
        }
    }

    /// ENOSPC if the disk is full: for calls that would allocate.
    fn space(&self) -> io::Result<()> {
        if self.control.full() {
            Err(no_space())
        } else {
            Ok(())
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.control.state)
    }

    /// The inode number shown for a backing inode number (root and 1 swap).
    fn shown(&self, backing_ino: u64) -> u64 {
        shown(self.control.root_ino, backing_ino)
    }

    fn path(&self, ino: INodeNo) -> io::Result<PathBuf> {
        cache::path_in(&self.control.backing, &self.state().nodes, ino.0)
    }

    /// The backing path of `name` in `parent`; the stash is not there.
    fn child(&self, parent: INodeNo, name: &OsStr) -> io::Result<PathBuf> {
        if cache::is_stash(parent.0, name) {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        Ok(self.path(parent)?.join(name))
    }

    /// unlink and rmdir: the file moved to the stash (a power loss before
    /// the directory's fsync brings it back), the node forgotten. Under the
    /// lock, so the name changes are recorded in the order they were made.
    fn remove(&self, parent: INodeNo, name: &OsStr, dir: bool, reply: ReplyEmpty) {
        let result = (|| {
            let path = self.child(parent, name)?;
            let ino = self.shown(std::fs::symlink_metadata(&path)?.ino());
            let mut state = self.state();
            let entry = (parent.0, name.to_os_string());
            state.unsynced.unlink(ino, entry, &path, dir)?;
            state.nodes.remove(&ino);
            Ok(())
        })();
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(to_errno(e)),
        }
    }

    fn attr(&self, meta: &std::fs::Metadata) -> FileAttr {
        let time = |s: i64, ns: i64| {
            if s >= 0 {
                UNIX_EPOCH + Duration::new(s as u64, ns as u32)
            } else {
                UNIX_EPOCH
            }
        };
        FileAttr {
            ino: INodeNo(self.shown(meta.ino())),
            size: meta.size(),
            blocks: meta.blocks(),
            atime: time(meta.atime(), meta.atime_nsec()),
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            crtime: UNIX_EPOCH,
            kind: kind(meta.file_type()),
            perm: (meta.mode() & 0o7777) as u16,
            nlink: meta.nlink() as u32,
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: meta.rdev() as u32,
            blksize: meta.blksize() as u32,
            flags: 0,
        }
    }

    /// Finds `name` in `parent`, remembers where it is, returns its attributes.
    fn found(&self, parent: INodeNo, name: &OsStr) -> io::Result<FileAttr> {
        let meta = std::fs::symlink_metadata(self.child(parent, name)?)?;
        let attr = self.attr(&meta);
        self.state()
            .nodes
            .insert(attr.ino.0, (parent.0, name.to_os_string()));
        Ok(attr)
    }

    fn add_handle(&self, file: File, ino: u64, sync: bool) -> FileHandle {
        let mut state = self.state();
        state.next_fh += 1;
        let fh = state.next_fh;
        state.handles.insert(fh, Handle { file, ino, sync });
        FileHandle(fh)
    }

    /// Runs `f` on the open file `fh`, under the lock.
    fn with_handle<T>(
        &self,
        fh: FileHandle,
        f: impl FnOnce(&Handle, &mut Unsynced) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut state = self.state();
        let State {
            handles, unsynced, ..
        } = &mut *state;
        let handle = handles
            .get(&fh.0)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
        f(handle, unsynced)
    }
}

fn kind(t: std::fs::FileType) -> FileType {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        FileType::Directory
    } else if t.is_symlink() {
        FileType::Symlink
    } else if t.is_fifo() {
        FileType::NamedPipe
    } else if t.is_socket() {
        FileType::Socket
    } else if t.is_block_device() {
        FileType::BlockDevice
    } else if t.is_char_device() {
        FileType::CharDevice
    } else {
        FileType::RegularFile
    }
}

/// Open options for the backing file from the flags the kernel passed: the
/// access mode (a writer reads too: what a write overwrites is kept) and
/// sync flags; never O_APPEND (the kernel gives each write its offset),
/// O_TRUNC or O_CREAT (done as their own calls).
fn open_options(flags: i32) -> (OpenOptions, bool) {
    let mut o = OpenOptions::new();
    match flags & libc::O_ACCMODE {
        libc::O_WRONLY | libc::O_RDWR => o.read(true).write(true),
        _ => o.read(true),
    };
    let sync = flags & (libc::O_SYNC | libc::O_DSYNC);
    o.custom_flags(sync | (flags & libc::O_NOFOLLOW));
    (o, sync != 0)
}

/// utimensat on the path itself (a directory or a read-only file too).
fn set_times(path: &Path, atime: Option<TimeOrNow>, mtime: Option<TimeOrNow>) -> io::Result<()> {
    let spec = |t: Option<TimeOrNow>| match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(TimeOrNow::Now) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(TimeOrNow::SpecificTime(t)) => {
            let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
            }
        }
    };
    let times = [spec(atime), spec(mtime)];
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: a NUL-terminated path and two timespecs, as utimensat takes.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn to_errno(e: io::Error) -> Errno {
    Errno::from(e)
}

impl Filesystem for LazyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.found(parent, name) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(to_errno(e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let meta = match fh {
            Some(fh) => self.with_handle(fh, |h, _| h.file.metadata()),
            None => self.path(ino).and_then(std::fs::symlink_metadata),
        };
        match meta {
            Ok(m) => reply.attr(&TTL, &self.attr(&m)),
            Err(e) => reply.error(to_errno(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let result = (|| -> io::Result<std::fs::Metadata> {
            let path = self.path(ino)?;
            if let Some(mode) = mode {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))?;
            }
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::lchown(&path, uid, gid)?;
            }
            if let Some(size) = size {
                let file = OpenOptions::new().read(true).write(true).open(&path)?;
                if size > file.metadata()?.len() {
                    self.space()?;
                }
                self.state().unsynced.before_truncate(ino.0, &file, size)?;
                file.set_len(size)?;
            }
            if atime.is_some() || mtime.is_some() {
                set_times(&path, atime, mtime)?;
            }
            let _ = fh;
            std::fs::symlink_metadata(&path)
        })();
        match result {
            Ok(m) => reply.attr(&TTL, &self.attr(&m)),
            Err(e) => reply.error(to_errno(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.path(ino).and_then(std::fs::read_link) {
            Ok(target) => reply.data(target.as_os_str().as_encoded_bytes()),
            Err(e) => reply.error(to_errno(e)),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let result = (|| {
            self.space()?;
            let path = self.child(parent, name)?;
            std::fs::create_dir(&path)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & !umask))?;
            owned_by_caller(&path, req)?;
            let attr = self.found(parent, name)?;
            let entry = (parent.0, name.to_os_string());
            self.state().unsynced.created(attr.ino.0, entry);
            Ok(attr)
        })();
        match result {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(to_errno(e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, false, reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, true, reply);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let result = (|| {
            self.space()?;
            let path = self.child(parent, link_name)?;
            std::os::unix::fs::symlink(target, &path)?;
            owned_by_caller(&path, req)?;
            let attr = self.found(parent, link_name)?;
            let entry = (parent.0, link_name.to_os_string());
            self.state().unsynced.created(attr.ino.0, entry);
            Ok(attr)
        })();
        match result {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(to_errno(e)),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !flags.is_empty() {
            return reply.error(Errno::EINVAL);
        }
        let result = (|| {
            let from = self.child(parent, name)?;
            let to = self.child(newparent, newname)?;
            let moved = self.shown(std::fs::symlink_metadata(&from)?.ino());
            let replaced = std::fs::symlink_metadata(&to)
                .ok()
                .map(|m| self.shown(m.ino()));
            if replaced == Some(moved) {
                // Two links to one file: rename(2) does nothing.
                return Ok(());
            }
            let mut state = self.state();
            let (old, new) = (
                (parent.0, name.to_os_string()),
                (newparent.0, newname.to_os_string()),
            );
            state
                .unsynced
                .rename(moved, (old, &from), (new, &to), replaced)?;
            if let Some(r) = replaced {
                state.nodes.remove(&r);
            }
            state
                .nodes
                .insert(moved, (newparent.0, newname.to_os_string()));
            Ok(())
        })();
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(to_errno(e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let (options, sync) = open_options(flags.0);
        match self.path(ino).and_then(|p| options.open(p)) {
            Ok(file) => reply.opened(self.add_handle(file, ino.0, sync), FopenFlags::empty()),
            Err(e) => reply.error(to_errno(e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let result = (|| {
            let path = self.child(parent, name)?;
            let (mut options, sync) = open_options(flags);
            let existed = std::fs::symlink_metadata(&path).is_ok();
            if !existed {
                self.space()?;
            }
            options
                .write(true)
                .create(true)
                .create_new(flags & libc::O_EXCL != 0)
                .mode(mode & !umask);
            let file = options.open(&path)?;
            if !existed {
                owned_by_caller(&path, req)?;
            }
            let attr = self.found(parent, name)?;
            if !existed {
                let entry = (parent.0, name.to_os_string());
                self.state().unsynced.created(attr.ino.0, entry);
            } else if flags & libc::O_TRUNC != 0 {
                self.state()
                    .unsynced
                    .before_truncate(attr.ino.0, &file, 0)?;
                file.set_len(0)?;
            }
            let attr = self.attr(&file.metadata()?);
            Ok((attr, self.add_handle(file, attr.ino.0, sync)))
        })();
        match result {
            Ok((attr, fh)) => reply.created(&TTL, &attr, Generation(0), fh, FopenFlags::empty()),
            Err(e) => reply.error(to_errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let result = self.with_handle(fh, |h, _| {
            let mut buf = vec![0u8; size as usize];
            let mut got = 0usize;
            while got < buf.len() {
                match h.file.read_at(&mut buf[got..], offset + got as u64)? {
                    0 => break,
                    n => got += n,
                }
            }
            buf.truncate(got);
            Ok((buf, h.ino))
        });
        let result = result.map(|(mut buf, ino)| {
            if let Some(flips) = lock(&self.control.read_flips).get(&ino) {
                let end = offset + buf.len() as u64;
                for (&at, &mask) in flips.range(offset..end) {
                    buf[(at - offset) as usize] ^= mask;
                }
            }
            buf
        });
        match result {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(to_errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        // A sync write waits as an fsync does (before the lock is taken).
        if self.with_handle(fh, |h, _| Ok(h.sync)).unwrap_or(false) {
            self.stall();
        }
        let result = self.with_handle(fh, |h, unsynced| {
            if self.control.full() && offset + data.len() as u64 > h.file.metadata()?.len() {
                return Err(no_space());
            }
            if h.sync {
                h.file.write_all_at(data, offset)?;
                h.file.sync_data()?;
                unsynced.synced(h.ino);
            } else {
                unsynced.before_write(h.ino, &h.file, offset, data)?;
                h.file.write_all_at(data, offset)?;
            }
            // What is written now reads right.
            if let Some(flips) = lock(&self.control.read_flips).get_mut(&h.ino) {
                let end = offset + data.len() as u64;
                flips.retain(|at, _| !(offset..end).contains(at));
            }
            Ok(data.len() as u32)
        });
        match result {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(to_errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.state().handles.remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.stall();
        let result = self.with_handle(fh, |h, unsynced| {
            if datasync {
                h.file.sync_data()?;
            } else {
                h.file.sync_all()?;
            }
            unsynced.synced(h.ino);
            Ok(())
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(to_errno(e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.path(ino).and_then(File::open) {
            Ok(dir) => reply.opened(self.add_handle(dir, ino.0, false), FopenFlags::empty()),
            Err(e) => reply.error(to_errno(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = (|| -> io::Result<Vec<(u64, FileType, OsString)>> {
            let path = self.path(ino)?;
            let parent = match ino.0 {
                1 => 1,
                _ => self.state().nodes.get(&ino.0).map_or(1, |n| n.0),
            };
            let mut out = vec![
                (ino.0, FileType::Directory, ".".into()),
                (parent, FileType::Directory, "..".into()),
            ];
            for entry in std::fs::read_dir(&path)? {
                let entry = entry?;
                if cache::is_stash(ino.0, &entry.file_name()) {
                    continue;
                }
                out.push((
                    self.shown(entry.ino()),
                    kind(entry.file_type()?),
                    entry.file_name(),
                ));
            }
            Ok(out)
        })();
        match entries {
            Ok(entries) => {
                for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
                    if reply.add(INodeNo(*ino), i as u64 + 1, *kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(to_errno(e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.state().handles.remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.stall();
        let result = self.with_handle(fh, |h, _| h.file.sync_all()).map(|()| {
            let mut state = self.state();
            state.unsynced.dir_synced(ino.0);
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(to_errno(e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let Ok(path) = std::ffi::CString::new(self.control.backing.as_os_str().as_encoded_bytes())
        else {
            return reply.error(Errno::EINVAL);
        };
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: a NUL-terminated path and a zeroed struct statvfs to fill.
        if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
            return reply.error(to_errno(io::Error::last_os_error()));
        }
        // A full disk says so to those who ask before writing.
        let full = self.control.full();
        reply.statfs(
            st.f_blocks,
            if full { 0 } else { st.f_bfree },
            if full { 0 } else { st.f_bavail },
            st.f_files,
            st.f_ffree,
            st.f_bsize as u32,
            st.f_namemax as u32,
            st.f_frsize as u32,
        );
    }

    /// No extended attributes: the kernel stops asking after this answer.
    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: fuser::ReplyXattr,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: fuser::ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        match self.path(ino).and_then(std::fs::symlink_metadata) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(to_errno(e)),
        }
    }
}

/// Gives what a caller just made to the caller, as a disk would: the
/// helper runs as root, and a node running as its own user (PostgreSQL
/// checks that it owns its data directory) must own its files.
fn owned_by_caller(path: &Path, req: &Request) -> std::io::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    std::os::unix::fs::lchown(path, Some(req.uid()), Some(req.gid()))
}
