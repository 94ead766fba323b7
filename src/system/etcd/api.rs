//! etcd's v3 API as its JSON gateway serves it (etcd 3.4: `POST /v3/kv/range`
//! and so on, bodies in the protobuf JSON mapping: keys and values base64,
//! 64-bit integers as strings). What requests look like and what answers
//! mean, as pure functions the client and the `Db` share; no I/O but
//! [`post_blocking`], the `Db`'s small HTTP/1.1 call for status and
//! membership. Using the gateway keeps the user's machine free of protoc.
//!
//! Not here: which operation becomes which request (`client.rs`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The longest answer read (a set read of every element is the largest).
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// `s` as the gateway wants bytes.
pub fn b64(s: &str) -> String {
    STANDARD.encode(s.as_bytes())
}

/// Bytes the gateway sent, as text.
pub fn unb64(s: &str) -> Result<String, String> {
    let bytes = STANDARD
        .decode(s)
        .map_err(|e| format!("bad base64 {s:?}: {e}"))?;
    String::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))
}

/// An error answer of the gateway: a gRPC status code and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    /// The gRPC code (3 invalid argument, 14 unavailable, ...); `None` when
    /// the answer was not the gateway's JSON (a proxy, a cut body).
    pub code: Option<i64>,
    pub message: String,
}

impl GatewayError {
    /// True when etcd certainly did not apply the request: it was refused
    /// before being proposed (invalid argument, not found — a lease that
    /// expired —, permission, too many requests, compacted revision). Any
    /// other error (a timeout inside etcd, leader lost after proposing,
    /// unavailable) may hide an applied write.
    pub fn definite(&self) -> bool {
        matches!(self.code, Some(3 | 5 | 7 | 8 | 11 | 16))
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(code) => write!(f, "etcd error {code}: {}", self.message),
            None => write!(f, "etcd answered: {}", self.message),
        }
    }
}

/// The JSON body of an answer with HTTP status `status`, or the error it says.
pub fn parse_answer(status: u16, body: &[u8]) -> Result<Value, GatewayError> {
    let value: Result<Value, _> = serde_json::from_slice(body);
    match value {
        Ok(v) if status == 200 && v.get("error").is_none() => Ok(v),
        Ok(v) => Err(GatewayError {
            code: v.get("code").and_then(Value::as_i64),
            message: v
                .get("message")
                .or_else(|| v.get("error"))
                .and_then(Value::as_str)
                .map_or_else(|| format!("HTTP {status}"), str::to_string),
        }),
        Err(_) => Err(GatewayError {
            code: None,
            message: format!(
                "HTTP {status}: {}",
                crate::history::text::excerpt(&String::from_utf8_lossy(body))
            ),
        }),
    }
}

/// An int64 of the protobuf JSON mapping: a string, or a number; absent is 0.
pub fn int(v: &Value, field: &str) -> Result<i64, String> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(s)) => s.parse().map_err(|_| format!("{field}: {s:?}")),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| format!("{field}: {n}")),
        Some(other) => Err(format!("{field}: {other}")),
    }
}

/// A uint64 (member and leader ids), likewise.
pub fn uint(v: &Value, field: &str) -> Result<u64, String> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(s)) => s.parse().map_err(|_| format!("{field}: {s:?}")),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| format!("{field}: {n}")),
        Some(other) => Err(format!("{field}: {other}")),
    }
}

/// One key-value of a range answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: String,
    pub mod_revision: i64,
}

/// The key-values of a range answer (none when the key is absent).
pub fn kvs(range: &Value) -> Result<Vec<Kv>, String> {
    let Some(list) = range.get("kvs") else {
        return Ok(Vec::new());
    };
    let list = list.as_array().ok_or("kvs is not a list")?;
    list.iter()
        .map(|kv| {
            let text = |f: &str| {
                kv.get(f)
                    .and_then(Value::as_str)
                    .map_or(Ok(String::new()), unb64)
            };
            Ok(Kv {
                key: text("key")?,
                value: text("value")?,
                mod_revision: int(kv, "mod_revision")?,
            })
        })
        .collect()
}

