//! `faultline serve`: a read-only HTTP server over the results folder, so
//! reports can be opened from another machine's browser through an SSH
//! tunnel, or by a CI artifact viewer. GET and HEAD only.
//!
//! HTTP is hyper's (HTTP/1.1 with keep-alive on tokio, one task per
//! connection and no cap on their number; a request head is limited in size
//! and must arrive within [`HEAD_TIMEOUT`], which also closes connections
//! left idle; a response that the client stops reading for
//! [`WRITE_TIMEOUT`] is cut, by tokio-io-timeout). Files are sent by tower-http's `ServeFile` (streamed, with
//! Range and If-Modified-Since). Its `ServeDir` is not used: it follows
//! symlinks out of its root and lists no folders. What is ours: which file a
//! path names, the listings, the redirects.
//!
//! Containment: a request path is percent-decoded, any `..` segment is
//! refused, and the file it names is canonicalised (symlinks resolved) and
//! must lie under the canonical root; anything else is 403 or 404.
//! Directory listings exist only inside the root. A redirect's Location is
//! rebuilt from the path's normalised segments, so it is always a path on
//! this host (never `//host/`). By default it binds to 127.0.0.1 only.

use super::html::{Esc, rel_url};
use super::page::CSS;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::ffi::OsStr;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio_io_timeout::TimeoutStream;
use tower_http::services::ServeFile;
use tower_service::Service;

/// Where `serve` listens unless told otherwise: this machine only.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// A request head (request line and headers) must arrive within this long
/// of the connection opening or of the previous response: slow senders and
/// idle keep-alive connections are closed after it.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A response that makes no progress for this long (the client stopped
/// reading) is cut and its connection closed.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// The request head is at most this long; longer gets 431.
const HEAD_BYTES_MAX: usize = 16 * 1024;
const HEADERS_MAX: usize = 100;
/// Connections waiting to be accepted; the kernel caps it at somaxconn.
const BACKLOG: u32 = 1024;
/// After a failed accept (out of file descriptors, most likely), wait this
/// long for connections to close rather than spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);
/// A directory listing shows at most this many entries.
const LISTING_MAX: usize = 5_000;

/// Every response's body: a file being streamed or a small page.
type Body = UnsyncBoxBody<Bytes, io::Error>;

/// A bound server; [`Server::run`] serves until stopped.
pub struct Server {
    runtime: tokio::runtime::Runtime,
    listener: TcpListener,
    root: PathBuf,
    stop: Arc<Notify>,
    timeouts: Timeouts,
}

#[derive(Clone, Copy)]
struct Timeouts {
    head: Duration,
    write: Duration,
}

/// Stops a running server from another thread.
#[derive(Clone)]
pub struct Stopper {
    stop: Arc<Notify>,
}

impl Stopper {
    /// Stops accepting connections; [`Server::run`] then returns, and the
    /// connections still open are closed.
    pub fn stop(&self) {
        // A permit is kept if `run` is not waiting yet, so no stop is lost.
        self.stop.notify_one();
    }
}

