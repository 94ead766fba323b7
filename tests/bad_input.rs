//! Bad input through the real binary, as a fuzz campaign found it: deeply
//! nested or huge YAML, invalid UTF-8, errors without a place, inline blocks
//! reported worse than standalone files, errors echoing megabytes, terminal
//! escapes from histories, unsafe test names. Every case is refused while
//! resolving (exit 3, file:line:column, nothing written): no root, no hosts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXE: &str = env!("CARGO_BIN_EXE_faultline");

fn faultline(args: &[&str]) -> Output {
    Command::new(EXE)
        .args(args)
        .env("CI", "true")
        .output()
        .expect("faultline runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A folder with files in it, and a results folder that must stay unmade.
struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn file(&self, name: &str, bytes: impl AsRef<[u8]>) -> String {
        let path = self.tmp.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    }

    fn results(&self) -> PathBuf {
        self.tmp.path().join("results")
    }

    /// `faultline run ARGS --results-dir R`: must fail resolving.
    fn run(&self, args: &[&str]) -> String {
        let results = self.results();
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        all.extend(["--results-dir", results.to_str().unwrap()]);
        let o = faultline(&all);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {out}");
        assert!(!results.exists(), "{args:?} wrote results: {out}");
        out
    }

    /// `faultline suite FILE --results-dir R`: must fail resolving.
    fn suite(&self, file: &str) -> String {
        let results = self.results();
        let o = faultline(&["suite", file, "--results-dir", results.to_str().unwrap()]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(3), "{out}");
        assert!(!results.exists(), "{out}");
        out
    }

    /// `faultline heal --inventory FILE`: must fail reading the inventory.
    fn inventory(&self, file: &str) -> String {
        let o = faultline(&["heal", "--inventory", file]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(3), "{out}");
        out
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }
}

/// What must not reach a terminal raw: C0, C1, DEL and the bidirectional
/// marks, embeddings, overrides and isolates.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `{a: {a: … 1 … }}`, `depth` levels.
fn flow(depth: usize) -> String {
    format!("{}1{}", "{a: ".repeat(depth), "}".repeat(depth))
}

#[test]
fn deep_yaml_nesting_is_refused_at_once_in_every_file() {
    let d = Dir::new();
    let deep = flow(2000);
    let says = |out: &str, file: &str, line: usize| {
        assert!(
            out.contains(&format!("{file}:{line}:"))
                && out.contains("nesting deeper than 128 levels"),
            "{out}"
        );
    };
    let t = d.file("t.yaml", format!("db: raft\nworkload: {deep}\n"));
    says(&d.run(&[&t]), &t, 2);
    let w = d.file("w.yaml", format!("kind: register\nmix: {deep}\n"));
    says(&d.run(&["--workload", &w]), &w, 2);
    let n = d.file("n.yaml", format!("description: x\nfaults: [{deep}]\n"));
    says(&d.run(&["--nemesis", &n]), &n, 2);
    let s = d.file(
        "s.yaml",
        format!("tests:\n  - db: raft\n    nemesis: {deep}\n"),
    );
    says(&d.suite(&s), &s, 3);
    let h = d.file("hosts.yaml", format!("hosts: [{deep}]\n"));
    says(&d.inventory(&h), &h, 1);
    // Half a megabyte of it (a minute of libyaml's quadratic parse before).
    let t = d.file(
        "big.yaml",
        format!("db: raft\nworkload: {}\n", flow(125_000)),
    );
    says(&d.run(&[&t]), &t, 2);
}

#[test]
fn yaml_files_over_1_mib_are_refused_naming_file_size_and_limit() {
    let d = Dir::new();
    // The mistake is on line 2: it used to be found after parsing it all.
    let big = format!(
        "db: raft\nworkload: regster\n{}",
        "# padding\n".repeat(200_000)
    );
    let size = big.len();
    for (name, out) in [
        ("t.yaml", {
            let f = d.file("t.yaml", &big);
            d.run(&[&f])
        }),
        ("n.yaml", {
            let f = d.file("n.yaml", &big);
            d.run(&["--nemesis", &f])
        }),
        ("w.yaml", {
            let f = d.file("w.yaml", &big);
            d.run(&["--workload", &f])
        }),
        ("s.yaml", {
            let f = d.file("s.yaml", &big);
            d.suite(&f)
        }),
        ("hosts.yaml", {
            let f = d.file("hosts.yaml", &big);
            d.inventory(&f)
        }),
    ] {
        assert!(
            out.contains(name)
                && out.contains(&format!("{size} bytes"))
                && out.contains("1048576 bytes (1 MiB)"),
            "{name}: {out}"
        );
    }
}

#[test]
fn invalid_utf8_is_reported_by_line_and_column() {
    let d = Dir::new();
    let t = d.file("t.yaml", b"db: raft\nworkload: register\n# caf\xe9 \xff\n");
    let out = d.run(&[&t]);
    assert!(
        out.contains(&format!(
            "{t}:3:6: not valid UTF-8: byte 0xe9 at byte offset 33"
        )),
        "{out}"
    );
    let h = d.file(
        "hosts.yaml",
        b"hosts:\n  - {name: n\xff1, address: 10.0.0.1}\n",
    );
    let out = d.inventory(&h);
    assert!(out.contains(&format!("{h}:2:13: not valid UTF-8")), "{out}");

    // Histories: JSONL (both readers) and EDN.
    let op0 = r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"read","value":null}"#;
    let j = d.file(
        "h.jsonl",
        [op0.as_bytes(), b"\n{\"index\":1,\"time\":1,\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"value\":\"\xff\"}\n"].concat(),
    );
    let out_dir = d.path().join("out");
    for extra in [&[][..], &["--workload", "list-append"][..]] {
        let mut args = vec!["check", &j, "--out", out_dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = faultline(&args);
        assert_eq!(o.status.code(), Some(3), "{}", text(&o));
        assert!(
            text(&o).contains(&format!("{j}:2:65: not valid UTF-8: byte 0xff")),
            "{extra:?}: {}",
            text(&o)
        );
    }
    let e = d.file(
        "h.edn",
        b"{:process 0, :type :invoke, :f :read, :value nil}\n{:process 0, :type :ok, :f :read, :value \"\xff\"}\n",
    );
    let o = faultline(&["check", &e, "--out", out_dir.to_str().unwrap()]);
    assert!(
        text(&o).contains(&format!(
            "{e}:2:43: not valid UTF-8: byte 0xff at byte offset 92"
        )),
        "{}",
        text(&o)
    );
}

#[test]
fn errors_that_had_no_place_now_have_one() {
    let d = Dir::new();
    let t = d.file("two.yaml", "db: raft\n---\ndb: paxos\n");
    let out = d.run(&[&t]);
    assert!(
        out.contains(&format!("{t}:2:1: ")) && out.contains("more than one document"),
        "{out}"
    );
    let t = d.file("nodb.yaml", "workload: register\n");
    assert!(
        d.run(&[&t]).contains(&format!("{t}:1:1: no `db` given")),
        "{}",
        d.run(&[&t])
    );
    let s = d.file("empty.yaml", "name: nightly\n");
    let out = d.suite(&s);
    assert!(
        out.contains(&format!("{s}:1:1: the suite has no `tests`")),
        "{out}"
    );
    let s = d.file("entry.yaml", "tests:\n  - db: raft\n  - workload: bank\n");
    let out = d.suite(&s);
    assert!(
        out.contains(&format!("{s}:3:5: tests[1]: no `db` given")),
        "{out}"
    );
    let n = d.file(
        "twice.yaml",
        "description: x\nfaults:\n  - clock: {offset_ms: 100}\n  - clock: {offset_ms: 200}\n",
    );
    let out = d.run(&["--nemesis", &n]);
    assert!(
        out.contains(&format!(
            "{n}:4:5: faults[1]: the fault `clock` appears twice"
        )),
        "{out}"
    );
}

/// A custom system's map: an unknown key, an unknown placeholder and a
/// missing `start`, each at its line:column, exit 3, nothing run.
#[test]
fn a_custom_systems_mistakes_are_placed_and_exit_3() {
    let d = Dir::new();
    let t = d.file(
        "key.yaml",
        "db:\n  kind: custom\n  start: kv\n  client: c\n  pidfiel: /p\n",
    );
    let out = d.run(&[&t]);
    assert!(
        out.contains(&format!("{t}:5:3: db: unknown field `pidfiel`")),
        "{out}"
    );
    let t = d.file(
        "placeholder.yaml",
        "db:\n  kind: custom\n  start: kv --node {node}\n  client: c\n",
    );
    let out = d.run(&[&t]);
    assert!(
        out.contains(&format!("{t}:3:10: db.start: unknown placeholder {{node}}")),
        "{out}"
    );
    let t = d.file("nostart.yaml", "db:\n  kind: custom\n  client: c\n");
    let out = d.run(&[&t]);
    assert!(
        out.contains(&format!("{t}:2:3: db: missing field `start`")),
        "{out}"
    );
}

/// The same mistake inline and in a file of its own: the real line:column,
/// the key path, the same words.
#[test]
fn inline_blocks_are_reported_as_well_as_standalone_files() {
    let d = Dir::new();
    let message = |out: &str, file: &str| -> String {
        let line = out
            .lines()
            .find(|l| l.contains(file))
            .unwrap_or_else(|| panic!("{out}"));
        line[line.find(file).unwrap() + file.len()..].to_string()
    };

    let w = d.file("w.yaml", "kind: regster\n");
    let alone = message(&d.run(&["--workload", &w]), &w);
    let t = d.file("t.yaml", "db: raft\nworkload:\n  kind: regster\n");
    let inline = message(&d.run(&[&t]), &t);
    assert_eq!(
        alone,
        ":1:7: kind: unknown variant `regster`, expected one of `register`, `list-append`, `rw-register`, `bank`, `set`, `counter`, `lock`"
    );
    assert_eq!(inline, alone.replace(":1:7: kind", ":3:9: workload.kind"));

    let n = d.file("n.yaml", "faults:\n  - partition:\n      shape: hlaves\n");
    let alone = message(&d.run(&["--nemesis", &n]), &n);
    let t = d.file(
        "tn.yaml",
        "db: raft\nnemesis:\n  faults:\n    - partition:\n        shape: hlaves\n",
    );
    let inline = message(&d.run(&[&t]), &t);
    assert!(
        alone.starts_with(":3:14: faults[0].partition.shape: unknown variant `hlaves`"),
        "{alone}"
    );
    assert_eq!(
        inline,
        alone.replace(":3:14: faults", ":5:16: nemesis.faults")
    );

    // In a suite entry, its defaults and its matrix.
    let s = d.file(
        "s.yaml",
        "defaults:\n  time_limit: 5s\ntests:\n  - db: raft\n  - db: paxos\n    nemesis: {faults: [{partition: {shape: hlaves}}]}\n",
    );
    let out = d.suite(&s);
    assert!(
        out.contains(&format!(
            "{s}:6:44: tests[1].nemesis.faults[0].partition.shape: unknown variant `hlaves`"
        )),
        "{out}"
    );
    let s = d.file(
        "sd.yaml",
        "defaults:\n  workload: {kind: register, accounts: 3}\ntests:\n  - db: raft\n",
    );
    let out = d.suite(&s);
    assert!(
        out.contains(&format!(
            "{s}:2:40: defaults.workload.accounts: unknown field `accounts`, expected one of `keys`"
        )),
        "{out}"
    );
    let s = d.file(
        "sm.yaml",
        "matrix:\n  db: [raft]\n  workload: [register, regster]\n",
    );
    let out = d.suite(&s);
    assert!(
        out.contains(&format!(
            "{s}:3:24: matrix.workload[1]: unknown workload \"regster\""
        )),
        "{out}"
    );
}

#[test]
fn errors_quote_at_most_a_short_excerpt() {
    let d = Dir::new();
    let digits = "9".repeat(10_000_000);
    let log = d.file(
        "jepsen.log",
        format!("INFO  jepsen.util - 0\t:invoke\t:read\t{digits}x\n"),
    );
    let out_dir = d.path().join("out");
    let o = faultline(&["check", &log, "--out", out_dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(o.stdout.len() < 1000, "{} bytes on stdout", o.stdout.len());
    assert!(
        text(&o).contains(&format!("{}…", "9".repeat(80))),
        "{}",
        text(&o)
    );
    let results = std::fs::metadata(out_dir.join("results.json"))
        .unwrap()
        .len();
    assert!(results < 2000, "results.json has {results} bytes");

    // EDN and JSONL tokens, YAML values, command-line arguments.
    let long = "x".repeat(100_000);
    let edn = d.file(
        "h.edn",
        format!("{{:process 0, :type :{long}, :f :read}}\n"),
    );
    let jsonl = d.file(
        "h.jsonl",
        format!("{{\"index\":0,\"time\":0,\"process\":0,\"type\":\"{long}\",\"f\":\"read\"}}\n"),
    );
    for file in [&edn, &jsonl] {
        let o = faultline(&["check", file, "--out", out_dir.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(3));
        assert!(o.stdout.len() < 1000, "{file}: {}", text(&o));
        assert!(text(&o).contains('…'), "{}", text(&o));
    }
    let t = d.file("t.yaml", format!("db: {long}\n"));
    let out = d.run(&[&t]);
    assert!(
        out.len() < 1000 && out.contains("unknown variant `xxx"),
        "{out}"
    );
    let out = d.run(&["--workload", &long]);
    assert!(out.len() < 1000 && out.contains('…'), "{out}");
    let o = faultline(&["check", "--model", &long, &jsonl]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        text(&o).len() < 1000 && text(&o).contains('…'),
        "{}",
        text(&o)
    );
    let o = faultline(&["check", "--initial-value", &long, &jsonl]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        text(&o).len() < 1000 && text(&o).contains('…'),
        "{}",
        text(&o)
    );
}

/// What a history says reaches the terminal escaped: no escape sequences,
/// no bidirectional overrides.
#[test]
fn check_prints_history_text_escaped() {
    let d = Dir::new();
    let key = r#""k\u001b[31mRED\u009b\u202eX\u2066\u200f\u007f\n""#;
    let op = |i: u32, p: u32, kind: &str, mop: &str| {
        format!(
            "{{\"index\":{i},\"time\":{i},\"process\":{p},\"type\":\"{kind}\",\"f\":\"txn\",\"value\":[{mop}]}}\n"
        )
    };
    let history = [
        op(0, 0, "invoke", &format!("[\"append\",{key},1]")),
        op(1, 0, "ok", &format!("[\"append\",{key},1]")),
        op(2, 1, "invoke", &format!("[\"r\",{key},null]")),
        op(3, 1, "ok", &format!("[\"r\",{key},[2]]")),
    ]
    .concat();
    let h = d.file("esc.jsonl", history);
    let out_dir = d.path().join("out");
    let o = faultline(&[
        "check",
        "--workload",
        "list-append",
        &h,
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stdout = String::from_utf8(o.stdout.clone()).unwrap();
    let unsafe_chars: Vec<char> = stdout
        .chars()
        .filter(|&c| c != '\n' && unsafe_char(c))
        .collect();
    assert!(unsafe_chars.is_empty(), "{unsafe_chars:?} in\n{stdout}");
    assert!(
        stdout.contains(r"read key k\u{1b}[31mRED\u{9b}\u{202e}X\u{2066}\u{200f}\u{7f}\n = [2]"),
        "{stdout}"
    );

    // The register checker, and an error that quotes the history.
    let lin = d.file(
        "lin.jsonl",
        [
            r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"write","value":["\u202ek\u001b[2J",1]}"#,
            r#"{"index":1,"time":1,"process":0,"type":"ok","f":"write","value":["\u202ek\u001b[2J",1]}"#,
            r#"{"index":2,"time":2,"process":0,"type":"invoke","f":"read","value":["\u202ek\u001b[2J",null]}"#,
            r#"{"index":3,"time":3,"process":0,"type":"ok","f":"read","value":["\u202ek\u001b[2J",2]}"#,
            "",
        ]
        .join("\n"),
    );
    let bad = d.file(
        "bad.jsonl",
        "{\"index\":0,\"time\":0,\"process\":0,\"type\":\"\\u001b[2J\\u202e\",\"f\":\"read\"}\n",
    );
    for file in [&lin, &bad] {
        let o = faultline(&["check", file, "--out", out_dir.to_str().unwrap()]);
        let all = text(&o);
        assert!(!all.chars().any(|c| c != '\n' && unsafe_char(c)), "{all:?}");
        assert!(all.contains(r"\u{202e}"), "{all}");
    }
}

#[test]
fn unsafe_test_names_are_refused_at_resolve_time() {
    let d = Dir::new();
    let t = d.file("t.yaml", "name: t$(touch${IFS}PWNED-REPLAY)\ndb: raft\n");
    let out = d.run(&[&t]);
    assert!(
        out.contains(&format!(
            "{t}:1:7: name: test name \"t$(touch${{IFS}}PWNED-REPLAY)\" must be"
        )),
        "{out}"
    );
    let s = d.file("s.yaml", "tests:\n  - {db: raft, name: ../../etc}\n");
    let out = d.suite(&s);
    assert!(
        out.contains(&format!("{s}:2:22: tests[0].name: test name")),
        "{out}"
    );
    // A stored test.yaml edited by hand is checked as well.
    let replay = d.file(
        "test.yaml",
        "name: -rf\ndb: raft\nbugs: []\nworkload_name: register\nworkload: {kind: register}\nnemesis_name: none\nnemesis: {}\nhosts: local\nnodes: 3\ntime_limit: 1s\nconcurrency: 1\nrate: 1.0\nseed: 1\nrecovery: 1s\n",
    );
    let out = d.run(&["--replay", &replay]);
    assert!(
        out.contains(&format!("{replay}:1:7: name: test name \"-rf\"")),
        "{out}"
    );
    assert!(!d.path().join("PWNED-REPLAY").exists());
}

#[test]
fn a_misspelt_bug_is_refused_before_any_host_is_made() {
    let d = Dir::new();
    let t = d.file("t.yaml", "db: raft\nbugs: [stale-read, stale-reed]\n");
    let out = d.run(&[&t]);
    assert!(
        out.contains(&format!(
            "{t}:2:20: bugs[1]: raft has no bug named \"stale-reed\""
        )),
        "{out}"
    );
    let out = d.run(&["--db", "paxos", "--bug", "forget-vote"]);
    assert!(
        out.contains("--bug: paxos has no bug named \"forget-vote\""),
        "{out}"
    );
}

#[test]
fn a_workload_the_system_cannot_run_is_refused_before_any_host() {
    let d = Dir::new();
    // The bundled nodes have no leases, so no lock.
    let out = d.run(&["--db", "raft", "--workload", "lock"]);
    assert!(
        out.contains("raft cannot run a lock workload; it runs: register, list-append"),
        "{out}"
    );
    let t = d.file("t.yaml", "db: paxos\nworkload: {kind: lock, lease: 3s}\n");
    let out = d.run(&[&t]);
    assert!(out.contains("paxos cannot run a lock workload"), "{out}");
    // A knob out of range is pointed at where it is written.
    let t = d.file(
        "u.yaml",
        "db: paxos\nworkload: {kind: lock, lease: 500ms}\n",
    );
    let out = d.run(&[&t]);
    assert!(
        out.contains("u.yaml:2:31: workload.lease: `lease` must be at least 1s"),
        "{out}"
    );
}
