//! How long one HTTP request may take: a total deadline from connecting to the last byte of the
//! answer, so a server that trickles or stalls cannot hold tufa (a per-read timeout alone lets a
//! server send one byte a minute for ever).
//!
//! 300 s by default: trust metadata is kilobytes to a few megabytes, and 300 s carries even
//! Notary's 100 MiB ceiling for one file over a link of 3 Mbit/s. Slower links, or CI jobs that
//! want to fail faster, set `TUFA_HTTP_TIMEOUT` (seconds). Notary's and docker's own clients
//! have no total deadline at all, only a 30 s connect and 10 s TLS handshake timeout.

use std::time::Duration;

use super::HttpError;

/// The environment variable that sets the deadline of one request, in seconds.
pub const TIMEOUT_VAR: &str = "TUFA_HTTP_TIMEOUT";

/// The deadline of one request when [`TIMEOUT_VAR`] is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Connecting (TCP and TLS) gives up sooner: a server that does not answer at all is down.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection with no byte for this long is dead even while the deadline has time left.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The deadline [`TIMEOUT_VAR`] sets (seconds, fractions allowed), else [`DEFAULT_TIMEOUT`].
pub fn timeout_from_env() -> Result<Duration, HttpError> {
    match std::env::var(TIMEOUT_VAR) {
        Ok(value) if !value.trim().is_empty() => parse_timeout(&value),
        _ => Ok(DEFAULT_TIMEOUT),
    }
}

fn parse_timeout(value: &str) -> Result<Duration, HttpError> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| HttpError::BadTimeout {
            value: value.chars().take(40).collect(),
        })
}

/// `300 s`, `2.5 s`, `0.2 s`.
pub(crate) fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{} s", (s * 1000.0).round() / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_seconds_and_bad_ones_are_named() {
        assert_eq!(parse_timeout("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_timeout(" 0.5 ").unwrap(), Duration::from_millis(500));
        for bad in ["0", "-3", "ten", "inf", "NaN", "1e12"] {
            let e = parse_timeout(bad).unwrap_err().to_string();
            assert!(
                e.contains(&format!("TUFA_HTTP_TIMEOUT={bad:?}")) && e.contains("300 s"),
                "{e}"
            );
        }
        assert_eq!(seconds(Duration::from_secs(300)), "300 s");
        assert_eq!(seconds(Duration::from_millis(2500)), "2.5 s");
    }
}
