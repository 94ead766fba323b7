//! Imports among the modules of one folder flow one way: no two siblings
//! (files or sub-folders of the same folder) import each other, directly or
//! round a longer cycle. A shared piece belongs in the lower module, the
//! parent `mod.rs`, or a small module of its own.
//!
//! Reads `src/` as text: `super::x` in a file of the folder and
//! `crate::<folder>::x` anywhere in a sibling name sibling `x`. Comments and
//! `#[cfg(test)] mod` blocks are left out (in a test module `super` is the
//! file itself).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One sibling importing another: `from` → `to` in `folder`, with where.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    folder: String,
    from: String,
    to: String,
    /// `file:line`, the first place seen.
    at: String,
}

#[test]
fn no_sibling_modules_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = read_tree(&src);
    assert!(files.len() > 50, "read only {} files of src/", files.len());
    let cycles = cycles(&edges(&files));
    assert!(
        cycles.is_empty(),
        "sibling modules import each other (move the shared piece to the lower module, \
         the parent mod.rs or a module of its own):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn finds_mutual_imports_by_super_and_by_crate_path() {
    let files = vec![
        file(
            "net/mod.rs",
            "pub mod packet;\npub mod netdelay;\npub use packet::Distribution;",
        ),
        file(
            "net/packet.rs",
            "use super::iptables;\nuse super::netdelay::DelayConfig;\n",
        ),
        file(
            "net/netdelay.rs",
            "use super::{iptables::QUEUE_NUM, packet::Distribution};",
        ),
        file("net/iptables.rs", "pub const QUEUE_NUM: u16 = 0;"),
        file("nemesis/mod.rs", ""),
        file(
            "nemesis/fault.rs",
            "fn f() { crate::nemesis::schedule::g() }",
        ),
        file(
            "nemesis/schedule.rs",
            "use crate::{nemesis::{fault::FaultSpec}, span::Span};",
        ),
    ];
    let cycles = cycles(&edges(&files));
    assert_eq!(cycles.len(), 2, "{cycles:#?}");
    assert!(
        cycles[0].starts_with("src/nemesis: fault → schedule"),
        "{}",
        cycles[0]
    );
    assert!(
        cycles[1].starts_with("src/net: netdelay → packet"),
        "{}",
        cycles[1]
    );
}

#[test]
fn finds_longer_cycles_and_cycles_of_folders() {
    let files = vec![
        file("a/mod.rs", ""),
        file("a/x.rs", "use super::y::Y;"),
        file("a/y.rs", "use super::z::Z;"),
        file("a/z.rs", "use crate::a::x::X;"),
        file("b.rs", "use crate::c::C;"),
        file("c/mod.rs", "use crate::b::B;"),
    ];
    let cycles = cycles(&edges(&files));
    assert_eq!(cycles.len(), 2, "{cycles:#?}");
    assert!(cycles[0].starts_with("src: b → c → b"), "{}", cycles[0]);
    assert!(
        cycles[1].starts_with("src/a: x → y → z → x"),
        "{}",
        cycles[1]
    );
}

#[test]
fn one_way_imports_comments_tests_and_the_parent_are_fine() {
    let files = vec![
        file("r/mod.rs", "pub mod run;\npub mod output;\nuse run::x;"),
        file(
            "r/run.rs",
            "use super::output::write;\nuse super::super::other;\nuse super::Shared;",
        ),
        file(
            "r/output.rs",
            "// see super::run\n/// [`super::run`] calls this.\nuse super::Shared;\n\
             #[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::r::run::x;\n}\n",
        ),
    ];
    assert_eq!(cycles(&edges(&files)), Vec::<String>::new());
}

fn file(path: &str, text: &str) -> (String, String) {
    (path.to_string(), text.to_string())
}

/// Every `.rs` file under `dir`, as (path relative to `dir`, text), sorted.
fn read_tree(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(dir).unwrap().to_string_lossy();
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((rel.replace('\\', "/"), text));
            }
        }
    }
    out.sort();
    out
}

