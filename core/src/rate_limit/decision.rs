//! The outcome of a check.

use std::time::Duration;

use super::LimitReply;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitDecision {
    /// Whether the request may go on (it has been counted).
    pub allowed: bool,
    /// The most requests allowed at once: the quota's burst, or the window's limit
    /// (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests that would still be allowed right now (`RateLimit-Remaining`).
    pub remaining: u32,
    /// For a refused request, how long until it would be allowed (zero when allowed).
    pub retry_after: Duration,
    /// How long until the whole budget is available again (`RateLimit-Reset`).
    pub reset: Duration,
    /// Allowed without asking the store, because it failed and the limiter fails open.
    pub degraded: bool,
}

impl RateLimitDecision {
    pub(super) fn from_reply(reply: LimitReply, limit: u32) -> Self {
        Self {
            allowed: reply.allowed,
            limit,
            remaining: u32::try_from(reply.remaining)
                .unwrap_or(u32::MAX)
                .min(limit),
            retry_after: Duration::from_micros(reply.retry_after_us),
            reset: Duration::from_micros(reply.reset_us),
            degraded: false,
        }
    }

    pub(super) fn degraded(limit: u32) -> Self {
        Self {
            allowed: true,
            limit,
            remaining: limit,
            retry_after: Duration::ZERO,
            reset: Duration::ZERO,
            degraded: true,
        }
    }
}
