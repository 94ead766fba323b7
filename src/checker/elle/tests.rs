//! Hand-written histories for every anomaly, each asserting the anomaly's
//! exact name and the transactions of its witness, and valid histories
//! (with info and failed transactions) that must not be flagged.

use super::notation::History;
use super::*;
use crate::history::OpType;

fn check_with(h: &History, workload: Workload, model: Model) -> ElleResult {
    let opts = ElleOptions::new(workload, model);
    super::check(&h.ops, &opts).expect("a well-formed history")
}

fn la(h: &History) -> ElleResult {
    check_with(h, Workload::ListAppend, Model::StrictSerializable)
}

fn rr(h: &History) -> ElleResult {
    check_with(h, Workload::RwRegister, Model::StrictSerializable)
}

fn names(r: &ElleResult) -> Vec<String> {
    r.anomaly_names()
}

/// The first case of `anomaly`, by name.
fn case<'a>(r: &'a ElleResult, anomaly: &str) -> &'a Case {
    r.cases
        .iter()
        .find(|c| c.anomaly.name() == anomaly)
        .unwrap_or_else(|| panic!("no {anomaly} in {:?}\n{}", names(r), r.render_text()))
}

/// The witnesses of a case, sorted, as T-indices.
fn witnesses(c: &Case) -> Vec<u64> {
    let mut w: Vec<u64> = c.witnesses.iter().map(|w| w.index).collect();
    w.sort_unstable();
    w
}

/// The T-indices of transactions `idx` of `h`, sorted.
fn ts(h: &History, idx: &[usize]) -> Vec<u64> {
    let mut w: Vec<u64> = idx.iter().map(|&i| h.names[i]).collect();
    w.sort_unstable();
    w
}

fn assert_valid(r: &ElleResult) {
    assert_eq!(r.verdict, Verdict::Valid, "{}", r.render_text());
    assert!(r.counts.is_empty(), "{}", r.render_text());
}

// ---------------------------------------------------------------- valid

#[test]
fn a_serial_list_append_history_is_strict_serializable() {
    let h = History::list()
        .ok(1, "ax1 ry")
        .ok(2, "ax2 ay1 rx12")
        .ok(1, "rx12 ry1 az3")
        .concurrent(&[(3, "ax3 rz3"), (4, "ry1 az4")])
        .ok(2, "rx123 rz34");
    assert_valid(&la(&h));
}

#[test]
fn info_and_failed_transactions_are_not_flagged() {
    let h = History::list()
        .ok(1, "ax1")
        // Unknown outcome, never read: may not have committed.
        .info(2, "ax2 ay5")
        // Failed and never read: fine.
        .fail(3, "ax7")
        // This read sees neither 2 nor 7.
        .ok(4, "rx1 ry")
        // An info append that is read: it committed after all.
        .info(5, "az1")
        .ok(6, "rz1 rx1");
    assert_valid(&la(&h));
}

#[test]
fn an_info_transaction_may_take_effect_after_later_transactions() {
    // T1 (info) appended 1 to x; T2 read x empty afterwards in real time,
    // and by the same process. Since T1 may commit any time after its
    // invocation, nothing orders it before T2.
    let h = History::list().info(1, "ax1").ok(1, "rx").ok(2, "rx1");
    assert_valid(&la(&h));
    // The same with an ok T1 is a stale read: G-single-realtime.
    let h = History::list().ok(1, "ax1").ok(2, "rx").ok(3, "rx1");
    let r = la(&h);
    assert_eq!(names(&r), ["G-single-realtime"]);
    assert_eq!(witnesses(case(&r, "G-single-realtime")), ts(&h, &[0, 1]));
}

#[test]
fn the_reads_of_an_info_transaction_are_unknown() {
    // As ok transactions, T1 and T2 are write skew (G2-item). With T1's
    // outcome unknown, its read of y is unknown and nothing is proved.
    let h = History::list().concurrent(&[(1, "ax1 ry"), (2, "ay1 rx")]);
    assert_eq!(names(&la(&h)), ["G2-item"]);
    let h = History::list()
        .invoke(1, "ax1 ry")
        .invoke(2, "ay1 rx")
        .complete(1, OpType::Info, "ax1 ry")
        .complete(2, OpType::Ok, "ay1 rx");
    assert_valid(&la(&h));
}

