//! The heal journal: one file per host listing what faultline changed there,
//! written *before* each change, so a controller that dies at any moment
//! leaves enough behind for `faultline heal` to undo exactly that.
//!
//! One entry per line, deduplicated. Every undo is idempotent and guarded
//! (a helper pid is only killed if it is still a faultline helper), so heal
//! can run any number of times. What is not here: when to heal and on which
//! hosts (that is `nemesis::heal`).

use super::iptables;
use crate::control::shell_quote;

/// The journal's file name inside the host's state directory.
pub const FILE_NAME: &str = "heal.journal";

/// One thing faultline changed on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Our iptables chains exist and are hooked into INPUT and OUTPUT.
    Chains,
    /// We replaced the root qdisc of this device (netem or tbf).
    Qdisc(String),
    /// A helper process (netdelay, clock strobe) whose pid is in this file.
    Helper(String),
    /// A libfaketime offset file we rewrote; healing writes a zero offset.
    Faketime(String),
    /// A process we stopped with SIGSTOP.
    Paused(u32),
    /// The real clock was shifted by the clock helper, which keeps the
    /// cumulative offset in this state file; healing shifts it back.
    Clock { helper: String, state_file: String },
    /// A time daemon (systemd unit) we stopped; healing starts it again.
    TimeDaemon(String),
    /// A `faultline lazyfs` helper (pid in `pidfile`) with its file system
    /// mounted on `mount`; healing stops it and unmounts. Not a fault but
    /// where the node's data lives: a run's own heals keep it
    /// ([`Entry::outlives_faults`]), teardown and `faultline heal` undo it.
    Lazyfs { pidfile: String, mount: String },
    /// A `faultline lazyfs` helper (`helper` is the faultline executable,
    /// `socket` its control socket) was made slow or full; healing makes it
    /// fast and gives it space again (if it still runs).
    LazyfsFault { helper: String, socket: String },
}

impl Entry {
    /// The entry as one journal line.
    pub fn to_line(&self) -> String {
        match self {
            Entry::Chains => "chains".to_string(),
            Entry::Qdisc(dev) => format!("qdisc {dev}"),
            Entry::Helper(pidfile) => format!("helper {pidfile}"),
            Entry::Faketime(file) => format!("faketime {file}"),
            Entry::Paused(pid) => format!("paused {pid}"),
            Entry::Clock { helper, state_file } => format!("clock {helper} {state_file}"),
            Entry::TimeDaemon(unit) => format!("timedaemon {unit}"),
            Entry::Lazyfs { pidfile, mount } => format!("lazyfs {pidfile} {mount}"),
            Entry::LazyfsFault { helper, socket } => format!("lazyfs-fault {helper} {socket}"),
        }
    }

    /// Whether a run's heal of its faults leaves this in place: the nodes
    /// still run on it until teardown.
    pub fn outlives_faults(&self) -> bool {
        matches!(self, Entry::Lazyfs { .. })
    }

    /// Parses one journal line; `None` for a line this version does not know
    /// (reported by the caller, never guessed at).
    pub fn parse(line: &str) -> Option<Entry> {
        let line = line.trim();
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        let word =
            |s: &str| (!s.is_empty() && !s.contains(char::is_whitespace)).then(|| s.to_string());
        match kind {
            "chains" if rest.is_empty() => Some(Entry::Chains),
            "qdisc" => word(rest).map(Entry::Qdisc),
            "helper" => word(rest).map(Entry::Helper),
            "faketime" => word(rest).map(Entry::Faketime),
            "paused" => rest.parse().ok().map(Entry::Paused),
            "clock" => {
                let (helper, state_file) = rest.split_once(' ')?;
                Some(Entry::Clock {
                    helper: word(helper)?,
                    state_file: word(state_file)?,
                })
            }
            "timedaemon" => word(rest).map(Entry::TimeDaemon),
            "lazyfs" => {
                let (pidfile, mount) = rest.split_once(' ')?;
                Some(Entry::Lazyfs {
                    pidfile: word(pidfile)?,
                    mount: word(mount)?,
                })
            }
            "lazyfs-fault" => {
                let (helper, socket) = rest.split_once(' ')?;
                Some(Entry::LazyfsFault {
                    helper: word(helper)?,
                    socket: word(socket)?,
                })
            }
            _ => None,
        }
    }

