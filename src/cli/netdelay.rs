//! `faultline netdelay`: the NFQUEUE delay helper run on a host where the
//! kernel has no tc netem (the helper itself is `net/netdelay.rs`).

/// Runs the helper until it is stopped, then says what it did.
pub fn run(cfg: crate::net::packet::DelayConfig) -> anyhow::Result<()> {
    let stats = crate::net::netdelay::run(&cfg)?;
    eprintln!(
        "netdelay: {} packets ({} reordered, {} corrupted, {} passed over the bound)",
        stats.packets, stats.reordered, stats.corrupted, stats.passed_over_bound
    );
    Ok(())
}
