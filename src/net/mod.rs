//! Fault mechanisms on one host: faultline's own iptables chains, tc qdiscs,
//! the fallbacks where tc netem is missing (the iptables `statistic` match,
//! tbf, the `faultline netdelay` NFQUEUE helper) and the clock helpers
//! (libfaketime offset files, clock_settime). Every change is one shell
//! command through [`crate::control::Remote`], and is written to the host's
//! heal journal before it is made.
//!
//! Not here: which fault, on which hosts, when (that is `nemesis`).

pub mod clock;
mod host;
pub mod iptables;
pub mod journal;
pub mod netdelay;
pub mod packet;

pub use host::{
    COMMAND_TIMEOUT, DEFAULT_STATE_DIR, HostClock, HostNet, InPlace, NetError, PacketApplied,
    heal_remote, in_place, total_line,
};
pub use packet::{Distribution, Mechanism, PacketFault};

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by SIGTERM or SIGINT once [`stop_on_signals`] was called.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// For the helpers that run on hosts (netdelay, clock strobe): SIGTERM and
/// SIGINT set the returned flag instead of killing the process, so the
/// helper can let held packets go or put the clock back before it exits.
pub fn stop_on_signals() -> &'static AtomicBool {
    // SAFETY: the handler only stores to an atomic, which is signal-safe.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_stop_signal as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGINT,
            on_stop_signal as *const () as libc::sighandler_t,
        );
    }
    &STOP
}
