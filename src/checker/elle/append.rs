//! List-append inference: version orders from reads, the ww / wr / rw
//! dependencies they prove, and the anomalies visible without cycles.
//!
//! Every read of a list is a prefix of the key's final value, so the longest
//! read of a key gives its version order (a read that is not a prefix of it
//! is `incompatible-order`). An append no read observed still came after
//! every observed element, so it follows the last one (this is how Elle
//! orders the unread append of `si-without-g-single`). Only `ok` reads are
//! used; `info` transactions are nodes whose appends may be observed (which
//! proves they committed), `fail` ones are not nodes, and reading their
//! appends is G1a.

use super::explain::{fmt_list, key_str, tname};
use super::graph::{GraphBuilder, NONE, RW, WR, WW};
use super::model::Anomaly;
use super::{ElleError, Found};
use crate::history::Outcome;
use crate::history::txn::{KeyId, Mop, Txns};

/// A version of a key: the initial empty list, or the list ending in an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Version {
    Init,
    After(i64),
}

#[derive(Debug, Clone, Copy)]
struct AppendRec {
    key: KeyId,
    value: i64,
    txn: u32,
    /// Position in the key's version order, or NONE if no read observed it.
    pos: u32,
    failed: bool,
    /// The transaction appended to the same key again afterwards.
    intermediate: bool,
    /// How many appends to the same key the transaction made before this one.
    seq: u32,
}

#[derive(Debug, Clone, Copy)]
struct ReadRec {
    key: KeyId,
    version: Version,
    txn: u32,
    len: u32,
}

/// What list-append inference keeps for explaining edges later.
pub struct AppendIndex {
    /// Per key, a range of `order`: the key's version order.
    order_start: Vec<u32>,
    order: Vec<i64>,
    /// Sorted by (key, value); a key's run starts at `append_start[key]`.
    appends: Vec<AppendRec>,
    append_start: Vec<u32>,
    /// Reads of ok transactions, sorted by (key, version); a key's run
    /// starts at `reader_start[key]`. (Searching within one key's short run
    /// stays in cache; a search over all of them would not.)
    readers: Vec<ReadRec>,
    reader_start: Vec<u32>,
}

/// Where each key's run starts in a vector sorted by key (one past the end last).
fn key_starts(keys: impl Iterator<Item = KeyId>, nkeys: usize) -> Vec<u32> {
    let mut start = vec![0u32; nkeys + 1];
    for k in keys {
        start[k as usize + 1] += 1;
    }
    for i in 0..nkeys {
        start[i + 1] += start[i];
    }
    start
}

/// A read's elements; a nil read in an ok transaction is the empty list.
fn read_list<'a>(txns: &'a Txns, m: &Mop) -> &'a [i64] {
    txns.read_values(m).unwrap_or(&[])
}

impl AppendIndex {
    fn order(&self, k: KeyId) -> &[i64] {
        &self.order
            [self.order_start[k as usize] as usize..self.order_start[k as usize + 1] as usize]
    }

    fn appends_of_key(&self, k: KeyId) -> &[AppendRec] {
        &self.appends
            [self.append_start[k as usize] as usize..self.append_start[k as usize + 1] as usize]
    }

    fn lookup_pos(&self, k: KeyId, v: i64) -> Option<usize> {
        let run = self.appends_of_key(k);
        let i = run.binary_search_by(|r| r.value.cmp(&v)).ok()?;
        Some(self.append_start[k as usize] as usize + i)
    }

    fn lookup(&self, k: KeyId, v: i64) -> Option<&AppendRec> {
        self.lookup_pos(k, v).map(|i| &self.appends[i])
    }

    /// The committed-or-unknown transaction that appended `v` to `k`.
    fn writer(&self, k: KeyId, v: i64) -> Option<u32> {
        self.lookup(k, v).filter(|r| !r.failed).map(|r| r.txn)
    }

    fn readers_of_key(&self, k: KeyId) -> &[ReadRec] {
        &self.readers
            [self.reader_start[k as usize] as usize..self.reader_start[k as usize + 1] as usize]
    }

