//! Text from outside (histories, input files, command-line arguments) made
//! safe to print and to quote in error messages.
//!
//! A history key or a test file can hold anything: terminal escapes that
//! recolour or rewrite the screen, bidirectional overrides that make text read
//! differently from what it is (Trojan Source), or a 10 MB token. Everything
//! that shows such text on a terminal or puts it into an error message goes
//! through here: [`escape`] (or [`escape_keep_lines`] for whole screens of our
//! own output), [`excerpt`] where an error quotes input, and [`clip_message`]
//! for a library's message that may quote input at any length.
//!
//! Also here: [`decode_utf8`], which says where the first invalid byte is.
//!
//! Not here: escaping for HTML, JSON or the shell (each has its own rules).

use std::borrow::Cow;
use std::fmt;

/// The most characters of input an error quotes.
pub const EXCERPT_CHARS: usize = 80;

/// The most characters of a library's message kept by [`clip_message`]
/// (after each quoted run in it was cut to [`EXCERPT_CHARS`]).
pub const MESSAGE_CHARS_MAX: usize = 1000;

/// Whether `c` must not reach a terminal as it is: C0 and C1 control
/// characters and DEL (escape sequences, carriage returns, backspaces), and
/// the bidirectional marks, embeddings, overrides and isolates (U+061C,
/// U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) that reorder what a reader sees.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// `s` with every [`is_unsafe`] character written as an escape: `\n`, `\t`,
/// `\r`, else `\u{1b}`. Borrowed when there is nothing to escape.
pub fn escape(s: &str) -> Cow<'_, str> {
    escape_with(s, |_| false)
}

/// As [`escape`], but newlines stay: for text of several lines that we
/// composed (a summary, an error with its causes) around input that was
/// already quoted with [`escape`] or [`excerpt`].
pub fn escape_keep_lines(s: &str) -> Cow<'_, str> {
    escape_with(s, |c| c == '\n')
}

fn escape_with(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| is_unsafe(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if !is_unsafe(c) || keep(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

/// At most [`EXCERPT_CHARS`] characters of `s`, escaped, with `…` when cut:
/// what an error message quotes of its input.
pub fn excerpt(s: &str) -> String {
    excerpt_chars(s, EXCERPT_CHARS)
}

fn excerpt_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => escape(s).into_owned(),
        Some((cut, _)) => format!("{}…", escape(&s[..cut])),
    }
}

/// A message from a library (serde, clap) that may quote input at any length,
/// made short and safe: every run quoted with `` ` ``, `"` or `'` that is longer
/// than [`EXCERPT_CHARS`] is cut to that, the whole to [`MESSAGE_CHARS_MAX`],
/// and unsafe characters are escaped (newlines kept: messages may have lines).
pub fn clip_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MESSAGE_CHARS_MAX + 64));
    let mut rest = message;
    let mut prev: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        // A quote opens a run where a word cannot be going on (`don't` is no quote).
        let opens = matches!(c, '`' | '"' | '\'') && !prev.is_some_and(char::is_alphanumeric);
        if opens {
            let body = &rest[c.len_utf8()..];
            let (inside, after) = match body.find(c) {
                Some(end) => (&body[..end], Some(&body[end + c.len_utf8()..])),
                None => (body, None),
            };
            out.push(c);
            out.push_str(&excerpt_chars(inside, EXCERPT_CHARS));
            match after {
                Some(after) => {
                    out.push(c);
                    rest = after;
                    prev = Some(c);
                }
                None => rest = "",
            }
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            prev = Some(c);
        }
        if out.len() > 4 * MESSAGE_CHARS_MAX {
            break; // far enough: cut below
        }
    }
    let out = match out.char_indices().nth(MESSAGE_CHARS_MAX) {
        Some((cut, _)) => format!("{}…", &out[..cut]),
        None => out,
    };
    escape_keep_lines(&out).into_owned()
}

