//! Partition shapes and the grudges they make.
//!
//! A grudge maps each node to the nodes it drops packets from. Every shape
//! here makes a symmetric grudge (if a drops b, b drops a). Random shapes
//! draw from the run's seeded generator, so a seed replays the same cuts.

use rand::RngExt;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Node → the nodes whose packets it drops. Nodes that drop nothing are absent.
pub type Grudge = BTreeMap<String, BTreeSet<String>>;

/// How to cut the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// The sorted node list cut in two, the smaller half first.
    Halves,
    /// Two halves of a shuffled node list.
    RandomHalves,
    /// One random node cut off from all others.
    Isolate,
    /// Each node sees a majority (its ring neighbours), no two the same one.
    MajoritiesRing,
    /// Two halves that both see one bridge node.
    Bridge,
    /// Whichever nodes claim leadership, each cut off alone.
    Primaries,
    /// Drawn anew at every start among random halves, isolate, a
    /// majorities ring, a bridge and the primaries (Jepsen's combined
    /// partitions); only the shapes the cluster can take (a ring needs 4
    /// nodes, a bridge 3), the primaries only when some node claims to lead.
    Random,
    /// Exactly this grudge: node → nodes it drops from (made symmetric).
    Grudge(BTreeMap<String, Vec<String>>),
}

/// What [`Shape::Random`] draws from.
const RANDOM_SHAPES: [Shape; 5] = [
    Shape::RandomHalves,
    Shape::Isolate,
    Shape::MajoritiesRing,
    Shape::Bridge,
    Shape::Primaries,
];

impl Shape {
    pub fn name(&self) -> &'static str {
        match self {
            Shape::Halves => "halves",
            Shape::RandomHalves => "random-halves",
            Shape::Isolate => "isolate",
            Shape::MajoritiesRing => "majorities-ring",
            Shape::Bridge => "bridge",
            Shape::Primaries => "primaries",
            Shape::Random => "random",
            Shape::Grudge(_) => "grudge",
        }
    }
}

/// Every node drops every node outside its own component.
pub fn complete_grudge(components: &[Vec<String>]) -> Grudge {
    let mut grudge = Grudge::new();
    for (i, component) in components.iter().enumerate() {
        let others: BTreeSet<String> = components
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .flat_map(|(_, c)| c.iter().cloned())
            .collect();
        if others.is_empty() {
            continue;
        }
        for node in component {
            grudge.insert(node.clone(), others.clone());
        }
    }
    grudge
}

/// The shape this start cuts: [`Shape::Random`] drawn among the shapes
/// `nodes` can take, any other shape itself.
pub fn draw(shape: &Shape, nodes: &[String], primaries: &[String], rng: &mut ChaCha8Rng) -> Shape {
    if *shape != Shape::Random {
        return shape.clone();
    }
    let choices: Vec<&Shape> = RANDOM_SHAPES
        .iter()
        .filter(|s| match s {
            Shape::MajoritiesRing => nodes.len() >= 4,
            Shape::Bridge => nodes.len() >= 3,
            Shape::Primaries => primaries.iter().any(|p| nodes.contains(p)),
            _ => true,
        })
        .collect();
    choices[rng.random_range(0..choices.len())].clone()
}

