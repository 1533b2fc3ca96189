//! The outcome of a check, and what a middleware answers for a refused one.

use std::time::Duration;

use super::LimitReply;
use crate::error::Error;
use crate::http::{Envelope, retry_after_secs};

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

    /// The IETF draft `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
    /// headers (reset in whole seconds, rounded up), and for a refused request
    /// `Retry-After` (whole seconds, rounded up, at least 1).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("RateLimit-Limit", self.limit.to_string()),
            ("RateLimit-Remaining", self.remaining.to_string()),
            (
                "RateLimit-Reset",
                u64::try_from(self.reset.as_millis().div_ceil(1000))
                    .unwrap_or(u64::MAX)
                    .to_string(),
            ),
        ];
        if !self.allowed {
            headers.push((
                "Retry-After",
                retry_after_secs(self.retry_after).to_string(),
            ));
        }
        headers
    }
}

/// The message of a refused request's envelope.
pub const TOO_MANY_REQUESTS: &str = "too many requests";

/// What an adapter answers instead of running the handler: the status, the headers and
/// the JSON envelope body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusal {
    /// 429 (over the limit) or 503 (the store failed and the limiter fails closed) or 500
    /// (anything else).
    pub status: u16,
    /// Headers to set.
    pub headers: Vec<(&'static str, String)>,
    /// `{"success":false,"errorMsg":"..."}`.
    pub body: String,
}

impl Refusal {
    /// 429 for a refused decision.
    pub fn too_many(decision: &RateLimitDecision) -> Self {
        Self {
            status: 429,
            headers: decision.headers(),
            body: Envelope::error(TOO_MANY_REQUESTS).to_json(),
        }
    }

    /// 503 or 500 for an error (logged by the adapters' one policy).
    pub fn error(error: &Error) -> Self {
        crate::adapter::report_error(error);
        Self {
            status: error.status(),
            headers: Vec::new(),
            body: error.body(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_carry_the_headers() {
        let decision = RateLimitDecision {
            allowed: false,
            limit: 3,
            remaining: 0,
            retry_after: Duration::from_millis(19_001),
            reset: Duration::from_millis(59_001),
            degraded: false,
        };
        let refusal = Refusal::too_many(&decision);
        assert_eq!(refusal.status, 429);
        assert_eq!(
            refusal.body,
            r#"{"success":false,"errorMsg":"too many requests"}"#
        );
        assert!(refusal.headers.contains(&("Retry-After", "20".into())));
        assert!(refusal.headers.contains(&("RateLimit-Reset", "60".into())));
        assert!(refusal.headers.contains(&("RateLimit-Limit", "3".into())));
    }
}
