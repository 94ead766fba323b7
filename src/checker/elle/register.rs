//! rw-register inference: wr edges from the values read, a partial version
//! order per key from sound sources only, ww / rw edges from it, and the
//! anomalies visible without cycles.
//!
//! Writes are unique per key, so a read names its writer. The version order
//! of a register cannot be read off a value, so it is inferred only where it
//! is certain (Elle's sources): the initial nil comes before every version;
//! a transaction that read v and then wrote v' installed v' after v
//! (`wfr_keys`); and, if the database promises sequential keys, a process's
//! later transactions see versions no older than its earlier ones
//! (`sequential_keys`); if it promises linearizable keys, so does any
//! transaction invoked after another completed (`linearizable_keys`). A
//! source that would make a key's versions cyclic is dropped for that key and
//! reported as `cyclic-versions`. Nothing is guessed. External reads (before the transaction writes the key) and
//! external writes (its last write of the key) are what other transactions
//! can see.

use super::explain::{key_str, tname};
use super::graph::{GraphBuilder, RW, WR, WW};
use super::model::Anomaly;
use super::{ElleError, ElleOptions, Found};
use crate::history::Outcome;
use crate::history::txn::{KeyId, Mop, Txns};
use std::collections::HashMap;

/// Why one version of a key comes before another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Initial,
    /// This transaction read the first version and then wrote the second.
    WritesFollowReads(u32),
    /// These two transactions of one process saw them, in that order.
    Process(u32, u32),
    /// The first transaction completed before the second was invoked.
    Realtime(u32, u32),
}

#[derive(Debug, Clone, Copy)]
struct VersionEdge {
    key: KeyId,
    from: Option<i64>,
    to: i64,
    source: Source,
}

/// What rw-register inference keeps for explaining edges later.
pub struct RegisterIndex {
    /// External writes of ok and info transactions, sorted by (key, value).
    ext_writes: Vec<(KeyId, i64, u32)>,
    /// Version edges sorted by (key, from, to).
    versions: Vec<VersionEdge>,
}

fn read_value(txns: &Txns, m: &Mop) -> Option<i64> {
    txns.read_values(m).and_then(|v| v.first().copied())
}

/// A transaction's external reads (ok only) and writes, per key.
pub(super) type Externals = (Vec<(KeyId, Option<i64>)>, Vec<(KeyId, i64)>);

/// A write: (key, value, txn, failed, intermediate).
type WriteRec = (KeyId, i64, u32, bool, bool);

pub(super) fn externals(txns: &Txns, t: u32) -> Externals {
    let txn = &txns.txns[t as usize];
    let mut reads: Vec<(KeyId, Option<i64>)> = Vec::new();
    let mut writes: Vec<(KeyId, i64)> = Vec::new();
    for m in txns.mops(txn) {
        match *m {
            Mop::Read { key, .. } if txn.outcome == Outcome::Ok => {
                let written = writes.iter().any(|w| w.0 == key);
                if !written && !reads.iter().any(|r| r.0 == key) {
                    reads.push((key, read_value(txns, m)));
                }
            }
            Mop::Write { key, value } => match writes.iter_mut().find(|w| w.0 == key) {
                Some(w) => w.1 = value,
                None => writes.push((key, value)),
            },
            _ => {}
        }
    }
    (reads, writes)
}

impl RegisterIndex {
    /// The ok or info transaction whose external write of `k` is `v`.
    pub(super) fn writer_of(&self, k: KeyId, v: i64) -> Option<u32> {
        self.ext_writer(k, v)
    }

    fn ext_writer(&self, k: KeyId, v: i64) -> Option<u32> {
        self.ext_writes
            .binary_search_by(|&(key, value, _)| (key, value).cmp(&(k, v)))
            .ok()
            .map(|i| self.ext_writes[i].2)
    }

    fn edge(&self, k: KeyId, from: Option<i64>, to: i64) -> Option<&VersionEdge> {
        self.versions
            .binary_search_by(|e| (e.key, e.from, e.to).cmp(&(k, from, to)))
            .ok()
            .map(|i| &self.versions[i])
    }

