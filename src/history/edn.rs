//! A small EDN reader that turns EDN text into `serde_json::Value`s.
//!
//! Enough of EDN for Jepsen's histories: nil, booleans, integers (with an `N`
//! suffix too), floats, ratios (as floats), strings with escapes, characters,
//! keywords and symbols (as strings, without the `:`), lists and vectors (as
//! arrays), sets (as arrays), maps (as objects; non-string keys are printed),
//! tagged values (`#inst "..."`, `#jepsen.history.Op{...}`: the tag is dropped),
//! `#_` discards, `;` comments and commas as whitespace.
//!
//! Not a general EDN library: nothing here round-trips back to EDN.

use super::text::excerpt;
use serde_json::{Map, Number, Value};
use thiserror::Error;

/// An EDN syntax error at a 1-based line and column of the text.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{line}:{column}: {message}")]
pub struct EdnError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Nesting deeper than this is an error, so hostile input cannot overflow the stack.
const DEPTH_MAX: usize = 256;

/// Reads EDN forms from text, one at a time, tracking lines and columns.
pub struct Parser<'a> {
    text: &'a [u8],
    /// The closing byte of the sequence opened by [`Parser::open_vector`].
    close: u8,
    pos: usize,
    line: usize,
    line_start: usize,
}

impl<'a> Parser<'a> {
    pub fn new(text: &'a str) -> Self {
        Parser {
            text: text.as_bytes(),
            close: b']',
            pos: 0,
            line: 1,
            line_start: 0,
        }
    }

    /// The 1-based line and column of the next unread byte.
    pub fn position(&self) -> (usize, usize) {
        (self.line, self.pos - self.line_start + 1)
    }

    /// Skips whitespace, commas, comments and `#_` discards; true if a form follows.
    pub fn at_form(&mut self) -> Result<bool, EdnError> {
        self.skip_ws(0)?;
        Ok(self.pos < self.text.len())
    }

    /// Parses the next form; an error at the end of the input.
    pub fn next_form(&mut self) -> Result<Value, EdnError> {
        self.skip_ws(0)?;
        self.form(0)
    }

    /// If the next form is a vector or a list, consumes its opening bracket and
    /// returns true: then call [`Parser::next_item`] for its elements one by
    /// one (a whole history held in one vector is read without holding its
    /// values twice).
    pub fn open_vector(&mut self) -> Result<bool, EdnError> {
        self.skip_ws(0)?;
        self.close = match self.peek() {
            Some(b'[') => b']',
            Some(b'(') => b')',
            _ => return Ok(false),
        };
        self.bump();
        Ok(true)
    }

