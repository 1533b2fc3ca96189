//! Expiry arithmetic every capability shares: the longest TTL Redis accepts, the check a
//! configuration runs on each TTL, and durations as Redis and HTTP write them.

use std::time::Duration;

use crate::error::Error;

/// Longest TTL keygate accepts anywhere (100 years): beyond it Redis refuses the expiry and
/// every command would fail.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Refuses a zero TTL and one above [`MAX_TTL`], when a configuration is built.
pub(crate) fn check_ttl(what: &str, ttl: Duration) -> Result<(), Error> {
    if ttl.is_zero() {
        return Err(Error::Config(format!("{what} must be positive")));
    }
    if ttl > MAX_TTL {
        return Err(Error::Config(format!(
            "{what} of {ttl:?} is beyond the longest expiry keygate accepts ({MAX_TTL:?})"
        )));
    }
    Ok(())
}

/// Milliseconds of a duration for `PX`/`PEXPIRE`, at least 1.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Whole seconds of a wait, rounded up (a client that retries after the rounded-down
/// value would be refused again), at least 1: the value of a `Retry-After` header.
pub fn retry_after_secs(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis().div_ceil(1000))
        .unwrap_or(u64::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        for (ms, secs) in [(0, 1), (1, 1), (999, 1), (1000, 1), (1001, 2), (59_001, 60)] {
            assert_eq!(retry_after_secs(Duration::from_millis(ms)), secs, "{ms} ms");
        }
    }
}