#[test]
fn a_serial_register_history_is_strict_serializable() {
    let h = History::register()
        .ok(1, "rx wx1")
        .ok(2, "rx1 wx2 wy1")
        .concurrent(&[(1, "rx2 ry1"), (3, "ry1 wy2")])
        .info(4, "wx3")
        .ok(2, "rx2 ry2");
    assert_valid(&rr(&h));
}

// ------------------------------------------------- list-append anomalies

#[test]
fn g0_write_cycle() {
    let h = History::list()
        .concurrent(&[(1, "ax1 ay1"), (2, "ax2 ay2")])
        .ok(3, "rx12 ry21");
    let r = la(&h);
    assert_eq!(names(&r), ["G0"]);
    let c = case(&r, "G0");
    assert_eq!(witnesses(c), ts(&h, &[0, 1]));
    assert!(c.steps.iter().all(|s| s.relation == "ww"));
    assert!(c.text.contains("appended 2 to key x after"), "{}", c.text);
    assert!(!r.boundary.possible.contains(&Model::ReadUncommitted));
}

#[test]
fn g1a_aborted_read() {
    let h = History::list().fail(1, "ax1").ok(2, "rx1");
    let r = la(&h);
    assert_eq!(names(&r), ["G1a"]);
    assert_eq!(witnesses(case(&r, "G1a")), ts(&h, &[0, 1]));
    assert_eq!(names_of(&r.boundary.not), ["read-committed"]);
}

#[test]
fn g1b_intermediate_read() {
    let h = History::list().concurrent(&[(1, "ax1 ax2"), (2, "rx1")]);
    let r = la(&h);
    assert!(names(&r).contains(&"G1b".to_string()), "{:?}", names(&r));
    assert_eq!(witnesses(case(&r, "G1b")), ts(&h, &[0, 1]));
}

#[test]
fn g1c_circular_information_flow() {
    let h = History::list().concurrent(&[(1, "ax1 ry1"), (2, "ay1 rx1")]);
    let r = la(&h);
    assert_eq!(names(&r), ["G1c"]);
    let c = case(&r, "G1c");
    assert_eq!(witnesses(c), ts(&h, &[0, 1]));
    assert!(c.steps.iter().all(|s| s.relation == "wr"), "{:?}", c.steps);
}

#[test]
fn g_single_read_skew() {
    let h = History::list().concurrent(&[(1, "rx ry1"), (2, "ax1 ay1")]);
    let r = la(&h);
    // Read skew is also a fractured read (T1 saw T2's y, not its x).
    assert_eq!(names(&r), ["G-single", "fractured-read"]);
    let c = case(&r, "G-single");
    assert_eq!(witnesses(c), ts(&h, &[0, 1]));
    let rels: Vec<_> = c.steps.iter().map(|s| s.relation).collect();
    assert_eq!(rels.iter().filter(|&&r| r == "rw").count(), 1);
    assert!(c.dot.as_ref().unwrap().starts_with("digraph \"G-single\""));
    assert_eq!(
        names_of(&r.boundary.not),
        ["repeatable-read", "snapshot-isolation", "read-atomic"]
    );
}

#[test]
fn g_nonadjacent() {
    let h =
        History::list().concurrent(&[(1, "rx rw1"), (2, "ax1 ay1"), (3, "ry1 rz"), (4, "az1 aw1")]);
    let r = la(&h);
    assert_eq!(names(&r), ["G-nonadjacent"]);
    let c = case(&r, "G-nonadjacent");
    assert_eq!(witnesses(c), ts(&h, &[0, 1, 2, 3]));
    let rels: Vec<_> = c.steps.iter().map(|s| s.relation).collect();
    assert_eq!(rels.iter().filter(|&&r| r == "rw").count(), 2);
}

