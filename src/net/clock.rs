//! Clock helpers: shift, strobe and reset a host's notion of wall-clock time.
//!
//! Two targets, one interface ([`ClockTarget`]):
//! - a libfaketime offset file (hosts that share the controller's kernel:
//!   netns, Docker). Each node runs under libfaketime reading its own file;
//!   rewriting the file moves that node's wall clock and nothing else.
//! - the real clock of a remote host, with `clock_settime(CLOCK_REALTIME)`
//!   (SSH lab hosts only). The cumulative shift is kept in a state file so
//!   `reset` can undo exactly what was done.
//!
//! `faultline clock bump|strobe|reset` runs these on a host. Never point the
//! real-clock target at the controller's own machine; tests use `dry_run`.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use thiserror::Error;

/// The largest shift or strobe the helper accepts: one day.
pub const OFFSET_MS_MAX: i64 = 86_400_000;
/// The shortest strobe period: anything faster only burns CPU.
pub const STROBE_PERIOD_MS_MIN: u64 = 1;

#[derive(Debug, Error)]
pub enum ClockError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path}: not a libfaketime offset (want e.g. +1.250 or -0.5): {text:?}")]
    BadOffsetFile { path: String, text: String },
    #[error("{path}: not a number of milliseconds: {text:?}")]
    BadStateFile { path: String, text: String },
    #[error("offset {0} ms is beyond the limit of ±{OFFSET_MS_MAX} ms")]
    TooLarge(i64),
    #[error("clock_settime failed: {0} (is this root?)")]
    Settime(io::Error),
}

/// Whose clock the helper moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockTarget {
    /// A libfaketime FAKETIME_TIMESTAMP_FILE holding a relative offset.
    Faketime { file: String },
    /// The host's real clock; the applied total is kept in `state_file`.
    /// With `dry_run`, everything happens except the clock_settime call.
    Settime { state_file: String, dry_run: bool },
}

/// A libfaketime relative offset for `offset_ms`: seconds with a decimal
/// fraction (libfaketime reads `+1500ms` as 1500 minutes, so no units).
pub fn format_offset(offset_ms: i64) -> String {
    let sign = if offset_ms < 0 { '-' } else { '+' };
    let abs = offset_ms.unsigned_abs();
    format!("{sign}{}.{:03}", abs / 1000, abs % 1000)
}

/// Reads an offset written by [`format_offset`] (or by hand: `+5`, `-2.5`, `0`).
pub fn parse_offset(text: &str) -> Option<i64> {
    let t = text.trim();
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let secs: i64 = whole.parse().ok()?;
    let frac_ms: i64 = format!("{frac:0<3}")[..3].parse().ok()?;
    let ms = secs.checked_mul(1000)?.checked_add(frac_ms)?;
    Some(if neg { -ms } else { ms })
}

/// `now` shifted by `delta_ms`, as normalised (seconds, nanoseconds).
pub fn shifted(now_secs: i64, now_nanos: i64, delta_ms: i64) -> (i64, i64) {
    debug_assert!((0..1_000_000_000).contains(&now_nanos));
    let total = now_nanos + (delta_ms % 1000) * 1_000_000;
    let secs = now_secs + delta_ms / 1000 + total.div_euclid(1_000_000_000);
    (secs, total.rem_euclid(1_000_000_000))
}

fn io_err(path: &str) -> impl FnOnce(io::Error) -> ClockError + '_ {
    move |source| ClockError::Io {
        path: path.to_string(),
        source,
    }
}

impl ClockTarget {
    /// The offset currently applied, in ms (0 when nothing was applied).
    pub fn current_ms(&self) -> Result<i64, ClockError> {
        let path = self.path();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err(path)(e)),
        };
        match self {
            ClockTarget::Faketime { file } => {
                parse_offset(&text).ok_or_else(|| ClockError::BadOffsetFile {
                    path: file.clone(),
                    text,
                })
            }
            ClockTarget::Settime { state_file, .. } => {
                text.trim().parse().map_err(|_| ClockError::BadStateFile {
                    path: state_file.clone(),
                    text,
                })
            }
        }
    }

    fn path(&self) -> &str {
        match self {
            ClockTarget::Faketime { file } => file,
            ClockTarget::Settime { state_file, .. } => state_file,
        }
    }

    /// Shifts the clock by `delta_ms`; returns the new total offset.
    pub fn bump(&self, delta_ms: i64) -> Result<i64, ClockError> {
        let total = self.current_ms()? + delta_ms;
        if total.abs() > OFFSET_MS_MAX || delta_ms.abs() > OFFSET_MS_MAX {
            return Err(ClockError::TooLarge(total));
        }
        match self {
            ClockTarget::Faketime { file } => {
                write_atomic(file, &format!("{}\n", format_offset(total)))?
            }
            ClockTarget::Settime {
                state_file,
                dry_run,
            } => {
                // The state file first: a crash after it still lets reset undo the shift.
                write_atomic(state_file, &format!("{total}\n"))?;
                settime_shift(delta_ms, *dry_run)?;
            }
        }
        Ok(total)
    }

    /// Undoes every shift; afterwards [`ClockTarget::current_ms`] is 0.
    pub fn reset(&self) -> Result<i64, ClockError> {
        let total = self.current_ms()?;
        match self {
            ClockTarget::Faketime { file } => write_atomic(file, "+0\n")?,
            ClockTarget::Settime {
                state_file,
                dry_run,
            } => {
                if total != 0 {
                    settime_shift(-total, *dry_run)?;
                }
                match std::fs::remove_file(state_file) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(io_err(state_file)(e));
                    }
                    _ => {}
                }
            }
        }
        Ok(total)
    }

    /// Flips between the current offset and `delta_ms` beyond it every
    /// `period_ms`, for `duration_ms` or until `stop` is set, and always ends
    /// on the offset it started from. Returns the number of flips.
    pub fn strobe(
        &self,
        delta_ms: i64,
        period_ms: u64,
        duration_ms: u64,
        stop: &AtomicBool,
    ) -> Result<u64, ClockError> {
        let period = Duration::from_millis(period_ms.max(STROBE_PERIOD_MS_MIN));
        let end = Instant::now() + Duration::from_millis(duration_ms);
        let mut flips = 0u64;
        let mut shifted = false;
        let mut next = Instant::now();
        while Instant::now() < end && !stop.load(Ordering::SeqCst) {
            self.bump(if shifted { -delta_ms } else { delta_ms })?;
            shifted = !shifted;
            flips += 1;
            next += period;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        if shifted {
            self.bump(-delta_ms)?;
            flips += 1;
        }
        Ok(flips)
    }
}

