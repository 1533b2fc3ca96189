//! The framework-neutral HTTP side: the JSON envelope and what each failure answers.
//! Adapters only translate these into their framework's types.

use serde::{Deserialize, Serialize};

/// The response body every keygate rejection (and the example apps) use:
/// `{"success": true, "data": ...}` or `{"success": false, "errorMsg": "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Envelope<T> {
    /// Whether the call succeeded.
    pub success: bool,
    /// The result, on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
    /// What went wrong, on failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_msg: Option<String>,
}

impl<T: Serialize> Envelope<T> {
    /// A success carrying `data`.
    pub fn ok(data: T) -> Self {
        Self {
            success: true,
            data: Some(data),
            error_msg: None,
        }
    }
}

impl Envelope<()> {
    /// A success without data.
    pub fn done() -> Self {
        Self {
            success: true,
            data: None,
            error_msg: None,
        }
    }

    /// A failure with a message.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            success: false,
            data: None,
            error_msg: Some(message.into()),
        }
    }
}

impl<T: Serialize> Envelope<T> {
    /// The JSON text.
    pub fn to_json(&self) -> String {
        // Serializing plain structs and strings to JSON cannot fail; the fallback keeps
        // this infallible for data types whose `Serialize` can.
        serde_json::to_string(self)
            .unwrap_or_else(|_| r#"{"success":false,"errorMsg":"unserializable response"}"#.into())
    }
}

/// The value of a `Retry-After` header for a wait: whole seconds, rounded up (a client
/// that retries after the rounded-down value would be refused again), at least 1.
pub fn retry_after_secs(wait: std::time::Duration) -> u64 {
    u64::try_from(wait.as_millis().div_ceil(1000))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Why a request did not get a session, and what to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// No token in the request: 401.
    MissingToken,
    /// A token that is not well formed: 401, without a Redis call.
    MalformedToken,
    /// A well-formed token without a live session (unknown, expired, logged out): 401.
    NoSession,
    /// The backend failed or timed out: 503.
    BackendUnavailable,
    /// An unsafe request (`POST`, `PUT`, `PATCH`, `DELETE`, ...) authenticated by the session
    /// cookie whose `Origin` (or, lacking one, `Referer`) is not an allowed origin, or that
    /// has neither: 403, decided before any Redis command (see [`crate::origin`]).
    CrossOrigin,
    /// A handler asked for the session on a route without the loading layer: 500 naming
    /// the missing piece (a programming error, reported rather than panicking).
    MissingLayer(&'static str),
}

impl Rejection {
    /// The HTTP status code.
    pub fn status(self) -> u16 {
        match self {
            Rejection::MissingToken | Rejection::MalformedToken | Rejection::NoSession => 401,
            Rejection::CrossOrigin => 403,
            Rejection::BackendUnavailable => 503,
            Rejection::MissingLayer(_) => 500,
        }
    }

    /// The message for the envelope.
    pub fn message(self) -> &'static str {
        match self {
            Rejection::MissingToken => "not logged in: no token",
            Rejection::MalformedToken => "not logged in: malformed token",
            Rejection::NoSession => "not logged in: unknown or expired token",
            Rejection::BackendUnavailable => "session backend unavailable, try again later",
            Rejection::CrossOrigin => "cross-origin request refused",
            Rejection::MissingLayer(what) => what,
        }
    }

    /// The JSON body.
    pub fn body(self) -> String {
        Envelope::error(self.message()).to_json()
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Rejection {}

impl crate::Error {
    /// The HTTP status an adapter answers for this error: 503 for backend trouble, 500
    /// for everything else (those are programming or configuration errors, not the
    /// client's).
    pub fn status(&self) -> u16 {
        if self.is_backend() { 503 } else { 500 }
    }

    /// A message safe to show to clients (no internals, no keys).
    pub fn public_message(&self) -> &'static str {
        if self.is_backend() {
            Rejection::BackendUnavailable.message()
        } else {
            "internal error"
        }
    }

    /// The JSON body (the envelope) for this error.
    pub fn body(&self) -> String {
        Envelope::error(self.public_message()).to_json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        use std::time::Duration;
        for (ms, secs) in [(0, 1), (1, 1), (999, 1), (1000, 1), (1001, 2), (59_001, 60)] {
            assert_eq!(retry_after_secs(Duration::from_millis(ms)), secs, "{ms} ms");
        }
    }

    #[test]
    fn envelopes_match_the_contract() {
        assert_eq!(
            Envelope::ok("t").to_json(),
            r#"{"success":true,"data":"t"}"#
        );
        assert_eq!(Envelope::done().to_json(), r#"{"success":true}"#);
        assert_eq!(
            Rejection::BackendUnavailable.body(),
            r#"{"success":false,"errorMsg":"session backend unavailable, try again later"}"#
        );
        assert_eq!(Rejection::NoSession.status(), 401);
        assert_eq!(
            Rejection::CrossOrigin.body(),
            r#"{"success":false,"errorMsg":"cross-origin request refused"}"#
        );
        assert_eq!(Rejection::CrossOrigin.status(), 403);
        assert_eq!(Rejection::MissingLayer("x").status(), 500);
    }
}
