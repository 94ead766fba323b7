//! Hosts reached over SSH with the ssh2 crate (libssh2): one authenticated
//! session per host, opened on first use and kept (behind a mutex, so calls to
//! one host run one at a time); SFTP for files; key-file or agent auth; host
//! keys verified against a known_hosts file.
//!
//! Every call is blocking and bounded by a timeout. A session that timed out
//! or broke is dropped and reopened by the next call. Commands always run as
//! `sh -c '...'` (whatever the login shell), through `sudo -n` for a non-root
//! user when the inventory says `sudo: true`.

use super::{ExecOutput, Remote, RemoteError, local_mode, parent_dir, shell_quote};
use ssh2::{CheckResult, KnownHostFileKind, Session};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What to do with a host key that known_hosts does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// Unknown and changed keys are errors.
    #[default]
    Strict,
    /// An unknown key is recorded in known_hosts; a changed key is still an error.
    AcceptNew,
}

/// How to reach one SSH host.
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// The host's name in faultline (n1, ...), used in errors.
    pub name: String,
    /// DNS name or IP address.
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Private key file; `None` asks the SSH agent.
    pub key: Option<PathBuf>,
    pub known_hosts: PathBuf,
    pub host_key: HostKeyPolicy,
    /// Run every command through `sudo -n` (a non-root user with passwordless sudo).
    pub sudo: bool,
    /// Bounds connecting, the handshake and authentication.
    pub connect_timeout: Duration,
}

/// One SSH host; see the module doc.
pub struct SshRemote {
    config: SshConfig,
    session: Mutex<Option<Connection>>,
}

struct Connection {
    session: Session,
    local_addr: SocketAddr,
}

/// Serializes read-modify-write of known_hosts files between hosts connecting in parallel.
static KNOWN_HOSTS_LOCK: Mutex<()> = Mutex::new(());

/// Bounds one file copy; a copy is one call, so this is generous.
const COPY_TIMEOUT: Duration = Duration::from_secs(300);

impl SshRemote {
    pub fn new(config: SshConfig) -> Self {
        SshRemote {
            config,
            session: Mutex::new(None),
        }
    }

    pub fn config(&self) -> &SshConfig {
        &self.config
    }

    /// The controller's own address as this host sees it (the local end of
    /// the SSH connection): what partitions must never cut off.
    pub fn local_addr(&self) -> Result<IpAddr, RemoteError> {
        self.with_session(Duration::from_secs(5), |c| Ok(c.local_addr.ip()))
    }

    /// Opens the connection now (to fail early with a clear error).
    pub fn connect(&self) -> Result<(), RemoteError> {
        self.with_session(Duration::from_secs(5), |_| Ok(()))
    }

    fn err(&self, detail: impl Into<String>) -> RemoteError {
        RemoteError::Other {
            host: self.config.name.clone(),
            detail: detail.into(),
        }
    }

