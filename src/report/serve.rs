//! `faultline serve`: a read-only HTTP/1.1 server over the results folder,
//! so reports can be opened from another machine's browser through an SSH
//! tunnel, or by a CI artifact viewer. GET and HEAD only; one thread per
//! connection, bounded; every response closes its connection.
//!
//! Containment: a request path is percent-decoded, any `..` segment is
//! refused, and the file it names is canonicalised (symlinks resolved) and
//! must lie under the canonical root; anything else is 403 or 404.
//! Directory listings exist only inside the root. By default it binds to
//! 127.0.0.1 only.
//!
//! Not a web framework: a small request-line parser is all this needs, so no
//! new dependency.

use super::html::{Esc, rel_url};
use super::page::CSS;
use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Where `serve` listens unless told otherwise: this machine only.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Connections served at once; more get 503.
const CONNECTIONS_MAX: usize = 64;
/// The request head (request line and headers) is at most this long.
const HEAD_BYTES_MAX: usize = 16 * 1024;
const HEADERS_MAX: usize = 100;
const READ_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// A directory listing shows at most this many entries.
const LISTING_MAX: usize = 5_000;

/// A bound server; [`Server::run`] serves until stopped.
pub struct Server {
    listener: TcpListener,
    root: PathBuf,
    stop: Arc<AtomicBool>,
}

/// Stops a running server from another thread.
#[derive(Clone)]
pub struct Stopper {
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
}

impl Stopper {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
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
        let listener = TcpListener::bind(&addrs[..])
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        Ok(Server {
            listener,
            root,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn stopper(&self) -> io::Result<Stopper> {
        Ok(Stopper {
            stop: self.stop.clone(),
            addr: self.local_addr()?,
        })
    }

    /// Serves until stopped.
    pub fn run(self) -> io::Result<()> {
        let active = Arc::new(AtomicUsize::new(0));
        let root = Arc::new(self.root);
        for stream in self.listener.incoming() {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
            let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
            if active.fetch_add(1, Ordering::SeqCst) >= CONNECTIONS_MAX {
                active.fetch_sub(1, Ordering::SeqCst);
                let _ = respond_text(&mut stream, 503, "busy: too many connections", false);
                continue;
            }
            let (root, active) = (root.clone(), active.clone());
            std::thread::spawn(move || {
                let _ = handle(stream, &root);
                active.fetch_sub(1, Ordering::SeqCst);
            });
        }
        Ok(())
    }
}

/// What a request path resolves to.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    File(PathBuf),
    /// A directory, and whether the URL lacked its trailing slash.
    Dir(PathBuf, bool),
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
    let mut rel = PathBuf::new();
    for seg in decoded.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => return Resolved::Forbidden,
            seg => rel.push(OsStr::from_bytes(seg)),
        }
    }
    debug_assert!(rel.components().all(|c| matches!(c, Component::Normal(_))));
    let full = match std::fs::canonicalize(root.join(&rel)) {
        Ok(p) => p,
        Err(_) => return Resolved::NotFound,
    };
    if !full.starts_with(root) {
        return Resolved::Forbidden;
    }
    if full.is_dir() {
        Resolved::Dir(full, !path.ends_with('/'))
    } else if full.is_file() {
        Resolved::File(full)
    } else {
        Resolved::NotFound
    }
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

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn write_head(
    out: &mut impl Write,
    status: u16,
    content_type: &str,
    len: u64,
    extra: &str,
) -> io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\nCache-Control: no-cache\r\nConnection: close\r\n{extra}\r\n",
        reason(status)
    )
}

fn respond_text(out: &mut impl Write, status: u16, body: &str, head_only: bool) -> io::Result<()> {
    let body = format!("{status} {}: {body}\n", reason(status));
    write_head(
        out,
        status,
        "text/plain; charset=utf-8",
        body.len() as u64,
        "",
    )?;
    if !head_only {
        out.write_all(body.as_bytes())?;
    }
    out.flush()
}

/// Reads the request head; `Err(status)` when it is malformed or too big.
fn read_request(reader: &mut impl BufRead) -> Result<(String, String), u16> {
    let mut line = String::new();
    let mut total = 0usize;
    let mut read_line = |line: &mut String| -> Result<usize, u16> {
        line.clear();
        let n = io::Read::take(&mut *reader, (HEAD_BYTES_MAX - total + 1) as u64)
            .read_line(line)
            .map_err(|_| 400u16)?;
        total += n;
        if total > HEAD_BYTES_MAX {
            return Err(431);
        }
        Ok(n)
    };
    if read_line(&mut line)? == 0 {
        return Err(400);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if !version.starts_with("HTTP/1.") {
        return Err(400);
    }
    let (method, target) = (method.to_string(), target.to_string());
    let mut header = String::new();
    for _ in 0..HEADERS_MAX {
        if read_line(&mut header)? == 0 || header.trim().is_empty() {
            return Ok((method, target));
        }
    }
    Err(431)
}

fn handle(stream: TcpStream, root: &Path) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = io::BufWriter::new(stream);
    let (method, target) = match read_request(&mut reader) {
        Ok(r) => r,
        Err(status) => return respond_text(&mut out, status, "malformed request", false),
    };
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        write_head(
            &mut out,
            405,
            "text/plain; charset=utf-8",
            0,
            "Allow: GET, HEAD\r\n",
        )?;
        return out.flush();
    }
    match resolve(root, &target) {
        Resolved::BadRequest => respond_text(&mut out, 400, "bad path", head_only),
        Resolved::Forbidden => respond_text(&mut out, 403, "outside the results folder", head_only),
        Resolved::NotFound => respond_text(&mut out, 404, "no such file", head_only),
        Resolved::Dir(_, true) => {
            let path = target.split(['?', '#']).next().unwrap_or("/");
            // `path` came from the request line: no CR/LF can be in it.
            write_head(
                &mut out,
                301,
                "text/plain",
                0,
                &format!("Location: {path}/\r\n"),
            )?;
            out.flush()
        }
        Resolved::Dir(dir, false) => {
            let index = dir.join("index.html");
            if index.is_file() {
                send_file(&mut out, &index, head_only)
            } else {
                let body = listing(root, &dir);
                write_head(
                    &mut out,
                    200,
                    "text/html; charset=utf-8",
                    body.len() as u64,
                    "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\n",
                )?;
                if !head_only {
                    out.write_all(body.as_bytes())?;
                }
                out.flush()
            }
        }
        Resolved::File(path) => send_file(&mut out, &path, head_only),
    }
}

fn send_file(out: &mut impl Write, path: &Path, head_only: bool) -> io::Result<()> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(_) => return respond_text(out, 404, "cannot open", head_only),
    };
    let len = file.metadata()?.len();
    write_head(out, 200, content_type(path), len, "")?;
    if !head_only {
        io::copy(&mut io::Read::take(&mut file, len), out)?;
    }
    out.flush()
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
            Resolved::Dir(root.join("t/run"), true)
        );
        assert_eq!(
            resolve(&root, "/t/run/"),
            Resolved::Dir(root.join("t/run"), false)
        );
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
    fn content_types() {
        assert_eq!(
            content_type(Path::new("report.html")),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("history.jsonl")),
            "text/plain; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("results.json")), "application/json");
        assert_eq!(content_type(Path::new("shot.png")), "image/png");
        assert_eq!(content_type(Path::new("x.bin")), "application/octet-stream");
    }
}