/// The grudge of `shape` over `nodes`. `primaries` is only read by
/// [`Shape::Primaries`]. Errors say why the shape cannot cut these nodes.
pub fn grudge(
    shape: &Shape,
    nodes: &[String],
    primaries: &[String],
    rng: &mut ChaCha8Rng,
) -> Result<Grudge, String> {
    if nodes.len() < 2 {
        return Err(format!(
            "a partition needs at least 2 nodes, the cluster has {}",
            nodes.len()
        ));
    }
    let mut sorted = nodes.to_vec();
    sorted.sort();
    if *shape == Shape::Random {
        let drawn = draw(shape, nodes, primaries, rng);
        return grudge(&drawn, nodes, primaries, rng);
    }
    let mut shuffled = || {
        let mut v = sorted.clone();
        v.shuffle(rng);
        v
    };
    Ok(match shape {
        Shape::Halves => {
            let (a, b) = sorted.split_at(sorted.len() / 2);
            complete_grudge(&[a.to_vec(), b.to_vec()])
        }
        Shape::RandomHalves => {
            let v = shuffled();
            let (a, b) = v.split_at(v.len() / 2);
            complete_grudge(&[a.to_vec(), b.to_vec()])
        }
        Shape::Isolate => {
            let v = shuffled();
            complete_grudge(&[v[..1].to_vec(), v[1..].to_vec()])
        }
        Shape::MajoritiesRing => majorities_ring(&shuffled())?,
        Shape::Bridge => {
            if sorted.len() < 3 {
                return Err("a bridge needs at least 3 nodes".to_string());
            }
            let v = shuffled();
            let mid = v.len() / 2;
            let (left, bridge, right) = (&v[..mid], &v[mid], &v[mid + 1..]);
            let mut grudge = complete_grudge(&[left.to_vec(), right.to_vec()]);
            debug_assert!(!grudge.contains_key(bridge));
            for set in grudge.values_mut() {
                set.remove(bridge);
            }
            grudge
        }
        Shape::Random => unreachable!("drawn above"),
        Shape::Primaries => {
            let mut ps: Vec<String> = primaries
                .iter()
                .filter(|p| sorted.contains(p))
                .cloned()
                .collect();
            ps.sort();
            ps.dedup();
            if ps.is_empty() {
                return Err("no node claims to be a primary".to_string());
            }
            let rest: Vec<String> = sorted.iter().filter(|n| !ps.contains(n)).cloned().collect();
            let mut components: Vec<Vec<String>> = ps.into_iter().map(|p| vec![p]).collect();
            if !rest.is_empty() {
                components.push(rest);
            }
            complete_grudge(&components)
        }
        Shape::Grudge(explicit) => {
            let mut grudge = Grudge::new();
            for (node, from) in explicit {
                for other in std::iter::once(node).chain(from) {
                    if !sorted.contains(other) {
                        return Err(format!(
                            "the grudge names {other:?}, which is not a node ({})",
                            sorted.join(", ")
                        ));
                    }
                }
                for other in from.iter().filter(|o| *o != node) {
                    grudge
                        .entry(node.clone())
                        .or_default()
                        .insert(other.clone());
                    grudge
                        .entry(other.clone())
                        .or_default()
                        .insert(node.clone());
                }
            }
            grudge
        }
    })
}

/// Nodes on a ring each see the nodes within distance `d` on both sides,
/// with `2d + 1` the smallest view that is a majority. Views are distinct
/// and overlapping, so no majority agrees on a single leader's view.
fn majorities_ring(ring: &[String]) -> Result<Grudge, String> {
    let n = ring.len();
    let majority = n / 2 + 1;
    let d = majority / 2; // 2d + 1 >= majority
    if 2 * d + 1 >= n {
        return Err(format!(
            "majorities-ring needs at least 4 nodes, the cluster has {n}"
        ));
    }
    let mut grudge = Grudge::new();
    for (i, node) in ring.iter().enumerate() {
        let blocked: BTreeSet<String> = (0..n)
            .filter(|&j| {
                let dist = (i + n - j) % n;
                dist.min(n - dist) > d
            })
            .map(|j| ring[j].clone())
            .collect();
        grudge.insert(node.clone(), blocked);
    }
    Ok(grudge)
}

/// Who can talk to whom under `grudge`: pairs (a, b), a != b, where b's
/// packets reach a and a's reach b.
pub fn connected_pairs(grudge: &Grudge, nodes: &[String]) -> BTreeSet<(String, String)> {
    let drops = |a: &String, b: &String| grudge.get(a).is_some_and(|s| s.contains(b));
    let mut pairs = BTreeSet::new();
    for a in nodes {
        for b in nodes {
            if a != b && !drops(a, b) && !drops(b, a) {
                pairs.insert((a.clone(), b.clone()));
            }
        }
    }
    pairs
}

