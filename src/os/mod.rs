//! Preparing hosts: checks that each host has what faults and nodes need
//! (iptables, iproute2's ip and tc, libfaketime, a writable data directory)
//! and, as root on Debian/Ubuntu, installs missing packages with apt-get, as
//! Jepsen does. With `install: false` it fails with a message listing what is
//! missing on which host. What is not here: deploying nodes (`db`).

use crate::control::process::CommandRemote;
use crate::control::{Packages, Remote, RemoteError, on_all, shell_quote};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// apt-get may download; bound it, generously.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);

/// Where distributions put libfaketime's preload library.
pub const LIBFAKETIME_PATHS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/lib64/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
];

/// One thing a host must have.
#[derive(Debug, Clone)]
pub struct Requirement {
    /// What it is, as shown to the user.
    pub what: String,
    /// A shell command that exits 0 when the host has it.
    pub check: String,
    /// The Debian/Ubuntu package that provides it; `None` when no package can.
    pub package: Option<String>,
}

impl Requirement {
    /// A program found on the PATH, from `package`.
    pub fn tool(name: &str, package: &str) -> Self {
        Requirement {
            what: name.into(),
            check: format!("command -v {name}"),
            package: Some(package.into()),
        }
    }
}

/// What [`fuse_requirements`] calls the FUSE device and the right to mount
/// it: no package gives a Docker container either.
pub const FUSE_DEVICE: &str = "/dev/fuse and, as root, CAP_SYS_ADMIN to mount it";

/// What disk faults need on every host: `faultline lazyfs` mounts /dev/fuse
/// with mount(2) as root (CAP_SYS_ADMIN, which a Docker container lacks
/// unless given it) and through fusermount3 otherwise.
pub fn fuse_requirements() -> Vec<Requirement> {
    vec![
        Requirement::tool("fusermount3", "fuse3"),
        Requirement {
            what: FUSE_DEVICE.into(),
            // CAP_SYS_ADMIN is bit 21 of the effective set.
            check: "[ -c /dev/fuse ] && { [ \"$(id -u)\" != 0 ] || \
                    [ $(( 0x$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status) >> 21 & 1 )) = 1 ]; }"
                .into(),
            package: None,
        },
    ]
}

/// What faults and nodes need on every host, with `dir` as faultline's directory.
pub fn requirements(dir: &str) -> Vec<Requirement> {
    let probe = shell_quote(&format!("{dir}/.write-test"));
    vec![
        Requirement::tool("iptables", "iptables"),
        Requirement::tool("ip", "iproute2"),
        Requirement::tool("tc", "iproute2"),
        Requirement {
            what: "libfaketime".into(),
            check: format!(
                "for f in {}; do [ -e \"$f\" ] && exit 0; done; exit 1",
                LIBFAKETIME_PATHS.join(" ")
            ),
            package: Some("libfaketime".into()),
        },
        Requirement::tool("sha256sum", "coreutils"),
        Requirement::tool("setsid", "util-linux"),
        Requirement {
            what: format!("a writable {dir}"),
            check: format!(
                "mkdir -p {d} && touch {probe} && rm -f {probe}",
                d = shell_quote(dir)
            ),
            package: None,
        },
    ]
}

#[derive(Debug, Error)]
pub enum OsError {
    // Transparent, so `{:#}` prints the hosts' errors once (see `control::RemoteError::Many`).
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error("hosts lack what faultline needs{hint}:\n{}", format_missing(.missing))]
    Missing {
        missing: Vec<(String, Vec<Requirement>)>,
        hint: String,
    },
}