    fn readers(&self, k: KeyId, v: Version) -> &[ReadRec] {
        let run = self.readers_of_key(k);
        let lo = run.partition_point(|r| r.version < v);
        let hi = lo + run[lo..].partition_point(|r| r.version <= v);
        &run[lo..hi]
    }

    /// The version an append came right after: its predecessor in the order,
    /// or for an unobserved append, the last observed element.
    fn previous(&self, r: &AppendRec) -> Version {
        let order = self.order(r.key);
        match r.pos {
            NONE => order.last().map_or(Version::Init, |&e| Version::After(e)),
            0 => Version::Init,
            p => Version::After(order[p as usize - 1]),
        }
    }

    /// The committed-or-unknown appender of `v` to `k` (for `weak`).
    pub(super) fn writer_of(&self, k: KeyId, v: i64) -> Option<u32> {
        self.writer(k, v)
    }

    /// Where the append of `v` to `k` stands in the key's version order:
    /// `NONE` if no read observed it; `None` if it failed or is unknown.
    pub(super) fn position(&self, k: KeyId, v: i64) -> Option<u32> {
        self.lookup(k, v).filter(|r| !r.failed).map(|r| r.pos)
    }

    /// The appender of the element at `pos` in `k`'s version order.
    pub(super) fn writer_at(&self, k: KeyId, pos: usize) -> Option<u32> {
        self.order(k).get(pos).and_then(|&v| self.writer(k, v))
    }

    /// Why a → b holds for relation `rel`, in words; None if it does not.
    pub fn explain(&self, txns: &Txns, a: u32, b: u32, rel: u8) -> Option<(KeyId, String)> {
        let (ta, tb) = (&txns.txns[a as usize], &txns.txns[b as usize]);
        let (na, nb) = (tname(ta), tname(tb));
        let appends_of = |t: u32| {
            txns.mops(&txns.txns[t as usize])
                .iter()
                .filter_map(move |m| match *m {
                    Mop::Append { key, value } => self.lookup(key, value),
                    _ => None,
                })
        };
        match rel {
            WW => appends_of(b).find_map(|r| match self.previous(r) {
                Version::After(p) if self.writer(r.key, p) == Some(a) => {
                    let k = key_str(txns, r.key);
                    let how = if r.pos == NONE {
                        format!(", which no read observed, so it came after the last observed element {p}")
                    } else {
                        String::new()
                    };
                    Some((r.key, format!(
                        "{nb} appended {} to key {k} after {na} appended {p}{how}, so {na} <ww {nb}",
                        r.value
                    )))
                }
                _ => None,
            }),
            WR => txns.mops(tb).iter().find_map(|m| {
                let Mop::Read { key, .. } = *m else { return None };
                let l = read_list(txns, m);
                let &last = l.last()?;
                (self.writer(key, last) == Some(a)).then(|| {
                    (key, format!(
                        "{nb} read key {} = {}, which ends with {na}'s append of {last}, so {na} <wr {nb}",
                        key_str(txns, key),
                        fmt_list(l)
                    ))
                })
            }),
            RW => appends_of(b).find_map(|r| {
                let prev = self.previous(r);
                if !self.readers(r.key, prev).iter().any(|x| x.txn == a) {
                    return None;
                }
                let k = key_str(txns, r.key);
                let seen = txns.mops(ta).iter().find_map(|m| match *m {
                    Mop::Read { key, .. } if key == r.key => {
                        let l = read_list(txns, m);
                        let v = l.last().map_or(Version::Init, |&e| Version::After(e));
                        (v == prev).then_some(l)
                    }
                    _ => None,
                })?;
                let text = match prev {
                    Version::Init => format!(
                        "{na} read key {k} = [] (its initial state) and did not see {nb}'s append of {}, so {na} <rw {nb}",
                        r.value
                    ),
                    Version::After(_) => format!(
                        "{na} read key {k} = {} and did not see {nb}'s append of {}, which came later, so {na} <rw {nb}",
                        fmt_list(seen),
                        r.value
                    ),
                };
                Some((r.key, text))
            }),
            _ => None,
        }
    }
}

