//! [`HostNet`]: the fault mechanisms of one host, run through its [`Remote`].
//!
//! Each method is one shell command on the host (one round trip), which
//! first appends to the heal journal what it is about to change, then
//! changes it. Methods are blocking; the nemesis calls them for all hosts in
//! parallel.

use super::clock::format_offset;
use super::iptables::{self, CHAIN_IN, CHAIN_OUT};
use super::journal::{self, Entry};
use super::packet::{self, Mechanism, PacketFault};
use crate::control::{ALIVE, Remote, RemoteError, shell_quote};
use serde::Serialize;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;

/// How long one fault command may take on a host.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// Where faultline keeps its journal, pidfiles and logs on a host, unless told.
pub const DEFAULT_STATE_DIR: &str = "/run/faultline";

/// Units of time daemons the real-clock fault stops (and heal starts again).
const TIME_DAEMONS: &[&str] = &[
    "chrony",
    "chronyd",
    "ntp",
    "ntpd",
    "ntpsec",
    "openntpd",
    "systemd-timesyncd",
];

#[derive(Debug, Error)]
pub enum NetError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error("{host}: cannot apply {fault}: {why}")]
    Unsupported {
        host: String,
        fault: String,
        why: String,
    },
    #[error("{host}: {detail}")]
    Host { host: String, detail: String },
}

/// How a host's node gets its wall clock moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostClock {
    /// The node runs under libfaketime reading this offset file
    /// (hosts sharing the controller's kernel: netns, Docker).
    Faketime { file: String },
    /// The host's real clock, with the clock_settime helper (SSH lab hosts).
    Settime,
}

/// What a packet fault did on one host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PacketApplied {
    pub device: String,
    pub mechanisms: Vec<Mechanism>,
}

/// One host as the fault mechanisms see it.
pub struct HostNet {
    pub remote: Arc<dyn Remote>,
    /// The host's address on the cluster network: what its peers see.
    pub addr: IpAddr,
    /// The controller's address as the host sees it; never blocked or slowed.
    pub controller: Option<IpAddr>,
    /// faultline's directory on the host (journal, pidfiles, helper logs).
    pub state_dir: String,
    /// The faultline executable on the host (netdelay and clock helpers).
    pub helper: String,
    pub clock: HostClock,
    /// `Some(false)` once a `tc` call said netem is missing.
    netem: Mutex<Option<bool>>,
    /// Set once our chains are known to be hooked (cleared by heal).
    hooked: AtomicBool,
}

impl HostNet {
    pub fn new(remote: Arc<dyn Remote>, addr: IpAddr, helper: &str, clock: HostClock) -> HostNet {
        HostNet {
            remote,
            addr,
            controller: None,
            state_dir: DEFAULT_STATE_DIR.to_string(),
            helper: helper.to_string(),
            clock,
            netem: Mutex::new(None),
            hooked: AtomicBool::new(false),
        }
    }

    pub fn with_controller(mut self, controller: IpAddr) -> HostNet {
        self.controller = Some(controller);
        self
    }

    pub fn with_state_dir(mut self, state_dir: &str) -> HostNet {
        self.state_dir = state_dir.to_string();
        self
    }

    pub fn name(&self) -> &str {
        self.remote.name()
    }

    fn record(&self, entry: &Entry) -> String {
        journal::record_command(&self.state_dir, entry)
    }

    fn run(&self, script: &str) -> Result<String, NetError> {
        Ok(self.remote.run(script, COMMAND_TIMEOUT)?)
    }

    /// Journal + hook lines that must precede any rule in our chains.
    fn chains_prelude(&self) -> String {
        let mut s = format!("{}\n", self.record(&Entry::Chains));
        if !self.hooked.load(Ordering::Relaxed) {
            s.push_str(&iptables::hook_script());
        }
        s
    }

