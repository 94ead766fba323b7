//! The SSH path for real: a netns cluster with an sshd in every host
//! (`cluster up --ssh`), reached through its generated inventory with ssh2.
//! Covers a clean login environment, SFTP copies, exit codes, and the clear
//! errors for a wrong key, a changed host key, an unknown host key and an
//! unreachable host; and disk faults over SSH: a run's power losses on the
//! lazy file system, unmounted at teardown, or by `faultline heal` after a
//! SIGKILLed controller. Needs root, openssh-server and fuse3.

mod common;

use faultline::cluster::inventory::{self, Inventory};
use faultline::cluster::{self, Backend, ClusterGuard, UpOptions};
use faultline::control::{RemoteError, on_all};
use std::path::{Path, PathBuf};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn ssh_cluster(prefix: &str, nodes: usize) -> (cluster::Cluster, PathBuf, ClusterGuard) {
    assert!(
        Path::new("/usr/sbin/sshd").exists(),
        "this test needs openssh-server (.ci/run installs it)"
    );
    let name = common::unique(prefix);
    let guard = ClusterGuard { name: name.clone() };
    let opts = UpOptions {
        name: name.clone(),
        backend: Backend::Netns,
        nodes,
        ssh: true,
        disk_faults: false,
        binary: "/nonexistent".into(),
    };
    let direct = cluster::up(&opts).expect("cluster up --ssh");
    let inventory = common::inventory_of(&name);
    (direct, inventory, guard)
}

/// A copy of the inventory with `change` applied, written next to it.
fn variant(inventory: &Path, file: &str, change: impl FnOnce(&mut Inventory)) -> PathBuf {
    let mut inv = Inventory::load(inventory).unwrap();
    change(&mut inv);
    let path = inventory.with_file_name(file);
    inv.save(&path).unwrap();
    path
}

#[test]
fn ssh_hosts_run_commands_and_copy_files_in_a_clean_environment() {
    let (direct, inventory, _guard) = ssh_cluster("tssh", 3);
    let lab = inventory::open(&inventory).unwrap();
    assert_eq!(lab.backend, Backend::Ssh);
    assert_eq!(lab.controller_addr, direct.controller_addr);
    assert_eq!(lab.host_dir, "/opt/faultline");
    // stdout is exactly what the command printed: no .bashrc noise.
    let names = on_all(&lab.remotes(), |r| r.run("hostname", T)).unwrap();
    assert_eq!(names, vec!["n1\n", "n2\n", "n3\n"]);
    let n1 = &lab.hosts[0].remote;
    assert_eq!(n1.run("echo \"$HOME\"; id -u", T).unwrap(), "/root\n0\n");
    // stdin, stderr and exit codes.
    let out = n1
        .exec("cat; echo oops >&2; exit 7", Some(b"in"), T)
        .unwrap();
    assert_eq!(
        (out.stdout.as_slice(), out.stderr.as_slice(), out.code),
        (&b"in"[..], &b"oops\n"[..], Some(7))
    );
    let e = n1
        .run("echo broken >&2; exit 4", T)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("n1: ") && e.contains("Some(4)") && e.contains("broken"),
        "{e}"
    );
    // A command that outlives its timeout is reported as such, and the
    // session is usable again afterwards.
    let e = n1
        .exec("sleep 5", None, Duration::from_millis(300))
        .unwrap_err();
    assert!(matches!(e, RemoteError::Timeout { .. }), "{e}");
    assert_eq!(n1.run("echo back", T).unwrap(), "back\n");

    // SFTP both ways; the file lands in the host's own /opt (seen directly too).
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("payload");
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&local, &payload).unwrap();
    n1.upload(&local, "/opt/faultline/sub/payload").unwrap();
    let direct_sum = direct.hosts[0]
        .remote
        .run("sha256sum /opt/faultline/sub/payload", T)
        .unwrap();
    let lab_sum = n1.run("sha256sum /opt/faultline/sub/payload", T).unwrap();
    assert_eq!(direct_sum, lab_sum);
    assert!(
        direct.hosts[1]
            .remote
            .exec("test -e /opt/faultline/sub/payload", None, T)
            .unwrap()
            .code
            == Some(1),
        "n2 has its own /opt"
    );
    let back = dir.path().join("back");
    n1.download("/opt/faultline/sub/payload", &back).unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), payload);
    let e = n1
        .download("/opt/faultline/missing", &back)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("n1: ") && e.contains("/opt/faultline/missing"),
        "{e}"
    );
}

