//! Hosts reached by running a local program that enters them (`nsenter` for
//! network namespaces, `docker exec` for containers): [`CommandRemote`] runs
//! `<prefix...> sh -c COMMAND` as a child process, with a timeout, and copies
//! files by streaming them through `cat`.
//!
//! Also [`run_local`], the bounded child-process runner the cluster code uses
//! for `ip`, `docker` and friends on the controller itself.

use super::{
    ExecOutput, Packages, Remote, RemoteError, local_mode, shell_quote, write_file_command,
};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where a child's stdin comes from.
pub enum Input<'a> {
    None,
    Bytes(&'a [u8]),
    File(std::fs::File),
}

/// Where a child's stdout goes.
pub enum Output {
    Capture,
    File(std::fs::File),
}

/// Runs `cmd` to completion or until `timeout`, then kills its whole process
/// group. `host` and `shown` name it in errors. A background process that
/// keeps stdout open past the child's exit counts as a timeout (it would hang
/// the caller otherwise).
pub fn run_child(
    host: &str,
    shown: &str,
    mut cmd: Command,
    input: Input<'_>,
    output: Output,
    timeout: Duration,
) -> Result<ExecOutput, RemoteError> {
    use std::os::unix::process::CommandExt;
    let deadline = Instant::now() + timeout;
    cmd.process_group(0).stderr(Stdio::piped());
    match output {
        Output::Capture => cmd.stdout(Stdio::piped()),
        Output::File(f) => cmd.stdout(Stdio::from(f)),
    };
    let mut bytes_in = None;
    match input {
        Input::None => cmd.stdin(Stdio::null()),
        Input::Bytes(b) => {
            bytes_in = Some(b.to_vec());
            cmd.stdin(Stdio::piped())
        }
        Input::File(f) => cmd.stdin(Stdio::from(f)),
    };
    let mut child = cmd.spawn().map_err(|e| RemoteError::Other {
        host: host.to_string(),
        detail: format!("cannot start `{shown}`: {e}"),
    })?;
    let pid = child.id() as i32;
    if let (Some(bytes), Some(mut stdin)) = (bytes_in, child.stdin.take()) {
        // A command that does not read its stdin closes the pipe: not an error.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        });
    }
    let (tx, rx) = mpsc::channel::<(u8, Vec<u8>)>();
    if let Some(mut out) = child.stdout.take() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf);
            let _ = tx.send((1, buf));
        });
    }
    if let Some(mut err) = child.stderr.take() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            let _ = tx.send((2, buf));
        });
    }
    let (wait_tx, wait_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = wait_tx.send(child.wait());
    });
    let timed_out = || {
        // SAFETY: kill(2) on the process group we created; no memory involved.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        RemoteError::Timeout {
            host: host.to_string(),
            command: shown.to_string(),
            timeout_ms: timeout.as_millis() as u64,
        }
    };
    let status = match wait_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            return Err(RemoteError::Other {
                host: host.to_string(),
                detail: format!("`{shown}`: {e}"),
            });
        }
        Err(_) => return Err(timed_out()),
    };
    let mut result = ExecOutput {
        code: status.code(),
        ..Default::default()
    };
    drop(tx);
    // Collect whatever the readers send until both pipes close.
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((1, buf)) => result.stdout = buf,
            Ok((_, buf)) => result.stderr = buf,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => return Err(timed_out()),
        }
    }
    Ok(result)
}

