//! Real Docker clusters: the locally built node image has what faults and
//! nodes need, containers are separate hosts with NET_ADMIN, files copy both
//! ways, and `down` removes the containers and the network. Needs a running
//! Docker engine (CI has one).

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
