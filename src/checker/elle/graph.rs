//! The dependency graph between transactions: petgraph's compressed
//! adjacency ([`Csr`]) with a bit set of relations per edge as the edge
//! weight, the process and realtime orders, and SCCs over any node subset
//! and relation mask (a trim, then petgraph's iterative `kosaraju_scc`).
//!
//! Realtime order is not materialised pairwise (that is O(n²), or O(n·c)
//! even as Elle's transitive reduction). Instead the history's completions
//! are cut into *barriers*: virtual nodes chained in time. A transaction that
//! completes points to the next barrier; each barrier points to the
//! transactions invoked after it closed. T1 completed before T2 was invoked
//! exactly when a path T1 → B … B → T2 exists, so reachability, SCCs and
//! shortest cycles are those of the real order, with 3 edges per transaction.
//! The first hop (T → B) carries [`REALTIME`] and costs 1 in cycle length;
//! the others carry [`VIRTUAL`] and cost 0.

use crate::history::Outcome;
use crate::history::txn::{Txn, Txns};
use petgraph::Directed;
use petgraph::csr::Csr;

pub const WW: u8 = 1;
pub const WR: u8 = 2;
pub const RW: u8 = 4;
pub const PROCESS: u8 = 8;
/// A transaction's completion, into its barrier: the start of a realtime edge.
pub const REALTIME: u8 = 16;
/// Barrier to barrier, or barrier to an invoked transaction: the rest of a
/// realtime edge, free in cycle length.
pub const VIRTUAL: u8 = 32;
/// A commit-order edge that read atomicity or causal consistency forces
/// (`weak`, which keeps its own graph with these).
pub const ARB: u8 = 64;
pub const DATA: u8 = WW | WR | RW;

/// No node: an absent entry in node maps.
pub const NONE: u32 = u32::MAX;

/// Nodes are `u32` (a million transactions and their barriers fit), edge
/// weights the relation bits.
pub type Adjacency = Csr<(), u8, Directed, u32>;

/// A directed graph over transactions (nodes `0..txn_nodes`) and realtime
/// barriers (nodes `txn_nodes..`), edges sorted by target per node.
#[derive(Debug, Default)]
pub struct Graph {
    csr: Adjacency,
    /// Transaction nodes come first; the rest are barriers.
    pub txn_nodes: u32,
    /// node -> position in `Txns::txns`
    pub node_txn: Vec<u32>,
    /// position in `Txns::txns` -> node, or NONE for failed transactions
    pub txn_node: Vec<u32>,
}

impl Graph {
    pub fn node_count(&self) -> u32 {
        self.csr.node_count() as u32
    }

    pub fn edge_count(&self) -> usize {
        self.csr.edge_count()
    }

    pub fn is_barrier(&self, n: u32) -> bool {
        n >= self.txn_nodes
    }

    /// The adjacency itself, for petgraph's algorithms.
    pub fn csr(&self) -> &Adjacency {
        &self.csr
    }

    /// Out-edges of `n` as (target, relation bits).
    pub fn out(&self, n: u32) -> impl Iterator<Item = (u32, u8)> + '_ {
        self.csr
            .neighbors_slice(n)
            .iter()
            .copied()
            .zip(self.csr.edges_slice(n).iter().copied())
    }

    /// The relation bits of edge a → b (0 if none).
    pub fn edge(&self, a: u32, b: u32) -> u8 {
        match self.csr.neighbors_slice(a).binary_search(&b) {
            Ok(i) => self.csr.edges_slice(a)[i],
            Err(_) => 0,
        }
    }
}

/// Collects edges between transactions (by position in `Txns::txns`), adds
/// the orders asked for, and freezes them into a [`Graph`].
pub struct GraphBuilder {
    edges: Vec<(u32, u32, u8)>,
    txn_node: Vec<u32>,
    node_txn: Vec<u32>,
    /// One past the last node id used (barriers included).
    barrier_end: u32,
}

impl GraphBuilder {
    /// Every transaction that may have committed (ok or info) is a node;
    /// failed ones did not happen and take no part.
    pub fn new(txns: &Txns) -> GraphBuilder {
        let mut txn_node = Vec::with_capacity(txns.txns.len());
        let mut node_txn = Vec::with_capacity(txns.txns.len());
        for (i, t) in txns.txns.iter().enumerate() {
            if t.outcome == Outcome::Fail {
                txn_node.push(NONE);
            } else {
                txn_node.push(node_txn.len() as u32);
                node_txn.push(i as u32);
            }
        }
        GraphBuilder {
            edges: Vec::with_capacity(txns.txns.len() * 4),
            barrier_end: node_txn.len() as u32,
            txn_node,
            node_txn,
        }
    }

