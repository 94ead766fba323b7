//! `faultline check` end to end: the real binary, its exit codes, its output
//! and the results.json it writes.

use faultline::report::results::{Results, Valid};
use std::path::Path;
use std::process::{Command, Output};

mod common;

fn faultline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .unwrap()
}

fn results(dir: &Path) -> Results {
    serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap()
}

#[test]
fn an_invalid_history_exits_1_and_explains_itself() {
    let out = tempfile::tempdir().unwrap();
    let Some(file) = common::corpus("porcupine-etcd/etcd_000.log") else {
        return;
    };
    let file = file.to_str().unwrap();
    let o = faultline(&["check", file, "--out", out.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("INVALID"), "{stdout}");
    assert!(
        stdout.contains("cannot place [84] process 11: read -> 2"),
        "{stdout}"
    );
    let r = results(out.path());
    assert_eq!(r.schema_version, 1);
    assert_eq!(r.valid, Valid::False);
    let lin = r.files[0].linearizable.as_ref().unwrap();
    assert_eq!(lin.model, "cas-register");
    assert_eq!(lin.options.keys, "single");
    assert_eq!(lin.keys[0].valid, Valid::False);
    let e = lin.keys[0].explanation.as_ref().unwrap();
    assert_eq!(e.op.index, 84);
    assert!(
        e.text.contains("just before it the state can be"),
        "{}",
        e.text
    );
}

#[test]
fn several_files_give_a_line_each_and_the_worst_exit_code() {
    let out = tempfile::tempdir().unwrap();
    let Some(corpus) = common::corpus("knossos-cas") else {
        return;
    };
    let good = format!("{}/good/cas-register-bug.edn", corpus.display());
    let bad = format!("{}/bad/cas-failure.edn", corpus.display());
    let args = [
        "check",
        &good,
        &bad,
        "--initial-value",
        "0",
        "--nil-read",
        "any",
        "--out",
        out.path().to_str().unwrap(),
    ];
    let o = faultline(&args);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("cas-register-bug.edn") && l.contains("valid")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("cas-failure.edn") && l.contains("INVALID")),
        "{stdout}"
    );
    let r = results(out.path());
    assert_eq!(r.files.len(), 2);
    assert_eq!(
        (r.files[0].valid, r.files[1].valid),
        (Valid::True, Valid::False)
    );
}

#[test]
fn bad_input_exits_3_and_says_where() {
    let out = tempfile::tempdir().unwrap();
    let bad = out.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"index\":0,\"time\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"frob\",\"value\":1}\n",
    )
    .unwrap();
    let Some(good) = common::corpus("porcupine-etcd/etcd_002.log") else {
        return;
    };
    let good = good.display().to_string();
    let o = faultline(&[
        "check",
        &good,
        bad.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("bad.jsonl: op 0 (process 0, frob)"),
        "{stdout}"
    );
    let r = results(out.path());
    assert_eq!(r.valid, Valid::Unknown);
    assert!(r.files[1].error.as_ref().unwrap().contains("frob"));

    let missing = faultline(&[
        "check",
        "/nonexistent/h.jsonl",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&missing.stdout).contains("/nonexistent/h.jsonl"));
}

