//! faultline's own iptables chains and the shell commands that fill them.
//!
//! Two chains: `faultline-in`, hooked first in INPUT, holds partitions (drop
//! what arrives from cut-off peers); `faultline-out`, hooked first in OUTPUT,
//! holds packet-fault fallbacks (random loss, the NFQUEUE delay helper). Each
//! chain is replaced whole with `iptables-restore --noflush`, so a change is
//! one atomic step and never touches anyone else's rules. Both chains start
//! with a RETURN for the controller's address: the controller is never cut
//! off. Every call uses `-w` (wait for the xtables lock). IPv4 only.

use std::fmt::Write;
use std::net::IpAddr;

/// The chain for partitions, hooked from INPUT.
pub const CHAIN_IN: &str = "faultline-in";
/// The chain for packet-fault fallbacks, hooked from OUTPUT.
pub const CHAIN_OUT: &str = "faultline-out";

/// The NFQUEUE queue number the delay helper binds to.
pub const QUEUE_NUM: u16 = 7713;

/// Shell lines that create both chains if missing and hook each one first in
/// its built-in chain, once. Idempotent, also when two faults run it at once
/// on one host (scripts run under `set -e`, so a chain that already exists
/// must not fail them; a hook inserted twice is harmless and removed by
/// [`remove_chains_script`]).
pub fn hook_script() -> String {
    let mut s = String::new();
    for (builtin, chain) in [("INPUT", CHAIN_IN), ("OUTPUT", CHAIN_OUT)] {
        let _ = writeln!(
            s,
            "iptables -w -N {chain} 2>/dev/null || true; \
             iptables -w -C {builtin} -j {chain} 2>/dev/null || iptables -w -I {builtin} 1 -j {chain}"
        );
    }
    s
}

/// Shell lines that unhook and delete both chains. Safe when they are gone.
pub fn remove_chains_script() -> String {
    let mut s = String::new();
    for (builtin, chain) in [("INPUT", CHAIN_IN), ("OUTPUT", CHAIN_OUT)] {
        // A bounded loop: a hook inserted twice (by hand) is removed too.
        let _ = write!(
            s,
            "i=0; while [ $i -lt 10 ] && iptables -w -D {builtin} -j {chain} 2>/dev/null; do i=$((i+1)); done; \
             iptables -w -F {chain} 2>/dev/null; iptables -w -X {chain} 2>/dev/null; "
        );
    }
    s.push_str("true");
    s
}

/// A shell command that replaces the whole content of `chain` with the
/// controller's RETURN followed by `rules` (each an `-A`-less rule body such
/// as `-s 10.0.0.2 -j DROP`), atomically.
pub fn replace_chain_command(chain: &str, controller: Option<IpAddr>, rules: &[String]) -> String {
    let mut input = format!("*filter\n:{chain} - [0:0]\n");
    if let Some(c) = controller {
        let dir = if chain == CHAIN_IN { "-s" } else { "-d" };
        let _ = writeln!(input, "-A {chain} {dir} {c} -j RETURN");
    }
    for rule in rules {
        debug_assert!(!rule.contains('\n'), "one rule per line: {rule:?}");
        let _ = writeln!(input, "-A {chain} {rule}");
    }
    input.push_str("COMMIT\n");
    format!("iptables-restore -w --noflush <<'FAULTLINE_EOF'\n{input}FAULTLINE_EOF\n")
}

/// The rules of a partition: drop everything that arrives from `blocked`.
pub fn partition_rules(blocked: &[IpAddr]) -> Vec<String> {
    blocked.iter().map(|a| format!("-s {a} -j DROP")).collect()
}

/// A rule that drops each outgoing packet with probability `loss_pct`/100.
pub fn loss_rule(loss_pct: f64) -> String {
    debug_assert!(loss_pct > 0.0 && loss_pct <= 100.0);
    format!(
        "-m statistic --mode random --probability {:.6} -j DROP",
        loss_pct / 100.0
    )
}

/// A rule that hands every outgoing packet to the delay helper, and lets it
/// through untouched when no helper listens (`--queue-bypass`), so a dead
/// helper never blackholes the host.
pub fn nfqueue_rule() -> String {
    format!("-j NFQUEUE --queue-num {QUEUE_NUM} --queue-bypass")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_replaces_its_chain_with_the_controller_first() {
        let blocked: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap()];
        let cmd = replace_chain_command(
            CHAIN_IN,
            Some("10.0.0.254".parse().unwrap()),
            &partition_rules(&blocked),
        );
        let expected = "iptables-restore -w --noflush <<'FAULTLINE_EOF'\n*filter\n:faultline-in - [0:0]\n\
                        -A faultline-in -s 10.0.0.254 -j RETURN\n\
                        -A faultline-in -s 10.0.0.2 -j DROP\n-A faultline-in -s 10.0.0.3 -j DROP\n\
                        COMMIT\nFAULTLINE_EOF\n";
        assert_eq!(cmd, expected);
    }

    #[test]
    fn the_out_chain_exempts_the_controller_as_a_destination() {
        let cmd = replace_chain_command(
            CHAIN_OUT,
            Some("10.9.9.9".parse().unwrap()),
            &[loss_rule(12.5)],
        );
        assert!(cmd.contains("-A faultline-out -d 10.9.9.9 -j RETURN\n"));
        assert!(cmd.contains(
            "-A faultline-out -m statistic --mode random --probability 0.125000 -j DROP\n"
        ));
    }

    #[test]
    fn every_iptables_call_waits_for_the_lock() {
        for script in [
            hook_script(),
            remove_chains_script(),
            replace_chain_command(CHAIN_IN, None, &[]),
        ] {
            for call in script.split("iptables").skip(1) {
                assert!(
                    call.starts_with(" -w") || call.starts_with("-restore -w"),
                    "{script}"
                );
            }
        }
    }

    #[test]
    fn the_helper_rule_bypasses_the_queue_when_the_helper_is_gone() {
        assert_eq!(nfqueue_rule(), "-j NFQUEUE --queue-num 7713 --queue-bypass");
    }
}
