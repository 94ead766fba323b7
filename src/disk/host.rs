//! The lazy file system on one host, each step one shell command through
//! its [`Remote`]: mount it over the node's data directory (recorded in the
//! heal journal first, in the same command), and send it control commands
//! (lose what was not fsync'd, slow, full, corrupt). The helper runs in the
//! host's own mount namespace (netns hosts are entered with nsenter into
//! theirs), so the nodes started there see it.

use super::Command;
use crate::control::{Remote, shell_quote};
use crate::net::journal::{self, Entry};
use serde_json::Value;
use std::time::Duration;

/// How long mounting or a power loss may take on a host.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where a node's lazy file system lives on its host.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The faultline executable on the host.
    pub helper: String,
    /// The directory that holds the data.
    pub backing: String,
    /// The node's data directory, where the file system is mounted.
    pub mount: String,
    pub socket: String,
    /// faultline's state directory on the host (journal, pidfile, log).
    pub state_dir: String,
}

impl Paths {
    fn pidfile(&self) -> String {
        format!("{}/lazyfs.pid", self.state_dir)
    }

    fn entry(&self) -> Entry {
        Entry::Lazyfs {
            pidfile: self.pidfile(),
            mount: self.mount.clone(),
        }
    }

    fn fault_entry(&self) -> Entry {
        Entry::LazyfsFault {
            helper: self.helper.clone(),
            socket: self.socket.clone(),
        }
    }
}

/// The script that mounts the file system: journal first, then whatever an
/// earlier helper left is undone, data already in the plain directory moves
/// to the backing one, and the helper starts and writes its pidfile once
/// mounted (waited for, at most 5 s).
pub fn mount_script(p: &Paths) -> String {
    let q = shell_quote;
    let (backing, mount, pidfile) = (q(&p.backing), q(&p.mount), q(&p.pidfile()));
    let log = q(&format!("{}/lazyfs.log", p.state_dir));
    let socket_dir = q(crate::control::parent_dir(&p.socket));
    format!(
        "set -e\n\
         [ -c /dev/fuse ] || {{ echo 'no /dev/fuse on this host: disk faults need FUSE (a Docker host: --device /dev/fuse --cap-add SYS_ADMIN)' >&2; exit 1; }}\n\
         {record}\n\
         {undo}\n\
         mkdir -p {backing} {mount} {socket_dir}\n\
         if [ -n \"$(ls -A {mount})\" ]; then find {mount} -mindepth 1 -maxdepth 1 -exec mv -t {backing} {{}} +; fi\n\
         setsid {helper} lazyfs mount --backing {backing} --mount {mount} --socket {socket} --pidfile {pidfile} > {log} 2>&1 < /dev/null &\n\
         i=0; while [ ! -s {pidfile} ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done\n\
         [ -s {pidfile} ] || {{ echo 'faultline lazyfs did not mount:' >&2; cat {log} >&2; exit 1; }}\n",
        record = journal::record_command(&p.state_dir, &p.entry()),
        undo = p.entry().undo_command(),
        helper = q(&p.helper),
        socket = q(&p.socket),
    )
}

/// Mounts the lazy file system over the node's data directory.
pub fn mount(remote: &dyn Remote, p: &Paths) -> Result<(), crate::control::RemoteError> {
    remote.run(&mount_script(p), TIMEOUT).map(|_| ())
}

/// Sends one control command to the host's helper; returns its answer. A
/// command that makes the disk slow, full or read wrong is journaled first,
/// in the same shell command (heal makes it fast, gives it space and reads
/// it right again); `clear`,
/// `torn` and `corrupt` change data, which no heal brings back.
pub fn ctl(remote: &dyn Remote, p: &Paths, cmd: Command) -> Result<Value, String> {
    let record = match cmd {
        Command::Slow { .. } | Command::Full(_) | Command::CorruptRead(Some(_)) => {
            format!(
                "{} && ",
                journal::record_command(&p.state_dir, &p.fault_entry())
            )
        }
        _ => String::new(),
    };
    let out = remote
        .run(
            &format!(
                "{record}{} lazyfs ctl {} {}",
                shell_quote(&p.helper),
                shell_quote(&p.socket),
                cmd.line()
            ),
            TIMEOUT,
        )
        .map_err(|e| e.to_string())?;
    serde_json::from_str(out.trim()).map_err(|e| {
        format!(
            "{}: the lazyfs helper answered {:?}: {e}",
            remote.name(),
            crate::history::text::excerpt(out.trim())
        )
    })
}
