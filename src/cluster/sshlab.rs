//! `cluster up --backend netns --ssh`: an sshd in every host, so the netns
//! cluster is also a real SSH lab (this is how the SSH path is tested).
//!
//! Generated per cluster: a client key (`id_ed25519`), one host key per host,
//! `known_hosts` with every host's key, and `hosts.yaml` (see
//! [`super::inventory`]). Each host's /root is its own directory holding
//! only `.ssh/authorized_keys`, so an SSH login runs no .bashrc and prints
//! nothing but what the command prints.

use super::inventory::{Inventory, InventoryHost};
use super::{ClusterError, State, file_err, netns};
use crate::control::process::run_local;
use crate::control::ssh::HostKeyPolicy;
use crate::control::{Remote, shell_quote};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";
const KEYGEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long sshd may take to start listening.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn up(state: &mut State) -> Result<(), ClusterError> {
    if !Path::new(SSHD).exists() {
        return Err(ClusterError::Setup(format!(
            "{SSHD} is missing: install openssh-server (apt-get install openssh-server)"
        )));
    }
    let dir = state.dir();
    let client_key = dir.join("id_ed25519");
    keygen(&client_key, &format!("faultline-{}", state.name))?;
    let client_pub = read(&client_key.with_extension("pub"))?;

    let host_keys = crate::fan_out::on_every(&state.hosts, |h| {
        start_sshd(state, &h.name, &h.addr.to_string(), &client_pub)
    });
    let host_keys = state
        .hosts
        .iter()
        .zip(host_keys)
        .map(|(h, key)| {
            key.unwrap_or_else(|p| {
                let detail = format!("{}: sshd setup panicked: {p}", h.name);
                Err(ClusterError::Setup(detail))
            })
        })
        .collect::<Result<Vec<String>, _>>()?;
    let known: String = state
        .hosts
        .iter()
        .zip(&host_keys)
        .map(|(h, key)| format!("{} {}\n", h.addr, key.trim()))
        .collect();
    let known_hosts = dir.join("known_hosts");
    std::fs::write(&known_hosts, known).map_err(|e| file_err(&known_hosts, e))?;

    for h in &state.hosts {
        wait_listening(&h.name, SocketAddr::new(h.addr, 22))?;
    }
    let inventory = Inventory {
        name: Some(state.name.clone()),
        user: "root".into(),
        port: 22,
        key: Some(client_key),
        known_hosts: Some(known_hosts),
        host_key: HostKeyPolicy::Strict,
        sudo: false,
        dir: super::DEFAULT_HOST_DIR.into(),
        controller: Some(state.controller_addr),
        connect_timeout_ms: 5000,
        hosts: state
            .hosts
            .iter()
            .map(|h| InventoryHost {
                name: h.name.clone(),
                address: h.addr.to_string(),
                port: None,
                user: None,
                key: None,
                sudo: None,
            })
            .collect(),
    };
    let path = dir.join("hosts.yaml");
    inventory.save(&path)?;
    state.inventory = Some(path);
    state.save()
}

/// Writes the host's keys and sshd_config, starts sshd inside the host, and
/// returns its public host key line.
fn start_sshd(
    state: &State,
    host: &str,
    addr: &str,
    client_pub: &str,
) -> Result<String, ClusterError> {
    let hdir = netns::host_dir(state, host);
    let ssh_dir = hdir.join("ssh");
    std::fs::create_dir_all(&ssh_dir).map_err(|e| file_err(&ssh_dir, e))?;
    let host_key = ssh_dir.join("ssh_host_ed25519_key");
    keygen(&host_key, host)?;
    let config = ssh_dir.join("sshd_config");
    let text = format!(
        "# written by faultline cluster up --ssh\n\
         ListenAddress {addr}:22\n\
         HostKey {key}\n\
         PidFile /run/sshd.pid\n\
         AuthorizedKeysFile .ssh/authorized_keys\n\
         PermitRootLogin prohibit-password\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         PermitUserEnvironment no\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         StrictModes no\n\
         MaxStartups 100\n\
         MaxSessions 100\n\
         LogLevel ERROR\n\
         Subsystem sftp internal-sftp\n",
        key = host_key.display()
    );
    std::fs::write(&config, text).map_err(|e| file_err(&config, e))?;
    // The host's /root (see netns.rs): only authorized_keys, no dotfiles.
    let dot_ssh = hdir.join("home/.ssh");
    std::fs::create_dir_all(&dot_ssh).map_err(|e| file_err(&dot_ssh, e))?;
    let authorized = dot_ssh.join("authorized_keys");
    std::fs::write(&authorized, client_pub).map_err(|e| file_err(&authorized, e))?;
    let h = state
        .hosts
        .iter()
        .find(|h| h.name == host)
        .expect("host of this state");
    let remote = netns::remote(state, h, h.netns.as_deref().unwrap_or_default());
    let log = ssh_dir.join("sshd.log");
    let command = format!(
        "mkdir -p /run/sshd && chmod 0755 /run/sshd && chmod 0700 /root/.ssh && {SSHD} -f {} -E {}",
        shell_quote(&config.to_string_lossy()),
        shell_quote(&log.to_string_lossy())
    );
    remote.run(&command, Duration::from_secs(30))?;
    read(&host_key.with_extension("pub"))
}

fn keygen(path: &Path, comment: &str) -> Result<(), ClusterError> {
    let p = path.to_string_lossy();
    run_local(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", &p],
        None,
        KEYGEN_TIMEOUT,
    )?;
    Ok(())
}

fn read(path: &Path) -> Result<String, ClusterError> {
    std::fs::read_to_string(path).map_err(|e| file_err(path, e))
}

fn wait_listening(host: &str, addr: SocketAddr) -> Result<(), ClusterError> {
    let deadline = Instant::now() + LISTEN_TIMEOUT;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(ClusterError::Setup(format!(
                "{host}: sshd does not listen on {addr} after {} s",
                LISTEN_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