    /// Drops everything arriving from `blocked` (replacing any earlier partition).
    pub fn partition(&self, blocked: &[IpAddr]) -> Result<(), NetError> {
        if let Some(c) = self.controller {
            debug_assert!(!blocked.contains(&c), "the controller is never blocked");
        }
        let script = format!(
            "set -e\n{}{}",
            self.chains_prelude(),
            iptables::replace_chain_command(
                CHAIN_IN,
                self.controller,
                &iptables::partition_rules(blocked)
            )
        );
        self.run(&script)?;
        self.hooked.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Removes the partition rules (the chains stay until [`HostNet::heal`]).
    pub fn heal_partition(&self) -> Result<(), NetError> {
        self.run(&format!("iptables -w -F {CHAIN_IN} 2>/dev/null || true"))?;
        Ok(())
    }

    /// The device that carries the host's cluster address.
    pub fn device(&self) -> Result<String, NetError> {
        let out = self.run(&format!("ip -o addr show to {}", self.addr))?;
        device_from_ip_addr(&out).ok_or_else(|| NetError::Host {
            host: self.name().to_string(),
            detail: format!(
                "no device holds {} (ip -o addr said {:?})",
                self.addr,
                out.trim()
            ),
        })
    }

    /// Applies `fault` to the host's outgoing traffic: netem if the kernel
    /// has it, the fallbacks otherwise. `seed` drives the delay helper.
    pub fn packet(&self, fault: &PacketFault, seed: u64) -> Result<PacketApplied, NetError> {
        let unsupported = |why: String| NetError::Unsupported {
            host: self.name().to_string(),
            fault: "packet fault".to_string(),
            why,
        };
        fault.validate().map_err(unsupported)?;
        let device = self.device()?;
        let dev = shell_quote(&device);
        if *self.netem.lock().unwrap_or_else(|e| e.into_inner()) != Some(false) {
            let script = format!(
                "{}\ntc qdisc replace dev {dev} root netem {}",
                self.record(&Entry::Qdisc(device.clone())),
                fault.netem_args()
            );
            let out = self.remote.exec(&script, None, COMMAND_TIMEOUT)?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.success() {
                *self.netem.lock().unwrap_or_else(|e| e.into_inner()) = Some(true);
                return Ok(PacketApplied {
                    device,
                    mechanisms: vec![Mechanism::Netem],
                });
            }
            if !packet::is_unknown_qdisc(&stderr) {
                return Err(RemoteError::Failed {
                    host: self.name().to_string(),
                    command: format!("tc qdisc replace dev {device} root netem ..."),
                    code: out.code,
                    stderr: stderr.trim().to_string(),
                }
                .into());
            }
            tracing::info!(
                host = self.name(),
                "no tc netem on this kernel; using the fallbacks"
            );
            *self.netem.lock().unwrap_or_else(|e| e.into_inner()) = Some(false);
        }
        let plan = fault
            .fallback_plan(seed)
            .map_err(|why| unsupported(format!("{why}, and this host's kernel has no netem")))?;
        let mut script = format!("set -e\n{}", self.chains_prelude());
        if let Some(cfg) = &plan.helper {
            let pidfile = format!("{}/netdelay.pid", self.state_dir);
            script.push_str(&format!(
                "{}\n",
                self.record(&Entry::Helper(pidfile.clone()))
            ));
            script.push_str(&self.start_helper_script(&pidfile, "netdelay", &cfg.to_args(), true));
        }
        script.push_str(&iptables::replace_chain_command(
            CHAIN_OUT,
            self.controller,
            &plan.out_rules(),
        ));
        if let Some(rate) = plan.rate_kbit {
            script.push_str(&format!(
                "{}\ntc qdisc replace dev {dev} root {}\n",
                self.record(&Entry::Qdisc(device.clone())),
                packet::tbf_args(rate)
            ));
        }
        self.run(&script)?;
        self.hooked.store(true, Ordering::Relaxed);
        Ok(PacketApplied {
            device,
            mechanisms: plan.mechanisms(),
        })
    }

    /// Shell lines that (re)start a detached helper `faultline SUBCOMMAND ARGS`
    /// writing `pidfile`. With `wait_for_pidfile`, the helper writes the
    /// pidfile itself once ready and the script waits for it (at most 3 s).
    fn start_helper_script(
        &self,
        pidfile: &str,
        subcommand: &str,
        args: &str,
        wait_for_pidfile: bool,
    ) -> String {
        let p = shell_quote(pidfile);
        let log = shell_quote(&format!("{}/{subcommand}.log", self.state_dir));
        let mut s = format!("{}\n", journal::kill_helper_command(pidfile));
        if wait_for_pidfile {
            s.push_str(&format!(
                "setsid {h} {subcommand} {args} --pidfile {p} > {log} 2>&1 < /dev/null &\n\
                 i=0; while [ ! -s {p} ] && [ $i -lt 300 ]; do sleep 0.01; i=$((i+1)); done\n\
                 [ -s {p} ] || {{ echo 'faultline {subcommand} did not start:' >&2; cat {log} >&2; exit 1; }}\n",
                h = shell_quote(&self.helper)
            ));
        } else {
            s.push_str(&format!(
                "setsid {h} {subcommand} {args} > {log} 2>&1 < /dev/null &\necho $! > {p}\n",
                h = shell_quote(&self.helper)
            ));
        }
        s
    }

    /// Removes the packet fault: our qdisc, our out-chain rules, the helper.
    pub fn heal_packet(&self) -> Result<(), NetError> {
        let device = self.device()?;
        self.run(&format!(
            "tc qdisc del dev {} root 2>/dev/null; iptables -w -F {CHAIN_OUT} 2>/dev/null; {}; true",
            shell_quote(&device),
            journal::kill_helper_command(&format!("{}/netdelay.pid", self.state_dir))
        ))?;
        Ok(())
    }

    /// The arguments that point the clock helper at this host's clock, and
    /// the journal/daemon lines that must run first.
    fn clock_prelude(&self) -> (String, String) {
        match &self.clock {
            HostClock::Faketime { file } => (
                format!("{}\n", self.record(&Entry::Faketime(file.clone()))),
                format!("--faketime-file {}", shell_quote(file)),
            ),
            HostClock::Settime => {
                let state_file = format!("{}/clock-offset-ms", self.state_dir);
                // Never the controller's own clock: a host that shares its
                // kernel (a namespace, a container) would move it for everyone.
                let mut s = match controller_boot_id() {
                    Some(id) => format!(
                        "if [ \"$(cat /proc/sys/kernel/random/boot_id)\" = {id} ]; then \
                         echo 'this host shares the controller'\\''s kernel, so clock_settime would move the \
                         controller'\\''s clock: run the nodes under libfaketime instead' >&2; exit 1; fi\n"
                    ),
                    None => String::new(),
                };
                for unit in TIME_DAEMONS {
                    s.push_str(&format!(
                        "if command -v systemctl >/dev/null && systemctl is-active --quiet {unit}; then {}; systemctl stop {unit}; fi\n",
                        self.record(&Entry::TimeDaemon(unit.to_string()))
                    ));
                }
                let entry = Entry::Clock {
                    helper: self.helper.clone(),
                    state_file: state_file.clone(),
                };
                s.push_str(&format!("{}\n", self.record(&entry)));
                (s, format!("--state-file {}", shell_quote(&state_file)))
            }
        }
    }

    /// Shifts the node's wall clock by `delta_ms`; returns the new total offset.
    pub fn clock_bump(&self, delta_ms: i64) -> Result<i64, NetError> {
        let (prelude, target) = self.clock_prelude();
        let out = self.run(&format!(
            "set -e\n{prelude}{} clock bump --ms={delta_ms} {target}",
            shell_quote(&self.helper)
        ))?;
        parse_total(&out).ok_or_else(|| NetError::Host {
            host: self.name().to_string(),
            detail: format!(
                "the clock helper printed {:?}, not the new offset",
                out.trim()
            ),
        })
    }

    /// Starts a helper that flips the clock by `delta_ms` every `period_ms`
    /// for `duration_ms` (heal or [`HostNet::clock_reset`] stops it sooner).
    pub fn clock_strobe(
        &self,
        delta_ms: i64,
        period_ms: u64,
        duration_ms: u64,
    ) -> Result<(), NetError> {
        let (prelude, target) = self.clock_prelude();
        let pidfile = format!("{}/strobe.pid", self.state_dir);
        let args = format!(
            "strobe --delta-ms={delta_ms} --period-ms {period_ms} --duration-ms {duration_ms} {target}"
        );
        self.run(&format!(
            "set -e\n{prelude}{}\n{}",
            self.record(&Entry::Helper(pidfile.clone())),
            self.start_helper_script(&pidfile, "clock", &args, false)
        ))?;
        Ok(())
    }

    /// Stops a strobe and puts the clock back; returns the offset undone.
    pub fn clock_reset(&self) -> Result<i64, NetError> {
        let (prelude, target) = self.clock_prelude();
        let out = self.run(&format!(
            "set -e\n{}\n{prelude}{} clock reset {target}",
            journal::kill_helper_command(&format!("{}/strobe.pid", self.state_dir)),
            shell_quote(&self.helper)
        ))?;
        parse_total(&out).ok_or_else(|| NetError::Host {
            host: self.name().to_string(),
            detail: format!(
                "the clock helper printed {:?}, not the offset undone",
                out.trim()
            ),
        })
    }

    /// Fails unless process `pid` has libfaketime loaded (a static binary, or
    /// one started without the wrapper, ignores the offset file).
    pub fn check_faketime_loaded(&self, pid: u32) -> Result<(), NetError> {
        if !matches!(self.clock, HostClock::Faketime { .. }) {
            return Ok(());
        }
        let out = self.remote.exec(
            &format!("grep -q libfaketime /proc/{pid}/maps"),
            None,
            COMMAND_TIMEOUT,
        )?;
        if out.success() {
            return Ok(());
        }
        Err(NetError::Unsupported {
            host: self.name().to_string(),
            fault: "clock fault".to_string(),
            why: format!(
                "process {pid} has not loaded libfaketime (a static binary, or not started under \
                 the libfaketime wrapper), so its clock cannot be moved"
            ),
        })
    }

    /// SIGSTOPs `pid`, and with `children` its children too (journaled:
    /// heal sends SIGCONT to it and its children).
    pub fn pause(&self, pid: u32, children: bool) -> Result<(), NetError> {
        self.run(&format!(
            "set -e\n{}\n{}",
            self.record(&Entry::Paused(pid)),
            signal_command(pid, "STOP", children)
        ))?;
        Ok(())
    }

    pub fn resume(&self, pid: u32, children: bool) -> Result<(), NetError> {
        self.run(&signal_command(pid, "CONT", children))?;
        Ok(())
    }

    /// SIGKILLs `pid`, and with `children` its children too, then waits
    /// until it has exited ([`HostNet::wait_exit`]).
    pub fn kill(&self, pid: u32, children: bool) -> Result<(), NetError> {
        self.signal_kill(pid, children)?;
        self.wait_exit(pid)
    }

    /// SIGKILLs `pid`, and with `children` its children too, without
    /// waiting: from here it runs no code of its own, though a thread may
    /// still be finishing a system call (a power loss strikes now, before an
    /// fsync under way completes). Not journaled: restarting is the node
    /// control's job.
    pub fn signal_kill(&self, pid: u32, children: bool) -> Result<(), NetError> {
        // On a host that shares our pids the kill is ours to send: it lands
        // within a millisecond, not after a command is spawned on the host.
        if !children && self.remote.shares_our_pids() {
            return crate::control::kill_here(pid).map_err(|detail| NetError::Host {
                host: self.name().to_string(),
                detail,
            });
        }
        self.run(&signal_command(pid, "KILL", children))?;
        Ok(())
    }

    /// Waits (up to 2 s) until killed `pid` has exited ([`ALIVE`]): a
    /// killed process takes a moment to die (an fsync under way), and a
    /// start too soon found it alive, started nothing, and the node was
    /// then down unexplained, or found its port still taken.
    pub fn wait_exit(&self, pid: u32) -> Result<(), NetError> {
        const WAIT: Duration = Duration::from_secs(2);
        if self.remote.shares_our_pids() {
            crate::control::wait_exit_here(pid, WAIT);
            return Ok(());
        }
        // Bounded: 10 ms a turn.
        self.run(&format!(
            "{ALIVE}i=0; while [ $i -lt {} ] && alive {pid}; do sleep 0.01; i=$((i+1)); done",
            WAIT.as_millis() / 10
        ))?;
        Ok(())
    }

    /// Undoes every fault the journal lists, newest first, and removes them
    /// from it; what outlives faults (a lazy file system under the running
    /// nodes, [`Entry::outlives_faults`]) stays until teardown. Returns the
    /// entries undone. Idempotent.
    pub fn heal(&self) -> Result<Vec<String>, NetError> {
        heal_journal(self.remote.as_ref(), &self.state_dir, false).inspect(|_| {
            self.hooked.store(false, Ordering::Relaxed);
        })
    }
}

/// `signal` to `pid`, and with `children` to its children too.
fn signal_command(pid: u32, signal: &str, children: bool) -> String {
    if children {
        crate::control::signal_tree(&pid.to_string(), signal)
    } else {
        format!("kill -{signal} {pid}")
    }
}

/// This machine's boot id: a host with the same one shares our kernel.
fn controller_boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
        .then(|| id.to_string())
}

