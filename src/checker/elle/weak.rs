//! Read atomicity (RA) and transactional causal consistency (TCC), checked
//! completely on histories with unique writes, after Plume (Liu et al.,
//! "Plume: Efficient and Complete Black-Box Checking of Weak Isolation
//! Levels", OOPSLA 2024), whose levels are Biswas and Enea's axioms ("On the
//! Complexity of Checking Transactional Consistency", OOPSLA 2019).
//!
//! **The definition implemented.** Transactions are the ok ones and the info
//! ones some read observed; `so` is the session order (the checker's process
//! order: each process's ok transactions in invocation order, an info
//! transaction after its process's earlier ok ones); `wr` relates
//! a writer to a transaction whose external read (one before the
//! transaction itself writes the key) returned its write: for rw-register
//! the one writer of the value read, for list-append *every* transaction
//! whose element is in the list (a list shows all of them). A history is
//! RA (resp. TCC) iff some total commit order `co` of its transactions
//! contains `so`, `wr` and each key's version order (for list-append: every
//! read is a prefix of the key's appends in `co` order; for rw-register the
//! version order the inference proved), and satisfies the axiom: whenever
//! `t3` reads key `x` from `t2` (or reads the initial version) and `t1 ≠ t2`
//! writes `x` with `t1 R t3`, then `t1 <co t2` (and no such `t1` exists for
//! an initial read), where `R = so ∪ wr` for RA and `R = (so ∪ wr)+` for TCC.
//! (Plume's TAPs, e.g. fractured and non-monotonic reads, are the ways this
//! fails; the anomalies without cycles it forbids, aborted, intermediate,
//! future and thin-air reads and internal ones, are reported by the
//! inference and prohibited through the model hierarchy.)
//!
//! The commit order contains `wr`, so a transaction's writes follow what it
//! read whether or not `wfr_keys` lets the cycle search assume it.
//!
//! Because the premise `R` does not depend on `co`, one saturation suffices
//! (Biswas and Enea): the history is RA / TCC iff `H ∪ F` is acyclic, where
//! `H = so ∪ wr ∪ ww` (Elle's edges) and `F` holds the forced edges
//! `t1 → t2` above. A cycle of `H` alone is a G0 / G1c(-process) cycle the
//! cycle search reports; this module reports the cycles that need `F`:
//! `fractured-read` when `H ∪ F_RA` has one, else `causality-violation`.
//!
//! **How, in near-linear time.** `F` need not hold every pair: of writers
//! of `x` visible to `t3` that are totally ordered by `(so ∪ wr)+` (a
//! *chain*), the last suffices (the earlier ones reach it in `H`). TCC
//! visibility is computed with vector clocks over chains, in topological
//! order of `so ∪ wr` (list-append reads observe a prefix through shared
//! *prefix nodes*, one per distinct read length of a key, so `wr` stays
//! linear); then per read and per chain a binary search finds the last
//! visible writer. Chains are built greedily during that pass, a writer
//! extending a chain whose end it sees: unlike sessions, which end with
//! every `info` result, they number about the writers seen concurrently.
//! Clocks are built when a node leaves Kahn's queue (in history order) and
//! dropped when its last successor has been built; they are stored in
//! blocks shared between clocks, so a join skips the chains of finished
//! sessions by pointer. RA's direct premise is
//! `t3`'s session predecessor writers and its `wr` sources (for
//! list-append, of the writers in one read's prefix that also wrote `x`,
//! the one latest in `x`'s order, from a table per pair of keys). The cycle
//! check is Kahn's algorithm; only when it fails are the components found
//! (graph.rs's iterative Tarjan) and a shortest cycle explained per
//! component. The live clocks take up to chains × live nodes words: beyond
//! [`MAX_CLOCK_WORDS`] the TCC part stops and is reported incomplete.
//!
//! Not here: which models forbid the anomalies (`model`), the inference of
//! `wr` and `ww` (`append`, `register`).

use super::explain::{self, EdgeText, key_str, tname};
use super::graph::{self, ARB, Graph, GraphBuilder, NONE, PROCESS, WR, WW};
use super::model::Anomaly;
use super::{Found, Inference};
use crate::history::Outcome;
use crate::history::txn::{KeyId, Mop, Txns};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::rc::Rc;

/// Set with [`ARB`] when the premise is one `so` or `wr` step (RA's).
const ARB_RA: u8 = 128;
/// The edges of `H`.
const H: u8 = WW | WR | PROCESS;

/// The most vector-clock words (chains × live clocks) the TCC check holds
/// at once: 2^26 words are 256 MiB. Beyond, TCC is reported incomplete.
pub const MAX_CLOCK_WORDS: usize = 1 << 26;

/// Nodes a causal path search in an explanation may visit.
const PATH_SEARCH_MAX: usize = 200_000;

/// Where an external read's version came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src {
    Init,
    /// A graph node.
    Node(u32),
}

/// An external read of an ok transaction.
#[derive(Debug, Clone, Copy)]
struct ExtRead {
    key: KeyId,
    src: Src,
    /// list-append: how many elements the read showed.
    len: u32,
}

/// Why a forced edge t1 → t2 (or t1 → initial) holds.
#[derive(Debug, Clone, Copy)]
struct Reason {
    t1: u32,
    /// NONE for the initial version.
    t2: u32,
    t3: u32,
    key: KeyId,
    premise: Premise,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Premise {
    /// t1 precedes t3 in t3's session.
    Session,
    /// t3 read from t1.
    Read,
    /// t1 is causally before t3, not by one step.
    Causal,
}

/// What the checks below share.
struct Ctx<'a> {
    txns: &'a Txns,
    g: &'a Graph,
    inf: &'a Inference,
    n: u32,
    /// Per graph node: its external reads (ok nodes only).
    read_start: Vec<u32>,
    reads: Vec<ExtRead>,
    /// Per graph node: the keys it writes, sorted.
    write_start: Vec<u32>,
    writes: Vec<KeyId>,
    /// Session chain and 1-based position; NONE for nodes no one can see.
    chain: Vec<u32>,
    pos: Vec<u32>,
    /// (key, chain, pos, node) for every node with a chain, sorted.
    writers: Vec<(KeyId, u32, u32, u32)>,
    /// `so ∪ wr` as CSR over graph nodes then prefix nodes.
    hb_start: Vec<u32>,
    hb: Vec<u32>,
}

