//! The one date format the protocol uses: `YYYY-MM-DDTHH:mm:ss.sssZ`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::{Error, Result};

/// A UTC instant with millisecond precision, written `YYYY-MM-DDTHH:mm:ss.sssZ`
/// (what `createdAt` and `commitTime` must look like; Android falls back to "now" otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// The instant `millis` milliseconds after the Unix epoch.
    ///
    /// # Errors
    /// [`Error::InvalidManifest`] when the instant is outside the years 0–9999.
    pub fn from_unix_millis(millis: i64) -> Result<Self> {
        let instant = OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
            .ok()
            .filter(|t| (0..=9999).contains(&t.year()))
            .ok_or_else(|| Error::InvalidManifest {
                reason: format!("{millis} ms since the epoch is not a representable date"),
            })?;
        Ok(Self(instant))
    }

    /// The instant a [`SystemTime`] stands for, truncated to milliseconds.
    ///
    /// # Errors
    /// [`Error::InvalidManifest`] for times before 1970 or after 9999.
    pub fn from_system_time(time: SystemTime) -> Result<Self> {
        let since_epoch = time
            .duration_since(UNIX_EPOCH)
            .map_err(|_| Error::InvalidManifest {
                reason: "times before 1970 are not supported".to_owned(),
            })?;
        let millis = i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX);
        Self::from_unix_millis(millis)
    }

    /// Milliseconds since the Unix epoch.
    #[must_use]
    pub fn unix_millis(self) -> i64 {
        i64::try_from(self.0.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }

    /// The same instant as a [`SystemTime`].
    #[must_use]
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(u64::try_from(self.unix_millis()).unwrap_or(0))
    }

    /// Parses exactly `YYYY-MM-DDTHH:mm:ss.sssZ`.
    ///
    /// # Errors
    /// [`Error::InvalidManifest`] for any other shape.
    pub fn parse(text: &str) -> Result<Self> {
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        time::PrimitiveDateTime::parse(text, &format)
            .map(|t| Self(t.assume_utc()))
            .map_err(|_| Error::InvalidManifest {
                reason: format!(
                    "`{}` is not a UTC date like 2025-01-02T03:04:05.678Z",
                    text.escape_debug()
                ),
            })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_three_fraction_digits_and_z() {
        let t = Timestamp::from_unix_millis(1_735_787_045_678).unwrap();
        assert_eq!(t.to_string(), "2025-01-02T03:04:05.678Z");
        assert_eq!(
            Timestamp::from_unix_millis(0).unwrap().to_string(),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn parse_round_trips_and_refuses_other_shapes() {
        let t = Timestamp::parse("2025-01-02T03:04:05.678Z").unwrap();
        assert_eq!(t.unix_millis(), 1_735_787_045_678);
        for bad in [
            "2025-01-02T03:04:05Z",
            "2025-01-02T03:04:05.678+00:00",
            "2025-01-02 03:04:05.678Z",
            "",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn system_time_truncates_to_millis() {
        let time = UNIX_EPOCH + Duration::from_nanos(1_735_787_045_678_999_999);
        assert_eq!(
            Timestamp::from_system_time(time).unwrap().to_string(),
            "2025-01-02T03:04:05.678Z"
        );
    }
}