#[test]
fn g2_item_write_skew() {
    let h = History::list().concurrent(&[(1, "rx ay1"), (2, "ry ax1")]);
    let r = la(&h);
    assert_eq!(names(&r), ["G2-item"]);
    let c = case(&r, "G2-item");
    assert_eq!(witnesses(c), ts(&h, &[0, 1]));
    assert!(c.text.contains("did not see"), "{}", c.text);
    assert!(r.boundary.possible.contains(&Model::SnapshotIsolation));
    assert!(!r.boundary.possible.contains(&Model::RepeatableRead));
}

#[test]
fn lost_update() {
    let h = History::list()
        .concurrent(&[(1, "rx ax1"), (2, "rx ax2")])
        .ok(3, "rx12");
    let r = la(&h);
    assert!(
        names(&r).contains(&"lost-update".to_string()),
        "{:?}",
        names(&r)
    );
    assert_eq!(witnesses(case(&r, "lost-update")), ts(&h, &[0, 1]));
}

#[test]
fn internal_inconsistency() {
    let h = History::list().ok(1, "ax1 rx");
    let r = la(&h);
    assert_eq!(names(&r), ["internal"]);
    assert_eq!(witnesses(case(&r, "internal")), ts(&h, &[0]));
    // Serializable forbids it; read committed does not.
    assert_eq!(
        check_with(&h, Workload::ListAppend, Model::ReadCommitted).verdict,
        Verdict::Valid
    );
}

#[test]
fn future_read() {
    let h = History::list().ok(1, "rx1 ax1");
    let r = la(&h);
    assert!(
        names(&r).contains(&"future-read".to_string()),
        "{:?}",
        names(&r)
    );
    assert_eq!(witnesses(case(&r, "future-read")), ts(&h, &[0]));
}

#[test]
fn dirty_update() {
    let h = History::list().fail(1, "ax1").ok(2, "ax2").ok(3, "rx12");
    let r = la(&h);
    assert!(
        names(&r).contains(&"dirty-update".to_string()),
        "{:?}",
        names(&r)
    );
    assert_eq!(witnesses(case(&r, "dirty-update")), ts(&h, &[0, 1]));
    assert_eq!(witnesses(case(&r, "G1a")), ts(&h, &[0, 2]));
}

#[test]
fn duplicate_elements() {
    let h = History::list().ok(1, "ax1").ok(2, "rx11");
    let r = la(&h);
    assert_eq!(names(&r), ["duplicate-elements"]);
    assert_eq!(witnesses(case(&r, "duplicate-elements")), ts(&h, &[1]));
}

#[test]
fn incompatible_order() {
    let h = History::list()
        .concurrent(&[(1, "ax1"), (2, "ax2")])
        .ok(3, "rx12")
        .ok(4, "rx21");
    let r = la(&h);
    assert!(
        names(&r).contains(&"incompatible-order".to_string()),
        "{:?}",
        names(&r)
    );
    assert_eq!(witnesses(case(&r, "incompatible-order")), ts(&h, &[2, 3]));
}

#[test]
fn appends_out_of_order() {
    // The smallest case: T1 appended 2 then 3; a read shows 3 before 2.
    let h = History::list().ok(1, "ax2 ax3").ok(0, "ax1 rx321");
    let r = la(&h);
    assert_eq!(names(&r), ["appends-out-of-order"], "{}", r.render_text());
    let c = case(&r, "appends-out-of-order");
    assert_eq!(witnesses(c), ts(&h, &[0, 1]));
    assert!(
        c.text.contains("appended 2 then 3 to key x in that order"),
        "{}",
        c.text
    );
    // Another transaction's element between them.
    let h = History::list().ok(1, "ax2 ax3").ok(2, "ax4").ok(0, "rx243");
    assert!(names(&la(&h)).contains(&"appends-out-of-order".to_string()));
    // Read committed rules it out; read uncommitted does not.
    let h = History::list().ok(1, "ax2 ax3").ok(0, "ax1 rx321");
    let rc = check_with(&h, Workload::ListAppend, Model::ReadCommitted);
    assert_eq!(rc.verdict, Verdict::Invalid);
    let ru = check_with(&h, Workload::ListAppend, Model::ReadUncommitted);
    assert_eq!(ru.verdict, Verdict::Valid, "{}", ru.render_text());
    // In order and together, with the transaction's own later read: valid.
    let h = History::list()
        .ok(1, "ax2 ax3 rx23")
        .ok(2, "rx23")
        .ok(0, "ax1 rx231");
    assert_valid(&la(&h));
}

