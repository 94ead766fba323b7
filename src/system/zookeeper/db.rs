//! A ZooKeeper ensemble on a [`Cluster`]: one server per host, the JVM run
//! directly as a [`Daemon`] (`java ... QuorumPeerMain zoo.cfg`, the command
//! Debian's `zkServer.sh start-foreground` execs), so that kill, pause and
//! the pid act on the JVM itself; a static configuration written at
//! deploy; who leads from each server's `srvr` four-letter word.
//!
//! Files on a host, under [`Layout`]: `zookeeper/zoo.cfg` and
//! `zookeeper/log4j.properties`; the server's `myid` and its transaction
//! logs and snapshots (`version-2/`) in `data/zookeeper/`; its log (log4j
//! to stdout) in the node log. A killed server restarts from its data; a
//! wiped one keeps its `myid` and catches up from the leader.
//!
//! Ports: clients on the test's port, the quorum on the next one and
//! leader election on the one after.

use crate::cluster::{Cluster, Host};
use crate::control::{RemoteError, shell_quote};
use crate::system::daemon::Daemon;
use crate::system::{Db, DbError, DeployOptions, Endpoint, Layout, host_index};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Debian's server jar (package `libzookeeper-java`, which `zookeeper`
/// depends on); its manifest's `Class-Path` names the jars it needs.
pub const SERVER_JAR: &str = "/usr/share/java/zookeeper.jar";
const JAVA: &str = "/usr/bin/java";
/// The server's jar, and slf4j's binding to log4j 1.2 with log4j itself:
/// the server logs through slf4j, and without a binding it logs nothing.
/// Both are dependencies of `libzookeeper-java`.
const CLASSPATH: &str =
    "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar";
const MAIN: &str = "org.apache.zookeeper.server.quorum.QuorumPeerMain";
/// A small JVM, so that five servers and the controller fit a 2-core
/// machine: a 128 MB heap, the serial collector, the C1 compiler only (it
/// starts faster and compiles less), no perf-data file, and an exit
/// rather than a half-dead server when the heap runs out.
const JVM_FLAGS: &[&str] = &[
    "-Xmx128m",
    "-Xms64m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.net.preferIPv4Stack=true",
    "-Dzookeeper.jmx.log4j.disable=true",
];
/// ZooKeeper's clock: its timeouts are counted in ticks. Short, as Jepsen
/// runs etcd, so that a fault's effect shows within a run: a follower that
/// hears nothing from its leader for `SYNC_LIMIT` ticks (2 s) drops out,
/// and so does a leader that hears from no quorum.
const TICK_MS: u64 = 250;
const INIT_LIMIT: u32 = 20;
const SYNC_LIMIT: u32 = 8;
/// The shortest session a client may ask for (the lock's `lease: 1s`).
const MIN_SESSION_MS: u64 = 1000;
const MAX_SESSION_MS: u64 = 60_000;
/// The four-letter words the Db uses (3.5+ refuses the others).
const FOUR_LETTER_WORDS: &str = "srvr,ruok,mntr";
const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);
/// One four-letter word to a server.
const ASK_TIMEOUT: Duration = Duration::from_millis(500);

/// A deployed ensemble.
pub struct ZkDb {
    cluster: Cluster,
    options: DeployOptions,
    layout: Layout,
    env: Vec<(String, String)>,
}

/// What a server says of itself in `srvr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Leader,
    Follower,
    Observer,
    Standalone,
    /// It answers but serves no clients (no quorum: looking for a leader).
    NotServing,
}

/// The `Mode:` line of a `srvr` answer.
pub fn mode(srvr: &str) -> Result<Mode, String> {
    if srvr.contains("not currently serving requests") {
        return Ok(Mode::NotServing);
    }
    let line = srvr
        .lines()
        .find_map(|l| l.strip_prefix("Mode:"))
        .ok_or_else(|| format!("no Mode in srvr's answer {srvr:?}"))?;
    match line.trim() {
        "leader" => Ok(Mode::Leader),
        "follower" => Ok(Mode::Follower),
        "observer" => Ok(Mode::Observer),
        "standalone" => Ok(Mode::Standalone),
        other => Err(format!("unknown mode {other:?}")),
    }
}

/// Sends the four-letter word `word` to `addr` and reads the answer to its
/// end (the server closes the connection).
pub fn four_letter(addr: SocketAddr, word: &str, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    stream
        .set_write_timeout(Some(left()))
        .and_then(|_| stream.write_all(word.as_bytes()))
        .map_err(|e| format!("{word}: {e}"))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Bounded: the deadline, and 64 KiB.
    while answer.len() < 65536 {
        stream
            .set_read_timeout(Some(left()))
            .map_err(|e| format!("{word}: {e}"))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("{word}: {e}")),
        }
        if Instant::now() >= deadline {
            return Err(format!("{word}: timed out"));
        }
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

