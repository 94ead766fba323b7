//! Finding the shortest cycle of each shape inside a strongly connected
//! component, in bounded steps and time.
//!
//! For each shape (G0, G1c, G-single, G-nonadjacent, G2-item, each plain,
//! `-process` and `-realtime`) we restrict the component to the relations
//! the shape may use, split that into its own SCCs, and search each from
//! *anchor* edges: every such cycle contains an edge of a known class (an
//! rw edge for the anti-dependency shapes, a wr edge for G1c, ...), so we
//! rotate the cycle to start there. From the anchor u → v a 0-1 breadth-first
//! search over (node, state) pairs finds the shortest way back to u; the
//! state carries what the shape must count (a process/realtime edge seen,
//! two rw edges, whether the last edge was rw). Realtime barrier hops cost
//! 0, so lengths count real edges only. Anchors are tried until the budget
//! of edge relaxations or the deadline runs out; what was cut short is
//! reported as such, never guessed. A found walk that repeats a transaction
//! is trimmed to a simple cycle of the same shape, or dropped.

use super::graph::{self, DATA, Graph, NONE, PROCESS, REALTIME, RW, VIRTUAL, WR, WW};
use super::model::{Anomaly, SHAPES, Shape, Variant};
use std::collections::VecDeque;
use std::time::Instant;

/// Bounds on the search of one shape in one component.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_steps: u64,
    pub deadline: Instant,
}

/// One edge of a cycle between transaction nodes, with the relation it uses
/// (one of WW, WR, RW, PROCESS, REALTIME).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub from: u32,
    pub to: u32,
    pub rel: u8,
}

/// A cycle and its classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleFound {
    pub anomaly: Anomaly,
    pub steps: Vec<Step>,
}

/// What the search of one component gave.
#[derive(Debug, Default)]
pub struct SccReport {
    pub cycles: Vec<CycleFound>,
    /// Shapes whose search ran out of budget without an answer.
    pub incomplete: Vec<Anomaly>,
}

/// Classifies a cycle by its relations, as Elle does: the count and
/// adjacency of rw edges give the shape, a realtime (else process) edge the
/// variant.
pub fn classify(rels: &[u8]) -> Anomaly {
    let rw = rels.iter().filter(|&&r| r == RW).count();
    let adjacent = (0..rels.len()).any(|i| rels[i] == RW && rels[(i + 1) % rels.len()] == RW);
    let shape = match rw {
        0 if rels.contains(&WR) => Shape::G1c,
        0 => Shape::G0,
        1 => Shape::GSingle,
        _ if adjacent => Shape::G2Item,
        _ => Shape::GNonadjacent,
    };
    let variant = if rels.contains(&REALTIME) {
        Variant::Realtime
    } else if rels.contains(&PROCESS) {
        Variant::Process
    } else {
        Variant::Data
    };
    Anomaly::Cycle(shape, variant)
}

/// The relations a shape may use.
fn mask(shape: Shape, variant: Variant) -> u8 {
    let data = match shape {
        Shape::G0 => WW,
        Shape::G1c => WW | WR,
        _ => DATA,
    };
    data | match variant {
        Variant::Data => 0,
        Variant::Process => PROCESS,
        Variant::Realtime => REALTIME | VIRTUAL,
    }
}

/// The class every cycle of the shape contains, to start from.
fn anchor_class(shape: Shape, variant: Variant) -> u8 {
    match (shape, variant) {
        (Shape::G0, Variant::Data) => WW,
        (Shape::G0, Variant::Process) => PROCESS,
        (Shape::G0, Variant::Realtime) => REALTIME,
        (Shape::G1c, _) => WR,
        _ => RW,
    }
}

// Search state bits.
const HAS_VARIANT: u8 = 1;
const TWO_RW: u8 = 2;
const LAST_RW: u8 = 4;

