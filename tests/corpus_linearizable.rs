//! Every history of the reference corpora, checked against its published
//! verdict (../shared/corpus/*/VERDICTS.txt). The semantics each corpus needs
//! are spelled out here as a user would pass them on the command line.

mod common;

use faultline::checker::linearizable::{ModelKind, NilRead, Options, RegisterOptions};
use faultline::history::Format;
use faultline::runner::bench::{corpus_files, read_verdicts};
use faultline::runner::check::{Checker, check_file};
use serde_json::json;

/// Checks every file of a corpus folder; returns how many had a published
/// verdict (`None`: the corpora are missing, the test is skipped).
fn check_all(name: &str, options: &Options) -> Option<usize> {
    let dir = common::corpus(name)?;
    let expected = read_verdicts(&dir).unwrap();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for file in corpus_files(&dir).unwrap() {
        let rel = file.strip_prefix(&dir).unwrap().display().to_string();
        let result = check_file(&file, Format::Auto, &Checker::Linearizable(options.clone()));
        let report = result
            .outcome
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
            .into_linearizable()
            .expect("the linearizability checker ran");
        match expected.get(&rel) {
            Some(&want) => {
                checked += 1;
                if report.verdict != want {
                    wrong.push(format!(
                        "{rel}: got {}, published {}",
                        report.verdict.as_str(),
                        want.as_str()
                    ));
                }
            }
            // No published verdict: it must still finish within the time limit with some verdict.
            None => assert!(
                rel == "etcd_095.log",
                "{rel} has no verdict in VERDICTS.txt"
            ),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong verdicts:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    Some(checked)
}

#[test]
fn porcupine_etcd_verdicts() {
    // The register starts absent and a nil read means absent: the defaults.
    let options = Options {
        model: ModelKind::CasRegister,
        ..Options::default()
    };
    if let Some(checked) = check_all("porcupine-etcd", &options) {
        assert_eq!(checked, 102);
    }
}

#[test]
fn porcupine_kv_verdicts() {
    let options = Options {
        model: ModelKind::Kv,
        ..Options::default()
    };
    if let Some(checked) = check_all("porcupine-kv", &options) {
        assert_eq!(checked, 6);
    }
}

#[test]
fn knossos_cas_verdicts() {
    // --initial-value 0 --nil-read any
    let options = Options {
        model: ModelKind::CasRegister,
        register: RegisterOptions {
            initial: json!(0),
            nil_read: NilRead::Any,
        },
        ..Options::default()
    };
    if let Some(checked) = check_all("knossos-cas", &options) {
        assert_eq!(checked, 120);
    }
}

#[test]
fn the_etcd_explanation_names_the_stale_read() {
    let Some(file) = common::corpus("porcupine-etcd/etcd_000.log") else {
        return;
    };
    let report = check_file(
        &file,
        Format::Auto,
        &Checker::Linearizable(Options::default()),
    )
    .outcome
    .unwrap()
    .into_linearizable()
    .unwrap();
    let e = report.keys[0].explanation.as_ref().unwrap();
    // Pinned from the search: the read of 2 at index 84 cannot be placed,
    // the register could only hold 0, 1, 3 or 4 just before it.
    assert_eq!(e.op.index, 84);
    assert_eq!(e.op.text, "read -> 2");
    let mut states = e.states_before.clone();
    states.sort();
    assert_eq!(states, vec!["0", "1", "3", "4"]);
    assert!(!e.prefix.is_empty() && e.concurrent_total > 0);
}

#[test]
fn every_corpus_file_reads_whole_and_pairs() {
    let Some(root) = common::corpus("") else {
        return;
    };
    let mut files = 0;
    for dir in [
        "porcupine-etcd",
        "porcupine-kv",
        "knossos-cas/good",
        "knossos-cas/bad",
        "elle",
    ] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name == "VERDICTS.txt" || name == "EXPECTED.txt" {
                continue;
            }
            let h = faultline::history::read_path(&path, Format::Auto)
                .unwrap_or_else(|e| panic!("{e}"));
            // etcd_095.log is empty in the corpus (and has no published verdict).
            assert_eq!(
                h.ops.is_empty(),
                name == "etcd_095.log",
                "{}",
                path.display()
            );
            assert_eq!(h.truncated_line, None, "{}", path.display());
            faultline::history::pair::pair(&h.ops)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            files += 1;
        }
    }
    assert_eq!(files, 103 + 6 + 120 + 2);
}
