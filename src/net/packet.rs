//! Packet faults: what is asked ([`PacketFault`]) and how it is carried out
//! on a host — tc netem where the kernel has it, otherwise the fallbacks
//! (loss with the iptables `statistic` match, rate with `tbf`, delay, jitter,
//! reordering and corruption with the `faultline netdelay` NFQUEUE helper).
//!
//! This file only builds commands and plans; running them is `host.rs`.
//! A fault no mechanism can produce is an error, never skipped.

use super::iptables;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// The largest delay faultline will ask for, so a typo cannot stall a run.
pub const DELAY_MS_MAX: u32 = 60_000;

/// How delays vary around their mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Uniform in [delay - jitter, delay + jitter] (netem's default).
    Uniform,
    /// Normal with mean `delay` and standard deviation `jitter`.
    #[default]
    Normal,
    /// netem's pareto table (netem only).
    Pareto,
    /// netem's paretonormal table (netem only).
    Paretonormal,
}

impl Distribution {
    pub fn as_str(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::Normal => "normal",
            Distribution::Pareto => "pareto",
            Distribution::Paretonormal => "paretonormal",
        }
    }
}

/// A packet fault on a host's outgoing traffic. Zero means "not this one".
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PacketFault {
    pub delay_ms: u32,
    pub jitter_ms: u32,
    pub distribution: Distribution,
    pub loss_pct: f64,
    pub duplicate_pct: f64,
    /// With a delay: this share of packets goes out at once, ahead of the rest.
    pub reorder_pct: f64,
    pub corrupt_pct: f64,
    pub rate_kbit: u32,
}

/// Which mechanism carried out (part of) a packet fault; goes in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mechanism {
    Netem,
    IptablesStatistic,
    NfqueueHelper,
    Tbf,
}

impl PacketFault {
    /// Checks the numbers; the message says which field is wrong.
    pub fn validate(&self) -> Result<(), String> {
        for (name, pct) in [
            ("loss_pct", self.loss_pct),
            ("duplicate_pct", self.duplicate_pct),
            ("reorder_pct", self.reorder_pct),
            ("corrupt_pct", self.corrupt_pct),
        ] {
            if !(0.0..=100.0).contains(&pct) {
                return Err(format!("{name} must be between 0 and 100, got {pct}"));
            }
        }
        if self.delay_ms > DELAY_MS_MAX || self.jitter_ms > DELAY_MS_MAX {
            return Err(format!(
                "delay_ms and jitter_ms must be at most {DELAY_MS_MAX}"
            ));
        }
        if self.jitter_ms > 0 && self.delay_ms == 0 {
            return Err("jitter_ms needs a delay_ms".to_string());
        }
        if self.reorder_pct > 0.0 && self.delay_ms == 0 {
            return Err(
                "reorder_pct needs a delay_ms (reordered packets skip the delay)".to_string(),
            );
        }
        if *self
            == (PacketFault {
                distribution: self.distribution,
                ..Default::default()
            })
        {
            return Err(
                "a packet fault needs at least one of delay_ms, loss_pct, duplicate_pct, \
                        reorder_pct, corrupt_pct, rate_kbit"
                    .to_string(),
            );
        }
        Ok(())
    }

    /// The netem arguments after `tc qdisc replace dev DEV root netem`.
    pub fn netem_args(&self) -> String {
        let mut s = String::new();
        if self.delay_ms > 0 {
            let _ = write!(s, " delay {}ms", self.delay_ms);
            if self.jitter_ms > 0 {
                let _ = write!(s, " {}ms", self.jitter_ms);
                // netem's default with jitter is uniform; the others are tables.
                if self.distribution != Distribution::Uniform {
                    let _ = write!(s, " distribution {}", self.distribution.as_str());
                }
            }
        }
        for (word, pct) in [
            ("loss", self.loss_pct),
            ("duplicate", self.duplicate_pct),
            ("reorder", self.reorder_pct),
            ("corrupt", self.corrupt_pct),
        ] {
            if pct > 0.0 {
                let _ = write!(s, " {word} {pct}%");
            }
        }
        if self.rate_kbit > 0 {
            let _ = write!(s, " rate {}kbit", self.rate_kbit);
        }
        s.trim_start().to_string()
    }

