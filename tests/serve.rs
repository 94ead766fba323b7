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
    run(Server::bind(bind, root).unwrap())
}

fn run(server: Server) -> Running {
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
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
    )
}

/// One GET on a new connection: status and body, or what went wrong (for
/// tests that count failures rather than stop at the first).
fn try_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let raw = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(raw.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| format!("read: {e}"))?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no response head in {} bytes", buf.len()))?;
    let status = String::from_utf8_lossy(&buf[..split])
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    Ok((
        status,
        String::from_utf8_lossy(&buf[split + 4..]).into_owned(),
    ))
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
    std::fs::write(run.join(r#"<img src=x onerror="alert('x')">&.txt"#), "").unwrap();
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
    // A folder whose index.html leads out.
    std::fs::create_dir(root.path().join("trap")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        root.path().join("trap/index.html"),
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
        &format!("HEAD {run}/report.html HTTP/1.1\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-length"), Some("28"));
    assert!(body.is_empty(), "HEAD has no body");

    let (status, h, _) = get(srv.addr, "/raft-register");
    assert_eq!(status, 301);
    assert_eq!(header(&h, "location"), Some("/raft-register/"));
    let (status, _, body) = get(srv.addr, &format!("{run}/"));
    let listing = String::from_utf8(body).unwrap();
    assert_eq!(status, 200);
    assert!(
        listing.contains("&lt;img src=x onerror=&quot;alert(&#39;x&#39;)&quot;&gt;&amp;.txt")
            && listing.contains(
                r#"href="%3Cimg%20src%3Dx%20onerror%3D%22alert%28%27x%27%29%22%3E%26.txt""#
            )
            && !listing.contains("<img"),
        "names are escaped: {listing}"
    );
    let (status, _, body) = get(srv.addr, "/");
    let listing = String::from_utf8(body).unwrap();
    assert_eq!(status, 200);
    assert!(listing.contains("href=\"raft-register/\""), "{listing}");
    assert!(
        !listing.contains("outside-link") && !listing.contains("escape.txt"),
        "links leading out are not listed"
    );

    let (status, h, _) = request(
        srv.addr,
        "POST / HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 405);
    assert_eq!(header(&h, "allow"), Some("GET, HEAD"));
    let big = format!(
        "GET / HTTP/1.1\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(20_000)
    );
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
        "/trap/".into(),
        "/trap/index.html".into(),
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
        get(srv.addr, "/trap/").0,
        403,
        "a folder's index.html leading out is forbidden"
    );
    assert_eq!(
        get(srv.addr, "/%2e%2e/x").0,
        403,
        "an encoded `..` is refused"
    );
}

/// Where a browser would go on a redirect with this Location from
/// `http://127.0.0.1:PORT/`: `None` when it stays on the same host (a path
/// starting with one `/`), else the Location itself.
fn off_host(location: &str) -> Option<&str> {
    let b = location.as_bytes();
    let same_host = b.first() == Some(&b'/') && !matches!(b.get(1), Some(b'/' | b'\\'));
    (!same_host).then_some(location)
}

#[test]
fn a_path_with_leading_slashes_never_redirects_to_another_host() {
    let (_root, _outside, root) = results_tree();
    // A folder named like a host, so `//evil.example` names a directory.
    std::fs::create_dir(root.join("evil.example")).unwrap();
    let srv = start("127.0.0.1:0", &root);
    let cases = [
        ("//evil.example", "/evil.example/"),
        ("///evil.example", "/evil.example/"),
        ("//raft-register", "/raft-register/"),
        ("//raft-register/latest", "/raft-register/latest/"),
        ("/%2Fevil.example", "/evil.example/"),
        ("/./evil.example", "/evil.example/"),
        ("/raft-register", "/raft-register/"),
    ];
    for (path, want) in cases {
        let (status, h, _) = get(srv.addr, path);
        let location = header(&h, "location");
        if let Some(location) = location {
            assert_eq!(off_host(location), None, "GET {path}: Location {location}");
        }
        assert_eq!((status, location), (301, Some(want)), "GET {path}");
    }
    // A directory reached with its slash, however many leading slashes: no redirect.
    let (status, h, _) = get(srv.addr, "//evil.example/");
    assert_eq!((status, header(&h, "location")), (200, None));
}

/// A stop flag for helper threads, raised on drop (also when an assertion
/// fails), so every loop below ends.
struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn idle_and_slow_connections_do_not_lock_others_out() {
    const IDLE: usize = 500;
    const SLOW: usize = 5;
    let (_root, _outside, root) = results_tree();
    let srv = start("127.0.0.1:0", &root);
    let run = "/raft-register/20260101T000000.000Z";
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let _stop_helpers = StopOnDrop(&stop);
        // Connections that connect and send nothing.
        let idle: Vec<TcpStream> = (0..IDLE)
            .map(|_| TcpStream::connect_timeout(&srv.addr, Duration::from_secs(5)).unwrap())
            .collect();
        // Connections that send a request head one header line at a time.
        for _ in 0..SLOW {
            let (addr, stop) = (srv.addr, &stop);
            scope.spawn(move || {
                let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
                    return;
                };
                let _ = s.write_all(b"GET / HTTP/1.1\r\n");
                for i in 0..600 {
                    if stop.load(std::sync::atomic::Ordering::SeqCst)
                        || s.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                            .is_err()
                    {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
        std::thread::sleep(Duration::from_millis(300));
        let got = try_get(srv.addr, &format!("{run}/report.html"));
        assert_eq!(
            got,
            Ok((200, "<!DOCTYPE html><p>report</p>".to_string())),
            "a normal GET with {IDLE} idle and {SLOW} slow connections open"
        );
        drop(idle);
    });
}

#[test]
fn idle_slow_and_stalled_connections_are_closed_after_their_timeouts() {
    let (_root, _outside, root) = results_tree();
    let run_dir = root.join("raft-register/20260101T000000.000Z");
    // Larger than what the socket buffers of both ends hold.
    const BIG_BYTES: usize = 48 << 20;
    std::fs::write(run_dir.join("big.log"), vec![b'x'; BIG_BYTES]).unwrap();
    let server = Server::bind("127.0.0.1:0", &root).unwrap();
    let srv = run(server.timeouts(Duration::from_secs(1), Duration::from_secs(1)));
    let connect = || {
        let s = TcpStream::connect_timeout(&srv.addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s
    };
    // Reads until the server closes: what it sent, or a client-side timeout.
    let until_closed = |s: &mut TcpStream| -> Result<Vec<u8>, std::io::Error> {
        let mut buf = Vec::new();
        match s.read_to_end(&mut buf) {
            Ok(_) => Ok(buf),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(buf),
            Err(e) => Err(e),
        }
    };

    // Sends nothing: closed without a response of substance.
    let sent = until_closed(&mut connect()).expect("the server closes an idle connection");
    assert!(!sent.starts_with(b"HTTP/1.1 200"));

    // Keeps the connection after a response: closed once idle.
    let mut s = connect();
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let sent = until_closed(&mut s).expect("the server closes an idle keep-alive connection");
    assert!(sent.starts_with(b"HTTP/1.1 200"));

    // Sends one header line every 250 ms, never ending the head: closed
    // before the 60th line (15 s), whatever the time between lines.
    let mut s = connect();
    s.set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let mut closed_after = None;
    for line in 0..60 {
        if s.write_all(format!("X-Slow-{line}: 1\r\n").as_bytes())
            .is_err()
        {
            closed_after = Some(line);
            break;
        }
        let mut byte = [0u8; 1];
        match s.read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            _ => {
                closed_after = Some(line);
                break;
            }
        }
    }
    assert!(closed_after.is_some(), "a slow request head was never cut");

    // Asks for a big file and stops reading: the response is cut.
    let mut s = connect();
    s.write_all(
        b"GET /raft-register/20260101T000000.000Z/big.log HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let sent = until_closed(&mut s).expect("the server closes a stalled connection");
    assert!(sent.starts_with(b"HTTP/1.1 200"));
    assert!(
        sent.len() < BIG_BYTES,
        "{} bytes arrived: the stalled response went on",
        sent.len()
    );
}

#[test]
fn two_thousand_gets_from_a_hundred_threads_all_get_200() {
    const THREADS: usize = 100;
    const PER_THREAD: usize = 20;
    let (_root, _outside, root) = results_tree();
    let srv = start("127.0.0.1:0", &root);
    let path = "/raft-register/20260101T000000.000Z/report.html";
    let outcomes: Vec<Result<(u16, String), String>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(|| {
                    (0..PER_THREAD)
                        .map(|_| try_get(srv.addr, path))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for o in &outcomes {
        let key = match o {
            Ok((200, body)) if body != "<!DOCTYPE html><p>report</p>" => "200, wrong body".into(),
            Ok((status, _)) => status.to_string(),
            Err(e) => e.clone(),
        };
        *counts.entry(key).or_default() += 1;
    }
    let ok = counts.get("200").copied().unwrap_or(0);
    assert_eq!(ok, THREADS * PER_THREAD, "outcomes: {counts:?}");
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
