//! The same deployment table on all three kinds of host (netns direct, netns
//! through sshd with ssh2, Docker): OS checks, checksum-skipping install of
//! the faultline executable, and a daemon started, paused, resumed, killed,
//! restarted, stopped, run under libfaketime, with its log downloaded.
//! The daemon is a shell that logs a line and execs `sleep`, so this runs
//! without the bundled nodes; tests/deploy_raft.rs deploys those.

mod common;

use common::{BINARY, make};
use faultline::cluster::{Backend, Cluster};
use faultline::os::{self, Requirement};
use faultline::system::daemon::Daemon;
use faultline::system::{self, Layout};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// Waits until the daemon's log has `n` lines (it logs once per start,
/// asynchronously), so a kill cannot come before the line is written.
fn wait_log_lines(remote: &dyn faultline::control::Remote, log: &str, n: usize) {
    for _ in 0..250 {
        let lines = remote
            .run(&format!("cat {log} 2>/dev/null | wc -l"), T)
            .unwrap();
        if lines.trim().parse::<usize>().unwrap() >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{log} never got {n} lines");
}

fn exercise(c: &Cluster, expect_uploads: usize) {
    let remotes = c.remotes();
    let layout = Layout::new(&c.host_dir);
    // OS: everything present; an impossible requirement is reported per host.
    let reqs = os::requirements(&layout.dir);
    os::prepare(&remotes, &reqs, false).expect("hosts have the tools");
    let impossible = Requirement {
        what: "frobnicator".into(),
        check: "command -v faultline-frobnicator".into(),
        package: Some("frobnicator".into()),
    };
    let e = os::prepare(&remotes, &[reqs[0].clone(), impossible], false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("n1: frobnicator (package frobnicator)") && e.contains("n2: frobnicator"),
        "{e}"
    );
    assert!(e.contains("--no-install") && !e.contains("iptables"), "{e}");
    let e = os::prepare(&remotes, &os::requirements("/proc/faultline-cannot"), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("n1: a writable /proc/faultline-cannot"), "{e}");

    // Install: uploads where the checksum differs, then never again.
    assert_eq!(
        system::install(&remotes, BINARY.as_ref(), &layout.binary()).unwrap(),
        expect_uploads
    );
    assert_eq!(
        system::install(&remotes, BINARY.as_ref(), &layout.binary()).unwrap(),
        0
    );
    let version = c.hosts[1]
        .remote
        .run(&format!("{} --version", layout.binary()), T)
        .unwrap();
    assert!(version.starts_with("faultline "), "{version}");

    // A daemon through its whole life on n1.
    let n1 = c.hosts[0].remote.as_ref();
    let daemon = Daemon {
        argv: vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo started $$ at $(date +%s); exec sleep 300".into(),
        ],
        env: vec![],
        pidfile: format!("{}/run/test.pid", layout.dir),
        logfile: format!("{}/log/test.log", layout.dir),
        cwd: layout.dir.clone(),
    };
    let pid = daemon.start(n1).unwrap();
    wait_log_lines(n1, &daemon.logfile, 1);
    assert_eq!(daemon.start(n1).unwrap(), pid, "start is idempotent");
    assert_eq!(daemon.pid(n1).unwrap(), Some(pid));
    assert_eq!(daemon.state(n1).unwrap(), Some('S'));
    daemon.pause(n1).unwrap();
    assert_eq!(daemon.state(n1).unwrap(), Some('T'), "paused");
    daemon.resume(n1).unwrap();
    assert_eq!(daemon.state(n1).unwrap(), Some('S'), "resumed");
    daemon.pause(n1).unwrap();
    daemon.kill(n1).unwrap();
    assert_eq!(daemon.pid(n1).unwrap(), None, "killed while paused");
    let pid2 = daemon.start(n1).unwrap();
    assert_ne!(pid2, pid);
    wait_log_lines(n1, &daemon.logfile, 2);
    daemon.stop(n1, Duration::from_secs(2)).unwrap();
    assert_eq!(daemon.pid(n1).unwrap(), None, "stopped");
    assert_eq!(
        daemon.pid(c.hosts[1].remote.as_ref()).unwrap(),
        None,
        "n2 never ran it"
    );

    // Under libfaketime with an offset file: the daemon's clock is a day ahead.
    let lib = os::libfaketime(n1).unwrap().expect("libfaketime");
    let offset_file = format!("{}/run/faketime-test", layout.dir);
    n1.run(&format!("echo +1d > {offset_file}"), T).unwrap();
    let faked = Daemon {
        env: vec![
            ("LD_PRELOAD".into(), lib),
            ("FAKETIME_TIMESTAMP_FILE".into(), offset_file),
            ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
            ("FAKETIME_NO_CACHE".into(), "1".into()),
        ],
        ..daemon.clone()
    };
    faked.start(n1).unwrap();
    wait_log_lines(n1, &daemon.logfile, 3);
    let host_now: i64 = n1.run("date +%s", T).unwrap().trim().parse().unwrap();
    faked.kill(n1).unwrap();

    // The log, downloaded: three starts, the last one a day ahead.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("test.log");
    n1.download(&daemon.logfile, &local).unwrap();
    let text = std::fs::read_to_string(&local).unwrap();
    let stamps: Vec<i64> = text
        .lines()
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert_eq!(stamps.len(), 3, "{text}");
    assert!((stamps[0] - host_now).abs() < 60, "{text}");
    assert!(
        (stamps[2] - host_now - 86_400).abs() < 60,
        "faked clock is a day ahead: {text} vs {host_now}"
    );
}

