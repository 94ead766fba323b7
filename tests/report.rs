//! report.html opened in real headless Chromium: a valid run, a run that is
//! not linearizable, an Elle run with cycles, a folder with files missing,
//! hostile values everywhere (XSS), control and bidirectional characters,
//! one invalid run per checker (its results.json written by the runner's
//! own code from the checkers' real output), and the results index.
//! Assertions are on the DOM Chromium renders (after the page's script
//! ran). Run folders and screenshots are kept under the target directory's
//! tmp/report/ for inspection, never in the checkout's results/ (whose
//! index would list them).

use faultline::history::jsonl::write_file;
use faultline::history::nemesis::fault_intervals;
use faultline::history::{Op, OpType, Process};
use faultline::report::bench::{Synthetic, synthetic_history, write_synthetic_run};
use faultline::report::results::{
    self, Cell, CheckerResult, CycleStep, Elle, ElleCase, Evidence, Explanation, FileResult,
    KeyResult, Linearizable, OpRef, PrefixStep, Results, RunResult, Table, TxnRef, Valid,
};
use faultline::report::{Layout, write_report};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh folder for one test's run, kept after the test for inspection
/// (in Cargo's temporary folder for integration tests, outside the checkout).
fn artifact_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("report")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Whether Chromium can run here. CI installs it, so there a missing
/// browser fails the test; elsewhere the test says loudly that it skipped.
fn chromium_or_skip(test: &str) -> bool {
    if Command::new("chromium").arg("--version").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "chromium is not installed, and CI must have it (.ci/run installs it)"
    );
    eprintln!("SKIPPED {test}: chromium is not installed (apt-get install chromium)");
    false
}

fn chromium(profile: &Path, args: &[&str], url: &str) -> std::process::Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium runs")
}

/// The DOM after the page's scripts ran.
fn dump_dom(page: &Path, fragment: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}{fragment}", page.display());
    let out = chromium(profile.path(), &["--dump-dom"], &url);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(dom.contains("</html>"), "chromium dumped no page for {url}");
    dom
}

fn screenshot(page: &Path, png: &Path, height: u32) {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.display());
    chromium(
        profile.path(),
        &[
            &format!("--window-size=1400,{height}"),
            &format!("--screenshot={}", png.display()),
        ],
        &url,
    );
    assert!(png.exists(), "no screenshot at {}", png.display());
}

/// The text of the element with this id (its opening tag to the next `<`).
fn text_of(dom: &str, id: &str) -> String {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let start = at + dom[at..].find('>').unwrap() + 1;
    let end = start + dom[start..].find('<').unwrap();
    dom[start..end].to_string()
}

/// The markup of the first element that starts with `open` up to `close`.
fn element<'a>(dom: &'a str, open: &str, close: &str) -> &'a str {
    let start = dom.find(open).unwrap_or_else(|| panic!("no {open}"));
    let end = start + dom[start..].find(close).unwrap();
    &dom[start..end]
}

fn op(time_ms: u64, process: u64, kind: OpType, f: &str, value: Value) -> Op {
    Op {
        index: 0,
        time: time_ms * 1_000_000,
        process: Process::Client(process),
        kind,
        f: f.into(),
        value,
        node: Some("n1".into()),
        error: None,
    }
}

/// `extra` merged into `base` by time, then indexed from 0.
fn merge(mut base: Vec<Op>, extra: Vec<Op>) -> Vec<Op> {
    base.extend(extra);
    base.sort_by_key(|o| o.time);
    for (i, o) in base.iter_mut().enumerate() {
        o.index = i as u64;
    }
    base
}

fn index_of(ops: &[Op], pred: impl Fn(&Op) -> bool) -> u64 {
    ops.iter().find(|o| pred(o)).expect("op present").index
}

/// Checks dir/history.jsonl with the real linearizability checker (as
/// `faultline check` does) and writes its results.json.
fn check_linearizable(dir: &Path) -> faultline::report::results::Results {
    use faultline::checker::linearizable::Options;
    use faultline::runner::check::{Checker, check_file, to_results, write_results};
    let checker = Checker::Linearizable(Options::default());
    let check = check_file(
        &dir.join("history.jsonl"),
        faultline::history::Format::Auto,
        &checker,
    );
    let results = to_results(&[check], &checker);
    write_results(&dir.join("results.json"), &results).unwrap();
    results
}

/// Writes dir/results.json with the writer's own function.
fn save_results(dir: &Path, results: &Results) {
    faultline::runner::check::write_results(&dir.join("results.json"), results).unwrap();
}

/// results.json with these files.
fn results_of(valid: Valid, files: Vec<FileResult>) -> Results {
    Results {
        schema_version: results::SCHEMA_VERSION,
        tool: "faultline test".into(),
        valid,
        files,
        run: None,
    }
}

/// A file's result without a checker's section.
fn file_result(path: &str, checker: &str, valid: Valid) -> FileResult {
    FileResult {
        path: path.into(),
        valid,
        error: None,
        checker: checker.into(),
        timings_ms: Default::default(),
        ends_early: None,
        linearizable: None,
        elle: None,
    }
}