    /// How to produce this fault without netem, or why it cannot be done.
    pub fn fallback_plan(&self, seed: u64) -> Result<FallbackPlan, String> {
        if self.duplicate_pct > 0.0 {
            return Err("duplicate_pct needs tc netem (no fallback can copy packets)".to_string());
        }
        let delays = self.delay_ms > 0 || self.corrupt_pct > 0.0;
        if delays
            && self.jitter_ms > 0
            && matches!(
                self.distribution,
                Distribution::Pareto | Distribution::Paretonormal
            )
        {
            return Err(format!(
                "distribution {} needs tc netem (the NFQUEUE helper does normal and uniform)",
                self.distribution.as_str()
            ));
        }
        Ok(FallbackPlan {
            loss_pct: (self.loss_pct > 0.0).then_some(self.loss_pct),
            helper: delays.then(|| DelayConfig {
                delay_ms: self.delay_ms,
                jitter_ms: self.jitter_ms,
                distribution: self.distribution,
                reorder_pct: self.reorder_pct,
                corrupt_pct: self.corrupt_pct,
                seed,
                ..DelayConfig::default()
            }),
            rate_kbit: (self.rate_kbit > 0).then_some(self.rate_kbit),
        })
    }
}

/// What the `faultline netdelay` helper does (it runs in `netdelay.rs`);
/// also its command line.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct DelayConfig {
    /// Mean delay added to each packet.
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u32,
    /// Spread of the delay (standard deviation for normal, half-width for uniform).
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u32,
    #[arg(long, value_enum, default_value_t = Distribution::Normal)]
    pub distribution: Distribution,
    /// Share of packets (percent) that skip the delay.
    #[arg(long, default_value_t = 0.0)]
    pub reorder_pct: f64,
    /// Share of packets (percent) with one byte flipped after the IP header.
    #[arg(long, default_value_t = 0.0)]
    pub corrupt_pct: f64,
    /// Seed of the helper's random choices.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Written with the helper's pid once it is bound to the queue.
    #[arg(long)]
    pub pidfile: Option<String>,
    /// The helper exits by itself after this long (a bound; heal stops it sooner).
    #[arg(long, default_value_t = 86_400)]
    pub max_runtime_s: u64,
}

impl Default for DelayConfig {
    fn default() -> Self {
        DelayConfig {
            delay_ms: 0,
            jitter_ms: 0,
            distribution: Distribution::Normal,
            reorder_pct: 0.0,
            corrupt_pct: 0.0,
            seed: 0,
            pidfile: None,
            max_runtime_s: 86_400,
        }
    }
}

impl DelayConfig {
    /// The arguments after `faultline netdelay`, as a shell fragment.
    pub fn to_args(&self) -> String {
        let mut s = format!(
            "--delay-ms {} --jitter-ms {} --distribution {} --reorder-pct {} --corrupt-pct {} --seed {} --max-runtime-s {}",
            self.delay_ms,
            self.jitter_ms,
            self.distribution.as_str(),
            self.reorder_pct,
            self.corrupt_pct,
            self.seed,
            self.max_runtime_s
        );
        if let Some(p) = &self.pidfile {
            s.push_str(&format!(" --pidfile {}", crate::control::shell_quote(p)));
        }
        s
    }
}

/// What the fallbacks will do on a host without netem.
#[derive(Debug, Clone, PartialEq)]
pub struct FallbackPlan {
    pub loss_pct: Option<f64>,
    pub helper: Option<DelayConfig>,
    pub rate_kbit: Option<u32>,
}

impl FallbackPlan {
    /// The mechanisms this plan uses, in the order they act on a packet.
    pub fn mechanisms(&self) -> Vec<Mechanism> {
        let mut m = Vec::new();
        if self.loss_pct.is_some() {
            m.push(Mechanism::IptablesStatistic);
        }
        if self.helper.is_some() {
            m.push(Mechanism::NfqueueHelper);
        }
        if self.rate_kbit.is_some() {
            m.push(Mechanism::Tbf);
        }
        m
    }

    /// The rules of `faultline-out`: loss first, so dropped packets are never queued.
    pub fn out_rules(&self) -> Vec<String> {
        let mut rules = Vec::new();
        if let Some(loss) = self.loss_pct {
            rules.push(iptables::loss_rule(loss));
        }
        if self.helper.is_some() {
            rules.push(iptables::nfqueue_rule());
        }
        rules
    }
}

/// `tc` arguments for a token bucket limiting a device to `rate_kbit`.
/// The bucket holds at least one MTU-sized burst and about 10 ms of traffic.
pub fn tbf_args(rate_kbit: u32) -> String {
    let burst_bytes = (rate_kbit as u64 * 1000 / 8 / 100).max(1600);
    format!("tbf rate {rate_kbit}kbit burst {burst_bytes} latency 400ms")
}