#[test]
fn ssh_wrong_key_changed_host_key_unknown_host_and_unreachable_give_clear_errors() {
    let (_direct, inventory, _guard) = ssh_cluster("tsshe", 2);
    let dir = inventory.parent().unwrap().to_path_buf();

    // A key the hosts do not know.
    let other_key = dir.join("other_key");
    common::keygen(&other_key);
    let wrong_key = variant(&inventory, "wrong-key.yaml", |inv| {
        inv.key = Some(other_key.clone())
    });
    let lab = inventory::open(&wrong_key).unwrap();
    let e = lab.hosts[0].remote.run("true", T).unwrap_err();
    assert!(matches!(e, RemoteError::AuthFailed { .. }), "{e}");
    let shown = e.to_string();
    assert!(
        shown.starts_with("n1: authentication failed") && shown.contains("other_key"),
        "{shown}"
    );

    // A changed host key: known_hosts says n1 has another key.
    let fake_host_key = dir.join("fake_host_key");
    common::keygen(&fake_host_key);
    let fake_pub = std::fs::read_to_string(fake_host_key.with_extension("pub")).unwrap();
    let real = std::fs::read_to_string(dir.join("known_hosts")).unwrap();
    let mut lines: Vec<String> = real.lines().map(String::from).collect();
    let n1_addr = lines[0].split_whitespace().next().unwrap().to_string();
    lines[0] = format!(
        "{n1_addr} {}",
        fake_pub
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let changed_kh = dir.join("known_hosts.changed");
    std::fs::write(&changed_kh, lines.join("\n") + "\n").unwrap();
    for policy in ["strict", "accept-new"] {
        let changed = variant(&inventory, "changed.yaml", |inv| {
            inv.known_hosts = Some(changed_kh.clone());
            inv.host_key = serde_yaml_ng::from_str(policy).unwrap();
        });
        let lab = inventory::open(&changed).unwrap();
        let e = lab.hosts[0].remote.run("true", T).unwrap_err();
        assert!(matches!(e, RemoteError::HostKey { .. }), "{policy}: {e}");
        assert!(e.to_string().contains("different key"), "{e}");
        assert_eq!(
            lab.hosts[1].remote.run("hostname", T).unwrap(),
            "n2\n",
            "n2's key is unchanged"
        );
    }

    // Unknown host keys: an error when strict, recorded with accept-new.
    let empty_kh = dir.join("known_hosts.empty");
    std::fs::write(&empty_kh, "").unwrap();
    let strict = variant(&inventory, "strict.yaml", |inv| {
        inv.known_hosts = Some(empty_kh.clone())
    });
    let e = inventory::open(&strict).unwrap().hosts[0]
        .remote
        .run("true", T)
        .unwrap_err();
    assert!(
        matches!(e, RemoteError::HostKey { .. }) && e.to_string().contains("accept-new"),
        "{e}"
    );
    let accept = variant(&inventory, "accept.yaml", |inv| {
        inv.known_hosts = Some(empty_kh.clone());
        inv.host_key = faultline::control::ssh::HostKeyPolicy::AcceptNew;
    });
    let names = on_all(&inventory::open(&accept).unwrap().remotes(), |r| {
        r.run("hostname", T)
    })
    .unwrap();
    assert_eq!(names, vec!["n1\n", "n2\n"]);
    let recorded = std::fs::read_to_string(&empty_kh).unwrap();
    assert_eq!(
        recorded
            .lines()
            .filter(|l| l.contains("ssh-ed25519"))
            .count(),
        2,
        "{recorded}"
    );
    // ... and then a strict inventory accepts them.
    let now_known = variant(&inventory, "known.yaml", |inv| {
        inv.known_hosts = Some(empty_kh.clone())
    });
    assert_eq!(
        inventory::open(&now_known).unwrap().hosts[0]
            .remote
            .run("hostname", T)
            .unwrap(),
        "n1\n"
    );

    // Nobody at that address.
    let unreachable = variant(&inventory, "unreachable.yaml", |inv| {
        inv.hosts[0].address = inv.hosts[0]
            .address
            .rsplit_once('.')
            .map(|(net, _)| format!("{net}.250"))
            .unwrap();
        inv.connect_timeout_ms = 500;
    });
    let e = inventory::open(&unreachable).unwrap().hosts[0]
        .remote
        .run("true", T)
        .unwrap_err();
    assert!(
        matches!(e, RemoteError::Unreachable { .. })
            && e.to_string().starts_with("n1: unreachable"),
        "{e}"
    );
}

/// Adds user `ft` (uid 4242, passwordless sudo, the lab's client key) to a
/// host. Only inside the host's own mount namespace: the files are bound
/// over /etc/passwd etc. there, so the controller's machine is untouched.
fn add_sudo_user(direct: &dyn faultline::control::Remote) {
    let script = "set -e\n\
        mkdir -p /run/ftuser\n\
        cp /etc/passwd /etc/group /etc/shadow /etc/sudoers /run/ftuser/\n\
        echo 'ft:x:4242:4242::/home/ft:/bin/sh' >> /run/ftuser/passwd\n\
        echo 'ft:x:4242:' >> /run/ftuser/group\n\
        echo 'ft:*:19000:0:99999:7:::' >> /run/ftuser/shadow\n\
        echo 'ft ALL=(ALL) NOPASSWD: ALL' >> /run/ftuser/sudoers\n\
        chmod 0440 /run/ftuser/sudoers\n\
        for f in passwd group shadow sudoers; do mount --bind /run/ftuser/$f /etc/$f; done\n\
        mount -t tmpfs faultline-home /home\n\
        mkdir -p /home/ft/.ssh\n\
        cp /root/.ssh/authorized_keys /home/ft/.ssh/\n\
        chown -R 4242:4242 /home/ft\n";
    direct.run(script, T).unwrap();
}

#[test]
fn ssh_non_root_user_works_through_sudo() {
    assert!(
        Path::new("/usr/bin/sudo").exists(),
        "this test needs sudo (.ci/run installs it)"
    );
    let (direct, inventory, _guard) = ssh_cluster("tsudo", 1);
    add_sudo_user(direct.hosts[0].remote.as_ref());
    let plain = variant(&inventory, "ft.yaml", |inv| inv.user = "ft".into());
    let n1 = inventory::open(&plain).unwrap().hosts[0].remote.clone();
    assert_eq!(n1.run("id -u", T).unwrap(), "4242\n");
    let e = n1
        .run("touch /opt/faultline/by-ft", T)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("n1: ") && e.contains("Permission denied"),
        "{e}"
    );

    let with_sudo = variant(&inventory, "ft-sudo.yaml", |inv| {
        inv.user = "ft".into();
        inv.sudo = true;
    });
    let n1 = inventory::open(&with_sudo).unwrap().hosts[0].remote.clone();
    assert_eq!(n1.run("id -u", T).unwrap(), "0\n");
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("f");
    std::fs::write(&local, b"root's now").unwrap();
    n1.upload(&local, "/opt/faultline/sudo/f").unwrap();
    n1.run("chmod 600 /opt/faultline/sudo/f", T).unwrap();
    let owner = direct.hosts[0]
        .remote
        .run("stat -c %u:%a /opt/faultline/sudo/f", T)
        .unwrap();
    assert_eq!(owner, "0:600\n", "uploaded through sudo: owned by root");
    let back = dir.path().join("back");
    n1.download("/opt/faultline/sudo/f", &back).unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), b"root's now");
}