    fn because(&self, txns: &Txns, e: &VersionEdge) -> String {
        let v = |x: Option<i64>| x.map_or("nil".to_string(), |x| x.to_string());
        match e.source {
            Source::Initial => "every version follows the initial nil".into(),
            Source::WritesFollowReads(t) => format!(
                "{} read {} and then wrote {}",
                tname(&txns.txns[t as usize]),
                v(e.from),
                e.to
            ),
            Source::Process(a, b) => format!(
                "process {} saw {} in {} and then {} in {}",
                txns.txns[a as usize].process,
                v(e.from),
                tname(&txns.txns[a as usize]),
                e.to,
                tname(&txns.txns[b as usize])
            ),
            Source::Realtime(a, b) => format!(
                "{} saw {} and completed before {} began, which saw {}",
                tname(&txns.txns[a as usize]),
                v(e.from),
                tname(&txns.txns[b as usize]),
                e.to
            ),
        }
    }

    /// Why a → b holds for relation `rel`, in words; None if it does not.
    pub fn explain(&self, txns: &Txns, a: u32, b: u32, rel: u8) -> Option<(KeyId, String)> {
        let (na, nb) = (tname(&txns.txns[a as usize]), tname(&txns.txns[b as usize]));
        let (a_reads, a_writes) = externals(txns, a);
        let (b_reads, b_writes) = externals(txns, b);
        match rel {
            WR => b_reads.iter().find_map(|&(k, v)| {
                let v = v?;
                (self.ext_writer(k, v) == Some(a)).then(|| {
                    (k, format!("{nb} read key {} = {v}, which {na} wrote, so {na} <wr {nb}", key_str(txns, k)))
                })
            }),
            WW => a_writes.iter().find_map(|&(k, v1)| {
                let &(_, v2) = b_writes.iter().find(|w| w.0 == k)?;
                let e = self.edge(k, Some(v1), v2)?;
                Some((k, format!(
                    "{na} set key {} to {v1} and {nb} set it to {v2}, a later version ({}), so {na} <ww {nb}",
                    key_str(txns, k),
                    self.because(txns, e)
                )))
            }),
            RW => a_reads.iter().find_map(|&(k, v1)| {
                let &(_, v2) = b_writes.iter().find(|w| w.0 == k)?;
                let e = self.edge(k, v1, v2)?;
                let seen = v1.map_or("nil (the initial state)".to_string(), |v| v.to_string());
                Some((k, format!(
                    "{na} read key {} = {seen} and {nb} set it to {v2}, a later version ({}), so {na} <rw {nb}",
                    key_str(txns, k),
                    self.because(txns, e)
                )))
            }),
            _ => None,
        }
    }
}

