//! Warnings that an outage or a flooding client would repeat on every request, logged at
//! most once a second per kind, with the number left out since the last one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// One kind of repeated warning: [`allow`](Self::allow) says whether to log it now. Keep
/// one in a `static` per kind of message.
///
/// ```
/// use keygate::telemetry::LogThrottle;
///
/// static STORE_DOWN: LogThrottle = LogThrottle::new();
/// if let Some(suppressed) = STORE_DOWN.allow() {
///     tracing::warn!(suppressed, "the store failed (logged at most once a second)");
/// }
/// ```
#[derive(Debug, Default)]
pub struct LogThrottle {
    /// Milliseconds since the Unix epoch of the last logged warning.
    last: AtomicU64,
    /// Warnings not logged since then.
    suppressed: AtomicU64,
}

impl LogThrottle {
    /// A throttle that allows the first warning.
    pub const fn new() -> Self {
        Self {
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a warning may be logged now (at most once a second), `n` being how
    /// many were left out since the last one; `None` (and counted) otherwise.
    pub fn allow(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let last = self.last.load(Ordering::Relaxed);
        let won = now.saturating_sub(last) >= 1000
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if won {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_a_second_with_the_count_left_out() {
        let throttle = LogThrottle::new();
        assert_eq!(throttle.allow(), Some(0));
        assert_eq!(throttle.allow(), None);
        assert_eq!(throttle.allow(), None);
        // A second later (as if): the next warning reports the two left out.
        throttle.last.fetch_sub(1000, Ordering::Relaxed);
        assert_eq!(throttle.allow(), Some(2));
        assert_eq!(throttle.allow(), None);
    }
}
