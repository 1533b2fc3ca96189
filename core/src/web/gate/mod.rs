//! The gate: the session manager together with how requests carry their token. What every
//! adapter does per request, once, lives in the submodules: reading the token and checking
//! the origin of a cookie-authenticated unsafe request before loading the session
//! ([`resolve`]), the per-request cookie and device ([`request`]), and what a handler does
//! with the session it got ([`current`]).

mod current;
mod request;
mod resolve;
#[cfg(test)]
#[cfg(feature = "memory")]
mod tests;

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use self::current::CurrentSession;
use self::request::RequestContext;
pub use self::resolve::{Resolved, optional};
use super::cookie::SessionCookie;
use super::origin::AllowedOrigins;
use super::transport::TokenReader;
use crate::error::Result;
use crate::session::{LoginOptions, SessionManager, SessionUser};
use crate::token::Token;

/// The session manager together with how requests carry their token: the token reader,
/// the session cookie (opt-in) and the origins allowed to send cookie-authenticated unsafe
/// requests. What an adapter's layer, middleware, fairing or endpoint wrapper is configured
/// with. Cheap to clone.
///
/// ```
/// use keygate::{Keygate, MemoryStore, SessionConfig, SessionCookie, SessionManager};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64 }
/// let manager = SessionManager::<User>::new(MemoryStore::new(), SessionConfig::java_seed())?;
/// // Header and query tokens as before, plus the cookie `token`, which login sets and
/// // logout clears; unsafe cookie-authenticated requests must come from the app's own host.
/// let gate = Keygate::new(manager).with_cookie(SessionCookie::new());
/// # Ok::<(), keygate::Error>(())
/// ```
///
/// # Per request
///
/// An adapter calls [`for_request`](Self::for_request) once per request and uses the gate
/// it returns for that request: [`resolve`](Self::resolve) with it, hand it to the login
/// extractor, and after the handler append [`take_set_cookie`](Self::take_set_cookie) to the
/// response as a `Set-Cookie` header. Without a cookie configured that gate is a plain
/// clone (no allocation).
pub struct Keygate<T> {
    manager: SessionManager<T>,
    settings: Arc<Settings>,
    /// Present on the gate of one request whose gate has a cookie.
    request: Option<Arc<RequestContext>>,
}

/// How requests carry their token, shared by every clone of a gate.
#[derive(Debug, Clone, Default)]
struct Settings {
    reader: TokenReader,
    cookie: Option<SessionCookie>,
    origins: AllowedOrigins,
}

impl<T> Clone for Keygate<T> {
    fn clone(&self) -> Self {
        Self {
            manager: self.manager.clone(),
            settings: Arc::clone(&self.settings),
            request: self.request.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Keygate<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The request context is left out: a pending cookie holds a token.
        f.debug_struct("Keygate")
            .field("manager", &self.manager)
            .field("reader", &self.settings.reader)
            .field("cookie", &self.settings.cookie)
            .field("origins", &self.settings.origins)
            .finish_non_exhaustive()
    }
}

/// The per-request side, which needs nothing of `T`: the adapters' response hooks call it.
impl<T> Keygate<T> {
    /// The session cookie, if the gate has one.
    pub fn cookie(&self) -> Option<&SessionCookie> {
        self.settings.cookie.as_ref()
    }
}

impl<T> Keygate<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// A gate with the default token reader (`authorization` header raw or `Bearer`, then
    /// the `tokenid` query parameter), no session cookie, and the default origin check
    /// ([`AllowedOrigins::same_host`]) for requests authenticated by a cookie source.
    pub fn new(manager: SessionManager<T>) -> Self {
        Self {
            manager,
            settings: Arc::new(Settings::default()),
            request: None,
        }
    }

    fn settings_mut(&mut self) -> &mut Settings {
        Arc::make_mut(&mut self.settings)
    }

    /// Replaces the token reader (a configured session cookie stays one of its sources).
    pub fn with_reader(mut self, reader: TokenReader) -> Self {
        let settings = self.settings_mut();
        settings.reader = match &settings.cookie {
            Some(cookie) => reader.with_cookie_source(cookie.name()),
            None => reader,
        };
        self
    }

    /// Turns the session cookie on: [`login`](Self::login) sets it, logging out clears it,
    /// and the reader accepts it (after its other sources, unless it already reads a cookie
    /// of that name), so header and query tokens keep working beside it in the reader's
    /// order. Unsafe requests authenticated by the cookie must come from an allowed origin
    /// ([`with_allowed_origins`](Self::with_allowed_origins)).
    pub fn with_cookie(mut self, cookie: SessionCookie) -> Self {
        let settings = self.settings_mut();
        settings.reader = std::mem::take(&mut settings.reader).with_cookie_source(cookie.name());
        settings.cookie = Some(cookie);
        self
    }

    /// The origins allowed to send unsafe requests authenticated by a cookie, instead of the
    /// request's own host; each `scheme://host[:port]`. A malformed origin is an
    /// [`Error::Config`](crate::error::Error::Config).
    pub fn with_allowed_origins(
        mut self,
        origins: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<Self> {
        self.settings_mut().origins = AllowedOrigins::list(origins)?;
        Ok(self)
    }

    /// The session manager (for login, logout, listing).
    pub fn manager(&self) -> &SessionManager<T> {
        &self.manager
    }

    /// The token reader.
    pub fn reader(&self) -> &TokenReader {
        &self.settings.reader
    }

    /// Logs the user that `data` names in: creates a session holding `data` (registered in
    /// that user's index) and returns the token to hand to the client. On a request's gate
    /// with a session cookie, the response sets the cookie, and the session's device is the
    /// request's `User-Agent`. A gate without a cookie keeps nothing per request: pass the
    /// device yourself with [`login_with`](Self::login_with) and
    /// [`LoginOptions::with_device`].
    pub async fn login(&self, data: &T) -> Result<Token>
    where
        T: SessionUser,
    {
        self.login_with(data, LoginOptions::new()).await
    }

    /// Like [`login`](Self::login), with per-login choices (see
    /// [`SessionManager::login_with`]); the cookie's `Max-Age` follows the session's
    /// lifetime. Options without a device get the request's `User-Agent`.
    pub async fn login_with(&self, data: &T, options: LoginOptions) -> Result<Token>
    where
        T: SessionUser,
    {
        let options = self.with_request_device(options);
        let max_age = self.manager.lifetime_for(&options)?;
        let token = self
            .manager
            .login_with(&data.user_id(), data, &options)
            .await?;
        self.set_cookie_for(&token, max_age);
        Ok(token)
    }
}
