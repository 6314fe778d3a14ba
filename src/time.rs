//! Defender timestamps: UTC, 100-nanosecond ticks, 0 to 7 fractional digits.
//!
//! Every timestamp the collector compares or stores is a [`Ticks`] value, so a
//! window boundary never loses precision by passing through milliseconds or
//! an `f64`. OCSF wants epoch milliseconds; [`Ticks::to_epoch_ms`] truncates.

use chrono::{DateTime, NaiveDateTime, Utc};
use std::fmt;

/// Ticks of 100 ns since the Unix epoch, the resolution of Defender's
/// `Timestamp` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticks(pub i64);

pub const TICKS_PER_SECOND: i64 = 10_000_000;
pub const TICKS_PER_MS: i64 = 10_000;

impl Ticks {
    /// Parses an ISO 8601 / RFC 3339 timestamp. A value without a zone (as
    /// some `AdditionalFields` hold) is taken as UTC.
    pub fn parse(text: &str) -> Result<Ticks, String> {
        let text = text.trim();
        let nanos = match DateTime::parse_from_rfc3339(text) {
            Ok(dt) => dt.with_timezone(&Utc).timestamp_nanos_opt(),
            Err(_) => NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .map_err(|e| format!("`{text}` is not an ISO 8601 timestamp: {e}"))?
                .and_utc()
                .timestamp_nanos_opt(),
        };
        let nanos = nanos.ok_or_else(|| format!("timestamp `{text}` is out of range"))?;
        Ok(Ticks(nanos.div_euclid(100)))
    }

    pub fn from_datetime(dt: DateTime<Utc>) -> Ticks {
        Ticks(dt.timestamp() * TICKS_PER_SECOND + i64::from(dt.timestamp_subsec_nanos() / 100))
    }

    /// The current wall-clock time.
    pub fn now() -> Ticks {
        Ticks::from_datetime(Utc::now())
    }

    /// Milliseconds since the epoch, truncated (OCSF `timestamp_t`).
    pub fn to_epoch_ms(self) -> i64 {
        self.0.div_euclid(TICKS_PER_MS)
    }

    pub fn from_secs(secs: i64) -> Ticks {
        Ticks(secs * TICKS_PER_SECOND)
    }

    pub fn saturating_add(self, other: Ticks) -> Ticks {
        Ticks(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: Ticks) -> Ticks {
        Ticks(self.0.saturating_sub(other.0))
    }

    /// `2025-01-01T00:00:00.0000000Z`: the form KQL `datetime()` literals,
    /// checkpoints and `Timespan` use. Always 7 fractional digits.
    pub fn to_iso(self) -> String {
        let secs = self.0.div_euclid(TICKS_PER_SECOND);
        let frac = self.0.rem_euclid(TICKS_PER_SECOND);
        match DateTime::<Utc>::from_timestamp(secs, 0) {
            Some(dt) => format!("{}.{frac:07}Z", dt.format("%Y-%m-%dT%H:%M:%S")),
            None => format!("invalid-ticks({})", self.0),
        }
    }
}

impl From<std::time::Duration> for Ticks {
    fn from(d: std::time::Duration) -> Ticks {
        Ticks(i64::try_from(d.as_nanos() / 100).unwrap_or(i64::MAX))
    }
}

impl fmt::Display for Ticks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_iso())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_fraction_length() {
        let base = Ticks::parse("2024-03-26T09:39:50Z").unwrap();
        assert_eq!(Ticks::parse("2024-03-26T09:39:50.7Z").unwrap().0 - base.0, 7_000_000);
        assert_eq!(Ticks::parse("2024-03-26T09:39:50.598Z").unwrap().0 - base.0, 5_980_000);
        assert_eq!(Ticks::parse("2024-03-26T09:39:50.18835Z").unwrap().0 - base.0, 1_883_500);
        assert_eq!(Ticks::parse("2024-03-26T09:39:50.7688641Z").unwrap().0 - base.0, 7_688_641);
    }

    #[test]
    fn round_trips_through_iso_with_seven_digits() {
        let t = Ticks::parse("2024-03-26T09:39:50.7688641Z").unwrap();
        assert_eq!(t.to_iso(), "2024-03-26T09:39:50.7688641Z");
        assert_eq!(Ticks::parse(&t.to_iso()).unwrap(), t);
        assert_eq!(
            Ticks::parse("2024-03-26T09:39:50Z").unwrap().to_iso(),
            "2024-03-26T09:39:50.0000000Z"
        );
    }

    #[test]
    fn epoch_ms_truncates() {
        let t = Ticks::parse("1970-01-01T00:00:01.2349999Z").unwrap();
        assert_eq!(t.to_epoch_ms(), 1234);
    }

    #[test]
    fn zoneless_is_utc_and_garbage_is_an_error() {
        assert_eq!(Ticks::parse("1970-01-01T00:00:01").unwrap(), Ticks::from_secs(1));
        let err = Ticks::parse("yesterday").unwrap_err();
        assert!(err.contains("yesterday"), "{err}");
    }
}