/// Infers wr edges and the version orders, adds ww/wr/rw edges to `g`, and
/// reports the anomalies found without cycles.
pub fn infer(
    txns: &Txns,
    opts: &ElleOptions,
    g: &mut GraphBuilder,
    found: &mut Vec<Found>,
) -> Result<RegisterIndex, ElleError> {
    let mut writes: Vec<WriteRec> = Vec::new();
    let mut ext_reads: Vec<(KeyId, Option<i64>, u32)> = Vec::new();
    let mut ext_writes: Vec<(KeyId, i64, u32)> = Vec::new();
    for (i, t) in txns.txns.iter().enumerate() {
        let mops = txns.mops(t);
        for (j, m) in mops.iter().enumerate() {
            if let Mop::Write { key, value } = *m {
                let later = mops[j + 1..]
                    .iter()
                    .any(|n| matches!(*n, Mop::Write { key: k2, .. } if k2 == key));
                writes.push((key, value, i as u32, t.outcome == Outcome::Fail, later));
            }
        }
        if t.outcome == Outcome::Fail {
            continue;
        }
        let (reads, ws) = externals(txns, i as u32);
        ext_reads.extend(reads.into_iter().map(|(k, v)| (k, v, i as u32)));
        ext_writes.extend(ws.into_iter().map(|(k, v)| (k, v, i as u32)));
    }
    writes.sort_unstable_by_key(|w| (w.0, w.1, w.2));
    if let Some(w) = writes
        .windows(2)
        .find(|w| (w[0].0, w[0].1) == (w[1].0, w[1].1))
    {
        return Err(ElleError::DuplicateWrite {
            key: txns.key_name(w[0].0).to_string(),
            value: w[0].1,
            first: txns.txns[w[0].2 as usize].invoke_index,
            second: txns.txns[w[1].2 as usize].invoke_index,
        });
    }
    ext_reads.sort_unstable();
    ext_writes.sort_unstable();
    let writer = |k: KeyId, v: i64| {
        writes
            .binary_search_by(|w| (w.0, w.1).cmp(&(k, v)))
            .ok()
            .map(|i| writes[i])
    };

    read_anomalies(txns, &writer, found);
    lost_updates(txns, found);
    let versions = version_order(txns, opts, &ext_reads, &ext_writes, found);
    let index = RegisterIndex {
        ext_writes,
        versions,
    };

    // wr: from the writer of each externally read value.
    for &(k, v, reader) in &ext_reads {
        if let Some(w) = v.and_then(|v| index.ext_writer(k, v)) {
            g.link(w, reader, WR);
        }
    }
    // ww and rw: along every version edge.
    let readers_of = |k: KeyId, v: Option<i64>| {
        let lo = ext_reads.partition_point(|r| (r.0, r.1) < (k, v));
        let hi = ext_reads.partition_point(|r| (r.0, r.1) <= (k, v));
        &ext_reads[lo..hi]
    };
    for e in &index.versions {
        let Some(w2) = index.ext_writer(e.key, e.to) else {
            continue;
        };
        if let Some(w1) = e.from.and_then(|v| index.ext_writer(e.key, v)) {
            g.link(w1, w2, WW);
        }
        for r in readers_of(e.key, e.from) {
            g.link(r.2, w2, RW);
        }
    }
    Ok(index)
}

/// G1a, G1b, garbage reads, internal inconsistency and future reads, from
/// every read of every ok transaction.
fn read_anomalies(
    txns: &Txns,
    writer: &dyn Fn(KeyId, i64) -> Option<WriteRec>,
    found: &mut Vec<Found>,
) {
    for (i, t) in txns.txns.iter().enumerate() {
        if t.outcome != Outcome::Ok {
            continue;
        }
        let mops = txns.mops(t);
        // Per key: the value this transaction last read or wrote.
        let mut state: Vec<(KeyId, Option<i64>)> = Vec::new();
        for (j, m) in mops.iter().enumerate() {
            let (key, v) = match *m {
                Mop::Write { key, value } => {
                    match state.iter_mut().find(|s| s.0 == key) {
                        Some(s) => s.1 = Some(value),
                        None => state.push((key, Some(value))),
                    }
                    continue;
                }
                Mop::Read { key, .. } => (key, read_value(txns, m)),
                Mop::Append { .. } => continue,
            };
            let (tn, kn) = (tname(t), key_str(txns, key));
            let shown = v.map_or("nil".to_string(), |v| v.to_string());
            match state.iter_mut().find(|s| s.0 == key) {
                Some(s) if s.1 != v => {
                    let expected = s.1.map_or("nil".to_string(), |v| v.to_string());
                    found.push(Found::new(
                        Anomaly::Internal,
                        vec![i as u32],
                        Some(key),
                        format!("{tn} read key {kn} = {shown}, but its own earlier micro-ops imply {expected}"),
                    ));
                    s.1 = v;
                }
                Some(_) => {}
                None => state.push((key, v)),
            }
            let Some(v) = v else { continue };
            match writer(key, v) {
                None => found.push(Found::new(
                    Anomaly::GarbageRead,
                    vec![i as u32],
                    Some(key),
                    format!("{tn} read key {kn} = {v}, but no transaction wrote {v} to it"),
                )),
                Some((_, _, w, true, _)) => found.push(Found::new(
                    Anomaly::G1a,
                    vec![i as u32, w],
                    Some(key),
                    format!(
                        "{tn} read key {kn} = {v}, written by {}, which failed (aborted read)",
                        tname(&txns.txns[w as usize])
                    ),
                )),
                Some((_, _, w, _, intermediate)) if w != i as u32 && intermediate => {
                    found.push(Found::new(
                        Anomaly::G1b,
                        vec![i as u32, w],
                        Some(key),
                        format!(
                            "{tn} read key {kn} = {v}, which {} overwrote later in the same transaction (intermediate read): {}",
                            tname(&txns.txns[w as usize]),
                            txns.mops_json(&txns.txns[w as usize])
                        ),
                    ))
                }
                Some((_, _, w, _, _)) if w == i as u32 => {
                    let written_before = mops[..j]
                        .iter()
                        .any(|n| matches!(*n, Mop::Write { key: k2, value } if k2 == key && value == v));
                    if !written_before {
                        found.push(Found::new(
                            Anomaly::FutureRead,
                            vec![i as u32],
                            Some(key),
                            format!("{tn} read key {kn} = {v} before writing {v} itself"),
                        ));
                    }
                }
                Some(_) => {}
            }
        }
    }
}