/// `/v3/kv/range` of one key; `serializable` lets the member answer from
/// its own state without asking the leader (possibly stale).
pub fn range(key: &str, serializable: bool) -> Value {
    let mut r = json!({"key": b64(key)});
    if serializable {
        r["serializable"] = json!(true);
    }
    r
}

/// `/v3/kv/range` of every key starting with `prefix`.
pub fn range_prefix(prefix: &str, serializable: bool) -> Value {
    debug_assert!(!prefix.is_empty() && prefix.is_ascii());
    let mut end = prefix.as_bytes().to_vec();
    // The range end is the prefix with its last byte one higher.
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let mut r = range(prefix, serializable);
    r["range_end"] = json!(STANDARD.encode(&end));
    r
}

/// `/v3/kv/put`.
pub fn put(key: &str, value: &str) -> Value {
    json!({"key": b64(key), "value": b64(value)})
}

/// A txn compare: the key's value equals `value` (false when it is absent).
pub fn value_equals(key: &str, value: &str) -> Value {
    json!({"key": b64(key), "target": "VALUE", "result": "EQUAL", "value": b64(value)})
}

/// A txn compare: the key was last modified at `revision` (0: it is absent).
pub fn mod_revision_equals(key: &str, revision: i64) -> Value {
    json!({"key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": revision.to_string()})
}

/// `/v3/kv/txn`: if every compare holds, the success requests.
pub fn txn(compares: Vec<Value>, success: Vec<Value>) -> Value {
    json!({"compare": compares, "success": success})
}

/// A put inside a txn.
pub fn request_put(key: &str, value: &str) -> Value {
    json!({"request_put": put(key, value)})
}

/// A range inside a txn.
pub fn request_range(key: &str, serializable: bool) -> Value {
    json!({"request_range": range(key, serializable)})
}

/// Whether a txn's compares held (the gateway leaves `false` out).
pub fn succeeded(txn: &Value) -> bool {
    txn.get("succeeded")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The range answers of a txn, in order.
pub fn txn_ranges(txn: &Value) -> Result<Vec<Vec<Kv>>, String> {
    let Some(list) = txn.get("responses") else {
        return Ok(Vec::new());
    };
    list.as_array()
        .ok_or("responses is not a list")?
        .iter()
        .filter_map(|r| r.get("response_range"))
        .map(kvs)
        .collect()
}

/// `/v3/maintenance/status`: this member's id and the leader it knows (0: none).
pub fn member_and_leader(status: &Value) -> Result<(u64, u64), String> {
    let member = status
        .get("header")
        .map(|h| uint(h, "member_id"))
        .transpose()?
        .unwrap_or(0);
    Ok((member, uint(status, "leader")?))
}

/// One POST to `addr` from blocking code (the `Db`'s status and membership
/// calls): HTTP/1.1 with `Connection: close`, the answer read to its end
/// (a length-delimited or a chunked body).
pub fn post_blocking(
    addr: SocketAddr,
    path: &str,
    body: &Value,
    timeout: Duration,
) -> Result<Value, String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| format!("{e}"))?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| format!("{e}"))?;
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("{e}"))?;
    let mut answer = Vec::new();
    stream
        .take(MAX_BODY_BYTES as u64)
        .read_to_end(&mut answer)
        .map_err(|e| format!("{e}"))?;
    let (status, body) = split_http(&answer)?;
    parse_answer(status, &body).map_err(|e| e.to_string())
}