    /// The next element of a vector opened with [`Parser::open_vector`], with
    /// its position, or `None` at its closing `]`.
    pub fn next_item(&mut self) -> Result<Option<(Value, usize, usize)>, EdnError> {
        self.skip_ws(1)?;
        match self.peek() {
            None => Err(self.error(format!(
                "the sequence is not closed: expected `{}`",
                self.close as char
            ))),
            Some(c) if c == self.close => {
                self.bump();
                Ok(None)
            }
            Some(_) => {
                let (line, column) = self.position();
                Ok(Some((self.form(1)?, line, column)))
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        if c == b'\n' {
            self.line += 1;
            self.line_start = self.pos;
        }
        Some(c)
    }

    fn error(&self, message: impl Into<String>) -> EdnError {
        let (line, column) = self.position();
        EdnError {
            line,
            column,
            message: message.into(),
        }
    }

    fn skip_ws(&mut self, depth: usize) -> Result<(), EdnError> {
        loop {
            match self.peek() {
                Some(c) if c.is_ascii_whitespace() || c == b',' => {
                    self.bump();
                }
                Some(b';') => {
                    while let Some(c) = self.bump() {
                        if c == b'\n' {
                            break;
                        }
                    }
                }
                Some(b'#') if self.text.get(self.pos + 1) == Some(&b'_') => {
                    self.pos += 2;
                    self.skip_ws(depth)?;
                    self.form(depth + 1)?;
                }
                _ => return Ok(()),
            }
        }
    }

    fn form(&mut self, depth: usize) -> Result<Value, EdnError> {
        if depth > DEPTH_MAX {
            return Err(self.error(format!("nested deeper than {DEPTH_MAX} levels")));
        }
        let Some(c) = self.peek() else {
            return Err(self.error("unexpected end of input: expected a value"));
        };
        match c {
            b'[' | b'(' => {
                self.bump();
                Ok(Value::Array(
                    self.seq(if c == b'[' { b']' } else { b')' }, depth)?,
                ))
            }
            b'{' => {
                self.bump();
                self.map(depth)
            }
            b'"' => {
                self.bump();
                self.string().map(Value::String)
            }
            b'\\' => {
                self.bump();
                self.character().map(Value::String)
            }
            b':' => {
                self.bump();
                let token = self.token();
                if token.is_empty() {
                    return Err(self.error("a `:` without a keyword name"));
                }
                Ok(Value::String(token.to_string()))
            }
            b'#' => {
                self.bump();
                match self.peek() {
                    Some(b'{') => {
                        self.bump();
                        Ok(Value::Array(self.seq(b'}', depth)?))
                    }
                    Some(c) if c.is_ascii_alphabetic() => {
                        self.token(); // the tag; its value stands for the whole
                        self.skip_ws(depth)?;
                        self.form(depth + 1)
                    }
                    _ => Err(self.error("unsupported `#` dispatch: expected `#{`, `#_` or a tag")),
                }
            }
            b']' | b')' | b'}' => Err(self.error(format!("unexpected `{}`", c as char))),
            _ => self.atom(),
        }
    }

    fn seq(&mut self, close: u8, depth: usize) -> Result<Vec<Value>, EdnError> {
        let mut items = Vec::new();
        loop {
            self.skip_ws(depth)?;
            match self.peek() {
                None => {
                    return Err(self.error(format!(
                        "unexpected end of input: expected `{}`",
                        close as char
                    )));
                }
                Some(c) if c == close => {
                    self.bump();
                    return Ok(items);
                }
                Some(_) => items.push(self.form(depth + 1)?),
            }
        }
    }

    fn map(&mut self, depth: usize) -> Result<Value, EdnError> {
        let mut map = Map::new();
        loop {
            self.skip_ws(depth)?;
            match self.peek() {
                None => return Err(self.error("unexpected end of input: expected `}`")),
                Some(b'}') => {
                    self.bump();
                    return Ok(Value::Object(map));
                }
                Some(_) => {
                    let key = self.form(depth + 1)?;
                    self.skip_ws(depth)?;
                    if self.peek() == Some(b'}') {
                        return Err(self.error("a map key without a value"));
                    }
                    let value = self.form(depth + 1)?;
                    map.insert(key_string(key), value);
                }
            }
        }
    }

    fn string(&mut self) -> Result<String, EdnError> {
        let mut out = Vec::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(self.error("unterminated string"));
            };
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.bump() else {
                        return Err(self.error("unterminated string"));
                    };
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'u' => {
                            let ch = self.unicode_escape()?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => {
                            return Err(self.error(format!(
                                "unknown string escape `\\{}`",
                                excerpt(&(e as char).to_string())
                            )));
                        }
                    }
                }
                _ => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.error("string is not valid UTF-8"))
    }

    fn unicode_escape(&mut self) -> Result<char, EdnError> {
        let end = self.pos + 4;
        let hex = self
            .text
            .get(self.pos..end)
            .and_then(|h| std::str::from_utf8(h).ok());
        let code = hex
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32);
        match code {
            Some(ch) => {
                self.pos = end;
                Ok(ch)
            }
            None => Err(self.error("bad `\\u` escape: expected four hex digits")),
        }
    }

    fn character(&mut self) -> Result<String, EdnError> {
        let token = self.token();
        let named = match token {
            "newline" => Some("\n"),
            "space" => Some(" "),
            "tab" => Some("\t"),
            "return" => Some("\r"),
            _ => None,
        };
        if let Some(s) = named {
            return Ok(s.to_string());
        }
        let mut chars = token.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Ok(c.to_string()),
            // A delimiter right after `\` is the character itself, e.g. `\(`.
            (None, _) => match self.bump() {
                Some(c) => Ok((c as char).to_string()),
                None => Err(self.error("a `\\` at the end of input")),
            },
            _ => Err(self.error(format!("unknown character `\\{}`", excerpt(token)))),
        }
    }

    /// A run of symbol characters (up to whitespace or a delimiter).
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_whitespace() || b",;()[]{}\"".contains(&c) {
                break;
            }
            self.pos += 1;
        }
        // Tokens split only at ASCII bytes, so they are valid UTF-8 slices.
        std::str::from_utf8(&self.text[start..self.pos]).unwrap_or("")
    }

    fn atom(&mut self) -> Result<Value, EdnError> {
        let (line, column) = self.position();
        let token = self.token();
        if token.is_empty() {
            return Err(EdnError {
                line,
                column,
                message: "expected a value".into(),
            });
        }
        let value = match token {
            "nil" => Value::Null,
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ if starts_number(token) => number(token).ok_or_else(|| EdnError {
                line,
                column,
                message: format!("not a number: `{}`", excerpt(token)),
            })?,
            _ => Value::String(token.to_string()), // a symbol
        };
        Ok(value)
    }
}