#[test]
fn valid_run_shows_its_verdict_one_band_per_fault_and_a_timeline() {
    if !chromium_or_skip("valid_run") {
        return;
    }
    let dir = artifact_dir("valid");
    let ops = write_synthetic_run(
        &dir,
        &Synthetic {
            events: 6_000,
            ..Synthetic::default()
        },
    )
    .unwrap();
    let results = check_linearizable(&dir);
    assert_eq!(results.valid, faultline::report::results::Valid::True);
    let written = write_report(&dir, Layout::Auto).unwrap();
    let dom = dump_dom(&written.path, "");
    assert_eq!(text_of(&dom, "verdict-word"), "VALID");
    let intervals = fault_intervals(&ops);
    assert!(intervals.len() >= 5, "the run has faults to draw");
    let throughput = element(&dom, "<svg class=\"chart throughput\"", "</svg>");
    assert_eq!(
        throughput.matches("<rect class=\"band").count(),
        intervals.len(),
        "one band per nemesis interval"
    );
    assert_eq!(throughput.matches("data-fault=\"kill\"").count(), 1);
    for panel in dom.split("<svg class=\"chart latency\"").skip(1) {
        let panel = &panel[..panel.find("</svg>").unwrap()];
        assert_eq!(panel.matches("<rect class=\"band").count(), intervals.len());
    }
    // The script drew a window of the timeline.
    assert!(
        dom.matches("class=\"tl-op ").count() > 20,
        "timeline rendered"
    );
    assert!(text_of(&dom, "tl-range").contains(&format!("of {}", thousands(ops.len()))));
    assert!(dom.contains("faultline run --replay"));
    assert!(dom.contains("href=\"nodes/n1/node.log\""));
    assert!(!dom.contains("id=\"notices\""), "nothing missing");
    screenshot(&written.path, &dir.join("screenshot.png"), 3600);
}

fn thousands(n: usize) -> String {
    faultline::report::html::thousands(n as u64)
}

/// A stale read on key 99: write 1, write 2 (both ok), then a read of 1.
/// A write of 3 is concurrent and never returns.
fn stale_read_run(dir: &Path) -> (Vec<Op>, u64) {
    let base = synthetic_history(&Synthetic {
        events: 3_000,
        ..Synthetic::default()
    });
    let extra = vec![
        op(100, 901, OpType::Invoke, "write", json!([99, 1])),
        op(110, 901, OpType::Ok, "write", json!([99, 1])),
        op(120, 902, OpType::Invoke, "write", json!([99, 2])),
        op(130, 902, OpType::Ok, "write", json!([99, 2])),
        op(135, 903, OpType::Invoke, "write", json!([99, 3])),
        op(136, 904, OpType::Invoke, "read", json!([99, null])),
        op(138, 904, OpType::Ok, "read", json!([99, 3])),
        op(140, 901, OpType::Invoke, "read", json!([99, null])),
        op(150, 901, OpType::Ok, "read", json!([99, 1])),
    ];
    let ops = merge(base, extra);
    write_file(&dir.join("history.jsonl"), &ops).unwrap();
    let read = index_of(&ops, |o| {
        o.process == Process::Client(901) && o.kind == OpType::Invoke && o.f == "read"
    });
    let results = check_linearizable(dir);
    assert_eq!(results.valid, faultline::report::results::Valid::False);
    (ops, read)
}

#[test]
fn nonlinearizable_run_draws_the_op_that_cannot_be_placed_and_links_it_to_the_timeline() {
    if !chromium_or_skip("nonlinearizable_run") {
        return;
    }
    let dir = artifact_dir("invalid-linearizable");
    let (_, read) = stale_read_run(&dir);
    let written = write_report(&dir, Layout::Auto).unwrap();
    assert_eq!(written.verdict, Some(faultline::checker::Verdict::Invalid));
    let dom = dump_dom(&written.path, "");
    assert_eq!(text_of(&dom, "verdict-word"), "INVALID");
    let lin = element(&dom, "<svg class=\"lin-timeline\"", "</svg>");
    assert_eq!(
        lin.matches("class=\"bar stuck").count(),
        1,
        "the op that cannot be placed"
    );
    // write 1, write 2, write 3 (placed though it never returned: a read
    // saw its value) and that read.
    assert_eq!(lin.matches("class=\"bar prefix").count(), 4);
    assert_eq!(
        lin.matches("class=\"bar prefix open").count(),
        1,
        "write 3 never returned"
    );
    assert!(lin.contains(&format!("href=\"#op-{read}\"")));
    let states = element(&dom, "<ul class=\"states\"", "</ul>");
    assert!(
        states.contains("<code>3</code>"),
        "the state after write 3 and the read that saw it: {states}"
    );
    // Following the link opens the timeline at that op, highlighted.
    let dom = dump_dom(&written.path, &format!("#op-{read}"));
    let hl = element(&dom, "class=\"tl-op ok hl\"", ">");
    assert!(hl.contains(&format!("id=\"op-{read}\"")), "{hl}");
    screenshot(&written.path, &dir.join("screenshot.png"), 2000);
}