/// Heals one host by its journal alone, everything in it: what `faultline
/// heal` does after a crash, when nothing else about the run is known, and
/// what teardown does once the nodes are stopped.
pub fn heal_remote(remote: &dyn Remote, state_dir: &str) -> Result<Vec<String>, NetError> {
    heal_journal(remote, state_dir, true)
}

/// Undoes the journal's entries; those that outlive faults only if `all`.
fn heal_journal(remote: &dyn Remote, state_dir: &str, all: bool) -> Result<Vec<String>, NetError> {
    let j = shell_quote(&journal::path(state_dir));
    let text = remote.run(&format!("cat {j} 2>/dev/null || true"), COMMAND_TIMEOUT)?;
    let (entries, unknown) = journal::parse(&text);
    if !unknown.is_empty() {
        tracing::warn!(
            host = remote.name(),
            ?unknown,
            "heal journal lines this version does not know"
        );
    }
    let (kept, undone): (Vec<Entry>, Vec<Entry>) = entries
        .into_iter()
        .partition(|e| !all && e.outlives_faults());
    if undone.is_empty() {
        if kept.is_empty() {
            remote.run(&format!("rm -f {j}"), COMMAND_TIMEOUT)?;
        }
        return Ok(Vec::new());
    }
    remote.run(
        &journal::heal_script(state_dir, &undone, &kept),
        COMMAND_TIMEOUT,
    )?;
    Ok(undone.iter().map(Entry::to_line).collect())
}

