//! Reading histories in the formats people have: faultline's JSONL, Jepsen's
//! EDN (one op map per line as in `history.edn`, or one vector holding them
//! all as in Knossos' test data) and Jepsen's console log lines.
//!
//! Every importer yields the same [`Op`]s. Keywords become strings, vectors
//! become arrays, an EDN map's `:key` field (porcupine's kv format) is folded
//! into the value as `[key, value]`, the way keyed values look in faultline's
//! own histories. Values are otherwise kept as they are. Ops without an
//! `:index` or `:time` get their position in the file for both.

use super::edn::{self, EdnError, Parser};
use super::jsonl::{self, HistoryError, ReadHistory};
use super::op::{Op, OpType, Process};
use super::text::{decode_utf8, excerpt};
use serde_json::{Map, Value};
use std::path::Path;
use std::str::FromStr;

/// A history file's format; `Auto` looks at the first form in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Auto,
    Jsonl,
    Edn,
    JepsenLog,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Format::Auto),
            "jsonl" => Ok(Format::Jsonl),
            "edn" => Ok(Format::Edn),
            "jepsen-log" => Ok(Format::JepsenLog),
            _ => Err(format!(
                "unknown history format \"{}\": expected auto, jsonl, edn or jepsen-log",
                excerpt(s)
            )),
        }
    }
}

/// The prefix of the Jepsen console log lines that carry operations.
const JEPSEN_LOG_MARK: &str = "jepsen.util - ";

/// Reads a history file in `format`.
pub fn read_path(path: &Path, format: Format) -> Result<ReadHistory, HistoryError> {
    let format = match format {
        Format::Auto => sniff(path)?,
        f => f,
    };
    if format == Format::Jsonl {
        return jsonl::read_file(path);
    }
    let bytes = std::fs::read(path).map_err(|source| HistoryError::Io {
        path: path.into(),
        source,
    })?;
    let text = decode_utf8(bytes).map_err(|bad| HistoryError::Malformed {
        path: path.into(),
        line: bad.line,
        column: bad.column,
        message: bad.to_string(),
    })?;
    match format {
        Format::Edn => read_edn(&text, path),
        _ => read_jepsen_log(&text, path),
    }
}

/// Tells the format from the first non-blank, non-comment text of the file.
fn sniff(path: &Path) -> Result<Format, HistoryError> {
    use std::io::Read;
    let mut head = Vec::with_capacity(4096);
    std::fs::File::open(path)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
        .map_err(|source| HistoryError::Io {
            path: path.into(),
            source,
        })?;
    let head = String::from_utf8_lossy(&head);
    let first = head
        .lines()
        .enumerate()
        .find(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with(';'));
    let Some((n, line)) = first else {
        return Ok(Format::Jsonl); // an empty history
    };
    let t = line.trim_start();
    if t.starts_with("{\"") {
        return Ok(Format::Jsonl);
    }
    if t.starts_with(['{', '[', '(', '#']) {
        return Ok(Format::Edn);
    }
    // A console log may open with other lines: look for an op line anywhere in the head.
    if head.contains(JEPSEN_LOG_MARK) {
        return Ok(Format::JepsenLog);
    }
    Err(HistoryError::Malformed {
        path: path.into(),
        line: n + 1,
        column: 1,
        message:
            "cannot tell the history format (not JSONL, EDN or a Jepsen log line); pass --format"
                .into(),
    })
}

fn malformed(path: &Path, e: EdnError) -> HistoryError {
    HistoryError::Malformed {
        path: path.into(),
        line: e.line,
        column: e.column,
        message: e.message,
    }
}

/// EDN: either one vector holding every op, or a sequence of op maps (one per
/// line, as Jepsen writes them). A cut-off last form of a sequence is
/// truncation, as in JSONL.
fn read_edn(text: &str, path: &Path) -> Result<ReadHistory, HistoryError> {
    let mut out = ReadHistory::default();
    let mut p = Parser::new(text);
    if p.open_vector().map_err(|e| malformed(path, e))? {
        while let Some((value, line, column)) = p.next_item().map_err(|e| malformed(path, e))? {
            let position = out.ops.len() as u64;
            let op = op_from_map(value, position).map_err(|message| HistoryError::Malformed {
                path: path.into(),
                line,
                column,
                message,
            })?;
            out.ops.push(op);
        }
        if p.at_form().map_err(|e| malformed(path, e))? {
            let (line, column) = p.position();
            return Err(HistoryError::Malformed {
                path: path.into(),
                line,
                column,
                message: "text after the history's closing `]`".into(),
            });
        }
        return Ok(out);
    }
    while p.at_form().map_err(|e| malformed(path, e))? {
        let (line, column) = p.position();
        let value = match p.next_form() {
            Ok(v) => v,
            Err(e)
                if e.message.starts_with("unexpected end of input")
                    || e.message.starts_with("unterminated") =>
            {
                out.truncated_line = Some(line);
                return Ok(out);
            }
            Err(e) => return Err(malformed(path, e)),
        };
        let position = out.ops.len() as u64;
        let op = op_from_map(value, position).map_err(|message| HistoryError::Malformed {
            path: path.into(),
            line,
            column,
            message,
        })?;
        out.ops.push(op);
    }
    Ok(out)
}

