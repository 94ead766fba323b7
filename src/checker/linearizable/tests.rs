//! Checker tests on tiny literal histories (see [`super::notation`]).

use super::notation::history;
use super::*;
use crate::history::OpType;
use serde_json::json;

fn check_with(text: &str, options: &Options) -> Report {
    check(&history(text), options).unwrap()
}

fn verdict(text: &str) -> Verdict {
    check_with(text, &Options::default()).verdict
}

fn explanation(text: &str) -> Explanation {
    let report = check_with(text, &Options::default());
    assert_eq!(report.verdict, Verdict::Invalid, "{text}");
    let key = report
        .keys
        .iter()
        .find(|k| k.verdict == Verdict::Invalid)
        .unwrap();
    key.explanation.clone().unwrap()
}

#[test]
fn sequential_reads_see_the_last_write() {
    assert_eq!(
        verdict("a:r a=- a:w1 a. b:r b=1 b:c1,2 b. a:r a=2"),
        Verdict::Valid
    );
    assert_eq!(verdict("a:w1 a. a:w2 a. b:r b=1"), Verdict::Invalid);
    assert_eq!(
        verdict("a:w1 a. b:r b=-"),
        Verdict::Invalid,
        "etcd semantics: nil means absent"
    );
}

#[test]
fn a_concurrent_read_may_see_the_old_or_the_new_value() {
    assert_eq!(verdict("a:w1 a. a:w2 b:r b=1 a."), Verdict::Valid);
    assert_eq!(verdict("a:w1 a. a:w2 b:r b=2 a."), Verdict::Valid);
    assert_eq!(verdict("a:w1 a. a:w2 b:r b=3 a."), Verdict::Invalid);
    // Two reads in sequence cannot go back in time.
    assert_eq!(verdict("a:w1 a. a:w2 b:r b=2 b:r b=1 a."), Verdict::Invalid);
}

#[test]
fn an_info_op_may_take_effect_later_or_never() {
    // The write timed out, yet a read long after saw it: it took effect late.
    assert_eq!(verdict("a:w1 a? b:r b=- b:r b=1"), Verdict::Valid);
    // ... or never.
    assert_eq!(verdict("a:w1 a? b:r b=-"), Verdict::Valid);
    // But not before its invocation.
    assert_eq!(verdict("b:r b=1 a:w1 a?"), Verdict::Invalid);
    // An invocation with no completion at all is the same.
    assert_eq!(verdict("a:w1 b:r b=1"), Verdict::Valid);
}

#[test]
fn an_info_op_is_never_forced_to_take_effect() {
    // A cas whose precondition never holds again must not be forced in:
    // it simply never happened.
    assert_eq!(verdict("a:w1 a. b:c5,6 b? a:w2 a. a:r a=2"), Verdict::Valid);
    // Same with a lock: the timed-out acquire did not happen, so the second one may.
    let mut ops = history("a:w1 a? b:w1 b.");
    for op in &mut ops {
        op.f = "acquire".into();
    }
    let options = Options {
        model: ModelKind::Mutex,
        ..Options::default()
    };
    assert_eq!(check(&ops, &options).unwrap().verdict, Verdict::Valid);
}

#[test]
fn failed_ops_did_not_happen() {
    assert_eq!(verdict("a:w1 a! b:r b=1"), Verdict::Invalid);
    assert_eq!(verdict("a:w1 a. b:c1,2 b! b:r b=1"), Verdict::Valid);
    assert_eq!(verdict("a:w1 a. b:c1,2 b! b:r b=2"), Verdict::Invalid);
}

#[test]
fn knossos_semantics_start_at_zero_and_ignore_nil_reads() {
    let knossos = Options {
        register: RegisterOptions {
            initial: json!(0),
            nil_read: NilRead::Any,
        },
        ..Options::default()
    };
    assert_eq!(
        check_with("a:r a=0 a:w1 a. b:r b=-", &knossos).verdict,
        Verdict::Valid
    );
    assert_eq!(
        check_with("a:c0,1 a. b:r b=1", &knossos).verdict,
        Verdict::Valid
    );
    assert_eq!(
        check_with("a:r a=0", &Options::default()).verdict,
        Verdict::Invalid
    );
}

