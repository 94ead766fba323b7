//! `faultline lazyfs` with a real FUSE mount (root, /dev/fuse): writes pass
//! through to the backing directory and are read back; a `clear` (power
//! loss) takes away what was not fsync'd and nothing that was; `torn` keeps
//! a strict prefix of the last write; a create survives only an fsync of its
//! directory; the heal journal's undo stops the helper and unmounts. The
//! disk faults under a running program: `slow` (every fsync takes at least
//! the delay), `full` (ENOSPC for writes that allocate, nothing else), and
//! `corrupt` (bits of durable data flipped exactly where the answer says);
//! bad control lines get an error, never a dead helper.

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

    /// Runs `faultline lazyfs ctl SOCKET cmd...` as a user would; its JSON answer.
    fn ctl(&self, cmd: &str) -> serde_json::Value {
        let out = self.ctl_output(cmd);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn ctl_output(&self, cmd: &str) -> std::process::Output {
        Command::new(EXE)
            .args(["lazyfs", "ctl"])
            .arg(&self.socket)
            .args(cmd.split_whitespace())
            .output()
            .unwrap()
    }

    /// One raw line on the control socket, as any client may send; the
    /// helper's answer.
    fn raw(&self, line: &[u8]) -> serde_json::Value {
        use std::io::{BufRead, BufReader};
        let mut conn = std::os::unix::net::UnixStream::connect(&self.socket).unwrap();
        conn.write_all(line).unwrap();
        conn.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        BufReader::new(conn).read_line(&mut answer).unwrap();
        serde_json::from_str(&answer).unwrap()
    }
}

/// How long `f` took.
fn timed(f: impl FnOnce()) -> Duration {
    let started = Instant::now();
    f();
    started.elapsed()
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

/// What deploy does once the system is up: the set-up's writes and
/// creates, never fsync'd, become durable, and a later loss takes only
/// what came after.
#[test]
fn a_checkpoint_makes_everything_durable_as_it_is() {
    let m = Mounted::new();
    let dir = m.mount.join("made-by-setup");
    std::fs::create_dir(&dir).unwrap();
    let log = dir.join("log");
    drop(append(&log, b"setup;"));
    let answer = m.ctl("checkpoint");
    assert_eq!(answer["made_durable"]["files"], 1, "{answer}");
    assert_eq!(answer["made_durable"]["created"], 2, "{answer}");
    drop(append(&log, b"lost"));
    m.ctl("clear");
    assert_eq!(std::fs::read(&log).unwrap(), b"setup;");
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

#[test]
fn a_slow_disk_makes_every_fsync_wait_until_it_is_fast_again() {
    let m = Mounted::new();
    let path = m.mount.join("log");
    let f = append(&path, b"x");
    let delay = Duration::from_millis(400);
    assert_eq!(m.ctl("slow 400")["slow_ms"], 400);
    assert_eq!(m.ctl("status")["slow_ms"], 400);
    let fsync = timed(|| f.sync_all().unwrap());
    assert!(
        fsync >= delay,
        "an fsync took {fsync:?} under a 400 ms slow disk"
    );
    let fdatasync = timed(|| f.sync_data().unwrap());
    assert!(fdatasync >= delay, "an fdatasync took {fdatasync:?}");
    let dir = timed(|| sync_dir(&m.mount));
    assert!(dir >= delay, "a directory fsync took {dir:?}");
    let mut dsync = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DSYNC)
        .open(&path)
        .unwrap();
    let write = timed(|| dsync.write_all(b"y").unwrap());
    assert!(write >= delay, "an O_DSYNC write took {write:?}");
    // Plain writes and reads do not wait.
    drop(append(&path, b"z"));
    assert_eq!(std::fs::read(&path).unwrap(), b"yz");
    assert_eq!(m.ctl("slow 0")["slow_ms"], 0);
    assert_eq!(m.ctl("status")["slow_ms"], 0, "fast again");
    f.sync_all().unwrap();
}

#[test]
fn a_full_disk_refuses_what_allocates_and_nothing_else() {
    let m = Mounted::new();
    let path = m.mount.join("log");
    let f = append(&path, b"0123456789");
    f.sync_all().unwrap();
    std::fs::write(m.mount.join("doomed"), b"d").unwrap();
    assert_eq!(m.ctl("full on")["full"], true);
    let enospc = |r: std::io::Result<()>, what: &str| {
        let e = r.expect_err(what);
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{what}: {e}");
    };
    let mut log = OpenOptions::new().append(true).open(&path).unwrap();
    enospc(log.write_all(b"more"), "an append");
    enospc(std::fs::write(m.mount.join("new"), b"n"), "creating a file");
    assert!(!m.mount.join("new").exists());
    enospc(std::fs::create_dir(m.mount.join("dir")), "mkdir");
    enospc(f.set_len(100), "growing a file");
    // Overwriting allocated bytes, reading, fsync, shrinking and unlinking
    // work (through a descriptor without O_APPEND: pwrite on one appends).
    let rw = OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&rw, b"AB", 0).unwrap();
    f.sync_all().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"AB23456789");
    f.set_len(8).unwrap();
    std::fs::remove_file(m.mount.join("doomed")).unwrap();
    // statfs says it is full, for those who ask before writing.
    let c = std::ffi::CString::new(m.mount.to_str().unwrap()).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a zeroed struct statvfs to fill.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    assert_eq!(st.f_bavail, 0);
    assert_eq!(m.ctl("full off")["full"], false);
    log.write_all(b"more").unwrap();
    std::fs::write(m.mount.join("new"), b"n").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"AB234567more");
}