impl Ctx<'_> {
    fn reads(&self, t: u32) -> &[ExtRead] {
        &self.reads[self.read_start[t as usize] as usize..self.read_start[t as usize + 1] as usize]
    }

    fn writes(&self, t: u32, k: KeyId) -> bool {
        self.writes
            [self.write_start[t as usize] as usize..self.write_start[t as usize + 1] as usize]
            .binary_search(&k)
            .is_ok()
    }

    fn is_ok(&self, node: u32) -> bool {
        self.txn(node).outcome == Outcome::Ok
    }

    fn txn(&self, node: u32) -> &crate::history::txn::Txn {
        graph::node_txn(self.g, self.txns, node)
    }

    /// The writers of `k` in `chain`, as (pos, node), by position.
    fn chain_writers(&self, k: KeyId, chain: u32) -> &[(KeyId, u32, u32, u32)] {
        let lo = self.writers.partition_point(|w| (w.0, w.1) < (k, chain));
        let hi = lo + self.writers[lo..].partition_point(|w| (w.0, w.1) <= (k, chain));
        &self.writers[lo..hi]
    }

    /// The last writer of `k` in `chain` at position ≤ `bound`.
    fn last_writer(&self, k: KeyId, chain: u32, bound: u32) -> Option<u32> {
        let run = self.chain_writers(k, chain);
        let i = run.partition_point(|w| w.2 <= bound);
        (i > 0).then(|| run[i - 1].3)
    }

    fn hb_out(&self, u: u32) -> &[u32] {
        &self.hb[self.hb_start[u as usize] as usize..self.hb_start[u as usize + 1] as usize]
    }
}

/// Checks RA and TCC over the graph `g` (which must include process
/// order), pushing one case per violating component (and per read of an
/// initial version that a visible write contradicts). Returns the anomalies
/// whose check could not be completed.
pub fn check(
    txns: &Txns,
    g: &Graph,
    inf: &Inference,
    max_cases: usize,
    found: &mut Vec<Found>,
) -> BTreeSet<Anomaly> {
    let mut incomplete = BTreeSet::new();
    let cx = context(txns, g, inf);
    let mut reasons: Vec<Reason> = Vec::new();
    ra_reasons(&cx, &mut reasons);
    if !tcc_reasons(&cx, &mut reasons) {
        incomplete.insert(Anomaly::CausalityViolation);
    }
    // The reads of an initial version contradicted by a visible write: one
    // case per read, by its strongest premise.
    let mut inits: Vec<Reason> = reasons.iter().filter(|r| r.t2 == NONE).copied().collect();
    inits.sort_unstable_by_key(|r| (r.t3, r.key, r.premise));
    inits.dedup_by_key(|r| (r.t3, r.key));
    let mut init_cases = [0usize; 2];
    for r in &inits {
        let anomaly = anomaly_of(r.premise);
        let n = &mut init_cases[(anomaly == Anomaly::CausalityViolation) as usize];
        *n += 1;
        let text = if *n <= max_cases {
            reason_text(&cx, r)
        } else {
            String::new()
        };
        let txns_in = vec![g.node_txn[r.t1 as usize], g.node_txn[r.t3 as usize]];
        found.push(Found::new(anomaly, txns_in, Some(r.key), text + "."));
    }
    reasons.retain(|r| r.t2 != NONE);
    reasons.sort_unstable_by_key(|r| (r.t1, r.t2, r.premise == Premise::Causal));
    reasons.dedup_by_key(|r| (r.t1, r.t2));
    let g2 = saturated(&cx, &reasons);
    if !acyclic(&g2, cx.n, H | ARB) {
        cycles(&cx, &g2, &reasons, max_cases, found);
    }
    incomplete
}

fn anomaly_of(p: Premise) -> Anomaly {
    match p {
        Premise::Causal => Anomaly::CausalityViolation,
        _ => Anomaly::FracturedRead,
    }
}