/// Whether the lazy file system is mounted on every host's data directory
/// (none: on no host), asked over SSH.
fn lazyfs_mounted(lab: &cluster::Cluster) -> Vec<bool> {
    on_all(&lab.remotes(), |r| {
        r.run(
            "grep -c '^faultline-lazyfs /opt/faultline/data ' /proc/self/mounts || true",
            T,
        )
    })
    .unwrap()
    .iter()
    .map(|n| n.trim() != "0")
    .collect()
}

/// The lab is given with `--hosts`.
fn power_loss_test(time_limit: &str) -> String {
    power_loss_test_of("register", time_limit)
}

fn power_loss_test_of(workload: &str, time_limit: &str) -> String {
    format!(
        "db: raft\nnodes: 3\ntime_limit: {time_limit}\nrecovery: 3s\nworkload: {workload}\n\
         nemesis: {{faults: [{{disk: {{targets: all, mode: lose-unfsynced, duration: 1s, interval: 2s}}}}]}}\n"
    )
}

/// A run with power losses on an SSH lab: prepare finds fuse3, deploy
/// mounts the lazy file system through ssh, every `start-disk` says what
/// each node lost and every one ends, Raft stays linearizable, and the
/// teardown leaves no mount behind.
#[test]
fn power_losses_on_ssh_hosts_leave_raft_linearizable_and_nothing_mounted() {
    let (_direct, inventory, _guard) = ssh_cluster("tsshdisk", 3);
    let o = common::runs::run(
        "ssh-disk",
        "raft-register-lose-unfsynced",
        &power_loss_test("10s"),
        1,
        &["--hosts", inventory.to_str().unwrap()],
    );
    assert_eq!(o.exit, 0, "{}", o.summary);
    assert_eq!(o.checker("linearizable"), serde_json::Value::Bool(true));
    let losses = common::runs::PowerLosses::of(&o, &["n1", "n2", "n3"]);
    println!("ssh: {}", losses.figures());
    assert!(losses.started >= 2, "{losses:?}\n{}", o.summary);
    assert_eq!(losses.started, losses.stopped, "every power loss ended");
    let mount = common::runs::lazyfs_mount_ms(&o);
    println!("ssh: lazyfs mounted on 3 hosts in {mount:?} ms (debug build)");
    assert!(
        mount.is_some(),
        "deploy mounted the lazy file systems:\n{}",
        o.summary
    );
    let lab = inventory::open(&inventory).unwrap();
    assert_eq!(
        lazyfs_mounted(&lab),
        vec![false; 3],
        "unmounted at teardown"
    );
}