/// Searches one top-level component for every shape of the given variants.
/// `local` is scratch of `g.node_count()` entries, all NONE.
pub fn search_scc(
    g: &Graph,
    scc: &[u32],
    variants: &[Variant],
    limits: Limits,
    local: &mut [u32],
) -> SccReport {
    let mut report = SccReport::default();
    for &variant in variants {
        for shape in SHAPES {
            let mut best: Option<CycleFound> = None;
            let mut cut = false;
            let subs = graph::sccs(g, scc, mask(shape, variant), local);
            for sub in &subs {
                mark(local, sub);
                let bound = best.as_ref().map_or(u32::MAX, |b| b.steps.len() as u32);
                let (found, was_cut) =
                    ShapeSearch::new(g, sub, shape, variant, limits, local).run(bound);
                unmark(local, sub);
                cut |= was_cut;
                if let Some(f) = found
                    && best.as_ref().is_none_or(|b| f.steps.len() < b.steps.len())
                {
                    best = Some(f);
                }
            }
            match best {
                Some(b) => report.cycles.push(b),
                None if cut => report.incomplete.push(Anomaly::Cycle(shape, variant)),
                None => {}
            }
        }
        // Whatever the budget did, a component of the variant's relations
        // holds some cycle: find one plainly so the verdict never rests on a
        // timeout alone.
        let full = mask(Shape::G2Item, variant);
        for sub in graph::sccs(g, scc, full, local) {
            let covered = report.cycles.iter().any(|c| {
                matches!(c.anomaly, Anomaly::Cycle(_, v) if v == variant)
                    && sub.binary_search(&c.steps[0].from).is_ok()
            });
            if !covered
                && let Some(c) = any_cycle(g, &sub, full, local)
                && !report.cycles.iter().any(|x| x.anomaly == c.anomaly)
            {
                report.cycles.push(c);
            }
        }
    }
    report
}

fn mark(local: &mut [u32], sub: &[u32]) {
    for (i, &n) in sub.iter().enumerate() {
        local[n as usize] = i as u32;
    }
}

fn unmark(local: &mut [u32], sub: &[u32]) {
    for &n in sub {
        local[n as usize] = NONE;
    }
}

/// The shortest cycle through the first node of a strongly connected `sub`
/// over `mask`: plain BFS, no shape constraint. None only if `sub` is not
/// strongly connected.
fn any_cycle(g: &Graph, sub: &[u32], mask: u8, local: &mut [u32]) -> Option<CycleFound> {
    let start = *sub.iter().find(|&&n| !g.is_barrier(n))?;
    mark(local, sub);
    let mut parent: Vec<(u32, u8)> = vec![(NONE, 0); sub.len()];
    let mut queue = VecDeque::from([local[start as usize]]);
    let s = local[start as usize];
    let mut done = false;
    'bfs: while let Some(x) = queue.pop_front() {
        for (y, bits) in g.out(sub[x as usize]) {
            let ly = local[y as usize];
            if ly == NONE || bits & mask == 0 || (parent[ly as usize].0 != NONE) {
                continue;
            }
            parent[ly as usize] = (x, pick_rel(bits & mask));
            if ly == s {
                done = true;
                break 'bfs;
            }
            queue.push_back(ly);
        }
    }
    unmark(local, sub);
    if !done {
        return None;
    }
    let mut path = Vec::new(); // (node, rel into it), backwards
    let mut cur = s;
    loop {
        let (p, rel) = parent[cur as usize];
        path.push((sub[cur as usize], rel));
        cur = p;
        if cur == s {
            break;
        }
    }
    path.reverse();
    let steps = collapse(g, sub[s as usize], &path);
    Some(CycleFound {
        anomaly: classify(&steps.iter().map(|s| s.rel).collect::<Vec<_>>()),
        steps,
    })
}

/// The relation a plain search uses from an edge's bits: data first.
fn pick_rel(bits: u8) -> u8 {
    [WW, WR, RW, PROCESS, REALTIME, VIRTUAL]
        .into_iter()
        .find(|&r| bits & r != 0)
        .unwrap_or(0)
}