/// Reads, writes, session chains and the `so ∪ wr` graph.
fn context<'a>(txns: &'a Txns, g: &'a Graph, inf: &'a Inference) -> Ctx<'a> {
    let n = g.txn_nodes;
    let mut read_start = Vec::with_capacity(n as usize + 1);
    let mut reads = Vec::new();
    let mut write_start = Vec::with_capacity(n as usize + 1);
    let mut writes = Vec::new();
    for node in 0..n {
        let ti = g.node_txn[node as usize];
        let t = &txns.txns[ti as usize];
        read_start.push(reads.len() as u32);
        write_start.push(writes.len() as u32);
        let from = |w: Option<u32>| w.map(|w| g.txn_node[w as usize]).filter(|&w| w != NONE);
        match inf {
            Inference::Register(index) => {
                let (ext_reads, ext_writes) = super::register::externals(txns, ti);
                for (key, v) in ext_reads {
                    let src = match v {
                        None => Some(Src::Init),
                        Some(v) => from(index.writer_of(key, v)).map(Src::Node),
                    };
                    // (Reading one's own later write is a future read.)
                    if let Some(src) = src.filter(|&s| s != Src::Node(node)) {
                        reads.push(ExtRead { key, src, len: 0 });
                    }
                }
                writes.extend(ext_writes.iter().map(|w| w.0));
            }
            Inference::Append(index) => {
                let mut appended: Vec<KeyId> = Vec::new();
                let mut read_keys: Vec<KeyId> = Vec::new();
                for m in txns.mops(t) {
                    match *m {
                        Mop::Append { key, .. } => appended.push(key),
                        Mop::Read { key, .. } if t.outcome == Outcome::Ok => {
                            if appended.contains(&key) || read_keys.contains(&key) {
                                continue;
                            }
                            read_keys.push(key);
                            let l = txns.read_values(m).unwrap_or(&[]);
                            let src = match l.last() {
                                None => Some(Src::Init),
                                Some(&v) => from(index.writer_of(key, v)).map(Src::Node),
                            };
                            if let Some(src) = src.filter(|&s| s != Src::Node(node)) {
                                reads.push(ExtRead {
                                    key,
                                    src,
                                    len: l.len() as u32,
                                });
                            }
                        }
                        _ => {}
                    }
                }
                writes.extend_from_slice(&appended);
            }
        }
        let start = *write_start.last().unwrap_or(&0) as usize;
        writes[start..].sort_unstable();
        let mut mine = writes.split_off(start);
        mine.dedup();
        writes.extend(mine);
    }
    read_start.push(reads.len() as u32);
    write_start.push(writes.len() as u32);

    // so ∪ wr: process edges and wr edges from the graph (rw-register), or
    // prefix nodes (list-append).
    let mut edges: Vec<(u32, u32)> = Vec::new();
    for a in 0..n {
        for (b, bits) in g.out(a) {
            if b >= n {
                continue;
            }
            let wr = bits & WR != 0 && matches!(inf, Inference::Register(_));
            if bits & PROCESS != 0 || wr {
                edges.push((a, b));
            }
        }
    }
    let mut nodes = n;
    if let Inference::Append(index) = inf {
        let mut by_len: Vec<(KeyId, u32, u32)> = Vec::new();
        for t in 0..n {
            let (lo, hi) = (read_start[t as usize], read_start[t as usize + 1]);
            for r in &reads[lo as usize..hi as usize] {
                if r.len > 0 {
                    by_len.push((r.key, r.len, t));
                }
            }
        }
        by_len.sort_unstable();
        let mut prev: Option<(KeyId, u32, u32)> = None; // (key, len, node)
        for run in by_len.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            let (key, len) = (run[0].0, run[0].1);
            let p = nodes;
            nodes += 1;
            let from_len = match prev {
                Some((k, l, pn)) if k == key => {
                    edges.push((pn, p));
                    l
                }
                _ => 0,
            };
            for pos in from_len..len {
                if let Some(w) = index.writer_at(key, pos as usize) {
                    let w = g.txn_node[w as usize];
                    if w != NONE {
                        edges.push((w, p));
                    }
                }
            }
            edges.extend(run.iter().map(|&(_, _, t)| (p, t)));
            prev = Some((key, len, p));
        }
    }
    let (hb_start, hb) = csr(nodes as usize, &mut edges);

    // Session chains: each process's ok transactions; an info transaction
    // someone observed is a chain of its own.
    let ok = |node: u32| graph::node_txn(g, txns, node).outcome == Outcome::Ok;
    let mut next = vec![NONE; n as usize];
    let mut has_prev = vec![false; n as usize];
    for a in 0..n {
        if !ok(a) {
            continue;
        }
        for (b, bits) in g.out(a) {
            if bits & PROCESS != 0 && b < n && ok(b) {
                next[a as usize] = b;
                has_prev[b as usize] = true;
            }
        }
    }
    let mut chain = vec![NONE; n as usize];
    let mut pos = vec![0u32; n as usize];
    let mut chains = 0u32;
    for a in 0..n {
        if ok(a) && !has_prev[a as usize] {
            let mut u = a;
            let mut p = 1;
            // Bounded: each node is visited once (process order is a path).
            while u != NONE && chain[u as usize] == NONE {
                chain[u as usize] = chains;
                pos[u as usize] = p;
                p += 1;
                u = next[u as usize];
            }
            chains += 1;
        } else if !ok(a) && hb_start[a as usize] != hb_start[a as usize + 1] {
            chain[a as usize] = chains;
            pos[a as usize] = 1;
            chains += 1;
        }
    }
    let mut writers = Vec::new();
    for a in 0..n {
        if chain[a as usize] == NONE {
            continue;
        }
        let (lo, hi) = (write_start[a as usize], write_start[a as usize + 1]);
        for &k in &writes[lo as usize..hi as usize] {
            writers.push((k, chain[a as usize], pos[a as usize], a));
        }
    }
    writers.sort_unstable();
    Ctx {
        txns,
        g,
        inf,
        n,
        read_start,
        reads,
        write_start,
        writes,
        chain,
        pos,
        writers,
        hb_start,
        hb,
    }
}

/// Edges into CSR form over `nodes` nodes.
fn csr(nodes: usize, edges: &mut Vec<(u32, u32)>) -> (Vec<u32>, Vec<u32>) {
    edges.sort_unstable();
    edges.dedup();
    let mut start = vec![0u32; nodes + 1];
    for &(a, _) in edges.iter() {
        start[a as usize + 1] += 1;
    }
    for i in 0..nodes {
        start[i + 1] += start[i];
    }
    (start, edges.iter().map(|e| e.1).collect())
}

/// RA's forced edges: from t3's last earlier session writer of the key and
/// from the writers t3 read from.
fn ra_reasons(cx: &Ctx, out: &mut Vec<Reason>) {
    // list-append: (key y, key x) -> (position in y of the writer's first
    // append, position in x of its last append or NONE, writer), sorted.
    let pairs = match cx.inf {
        Inference::Append(index) => pair_table(cx, index),
        Inference::Register(_) => HashMap::new(),
    };
    // rw-register: the nodes each node read from.
    let mut wr_in: Vec<Vec<u32>> = Vec::new();
    if matches!(cx.inf, Inference::Register(_)) {
        wr_in = vec![Vec::new(); cx.n as usize];
        for a in 0..cx.n {
            for (b, bits) in cx.g.out(a) {
                if bits & WR != 0 && b < cx.n {
                    wr_in[b as usize].push(a);
                }
            }
        }
    }
    for t3 in 0..cx.n {
        if !cx.is_ok(t3) {
            continue;
        }
        for r in cx.reads(t3) {
            let t2 = match r.src {
                Src::Init => NONE,
                Src::Node(t) => t,
            };
            let mut push = |t1: u32, premise| {
                if t1 != t2 && t1 != t3 {
                    out.push(Reason {
                        t1,
                        t2,
                        t3,
                        key: r.key,
                        premise,
                    });
                }
            };
            let c = cx.chain[t3 as usize];
            if c != NONE
                && let Some(t1) = cx.last_writer(r.key, c, cx.pos[t3 as usize] - 1)
            {
                push(t1, Premise::Session);
            }
            match cx.inf {
                Inference::Register(_) => {
                    for &p in &wr_in[t3 as usize] {
                        if cx.writes(p, r.key) {
                            push(p, Premise::Read);
                        }
                    }
                }
                Inference::Append(_) => {
                    for y in cx.reads(t3) {
                        if y.key == r.key || y.len == 0 {
                            continue;
                        }
                        let Some(run) = pairs.get(&(y.key, r.key)) else {
                            continue;
                        };
                        // The observed writer of x latest in x's order.
                        let i = run.partition_point(|e| e.0 < y.len);
                        if i > 0 {
                            push(run[i - 1].2, Premise::Read);
                        }
                    }
                }
            }
        }
    }
}

