//! YAML input files (tests, suites, workloads, nemeses, hosts.yaml): read
//! within bounds, parsed with positions.
//!
//! Every YAML file faultline reads goes through here, so each gets the same
//! limits and the same errors:
//! - [`read_file`] reads at most [`FILE_BYTES_MAX`] and says where text stops
//!   being UTF-8.
//! - [`from_str`] refuses nesting deeper than [`DEPTH_MAX`] before the parser
//!   sees it, and gives serde_yaml_ng's errors with line:column, the key path
//!   and at most an excerpt of the input they quote.
//! - [`position_of`] finds a key path in the text, for mistakes found after
//!   parsing (a knob that does not apply, a fault given twice).
//!
//! Apart from `suite` and `nemesis`, which both read YAML and neither of which
//! imports the other.

use crate::history::text::{clip_message, decode_utf8};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, Visitor};
use std::fmt;
use std::io::Read;
use std::path::Path;

/// The largest YAML file read: 1 MiB. The bundled files are under 2 KB and a
/// big suite is tens of KB, so this is far beyond what anyone writes; and
/// parsing holds 65 to 160 bytes per byte of input (a 10 MB file took 657 MiB),
/// so 1 MiB keeps a mistaken file (a history, a log) under ~170 MiB.
pub const FILE_BYTES_MAX: u64 = 1 << 20;

/// The deepest nesting read: serde_yaml_ng stops at 128 levels anyway, and
/// libyaml takes time quadratic in the depth of flow collections (`{a: {a: …`,
/// 500 KB took a minute) before it gets there, so deeper text is refused first.
pub const DEPTH_MAX: usize = 128;

/// What is wrong with a YAML text and where (1-based line and column); the
/// caller names the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub position: Option<(usize, usize)>,
    pub message: String,
}

impl YamlError {
    pub fn at(position: (usize, usize), message: impl Into<String>) -> Self {
        YamlError {
            position: Some(position),
            message: message.into(),
        }
    }