/// The module path of a folder (`checker/elle` → `[checker, elle]`).
fn folder_path(folder: &str) -> Vec<String> {
    folder
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Which sibling of which folder a file belongs to, at each level: for
/// `checker/elle/graph.rs`, `graph` in `checker/elle`, `elle` in `checker`
/// and `checker` in the crate root. The flag says whether `super::` in the
/// file names that folder's children (true at the file's own level).
/// `lib.rs` and `main.rs` belong to no sibling.
fn memberships(path: &str) -> Vec<(String, String, bool)> {
    let parts: Vec<&str> = path.split('/').collect();
    let (dirs, file) = parts.split_at(parts.len() - 1);
    let stem = file[0].trim_end_matches(".rs");
    let mut out = Vec::new();
    let is_mod = stem == "mod";
    if !matches!(stem, "mod" | "lib" | "main") {
        out.push((dirs.join("/"), stem.to_string(), true));
    }
    for i in (0..dirs.len()).rev() {
        let own_level = is_mod && i + 1 == dirs.len();
        out.push((dirs[..i].join("/"), dirs[i].to_string(), own_level));
    }
    out
}

/// The sibling names in each folder: its `.rs` files and sub-folders.
fn siblings(files: &[(String, String)]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, _) in files {
        for (folder, name, _) in memberships(path) {
            out.entry(folder).or_default().insert(name);
        }
    }
    out
}

fn edges(files: &[(String, String)]) -> BTreeSet<Edge> {
    let siblings = siblings(files);
    let mut found: BTreeMap<(String, String, String), String> = BTreeMap::new();
    for (path, text) in files {
        let code = strip(text);
        for (folder, me, is_file) in memberships(path) {
            let names = &siblings[&folder];
            let prefix = folder_path(&folder);
            for (offset, root, paths) in paths_in(&code) {
                for p in paths {
                    let to = match root {
                        // `super::` from a file directly in the folder.
                        Root::Super if is_file => p.first(),
                        Root::Super => None,
                        Root::Crate => p.strip_prefix(prefix.as_slice()).and_then(|r| r.first()),
                    };
                    let Some(to) = to else { continue };
                    if to == &me || !names.contains(to) {
                        continue;
                    }
                    let line = code[..offset].matches('\n').count() + 1;
                    found
                        .entry((folder.clone(), me.clone(), to.clone()))
                        .or_insert_with(|| format!("src/{path}:{line}"));
                }
            }
        }
    }
    found
        .into_iter()
        .map(|((folder, from, to), at)| Edge {
            folder,
            from,
            to,
            at,
        })
        .collect()
}

/// Every cycle among siblings, one line each: `src/folder: a → b → a (at …)`.
/// Each cycle is found once, from its smallest member.
fn cycles(edges: &BTreeSet<Edge>) -> Vec<String> {
    let mut by_folder: BTreeMap<&str, Vec<&Edge>> = BTreeMap::new();
    for e in edges {
        by_folder.entry(&e.folder).or_default().push(e);
    }
    let mut out = Vec::new();
    for (folder, es) in by_folder {
        let mut seen = BTreeSet::new();
        let starts: BTreeSet<&str> = es.iter().map(|e| e.from.as_str()).collect();
        for start in starts {
            // Shortest cycle back to `start` through members not below it
            // (breadth first), so each cycle is reported from its smallest member.
            let mut prev: BTreeMap<&str, &Edge> = BTreeMap::new();
            let mut queue = std::collections::VecDeque::from([start]);
            let mut closing = None;
            while let Some(n) = queue.pop_front() {
                for e in es.iter().filter(|e| e.from == n && e.to.as_str() >= start) {
                    if e.to == start {
                        closing = Some(*e);
                        break;
                    }
                    if !prev.contains_key(e.to.as_str()) {
                        prev.insert(&e.to, e);
                        queue.push_back(&e.to);
                    }
                }
                if closing.is_some() {
                    break;
                }
            }
            let Some(last) = closing else { continue };
            let mut chain = vec![last];
            let mut at = last.from.as_str();
            while at != start {
                let e = prev[at];
                chain.push(e);
                at = &e.from;
            }
            chain.reverse();
            let members: BTreeSet<&str> = chain.iter().map(|e| e.from.as_str()).collect();
            if !seen.insert(members) {
                continue;
            }
            let names: Vec<&str> = chain
                .iter()
                .map(|e| e.from.as_str())
                .chain([start])
                .collect();
            let wheres: Vec<String> = chain
                .iter()
                .map(|e| format!("{} → {}: {}", e.from, e.to, e.at))
                .collect();
            let folder = if folder.is_empty() {
                "src".to_string()
            } else {
                format!("src/{folder}")
            };
            out.push(format!(
                "{folder}: {} ({})",
                names.join(" → "),
                wheres.join(", ")
            ));
        }
    }
    out
}