/// An Elle result with two cycles (G2-item, G-single) and one non-cycle
/// anomaly (G1a).
fn elle_run(dir: &Path) -> Vec<Op> {
    let t = |time, p, kind, v: Value| op(time, p, kind, "txn", v);
    let ops = merge(
        Vec::new(),
        vec![
            t(
                1,
                1,
                OpType::Invoke,
                json!([["append", "x", 1], ["r", "y", null]]),
            ),
            t(
                2,
                2,
                OpType::Invoke,
                json!([["append", "y", 1], ["r", "x", null]]),
            ),
            t(
                3,
                1,
                OpType::Ok,
                json!([["append", "x", 1], ["r", "y", []]]),
            ),
            t(
                4,
                2,
                OpType::Ok,
                json!([["append", "y", 1], ["r", "x", []]]),
            ),
            t(5, 3, OpType::Invoke, json!([["append", "z", 1]])),
            t(6, 3, OpType::Ok, json!([["append", "z", 1]])),
            t(
                7,
                4,
                OpType::Invoke,
                json!([["r", "z", null], ["append", "w", 1]]),
            ),
            t(
                8,
                4,
                OpType::Ok,
                json!([["r", "z", [1]], ["append", "w", 1]]),
            ),
            t(
                9,
                5,
                OpType::Invoke,
                json!([["r", "w", null], ["append", "z", 2]]),
            ),
            t(
                10,
                5,
                OpType::Ok,
                json!([["r", "w", []], ["append", "z", 2]]),
            ),
        ],
    );
    write_file(&dir.join("history.jsonl"), &ops).unwrap();
    let w = |index: u64, process: u64, ops: &str| TxnRef {
        index,
        invoke_index: index - 2,
        process,
        outcome: "ok".into(),
        ops: ops.into(),
    };
    let step = |from: u64, to: u64, relation: &str, key: &str, text: &str| CycleStep {
        from,
        to,
        relation: relation.into(),
        key: Some(key.into()),
        text: text.into(),
    };
    let case = |anomaly: &str, key: Option<&str>, txns, text: &str, steps| ElleCase {
        anomaly: anomaly.into(),
        key: key.map(String::from),
        txns,
        steps,
        dot: None,
        text: text.into(),
    };
    let names = |n: &[&str]| n.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let elle = Elle {
        workload: "list-append".into(),
        consistency: "serializable".into(),
        anomaly_types: names(&["G1a", "G-single", "G2-item"]),
        anomaly_counts: [("G1a", 1), ("G-single", 1), ("G2-item", 1)]
            .map(|(a, n)| (a.to_string(), n))
            .into(),
        violating: names(&["G-single", "G2-item"]),
        anomalies: vec![
            case(
                "G1a",
                Some("w"),
                vec![w(9, 5, "[[\"r\",\"w\",[]]]")],
                "T9 read an aborted write",
                vec![],
            ),
            case(
                "G-single",
                None,
                vec![
                    w(5, 3, "[[\"append\",\"z\",1]]"),
                    w(7, 4, "[[\"r\",\"z\",[1]],[\"append\",\"w\",1]]"),
                    w(9, 5, "[[\"r\",\"w\",[]],[\"append\",\"z\",2]]"),
                ],
                "T5 < T7 < T9 < T5: a contradiction.",
                vec![
                    step(
                        5,
                        7,
                        "wr",
                        "z",
                        "T7 observed T5's append of 1 to key z, so T5 <wr T7",
                    ),
                    step(
                        7,
                        9,
                        "rw",
                        "w",
                        "T9 did not observe T7's append of 1 to key w, so T9 <rw T7",
                    ),
                    step(
                        9,
                        5,
                        "ww",
                        "z",
                        "T9 appended 2 after T5 appended 1 to key z, so T5 <ww T9",
                    ),
                ],
            ),
            case(
                "G2-item",
                None,
                vec![
                    w(2, 1, "[[\"append\",\"x\",1],[\"r\",\"y\",[]]]"),
                    w(3, 2, "[[\"append\",\"y\",1],[\"r\",\"x\",[]]]"),
                ],
                "T2 < T3 < T2: a contradiction.",
                vec![
                    step(
                        2,
                        3,
                        "rw",
                        "y",
                        "T2 read key y before T3 appended 1, so T2 <rw T3",
                    ),
                    step(
                        3,
                        2,
                        "rw",
                        "x",
                        "T3 read key x before T2 appended 1, so T3 <rw T2",
                    ),
                ],
            ),
        ],
        ..Elle::default()
    };
    let file = FileResult {
        elle: Some(elle),
        ..file_result("history.jsonl", "elle", Valid::False)
    };
    save_results(dir, &results_of(Valid::False, vec![file]));
    ops
}

#[test]
fn elle_run_draws_one_graph_per_cycle_with_each_edge_in_words() {
    if !chromium_or_skip("elle_run") {
        return;
    }
    for (name, layout, class) in [
        ("invalid-elle", Layout::Auto, "cycle-graph dot"),
        ("invalid-elle-ring", Layout::Ring, "cycle-graph ring"),
    ] {
        let dir = artifact_dir(name);
        elle_run(&dir);
        let written = write_report(&dir, layout).unwrap();
        let dom = dump_dom(&written.path, "");
        assert_eq!(text_of(&dom, "verdict-word"), "INVALID");
        assert_eq!(dom.matches("<article class=\"anomaly elle\"").count(), 3);
        assert_eq!(
            dom.matches(&format!("<svg class=\"{class}\"")).count(),
            2,
            "{name}: one graph per cycle, none for G1a"
        );
        let g_single = element(&dom, "data-anomaly=\"G-single\"", "</article>");
        assert_eq!(
            g_single.matches("<span class=\"rel ").count(),
            3,
            "each edge in words"
        );
        assert!(g_single.contains("<a href=\"#op-7\" class=\"op\">T7</a> observed"));
        assert!(
            g_single.contains("#op-9"),
            "graph nodes link to the timeline"
        );
        screenshot(&written.path, &dir.join("screenshot.png"), 2600);
    }
}

#[test]
fn a_history_checked_offline_still_gets_a_report_that_says_what_is_missing() {
    if !chromium_or_skip("missing_files") {
        return;
    }
    let dir = artifact_dir("history-only");
    write_file(
        &dir.join("history.jsonl"),
        &synthetic_history(&Synthetic {
            events: 500,
            ..Synthetic::default()
        }),
    )
    .unwrap();
    let written = write_report(&dir, Layout::Auto).unwrap();
    assert_eq!(written.verdict, None);
    let dom = dump_dom(&written.path, "");
    assert_eq!(text_of(&dom, "verdict-word"), "NOT CHECKED");
    let notices = element(&dom, "<ul class=\"notices\"", "</ul>");
    for missing in [
        "results.json is missing",
        "test.yaml is missing",
        "no node logs",
    ] {
        assert!(notices.contains(missing), "says {missing:?}: {notices}");
    }
    assert!(
        dom.contains("faultline check "),
        "offers to check the history instead of replaying"
    );
    screenshot(&written.path, &dir.join("screenshot.png"), 1800);
}

