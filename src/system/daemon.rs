//! A long-running program on a host, controlled through a pidfile: start it
//! detached (setsid, stdin from /dev/null, output appended to a log file),
//! ask for its pid, stop it (SIGTERM, then SIGKILL), kill it (SIGKILL),
//! pause (SIGSTOP) and resume (SIGCONT) it.
//!
//! Generic on purpose: the bundled nodes use it, and so can helper daemons
//! the nemesis starts on hosts. Every operation is one shell command on the
//! host, so it works the same on netns, Docker and SSH hosts.

use crate::control::{ALIVE, Remote, RemoteError, parent_dir, shell_quote, signal_tree};
use std::time::Duration;

const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a SIGKILLed process may take to be gone: a thread blocked in
/// fsync (uninterruptible) holds the whole process until the disk answers,
/// which on a loaded machine has taken more than 5 s.
const KILLED_WAIT: Duration = Duration::from_secs(15);

/// How to run one daemon on one host.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// Program and arguments (the program by absolute path).
    pub argv: Vec<String>,
    /// Extra environment, e.g. libfaketime's `LD_PRELOAD`.
    pub env: Vec<(String, String)>,
    pub pidfile: String,
    pub logfile: String,
    /// Working directory.
    pub cwd: String,
}

/// Shell function: is the daemon (`$p`) or any of the children listed in
/// `$c` (by [`signal_tree`]) still alive?
const TREE_ALIVE: &str = "tree_alive() { alive \"$p\" && return 0; for x in $c; do alive \"$x\" && return 0; done; return 1; }\n";

/// What a signal reaches: the daemon's own process, or it and its children.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reach {
    Process,
    Tree,
}

impl Reach {
    /// Shell commands that send `signal` to the daemon whose pid is in `$p`.
    fn send(self, signal: &str) -> String {
        match self {
            Reach::Process => format!("kill -{signal} \"$p\" 2>/dev/null; true\n"),
            Reach::Tree => signal_tree("\"$p\"", signal),
        }
    }
}

impl Daemon {
    /// The script prefix: the `alive` function and `p`, the pid from the pidfile.
    fn pid_expr(&self) -> String {
        format!("{ALIVE}p=$(cat {} 2>/dev/null)", shell_quote(&self.pidfile))
    }

    /// Starts the daemon unless its pidfile names a live process. Returns its pid.
    /// `setsid` and `env` exec in place, so `$!` is the daemon's own pid.
    pub fn start(&self, remote: &dyn Remote) -> Result<u32, RemoteError> {
        debug_assert!(!self.argv.is_empty());
        let q = |s: &str| shell_quote(s);
        let env: String = self
            .env
            .iter()
            .map(|(k, v)| format!("{k}={} ", q(v)))
            .collect();
        let argv: Vec<String> = self.argv.iter().map(|a| q(a)).collect();
        let command = format!(
            "{pid}; if alive \"$p\"; then echo \"$p\"; exit 0; fi\n\
             mkdir -p {piddir} {logdir} {cwd} && cd {cwd}\n\
             setsid env {env}{argv} >>{log} 2>&1 </dev/null &\n\
             echo $! > {pidfile}.tmp && mv -f {pidfile}.tmp {pidfile} && echo $!",
            pid = self.pid_expr(),
            piddir = q(parent_dir(&self.pidfile)),
            logdir = q(parent_dir(&self.logfile)),
            cwd = q(&self.cwd),
            argv = argv.join(" "),
            log = q(&self.logfile),
            pidfile = q(&self.pidfile),
        );
        let out = remote.run(&command, CONTROL_TIMEOUT)?;
        out.trim().parse().map_err(|_| RemoteError::Other {
            host: remote.name().into(),
            detail: format!("start printed no pid: {out:?}"),
        })
    }

