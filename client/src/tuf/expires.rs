//! The `expires` time, read and written as Go's `time.Time` JSON (RFC 3339 with nanoseconds).

use std::fmt;
use std::time::Duration;

use time::{OffsetDateTime, UtcOffset};

/// An `expires` value that Go would not read or write back unchanged, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value:?} is not a usable expiry time ({problem}); Notary writes RFC 3339 times such \
     as 2029-11-21T04:04:01.80537535Z"
)]
pub struct InvalidExpires {
    /// The rejected text.
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
}

/// An expiry time that writes back exactly as Go would write it.
///
/// Go keeps the offset a time was parsed with and prints it again (`Z` when it is zero), and
/// prints the fraction of a second with trailing zeros trimmed. tufa creates times in UTC.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Expires(OffsetDateTime);

impl Expires {
    /// Wraps a time, converted to UTC so it is written with `Z`.
    pub fn new(time: OffsetDateTime) -> Result<Self, InvalidExpires> {
        Self::checked(time.to_offset(UtcOffset::UTC))
    }

    /// Now plus `lifetime`, in UTC and truncated to whole seconds.
    pub fn from_now(lifetime: Duration) -> Result<Self, InvalidExpires> {
        let now = OffsetDateTime::now_utc();
        let time = now
            .checked_add(
                time::Duration::try_from(lifetime).map_err(|e| InvalidExpires {
                    value: format!("now + {lifetime:?}"),
                    problem: e.to_string(),
                })?,
            )
            .and_then(|t| t.replace_nanosecond(0).ok())
            .ok_or_else(|| InvalidExpires {
                value: format!("now + {lifetime:?}"),
                problem: "out of range".into(),
            })?;
        Self::checked(time)
    }

    /// Parses an RFC 3339 time as Go's `time.Time.UnmarshalJSON` does.
    ///
    /// The form is `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` with at most nine fractional
    /// digits; Go refuses the variants RFC 3339 also allows (a space for `T`, lowercase letters).
    pub fn parse(text: &str) -> Result<Self, InvalidExpires> {
        let invalid = |problem: &str| InvalidExpires {
            value: text.to_owned(),
            problem: problem.to_owned(),
        };
        let b = text.as_bytes();
        let number = |range: std::ops::Range<usize>| -> Result<u32, InvalidExpires> {
            let digits = b.get(range).ok_or_else(|| invalid("too short"))?;
            if !digits.iter().all(u8::is_ascii_digit) {
                return Err(invalid("expected YYYY-MM-DDTHH:MM:SS"));
            }
            Ok(digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
        };
        let separators_ok = b.len() >= 20
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':';
        if !separators_ok {
            return Err(invalid("expected YYYY-MM-DDTHH:MM:SS"));
        }
        let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
        let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
        let mut rest = &text[19..];
        let mut nanos = 0u32;
        if let Some(fraction) = rest.strip_prefix('.') {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 9 {
                return Err(invalid("the fraction of a second needs one to nine digits"));
            }
            let value = fraction[..digits]
                .bytes()
                .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
            nanos = value * 10u32.pow(9 - digits as u32);
            rest = &fraction[digits..];
        }
        let offset_seconds: i32 = match rest.as_bytes() {
            b"Z" => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2]
                if [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()) =>
            {
                let hours = i32::from((h1 - b'0') * 10 + (h2 - b'0'));
                let minutes = i32::from((m1 - b'0') * 10 + (m2 - b'0'));
                if hours > 23 || minutes > 59 {
                    return Err(invalid("the offset is out of range"));
                }
                let total = hours * 3600 + minutes * 60;
                if *sign == b'-' {
                    -total
                } else {
                    total
                }
            }
            _ => {
                return Err(invalid(
                    "expected Z or an offset like +01:00 after the time",
                ))
            }
        };
        let month = u8::try_from(month)
            .ok()
            .and_then(|m| time::Month::try_from(m).ok())
            .ok_or_else(|| invalid("the month is out of range"))?;
        // `number` returns at most 9999 for four digits and 99 for two, so these fit.
        let date = time::Date::from_calendar_date(year as i32, month, day as u8)
            .map_err(|_| invalid("the day is out of range"))?;
        let clock = time::Time::from_hms_nano(hour as u8, minute as u8, second as u8, nanos)
            .map_err(|_| invalid("the time of day is out of range"))?;
        let offset = UtcOffset::from_whole_seconds(offset_seconds)
            .map_err(|_| invalid("the offset is out of range"))?;
        Self::checked(date.with_time(clock).assume_offset(offset))
    }

