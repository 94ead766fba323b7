//! Real Docker clusters: the locally built node image has what faults and
//! nodes need, containers are separate hosts with NET_ADMIN, files copy both
//! ways, and `down` removes the containers and the network. Disk faults: a
//! run's power losses on the lazy file system inside the containers, and a
//! cluster made without /dev/fuse refused at deploy. Needs a running Docker
//! engine (CI has one) and /dev/fuse on this machine.

mod common;

use faultline::cluster::{self, Backend, ClusterGuard, UpOptions};
use faultline::control::on_all;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn docker_names(kind: &str, name: &str) -> String {
    let args: &[&str] = if kind == "network" {
        &["network", "ls", "--format", "{{.Name}}"]
    } else {
        &["ps", "-a", "--format", "{{.Names}}"]
    };
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(name))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn docker_hosts_have_the_tools_and_go_away_on_down() {
    common::docker_ok();
    let name = common::unique("tdock");
    let guard = ClusterGuard { name: name.clone() };
    let binary = common::BINARY;
    let opts = UpOptions {
        name: name.clone(),
        backend: Backend::Docker,
        nodes: 2,
        ssh: false,
        disk_faults: false,
        binary: binary.into(),
    };
    let c = cluster::up(&opts).expect("docker cluster up");
    assert_eq!(
        on_all(&c.remotes(), |r| r.run("hostname", T)).unwrap(),
        vec!["n1\n", "n2\n"]
    );
    let n1 = &c.hosts[0].remote;
    // The image carries the tools and the executable, byte for byte.
    let tools = n1.run("for t in ip tc iptables sha256sum setsid; do command -v $t; done && ls /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1", T).unwrap();
    assert_eq!(tools.lines().count(), 6, "{tools}");
    let inside = n1.run("sha256sum /opt/faultline/bin/faultline", T).unwrap();
    let here = String::from_utf8(
        std::process::Command::new("sha256sum")
            .arg(binary)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(
        inside.split_whitespace().next(),
        here.split_whitespace().next()
    );
    assert!(
        n1.run("/opt/faultline/bin/faultline --version", T)
            .unwrap()
            .starts_with("faultline ")
    );
    // NET_ADMIN: iptables and tc can change the container's own network.
    n1.run(
        "iptables -w -N faultline-probe && iptables -w -X faultline-probe",
        T,
    )
    .unwrap();
    let addr = n1.run("ip -4 -o addr show dev eth0", T).unwrap();
    assert!(addr.contains(&format!("{}/24", c.hosts[0].addr)), "{addr}");
    // Copies both ways.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("f");
    std::fs::write(&local, b"payload").unwrap();
    n1.upload(&local, "/opt/faultline/x/f").unwrap();
    let back = dir.path().join("back");
    n1.download("/opt/faultline/x/f", &back).unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), b"payload");
    assert!(
        c.hosts[1]
            .remote
            .exec("test -e /opt/faultline/x/f", None, T)
            .unwrap()
            .code
            == Some(1)
    );

    assert!(!docker_names("container", &format!("fl-{name}-")).is_empty());
    assert!(cluster::down(&name).unwrap());
    assert_eq!(
        docker_names("container", &format!("fl-{name}-")),
        "",
        "containers left behind"
    );
    assert_eq!(
        docker_names("network", &format!("fl-{name}")),
        "",
        "network left behind"
    );
    assert!(!cluster::down(&name).unwrap());
    drop(guard);
}

/// A power loss on every node every few seconds, on Docker hosts.
fn power_loss_test(bug: Option<&str>, workload: &str) -> String {
    let bugs = bug.map_or(String::new(), |b| format!("bugs: [{b}]\n"));
    format!(
        "db: raft\nnodes: 3\nhosts: docker\ntime_limit: 10s\nrecovery: 3s\n{bugs}workload: {workload}\n\
         nemesis: {{faults: [{{disk: {{targets: all, mode: lose-unfsynced, duration: 1s, interval: 2s}}}}]}}\n"
    )
}

