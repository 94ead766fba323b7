//! A local cluster of Docker containers on a user-defined network, built from
//! a node image made here (the engine may have no registry).
//!
//! The image is assembled from this machine's own files: the faultline
//! executable (at /opt/faultline/bin/faultline, where deployment puts it, so
//! the upload is skipped), the shared libraries it and the tools need (from
//! `ldd`), a shell, coreutils, iproute2 (ip, tc), iptables (nft) with its
//! modules, and libfaketime; then `tar | docker import`. It is tagged by the
//! executable's checksum and which of those tools this machine has, and built
//! only when that tag is missing. Containers run `sleep infinity` under
//! Docker's init (which reaps daemonized nodes), with NET_ADMIN so faults can
//! be injected inside them.

use super::{ClusterError, HostState, Resource, State, Subnet, file_err};
use crate::control::process::run_local;
use crate::control::{RemoteError, shell_quote};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Bump when the image's contents change for the same executable.
const RECIPE: &str = "r3";
const IMAGE: &str = "faultline-node";
const DOCKER_TIMEOUT: Duration = Duration::from_secs(120);

/// Programs copied into the image when this machine has them (absolute paths).
const PROGRAMS: &[&str] = &[
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
const DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/xtables",
    "/usr/lib/x86_64-linux-gnu/faketime",
    "/usr/lib/tc",
];

pub(super) fn up(
    state: &mut State,
    net: &Subnet,
    nodes: usize,
    binary: &Path,
) -> Result<(), ClusterError> {
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
    let image = ensure_image(binary)?;
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
    let started = crate::fan_out::on_every(&state.hosts, |h| {
        let container = h.container.as_deref().unwrap_or_default();
        let ip = h.addr.to_string();
        docker(&[
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
            &image,
            "sleep",
            "infinity",
        ])
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

fn docker(args: &[&str]) -> Result<String, ClusterError> {
    match run_local("docker", args, None, DOCKER_TIMEOUT) {
        Ok(out) => Ok(out),
        Err(RemoteError::Other { detail, .. }) if detail.contains("cannot start") => {
            Err(ClusterError::Setup(format!(
                "cannot run docker ({detail}); install docker.io and start the engine"
            )))
        }
        // `docker rm -f` of containers that are already gone is success.
        Err(RemoteError::Failed { stderr, .. })
            if args.first() == Some(&"rm")
                && stderr.lines().all(|l| l.contains("No such container")) =>
        {
            Ok(String::new())
        }
        Err(e) => Err(e.into()),
    }
}

/// The node image for `binary`, built if this machine does not have it yet.
pub fn ensure_image(binary: &Path) -> Result<String, ClusterError> {
    let b = binary.to_string_lossy();
    let sum = run_local("sha256sum", &[&b], None, DOCKER_TIMEOUT)?;
    let tag = format!(
        "{IMAGE}:{RECIPE}-{}-{:04x}",
        sum.get(..16).unwrap_or("unknown"),
        tools_present()
    );
    if docker(&["image", "inspect", "--format", "{{.Id}}", &tag]).is_ok() {
        return Ok(tag);
    }
    let rootfs = std::env::temp_dir().join(format!(
        "faultline-image-{}-{}",
        std::process::id(),
        sum.get(..8).unwrap_or("x")
    ));
    let sum = sum.split_whitespace().next().unwrap_or_default();
    let built = build_rootfs(&rootfs, binary, sum).and_then(|()| {
        let script = format!(
            "tar -C {} -cf - . | docker import --change 'CMD [\"sleep\", \"infinity\"]' - {tag}",
            shell_quote(&rootfs.to_string_lossy())
        );
        run_local("sh", &["-c", &script], None, DOCKER_TIMEOUT).map_err(ClusterError::from)
    });
    let _ = std::fs::remove_dir_all(&rootfs);
    built.map(|_| tag)
}

/// Which of [`PROGRAMS`] and [`DIRS`] this machine has, folded into a short
/// number for the image tag: installing a tool later (faketime, say) makes a
/// new image instead of reusing one built without it.
fn tools_present() -> u16 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in PROGRAMS.iter().chain(DIRS) {
        (*p, Path::new(p).exists()).hash(&mut h);
    }
    h.finish() as u16
}

/// Assembles the image's root filesystem in `root` (see the module doc);
/// `sum` is the executable's sha256, recorded as `db::install` does.
fn build_rootfs(root: &Path, binary: &Path, sum: &str) -> Result<(), ClusterError> {
    let _ = std::fs::remove_dir_all(root);
    for dir in [
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "usr/lib64",
        "etc",
        "tmp",
        "root",
        "run",
        "proc",
        "sys",
        "dev",
        "opt/faultline/bin",
        "var/tmp",
    ] {
        mkdir(&root.join(dir))?;
    }
    // Debian's merged /usr: /bin, /sbin, /lib and /lib64 point into /usr.
    for (link, target) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        symlink(target, &root.join(link))?;
    }
    let mut files: BTreeSet<PathBuf> = PROGRAMS
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect();
    for dir in DIRS {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            files.insert(entry.path());
        }
    }
    let mut libs = BTreeSet::new();
    for f in files.iter().chain(std::iter::once(&binary.to_path_buf())) {
        libs.extend(shared_libs(f));
    }
    for f in files.iter().chain(&libs) {
        copy_in(root, f)?;
    }
    let target = root.join("opt/faultline/bin/faultline");
    std::fs::copy(binary, &target).map_err(|e| file_err(&target, e))?;
    write(
        &root.join("opt/faultline/bin/faultline.sha256"),
        &format!("{sum}\n"),
    )?;
    write(
        &root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    write(&root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
        .map_err(|e| file_err(&root.join("tmp"), e))
}

/// The shared libraries `file` loads, as `ldd` resolves them here (nothing
/// for static files and non-ELF files).
fn shared_libs(file: &Path) -> Vec<PathBuf> {
    let Ok(out) = std::process::Command::new("ldd").arg(file).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            line.split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(PathBuf::from)
        })
        .filter(|p| p.exists())
        .collect()
}

