//! Drawing a fresh seed when none was given: the one place faultline takes
//! randomness from the operating system. Everything random after that comes
//! from a generator seeded with it, so a printed seed replays a run.

/// A new random seed.
pub fn draw() -> u64 {
    rand::random()
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds_differ_from_draw_to_draw() {
        let seeds: std::collections::BTreeSet<u64> = (0..16).map(|_| super::draw()).collect();
        assert_eq!(seeds.len(), 16);
    }
}