/// A controller killed with SIGKILL mid-run leaves the lazy file systems
/// mounted on the lab's hosts; `faultline heal --inventory` unmounts them
/// by the hosts' heal journals.
#[test]
fn heal_unmounts_the_lazy_file_systems_of_a_killed_run_over_ssh() {
    use std::os::unix::process::CommandExt;
    let (_direct, inventory, _guard) = ssh_cluster("tsshkill", 3);
    let dir = tempfile::tempdir().unwrap();
    let test = dir.path().join("test.yaml");
    std::fs::write(&test, power_loss_test("60s")).unwrap();
    let mut child = std::process::Command::new(common::BINARY)
        .arg("run")
        .arg(&test)
        .args(["--no-install", "--hosts"])
        .arg(&inventory)
        .arg("--results-dir")
        .arg(dir.path().join("results"))
        .env("CI", "true")
        .process_group(0)
        .stdout(std::fs::File::create(dir.path().join("out")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("err")).unwrap())
        .spawn()
        .unwrap();
    let said = || {
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
        format!("{}{}", read("out"), read("err"))
    };
    let lab = inventory::open(&inventory).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while lazyfs_mounted(&lab) != vec![true; 3] {
        assert!(
            std::time::Instant::now() < deadline,
            "the run mounted no lazy file systems in 90 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended early:\n{}",
            said()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        lazyfs_mounted(&lab),
        vec![true; 3],
        "left by the killed run"
    );
    // netns hosts share this machine's pids: the helpers are seen from here
    // (one that exited may linger as a zombie until its reaper gets to it).
    let helpers: Vec<String> = on_all(&lab.remotes(), |r| {
        r.run("cat /run/faultline/lazyfs.pid", T)
    })
    .unwrap()
    .iter()
    .map(|p| format!("/proc/{}/status", p.trim()))
    .collect();
    let running = |status: &String| {
        std::fs::read_to_string(status).is_ok_and(|s| {
            s.lines()
                .any(|l| l.starts_with("State:") && !l.contains("zombie"))
        })
    };
    assert!(helpers.iter().all(running), "{helpers:?}");
    let out = std::process::Command::new(common::BINARY)
        .args(["heal", "--inventory"])
        .arg(&inventory)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lazyfs_mounted(&lab), vec![false; 3], "heal unmounted them");
    assert!(
        !helpers.iter().any(running),
        "the helpers are gone: {helpers:?}"
    );
}

/// Raft's `no-fsync` bug is caught over SSH too: the power losses take the
/// acknowledged adds it never made durable.
#[test]
fn no_fsync_is_caught_on_ssh_hosts() {
    let (_direct, inventory, _guard) = ssh_cluster("tsshnofsync", 3);
    let hosts = ["--hosts", inventory.to_str().unwrap(), "--bug", "no-fsync"];
    let mut tried = Vec::new();
    for seed in [1, 2, 3] {
        let o = common::runs::run(
            "ssh-disk",
            "raft-set-no-fsync",
            &power_loss_test_of("set", "10s"),
            seed,
            &hosts,
        );
        if o.exit == 1 && o.anomalies().iter().any(|a| a == "lost") {
            let losses = common::runs::PowerLosses::of(&o, &["n1", "n2", "n3"]);
            println!("ssh, no-fsync: {}", losses.figures());
            assert!(losses.changes_lost > 0, "{losses:?}");
            return;
        }
        tried.push(format!("seed {seed}: exit {}\n{}", o.exit, o.summary));
    }
    panic!("no seed caught no-fsync:\n{}", tried.join("\n"));
}