    /// About the whole file (it cannot be read, it is too big).
    pub fn whole(message: impl Into<String>) -> Self {
        YamlError {
            position: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if let Some((line, column)) = self.position {
            write!(f, "{line}:{column}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Reads a YAML file: at most [`FILE_BYTES_MAX`] bytes (also of a pipe or a
/// device, which have no size), UTF-8.
pub fn read_file(path: &Path) -> Result<String, YamlError> {
    let cannot = |e: std::io::Error| YamlError::whole(format!("cannot read: {e}"));
    let too_big = |size: String| {
        YamlError::whole(format!(
            "the file is {size}, more than the {FILE_BYTES_MAX} bytes (1 MiB) a YAML file may have; is it the right file?"
        ))
    };
    let file = std::fs::File::open(path).map_err(cannot)?;
    if let Ok(meta) = file.metadata()
        && meta.is_file()
        && meta.len() > FILE_BYTES_MAX
    {
        return Err(too_big(format!("{} bytes", meta.len())));
    }
    let mut bytes = Vec::new();
    file.take(FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > FILE_BYTES_MAX {
        return Err(too_big(format!("more than {FILE_BYTES_MAX} bytes")));
    }
    decode_utf8(bytes).map_err(|bad| YamlError::at((bad.line, bad.column), bad.to_string()))
}

/// Parses YAML text into `T`. Errors have a position (the whole text's start
/// when nothing better is known) and quote at most excerpts of the input.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    if let Some(at) = too_deep(text) {
        return Err(YamlError::at(at, deeper_than()));
    }
    serde_yaml_ng::from_str(text).map_err(|e| convert(&e, text))
}

fn deeper_than() -> String {
    format!("nesting deeper than {DEPTH_MAX} levels")
}

/// serde_yaml_ng's error as ours: its position in front, not after the message.
fn convert(e: &serde_yaml_ng::Error, text: &str) -> YamlError {
    let mut message = e.to_string();
    let location = e.location().map(|l| (l.line(), l.column()));
    if let Some((line, column)) = location {
        // Messages end with " at line L column C"; libyaml's put it before a
        // context (", while parsing a block mapping at line ...").
        let suffix = format!(" at line {line} column {column}");
        if let Some(cut) = message.strip_suffix(&suffix) {
            message = cut.to_string();
        } else {
            message = message.replacen(&suffix, "", 1);
        }
    }
    if message.ends_with("recursion limit exceeded") {
        message = deeper_than();
    }
    if let Some((at, field)) = unknown_field(&message) {
        // serde reads an internally tagged map (a workload's `kind` and its
        // knobs) from a buffer, which has no places: the error then points at
        // the map. Point at the unknown knob itself.
        let points_at_map = location.is_none() || location == position_of(text, &at.parent());
        if points_at_map {
            if let Some(p) = position_of(text, &at) {
                message = at.message(&message[message.len() - field.len()..]);
                return YamlError::at(p, clip_message(&message));
            }
            // Inside a field of a struct the buffer loses the path too: the
            // one place the key is written, if there is only one.
            if let Some(p) = only_key(text, at.last_key().unwrap_or_default()) {
                return YamlError::at(p, clip_message(&message));
            }
        }
    }
    let position = location
        .or_else(|| {
            message
                .contains("more than one document")
                .then(|| second_document(text))
                .flatten()
        })
        .unwrap_or((1, 1));
    YamlError::at(position, clip_message(&message))
}

/// Where `key` is written as a map key (`key:` at a line's start or after
/// `{`, `,` or `- `), if at exactly one place in `text`: its line and column.
fn only_key(text: &str, key: &str) -> Option<(usize, usize)> {
    let written = format!("{key}:");
    let mut found = None;
    for (i, line) in text.lines().enumerate() {
        for (at, _) in line.match_indices(&written) {
            let before = line[..at].trim_end();
            if before.is_empty() || before.ends_with(['{', ',', '-']) {
                if found.is_some() {
                    return None;
                }
                found = Some((i + 1, line[..at].chars().count() + 1));
            }
        }
    }
    found
}

/// `"path: unknown field `x`, expected ..."`: the path to `x`, and the
/// message from `unknown field` on.
fn unknown_field(message: &str) -> Option<(KeyPath, &str)> {
    let start = message.find("unknown field `")?;
    let name_start = start + "unknown field `".len();
    let name = &message[name_start..name_start + message[name_start..].find('`')?];
    let prefix = &message[..start];
    let path = match prefix.strip_suffix(": ") {
        Some(path) => KeyPath::parse(path)?,
        None if prefix.is_empty() => KeyPath::root(),
        None => return None,
    };
    Some((path.key(name), &message[start..]))
}

/// Where the second document of a multi-document text starts: its `---`.
fn second_document(text: &str) -> Option<(usize, usize)> {
    let mut content = false;
    for (n, line) in text.lines().enumerate() {
        let marker = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if marker && content {
            return Some((n + 1, 1));
        }
        let trimmed = line.trim();
        content |= marker || !(trimmed.is_empty() || trimmed.starts_with('#'));
    }
    None
}

/// The position of the flow bracket that nests deeper than [`DEPTH_MAX`], if
/// any: one linear pass, before libyaml's quadratic one.
///
/// It counts every `[` and `{`, even inside quotes and comments, so it can
/// never count fewer levels than the parser sees: an over-count only makes a
/// file fail that has more than 128 unclosed brackets in its comments and
/// strings. A closing bracket
/// inside what looks like a quoted string or a comment only cancels an opening
/// one in that same string, so `"]]]]"` cannot hide deep nesting.
fn too_deep(text: &str) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    // Inside a quoted string (its quote byte) or a comment (b'#').
    let mut region: Option<u8> = None;
    let mut local = 0usize; // opened inside the current region
    let (mut line, mut line_start) = (1usize, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match (region, c) {
            (_, b'\n') => {
                line += 1;
                line_start = i + 1;
                if region == Some(b'#') {
                    region = None;
                    local = 0;
                }
            }
            (Some(q), _) if c == q && q != b'#' => {
                region = None;
                local = 0;
            }
            // An escaped character in a double-quoted string (not a newline:
            // lines must be counted).
            (Some(b'"'), b'\\') if bytes.get(i + 1).is_some_and(|&n| n != b'\n') => i += 1,
            (Some(_), b'[' | b'{') => {
                depth += 1;
                local += 1;
            }
            (Some(_), b']' | b'}') if local > 0 => {
                depth -= 1;
                local -= 1;
            }
            (Some(_), _) => {}
            (None, b'"' | b'\'') => region = Some(c),
            (None, b'#') if i == 0 || bytes[i - 1].is_ascii_whitespace() => region = Some(b'#'),
            (None, b'[' | b'{') => depth += 1,
            (None, b']' | b'}') => depth = depth.saturating_sub(1),
            (None, _) => {}
        }
        if depth > DEPTH_MAX {
            let column = text[line_start..i].chars().count() + 1;
            return Some((line, column));
        }
        i += 1;
    }
    None
}

/// A key path in a YAML document, written as serde_yaml_ng writes it in its
/// errors: `tests[2].workload.keys`; the root is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<Step>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

impl KeyPath {
    pub fn root() -> Self {
        KeyPath(Vec::new())
    }

    /// This path's map entry `key`.
    pub fn key(&self, key: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Step::Key(key.to_string()));
        p
    }

    /// This path's sequence item `index` (0-based).
    pub fn index(&self, index: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Step::Index(index));
        p
    }

    /// `other` below this path.
    pub fn join(&self, other: &KeyPath) -> Self {
        let mut p = self.clone();
        p.0.extend(other.0.iter().cloned());
        p
    }

    /// The path one step up; the root's is the root.
    pub fn parent(&self) -> Self {
        let mut p = self.clone();
        p.0.pop();
        p
    }

    /// The path serde_yaml_ng wrote (`tests[2].workload`); `None` when it is
    /// not one (a key with a dot or a bracket in it, say).
    pub fn parse(text: &str) -> Option<Self> {
        let mut path = KeyPath::root();
        if text.is_empty() {
            return Some(path);
        }
        for part in text.split('.') {
            let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
            if key.is_empty() {
                return None;
            }
            path = path.key(key);
            while let Some(r) = rest.strip_prefix('[') {
                let (n, after) = r.split_once(']')?;
                path = path.index(n.parse().ok()?);
                rest = after;
            }
            if !rest.is_empty() {
                return None;
            }
        }
        Some(path)
    }

    /// The last step's key, if it is one.
    pub fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Step::Key(k)) => Some(k),
            _ => None,
        }
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// `"path: message"`, or the message alone at the root: how errors about
    /// a place inside a file are worded (as serde_yaml_ng words its own).
    pub fn message(&self, message: &str) -> String {
        if self.is_root() {
            message.to_string()
        } else {
            format!("{self}: {message}")
        }
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Key(k) if i == 0 => write!(f, "{k}")?,
                Step::Key(k) => write!(f, ".{k}")?,
                Step::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// The 1-based line and column where `path` is written in `text`: a map
/// entry's value, a sequence's item, or the document's start for the root
/// (serde_yaml_ng's own errors point at values too).
/// `None` when the text has no such path (or does not parse).
pub fn position_of(text: &str, path: &KeyPath) -> Option<(usize, usize)> {
    if too_deep(text).is_some() {
        return None;
    }
    let de = serde_yaml_ng::Deserializer::from_str(text);
    match (Probe { rest: &path.0 }).deserialize(de) {
        Err(e) if e.to_string().contains(FOUND) => e.location().map(|l| (l.line(), l.column())),
        _ => None,
    }
}

/// Where `path` is written, or else the nearest place above it that is (the
/// map a missing key belongs in): that place and its position (the text's
/// start for the root).
pub fn position_near(text: &str, path: &KeyPath) -> (KeyPath, (usize, usize)) {
    let mut at = path.clone();
    loop {
        if let Some(p) = position_of(text, &at) {
            return (at, p);
        }
        if at.is_root() {
            return (at, (1, 1));
        }
        at = at.parent();
    }
}

/// The error a probe raises at the node it looks for; serde_yaml_ng gives it
/// that node's position.
const FOUND: &str = "\u{0}faultline: found";

/// Walks a document along a path without building anything.
struct Probe<'a> {
    rest: &'a [Step],
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.rest.first() {
            None => d.deserialize_any(Found),
            Some(Step::Key(key)) => d.deserialize_map(InMap {
                key,
                rest: &self.rest[1..],
            }),
            Some(Step::Index(index)) => d.deserialize_seq(InSeq {
                index: *index,
                rest: &self.rest[1..],
            }),
        }
    }
}