#[test]
fn corrupt_flips_exactly_the_bits_it_names_in_durable_data_only() {
    let m = Mounted::new();
    let path = m.mount.join("log");
    let durable: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
    append(&path, &durable).sync_all().unwrap();
    sync_dir(&m.mount);
    // Neither an un-synced tail nor a file whose create is not durable is
    // durable data: no bit of them may flip.
    drop(append(&path, &[0xAA; 512]));
    std::fs::write(m.mount.join("new"), [0x55; 4096]).unwrap();
    let before = std::fs::read(&path).unwrap();
    let answer = m.ctl("corrupt 16 42");
    let flipped = answer["flipped"].as_array().unwrap();
    assert_eq!(flipped.len(), 16, "{answer}");
    let mut expected = before.clone();
    let mut positions = std::collections::BTreeSet::new();
    for f in flipped {
        assert_eq!(
            f["path"],
            m.backing.join("log").to_str().unwrap(),
            "{answer}"
        );
        let (offset, bit) = (f["offset"].as_u64().unwrap(), f["bit"].as_u64().unwrap());
        assert!(offset < durable.len() as u64, "{f} is not durable data");
        assert!(positions.insert((offset, bit)), "{f} twice");
        let o = offset as usize;
        assert_eq!(f["byte_before"], before[o], "{f}");
        expected[o] ^= 1 << bit;
        assert_eq!(f["byte_after"], expected[o], "{f}");
    }
    let after = std::fs::read(&path).unwrap();
    assert_eq!(
        after, expected,
        "the file differs exactly at the named bits"
    );
    assert_eq!(std::fs::read(m.mount.join("new")).unwrap(), [0x55; 4096]);
    // The seed decides: the same seed flips the same bits back.
    let again = m.ctl("corrupt 16 42");
    assert_eq!(again["flipped"].as_array().unwrap().len(), 16);
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let other = m.ctl("corrupt 16 43");
    assert_ne!(other["flipped"], answer["flipped"]);
    // A power loss afterwards still undoes only the un-synced tail.
    m.ctl("clear");
    assert_eq!(std::fs::read(&path).unwrap().len(), durable.len());
}

