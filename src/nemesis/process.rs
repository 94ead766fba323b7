//! Which nodes a fault hits: one, a minority, a majority, all, the
//! primaries, the voters of an election under way, the nodes a partition
//! has just cut off, or one of the first five at random. Random picks come from
//! the run's seeded generator.

use rand::RngExt;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Targets {
    /// One random node.
    One,
    /// A random minority: (n - 1) / 2 nodes, at least one.
    Minority,
    /// A random majority: n / 2 + 1 nodes.
    Majority,
    All,
    /// The nodes that claim leadership when the fault starts.
    Primaries,
    /// The nodes that have just voted in an election still under way that
    /// another candidate contests: they voted for another node, have not
    /// heard from a leader since, and some node of their term voted for a
    /// third. The fault waits for such an election (see
    /// [`super::Faults::voters`]); with Raft this is when a lost vote lets a
    /// node vote twice in one term.
    Voters,
    /// The nodes the partition that has just started cuts off from a
    /// majority. The fault waits for a partition to start and strikes at
    /// once: a clock that jumps while its node is cut off, before its lease
    /// runs out, is what breaks a lease measured on the wall clock.
    CutOff,
    /// Drawn anew at every start among one, minority, majority, all and the
    /// primaries (Jepsen's kill and pause targets); the primaries only when
    /// some node claims to lead.
    Random,
}

/// What [`Targets::Random`] draws from.
const RANDOM_CHOICES: [Targets; 5] = [
    Targets::One,
    Targets::Minority,
    Targets::Majority,
    Targets::All,
    Targets::Primaries,
];

impl Targets {
    pub fn name(self) -> &'static str {
        match self {
            Targets::One => "one",
            Targets::Minority => "minority",
            Targets::Majority => "majority",
            Targets::All => "all",
            Targets::Primaries => "primaries",
            Targets::Voters => "voters",
            Targets::CutOff => "cut-off",
            Targets::Random => "random",
        }
    }

    /// Picks the targets among `candidates` (sorted output). `asked` (what
    /// the nodes said: the primaries or the voters) is only read for
    /// [`Targets::Primaries`] and [`Targets::Voters`]. Errors when nothing can
    /// be hit.
    pub fn pick(
        self,
        candidates: &[String],
        asked: &[String],
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<String>, String> {
        if candidates.is_empty() {
            return Err("no node can be targeted (all are already down or paused)".to_string());
        }
        if self == Targets::Random {
            let primaries = candidates.iter().any(|c| asked.contains(c));
            let choices = if primaries {
                &RANDOM_CHOICES[..]
            } else {
                &RANDOM_CHOICES[..4]
            };
            let drawn = choices[rng.random_range(0..choices.len())];
            return drawn.pick(candidates, asked, rng);
        }
        let mut pool = candidates.to_vec();
        pool.sort();
        let n = pool.len();
        let count = match self {
            Targets::Random => unreachable!("drawn above"),
            Targets::One => 1,
            Targets::Minority => ((n - 1) / 2).max(1),
            Targets::Majority => n / 2 + 1,
            Targets::All => n,
            Targets::Primaries | Targets::Voters | Targets::CutOff => {
                let picked: Vec<String> = pool.into_iter().filter(|c| asked.contains(c)).collect();
                if picked.is_empty() {
                    return Err(match self {
                        Targets::Primaries => "no available node claims to be a primary",
                        Targets::CutOff => "no available node is cut off by the partition",
                        _ => "no available node voted in an election under way",
                    }
                    .to_string());
                }
                return Ok(picked);
            }
        };
        pool.shuffle(rng);
        let mut picked = pool[..count.min(n)].to_vec();
        picked.sort();
        Ok(picked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn target_sizes_follow_the_cluster_size() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (n, minority, majority) in [(1, 1, 1), (3, 1, 2), (4, 1, 3), (5, 2, 3), (7, 3, 4)] {
            let all = nodes(n);
            assert_eq!(Targets::One.pick(&all, &[], &mut rng).unwrap().len(), 1);
            assert_eq!(
                Targets::Minority.pick(&all, &[], &mut rng).unwrap().len(),
                minority,
                "n={n}"
            );
            assert_eq!(
                Targets::Majority.pick(&all, &[], &mut rng).unwrap().len(),
                majority,
                "n={n}"
            );
            assert_eq!(Targets::All.pick(&all, &[], &mut rng).unwrap(), all);
        }
    }

    #[test]
    fn picks_follow_the_seed_and_vary_across_seeds() {
        let all = nodes(5);
        let pick = |seed| {
            Targets::Minority
                .pick(&all, &[], &mut ChaCha8Rng::seed_from_u64(seed))
                .unwrap()
        };
        assert_eq!(pick(11), pick(11));
        let distinct: std::collections::BTreeSet<_> = (0..40).map(pick).collect();
        assert!(distinct.len() > 3);
    }

    #[test]
    fn random_targets_draw_every_subset_and_the_primaries_only_when_some_lead() {
        let all = nodes(5);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut sizes = std::collections::BTreeSet::new();
        let mut primaries_alone = 0;
        for _ in 0..200 {
            let got = Targets::Random
                .pick(&all, &["n4".into()], &mut rng)
                .unwrap();
            sizes.insert(got.len());
            primaries_alone += usize::from(got == vec!["n4".to_string()]);
        }
        // one, minority, majority, all.
        assert_eq!(sizes, [1, 2, 3, 5].into_iter().collect());
        // n4 alone: drawn as the primaries (1 in 5) or as the one (1 in 25).
        assert!((25..=80).contains(&primaries_alone), "{primaries_alone}");
        for _ in 0..50 {
            let got = Targets::Random.pick(&all, &[], &mut rng).unwrap();
            assert!(!got.is_empty());
        }
        assert!(Targets::Random.pick(&[], &[], &mut rng).is_err());
    }

    #[test]
    fn primaries_are_the_claimants_among_the_candidates() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let got = Targets::Primaries
            .pick(&nodes(5), &["n3".into(), "n9".into()], &mut rng)
            .unwrap();
        assert_eq!(got, vec!["n3".to_string()]);
        assert!(Targets::Primaries.pick(&nodes(5), &[], &mut rng).is_err());
        assert!(Targets::All.pick(&[], &[], &mut rng).is_err());
    }
}