/// The status and body of a whole HTTP/1.1 answer.
fn split_http(answer: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of the answer's head")?;
    let head = String::from_utf8_lossy(&answer[..end]);
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {:?}", head.lines().next().unwrap_or("")))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let rest = &answer[end + 4..];
    if !chunked {
        return Ok((status, rest.to_vec()));
    }
    let mut body = Vec::new();
    let mut at = 0;
    // Each chunk: its size in hex, CRLF, the bytes, CRLF; a size of 0 ends.
    while let Some(eol) = rest[at..].windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&rest[at..at + eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        at += eol + 2;
        if size == 0 || at + size > rest.len() {
            break;
        }
        body.extend_from_slice(&rest[at..at + size]);
        at += size + 2;
    }
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_travel_as_base64_and_come_back_as_text() {
        assert_eq!(put("r/1", "5"), json!({"key": "ci8x", "value": "NQ=="}));
        let answer = json!({"header": {"revision": "3"}, "kvs": [
            {"key": "ci8x", "create_revision": "2", "mod_revision": "3", "version": "2", "value": "NQ=="}
        ], "count": "1"});
        assert_eq!(
            kvs(&answer).unwrap(),
            vec![Kv {
                key: "r/1".into(),
                value: "5".into(),
                mod_revision: 3
            }]
        );
        // An absent key: no kvs at all.
        assert_eq!(kvs(&json!({"header": {}})).unwrap(), vec![]);
        assert!(kvs(&json!({"kvs": [{"key": "!!"}]})).is_err());
    }

    #[test]
    fn a_prefix_range_ends_after_the_last_key_with_that_prefix() {
        let r = range_prefix("s/", true);
        assert_eq!(r["key"], json!(b64("s/")));
        assert_eq!(r["range_end"], json!(b64("s0")));
        assert_eq!(r["serializable"], json!(true));
        assert!(range("r/1", false).get("serializable").is_none());
    }

    #[test]
    fn a_txn_compares_and_puts_and_its_answer_says_whether_it_held() {
        let t = txn(
            vec![mod_revision_equals("a/1", 0), value_equals("r/2", "3")],
            vec![request_put("a/1", "[4]"), request_range("a/1", false)],
        );
        assert_eq!(t["compare"][0]["target"], "MOD");
        assert_eq!(t["compare"][0]["mod_revision"], "0");
        assert_eq!(t["compare"][1]["value"], json!(b64("3")));
        assert_eq!(t["success"][0]["request_put"]["value"], json!(b64("[4]")));
        assert!(!succeeded(&json!({"header": {}})));
        let answer = json!({"succeeded": true, "responses": [
            {"response_put": {}},
            {"response_range": {"kvs": [{"key": "YS8x", "value": "WzRd", "mod_revision": "9"}]}}
        ]});
        assert!(succeeded(&answer));
        let ranges = txn_ranges(&answer).unwrap();
        assert_eq!(ranges.len(), 1);
        assert_eq!(ranges[0][0].value, "[4]");
        assert_eq!(ranges[0][0].mod_revision, 9);
    }

    #[test]
    fn errors_are_definite_only_when_etcd_refused_before_proposing() {
        let bad = parse_answer(
            400,
            br#"{"error":"illegal base64 data","message":"illegal base64 data","code":3}"#,
        )
        .unwrap_err();
        assert_eq!(bad.code, Some(3));
        assert!(bad.definite());
        let timeout = parse_answer(
            503,
            br#"{"error":"etcdserver: request timed out","message":"etcdserver: request timed out","code":14}"#,
        )
        .unwrap_err();
        assert!(
            !timeout.definite(),
            "a timed out proposal may have committed"
        );
        let leader_lost =
            parse_answer(500, br#"{"message":"etcdserver: leader changed","code":2}"#).unwrap_err();
        assert!(!leader_lost.definite());
        let proxy = parse_answer(502, b"<html>bad gateway</html>").unwrap_err();
        assert_eq!(proxy.code, None);
        assert!(!proxy.definite());
        assert_eq!(
            parse_answer(200, br#"{"header":{}}"#).unwrap(),
            json!({"header": {}})
        );
    }

    #[test]
    fn status_names_the_member_and_the_leader_it_knows() {
        let s = json!({"header": {"member_id": "13668033151171901709"}, "leader": "13668033151171901709"});
        assert_eq!(
            member_and_leader(&s).unwrap(),
            (13668033151171901709, 13668033151171901709)
        );
        assert_eq!(
            member_and_leader(&json!({"header": {"member_id": "7"}})).unwrap(),
            (7, 0)
        );
    }

    #[test]
    fn whole_answers_are_split_plain_or_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(split_http(plain).unwrap(), (200, b"{}".to_vec()));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(split_http(chunked).unwrap(), (200, b"{\"a\":1}".to_vec()));
        assert!(split_http(b"garbage").is_err());
    }
}