/// One journal entry and what is in place for it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InPlace {
    /// The journal line (`chains`, `qdisc eth0`, `faketime FILE`, ...).
    pub entry: String,
    /// What the host shows for it now: rules, a helper's pid, an offset.
    /// Empty when it is already gone (a heal would then undo nothing).
    pub now: Vec<String>,
}

/// What the host's heal journal lists and what is still in place for each
/// entry, read-only: `cluster status` after a controller was killed.
pub fn in_place(remote: &dyn Remote, state_dir: &str) -> Result<Vec<InPlace>, NetError> {
    let j = shell_quote(&journal::path(state_dir));
    let text = remote.run(&format!("cat {j} 2>/dev/null || true"), COMMAND_TIMEOUT)?;
    let (entries, unknown) = journal::parse(&text);
    let mut found: Vec<InPlace> = unknown
        .into_iter()
        .map(|line| InPlace {
            entry: line,
            now: vec!["(a journal line this version does not know)".into()],
        })
        .collect();
    if entries.is_empty() {
        return Ok(found);
    }
    // One round trip: each entry's output after a marker line.
    let script: String = entries
        .iter()
        .enumerate()
        .map(|(i, e)| format!("echo '@@faultline {i}'\n{}\n", e.inspect_command()))
        .collect();
    let out = remote.run(&script, COMMAND_TIMEOUT)?;
    let mut now: Vec<Vec<String>> = vec![Vec::new(); entries.len()];
    let mut current = None;
    for line in out.lines() {
        if let Some(i) = line.strip_prefix("@@faultline ") {
            current = i
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|&i| i < entries.len());
        } else if let Some(i) = current
            && !line.trim().is_empty()
        {
            now[i].push(line.trim().to_string());
        }
    }
    found.extend(entries.iter().zip(now).map(|(e, now)| InPlace {
        entry: e.to_line(),
        now,
    }));
    Ok(found)
}