    /// The daemon's pid when it is running (a paused daemon is running).
    pub fn pid(&self, remote: &dyn Remote) -> Result<Option<u32>, RemoteError> {
        // A netns host's pidfile and processes are ours: no command needed.
        if remote.shares_our_pids()
            && let Some(pidfile) = remote.local_path(&self.pidfile)
        {
            let pid = std::fs::read_to_string(pidfile)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok());
            return Ok(pid.filter(|&p| crate::control::alive_here(p)));
        }
        let command = format!("{}; alive \"$p\" && echo \"$p\"; true", self.pid_expr());
        Ok(remote.run(&command, CONTROL_TIMEOUT)?.trim().parse().ok())
    }

    /// Sends `signal` to `reach` and waits up to `wait_ms` for the process
    /// (or, with `Reach::Tree`, every live process of its group) to be
    /// gone; then SIGKILLs the same if `escalate`. Removes the pidfile once
    /// it is gone.
    fn signal_and_wait(
        &self,
        remote: &dyn Remote,
        signal: &str,
        to: Reach,
        wait: Reach,
        wait_ms: u64,
        escalate: bool,
    ) -> Result<(), RemoteError> {
        let tries = wait_ms / 20;
        let gone_check = match wait {
            Reach::Process => "alive \"$p\"",
            Reach::Tree => "tree_alive",
        };
        // The children, listed while their parent still runs (once it is
        // gone they are no longer its children).
        let children = if wait == Reach::Tree && to == Reach::Process {
            "c=$(pgrep -P \"$p\" 2>/dev/null | tr '\\n' ' ')\n"
        } else {
            ""
        };
        let escalate = if escalate {
            format!(
                "kill -KILL {} \"$p\" 2>/dev/null\n\
                 i=0; while {gone_check} && [ $i -lt {} ]; do sleep 0.02; i=$((i+1)); done\n",
                // The children as listed before: the parent may be gone.
                if wait == Reach::Tree { "$c" } else { "" },
                KILLED_WAIT.as_millis() / 20
            )
        } else {
            String::new()
        };
        // A stopped process does not act on SIGTERM: continue it first.
        let command = format!(
            "{pid}; [ -n \"$p\" ] || exit 0\n\
             {TREE_ALIVE}{children}\
             {send}kill -CONT \"$p\" 2>/dev/null\n\
             i=0; while {gone_check} && [ $i -lt {tries} ]; do sleep 0.02; i=$((i+1)); done\n\
             {escalate}\
             if {gone_check}; then echo \"pid $p (or a child) still runs ($(grep '^State:' /proc/\"$p\"/status))\" >&2; exit 1; fi\n\
             rm -f {pidfile}",
            pid = self.pid_expr(),
            send = to.send(signal),
            pidfile = shell_quote(&self.pidfile),
        );
        remote
            .run(
                &command,
                CONTROL_TIMEOUT + Duration::from_millis(wait_ms) + KILLED_WAIT,
            )
            .map(|_| ())
    }

    /// SIGTERM, up to `grace` for a clean exit, then SIGKILL.
    pub fn stop(&self, remote: &dyn Remote, grace: Duration) -> Result<(), RemoteError> {
        let grace_ms = grace.as_millis() as u64;
        self.signal_and_wait(
            remote,
            "TERM",
            Reach::Process,
            Reach::Process,
            grace_ms,
            true,
        )
    }

    /// SIGKILL now (a crash), waiting until the process is gone.
    pub fn kill(&self, remote: &dyn Remote) -> Result<(), RemoteError> {
        let wait_ms = KILLED_WAIT.as_millis() as u64;
        self.signal_and_wait(
            remote,
            "KILL",
            Reach::Process,
            Reach::Process,
            wait_ms,
            false,
        )
    }

    /// SIGSTOP: the process stays but stops running (a long GC pause, a VM
    /// freeze). Returns once the kernel shows it stopped.
    pub fn pause(&self, remote: &dyn Remote) -> Result<(), RemoteError> {
        self.send_and_wait(remote, "STOP", Reach::Process, "T")
    }

    /// SIGCONT after [`Daemon::pause`]; returns once it is no longer stopped.
    pub fn resume(&self, remote: &dyn Remote) -> Result<(), RemoteError> {
        self.send_and_wait(remote, "CONT", Reach::Process, "!T")
    }

    /// For a daemon that forks workers, as PostgreSQL's postmaster does
    /// (each backend in a process group of its own): the controls below
    /// reach the daemon and its children, since a SIGSTOP of the parent
    /// alone leaves its workers running, and a SIGKILL of it alone leaves
    /// them holding its shared memory.
    ///
    /// `signal` to the daemon (its own way to shut down, e.g. SIGINT for
    /// PostgreSQL's fast shutdown), up to `grace` for it and its children
    /// to be gone, then SIGKILL to all of them.
    pub fn stop_tree(
        &self,
        remote: &dyn Remote,
        signal: &str,
        grace: Duration,
    ) -> Result<(), RemoteError> {
        let grace_ms = grace.as_millis() as u64;
        self.signal_and_wait(remote, signal, Reach::Process, Reach::Tree, grace_ms, true)
    }

    /// SIGKILL to the daemon and its children (a crash of every process),
    /// waiting until none of them runs.
    pub fn kill_tree(&self, remote: &dyn Remote) -> Result<(), RemoteError> {
        let wait_ms = KILLED_WAIT.as_millis() as u64;
        self.signal_and_wait(remote, "KILL", Reach::Tree, Reach::Tree, wait_ms, false)
    }

    /// SIGSTOP to the daemon and its children; returns once it shows stopped.
    pub fn pause_tree(&self, remote: &dyn Remote) -> Result<(), RemoteError> {
        self.send_and_wait(remote, "STOP", Reach::Tree, "T")
    }

    /// SIGCONT to the daemon and its children after [`Daemon::pause_tree`].
    pub fn resume_tree(&self, remote: &dyn Remote) -> Result<(), RemoteError> {
        self.send_and_wait(remote, "CONT", Reach::Tree, "!T")
    }

    /// Sends `signal`, then waits (up to 5 s) until the state letter in
    /// /proc is `state` (or is not, with a leading `!`): delivery is asynchronous.
    fn send_and_wait(
        &self,
        remote: &dyn Remote,
        signal: &str,
        to: Reach,
        state: &str,
    ) -> Result<(), RemoteError> {
        let (negate, letter) = state.strip_prefix('!').map_or(("", state), |l| ("!", l));
        let command = format!(
            "{}; alive \"$p\" || {{ echo 'not running' >&2; exit 1; }}\n{}\
             st() {{ sed -n 's/^State:[[:space:]]*\\(.\\).*/\\1/p' /proc/\"$p\"/status 2>/dev/null; }}\n\
             i=0; while ! [ {negate} \"$(st)\" = {letter} ] && [ $i -lt 250 ]; do sleep 0.02; i=$((i+1)); done\n\
             [ {negate} \"$(st)\" = {letter} ] || {{ echo \"state is $(st) after SIG{signal}\" >&2; exit 1; }}",
            self.pid_expr(),
            to.send(signal)
        );
        remote.run(&command, CONTROL_TIMEOUT).map(|_| ())
    }

    /// The process state letter from /proc (R, S, T when stopped, ...), if running.
    pub fn state(&self, remote: &dyn Remote) -> Result<Option<char>, RemoteError> {
        let command = format!(
            "{}; alive \"$p\" && sed -n 's/^State:[[:space:]]*\\(.\\).*/\\1/p' /proc/\"$p\"/status 2>/dev/null; true",
            self.pid_expr()
        );
        Ok(remote.run(&command, CONTROL_TIMEOUT)?.trim().chars().next())
    }
}