/// For each pair of keys (y, x) some transaction appended both to: its
/// position in y and in x, by position in y, each entry holding the writer
/// latest in x among those up to it (a running maximum).
#[allow(clippy::type_complexity)]
fn pair_table(
    cx: &Ctx,
    index: &super::append::AppendIndex,
) -> HashMap<(KeyId, KeyId), Vec<(u32, u32, u32)>> {
    let mut table: HashMap<(KeyId, KeyId), Vec<(u32, u32, u32)>> = HashMap::new();
    // (key, first pos, last pos) of one transaction's appends.
    let mut mine: Vec<(KeyId, u32, u32)> = Vec::new();
    for t in 0..cx.n {
        mine.clear();
        for m in cx.txns.mops(cx.txn(t)) {
            if let Mop::Append { key, value } = *m {
                let p = index.position(key, value).unwrap_or(NONE);
                match mine.iter_mut().find(|e| e.0 == key) {
                    Some(e) => {
                        e.1 = e.1.min(p);
                        e.2 = if p == NONE || e.2 == NONE {
                            NONE
                        } else {
                            e.2.max(p)
                        };
                    }
                    None => mine.push((key, p, p)),
                }
            }
        }
        for &(y, first_y, _) in &mine {
            if first_y == NONE {
                continue;
            }
            for &(x, _, last_x) in &mine {
                if x != y {
                    table.entry((y, x)).or_default().push((first_y, last_x, t));
                }
            }
        }
    }
    for run in table.values_mut() {
        run.sort_unstable();
        // Each entry becomes (its position in y, the latest position in x
        // among entries up to it, that writer): a running maximum, NONE
        // (never observed in x) latest of all.
        let mut best: Option<(u32, u32)> = None;
        for e in run.iter_mut() {
            let later = best.is_none_or(|(bx, _)| bx != NONE && (e.1 == NONE || e.1 > bx));
            if later {
                best = Some((e.1, e.2));
            }
            let (bx, bt) = best.expect("set above");
            (e.1, e.2) = (bx, bt);
        }
    }
    table
}

/// A writer's run of one key in one chain: (chain, [(position, node)]), by
/// position.
type Run = (u32, Vec<(u32, u32)>);

/// TCC's forced edges: per read, from the last writer of the key in each
/// chain that is causally before the reader (clocks over `so ∪ wr`).
/// Returns false when the live clocks would exceed [`MAX_CLOCK_WORDS`]: the
/// check is then incomplete.
///
/// **Chains.** The writers anyone can see (those with an `so ∪ wr`
/// successor) are split into chains, each totally ordered by `(so ∪ wr)+`,
/// greedily in topological order: a writer extends a chain whose last
/// writer it sees (a direct predecessor's chain first, else the newest),
/// else opens one. A node's clock holds per chain the position of the last
/// writer it sees; as a chain is ordered, it sees exactly that chain's
/// writers up to there. A session ends with every `info` result, but
/// chains outlive sessions (a new session's writer extends an old chain
/// once it sees its end), so clocks grow with the writers seen
/// concurrently, not with the sessions.
///
/// **Live clocks.** Nodes leave Kahn's queue by history position (a prefix
/// node with its first reader); a node's clock is built when it leaves,
/// from its predecessors' (taking over the clock of a predecessor it is
/// the last successor of, and skipping a writer's clock that the clock
/// already covers, since it sees that writer and so all it saw), and is
/// dropped once its last successor has been built.
fn tcc_reasons(cx: &Ctx, out: &mut Vec<Reason>) -> bool {
    let nodes = cx.hb_start.len() - 1;
    let n = cx.n as usize;
    // Predecessors, as CSR.
    let mut pred_start = vec![0u32; nodes + 1];
    for &b in &cx.hb {
        pred_start[b as usize + 1] += 1;
    }
    for i in 0..nodes {
        pred_start[i + 1] += pred_start[i];
    }
    let mut preds = vec![0u32; cx.hb.len()];
    let mut fill: Vec<u32> = pred_start[..nodes].to_vec();
    for u in 0..nodes as u32 {
        for &s in cx.hb_out(u) {
            preds[fill[s as usize] as usize] = u;
            fill[s as usize] += 1;
        }
    }
    drop(fill);
    let mut indeg: Vec<u32> = (0..nodes)
        .map(|u| pred_start[u + 1] - pred_start[u])
        .collect();
    // Successors whose clocks are not built yet.
    let mut left: Vec<u32> = (0..nodes)
        .map(|u| cx.hb_start[u + 1] - cx.hb_start[u])
        .collect();
    // Transaction nodes are in history order; a prefix node goes with its
    // first reader.
    let prio = |u: u32| -> u32 {
        if u < cx.n {
            u
        } else {
            cx.hb_out(u).iter().copied().min().unwrap_or(u)
        }
    };
    let mut queue: BinaryHeap<Reverse<(u32, u32)>> = (0..nodes as u32)
        .filter(|&u| indeg[u as usize] == 0)
        .map(|u| Reverse((prio(u), u)))
        .collect();
    // Clocks: per live node its slot; dropped slots are reused.
    let mut slot = vec![NONE; nodes];
    let mut clocks: Vec<Clock> = Vec::new();
    let mut free: Vec<u32> = Vec::new();
    let mut words = 0usize;
    // Chains: their lengths, each writer's chain and position, and per key
    // its runs.
    let mut chain_len: Vec<u32> = Vec::new();
    let mut wchain = vec![NONE; n];
    let mut wpos = vec![0u32; n];
    let mut key_runs: Vec<Vec<u32>> = vec![Vec::new(); cx.txns.key_count()];
    let mut runs: Vec<Run> = Vec::new();
    // Bounded: each node leaves the queue once.
    while let Some(Reverse((_, u))) = queue.pop() {
        let ui = u as usize;
        let ps = &preds[pred_start[ui] as usize..pred_start[ui + 1] as usize];
        let len_of = |p: u32| clocks[slot[p as usize] as usize].blocks.len();
        let mut base = NONE;
        for &p in ps {
            debug_assert!(slot[p as usize] != NONE, "a predecessor's clock is live");
            if left[p as usize] == 1 && (base == NONE || len_of(p) > len_of(base)) {
                base = p;
            }
        }
        let s = if base != NONE {
            let s = slot[base as usize];
            slot[base as usize] = NONE;
            left[base as usize] = 0;
            s
        } else if let Some(s) = free.pop() {
            clocks[s as usize].blocks.clear();
            s
        } else {
            clocks.push(Clock::default());
            (clocks.len() - 1) as u32
        };
        let mut clock = std::mem::take(&mut clocks[s as usize]);
        let cap = clock.words();
        for &p in ps {
            let pi = p as usize;
            if p == base {
                continue;
            }
            let covered =
                pi < n && wchain[pi] != NONE && clock.get(wchain[pi] as usize) >= wpos[pi];
            if !covered {
                clock.join(&clocks[slot[pi] as usize]);
            }
            left[pi] -= 1;
            if left[pi] == 0 {
                free.push(slot[pi]);
                slot[pi] = NONE;
            }
        }
        if ui < n {
            if cx.is_ok(u) {
                reads_against_clock(cx, u, &clock, &key_runs, &runs, out);
            }
            let ws = &cx.writes[cx.write_start[ui] as usize..cx.write_start[ui + 1] as usize];
            if !ws.is_empty() && left[ui] > 0 {
                // The chain of a predecessor that is its chain's last
                // writer, else the newest chain whose last writer the
                // clock covers.
                let tail = |p: u32| {
                    let p = p as usize;
                    p < n && wchain[p] != NONE && chain_len[wchain[p] as usize] == wpos[p]
                };
                let c = match ps.iter().find(|&&p| tail(p)) {
                    Some(&p) => wchain[p as usize] as usize,
                    None => (0..chain_len.len())
                        .rev()
                        .find(|&c| clock.get(c) == chain_len[c])
                        .unwrap_or_else(|| {
                            chain_len.push(0);
                            chain_len.len() - 1
                        }),
                };
                chain_len[c] += 1;
                let p = chain_len[c];
                debug_assert!(clock.get(c) == p - 1, "the chain's last writer is seen");
                clock.set(c, p);
                (wchain[ui], wpos[ui]) = (c as u32, p);
                for &k in ws {
                    let kr = &mut key_runs[k as usize];
                    let r = match kr.iter().rev().find(|&&r| runs[r as usize].0 == c as u32) {
                        Some(&r) => r,
                        None => {
                            runs.push((c as u32, Vec::new()));
                            kr.push((runs.len() - 1) as u32);
                            (runs.len() - 1) as u32
                        }
                    };
                    runs[r as usize].1.push((p, u));
                }
            }
        }
        words = (words + clock.words()).saturating_sub(cap);
        if words > MAX_CLOCK_WORDS {
            return false;
        }
        clocks[s as usize] = clock;
        if left[ui] == 0 {
            free.push(s);
        } else {
            slot[ui] = s;
        }
        for &v in cx.hb_out(u) {
            indeg[v as usize] -= 1;
            if indeg[v as usize] == 0 {
                queue.push(Reverse((prio(v), v)));
            }
        }
    }
    // Nodes left over sit on or after a cycle of so ∪ wr: a G1c(-process)
    // cycle the cycle search reports.
    true
}