#[test]
fn bad_control_lines_get_an_error_and_the_helper_goes_on() {
    let m = Mounted::new();
    for (line, says) in [
        (
            &b"slow fast\n"[..],
            "slow's delay (ms) must be a whole number from 0 to 10000",
        ),
        (b"slow 10001\n", "from 0 to 10000"),
        (b"slow\n", "slow takes a delay in milliseconds"),
        (b"full maybe\n", "full takes on or off"),
        (b"corrupt 0 1\n", "at least 1"),
        (b"corrupt 1\n", "a bit count and a seed"),
        (b"corrupt-read 1\n", "a bit count and a seed, or off"),
        (
            b"corrupt-read 0 9\n",
            "corrupt-read's bit count must be at least 1",
        ),
        (b"corrupt-read on\n", "a bit count and a seed, or off"),
        (b"explode\n", "unknown command"),
        (b"\xff\xfe\n", "unknown command"),
        (b"", "unknown command"),
    ] {
        let answer = m.raw(line);
        let error = answer["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{answer}"));
        assert!(error.contains(says), "{line:?}: {error}");
    }
    // The command line says the same and exits 3, as bad input does.
    let out = m.ctl_output("full maybe");
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("full takes on or off"), "{stderr}");
    assert_eq!(m.ctl("status")["full"], false, "the helper still answers");
}