#[test]
fn usage_errors_exit_3() {
    assert_eq!(faultline(&["check"]).status.code(), Some(3));
    assert_eq!(
        faultline(&["check", "x.jsonl", "--model", "queue"])
            .status
            .code(),
        Some(3)
    );
    let o = faultline(&["check", "x.jsonl", "--initial-value", "{"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--initial-value"));
}

#[test]
fn a_time_limit_gives_unknown_and_exit_2() {
    // Twenty concurrent writes and a read nobody wrote: millions of orders to try.
    let out = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    for p in 0..20 {
        lines.push(format!(
            r#"{{"index":{p},"time":{p},"process":{p},"type":"invoke","f":"write","value":{p}}}"#
        ));
    }
    for p in 0..20 {
        let i = 20 + p;
        lines.push(format!(
            r#"{{"index":{i},"time":{i},"process":{p},"type":"ok","f":"write","value":{p}}}"#
        ));
    }
    lines.push(
        r#"{"index":40,"time":40,"process":30,"type":"invoke","f":"read","value":null}"#.into(),
    );
    lines.push(r#"{"index":41,"time":41,"process":30,"type":"ok","f":"read","value":99}"#.into());
    let h = out.path().join("hard.jsonl");
    std::fs::write(&h, lines.join("\n") + "\n").unwrap();
    let o = faultline(&[
        "check",
        h.to_str().unwrap(),
        "--time-limit",
        "200ms",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("time limit"), "{stdout}");
    let r = results(out.path());
    let key = &r.files[0].linearizable.as_ref().unwrap().keys[0];
    assert_eq!(key.valid, Valid::Unknown);
    assert!(key.reason.as_ref().unwrap().contains("time limit"));
}

// ---- the Elle checker: `check --workload`, and `gen-history` writing what it checks

#[test]
fn elle_corpus_verdicts_follow_the_consistency_model() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let Some(file) = common::corpus("elle/si-without-g-single.edn") else {
        return;
    };
    let file = file.display().to_string();
    let o = faultline(&[
        "check",
        "--workload",
        "list-append",
        "--consistency",
        "snapshot-isolation",
        &file,
        "--out",
        dir,
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = faultline(&[
        "check",
        "--workload",
        "list-append",
        "--consistency",
        "repeatable-read",
        &file,
        "--out",
        dir,
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("G2-item (1): not repeatable-read"),
        "{stdout}"
    );
    assert!(stdout.contains("a contradiction"), "{stdout}");
    let r = results(out.path());
    assert_eq!(r.valid, Valid::False);
    let f = &r.files[0];
    assert_eq!(f.checker, "elle");
    let e = f.elle.as_ref().unwrap();
    assert_eq!(e.anomaly_types, ["G2-item"]);
    assert_eq!(e.violating, ["G2-item"]);
    assert!(e.possible.contains(&"snapshot-isolation".to_string()));
    let case = &e.anomalies[0];
    assert_eq!(case.steps.len(), 2);
    assert!(case.steps.iter().all(|s| s.relation == "rw"));
    assert!(case.dot.as_ref().unwrap().contains("->"));
}

#[test]
fn generated_histories_check_as_injected_and_bad_input_exits_3() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let good = out.path().join("good.jsonl");
    let bad = out.path().join("bad.jsonl");
    let generate = |path: &Path, extra: &[&str]| {
        let mut args = vec![
            "gen-history",
            "--workload",
            "list-append",
            "--txns",
            "3000",
            "--seed",
            "5",
            "--out",
            path.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = faultline(&args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    generate(&good, &[]);
    generate(&bad, &["--anomaly", "g1c"]);
    let o = faultline(&[
        "check",
        "--workload",
        "list-append",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
        "--out",
        dir,
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    let r = results(out.path());
    assert_eq!(r.files[0].valid, Valid::True);
    assert_eq!(r.files[1].valid, Valid::False);
    assert!(
        r.files[1]
            .elle
            .as_ref()
            .unwrap()
            .anomaly_types
            .contains(&"G1c".to_string())
    );
    // A list-append history read as rw-register is bad input.
    let o = faultline(&[
        "check",
        "--workload",
        "rw-register",
        good.to_str().unwrap(),
        "--out",
        dir,
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("\"append\" micro-op in a rw-register history")
    );
    let o = faultline(&[
        "check",
        "--workload",
        "list-append",
        "--consistency",
        "linearizable",
        good.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown consistency model"));
}

#[test]
fn order_flags_switch_the_realtime_order_and_unknown_says_why() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let stale = out.path().join("stale.jsonl");
    let o = faultline(&[
        "gen-history",
        "--workload",
        "list-append",
        "--txns",
        "2000",
        "--seed",
        "3",
        "--anomaly",
        "stale-read",
        "--out",
        stale.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let check = |extra: &[&str]| {
        let mut args = vec!["check", "--workload", "list-append", "--out", dir];
        args.extend_from_slice(extra);
        args.push(stale.to_str().unwrap());
        let o = faultline(&args);
        let r = results(out.path());
        let elle = r.files[0].elle.clone().unwrap();
        (o.status.code(), elle)
    };
    // strict-serializable orders by real time by default: the stale read is a cycle.
    let (code, elle) = check(&[]);
    assert_eq!(code, Some(1));
    assert!(elle.realtime_order);
    assert!(
        elle.anomaly_types.iter().any(|a| a.ends_with("-realtime")),
        "{:?}",
        elle.anomaly_types
    );
    // Without the realtime order nothing is found, and strict serializability
    // cannot be decided: unknown, saying why.
    let (code, elle) = check(&["--realtime-order", "off"]);
    assert!(!elle.realtime_order);
    assert!(elle.anomaly_types.is_empty(), "{:?}", elle.anomaly_types);
    assert_eq!(code, Some(2));
    assert!(
        elle.text
            .contains("strict-serializable needs the realtime order"),
        "{}",
        elle.text
    );
    let (code, _) = check(&["--consistency", "serializable"]);
    assert_eq!(code, Some(0));
    // And a model that does not need it can be given it.
    let (_, elle) = check(&["--consistency", "serializable", "--process-order", "on"]);
    assert!(elle.process_order && !elle.realtime_order);
    // A bad value is a usage error: exit 3.
    let (code, _) = check(&["--realtime-order", "sometimes"]);
    assert_eq!(code, Some(3));
}

#[test]
fn a_history_that_ends_early_says_so_and_is_never_valid() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let history = run.join("history.jsonl");
    let ops = [
        r#"{"index":0,"time":1,"process":0,"type":"invoke","f":"write","value":[1,5]}"#,
        r#"{"index":1,"time":2,"process":0,"type":"ok","f":"write","value":[1,5]}"#,
        r#"{"index":2,"time":3,"process":1,"type":"invoke","f":"read","value":[1,null]}"#,
        r#"{"index":3,"time":4,"process":1,"type":"ok","f":"read","value":[1,5]}"#,
    ];
    let end = r#"{"index":4,"time":5,"process":"nemesis","type":"info","f":"end-of-history","value":{"ops":4}}"#;
    let out = dir.path().join("out");
    let check = || {
        let o = faultline(&[
            "check",
            history.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let body = ops.join("\n") + "\n";

    // Not a run's folder: a file without the end record is a whole history.
    std::fs::write(&history, &body).unwrap();
    assert_eq!(check().0, Some(0), "{}", check().1);

    // A run's folder (test.yaml beside it): the cut fell between two lines.
    std::fs::write(run.join("test.yaml"), "name: t\n").unwrap();
    let (code, stdout) = check();
    assert_eq!(code, Some(2), "{stdout}");
    assert!(
        stdout.contains("the history ends early") && stdout.contains("end-of-history"),
        "{stdout}"
    );
    let r = results(&out);
    assert_eq!(r.valid, Valid::Unknown);
    assert!(r.files[0].ends_early.is_some());

    // The record that ends a whole history: valid.
    std::fs::write(&history, format!("{body}{end}\n")).unwrap();
    assert_eq!(check().0, Some(0));

    // Cut mid-line: says which line.
    std::fs::write(&history, format!("{body}{}", &end[..20])).unwrap();
    let (code, stdout) = check();
    assert_eq!(code, Some(2), "{stdout}");
    assert!(stdout.contains("line 5 was cut off mid-write"), "{stdout}");
}

#[test]
fn a_register_history_of_only_cas_ops_is_judged_not_taken_as_keyed() {
    // `[1 2]` is a cas from 1 to 2 on one register (a keyed cas is `[key [from to]]`):
    // from an absent register it cannot apply.
    let out = tempfile::tempdir().unwrap();
    let h = out.path().join("cas.edn");
    std::fs::write(
        &h,
        "{:type :invoke, :f :cas, :value [1 2], :process 0}\n\
         {:type :ok, :f :cas, :value [1 2], :process 0}\n",
    )
    .unwrap();
    let o = faultline(&[
        "check",
        h.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("INVALID"), "{stdout}");
    assert!(stdout.contains("cas 1 -> 2"), "{stdout}");
    let lin = results(out.path()).files[0].linearizable.clone().unwrap();
    assert_eq!(lin.options.keys, "single");
    assert_eq!(lin.keys.len(), 1);
    assert_eq!(lin.keys[0].valid, Valid::False);
}