/// Chains per block of a [`Clock`].
const BLOCK: usize = 16;

/// A vector clock over chains, in blocks shared between clocks (copy on
/// write): the chains of finished sessions stop changing, so their blocks
/// end up shared by every clock and a join skips them by pointer, costing
/// about the blocks that differ rather than the chains.
#[derive(Default)]
struct Clock {
    blocks: Vec<Rc<[u32; BLOCK]>>,
}

impl Clock {
    /// The position of chain `c`'s last writer seen, 0 for none.
    fn get(&self, c: usize) -> u32 {
        self.blocks.get(c / BLOCK).map_or(0, |b| b[c % BLOCK])
    }

    fn set(&mut self, c: usize, v: u32) {
        if self.blocks.len() <= c / BLOCK {
            self.blocks.resize(c / BLOCK + 1, Rc::new([0; BLOCK]));
        }
        Rc::make_mut(&mut self.blocks[c / BLOCK])[c % BLOCK] = v;
    }

    /// `self` ⊔= `from`, entrywise; a block `from` covers is shared.
    fn join(&mut self, from: &Clock) {
        if self.blocks.len() < from.blocks.len() {
            self.blocks.resize(from.blocks.len(), Rc::new([0; BLOCK]));
        }
        for (t, f) in self.blocks.iter_mut().zip(&from.blocks) {
            if Rc::ptr_eq(t, f) {
                continue;
            }
            let below = t.iter().zip(f.iter()).all(|(a, b)| a <= b);
            if below {
                *t = Rc::clone(f);
            } else if !t.iter().zip(f.iter()).all(|(a, b)| a >= b) {
                for (a, b) in Rc::make_mut(t).iter_mut().zip(f.iter()) {
                    *a = (*a).max(*b);
                }
            }
        }
    }

    /// The words it is charged: one block per entry (shared ones too).
    fn words(&self) -> usize {
        self.blocks.capacity() * BLOCK
    }
}

/// The forced edges of `t3`'s reads: per chain that wrote the key, from its
/// last writer `t3` sees (`clock`, which does not count `t3` itself).
fn reads_against_clock(
    cx: &Ctx,
    t3: u32,
    clock: &Clock,
    key_runs: &[Vec<u32>],
    runs: &[Run],
    out: &mut Vec<Reason>,
) {
    for r in cx.reads(t3) {
        let t2 = match r.src {
            Src::Init => NONE,
            Src::Node(t) => t,
        };
        for &j in &key_runs[r.key as usize] {
            let (ch, run) = &runs[j as usize];
            let bound = clock.get(*ch as usize);
            let i = run.partition_point(|w| w.0 <= bound);
            if i == 0 {
                continue;
            }
            let t1 = run[i - 1].1;
            if t1 != t2 && t1 != t3 {
                out.push(Reason {
                    t1,
                    t2,
                    t3,
                    key: r.key,
                    premise: Premise::Causal,
                });
            }
        }
    }
}

/// `H ∪ F` as a graph over the same nodes as `g`.
fn saturated(cx: &Ctx, reasons: &[Reason]) -> Graph {
    let mut b = GraphBuilder::new(cx.txns);
    let g = cx.g;
    for a in 0..cx.n {
        for (t, bits) in g.out(a) {
            if t < cx.n && bits & H != 0 {
                b.link(g.node_txn[a as usize], g.node_txn[t as usize], bits & H);
            }
        }
    }
    for r in reasons {
        let bits = if r.premise == Premise::Causal {
            ARB
        } else {
            ARB | ARB_RA
        };
        b.link(g.node_txn[r.t1 as usize], g.node_txn[r.t2 as usize], bits);
    }
    b.build()
}