    /// Runs `f` on the open session (opening it first if needed). A failed
    /// call drops the session, so the next one starts clean.
    fn with_session<T>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&Connection) -> Result<T, RemoteError>,
    ) -> Result<T, RemoteError> {
        let mut guard = self.session.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(self.open()?);
        }
        let conn = guard.as_ref().expect("just opened");
        conn.session
            .set_timeout(timeout.as_millis().clamp(1, u32::MAX as u128) as u32);
        let result = f(conn);
        if matches!(
            result,
            Err(RemoteError::Timeout { .. })
                | Err(RemoteError::Unreachable { .. })
                | Err(RemoteError::Other { .. })
        ) {
            *guard = None;
        }
        result
    }

    fn open(&self) -> Result<Connection, RemoteError> {
        let c = &self.config;
        let unreachable = |detail: String| RemoteError::Unreachable {
            host: c.name.clone(),
            detail,
        };
        let addrs: Vec<SocketAddr> = (c.address.as_str(), c.port)
            .to_socket_addrs()
            .map_err(|e| unreachable(format!("cannot resolve {}: {e}", c.address)))?
            .collect();
        let addr = *addrs
            .first()
            .ok_or_else(|| unreachable(format!("{} has no address", c.address)))?;
        let tcp = TcpStream::connect_timeout(&addr, c.connect_timeout).map_err(|e| {
            unreachable(format!(
                "cannot connect to {addr} within {} ms: {e}",
                c.connect_timeout.as_millis()
            ))
        })?;
        let local_addr = tcp
            .local_addr()
            .map_err(|e| unreachable(format!("{addr}: {e}")))?;
        let mut session =
            Session::new().map_err(|e| self.err(format!("cannot create an SSH session: {e}")))?;
        session.set_tcp_stream(tcp);
        session.set_timeout(c.connect_timeout.as_millis().clamp(1, u32::MAX as u128) as u32);
        session
            .handshake()
            .map_err(|e| unreachable(format!("SSH handshake with {addr} failed: {e}")))?;
        self.verify_host_key(&session)?;
        let auth = match &c.key {
            Some(key) => session
                .userauth_pubkey_file(&c.user, None, key, None)
                .map_err(|e| format!("user {} with key {}: {e}", c.user, key.display())),
            None => session
                .userauth_agent(&c.user)
                .map_err(|e| format!("user {} with the SSH agent: {e}", c.user)),
        };
        auth.map_err(|detail| RemoteError::AuthFailed {
            host: c.name.clone(),
            detail,
        })?;
        if !session.authenticated() {
            return Err(RemoteError::AuthFailed {
                host: c.name.clone(),
                detail: format!("user {}: the server refused", c.user),
            });
        }
        Ok(Connection {
            session,
            local_addr,
        })
    }

    fn verify_host_key(&self, session: &Session) -> Result<(), RemoteError> {
        let c = &self.config;
        let host_key_err = |detail: String| RemoteError::HostKey {
            host: c.name.clone(),
            detail,
        };
        let (key, key_type) = session
            .host_key()
            .ok_or_else(|| host_key_err("the server sent no host key".to_string()))?;
        let _lock = KNOWN_HOSTS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let mut known = session
            .known_hosts()
            .map_err(|e| self.err(format!("known_hosts: {e}")))?;
        if c.known_hosts.exists() {
            known
                .read_file(&c.known_hosts, KnownHostFileKind::OpenSSH)
                .map_err(|e| self.err(format!("cannot read {}: {e}", c.known_hosts.display())))?;
        }
        let shown = if c.port == 22 {
            c.address.clone()
        } else {
            format!("[{}]:{}", c.address, c.port)
        };
        match known.check_port(&c.address, c.port, key) {
            CheckResult::Match => Ok(()),
            CheckResult::Mismatch => Err(host_key_err(format!(
                "{shown} offered a different key than the one recorded in {}; if the host was reinstalled, remove its line there (someone may be impersonating it)",
                c.known_hosts.display()
            ))),
            CheckResult::NotFound if c.host_key == HostKeyPolicy::AcceptNew => {
                known
                    .add(
                        &shown,
                        key,
                        "added by faultline (host_key: accept-new)",
                        key_type.into(),
                    )
                    .map_err(|e| self.err(format!("cannot record the host key: {e}")))?;
                if let Some(dir) = c.known_hosts.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                known
                    .write_file(&c.known_hosts, KnownHostFileKind::OpenSSH)
                    .map_err(|e| self.err(format!("cannot write {}: {e}", c.known_hosts.display())))
            }
            CheckResult::NotFound => Err(host_key_err(format!(
                "{shown} is not in {} (unknown host key); add it (ssh-keyscan) or set `host_key: accept-new` in the inventory",
                c.known_hosts.display()
            ))),
            CheckResult::Failure => Err(self.err(format!(
                "cannot check the host key against {}",
                c.known_hosts.display()
            ))),
        }
    }

    /// The command line sent to the server: always `sh -c`, through sudo if asked.
    fn wrap(&self, command: &str) -> String {
        let sh = format!("sh -c {}", shell_quote(command));
        if self.config.sudo {
            format!("sudo -n {sh}")
        } else {
            sh
        }
    }

    fn exec_on(
        &self,
        conn: &Connection,
        command: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ExecOutput, RemoteError> {
        let deadline = Instant::now() + timeout;
        let timed_out = || RemoteError::Timeout {
            host: self.config.name.clone(),
            command: command.to_string(),
            timeout_ms: timeout.as_millis() as u64,
        };
        let io_err =
            |what: &str, e: &dyn std::fmt::Display| self.err(format!("`{command}`: {what}: {e}"));
        let remaining = |s: &Session| -> Result<(), RemoteError> {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timed_out());
            }
            s.set_timeout(left.as_millis().clamp(1, u32::MAX as u128) as u32);
            Ok(())
        };
        let is_timeout = |e: &std::io::Error| {
            e.kind() == std::io::ErrorKind::TimedOut || e.to_string().contains("Timed out")
        };
        let session = &conn.session;
        remaining(session)?;
        let mut channel = session
            .channel_session()
            .map_err(|e| io_err("cannot open a channel", &e))?;
        channel
            .exec(&self.wrap(command))
            .map_err(|e| io_err("cannot start", &e))?;
        if let Some(bytes) = stdin {
            channel.write_all(bytes).map_err(|e| {
                if is_timeout(&e) {
                    timed_out()
                } else {
                    io_err("writing stdin", &e)
                }
            })?;
        }
        channel
            .send_eof()
            .map_err(|e| io_err("closing stdin", &e))?;
        // stdout first, then stderr: libssh2 queues stderr meanwhile. (A
        // command printing more than the channel window on stderr alone would
        // stall; our commands print little there.)
        let mut out = ExecOutput::default();
        let mut buf = vec![0u8; 64 * 1024];
        for stream_id in [0, 1] {
            let mut stream = channel.stream(stream_id);
            loop {
                remaining(session)?;
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) if stream_id == 0 => out.stdout.extend_from_slice(&buf[..n]),
                    Ok(n) => out.stderr.extend_from_slice(&buf[..n]),
                    Err(e) if is_timeout(&e) => return Err(timed_out()),
                    Err(e) => return Err(io_err("reading output", &e)),
                }
            }
        }
        remaining(session)?;
        channel
            .wait_close()
            .map_err(|e| io_err("waiting for exit", &e))?;
        let signal = channel.exit_signal().ok().and_then(|s| s.exit_signal);
        let code = channel
            .exit_status()
            .map_err(|e| io_err("reading the exit status", &e))?;
        out.code = if signal.is_some() { None } else { Some(code) };
        Ok(out)
    }

    /// Where an upload is written before it is moved into place: next to
    /// the target, or in /tmp when only sudo may write the target.
    fn staging_path(&self, remote: &str) -> String {
        let unique = format!(
            "faultline-upload-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        )
        .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "");
        if self.config.sudo {
            format!("/tmp/{unique}")
        } else {
            format!("{remote}.{unique}")
        }
    }
}