/// What a pidfile's process is doing, as `cluster status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessState {
    /// No pidfile: never started here, or stopped cleanly.
    NoPidfile,
    /// The pidfile names a process that no longer runs (killed, crashed).
    Gone { pid: u32 },
    /// It runs; `state` is the letter from /proc (`T`: stopped by SIGSTOP),
    /// `argv` its command line.
    Running {
        pid: u32,
        state: char,
        argv: Vec<String>,
    },
}

impl ProcessState {
    /// `running`, `stopped (SIGSTOP)`, `gone` or `not started`, with the pid.
    pub fn describe(&self) -> String {
        match self {
            ProcessState::NoPidfile => "not started (no pidfile)".into(),
            ProcessState::Gone { pid } => format!("gone (pid {pid} in the pidfile is not running)"),
            ProcessState::Running {
                pid,
                state: 'T' | 't',
                ..
            } => {
                format!("stopped (SIGSTOP), pid {pid}")
            }
            ProcessState::Running { pid, .. } => format!("running, pid {pid}"),
        }
    }
}

/// Reads `pidfile` on `remote` and what its process is doing, in one command.
pub fn inspect(remote: &dyn Remote, pidfile: &str) -> Result<ProcessState, RemoteError> {
    let command = format!(
        "{ALIVE}[ -e {f} ] || {{ echo none; exit 0; }}; p=$(cat {f} 2>/dev/null)\n\
         alive \"$p\" || {{ echo \"gone $p\"; exit 0; }}\n\
         echo \"pid $p $(sed -n 's/^State:[[:space:]]*\\(.\\).*/\\1/p' /proc/\"$p\"/status 2>/dev/null)\"\n\
         tr '\\0' '\\n' < /proc/\"$p\"/cmdline 2>/dev/null; true",
        f = shell_quote(pidfile)
    );
    let out = remote.run(&command, CONTROL_TIMEOUT)?;
    let mut lines = out.lines();
    let first: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let bad = || RemoteError::Other {
        host: remote.name().into(),
        detail: format!("cannot read {pidfile}: {out:?}"),
    };
    match first.as_slice() {
        ["none"] => Ok(ProcessState::NoPidfile),
        // An empty or garbled pidfile names no process: gone.
        ["gone"] => Ok(ProcessState::Gone { pid: 0 }),
        ["gone", pid] => Ok(ProcessState::Gone {
            pid: pid.parse().unwrap_or(0),
        }),
        ["pid", pid, state, ..] => Ok(ProcessState::Running {
            pid: pid.parse().map_err(|_| bad())?,
            state: state.chars().next().unwrap_or('?'),
            argv: lines.map(str::to_string).collect(),
        }),
        _ => Err(bad()),
    }
}