/// Whether the transaction nodes with edges in `mask` have no cycle (Kahn).
fn acyclic(g: &Graph, n: u32, mask: u8) -> bool {
    let mut indeg = vec![0u32; n as usize];
    for a in 0..n {
        for (b, bits) in g.out(a) {
            if bits & mask != 0 && b < n {
                indeg[b as usize] += 1;
            }
        }
    }
    let mut stack: Vec<u32> = (0..n).filter(|&u| indeg[u as usize] == 0).collect();
    let mut done = 0u32;
    while let Some(u) = stack.pop() {
        done += 1;
        for (b, bits) in g.out(u) {
            if bits & mask != 0 && b < n {
                indeg[b as usize] -= 1;
                if indeg[b as usize] == 0 {
                    stack.push(b);
                }
            }
        }
    }
    done == n
}

/// One case per component of `H ∪ F_RA` (fractured read), then per
/// component of `H ∪ F` holding no RA one (causality violation); components
/// with a cycle of `H` alone are the cycle search's.
fn cycles(cx: &Ctx, g2: &Graph, reasons: &[Reason], max_cases: usize, found: &mut Vec<Found>) {
    let all: Vec<u32> = (0..cx.n).collect();
    let mut local = vec![NONE; g2.node_count() as usize];
    let mut taken = vec![false; cx.n as usize];
    for s in graph::sccs(g2, &all, H, &mut local) {
        for u in s {
            taken[u as usize] = true;
        }
    }
    let mut counts = [0usize; 2];
    for (mask, anomaly) in [
        (H | ARB_RA, Anomaly::FracturedRead),
        (H | ARB, Anomaly::CausalityViolation),
    ] {
        let sccs = graph::sccs(g2, &all, mask, &mut local);
        for s in sccs {
            if s.iter().any(|&u| taken[u as usize]) {
                continue;
            }
            for &u in &s {
                taken[u as usize] = true;
            }
            let k = &mut counts[(anomaly == Anomaly::CausalityViolation) as usize];
            *k += 1;
            let f = if *k <= max_cases {
                explain_scc(cx, g2, reasons, &s, mask, anomaly, &mut local)
            } else {
                let txns_in = vec![g2.node_txn[s[0] as usize]];
                Found::new(anomaly, txns_in, None, String::new())
            };
            found.push(f);
        }
    }
}

/// A shortest cycle through one forced edge of the component, in words.
fn explain_scc(
    cx: &Ctx,
    g2: &Graph,
    reasons: &[Reason],
    scc: &[u32],
    mask: u8,
    anomaly: Anomaly,
    local: &mut [u32],
) -> Found {
    let arb = mask & (ARB | ARB_RA);
    for (i, &u) in scc.iter().enumerate() {
        local[u as usize] = i as u32;
    }
    // The forced edge a → b to close the cycle with: for a causality
    // violation, one that only TCC forces if there is one.
    let mut pick: Option<(u32, u32)> = None;
    'outer: for &a in scc {
        for (b, bits) in g2.out(a) {
            if bits & arb != 0 && b < cx.n && local[b as usize] != NONE {
                pick = Some((a, b));
                if bits & ARB_RA == 0 {
                    break 'outer;
                }
            }
        }
    }
    let path = pick.and_then(|(a, b)| {
        // BFS b → a inside the component.
        let mut parent = vec![NONE; scc.len()];
        let mut queue = VecDeque::from([b]);
        parent[local[b as usize] as usize] = b;
        while let Some(u) = queue.pop_front() {
            if u == a {
                let mut p = vec![a];
                let mut x = a;
                while x != b {
                    x = parent[local[x as usize] as usize];
                    p.push(x);
                }
                p.reverse();
                return Some(p);
            }
            for (v, bits) in g2.out(u) {
                if bits & mask != 0 && v < cx.n {
                    let li = local[v as usize];
                    if li != NONE && parent[li as usize] == NONE {
                        parent[li as usize] = u;
                        queue.push_back(v);
                    }
                }
            }
        }
        None
    });
    for &u in scc {
        local[u as usize] = NONE;
    }
    let Some(mut cycle) = path else {
        return Found::new(
            anomaly,
            vec![g2.node_txn[scc[0] as usize]],
            None,
            String::new(),
        );
    };
    // cycle = b … a; close with a → b.
    cycle.push(cycle[0]);
    let mut edges: Vec<EdgeText> = Vec::new();
    let mut readers: Vec<u32> = Vec::new();
    let mut key = None;
    for w in cycle.windows(2) {
        let (u, v) = (w[0], w[1]);
        let bits = g2.edge(u, v);
        let h = bits & H & mask;
        let rel = [WR, WW, PROCESS].into_iter().find(|r| h & r != 0);
        match rel {
            Some(rel) => edges.push(explain::edge_text(cx.g, cx.txns, cx.inf, u, v, rel)),
            None => {
                let r = reasons
                    .binary_search_by_key(&(u, v), |r| (r.t1, r.t2))
                    .map(|i| reasons[i]);
                let text = match r {
                    Ok(r) => {
                        key = key.or(Some(r.key));
                        readers.push(r.t3);
                        reason_text(cx, &r)
                    }
                    Err(_) => format!("{} <co {}", tname(cx.txn(u)), tname(cx.txn(v))),
                };
                edges.push(EdgeText {
                    from: cx.g.node_txn[u as usize],
                    to: cx.g.node_txn[v as usize],
                    rel: ARB,
                    key: r.ok().map(|r| r.key),
                    text,
                });
            }
        }
    }
    // The cycle's transactions, then the readers whose reads forced its
    // commit-order edges.
    let mut txns_in: Vec<u32> = edges.iter().map(|e| e.from).collect();
    for r in readers {
        let t = cx.g.node_txn[r as usize];
        if !txns_in.contains(&t) {
            txns_in.push(t);
        }
    }
    let mut f = Found::new(anomaly, txns_in, key, explain::cycle_text(cx.txns, &edges));
    f.edges = edges;
    f
}

