//! A user's own system, described in the test file: shell commands per host
//! (install, start, stop, who leads) with placeholders for the node, and a
//! client program in any language that faultline runs on the controller,
//! one per worker, speaking newline-delimited JSON on stdin and stdout.
//!
//! ```yaml
//! db:
//!   kind: custom
//!   start: redis-server --bind {addr} --port {port} --dir {data_dir}
//!   client: python3 examples/redis-register/client.py
//! ```
//!
//! [`Custom`] is what the test says (typed, unknown keys refused where they
//! are written); `db.rs` runs its commands on the hosts, `client.rs` its
//! client program. The README's "Your own system" is the user's manual.

mod client;
mod db;

use crate::checker::logs::LogPatterns;
use crate::cluster::Cluster;
use crate::system::{Clients, Db, DbError, DeployOptions, Endpoint, System};
use crate::workload::Workload;
use crate::yaml::KeyPath;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The only `kind` there is: it says the map is a custom system (and leaves
/// room for other kinds of described systems).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Custom,
}

/// A custom system as a test describes it (`db: {kind: custom, ...}`).
/// Commands are shell commands run on each host (netns, Docker or SSH,
/// through the same `Remote` as everything else), with [`PLACEHOLDERS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Custom {
    pub kind: Kind,
    /// What derived test names start with (`redis-register-kill`; made a
    /// safe name); `custom` when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Run once per host before the first start (say, `apt-get install -y redis-server`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<String>,
    /// Starts the node. Without `pidfile` or `process` it is one program
    /// and its arguments, run in the foreground as `sh -c 'exec START'`, and
    /// faultline keeps it as a daemon (its output goes to `{log_file}`); with
    /// one of them it may be any command, and may daemonize.
    pub start: String,
    /// Stops the node cleanly; SIGTERM when not given. Either way the node
    /// is SIGKILLed if it still runs after the grace time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<String>,
    /// Where a self-daemonizing `start` writes the node's pid (a path,
    /// placeholders allowed): kill and pause signal that pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pidfile: Option<String>,
    /// The node's process name (as `pgrep -x` matches it) when it writes no
    /// pidfile; only processes in the host's own network namespace count, so
    /// hosts that share a kernel (netns) each find their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// Log files copied into the results folder (`nodes/<node>/<file name>`);
    /// `{log_file}` when not given.
    #[serde(default = "default_logs")]
    pub logs: Vec<String>,
    /// Exits 0 on the node that leads (for the nemesis's `primaries` targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// The port the nodes listen on; the run's port when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The client program: a shell command run on the controller, once per
    /// worker, from faultline's working directory.
    pub client: String,
    /// The workload kinds the client runs.
    #[serde(default = "default_workloads")]
    pub workloads: Vec<String>,
}

fn default_logs() -> Vec<String> {
    vec!["{log_file}".to_string()]
}

fn default_workloads() -> Vec<String> {
    vec!["register".to_string()]
}

/// What commands may say about their node, as `{name}`.
pub const PLACEHOLDERS: &[(&str, &str)] = &[
    ("id", "the node's name (n1, n2, ...)"),
    ("addr", "the host's address on the cluster network"),
    ("port", "the port the node listens on"),
    (
        "peers",
        "the other nodes as name=addr:port, comma-separated",
    ),
    (
        "data_dir",
        "a directory for the node's data, made empty at deploy",
    ),
    (
        "log_file",
        "the node's log file (a foreground start's output goes there)",
    ),
];

/// The values of [`PLACEHOLDERS`] for one node.
#[derive(Debug, Clone)]
pub struct Vars {
    pub id: String,
    pub addr: String,
    pub port: u16,
    pub peers: String,
    pub data_dir: String,
    pub log_file: String,
}

impl Vars {
    fn get(&self, name: &str) -> Option<String> {
        Some(match name {
            "id" => self.id.clone(),
            "addr" => self.addr.clone(),
            "port" => self.port.to_string(),
            "peers" => self.peers.clone(),
            "data_dir" => self.data_dir.clone(),
            "log_file" => self.log_file.clone(),
            _ => return None,
        })
    }
}

/// The placeholders in `template`: `{` lowercase letters and `_` `}`. Other
/// braces are the shell's or a program's (`${HOME}`, awk's `{print $1}`),
/// and left as they are. Returns each one's byte range and name.
fn placeholders(template: &str) -> Vec<(std::ops::Range<usize>, &str)> {
    let bytes = template.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'{' && (i == 0 || bytes[i - 1] != b'$') {
            let name_len = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_lowercase() || **b == b'_')
                .count();
            let end = i + 1 + name_len;
            if name_len > 0 && bytes.get(end) == Some(&b'}') {
                found.push((i..end + 1, &template[i + 1..end]));
                i = end + 1;
                continue;
            }
        }
        i += 1;
    }
    found
}

/// `template` with every placeholder replaced by its value (as is: the
/// values are names, addresses and faultline's own paths).
pub fn expand(template: &str, vars: &Vars) -> String {
    let mut out = String::with_capacity(template.len());
    let mut at = 0;
    for (range, name) in placeholders(template) {
        out.push_str(&template[at..range.start]);
        // Checked when the test was resolved; an unknown one stays as written.
        out.push_str(
            &vars
                .get(name)
                .unwrap_or_else(|| template[range.clone()].to_string()),
        );
        at = range.end;
    }
    out.push_str(&template[at..]);
    out
}