/// The nodes that `grudge` leaves reaching fewer than a majority of `nodes`
/// (themselves counted): a minority side, an isolated node. A majorities
/// ring or a bridge cuts nobody off.
pub fn cut_off(grudge: &Grudge, nodes: &[String]) -> Vec<String> {
    let pairs = connected_pairs(grudge, nodes);
    let majority = nodes.len() / 2 + 1;
    nodes
        .iter()
        .filter(|n| 1 + pairs.iter().filter(|(a, _)| a == *n).count() < majority)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(7)
    }

    fn set(xs: &[&str]) -> BTreeSet<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    fn is_symmetric(g: &Grudge) -> bool {
        g.iter()
            .all(|(a, bs)| bs.iter().all(|b| g.get(b).is_some_and(|s| s.contains(a))))
    }

    /// How many nodes `node` can reach, itself included.
    fn view(g: &Grudge, all: &[String], node: &str) -> BTreeSet<String> {
        all.iter()
            .filter(|o| !g.get(node).is_some_and(|s| s.contains(*o)))
            .cloned()
            .collect()
    }

    #[test]
    fn a_random_shape_draws_the_shapes_the_cluster_can_take() {
        let mut rng = rng();
        let drawn = |n: usize, primaries: &[String], rng: &mut ChaCha8Rng| {
            (0..200)
                .map(|_| draw(&Shape::Random, &nodes(n), primaries, rng).name())
                .collect::<BTreeSet<_>>()
        };
        let five = drawn(5, &["n2".to_string()], &mut rng);
        assert_eq!(five.len(), 5, "{five:?}");
        let leaderless = drawn(5, &[], &mut rng);
        assert!(!leaderless.contains("primaries"), "{leaderless:?}");
        assert_eq!(leaderless.len(), 4);
        let three = drawn(3, &[], &mut rng);
        assert!(!three.contains("majorities-ring"), "{three:?}");
        assert_eq!(
            draw(&Shape::Halves, &nodes(5), &[], &mut rng),
            Shape::Halves
        );
        for seed in 0..30 {
            let g = grudge(
                &Shape::Random,
                &nodes(5),
                &["n1".to_string()],
                &mut ChaCha8Rng::seed_from_u64(seed),
            )
            .unwrap();
            assert!(is_symmetric(&g) && !g.is_empty(), "{g:?}");
        }
    }

    #[test]
    fn halves_puts_the_smaller_half_first() {
        let g = grudge(&Shape::Halves, &nodes(5), &[], &mut rng()).unwrap();
        assert_eq!(g["n1"], set(&["n3", "n4", "n5"]));
        assert_eq!(g["n5"], set(&["n1", "n2"]));
        assert!(is_symmetric(&g));
    }

    #[test]
    fn random_halves_and_isolate_follow_the_seed() {
        let all = nodes(5);
        for shape in [Shape::RandomHalves, Shape::Isolate] {
            let a = grudge(&shape, &all, &[], &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
            let b = grudge(&shape, &all, &[], &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
            assert_eq!(a, b, "{shape:?}: one seed, one grudge");
            assert!(is_symmetric(&a));
            let mut seen = BTreeSet::new();
            for seed in 0..50 {
                seen.insert(
                    grudge(&shape, &all, &[], &mut ChaCha8Rng::seed_from_u64(seed)).unwrap(),
                );
            }
            assert!(seen.len() > 3, "{shape:?} should vary with the seed");
        }
        let g = grudge(&Shape::Isolate, &all, &[], &mut rng()).unwrap();
        let alone: Vec<_> = g.iter().filter(|(_, s)| s.len() == 4).collect();
        assert_eq!(alone.len(), 1, "{g:?}");
    }

    #[test]
    fn majorities_ring_gives_every_node_a_distinct_majority() {
        for n in [4, 5, 6, 7, 9] {
            let all = nodes(n);
            let g = grudge(&Shape::MajoritiesRing, &all, &[], &mut rng()).unwrap();
            assert!(is_symmetric(&g));
            let views: BTreeSet<_> = all.iter().map(|x| view(&g, &all, x)).collect();
            assert_eq!(views.len(), n, "n={n}: views must differ");
            for v in &views {
                assert!(v.len() > n / 2, "n={n}: view {v:?} is not a majority");
                assert!(v.len() < n, "n={n}: view {v:?} sees everyone");
            }
        }
        assert!(grudge(&Shape::MajoritiesRing, &nodes(3), &[], &mut rng()).is_err());
    }

    #[test]
    fn bridge_joins_two_halves_through_one_node() {
        let all = nodes(5);
        let g = grudge(&Shape::Bridge, &all, &[], &mut rng()).unwrap();
        let bridges: Vec<_> = all
            .iter()
            .filter(|n| view(&g, &all, n).len() == 5)
            .collect();
        assert_eq!(bridges.len(), 1, "{g:?}");
        for n in all.iter().filter(|n| !bridges.contains(n)) {
            assert_eq!(view(&g, &all, n).len(), 3, "{n}: its half plus the bridge");
        }
        assert!(is_symmetric(&g));
    }

    #[test]
    fn primaries_are_each_cut_off_alone() {
        let all = nodes(5);
        let g = grudge(
            &Shape::Primaries,
            &all,
            &["n4".into(), "n2".into(), "zz".into()],
            &mut rng(),
        )
        .unwrap();
        assert_eq!(g["n2"], set(&["n1", "n3", "n4", "n5"]));
        assert_eq!(g["n4"], set(&["n1", "n2", "n3", "n5"]));
        assert_eq!(g["n1"], set(&["n2", "n4"]));
        assert!(
            grudge(&Shape::Primaries, &all, &[], &mut rng())
                .unwrap_err()
                .contains("primary")
        );
    }

    #[test]
    fn cut_off_nodes_are_those_left_without_a_majority() {
        let all = nodes(5);
        let at = |shape: Shape, primaries: &[String]| {
            cut_off(&grudge(&shape, &all, primaries, &mut rng()).unwrap(), &all)
        };
        assert_eq!(at(Shape::Halves, &[]), vec!["n1", "n2"]);
        assert_eq!(at(Shape::Primaries, &["n4".into()]), vec!["n4"]);
        assert_eq!(at(Shape::Isolate, &[]).len(), 1);
        assert!(at(Shape::MajoritiesRing, &[]).is_empty());
        assert!(at(Shape::Bridge, &[]).is_empty());
        assert!(cut_off(&Grudge::new(), &all).is_empty());
    }

    #[test]
    fn an_explicit_grudge_is_made_symmetric_and_checked() {
        let all = nodes(3);
        let explicit = BTreeMap::from([("n1".to_string(), vec!["n2".to_string()])]);
        let g = grudge(&Shape::Grudge(explicit), &all, &[], &mut rng()).unwrap();
        assert_eq!(
            g,
            Grudge::from([("n1".into(), set(&["n2"])), ("n2".into(), set(&["n1"]))])
        );
        let bad = BTreeMap::from([("n1".to_string(), vec!["n9".to_string()])]);
        assert!(
            grudge(&Shape::Grudge(bad), &all, &[], &mut rng())
                .unwrap_err()
                .contains("n9")
        );
    }

    #[test]
    fn connected_pairs_match_the_components() {
        let all = nodes(4);
        let g = complete_grudge(&[
            vec!["n1".into(), "n2".into()],
            vec!["n3".into(), "n4".into()],
        ]);
        let pairs = connected_pairs(&g, &all);
        let want: BTreeSet<(String, String)> =
            [("n1", "n2"), ("n2", "n1"), ("n3", "n4"), ("n4", "n3")]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
        assert_eq!(pairs, want);
    }
}
