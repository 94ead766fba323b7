//! `faultline clock`: the helper run on a host to shift, strobe or reset its
//! clock (a libfaketime offset file, or the real clock with clock_settime).

use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum ClockCmd {
    /// Shift the clock by MS milliseconds (negative: back).
    Bump {
        #[arg(long, allow_hyphen_values = true)]
        ms: i64,
        #[command(flatten)]
        target: ClockTargetArgs,
    },
    /// Flip between the current offset and DELTA_MS beyond it every PERIOD_MS, for DURATION_MS.
    Strobe {
        #[arg(long, allow_hyphen_values = true)]
        delta_ms: i64,
        #[arg(long)]
        period_ms: u64,
        #[arg(long)]
        duration_ms: u64,
        #[command(flatten)]
        target: ClockTargetArgs,
    },
    /// Undo every shift.
    Reset {
        #[command(flatten)]
        target: ClockTargetArgs,
    },
}

/// Whose clock: a libfaketime offset file, or the real clock.
#[derive(Args)]
pub struct ClockTargetArgs {
    /// A libfaketime FAKETIME_TIMESTAMP_FILE to rewrite instead of the real clock.
    #[arg(long, conflicts_with_all = ["state_file", "dry_run"])]
    faketime_file: Option<String>,
    /// Real clock: where the total shift is kept, so reset can undo it.
    #[arg(long, default_value = "/run/faultline/clock-offset-ms")]
    state_file: String,
    /// Real clock: compute and print, but never call clock_settime.
    #[arg(long)]
    dry_run: bool,
}

impl ClockTargetArgs {
    fn target(self) -> crate::net::clock::ClockTarget {
        use crate::net::clock::ClockTarget;
        match self.faketime_file {
            Some(file) => ClockTarget::Faketime { file },
            None => ClockTarget::Settime {
                state_file: self.state_file,
                dry_run: self.dry_run,
            },
        }
    }
}

/// Does one clock action on this host and prints the total shift.
pub fn run(cmd: ClockCmd) -> anyhow::Result<()> {
    let total = match cmd {
        ClockCmd::Bump { ms, target } => target.target().bump(ms)?,
        ClockCmd::Strobe {
            delta_ms,
            period_ms,
            duration_ms,
            target,
        } => {
            let target = target.target();
            let stop = crate::net::stop_on_signals();
            let flips = target.strobe(delta_ms, period_ms, duration_ms, stop)?;
            eprintln!("strobe: {flips} flips");
            target.current_ms()?
        }
        ClockCmd::Reset { target } => target.target().reset()?,
    };
    println!("{}", crate::net::total_line(total));
    Ok(())
}