    /// The time.
    pub fn time(&self) -> OffsetDateTime {
        self.0
    }

    /// Whether this expiry is before `now`.
    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        self.0 < now
    }

    /// Go's `MarshalJSON` refuses years outside 0..=9999.
    fn checked(time: OffsetDateTime) -> Result<Self, InvalidExpires> {
        if (0..=9999).contains(&time.year()) {
            Ok(Self(time))
        } else {
            Err(InvalidExpires {
                value: time.to_string(),
                problem: "the year must be between 0 and 9999".into(),
            })
        }
    }
}

impl fmt::Display for Expires {
    /// Writes Go's RFC3339Nano layout: `2006-01-02T15:04:05.999999999Z07:00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )?;
        let nanos = t.nanosecond();
        if nanos != 0 {
            let digits = format!("{nanos:09}");
            write!(f, ".{}", digits.trim_end_matches('0'))?;
        }
        let offset = t.offset();
        if offset.is_utc() {
            f.write_str("Z")
        } else {
            // Go prints the offset's hours and minutes only.
            let total = offset.whole_minutes();
            let sign = if total < 0 { '-' } else { '+' };
            let total = total.unsigned_abs();
            write!(f, "{sign}{:02}:{:02}", total / 60, total % 60)
        }
    }
}

impl fmt::Debug for Expires {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expires({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        Expires::parse(text).unwrap().to_string()
    }

    #[test]
    fn writes_rfc3339nano_like_go() {
        assert_eq!(
            round_trip("2029-11-21T04:04:01.80537535Z"),
            "2029-11-21T04:04:01.80537535Z"
        );
        assert_eq!(round_trip("2029-11-21T04:04:01Z"), "2029-11-21T04:04:01Z");
        // Go trims the fraction and spells a zero offset `Z`: that is what the server hashes.
        assert_eq!(
            round_trip("2029-11-21T04:04:00.500000000Z"),
            "2029-11-21T04:04:00.5Z"
        );
        assert_eq!(
            round_trip("2029-11-21T04:04:00.000Z"),
            "2029-11-21T04:04:00Z"
        );
        assert_eq!(
            round_trip("2029-11-21T04:04:00+00:00"),
            "2029-11-21T04:04:00Z"
        );
        // A non-zero offset is kept, as Go keeps the parsed zone.
        assert_eq!(
            round_trip("2116-07-03T17:56:36.027379879-05:00"),
            "2116-07-03T17:56:36.027379879-05:00"
        );
    }

    #[test]
    fn rejects_what_go_cannot_write_back() {
        assert!(Expires::parse("2029-11-21T04:04:01.1234567891Z").is_err());
        assert!(Expires::parse("2029-11-21 04:04:01Z").is_err());
        assert!(Expires::parse("tomorrow").is_err());
        assert!(Expires::parse("2029-11-21t04:04:01z").is_err());
        assert!(Expires::parse("2029-02-30T04:04:01Z").is_err());
        assert!(Expires::parse("2029-11-21T24:04:01Z").is_err());
        assert!(Expires::parse("2029-11-21T04:04:01.Z").is_err());
        assert!(Expires::parse("2029-11-21T04:04:01+0100").is_err());
        assert!(Expires::parse("2029-11-21T04:04:01Zjunk").is_err());
    }

    #[test]
    fn new_times_are_utc() {
        let t = Expires::parse("2030-01-01T10:00:00+02:00").unwrap().time();
        assert_eq!(Expires::new(t).unwrap().to_string(), "2030-01-01T08:00:00Z");
        let soon = Expires::from_now(Duration::from_secs(14 * 24 * 3600)).unwrap();
        assert!(soon.to_string().ends_with('Z'));
        assert!(!soon.is_expired_at(OffsetDateTime::now_utc()));
    }
}
