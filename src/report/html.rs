//! Escaping for every context the report writes values into: HTML text,
//! quoted attributes, JSON inside `<script>`, relative URLs, and a few
//! number formats. Every value that comes from a history, a test or a
//! results file goes through one of these.
//!
//! Control characters (C0 but tab and newline, DEL, C1) and the Unicode
//! bidirectional controls are never written as themselves: a key holding
//! U+202E would show its text reversed, and one holding ESC could drive a
//! terminal it is pasted into. They are shown as visible escapes,
//! `\u{202e}`, in HTML, in attributes and in the timeline's data.

use std::borrow::Cow;
use std::fmt;

/// Whether `c` is shown as an escape: C0 controls but tab and newline,
/// DEL, C1 controls, and the bidirectional marks, embeddings, overrides and
/// isolates (U+061C, U+200E/F, U+202A–U+202E, U+2066–U+2069).
pub fn is_hidden(c: char) -> bool {
    matches!(c,
        '\0'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Writes `s` with every [`is_hidden`] character as `\u{hex}`, and each
/// other character through `other` (which writes it, or its escape).
fn write_visible(
    f: &mut impl fmt::Write,
    s: &str,
    mut other: impl FnMut(&mut dyn fmt::Write, char) -> fmt::Result,
) -> fmt::Result {
    for c in s.chars() {
        if is_hidden(c) {
            write!(f, "\\u{{{:x}}}", c as u32)?;
        } else {
            other(f, c)?;
        }
    }
    Ok(())
}

/// `s` with control and bidirectional characters as visible escapes
/// (`\u{1b}`, `\u{202e}`); borrowed when there are none.
pub fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    let _ = write_visible(&mut out, s, |f, c| f.write_char(c));
    Cow::Owned(out)
}

/// HTML-escapes for text and for double- or single-quoted attribute
/// values; control and bidirectional characters become visible escapes.
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let s = self.0;
        let plain = |c: char| !matches!(c, '&' | '<' | '>' | '"' | '\'') && !is_hidden(c);
        if s.chars().all(plain) {
            return f.write_str(s);
        }
        write_visible(f, s, |f, c| match c {
            '&' => f.write_str("&amp;"),
            '<' => f.write_str("&lt;"),
            '>' => f.write_str("&gt;"),
            '"' => f.write_str("&quot;"),
            '\'' => f.write_str("&#39;"),
            c => f.write_char(c),
        })
    }
}

/// `esc(x)` as a String.
pub fn esc(s: &str) -> String {
    Esc(s).to_string()
}

/// JSON text made safe inside `<script type="application/json">`: `<`, `>`
/// and `&` only occur inside JSON strings, where `\u003c` means the same, so
/// neither `</script>` nor `<!--` can appear. U+2028/2029 and the
/// characters of [`is_hidden`] are JSON-escaped too, so none stands raw in
/// the page (the strings' writers make them visible escapes first: JSON
/// escapes are undone when the script parses the data).
pub fn json_for_script(json: &str) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(json.len() + json.len() / 64);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if is_hidden(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A relative URL to a file under the results folder: each path segment
/// percent-encoded, so a file name cannot leave the attribute or become a
/// `javascript:` URL (the result never contains `:`). Segments are names
/// from a directory listing, never `.` or `..`.
pub fn rel_url(segments: &[&str]) -> String {
    let mut out = String::new();
    for (i, seg) in segments.iter().enumerate() {
        debug_assert!(
            *seg != "." && *seg != "..",
            "a file name, not a relative step"
        );
        if i > 0 {
            out.push('/');
        }
        for b in seg.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// `1.23 ms`, `456 µs`, `2.5 s`.
pub fn duration_ns(ns: u64) -> String {
    let ns = ns as f64;
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.0} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.1} ms", ns / 1e6)
    } else if ns < 600e9 {
        format!("{:.2} s", ns / 1e9)
    } else {
        format!("{:.1} min", ns / 60e9)
    }
}

/// `1,000,000`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Cuts `s` to at most `max` characters, with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

/// `20261124T121503.042Z` → `2026-11-24 12:15:03 UTC`; other text unchanged.
pub fn pretty_timestamp(ts: &str) -> String {
    let b = ts.as_bytes();
    if b.len() >= 16 && b[8] == b'T' && b[..8].iter().all(u8::is_ascii_digit) {
        format!(
            "{}-{}-{} {}:{}:{} UTC",
            &ts[0..4],
            &ts[4..6],
            &ts[6..8],
            &ts[9..11],
            &ts[11..13],
            &ts[13..15]
        )
    } else {
        ts.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_attributes_and_script_json() {
        assert_eq!(
            esc(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(esc("plain ü"), "plain ü");
        let json = serde_json::to_string(&serde_json::json!(["</script><!-- &"])).unwrap();
        let safe = json_for_script(&json);
        assert!(!safe.contains("</") && !safe.contains("<!--"));
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back[0], "</script><!-- &");
    }

    #[test]
    fn control_and_bidi_characters_become_visible_escapes() {
        let key = "a\u{202e}b\u{1b}[31m\u{7f}\u{85}\u{2066}\u{61c}\u{200f}\tc\nd";
        let shown = r"a\u{202e}b\u{1b}[31m\u{7f}\u{85}\u{2066}\u{61c}\u{200f}";
        assert_eq!(
            visible(key),
            format!("{shown}\tc\nd"),
            "tab and newline kept"
        );
        assert_eq!(esc(&format!("<{key}>")), format!("&lt;{shown}\tc\nd&gt;"));
        assert!(matches!(visible("plain ü"), Cow::Borrowed(_)));
        // Escapes are plain text: making them visible again changes nothing.
        assert_eq!(visible(&visible(key)), visible(key));
        let json = serde_json::to_string(&serde_json::json!([key])).unwrap();
        let safe = json_for_script(&json);
        assert!(!safe.chars().any(is_hidden), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back[0], key, "the same JSON value");
    }

    #[test]
    fn urls_are_percent_encoded_per_segment() {
        assert_eq!(rel_url(&["nodes", "n1", "node.log"]), "nodes/n1/node.log");
        assert_eq!(
            rel_url(&["nodes", "a\"b<c>", "javascript:x"]),
            "nodes/a%22b%3Cc%3E/javascript%3Ax"
        );
    }

    #[test]
    fn number_formats() {
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(duration_ns(1_500_000), "1.5 ms");
        assert_eq!(duration_ns(2_500_000_000), "2.50 s");
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(
            pretty_timestamp("20261124T121503.042Z"),
            "2026-11-24 12:15:03 UTC"
        );
    }
}