fn starts_number(token: &str) -> bool {
    let b = token.as_bytes();
    b[0].is_ascii_digit() || (matches!(b[0], b'-' | b'+') && b.len() > 1 && b[1].is_ascii_digit())
}

fn number(token: &str) -> Option<Value> {
    let t = token.strip_suffix('N').unwrap_or(token);
    if let Ok(i) = t.parse::<i64>() {
        return Some(Value::Number(i.into()));
    }
    if let Ok(u) = t.parse::<u64>() {
        return Some(Value::Number(u.into()));
    }
    if let Some((n, d)) = t.split_once('/') {
        let (n, d) = (n.parse::<f64>().ok()?, d.parse::<f64>().ok()?);
        return Number::from_f64(n / d).map(Value::Number);
    }
    let f = token
        .strip_suffix('M')
        .unwrap_or(token)
        .parse::<f64>()
        .ok()?;
    Number::from_f64(f).map(Value::Number)
}

/// JSON object keys are strings: keywords and strings keep their text, other
/// keys are printed as JSON (a bank read `{0 10}` becomes `{"0": 10}`).
fn key_string(key: Value) -> String {
    match key {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// Parses exactly one EDN form from `text`.
pub fn parse(text: &str) -> Result<Value, EdnError> {
    let mut p = Parser::new(text);
    let v = p.next_form()?;
    if p.at_form()? {
        return Err(p.error("more than one value"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_jepsen_ops() {
        let v = parse(r#"{:type :ok, :f :txn, :value [[:append 5 1] [:r 6 [1 2]] [:r 7 nil]], :process 3, :time -12, :index 0}"#).unwrap();
        assert_eq!(
            v,
            json!({"type":"ok","f":"txn","value":[["append",5,1],["r",6,[1,2]],["r",7,null]],"process":3,"time":-12,"index":0})
        );
    }

    #[test]
    fn reads_strings_with_escapes_and_characters() {
        assert_eq!(
            parse(r#""a\"b\\c\nd\u00e9""#).unwrap(),
            json!("a\"b\\c\nd\u{e9}")
        );
        assert_eq!(
            parse(r"[\a \newline \space]").unwrap(),
            json!(["a", "\n", " "])
        );
    }

    #[test]
    fn reads_numbers_sets_tags_comments_and_discards() {
        let v = parse(
            "; a comment\n[-3 +4 2.5 1/4 12N #{1} #inst \"2020\" #_ ignored :ns/kw sym (1 2)]",
        )
        .unwrap();
        assert_eq!(
            v,
            json!([-3, 4, 2.5, 0.25, 12, [1], "2020", "ns/kw", "sym", [1, 2]])
        );
    }

    #[test]
    fn non_string_map_keys_are_printed() {
        assert_eq!(
            parse("{0 10, 1 -5, nil 1}").unwrap(),
            json!({"0": 10, "1": -5, "null": 1})
        );
    }

    #[test]
    fn reads_records_by_dropping_the_tag() {
        assert_eq!(
            parse("#jepsen.history.Op{:index 1}").unwrap(),
            json!({"index": 1})
        );
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = parse("[1 2\n 3 }").unwrap_err();
        assert_eq!((e.line, e.column), (2, 4), "{e}");
        let e = parse("{:a 1 :b}").unwrap_err();
        assert_eq!((e.line, e.column), (1, 9), "{e}");
        let e = parse("\"abc").unwrap_err();
        assert!(e.message.contains("unterminated"), "{e}");
        let e = parse(&"[".repeat(10_000)).unwrap_err();
        assert!(e.message.contains("deeper"), "{e}");
    }

    #[test]
    fn a_vector_is_read_item_by_item_with_positions() {
        let mut p = Parser::new("[{:a 1}\n {:b 2}]");
        assert!(p.open_vector().unwrap());
        assert_eq!(p.next_item().unwrap(), Some((json!({"a": 1}), 1, 2)));
        assert_eq!(p.next_item().unwrap(), Some((json!({"b": 2}), 2, 2)));
        assert_eq!(p.next_item().unwrap(), None);
        assert!(!p.at_form().unwrap());
    }
}