impl ZkDb {
    /// The deployment on `cluster`, without touching the hosts.
    pub fn attach(cluster: &Cluster, options: &DeployOptions) -> Result<ZkDb, DbError> {
        if options.port.checked_add(2).is_none() {
            return Err(DbError::Local(format!(
                "zookeeper needs three ports: {} and the two after it",
                options.port
            )));
        }
        let layout = Layout::new(&cluster.host_dir);
        let env = if options.faketime {
            crate::system::faketime_env(cluster, &layout)?
        } else {
            Vec::new()
        };
        Ok(ZkDb {
            cluster: cluster.clone(),
            options: options.clone(),
            layout,
            env,
        })
    }

    /// Kills what runs, writes fresh configurations and empty data (with
    /// each server's `myid`), then starts every server.
    pub fn start_all(&self) -> Result<(), DbError> {
        crate::system::on_hosts(&self.cluster, |i, host| {
            self.daemon().kill(host.remote.as_ref())?;
            self.write_files(i, host)
        })?;
        crate::system::on_hosts(&self.cluster, |_, host| self.start_server(host))
    }

    fn conf_dir(&self) -> String {
        format!("{}/zookeeper", self.layout.dir)
    }

    fn conf(&self) -> String {
        format!("{}/zoo.cfg", self.conf_dir())
    }

    fn log4j(&self) -> String {
        format!("{}/log4j.properties", self.conf_dir())
    }

    fn data_dir(&self) -> String {
        format!("{}/zookeeper", self.layout.data())
    }

    fn addr(&self, h: &Host) -> SocketAddr {
        SocketAddr::new(h.addr, self.options.port)
    }

    /// The static configuration every server shares but for its client
    /// address: `server.N=addr:quorum:election` for host N (1-based, its
    /// `myid`).
    fn zoo_cfg(&self, host: &Host) -> String {
        let port = self.options.port;
        let mut cfg = format!(
            "# Written by faultline.\n\
             tickTime={TICK_MS}\ninitLimit={INIT_LIMIT}\nsyncLimit={SYNC_LIMIT}\n\
             dataDir={data}\nclientPort={port}\nclientPortAddress={ip}\n\
             minSessionTimeout={MIN_SESSION_MS}\nmaxSessionTimeout={MAX_SESSION_MS}\n\
             4lw.commands.whitelist={FOUR_LETTER_WORDS}\nadmin.enableServer=false\n\
             # Transaction log files grow by 4 MB, not 64.\npreAllocSize=4096\n",
            data = self.data_dir(),
            ip = host.addr,
        );
        for (i, h) in self.cluster.hosts.iter().enumerate() {
            cfg.push_str(&format!(
                "server.{}={}:{}:{}\n",
                i + 1,
                h.addr,
                port + 1,
                port + 2
            ));
        }
        cfg
    }

    /// The configuration, log4j's (INFO and up to stdout, which is the
    /// node log) and an empty data directory with `myid` on host `i`.
    fn write_files(&self, i: usize, host: &Host) -> Result<(), RemoteError> {
        let log4j = "log4j.rootLogger=INFO, CONSOLE\n\
                     log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\n\
                     log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\n\
                     log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n\n";
        let q = |s: &str| shell_quote(s);
        let data = q(&self.data_dir());
        host.remote.run(
            &format!(
                "rm -rf {data} && mkdir -p {data} {conf_dir} && echo {id} > {data}/myid && \
                 printf '%s' {cfg} > {conf} && printf '%s' {log4j} > {log4j_file}",
                conf_dir = q(&self.conf_dir()),
                id = i + 1,
                cfg = q(&self.zoo_cfg(host)),
                conf = q(&self.conf()),
                log4j = q(log4j),
                log4j_file = q(&self.log4j()),
            ),
            CONTROL_TIMEOUT,
        )?;
        Ok(())
    }

    /// The server's JVM. Only the pidfile matters to stop, kill and pause.
    fn daemon(&self) -> Daemon {
        let mut argv: Vec<String> = vec![JAVA.into()];
        argv.extend(JVM_FLAGS.iter().map(|s| s.to_string()));
        argv.extend([
            format!("-Dlog4j.configuration=file:{}", self.log4j()),
            "-cp".into(),
            CLASSPATH.into(),
            MAIN.into(),
            self.conf(),
        ]);
        Daemon {
            argv,
            env: self.env.clone(),
            pidfile: self.layout.pidfile(),
            logfile: self.layout.log(),
            cwd: self.layout.dir.clone(),
        }
    }

    fn start_server(&self, host: &Host) -> Result<(), RemoteError> {
        if self.options.faketime {
            crate::system::init_faketime_file(host, &self.layout)?;
        }
        self.daemon().start(host.remote.as_ref()).map(|_| ())
    }

    fn host(&self, node: &str) -> Result<&Host, DbError> {
        Ok(&self.cluster.hosts[host_index(&self.cluster, node)?])
    }

    /// What `host`'s server says it is, asked now.
    fn mode_of(&self, host: &Host) -> Result<Mode, String> {
        four_letter(self.addr(host), "srvr", ASK_TIMEOUT).and_then(|s| mode(&s))
    }