/// Turns a walk from `start` ((node, relation into it) per hop) into steps
/// between transactions: a realtime hop through barriers becomes one step.
fn collapse(g: &Graph, start: u32, path: &[(u32, u8)]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut from = start;
    let mut rel = 0u8;
    for &(n, r) in path {
        if r != VIRTUAL {
            rel = r;
        }
        if !g.is_barrier(n) {
            steps.push(Step { from, to: n, rel });
            from = n;
        }
    }
    steps
}

/// The search of one shape inside one sub-component.
struct ShapeSearch<'a> {
    g: &'a Graph,
    sub: &'a [u32],
    /// Global node -> position in `sub`, NONE outside it.
    local: &'a [u32],
    shape: Shape,
    variant: Variant,
    mask: u8,
    limits: Limits,
    states: usize,
    /// Per (local node, state): the anchor round that last touched it.
    stamp: Vec<u32>,
    dist: Vec<u32>,
    /// Per (local node, state): the (local node, state) it was reached from,
    /// packed as node * states + state, and the relation used.
    parent: Vec<(u32, u8)>,
    steps: u64,
}

impl<'a> ShapeSearch<'a> {
    fn new(
        g: &'a Graph,
        sub: &'a [u32],
        shape: Shape,
        variant: Variant,
        limits: Limits,
        local: &'a [u32],
    ) -> Self {
        let states = if shape == Shape::GNonadjacent { 8 } else { 2 };
        let size = sub.len() * states;
        ShapeSearch {
            g,
            sub,
            local,
            shape,
            variant,
            mask: mask(shape, variant),
            limits,
            states,
            stamp: vec![0; size],
            dist: vec![0; size],
            parent: vec![(NONE, 0); size],
            steps: 0,
        }
    }

    fn out_of_budget(&self) -> bool {
        self.steps > self.limits.max_steps
            || (self.steps.is_multiple_of(4096) && Instant::now() > self.limits.deadline)
    }

    /// Tries anchors until one gives a cycle as short as possible, the
    /// anchors run out, or the budget does. Returns the best cycle shorter
    /// than `bound`, and whether the budget cut the search.
    fn run(&mut self, mut bound: u32) -> (Option<CycleFound>, bool) {
        if Instant::now() > self.limits.deadline {
            return (None, true);
        }
        let anchor = anchor_class(self.shape, self.variant);
        let min_len = if self.shape == Shape::GNonadjacent {
            4
        } else {
            2
        };
        let mut best: Option<CycleFound> = None;
        let mut round = 0u32;
        for lu in 0..self.sub.len() as u32 {
            let u = self.sub[lu as usize];
            for (v, bits) in self.g.out(u) {
                let lv = self.local[v as usize];
                if bits & anchor == 0 || lv == NONE {
                    continue;
                }
                if self.out_of_budget() {
                    return (best, true);
                }
                round += 1;
                if let Some(c) = self.search_anchor(lu, lv, anchor, round, bound) {
                    bound = c.steps.len() as u32;
                    best = Some(c);
                    if bound <= min_len {
                        return (best, false);
                    }
                }
            }
        }
        (best, false)
    }

    /// The state after taking an edge of class `rel` in state `s`, or None
    /// if the shape forbids it.
    fn step(&self, s: u8, rel: u8) -> Option<u8> {
        match rel {
            VIRTUAL => Some(s),
            PROCESS | REALTIME => Some((s | HAS_VARIANT) & !LAST_RW),
            RW => match self.shape {
                Shape::GNonadjacent if s & LAST_RW != 0 => None,
                Shape::GNonadjacent => Some(s | LAST_RW | TWO_RW),
                Shape::G2Item => Some(s),
                _ => None,
            },
            _ => Some(s & !LAST_RW),
        }
    }

