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
use std::path::Path;
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
        }
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

    fn upload(&self, local: &Path, remote: &str) -> Result<(), RemoteError> {
        let mode = local_mode(&self.name, local)?;
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