/// Runs a program on the controller itself (no shell), feeding `stdin` if
/// given, failing unless it exits 0; returns its stdout.
pub fn run_local(
    program: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<String, RemoteError> {
    let shown = std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new(program);
    cmd.args(args);
    let input = stdin.map_or(Input::None, Input::Bytes);
    let out = run_child("controller", &shown, cmd, input, Output::Capture, timeout)?
        .checked("controller", &shown)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A host entered by a local program: `prefix[0] prefix[1..] sh -c COMMAND`.
#[derive(Debug, Clone)]
pub struct CommandRemote {
    name: String,
    prefix: Vec<String>,
    /// See [`Remote::packages`].
    packages: Packages,
    /// A directory of the host that is a directory of this machine too
    /// (remote prefix, local path): uploads into it are local links or copies.
    shared_dir: Option<(String, PathBuf)>,
    /// See [`Remote::shares_our_pids`].
    our_pids: bool,
}

impl CommandRemote {
    pub fn new(name: impl Into<String>, prefix: Vec<String>) -> Self {
        debug_assert!(
            !prefix.is_empty(),
            "a command remote needs a program to enter the host"
        );
        CommandRemote {
            name: name.into(),
            prefix,
            packages: Packages::Own,
            shared_dir: None,
            our_pids: false,
        }
    }

    /// The host's `remote` directory is this machine's `local` (a bind
    /// mount): uploads below it skip the pipe into the host.
    pub fn with_shared_dir(mut self, remote: &str, local: PathBuf) -> Self {
        debug_assert!(remote.starts_with('/') && remote.ends_with('/'));
        self.shared_dir = Some((remote.to_string(), local));
        self
    }

    /// The host's processes are ours, pid for pid (see [`Remote::shares_our_pids`]).
    pub fn with_our_pids(mut self) -> Self {
        self.our_pids = true;
        self
    }

    /// Where the host's packages come from (see [`Remote::packages`]).
    pub fn with_packages(mut self, packages: Packages) -> Self {
        self.packages = packages;
        self
    }

    fn command(&self, command: &str) -> Command {
        let mut cmd = Command::new(&self.prefix[0]);
        cmd.args(&self.prefix[1..]).args(["sh", "-c", command]);
        cmd
    }

    fn exec_with(
        &self,
        command: &str,
        input: Input<'_>,
        output: Output,
        timeout: Duration,
    ) -> Result<ExecOutput, RemoteError> {
        run_child(
            &self.name,
            command,
            self.command(command),
            input,
            output,
            timeout,
        )
    }
}

/// Puts `local` at `target` on this machine, whole or not at all. An
/// executable is hard linked when both are on one file system (no data
/// moves: a 130 MB debug build on five hosts took 1.7 s through the pipe;
/// nothing writes a program in place, the kernel refuses while it runs);
/// anything else is copied, since a host may rewrite its copy (a config
/// file). A link shares the file's mode, which is the mode asked for.
fn put_locally(local: &Path, target: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(format!(".part{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    if mode & 0o111 == 0 || std::fs::hard_link(local, &tmp).is_err() {
        std::fs::copy(local, &tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    }
    std::fs::rename(&tmp, target).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Files move at disk speed locally; this bounds a stuck copy, not a slow one.
pub(crate) const COPY_TIMEOUT: Duration = Duration::from_secs(300);

impl Remote for CommandRemote {
    fn name(&self) -> &str {
        &self.name
    }

    fn packages(&self) -> Packages {
        self.packages
    }

    fn exec(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ExecOutput, RemoteError> {
        let input = stdin.map_or(Input::None, Input::Bytes);
        self.exec_with(command, input, Output::Capture, timeout)
    }

    fn shares_our_pids(&self) -> bool {
        self.our_pids
    }

    fn local_path(&self, remote: &str) -> Option<PathBuf> {
        let (prefix, local) = self.shared_dir.as_ref()?;
        let rest = remote.strip_prefix(prefix.as_str())?;
        (!rest.split('/').any(|c| c == ".." || c.is_empty())).then(|| local.join(rest))
    }

    fn upload(&self, local: &Path, remote: &str) -> Result<(), RemoteError> {
        let mode = local_mode(&self.name, local)?;
        if let Some(target) = self.local_path(remote) {
            return put_locally(local, &target, mode).map_err(|e| RemoteError::Other {
                host: self.name.clone(),
                detail: format!(
                    "cannot put {} at {}: {e}",
                    local.display(),
                    target.display()
                ),
            });
        }
        let file = std::fs::File::open(local).map_err(|e| RemoteError::Other {
            host: self.name.clone(),
            detail: format!("cannot open {}: {e}", local.display()),
        })?;
        let command = write_file_command(remote, mode);
        let out = self.exec_with(&command, Input::File(file), Output::Capture, COPY_TIMEOUT)?;
        out.checked(self.name(), &command).map(|_| ())
    }

    fn download(&self, remote: &str, local: &Path) -> Result<(), RemoteError> {
        let tmp = local.with_extension(format!("part{}", std::process::id()));
        let file = std::fs::File::create(&tmp).map_err(|e| RemoteError::Other {
            host: self.name.clone(),
            detail: format!("cannot create {}: {e}", tmp.display()),
        })?;
        let command = format!("cat {}", shell_quote(remote));
        let result = self
            .exec_with(&command, Input::None, Output::File(file), COPY_TIMEOUT)
            .and_then(|out| out.checked(self.name(), &command));
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, local).map_err(|e| RemoteError::Other {
            host: self.name.clone(),
            detail: format!("cannot write {}: {e}", local.display()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local_host() -> CommandRemote {
        CommandRemote::new("local", vec!["env".to_string()])
    }

    #[test]
    fn exec_captures_stdout_stderr_code_and_stdin() {
        let host = local_host();
        let out = host
            .exec(
                "cat; echo err >&2; exit 3",
                Some(b"hello"),
                Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!(out.stdout, b"hello");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.code, Some(3));
        let e = host
            .run("echo oops >&2; exit 2", Duration::from_secs(5))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("local") && e.contains("oops") && e.contains("Some(2)"),
            "{e}"
        );
    }

    #[test]
    fn exec_times_out_and_kills_the_command() {
        let host = local_host();
        let started = Instant::now();
        let e = host
            .exec("sleep 30", None, Duration::from_millis(200))
            .unwrap_err();
        assert!(matches!(e, RemoteError::Timeout { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    /// Uploads into a shared directory stay on this machine: an executable
    /// is the same file (a link), anything else a copy the host may change
    /// without touching ours; paths outside it or climbing out go the pipe.
    #[test]
    fn uploads_into_a_shared_directory_link_programs_and_copy_the_rest() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("hostopt");
        let host = local_host().with_shared_dir("/opt/", shared.clone());
        assert_eq!(
            host.local_path("/opt/faultline/faultline"),
            Some(shared.join("faultline/faultline"))
        );
        assert_eq!(host.local_path("/opt/../etc/passwd"), None);
        assert_eq!(host.local_path("/srv/x"), None);
        let program = dir.path().join("program");
        std::fs::write(&program, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        host.upload(&program, "/opt/faultline/bin/program").unwrap();
        let linked = shared.join("faultline/bin/program");
        assert_eq!(
            std::fs::metadata(&linked).unwrap().ino(),
            std::fs::metadata(&program).unwrap().ino()
        );
        // Uploading again replaces it whole.
        host.upload(&program, "/opt/faultline/bin/program").unwrap();
        let config = dir.path().join("config");
        std::fs::write(&config, b"a = 1\n").unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
        host.upload(&config, "/opt/faultline/config").unwrap();
        let copied = shared.join("faultline/config");
        let meta = std::fs::metadata(&copied).unwrap();
        assert_ne!(meta.ino(), std::fs::metadata(&config).unwrap().ino());
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        std::fs::write(&copied, b"a = 2\n").unwrap();
        assert_eq!(std::fs::read(&config).unwrap(), b"a = 1\n");
        let leftovers: Vec<_> = std::fs::read_dir(shared.join("faultline"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().contains(".part"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn upload_and_download_round_trip_with_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, b"#!/bin/sh\necho hi\n").unwrap();
        std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o750)).unwrap();
        let host = local_host();
        let remote = dir.path().join("deep/er/dst");
        host.upload(&src, remote.to_str().unwrap()).unwrap();
        assert_eq!(
            std::fs::metadata(&remote).unwrap().permissions().mode() & 0o777,
            0o750
        );
        let back = dir.path().join("back");
        host.download(remote.to_str().unwrap(), &back).unwrap();
        assert_eq!(std::fs::read(&back).unwrap(), b"#!/bin/sh\necho hi\n");
        let e = host
            .download("/nonexistent/file", &back)
            .unwrap_err()
            .to_string();
        assert!(e.contains("No such file"), "{e}");
        assert_eq!(
            std::fs::read(&back).unwrap(),
            b"#!/bin/sh\necho hi\n",
            "a failed download leaves the old file"
        );
    }
}
