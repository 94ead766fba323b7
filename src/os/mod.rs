//! Preparing hosts: checks that each host has what faults and nodes need
//! (iptables, iproute2's ip and tc, libfaketime, a writable data directory)
//! and, as root on Debian/Ubuntu, installs missing packages with apt-get, as
//! Jepsen does. With `install: false` it fails with a message listing what is
//! missing on which host. What is not here: deploying nodes (`db`).

use crate::control::{Remote, RemoteError, on_all, shell_quote};
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
    fn tool(name: &str, package: &str) -> Self {
        Requirement {
            what: name.into(),
            check: format!("command -v {name}"),
            package: Some(package.into()),
        }
    }
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
        hint: &'static str,
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
    if !install {
        return Err(OsError::Missing {
            missing,
            hint: " (run without --no-install to install the packages with apt-get)",
        });
    }
    let lacking: Vec<Arc<dyn Remote>> = remotes
        .iter()
        .filter(|r| missing.iter().any(|(h, _)| h == r.name()))
        .cloned()
        .collect();
    on_all(&lacking, |r| {
        let reqs = &missing
            .iter()
            .find(|(h, _)| h == r.name())
            .expect("filtered above")
            .1;
        let mut packages: Vec<&str> = reqs.iter().filter_map(|q| q.package.as_deref()).collect();
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
        let command = format!(
            "command -v apt-get >/dev/null || {{ echo 'no apt-get on this host: install {list} by hand' >&2; exit 1; }}; {apt} || {{ apt-get update -q && {apt}; }}"
        );
        r.run(&command, INSTALL_TIMEOUT).map(|_| ())
    })?;
    let still = check(remotes, reqs)?;
    if still.is_empty() {
        Ok(())
    } else {
        Err(OsError::Missing {
            missing: still,
            hint: " even after apt-get install",
        })
    }
}

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
