//! etcd on a [`Cluster`]: one member per host, `/usr/bin/etcd` (Debian's
//! etcd-server) run as a [`Daemon`] with a static bootstrap
//! (`--initial-cluster` from the hosts), its data under the host's
//! faultline data dir and its output in the node log; start, stop, kill -9,
//! pause, wipe, and who leads from each member's status.
//!
//! A killed member restarts from its data (etcd ignores the bootstrap flags
//! then). A wiped member cannot: it would come back as a fresh member with
//! an old id. [`Db::start`] of a member without data therefore rejoins it
//! the way etcd's runtime reconfiguration says (remove it through a live
//! member, add it again, start it with `--initial-cluster-state existing`).

use super::api::{self, post_blocking};
use crate::cluster::{Cluster, Host};
use crate::control::{RemoteError, shell_quote};
use crate::system::daemon::Daemon;
use crate::system::{Db, DbError, DeployOptions, Endpoint, Layout, host_index};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where Debian's etcd-server puts the server.
pub const PROGRAM: &str = "/usr/bin/etcd";
const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);
/// One status or membership call to a member.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// Raft timing: a heartbeat every 100 ms, an election after 500 ms without
/// one — short, as Jepsen runs etcd, so a fault's effect shows within a run.
/// It also sets etcd's shortest lease: 1.5 election timeouts, rounded up
/// to whole seconds (1 s here), so the lock workload's `lease: 1s` holds.
const HEARTBEAT_MS: u32 = 100;
/// Rounds of membership calls for a wiped member to rejoin, 0.5 s apart.
const REJOIN_TRIES: usize = 40;
const ELECTION_MS: u32 = 500;

/// A deployed etcd cluster.
pub struct EtcdDb {
    cluster: Cluster,
    options: DeployOptions,
    layout: Layout,
    peer_port: u16,
}

impl EtcdDb {
    /// The deployment on `cluster`, without touching the hosts.
    pub fn attach(cluster: &Cluster, options: &DeployOptions) -> Result<EtcdDb, DbError> {
        let peer_port = options.port.checked_add(1).ok_or_else(|| {
            DbError::Local(format!(
                "etcd needs two ports: {} and the next one",
                options.port
            ))
        })?;
        Ok(EtcdDb {
            cluster: cluster.clone(),
            options: options.clone(),
            layout: Layout::new(&cluster.host_dir),
            peer_port,
        })
    }

    /// Kills what runs, deletes old data and bootstraps a new cluster.
    pub fn start_all(&self) -> Result<(), DbError> {
        self.on_nodes(|h, d| d.kill(h.remote.as_ref()))?;
        self.on_nodes(|h, _| self.wipe_host(h))?;
        let initial = self.initial_cluster(&self.cluster.hosts);
        self.on_nodes(|h, _| {
            self.daemon(h, "new", &initial)
                .start(h.remote.as_ref())
                .map(|_| ())
        })
    }

    fn data_dir(&self) -> String {
        format!("{}/etcd", self.layout.data())
    }

    fn client_url(&self, h: &Host) -> String {
        format!("http://{}", SocketAddr::new(h.addr, self.options.port))
    }

    fn peer_url(&self, h: &Host) -> String {
        format!("http://{}", SocketAddr::new(h.addr, self.peer_port))
    }

