//! Read atomicity and causal consistency against their definitions: small
//! random histories (both workloads, a few sessions, or many short ones
//! whose processes crash with `info` results and are replaced) checked by
//! the Elle checker and by a brute-force oracle that tries every commit
//! order, as Plume's (Biswas and Enea's) axioms say. Verdicts must agree
//! both ways: no false alarm, no miss.

use faultline::checker::Verdict;
use faultline::checker::elle::{self, ElleOptions, Model, Workload};
use faultline::history::{Op, OpType, Process};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

/// A micro-op: write / append `(key, Some(value))`, read `(key, None)`.
type Mop = (usize, Option<i64>);

#[derive(Debug, Clone)]
struct Txn {
    process: u64,
    mops: Vec<Mop>,
    /// What each read returned, in order: a register value (None = nil) as
    /// a list of at most one element, or a list. Unknown (and not in the
    /// history) for an info transaction.
    reads: Vec<Vec<i64>>,
    /// Ended `info`: its process crashed (and is never used again); its
    /// writes may have taken effect.
    info: bool,
}

/// Processes and info results for `n` transactions: a few long sessions,
/// or (`crashes`) three clients whose process crashes at a quarter of its
/// transactions, each crash replacing it with a new process.
fn sessions(rng: &mut rand_chacha::ChaCha8Rng, n: usize, crashes: bool) -> Vec<(u64, bool)> {
    let mut procs = [0u64, 1, 2];
    let mut next = 3;
    (0..n)
        .map(|_| {
            let c = rng.random_range(0..3usize);
            if !crashes {
                return (c as u64, false);
            }
            let p = procs[c];
            let info = rng.random_bool(0.25);
            if info {
                procs[c] = next;
                next += 1;
            }
            (p, info)
        })
        .collect()
}

const KEYS: usize = 2;

/// Random registers: writes unique values; an external read returns nil or
/// another transaction's last write of the key (sometimes a different one
/// the second time); a read after its own write returns that write.
fn registers(seed: u64, n: usize, crashes: bool) -> Vec<Txn> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut next = 1i64;
    let mut txns: Vec<Txn> = sessions(&mut rng, n, crashes)
        .into_iter()
        .map(|(process, info)| {
            let len = rng.random_range(1..5usize);
            let mops = (0..len)
                .map(|_| {
                    let k = rng.random_range(0..KEYS);
                    if rng.random_bool(0.45) {
                        next += 1;
                        (k, Some(next - 1))
                    } else {
                        (k, None)
                    }
                })
                .collect();
            Txn {
                process,
                mops,
                reads: Vec::new(),
                info,
            }
        })
        .collect();
    // Last writes per (txn, key).
    let last = |t: &Txn, k: usize| t.mops.iter().rev().find(|m| m.0 == k).and_then(|m| m.1);
    let finals: Vec<Vec<Option<i64>>> = txns
        .iter()
        .map(|t| (0..KEYS).map(|k| last(t, k)).collect())
        .collect();
    for (i, t) in txns.iter_mut().enumerate() {
        let mut own: [Option<i64>; KEYS] = [None; KEYS];
        let mut seen: [Option<Option<i64>>; KEYS] = [None; KEYS];
        for &(k, v) in &t.mops {
            if let Some(v) = v {
                own[k] = Some(v);
                continue;
            }
            let value = if let Some(v) = own[k] {
                Some(v)
            } else if let Some(s) = seen[k].filter(|_| rng.random_bool(0.85)) {
                s
            } else {
                let choices: Vec<i64> = (0..finals.len())
                    .filter(|&j| j != i)
                    .filter_map(|j| finals[j][k])
                    .collect();
                if choices.is_empty() || rng.random_bool(0.25) {
                    None
                } else {
                    Some(choices[rng.random_range(0..choices.len())])
                }
            };
            seen[k] = Some(value);
            t.reads.push(value.into_iter().collect());
        }
    }
    txns
}

/// Random lists: at most one append per key per transaction, reads only
/// before the transaction's own append of the key; each read a random
/// prefix of the key's final list in one random order of the transactions
/// (never showing the reader's own append).
fn lists(seed: u64, n: usize, crashes: bool) -> Vec<Txn> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut next = 1i64;
    let mut txns: Vec<Txn> = sessions(&mut rng, n, crashes)
        .into_iter()
        .map(|(process, info)| {
            let len = rng.random_range(1..5usize);
            let mut mops: Vec<Mop> = Vec::new();
            for _ in 0..len {
                let k = rng.random_range(0..KEYS);
                let appended = mops.iter().any(|m| m.0 == k && m.1.is_some());
                if appended {
                    continue;
                }
                if rng.random_bool(0.5) {
                    next += 1;
                    mops.push((k, Some(next - 1)));
                } else {
                    mops.push((k, None));
                }
            }
            Txn {
                process,
                mops,
                reads: Vec::new(),
                info,
            }
        })
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let finals: Vec<Vec<(i64, usize)>> = (0..KEYS)
        .map(|k| {
            order
                .iter()
                .filter_map(|&t| {
                    txns[t]
                        .mops
                        .iter()
                        .find(|m| m.0 == k && m.1.is_some())
                        .map(|m| (m.1.unwrap_or(0), t))
                })
                .collect()
        })
        .collect();
    for (i, t) in txns.iter_mut().enumerate() {
        let mut reads = Vec::new();
        for &(k, v) in &t.mops {
            if v.is_some() {
                continue;
            }
            let l = &finals[k];
            let cap = l.iter().position(|&(_, w)| w == i).unwrap_or(l.len());
            let len = rng.random_range(0..=cap);
            reads.push(l[..len].iter().map(|e| e.0).collect());
        }
        t.reads = reads;
    }
    txns
}

