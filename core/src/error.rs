//! The core's one error type.

use std::time::Duration;

use crate::log_throttle::LogThrottle;

/// Everything that can go wrong in keygate. "No session" is not an error: loads return
/// `Option`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The backend (Redis) could not be reached, timed out or failed a command.
    /// Adapters answer 503.
    #[error("session backend unavailable: {0}")]
    Backend(#[from] BackendError),
    /// The data could not be turned into its stored form (it is not a JSON object, a value
    /// does not serialize). A programming error in the caller's type, not a client error.
    #[error("cannot encode session data: {0}")]
    Encode(String),
    /// A user id that cannot be part of a Redis key (empty, too long, or with characters
    /// that would act as a glob, a separator or a hash tag).
    #[error("invalid user id")]
    InvalidUserId,
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),
    /// Invalid configuration, found when it was built.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A keygate script failed on what it found in Redis (data of another type or range
    /// under a keygate key, or a bug). Retrying cannot help, so adapters answer 500, not
    /// 503, and the failure is logged at ERROR (at most once a second, with the number left
    /// out since the last line).
    #[error("a Redis script failed: {0}")]
    Script(String),
}

/// A failure of the storage backend, kept apart so callers can fail closed on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// An error reported by the redis client (I/O, refused connection, server error).
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// The operation did not finish within its deadline.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// A `rediss://` URL names a server that does not speak TLS on that port: it answered a
    /// plain-text `PING` after the TLS handshake went unanswered.
    #[error(
        "the server at {0} answers plain text, not TLS (a rediss:// URL for a server without TLS on that port)"
    )]
    NotTls(String),
    /// The server answered something keygate's scripts never return.
    #[error("unexpected reply: {0}")]
    Protocol(&'static str),
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        if is_script_failure(&e) {
            // One a request could provoke on every request: at most once a second.
            static SCRIPT_FAILURES: LogThrottle = LogThrottle::new();
            let error = Error::Script(e.to_string());
            if let Some(suppressed) = SCRIPT_FAILURES.allow() {
                tracing::error!(
                    %error,
                    suppressed,
                    "deterministic script failure; answering 500 (logged at most once a second)"
                );
            }
            return error;
        }
        Error::Backend(BackendError::Redis(e))
    }
}

/// An error raised while a script ran (Redis names the script's chunk `user_script`), as
/// opposed to the server being unreachable, busy or missing the script.
fn is_script_failure(e: &redis::RedisError) -> bool {
    e.clone().into_server_errors().is_some_and(|errors| {
        errors.iter().any(|(_, e)| {
            !matches!(
                e.code(),
                "BUSY" | "NOSCRIPT" | "LOADING" | "READONLY" | "MASTERDOWN"
            ) && e.details().is_some_and(|d| d.contains("user_script"))
        })
    })
}

impl Error {
    /// Whether this is backend trouble (the request may succeed later): adapters answer 503.
    pub fn is_backend(&self) -> bool {
        matches!(self, Error::Backend(_))
    }
}

/// Shorthand for results in keygate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
