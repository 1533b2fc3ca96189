//! The extractors: the session the middleware loaded, and the gate for logging in.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use keygate::adapter::Resolved;

use crate::Rejection;
use crate::middleware::Loaded;

/// What a route without [`KeygateMiddleware`](crate::KeygateMiddleware) answers (500) when
/// it asks for a session.
const MISSING_MIDDLEWARE: &str = "keygate-actix: KeygateMiddleware is not installed on this route";

keygate::extractor_types! {
    /// The session of an authenticated request; the route answers 401 without one and 503 when
    /// the session backend is unavailable.
    ///
    /// Dereferences to [`CurrentSession<T>`](keygate::CurrentSession), which dereferences to the user's data `T`, so
    /// `user.id` reads a field and `user.logout()` ends the session. Reading it costs nothing:
    /// [`KeygateMiddleware`](crate::KeygateMiddleware) already loaded the session. On a route
    /// without the middleware it answers 500 naming the missing middleware.
    ///
    /// ```
    /// use actix_web::web;
    /// use keygate_actix::keygate::web::Envelope;
    /// use keygate_actix::Auth;
    ///
    /// #[derive(Clone, serde::Serialize, serde::Deserialize)]
    /// #[serde(rename_all = "camelCase")]
    /// struct User { id: u64, nick_name: String }
    /// # impl keygate_actix::SessionUser for User { fn user_id(&self) -> keygate_actix::UserId { keygate_actix::UserId::from(self.id) } }
    ///
    /// async fn me(user: Auth<User>) -> web::Json<Envelope<User>> {
    ///     web::Json(Envelope::ok(user.data().clone()))
    /// }
    /// ```
    Auth;
    /// The session of the request if there is one: `MaybeAuth(None)` without a token or with
    /// a malformed, unknown or expired one, for routes that serve anonymous users too.
    ///
    /// Backend trouble is still an error (503), so that a logged-in user is never silently
    /// served as anonymous because Redis is down; a route without
    /// [`KeygateMiddleware`](crate::KeygateMiddleware) answers 500. That is why this exists
    /// beside actix-web's `Option<Auth<T>>`, which turns every error, a 503 included, into
    /// `None`: prefer `MaybeAuth<T>`.
    ///
    /// ```
    /// use keygate_actix::MaybeAuth;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64 }
    /// # impl keygate_actix::SessionUser for User { fn user_id(&self) -> keygate_actix::UserId { keygate_actix::UserId::from(self.id) } }
    ///
    /// async fn hello(MaybeAuth(user): MaybeAuth<User>) -> String {
    ///     match user {
    ///         Some(user) => format!("hello, user {}", user.id),
    ///         None => "hello, stranger".to_owned(),
    ///     }
    /// }
    /// ```
    MaybeAuth;
    /// The [`Keygate`] itself, for routes that create sessions (login) or manage them without
    /// a session of their own. Dereferences to [`Keygate<T>`]:
    /// `sessions.login(&data).await` returns the token for the client.
    ///
    /// Found in the request's extensions, put there by
    /// [`KeygateMiddleware`](crate::KeygateMiddleware) (as in every keygate adapter: the
    /// gate of the loading component on this route); without it the route answers 500.
    ///
    /// ```
    /// use actix_web::web;
    /// use keygate_actix::keygate::web::Envelope;
    /// use keygate_actix::{ApiError, Sessions, UserId};
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64 }
    /// # impl keygate_actix::SessionUser for User { fn user_id(&self) -> keygate_actix::UserId { keygate_actix::UserId::from(self.id) } }
    ///
    /// async fn login(sessions: Sessions<User>, user: web::Json<User>) -> Result<web::Json<Envelope<String>>, ApiError> {
    ///     // (after checking the user's credentials)
    ///     let token = sessions.login(&user).await?;
    ///     Ok(web::Json(Envelope::ok(token.expose().to_owned())))
    /// }
    /// ```
    Sessions;
}

impl<T: 'static> FromRequest for Auth<T> {
    type Error = Rejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            read_loaded(req, |resolved: &Resolved<T>| resolved.clone())
                .map(Auth)
                .map_err(Rejection::from),
        )
    }
}

impl<T: 'static> FromRequest for MaybeAuth<T> {
    type Error = Rejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            read_loaded(req, keygate::adapter::optional::<T>)
                .map(|session| MaybeAuth(session.map(Auth)))
                .map_err(Rejection::from),
        )
    }
}

impl<T: 'static> FromRequest for Sessions<T> {
    type Error = Rejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let gate = req
            .extensions()
            .get::<Loaded<T>>()
            .map(|loaded| Sessions(loaded.gate.clone()));
        ready(
            gate.ok_or(Rejection::from(keygate::web::Rejection::MissingLayer(
                MISSING_MIDDLEWARE,
            ))),
        )
    }
}

/// Applies `read` to what the middleware loaded for this request.
fn read_loaded<T: 'static, R>(
    req: &HttpRequest,
    read: impl FnOnce(&Resolved<T>) -> Result<R, keygate::web::Rejection>,
) -> Result<R, keygate::web::Rejection> {
    match req.extensions().get::<Loaded<T>>() {
        Some(loaded) => read(&loaded.resolved),
        None => Err(keygate::web::Rejection::MissingLayer(MISSING_MIDDLEWARE)),
    }
}