/// Why t1 must commit before t2 (or why t3's initial read is wrong).
fn reason_text(cx: &Ctx, r: &Reason) -> String {
    let (n1, n3) = (tname(cx.txn(r.t1)), tname(cx.txn(r.t3)));
    let k = key_str(cx.txns, r.key);
    let why = match r.premise {
        Premise::Session => format!(
            "{n1} wrote key {k} and came before {n3} in process {}",
            cx.txn(r.t3).process
        ),
        Premise::Read => format!("{n3} read what {n1} wrote, and {n1} also wrote key {k}"),
        Premise::Causal => format!(
            "{n1} wrote key {k} and is causally before {n3} ({})",
            causal_path(cx, r.t1, r.t3)
        ),
    };
    if r.t2 == NONE {
        format!("{why}; yet {n3} read the initial version of key {k}, older than {n1}'s")
    } else {
        let n2 = tname(cx.txn(r.t2));
        format!(
            "{why}; {n3} read key {k} from {n2}, so {n1}'s write must come before {n2}'s: {n1} <co {n2}"
        )
    }
}

/// A path of session and read steps from `a` to `b`, as `T1 → T5 → T9`.
fn causal_path(cx: &Ctx, a: u32, b: u32) -> String {
    let nodes = cx.hb_start.len() - 1;
    let mut parent: HashMap<u32, u32> = HashMap::from([(a, a)]);
    let mut queue = VecDeque::from([a]);
    while let Some(u) = queue.pop_front() {
        if u == b || parent.len() > PATH_SEARCH_MAX {
            break;
        }
        for &v in cx.hb_out(u) {
            if (v as usize) < nodes && !parent.contains_key(&v) {
                parent.insert(v, u);
                queue.push_back(v);
            }
        }
    }
    if !parent.contains_key(&b) {
        return "by session and read order".into();
    }
    let mut p = vec![b];
    let mut x = b;
    while x != a {
        x = parent[&x];
        if x < cx.n {
            p.push(x);
        }
    }
    p.reverse();
    p.iter()
        .map(|&u| tname(cx.txn(u)))
        .collect::<Vec<_>>()
        .join(" → ")
}

#[cfg(test)]
mod tests {
    use super::super::notation::History;
    use super::super::*;

    fn run(h: &History, model: Model) -> ElleResult {
        let workload = if h.ops.iter().any(|o| o.value.to_string().contains("append")) {
            Workload::ListAppend
        } else {
            Workload::RwRegister
        };
        super::super::check(&h.ops, &ElleOptions::new(workload, model)).expect("well-formed")
    }

    fn names(r: &ElleResult) -> Vec<String> {
        r.anomaly_names()
    }