    /// The shell command that undoes this entry. Safe to run when the change
    /// was never made or was already undone.
    pub fn undo_command(&self) -> String {
        match self {
            Entry::Chains => iptables::remove_chains_script(),
            Entry::Qdisc(dev) => format!(
                "tc qdisc del dev {} root 2>/dev/null || true",
                shell_quote(dev)
            ),
            Entry::Helper(pidfile) => kill_helper_command(pidfile),
            Entry::Faketime(file) => {
                let f = shell_quote(file);
                format!("if [ -e {f} ]; then echo +0 > {f}.tmp && mv -f {f}.tmp {f}; fi")
            }
            // And the group `pid` leads, if it leads one: a node paused
            // as a whole (`Db::signals_group`). No other group has its id.
            Entry::Paused(pid) => {
                format!(
                    "kill -CONT {pid} 2>/dev/null || true; kill -CONT -{pid} 2>/dev/null || true"
                )
            }
            Entry::Clock { helper, state_file } => format!(
                "if [ -e {s} ]; then {h} clock reset --state-file {s}; fi",
                h = shell_quote(helper),
                s = shell_quote(state_file)
            ),
            Entry::TimeDaemon(unit) => {
                format!("systemctl start {} 2>/dev/null || true", shell_quote(unit))
            }
            // The helper unmounts when stopped; a helper killed outright
            // leaves a dead mount, detached here.
            Entry::Lazyfs { pidfile, mount } => format!(
                "{}; if {}; then umount -l {}; fi",
                kill_helper_command(pidfile),
                lazyfs_mounted(mount),
                shell_quote(mount)
            ),
            Entry::LazyfsFault { helper, socket } => {
                let (h, s) = (shell_quote(helper), shell_quote(socket));
                format!(
                    "if [ -S {s} ]; then {h} lazyfs ctl {s} slow 0 >/dev/null 2>&1; {h} lazyfs ctl {s} full off >/dev/null 2>&1; {h} lazyfs ctl {s} corrupt-read off >/dev/null 2>&1; fi; true"
                )
            }
        }
    }
}

/// A shell test: a faultline lazy file system is mounted on `mount`.
pub fn lazyfs_mounted(mount: &str) -> String {
    format!(
        "awk -v m={} '$1 == \"{LAZYFS_SOURCE}\" && $2 == m {{ f = 1 }} END {{ exit !f }}' /proc/self/mounts",
        shell_quote(mount)
    )
}

/// The source `faultline lazyfs` mounts show in /proc/mounts (their type
/// is plain `fuse`).
pub const LAZYFS_SOURCE: &str = "faultline-lazyfs";

impl Entry {
    /// A shell command that prints what is in place now for this entry
    /// (our chains' rules, a helper's pid, an offset), one thing a line,
    /// nothing when it is gone. Read-only; never fails.
    pub fn inspect_command(&self) -> String {
        let q = |s: &str| shell_quote(s);
        let cmd = match self {
            Entry::Chains => format!(
                "for c in {} {}; do iptables -w -S \"$c\" 2>/dev/null | grep '^-A ' | grep -v -- '-j RETURN$'; done",
                iptables::CHAIN_IN,
                iptables::CHAIN_OUT
            ),
            Entry::Qdisc(dev) => format!("tc qdisc show dev {} root", q(dev)),
            Entry::Helper(pidfile) => format!(
                "p=$(cat {f}); grep -qa faultline /proc/$p/cmdline && echo \"pid $p: $(tr '\\0' ' ' < /proc/$p/cmdline)\"",
                f = q(pidfile)
            ),
            Entry::Faketime(file) => {
                format!("[ -e {f} ] && echo \"offset $(cat {f})\"", f = q(file))
            }
            Entry::Paused(pid) => {
                format!("sed -n 's/^State:[[:space:]]*/state /p' /proc/{pid}/status")
            }
            Entry::Clock { state_file, .. } => {
                let f = q(state_file);
                format!("[ -e {f} ] && echo \"offset_ms $(cat {f})\"")
            }
            Entry::TimeDaemon(unit) => {
                format!(
                    "echo \"{} is $(systemctl is-active {} 2>&1)\"",
                    unit,
                    q(unit)
                )
            }
            Entry::Lazyfs { mount, .. } => {
                format!("{} && echo \"mounted on {}\"", lazyfs_mounted(mount), mount)
            }
            // The helper's status, only while it is slow, full or reads wrong.
            Entry::LazyfsFault { helper, socket } => format!(
                "{} lazyfs ctl {} status | grep -E '\"full\":true|\"slow_ms\":[1-9]|\"read_flips\":[1-9]'",
                q(helper),
                q(socket)
            ),
        };
        format!("{{ {cmd}\n}} 2>/dev/null; true")
    }
}

