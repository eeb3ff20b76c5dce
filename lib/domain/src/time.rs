//! Instants in time, always UTC, at microsecond precision, in a fixed-width RFC 3339 form.
//!
//! The fixed width matters: the event store's time index sorts by the text of
//! `occurredAt`, and `2026-11-21T06:30:19.5Z` would sort after `…19.123456Z`.

use std::fmt;

use jiff::fmt::temporal::DateTimePrinter;

/// A UTC instant with microsecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(jiff::Timestamp);

crate::text::serde_via_text!(Timestamp, "an RFC 3339 time", Timestamp::parse);

/// Text that is not an RFC 3339 instant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 time with an offset (e.g. 2026-11-21T06:30:00Z): {0:?}")]
pub struct TimestampError(String);

const PRINTER: DateTimePrinter = DateTimePrinter::new().precision(Some(6));

impl Timestamp {
    /// Truncates any instant to microseconds.
    #[must_use]
    pub fn from_jiff(ts: jiff::Timestamp) -> Self {
        let micros = ts.as_microsecond();
        Self(jiff::Timestamp::from_microsecond(micros).unwrap_or(ts))
    }

    /// From microseconds since the Unix epoch.
    ///
    /// # Errors
    /// [`TimestampError`] out of jiff's range (years -9999..=9999).
    pub fn from_micros(micros: i64) -> Result<Self, TimestampError> {
        jiff::Timestamp::from_microsecond(micros)
            .map(Self)
            .map_err(|e| TimestampError(e.to_string()))
    }

    /// Parses RFC 3339 text with any offset; the result is UTC.
    ///
    /// # Errors
    /// [`TimestampError`] on anything else.
    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        text.parse::<jiff::Timestamp>()
            .map(Self::from_jiff)
            .map_err(|_| TimestampError(text.to_owned()))
    }

    /// `self + duration`, saturating at jiff's limits (year 9999).
    #[must_use]
    pub fn plus(self, duration: jiff::SignedDuration) -> Self {
        let max = if duration.is_negative() {
            jiff::Timestamp::MIN
        } else {
            jiff::Timestamp::MAX
        };
        Self::from_jiff(self.0.checked_add(duration).unwrap_or(max))
    }

    /// The jiff instant, for arithmetic.
    #[must_use]
    pub const fn as_jiff(&self) -> jiff::Timestamp {
        self.0
    }

    /// Microseconds since the Unix epoch.
    #[must_use]
    pub fn as_micros(&self) -> i64 {
        self.0.as_microsecond()
    }

    /// The UTC calendar day, `YYYY-MM-DD`: the time index's bucket.
    #[must_use]
    pub fn utc_day(&self) -> String {
        self.0.strftime("%Y-%m-%d").to_string()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        PRINTER
            .print_timestamp(&self.0, jiff::fmt::StdFmtWrite(f))
            .map_err(|_| fmt::Error)
    }
}

impl TryFrom<String> for Timestamp {
    type Error = TimestampError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Timestamp> for String {
    fn from(value: Timestamp) -> Self {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_fixed_width_microseconds() {
        let ts = Timestamp::parse("2026-11-21T06:30:19Z").unwrap();
        assert_eq!(String::from(ts), "2026-11-21T06:30:19.000000Z");
        for micros in [0, 1, 1_700_000_000_123_456] {
            assert_eq!(Timestamp::from_micros(micros).unwrap().as_micros(), micros);
        }

        let ts = Timestamp::parse("2026-11-21T06:30:19.5Z").unwrap();
        assert_eq!(ts.to_string(), "2026-11-21T06:30:19.500000Z");
        let ts = Timestamp::parse("2026-11-21T06:30:19Z").unwrap();
        assert_eq!(ts.to_string(), "2026-11-21T06:30:19.000000Z");
    }

    #[test]
    fn truncates_nanoseconds_and_normalises_offsets() {
        let ts = Timestamp::parse("2026-11-21T08:30:19.123456789+02:00").unwrap();
        assert_eq!(ts.to_string(), "2026-11-21T06:30:19.123456Z");
        assert_eq!(ts.utc_day(), "2026-11-21");
    }

    #[test]
    fn text_order_is_time_order() {
        let a = Timestamp::parse("2026-11-21T06:30:19.5Z").unwrap();
        let b = Timestamp::parse("2026-11-21T06:30:19.123456Z").unwrap();
        assert!(b < a);
        assert!(b.to_string() < a.to_string());
    }

    #[test]
    fn rejects_non_rfc3339() {
        for bad in ["yesterday", "2026-11-21", "2026-11-21T06:30:19", ""] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
    }
}
