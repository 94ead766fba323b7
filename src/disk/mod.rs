//! Disk faults: `faultline lazyfs`, a FUSE file system mounted over a node's
//! data directory that passes everything through to a backing directory but
//! can lose what was written and not fsync'd, as a power loss does.
//!
//! - [`cache`]: what is not yet durable, as undo records, and the power loss.
//! - [`lazyfs`]: the FUSE file system over a backing directory (`fuser`,
//!   mounting with mount(2) as root, else through `fusermount3`).
//! - [`host`]: mounting it on a host and making it lose, through `Remote`.
//! - here: the helper's life ([`serve`]: mount, answer the control socket
//!   until SIGTERM, unmount) and the control protocol ([`ctl`]): one line
//!   in (`clear`, `torn`, `checkpoint`, `status`, `slow MS`, `full on|off`,
//!   `corrupt BITS SEED`, `corrupt-read BITS SEED|off`), one JSON line out
//!   (`{"error": ...}` for a bad line).
//!
//! Not here: when to lose what, on which hosts (that is `nemesis`).

pub mod cache;
pub mod host;
pub mod lazyfs;

pub use cache::Loss;

use anyhow::Context;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How long one control request may take to arrive or be answered.
const CTL_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest control line read.
const MAX_LINE: u64 = 256;
/// How often the helper looks for a stop signal between requests.
const POLL: Duration = Duration::from_millis(20);

/// The longest extra time `slow` may give each fsync: a longer one is not a
/// slow disk but a dead one (and would hold the file system's threads).
pub const SLOW_MS_MAX: u64 = 10_000;
/// The most bits one `corrupt` flips.
pub const CORRUPT_BITS_MAX: u32 = 4096;

/// A control command: one line of words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Power loss: every write not made durable is gone.
    Clear,
    /// Power loss with a torn last write per file.
    Torn,
    /// Everything is durable as it is now (`sync` of the whole disk).
    Checkpoint,
    /// What is held: files, creates and bytes not yet durable; the slow
    /// delay and whether the disk is full.
    Status,
    /// `slow MS`: every fsync, fdatasync, fsyncdir and O_SYNC/O_DSYNC write
    /// takes MS more milliseconds (0: fast again).
    Slow { delay_ms: u64 },
    /// `full on|off`: writes that would allocate fail with ENOSPC.
    Full(bool),
    /// `corrupt BITS SEED`: flip BITS distinct bits of durable data, at
    /// offsets drawn from SEED (the node must be down).
    Corrupt { bits: u32, seed: u64 },
    /// `corrupt-read BITS SEED`: reads of BITS distinct bits of durable
    /// data, drawn from SEED as `corrupt` draws them, return them flipped;
    /// the backing files are not changed. `corrupt-read off` (`None`):
    /// reads are right again.
    CorruptRead(Option<(u32, u64)>),
}

/// What the control protocol accepts, for error messages.
const SYNTAX: &str = "clear, torn, checkpoint, status, slow MS, full on|off, corrupt BITS SEED or corrupt-read BITS SEED|off";

impl Command {
    /// Parses one control line; the error says what was wrong.
    pub fn parse(line: &str) -> Result<Command, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let number = |what: &str, word: &str, max: u64| -> Result<u64, String> {
            match word.parse::<u64>() {
                Ok(n) if n <= max => Ok(n),
                _ => Err(format!(
                    "{what} must be a whole number from 0 to {max}, not {:?}",
                    crate::history::text::excerpt(word)
                )),
            }
        };
        match words.as_slice() {
            ["clear"] => Ok(Command::Clear),
            ["torn"] => Ok(Command::Torn),
            ["checkpoint"] => Ok(Command::Checkpoint),
            ["status"] => Ok(Command::Status),
            ["slow", ms] => Ok(Command::Slow {
                delay_ms: number("slow's delay (ms)", ms, SLOW_MS_MAX)?,
            }),
            ["full", "on"] => Ok(Command::Full(true)),
            ["full", "off"] => Ok(Command::Full(false)),
            ["corrupt-read", "off"] => Ok(Command::CorruptRead(None)),
            [word @ ("corrupt" | "corrupt-read"), bits, seed] => {
                let bits = number(
                    &format!("{word}'s bit count"),
                    bits,
                    u64::from(CORRUPT_BITS_MAX),
                )?;
                if bits == 0 {
                    return Err(format!("{word}'s bit count must be at least 1"));
                }
                let (bits, seed) = (
                    bits as u32,
                    number(&format!("{word}'s seed"), seed, u64::MAX)?,
                );
                Ok(if *word == "corrupt" {
                    Command::Corrupt { bits, seed }
                } else {
                    Command::CorruptRead(Some((bits, seed)))
                })
            }
            [word @ ("slow" | "full" | "corrupt" | "corrupt-read"), ..] => Err(format!(
                "{word} takes {}",
                match *word {
                    "slow" => "a delay in milliseconds: `slow 200` (`slow 0`: fast again)",
                    "full" => "on or off: `full on`",
                    "corrupt" => "a bit count and a seed: `corrupt 1 42`",
                    _ => "a bit count and a seed, or off: `corrupt-read 1 42`",
                }
            )),
            _ => Err(format!(
                "unknown command {:?}: expected {SYNTAX}",
                crate::history::text::excerpt(line.trim())
            )),
        }
    }

    /// The command as its control line (without the newline).
    pub fn line(self) -> String {
        match self {
            Command::Clear => "clear".into(),
            Command::Torn => "torn".into(),
            Command::Checkpoint => "checkpoint".into(),
            Command::Status => "status".into(),
            Command::Slow { delay_ms } => format!("slow {delay_ms}"),
            Command::Full(on) => format!("full {}", if on { "on" } else { "off" }),
            Command::Corrupt { bits, seed } => format!("corrupt {bits} {seed}"),
            Command::CorruptRead(Some((bits, seed))) => format!("corrupt-read {bits} {seed}"),
            Command::CorruptRead(None) => "corrupt-read off".into(),
        }
    }
}