/// The journal's path on a host whose state directory is `state_dir`.
pub fn path(state_dir: &str) -> String {
    format!("{state_dir}/{FILE_NAME}")
}

/// Shell lines that append `entry` to the journal unless it is there already.
/// They go first in the same command as the change itself (write-ahead).
pub fn record_command(state_dir: &str, entry: &Entry) -> String {
    let j = shell_quote(&path(state_dir));
    let line = shell_quote(&entry.to_line());
    format!(
        "mkdir -p {dir} && {{ grep -qxF {line} {j} 2>/dev/null || echo {line} >> {j}; }}",
        dir = shell_quote(state_dir)
    )
}

/// The command that stops a helper process named in `pidfile`, only if that
/// pid still runs faultline (a reused pid is left alone), then removes the
/// pidfile.
pub fn kill_helper_command(pidfile: &str) -> String {
    let p = shell_quote(pidfile);
    // A helper that exited may linger as a zombie (its parent is whatever
    // reaps orphans on the host): a zombie counts as gone.
    format!(
        "if [ -s {p} ]; then pid=$(cat {p}); \
         if grep -qa faultline /proc/$pid/cmdline 2>/dev/null; then kill -TERM $pid 2>/dev/null; \
         i=0; while [ $i -lt 100 ] && grep -qs '^State:[[:space:]]*[^Z[:space:]]' /proc/$pid/status; do sleep 0.01; i=$((i+1)); done; \
         kill -KILL $pid 2>/dev/null || true; fi; fi; rm -f {p}"
    )
}

/// What a journal's text says, in the order the changes were made, and the
/// lines that could not be read.
pub fn parse(text: &str) -> (Vec<Entry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut unknown = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match Entry::parse(line) {
            Some(e) if !entries.contains(&e) => entries.push(e),
            Some(_) => {}
            None => unknown.push(line.to_string()),
        }
    }
    (entries, unknown)
}