/// Infers the version orders, adds ww/wr/rw edges to `g`, and reports the
/// anomalies found without cycles.
pub fn infer(
    txns: &Txns,
    g: &mut GraphBuilder,
    found: &mut Vec<Found>,
) -> Result<AppendIndex, ElleError> {
    let nkeys = txns.key_count();
    let appends = collect_appends(txns)?;

    // The longest ok read of each key: (txn, mop) of it.
    let mut longest: Vec<Option<(u32, &Mop)>> = vec![None; nkeys];
    let mut readers = Vec::new();
    for (i, t) in txns.txns.iter().enumerate() {
        if t.outcome != Outcome::Ok {
            continue;
        }
        for m in txns.mops(t) {
            if let Mop::Read { key, .. } = *m {
                let l = read_list(txns, m);
                readers.push(ReadRec {
                    key,
                    version: l.last().map_or(Version::Init, |&e| Version::After(e)),
                    txn: i as u32,
                    len: l.len() as u32,
                });
                let best = &mut longest[key as usize];
                if best.is_none_or(|(_, bm)| read_list(txns, bm).len() < l.len()) {
                    *best = Some((i as u32, m));
                }
            }
        }
    }
    readers.sort_unstable_by_key(|r| (r.key, r.version, r.txn));

    // Version orders: the distinct elements of the longest read.
    let mut order_start = Vec::with_capacity(nkeys + 1);
    let mut order = Vec::new();
    let mut sorted: Vec<i64> = Vec::new();
    for (k, best) in longest.iter().enumerate() {
        order_start.push(order.len() as u32);
        let Some((t, m)) = best else { continue };
        let l = read_list(txns, m);
        sorted.clear();
        sorted.extend_from_slice(l);
        sorted.sort_unstable();
        let mut dups: Vec<i64> = sorted
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .collect();
        dups.dedup();
        if dups.is_empty() {
            order.extend_from_slice(l);
        } else {
            // Rare: keep each element's first occurrence.
            let mut seen = std::collections::HashSet::new();
            order.extend(l.iter().copied().filter(|&e| seen.insert(e)));
        }
        if !dups.is_empty() {
            found.push(Found::new(
                Anomaly::DuplicateElements,
                vec![*t],
                Some(k as KeyId),
                format!(
                    "{} read key {} = {}, in which {} appear more than once",
                    tname(&txns.txns[*t as usize]),
                    key_str(txns, k as KeyId),
                    fmt_list(l),
                    fmt_list(&dups)
                ),
            ));
        }
    }
    order_start.push(order.len() as u32);

    let mut index = AppendIndex {
        order_start,
        order,
        append_start: key_starts(appends.iter().map(|r| r.key), nkeys),
        appends,
        reader_start: key_starts(readers.iter().map(|r| r.key), nkeys),
        readers,
    };
    let incompatible = incompatible_orders(txns, &longest, found);
    observed_positions(txns, &mut index, &longest, &incompatible, found);
    intermediate_reads(txns, &index, found);
    appends_out_of_order(txns, &index, &longest, &incompatible, found);
    internal_reads(txns, found);
    dirty_updates(txns, &index, found);
    lost_updates(txns, found);
    add_edges(txns, &index, g);
    Ok(index)
}

/// Every append, with outcome and intermediate flags, sorted by (key, value);
/// an element appended twice is bad input (appends must be unique).
fn collect_appends(txns: &Txns) -> Result<Vec<AppendRec>, ElleError> {
    let mut out = Vec::new();
    for (i, t) in txns.txns.iter().enumerate() {
        let mops = txns.mops(t);
        for (j, m) in mops.iter().enumerate() {
            if let Mop::Append { key, value } = *m {
                let same_key = |n: &Mop| matches!(*n, Mop::Append { key: k2, .. } if k2 == key);
                let later = mops[j + 1..].iter().any(same_key);
                out.push(AppendRec {
                    key,
                    value,
                    txn: i as u32,
                    pos: NONE,
                    failed: t.outcome == Outcome::Fail,
                    intermediate: later,
                    seq: mops[..j].iter().filter(|n| same_key(n)).count() as u32,
                });
            }
        }
    }
    out.sort_unstable_by_key(|r| (r.key, r.value, r.txn));
    if let Some(w) = out
        .windows(2)
        .find(|w| (w[0].key, w[0].value) == (w[1].key, w[1].value))
    {
        return Err(ElleError::DuplicateWrite {
            key: txns.key_name(w[0].key).to_string(),
            value: w[0].value,
            first: txns.txns[w[0].txn as usize].invoke_index,
            second: txns.txns[w[1].txn as usize].invoke_index,
        });
    }
    Ok(out)
}