#[test]
fn a_history_that_cannot_be_drawn_keeps_its_verdict_and_says_why() {
    let dir = artifact_dir("undrawable");
    let ops = merge(
        Vec::new(),
        vec![
            op(1, 1, OpType::Invoke, "read", json!(null)),
            op(2, 1, OpType::Invoke, "read", json!(null)),
        ],
    );
    write_file(&dir.join("history.jsonl"), &ops).unwrap();
    save_results(&dir, &results_of(Valid::Unknown, vec![]));
    let before = std::fs::read(dir.join("results.json")).unwrap();
    let written = write_report(&dir, Layout::Auto).unwrap();
    assert_eq!(written.verdict, Some(faultline::checker::Verdict::Unknown));
    assert!(
        written
            .notes
            .iter()
            .any(|n| n.contains("do not pair up") && n.contains("no plots and no timeline")),
        "{:?}",
        written.notes
    );
    let html = std::fs::read_to_string(&written.path).unwrap();
    assert!(html.contains(r#"id="verdict-word">UNKNOWN<"#));
    assert_eq!(
        std::fs::read(dir.join("results.json")).unwrap(),
        before,
        "the report never touches results.json"
    );
}

/// Markup that would act if it reached the page unescaped: each sets
/// `data-pwned` on the body or adds an element with id `pwned`.
const HOSTILE: [&str; 5] = [
    "<script>document.body.setAttribute('data-pwned','1')</script>",
    "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">",
    "</script><script>document.body.setAttribute('data-pwned','1')</script><!--",
    "\"><div id=\"pwned\">x</div>",
    "'><svg onload=document.body.setAttribute('data-pwned','1')>",
];

/// results.json with `h` in every text the report shows: files of each
/// checker and a run whose checkers have `h` in every part of their
/// evidence, in every kind of cell.
fn hostile_results(h: &str) -> Results {
    use faultline::report::results::{Counts, LinearizableOptions};
    let s = || h.to_string();
    let op = |index, completion| OpRef {
        index,
        completion_index: Some(completion),
        process: Process::Client(800),
        op: s(),
    };
    let lin = FileResult {
        error: Some(s()),
        linearizable: Some(Linearizable {
            model: s(),
            options: LinearizableOptions {
                keys: s(),
                initial_value: json!(h),
                nil_read: s(),
                time_limit_ms: 1,
                memory_limit_mb: 1,
            },
            counts: Counts {
                history_ops: 1,
                client_calls: 1,
                failed: 0,
                unknown_outcome: 0,
                truncated_line: None,
            },
            keys: vec![KeyResult {
                key: json!(h),
                valid: Valid::False,
                ops: 1,
                configurations: 1,
                time_ms: 0.0,
                reason: Some(s()),
                explanation: Some(Explanation {
                    op: op(3, 4),
                    prefix: vec![1],
                    prefix_tail: vec![PrefixStep {
                        op: op(1, 2),
                        state_after: s(),
                    }],
                    states_before: vec![s()],
                    concurrent: vec![],
                    concurrent_total: 0,
                    text: s(),
                }),
            }],
        }),
        ..file_result(h, "linearizable", Valid::False)
    };
    let txn = |index| TxnRef {
        index,
        invoke_index: 0,
        process: 2,
        outcome: s(),
        ops: s(),
    };
    let step = |from, to, relation: &str| CycleStep {
        from,
        to,
        relation: relation.into(),
        key: Some(s()),
        text: s(),
    };
    let elle = FileResult {
        elle: Some(Elle {
            workload: s(),
            consistency: s(),
            anomaly_types: vec![s()],
            anomaly_counts: [(s(), 1)].into(),
            violating: vec![s()],
            not: vec![s()],
            anomalies: vec![ElleCase {
                anomaly: s(),
                key: Some(s()),
                txns: vec![txn(1), txn(2)],
                steps: vec![step(1, 2, h), step(2, 1, "rw")],
                dot: Some(s()),
                text: s(),
            }],
            text: s(),
            ..Elle::default()
        }),
        ..file_result(h, "elle", Valid::False)
    };
    let evidence = || {
        Evidence::new().fact(h, h).count(h, 2).table(
            Table::new(h, &[h, h, h, h, h, h, h])
                .row(vec![
                    Cell::text(h),
                    Cell::code(h),
                    Cell::value(&json!({h: h})),
                    Cell::op(1, Some(1)),
                    Cell::log_line(h, 1),
                    Cell::chip(h),
                    Cell::lines(&[s(), s()]),
                ])
                .of(3, h),
        )
    };
    let checker = |name: &str| CheckerResult {
        name: name.into(),
        valid: Valid::False,
        summary: s(),
        anomalies: vec![s()],
        detail: json!({h: h}),
        evidence: Some(evidence()),
    };
    let run = RunResult {
        test: s(),
        db: s(),
        bugs: vec![s()],
        workload: s(),
        nemesis: s(),
        hosts: vec![s()],
        checkers: ["bank", "set", "logs", "election", "nodes", h]
            .into_iter()
            .map(checker)
            .collect(),
        anomalies: vec![s()],
        problems: vec![s()],
        replay: s(),
        incomplete: vec![s()],
        ..RunResult::default()
    };
    Results {
        tool: s(),
        run: Some(run),
        ..results_of(
            Valid::False,
            vec![lin, elle, file_result(h, h, Valid::False)],
        )
    }
}

#[test]
fn hostile_values_show_as_text_and_never_run() {
    if !chromium_or_skip("xss") {
        return;
    }
    let dir = artifact_dir("xss");
    let mut extra = Vec::new();
    for (i, h) in HOSTILE.iter().enumerate() {
        let p = 800 + i as u64;
        let t = 10 + 10 * i as u64;
        let mut inv = op(t, p, OpType::Invoke, h, json!([h, h]));
        inv.node = Some(h.to_string());
        let mut done = op(t + 5, p, OpType::Info, h, json!([h, h]));
        done.error = Some(json!(h));
        done.node = Some(h.to_string());
        extra.push(inv);
        extra.push(done);
    }
    let mut nemesis = op(
        5,
        0,
        OpType::Info,
        &format!("start-{}", HOSTILE[0]),
        json!(HOSTILE[1]),
    );
    nemesis.process = Process::Nemesis;
    extra.push(nemesis);
    let ops = merge(
        synthetic_history(&Synthetic {
            events: 400,
            ..Synthetic::default()
        }),
        extra,
    );
    write_file(&dir.join("history.jsonl"), &ops).unwrap();
    let h = HOSTILE.join(" ");
    save_results(&dir, &hostile_results(&h));
    let node = dir.join("nodes").join(HOSTILE[3].replace('/', "_"));
    std::fs::create_dir_all(&node).unwrap();
    std::fs::write(node.join(HOSTILE[1].replace('/', "_")), "log").unwrap();
    for layout in [Layout::Auto, Layout::Ring] {
        let written = write_report(&dir, layout).unwrap();
        // Page the timeline onto the hostile ops so the script renders them too.
        let last = index_of(&ops, |o| o.process == Process::Client(804));
        let dom = dump_dom(&written.path, &format!("#op-{last}"));
        assert!(!dom.contains("data-pwned=\"1\""), "a hostile script ran");
        assert!(
            !dom.contains("<div id=\"pwned\""),
            "a hostile element was created"
        );
        assert!(
            !dom.to_lowercase().contains("<img"),
            "a hostile img element exists"
        );
        assert_eq!(
            dom.matches("<script").count(),
            2,
            "only the data block and our script"
        );
        // And the values are there, as text: in the anomalies, the files, the timeline.
        assert!(
            dom.contains(
                "&lt;script&gt;document.body.setAttribute('data-pwned','1')&lt;/script&gt;"
            )
        );
        assert!(dom.contains("&lt;img src=x onerror="));
        assert!(
            dom.contains("… and 2 more &lt;script&gt;"),
            "a table's rows not kept are counted, in the table's words, escaped"
        );
        let timeline = element(&dom, "id=\"timeline\"", "</section>");
        assert!(
            timeline.contains("&lt;svg onload="),
            "hostile values shown as text in the timeline"
        );
        screenshot(
            &written.path,
            &dir.join(format!("screenshot-{layout:?}.png")),
            2400,
        );
    }
}

#[test]
fn results_index_lists_runs_newest_first_and_opens_in_chromium() {
    if !chromium_or_skip("index") {
        return;
    }
    let root = artifact_dir("index-root");
    let store = faultline::store::Store::new(&root);
    let a = store.create_run("raft-register").unwrap();
    stale_read_run(&a.path);
    let b = store.create_run("twopc-list-append").unwrap();
    elle_run(&b.path);
    // A run that never got to write results.json (killed mid-run).
    let c = store.create_run("paxos-set").unwrap();
    std::fs::write(c.test_yaml(), "name: paxos-set\n").unwrap();
    // Folders that are not runs: another tool's artifacts under the root.
    std::fs::create_dir_all(root.join("ci-artifacts/report/valid")).unwrap();
    std::fs::create_dir_all(root.join("ci-artifacts/bug-matrix")).unwrap();
    faultline::report::after_run(&root, &a.path).unwrap();
    faultline::report::after_run(&root, &b.path).unwrap();
    let dom = dump_dom(&root.join("index.html"), "");
    assert!(
        !dom.contains("ci-artifacts"),
        "folders that are not runs are not listed"
    );
    let elle = dom.find("twopc-list-append").unwrap();
    let lin = dom.find("raft-register").unwrap();
    assert!(elle < lin, "newest first");
    assert!(dom.contains("G2-item ×1") && dom.contains("not-linearizable ×1"));
    assert_eq!(
        dom.matches("<td class=\"verdict-cell\">invalid</td>")
            .count(),
        2
    );
    assert!(dom.contains(&format!(
        "href=\"raft-register/{}/report.html\"",
        a.timestamp
    )));
    assert!(
        !dom.contains("ci-artifacts"),
        "folders that are not runs are not listed"
    );
    let incomplete = element(&dom, "<tr class=\"incomplete\"", "</tr>");
    assert!(
        incomplete.contains("paxos-set") && incomplete.contains("results.json is missing"),
        "{incomplete}"
    );
    // The header's buckets add up to the runs listed.
    let header = text_of(&dom, "totals");
    let numbers: Vec<usize> = header
        .split(" · ")
        .map(|part| part.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(numbers[0], 3, "{header}");
    assert_eq!(numbers[1..].iter().sum::<usize>(), numbers[0], "{header}");
    assert!(header.starts_with("3 runs · 2 invalid"), "{header}");
    assert!(header.contains("1 incomplete"), "{header}");
    screenshot(&root.join("index.html"), &root.join("screenshot.png"), 700);
}

/// The text a reader sees in `html`: tags dropped, entities decoded (the
/// few the report writes), whitespace collapsed.
fn visible_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A nemesis op (an `info` that starts or stops a fault).
fn nemesis_op(time_ms: u64, f: &str, value: Value) -> Op {
    Op {
        process: Process::Nemesis,
        node: None,
        ..op(time_ms, 0, OpType::Info, f, value)
    }
}

/// What one checked run gives a test: its folder, results.json as the
/// runner wrote it, and the report.
struct CheckedRun {
    dir: PathBuf,
    results: faultline::report::results::Results,
    dom: String,
}

impl CheckedRun {
    /// results.json's entry for checker `name`.
    fn checker(&self, name: &str) -> &faultline::report::results::CheckerResult {
        let run = self.results.run.as_ref().expect("a run's results.json");
        run.checkers
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} checker in {:?}", run.checkers))
    }

    /// The banner's text.
    fn banner(&self) -> String {
        visible_text(element(&self.dom, "<section class=\"verdict", "</section>"))
    }

    /// The text of checker `name`'s part of the checks section.
    fn section(&self, name: &str) -> String {
        let open = format!("<section class=\"check\" data-checker=\"{name}\"");
        visible_text(element(&self.dom, &open, "</section>"))
    }
}

/// A run folder as `faultline run` leaves it, without a cluster: test.yaml
/// of `db` and `workload`, the history, node logs, then the runner's own
/// checks (`check_run`, the log scan included) and its results.json writer
/// (`output::write`), then the report, opened in Chromium.
fn checked_run(
    name: &str,
    db: &str,
    workload: &str,
    ops: Vec<Op>,
    logs: &[(&str, &str)],
) -> CheckedRun {
    use faultline::runner::{checks, output, output::RunReport};
    use faultline::suite::{TestSpec, WorkloadRef, resolve, test::Source};
    let dir = artifact_dir(name);
    let spec = TestSpec {
        name: Some(name.into()),
        db: faultline::system::SystemRef::parse(db).ok(),
        workload: Some(WorkloadRef::Name(workload.into())),
        seed: Some(7),
        ..TestSpec::default()
    };
    let test = resolve(&spec, &Source::command_line()).unwrap();
    std::fs::write(dir.join("test.yaml"), test.to_yaml()).unwrap();
    let ops = merge(Vec::new(), ops);
    write_file(&dir.join("history.jsonl"), &ops).unwrap();
    for (node, text) in logs {
        let node_dir = dir.join("nodes").join(node);
        std::fs::create_dir_all(&node_dir).unwrap();
        std::fs::write(node_dir.join("node.log"), text).unwrap();
    }
    let run_dir = faultline::store::RunDir {
        path: dir.clone(),
        test: name.into(),
        timestamp: "20261206T120000.000Z".into(),
    };
    let circumstances = checks::Circumstances {
        harness_error: None,
        nodes: logs.len(),
        node_exits: Some(&[]),
        main_end_ns: ops.last().map_or(0, |o| o.time),
        start_wall: None,
    };
    let report = RunReport {
        checks: checks::check_run(
            &test,
            &ops,
            &run_dir,
            std::time::Duration::from_secs(30),
            circumstances,
        ),
        dir: run_dir,
        harness_error: None,
        problems: Vec::new(),
        duration: std::time::Duration::from_secs(1),
        hosts: vec!["n1 10.0.0.1".into()],
        ops: output::op_counts(&ops),
        incomplete: Vec::new(),
    };
    output::write(&test, &report).unwrap();
    // Read back with the types that wrote it.
    let results =
        results::from_json(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_results_are_whole(&results);
    let written = write_report(&dir, Layout::Ring).unwrap();
    let dom = dump_dom(&written.path, "");
    screenshot(&written.path, &dir.join("screenshot.png"), 2200);
    CheckedRun { dir, results, dom }
}

/// Every checker that ran and has no file-level result describes its
/// evidence; the set's stale and unexpected elements each come with their
/// details.
fn assert_results_are_whole(results: &Results) {
    let len = |v: &Value| v.as_array().map(Vec::len);
    for c in &results.run.as_ref().unwrap().checkers {
        let file_level = ["linearizable", "elle"].contains(&c.name.as_str());
        let ran = !c.summary.starts_with("not run:");
        assert_eq!(c.evidence.is_some(), ran && !file_level, "{c:?}");
        if c.name == "set" {
            let d = &c.detail;
            assert_eq!(len(&d["stale_details"]), len(&d["stale_examples"]));
            assert_eq!(
                len(&d["unexpected_details"]),
                len(&d["unexpected_examples"])
            );
        }
    }
}

/// Node logs in which nothing happened.
const QUIET_LOGS: [(&str, &str); 2] = [("n1", "INFO started\n"), ("n2", "INFO started\n")];

/// Asserts the run is invalid, and that the banner and the checks section
/// show every checker with its verdict, each invalid one with its reason
/// (results.json's summary) in one line of the banner.
fn assert_every_checker_shown(run: &CheckedRun, invalid: &str) {
    assert_eq!(text_of(&run.dom, "verdict-word"), "INVALID");
    let banner = run.banner();
    let checkers = &run.results.run.as_ref().unwrap().checkers;
    assert!(checkers.len() >= 2, "the log scan ran too: {checkers:?}");
    for c in checkers {
        assert!(
            banner.contains(&c.name),
            "the banner names {}: {banner}",
            c.name
        );
        let section = run.section(&c.name);
        let word = match c.valid {
            faultline::report::results::Valid::True => "valid",
            faultline::report::results::Valid::False => "invalid",
            faultline::report::results::Valid::Unknown => "unknown",
        };
        assert!(
            section.starts_with(word),
            "{}'s section opens with its verdict {word}: {section}",
            c.name
        );
    }
    let bad = run.checker(invalid);
    assert_eq!(bad.valid, faultline::report::results::Valid::False);
    let line = element(&run.dom, &format!("data-reason=\"{invalid}\""), "</li>");
    let line = visible_text(&format!("<{line}"));
    assert!(
        line.contains(&bad.summary),
        "the banner gives {invalid}'s reason in one line: {line:?} should hold {:?}",
        bad.summary
    );
    assert!(
        !run.dom.contains("results.json lists no checks"),
        "every checker is in the checks section"
    );
}

#[test]
fn an_invalid_bank_run_shows_each_bad_read_with_the_faults_in_place() {
    if !chromium_or_skip("bank") {
        return;
    }
    let read = |t, p, kind, v: Value| op(t, p, kind, "read", v);
    let all = json!({"0": 10, "1": 10, "2": 10, "3": 10, "4": 10});
    let run = checked_run(
        "invalid-bank",
        "twopc",
        "bank",
        vec![
            read(1, 0, OpType::Invoke, Value::Null),
            read(2, 0, OpType::Ok, all.clone()),
            nemesis_op(3, "start-partition", json!({"n1": ["n2"]})),
            read(4, 0, OpType::Invoke, Value::Null),
            read(
                5,
                0,
                OpType::Ok,
                json!({"0": 18, "1": 10, "2": 7, "3": 4, "4": 10}),
            ),
            nemesis_op(6, "stop-partition", Value::Null),
            read(7, 1, OpType::Invoke, Value::Null),
            read(
                8,
                1,
                OpType::Ok,
                json!({"0": 30, "1": -10, "2": 10, "3": 10, "4": 10}),
            ),
        ],
        &QUIET_LOGS,
    );
    assert_every_checker_shown(&run, "bank");
    let bank = run.section("bank");
    // Both bad reads, with their kind, totals and the fault in place.
    for expected in [
        "wrong-total",
        "49",
        "expected 50",
        "partition",
        "negative-balance",
        "\"1\":-10",
    ] {
        assert!(
            bank.contains(expected),
            "bank evidence has {expected:?}: {bank}"
        );
    }
    assert!(
        run.dom.contains("href=\"#op-4\""),
        "the bad read links to the timeline"
    );
    for chip in ["negative-balance ×1", "wrong-total ×1"] {
        assert!(bank.contains(chip), "the evidence counts each kind: {bank}");
    }
    // The first bad read (at 5 ms) is when the bug first showed: in
    // results.json and in the report's overview.
    let first = run.results.run.as_ref().unwrap().first_anomaly.clone();
    let first = first.expect("a first anomaly");
    assert_eq!((first.checker.as_str(), first.time_ms), ("bank", 5.0));
    let said = format!("first anomaly {}", first.describe());
    assert!(
        visible_text(&run.dom).contains(&said),
        "the overview says {said:?}"
    );
    let _ = run.dir;
}

#[test]
fn an_invalid_set_run_shows_lost_stale_and_unexpected_elements_with_their_times() {
    if !chromium_or_skip("set") {
        return;
    }
    let add = |t, kind, v: u64| op(t, 0, kind, "add", json!(v));
    let read = |t, kind, v: Value| op(t, 1, kind, "read", v);
    let run = checked_run(
        "invalid-set",
        "raft",
        "set",
        vec![
            add(100, OpType::Invoke, 1),
            add(110, OpType::Ok, 1),
            add(120, OpType::Invoke, 2),
            add(130, OpType::Ok, 2),
            add(140, OpType::Invoke, 3),
            add(1250, OpType::Ok, 3),
            // 2 is missed (stale), 99 was never added (unexpected).
            read(2000, OpType::Invoke, Value::Null),
            read(2100, OpType::Ok, json!([1, 3, 99])),
            // The final read misses 3 (lost).
            read(3000, OpType::Invoke, Value::Null),
            read(3300, OpType::Ok, json!([1, 2])),
        ],
        &QUIET_LOGS,
    );
    assert_every_checker_shown(&run, "set");
    let set = run.section("set");
    let part = |label: &str| {
        let at = set
            .find(label)
            .unwrap_or_else(|| panic!("no {label:?} in {set}"));
        set[at..].to_string()
    };
    // Lost 3: added (acknowledged at 1.250 s), missing from the final read at 3.300 s.
    let lost = part("Lost");
    assert!(
        lost.contains("3") && lost.contains("1.250 s") && lost.contains("3.300 s"),
        "{lost}"
    );
    // Stale 2: acknowledged at 0.130 s, missed by the read that ended at 2.100 s.
    let stale = part("Stale");
    assert!(
        stale.contains("0.130 s") && stale.contains("2.100 s"),
        "{stale}"
    );
    let unexpected = part("Unexpected");
    assert!(
        unexpected.contains("99") && unexpected.contains("2.100 s"),
        "{unexpected}"
    );
    assert!(
        set.contains("lost ×1") && set.contains("unexpected ×1"),
        "{set}"
    );
}

#[test]
fn an_invalid_counter_run_shows_each_read_out_of_its_bounds() {
    if !chromium_or_skip("counter") {
        return;
    }
    let c = |t, p, kind, f, v: Value| op(t, p, kind, f, v);
    let run = checked_run(
        "invalid-counter",
        "raft",
        "counter",
        vec![
            c(100, 0, OpType::Invoke, "add", json!(5)),
            c(110, 0, OpType::Ok, "add", json!(5)),
            c(200, 1, OpType::Invoke, "read", Value::Null),
            c(1250, 1, OpType::Ok, "read", json!(4)),
            c(1300, 1, OpType::Invoke, "read", Value::Null),
            c(1310, 1, OpType::Ok, "read", json!(5)),
        ],
        &QUIET_LOGS,
    );
    assert_every_checker_shown(&run, "counter");
    let counter = run.section("counter");
    // The read of 4 (op 3, at 1.250 s) is below the 5 acknowledged before it.
    let table = &counter[counter
        .find("Reads outside what the adds allow")
        .unwrap_or_else(|| panic!("no table in {counter}"))..];
    assert!(table.contains("[3] at 1.250 s 4 5 5"), "{table}");
    assert!(counter.contains("bad-read ×1"), "{counter}");
    assert!(
        run.dom.contains("href=\"#op-3\""),
        "the read links to the timeline"
    );
}

/// write 1, write 2 (both ok), then a read of 1, on `key`.
fn stale_read_ops(key: Value) -> Vec<Op> {
    vec![
        op(100, 1, OpType::Invoke, "write", json!([key, 1])),
        op(110, 1, OpType::Ok, "write", json!([key, 1])),
        op(120, 2, OpType::Invoke, "write", json!([key, 2])),
        op(130, 2, OpType::Ok, "write", json!([key, 2])),
        op(140, 1, OpType::Invoke, "read", json!([key, null])),
        op(150, 1, OpType::Ok, "read", json!([key, 1])),
    ]
}

#[test]
fn an_invalid_register_run_says_which_read_cannot_be_placed() {
    if !chromium_or_skip("register") {
        return;
    }
    let run = checked_run(
        "invalid-register",
        "raft",
        "register",
        stale_read_ops(json!(0)),
        &QUIET_LOGS,
    );
    assert_every_checker_shown(&run, "linearizable");
    let lin = run.section("linearizable");
    assert!(lin.contains("cannot place"), "{lin}");
    assert!(lin.contains("read -> 1"), "{lin}");
}

#[test]
fn an_invalid_list_append_run_names_its_anomalies_in_the_banner() {
    if !chromium_or_skip("list_append") {
        return;
    }
    let t = |time, p, kind, v: Value| op(time, p, kind, "txn", v);
    let run = checked_run(
        "invalid-list-append",
        "twopc",
        "list-append",
        vec![
            t(
                1,
                1,
                OpType::Invoke,
                json!([["append", 1, 1], ["r", 2, null]]),
            ),
            t(
                2,
                2,
                OpType::Invoke,
                json!([["append", 2, 1], ["r", 1, null]]),
            ),
            t(3, 1, OpType::Ok, json!([["append", 1, 1], ["r", 2, []]])),
            t(4, 2, OpType::Ok, json!([["append", 2, 1], ["r", 1, []]])),
            t(
                5,
                3,
                OpType::Invoke,
                json!([["r", 1, null], ["r", 2, null]]),
            ),
            t(6, 3, OpType::Ok, json!([["r", 1, [1]], ["r", 2, [1]]])),
        ],
        &QUIET_LOGS,
    );
    assert_every_checker_shown(&run, "elle");
    let elle = run.section("elle");
    assert!(elle.contains("G2-item"), "{elle}");
}

#[test]
fn a_node_panic_makes_the_run_invalid_and_the_report_shows_the_line() {
    if !chromium_or_skip("logs") {
        return;
    }
    let run = checked_run(
        "invalid-logs",
        "paxos",
        "register",
        vec![
            op(1, 1, OpType::Invoke, "write", json!([0, 1])),
            op(2, 1, OpType::Ok, "write", json!([0, 1])),
        ],
        &[
            ("n1", "INFO started\n"),
            (
                "n2",
                "INFO started\nthread 'main' panicked at src/nodes/paxos/x.rs:3:5:\nboom\n",
            ),
        ],
    );
    assert_every_checker_shown(&run, "logs");
    let logs = run.section("logs");
    assert!(
        logs.contains("n2") && logs.contains("panicked at src/nodes/paxos/x.rs:3:5"),
        "{logs}"
    );
    assert!(
        logs.contains("n2 line 2 thread 'main' panicked at"),
        "node, line and text: {logs}"
    );
}

#[test]
fn two_leaders_in_one_term_make_the_run_invalid_and_the_report_names_them() {
    if !chromium_or_skip("election") {
        return;
    }
    let run = checked_run(
        "invalid-election",
        "raft",
        "register",
        vec![
            op(1, 1, OpType::Invoke, "write", json!([0, 1])),
            op(2, 1, OpType::Ok, "write", json!([0, 1])),
        ],
        &[
            (
                "n1",
                "INFO became leader term=2\nINFO became leader term=3\n",
            ),
            ("n2", "INFO started\nINFO became leader term=3\n"),
        ],
    );
    assert_every_checker_shown(&run, "election");
    let election = run.section("election");
    assert!(
        election.contains("Term 3: 2 leaders (n1, n2)"),
        "{election}"
    );
    for (node, line) in [("n1", 2), ("n2", 2)] {
        assert!(
            election.contains(&format!("{node} line {line} INFO became leader term=3")),
            "{election}"
        );
    }
}

#[test]
fn control_and_bidi_characters_show_as_escapes_and_never_reach_the_page() {
    if !chromium_or_skip("bidi") {
        return;
    }
    // A key that, shown raw, reads "kexe.gnp" and turns the terminal red.
    let key = "k\u{202e}gnp.exe\u{1b}[31m\u{2066}x\u{0085}";
    let run = checked_run(
        "bidi",
        "raft",
        "register",
        stale_read_ops(json!(key)),
        &QUIET_LOGS,
    );
    assert_eq!(text_of(&run.dom, "verdict-word"), "INVALID");
    for raw in ['\u{202e}', '\u{1b}', '\u{2066}', '\u{85}'] {
        assert!(
            !run.dom.contains(raw),
            "U+{:04X} reached the DOM",
            raw as u32
        );
    }
    // The key is shown, escaped, in the banner, the anomaly and the timeline
    // (the page's script drew the ops).
    // (The runner's summary writes the key as JSON, which escapes ESC itself.)
    assert!(
        run.banner().contains("k\\u{202e}gnp.exe"),
        "{}",
        run.banner()
    );
    let shown = "k\\u{202e}gnp.exe\\u{1b}[31m\\u{2066}x\\u{85}";
    assert!(
        run.section("linearizable").contains(shown),
        "{}",
        run.section("linearizable")
    );
    let timeline = element(&run.dom, "id=\"timeline\"", "</section>");
    assert!(
        timeline.matches("class=\"tl-op ").count() >= 3,
        "the timeline was drawn"
    );
    assert!(
        timeline.contains("k\\u{202e}gnp.exe"),
        "the timeline shows the key escaped"
    );
}