#[test]
fn garbage_read() {
    let h = History::list().ok(1, "ax1").ok(2, "rx19");
    let r = la(&h);
    assert_eq!(names(&r), ["garbage-read"]);
    assert_eq!(witnesses(case(&r, "garbage-read")), ts(&h, &[1]));
}

#[test]
fn process_variants_need_the_process_order() {
    // Process 1 appends, then fails to see its own append: G-single-process
    // (and -realtime, as process order is real-time order).
    let h = History::list()
        .ok(1, "ax1")
        .concurrent(&[(1, "rx"), (2, "rx1")]);
    let r = check_with(&h, Workload::ListAppend, Model::StrongSessionSerializable);
    // Not reading one's own session's write is also not read atomic.
    assert_eq!(names(&r), ["G-single-process", "fractured-read"]);
    assert_eq!(witnesses(case(&r, "G-single-process")), ts(&h, &[0, 1]));
    assert_eq!(r.verdict, Verdict::Invalid);
    assert_eq!(
        check_with(&h, Workload::ListAppend, Model::Serializable).verdict,
        Verdict::Valid
    );
    let r = la(&h);
    assert_eq!(
        names(&r),
        ["G-single-process", "G-single-realtime", "fractured-read"]
    );
    let step = case(&r, "G-single-realtime")
        .steps
        .iter()
        .find(|s| s.relation == "realtime")
        .cloned();
    assert!(step.unwrap().text.contains("completed (op 1) before"));
}

#[test]
fn g0_realtime_and_g1c_process() {
    // T2 overwrites T1 on x though it started after T1 committed... and T1
    // is ordered after T2 on y.
    let h = History::list().ok(1, "ax2").ok(2, "ax1").ok(3, "rx12");
    let r = la(&h);
    assert_eq!(names(&r), ["G0-realtime"]);
    assert_eq!(witnesses(case(&r, "G0-realtime")), ts(&h, &[0, 1]));
    let h = History::list()
        .ok(1, "ay1")
        .concurrent(&[(1, "ax1"), (2, "rx1 ry")]);
    let r = check_with(&h, Workload::ListAppend, Model::StrongSessionReadCommitted);
    assert!(
        names(&r).contains(&"G-single-process".to_string()),
        "{:?}",
        names(&r)
    );
}

#[test]
fn explanations_name_every_edge() {
    let h = History::list().concurrent(&[(1, "rx ay1"), (2, "ry ax1")]);
    let r = la(&h);
    let c = case(&r, "G2-item");
    assert_eq!(c.steps.len(), 2);
    let t = r.render_text();
    assert!(t.contains("verdict: invalid"), "{t}");
    assert!(t.contains("not repeatable-read"), "{t}");
    assert!(t.contains("a contradiction"), "{t}");
    let (t1, t2) = (h.names[0], h.names[1]);
    let expected = format!(
        "T{t1} read key x = [] (its initial state) and did not see T{t2}'s append of 1, so T{t1} <rw T{t2}"
    );
    assert!(c.steps.iter().any(|s| s.text == expected), "{:?}", c.steps);
}

// ------------------------------------------------- rw-register anomalies

