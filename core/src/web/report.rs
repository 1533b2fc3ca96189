//! How every adapter logs and counts what it answers instead of the handler's response: one
//! policy for all frameworks.

use super::rejection::Rejection;
use crate::error::Error;
use crate::log_throttle::LogThrottle;

/// Logs a failure an adapter is about to answer, by one policy for all frameworks: backend
/// trouble (503) at WARN, at most once a second per process with the count left out (an
/// outage must not flood the log); a script failure (500) was logged at ERROR where it was
/// recognised, at most once a second too; anything else (500, a programming or
/// configuration error) at ERROR. Never logs tokens: keygate's errors do not carry them.
pub fn report_error(error: &Error) {
    static BACKEND: LogThrottle = LogThrottle::new();
    if error.is_backend() {
        if let Some(suppressed) = BACKEND.allow() {
            tracing::warn!(%error, suppressed, "session backend failed; answering 503 (logged at most once a second)");
        }
    } else if !matches!(error, Error::Script(_)) {
        tracing::error!(%error, "keygate call failed; answering 500");
    }
}

/// Counts a refusal an adapter answers before the handler runs, by status
/// (`keygate_rejections_total`, see [`telemetry`](crate::telemetry)): call it once per
/// refused request, where the adapter renders the rejection. A missing component is a
/// programming error, reported by [`report_missing_component`] instead.
pub fn report_rejection(rejection: Rejection) {
    if !matches!(rejection, Rejection::MissingLayer(_)) {
        crate::telemetry::rejection(rejection.status());
    }
}

/// Logs a route that asked for a session without the loading component installed (a
/// programming error, answered with 500 naming the component).
pub fn report_missing_component(what: &'static str) {
    tracing::error!(what, "a route asked for a session it cannot have");
}