    fn accepts(&self, s: u8) -> bool {
        let variant_ok = self.variant == Variant::Data || s & HAS_VARIANT != 0;
        let shape_ok = match self.shape {
            // The closing edge meets the anchor, which is rw.
            Shape::GNonadjacent => s & TWO_RW != 0 && s & LAST_RW == 0,
            _ => true,
        };
        variant_ok && shape_ok
    }

    fn slot(&self, node: u32, s: u8) -> usize {
        node as usize * self.states + s as usize
    }

    /// Records a better way to reach (node, s); returns whether it was.
    fn visit(&mut self, round: u32, node: u32, s: u8, d: u32, from: usize, rel: u8) -> bool {
        let slot = self.slot(node, s);
        if self.stamp[slot] == round && self.dist[slot] <= d {
            return false;
        }
        self.stamp[slot] = round;
        self.dist[slot] = d;
        self.parent[slot] = (from as u32, rel);
        true
    }

    /// 0-1 BFS from the anchor u → v (local ids) back to u. Lengths count
    /// the anchor; only cycles shorter than `bound` are returned.
    fn search_anchor(
        &mut self,
        lu: u32,
        lv: u32,
        anchor: u8,
        round: u32,
        bound: u32,
    ) -> Option<CycleFound> {
        let s0 = match anchor {
            PROCESS | REALTIME => HAS_VARIANT,
            RW if self.shape == Shape::GNonadjacent => LAST_RW,
            _ => 0,
        };
        let start = self.slot(lv, s0);
        let mut queue: VecDeque<(u32, u8)> = VecDeque::new();
        if self.shape == Shape::G2Item {
            // The second edge is rw too, so two rw edges are adjacent; v may
            // not be visited again.
            for st in 0..self.states as u8 {
                let slot = self.slot(lv, st);
                self.stamp[slot] = round;
                self.dist[slot] = 0;
            }
            let v = self.sub[lv as usize];
            for (w, bits) in self.g.out(v) {
                let lw = self.local[w as usize];
                if bits & RW == 0 || lw == NONE {
                    continue;
                }
                if lw == lu {
                    if self.accepts(s0) {
                        return Some(self.cycle(vec![(v, RW), (self.sub[lu as usize], RW)]));
                    }
                    continue;
                }
                if self.visit(round, lw, s0, 2, start, RW) {
                    queue.push_back((lw, s0));
                }
            }
        } else {
            self.visit(round, lv, s0, 1, self.slot(lu, 0), anchor);
            queue.push_back((lv, s0));
        }
        while let Some((x, s)) = queue.pop_front() {
            let d = self.dist[self.slot(x, s)];
            if d >= bound {
                continue;
            }
            if x == lu {
                if self.accepts(s) {
                    return self.rebuild(lu, s, start, lv, anchor);
                }
                continue;
            }
            let gx = self.sub[x as usize];
            for (y, bits) in self.g.out(gx) {
                let ly = self.local[y as usize];
                let bits = bits & self.mask;
                if ly == NONE || bits == 0 {
                    continue;
                }
                self.steps += 1;
                for rel in [WW, WR, RW, PROCESS, REALTIME, VIRTUAL] {
                    // ww and wr lead to the same state: one of them will do.
                    if bits & rel == 0 || (rel == WR && bits & WW != 0) {
                        continue;
                    }
                    let Some(ns) = self.step(s, rel) else {
                        continue;
                    };
                    let zero = rel == VIRTUAL;
                    let nd = d + u32::from(!zero);
                    if self.visit(round, ly, ns, nd, self.slot(x, s), rel) {
                        if zero {
                            queue.push_front((ly, ns));
                        } else {
                            queue.push_back((ly, ns));
                        }
                    }
                }
            }
            if self.out_of_budget() {
                return None;
            }
        }
        None
    }

    /// A cycle from u given as the walk after it: (node, relation into it).
    fn cycle(&self, path: Vec<(u32, u8)>) -> CycleFound {
        let u = path.last().expect("a cycle has edges").0;
        let steps = collapse(self.g, u, &path);
        CycleFound {
            anomaly: classify(&steps.iter().map(|s| s.rel).collect::<Vec<_>>()),
            steps,
        }
    }