/// Lost update: two committed transactions read the same value of a key
/// and then both wrote it.
fn lost_updates(txns: &Txns, found: &mut Vec<Found>) {
    let mut rw: Vec<(KeyId, Option<i64>, u32)> = Vec::new();
    for (i, t) in txns.txns.iter().enumerate() {
        if t.outcome != Outcome::Ok {
            continue;
        }
        let (reads, writes) = externals(txns, i as u32);
        for (k, v) in reads {
            if writes.iter().any(|w| w.0 == k) {
                rw.push((k, v, i as u32));
            }
        }
    }
    rw.sort_unstable();
    for group in rw.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        if group.len() < 2 {
            continue;
        }
        let ids: Vec<u32> = group.iter().map(|g| g.2).collect();
        let names: Vec<String> = ids.iter().map(|&t| tname(&txns.txns[t as usize])).collect();
        let shown = group[0].1.map_or("nil".to_string(), |v| v.to_string());
        found.push(Found::new(
            Anomaly::LostUpdate,
            ids,
            Some(group[0].0),
            format!(
                "{} all read key {} = {shown} and then wrote it: each should have seen the other's write",
                names.join(", "),
                key_str(txns, group[0].0)
            ),
        ));
    }
}

/// The version edges of every key, source by source; a source that makes a
/// key's versions cyclic is left out for that key and reported.
fn version_order(
    txns: &Txns,
    opts: &ElleOptions,
    ext_reads: &[(KeyId, Option<i64>, u32)],
    ext_writes: &[(KeyId, i64, u32)],
    found: &mut Vec<Found>,
) -> Vec<VersionEdge> {
    let mut edges: Vec<VersionEdge> = Vec::new();
    // Initial: nil before every value written or read.
    let values = ext_writes
        .iter()
        .map(|&(k, v, _)| (k, v))
        .chain(ext_reads.iter().filter_map(|&(k, v, _)| Some((k, v?))));
    for (key, to) in values {
        edges.push(VersionEdge {
            key,
            from: None,
            to,
            source: Source::Initial,
        });
    }
    let mut sources: Vec<Vec<VersionEdge>> = Vec::new();
    if opts.wfr_keys {
        let mut wfr = Vec::new();
        for (i, t) in txns.txns.iter().enumerate() {
            if t.outcome != Outcome::Ok {
                continue;
            }
            let (reads, writes) = externals(txns, i as u32);
            for (k, r) in reads {
                if let (Some(r), Some(&(_, w))) = (r, writes.iter().find(|w| w.0 == k))
                    && r != w
                {
                    wfr.push(VersionEdge {
                        key: k,
                        from: Some(r),
                        to: w,
                        source: Source::WritesFollowReads(i as u32),
                    });
                }
            }
        }
        sources.push(wfr);
    }
    if opts.sequential_keys {
        sources.push(process_versions(txns));
    }
    if opts.linearizable_keys {
        sources.push(realtime_versions(txns));
    }
    edges.sort_unstable_by_key(|e| (e.key, e.from, e.to));
    edges.dedup_by_key(|e| (e.key, e.from, e.to));
    for mut source in sources {
        source.sort_unstable_by_key(|e| (e.key, e.from, e.to));
        source.dedup_by_key(|e| (e.key, e.from, e.to));
        let mut merged = Vec::with_capacity(edges.len() + source.len());
        let mut s = 0;
        for group in edges.chunk_by(|a, b| a.key == b.key) {
            let key = group[0].key;
            while s < source.len() && source[s].key < key {
                merged.push(source[s]); // keys only this source knows
                s += 1;
            }
            let from_source: Vec<VersionEdge> = source[s..]
                .iter()
                .take_while(|e| e.key == key)
                .copied()
                .collect();
            s += from_source.len();
            let candidate: Vec<VersionEdge> = group.iter().chain(&from_source).copied().collect();
            match version_cycle(&candidate) {
                None => merged.extend(candidate),
                Some(cycle) => {
                    merged.extend_from_slice(group);
                    // The transactions whose observations close the cycle.
                    let mut txn: Vec<u32> = Vec::new();
                    for w in cycle.windows(2) {
                        let e = candidate
                            .iter()
                            .find(|e| e.from == w[0] && Some(e.to) == w[1]);
                        match e.map(|e| e.source) {
                            Some(Source::WritesFollowReads(t)) => txn.push(t),
                            Some(Source::Process(a, b) | Source::Realtime(a, b)) => {
                                txn.extend([a, b])
                            }
                            _ => {}
                        }
                    }
                    txn.sort_unstable();
                    txn.dedup();
                    found.push(Found::new(
                        Anomaly::CyclicVersions,
                        txn,
                        Some(key),
                        format!(
                            "the versions of key {} form a cycle ({}), so their order was left out",
                            key_str(txns, key),
                            cycle
                                .iter()
                                .map(|v| v.map_or("nil".into(), |v| v.to_string()))
                                .collect::<Vec<_>>()
                                .join(" < ")
                        ),
                    ));
                }
            }
        }
        merged.extend_from_slice(&source[s..]);
        merged.sort_unstable_by_key(|e| (e.key, e.from, e.to));
        merged.dedup_by_key(|e| (e.key, e.from, e.to));
        edges = merged;
    }
    edges
}

