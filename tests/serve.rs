//! `faultline serve` over real TCP: files and listings inside the results
//! folder, nothing outside it (`..`, percent-encoded traversal, symlinks
//! leading out), and by default nothing but 127.0.0.1 answers — checked in
//! process and with the real binary inside a private network namespace
//! that has a second interface.

use faultline::report::serve::{DEFAULT_BIND, Server, Stopper};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Running {
    addr: SocketAddr,
    stopper: Stopper,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stopper.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(bind: &str, root: &Path) -> Running {
    let server = Server::bind(bind, root).unwrap();
    let addr = server.local_addr().unwrap();
    let stopper = server.stopper().unwrap();
    let thread = std::thread::spawn(move || server.run().unwrap());
    Running {
        addr,
        stopper,
        thread: Some(thread),
    }
}

/// Status, headers (lower-cased names) and body of one raw request.
fn request(addr: SocketAddr, raw: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    (status, headers, buf[split + 4..].to_vec())
}

fn get(addr: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    )
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// results/ with one run, a `latest` link inside, and links leading out.
fn results_tree() -> (tempfile::TempDir, tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "TOP-SECRET").unwrap();
    let run = root.path().join("raft-register/20260101T000000.000Z");
    std::fs::create_dir_all(run.join("nodes/n1")).unwrap();
    std::fs::write(run.join("report.html"), "<!DOCTYPE html><p>report</p>").unwrap();
    std::fs::write(run.join("history.jsonl"), "{}\n").unwrap();
    std::fs::write(run.join("results.json"), "{}").unwrap();
    std::fs::write(run.join("nodes/n1/node.log"), "log").unwrap();
    std::os::unix::fs::symlink(
        "20260101T000000.000Z",
        root.path().join("raft-register/latest"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("outside-link")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        root.path().join("escape.txt"),
    )
    .unwrap();
    let root_path = root.path().to_path_buf();
    (root, outside, root_path)
}

#[test]
fn serves_files_and_listings_inside_the_folder_only() {
    let (_root, _outside, root) = results_tree();
    let srv = start("127.0.0.1:0", &root);
    let run = "/raft-register/20260101T000000.000Z";

    let (status, h, body) = get(srv.addr, &format!("{run}/report.html"));
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(body, b"<!DOCTYPE html><p>report</p>");
    assert_eq!(header(&h, "x-content-type-options"), Some("nosniff"));
    let (_, h, _) = get(srv.addr, &format!("{run}/history.jsonl"));
    assert_eq!(
        header(&h, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    let (_, h, _) = get(srv.addr, &format!("{run}/results.json"));
    assert_eq!(header(&h, "content-type"), Some("application/json"));
    let (status, _, body) = get(srv.addr, "/raft-register/latest/nodes/n1/node.log");
    assert_eq!(
        (status, body.as_slice()),
        (200, b"log".as_slice()),
        "a link inside is followed"
    );

    let (status, h, body) = request(
        srv.addr,
        &format!("HEAD {run}/report.html HTTP/1.1\r\n\r\n"),
    );
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-length"), Some("28"));
    assert!(body.is_empty(), "HEAD has no body");

    let (status, h, _) = get(srv.addr, "/raft-register");
    assert_eq!(status, 301);
    assert_eq!(header(&h, "location"), Some("/raft-register/"));
    let (status, _, body) = get(srv.addr, "/");
    let listing = String::from_utf8(body).unwrap();
    assert_eq!(status, 200);
    assert!(listing.contains("href=\"raft-register/\""), "{listing}");
    assert!(
        !listing.contains("outside-link") && !listing.contains("escape.txt"),
        "links leading out are not listed"
    );

    let (status, h, _) = request(srv.addr, "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(status, 405);
    assert_eq!(header(&h, "allow"), Some("GET, HEAD"));
    let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    assert_eq!(request(srv.addr, &big).0, 431);
    assert_eq!(request(srv.addr, "NONSENSE\r\n\r\n").0, 400);
}

#[test]
fn traversal_attempts_get_403_or_404_and_never_the_file() {
    let (_root, outside, root) = results_tree();
    let srv = start("127.0.0.1:0", &root);
    let secret_name = outside
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let attempts = [
        "/../secret.txt".to_string(),
        format!("/../{secret_name}/secret.txt"),
        "/raft-register/../../secret.txt".into(),
        format!("/%2e%2e/{secret_name}/secret.txt"),
        format!("/%2E%2E%2F{secret_name}%2Fsecret.txt"),
        format!("/raft-register/..%2f..%2f{secret_name}%2fsecret.txt"),
        format!("/.%2e/{secret_name}/secret.txt"),
        "/outside-link/secret.txt".into(),
        "/outside-link/".into(),
        "/escape.txt".into(),
        "/escape.txt%00.html".into(),
        "//etc/passwd".into(),
        "/..\\..\\etc\\passwd".into(),
        "http://localhost/../etc/passwd".into(),
    ];
    for path in &attempts {
        let (status, _, body) = get(srv.addr, path);
        assert!(
            matches!(status, 400 | 403 | 404),
            "{path}: got {status}, expected a refusal"
        );
        let body = String::from_utf8_lossy(&body);
        assert!(
            !body.contains("TOP-SECRET") && !body.contains("root:"),
            "{path} leaked: {body}"
        );
    }
    assert_eq!(
        get(srv.addr, "/outside-link/secret.txt").0,
        403,
        "a symlink leading out is forbidden"
    );
    assert_eq!(
        get(srv.addr, "/%2e%2e/x").0,
        403,
        "an encoded `..` is refused"
    );
}

#[test]
fn by_default_it_listens_on_127_0_0_1_only() {
    let default: SocketAddr = DEFAULT_BIND.parse().unwrap();
    assert_eq!(default.ip().to_string(), "127.0.0.1");
    let (_root, _outside, root) = results_tree();
    // The default address with a free port.
    let srv = start(&format!("{}:0", default.ip()), &root);
    assert_eq!(
        srv.addr.ip(),
        default.ip(),
        "bound to the loopback address, not 0.0.0.0"
    );
    assert_eq!(get(srv.addr, "/").0, 200);
    // Another address of this machine (lo holds all of 127.0.0.0/8): nothing answers.
    let other = SocketAddr::new([127, 0, 0, 2].into(), srv.addr.port());
    assert!(
        TcpStream::connect_timeout(&other, Duration::from_secs(2)).is_err(),
        "answered on {other}"
    );
}

/// A network namespace removed on drop, with the server process in it.
struct Netns {
    name: String,
    child: Option<Child>,
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn in_ns(ns: &str, script: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "bash", "-c", script])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn the_binary_with_default_options_does_not_answer_on_another_interface() {
    let pid = std::process::id();
    let name = format!("fl-serve-{pid}");
    if !Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root with iproute2"
        );
        eprintln!("SKIPPED: cannot make a network namespace (needs root and iproute2)");
        return;
    }
    let mut ns = Netns {
        name: name.clone(),
        child: None,
    };
    // A second interface with its own address, inside the private namespace only.
    let addr = format!("10.{}.{}.1", 100 + pid % 100, (pid / 100) % 250 + 1);
    let setup = format!(
        "ip link set lo up && ip link add fl0 type veth peer name fl1 && ip addr add {addr}/24 dev fl0 && ip link set fl0 up && ip link set fl1 up"
    );
    assert!(in_ns(&name, &setup), "setting up {name}");
    let (_root, _outside, root) = results_tree();
    ns.child = Some(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &name,
                env!("CARGO_BIN_EXE_faultline"),
                "serve",
            ])
            .arg(&root)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let port = DEFAULT_BIND.rsplit(':').next().unwrap();
    let probe = |host: &str| in_ns(&name, &format!("exec 3<>/dev/tcp/{host}/{port}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !probe("127.0.0.1") {
        assert!(
            Instant::now() < deadline,
            "faultline serve never answered on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(in_ns(
        &name,
        &format!("ip -o addr show dev fl0 | grep -q {addr}")
    ));
    assert!(!probe(&addr), "answered on {addr}, another interface");
}