/// `faultline run --hosts docker` with disk faults makes its containers able
/// to mount FUSE, mounts the lazy file system in each, and its power losses
/// go through it: every `start-disk` says what each node lost, every one
/// ends, and Raft (which fsyncs before it answers) stays linearizable.
#[test]
fn power_losses_on_docker_hosts_leave_raft_linearizable() {
    common::docker_ok();
    let o = common::runs::run(
        "docker-disk",
        "raft-register-lose-unfsynced",
        &power_loss_test(None, "register"),
        1,
        &[],
    );
    assert_eq!(o.exit, 0, "{}", o.summary);
    assert_eq!(o.checker("linearizable"), serde_json::Value::Bool(true));
    let losses = common::runs::PowerLosses::of(&o, &["n1", "n2", "n3"]);
    println!("docker: {}", losses.figures());
    assert!(losses.started >= 2, "{losses:?}\n{}", o.summary);
    assert_eq!(losses.started, losses.stopped, "every power loss ended");
    let mount = common::runs::lazyfs_mount_ms(&o);
    println!("docker: lazyfs mounted on 3 hosts in {mount:?} ms (debug build)");
    assert!(
        mount.is_some(),
        "deploy mounted the lazy file systems:\n{}",
        o.summary
    );
    assert!(o.count("ok") > 0, "{}", o.summary);
}

/// The same power losses catch Raft's `no-fsync` bug on Docker hosts: the
/// writes it acknowledged were never durable, and the set loses adds.
#[test]
fn no_fsync_is_caught_on_docker_hosts() {
    common::docker_ok();
    let o = common::runs::caught(
        "docker-disk",
        "raft-set-no-fsync",
        &power_loss_test(Some("no-fsync"), "set"),
        &[1, 2, 3],
        "lost",
    );
    let losses = common::runs::PowerLosses::of(&o, &["n1", "n2", "n3"]);
    println!("docker, no-fsync: {}", losses.figures());
    assert!(losses.changes_lost > 0, "{losses:?}");
}

/// A Docker cluster made without `--disk-faults` has no /dev/fuse and no
/// CAP_SYS_ADMIN: `cluster deploy --lazyfs` is refused before anything is
/// mounted, exit 3, naming the host, what it lacks and how to make it.
/// `--disk-faults` is refused on another backend.
#[test]
fn a_docker_cluster_without_disk_faults_is_refused_at_deploy() {
    common::docker_ok();
    let netns = UpOptions {
        name: common::unique("tnofusens"),
        backend: Backend::Netns,
        nodes: 1,
        ssh: false,
        disk_faults: true,
        binary: common::BINARY.into(),
    };
    let e = cluster::up(&netns).err().expect("refused").to_string();
    assert!(
        e.contains("--disk-faults is only for --backend docker"),
        "{e}"
    );
    assert!(cluster::State::load(&netns.name).is_err(), "nothing made");

    let name = common::unique("tnofuse");
    let _guard = ClusterGuard { name: name.clone() };
    let c = cluster::up(&UpOptions {
        name: name.clone(),
        backend: Backend::Docker,
        nodes: 2,
        ssh: false,
        disk_faults: false,
        binary: common::BINARY.into(),
    })
    .expect("docker cluster up");
    // The image has fusermount3: only the device and the capability lack.
    c.hosts[0].remote.run("command -v fusermount3", T).unwrap();
    let out = std::process::Command::new(common::BINARY)
        .args([
            "cluster",
            "deploy",
            "--name",
            &name,
            "--lazyfs",
            "--no-install",
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(3), "{text}");
    for what in [
        "n1: /dev/fuse and, as root, CAP_SYS_ADMIN",
        "n2: /dev/fuse",
        "faultline cluster up --backend docker --disk-faults",
    ] {
        assert!(text.contains(what), "{what}:\n{text}");
    }
    assert!(!text.contains("fusermount3"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    // Refused at prepare: no node was started, nothing mounted.
    let started = c.hosts[0]
        .remote
        .exec("test -e /opt/faultline/run/node.pid", None, T)
        .unwrap();
    assert_eq!(started.code, Some(1));
}