/// Reads that are not a prefix of their key's longest read, once per key.
/// Returns which keys had one.
fn incompatible_orders(
    txns: &Txns,
    longest: &[Option<(u32, &Mop)>],
    found: &mut Vec<Found>,
) -> Vec<bool> {
    let mut bad = vec![false; longest.len()];
    for (i, t) in txns.txns.iter().enumerate() {
        if t.outcome != Outcome::Ok {
            continue;
        }
        for m in txns.mops(t) {
            let Mop::Read { key, .. } = *m else { continue };
            let Some((lt, lm)) = longest[key as usize] else {
                continue;
            };
            let (l, full) = (read_list(txns, m), read_list(txns, lm));
            if full[..l.len()] != *l && !bad[key as usize] {
                bad[key as usize] = true;
                found.push(Found::new(
                    Anomaly::IncompatibleOrder,
                    vec![i as u32, lt],
                    Some(key),
                    format!(
                        "{} read key {} = {} but {} read {}: the first is not a prefix of the second, so no single order of appends explains both",
                        tname(t),
                        key_str(txns, key),
                        fmt_list(l),
                        tname(&txns.txns[lt as usize]),
                        fmt_list(full)
                    ),
                ));
            }
        }
    }
    bad
}

/// Records where each observed element sits in its version order, and
/// reports observed elements that a failed transaction appended (G1a) or
/// that nobody appended (garbage read). Every read is a prefix of the
/// longest, so checking the longest suffices, except for keys whose reads
/// disagree: there every read is checked.
fn observed_positions(
    txns: &Txns,
    index: &mut AppendIndex,
    longest: &[Option<(u32, &Mop)>],
    incompatible: &[bool],
    found: &mut Vec<Found>,
) {
    for k in 0..longest.len() as KeyId {
        let (lo, hi) = (
            index.order_start[k as usize],
            index.order_start[k as usize + 1],
        );
        for pos in lo..hi {
            let e = index.order[pos as usize];
            if let Some(i) = index.lookup_pos(k, e) {
                index.appends[i].pos = pos - lo;
            }
        }
    }
    let index = &*index;
    let mut reported = std::collections::HashSet::new();
    let mut check = |reader: u32, k: KeyId, l: &[i64], e: i64| {
        let bad = index.lookup(k, e).is_none_or(|w| w.failed);
        if !bad || !reported.insert((k, e)) {
            return;
        }
        // Name the first transaction that read it.
        let p = l.iter().position(|&x| x == e).unwrap_or(0) as u32;
        let first = if incompatible[k as usize] {
            reader
        } else {
            index
                .readers_of_key(k)
                .iter()
                .filter(|r| r.len > p)
                .map(|r| r.txn)
                .min()
                .unwrap_or(reader)
        };
        let first_list = txns
            .mops(&txns.txns[first as usize])
            .iter()
            .find(|m| matches!(**m, Mop::Read { key, .. } if key == k && read_list(txns, m).get(p as usize) == Some(&e)))
            .map_or(l, |m| read_list(txns, m));
        let (rn, kn, ls) = (
            tname(&txns.txns[first as usize]),
            key_str(txns, k),
            fmt_list(first_list),
        );
        match index.lookup(k, e) {
            None => found.push(Found::new(
                Anomaly::GarbageRead,
                vec![first],
                Some(k),
                format!("{rn} read key {kn} = {ls}, but no transaction appended {e} to it"),
            )),
            Some(w) => found.push(Found::new(
                Anomaly::G1a,
                vec![first, w.txn],
                Some(k),
                format!(
                    "{rn} read key {kn} = {ls}, which includes {e}, appended by {}, which failed (aborted read)",
                    tname(&txns.txns[w.txn as usize])
                ),
            )),
        }
    };
    for (k, best) in longest.iter().enumerate() {
        if let Some((t, m)) = best {
            let l = read_list(txns, m);
            for &e in l {
                check(*t, k as KeyId, l, e);
            }
        }
    }
    for (i, t) in txns.txns.iter().enumerate() {
        if t.outcome != Outcome::Ok {
            continue;
        }
        for m in txns.mops(t) {
            match *m {
                Mop::Read { key, .. } if incompatible[key as usize] => {
                    let l = read_list(txns, m);
                    for &e in l {
                        check(i as u32, key, l, e);
                    }
                }
                _ => {}
            }
        }
    }
}