    /// `n1=http://10.0.0.1:7001,...` for `hosts`.
    fn initial_cluster(&self, hosts: &[Host]) -> String {
        hosts
            .iter()
            .map(|h| format!("{}={}", h.name, self.peer_url(h)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The member on `host`, bootstrapping with `state` (`new`, `existing`)
    /// in a cluster of `initial`.
    fn daemon(&self, host: &Host, state: &str, initial: &str) -> Daemon {
        let argv = [
            PROGRAM,
            "--name",
            &host.name,
            "--data-dir",
            &self.data_dir(),
            "--listen-client-urls",
            &self.client_url(host),
            "--advertise-client-urls",
            &self.client_url(host),
            "--listen-peer-urls",
            &self.peer_url(host),
            "--initial-advertise-peer-urls",
            &self.peer_url(host),
            "--initial-cluster",
            initial,
            "--initial-cluster-state",
            state,
            "--initial-cluster-token",
            &self.cluster.name,
            "--heartbeat-interval",
            &HEARTBEAT_MS.to_string(),
            "--election-timeout",
            &ELECTION_MS.to_string(),
            // Structured lines: a fatal one says `"level":"fatal"`.
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
        ];
        Daemon {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            pidfile: self.layout.pidfile(),
            logfile: self.layout.log(),
            cwd: self.layout.dir.clone(),
        }
    }

    fn host(&self, node: &str) -> Result<&Host, DbError> {
        Ok(&self.cluster.hosts[host_index(&self.cluster, node)?])
    }

    /// `action` on every host at once, with the bootstrap daemon (only its
    /// pidfile matters to stop, kill and pause).
    fn on_nodes(
        &self,
        action: impl Fn(&Host, &Daemon) -> Result<(), RemoteError> + Sync,
    ) -> Result<(), DbError> {
        let initial = self.initial_cluster(&self.cluster.hosts);
        crate::system::on_hosts(&self.cluster, |_, host| {
            action(host, &self.daemon(host, "new", &initial))
        })
    }

    fn wipe_host(&self, h: &Host) -> Result<(), RemoteError> {
        h.remote.run(
            &format!("rm -rf {}", shell_quote(&self.data_dir())),
            CONTROL_TIMEOUT,
        )?;
        Ok(())
    }

    fn addr(&self, h: &Host) -> SocketAddr {
        SocketAddr::new(h.addr, self.options.port)
    }

    /// This member's status (`/v3/maintenance/status`).
    fn status(&self, h: &Host) -> Result<Value, String> {
        post_blocking(
            self.addr(h),
            "/v3/maintenance/status",
            &json!({}),
            CALL_TIMEOUT,
        )
    }

    /// Brings back a member whose data was wiped: through another member
    /// that answers, removes it from the membership and adds it again with
    /// its peer URL, then starts it to join the cluster as it now is. etcd
    /// refuses a membership change while the members left would not be
    /// healthy (one restarted within the last 5 s, say): tried again for a
    /// bounded while.
    fn rejoin(&self, host: &Host) -> Result<(), DbError> {
        let mut last = String::from("no other member");
        for _ in 0..REJOIN_TRIES {
            for other in self.cluster.hosts.iter().filter(|h| h.name != host.name) {
                match self.readd(other, host) {
                    Ok(()) => {
                        let initial = self.initial_cluster(&self.cluster.hosts);
                        self.daemon(host, "existing", &initial)
                            .start(host.remote.as_ref())?;
                        return Ok(());
                    }
                    Err(e) => last = format!("{}: {e}", other.name),
                }
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Err(DbError::Host {
            host: host.name.clone(),
            detail: format!("rejoining after a wipe: {last}"),
        })
    }

    /// Through `other`, makes `host` a member that has not started yet:
    /// removes its old self, adds it anew (once: an added member that has
    /// not started has no name yet, and is kept).
    fn readd(&self, other: &Host, host: &Host) -> Result<(), String> {
        let call = |path: &str, body: Value| {
            post_blocking(self.addr(other), path, &body, CALL_TIMEOUT * 4)
        };
        let list = call("/v3/cluster/member/list", json!({}))?;
        let peer = self.peer_url(host);
        let members = list
            .get("members")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let old = members.iter().find(|m| {
            m.get("peerURLs")
                .and_then(Value::as_array)
                .is_some_and(|urls| urls.iter().any(|u| u.as_str() == Some(&peer)))
        });
        if let Some(old) = old {
            let named = old
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if !named {
                return Ok(());
            }
            let id = api::uint(old, "ID")?;
            call("/v3/cluster/member/remove", json!({"ID": id.to_string()}))?;
        }
        call("/v3/cluster/member/add", json!({"peerURLs": [peer]}))?;
        Ok(())
    }

    /// Whether `host` has a member's data (a wiped one has none).
    fn has_data(&self, host: &Host) -> Result<bool, DbError> {
        let out = host.remote.run(
            &format!(
                "[ -d {} ] && echo yes || echo no",
                shell_quote(&format!("{}/member", self.data_dir()))
            ),
            CONTROL_TIMEOUT,
        )?;
        Ok(out.trim() == "yes")
    }
}

impl Db for EtcdDb {
    fn system(&self) -> &'static str {
        "etcd"
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

    /// Every member answers its status and knows a leader. A member whose
    /// process is gone (a bad flag, a port in use) fails the wait at once.
    fn wait_ready(&self, timeout: Duration) -> Result<(), DbError> {
        let started = Instant::now();
        let mut waiting: Vec<(&Host, String)> = self
            .cluster
            .hosts
            .iter()
            .map(|h| (h, String::new()))
            .collect();
        // Bounded: one pass per 50 ms until the deadline.
        loop {
            for (h, why) in waiting.iter_mut() {
                *why = match self.status(h).and_then(|s| api::member_and_leader(&s)) {
                    Ok((_, 0)) => "no leader known".into(),
                    Ok(_) => String::new(),
                    Err(e) => e,
                };
            }
            waiting.retain(|(_, why)| !why.is_empty());
            if waiting.is_empty() {
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
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts `node` if it is not running: from its data when it has any,
    /// else by rejoining the cluster (after a wipe).
    fn start(&self, node: &str) -> Result<(), DbError> {
        let (host, daemon) = self.process(node)?;
        if daemon.pid(host.remote.as_ref())?.is_some() {
            return Ok(());
        }
        if self.has_data(host)? {
            daemon.start(host.remote.as_ref())?;
            return Ok(());
        }
        self.rejoin(host)
    }

    /// The member as it was bootstrapped (only its pidfile matters to
    /// stop, kill and pause it).
    fn process(&self, node: &str) -> Result<(&Host, Daemon), DbError> {
        let host = self.host(node)?;
        let initial = self.initial_cluster(&self.cluster.hosts);
        Ok((host, self.daemon(host, "new", &initial)))
    }

    /// Deletes `node`'s data (it must be stopped); the next start rejoins.
    fn wipe(&self, node: &str) -> Result<(), DbError> {
        Ok(self.wipe_host(self.host(node)?)?)
    }

    /// Copies every member's log to `dir/<node>/node.log`.
    fn download_logs(&self, dir: &Path) -> Result<Vec<PathBuf>, DbError> {
        crate::system::download_node_logs(&self.cluster, &self.layout, dir)
    }

    fn log_tail(&self, node: &str, lines: usize) -> Vec<String> {
        match self.host(node) {
            Ok(h) => crate::system::log_tail(h, &self.layout, lines),
            Err(_) => Vec::new(),
        }
    }

    /// etcd runs no libfaketime: the clock nemesis sets the hosts' clocks.
    fn faketime_file(&self) -> Option<String> {
        None
    }

    fn has_primaries(&self) -> bool {
        true
    }

    /// The members whose status names themselves as leader. A member cut
    /// off in a minority may still say so (its term is old): it claims to.
    fn primaries(&self) -> Result<Vec<String>, String> {
        let answers = crate::fan_out::on_every(&self.cluster.hosts, |h| {
            self.status(h).and_then(|s| api::member_and_leader(&s))
        });
        let mut leaders = Vec::new();
        let mut errors = Vec::new();
        for (h, answer) in self.cluster.hosts.iter().zip(answers) {
            match answer {
                Ok(Ok((member, leader))) if member != 0 && member == leader => {
                    leaders.push(h.name.clone())
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => errors.push(format!("{}: {e}", h.name)),
                Err(panicked) => errors.push(format!("{}: panicked: {panicked}", h.name)),
            }
        }
        if leaders.is_empty() && !errors.is_empty() {
            return Err(format!("no member says it leads ({})", errors.join("; ")));
        }
        Ok(leaders)
    }
}