#[test]
fn the_explanation_names_the_op_the_prefix_and_the_states() {
    let e = explanation("a:w1 a. a:w2 a. c:w3 b:r d:r b=1 d=3 c?");
    assert_eq!(e.op.index, 5, "the read of 1 cannot be placed");
    assert_eq!(e.op.text, "read -> 1");
    // The search went furthest by placing the info write, and the read that saw it.
    assert_eq!(e.prefix, vec![0, 2, 4, 6]);
    assert_eq!(e.prefix_tail.last().unwrap().state_after, "3");
    let mut states = e.states_before.clone();
    states.sort();
    assert_eq!(
        states,
        vec!["2", "3"],
        "the info write of 3 may or may not have happened"
    );
    assert_eq!(
        e.concurrent.iter().map(|o| o.index).collect::<Vec<_>>(),
        vec![4, 6]
    );
    let text = e.text("  ");
    assert!(
        text.contains("cannot place [5] process 1: read -> 1 (ok at [7])"),
        "{text}"
    );
    assert!(
        text.contains("[4] process 2: write 3 (outcome unknown)"),
        "{text}"
    );
}

#[test]
fn a_crashed_write_nothing_observes_is_left_out() {
    // Nothing reads 3 after the crashed write of it: it cannot explain the read of 1.
    let report = check_with("a:w1 a. a:w2 a. c:w3 b:r b=1 c?", &Options::default());
    assert_eq!(report.verdict, Verdict::Invalid);
    assert_eq!(report.keys[0].ops, 3, "the crashed write is left out");
    let e = report.keys[0].explanation.clone().unwrap();
    assert_eq!(e.states_before, vec!["2"]);
    // A crashed cas observed by a later read keeps the crashed write it needs.
    assert_eq!(
        verdict("a:w1 a. c:w3 c? d:c3,4 d? a:w2 a. b:r b=4"),
        Verdict::Valid
    );
    // A crashed write may take effect after a later write, even after its info...
    assert_eq!(verdict("c:w3 a:w1 a. b:r b=3 c?"), Verdict::Valid);
    assert_eq!(verdict("c:w3 c? a:w1 a. b:r b=3"), Verdict::Valid);
    // ... but not before its invocation.
    assert_eq!(verdict("b:r b=3 c:w3 c?"), Verdict::Invalid);
}

#[test]
fn the_explanation_points_at_the_furthest_point_reached() {
    // Everything up to the stale read is fine; the search gets furthest
    // there, not at the first write.
    let e = explanation("a:w1 a. b:r b=1 a:w2 a. b:r b=2 a:w3 a. b:r b=2 a:w4 a.");
    assert_eq!(e.op.index, 10);
    assert_eq!(e.prefix, vec![0, 2, 4, 6, 8]);
    assert_eq!(e.states_before, vec!["3"]);
}

#[test]
fn keys_are_checked_apart_and_reported_per_key() {
    let report = check_with(
        "a:w1@1 a. b:w2@2 b. a:r@1 a=1 b:r@2 b=1",
        &Options::default(),
    );
    assert!(report.keyed);
    assert_eq!(report.verdict, Verdict::Invalid);
    let per_key: Vec<_> = report
        .keys
        .iter()
        .map(|k| (k.key.clone(), k.verdict))
        .collect();
    assert!(
        per_key.contains(&(Some(json!(1)), Verdict::Valid))
            || per_key.contains(&(Some(json!(1)), Verdict::Unknown))
    );
    assert!(per_key.contains(&(Some(json!(2)), Verdict::Invalid)));
    let single = Options {
        keys: KeysMode::Single,
        ..Options::default()
    };
    // As one register, [1, 1] is just a value.
    let report = check_with("a:w1@1 a. a:r@1 a=1", &single);
    assert!(!report.keyed);
    assert_eq!(report.keys.len(), 1);
    assert_eq!(report.verdict, Verdict::Valid);
}

