//! A custom system on a [`Cluster`]: the test's commands run on every host,
//! each one shell command through `Remote`.
//!
//! How a node's process is found decides how it is started:
//! - neither `pidfile` nor `process`: `start` runs in the foreground as a
//!   [`Daemon`] (`sh -c 'exec START'` under `setsid`, its output appended to
//!   `{log_file}`), which writes faultline's pidfile. `exec`, so that the pid
//!   is the node's own: the nemesis signals that pid alone;
//! - `pidfile`: `start` runs to completion (it daemonizes), then its pidfile
//!   must name a live process within [`FOUND_WAIT`];
//! - `process`: the same, then the oldest process of that name in the
//!   host's network namespace is written to faultline's pidfile.
//!
//! Either way, kill, pause, resume and pid go through the [`Daemon`]
//! functions on one pidfile.

use super::{Custom, Vars, expand};
use crate::cluster::{Cluster, Host};
use crate::control::ALIVE;
use crate::control::{RemoteError, on_all, parent_dir, shell_quote};
use crate::system::daemon::Daemon;
use crate::system::{Db, DbError, DeployOptions, Endpoint, Layout, host_index};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);
/// An install may download packages.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a self-daemonizing start command may take.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long after its start command a daemonized node's pid may take to show.
const FOUND_WAIT: Duration = Duration::from_secs(10);
/// How long the leader command may take on one host.
const LEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A deployed custom system: its description and one node per host.
pub struct CustomDb {
    cluster: Cluster,
    spec: Custom,
    layout: Layout,
    port: u16,
    nodes: Vec<Node>,
}

/// One host's node: its placeholder values and how its process is held.
struct Node {
    vars: Vars,
    daemon: Daemon,
}

/// Installs (when asked), then starts every node (killing any running first).
pub fn start(
    cluster: &Cluster,
    spec: &Custom,
    options: &DeployOptions,
) -> Result<CustomDb, DbError> {
    let db = CustomDb::attach(cluster, spec, options);
    if let Some(install) = &spec.install {
        db.on_nodes(|host, node| {
            let command = expand(install, &node.vars);
            host.remote.run(&command, INSTALL_TIMEOUT).map(|_| ())
        })?;
    }
    db.on_nodes(|host, node| node.daemon.kill(host.remote.as_ref()))?;
    db.on_nodes(|host, node| db.start_node(host, node))?;
    Ok(db)
}

impl CustomDb {
    /// The nodes of a deployment, without touching the hosts.
    pub fn attach(cluster: &Cluster, spec: &Custom, options: &DeployOptions) -> CustomDb {
        let layout = Layout::new(&cluster.host_dir);
        let port = spec.port.unwrap_or(options.port);
        let addr = |h: &Host| SocketAddr::new(h.addr, port).to_string();
        let nodes = cluster
            .hosts
            .iter()
            .map(|host| {
                let peers: Vec<String> = cluster
                    .hosts
                    .iter()
                    .filter(|h| h.name != host.name)
                    .map(|h| format!("{}={}", h.name, addr(h)))
                    .collect();
                let vars = Vars {
                    id: host.name.clone(),
                    addr: host.addr.to_string(),
                    port,
                    peers: peers.join(","),
                    data_dir: layout.data(),
                    log_file: layout.log(),
                };
                let pidfile = match &spec.pidfile {
                    Some(p) => expand(p, &vars),
                    None => layout.pidfile(),
                };
                let start = format!("exec {}", expand(&spec.start, &vars));
                let daemon = Daemon {
                    argv: vec!["sh".into(), "-c".into(), start],
                    env: vec![("NO_COLOR".into(), "1".into())],
                    pidfile,
                    logfile: layout.log(),
                    cwd: layout.dir.clone(),
                };
                Node { vars, daemon }
            })
            .collect();
        CustomDb {
            cluster: cluster.clone(),
            spec: spec.clone(),
            layout,
            port,
            nodes,
        }
    }

    fn on_nodes(
        &self,
        action: impl Fn(&Host, &Node) -> Result<(), RemoteError> + Sync,
    ) -> Result<(), DbError> {
        crate::system::on_hosts(&self.cluster, |i, host| action(host, &self.nodes[i]))
    }