/// Does this `tc` error say the kernel lacks the qdisc?
pub fn is_unknown_qdisc(stderr: &str) -> bool {
    stderr.contains("qdisc kind is unknown") || stderr.contains("Unknown qdisc")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        cfg: DelayConfig,
    }

    #[test]
    fn the_command_line_it_is_started_with_parses_back_to_the_same_config() {
        let cfg = DelayConfig {
            delay_ms: 40,
            jitter_ms: 7,
            distribution: Distribution::Uniform,
            reorder_pct: 12.5,
            corrupt_pct: 1.0,
            seed: 99,
            pidfile: Some("/run/faultline dir/netdelay.pid".into()),
            max_runtime_s: 30,
        };
        let line = format!("faultline {}", cfg.to_args());
        let words = shell_words(&line);
        assert_eq!(Cli::try_parse_from(words).unwrap().cfg, cfg);
    }

    /// Splits like sh does for the quoting `shell_quote` produces.
    fn shell_words(s: &str) -> Vec<String> {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("for w in {s}; do printf '%s\\0' \"$w\"; done"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split('\0')
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect()
    }

    fn fault() -> PacketFault {
        PacketFault::default()
    }

    // The netem path cannot run on this machine (its kernel has no netem), so
    // the command it builds is pinned here; real distro kernels run it.
    #[test]
    fn netem_arguments_cover_every_field() {
        let f = PacketFault {
            delay_ms: 50,
            jitter_ms: 10,
            distribution: Distribution::Pareto,
            loss_pct: 5.0,
            duplicate_pct: 1.0,
            reorder_pct: 25.0,
            corrupt_pct: 0.5,
            rate_kbit: 1000,
        };
        assert_eq!(
            f.netem_args(),
            "delay 50ms 10ms distribution pareto loss 5% duplicate 1% reorder 25% corrupt 0.5% rate 1000kbit"
        );
        let uniform = PacketFault {
            delay_ms: 20,
            jitter_ms: 5,
            distribution: Distribution::Uniform,
            ..fault()
        };
        assert_eq!(uniform.netem_args(), "delay 20ms 5ms");
        assert_eq!(
            PacketFault {
                loss_pct: 12.5,
                ..fault()
            }
            .netem_args(),
            "loss 12.5%"
        );
    }

    #[test]
    fn validation_names_the_wrong_field() {
        assert!(
            PacketFault {
                loss_pct: 101.0,
                ..fault()
            }
            .validate()
            .unwrap_err()
            .contains("loss_pct")
        );
        assert!(
            PacketFault {
                jitter_ms: 3,
                ..fault()
            }
            .validate()
            .unwrap_err()
            .contains("jitter_ms")
        );
        assert!(
            PacketFault {
                reorder_pct: 3.0,
                ..fault()
            }
            .validate()
            .unwrap_err()
            .contains("reorder_pct")
        );
        assert!(fault().validate().unwrap_err().contains("at least one"));
        assert!(
            PacketFault {
                delay_ms: 1,
                ..fault()
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn the_fallback_plan_splits_the_fault_by_mechanism() {
        let f = PacketFault {
            delay_ms: 40,
            jitter_ms: 5,
            loss_pct: 10.0,
            rate_kbit: 512,
            ..fault()
        };
        let plan = f.fallback_plan(9).unwrap();
        assert_eq!(
            plan.mechanisms(),
            vec![
                Mechanism::IptablesStatistic,
                Mechanism::NfqueueHelper,
                Mechanism::Tbf
            ]
        );
        assert_eq!(plan.helper.as_ref().unwrap().delay_ms, 40);
        assert_eq!(plan.helper.as_ref().unwrap().seed, 9);
        let rules = plan.out_rules();
        assert!(
            rules[0].contains("statistic") && rules[1].contains("NFQUEUE"),
            "{rules:?}"
        );

        let loss_only = PacketFault {
            loss_pct: 3.0,
            ..fault()
        }
        .fallback_plan(0)
        .unwrap();
        assert_eq!(loss_only.mechanisms(), vec![Mechanism::IptablesStatistic]);
        assert!(loss_only.helper.is_none());
    }

    #[test]
    fn faults_without_a_fallback_are_errors() {
        assert!(
            PacketFault {
                duplicate_pct: 1.0,
                ..fault()
            }
            .fallback_plan(0)
            .unwrap_err()
            .contains("netem")
        );
        let pareto = PacketFault {
            delay_ms: 5,
            jitter_ms: 1,
            distribution: Distribution::Pareto,
            ..fault()
        };
        assert!(pareto.fallback_plan(0).unwrap_err().contains("pareto"));
    }

    #[test]
    fn tbf_keeps_at_least_one_packet_of_burst() {
        assert_eq!(tbf_args(64), "tbf rate 64kbit burst 1600 latency 400ms");
        assert_eq!(
            tbf_args(100_000),
            "tbf rate 100000kbit burst 125000 latency 400ms"
        );
    }

    #[test]
    fn the_missing_netem_message_is_recognised() {
        assert!(is_unknown_qdisc(
            "Error: Specified qdisc kind is unknown.\n"
        ));
        assert!(!is_unknown_qdisc(
            "RTNETLINK answers: Operation not permitted"
        ));
    }
}
