//! What every adapter does per request, once: read the token, check the origin of a
//! cookie-authenticated unsafe request, load-and-touch the session; and what a handler's
//! login and logout do to the session cookie.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cookie::{CookieChange, SessionCookie};
use crate::http::Rejection;
use crate::origin::{AllowedOrigins, is_unsafe_method};
use crate::session::DEVICE_LABEL_MAX_CHARS;
use crate::transport::{RequestParts, TokenReader, TokenSource};
use crate::{LoginOptions, Session, SessionInfo, SessionManager, SessionUser, Token};

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

/// What one request's handler may do to the session cookie, and what its login records.
struct RequestContext {
    /// Held only to swap the value, never across an await.
    pending: Mutex<Option<CookieChange>>,
    /// The request's `User-Agent`, cut to a device label's length.
    user_agent: Option<String>,
    /// Whether the request names another origin: then its response never sets or clears
    /// the cookie (a cross-site login must not plant a session in the victim's browser, a
    /// cross-site logout by query token must not drop the victim's cookie).
    foreign: bool,
}

impl RequestContext {
    fn pending(&self) -> MutexGuard<'_, Option<CookieChange>> {
        // A panic elsewhere while holding the lock left a plain value behind; use it.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
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

/// What loading the session of a request gave: the session, or why there is none.
pub type Resolved<T> = Result<CurrentSession<T>, Rejection>;

/// The session of the current request, with what a handler needs to end it. Cheap to
/// clone. Adapters wrap it in their `Auth<T>` extractor or guard.
pub struct CurrentSession<T> {
    session: Arc<Session<T>>,
    gate: Keygate<T>,
}

impl<T> Clone for CurrentSession<T> {
    fn clone(&self) -> Self {
        Self {
            session: Arc::clone(&self.session),
            gate: self.gate.clone(),
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for CurrentSession<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.session.fmt(f)
    }
}

impl<T> std::ops::Deref for CurrentSession<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.session.data()
    }
}

impl<T> CurrentSession<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// The loaded session (data and token).
    pub fn session(&self) -> &Session<T> {
        &self.session
    }

    /// The user's data.
    pub fn data(&self) -> &T {
        self.session.data()
    }

    /// The session manager, for what goes beyond this session's user (operator tools). Its
    /// methods take any user id: prefer the methods here in handlers.
    pub fn manager(&self) -> &SessionManager<T> {
        self.gate.manager()
    }

    /// Ends this session at once (logout). With a session cookie on the gate, the response
    /// clears it.
    pub async fn logout(&self) -> crate::Result<bool> {
        let ended = self.gate.manager().logout(self.session.token()).await?;
        self.gate.clear_cookie();
        Ok(ended)
    }

    /// Ends every session of this session's user, this one included; returns how many were
    /// live. The user is the one the session data names ([`SessionUser`]), so a handler can
    /// only end its own user's sessions. With a session cookie on the gate, the response
    /// clears it.
    pub async fn logout_everywhere(&self) -> crate::Result<u64>
    where
        T: SessionUser,
    {
        let ended = self
            .gate
            .manager()
            .logout_everywhere(&self.data().user_id())
            .await?;
        self.gate.clear_cookie();
        Ok(ended)
    }

    /// The live sessions of this session's user, oldest first, this one marked `current`.
    pub async fn sessions(&self) -> crate::Result<Vec<SessionInfo>>
    where
        T: SessionUser,
    {
        self.gate
            .manager()
            .sessions(&self.data().user_id(), Some(self.session.token()))
            .await
    }

    /// Ends one session of this session's user, named by its public id (for "log out that
    /// device"); `false` when the user has no live session with that id, which includes
    /// every session of another user. Ending this very session clears the cookie, as
    /// [`logout`](Self::logout) does.
    pub async fn end_session(&self, id: &crate::SessionId) -> crate::Result<bool>
    where
        T: SessionUser,
    {
        let manager = self.gate.manager();
        let ended = manager.end_session(&self.data().user_id(), id).await?;
        if ended && manager.session_id(self.session.token()) == *id {
            self.gate.clear_cookie();
        }
        Ok(ended)
    }

    /// Gives this session a new token and ends the old one atomically (see
    /// [`SessionManager::rotate`]); with a session cookie, the response carries the new
    /// token. Renew the token this way when the session's privileges change. `None` when
    /// the session ended meanwhile. This handle keeps naming the old token, which no longer
    /// works: act on the new one through the manager.
    pub async fn rotate(&self) -> crate::Result<Option<Token>>
    where
        T: SessionUser,
    {
        let Some(rotated) = self.gate.manager().rotate(&self.session).await? else {
            return Ok(None);
        };
        self.gate
            .set_cookie_for(&rotated.token, rotated.lifetime_left);
        Ok(Some(rotated.token))
    }

    /// Writes new data over this session (see [`SessionManager::update`]).
    pub async fn update(&self, data: &T) -> crate::Result<crate::UpdateOutcome> {
        self.gate.manager().update(&self.session, data).await
    }
}