fn write_atomic(path: &str, text: &str) -> Result<(), ClockError> {
    let tmp = format!("{path}.tmp{}", std::process::id());
    std::fs::write(&tmp, text).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// Shifts CLOCK_REALTIME by `delta_ms`. With `dry_run`, only prints the time
/// it would set (how the tests on this machine exercise it).
fn settime_shift(delta_ms: i64, dry_run: bool) -> Result<(), ClockError> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write into.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) } != 0 {
        return Err(ClockError::Settime(io::Error::last_os_error()));
    }
    let (secs, nanos) = shifted(now.tv_sec, now.tv_nsec, delta_ms);
    if dry_run {
        println!("dry run: would set CLOCK_REALTIME to {secs}.{nanos:09} (shift {delta_ms:+} ms)");
        return Ok(());
    }
    let to = libc::timespec {
        tv_sec: secs,
        tv_nsec: nanos,
    };
    // SAFETY: `to` is a valid, normalised timespec.
    if unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &to) } != 0 {
        return Err(ClockError::Settime(io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_through_the_faketime_format() {
        for ms in [0, 1, 999, 1000, 1250, -5, -2500, 86_400_000, -86_400_000] {
            assert_eq!(parse_offset(&format_offset(ms)), Some(ms), "{ms}");
        }
        assert_eq!(format_offset(1250), "+1.250");
        assert_eq!(format_offset(-5), "-0.005");
        assert_eq!(parse_offset("+5\n"), Some(5000));
        assert_eq!(parse_offset("-2.5"), Some(-2500));
        assert_eq!(parse_offset("0"), Some(0));
        for bad in ["", "+", "1500ms", "+1.2.3", "-1d", "x"] {
            assert_eq!(parse_offset(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn shifting_carries_and_borrows_nanoseconds() {
        assert_eq!(shifted(100, 900_000_000, 250), (101, 150_000_000));
        assert_eq!(shifted(100, 100_000_000, -250), (99, 850_000_000));
        assert_eq!(shifted(100, 0, -1000), (99, 0));
        assert_eq!(shifted(100, 5, 86_400_000), (86_500, 5));
        assert_eq!(
            shifted(100, 999_999_999, -86_400_001),
            (-86_300, 998_999_999)
        );
    }

    #[test]
    fn faketime_bump_accumulates_and_reset_zeroes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("faketime").to_str().unwrap().to_string();
        let t = ClockTarget::Faketime { file: file.clone() };
        assert_eq!(t.current_ms().unwrap(), 0);
        assert_eq!(t.bump(1500).unwrap(), 1500);
        assert_eq!(t.bump(-2000).unwrap(), -500);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "-0.500\n");
        assert_eq!(t.reset().unwrap(), -500);
        assert_eq!(t.current_ms().unwrap(), 0);
        assert!(matches!(
            t.bump(OFFSET_MS_MAX + 1),
            Err(ClockError::TooLarge(_))
        ));
        std::fs::write(&file, "garbage").unwrap();
        assert!(matches!(t.bump(1), Err(ClockError::BadOffsetFile { .. })));
    }

    // The real-clock path is exercised in dry-run mode only: CLOCK_REALTIME is
    // not virtualised by time namespaces, so a real call would move this
    // machine's clock under every other process.
    #[test]
    fn settime_state_tracks_the_total_and_reset_undoes_it_dry_run() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir
            .path()
            .join("clock-offset-ms")
            .to_str()
            .unwrap()
            .to_string();
        let t = ClockTarget::Settime {
            state_file: state.clone(),
            dry_run: true,
        };
        assert_eq!(t.bump(300).unwrap(), 300);
        assert_eq!(t.bump(-100).unwrap(), 200);
        assert_eq!(std::fs::read_to_string(&state).unwrap(), "200\n");
        assert_eq!(t.reset().unwrap(), 200);
        assert!(!std::path::Path::new(&state).exists());
        assert_eq!(t.reset().unwrap(), 0, "reset twice is harmless");
    }

    #[test]
    fn strobe_ends_where_it_started_and_stops_early_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("faketime").to_str().unwrap().to_string();
        let t = ClockTarget::Faketime { file };
        t.bump(100).unwrap();
        let flips = t.strobe(1000, 5, 60, &AtomicBool::new(false)).unwrap();
        assert!(flips >= 4, "{flips} flips in 60 ms at 5 ms");
        assert_eq!(flips % 2, 0, "every shift is undone");
        assert_eq!(t.current_ms().unwrap(), 100);
        let flips = t.strobe(1000, 5, 60_000, &AtomicBool::new(true)).unwrap();
        assert_eq!(flips, 0);
    }
}