/// Where text stops being UTF-8: the first bad byte, by 1-based line and
/// column (in characters) and by 0-based byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadUtf8 {
    pub line: usize,
    pub column: usize,
    pub offset: usize,
    pub byte: u8,
}

impl fmt::Display for BadUtf8 {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "not valid UTF-8: byte 0x{:02x} at byte offset {}",
            self.byte, self.offset
        )
    }
}

/// The bytes as a `String`, or where the first byte that is not UTF-8 is.
pub fn decode_utf8(bytes: Vec<u8>) -> Result<String, BadUtf8> {
    match String::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(e) => {
            let offset = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            Err(bad_utf8_at(bytes, offset))
        }
    }
}

/// The position of the bad byte at `offset`, all bytes before it valid UTF-8.
pub fn bad_utf8_at(bytes: &[u8], offset: usize) -> BadUtf8 {
    let valid = std::str::from_utf8(&bytes[..offset]).unwrap_or_default();
    let line_start = valid.rfind('\n').map_or(0, |i| i + 1);
    BadUtf8 {
        line: valid.matches('\n').count() + 1,
        column: valid[line_start..].chars().count() + 1,
        offset,
        byte: bytes.get(offset).copied().unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_bidi_overrides_and_nothing_else() {
        let s = "k\u{1b}[31mred\u{7f}\u{9b}\u{202e}txt\u{2066}\u{200f}\u{61c}\n\té ü 日本";
        assert_eq!(
            escape(s),
            "k\\u{1b}[31mred\\u{7f}\\u{9b}\\u{202e}txt\\u{2066}\\u{200f}\\u{61c}\\n\\té ü 日本"
        );
        assert_eq!(escape_keep_lines("a\nb\u{1b}"), "a\nb\\u{1b}");
        assert!(matches!(escape("plain é"), Cow::Borrowed(_)));
        for c in (0..0x20u32).chain(0x7f..0xa0).filter_map(char::from_u32) {
            assert!(is_unsafe(c), "{c:?}");
        }
        assert!(!is_unsafe(' ') && !is_unsafe('é') && !is_unsafe('\u{2070}'));
    }

    #[test]
    fn excerpts_are_short_escaped_and_marked_when_cut() {
        assert_eq!(excerpt("abc"), "abc");
        let long = "9".repeat(10_000_000);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 1);
        assert!(e.ends_with('…'));
        assert_eq!(excerpt(&"é".repeat(81)).chars().count(), 81);
        assert_eq!(excerpt("a\u{1b}b"), "a\\u{1b}b");
    }

    #[test]
    fn clipping_cuts_long_quoted_runs_and_long_messages() {
        let m = format!(
            "unknown variant `{}`, expected one of `a`, `b`",
            "x".repeat(5000)
        );
        let c = clip_message(&m);
        assert!(c.len() < 200, "{c}");
        assert!(c.ends_with("…`, expected one of `a`, `b`"), "{c}");
        let c = clip_message(&format!("it's {} isn't", "y".repeat(300)));
        assert!(c.starts_with("it's yyy"), "apostrophes open no quote: {c}");
        let c = clip_message(&format!(
            "invalid value '{}' for '--model'",
            "z".repeat(3000)
        ));
        assert!(c.ends_with("…' for '--model'"), "{c}");
        let c = clip_message(&"w ".repeat(100_000));
        assert_eq!(c.chars().count(), MESSAGE_CHARS_MAX + 1);
        assert_eq!(clip_message("a `b\u{1b}`\nc"), "a `b\\u{1b}`\nc");
    }

    #[test]
    fn bad_utf8_is_found_by_line_column_and_offset() {
        let e = decode_utf8(b"ab\ncd\xc3\xa9f\xffg".to_vec()).unwrap_err();
        assert_eq!(
            e,
            BadUtf8 {
                line: 2,
                column: 5,
                offset: 8,
                byte: 0xff
            }
        );
        assert!(e.to_string().contains("0xff at byte offset 8"), "{e}");
        assert_eq!(decode_utf8(b"ok".to_vec()).unwrap(), "ok");
    }
}
