//! Durations as people write them in YAML and on the command line: `60s`,
//! `500ms`, `2m`, `1h`, `1.5s`. Serialized back in the largest whole unit, so a
//! stored test.yaml reads like the one that was written. Used by test files
//! and nemesis files alike: a module of its own, so that `suite` (which holds
//! a nemesis schedule) and `nemesis` share it without importing each other.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The longest span anyone means: a day.
pub const SPAN_MAX: Duration = Duration::from_secs(24 * 3600);

/// A `std::time::Duration` that reads and writes as `60s`. Zero is allowed
/// here; a field that needs more says so when it is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub Duration);

impl Span {
    pub fn parse(text: &str) -> Result<Span, String> {
        text.parse()
    }
}

impl FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let n: f64 = number.parse().map_err(|_| {
            format!("{s:?} is not a duration: expected a number and a unit, like 60s or 500ms")
        })?;
        let seconds = match unit.trim() {
            "ns" => n / 1e9,
            "us" | "µs" => n / 1e6,
            "ms" => n / 1e3,
            "s" => n,
            "m" | "min" => n * 60.0,
            "h" => n * 3600.0,
            "" => return Err(format!("{s:?} has no unit: write {s}s or {s}ms")),
            u => {
                return Err(format!(
                    "{s:?}: unknown unit {u:?} (use ns, us, ms, s, m or h)"
                ));
            }
        };
        if !(0.0..=SPAN_MAX.as_secs_f64()).contains(&seconds) {
            return Err(format!("{s:?} is out of range (0 to 24h)"));
        }
        Ok(Span(Duration::from_secs_f64(seconds)))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if !self.0.subsec_nanos().is_multiple_of(1_000_000) {
            return write!(f, "{}us", self.0.as_micros());
        }
        let ms = self.0.as_millis();
        match ms {
            0 => write!(f, "0s"),
            _ if ms.is_multiple_of(3_600_000) => write!(f, "{}h", ms / 3_600_000),
            _ if ms.is_multiple_of(60_000) => write!(f, "{}m", ms / 60_000),
            _ if ms.is_multiple_of(1000) => write!(f, "{}s", ms / 1000),
            _ => write!(f, "{ms}ms"),
        }
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Parsed inside the visitor, so a bad span's error carries its line:column.
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Span;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration like 10s or 500ms")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Span, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_units() {
        for (text, ms, back) in [
            ("60s", 60_000, "1m"),
            ("500ms", 500, "500ms"),
            ("2m", 120_000, "2m"),
            ("1.5s", 1_500, "1500ms"),
            ("1h", 3_600_000, "1h"),
            ("0s", 0, "0s"),
            ("45s", 45_000, "45s"),
        ] {
            let span: Span = text.parse().unwrap();
            assert_eq!(span.0.as_millis(), ms, "{text}");
            assert_eq!(span.to_string(), back);
            assert_eq!(back.parse::<Span>().unwrap(), span, "{back} reads back");
        }
        for bad in ["", "60", "5 parsecs", "-1s", "25h", "s"] {
            assert!(bad.parse::<Span>().is_err(), "{bad:?}");
        }
        assert!("60".parse::<Span>().unwrap_err().contains("no unit"));
    }
}