impl Server {
    /// Binds `addr` (`127.0.0.1:8080`, `[::1]:0`, ...) over the folder `root`.
    pub fn bind(addr: &str, root: &Path) -> io::Result<Server> {
        let root = std::fs::canonicalize(root)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", root.display())))?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: not a directory", root.display()),
            ));
        }
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|e| io::Error::new(e.kind(), format!("--bind {addr}: {e}")))?
            .collect();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("faultline-serve")
            .build()?;
        let listener = runtime
            .block_on(listen(&addrs))
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        Ok(Server {
            runtime,
            listener,
            root,
            stop: Arc::new(Notify::new()),
            timeouts: Timeouts {
                head: HEAD_TIMEOUT,
                write: WRITE_TIMEOUT,
            },
        })
    }

    /// Replaces [`HEAD_TIMEOUT`] and [`WRITE_TIMEOUT`] (tests use short ones).
    pub fn timeouts(mut self, head: Duration, write: Duration) -> Server {
        self.timeouts = Timeouts { head, write };
        self
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn stopper(&self) -> io::Result<Stopper> {
        Ok(Stopper {
            stop: self.stop.clone(),
        })
    }

    /// Serves until stopped.
    pub fn run(self) -> io::Result<()> {
        let Server {
            runtime,
            listener,
            root,
            stop,
            timeouts,
        } = self;
        let root = Arc::new(root);
        runtime.block_on(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop.notified() => break,
                    accepted = listener.accept() => accepted,
                };
                match accepted {
                    Ok((stream, _)) => {
                        tokio::spawn(connection(stream, root.clone(), timeouts));
                    }
                    Err(e) => {
                        tracing::warn!("serve: accept: {e}");
                        tokio::time::sleep(ACCEPT_RETRY).await;
                    }
                }
            }
        });
        // Open connections are dropped with the runtime.
        runtime.shutdown_timeout(Duration::from_secs(1));
        Ok(())
    }
}