/// The device name in `ip -o addr show` output (`2: eth0    inet ...`),
/// without a veth's `@ifN` suffix.
fn device_from_ip_addr(out: &str) -> Option<String> {
    let dev = out.lines().next()?.split_whitespace().nth(1)?;
    let dev = dev.split('@').next()?.trim_end_matches(':');
    (!dev.is_empty()).then(|| dev.to_string())
}

/// The clock helper's last line: `offset_ms=N`.
fn parse_total(out: &str) -> Option<i64> {
    let rest = out
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("offset_ms="))?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The line the clock helper prints last, read by [`parse_total`].
pub fn total_line(offset_ms: i64) -> String {
    format!("offset_ms={offset_ms} ({})", format_offset(offset_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_is_read_from_ip_addr_output() {
        let out = "7: veth-n1@if8    inet 10.23.0.2/24 brd 10.23.0.255 scope global veth-n1\\       valid_lft forever\n";
        assert_eq!(device_from_ip_addr(out).as_deref(), Some("veth-n1"));
        assert_eq!(
            device_from_ip_addr("2: eth0    inet 1.2.3.4/8\n").as_deref(),
            Some("eth0")
        );
        assert_eq!(device_from_ip_addr(""), None);
    }

    #[test]
    fn the_helper_total_line_is_read_back() {
        assert_eq!(
            parse_total(&format!("dry run: ...\n{}\n", total_line(-250))),
            Some(-250)
        );
        assert_eq!(parse_total("offset_ms=x"), None);
        assert_eq!(parse_total("nothing"), None);
    }
}