#[test]
fn keys_auto_treats_a_plain_register_as_one_object() {
    let report = check_with("a:w1 a. a:c1,2 a. a:r a=2", &Options::default());
    assert!(!report.keyed);
    let tuple = Options {
        keys: KeysMode::Tuple,
        ..Options::default()
    };
    let err = check(&history("a:w1 a."), &tuple).unwrap_err().to_string();
    assert!(
        err.contains("op 0 (process 0, write)") && err.contains("[key, value]"),
        "{err}"
    );
}

#[test]
fn keys_auto_reads_a_history_of_only_cas_ops_as_one_register() {
    // `[1, 2]` is a cas from 1 to 2, not key 1: a keyed cas is `[key, [from, to]]`.
    let report = check_with("a:c1,2 a.", &Options::default());
    assert!(!report.keyed);
    assert_eq!(
        report.verdict,
        Verdict::Invalid,
        "the register starts absent"
    );
    let report = check_with("a:w1 a? b:c1,2 b. c:c2,3 c.", &Options::default());
    assert!(!report.keyed);
    assert_eq!(report.verdict, Verdict::Valid);
    // Keyed cas ops, with a keyed write and read, are still split by key.
    let report = check_with(
        "a:c1,2@9 a. b:c-,5@9 b. c:w7@3 c. d:r@3 d=7",
        &Options::default(),
    );
    assert!(report.keyed);
    assert_eq!(report.keys.len(), 2);
    assert_eq!(
        report.verdict,
        Verdict::Invalid,
        "key 9's cas 1 -> 2 cannot apply"
    );
}

#[test]
fn a_valid_verdict_comes_with_a_legal_order() {
    let report = check_with("a:w1 b:w2 a. b. c:r c=1", &Options::default());
    assert_eq!(report.keys[0].linearization, vec![1, 0, 4]);
}

#[test]
fn bad_input_says_which_op() {
    let mut ops = history("a:w1 a. a:r a=1");
    ops[3].f = "frobnicate".into();
    ops[2].f = "frobnicate".into();
    let err = check(&ops, &Options::default()).unwrap_err().to_string();
    assert!(err.starts_with("op 2 (process 0, frobnicate)"), "{err}");
    let mut ops = history("a:w1 a.");
    ops[1].kind = OpType::Invoke;
    assert!(check(&ops, &Options::default()).is_err());
}

/// Twenty concurrent writes and a read of a value nobody wrote: the search
/// has to try every order of the writes (millions of configurations).
fn hard_history() -> Vec<crate::history::Op> {
    let mut text = String::new();
    let procs: Vec<char> = ('a'..='t').collect();
    for (i, p) in procs.iter().enumerate() {
        text += &format!("{p}:w{i} ");
    }
    for p in &procs {
        text += &format!("{p}. ");
    }
    text += "z:r z=99";
    history(&text)
}

#[test]
fn the_time_limit_gives_unknown_not_a_hang() {
    let options = Options {
        time_limit: Duration::from_millis(50),
        ..Options::default()
    };
    let report = check(&hard_history(), &options).unwrap();
    assert_eq!(report.verdict, Verdict::Unknown);
    assert_eq!(report.keys[0].stopped, Some(StopReason::TimeLimit));
}

#[test]
fn the_memory_limit_gives_unknown() {
    let options = Options {
        memory_limit_bytes: 4 << 20,
        ..Options::default()
    };
    let report = check(&hard_history(), &options).unwrap();
    assert_eq!(report.verdict, Verdict::Unknown);
    assert_eq!(report.keys[0].stopped, Some(StopReason::MemoryLimit));
    assert!(
        report.keys[0].configurations < 200_000,
        "{}",
        report.keys[0].configurations
    );
}
