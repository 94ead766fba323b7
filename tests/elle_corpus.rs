//! Elle's own stored histories (../shared/corpus/elle) against Elle's
//! published results (EXPECTED.txt there).

use faultline::checker::Verdict;
use faultline::checker::elle::{self, ElleOptions, Model, Workload};
use faultline::history::{Format, read_path};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/elle"
    ))
    .join(name)
}

fn check(name: &str, model: Model) -> elle::ElleResult {
    let h = read_path(&corpus(name), Format::Auto).expect("the corpus file reads");
    let mut opts = ElleOptions::new(Workload::ListAppend, model);
    opts.time_limit = Duration::from_secs(20);
    elle::check(&h.ops, &opts).expect("the corpus file checks")
}

#[test]
fn si_without_g_single_is_g2_item_not_repeatable_read_but_snapshot_isolation() {
    for model in [Model::SnapshotIsolation, Model::RepeatableRead] {
        let r = check("si-without-g-single.edn", model);
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
    let r = check("huge-scc.edn", Model::StrictSerializable);
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