/// G1b: a read that ends in an element its writer appended over later.
fn intermediate_reads(txns: &Txns, index: &AppendIndex, found: &mut Vec<Found>) {
    for (i, t) in txns.txns.iter().enumerate() {
        if t.outcome != Outcome::Ok {
            continue;
        }
        for m in txns.mops(t) {
            let Mop::Read { key, .. } = *m else { continue };
            let l = read_list(txns, m);
            let Some(&last) = l.last() else { continue };
            let Some(w) = index.lookup(key, last) else {
                continue;
            };
            if w.intermediate && w.txn != i as u32 && !w.failed {
                let wt = &txns.txns[w.txn as usize];
                found.push(Found::new(
                    Anomaly::G1b,
                    vec![i as u32, w.txn],
                    Some(key),
                    format!(
                        "{} read key {} = {}, ending in {last}, but {} appended more to key {} after {last}: an intermediate state (intermediate read); {} = {}",
                        tname(t),
                        key_str(txns, key),
                        fmt_list(l),
                        tname(wt),
                        key_str(txns, key),
                        tname(wt),
                        txns.mops_json(wt)
                    ),
                ));
            }
        }
    }
}

/// Appends out of order: a read in which a transaction's appends to the key
/// are not next to each other in the order it made them (reversed, another
/// element between them, or one missing between them). In any serial order
/// a transaction's appends to a key land together and in its order, so in
/// every read each element it appended after its first sits right after its
/// previous one, and each it appended before its last sits right before its
/// next one (unless the read ends there). Every read is a prefix of its
/// key's longest read, which suffices then; on keys with incompatible reads
/// every read is checked. Once per key and appending transaction; appends
/// of failed transactions are G1a's.
fn appends_out_of_order(
    txns: &Txns,
    index: &AppendIndex,
    longest: &[Option<(u32, &Mop)>],
    incompatible: &[bool],
    found: &mut Vec<Found>,
) {
    let mut reported = std::collections::HashSet::new();
    let mut check = |reader: u32, k: KeyId, l: &[i64]| {
        let rec = |p: usize| index.lookup(k, l[p]).filter(|w| !w.failed);
        for p in 0..l.len() {
            let Some(w) = rec(p) else { continue };
            let next_of = |a: &AppendRec, b: Option<&AppendRec>| {
                b.is_some_and(|b| b.txn == a.txn && b.seq == a.seq + 1)
            };
            let after_previous =
                w.seq == 0 || (p > 0 && rec(p - 1).is_some_and(|v| next_of(v, Some(w))));
            let before_next = !w.intermediate || p + 1 == l.len() || next_of(w, rec(p + 1));
            if (after_previous && before_next) || !reported.insert((k, w.txn)) {
                continue;
            }
            let wt = &txns.txns[w.txn as usize];
            let own: Vec<i64> = txns
                .mops(wt)
                .iter()
                .filter_map(|m| match *m {
                    Mop::Append { key, value } if key == k => Some(value),
                    _ => None,
                })
                .collect();
            let mut witnesses = vec![reader, w.txn];
            witnesses.dedup();
            found.push(Found::new(
                Anomaly::AppendsOutOfOrder,
                witnesses,
                Some(k),
                format!(
                    "{} read key {} = {}, but {} appended {} to key {} in that order, which every serial order shows next to each other and in that order: its appends seen out of order; {} = {}",
                    tname(&txns.txns[reader as usize]),
                    key_str(txns, k),
                    fmt_list(l),
                    tname(wt),
                    own.iter().map(i64::to_string).collect::<Vec<_>>().join(" then "),
                    key_str(txns, k),
                    tname(wt),
                    txns.mops_json(wt)
                ),
            ));
        }
    };
    for (k, best) in longest.iter().enumerate() {
        if let Some((t, m)) = best
            && !incompatible[k]
        {
            check(*t, k as KeyId, read_list(txns, m));
        }
    }
    for (i, t) in txns.txns.iter().enumerate() {
        if t.outcome != Outcome::Ok {
            continue;
        }
        for m in txns.mops(t) {
            if let Mop::Read { key, .. } = *m
                && incompatible[key as usize]
            {
                check(i as u32, key, read_list(txns, m));
            }
        }
    }
}