/// The script that undoes `entries` newest first and then removes the
/// journal, or leaves only `kept` in it. Each undo runs even when an
/// earlier one failed; the script fails (exit 1) if any did, and then keeps
/// the journal for another try.
pub fn heal_script(state_dir: &str, entries: &[Entry], kept: &[Entry]) -> String {
    let mut script = String::from("rc=0\n");
    for entry in entries.iter().rev() {
        script.push_str(&format!("{{ {}\n}} || rc=1\n", entry.undo_command()));
    }
    let j = shell_quote(&path(state_dir));
    if kept.is_empty() {
        script.push_str(&format!("[ $rc = 0 ] && rm -f {j}\n"));
    } else {
        let lines: String = kept.iter().map(|e| format!("{}\n", e.to_line())).collect();
        script.push_str(&format!(
            "[ $rc = 0 ] && printf %s {} > {j}.tmp && mv -f {j}.tmp {j}\n",
            shell_quote(&lines)
        ));
    }
    script.push_str("exit $rc\n");
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kinds() -> Vec<Entry> {
        vec![
            Entry::Chains,
            Entry::Qdisc("veth0".into()),
            Entry::Helper("/run/faultline/netdelay.pid".into()),
            Entry::Faketime("/var/lib/faultline/n1/faketime".into()),
            Entry::Paused(4242),
            Entry::Clock {
                helper: "/opt/faultline/faultline".into(),
                state_file: "/run/faultline/clock".into(),
            },
            Entry::TimeDaemon("chrony.service".into()),
            Entry::Lazyfs {
                pidfile: "/run/faultline/lazyfs.pid".into(),
                mount: "/opt/faultline/data".into(),
            },
            Entry::LazyfsFault {
                helper: "/opt/faultline/faultline".into(),
                socket: "/opt/faultline/run/lazyfs.sock".into(),
            },
        ]
    }

    #[test]
    fn every_entry_survives_a_round_trip_through_its_line() {
        for e in all_kinds() {
            assert_eq!(Entry::parse(&e.to_line()), Some(e.clone()), "{e:?}");
        }
    }

    #[test]
    fn parse_deduplicates_and_reports_unknown_lines() {
        let text = "chains\nqdisc eth0\nchains\nbogus thing\npaused x\n\nqdisc eth0\n";
        let (entries, unknown) = parse(text);
        assert_eq!(entries, vec![Entry::Chains, Entry::Qdisc("eth0".into())]);
        assert_eq!(
            unknown,
            vec!["bogus thing".to_string(), "paused x".to_string()]
        );
    }

    #[test]
    fn heal_script_undoes_newest_first_and_keeps_the_journal_on_failure() {
        let script = heal_script("/run/ft", &[Entry::Chains, Entry::Paused(7)], &[]);
        let cont = script.find("kill -CONT 7").unwrap();
        let chains = script.find("faultline-in").unwrap();
        assert!(
            cont < chains,
            "the newest change must be undone first:\n{script}"
        );
        assert!(script.contains("[ $rc = 0 ] && rm -f /run/ft/heal.journal"));
    }

    #[test]
    fn the_heal_script_runs_and_is_idempotent_in_a_shell() {
        // Only entries whose undo touches nothing outside a temp dir.
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().to_str().unwrap().to_string();
        let fake = format!("{state}/faketime");
        std::fs::write(&fake, "+5.000\n").unwrap();
        let entries = vec![
            Entry::Faketime(fake.clone()),
            Entry::Helper(format!("{state}/none.pid")),
        ];
        std::fs::write(path(&state), "x").unwrap();
        for _ in 0..2 {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(heal_script(&state, &entries, &[]))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(std::fs::read_to_string(&fake).unwrap(), "+0\n");
            assert!(!std::path::Path::new(&path(&state)).exists());
        }
    }

    #[test]
    fn a_heal_that_keeps_entries_leaves_only_them_in_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().to_str().unwrap().to_string();
        let kept = Entry::Lazyfs {
            pidfile: format!("{state}/lazyfs.pid"),
            mount: format!("{state}/nothing-mounted"),
        };
        std::fs::write(path(&state), "faketime x\nlazyfs a b\n").unwrap();
        let fake = format!("{state}/faketime");
        let script = heal_script(
            &state,
            &[Entry::Faketime(fake)],
            std::slice::from_ref(&kept),
        );
        let ok = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .status()
            .unwrap();
        assert!(ok.success());
        let (entries, _) = parse(&std::fs::read_to_string(path(&state)).unwrap());
        assert_eq!(entries, vec![kept.clone()]);
        // Its own undo is safe when nothing is mounted and no helper runs.
        let ok = std::process::Command::new("sh")
            .arg("-c")
            .arg(kept.undo_command())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    #[test]
    fn record_command_appends_each_entry_once() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("sub").to_str().unwrap().to_string();
        for _ in 0..3 {
            for e in [Entry::Chains, Entry::Paused(3)] {
                let ok = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(record_command(&state, &e))
                    .status()
                    .unwrap();
                assert!(ok.success());
            }
        }
        assert_eq!(
            std::fs::read_to_string(path(&state)).unwrap(),
            "chains\npaused 3\n"
        );
    }

    #[test]
    fn inspect_commands_show_what_is_in_place_and_nothing_when_gone() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().to_str().unwrap().to_string();
        let fake = format!("{state}/faketime");
        std::fs::write(&fake, "+2.000\n").unwrap();
        // A pidfile naming a process that is not a faultline helper (this shell).
        let pidfile = format!("{state}/helper.pid");
        std::fs::write(&pidfile, "1\n").unwrap();
        let run = |e: &Entry| {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(e.inspect_command())
                .output()
                .unwrap();
            assert!(out.status.success(), "{e:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(run(&Entry::Faketime(fake.clone())), "offset +2.000\n");
        assert_eq!(run(&Entry::Helper(pidfile)), "");
        assert_eq!(run(&Entry::Helper(format!("{state}/none.pid"))), "");
        std::fs::remove_file(&fake).unwrap();
        assert_eq!(run(&Entry::Faketime(fake)), "");
    }
}