/// Turns a Jepsen op map (keywords already strings) into an [`Op`].
fn op_from_map(value: Value, position: u64) -> Result<Op, String> {
    let Value::Object(mut m) = value else {
        return Err(format!(
            "expected an op map like {{:process 0, :type :invoke, :f :read, :value nil}}, got {}",
            excerpt(&value.to_string())
        ));
    };
    let process = match m.remove("process") {
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Process::Client)
            .ok_or_else(|| format!("`:process {n}` must be a non-negative integer"))?,
        Some(Value::String(s)) if s == "nemesis" => Process::Nemesis,
        Some(other) => {
            return Err(format!(
                "`:process` must be an integer or :nemesis, got {}",
                excerpt(&other.to_string())
            ));
        }
        None => return Err("the op has no `:process`".into()),
    };
    let kind = match m.remove("type") {
        Some(Value::String(s)) => op_type(&s).ok_or_else(|| {
            format!(
                "`:type :{}` must be one of :invoke :ok :fail :info",
                excerpt(&s)
            )
        })?,
        Some(other) => {
            return Err(format!(
                "`:type` must be a keyword, got {}",
                excerpt(&other.to_string())
            ));
        }
        None => return Err("the op has no `:type`".into()),
    };
    let f = match m.remove("f") {
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(format!(
                "`:f` must be a keyword, got {}",
                excerpt(&other.to_string())
            ));
        }
        None => return Err("the op has no `:f`".into()),
    };
    let mut value = m.remove("value").unwrap_or(Value::Null);
    if let Some(key) = m.remove("key") {
        value = Value::Array(vec![key, value]);
    }
    Ok(Op {
        index: take_u64(&mut m, "index")?.unwrap_or(position),
        time: take_u64(&mut m, "time")?.unwrap_or(position),
        process,
        kind,
        f,
        value,
        node: m.remove("node").map(|n| match n {
            Value::String(s) => s,
            other => other.to_string(),
        }),
        error: m.remove("error"),
    })
}

fn take_u64(m: &mut Map<String, Value>, field: &str) -> Result<Option<u64>, String> {
    match m.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("`:{field} {n}` must be a non-negative integer")),
        Some(other) => Err(format!(
            "`:{field}` must be an integer, got {}",
            excerpt(&other.to_string())
        )),
    }
}

fn op_type(s: &str) -> Option<OpType> {
    match s {
        "invoke" => Some(OpType::Invoke),
        "ok" => Some(OpType::Ok),
        "fail" => Some(OpType::Fail),
        "info" => Some(OpType::Info),
        _ => None,
    }
}

/// Jepsen console logs: lines like `INFO  jepsen.util - 3\t:invoke\t:cas\t[3 0]`
/// (some with spaces for tabs). Other lines are skipped.
fn read_jepsen_log(text: &str, path: &Path) -> Result<ReadHistory, HistoryError> {
    let mut out = ReadHistory::default();
    let total = text.lines().count();
    for (n, line) in text.lines().enumerate() {
        let Some(at) = line.find(JEPSEN_LOG_MARK) else {
            continue;
        };
        let rest = &line[at + JEPSEN_LOG_MARK.len()..];
        let column = at + JEPSEN_LOG_MARK.len() + 1;
        let err = |message: String| HistoryError::Malformed {
            path: path.into(),
            line: n + 1,
            column,
            message,
        };
        let mut fields = Fields(rest);
        let (Some(process), Some(kind), Some(f)) = (fields.next(), fields.next(), fields.next())
        else {
            if n + 1 == total && !text.ends_with('\n') {
                out.truncated_line = Some(n + 1);
                break;
            }
            return Err(err("expected `PROCESS\\t:TYPE\\t:F\\tVALUE`".into()));
        };
        let process = if process == ":nemesis" {
            Process::Nemesis
        } else {
            Process::Client(process.parse().map_err(|_| {
                err(format!(
                    "process `{}` is not an integer or :nemesis",
                    excerpt(process)
                ))
            })?)
        };
        let kind = kind.strip_prefix(':').and_then(op_type).ok_or_else(|| {
            err(format!(
                "type `{}` must be one of :invoke :ok :fail :info",
                excerpt(kind)
            ))
        })?;
        let f = f.strip_prefix(':').unwrap_or(f).to_string();
        let value_text = fields.0.trim(); // the rest of the line
        let value = if value_text.is_empty() {
            Value::Null
        } else {
            edn::parse(value_text).map_err(|e| {
                err(format!(
                    "bad value `{}`: {}",
                    excerpt(value_text),
                    e.message
                ))
            })?
        };
        let position = out.ops.len() as u64;
        out.ops.push(Op {
            index: position,
            time: position,
            process,
            kind,
            f,
            value,
            node: None,
            error: None,
        });
    }
    Ok(out)
}