/// The per-request side, which needs nothing of `T`: the adapters' response hooks call it.
impl<T> Keygate<T> {
    /// The session cookie, if the gate has one.
    pub fn cookie(&self) -> Option<&SessionCookie> {
        self.settings.cookie.as_ref()
    }

    /// The gate to use for one request: with a session cookie configured, it carries the
    /// request's pending cookie change and its `User-Agent` (the device label of a login);
    /// without one it is a plain clone, and costs no allocation.
    pub fn for_request(&self, request: &impl RequestParts) -> Self {
        if self.settings.cookie.is_none() {
            return self.clone();
        }
        let user_agent = request.header("user-agent").map(|ua| {
            String::from_utf8_lossy(ua)
                .chars()
                .take(DEVICE_LABEL_MAX_CHARS)
                .collect()
        });
        Self {
            request: Some(Arc::new(RequestContext {
                pending: Mutex::new(None),
                user_agent,
                foreign: self
                    .settings
                    .origins
                    .names_foreign(request, self.serves_https()),
            })),
            ..self.clone()
        }
    }

    /// Makes this request's response set the session cookie to `token` (with `Max-Age`
    /// when `max_age` is given): for whatever issues a new token to the request's client.
    /// Does nothing without a session cookie, or on a gate that is not a request's
    /// ([`for_request`](Self::for_request)).
    pub fn set_cookie_for(&self, token: &Token, max_age: Option<Duration>) {
        self.change_cookie(CookieChange::Set {
            token: token.clone(),
            max_age,
        });
    }

    /// Makes this request's response clear the session cookie. Does nothing without a
    /// session cookie, or on a gate that is not a request's.
    pub fn clear_cookie(&self) {
        self.change_cookie(CookieChange::Clear);
    }

    /// `options` with the request's `User-Agent` as the device, unless they name one.
    fn with_request_device(&self, options: LoginOptions) -> LoginOptions {
        let user_agent = self.request.as_ref().and_then(|r| r.user_agent.as_deref());
        match user_agent {
            Some(ua) if options.device().is_none() => options.with_device(ua),
            _ => options,
        }
    }

    fn change_cookie(&self, change: CookieChange) {
        if let Some(request) = self.request.as_ref().filter(|r| !r.foreign) {
            *request.pending() = Some(change);
        }
    }

    /// Whether the app is served over HTTPS, as far as the gate knows: its session cookie
    /// is `Secure`.
    fn serves_https(&self) -> bool {
        self.settings
            .cookie
            .as_ref()
            .is_some_and(SessionCookie::is_secure)
    }