#[test]
fn the_heal_journal_makes_a_slow_full_disk_fast_with_space_again() {
    let m = Mounted::new();
    m.ctl("slow 500");
    m.ctl("full on");
    let entry = faultline::net::journal::Entry::LazyfsFault {
        helper: EXE.to_string(),
        socket: m.socket.to_str().unwrap().to_string(),
    };
    let inspect = |cmd: String| {
        let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(inspect(entry.inspect_command()).contains("\"slow_ms\":500"));
    inspect(entry.undo_command());
    let status = m.ctl("status");
    assert_eq!(
        (status["slow_ms"].clone(), status["full"].clone()),
        (0.into(), false.into())
    );
    assert_eq!(inspect(entry.inspect_command()), "", "nothing left to show");
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Writes `data` to `dir/tmp`, fsyncs it and renames it over `dir/name`,
/// as every careful program replaces a file.
fn replace(dir: &Path, name: &str, data: &[u8]) {
    let tmp = dir.join("tmp");
    let mut f = File::create(&tmp).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

#[test]
fn a_rename_over_a_file_survives_a_power_loss_only_after_a_directory_fsync() {
    let m = Mounted::new();
    let name = m.mount.join("name");
    append(&name, b"old").sync_all().unwrap();
    sync_dir(&m.mount);
    replace(&m.mount, "name", b"new");
    sync_dir(&m.mount);
    m.ctl("clear");
    assert_eq!(std::fs::read(&name).unwrap(), b"new");
    assert_eq!(names(&m.mount), ["name"]);
    // Without the directory fsync the rename is undone: the old file is
    // back, and the temporary, never made durable, is gone.
    replace(&m.mount, "name", b"newer");
    assert_eq!(m.ctl("status")["renamed"], 1);
    let answer = m.ctl("clear");
    assert_eq!(std::fs::read(&name).unwrap(), b"new", "{answer}");
    assert_eq!(names(&m.mount), ["name"], "{answer}");
    let lost = answer["lost"].as_array().unwrap();
    let backing_name = m.backing.join("name").to_str().unwrap().to_string();
    let backing_tmp = m.backing.join("tmp").to_str().unwrap().to_string();
    assert_eq!(lost[0]["path"], backing_name.as_str(), "{answer}");
    assert_eq!(lost[0]["restored"], true, "{answer}");
    assert_eq!(lost[1]["path"], backing_tmp.as_str(), "{answer}");
    assert_eq!(lost[1]["renamed_from"], backing_name.as_str(), "{answer}");
    assert_eq!(lost[2]["removed"], true, "{answer}");
    // A new name that no directory fsync made durable is not there at all.
    replace(&m.mount, "fresh", b"f");
    m.ctl("clear");
    assert!(!m.mount.join("fresh").exists());
    let stash = m.backing.join(".faultline-lazyfs-stash");
    assert_eq!(names(&stash), Vec::<String>::new(), "the stash is empty");
    assert_eq!(names(&m.backing), [".faultline-lazyfs-stash", "name"]);
}

#[test]
fn an_unlinked_file_comes_back_unless_its_directory_was_fsynced() {
    let m = Mounted::new();
    std::fs::create_dir(m.mount.join("d")).unwrap();
    sync_dir(&m.mount);
    let (kept, gone) = (m.mount.join("d/kept"), m.mount.join("d/gone"));
    append(&kept, b"k").sync_all().unwrap();
    append(&gone, b"g").sync_all().unwrap();
    sync_dir(&m.mount.join("d"));
    std::fs::remove_file(&kept).unwrap();
    // The stash is never shown, nor found by name.
    assert_eq!(names(&m.mount), ["d"]);
    assert!(names(&m.backing).contains(&".faultline-lazyfs-stash".to_string()));
    assert!(
        std::fs::metadata(m.mount.join(".faultline-lazyfs-stash")).is_err(),
        "the stash is found by name"
    );
    let answer = m.ctl("clear");
    assert_eq!(answer["lost"][0]["restored"], true, "{answer}");
    assert_eq!(std::fs::read(&kept).unwrap(), b"k");
    std::fs::remove_file(&gone).unwrap();
    sync_dir(&m.mount.join("d"));
    assert_eq!(m.ctl("status")["stashed_bytes"], 0);
    m.ctl("clear");
    assert!(!gone.exists());
    // A checkpoint makes an unlink durable too.
    std::fs::remove_file(&kept).unwrap();
    assert_eq!(m.ctl("checkpoint")["made_durable"]["unlinked"], 1);
    m.ctl("clear");
    assert!(!kept.exists());
}

/// A disk that reads wrong: reads return the named bits flipped while the
/// file at rest stays as written, and the fault's end (the heal journal's
/// undo) makes reads right again.
#[test]
fn corrupt_read_flips_what_reads_return_and_never_the_file() {
    let m = Mounted::new();
    let path = m.mount.join("log");
    let durable: Vec<u8> = (0..4096u32).map(|i| (i * 13) as u8).collect();
    append(&path, &durable).sync_all().unwrap();
    sync_dir(&m.mount);
    let answer = m.ctl("corrupt-read 8 7");
    let flipped = answer["read_flipped"].as_array().unwrap();
    assert_eq!(flipped.len(), 8, "{answer}");
    assert_eq!(m.ctl("status")["read_flips"], 8);
    let mut expected = durable.clone();
    for f in flipped {
        let (offset, bit) = (f["offset"].as_u64().unwrap(), f["bit"].as_u64().unwrap());
        let o = offset as usize;
        assert_eq!(f["byte_before"], durable[o], "{f}");
        assert_eq!(f["byte_after"], durable[o] ^ (1 << bit), "{f}");
        expected[o] ^= 1 << bit;
    }
    let read = std::fs::read(&path).unwrap();
    assert_ne!(read, durable);
    assert_eq!(read, expected, "reads differ exactly at the named bits");
    assert_eq!(
        std::fs::read(m.backing.join("log")).unwrap(),
        durable,
        "the file at rest is unchanged"
    );
    let entry = faultline::net::journal::Entry::LazyfsFault {
        helper: EXE.to_string(),
        socket: m.socket.to_str().unwrap().to_string(),
    };
    let sh = |cmd: String| {
        let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(sh(entry.inspect_command()).contains("\"read_flips\":8"));
    sh(entry.undo_command());
    assert_eq!(m.ctl("status")["read_flips"], 0);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        durable,
        "right after the heal"
    );
}
