//! A local cluster of network namespaces.
//!
//! ```text
//!  controller (root namespace)            fl-NAME-br (bridge namespace)         fl-NAME-n1 ...
//!  flAABB 10.a.b.1/24  <── veth ──>  ctl ─ br0 ─ v1  <── veth ──>  eth0 10.a.b.11/24
//!                                              └─ v2  <── veth ──>  eth0 10.a.b.12/24 (fl-NAME-n2)
//! ```
//!
//! The bridge lives in its own namespace, so the controller's firewall (and
//! Docker's FORWARD DROP policy) never sees cluster traffic. Each host also
//! has persistent mount and UTS namespaces (files in /run/faultline/NAME/):
//! its own hostname, a private /run, and its own /opt and /root (bound from
//! `<clusters dir>/NAME/hosts/nI/`), so node data, pidfiles and sshd state
//! never mix and root's login files (.bashrc) stay out of SSH sessions.

use super::{ClusterError, HostState, Resource, State, Subnet, file_err};
use crate::control::process::{CommandRemote, run_local};
use crate::control::{RemoteError, shell_quote};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Where persistent namespace files of every netns cluster live.
const NS_ROOT: &str = "/run/faultline";

fn ns_dir(state: &State) -> PathBuf {
    Path::new(NS_ROOT).join(&state.name)
}

fn bridge_ns(name: &str) -> String {
    format!("fl-{name}-br")
}

/// The per-host directory on the controller: `opt/` is the host's /opt, `home/` its /root.
pub(super) fn host_dir(state: &State, host: &str) -> PathBuf {
    state.dir().join("hosts").join(host)
}

pub(super) fn remote(state: &State, host: &HostState, netns: &str) -> CommandRemote {
    let dir = ns_dir(state);
    crate::control::netns::host(
        &host.name,
        netns,
        &dir.join(format!("{}.mnt", host.name)),
        &dir.join(format!("{}.uts", host.name)),
        &host_dir(state, &host.name).join("opt"),
    )
}

/// Makes the namespaces, the bridge and the hosts (`sshlab` adds sshd on top).
pub(super) fn up(state: &mut State, net: &Subnet, nodes: usize) -> Result<(), ClusterError> {
    let name = state.name.clone();
    let br = bridge_ns(&name);
    let root_veth = net.tag();
    state.hosts = (1..=nodes)
        .map(|i| HostState {
            name: format!("n{i}"),
            addr: net.node_addr(i).into(),
            netns: Some(format!("fl-{name}-n{i}")),
            container: None,
        })
        .collect();
    let ns_dir = ns_dir(state);
    // Recorded before anything is made, so a crash half-way is still cleaned up.
    state.resources.push(Resource::NsDir {
        path: ns_dir.clone(),
    });
    state.resources.push(Resource::Netns { name: br.clone() });
    for h in &state.hosts {
        state.resources.push(Resource::Netns {
            name: h.netns.clone().expect("set above"),
        });
    }
    state.record(Resource::Veth {
        name: root_veth.clone(),
    })?;

    make_ns_dir(&ns_dir)?;
    let mut root = String::new();
    for ns in std::iter::once(&br).chain(state.hosts.iter().filter_map(|h| h.netns.as_ref())) {
        root += &format!("netns add {ns}\n");
    }
    root += &format!("link add {root_veth} type veth peer name ctl netns {br}\n");
    root += &format!(
        "addr add {}/24 dev {root_veth}\nlink set {root_veth} up\n",
        state.controller_addr
    );
    ip_batch(None, &root)?;

    let mut bridge = String::from(
        "link add br0 type bridge\nlink set br0 up\nlink set ctl master br0\nlink set ctl up\nlink set lo up\n",
    );
    for (i, h) in state.hosts.iter().enumerate() {
        let ns = h.netns.as_ref().expect("set above");
        bridge += &format!(
            "link add v{} type veth peer name eth0 netns {ns}\nlink set v{} master br0\nlink set v{} up\n",
            i + 1,
            i + 1,
            i + 1
        );
    }
    ip_batch(Some(&br), &bridge)?;

    let made = crate::fan_out::on_every(&state.hosts, |h| make_host(state, h));
    for (h, made) in state.hosts.iter().zip(made) {
        made.unwrap_or_else(|p| {
            let detail = format!("{}: host setup panicked: {p}", h.name);
            Err(ClusterError::Setup(detail))
        })?;
    }
    Ok(())
}

