//! The extractors: what a handler asks for, read from what the middleware stored.

use keygate::adapter::Resolved;
use poem::{FromRequest, Request, RequestBody, Result};

use crate::Rejection;
use crate::middleware::Loaded;

const MISSING_MIDDLEWARE: &str = "keygate-poem: KeygateMiddleware is not installed on this route \
     (add `.with(KeygateMiddleware::new(gate))` around it)";

/// The 500 that says the middleware is missing.
fn missing_middleware() -> poem::Error {
    Rejection::from(keygate::web::Rejection::MissingLayer(MISSING_MIDDLEWARE)).into()
}

/// What the middleware stored for this request, or the 500 that says it is missing.
fn resolved<T: Send + Sync + 'static>(req: &Request) -> Result<&Resolved<T>> {
    req.extensions()
        .get::<Loaded<T>>()
        .map(|loaded| &loaded.resolved)
        .ok_or_else(missing_middleware)
}

keygate::extractor_types! {
    /// The session of an authenticated request; the route answers 401 without one.
    ///
    /// Dereferences to [`CurrentSession<T>`](keygate::CurrentSession), which dereferences to the user's data `T`, and
    /// offers [`logout`](CurrentSession::logout),
    /// [`logout_everywhere`](CurrentSession::logout_everywhere),
    /// [`list`](CurrentSession::list) and [`update`](CurrentSession::update).
    ///
    /// Rejections, each with the JSON envelope `{"success":false,"errorMsg":"..."}`:
    ///
    /// | status | when |
    /// | --- | --- |
    /// | 401 | no token, a malformed token, an unknown, expired or ended session |
    /// | 503 | the session backend is unavailable or timed out |
    /// | 500 | [`KeygateMiddleware`](crate::KeygateMiddleware) is not installed on the route |
    ///
    /// The session was loaded by the middleware; extracting it costs no Redis call.
    ///
    /// ```
    /// use keygate_poem::{Auth, Envelope};
    /// use poem::{handler, web::Json};
    /// # #[derive(Clone, serde::Serialize, serde::Deserialize)] struct User { id: u64 }
    /// # impl keygate_poem::SessionUser for User { fn user_id(&self) -> keygate_poem::UserId { keygate_poem::UserId::from(self.id) } }
    ///
    /// #[handler]
    /// fn me(user: Auth<User>) -> Json<Envelope<User>> {
    ///     Json(Envelope::ok(user.data().clone()))
    /// }
    /// ```
    Auth;
    /// The session if the request has one: `MaybeAuth(None)` for no token, a malformed one or
    /// an unknown or expired session.
    ///
    /// Backend trouble is still a 503 (and a missing middleware a 500): a route never treats a
    /// logged-in user as anonymous because Redis is down. That is why this exists beside
    /// poem's `Option<Auth<T>>`, which turns every error into `None`.
    ///
    /// ```
    /// use keygate_poem::MaybeAuth;
    /// use poem::handler;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64, nick_name: String }
    /// # impl keygate_poem::SessionUser for User { fn user_id(&self) -> keygate_poem::UserId { keygate_poem::UserId::from(self.id) } }
    ///
    /// #[handler]
    /// fn greeting(MaybeAuth(user): MaybeAuth<User>) -> String {
    ///     match user {
    ///         Some(user) => format!("hello, {}", user.nick_name),
    ///         None => "hello, stranger".to_owned(),
    ///     }
    /// }
    /// ```
    MaybeAuth;
    /// The [`Keygate<T>`] of the route, for logging in: `sessions.login(&data)`.
    ///
    /// Found in the request's extensions, where [`KeygateMiddleware`](crate::KeygateMiddleware)
    /// puts it (or `poem::middleware::AddData` with a `Keygate<T>`); a 500 with the JSON
    /// envelope when neither is installed.
    ///
    /// ```
    /// use keygate_poem::{ApiError, Envelope, Sessions, UserId};
    /// use poem::{handler, web::Json};
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64 }
    /// # impl keygate_poem::SessionUser for User { fn user_id(&self) -> keygate_poem::UserId { keygate_poem::UserId::from(self.id) } }
    ///
    /// #[handler]
    /// async fn login(sessions: Sessions<User>) -> Result<Json<Envelope<String>>, ApiError> {
    ///     // (verify the user's credentials first)
    ///     let user = User { id: 598 };
    ///     let token = sessions.login(&user).await?;
    ///     Ok(Json(Envelope::ok(token.expose().to_owned())))
    /// }
    /// ```
    Sessions;
}

impl<'a, T> FromRequest<'a> for Auth<T>
where
    T: Send + Sync + 'static,
{
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> Result<Self> {
        match resolved::<T>(req)? {
            Ok(session) => Ok(Self(session.clone())),
            Err(rejection) => Err(Rejection::from(*rejection).into()),
        }
    }
}

impl<'a, T> FromRequest<'a> for MaybeAuth<T>
where
    T: Send + Sync + 'static,
{
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> Result<Self> {
        keygate::adapter::optional(resolved::<T>(req)?)
            .map(|session| Self(session.map(Auth)))
            .map_err(|rejection| Rejection::from(rejection).into())
    }
}

impl<'a, T> FromRequest<'a> for Sessions<T>
where
    T: Send + Sync + 'static,
{
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> Result<Self> {
        req.extensions()
            .get::<Loaded<T>>()
            .map(|loaded| Self(loaded.gate.clone()))
            .ok_or_else(missing_middleware)
    }
}