/// Listens on the first of `addrs` that binds, with a backlog large enough
/// for a burst of connections.
async fn listen(addrs: &[SocketAddr]) -> io::Result<TcpListener> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address");
    for addr in addrs {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(*addr).and_then(|()| socket.listen(BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Serves the requests of one connection until it closes, errs or times out.
async fn connection(stream: TcpStream, root: Arc<PathBuf>, timeouts: Timeouts) {
    let _ = stream.set_nodelay(true);
    let mut stream = TimeoutStream::new(stream);
    stream.set_write_timeout(Some(timeouts.write));
    let service = hyper::service::service_fn(move |req| {
        let root = root.clone();
        async move { Ok::<_, Infallible>(respond(root, req).await) }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.head)
        .max_header_size(HEAD_BYTES_MAX)
        .max_headers(HEADERS_MAX)
        .serve_connection(TokioIo::new(Box::pin(stream)), service)
        .await;
    if let Err(e) = served {
        tracing::debug!("serve: connection: {e}");
    }
}

/// What a request path resolves to.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    File(PathBuf),
    /// A directory named with its trailing slash.
    Dir(PathBuf),
    /// A directory named without its trailing slash: redirect to this
    /// path, rebuilt from the normalised segments (it starts with exactly
    /// one `/`, so it never names another host).
    AddSlash(String),
    NotFound,
    Forbidden,
    BadRequest,
}

/// Decodes `%XX`; `None` on a malformed escape.
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Maps a request target to a file under `root` (canonical), or refuses.
pub fn resolve(root: &Path, target: &str) -> Resolved {
    let path = target.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return Resolved::BadRequest;
    }
    let Some(decoded) = percent_decode(path) else {
        return Resolved::BadRequest;
    };
    if decoded.contains(&0) || decoded.contains(&b'\\') {
        return Resolved::BadRequest;
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    for seg in decoded.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => return Resolved::Forbidden,
            seg => segments.push(seg),
        }
    }
    let rel: PathBuf = segments.iter().map(|s| OsStr::from_bytes(s)).collect();
    debug_assert!(rel.components().all(|c| matches!(c, Component::Normal(_))));
    let full = match std::fs::canonicalize(root.join(&rel)) {
        Ok(p) => p,
        Err(_) => return Resolved::NotFound,
    };
    if !full.starts_with(root) {
        return Resolved::Forbidden;
    }
    if full.is_dir() {
        if path.ends_with('/') {
            Resolved::Dir(full)
        } else {
            Resolved::AddSlash(dir_location(&segments))
        }
    } else if full.is_file() {
        Resolved::File(full)
    } else {
        Resolved::NotFound
    }
}

/// `/a/b/` from the segments `a`, `b`, each percent-encoded so that none
/// can add a `/`, `\`, `?` or `#`: one leading slash and never two.
fn dir_location(segments: &[&[u8]]) -> String {
    let mut out = String::from("/");
    for seg in segments {
        debug_assert!(!seg.is_empty(), "empty segments are dropped");
        for &b in *seg {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out.push('/');
    }
    debug_assert!(!out.starts_with("//"));
    out
}

/// The Content-Type of a file, by its extension. Logs, histories and YAML
/// are shown as text in the browser.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "xml" => "application/xml",
        "gz" => "application/gzip",
        "jsonl" | "ndjson" | "log" | "txt" | "yaml" | "yml" | "edn" | "dot" | "out" | "err"
        | "md" | "csv" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// What to answer, decided off the async threads (it reads the disk).
enum Answer {
    File(PathBuf),
    Listing(String),
    Redirect(String),
    Refuse(StatusCode, &'static str),
}

fn answer(root: &Path, path: &str) -> Answer {
    match resolve(root, path) {
        Resolved::BadRequest => Answer::Refuse(StatusCode::BAD_REQUEST, "bad path"),
        Resolved::Forbidden => Answer::Refuse(StatusCode::FORBIDDEN, "outside the results folder"),
        Resolved::NotFound => Answer::Refuse(StatusCode::NOT_FOUND, "no such file"),
        Resolved::AddSlash(location) => Answer::Redirect(location),
        Resolved::File(file) => Answer::File(file),
        Resolved::Dir(dir) => {
            // index.html is served like any file: only if it lies inside.
            match std::fs::canonicalize(dir.join("index.html")) {
                Ok(index) if index.starts_with(root) && index.is_file() => Answer::File(index),
                Ok(_) if dir.join("index.html").exists() => Answer::Refuse(
                    StatusCode::FORBIDDEN,
                    "index.html leads outside the results folder",
                ),
                _ => Answer::Listing(listing(root, &dir)),
            }
        }
    }
}

async fn respond(root: Arc<PathBuf>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let mut response = if req.method() == Method::GET || req.method() == Method::HEAD {
        let path = req.uri().path().to_string();
        match tokio::task::spawn_blocking(move || answer(&root, &path)).await {
            Ok(Answer::File(file)) => send_file(&file, req).await,
            Ok(Answer::Listing(html)) => {
                let mut r = page(StatusCode::OK, "text/html; charset=utf-8", html);
                r.headers_mut().insert(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
                );
                r
            }
            Ok(Answer::Redirect(location)) => {
                let mut r = page(StatusCode::MOVED_PERMANENTLY, "text/plain", String::new());
                match HeaderValue::from_str(&location) {
                    Ok(v) => {
                        r.headers_mut().insert(header::LOCATION, v);
                        r
                    }
                    // Cannot happen: the location is percent-encoded ASCII.
                    Err(_) => refuse(StatusCode::BAD_REQUEST, "bad path"),
                }
            }
            Ok(Answer::Refuse(status, why)) => refuse(status, why),
            Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "failed"),
        }
    } else {
        let mut r = refuse(StatusCode::METHOD_NOT_ALLOWED, "GET and HEAD only");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        r
    };
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Streams `file` (HEAD, Range and If-Modified-Since as the request asks).
async fn send_file(file: &Path, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let Ok(mime) = content_type(file).parse::<mime::Mime>() else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "content type");
    };
    match ServeFile::new_with_mime(file, &mime).call(req).await {
        Ok(r) => r.map(|body| body.boxed_unsync()),
        Err(never) => match never {},
    }
}

fn page(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn refuse(status: StatusCode, why: &str) -> Response<Body> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = format!("{} {reason}: {why}\n", status.as_u16());
    page(status, "text/plain; charset=utf-8", body)
}

/// An HTML listing of `dir`, which lies inside `root`. Entries whose
/// symlinks lead outside the root are left out.
fn listing(root: &Path, dir: &Path) -> String {
    let rel = dir.strip_prefix(root).unwrap_or(Path::new(""));
    let title = format!("/{}", rel.display());
    let mut entries: Vec<(String, bool)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let target = std::fs::canonicalize(e.path()).ok()?;
                    target.starts_with(root).then(|| {
                        (
                            e.file_name().to_string_lossy().into_owned(),
                            target.is_dir(),
                        )
                    })
                })
                .take(LISTING_MAX)
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    let mut out = format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{}</title><style>{CSS}</style></head><body><header class="top"><span class="brand">faultline</span><h1>{}</h1></header><main><ul class="files" style="columns:1">"#,
        Esc(&title),
        Esc(&title)
    );
    if !rel.as_os_str().is_empty() {
        out.push_str(r#"<li><a href="../">../</a></li>"#);
    }
    for (name, is_dir) in entries {
        let slash = if is_dir { "/" } else { "" };
        out.push_str(&format!(
            r#"<li><a href="{}{slash}">{}{slash}</a></li>"#,
            rel_url(&[&name]),
            Esc(&name)
        ));
    }
    out.push_str("</ul></main></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_inside_and_refuses_traversal() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("t/run")).unwrap();
        std::fs::write(root.join("t/run/report.html"), "x").unwrap();
        assert_eq!(
            resolve(&root, "/t/run/report.html?x=1"),
            Resolved::File(root.join("t/run/report.html"))
        );
        assert_eq!(
            resolve(&root, "/t/run"),
            Resolved::AddSlash("/t/run/".into())
        );
        assert_eq!(resolve(&root, "/t/run/"), Resolved::Dir(root.join("t/run")));
        assert_eq!(resolve(&root, "/../etc/passwd"), Resolved::Forbidden);
        assert_eq!(
            resolve(&root, "/t/%2e%2e/%2E%2E/etc/passwd"),
            Resolved::Forbidden
        );
        assert_eq!(resolve(&root, "/t/..%2f..%2fetc"), Resolved::Forbidden);
        assert_eq!(resolve(&root, "/a%00b"), Resolved::BadRequest);
        assert_eq!(resolve(&root, "/a%zz"), Resolved::BadRequest);
        assert_eq!(resolve(&root, "http://x/etc"), Resolved::BadRequest);
        assert_eq!(resolve(&root, "/nope"), Resolved::NotFound);
    }

    #[test]
    fn a_redirect_names_a_path_on_this_host() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("evil.example/a b")).unwrap();
        for (target, want) in [
            ("//evil.example", "/evil.example/"),
            ("/%2F/evil.example", "/evil.example/"),
            ("/./evil.example/./a%20b?q", "/evil.example/a%20b/"),
            ("//evil.example//a b", "/evil.example/a%20b/"),
        ] {
            assert_eq!(
                resolve(&root, target),
                Resolved::AddSlash(want.into()),
                "{target}"
            );
        }
        assert_eq!(dir_location(&[b"x?y#z\\"]), "/x%3Fy%23z%5C/");
    }

    #[test]
    fn content_types() {
        for (file, want) in [
            ("report.html", "text/html; charset=utf-8"),
            ("results.json", "application/json"),
            ("history.jsonl", "text/plain; charset=utf-8"),
            ("graph.svg", "image/svg+xml"),
            ("junit.xml", "application/xml"),
            ("node.log", "text/plain; charset=utf-8"),
            ("test.yaml", "text/plain; charset=utf-8"),
            ("notes.txt", "text/plain; charset=utf-8"),
            ("report.css", "text/css; charset=utf-8"),
            ("report.js", "text/javascript; charset=utf-8"),
            ("shot.png", "image/png"),
            ("x.bin", "application/octet-stream"),
        ] {
            assert_eq!(content_type(Path::new(file)), want, "{file}");
            assert!(want.parse::<mime::Mime>().is_ok(), "{want}");
        }
    }
}
