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
//!   in (`clear`, `torn`, `status`), one JSON line out.
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

/// A control command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Power loss: every write not made durable is gone.
    Clear,
    /// Power loss with a torn last write per file.
    Torn,
    /// What is held: files, creates and bytes not yet durable.
    Status,
}

impl Command {
    pub fn parse(word: &str) -> Option<Command> {
        match word.trim() {
            "clear" => Some(Command::Clear),
            "torn" => Some(Command::Torn),
            "status" => Some(Command::Status),
            _ => None,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Command::Clear => "clear",
            Command::Torn => "torn",
            Command::Status => "status",
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
    Ok(())
}

/// Reads one command from `conn`, carries it out, writes one JSON line.
fn answer(conn: UnixStream, control: &lazyfs::Control) -> anyhow::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(CTL_TIMEOUT))?;
    conn.set_write_timeout(Some(CTL_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new((&conn).take(MAX_LINE)).read_line(&mut line)?;
    let reply = match Command::parse(&line) {
        None => json!({"error": format!("unknown command {:?}: expected clear, torn or status",
            crate::history::text::excerpt(line.trim()))}),
        Some(Command::Status) => {
            let (files, created, held, written_back) = control.pending();
            json!({"files": files, "created": created, "held_bytes": held, "written_back": written_back})
        }
        Some(cmd) => {
            let loss = if cmd == Command::Torn {
                Loss::Torn
            } else {
                Loss::Clear
            };
            match control.lose(loss) {
                Ok(lost) => json!({ "lost": lost }),
                Err(e) => json!({"error": format!("cannot undo the un-synced writes: {e}")}),
            }
        }
    };
    let mut conn = conn;
    writeln!(conn, "{reply}")?;
    Ok(())
}

/// Sends `cmd` to the helper listening on `socket`; returns its answer.
pub fn ctl(socket: &Path, cmd: Command) -> anyhow::Result<Value> {
    let mut conn = UnixStream::connect(socket)
        .with_context(|| format!("no lazyfs helper answers on {}", socket.display()))?;
    conn.set_read_timeout(Some(CTL_TIMEOUT))?;
    conn.set_write_timeout(Some(CTL_TIMEOUT))?;
    writeln!(conn, "{}", cmd.word())?;
    let mut line = String::new();
    BufReader::new((&conn).take(16 << 20)).read_line(&mut line)?;
    let reply: Value = serde_json::from_str(&line).with_context(|| {
        format!(
            "the lazyfs helper answered {:?}",
            crate::history::text::excerpt(&line)
        )
    })?;
    if let Some(e) = reply.get("error").and_then(Value::as_str) {
        anyhow::bail!("lazyfs {}: {e}", cmd.word());
    }
    Ok(reply)
}