/// SIGKILLs the process named in `pidfile` (if it runs) and waits until it
/// is gone: for nodes whose deployment nobody remembers (a killed controller).
pub fn kill_by_pidfile(remote: &dyn Remote, pidfile: &str) -> Result<(), RemoteError> {
    // Only the pidfile matters to `kill`; the command line is never run.
    let daemon = Daemon {
        argv: Vec::new(),
        env: Vec::new(),
        pidfile: pidfile.to_string(),
        logfile: String::new(),
        cwd: String::new(),
    };
    daemon.kill(remote)
}

#[cfg(test)]
mod tests {
    use crate::control::ALIVE;
    use std::process::Command;

    /// Runs `alive <pid>` in `sh` after `setup`; true when it says alive.
    fn alive(setup: &str, pid: u32) -> bool {
        let script = format!("{ALIVE}{setup}\nalive {pid}");
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .status()
            .unwrap()
            .success()
    }

    #[test]
    fn a_running_process_is_alive_and_a_zombie_or_a_gone_one_is_not() {
        let mut running = Command::new("sleep").arg("5").spawn().unwrap();
        assert!(alive("", running.id()));
        running.kill().unwrap();
        // Killed and not yet waited for: a zombie of this test process.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!alive("", running.id()), "a zombie counts as alive");
        let pid = running.id();
        running.wait().unwrap();
        assert!(!alive("", pid), "a reaped process counts as alive");
    }