    /// Adds a relation between two transactions (positions in `Txns::txns`).
    /// Self-edges and edges touching failed transactions are dropped.
    pub fn link(&mut self, from_txn: u32, to_txn: u32, rel: u8) {
        let (a, b) = (
            self.txn_node[from_txn as usize],
            self.txn_node[to_txn as usize],
        );
        if a != b && a != NONE && b != NONE {
            self.edges.push((a, b, rel));
        }
    }

    /// Process order: each transaction follows the last transaction of its
    /// process that completed ok. An `info` transaction may take effect any
    /// time later, so nothing is ordered after it.
    pub fn add_process_order(&mut self, txns: &Txns) {
        // Transactions grouped by process, in invocation order within each.
        let mut by_process: Vec<(u64, u32)> = txns
            .txns
            .iter()
            .enumerate()
            .filter(|(_, t)| t.outcome != Outcome::Fail)
            .map(|(i, t)| (t.process, i as u32))
            .collect();
        by_process.sort_unstable();
        for run in by_process.chunk_by(|a, b| a.0 == b.0) {
            let mut last_ok: Option<u32> = None;
            for &(_, i) in run {
                if let Some(prev) = last_ok {
                    self.link(prev, i, PROCESS);
                }
                if txns.txns[i as usize].outcome == Outcome::Ok {
                    last_ok = Some(i);
                }
            }
        }
    }

    /// Realtime order through barriers (see the module doc). Only ok
    /// completions order anything: an `info` one may not have happened yet.
    pub fn add_realtime_order(&mut self, txns: &Txns) {
        // (event position, is completion, txn) in history order
        let mut events: Vec<(u32, bool, u32)> = Vec::with_capacity(txns.txns.len() * 2);
        for (i, t) in txns.txns.iter().enumerate() {
            if t.outcome == Outcome::Fail {
                continue;
            }
            events.push((t.invoke_seq, false, i as u32));
            if let (Outcome::Ok, Some(c)) = (t.outcome, t.complete_seq) {
                events.push((c, true, i as u32));
            }
        }
        events.sort_unstable();
        let mut next_node = self.barrier_end;
        let mut pending: Option<u32> = None; // barrier collecting completions
        let mut closed: Option<u32> = None; // the latest closed barrier
        for (_, is_completion, t) in events {
            let node = self.txn_node[t as usize];
            if is_completion {
                let b = *pending.get_or_insert_with(|| {
                    next_node += 1;
                    next_node - 1
                });
                self.edges.push((node, b, REALTIME));
            } else {
                if let Some(b) = pending.take() {
                    if let Some(c) = closed {
                        self.edges.push((c, b, VIRTUAL));
                    }
                    closed = Some(b);
                }
                if let Some(c) = closed {
                    self.edges.push((c, node, VIRTUAL));
                }
            }
        }
        // A trailing pending barrier has no successors; it is harmless.
        self.barrier_end = next_node;
    }

    /// Freezes into petgraph's CSR: edges grouped by source (counting sort),
    /// sorted by target, duplicates merged by OR-ing their relation bits,
    /// written back in order into the builder's own edge list and handed to
    /// [`Csr::from_sorted_edges`]. The counting sort scatters into a second
    /// array: done in place (a dependent chain of swaps) it took seconds, not
    /// tenths, on a million transactions.
    pub fn build(self) -> Graph {
        let txn_nodes = self.node_txn.len() as u32;
        let n = self.barrier_end.max(txn_nodes) as usize;
        let mut edges = self.edges;
        let mut offsets = vec![0u32; n + 1];
        for &(a, _, _) in &edges {
            offsets[a as usize + 1] += 1;
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut slots = vec![(0u32, 0u8); edges.len()];
        for &(a, b, r) in &edges {
            slots[fill[a as usize] as usize] = (b, r);
            fill[a as usize] += 1;
        }
        drop(fill);
        // `edges` is free once scattered: the sorted list is written over it.
        let mut w = 0usize;
        for node in 0..n {
            let s = &mut slots[offsets[node] as usize..offsets[node + 1] as usize];
            s.sort_unstable_by_key(|&(b, _)| b);
            let start = w;
            for &(b, r) in s.iter() {
                if w > start && edges[w - 1].1 == b {
                    edges[w - 1].2 |= r;
                } else {
                    edges[w] = (node as u32, b, r);
                    w += 1;
                }
            }
        }
        drop((slots, offsets));
        edges.truncate(w);
        debug_assert!(
            edges
                .windows(2)
                .all(|p| (p[0].0, p[0].1) < (p[1].0, p[1].1))
        );
        let mut csr = Adjacency::from_sorted_edges(&edges)
            .expect("edges are sorted by (source, target) and merged above");
        drop(edges);
        // `from_sorted_edges` stops at the largest node with an edge.
        while csr.node_count() < n {
            csr.add_node(());
        }
        debug_assert_eq!(csr.node_count(), n);
        Graph {
            csr,
            txn_nodes,
            node_txn: self.node_txn,
            txn_node: self.txn_node,
        }
    }
}

/// The transaction behind a graph node.
pub fn node_txn<'a>(g: &Graph, txns: &'a Txns, n: u32) -> &'a Txn {
    &txns.txns[g.node_txn[n as usize] as usize]
}

