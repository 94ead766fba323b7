//! How long a fault lasts: a fixed span or a range each start draws from.
//! A module of its own so that fault specs and schedules share it without
//! importing each other.

use crate::span::Span;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long a fault lasts: one span (`5s`), or a range (`200ms..5s`) from
/// which every start draws its own length, log-uniformly, so that each
/// factor of two in the range is as likely as any other. Faults then land
/// on every timescale of the system under test (a pause just past an
/// election timeout, one past a lease, one of many seconds), as Jepsen's
/// randomized fault durations do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lasting {
    pub min: Span,
    pub max: Span,
}

impl Lasting {
    pub const fn fixed(d: Duration) -> Lasting {
        Lasting {
            min: Span(d),
            max: Span(d),
        }
    }

    /// This start's length: `min` when fixed, else log-uniform in [min, max].
    pub fn draw(&self, rng: &mut ChaCha8Rng) -> Duration {
        let (min, max) = (self.min.0.as_secs_f64(), self.max.0.as_secs_f64());
        if max <= min || min <= 0.0 {
            return self.min.0;
        }
        let x: f64 = rng.random_range(min.ln()..=max.ln());
        Duration::from_secs_f64(x.exp().clamp(min, max))
    }

    /// Why this range cannot be used, if it cannot.
    pub(super) fn problem(&self) -> Option<String> {
        if self.min.0.is_zero() {
            Some("must be more than 0s".to_string())
        } else if self.max < self.min {
            Some(format!(
                "{self} is empty: the first bound must not exceed the second"
            ))
        } else {
            None
        }
    }
}

impl std::str::FromStr for Lasting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once("..") {
            None => Ok(Lasting::fixed(s.parse::<Span>()?.0)),
            Some((min, max)) => Ok(Lasting {
                min: min.parse()?,
                max: max.parse()?,
            }),
        }
    }
}

impl std::fmt::Display for Lasting {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}..{}", self.min, self.max)
        }
    }
}

impl From<Span> for Lasting {
    fn from(s: Span) -> Lasting {
        Lasting::fixed(s.0)
    }
}

impl Serialize for Lasting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lasting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Parsed inside the visitor, so a bad range's error carries its line:column.
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Lasting;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration like 10s, or a range like 200ms..5s")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Lasting, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}