    /// A process whose first thread has exited while another still runs
    /// (as a killed node whose writer thread is in fsync): the first thread
    /// is a zombie, but the process keeps its files (its listening socket)
    /// until its last thread exits, so it is alive until then. A start that
    /// took it for dead failed to bind its port ("Address already in use").
    #[test]
    fn a_zombie_first_thread_beside_a_live_thread_is_alive_until_killed() {
        use crate::control::{alive_here, kill_here, wait_exit_here};
        use std::time::Duration;
        // The raw exit(2) syscall ends the calling thread only.
        let script = "import ctypes, platform, threading, time\n\
            threading.Thread(target=time.sleep, args=(30,)).start()\n\
            ctypes.CDLL(None).syscall({'x86_64': 60, 'aarch64': 93}[platform.machine()], 0)\n";
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .spawn()
            .unwrap();
        let pid = child.id();
        let status = || std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        for _ in 0..500 {
            if status().contains("State:\tZ") {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(status().contains("State:\tZ"), "{}", status());
        assert!(status().contains("Threads:\t2"), "{}", status());
        assert!(alive_here(pid), "a zombie thread beside a live one");
        assert!(
            alive("", pid),
            "a zombie thread beside a live one, to the shell"
        );
        kill_here(pid).unwrap();
        wait_exit_here(pid, Duration::from_secs(5));
        assert!(!alive_here(pid), "{}", status());
        assert!(!alive("", pid), "{}", status());
        child.wait().unwrap();
    }

    /// A host that shares our pids (netns) has its pid read and its node
    /// killed by the controller itself. The remote's command is `false`, so
    /// any command spawned on it would fail: these answers come from here.
    #[test]
    fn a_host_sharing_our_pids_is_read_and_killed_without_a_command() {
        use super::Daemon;
        use crate::control::process::CommandRemote;
        use crate::control::{alive_here, kill_here, wait_exit_here};
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let host = CommandRemote::new("n1", vec!["false".to_string()])
            .with_shared_dir("/opt/", dir.path().to_path_buf())
            .with_our_pids();
        let daemon = Daemon {
            argv: vec!["/bin/true".into()],
            env: Vec::new(),
            pidfile: "/opt/run/node.pid".into(),
            logfile: "/opt/log/node.log".into(),
            cwd: "/opt".into(),
        };
        assert_eq!(daemon.pid(&host).unwrap(), None, "no pidfile yet");
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        std::fs::write(dir.path().join("run/node.pid"), format!("{pid}\n")).unwrap();
        assert_eq!(daemon.pid(&host).unwrap(), Some(pid));
        assert!(alive_here(pid));
        kill_here(pid).unwrap();
        wait_exit_here(pid, Duration::from_secs(2));
        // Killed and not reaped: a zombie, which is not alive.
        assert!(!alive_here(pid));
        assert_eq!(daemon.pid(&host).unwrap(), None);
        child.wait().unwrap();
        assert!(kill_here(pid).is_err(), "a gone pid is an error");
        assert!(kill_here(1).is_err(), "init is never signalled");
        assert!(kill_here(0).is_err(), "nor our own group");
        // Without the shared pids the same remote runs a command, which fails.
        let plain = CommandRemote::new("n1", vec!["false".to_string()])
            .with_shared_dir("/opt/", dir.path().to_path_buf());
        assert!(daemon.pid(&plain).is_err());
    }

    /// The race CI hit: `kill -0` saw a zombie, which was reaped before its
    /// status was read. The reap cannot be timed from a test, so a `kill`
    /// function stands in: it succeeds once, then fails as for a gone pid.
    #[test]
    fn a_process_reaped_between_the_two_looks_is_not_alive() {
        let reaped_after_first_look = "n=0; kill() { n=$((n+1)); [ \"$n\" -eq 1 ]; }";
        assert!(!alive(reaped_after_first_look, 2_000_000_000));
        // Without /proc to look at, a pid that `kill -0` still finds is alive.
        assert!(alive("kill() { return 0; }", 2_000_000_000));
    }

    /// `inspect` on this machine (a remote that runs `env sh -c`): a
    /// running, a stopped, a killed process and no pidfile at all.
    #[test]
    fn inspect_tells_running_stopped_gone_and_never_started() {
        use super::{ProcessState, inspect, kill_by_pidfile};
        use crate::control::process::CommandRemote;
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("x.pid").to_string_lossy().into_owned();
        let local = CommandRemote::new("here", vec!["env".to_string()]);
        assert_eq!(inspect(&local, &pidfile).unwrap(), ProcessState::NoPidfile);
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        std::fs::write(&pidfile, format!("{pid}\n")).unwrap();
        match inspect(&local, &pidfile).unwrap() {
            ProcessState::Running {
                pid: p,
                state,
                argv,
            } => {
                assert_eq!(p, pid);
                assert_ne!(state, 'T');
                assert_eq!(argv, vec!["sleep", "30"]);
            }
            other => panic!("{other:?}"),
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
        let mut stopped = false;
        for _ in 0..200 {
            if let ProcessState::Running { state: 'T', .. } = inspect(&local, &pidfile).unwrap() {
                stopped = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(stopped, "SIGSTOP not seen");
        assert!(
            inspect(&local, &pidfile)
                .unwrap()
                .describe()
                .starts_with("stopped")
        );
        // Reap it in the background so it does not linger as a zombie.
        let reaper = std::thread::spawn(move || child.wait());
        kill_by_pidfile(&local, &pidfile).unwrap();
        reaper.join().unwrap().unwrap();
        assert_eq!(inspect(&local, &pidfile).unwrap(), ProcessState::NoPidfile);
        std::fs::write(&pidfile, format!("{pid}\n")).unwrap();
        assert_eq!(
            inspect(&local, &pidfile).unwrap(),
            ProcessState::Gone { pid }
        );
    }
}
