//! `faultline lazyfs` with a real FUSE mount (root, /dev/fuse): writes pass
//! through to the backing directory and are read back; a `clear` (power
//! loss) takes away what was not fsync'd and nothing that was; `torn` keeps
//! a strict prefix of the last write; a create survives only an fsync of its
//! directory; the heal journal's undo stops the helper and unmounts.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_faultline");

struct Mounted {
    _dir: tempfile::TempDir,
    backing: PathBuf,
    mount: PathBuf,
    socket: PathBuf,
    pidfile: PathBuf,
    child: Child,
}

impl Mounted {
    fn new() -> Mounted {
        let dir = tempfile::tempdir().unwrap();
        let backing = dir.path().join("backing");
        let mount = dir.path().join("mnt");
        std::fs::create_dir_all(&backing).unwrap();
        let socket = dir.path().join("lazyfs.sock");
        let pidfile = dir.path().join("lazyfs.pid");
        let child = Command::new(EXE)
            .args(["lazyfs", "mount", "--backing"])
            .arg(&backing)
            .arg("--mount")
            .arg(&mount)
            .arg("--socket")
            .arg(&socket)
            .arg("--pidfile")
            .arg(&pidfile)
            .spawn()
            .unwrap();
        // Built first, so that a failed assertion below still stops the helper.
        let m = Mounted {
            _dir: dir,
            backing,
            mount,
            socket,
            pidfile,
            child,
        };
        let started = Instant::now();
        while !m.pidfile.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the helper did not mount"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            mounted(&m.mount),
            "{} is not a lazyfs mount",
            m.mount.display()
        );
        m
    }

    /// Runs `faultline lazyfs ctl SOCKET cmd` as a user would; its JSON answer.
    fn ctl(&self, cmd: &str) -> serde_json::Value {
        let out = Command::new(EXE)
            .args(["lazyfs", "ctl"])
            .arg(&self.socket)
            .arg(cmd)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

fn mounted(mount: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let m = mount.to_str().unwrap();
    mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(m) && l.starts_with("faultline-lazyfs "))
}

fn append(path: &Path, data: &[u8]) -> File {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(data).unwrap();
    f
}

fn sync_dir(dir: &Path) {
    File::open(dir).unwrap().sync_all().unwrap();
}

#[test]
fn a_clear_loses_exactly_what_was_not_fsynced() {
    let m = Mounted::new();
    sync_dir(&m.mount);
    let log = m.mount.join("log");
    append(&log, b"durable;").sync_data().unwrap();
    sync_dir(&m.mount);
    drop(append(&log, b"lost"));
    assert_eq!(std::fs::read(&log).unwrap(), b"durable;lost");
    assert_eq!(
        std::fs::read(m.backing.join("log")).unwrap(),
        b"durable;lost"
    );
    let status = m.ctl("status");
    assert_eq!(status["files"], 1, "{status}");
    let answer = m.ctl("clear");
    assert_eq!(answer["lost"][0]["changes"], 1, "{answer}");
    assert_eq!(std::fs::read(m.backing.join("log")).unwrap(), b"durable;");
    assert_eq!(std::fs::read(&log).unwrap(), b"durable;");
    // Nothing is held any more: a second power loss changes nothing.
    m.ctl("clear");
    assert_eq!(std::fs::read(&log).unwrap(), b"durable;");
}

#[test]
fn writes_through_o_dsync_and_fsync_survive() {
    let m = Mounted::new();
    let path = m.mount.join("sync");
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .custom_flags(libc::O_DSYNC)
        .open(&path)
        .unwrap();
    sync_dir(&m.mount);
    f.write_all(b"each write durable").unwrap();
    drop(f);
    let other = m.mount.join("other");
    let f = append(&other, b"synced");
    sync_dir(&m.mount);
    f.sync_all().unwrap();
    m.ctl("clear");
    assert_eq!(std::fs::read(&path).unwrap(), b"each write durable");
    assert_eq!(std::fs::read(&other).unwrap(), b"synced");
}

#[test]
fn a_torn_loss_keeps_a_strict_prefix_of_the_last_write() {
    let m = Mounted::new();
    let log = m.mount.join("log");
    append(&log, b"AAAA").sync_data().unwrap();
    sync_dir(&m.mount);
    drop(append(&log, b"0123456789"));
    let answer = m.ctl("torn");
    assert_eq!(answer["lost"][0]["torn"], serde_json::json!([5, 10]));
    let after = std::fs::read(m.backing.join("log")).unwrap();
    assert_eq!(after, b"AAAA01234");
}

#[test]
fn a_create_is_durable_only_once_its_directory_is_fsynced() {
    let m = Mounted::new();
    let kept = m.mount.join("kept");
    append(&kept, b"k").sync_all().unwrap();
    sync_dir(&m.mount);
    let lost = m.mount.join("lost");
    append(&lost, b"l").sync_all().unwrap();
    let answer = m.ctl("clear");
    assert!(kept.exists());
    assert!(!lost.exists(), "{answer}");
    assert!(!m.backing.join("lost").exists());
    assert_eq!(std::fs::read(&kept).unwrap(), b"k");
}

#[test]
fn a_rename_and_a_truncate_pass_through() {
    let m = Mounted::new();
    let tmp = m.mount.join("state.tmp");
    std::fs::write(&tmp, b"0123456789").unwrap();
    std::fs::rename(&tmp, m.mount.join("state")).unwrap();
    let f = OpenOptions::new()
        .write(true)
        .open(m.mount.join("state"))
        .unwrap();
    f.set_len(4).unwrap();
    // Overwriting through a write-only descriptor (what it overwrote is kept).
    std::os::unix::fs::FileExt::write_all_at(&f, b"ab", 0).unwrap();
    assert_eq!(std::fs::read(m.mount.join("state")).unwrap(), b"ab23");
    let names: Vec<String> = std::fs::read_dir(&m.mount)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["state".to_string()]);
    std::fs::create_dir(m.mount.join("sub")).unwrap();
    std::fs::write(m.mount.join("sub/x"), b"x").unwrap();
    assert_eq!(std::fs::read(m.backing.join("sub/x")).unwrap(), b"x");
    std::fs::remove_file(m.mount.join("sub/x")).unwrap();
    std::fs::remove_dir(m.mount.join("sub")).unwrap();
    assert!(!m.backing.join("sub").exists());
}

#[test]
fn the_heal_journal_undo_stops_the_helper_and_unmounts() {
    let m = Mounted::new();
    let entry = faultline::net::journal::Entry::Lazyfs {
        pidfile: m.pidfile.to_str().unwrap().to_string(),
        mount: m.mount.to_str().unwrap().to_string(),
    };
    let out = Command::new("sh")
        .arg("-c")
        .arg(entry.undo_command())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!mounted(&m.mount));
    assert!(!m.pidfile.exists());
}