    /// Follows parents from (u, s) back to the start slot and checks that the
    /// cycle is simple and of the wanted class.
    fn rebuild(&self, lu: u32, s: u8, start: usize, lv: u32, anchor: u8) -> Option<CycleFound> {
        let mut path: Vec<(u32, u8)> = Vec::new(); // (global node, rel into it), backwards
        let mut cur = self.slot(lu, s);
        let limit = self.sub.len() * self.states + 2;
        loop {
            if cur == start {
                path.push((self.sub[lv as usize], anchor));
                break;
            }
            let (p, rel) = self.parent[cur];
            path.push((self.sub[cur / self.states], rel));
            cur = p as usize;
            if path.len() > limit {
                debug_assert!(false, "parent chain longer than the search space");
                return None;
            }
        }
        path.reverse();
        let steps = collapse(self.g, self.sub[lu as usize], &path);
        simple_cycle(steps, Anomaly::Cycle(self.shape, self.variant))
    }
}

/// Makes a closed walk simple: while some transaction repeats, split the
/// walk there and keep a part of the wanted class. None if no part is.
fn simple_cycle(steps: Vec<Step>, want: Anomaly) -> Option<CycleFound> {
    let rels = |s: &[Step]| s.iter().map(|x| x.rel).collect::<Vec<_>>();
    let mut seen = std::collections::HashMap::new();
    for (i, st) in steps.iter().enumerate() {
        if let Some(j) = seen.insert(st.from, i) {
            let inner: Vec<Step> = steps[j..i].to_vec();
            let outer: Vec<Step> = steps[..j].iter().chain(&steps[i..]).copied().collect();
            for part in [inner, outer] {
                if !part.is_empty() && classify(&rels(&part)) == want {
                    return simple_cycle(part, want);
                }
            }
            return None;
        }
    }
    (classify(&rels(&steps)) == want).then_some(CycleFound {
        anomaly: want,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_like_elle() {
        assert_eq!(
            classify(&[WW, WW]),
            Anomaly::Cycle(Shape::G0, Variant::Data)
        );
        assert_eq!(
            classify(&[WW, WR]),
            Anomaly::Cycle(Shape::G1c, Variant::Data)
        );
        assert_eq!(
            classify(&[RW, WR]),
            Anomaly::Cycle(Shape::GSingle, Variant::Data)
        );
        assert_eq!(
            classify(&[RW, WR, RW, WR]),
            Anomaly::Cycle(Shape::GNonadjacent, Variant::Data)
        );
        // rw edges adjacent across the wrap-around
        assert_eq!(
            classify(&[RW, WR, RW]),
            Anomaly::Cycle(Shape::G2Item, Variant::Data)
        );
        assert_eq!(
            classify(&[RW, PROCESS]),
            Anomaly::Cycle(Shape::GSingle, Variant::Process)
        );
        assert_eq!(
            classify(&[RW, PROCESS, REALTIME]),
            Anomaly::Cycle(Shape::GSingle, Variant::Realtime)
        );
    }

    #[test]
    fn trims_a_walk_to_a_simple_cycle_of_the_wanted_shape() {
        // 0 -rw-> 1 -wr-> 2 -ww-> 1 -wr-> 0: the walk repeats 1; the outer
        // part 0 -rw-> 1 -wr-> 0 is the G-single.
        let st = |from, to, rel| Step { from, to, rel };
        let walk = vec![st(0, 1, RW), st(1, 2, WR), st(2, 1, WW), st(1, 0, WR)];
        let c = simple_cycle(walk, Anomaly::Cycle(Shape::GSingle, Variant::Data)).unwrap();
        assert_eq!(c.steps, vec![st(0, 1, RW), st(1, 0, WR)]);
    }
}
