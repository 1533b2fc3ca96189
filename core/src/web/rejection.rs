//! Why a request is turned away before its handler runs, and what each failure answers:
//! the status and the envelope. Adapters only translate these into their framework's
//! types.

use super::envelope::Envelope;
use crate::error::Error;

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
    /// has neither: 403, decided before any Redis command (see [`AllowedOrigins`](super::AllowedOrigins)).
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

impl Error {
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
    fn rejections_answer_as_the_contract_says() {
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