/// Internal consistency (a read disagrees with the transaction's own earlier
/// reads and appends) and future reads (a read of an element the
/// transaction appends only later). Transactions are short: each micro-op
/// looks back over the earlier ones, without allocating.
fn internal_reads(txns: &Txns, found: &mut Vec<Found>) {
    for (i, t) in txns.txns.iter().enumerate() {
        if t.outcome != Outcome::Ok {
            continue;
        }
        let mops = txns.mops(t);
        for (j, m) in mops.iter().enumerate() {
            let key = m.key();
            let same_key_reads = || {
                mops[..j]
                    .iter()
                    .enumerate()
                    .filter(move |(_, r)| matches!(**r, Mop::Read { key: rk, .. } if rk == key))
            };
            match *m {
                Mop::Append { value, .. } => {
                    if let Some((_, r)) =
                        same_key_reads().find(|(_, r)| read_list(txns, r).contains(&value))
                    {
                        found.push(Found::new(
                            Anomaly::FutureRead,
                            vec![i as u32],
                            Some(key),
                            format!(
                                "{} read key {} = {}, which includes {value}, before appending {value} itself",
                                tname(t),
                                key_str(txns, key),
                                fmt_list(read_list(txns, r))
                            ),
                        ));
                    }
                }
                Mop::Read { .. } => {
                    // What the earlier micro-ops say: the last read of the
                    // key (if any) followed by the appends since.
                    let last_read = same_key_reads().next_back();
                    let from = last_read.map_or(0, |(r, _)| r + 1);
                    let appended = mops[from..j].iter().filter_map(|a| match *a {
                        Mop::Append { key: ak, value } if ak == key => Some(value),
                        _ => None,
                    });
                    let n = appended.clone().count();
                    let base = last_read.map(|(_, r)| read_list(txns, r));
                    if base.is_none() && n == 0 {
                        continue;
                    }
                    let l = read_list(txns, m);
                    let prefix = base.map_or(0, <[i64]>::len);
                    let ok = match base {
                        Some(b) => l.len() == prefix + n && l[..prefix] == *b,
                        None => l.len() >= n,
                    } && l[l.len() - n..].iter().copied().eq(appended.clone());
                    if !ok {
                        let suffix: Vec<i64> = appended.collect();
                        let expected = match base {
                            Some(b) => fmt_list(&[b, &suffix[..]].concat()),
                            None => format!("a list ending in {}", fmt_list(&suffix)),
                        };
                        found.push(Found::new(
                            Anomaly::Internal,
                            vec![i as u32],
                            Some(key),
                            format!(
                                "{} read key {} = {}, but its own earlier micro-ops imply {expected}",
                                tname(t),
                                key_str(txns, key),
                                fmt_list(l)
                            ),
                        ));
                    }
                }
                Mop::Write { .. } => {}
            }
        }
    }
}