fn format_missing(missing: &[(String, Vec<Requirement>)]) -> String {
    missing
        .iter()
        .map(|(host, reqs)| {
            let items: Vec<String> = reqs
                .iter()
                .map(|r| match &r.package {
                    Some(p) => format!("{} (package {p})", r.what),
                    None => r.what.clone(),
                })
                .collect();
            format!("  {host}: {}", items.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What each host lacks (hosts lacking nothing are left out), one command per host, in parallel.
pub fn check(
    remotes: &[Arc<dyn Remote>],
    reqs: &[Requirement],
) -> Result<Vec<(String, Vec<Requirement>)>, RemoteError> {
    let script: String = reqs
        .iter()
        .enumerate()
        .map(|(i, r)| format!("( {} ) >/dev/null 2>&1 || echo {i}\n", r.check))
        .collect();
    let lacking = on_all(remotes, |r| {
        let out = r.run(&script, CHECK_TIMEOUT)?;
        let missing: Vec<Requirement> = out
            .lines()
            .filter_map(|l| l.trim().parse::<usize>().ok())
            .filter_map(|i| reqs.get(i).cloned())
            .collect();
        Ok((r.name().to_string(), missing))
    })?;
    Ok(lacking.into_iter().filter(|(_, m)| !m.is_empty()).collect())
}

/// Makes sure every host has `reqs`: installs missing packages with apt-get
/// when `install` is true (hosts run commands as root, or through sudo),
/// then checks again. Fails listing what is still missing where.
pub fn prepare(
    remotes: &[Arc<dyn Remote>],
    reqs: &[Requirement],
    install: bool,
) -> Result<(), OsError> {
    let missing = check(remotes, reqs)?;
    if missing.is_empty() {
        return Ok(());
    }
    let packages_of = |host: &str| -> Vec<String> {
        missing
            .iter()
            .filter(|(h, _)| h == host)
            .flat_map(|(_, reqs)| reqs.iter().filter_map(|q| q.package.clone()))
            .collect()
    };
    let lacking: Vec<Arc<dyn Remote>> = remotes
        .iter()
        .filter(|r| missing.iter().any(|(h, _)| h == r.name()))
        .cloned()
        .collect();
    let from = |p: Packages| -> Vec<Arc<dyn Remote>> {
        lacking
            .iter()
            .filter(|r| r.packages() == p)
            .cloned()
            .collect()
    };
    // A container has only what its image was built with: say so now, not
    // after the other hosts installed theirs.
    let images = from(Packages::Image);
    if !install || !images.is_empty() {
        let missing: Vec<_> = missing
            .into_iter()
            .filter(|(h, _)| !install || images.iter().any(|r| r.name() == h))
            .collect();
        let hint = hint(&missing, !images.is_empty(), install);
        return Err(OsError::Missing { missing, hint });
    }
    // Network namespaces run this machine's programs: install once, here.
    let here: Vec<String> = from(Packages::ThisMachine)
        .iter()
        .flat_map(|r| packages_of(r.name()))
        .collect();
    if !here.is_empty() {
        let this_machine = CommandRemote::new("this machine", vec!["env".to_string()]);
        apt_install(&this_machine, here)?;
    }
    on_all(&from(Packages::Own), |r| {
        apt_install(r, packages_of(r.name()))
    })?;
    let still = check(remotes, reqs)?;
    if still.is_empty() {
        Ok(())
    } else {
        Err(OsError::Missing {
            missing: still,
            hint: " even after apt-get install".into(),
        })
    }
}

/// What to do about `missing` that prepare will not install: on Docker
/// hosts (`images`) nothing is installed; `install` false says not to.
/// /dev/fuse and CAP_SYS_ADMIN come from no package.
fn hint(missing: &[(String, Vec<Requirement>)], images: bool, install: bool) -> String {
    let lacks = |f: &dyn Fn(&Requirement) -> bool| missing.iter().flat_map(|(_, r)| r).any(f);
    let mut parts = Vec::new();
    if lacks(&|r| r.what == FUSE_DEVICE) {
        parts.push(if images {
            "a Docker host has /dev/fuse and CAP_SYS_ADMIN only when its cluster was made \
             for disk faults: make it again with `faultline cluster up --backend docker \
             --disk-faults`, as `faultline run` does for a test with disk faults"
        } else {
            "no package gives /dev/fuse or CAP_SYS_ADMIN: load the FUSE module (modprobe \
             fuse) and reach the host as root or through sudo"
        });
    }
    if lacks(&|r| r.what != FUSE_DEVICE) {
        parts.push(if !install {
            "run without --no-install to install the packages with apt-get"
        } else {
            "a Docker host has only the programs its image was built with, from this \
             machine's: install the packages here, then make the cluster again"
        });
    }
    format!(" ({})", parts.join("; "))
}

/// Installs `packages` on `remote` with apt-get. Services a package would
/// start (etcd, redis) are kept from starting: they would take the ports and
/// data of the nodes faultline starts itself.
fn apt_install(remote: &dyn Remote, mut packages: Vec<String>) -> Result<(), RemoteError> {
    packages.sort_unstable();
    packages.dedup();
    if packages.is_empty() {
        return Ok(());
    }
    let list = packages.join(" ");
    // Another apt (unattended-upgrades, or a second host sharing this
    // filesystem) may hold dpkg's lock: wait for it rather than fail.
    let apt = format!(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
         -o DPkg::Lock::Timeout=120 {list}"
    );
    // policy-rc.d exiting 101 tells invoke-rc.d and deb-systemd-invoke not to
    // start services; ours is removed after, and one already there is kept.
    let command = format!(
        "command -v apt-get >/dev/null || {{ echo 'no apt-get on this host: install {list} by hand' >&2; exit 1; }}\n\
         made=; if [ ! -e {POLICY_RC_D} ]; then printf '#!/bin/sh\\nexit 101\\n' > {POLICY_RC_D} && chmod 755 {POLICY_RC_D} && made=1; fi\n\
         {{ {apt} || {{ apt-get update -q && {apt}; }}; }}; status=$?\n\
         [ -n \"$made\" ] && rm -f {POLICY_RC_D}\n\
         exit $status"
    );
    remote.run(&command, INSTALL_TIMEOUT).map(|_| ())
}

/// Debian's hook that says whether a package may start its service.
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

/// The libfaketime preload library on `remote`, if it has one.
pub fn libfaketime(remote: &dyn Remote) -> Result<Option<String>, RemoteError> {
    let command = format!(
        "for f in {}; do [ -e \"$f\" ] && echo \"$f\" && break; done; true",
        LIBFAKETIME_PATHS.join(" ")
    );
    Ok(remote
        .run(&command, CHECK_TIMEOUT)?
        .lines()
        .next()
        .map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lacking(reqs: Vec<Requirement>) -> Vec<(String, Vec<Requirement>)> {
        vec![("n1".to_string(), reqs)]
    }

    #[test]
    fn a_missing_fuse_device_is_not_sent_to_apt_get() {
        let device = fuse_requirements().pop().unwrap();
        let tool = Requirement::tool("iptables", "iptables");
        let docker = hint(&lacking(vec![device.clone()]), true, false);
        assert!(
            docker.contains("--disk-faults") && !docker.contains("apt-get"),
            "{docker}"
        );
        let netns = hint(&lacking(vec![device.clone()]), false, true);
        assert!(
            netns.contains("modprobe fuse") && !netns.contains("Docker"),
            "{netns}"
        );
        let both = hint(&lacking(vec![device, tool.clone()]), true, true);
        assert!(
            both.contains("--disk-faults") && both.contains("install the packages here"),
            "{both}"
        );
        let plain = hint(&lacking(vec![tool]), false, false);
        assert_eq!(
            plain,
            " (run without --no-install to install the packages with apt-get)"
        );
    }
}