/// Strongly connected components with more than one node, of the subgraph
/// induced by `nodes` over edges whose bits intersect `mask`, each sorted,
/// ordered by their smallest node. `local` is scratch space of
/// `g.node_count()` entries, all NONE on entry and on return.
///
/// A node that no cycle reaches is in no component, so a trim (Kahn's
/// algorithm over the forward edges) removes those first; a valid history
/// is acyclic and trims to nothing. What is left (cycles and what they
/// reach) goes to petgraph's `kosaraju_scc` as a small graph of its own:
/// iterative, so a million-node component cannot overflow the stack, where
/// petgraph's `tarjan_scc` recurses.
pub fn sccs(g: &Graph, nodes: &[u32], mask: u8, local: &mut [u32]) -> Vec<Vec<u32>> {
    for (i, &n) in nodes.iter().enumerate() {
        debug_assert_eq!(local[n as usize], NONE, "nodes are distinct, local clear");
        local[n as usize] = i as u32;
    }
    let rest = untrimmed(g, nodes, mask, local);
    let mut out = Vec::new();
    if !rest.is_empty() {
        let mut sub = petgraph::Graph::<u32, (), Directed, u32>::with_capacity(rest.len(), 0);
        for &v in &rest {
            local[nodes[v as usize] as usize] = sub.add_node(nodes[v as usize]).index() as u32;
        }
        for &v in &rest {
            let a = nodes[v as usize];
            for (b, bits) in g.out(a) {
                if bits & mask != 0 && local[b as usize] != NONE {
                    sub.add_edge(local[a as usize].into(), local[b as usize].into(), ());
                }
            }
        }
        for comp in petgraph::algo::kosaraju_scc(&sub) {
            if comp.len() > 1 {
                let mut comp: Vec<u32> = comp.into_iter().map(|x| sub[x]).collect();
                comp.sort_unstable();
                out.push(comp);
            }
        }
        out.sort_unstable_by_key(|c| c[0]);
    }
    for &n in nodes {
        local[n as usize] = NONE;
    }
    out
}

