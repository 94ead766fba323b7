//! Hosts that are network namespaces on the controller's machine.
//!
//! A plain namespace is entered like `ip netns exec NS`; a host made by
//! `faultline cluster up --backend netns` also has its own mount and UTS
//! namespaces (private /run, its own /opt/faultline, /root and hostname),
//! bound to files, and is entered with `nsenter` into all three, so every
//! command sees the same host. What is not here: making the namespaces
//! (that is `cluster::netns`).

use super::Packages;
use super::process::CommandRemote;
use std::path::Path;

/// A host that is only a network namespace: `ip netns exec NS sh -c ...`.
pub fn plain(name: &str, netns: &str) -> CommandRemote {
    let prefix = ["ip", "netns", "exec", netns].map(String::from).to_vec();
    CommandRemote::new(name, prefix).with_packages(Packages::ThisMachine)
}

/// A host made of a network namespace plus persistent mount and UTS
/// namespaces bound at `mnt_ns` and `uts_ns`, whose /opt is this machine's
/// `opt` (bound there), so uploads to it are local.
pub fn host(name: &str, netns: &str, mnt_ns: &Path, uts_ns: &Path, opt: &Path) -> CommandRemote {
    let prefix = vec![
        "nsenter".to_string(),
        format!("--net=/run/netns/{netns}"),
        format!("--mount={}", mnt_ns.display()),
        format!("--uts={}", uts_ns.display()),
        "--".to_string(),
    ];
    CommandRemote::new(name, prefix)
        .with_packages(Packages::ThisMachine)
        .with_shared_dir("/opt/", opt.to_path_buf())
        .with_our_pids()
}