/// Copies the file behind `path` to the same canonical path under `root`,
/// and recreates `path`'s own name as a symlink when it differs (so both
/// /usr/bin/sh and /usr/bin/dash exist, and /lib64/ld-linux... resolves).
fn copy_in(root: &Path, path: &Path) -> Result<(), ClusterError> {
    let canonical = std::fs::canonicalize(path).map_err(|e| file_err(path, e))?;
    let dest = root.join(canonical.strip_prefix("/").unwrap_or(&canonical));
    if let Some(parent) = dest.parent() {
        mkdir(parent)?;
    }
    if !dest.exists() {
        std::fs::copy(&canonical, &dest).map_err(|e| file_err(&dest, e))?;
    }
    let parent = path
        .parent()
        .and_then(|p| std::fs::canonicalize(p).ok())
        .unwrap_or_else(|| PathBuf::from("/"));
    let named = parent.join(path.file_name().unwrap_or_default());
    if named != canonical {
        let link = root.join(named.strip_prefix("/").unwrap_or(&named));
        if let Some(parent) = link.parent() {
            mkdir(parent)?;
        }
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(&canonical.to_string_lossy(), &link)?;
        }
    }
    Ok(())
}

fn mkdir(path: &Path) -> Result<(), ClusterError> {
    std::fs::create_dir_all(path).map_err(|e| file_err(path, e))
}

fn symlink(target: &str, link: &Path) -> Result<(), ClusterError> {
    std::os::unix::fs::symlink(target, link).map_err(|e| file_err(link, e))
}

fn write(path: &Path, text: &str) -> Result<(), ClusterError> {
    std::fs::write(path, text).map_err(|e| file_err(path, e))
}
