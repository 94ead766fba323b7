//! Real netns clusters: what `cluster up` makes, that hosts are separate
//! (hostname, /run, /opt) and connected, and that `down` removes exactly
//! what `up` made. Needs root (network namespaces).

mod common;

use common::unique;
use faultline::cluster::{self, Backend, ClusterGuard, UpOptions};
use faultline::control::on_all;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn up(name: &str, nodes: usize) -> (cluster::Cluster, ClusterGuard) {
    let guard = ClusterGuard {
        name: name.to_string(),
    };
    let opts = UpOptions {
        name: name.to_string(),
        backend: Backend::Netns,
        nodes,
        ssh: false,
        disk_faults: false,
        binary: "/nonexistent".into(),
    };
    (cluster::up(&opts).expect("cluster up"), guard)
}

#[test]
fn netns_hosts_are_separate_hosts_on_one_network() {
    let name = unique("tsep");
    let (c, _guard) = up(&name, 3);
    assert_eq!(c.hosts.len(), 3);
    // Own hostname, own /run, own /opt.
    let names = on_all(&c.remotes(), |r| r.run("hostname", T)).unwrap();
    assert_eq!(names, vec!["n1\n", "n2\n", "n3\n"]);
    c.hosts[0]
        .remote
        .run("echo one > /run/mark && echo one > /opt/faultline/mark", T)
        .unwrap();
    let seen = c.hosts[1]
        .remote
        .exec("cat /run/mark /opt/faultline/mark", None, T)
        .unwrap();
    assert!(!seen.success(), "n2 must not see n1's /run or /opt");
    assert_eq!(c.hosts[0].remote.run("cat /run/mark", T).unwrap(), "one\n");
    // Each host has only lo and eth0 with its own address.
    let ifaces = c.hosts[1].remote.run("ls /sys/class/net", T).unwrap();
    assert_eq!(
        ifaces.split_whitespace().collect::<Vec<_>>(),
        vec!["eth0", "lo"]
    );
    let addrs = c.hosts[1]
        .remote
        .run("ip -4 -o addr show dev eth0", T)
        .unwrap();
    assert!(
        addrs.contains(&format!("{}/24", c.hosts[1].addr)),
        "{addrs}"
    );

    // The controller reaches n2, and n1 reaches n3, over real TCP.
    let n2 = format!("fl-{name}-n2");
    let listener = cluster::netns::run_in(&n2, move || TcpListener::bind("0.0.0.0:7001"))
        .unwrap()
        .unwrap();
    let echo = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        }
    });
    let ping = |addr: SocketAddr| {
        let mut s = TcpStream::connect_timeout(&addr, T).unwrap();
        s.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        buf
    };
    let target = SocketAddr::new(c.hosts[1].addr, 7001);
    assert_eq!(&ping(target), b"ping");
    let n1 = format!("fl-{name}-n1");
    assert_eq!(
        &cluster::netns::run_in(&n1, move || ping(target)).unwrap(),
        b"ping"
    );
    echo.join().unwrap();
}

/// A host made while another cluster is up holds none of that cluster's
/// mounts (its namespace files), so nothing keeps those namespaces alive.
#[test]
fn netns_hosts_hold_no_mounts_of_other_clusters() {
    let (first, second) = (unique("tmnta"), unique("tmntb"));
    let (_a, _guard_a) = up(&first, 2);
    let (b, _guard_b) = up(&second, 2);
    let mounts = b.hosts[0]
        .remote
        .run("cat /proc/self/mountinfo", T)
        .unwrap();
    assert!(!mounts.is_empty());
    for other in [format!("fl-{first}-"), format!("/run/faultline/{first}")] {
        assert!(
            !mounts.contains(&other),
            "{other} in n1's mounts:\n{mounts}"
        );
    }
    // Its own /run is the fresh tmpfs, not the machine's.
    assert!(
        mounts
            .lines()
            .any(|l| l.contains(" /run ") && l.contains("faultline-run"))
    );
}