#[test]
fn deploy_table_on_netns_hosts() {
    let (c, _guard) = make("tdn", Backend::Netns, 2, false);
    exercise(&c, 2);
}

#[test]
fn deploy_table_on_ssh_hosts() {
    let (c, _guard) = make("tds", Backend::Netns, 2, true);
    assert_eq!(c.backend, Backend::Ssh);
    exercise(&c, 2);
}

#[test]
fn deploy_table_on_docker_hosts() {
    // The image already has this executable: nothing to upload.
    let (c, _guard) = make("tdd", Backend::Docker, 2, false);
    exercise(&c, 0);
    // A container cannot install what its image lacks: said at once, with
    // what to do, and no apt-get tried inside.
    let frobnicator = Requirement {
        what: "frobnicator".into(),
        check: "command -v faultline-frobnicator".into(),
        package: Some("frobnicator".into()),
    };
    let e = os::prepare(&c.remotes(), &[frobnicator], true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("n1: frobnicator (package frobnicator)")
            && e.contains("Docker host has only the programs its image was built with"),
        "{e}"
    );
}

#[test]
fn missing_packages_are_installed_with_apt_get() {
    // Two hosts that are both this machine (command remotes that enter
    // nothing): the netns hosts have no route to the package registry, this
    // machine does. Both lack the package, so their two apt-get runs contend
    // for dpkg's lock, as a host running unattended-upgrades would. GNU hello
    // is tiny and nothing here depends on it, so removing it first is safe.
    use faultline::control::{Packages, Remote, process::CommandRemote};
    use std::sync::Arc;
    // A machine may have its own hook (Docker-built images ship one that
    // exits 101): it must be kept as it is, and ours must not be left.
    let hook = std::path::Path::new("/usr/sbin/policy-rc.d");
    let hook_before = std::fs::read(hook).ok();
    let removed = std::process::Command::new("dpkg")
        .args(["--remove", "hello"])
        .output()
        .unwrap();
    assert!(removed.status.success(), "{removed:?}");
    assert!(!std::path::Path::new("/usr/bin/hello").exists());
    let remotes: Vec<Arc<dyn Remote>> = ["h1", "h2"]
        .iter()
        .map(|h| Arc::new(CommandRemote::new(*h, vec!["env".into()])) as Arc<dyn Remote>)
        .collect();
    let hello = Requirement {
        what: "GNU hello".into(),
        check: "command -v hello".into(),
        package: Some("hello".into()),
    };
    let e = os::prepare(&remotes, std::slice::from_ref(&hello), false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("h1: GNU hello (package hello)") && e.contains("h2: GNU hello"),
        "{e}"
    );
    os::prepare(&remotes, std::slice::from_ref(&hello), true).expect("apt-get installs hello");
    let said = remotes[1].run("hello", T).unwrap();
    assert_eq!(said.trim(), "Hello, world!");

    // Network namespaces have no route to the package registry: their
    // packages are installed once, on this machine, from outside them (an
    // apt-get inside would time out). In this test, not another, so that
    // two tests never remove hello under each other.
    let removed = std::process::Command::new("dpkg")
        .args(["--remove", "hello"])
        .output()
        .unwrap();
    assert!(removed.status.success(), "{removed:?}");
    let (c, _guard) = make("tpk", Backend::Netns, 2, false);
    let hosts = c.remotes();
    assert!(hosts.iter().all(|h| h.packages() == Packages::ThisMachine));
    let no_route = hosts[0].exec("apt-get update -q -o Acquire::Retries=0", None, T);
    assert!(
        no_route.map_or(true, |o| !String::from_utf8_lossy(&o.stdout)
            .contains("Hit:")),
        "the namespace should have no route to the registry"
    );
    os::prepare(&hosts, &[hello], true).expect("hello installed here for the namespaces");
    let said = hosts[1].run("hello", T).unwrap();
    assert_eq!(said.trim(), "Hello, world!");
    assert_eq!(
        std::fs::read(hook).ok(),
        hook_before,
        "the hook that kept services from starting is as it was before: ours removed, the machine's kept"
    );
}