impl Remote for SshRemote {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn exec(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ExecOutput, RemoteError> {
        self.with_session(timeout, |conn| self.exec_on(conn, command, stdin, timeout))
    }

    fn upload(&self, local: &Path, remote: &str) -> Result<(), RemoteError> {
        let mode = local_mode(&self.config.name, local)?;
        let mut file = std::fs::File::open(local)
            .map_err(|e| self.err(format!("cannot open {}: {e}", local.display())))?;
        let staging = self.staging_path(remote);
        self.run(
            &format!("mkdir -p {}", shell_quote(parent_dir(remote))),
            Duration::from_secs(30),
        )?;
        self.with_session(COPY_TIMEOUT, |conn| {
            let sftp = conn
                .session
                .sftp()
                .map_err(|e| self.err(format!("cannot start SFTP: {e}")))?;
            let flags =
                ssh2::OpenFlags::WRITE | ssh2::OpenFlags::CREATE | ssh2::OpenFlags::TRUNCATE;
            let mut target = sftp
                .open_mode(Path::new(&staging), flags, 0o600, ssh2::OpenType::File)
                .map_err(|e| self.err(format!("SFTP cannot create {staging}: {e}")))?;
            copy_large(&mut file, &mut target).map_err(|e| {
                self.err(format!(
                    "SFTP upload of {} to {staging}: {e}",
                    local.display()
                ))
            })?;
            Ok(())
        })?;
        let (path, staging) = (shell_quote(remote), shell_quote(&staging));
        // Through sudo the file was written by the login user: hand it to root.
        let chown = if self.config.sudo {
            format!("chown 0:0 {staging} && ")
        } else {
            String::new()
        };
        let command = format!("{chown}chmod {mode:o} {staging} && mv -f {staging} {path}");
        let out = self.exec(&command, None, Duration::from_secs(60))?;
        out.checked(self.name(), &command).map(|_| ())
    }

    fn download(&self, remote: &str, local: &Path) -> Result<(), RemoteError> {
        let tmp = local.with_extension(format!("part{}", std::process::id()));
        let result = if self.config.sudo {
            // SFTP runs as the login user; only `sudo cat` can read root's files.
            let command = format!("cat {}", shell_quote(remote));
            self.exec(&command, None, COPY_TIMEOUT)
                .and_then(|out| out.checked(self.name(), &command))
                .and_then(|out| {
                    std::fs::write(&tmp, out.stdout)
                        .map_err(|e| self.err(format!("cannot write {}: {e}", tmp.display())))
                })
        } else {
            self.with_session(COPY_TIMEOUT, |conn| {
                let sftp = conn
                    .session
                    .sftp()
                    .map_err(|e| self.err(format!("cannot start SFTP: {e}")))?;
                let mut source = sftp
                    .open(Path::new(remote))
                    .map_err(|e| RemoteError::Failed {
                        host: self.config.name.clone(),
                        command: format!("SFTP open {remote}"),
                        code: None,
                        stderr: e.to_string(),
                    })?;
                let mut out = std::fs::File::create(&tmp)
                    .map_err(|e| self.err(format!("cannot create {}: {e}", tmp.display())))?;
                copy_large(&mut source, &mut out)
                    .map_err(|e| self.err(format!("SFTP download of {remote}: {e}")))?;
                Ok(())
            })
        };
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, local)
            .map_err(|e| self.err(format!("cannot write {}: {e}", local.display())))
    }
}

/// Copies with 1 MiB reads and writes: libssh2 pipelines SFTP packets within
/// one large write, where `std::io::copy`'s 8 KiB chunks would each wait for
/// a round trip.
fn copy_large(from: &mut impl Read, to: &mut impl Write) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}
