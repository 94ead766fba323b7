//! How a command reaches a host: the [`Remote`] trait and its three kinds of
//! host (network namespace, SSH, Docker container), plus helpers to run one
//! action on many hosts in parallel.
//!
//! The trait is blocking on purpose: ssh2 is blocking, and the other two run
//! child processes. Async callers use `tokio::task::spawn_blocking`.
//! This module knows nothing of clusters, nodes or faults.

pub mod docker;
pub mod netns;
pub mod process;
pub mod ssh;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// What a command printed and how it exited.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The exit code; `None` when the command was killed by a signal.
    pub code: Option<i32>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// `Ok(self)` when the command exited 0, else [`RemoteError::Failed`]
    /// naming `host`, `command` and what it printed on stderr.
    pub fn checked(self, host: &str, command: &str) -> Result<ExecOutput, RemoteError> {
        if self.success() {
            return Ok(self);
        }
        Err(RemoteError::Failed {
            host: host.to_string(),
            command: command.to_string(),
            code: self.code,
            stderr: String::from_utf8_lossy(&self.stderr).trim().to_string(),
        })
    }
}

/// Why a remote call failed. Every variant names the host.
#[derive(Debug, Error)]
pub enum RemoteError {
    #[error("{host}: unreachable: {detail}")]
    Unreachable { host: String, detail: String },
    #[error("{host}: authentication failed: {detail}")]
    AuthFailed { host: String, detail: String },
    #[error("{host}: host key mismatch: {detail}")]
    HostKey { host: String, detail: String },
    #[error("{host}: `{}` timed out after {timeout_ms} ms", shown(.command))]
    Timeout {
        host: String,
        command: String,
        timeout_ms: u64,
    },
    #[error("{host}: `{}` exited with {code:?}: {stderr}", shown(.command))]
    Failed {
        host: String,
        command: String,
        code: Option<i32>,
        stderr: String,
    },
    #[error("{host}: {detail}")]
    Other { host: String, detail: String },
    /// Several hosts failed the same parallel action (see [`on_all`]).
    #[error("{} hosts failed:\n  {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n  "))]
    Many(Vec<RemoteError>),
}

/// A command as errors show it: its first line, cut at 100 characters,
/// with ` …` when something was left out (scripts run on hosts are long;
/// the host's stderr, shown in full, says what went wrong).
fn shown(command: &str) -> String {
    const MAX_CHARS: usize = 100;
    let first = command.trim().lines().next().unwrap_or_default();
    let cut: String = first.chars().take(MAX_CHARS).collect();
    if cut.len() < command.trim().len() {
        format!("{cut} …")
    } else {
        cut
    }
}

/// A host the controller can run commands on and copy files to and from.
/// Where a host's installed programs come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packages {
    /// Its own: apt-get on the host installs them (an SSH host).
    Own,
    /// This machine's (a network namespace here, which has no route to the
    /// package mirrors): installed once, on this machine, outside the host.
    ThisMachine,
    /// Its image's, built from this machine's files (a Docker container):
    /// what the image lacks cannot be installed during a run.
    Image,
}