    /// The `Set-Cookie` value the response of this request must carry, if its handler
    /// logged in or out: what an adapter appends after the handler. Taken once.
    pub fn take_set_cookie(&self) -> Option<String> {
        let change = self.request.as_ref()?.pending().take()?;
        Some(change.render(self.settings.cookie.as_ref()?))
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
    /// [`Error::Config`](crate::Error::Config).
    pub fn with_allowed_origins(
        mut self,
        origins: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> crate::Result<Self> {
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
    pub async fn login(&self, data: &T) -> crate::Result<Token>
    where
        T: SessionUser,
    {
        self.login_with(data, LoginOptions::new()).await
    }

    /// Like [`login`](Self::login), with per-login choices (see
    /// [`SessionManager::login_with`]); the cookie's `Max-Age` follows the session's
    /// lifetime. Options without a device get the request's `User-Agent`.
    pub async fn login_with(&self, data: &T, options: LoginOptions) -> crate::Result<Token>
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
        match self.manager.load(&token).await {
            Ok(Some(session)) => Ok(CurrentSession {
                session: Arc::new(session),
                gate: self.clone(),
            }),
            Ok(None) => Err(Rejection::NoSession),
            Err(error) => {
                crate::adapter::report_error(&error);
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

#[cfg(test)]
#[cfg(feature = "memory")]
mod tests {
    use super::*;
    use crate::{MemoryStore, SessionConfig, UserId};

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct User {
        id: u64,
    }

    impl SessionUser for User {
        fn user_id(&self) -> UserId {
            UserId::from(self.id)
        }
    }

    use crate::transport::TestRequest;

    fn req(method: &'static str, headers: &[(&'static str, &str)]) -> TestRequest {
        headers
            .iter()
            .fold(TestRequest::new(method), |r, (name, value)| {
                r.header(name, value)
            })
    }

    fn gate(config: SessionConfig) -> Keygate<User> {
        let manager = SessionManager::new(MemoryStore::new(), config).unwrap();
        Keygate::new(manager).with_cookie(SessionCookie::new().with_secure(false))
    }

    #[test]
    fn a_gate_without_a_cookie_gives_requests_no_context() {
        let manager =
            SessionManager::<User>::new(MemoryStore::new(), SessionConfig::java_seed()).unwrap();
        let plain = Keygate::new(manager);
        let request = plain.for_request(&req("POST", &[("user-agent", "curl/8")]));
        assert!(request.request.is_none());
        assert_eq!(plain.reader(), &TokenReader::default());
        let with = gate(SessionConfig::java_seed());
        assert_eq!(
            with.reader().sources().last(),
            Some(&TokenSource::Cookie("token".into()))
        );
        // A reader set afterwards keeps the cookie source, once.
        let again = with
            .clone()
            .with_reader(TokenReader::default().with_source(TokenSource::Cookie("token".into())));
        assert_eq!(again.reader().sources().len(), 3);
    }

    #[tokio::test]
    async fn login_sets_and_logout_clears_the_cookie_of_the_request() {
        let lifetime = Duration::from_secs(3600);
        let gate = gate(SessionConfig::java_seed().with_absolute_lifetime(lifetime));
        let user = User { id: 7 };
        // The configured gate is no request's: nothing to set.
        gate.login(&user).await.unwrap();
        assert_eq!(gate.take_set_cookie(), None);

        let request = gate.for_request(&req("POST", &[]));
        let token = request.login(&user).await.unwrap();
        assert_eq!(
            request.take_set_cookie(),
            Some(format!(
                "token={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=3600",
                token.expose()
            ))
        );
        assert_eq!(request.take_set_cookie(), None, "taken once");

        let cookie = format!("token={}", token.expose());
        let parts = req(
            "POST",
            &[
                ("cookie", &cookie),
                ("host", "a.test"),
                ("origin", "https://a.test"),
            ],
        );
        let request = gate.for_request(&parts);
        let session = request.resolve(&parts).await.unwrap();
        assert_eq!(session.data(), &user);
        assert_eq!(request.take_set_cookie(), None, "loading sets nothing");
        assert!(session.logout().await.unwrap());
        assert_eq!(
            request.take_set_cookie().as_deref(),
            Some("token=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
        );
    }

    #[test]
    fn the_requests_user_agent_is_the_device_unless_the_login_names_one() {
        let gate = gate(SessionConfig::java_seed());
        let request = gate.for_request(&req("POST", &[("user-agent", "Mozilla/5.0 (X11)")]));
        let options = request.with_request_device(LoginOptions::new());
        assert_eq!(options.device(), Some("Mozilla/5.0 (X11)"));
        let options = request.with_request_device(LoginOptions::new().with_device("mine"));
        assert_eq!(options.device(), Some("mine"));
        let long = "x".repeat(10_000);
        let request = gate.for_request(&req("POST", &[("user-agent", &long)]));
        let kept = request
            .request
            .as_ref()
            .and_then(|r| r.user_agent.as_deref());
        assert_eq!(kept.map(str::len), Some(DEVICE_LABEL_MAX_CHARS));
        assert_eq!(
            gate.with_request_device(LoginOptions::new()).device(),
            None,
            "no request, no device"
        );
    }

    #[tokio::test]
    async fn only_cookie_authenticated_unsafe_requests_are_origin_checked() {
        let gate = gate(SessionConfig::java_seed());
        let token = "dd9b7511874889f4192fbda3d8b0881c";
        let cookie = format!("token={token}");
        let foreign = [("host", "a.test"), ("origin", "https://evil.test")];
        let with = |method, extra: &[(&'static str, &str)]| {
            let mut headers = foreign.to_vec();
            headers.extend_from_slice(extra);
            req(method, &headers)
        };
        let refused = gate.resolve(&with("POST", &[("cookie", &cookie)])).await;
        assert_eq!(refused.as_ref().err(), Some(&Rejection::CrossOrigin));
        assert_eq!(optional(&refused).err(), Some(Rejection::CrossOrigin));
        for method in ["PUT", "PATCH", "DELETE"] {
            let refused = gate.resolve(&with(method, &[("cookie", &cookie)])).await;
            assert_eq!(refused.err(), Some(Rejection::CrossOrigin), "{method}");
        }
        // Safe methods, header tokens: not checked (the token is unknown: 401).
        let get = gate.resolve(&with("GET", &[("cookie", &cookie)])).await;
        assert_eq!(get.err(), Some(Rejection::NoSession));
        let header = gate
            .resolve(&with(
                "POST",
                &[("cookie", &cookie), ("authorization", token)],
            ))
            .await;
        assert_eq!(header.err(), Some(Rejection::NoSession));
        // A configured list replaces the request's own host.
        let listed = gate.with_allowed_origins(["https://evil.test"]).unwrap();
        let allowed = listed.resolve(&with("POST", &[("cookie", &cookie)])).await;
        assert_eq!(allowed.err(), Some(Rejection::NoSession));
        assert!(listed.with_allowed_origins(["evil.test"]).is_err());
    }

    #[tokio::test]
    async fn a_request_from_another_origin_never_changes_the_cookie() {
        let gate = gate(SessionConfig::java_seed());
        let user = User { id: 7 };
        // Login CSRF: a cross-site form posting the attacker's own credentials must not plant
        // the attacker's session in the victim's browser.
        let foreign = req(
            "POST",
            &[("host", "a.test"), ("origin", "http://evil.test")],
        );
        let request = gate.for_request(&foreign);
        request.login(&user).await.unwrap();
        assert_eq!(
            request.take_set_cookie(),
            None,
            "no cookie for a foreign login"
        );
        let nulled = req("POST", &[("host", "a.test"), ("origin", "null")]);
        let request = gate.for_request(&nulled);
        request.login(&user).await.unwrap();
        assert_eq!(request.take_set_cookie(), None, "Origin: null is foreign");
        let by_referer = req(
            "POST",
            &[("host", "a.test"), ("referer", "http://evil.test/x")],
        );
        let request = gate.for_request(&by_referer);
        request.login(&user).await.unwrap();
        assert_eq!(request.take_set_cookie(), None, "a foreign Referer too");
        // A logout by query token from another site ends that token's session but leaves the
        // browser's cookie alone.
        let token = gate.login(&user).await.unwrap();
        let query = TestRequest {
            query: Some(format!("tokenid={}", token.expose())),
            ..req(
                "POST",
                &[("host", "a.test"), ("origin", "http://evil.test")],
            )
        };
        let request = gate.for_request(&query);
        let session = request.resolve(&query).await.unwrap();
        assert!(session.logout().await.unwrap());
        assert_eq!(
            request.take_set_cookie(),
            None,
            "no clearing for a foreign request"
        );
        // Same origin, or no origin named at all (a non-browser client): the cookie is set.
        for own in [
            req("POST", &[("host", "a.test"), ("origin", "http://a.test")]),
            req("POST", &[]),
        ] {
            let request = gate.for_request(&own);
            request.login(&user).await.unwrap();
            assert!(request.take_set_cookie().is_some());
        }
    }

    #[tokio::test]
    async fn with_a_secure_cookie_the_origin_must_be_https() {
        let manager = SessionManager::new(MemoryStore::new(), SessionConfig::java_seed()).unwrap();
        let gate = Keygate::new(manager).with_cookie(SessionCookie::new());
        let token = gate.login(&User { id: 7 }).await.unwrap();
        let cookie = format!("token={}", token.expose());
        let plain = req(
            "POST",
            &[
                ("cookie", &cookie),
                ("host", "a.test"),
                ("origin", "http://a.test"),
            ],
        );
        assert_eq!(
            gate.resolve(&plain).await.err(),
            Some(Rejection::CrossOrigin)
        );
        let tls = req(
            "POST",
            &[
                ("cookie", &cookie),
                ("host", "a.test"),
                ("origin", "https://a.test"),
            ],
        );
        assert!(gate.resolve(&tls).await.is_ok());
    }

    #[tokio::test]
    async fn ending_this_very_session_by_id_clears_the_cookie() {
        let gate = gate(SessionConfig::java_seed());
        let user = User { id: 7 };
        let other = gate.login(&user).await.unwrap();
        let token = gate.login(&user).await.unwrap();
        let cookie = format!("token={}", token.expose());
        let parts = req(
            "DELETE",
            &[
                ("cookie", &cookie),
                ("host", "a.test"),
                ("origin", "http://a.test"),
            ],
        );
        let request = gate.for_request(&parts);
        let session = request.resolve(&parts).await.unwrap();
        let other_id = gate.manager().session_id(&other);
        assert!(session.end_session(&other_id).await.unwrap());
        assert_eq!(
            request.take_set_cookie(),
            None,
            "another device: the cookie stays"
        );
        let own = gate.manager().session_id(&token);
        assert!(session.end_session(&own).await.unwrap());
        assert_eq!(
            request.take_set_cookie().as_deref(),
            Some("token=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
        );
    }
}