    /// Starts `node` unless it runs; see the module's doc for how.
    fn start_node(&self, host: &Host, node: &Node) -> Result<(), RemoteError> {
        let remote = host.remote.as_ref();
        if node.daemon.pid(remote)?.is_some() {
            return Ok(());
        }
        let q = |s: &str| shell_quote(s);
        remote.run(
            &format!(
                "mkdir -p {} {} {}",
                q(&node.vars.data_dir),
                q(parent_dir(&node.vars.log_file)),
                q(parent_dir(&node.daemon.pidfile))
            ),
            CONTROL_TIMEOUT,
        )?;
        if self.spec.pidfile.is_none() && self.spec.process.is_none() {
            return node.daemon.start(remote).map(|_| ());
        }
        // It daemonizes: wait for the command, not for the node. Its output
        // goes to the log, so a daemon that keeps it open holds no pipe of ours.
        let start = expand(&self.spec.start, &node.vars);
        remote.run(
            &format!(
                "cd {} && setsid -w sh -c {} >>{} 2>&1 </dev/null",
                q(&self.layout.dir),
                q(&start),
                q(&node.vars.log_file)
            ),
            START_TIMEOUT,
        )?;
        let tries = FOUND_WAIT.as_millis() / 50;
        let pidfile = q(&node.daemon.pidfile);
        let find = match &self.spec.process {
            // The pidfile the start command writes.
            None => format!("p=$(cat {pidfile} 2>/dev/null); alive \"$p\""),
            // The oldest process of that name in this network namespace.
            Some(name) => format!(
                "p=''; me=$(readlink /proc/self/ns/net)\n\
                 for c in $(pgrep -x {name}); do [ \"$(readlink /proc/$c/ns/net 2>/dev/null)\" = \"$me\" ] && {{ p=$c; break; }}; done\n\
                 [ -n \"$p\" ] && echo \"$p\" > {pidfile}.tmp && mv -f {pidfile}.tmp {pidfile}",
                name = q(name)
            ),
        };
        remote.run(
            &format!(
                "{ALIVE}found() {{ {find}; }}\n\
                 i=0; while ! found && [ $i -lt {tries} ]; do sleep 0.05; i=$((i+1)); done\n\
                 found || {{ echo {what} >&2; exit 1; }}",
                what = q(&format!(
                    "the start command ran, but no node process was found ({})",
                    match &self.spec.process {
                        None => format!("pidfile {}", node.daemon.pidfile),
                        Some(name) =>
                            format!("no process named {name} in the host's network namespace"),
                    }
                ))
            ),
            FOUND_WAIT + CONTROL_TIMEOUT,
        )?;
        Ok(())
    }

    /// `node` is not answering: whether it runs and its log's tail.
    fn explain(&self, i: usize, why: &str) -> String {
        let host = &self.cluster.hosts[i];
        let running = match self.nodes[i].daemon.pid(host.remote.as_ref()) {
            Ok(Some(pid)) => format!("pid {pid} runs"),
            Ok(None) => "not running".to_string(),
            Err(e) => format!("state unknown: {e}"),
        };
        let tail = self.log_tail(&host.name, 5);
        format!(
            "{} ({}): {why}; {running}; log {}: {}",
            host.name,
            self.endpoint(i).addr,
            self.nodes[i].vars.log_file,
            if tail.is_empty() {
                "(empty)".to_string()
            } else {
                tail.join(" | ")
            }
        )
    }

    fn endpoint(&self, i: usize) -> Endpoint {
        let h = &self.cluster.hosts[i];
        Endpoint {
            name: h.name.clone(),
            addr: SocketAddr::new(h.addr, self.port).to_string(),
        }
    }
}