/// Version edges from process order (`sequential_keys`): the last version
/// of a key an ok transaction saw precedes the first its process's next ok
/// transaction on that key saw.
fn process_versions(txns: &Txns) -> Vec<VersionEdge> {
    let mut out = Vec::new();
    // (process, key) -> (txn, last version it saw)
    let mut last: HashMap<(u64, KeyId), (u32, Option<i64>)> = HashMap::new();
    for (i, t) in txns.txns.iter().enumerate() {
        if t.outcome != Outcome::Ok {
            continue;
        }
        for (k, first, final_v) in seen(txns, i as u32) {
            if let (Some(&(prev, pv)), Some(to)) = (last.get(&(t.process, k)), first)
                && pv != Some(to)
            {
                out.push(VersionEdge {
                    key: k,
                    from: pv,
                    to,
                    source: Source::Process(prev, i as u32),
                });
            }
            last.insert((t.process, k), (i as u32, final_v));
        }
    }
    out
}

/// The keys transaction `t` touched, each with the first version it saw
/// (read, or else written) and the last (its write, or else what it read).
fn seen(txns: &Txns, t: u32) -> Vec<(KeyId, Option<i64>, Option<i64>)> {
    let (reads, writes) = externals(txns, t);
    let mut keys: Vec<KeyId> = reads
        .iter()
        .map(|r| r.0)
        .chain(writes.iter().map(|w| w.0))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .map(|k| {
            let first = reads
                .iter()
                .find(|r| r.0 == k)
                .map(|r| r.1)
                .or_else(|| writes.iter().find(|w| w.0 == k).map(|w| Some(w.1)))
                .flatten();
            let last = writes
                .iter()
                .find(|w| w.0 == k)
                .map(|w| Some(w.1))
                .unwrap_or(first);
            (k, first, last)
        })
        .collect()
}