/// Whitespace-separated fields that leave the unread rest of the line in `.0`.
struct Fields<'a>(&'a str);

impl<'a> Iterator for Fields<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let s = self.0.trim_start();
        if s.is_empty() {
            return None;
        }
        let end = s.find(char::is_whitespace).unwrap_or(s.len());
        self.0 = &s[end..];
        Some(&s[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn sniffs_and_reads_jepsen_log_lines_with_tabs_or_spaces() {
        let f = file(
            "noise\nINFO  jepsen.util - 3\t:invoke\t:cas\t[3 0]\nINFO  jepsen.util - 3   :fail   :cas    [3 0]\nINFO  jepsen.util - 4\t:info\t:write\t:timed-out\nINFO  jepsen.util - 0\t:invoke\t:read\tnil\n",
        );
        let h = read_path(f.path(), Format::Auto).unwrap();
        assert_eq!(h.ops.len(), 4);
        assert_eq!(h.ops[0].value, json!([3, 0]));
        assert_eq!((h.ops[1].kind, h.ops[1].index), (OpType::Fail, 1));
        assert_eq!(h.ops[2].value, json!("timed-out"));
        assert_eq!(h.ops[3].value, json!(null));
    }

    #[test]
    fn reads_one_vector_of_ops_with_nemesis_processes() {
        let f = file(
            "[{:process 7, :type :invoke, :f :cas, :value [2 3]}\n {:process :nemesis, :type :info, :f :kill, :value nil}]\n",
        );
        let h = read_path(f.path(), Format::Auto).unwrap();
        assert_eq!(h.ops[0].value, json!([2, 3]));
        assert_eq!(h.ops[1].process, Process::Nemesis);
        assert_eq!(h.ops[1].index, 1);
    }

    #[test]
    fn folds_the_key_field_into_the_value() {
        let f = file("{:process 9, :type :invoke, :f :append, :key \"0\", :value \"x 9 0 y\"}\n");
        let h = read_path(f.path(), Format::Edn).unwrap();
        assert_eq!(h.ops[0].value, json!(["0", "x 9 0 y"]));
    }

    #[test]
    fn keeps_index_and_time_and_skips_comments() {
        let f = file(
            "; T1\n{:index 10, :time 5, :type :ok, :process 2, :f :txn, :value [[:append 9 2]]}\n",
        );
        let h = read_path(f.path(), Format::Auto).unwrap();
        assert_eq!((h.ops[0].index, h.ops[0].time), (10, 5));
        assert_eq!(h.ops[0].value, json!([["append", 9, 2]]));
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let f =
            file("{:process 1, :type :invoke, :f :read}\n{:process 1, :type :done, :f :read}\n");
        let e = read_path(f.path(), Format::Edn).unwrap_err().to_string();
        assert!(e.contains(":2:1: `:type :done`"), "{e}");
        let f =
            file("[{:process 1, :type :invoke, :f :read}\n {:process -1, :type :ok, :f :read}]");
        let e = read_path(f.path(), Format::Edn).unwrap_err().to_string();
        assert!(e.contains(":2:2:"), "{e}");
        let f = file("hello\n");
        let e = read_path(f.path(), Format::Auto).unwrap_err().to_string();
        assert!(e.contains("--format"), "{e}");
    }

    #[test]
    fn a_cut_off_last_edn_op_is_truncation() {
        let f = file("{:process 1, :type :invoke, :f :read}\n{:process 1, :type :o");
        let h = read_path(f.path(), Format::Edn).unwrap();
        assert_eq!((h.ops.len(), h.truncated_line), (1, Some(2)));
    }
}
