//! The framework-neutral response every shared handler returns.

use keygate::code::CodeError;
use keygate::login::LoginError;
use keygate::telemetry::LogThrottle;
use keygate::web::Envelope;
use serde::Serialize;

/// The largest request body the examples read; larger ones are answered 400.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A response: status, the envelope as text (or, for `GET /metrics`, the Prometheus text),
/// its content type, and `Retry-After` (seconds) where waiting helps. Each example turns it
/// into its framework's response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body: `{"success": ..., "data" | "errorMsg": ...}`.
    pub body: String,
    /// Seconds for the `Retry-After` header, if any.
    pub retry_after: Option<u64>,
    /// The `content-type`: [`JSON`] but for `GET /metrics`.
    pub content_type: &'static str,
}

/// The content type of every [`Reply`].
pub const JSON: &str = "application/json";

impl Reply {
    /// 200 with `data`.
    pub fn ok<T: Serialize>(data: T) -> Self {
        Self::with(200, Envelope::ok(data).to_json())
    }

    /// 200 without data.
    pub fn done() -> Self {
        Self::with(200, Envelope::done().to_json())
    }

    /// A failure with this status and message.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Self::with(status, Envelope::error(message).to_json())
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::error(400, message)
    }

    /// 400: the body is larger than [`MAX_BODY_BYTES`].
    pub fn body_too_large() -> Self {
        Self::bad_request(format!(
            "request body too large (at most {MAX_BODY_BYTES} bytes)"
        ))
    }

    /// 400: the body could not be read.
    pub fn unreadable_body() -> Self {
        Self::bad_request("request body could not be read")
    }

    /// 404: no such route.
    pub fn route_not_found() -> Self {
        Self::error(404, "no such route")
    }

    /// 404: no such resource.
    pub fn not_found(what: &str) -> Self {
        Self::error(404, format!("{what} not found"))
    }

    /// What a core error answers (503 for backend trouble, 500 otherwise). Logged like
    /// every failure here: at most once a second per kind, with the number left out since
    /// the last line (`suppressed`), so an outage or a flood cannot flood the log.
    pub fn core(error: &keygate::Error) -> Self {
        static BACKEND: LogThrottle = LogThrottle::new();
        static FAILED: LogThrottle = LogThrottle::new();
        if error.is_backend() {
            if let Some(suppressed) = BACKEND.allow() {
                tracing::warn!(%error, suppressed, "backend failed; answering 503");
            }
        } else if let Some(suppressed) = FAILED.allow() {
            tracing::error!(%error, suppressed, "request failed");
        }
        Self::with(error.status(), error.body())
    }

    /// What a code error answers (400, 401, 429 with `Retry-After`, 503).
    pub fn code(error: &CodeError) -> Self {
        static SEND_FAILED: LogThrottle = LogThrottle::new();
        if error.status() >= 500
            && let Some(suppressed) = SEND_FAILED.allow()
        {
            tracing::warn!(%error, suppressed, "sending a code failed");
        }
        Self::with_retry(
            error.status(),
            error.body(),
            error.retry_after().map(keygate::ttl::retry_after_secs),
        )
    }

    /// What a login error answers.
    pub fn login(error: &LoginError) -> Self {
        match error {
            LoginError::Code(e) => Self::code(e),
            other => {
                static LOGIN_FAILED: LogThrottle = LogThrottle::new();
                if let Some(suppressed) = LOGIN_FAILED.allow() {
                    tracing::warn!(error = %other, suppressed, "login failed");
                }
                Self::with(other.status(), other.body())
            }
        }
    }

    /// 429 with `Retry-After` (`wait`, rounded up to whole seconds): a per-IP budget is
    /// used up.
    pub fn too_many_requests(wait: std::time::Duration) -> Self {
        Self::with_retry(
            429,
            Envelope::error("too many requests").to_json(),
            Some(keygate::ttl::retry_after_secs(wait)),
        )
    }

    /// 500 for an unexpected failure (logged at most once a second; the client gets no
    /// detail).
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        static INTERNAL: LogThrottle = LogThrottle::new();
        if let Some(suppressed) = INTERNAL.allow() {
            tracing::error!(%detail, suppressed, "request failed");
        }
        Self::error(500, "internal error")
    }

    fn with(status: u16, body: String) -> Self {
        Self::with_retry(status, body, None)
    }

    /// 200 with a body that is not the envelope (the metrics page).
    pub fn text(body: String, content_type: &'static str) -> Self {
        Self {
            content_type,
            ..Self::with(200, body)
        }
    }

    /// What a rate limiter answered instead of the handler: 429 with its `Retry-After`, or
    /// the 503/500 of a failed store (already logged by keygate's one policy).
    pub fn from_rate_limit(rejection: keygate::web::RateLimitRejection) -> Self {
        let retry_after = rejection
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
            .and_then(|(_, value)| value.parse().ok());
        Self::with_retry(rejection.status, rejection.body, retry_after)
    }

    /// A reply with a `Retry-After` of `retry_after` seconds.
    pub fn with_retry(status: u16, body: String, retry_after: Option<u64>) -> Self {
        Self {
            status,
            body,
            retry_after,
            content_type: JSON,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn replies_carry_the_envelope() {
        assert_eq!(Reply::ok(5).body, r#"{"success":true,"data":5}"#);
        assert_eq!(Reply::done().body, r#"{"success":true}"#);
        let r = Reply::code(&CodeError::Cooldown {
            retry_after: Duration::from_millis(59_500),
        });
        assert_eq!(
            (r.status, r.retry_after),
            (429, Some(60)),
            "59.5 s rounds up"
        );
        assert_eq!(Reply::route_not_found().status, 404);
    }

    /// Requests that fail the same way over and over (an outage, a flood) log one line a
    /// second per kind, the next one with the number left out meanwhile.
    #[test]
    fn failing_requests_log_at_most_once_a_second_per_kind() {
        let log = keygate_tests::log_capture::LogCapture::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let lines = |needle: &str| -> Vec<String> {
            log.text()
                .lines()
                .filter(|l| l.contains(needle))
                .map(str::to_owned)
                .collect()
        };
        let outage =
            keygate::Error::Backend(keygate::BackendError::Timeout(Duration::from_millis(1)));
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..100 {
                assert_eq!(Reply::core(&outage).status, 503);
                assert_eq!(Reply::internal(&"disk full").status, 500);
            }
            let (backend, internal) = (lines("answering 503"), lines("disk full"));
            assert_eq!((backend.len(), internal.len()), (1, 1), "{}", log.text());
            std::thread::sleep(Duration::from_millis(1100));
            Reply::core(&outage);
            Reply::internal(&"disk full");
            let (backend, internal) = (lines("answering 503"), lines("disk full"));
            assert_eq!((backend.len(), internal.len()), (2, 2), "{}", log.text());
            assert!(backend[1].contains("suppressed=99"), "{backend:?}");
            assert!(internal[1].contains("suppressed=99"), "{internal:?}");
        });
    }
}