fn ops(txns: &[Txn], list: bool) -> Vec<Op> {
    let mut out = Vec::new();
    let value = |t: &Txn, filled: bool| {
        let mut reads = t.reads.iter();
        let v: Vec<Value> = t
            .mops
            .iter()
            .map(|&(k, v)| match v {
                Some(v) if list => json!(["append", k, v]),
                Some(v) => json!(["w", k, v]),
                None => {
                    let r = reads.next().expect("a value per read");
                    match (filled, list) {
                        (false, _) => json!(["r", k, null]),
                        (true, true) => json!(["r", k, r]),
                        (true, false) => json!(["r", k, r.first()]),
                    }
                }
            })
            .collect();
        Value::Array(v)
    };
    for t in txns {
        let end = if t.info {
            (OpType::Info, false)
        } else {
            (OpType::Ok, true)
        };
        for (kind, filled) in [(OpType::Invoke, false), end] {
            let index = out.len() as u64;
            out.push(Op {
                index,
                time: index,
                process: Process::Client(t.process),
                kind,
                f: "txn".into(),
                value: value(t, filled),
                node: None,
                error: None,
            });
        }
    }
    out
}

/// The writer of `v` to key `k`.
fn writer(txns: &[Txn], k: usize, v: i64) -> Option<usize> {
    txns.iter().position(|t| t.mops.contains(&(k, Some(v))))
}

/// External reads of ok transactions: (reader, key, writers it observed,
/// the writer it read from or None for the initial version). Reads after
/// the transaction's own write of the key are internal and checked by the
/// inference.
fn external_reads(txns: &[Txn], list: bool) -> Vec<(usize, usize, Vec<usize>, Option<usize>)> {
    let mut out = Vec::new();
    for (i, t) in txns.iter().enumerate() {
        if t.info {
            continue;
        }
        let mut reads = t.reads.iter();
        let mut wrote = [false; KEYS];
        for &(k, v) in &t.mops {
            if v.is_some() {
                wrote[k] = true;
                continue;
            }
            let r = reads.next().expect("a value per read");
            if wrote[k] {
                continue;
            }
            let observed: Vec<usize> = r.iter().filter_map(|&v| writer(txns, k, v)).collect();
            let from = r.last().and_then(|&v| writer(txns, k, v));
            let observed = if list {
                observed
            } else {
                from.into_iter().collect()
            };
            out.push((i, k, observed, from));
        }
    }
    out
}

/// Whether some total commit order of the ok transactions and the info
/// ones some read observed satisfies the level's axioms: it contains
/// session order (a process's ok transactions, then its info one) and what
/// reads observed; for lists, each read is a prefix of the key's appends in
/// commit order; and every write of the key that the reader sees (RA: one
/// session or read step; TCC: a chain of them) commits before the version
/// it read.
fn oracle(txns: &[Txn], list: bool, causal: bool) -> bool {
    let n = txns.len();
    let reads = external_reads(txns, list);
    let mut included: Vec<bool> = txns.iter().map(|t| !t.info).collect();
    for (_, _, observed, _) in &reads {
        for &w in observed {
            included[w] = true;
        }
    }
    let mut before = vec![vec![false; n]; n];
    for a in 0..n {
        for b in a + 1..n {
            before[a][b] |= txns[a].process == txns[b].process && !txns[a].info && included[b];
        }
    }
    for (t3, _, observed, _) in &reads {
        for &w in observed {
            if w != *t3 {
                before[w][*t3] = true;
            }
        }
    }
    let mut sees = before.clone();
    if causal {
        for m in 0..n {
            for a in 0..n {
                for b in 0..n {
                    sees[a][b] |= sees[a][m] && sees[m][b];
                }
            }
        }
    }
    let writes =
        |t: usize, k: usize| included[t] && txns[t].mops.iter().any(|m| m.0 == k && m.1.is_some());
    let members: Vec<usize> = (0..n).filter(|&t| included[t]).collect();
    let mut order: Vec<usize> = Vec::with_capacity(n);
    let mut used = vec![false; members.len()];
    permutations(members.len(), &mut order, &mut used, &mut |perm| {
        let co: Vec<usize> = perm.iter().map(|&i| members[i]).collect();
        let mut rank = vec![0; n];
        for (i, &t) in co.iter().enumerate() {
            rank[t] = i;
        }
        let contains = (0..n).all(|a| (0..n).all(|b| !before[a][b] || rank[a] < rank[b]));
        if !contains {
            return false;
        }
        if list {
            // Each read is a prefix of the key's appends in commit order.
            for t in txns.iter().filter(|t| !t.info) {
                let mut rs = t.reads.iter();
                for &(k, v) in &t.mops {
                    if v.is_some() {
                        continue;
                    }
                    let r = rs.next().expect("a read");
                    let full: Vec<i64> = co
                        .iter()
                        .filter_map(|&w| txns[w].mops.iter().find(|m| m.0 == k && m.1.is_some()))
                        .map(|m| m.1.unwrap_or(0))
                        .collect();
                    if r.len() > full.len() || full[..r.len()] != r[..] {
                        return false;
                    }
                }
            }
        }
        reads.iter().all(|&(t3, k, _, from)| {
            (0..n).all(|t1| {
                if t1 == t3 || Some(t1) == from || !writes(t1, k) || !sees[t1][t3] {
                    return true;
                }
                from.is_some_and(|t2| rank[t1] < rank[t2])
            })
        })
    })
}