#[test]
fn register_g1a_g1b_garbage_internal() {
    let h = History::register().fail(1, "wx1").ok(2, "rx1");
    let r = rr(&h);
    assert_eq!(names(&r), ["G1a"]);
    assert_eq!(witnesses(case(&r, "G1a")), ts(&h, &[0, 1]));

    let h = History::register().concurrent(&[(1, "wx1 wx2"), (2, "rx1")]);
    let r = rr(&h);
    assert!(names(&r).contains(&"G1b".to_string()), "{:?}", names(&r));
    assert_eq!(witnesses(case(&r, "G1b")), ts(&h, &[0, 1]));

    let h = History::register().ok(1, "rx7");
    assert_eq!(names(&rr(&h)), ["garbage-read"]);

    let h = History::register().ok(1, "wx1").ok(2, "wx2 rx1");
    let r = rr(&h);
    assert!(
        names(&r).contains(&"internal".to_string()),
        "{:?}",
        names(&r)
    );
    assert_eq!(witnesses(case(&r, "internal")), ts(&h, &[1]));
}

#[test]
fn register_lost_update_and_write_skew() {
    let h = History::register().concurrent(&[(1, "rx wx1"), (2, "rx wx2")]);
    let r = rr(&h);
    assert!(
        names(&r).contains(&"lost-update".to_string()),
        "{:?}",
        names(&r)
    );
    assert_eq!(witnesses(case(&r, "lost-update")), ts(&h, &[0, 1]));

    let h = History::register().concurrent(&[(1, "rx wy1"), (2, "ry wx1")]);
    let r = rr(&h);
    assert_eq!(names(&r), ["G2-item"]);
    assert_eq!(witnesses(case(&r, "G2-item")), ts(&h, &[0, 1]));
}

#[test]
fn register_g_single_needs_a_sound_version_order() {
    // T2 read x=1 and wrote x=2, so 1 < 2 (writes follow reads). T1 read
    // x=1 and y=2, which T2 wrote: T1 <rw T2 <wr T1.
    let h = History::register()
        .ok(1, "wx1")
        .concurrent(&[(2, "rx1 ry2"), (3, "rx1 wx2 wy2")]);
    let r = rr(&h);
    assert_eq!(names(&r), ["G-single", "fractured-read"]);
    assert_eq!(witnesses(case(&r, "G-single")), ts(&h, &[1, 2]));
    // Without writes-follow-reads the order of 1 and 2 is unknown: no
    // cycle. Read atomicity still fails: its commit order contains wr, so
    // T1 <co T3, yet T2 saw T3 and read x from T1, which forces T3 <co T1.
    let mut opts = ElleOptions::new(Workload::RwRegister, Model::StrictSerializable);
    opts.wfr_keys = false;
    let r = super::check(&h.ops, &opts).unwrap();
    assert_eq!(names(&r), ["fractured-read"]);
    opts.model = Model::Serializable;
    assert_eq!(super::check(&h.ops, &opts).unwrap().verdict, Verdict::Valid);
}

#[test]
fn register_g0_and_cyclic_versions() {
    // T1 read y=2 then wrote y=1; T2 read x=1 then wrote x=2.
    let h = History::register().concurrent(&[(1, "ry2 wx1 wy1"), (2, "rx1 wx2 wy2")]);
    let r = rr(&h);
    assert!(names(&r).contains(&"G0".to_string()), "{:?}", names(&r));
    assert_eq!(witnesses(case(&r, "G0")), ts(&h, &[0, 1]));

    // T1 read 2 then wrote 1; T2 read 1 then wrote 2: 1 < 2 < 1.
    let h = History::register().concurrent(&[(1, "rx2 wx1"), (2, "rx1 wx2")]);
    let r = rr(&h);
    assert_eq!(names(&r), ["G1c", "cyclic-versions"]);
    let c = case(&r, "cyclic-versions");
    assert_eq!(witnesses(c), ts(&h, &[0, 1]));
    assert!(c.text.contains("form a cycle (1 < 2 < 1)"), "{}", c.text);
    assert_eq!(names_of(&r.boundary.not), ["read-uncommitted"]);
}

#[test]
fn duplicate_writes_and_wrong_micro_ops_are_bad_input() {
    let h = History::register().ok(1, "wx1").ok(2, "wx1");
    let opts = ElleOptions::new(Workload::RwRegister, Model::Serializable);
    let e = super::check(&h.ops, &opts).unwrap_err();
    assert!(e.to_string().contains("written by op"), "{e}");
    let h = History::list().ok(1, "ax1");
    let e = super::check(&h.ops, &opts).unwrap_err();
    assert!(
        e.to_string()
            .contains("\"append\" micro-op in a rw-register history"),
        "{e}"
    );
}

