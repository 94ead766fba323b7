//! SSH labs: the inventory file (hosts.yaml) that names the hosts and how to
//! reach them, and turning it into a [`Cluster`] of [`SshRemote`]s.
//!
//! ```yaml
//! name: lab               # optional; defaults to the file's directory name
//! user: root              # defaults for every host ...
//! port: 22
//! key: id_ed25519         # private key, relative to this file; omit to use the SSH agent
//! known_hosts: known_hosts   # default ~/.ssh/known_hosts
//! host_key: strict        # strict | accept-new (record unknown keys; changed keys still fail)
//! sudo: false             # true: run commands with `sudo -n` (non-root user)
//! dir: /opt/faultline     # where faultline keeps its files on the hosts
//! controller: 10.1.2.1    # optional: the controller's address as the hosts see it
//! connect_timeout_ms: 5000
//! hosts:
//!   - name: n1
//!     address: 10.1.2.11  # ... and per host, any of port, user, key, sudo
//! ```

use super::{Backend, Cluster, ClusterError, DEFAULT_HOST_DIR, Host, file_err};
use crate::control::Remote;
use crate::control::ssh::{HostKeyPolicy, SshConfig, SshRemote};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default = "default_user")]
    pub user: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<PathBuf>,
    #[serde(default)]
    pub host_key: HostKeyPolicy,
    #[serde(default)]
    pub sudo: bool,
    #[serde(default = "default_dir")]
    pub dir: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<IpAddr>,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    pub hosts: Vec<InventoryHost>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryHost {
    pub name: String,
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo: Option<bool>,
}

fn default_user() -> String {
    "root".to_string()
}
fn default_port() -> u16 {
    22
}
fn default_dir() -> String {
    DEFAULT_HOST_DIR.to_string()
}
fn default_connect_timeout_ms() -> u64 {
    5000
}

impl Inventory {
    /// Reads and checks hosts.yaml; errors say file:line:column.
    pub fn load(path: &Path) -> Result<Inventory, ClusterError> {
        // Bounded, UTF-8, nesting limited: as every YAML file (crate::yaml).
        let yaml_err = |e: crate::yaml::YamlError| {
            let at = e
                .position
                .map(|(line, column)| format!(":{line}:{column}"))
                .unwrap_or_default();
            ClusterError::File {
                path: PathBuf::from(format!("{}{at}", path.display())),
                detail: e.message,
            }
        };
        let text = crate::yaml::read_file(path).map_err(yaml_err)?;
        let inv: Inventory = crate::yaml::from_str(&text).map_err(yaml_err)?;
        inv.validate().map_err(|detail| file_err(path, detail))?;
        Ok(inv)
    }

    fn validate(&self) -> Result<(), String> {
        if self.hosts.is_empty() {
            return Err("`hosts` is empty: list at least one host".into());
        }
        let mut names = std::collections::HashSet::new();
        for h in &self.hosts {
            if !names.insert(&h.name) {
                return Err(format!("host name {:?} appears twice", h.name));
            }
        }
        if !self.dir.starts_with('/') {
            return Err(format!(
                "`dir` must be an absolute path, not {:?}",
                self.dir
            ));
        }
        Ok(())
    }

    pub fn save(&self, path: &Path) -> Result<(), ClusterError> {
        let text = serde_yaml_ng::to_string(self).map_err(|e| file_err(path, e))?;
        std::fs::write(path, text).map_err(|e| file_err(path, e))
    }

    /// The SSH settings of every host, paths resolved against `base` (the
    /// inventory's directory).
    pub fn ssh_configs(&self, base: &Path) -> Vec<SshConfig> {
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let known_hosts = self.known_hosts.as_deref().map(resolve).unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".ssh/known_hosts")
        });
        self.hosts
            .iter()
            .map(|h| SshConfig {
                name: h.name.clone(),
                address: h.address.clone(),
                port: h.port.unwrap_or(self.port),
                user: h.user.clone().unwrap_or_else(|| self.user.clone()),
                key: h.key.as_deref().or(self.key.as_deref()).map(resolve),
                known_hosts: known_hosts.clone(),
                host_key: self.host_key,
                sudo: h.sudo.unwrap_or(self.sudo),
                connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            })
            .collect()
    }
}

/// The SSH lab described by the inventory at `path`. Connects to the first
/// host only when the inventory does not say the controller's address.
pub fn open(path: &Path) -> Result<Cluster, ClusterError> {
    let inv = Inventory::load(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let name = inv.name.clone().unwrap_or_else(|| {
        std::fs::canonicalize(base)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "lab".into())
    });
    let mut hosts = Vec::new();
    let mut first: Option<Arc<SshRemote>> = None;
    for config in inv.ssh_configs(base) {
        let addr = (config.address.as_str(), config.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .map(|a| a.ip())
            .ok_or_else(|| {
                file_err(
                    path,
                    format!(
                        "host {}: cannot resolve address {:?}",
                        config.name, config.address
                    ),
                )
            })?;
        let remote = Arc::new(SshRemote::new(config));
        first.get_or_insert_with(|| remote.clone());
        hosts.push(Host {
            name: remote.name().to_string(),
            addr,
            remote,
        });
    }
    let controller_addr = match (inv.controller, first) {
        (Some(addr), _) => addr,
        (None, Some(remote)) => remote.local_addr()?,
        (None, None) => unreachable!("validate() rejects an empty host list"),
    };
    Ok(Cluster {
        name,
        backend: Backend::Ssh,
        hosts,
        controller_addr,
        host_dir: inv.dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inventory_defaults_and_per_host_overrides() {
        let yaml = "key: keys/id\nknown_hosts: kh\nhost_key: accept-new\nhosts:\n  - {name: n1, address: 10.1.1.1}\n  - {name: n2, address: 10.1.1.2, port: 2222, user: ops, sudo: true}\n";
        let inv: Inventory = serde_yaml_ng::from_str(yaml).unwrap();
        inv.validate().unwrap();
        let configs = inv.ssh_configs(Path::new("/lab"));
        assert_eq!(
            (configs[0].port, configs[0].user.as_str(), configs[0].sudo),
            (22, "root", false)
        );
        assert_eq!(
            (configs[1].port, configs[1].user.as_str(), configs[1].sudo),
            (2222, "ops", true)
        );
        assert_eq!(configs[1].key.as_deref(), Some(Path::new("/lab/keys/id")));
        assert_eq!(configs[0].known_hosts, Path::new("/lab/kh"));
        assert_eq!(configs[0].host_key, HostKeyPolicy::AcceptNew);
        assert_eq!(inv.dir, "/opt/faultline");
    }

    #[test]
    fn inventory_errors_name_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.yaml");
        std::fs::write(&path, "hosts:\n  - name: n1\n    adress: 10.0.0.1\n").unwrap();
        let e = Inventory::load(&path).unwrap_err().to_string();
        assert!(e.contains("hosts.yaml:3:") && e.contains("adress"), "{e}");
        std::fs::write(
            &path,
            "hosts:\n  - {name: n1, address: a}\n  - {name: n1, address: b}\n",
        )
        .unwrap();
        let e = Inventory::load(&path).unwrap_err().to_string();
        assert!(e.contains("\"n1\" appears twice"), "{e}");
        std::fs::write(&path, "host_key: lenient\nhosts: []\n").unwrap();
        let e = Inventory::load(&path).unwrap_err().to_string();
        assert!(e.contains("lenient"), "{e}");
    }
}