/// Calls `f` on every order of `0..n` until it returns true.
fn permutations(
    n: usize,
    order: &mut Vec<usize>,
    used: &mut [bool],
    f: &mut dyn FnMut(&[usize]) -> bool,
) -> bool {
    if order.len() == n {
        return f(order);
    }
    for i in 0..n {
        if used[i] {
            continue;
        }
        used[i] = true;
        order.push(i);
        let found = permutations(n, order, used, f);
        order.pop();
        used[i] = false;
        if found {
            return true;
        }
    }
    false
}

fn agree(txns: &[Txn], list: bool) -> Result<(), TestCaseError> {
    if txns.iter().all(|t| t.info) {
        // Nothing committed: the checker's verdict is unknown by design.
        return Ok(());
    }
    let ops = ops(txns, list);
    let workload = if list {
        Workload::ListAppend
    } else {
        Workload::RwRegister
    };
    for (model, causal) in [(Model::ReadAtomic, false), (Model::Causal, true)] {
        let r = elle::check(&ops, &ElleOptions::new(workload, model)).expect("checks");
        let expected = oracle(txns, list, causal);
        let got = r.verdict == Verdict::Valid;
        prop_assert_ne!(r.verdict, Verdict::Unknown, "{}", r.render_text());
        prop_assert_eq!(
            got,
            expected,
            "{} {:?}\n{:#?}\n{}",
            model.name(),
            workload,
            txns,
            r.render_text()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2500, ..ProptestConfig::default() })]

    #[test]
    fn register_verdicts_agree_with_the_definitions(seed in any::<u64>(), n in 1usize..7) {
        agree(&registers(seed, n, false), false)?;
    }

    #[test]
    fn list_append_verdicts_agree_with_the_definitions(seed in any::<u64>(), n in 1usize..7) {
        agree(&lists(seed, n, false), true)?;
    }

    #[test]
    fn register_verdicts_agree_with_crashing_sessions(seed in any::<u64>(), n in 1usize..8) {
        agree(&registers(seed, n, true), false)?;
    }

    #[test]
    fn list_append_verdicts_agree_with_crashing_sessions(seed in any::<u64>(), n in 1usize..8) {
        agree(&lists(seed, n, true), true)?;
    }
}

/// The random histories are not all trivially valid or invalid.
#[test]
fn the_random_histories_are_mixed() {
    for (list, crashes) in [(false, false), (true, false), (false, true), (true, true)] {
        let (mut ra, mut tcc, mut total, mut seen_info) = (0, 0, 0, 0);
        for seed in 0..400 {
            let txns = if list {
                lists(seed, 5, crashes)
            } else {
                registers(seed, 5, crashes)
            };
            total += 1;
            // An info transaction whose write some read returned.
            let observed = external_reads(&txns, list)
                .iter()
                .any(|r| r.2.iter().any(|&w| txns[w].info));
            seen_info += observed as u32;
            ra += oracle(&txns, list, false) as u32;
            tcc += oracle(&txns, list, true) as u32;
        }
        assert!(
            ra > total / 10 && ra < total * 9 / 10,
            "RA valid {ra} of {total}"
        );
        assert!(tcc < ra, "TCC valid {tcc}, RA valid {ra}");
        assert!(tcc > total / 20, "TCC valid {tcc} of {total}");
        if crashes {
            assert!(
                seen_info > total / 10,
                "observed info in {seen_info} of {total}"
            );
        }
    }
}