/// Version edges from real time (`linearizable_keys`): when an ok
/// transaction completed before another was invoked, the last version of a
/// key the first saw precedes the first version the second saw. Each
/// transaction is linked only to the frontier before it: a transaction
/// followed by another that began after it completed (and also completed
/// first) is implied through that one, so edges stay about the
/// concurrency per transaction instead of quadratic.
fn realtime_versions(txns: &Txns) -> Vec<VersionEdge> {
    struct Seen {
        txn: u32,
        invoke: u32,
        complete: u32,
        first: Option<i64>,
        last: Option<i64>,
    }
    let mut per_key: HashMap<KeyId, Vec<Seen>> = HashMap::new();
    for (i, t) in txns.txns.iter().enumerate() {
        let (Outcome::Ok, Some(complete)) = (t.outcome, t.complete_seq) else {
            continue;
        };
        for (k, first, last) in seen(txns, i as u32) {
            per_key.entry(k).or_default().push(Seen {
                txn: i as u32,
                invoke: t.invoke_seq,
                complete,
                first,
                last,
            });
        }
    }
    let mut out = Vec::new();
    for (key, mut list) in per_key {
        list.sort_unstable_by_key(|s| s.invoke);
        let mut by_complete: Vec<&Seen> = list.iter().collect();
        by_complete.sort_unstable_by_key(|s| s.complete);
        let mut done = by_complete.into_iter().peekable();
        // Completed before the current invocation and not implied by another.
        let mut frontier: Vec<&Seen> = Vec::new();
        let mut latest_invoke = 0;
        for later in &list {
            while let Some(earlier) = done.next_if(|e| e.complete < later.invoke) {
                latest_invoke = latest_invoke.max(earlier.invoke);
                frontier.push(earlier);
                frontier.retain(|f| f.complete > latest_invoke);
            }
            let Some(to) = later.first else { continue };
            for f in &frontier {
                if f.last != Some(to) && f.last.is_some() {
                    out.push(VersionEdge {
                        key,
                        from: f.last,
                        to,
                        source: Source::Realtime(f.txn, later.txn),
                    });
                }
            }
        }
    }
    out
}

/// A cycle among one key's version edges, as the values on it; None if acyclic.
fn version_cycle(edges: &[VersionEdge]) -> Option<Vec<Option<i64>>> {
    let mut nodes: Vec<Option<i64>> = edges.iter().flat_map(|e| [e.from, Some(e.to)]).collect();
    nodes.sort_unstable();
    nodes.dedup();
    let id = |v: Option<i64>| nodes.binary_search(&v).expect("every endpoint is a node");
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for e in edges {
        out[id(e.from)].push(id(Some(e.to)));
    }
    // Iterative DFS with colours; a grey target closes a cycle.
    let mut colour = vec![0u8; nodes.len()];
    let mut parent = vec![usize::MAX; nodes.len()];
    for root in 0..nodes.len() {
        if colour[root] != 0 {
            continue;
        }
        let mut stack = vec![(root, 0usize)];
        colour[root] = 1;
        while let Some(&mut (v, ref mut i)) = stack.last_mut() {
            if *i < out[v].len() {
                let w = out[v][*i];
                *i += 1;
                match colour[w] {
                    0 => {
                        colour[w] = 1;
                        parent[w] = v;
                        stack.push((w, 0));
                    }
                    1 => {
                        // The tree path w .. v, then the edge v -> w.
                        let mut cycle = vec![nodes[w]];
                        let mut x = v;
                        while x != w {
                            cycle.push(nodes[x]);
                            x = parent[x];
                        }
                        cycle[1..].reverse();
                        cycle.push(nodes[w]);
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                colour[v] = 2;
                stack.pop();
            }
        }
    }
    None
}
