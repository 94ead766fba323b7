//! Escaping for every context the report writes values into: HTML text,
//! quoted attributes, JSON inside `<script>`, relative URLs, and a few
//! number formats. Every value that comes from a history, a test or a
//! results file goes through one of these.

use std::fmt;

/// HTML-escapes for text and for double- or single-quoted attribute values.
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let mut last = 0;
        for (i, c) in self.0.char_indices() {
            let rep = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                _ => continue,
            };
            f.write_str(&self.0[last..i])?;
            f.write_str(rep)?;
            last = i + c.len_utf8();
        }
        f.write_str(&self.0[last..])
    }
}

/// `esc(x)` as a String.
pub fn esc(s: &str) -> String {
    Esc(s).to_string()
}

/// JSON text made safe inside `<script type="application/json">`: `<`, `>`
/// and `&` only occur inside JSON strings, where `\u003c` means the same, so
/// neither `</script>` nor `<!--` can appear. U+2028/2029 are escaped too.
pub fn json_for_script(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 64);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
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