/// Dirty update: in a key's version order, a committed append follows a
/// failed one (only unknown ones between).
fn dirty_updates(txns: &Txns, index: &AppendIndex, found: &mut Vec<Found>) {
    for k in 0..txns.key_count() as KeyId {
        let mut last: (Outcome, Option<u32>) = (Outcome::Ok, None);
        let mut vs: Vec<i64> = Vec::new();
        for &e in index.order(k) {
            let Some(w) = index.lookup(k, e) else {
                continue;
            };
            let out = txns.txns[w.txn as usize].outcome;
            match (last.0, out) {
                (Outcome::Fail, Outcome::Ok) => {
                    vs.push(e);
                    let f = last.1.expect("a failed writer was recorded");
                    found.push(Found::new(
                        Anomaly::DirtyUpdate,
                        vec![f, w.txn],
                        Some(k),
                        format!(
                            "key {}: {} failed after appending {}, yet {} committed an append on top of it (versions {})",
                            key_str(txns, k),
                            tname(&txns.txns[f as usize]),
                            vs[0],
                            tname(&txns.txns[w.txn as usize]),
                            fmt_list(&vs)
                        ),
                    ));
                    last = (out, Some(w.txn));
                    vs = vec![e];
                }
                (_, Outcome::Unknown) | (Outcome::Fail, Outcome::Fail) => vs.push(e),
                _ => {
                    last = (out, Some(w.txn));
                    vs = vec![e];
                }
            }
        }
    }
}

/// Lost update: two committed transactions read the same version of a key
/// and then both appended to it.
fn lost_updates(txns: &Txns, found: &mut Vec<Found>) {
    // (key, read length, hash of the read, txn)
    let mut rw: Vec<(KeyId, u32, u64, u32)> = Vec::new();
    for (i, t) in txns.txns.iter().enumerate() {
        if t.outcome != Outcome::Ok {
            continue;
        }
        let mops = txns.mops(t);
        let mut done: Vec<KeyId> = Vec::new();
        for (j, m) in mops.iter().enumerate() {
            let Mop::Append { key, .. } = *m else {
                continue;
            };
            if done.contains(&key) {
                continue;
            }
            done.push(key);
            let first_read = mops[..j]
                .iter()
                .find(|r| matches!(**r, Mop::Read { key: rk, .. } if rk == key));
            if let Some(r) = first_read {
                let l = read_list(txns, r);
                rw.push((key, l.len() as u32, hash_list(l), i as u32));
            }
        }
    }
    rw.sort_unstable();
    for group in rw.chunk_by(|a, b| (a.0, a.1, a.2) == (b.0, b.1, b.2)) {
        if group.len() < 2 {
            continue;
        }
        let ids: Vec<u32> = group.iter().map(|g| g.3).collect();
        let names: Vec<String> = ids.iter().map(|&t| tname(&txns.txns[t as usize])).collect();
        let t0 = &txns.txns[ids[0] as usize];
        let read = txns
            .mops(t0)
            .iter()
            .find(|m| matches!(**m, Mop::Read { key, .. } if key == group[0].0))
            .map_or(&[][..], |m| read_list(txns, m));
        found.push(Found::new(
            Anomaly::LostUpdate,
            ids,
            Some(group[0].0),
            format!(
                "{} all read key {} = {} and then appended to it: each should have seen the other's append",
                names.join(", "),
                key_str(txns, group[0].0),
                fmt_list(read)
            ),
        ));
    }
}

fn hash_list(l: &[i64]) -> u64 {
    // FNV-1a over the elements; collisions only merge lost-update groups
    // of equal length and key, which the explanation then shows.
    l.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &e| {
        (h ^ e as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// ww, wr and rw edges from the version orders.
fn add_edges(txns: &Txns, index: &AppendIndex, g: &mut GraphBuilder) {
    for r in &index.appends {
        if r.failed {
            continue;
        }
        let prev = index.previous(r);
        if let Version::After(p) = prev
            && let Some(w) = index.writer(r.key, p)
        {
            g.link(w, r.txn, WW);
        }
        for reader in index.readers(r.key, prev) {
            g.link(reader.txn, r.txn, RW);
        }
    }
    for (i, t) in txns.txns.iter().enumerate() {
        if t.outcome != Outcome::Ok {
            continue;
        }
        for m in txns.mops(t) {
            if let Mop::Read { key, .. } = *m
                && let Some(&last) = read_list(txns, m).last()
                && let Some(w) = index.writer(key, last)
            {
                g.link(w, i as u32, WR);
            }
        }
    }
}