    /// Invalid for `strong`, valid for `weak`, reporting `anomaly` with
    /// the transactions `idx` of `h` among its witnesses.
    fn splits(h: &History, weak: Model, strong: Model, anomaly: &str, idx: &[usize]) {
        let r = run(h, strong);
        assert_eq!(r.verdict, Verdict::Invalid, "{}", r.render_text());
        let case = r
            .cases
            .iter()
            .find(|c| c.anomaly.name() == anomaly)
            .unwrap_or_else(|| panic!("no {anomaly} in {:?}\n{}", names(&r), r.render_text()));
        for &i in idx {
            assert!(
                case.witnesses.iter().any(|w| w.index == h.names[i]),
                "T{} not in {anomaly}:\n{}",
                h.names[i],
                r.render_text()
            );
        }
        assert!(!case.text.is_empty());
        let r = run(h, weak);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.render_text());
    }

    #[test]
    fn a_fractured_list_read_is_read_committed_not_read_atomic() {
        // T2 sees T1's append to x, not its append to y.
        let h = History::list().ok(1, "ax1 ay1").ok(2, "rx1 ry");
        splits(
            &h,
            Model::ReadCommitted,
            Model::ReadAtomic,
            "fractured-read",
            &[0, 1],
        );
        let r = run(&h, Model::Causal);
        assert_eq!(r.verdict, Verdict::Invalid);
        assert!(
            r.render_text().contains("T1 also wrote key y"),
            "{}",
            r.render_text()
        );
    }

    #[test]
    fn a_fractured_list_read_of_a_nonempty_version() {
        let h = History::list()
            .ok(1, "ax1 ay1")
            .ok(2, "ax2 ay2")
            .ok(3, "rx12 ry1");
        splits(
            &h,
            Model::ReadCommitted,
            Model::ReadAtomic,
            "fractured-read",
            &[1, 2],
        );
    }

    #[test]
    fn a_fractured_register_read() {
        let h = History::register().ok(1, "wx1 wy2").ok(2, "rx1 ry");
        splits(
            &h,
            Model::ReadCommitted,
            Model::ReadAtomic,
            "fractured-read",
            &[0, 1],
        );
    }

    #[test]
    fn not_reading_ones_own_session_write_is_not_read_atomic() {
        // Same process: T2 follows T1 in its session but misses its write.
        let h = History::register().ok(1, "wx1").ok(1, "rx");
        splits(
            &h,
            Model::StrongSessionReadCommitted,
            Model::ReadAtomic,
            "fractured-read",
            &[0, 1],
        );
    }

    #[test]
    fn a_causality_violation_through_a_third_transaction_is_read_atomic() {
        for h in [
            History::list()
                .ok(1, "ax1")
                .ok(2, "rx1 ay2")
                .ok(3, "ry2 rx"),
            History::register()
                .ok(1, "rx wx1")
                .ok(2, "rx1 wy2")
                .ok(3, "ry2 rx"),
        ] {
            splits(
                &h,
                Model::ReadAtomic,
                Model::Causal,
                "causality-violation",
                &[0, 2],
            );
            let r = run(&h, Model::Causal);
            assert!(
                r.render_text().contains("causally before"),
                "{}",
                r.render_text()
            );
        }
    }

    #[test]
    fn a_causality_violation_in_a_session_chain() {
        // T1 → T2 by read, T2 → T3 by session: T3 misses T1's x.
        let h = History::list()
            .ok(1, "ax1 ax2")
            .ok(2, "rx12 ay3")
            .ok(2, "rx");
        splits(
            &h,
            Model::ReadAtomic,
            Model::Causal,
            "causality-violation",
            &[0, 2],
        );
    }

    #[test]
    fn concurrent_writes_seen_in_both_orders_by_direct_readers_are_fractured() {
        // Nothing orders T1's and T2's blind writes of x, so the cycle search
        // has no ww edge; but T3 must order T2 before T1 and T4 the reverse.
        let h = History::register()
            .ok(1, "wx1 wy1")
            .ok(2, "wx2 wz2")
            .ok(3, "rz2 rx1")
            .ok(4, "ry1 rx2");
        let r = run(&h, Model::Serializable);
        assert!(!r.counts.keys().any(|a| matches!(a, Anomaly::Cycle(..))));
        splits(
            &h,
            Model::ReadCommitted,
            Model::ReadAtomic,
            "fractured-read",
            &[0, 1],
        );
    }

    #[test]
    fn concurrent_writes_seen_in_both_orders_through_third_parties_are_not_causal() {
        let h = History::register()
            .ok(1, "wx1 wy1")
            .ok(2, "wx2 wz2")
            .ok(3, "rz2 wu3")
            .ok(4, "ru3 rx1")
            .ok(5, "ry1 wv5")
            .ok(6, "rv5 rx2");
        splits(
            &h,
            Model::ReadAtomic,
            Model::Causal,
            "causality-violation",
            &[0, 1],
        );
        // The cycle closes with commit-order edges only this check forces:
        // they are steps too (relation `co`), so the report draws them like
        // the cycle search's.
        let r = run(&h, Model::Causal);
        let case = r
            .cases
            .iter()
            .find(|c| c.anomaly == Anomaly::CausalityViolation)
            .expect("a causality violation");
        let steps = &case.steps;
        assert!(steps.len() >= 2, "{steps:?}");
        for (a, b) in steps.iter().zip(steps.iter().cycle().skip(1)) {
            assert_eq!(a.to, b.from, "the steps close a cycle: {steps:?}");
        }
        let co: Vec<_> = steps.iter().filter(|s| s.relation == "co").collect();
        assert!(!co.is_empty(), "{steps:?}");
        assert!(
            co.iter().all(|s| s.text.contains("causally before")),
            "{co:?}"
        );
        let dot = case.dot.as_deref().expect("a drawing");
        assert!(dot.contains("label=\"co x\""), "{dot}");
    }

    #[test]
    fn a_long_fork_and_a_lost_update_are_causal() {
        // Not snapshot isolation (G-nonadjacent / lost update), yet causal.
        let fork = History::register()
            .ok(1, "wx1")
            .ok(2, "wy1")
            .ok(3, "rx1 ry")
            .ok(4, "rx ry1");
        let lost = History::list()
            .ok(1, "rx ax1")
            .ok(2, "rx ax2")
            .ok(3, "rx12");
        for h in [fork, lost] {
            let r = run(&h, Model::Causal);
            assert_eq!(r.verdict, Verdict::Valid, "{}", r.render_text());
            assert_ne!(run(&h, Model::SnapshotIsolation).verdict, Verdict::Valid);
        }
    }

    #[test]
    fn observed_info_and_failed_writes_do_not_raise_false_alarms() {
        let h = History::list()
            .ok(1, "ax1")
            .info(2, "ax2 ay1")
            .fail(3, "ax3")
            .ok(4, "rx12 ry1")
            .ok(4, "rx12 ry1 az1")
            .ok(5, "rz1 rx12");
        let r = run(&h, Model::Causal);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.render_text());
        // The info transaction was seen: a later read that misses its y is fractured.
        let h = h.ok(6, "rx12 ry");
        let r = run(&h, Model::ReadAtomic);
        assert!(
            names(&r).contains(&"fractured-read".to_string()),
            "{}",
            r.render_text()
        );
    }

    #[test]
    fn a_clock_needed_long_after_it_was_built_is_the_one_built_then() {
        // T1 sees T0's y and appends x; its process goes on to append z;
        // a crowd of short sessions (some crashing) comes and goes; only
        // then does a reader see T1's x. T1's clock must have been kept,
        // while T2 (which follows T1) built its own: the reader sees y, not z.
        let mut h = History::list().ok(1, "ay1").ok(2, "ry1 ax1").ok(2, "az1");
        for (i, k) in "bcdefghijklmnopq".chars().enumerate() {
            let p = 10 + 3 * i as u64;
            h = h
                .ok(p, &format!("a{k}1"))
                .ok(p + 1, &format!("r{k}1 a{k}2"));
            h = if i % 3 == 0 {
                h.info(p + 2, &format!("r{k} a{k}3"))
            } else {
                h.ok(p + 2, &format!("r{k}12"))
            };
        }
        let r = run(&h.clone().ok(3, "rx1 rz"), Model::Causal);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.render_text());
        let h = h.ok(3, "rx1 ry");
        let last = h.names.len() - 1;
        splits(
            &h,
            Model::ReadAtomic,
            Model::Causal,
            "causality-violation",
            &[0, last],
        );
    }

    #[test]
    fn shared_clock_blocks_join_entrywise() {
        use super::{BLOCK, Clock};
        // Pseudo-random clocks over three blocks, some joined from others
        // (so sharing blocks), checked against plain vectors.
        let n = 3 * BLOCK;
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut next = move || rng.random::<u32>() >> 1;
        let mut clocks: Vec<(Clock, Vec<u32>)> = Vec::new();
        for round in 0..200 {
            let mut c = Clock::default();
            let mut v = vec![0u32; n];
            if round % 2 == 1 && !clocks.is_empty() {
                let i = next() as usize % clocks.len();
                c.join(&clocks[i].0);
                v = clocks[i].1.clone();
            }
            for _ in 0..(next() % 4) {
                let k = next() as usize % n;
                let val = v[k].max(next() % 50);
                c.set(k, val);
                v[k] = val;
            }
            let j = next() as usize % clocks.len().max(1);
            if let Some((o, ov)) = clocks.get(j) {
                c.join(o);
                for (a, b) in v.iter_mut().zip(ov) {
                    *a = (*a).max(*b);
                }
            }
            for (k, &want) in v.iter().enumerate() {
                assert_eq!(c.get(k), want, "round {round} chain {k}");
            }
            // Earlier clocks are unchanged by joins into later ones.
            for (o, ov) in &clocks {
                assert!((0..n).all(|k| o.get(k) == ov[k]));
            }
            clocks.push((c, v));
        }
    }

    #[test]
    fn without_process_order_the_weak_models_are_unchecked() {
        let h = History::register().ok(1, "wx1").ok(2, "rx1");
        let mut opts = ElleOptions::new(Workload::RwRegister, Model::Causal);
        opts.process_order = false;
        let r = super::super::check(&h.ops, &opts).expect("well-formed");
        assert_eq!(r.verdict, Verdict::Unknown);
    }
}