/// The code of a file without comments and `#[cfg(test)] mod` blocks;
/// line breaks are kept, so offsets still give line numbers.
fn strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut lines = text.lines().peekable();
    let mut in_block_comment = false;
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines.peek().is_some_and(|next| {
                let next = next.trim_start();
                next.starts_with("mod ")
                    || (next.starts_with("pub") && next.contains(" mod ") && next.ends_with('{'))
            })
        {
            // To the module's closing brace, at the indentation of its `mod`.
            let indent = lines.peek().map_or(0, |l| l.len() - l.trim_start().len());
            let close = format!("{}}}", " ".repeat(indent));
            out.push('\n');
            for l in lines.by_ref() {
                out.push('\n');
                if l.trim_end() == close {
                    break;
                }
            }
            continue;
        }
        let mut rest = line;
        let mut kept = String::new();
        loop {
            if in_block_comment {
                match rest.find("*/") {
                    Some(i) => {
                        rest = &rest[i + 2..];
                        in_block_comment = false;
                    }
                    None => break,
                }
            } else {
                let line_comment = rest.find("//");
                let block_comment = rest.find("/*");
                match (line_comment, block_comment) {
                    (Some(l), Some(b)) if b < l => {
                        kept.push_str(&rest[..b]);
                        rest = &rest[b + 2..];
                        in_block_comment = true;
                    }
                    (Some(l), _) => {
                        kept.push_str(&rest[..l]);
                        break;
                    }
                    (None, Some(b)) => {
                        kept.push_str(&rest[..b]);
                        rest = &rest[b + 2..];
                        in_block_comment = true;
                    }
                    (None, None) => {
                        kept.push_str(rest);
                        break;
                    }
                }
            }
        }
        out.push_str(&kept);
        out.push('\n');
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Root {
    Super,
    Crate,
}

/// Every path that starts with `super::` or `crate::` (not `super::super::`,
/// not the tail of a longer path), with its offset and its expansions:
/// `super::{a::B, c}` is `[a, B]` and `[c]`.
fn paths_in(code: &str) -> Vec<(usize, Root, Vec<Vec<String>>)> {
    let mut out = Vec::new();
    for (root, word) in [(Root::Super, "super::"), (Root::Crate, "crate::")] {
        for (i, _) in code.match_indices(word) {
            let before = code[..i].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':' || c == '$') {
                continue;
            }
            let (paths, _) = tree(&code[i + word.len()..]);
            let paths = paths
                .into_iter()
                .filter(|p| !(root == Root::Super && p.first().is_some_and(|s| s == "super")))
                .collect();
            out.push((i, root, paths));
        }
    }
    out
}

/// A use tree at the start of `s`: its paths, and what follows it.
fn tree(s: &str) -> (Vec<Vec<String>>, &str) {
    let s = s.trim_start();
    if let Some(inner) = s.strip_prefix('{') {
        let mut paths = Vec::new();
        let mut rest = inner;
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('}') {
                return (paths, after);
            }
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
                continue;
            }
            let (more, after) = tree(rest);
            if after.len() == rest.len() {
                // Not a path: give up on this group.
                return (paths, after);
            }
            paths.extend(more);
            rest = after;
        }
    }
    let len = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '*'))
        .unwrap_or(s.len());
    if len == 0 {
        return (Vec::new(), s);
    }
    let (ident, rest) = s.split_at(len);
    match rest.strip_prefix("::") {
        Some(after) => {
            let (tails, rest) = tree(after);
            let paths = if tails.is_empty() {
                vec![vec![ident.to_string()]]
            } else {
                tails
                    .into_iter()
                    .map(|mut t| {
                        t.insert(0, ident.to_string());
                        t
                    })
                    .collect()
            };
            (paths, rest)
        }
        None => (vec![vec![ident.to_string()]], rest),
    }
}