/// /run/faultline/NAME as a private bind mount of itself: persistent
/// namespace files may only be bound on a mount that does not propagate.
fn make_ns_dir(dir: &Path) -> Result<(), ClusterError> {
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let d = dir.to_string_lossy();
    run_local("mount", &["--bind", &d, &d], None, STEP_TIMEOUT)?;
    run_local("mount", &["--make-private", &d], None, STEP_TIMEOUT)?;
    Ok(())
}

/// Runs `ip [-n NS] -batch -` with `commands`, one per line.
fn ip_batch(netns: Option<&str>, commands: &str) -> Result<(), ClusterError> {
    let mut args = Vec::new();
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    args.extend(["-batch", "-"]);
    run_local("ip", &args, Some(commands.as_bytes()), STEP_TIMEOUT)?;
    Ok(())
}

/// Addresses the host's eth0 and makes its mount and UTS namespaces.
fn make_host(state: &State, host: &HostState) -> Result<(), ClusterError> {
    let dir = host_dir(state, &host.name);
    for sub in ["opt/faultline", "home"] {
        let path = dir.join(sub);
        std::fs::create_dir_all(&path).map_err(|e| file_err(&path, e))?;
    }
    let ns = ns_dir(state);
    let (mnt, uts) = (
        ns.join(format!("{}.mnt", host.name)),
        ns.join(format!("{}.uts", host.name)),
    );
    for f in [&mnt, &uts] {
        std::fs::File::create(f).map_err(|e| file_err(f, e))?;
    }
    let q = |p: &Path| shell_quote(&p.to_string_lossy());
    // Inside the new namespaces: unmount what /run held (other clusters'
    // namespace files, /run/netns) so this host keeps no reference to them,
    // then give it a fresh /run, its own /opt and /root, and a /sys that
    // shows its own interfaces (as `ip netns exec` does). Only the outermost
    // mounts are named, in one umount: a lazy unmount takes what is mounted
    // under it too, and one umount per namespace file made a host cost
    // 0.6 s more with 12 clusters up (and 30 s, a timeout, at 16 jobs).
    let script = format!(
        "set -e\n\
         hostname {name}\n\
         ip addr add {addr}/24 dev eth0\n\
         ip link set eth0 up\n\
         ip link set lo up\n\
         findmnt -rn -o TARGET | grep '^/run/' | sort | awk 'p == \"\" || index($0, p \"/\") != 1 {{ print; p = $0 }}' | xargs -r umount -l 2>/dev/null || true\n\
         mount -t tmpfs -o mode=0755,size=64m faultline-run /run\n\
         mount --bind {opt} /opt\n\
         mount --bind {home} /root\n\
         umount -l /sys && mount -t sysfs faultline-sys /sys\n",
        name = host.name,
        addr = host.addr,
        opt = q(&dir.join("opt")),
        home = q(&dir.join("home")),
    );
    let netns = format!(
        "--net=/run/netns/{}",
        host.netns.as_deref().unwrap_or_default()
    );
    let (mnt_arg, uts_arg) = (
        format!("--mount={}", mnt.display()),
        format!("--uts={}", uts.display()),
    );
    let args = [
        "nsenter",
        &netns,
        "unshare",
        &mnt_arg,
        &uts_arg,
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ];
    unshare_pinned_if_refused(&args)
        .map_err(|e| ClusterError::Setup(format!("host {}: {e}", host.name)))?;
    Ok(())
}

/// Runs `args` (nsenter ... unshare --mount=FILE ...), and again pinned to
/// each CPU this process may use in turn while binding the new mount
/// namespace to FILE is refused with EINVAL. The kernel refuses to bind a
/// mount namespace that is not newer than the binder's own (`mnt_ns_loop`,
/// which compares namespace ids); since Linux 6.18 those ids come from
/// per-CPU batches, so a namespace made on another CPU than the
/// container's own may look older. On a machine's initial namespace (id 1)
/// the first try succeeds; in a container (a pod), the CPU its namespace
/// was made on does. At most one try per CPU.
fn unshare_pinned_if_refused(args: &[&str]) -> Result<String, RemoteError> {
    let refused = |e: &RemoteError| {
        matches!(e, RemoteError::Failed { stderr, .. }
            if stderr.contains("/ns/mnt on") && stderr.contains("Invalid argument"))
    };
    let first = run_local(args[0], &args[1..], None, STEP_TIMEOUT);
    let mut last = match first {
        Err(e) if refused(&e) => e,
        other => return other,
    };
    for cpu in usable_cpus() {
        let cpu = cpu.to_string();
        let pinned: Vec<&str> = ["-c", cpu.as_str()]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        match run_local("taskset", &pinned, None, STEP_TIMEOUT) {
            Err(e) if refused(&e) => last = e,
            other => return other,
        }
    }
    Err(last)
}