    /// Every server's mode, in host order, asked at once.
    fn modes(&self) -> Vec<Result<Mode, String>> {
        crate::fan_out::on_every(&self.cluster.hosts, |h| self.mode_of(h))
            .into_iter()
            .map(|r| r.unwrap_or_else(|panicked| Err(format!("panicked: {panicked}"))))
            .collect()
    }
}

impl Db for ZkDb {
    fn system(&self) -> &'static str {
        "zookeeper"
    }

    fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        self.cluster
            .hosts
            .iter()
            .map(|h| Endpoint {
                name: h.name.clone(),
                addr: self.addr(h).to_string(),
            })
            .collect()
    }

    /// Every server serves (it answers `srvr` as leader, follower or
    /// standalone) and one of them leads. A server whose JVM is gone (a bad
    /// flag, a port in use) fails the wait at once.
    fn wait_ready(&self, timeout: Duration) -> Result<(), DbError> {
        let started = Instant::now();
        // Bounded: one round per 100 ms until the deadline.
        loop {
            let modes = self.modes();
            let led = modes
                .iter()
                .any(|m| matches!(m, Ok(Mode::Leader | Mode::Standalone)));
            let waiting: Vec<(&Host, String)> = self
                .cluster
                .hosts
                .iter()
                .zip(modes)
                .filter_map(|(h, m)| match m {
                    Ok(Mode::NotServing) => Some((h, "not serving (no quorum yet)".to_string())),
                    Ok(_) if led => None,
                    Ok(m) => Some((h, format!("{m:?}, and no server leads"))),
                    Err(e) => Some((h, e)),
                })
                .collect();
            if waiting.is_empty() {
                tracing::debug!("zookeeper ready after {} ms", started.elapsed().as_millis());
                return Ok(());
            }
            let gone = waiting
                .iter()
                .any(|(h, _)| self.pid(&h.name).is_ok_and(|p| p.is_none()));
            if gone || started.elapsed() > timeout {
                return Err(DbError::NotReady {
                    hosts: waiting
                        .iter()
                        .map(|(h, why)| {
                            crate::system::explain_not_ready(
                                self,
                                &h.name,
                                &self.addr(h).to_string(),
                                why,
                            )
                        })
                        .collect(),
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts `node`'s server if it is not running, from its data (none
    /// after a wipe: it then catches up from the leader).
    fn start(&self, node: &str) -> Result<(), DbError> {
        Ok(self.start_server(self.host(node)?)?)
    }

    fn process(&self, node: &str) -> Result<(&Host, Daemon), DbError> {
        Ok((self.host(node)?, self.daemon()))
    }

    /// Deletes `node`'s transaction logs and snapshots (it must be
    /// stopped), keeping its `myid`.
    fn wipe(&self, node: &str) -> Result<(), DbError> {
        let host = self.host(node)?;
        host.remote.run(
            &format!(
                "rm -rf {}",
                shell_quote(&format!("{}/version-2", self.data_dir()))
            ),
            CONTROL_TIMEOUT,
        )?;
        Ok(())
    }

    fn download_logs(&self, dir: &Path) -> Result<Vec<PathBuf>, DbError> {
        crate::system::download_node_logs(&self.cluster, &self.layout, dir)
    }

    fn log_tail(&self, node: &str, lines: usize) -> Vec<String> {
        match self.host(node) {
            Ok(h) => crate::system::log_tail(h, &self.layout, lines),
            Err(_) => Vec::new(),
        }
    }

    /// The JVM runs under libfaketime when the test asks (it reads the
    /// wall clock through libc's `clock_gettime`, which libfaketime wraps).
    fn faketime_file(&self) -> Option<String> {
        self.options.faketime.then(|| self.layout.faketime_file())
    }

    fn has_primaries(&self) -> bool {
        true
    }

    /// The servers whose `srvr` says `leader` (or `standalone`). A leader
    /// cut off in a minority says so until it notices (`SYNC_LIMIT` ticks).
    fn primaries(&self) -> Result<Vec<String>, String> {
        let mut leaders = Vec::new();
        let mut errors = Vec::new();
        for (h, m) in self.cluster.hosts.iter().zip(self.modes()) {
            match m {
                Ok(Mode::Leader | Mode::Standalone) => leaders.push(h.name.clone()),
                Ok(_) => {}
                Err(e) => errors.push(format!("{}: {e}", h.name)),
            }
        }
        if leaders.is_empty() && !errors.is_empty() {
            return Err(format!("no server says it leads ({})", errors.join("; ")));
        }
        Ok(leaders)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srvr_answers_give_the_mode_and_a_server_without_quorum_serves_nothing() {
        let leader =
            "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: leader\nNode count: 5\n";
        assert_eq!(mode(leader), Ok(Mode::Leader));
        assert_eq!(mode("Mode: follower\n"), Ok(Mode::Follower));
        assert_eq!(
            mode("This ZooKeeper instance is not currently serving requests\n"),
            Ok(Mode::NotServing)
        );
        assert!(mode("Mode: confused\n").is_err());
        assert!(mode("").is_err());
    }
}