/// Fails with [`FOUND`] at whatever node it is given.
struct Found;

impl<'de> Visitor<'de> for Found {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("anything")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_some<D: de::Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
        Err(de::Error::custom(FOUND))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
}

struct InMap<'a> {
    key: &'a str,
    rest: &'a [Step],
}

impl<'de> Visitor<'de> for InMap<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(hit) = map.next_key_seed(Key(self.key))? {
            if hit {
                return map.next_value_seed(Probe { rest: self.rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

/// A map key: true when it is the one looked for.
struct Key<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

struct InSeq<'a> {
    index: usize,
    rest: &'a [Step],
}

impl<'de> Visitor<'de> for InSeq<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        for _ in 0..self.index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Probe { rest: self.rest })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn finds_keys_and_items_by_path() {
        let text = "name: s\ntests:\n  - db: raft\n  - {db: paxos, workload: {kind: bank, keys: 3}}\ndefaults:\n  nemesis:\n    faults:\n      - kill: {}\n      - pause: {}\n";
        let root = KeyPath::root();
        let at = |p: &KeyPath| position_of(text, p);
        assert_eq!(at(&root.key("name")), Some((1, 7)));
        assert_eq!(at(&root.key("tests").index(0)), Some((3, 5)));
        assert_eq!(at(&root.key("tests").index(1).key("db")), Some((4, 10)));
        let keys = root.key("tests").index(1).key("workload").key("keys");
        assert_eq!(keys.to_string(), "tests[1].workload.keys");
        assert_eq!(at(&keys), Some((4, 46)));
        let pause = root.key("defaults").key("nemesis").key("faults").index(1);
        assert_eq!(at(&pause), Some((9, 9)));
        assert_eq!(at(&root.key("tests").index(5)), None);
        assert_eq!(at(&root.key("nope")), None);
        assert_eq!(at(&root), Some((1, 1)));
        assert_eq!(KeyPath::parse(&keys.to_string()), Some(keys));
        assert_eq!(KeyPath::parse(""), Some(root.clone()));
        assert_eq!(KeyPath::parse("a[x]"), None);
        let missing = root.key("tests").index(1).key("nemesis");
        let (found, position) = position_near(text, &missing);
        assert_eq!((found.to_string().as_str(), position), ("tests[1]", (4, 5)));
    }

    #[test]
    fn deep_flow_nesting_is_refused_at_once_with_its_position() {
        let n = 200_000;
        let text = format!("a: 1\nb: {}1{}\n", "{a: ".repeat(n), "}".repeat(n));
        let e = from_str::<BTreeMap<String, serde_yaml_ng::Value>>(&text).unwrap_err();
        assert_eq!(e.position, Some((2, 3 + 4 * DEPTH_MAX + 1)), "{e}");
        assert!(e.message.contains("nesting deeper than 128 levels"), "{e}");
        // Block nesting is linear for the parser; serde_yaml_ng's own limit
        // says it in the same words.
        let text = format!("a:\n  {}x\n", "- ".repeat(n));
        let e = from_str::<BTreeMap<String, serde_yaml_ng::Value>>(&text).unwrap_err();
        assert!(e.message.contains("nesting deeper than 128 levels"), "{e}");
        assert_eq!(e.position.map(|p| p.0), Some(2), "{e}");
    }

    #[test]
    fn quoted_closing_brackets_do_not_hide_depth_and_prose_is_not_depth() {
        let hidden = format!("a: {}\n", "[\"]]]]\", ".repeat(300));
        assert!(too_deep(&hidden).is_some());
        let prose = "description: don't [worry] about it's {brackets}\n# a [comment]\nb: \"x [y] '\" \nc: [1, [2, {d: 3}]]\n".repeat(1000);
        assert_eq!(too_deep(&prose), None);
        // An unclosed bracket in a string or a comment counts: a hundred are fine.
        let unclosed = "# see [1\nb: \"x [y\"\n".repeat(60);
        assert_eq!(too_deep(&unclosed), None);
        let nested = format!("{}{}", "[".repeat(DEPTH_MAX), "]".repeat(DEPTH_MAX));
        assert_eq!(too_deep(&nested), None);
    }

    #[test]
    fn errors_without_a_position_get_one() {
        let e = from_str::<BTreeMap<String, u32>>("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(e.position, Some((2, 1)), "{e}");
        assert!(e.message.contains("more than one document"), "{e}");
        let e = from_str::<BTreeMap<String, u32>>("# just a comment\n---\na: 1\n---\nb: 2\n")
            .unwrap_err();
        assert_eq!(e.position, Some((4, 1)), "{e}");
        let e = from_str::<u32>("").unwrap_err();
        assert_eq!(e.position, Some((1, 1)), "{e}");
        // An unknown key in a tagged map inside a struct: serde gives no
        // place, the key is found where it is written once.
        #[derive(Debug, serde::Deserialize)]
        #[serde(tag = "kind", deny_unknown_fields)]
        enum Tagged {
            #[serde(rename = "a")]
            A {},
        }
        #[derive(Debug, serde::Deserialize)]
        struct Outer {
            #[allow(dead_code)]
            inner: Tagged,
        }
        let e = from_str::<Outer>("inner:\n  kind: a\n  extra: 1\n").unwrap_err();
        assert_eq!(e.position, Some((3, 3)), "{e}");
        assert_eq!(only_key("a: 1\nb: {a: 2}\n", "a"), None, "written twice");
        assert_eq!(only_key("x: [1]\n- b: 2\n", "b"), Some((2, 3)));
    }

    #[test]
    fn messages_quote_excerpts_and_keep_libyaml_context() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        enum E {
            A,
        }
        let long = "z".repeat(100_000);
        let e = from_str::<BTreeMap<String, E>>(&format!("k: {long}\n")).unwrap_err();
        assert!(e.message.len() < 300, "{}", e.message);
        assert!(e.message.starts_with("k: unknown variant `zzz"), "{e}");
        let e = from_str::<BTreeMap<String, u32>>("a: 1\nb: \"open\n").unwrap_err();
        let (line, column) = e.position.unwrap();
        assert!(
            !e.message
                .contains(&format!("at line {line} column {column}")),
            "{e}"
        );
        assert!(e.message.contains("while scanning"), "{e}");
    }

    #[test]
    fn files_are_bounded_and_utf8_errors_say_where() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, "a: 1\n".repeat(300_000)).unwrap();
        let e = read_file(&big).unwrap_err();
        assert_eq!(e.position, None);
        assert!(
            e.message.contains("1500000 bytes") && e.message.contains("1048576"),
            "{e}"
        );
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, b"a: 1\nb: caf\xe9\n").unwrap();
        let e = read_file(&bad).unwrap_err();
        assert_eq!(e.position, Some((2, 7)), "{e}");
        assert!(e.message.contains("0xe9"), "{e}");
        // A device has no size: reading stops at the limit.
        let e = read_file(Path::new("/dev/zero")).unwrap_err();
        assert!(e.message.contains("more than 1048576 bytes"), "{e}");
    }
}