/// The CPUs this process may run on (its affinity mask).
fn usable_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity
    // fills at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    if unsafe { libc::sched_getaffinity(0, size, &mut set) } != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// Removes what `up` recorded: kills every process in the cluster's
/// namespaces, deletes the controller's veth and the bridge's veths
/// explicitly (namespace deletion is asynchronous), unbinds the namespace
/// files, deletes the namespaces. Each step tolerates what is already gone.
pub(super) fn down(state: &State) -> Result<(), ClusterError> {
    let mut netns = Vec::new();
    let mut veths = Vec::new();
    let mut ns_dirs = Vec::new();
    for r in &state.resources {
        match r {
            Resource::Netns { name } => netns.push(name.clone()),
            Resource::Veth { name } => veths.push(name.clone()),
            Resource::NsDir { path } => ns_dirs.push(path.clone()),
            _ => {}
        }
    }
    kill_processes_in(&netns);
    let mut first_error: Option<ClusterError> = None;
    for veth in &veths {
        if let Err(e) = run_local("ip", &["link", "del", veth], None, STEP_TIMEOUT)
            && !is_gone(&e)
        {
            first_error.get_or_insert(e.into());
        }
    }
    let br = bridge_ns(&state.name);
    if netns.contains(&br) && Path::new("/run/netns").join(&br).exists() {
        let dels: String = (1..=state.hosts.len())
            .map(|i| format!("link del v{i}\n"))
            .collect();
        let _ = run_local(
            "ip",
            &["-n", &br, "-force", "-batch", "-"],
            Some(dels.as_bytes()),
            STEP_TIMEOUT,
        );
    }
    for dir in &ns_dirs {
        if let Err(e) = remove_ns_dir(dir) {
            first_error.get_or_insert(e);
        }
    }
    let existing: String = netns
        .iter()
        .filter(|ns| Path::new("/run/netns").join(ns).exists())
        .map(|ns| format!("netns del {ns}\n"))
        .collect();
    if !existing.is_empty()
        && let Err(e) = run_local(
            "ip",
            &["-force", "-batch", "-"],
            Some(existing.as_bytes()),
            STEP_TIMEOUT,
        )
    {
        first_error.get_or_insert(e.into());
    }
    first_error.map_or(Ok(()), Err)
}

fn is_gone(e: &RemoteError) -> bool {
    matches!(e, RemoteError::Failed { stderr, .. } if stderr.contains("Cannot find device") || stderr.contains("does not exist"))
}

/// SIGKILLs every process whose network namespace is one of `netns`
/// (sshd, nodes, anything started in the hosts), found through /proc.
fn kill_processes_in(netns: &[String]) {
    let inodes: Vec<u64> = netns
        .iter()
        .filter_map(|ns| std::fs::metadata(Path::new("/run/netns").join(ns)).ok())
        .map(|m| m.ino())
        .collect();
    if inodes.is_empty() {
        return;
    }
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(meta) = std::fs::metadata(entry.path().join("ns/net")) else {
            continue;
        };
        if inodes.contains(&meta.ino()) {
            // SAFETY: kill(2) with a pid read from /proc; no memory involved.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn remove_ns_dir(dir: &Path) -> Result<(), ClusterError> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)
        .map_err(|e| file_err(dir, e))?
        .flatten()
    {
        let path = entry.path();
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|e| file_err(&path, e))?;
        // A file may hold a namespace bound twice (an unshare tried again
        // after its mount namespace was refused had bound the UTS one):
        // unmount until nothing is left, a few times at most.
        // SAFETY: umount2 with a NUL-terminated path; MNT_DETACH because a
        // dying process may still hold the namespace.
        for _ in 0..8 {
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
                break;
            }
        }
        let _ = std::fs::remove_file(&path);
    }
    let c =
        std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|e| file_err(dir, e))?;
    // SAFETY: as above.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(file_err(dir, e)),
        _ => Ok(()),
    }
}

/// Runs `f` on a fresh thread that has entered the network namespace `netns`
/// (sockets it makes stay in that namespace). For tests and checks that
/// need a real socket inside a host, e.g. a connectivity matrix.
pub fn run_in<T: Send + 'static>(
    netns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(Path::new("/run/netns").join(netns))?;
    std::thread::spawn(move || {
        // SAFETY: setns(2) on this thread only, with a namespace fd we own.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(f())
    })
    .join()
    .map_err(|_| std::io::Error::other("the function panicked"))?
}