pub trait Remote: Send + Sync {
    /// The host's name (n1, n2, ...), used in every error.
    fn name(&self) -> &str;
    /// Runs `command` with `sh -c`, feeding `stdin` if given. A non-zero exit
    /// is not an error here; see [`Remote::run`]. Hosts that need `sudo` wrap
    /// the command themselves, so `command` always runs as root.
    fn exec(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ExecOutput, RemoteError>;
    /// Copies a local file to `remote` (an absolute path), creating its parent
    /// directory, keeping the local file's permission bits and replacing any
    /// existing file atomically (a running executable can be replaced).
    fn upload(&self, local: &Path, remote: &str) -> Result<(), RemoteError>;
    /// Where `remote` is on this machine, when the host's directory is one
    /// of ours (a netns host's /opt): an upload there stays local.
    fn local_path(&self, _remote: &str) -> Option<std::path::PathBuf> {
        None
    }
    /// Whether the host's processes are this machine's, pid for pid (a
    /// netns host: our kernel and our PID namespace): the controller may
    /// read and signal them itself, with no command spawned on the host,
    /// which under load takes 100 ms or more and makes a kill miss its
    /// moment (a vote, a lease).
    fn shares_our_pids(&self) -> bool {
        false
    }
    /// Copies the remote file `remote` to the local path `local` (replaced whole).
    fn download(&self, remote: &str, local: &Path) -> Result<(), RemoteError>;
    /// Where the host's packages come from, so that a missing one is
    /// installed where that can work.
    fn packages(&self) -> Packages {
        Packages::Own
    }

    /// Runs `command` and fails unless it exits 0; returns its stdout.
    fn run(&self, command: &str, timeout: Duration) -> Result<String, RemoteError> {
        let out = self
            .exec(command, None, timeout)?
            .checked(self.name(), command)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Runs `action` on every host at once (one thread each) and returns the
/// results in the order of `remotes`. Fails with every host's error (as
/// [`RemoteError::Many`], or the single error when only one host failed).
pub fn on_all<T, F>(remotes: &[Arc<dyn Remote>], action: F) -> Result<Vec<T>, RemoteError>
where
    T: Send,
    F: Fn(&dyn Remote) -> Result<T, RemoteError> + Sync,
{
    let results = crate::fan_out::on_every(remotes, |r| action(r.as_ref()));
    let mut oks = Vec::with_capacity(results.len());
    let mut errors = Vec::new();
    for (result, r) in results.into_iter().zip(remotes) {
        match result {
            Ok(Ok(v)) => oks.push(v),
            Ok(Err(e)) => errors.push(e),
            Err(panicked) => errors.push(RemoteError::Other {
                host: r.name().to_string(),
                detail: format!("the action panicked: {panicked}"),
            }),
        }
    }
    match errors.len() {
        0 => Ok(oks),
        1 => Err(errors.remove(0)),
        _ => Err(RemoteError::Many(errors)),
    }
}

/// Runs the same command on every host in parallel; returns each stdout.
pub fn run_all(
    remotes: &[Arc<dyn Remote>],
    command: &str,
    timeout: Duration,
) -> Result<Vec<String>, RemoteError> {
    on_all(remotes, |r| r.run(command, timeout))
}

/// Shell function: is pid $1 a live process (a zombie is not, unless other
/// threads of it are still exiting: see [`alive_here`])? A
/// zombie can be reaped between `kill -0` and the read of its status; a
/// status that is gone is then decided by a second `kill -0`, not taken as
/// "not a zombie".
pub const ALIVE: &str = "alive() { [ -n \"$1\" ] && kill -0 \"$1\" 2>/dev/null || return 1; \
s=$(grep '^State:' /proc/\"$1\"/status 2>/dev/null) || { kill -0 \"$1\" 2>/dev/null; return; }; \
case \"$s\" in *Z*) t=$(sed -n 's/^Threads:[[:space:]]*//p' /proc/\"$1\"/status 2>/dev/null); \
[ \"${t:-1}\" -gt 1 ];; esac; }\n";

/// Whether `pid` is a live process of this machine: the shell's `alive` for
/// a host that shares our pids. A zombie is not, unless other threads of it
/// are still exiting: a killed process's first thread can be a zombie while
/// another finishes an fsync, and its files (a listening socket) close only
/// with the last thread, so a node started then cannot bind its port.
pub fn alive_here(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    let zombie = field("State:").is_none_or(|s| s.starts_with('Z'));
    let threads: u32 = field("Threads:").and_then(|t| t.parse().ok()).unwrap_or(1);
    !zombie || threads > 1
}

/// SIGKILLs `pid` of this machine. Never signals a group or init: `pid`
/// must be above 1.
pub fn kill_here(pid: u32) -> Result<(), String> {
    let raw = libc::pid_t::try_from(pid)
        .ok()
        .filter(|&p| p > 1)
        .ok_or_else(|| format!("will not signal pid {pid}"))?;
    // SAFETY: kill(2) with a positive pid signals that one process only.
    if unsafe { libc::kill(raw, libc::SIGKILL) } != 0 {
        return Err(format!(
            "kill -KILL {pid}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Waits (up to `wait`) until `pid` of this machine has exited
/// ([`alive_here`]), as the shell's kill loop does. One that outlives the
/// wait (a thread stuck in fsync) is left to the start that follows.
pub fn wait_exit_here(pid: u32, wait: Duration) {
    let deadline = std::time::Instant::now() + wait;
    // Bounded by the deadline.
    while alive_here(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Shell commands that send `signal` to the process whose pid is the shell
/// expression `pid` and to its children, and leave their pids in `$c`: for
/// a node that is several processes, as PostgreSQL's postmaster and the
/// backends it forks (each its own process group, so a group signal does
/// not reach them). The parent is stopped first, so it forks no child
/// that the list would miss (and is continued last on SIGCONT).
pub fn signal_tree(pid: &str, signal: &str) -> String {
    if signal == "CONT" {
        return format!(
            "c=$(pgrep -P {pid} 2>/dev/null | tr '\\n' ' '); kill -CONT $c {pid} 2>/dev/null; true\n"
        );
    }
    format!(
        "kill -STOP {pid} 2>/dev/null; c=$(pgrep -P {pid} 2>/dev/null | tr '\\n' ' '); \
         kill -{signal} $c {pid} 2>/dev/null; true\n"
    )
}

/// Quotes `s` for a POSIX shell: `'...'`, with embedded quotes escaped.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The shell command that writes stdin to `remote` atomically with `mode`:
/// used by every backend that uploads by streaming a file into `sh -c`.
pub(crate) fn write_file_command(remote: &str, mode: u32) -> String {
    let path = shell_quote(remote);
    let tmp = shell_quote(&format!("{remote}.part{}", std::process::id()));
    let dir = shell_quote(parent_dir(remote));
    format!("mkdir -p {dir} && cat > {tmp} && chmod {mode:o} {tmp} && mv -f {tmp} {path}")
}

/// The directory part of a remote path (`/` for `/x`, `.` for `x`).
pub(crate) fn parent_dir(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => ".",
    }
}

/// The permission bits of a local file, for uploads.
pub(crate) fn local_mode(host: &str, local: &Path) -> Result<u32, RemoteError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(local)
        .map(|m| m.permissions().mode() & 0o7777)
        .map_err(|e| RemoteError::Other {
            host: host.to_string(),
            detail: format!("cannot read {}: {e}", local.display()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_keeps_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("/opt/faultline/bin"), "/opt/faultline/bin");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn errors_show_a_long_command_by_its_first_line() {
        let e = |command: &str| RemoteError::Failed {
            host: "n1".into(),
            command: command.into(),
            code: Some(1),
            stderr: "boom".into(),
        };
        assert_eq!(
            e("true").to_string(),
            "n1: `true` exited with Some(1): boom"
        );
        assert_eq!(
            e("set -e\nrm -rf /x\n").to_string(),
            "n1: `set -e …` exited with Some(1): boom"
        );
        let long = "x".repeat(150);
        assert_eq!(
            e(&long).to_string(),
            format!("n1: `{} …` exited with Some(1): boom", "x".repeat(100))
        );
    }

    #[test]
    fn parent_dir_of_paths() {
        assert_eq!(parent_dir("/opt/x/bin"), "/opt/x");
        assert_eq!(parent_dir("/bin"), "/");
        assert_eq!(parent_dir("bin"), ".");
    }
}