/// The positions in `nodes` that the trim leaves: those a cycle reaches.
/// On entry `local` maps each of `nodes` to its position; on return it
/// maps only the returned ones (the others are NONE).
fn untrimmed(g: &Graph, nodes: &[u32], mask: u8, local: &mut [u32]) -> Vec<u32> {
    let mut indeg = vec![0u32; nodes.len()];
    for &a in nodes {
        for (b, bits) in g.out(a) {
            if bits & mask != 0 && local[b as usize] != NONE {
                indeg[local[b as usize] as usize] += 1;
            }
        }
    }
    let mut ready: Vec<u32> = (0..nodes.len() as u32)
        .filter(|&v| indeg[v as usize] == 0)
        .collect();
    // Each node is pushed at most once (when its count reaches 0).
    while let Some(v) = ready.pop() {
        let a = nodes[v as usize];
        local[a as usize] = NONE;
        for (b, bits) in g.out(a) {
            if bits & mask != 0 && local[b as usize] != NONE {
                let w = local[b as usize] as usize;
                indeg[w] -= 1;
                if indeg[w] == 0 {
                    ready.push(w as u32);
                }
            }
        }
    }
    (0..nodes.len() as u32)
        .filter(|&v| indeg[v as usize] > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn graph(n: u32, edges: &[(u32, u32, u8)]) -> Graph {
        let mut b = GraphBuilder {
            edges: edges.to_vec(),
            txn_node: (0..n).collect(),
            node_txn: (0..n).collect(),
            barrier_end: n,
        };
        b.edges.shrink_to_fit();
        b.build()
    }

    #[test]
    fn merges_parallel_edges_and_masks_sccs() {
        let g = graph(
            4,
            &[
                (0, 1, WW),
                (0, 1, RW),
                (1, 0, WR),
                (2, 3, RW),
                (3, 2, PROCESS),
            ],
        );
        assert_eq!(g.edge(0, 1), WW | RW);
        assert_eq!(g.edge_count(), 4);
        let mut local = vec![NONE; 4];
        let all: Vec<u32> = (0..4).collect();
        assert_eq!(
            sccs(&g, &all, 0xff, &mut local),
            vec![vec![0, 1], vec![2, 3]]
        );
        assert_eq!(sccs(&g, &all, WW | WR, &mut local), vec![vec![0, 1]]);
        assert_eq!(sccs(&g, &all, WW | RW, &mut local), Vec::<Vec<u32>>::new());
        assert_eq!(sccs(&g, &[2, 3], 0xff, &mut local), vec![vec![2, 3]]);
        assert!(local.iter().all(|&x| x == NONE));
    }

    #[test]
    fn a_long_chain_cycle_does_not_overflow_the_stack() {
        let n = 300_000u32;
        let edges: Vec<_> = (0..n).map(|i| (i, (i + 1) % n, WW)).collect();
        let g = graph(n, &edges);
        let mut local = vec![NONE; n as usize];
        let all: Vec<u32> = (0..n).collect();
        let s = sccs(&g, &all, WW, &mut local);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].len(), n as usize);
    }

    proptest! {
        /// Our SCCs are petgraph's (Kosaraju), on random graphs.
        #[test]
        fn sccs_match_petgraph(n in 1u32..40, raw in proptest::collection::vec((0u32..40, 0u32..40), 0..120)) {
            let edges: Vec<_> = raw.into_iter().map(|(a, b)| (a % n, b % n, WW)).filter(|(a, b, _)| a != b).collect();
            let g = graph(n, &edges);
            let mut local = vec![NONE; n as usize];
            let all: Vec<u32> = (0..n).collect();
            let mut ours = sccs(&g, &all, WW, &mut local);
            ours.sort();
            let pg = petgraph::graph::DiGraph::<(), ()>::from_edges(edges.iter().map(|&(a, b, _)| (a, b)));
            let mut theirs: Vec<Vec<u32>> = petgraph::algo::kosaraju_scc(&pg)
                .into_iter()
                .map(|c| { let mut c: Vec<u32> = c.into_iter().map(|x| x.index() as u32).filter(|&x| x < n).collect(); c.sort(); c })
                .filter(|c| c.len() > 1)
                .collect();
            theirs.sort();
            prop_assert_eq!(ours, theirs);
        }

        /// Our SCCs are the classes of mutual reachability (a transitive
        /// closure, Floyd-Warshall style) of the induced, masked subgraph,
        /// on random graphs with mixed relation bits, random masks and
        /// random node subsets; `local` comes back clear.
        #[test]
        fn sccs_match_transitive_closure(
            n in 1u32..30,
            raw in proptest::collection::vec((0u32..30, 0u32..30, 1u8..128), 0..90),
            mask in 1u8..128,
            keep in proptest::collection::vec(any::<bool>(), 30),
        ) {
            let edges: Vec<_> = raw.into_iter().map(|(a, b, r)| (a % n, b % n, r)).filter(|(a, b, _)| a != b).collect();
            let g = graph(n, &edges);
            let nodes: Vec<u32> = (0..n).filter(|&v| keep[v as usize]).collect();
            let mut local = vec![NONE; n as usize];
            let ours = sccs(&g, &nodes, mask, &mut local);
            prop_assert!(local.iter().all(|&x| x == NONE));
            let size = n as usize;
            let mut reach = vec![vec![false; size]; size];
            for &(a, b, r) in &edges {
                if r & mask != 0 && keep[a as usize] && keep[b as usize] {
                    reach[a as usize][b as usize] = true;
                }
            }
            for k in 0..size {
                for i in 0..size {
                    for j in 0..size {
                        if reach[i][k] && reach[k][j] {
                            reach[i][j] = true;
                        }
                    }
                }
            }
            let mut theirs: Vec<Vec<u32>> = Vec::new();
            for &u in &nodes {
                let comp: Vec<u32> = nodes.iter().copied().filter(|&v| v == u || (reach[u as usize][v as usize] && reach[v as usize][u as usize])).collect();
                if comp.len() > 1 && comp[0] == u {
                    theirs.push(comp);
                }
            }
            prop_assert_eq!(ours, theirs);
        }
    }
}