/// The first unknown placeholder in `template`, with the known ones listed.
fn check_placeholders(template: &str) -> Result<(), String> {
    for (_, name) in placeholders(template) {
        if !PLACEHOLDERS.iter().any(|(n, _)| *n == name) {
            let known: Vec<String> = PLACEHOLDERS
                .iter()
                .map(|(n, _)| format!("{{{n}}}"))
                .collect();
            return Err(format!(
                "unknown placeholder {{{name}}}: expected one of {}",
                known.join(", ")
            ));
        }
    }
    Ok(())
}

impl Custom {
    /// What derived test names start with.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| "custom".to_string())
    }

    /// What types cannot say: placeholders, empty commands, the workload
    /// kinds, pidfile and process together. The error's place is inside the
    /// `db` map (`start`, `workloads[1]`).
    pub fn validate(&self) -> Result<(), (KeyPath, String)> {
        let root = KeyPath::root();
        let commands = [
            ("install", self.install.as_ref()),
            ("start", Some(&self.start)),
            ("stop", self.stop.as_ref()),
            ("pidfile", self.pidfile.as_ref()),
            ("leader", self.leader.as_ref()),
        ];
        for (key, command) in commands {
            let Some(command) = command else { continue };
            if command.trim().is_empty() {
                return Err((root.key(key), format!("`{key}` is empty")));
            }
            check_placeholders(command).map_err(|m| (root.key(key), m))?;
        }
        for (i, log) in self.logs.iter().enumerate() {
            check_placeholders(log).map_err(|m| (root.key("logs").index(i), m))?;
        }
        if self.client.trim().is_empty() {
            return Err((root.key("client"), "`client` is empty".into()));
        }
        if let Some(process) = &self.process {
            // pgrep -x matches the kernel's 15-character comm.
            let ok = !process.is_empty()
                && process.len() <= 15
                && process
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !ok {
                return Err((
                    root.key("process"),
                    "`process` is a process name as `pgrep -x` matches it: 1 to 15 letters, digits, `-`, `_` or `.`".into(),
                ));
            }
            if self.pidfile.is_some() {
                return Err((
                    root.key("process"),
                    "give `pidfile` or `process`, not both".into(),
                ));
            }
        }
        if self.port == Some(0) {
            return Err((root.key("port"), "`port` must be 1 to 65535".into()));
        }
        if self.workloads.is_empty() {
            return Err((root.key("workloads"), "`workloads` is empty".into()));
        }
        for (i, w) in self.workloads.iter().enumerate() {
            if !Workload::NAMES.contains(&w.as_str()) {
                return Err((
                    root.key("workloads").index(i),
                    format!(
                        "unknown workload kind \"{}\": expected one of {}",
                        crate::history::text::excerpt(w),
                        Workload::NAMES.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl System for Custom {
    fn name(&self) -> &'static str {
        "custom"
    }

    fn workloads(&self) -> Vec<&'static str> {
        Workload::NAMES
            .iter()
            .copied()
            .filter(|n| self.workloads.iter().any(|w| w == n))
            .collect()
    }

    fn bugs(&self) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }

    /// Nothing is known of what its nodes log.
    fn log_patterns(&self) -> LogPatterns {
        LogPatterns {
            fatal: Vec::new(),
            leader: None,
            notable: Vec::new(),
        }
    }

    fn start(&self, cluster: &Cluster, options: &DeployOptions) -> Result<Arc<dyn Db>, DbError> {
        Ok(Arc::new(db::start(cluster, self, options)?))
    }

    fn attach(&self, cluster: &Cluster, options: &DeployOptions) -> Result<Arc<dyn Db>, DbError> {
        Ok(Arc::new(db::CustomDb::attach(cluster, self, options)))
    }

    fn clients(
        &self,
        endpoints: Vec<Endpoint>,
        _connect_timeout: Duration,
        _: &DeployOptions,
    ) -> Arc<dyn Clients> {
        Arc::new(client::Programs::new(&self.client, endpoints))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            id: "n1".into(),
            addr: "10.0.0.1".into(),
            port: 7000,
            peers: "n2=10.0.0.2:7000".into(),
            data_dir: "/d".into(),
            log_file: "/l".into(),
        }
    }

    #[test]
    fn placeholders_are_replaced_and_other_braces_left_alone() {
        assert_eq!(
            expand(
                "srv --id {id} --listen {addr}:{port} --peers {peers} --dir {data_dir} >{log_file}",
                &vars()
            ),
            "srv --id n1 --listen 10.0.0.1:7000 --peers n2=10.0.0.2:7000 --dir /d >/l"
        );
        let shell = "echo ${HOME} | awk '{print $1}' {}";
        assert_eq!(expand(shell, &vars()), shell);
        assert_eq!(check_placeholders(shell), Ok(()));
        assert_eq!(
            check_placeholders("srv --dir {datadir}"),
            Err("unknown placeholder {datadir}: expected one of {id}, {addr}, {port}, {peers}, {data_dir}, {log_file}".into())
        );
    }
}
