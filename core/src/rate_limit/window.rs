//! The sliding window log: at most `limit` requests in any `period`, exactly.

use std::time::Duration;

use super::{LimitReply, micros};
use crate::error::{Error, Result};

/// The largest [`Window`] limit: the log keeps one entry per admitted request, so this
/// bounds a subject's key (about 60 bytes an entry on Redis).
pub const MAX_WINDOW_LIMIT: u32 = 10_000;

/// At most `limit` requests in any rolling `period`: all of them at once if the client
/// likes, and then none until the oldest leaves the window. Unlike a [`Quota`](super::Quota)
/// (whose budget refills continuously, so a client can get up to about twice its burst
/// through within one period), no `period`-long stretch of time ever holds more than
/// `limit` admitted requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    limit: u32,
    period: Duration,
}

impl Window {
    /// At most `limit` requests in any `period`.
    pub fn new(limit: u32, period: Duration) -> Self {
        Self { limit, period }
    }

    /// At most `limit` requests in any second.
    pub fn per_second(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(1))
    }

    /// At most `limit` requests in any minute (a rolling minute, not a clock minute).
    pub fn per_minute(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(60))
    }

    /// At most `limit` requests in any hour.
    pub fn per_hour(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(3600))
    }

    /// Requests allowed in one period.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The length of the window.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Refuses a limit of 0 or above [`MAX_WINDOW_LIMIT`], and a period of zero, below a
    /// millisecond (the key's expiry is in milliseconds) or above the longest expiry
    /// keygate accepts.
    pub fn validate(&self) -> Result<()> {
        if self.limit == 0 || self.limit > MAX_WINDOW_LIMIT {
            return Err(Error::Config(format!(
                "rate limit: a window's limit must be 1 to {MAX_WINDOW_LIMIT}"
            )));
        }
        crate::ttl::check_ttl("rate limit window", self.period)?;
        if self.period < Duration::from_millis(1) {
            return Err(Error::Config(
                "rate limit: a window must be at least 1 ms long".into(),
            ));
        }
        Ok(())
    }

    /// The integers a decision works on.
    pub fn params(&self) -> WindowParams {
        WindowParams {
            period_us: micros(self.period),
            limit: u64::from(self.limit),
        }
    }
}

/// The integers a sliding-window decision works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WindowParams {
    /// The window's length in microseconds.
    pub period_us: u64,
    /// Requests allowed in one window.
    pub limit: u64,
}

/// One sliding-window decision on the log of admitted requests' times (µs, ascending):
/// entries at or before `now - period` are dropped, and the request is admitted (and its
/// time added) when fewer than `limit` remain. The reply's `retry_after_us` is when the
/// entry whose leaving makes room leaves; `reset_us` when the newest does. The Redis
/// script computes exactly this, on the same integers.
pub fn sliding_window(log: &mut Vec<u64>, now_us: u64, params: WindowParams) -> LimitReply {
    let cutoff = now_us.saturating_sub(params.period_us);
    log.retain(|&t| t > cutoff);
    let count = log.len() as u64;
    if count < params.limit {
        // A clock that stepped back may leave newer entries in the log; keep it sorted.
        let at = log.partition_point(|&t| t <= now_us);
        log.insert(at, now_us);
        return LimitReply {
            allowed: true,
            remaining: params.limit - count - 1,
            retry_after_us: 0,
            reset_us: params.period_us,
            now_us,
        };
    }
    // Room is made when all but `limit - 1` entries have left: the (count - limit)-th
    // oldest (the oldest, unless the limit was lowered since these were admitted).
    let leaving = usize::try_from(count - params.limit)
        .ok()
        .and_then(|i| log.get(i))
        .copied()
        .unwrap_or(now_us);
    let newest = log.last().copied().unwrap_or(now_us);
    LimitReply {
        allowed: false,
        remaining: 0,
        retry_after_us: (leaving + params.period_us).saturating_sub(now_us),
        reset_us: (newest + params.period_us).saturating_sub(now_us),
        now_us,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000_000;

    #[test]
    fn a_rolling_minute_never_holds_more_than_the_limit() {
        let params = Window::per_minute(3).params();
        let mut log = Vec::new();
        let t0 = 1_000_000_000;
        // Two at t0, one 20 s later: the budget is spent.
        for (at, left) in [(t0, 2), (t0, 1), (t0 + 20_000_000, 0)] {
            let reply = sliding_window(&mut log, at, params);
            assert!(reply.allowed);
            assert_eq!(reply.remaining, left);
        }
        let refused = sliding_window(&mut log, t0 + 30_000_000, params);
        assert!(!refused.allowed);
        // The two of t0 leave at t0 + 60 s exactly, the third 20 s later.
        assert_eq!(refused.retry_after_us, 30_000_000);
        assert_eq!(refused.reset_us, 50_000_000);
        assert!(!sliding_window(&mut log, t0 + MIN - 1, params).allowed);
        assert_eq!(log.len(), 3, "refused requests are not recorded");
        // At t0 + 60 s two have left: exactly two more, then none.
        assert!(sliding_window(&mut log, t0 + MIN, params).allowed);
        assert!(sliding_window(&mut log, t0 + MIN, params).allowed);
        let third = sliding_window(&mut log, t0 + MIN, params);
        assert!(!third.allowed);
        assert_eq!(third.retry_after_us, 20_000_000);
    }

    #[test]
    fn a_lowered_limit_waits_for_enough_entries_to_leave() {
        let mut log = vec![10, 20, 30, 40];
        let reply = sliding_window(
            &mut log,
            50,
            Window::new(2, Duration::from_micros(100)).params(),
        );
        assert!(!reply.allowed);
        // Three must leave before one more fits under 2: the third oldest, at 30 + 100.
        assert_eq!(reply.retry_after_us, 80);
        assert_eq!(reply.reset_us, 90);
    }

    #[test]
    fn windows_are_validated() {
        assert!(Window::per_minute(0).validate().is_err());
        assert!(Window::per_minute(MAX_WINDOW_LIMIT + 1).validate().is_err());
        assert!(Window::per_minute(MAX_WINDOW_LIMIT).validate().is_ok());
        assert!(Window::new(1, Duration::ZERO).validate().is_err());
        assert!(
            Window::new(1, Duration::from_micros(999))
                .validate()
                .is_err()
        );
        assert!(Window::per_minute(30).validate().is_ok());
    }
}
