//! A local cluster of Docker containers on a user-defined network, built from
//! a node image made here (the engine may have no registry).
//!
//! The node image ([`NODE_IMAGE`], built by `image.rs`) holds the faultline
//! executable, the shared libraries it and the tools need, a shell,
//! coreutils, iproute2 (ip, tc), iptables (nft) with its modules, and
//! libfaketime, fuse3's fusermount3. Containers run `sleep infinity` under
//! Docker's init (which reaps daemonized nodes), with NET_ADMIN so faults
//! can be injected inside them; a cluster made for disk faults
//! (`UpOptions::disk_faults`) also gets /dev/fuse, CAP_SYS_ADMIN (mount(2))
//! and no AppArmor profile (Docker's default one denies mounts), so the lazy
//! file system mounts inside its containers.

use super::image::{self, Recipe, docker};
use super::{ClusterError, HostState, Resource, State, Subnet, UpOptions};
use crate::control::RemoteError;
use std::path::Path;

/// The node image: what a host of the Docker backend runs.
pub const NODE_IMAGE: Recipe = Recipe {
    repo: "faultline-node",
    version: "r5",
    programs: &[PROGRAMS],
    dirs: DIRS,
    cmd: r#"["sleep", "infinity"]"#,
};

/// Programs a host needs (the faults' tools, the nodes' helpers, the systems
/// under test that are single executables), copied in when this machine has
/// them (absolute paths).
pub const PROGRAMS: &[&str] = &[
    "/bin/sh",
    "/bin/bash",
    "/bin/cat",
    "/bin/cp",
    "/bin/mv",
    "/bin/rm",
    "/bin/ln",
    "/bin/ls",
    "/bin/mkdir",
    "/bin/rmdir",
    "/bin/chmod",
    "/bin/chown",
    "/bin/sleep",
    "/bin/echo",
    "/bin/date",
    "/bin/kill",
    "/bin/hostname",
    "/bin/uname",
    "/bin/touch",
    "/bin/grep",
    "/bin/sed",
    "/bin/ps",
    "/usr/bin/env",
    "/usr/bin/id",
    "/usr/bin/head",
    "/usr/bin/tail",
    "/usr/bin/tr",
    "/usr/bin/wc",
    "/usr/bin/sort",
    "/usr/bin/stat",
    "/usr/bin/test",
    "/usr/bin/[",
    "/usr/bin/nohup",
    "/usr/bin/setsid",
    "/usr/bin/timeout",
    "/usr/bin/sha256sum",
    "/usr/bin/dirname",
    "/usr/bin/basename",
    "/usr/bin/realpath",
    "/usr/bin/readlink",
    "/usr/bin/du",
    "/usr/bin/df",
    "/usr/bin/xargs",
    "/usr/bin/find",
    "/usr/bin/pgrep",
    "/usr/bin/pkill",
    "/usr/bin/faketime",
    // Disk faults: fusermount3 (fuse3), and what the heal journal unmounts
    // a dead lazy file system with.
    "/usr/bin/fusermount3",
    "/usr/bin/awk",
    "/usr/bin/umount",
    // Redis and Sentinel (`--db redis`): in Debian both are symlinks to
    // redis-check-rdb, which picks its part by the name it is run as.
    "/usr/bin/redis-server",
    "/usr/bin/redis-sentinel",
    "/sbin/ip",
    "/sbin/tc",
    "/usr/sbin/iptables",
    "/usr/sbin/iptables-save",
    "/usr/sbin/iptables-restore",
    "/usr/sbin/ip6tables",
    "/usr/sbin/xtables-nft-multi",
    // etcd as a system under test (Debian's etcd-server).
    "/usr/bin/etcd",
];

/// Directories copied whole (loadable modules and data files).
pub const DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/xtables",
    "/usr/lib/x86_64-linux-gnu/faketime",
    "/usr/lib/tc",
];

/// What a container needs for the lazy file system: the FUSE device,
/// mount(2) (CAP_SYS_ADMIN), and no AppArmor profile that denies mounts.
const DISK_FAULT_ARGS: &[&str] = &[
    "--device",
    "/dev/fuse",
    "--cap-add",
    "SYS_ADMIN",
    "--security-opt",
    "apparmor=unconfined",
];

pub(super) fn up(state: &mut State, net: &Subnet, opts: &UpOptions) -> Result<(), ClusterError> {
    if opts.disk_faults && !is_char_device(Path::new("/dev/fuse")) {
        return Err(ClusterError::Setup(
            "--disk-faults: this machine has no /dev/fuse to give the containers \
             (load the FUSE module: modprobe fuse)"
                .into(),
        ));
    }
    let (nodes, binary) = (opts.nodes, opts.binary.as_path());
    let name = state.name.clone();
    let network = format!("fl-{name}");
    state.hosts = (1..=nodes)
        .map(|i| HostState {
            name: format!("n{i}"),
            addr: net.node_addr(i).into(),
            netns: None,
            container: Some(format!("fl-{name}-n{i}")),
        })
        .collect();
    state.resources.push(Resource::DockerNetwork {
        name: network.clone(),
    });
    for h in &state.hosts {
        state.resources.push(Resource::DockerContainer {
            name: h.container.clone().expect("set above"),
        });
    }
    state.save()?;
    let image = image::ensure(&NODE_IMAGE, binary)?;
    let label = format!("faultline.cluster={name}");
    let subnet = state.subnet.clone();
    let gateway = state.controller_addr.to_string();
    docker(&[
        "network",
        "create",
        "--driver",
        "bridge",
        "--subnet",
        &subnet,
        "--gateway",
        &gateway,
        "--label",
        &label,
        &network,
    ])?;
    let extra: &[&str] = if opts.disk_faults {
        DISK_FAULT_ARGS
    } else {
        &[]
    };
    let started = crate::fan_out::on_every(&state.hosts, |h| {
        let container = h.container.as_deref().unwrap_or_default();
        let ip = h.addr.to_string();
        let args = [
            "run",
            "-d",
            "--init",
            "--name",
            container,
            "--hostname",
            &h.name,
            "--network",
            &network,
            "--ip",
            &ip,
            "--cap-add",
            "NET_ADMIN",
            "--label",
            &label,
        ];
        let command = [image.as_str(), "sleep", "infinity"];
        let all: Vec<&str> = args.iter().chain(extra).chain(&command).copied().collect();
        docker(&all)
    });
    for (h, started) in state.hosts.iter().zip(started) {
        started.unwrap_or_else(|p| {
            let detail = format!("{}: docker run panicked: {p}", h.name);
            Err(ClusterError::Setup(detail))
        })?;
    }
    Ok(())
}

pub(super) fn down(state: &State) -> Result<(), ClusterError> {
    let mut containers = Vec::new();
    let mut networks = Vec::new();
    for r in &state.resources {
        match r {
            Resource::DockerContainer { name } => containers.push(name.as_str()),
            Resource::DockerNetwork { name } => networks.push(name.as_str()),
            _ => {}
        }
    }
    let mut first_error = None;
    if !containers.is_empty() {
        let args: Vec<&str> = ["rm", "-f"].into_iter().chain(containers).collect();
        if let Err(e) = docker(&args) {
            first_error.get_or_insert(e);
        }
    }
    for network in networks {
        match docker(&["network", "rm", network]) {
            Err(ClusterError::Remote(RemoteError::Failed { stderr, .. }))
                if stderr.contains("not found") => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
            Ok(_) => {}
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn is_char_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_char_device())
}