impl Db for CustomDb {
    fn system(&self) -> &'static str {
        "custom"
    }

    fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        (0..self.cluster.hosts.len())
            .map(|i| self.endpoint(i))
            .collect()
    }

    /// Every node's port takes connections from the controller.
    fn wait_ready(&self, timeout: Duration) -> Result<(), DbError> {
        let started = Instant::now();
        let mut waiting: Vec<usize> = (0..self.nodes.len()).collect();
        let mut why = vec![String::new(); self.nodes.len()];
        loop {
            waiting.retain(|&i| {
                let addr = SocketAddr::new(self.cluster.hosts[i].addr, self.port);
                match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                    Ok(_) => false,
                    Err(e) => {
                        why[i] = format!("connecting: {e}");
                        true
                    }
                }
            });
            if waiting.is_empty() {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(DbError::NotReady {
                    hosts: waiting.iter().map(|&i| self.explain(i, &why[i])).collect(),
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn start(&self, node: &str) -> Result<(), DbError> {
        let i = host_index(&self.cluster, node)?;
        Ok(self.start_node(&self.cluster.hosts[i], &self.nodes[i])?)
    }

    /// The `stop` command when there is one (bounded by `grace`), then
    /// SIGTERM and SIGKILL for whatever still runs.
    fn stop(&self, node: &str, grace: Duration) -> Result<(), DbError> {
        let i = host_index(&self.cluster, node)?;
        let remote = self.cluster.hosts[i].remote.as_ref();
        if let Some(stop) = &self.spec.stop {
            let command = expand(stop, &self.nodes[i].vars);
            if let Err(e) = remote.run(&command, grace + CONTROL_TIMEOUT) {
                tracing::warn!("the stop command failed, stopping with signals: {e}");
            }
        }
        Ok(self.nodes[i].daemon.stop(remote, grace)?)
    }

    fn process(&self, node: &str) -> Result<(&Host, Daemon), DbError> {
        let i = host_index(&self.cluster, node)?;
        Ok((&self.cluster.hosts[i], self.nodes[i].daemon.clone()))
    }

    fn wipe(&self, node: &str) -> Result<(), DbError> {
        let i = host_index(&self.cluster, node)?;
        crate::system::wipe_dir(&self.cluster.hosts[i], &self.nodes[i].vars.data_dir)
    }

    /// Copies each node's log files to `dir/<node>/<file name>`; a file that
    /// does not exist is skipped.
    fn download_logs(&self, dir: &Path) -> Result<Vec<PathBuf>, DbError> {
        let written = on_all(&self.cluster.remotes(), |r| {
            let i = host_index(&self.cluster, r.name()).map_err(|e| RemoteError::Other {
                host: r.name().into(),
                detail: e.to_string(),
            })?;
            let mut files = Vec::new();
            for (n, template) in self.spec.logs.iter().enumerate() {
                let remote_path = expand(template, &self.nodes[i].vars);
                let exists = format!("test -f {}", shell_quote(&remote_path));
                if !r.exec(&exists, None, CONTROL_TIMEOUT)?.success() {
                    continue;
                }
                let name = Path::new(&remote_path)
                    .file_name()
                    .map_or_else(|| format!("log{n}"), |f| f.to_string_lossy().into_owned());
                let local_dir = dir.join(r.name());
                std::fs::create_dir_all(&local_dir).map_err(|e| RemoteError::Other {
                    host: r.name().into(),
                    detail: format!("cannot create {}: {e}", local_dir.display()),
                })?;
                // Two logs of one name keep both: the later gets its index.
                let mut local = local_dir.join(&name);
                if files.contains(&local) {
                    local = local_dir.join(format!("{n}-{name}"));
                }
                r.download(&remote_path, &local)?;
                files.push(local);
            }
            Ok(files)
        })?;
        Ok(written.into_iter().flatten().collect())
    }

    fn log_tail(&self, node: &str, lines: usize) -> Vec<String> {
        let Ok(i) = host_index(&self.cluster, node) else {
            return Vec::new();
        };
        let command = format!(
            "tail -n {lines} {} 2>/dev/null; true",
            shell_quote(&self.nodes[i].vars.log_file)
        );
        match self.cluster.hosts[i].remote.run(&command, CONTROL_TIMEOUT) {
            Ok(out) => out.lines().map(str::to_string).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Custom nodes are not run under libfaketime.
    fn faketime_file(&self) -> Option<String> {
        None
    }

    fn has_primaries(&self) -> bool {
        self.spec.leader.is_some()
    }

    /// The nodes whose `leader` command exits 0, asked all at once.
    fn primaries(&self) -> Result<Vec<String>, String> {
        let Some(leader) = &self.spec.leader else {
            return Err("this custom system has no `leader` command to ask".into());
        };
        let asked = crate::fan_out::on_every(&self.cluster.hosts, |h| {
            let i = host_index(&self.cluster, &h.name).map_err(|e| e.to_string())?;
            let command = expand(leader, &self.nodes[i].vars);
            h.remote
                .exec(&command, None, LEADER_TIMEOUT)
                .map(|out| out.success())
                .map_err(|e| e.to_string())
        });
        let mut leaders = Vec::new();
        for (host, answer) in self.cluster.hosts.iter().zip(asked) {
            match answer {
                Ok(Ok(true)) => leaders.push(host.name.clone()),
                Ok(Ok(false)) => {}
                Ok(Err(e)) => return Err(e),
                Err(panicked) => return Err(format!("{}: panicked: {panicked}", host.name)),
            }
        }
        Ok(leaders)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Backend, Cluster};
    use crate::control::Remote;
    use crate::control::process::CommandRemote;
    use std::sync::Arc;

    /// A one-host "cluster" on this machine (a remote that runs `env sh -c`).
    fn here(dir: &Path) -> Cluster {
        let remote: Arc<dyn Remote> = Arc::new(CommandRemote::new("n1", vec!["env".into()]));
        Cluster {
            name: "here".into(),
            backend: Backend::Ssh,
            hosts: vec![Host {
                name: "n1".into(),
                addr: "127.0.0.1".parse().unwrap(),
                remote,
            }],
            controller_addr: "127.0.0.1".parse().unwrap(),
            host_dir: dir.to_string_lossy().into_owned(),
        }
    }

    fn spec(yaml: &str) -> Custom {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    /// A foreground start: the node's pid is its program's own (the nemesis
    /// signals that pid), kill and start again work, its output is the log.
    #[test]
    fn a_foreground_node_is_its_program_and_is_killed_and_started_again() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = here(dir.path());
        let s =
            spec("kind: custom\nstart: 'sh -c \"echo started {id}; exec sleep 300\"'\nclient: x\n");
        let db = start(&cluster, &s, &DeployOptions::default()).unwrap();
        let pid = db.pid("n1").unwrap().expect("runs");
        let mut comm = String::new();
        for _ in 0..250 {
            comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "sleep" {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(comm.trim(), "sleep", "the pid is not the program's");
        db.pause("n1").unwrap();
        db.resume("n1").unwrap();
        db.kill("n1").unwrap();
        assert_eq!(db.pid("n1").unwrap(), None);
        db.start("n1").unwrap();
        assert!(db.pid("n1").unwrap().is_some());
        let mut tail = Vec::new();
        for _ in 0..250 {
            tail = db.log_tail("n1", 5);
            if tail.len() == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(tail, ["started n1", "started n1"]);
        db.stop("n1", Duration::from_secs(1)).unwrap();
        assert_eq!(db.pid("n1").unwrap(), None);
    }

    /// A start command that daemonizes: found by its pidfile, or by name.
    #[test]
    fn a_daemonizing_node_is_found_by_pidfile_or_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = here(dir.path());
        let by_pidfile = spec(
            "kind: custom\nstart: 'sleep 301 & echo $! > {data_dir}/my.pid'\npidfile: '{data_dir}/my.pid'\nclient: x\n",
        );
        let db = start(&cluster, &by_pidfile, &DeployOptions::default()).unwrap();
        let pid = db.pid("n1").unwrap().expect("found by its pidfile");
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(cmdline.starts_with("sleep\u{0}301"), "{cmdline:?}");
        db.kill("n1").unwrap();
        assert_eq!(db.pid("n1").unwrap(), None);

        // Named, with a name no other test's process has.
        let script = dir.path().join("fl-custom-t");
        std::fs::copy("/bin/sleep", &script).unwrap();
        let by_name = spec(&format!(
            "kind: custom\nstart: '{} 302 &'\nprocess: fl-custom-t\nclient: x\n",
            script.display()
        ));
        let db = start(&cluster, &by_name, &DeployOptions::default()).unwrap();
        let pid = db.pid("n1").unwrap().expect("found by name");
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        assert_eq!(comm.trim(), "fl-custom-t");
        db.kill("n1").unwrap();
        assert_eq!(db.pid("n1").unwrap(), None);

        let missing = spec("kind: custom\nstart: 'true'\nprocess: fl-no-such\nclient: x\n");
        let e = start(&cluster, &missing, &DeployOptions::default())
            .err()
            .expect("nothing to find")
            .to_string();
        assert!(e.contains("no process named fl-no-such"), "{e}");
    }

    #[test]
    fn the_leader_command_names_the_primaries() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = here(dir.path());
        let s = spec("kind: custom\nstart: 'sleep 1'\nleader: 'test {id} = n1'\nclient: x\n");
        let db = CustomDb::attach(&cluster, &s, &DeployOptions::default());
        assert_eq!(db.primaries(), Ok(vec!["n1".to_string()]));
        let s = spec("kind: custom\nstart: 'sleep 1'\nleader: 'test {id} = n2'\nclient: x\n");
        let db = CustomDb::attach(&cluster, &s, &DeployOptions::default());
        assert_eq!(db.primaries(), Ok(vec![]));
        let s = spec("kind: custom\nstart: 'sleep 1'\nclient: x\n");
        let db = CustomDb::attach(&cluster, &s, &DeployOptions::default());
        assert!(db.primaries().is_err());
    }
}