/// Mounts a [`lazyfs::LazyFs`] of `backing` on `mount`, answers commands on
/// `socket`, writes `pidfile` once both are ready, and runs until SIGTERM or
/// SIGINT; then unmounts.
pub fn serve(
    backing: &Path,
    mount: &Path,
    socket: &Path,
    pidfile: Option<&Path>,
) -> anyhow::Result<()> {
    let stop = crate::net::stop_on_signals();
    // Modes are the callers' own: the kernel applied their umask already.
    // SAFETY: umask only sets the process's file mode mask.
    unsafe { libc::umask(0) };
    std::fs::create_dir_all(mount).with_context(|| format!("cannot create {}", mount.display()))?;
    let (fs, control) = lazyfs::LazyFs::new(backing)
        .with_context(|| format!("cannot use {} as the backing directory", backing.display()))?;
    let mut config = fuser::Config::default();
    config.mount_options = vec![fuser::MountOption::FSName(
        crate::net::journal::LAZYFS_SOURCE.into(),
    )];
    // Nodes may run as another user (postgres runs as its own).
    config.acl = fuser::SessionACL::All;
    config.n_threads = Some(2);
    let session = fuser::spawn_mount(fs, mount, &config)
        .with_context(|| format!("cannot mount the lazy file system on {}", mount.display()))?;
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    listener.set_nonblocking(true)?;
    if let Some(p) = pidfile {
        crate::atomic_file::write(p, format!("{}\n", std::process::id()).as_bytes())
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    tracing::info!(backing = %backing.display(), mount = %mount.display(), "lazyfs mounted");
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((conn, _)) => {
                if let Err(e) = answer(conn, &control) {
                    tracing::warn!("lazyfs control: {e:#}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) => return Err(e).context("lazyfs control socket"),
        }
    }
    let _ = std::fs::remove_file(socket);
    session.umount_and_join().context("cannot unmount")?;
    // An unmount syncs: the removals the stash kept are durable.
    control.close().context("cannot delete the stash")?;
    Ok(())
}

/// Reads one command from `conn`, carries it out, writes one JSON line.
fn answer(conn: UnixStream, control: &lazyfs::Control) -> anyhow::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(CTL_TIMEOUT))?;
    conn.set_write_timeout(Some(CTL_TIMEOUT))?;
    // Bytes, not a String: a line that is not UTF-8 gets an answer too.
    let mut bytes = Vec::new();
    BufReader::new((&conn).take(MAX_LINE)).read_until(b'\n', &mut bytes)?;
    let line = String::from_utf8_lossy(&bytes);
    let reply = match Command::parse(&line) {
        Err(e) => json!({ "error": e }),
        Ok(cmd) => carry_out(cmd, control),
    };
    let mut conn = conn;
    writeln!(conn, "{reply}")?;
    Ok(())
}

/// Carries out one command; the JSON line to answer.
fn carry_out(cmd: Command, control: &lazyfs::Control) -> Value {
    let lose = |loss| match control.lose(loss) {
        Ok(lost) => json!({ "lost": lost }),
        Err(e) => json!({"error": format!("cannot undo the un-synced writes: {e}")}),
    };
    match cmd {
        Command::Status => {
            let (pending, written_back) = control.pending();
            let mut status = json!(pending);
            status["written_back"] = json!(written_back);
            status["slow_ms"] = json!(control.slow_ms());
            status["full"] = json!(control.full());
            status["read_flips"] = json!(control.read_flips());
            status
        }
        Command::Clear => lose(Loss::Clear),
        Command::Torn => lose(Loss::Torn),
        Command::Checkpoint => {
            let (pending, _) = control.pending();
            control.checkpoint();
            json!({ "made_durable": pending })
        }
        Command::Slow { delay_ms } => {
            control.set_slow_ms(delay_ms);
            json!({ "slow_ms": delay_ms })
        }
        Command::Full(on) => {
            control.set_full(on);
            json!({ "full": on })
        }
        Command::Corrupt { bits, seed } => match control.corrupt(bits, seed) {
            Ok(flipped) => json!({ "flipped": flipped }),
            Err(e) => json!({"error": format!("cannot flip bits: {e}")}),
        },
        Command::CorruptRead(Some((bits, seed))) => match control.corrupt_reads(bits, seed) {
            Ok(flipped) => json!({ "read_flipped": flipped }),
            Err(e) => json!({"error": format!("cannot pick bits to flip: {e}")}),
        },
        Command::CorruptRead(None) => json!({ "read_flips_healed": control.heal_reads() }),
    }
}

/// Sends `cmd` to the helper listening on `socket`; returns its answer.
pub fn ctl(socket: &Path, cmd: Command) -> anyhow::Result<Value> {
    let mut conn = UnixStream::connect(socket)
        .with_context(|| format!("no lazyfs helper answers on {}", socket.display()))?;
    conn.set_read_timeout(Some(CTL_TIMEOUT))?;
    conn.set_write_timeout(Some(CTL_TIMEOUT))?;
    writeln!(conn, "{}", cmd.line())?;
    let mut line = String::new();
    BufReader::new((&conn).take(16 << 20)).read_line(&mut line)?;
    let reply: Value = serde_json::from_str(&line).with_context(|| {
        format!(
            "the lazyfs helper answered {:?}",
            crate::history::text::excerpt(&line)
        )
    })?;
    if let Some(e) = reply.get("error").and_then(Value::as_str) {
        anyhow::bail!("lazyfs {}: {e}", cmd.line());
    }
    Ok(reply)
}