#[test]
fn netns_down_removes_exactly_what_up_made_and_is_idempotent() {
    let name = unique("tdown");
    let (c, guard) = up(&name, 2);
    let state = cluster::State::load(&name).unwrap();
    let veth = state
        .resources
        .iter()
        .find_map(|r| match r {
            cluster::Resource::Veth { name } => Some(name.clone()),
            _ => None,
        })
        .unwrap();
    // A process started in a host must not survive `down`.
    c.hosts[0]
        .remote
        .run(
            "setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! > /run/sleep.pid",
            T,
        )
        .unwrap();
    let pid: i32 = c.hosts[0]
        .remote
        .run("cat /run/sleep.pid", T)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert!(Path::new(&format!("/run/netns/fl-{name}-n1")).exists());
    assert!(Path::new(&format!("/sys/class/net/{veth}")).exists());

    assert!(cluster::down(&name).unwrap(), "the cluster existed");
    for ns in ["n1", "n2", "br"] {
        assert!(
            !Path::new(&format!("/run/netns/fl-{name}-{ns}")).exists(),
            "netns {ns} left behind"
        );
    }
    assert!(
        !Path::new(&format!("/sys/class/net/{veth}")).exists(),
        "veth {veth} left behind"
    );
    assert!(
        !cluster::clusters_dir().join(&name).exists(),
        "state dir left behind"
    );
    assert!(
        !Path::new(&format!("/run/faultline/{name}")).exists(),
        "namespace files left behind"
    );
    std::thread::sleep(Duration::from_millis(100));
    let zombie_or_gone =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "));
    assert!(zombie_or_gone, "the process in n1 survived down");
    assert!(
        !cluster::down(&name).unwrap(),
        "second down finds nothing to do"
    );
    assert!(matches!(
        cluster::open(&name),
        Err(cluster::ClusterError::NotFound(..))
    ));
    drop(guard);
}

#[test]
fn netns_up_refuses_a_taken_name_and_bad_names() {
    let name = unique("tdup");
    let (_c, _guard) = up(&name, 1);
    let opts = UpOptions {
        name: name.clone(),
        backend: Backend::Netns,
        nodes: 1,
        ssh: false,
        disk_faults: false,
        binary: "/x".into(),
    };
    let e = cluster::up(&opts)
        .err()
        .expect("a second cluster with the same name");
    assert!(e.to_string().contains("already exists"), "{e}");
    let bad = UpOptions {
        name: "Bad_Name".into(),
        ..opts
    };
    assert!(matches!(
        cluster::up(&bad),
        Err(cluster::ClusterError::BadName(_))
    ));
    // The refused `up` must not have touched the existing cluster.
    assert!(
        cluster::open(&name).unwrap().hosts[0]
            .remote
            .run("true", T)
            .is_ok()
    );
}

#[test]
fn netns_down_finishes_what_a_half_removed_cluster_left() {
    // As after a crash or a hand-made mess: some resources are already gone.
    let name = unique("thalf");
    let (_c, _guard) = up(&name, 2);
    let state = cluster::State::load(&name).unwrap();
    let veth = state
        .resources
        .iter()
        .find_map(|r| match r {
            cluster::Resource::Veth { name } => Some(name.clone()),
            _ => None,
        })
        .unwrap();
    let run = |args: &[&str]| {
        assert!(
            std::process::Command::new("ip")
                .args(args)
                .status()
                .unwrap()
                .success()
        )
    };
    run(&["link", "del", &veth]);
    run(&["netns", "del", &format!("fl-{name}-n2")]);
    assert!(cluster::down(&name).unwrap());
    assert!(!Path::new(&format!("/run/netns/fl-{name}-n1")).exists());
    assert!(!Path::new(&format!("/run/netns/fl-{name}-br")).exists());
    assert!(!cluster::clusters_dir().join(&name).exists());
}
