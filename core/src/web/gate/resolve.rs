//! Token resolution: read the request's token, refuse a cross-origin unsafe request that a
//! cookie authenticates, and load-and-touch the session in one round trip.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{CurrentSession, Keygate};
use crate::web::origin::is_unsafe_method;
use crate::web::rejection::Rejection;
use crate::web::report::report_error;
use crate::web::transport::{RequestParts, TokenSource};

/// What loading the session of a request gave: the session, or why there is none.
pub type Resolved<T> = Result<CurrentSession<T>, Rejection>;

impl<T> Keygate<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Reads the token and loads-and-touches its session: one Redis round trip for a
    /// well-formed token, none for a missing or malformed one. An unsafe request whose
    /// token came from a cookie and whose origin is not allowed is refused
    /// ([`Rejection::CrossOrigin`]) before any Redis command.
    pub async fn resolve(&self, request: &impl RequestParts) -> Resolved<T> {
        let formats = self.manager.config().token_formats();
        let token = match self.settings.reader.read_with_source(request, formats) {
            Ok(Some((token, source))) => {
                if matches!(source, TokenSource::Cookie(_))
                    && is_unsafe_method(request.method())
                    && !self.settings.origins.allow(request, self.serves_https())
                {
                    return Err(Rejection::CrossOrigin);
                }
                token
            }
            Ok(None) => return Err(Rejection::MissingToken),
            Err(_) => {
                crate::telemetry::malformed_load();
                return Err(Rejection::MalformedToken);
            }
        };
        match self.manager.load_shared(token).await {
            Ok(Some(session)) => Ok(CurrentSession {
                session,
                gate: self.clone(),
            }),
            Ok(None) => Err(Rejection::NoSession),
            Err(error) => {
                report_error(&error);
                Err(Rejection::BackendUnavailable)
            }
        }
    }
}

/// How an optional-session extractor reads a [`Resolved`]: no session is `None`, but
/// backend trouble stays an error (503), so a route never silently treats a logged-in user
/// as anonymous because Redis is down; and a refused cross-origin request stays refused
/// (403), so a forged request never runs as anonymous either.
pub fn optional<T>(resolved: &Resolved<T>) -> Result<Option<CurrentSession<T>>, Rejection> {
    match resolved {
        Ok(session) => Ok(Some(session.clone())),
        Err(rejection @ (Rejection::BackendUnavailable | Rejection::CrossOrigin)) => {
            Err(*rejection)
        }
        Err(_) => Ok(None),
    }
}