fn names_of(ms: &[Model]) -> Vec<&'static str> {
    ms.iter().map(|m| m.name()).collect()
}

#[test]
fn register_sequential_keys_order_versions_by_process() {
    // Process 3 saw x=1 and later x=2; process 4 saw y=2 and later y=1. If
    // keys are sequential, T1 and T2 wrote x and y in opposite orders: G0.
    let h = History::register()
        .concurrent(&[(1, "wx1 wy1"), (2, "wx2 wy2")])
        .ok(3, "rx1")
        .ok(3, "rx2")
        .ok(4, "ry2")
        .ok(4, "ry1");
    let mut opts = ElleOptions::new(Workload::RwRegister, Model::Serializable);
    assert_eq!(super::check(&h.ops, &opts).unwrap().verdict, Verdict::Valid);
    opts.sequential_keys = true;
    let r = super::check(&h.ops, &opts).unwrap();
    assert!(names(&r).contains(&"G0".to_string()), "{}", r.render_text());
    let c = case(&r, "G0");
    assert_eq!(witnesses(c), ts(&h, &[0, 1]));
    assert!(c.text.contains("process 3 saw 1"), "{}", c.text);
}

#[test]
fn register_linearizable_keys_order_versions_by_real_time() {
    // T1 wrote x=1 and completed before T2 began, so under linearizable keys
    // 1 < 2. T3 read x=1 and wrote y=1; T2 wrote x=2 and read y = nil: each
    // overwrote what the other read (G2-item). Without the assumption the
    // order of x's versions is unknown and nothing can be said.
    let h = History::register()
        .ok(1, "wx1")
        .concurrent(&[(2, "wx2 ry"), (3, "rx1 wy1")]);
    let mut opts = ElleOptions::new(Workload::RwRegister, Model::Serializable);
    assert_eq!(super::check(&h.ops, &opts).unwrap().verdict, Verdict::Valid);
    opts.linearizable_keys = true;
    let r = super::check(&h.ops, &opts).unwrap();
    assert!(
        names(&r).contains(&"G2-item".to_string()),
        "{}",
        r.render_text()
    );
    let c = case(&r, "G2-item");
    assert_eq!(witnesses(c), ts(&h, &[1, 2]));
    assert!(c.text.contains("completed before"), "{}", c.text);
}

#[test]
fn register_linearizable_keys_make_a_stale_read_a_version_cycle() {
    // x=2 was written after x=1 completed, and x=1 was read after that:
    // versions 1 < 2 < 1.
    let h = History::register().ok(1, "wx1").ok(2, "wx2").ok(3, "rx1");
    let mut opts = ElleOptions::new(Workload::RwRegister, Model::Serializable);
    assert_eq!(super::check(&h.ops, &opts).unwrap().verdict, Verdict::Valid);
    opts.linearizable_keys = true;
    let r = super::check(&h.ops, &opts).unwrap();
    assert_eq!(r.verdict, Verdict::Invalid, "{}", r.render_text());
    assert!(names(&r).contains(&"cyclic-versions".to_string()));
}

#[test]
fn register_sequential_keys_keep_a_read_then_write_in_order() {
    // One process reads x and then overwrites it, twice: a correct,
    // sequential history, which must not come out as a version cycle.
    let h = History::register()
        .ok(1, "wx1")
        .ok(2, "rx1 wx2")
        .ok(2, "rx2 wx3")
        .ok(2, "rx3");
    let mut opts = ElleOptions::new(Workload::RwRegister, Model::StrictSerializable);
    opts.sequential_keys = true;
    opts.linearizable_keys = true;
    let r = super::check(&h.ops, &opts).unwrap();
    assert_eq!(r.verdict, Verdict::Valid, "{}", r.render_text());
}
