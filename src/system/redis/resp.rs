//! RESP2, the protocol Redis and Sentinel speak: commands out as arrays of
//! bulk strings, replies in as one of five types. Ours rather than the
//! `redis` crate's: the part faultline uses is this file, and the client
//! must know exactly when a command has left (before: a definite `fail`;
//! after: `info`), which a multiplexed, reconnecting connection hides.
//!
//! [`parse`] works on bytes already read, so the async client
//! ([`Conn`]) and the blocking control calls ([`call_blocking`]) share it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest bulk string accepted (Redis' own `proto-max-bulk-len` is
/// 512 MB; faultline's values are small numbers and short tokens).
const BULK_MAX: usize = 8 << 20;
/// The most elements of one array (a `SENTINEL master` reply has ~40).
const ARRAY_MAX: usize = 1 << 16;
/// Arrays within arrays (`SENTINEL replicas` nests two deep).
const DEPTH_MAX: usize = 8;

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(String),
    /// `-READONLY You can't write against a read only replica.`
    Error(String),
    Int(i64),
    /// `None` is the null bulk string (`$-1`): a missing key.
    Bulk(Option<Vec<u8>>),
    /// `None` is the null array (`*-1`).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// A simple or bulk string as text.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Simple(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// A flat array of strings (`SENTINEL master`'s field/value list).
    pub fn texts(&self) -> Option<Vec<String>> {
        match self {
            Reply::Array(Some(items)) => items.iter().map(Reply::text).collect(),
            _ => None,
        }
    }
}

/// A command as RESP: an array of bulk strings.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The first reply in `buf` and the bytes it took; `None` when `buf` holds
/// only part of one. An error means the stream is not RESP (or breaks a limit).
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    parse_at(buf, 0, 0)
}

fn parse_at(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Reply, usize)>, String> {
    if depth > DEPTH_MAX {
        return Err(format!("arrays nested deeper than {DEPTH_MAX}"));
    }
    let Some(end) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
        if buf.len() - at > BULK_MAX {
            return Err("a line longer than 8 MiB".into());
        }
        return Ok(None);
    };
    let line = &buf[at + 1..at + end];
    let next = at + end + 2;
    let text = || String::from_utf8_lossy(line).into_owned();
    let int = || -> Result<i64, String> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not an integer: {:?}", text()))
    };
    match buf.get(at) {
        Some(b'+') => Ok(Some((Reply::Simple(text()), next))),
        Some(b'-') => Ok(Some((Reply::Error(text()), next))),
        Some(b':') => Ok(Some((Reply::Int(int()?), next))),
        Some(b'$') => {
            let n = int()?;
            if n < 0 {
                return Ok(Some((Reply::Bulk(None), next)));
            }
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if n > BULK_MAX {
                return Err(format!("a bulk string of {n} bytes"));
            }
            if buf.len() < next + n + 2 {
                return Ok(None);
            }
            if &buf[next + n..next + n + 2] != b"\r\n" {
                return Err("a bulk string not ended by CRLF".into());
            }
            Ok(Some((
                Reply::Bulk(Some(buf[next..next + n].to_vec())),
                next + n + 2,
            )))
        }
        Some(b'*') => {
            let n = int()?;
            if n < 0 {
                return Ok(Some((Reply::Array(None), next)));
            }
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if n > ARRAY_MAX {
                return Err(format!("an array of {n} elements"));
            }
            let mut items = Vec::with_capacity(n);
            let mut pos = next;
            for _ in 0..n {
                match parse_at(buf, pos, depth + 1)? {
                    Some((item, after)) => {
                        items.push(item);
                        pos = after;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Reply::Array(Some(items)), pos)))
        }
        Some(other) => Err(format!("unknown reply type byte {other:#04x}")),
        None => Ok(None),
    }
}

/// One async connection to a Redis server or Sentinel, one command at a time.
pub struct Conn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Conn, String> {
        let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connect to {addr} timed out after {timeout:?}"))?
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    /// Sends `args` and reads its reply, all within `timeout`. An error
    /// (timeout, lost connection, garbage) leaves it unknown whether the
    /// command was applied, and the connection in an unknown state: drop it.
    pub async fn call(&mut self, args: &[&[u8]], timeout: Duration) -> Result<Reply, String> {
        let frame = encode(args);
        let read = async {
            self.stream
                .write_all(&frame)
                .await
                .map_err(|e| format!("send: {e}"))?;
            let mut chunk = [0u8; 4096];
            // Bounded by the timeout around it, and by BULK_MAX in parse.
            loop {
                if let Some((reply, used)) = parse(&self.buf)? {
                    self.buf.drain(..used);
                    return Ok(reply);
                }
                let n = self
                    .stream
                    .read(&mut chunk)
                    .await
                    .map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    return Err("connection closed".to_string());
                }
                self.buf.extend_from_slice(&chunk[..n]);
            }
        };
        match tokio::time::timeout(timeout, read).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("no reply within {timeout:?}")),
        }
    }
}

/// One command on a fresh blocking connection, every step within `timeout`
/// (the controller's calls: who is primary, is every node ready).
pub fn call_blocking(addr: SocketAddr, args: &[&str], timeout: Duration) -> Result<Reply, String> {
    let deadline = Instant::now() + timeout;
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    stream
        .set_write_timeout(Some(timeout))
        .and_then(|()| stream.write_all(&encode(&bytes)))
        .map_err(|e| format!("{addr}: send: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((reply, _)) = parse(&buf).map_err(|e| format!("{addr}: {e}"))? {
            return Ok(reply);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("{addr}: no reply within {timeout:?}"));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| format!("{addr}: {e}"))?;
        let n = stream
            .read(&mut chunk)
            .map_err(|e| format!("{addr}: read: {e}"))?;
        if n == 0 {
            return Err(format!("{addr}: connection closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        assert_eq!(
            encode(&[b"SET", b"k", b""]),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn every_reply_type_parses_and_a_partial_one_waits_for_more() {
        let whole = b"*4\r\n+OK\r\n-READONLY no\r\n:-7\r\n*2\r\n$4\r\na\r\nb\r\n$-1\r\n";
        let (reply, used) = parse(whole).unwrap().unwrap();
        assert_eq!(used, whole.len());
        assert_eq!(
            reply,
            Reply::Array(Some(vec![
                Reply::Simple("OK".into()),
                Reply::Error("READONLY no".into()),
                Reply::Int(-7),
                Reply::Array(Some(vec![
                    Reply::Bulk(Some(b"a\r\nb".to_vec())),
                    Reply::Bulk(None)
                ])),
            ]))
        );
        // Every strict prefix is incomplete, never an error or a wrong reply.
        for cut in 0..whole.len() {
            assert_eq!(parse(&whole[..cut]), Ok(None), "cut at {cut}");
        }
        // Two replies in a row: the first, and where the second starts.
        assert_eq!(parse(b":1\r\n:2\r\n").unwrap(), Some((Reply::Int(1), 4)));
        assert_eq!(parse(b"*-1\r\n").unwrap(), Some((Reply::Array(None), 5)));
    }

    #[test]
    fn garbage_and_oversized_replies_are_errors_not_panics() {
        assert!(parse(b"?what\r\n").is_err());
        assert!(parse(b":x\r\n").is_err());
        assert!(
            parse(b"$3\r\nabcde\r\n").is_err(),
            "length and CRLF disagree"
        );
        assert!(parse(b"$999999999999\r\n").is_err());
        assert!(parse(b"*99999999\r\n").is_err());
        let deep = "*1\r\n".repeat(DEPTH_MAX + 2);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
