//! Elle's own stored histories (../shared/corpus/elle) against Elle's
//! published results (EXPECTED.txt there).

mod common;

use faultline::checker::Verdict;
use faultline::checker::elle::{self, ElleOptions, Model, Workload};
use faultline::history::{Format, read_path};
use std::time::{Duration, Instant};

/// `None` when the corpora are missing (the test is skipped with a note).
fn check(name: &str, model: Model) -> Option<elle::ElleResult> {
    let path = common::corpus(&format!("elle/{name}"))?;
    let h = read_path(&path, Format::Auto).expect("the corpus file reads");
    let mut opts = ElleOptions::new(Workload::ListAppend, model);
    opts.time_limit = Duration::from_secs(20);
    Some(elle::check(&h.ops, &opts).expect("the corpus file checks"))
}

#[test]
fn si_without_g_single_is_g2_item_not_repeatable_read_but_snapshot_isolation() {
    for model in [Model::SnapshotIsolation, Model::RepeatableRead] {
        let Some(r) = check("si-without-g-single.edn", model) else {
            return;
        };
        assert_eq!(r.anomaly_names(), ["G2-item"], "{}", r.render_text());
        assert!(
            r.boundary.not.contains(&Model::RepeatableRead),
            "{:?}",
            r.boundary
        );
        assert!(
            r.boundary.possible.contains(&Model::SnapshotIsolation),
            "{:?}",
            r.boundary
        );
        let expected = if model == Model::RepeatableRead {
            Verdict::Invalid
        } else {
            Verdict::Valid
        };
        assert_eq!(r.verdict, expected, "{}", r.render_text());
    }
}

#[test]
fn huge_scc_is_invalid_with_g2_item_realtime_within_the_time_limit() {
    let start = Instant::now();
    let Some(r) = check("huge-scc.edn", Model::StrictSerializable) else {
        return;
    };
    let took = start.elapsed();
    eprintln!("{}\ntook {took:?}", r.render_text());
    assert_eq!(r.verdict, Verdict::Invalid);
    assert!(
        r.anomaly_names().contains(&"G2-item-realtime".to_string()),
        "{:?}",
        r.anomaly_names()
    );
    let not: Vec<Model> = r
        .boundary
        .not
        .iter()
        .chain(&r.boundary.also_not)
        .copied()
        .collect();
    assert!(
        not.contains(&Model::StrongSnapshotIsolation),
        "{:?}",
        r.boundary
    );
}
