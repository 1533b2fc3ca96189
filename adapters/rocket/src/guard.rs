//! The request guards, and the one place that loads a request's session.

use std::sync::OnceLock;

use keygate::Keygate;
use keygate::serde::Serialize;
use keygate::serde::de::DeserializeOwned;
use keygate::web::Rejection as CoreRejection;
use keygate::{adapter::Resolved, web::RequestParts};
use rocket::request::{FromRequest, Outcome};
use rocket::{Ignite, Request, Rocket, Sentinel};

use crate::catcher::note;
use crate::error::Rejection;

const MISSING_FAIRING: &str = "keygate-rocket: KeygateFairing is not installed \
     (attach `KeygateFairing::new(gate)` to the rocket)";

/// The cache entry of a request's session, private so that nothing else can claim the type.
struct Loaded<T>(Resolved<T>);

/// The cache entry of a request's own gate (with a session cookie configured): what its
/// login or logout did to the cookie, read back by the fairing's `on_response`.
struct RequestGate<T>(Option<Keygate<T>>);

/// The gate the fairing put in managed state, or the rejection saying it is missing.
fn gate<'r, T>(request: &'r Request<'_>) -> Result<&'r Keygate<T>, CoreRejection>
where
    T: Send + Sync + 'static,
{
    request.rocket().state::<Keygate<T>>().ok_or_else(|| {
        keygate::adapter::report_missing_component(MISSING_FAIRING);
        CoreRejection::MissingLayer(MISSING_FAIRING)
    })
}

/// The gate for this request ([`Keygate::for_request`]), made once and cached: the managed
/// gate itself when it has no session cookie (nothing to carry, nothing cached).
fn request_gate<'r, T>(request: &'r Request<'_>) -> Result<&'r Keygate<T>, CoreRejection>
where
    T: Send + Sync + 'static,
{
    let managed = gate::<T>(request)?;
    if managed.cookie().is_none() {
        return Ok(managed);
    }
    let cached =
        request.local_cache(|| RequestGate(Some(managed.for_request(&Parts::of(request)))));
    Ok(cached.0.as_ref().unwrap_or(managed))
}

/// The `Set-Cookie` value this request's login or logout asked for, if any (taken once).
pub(crate) fn take_set_cookie<T>(request: &Request<'_>) -> Option<String>
where
    T: Send + Sync + 'static,
{
    request
        .local_cache(|| RequestGate::<T>(None))
        .0
        .as_ref()
        .and_then(Keygate::take_set_cookie)
}

/// Reads the token and loads-and-touches the session, once per request: every keygate guard
/// of the request shares the result through the request-local cache.
async fn resolve<'r, T>(request: &'r Request<'_>) -> Result<&'r Resolved<T>, CoreRejection>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let gate = request_gate::<T>(request)?;
    let loaded = request
        .local_cache_async(async { Loaded(gate.resolve(&Parts::of(request)).await) })
        .await;
    Ok(&loaded.0)
}

/// A failed guard: notes the rejection for the catchers and errors with its status.
fn reject<S>(request: &Request<'_>, rejection: CoreRejection) -> Outcome<S, Rejection> {
    note(request, rejection);
    keygate::adapter::report_rejection(rejection);
    let status = crate::error::status(rejection.status());
    Outcome::Error((status, Rejection::from(rejection)))
}

/// Whether the fairing's managed state is missing (the sentinels' test).
fn fairing_missing<T: Send + Sync + 'static>(rocket: &Rocket<Ignite>) -> bool {
    let missing = rocket.state::<Keygate<T>>().is_none();
    if missing {
        tracing::error!(
            user_type = std::any::type_name::<T>(),
            "{MISSING_FAIRING}; refusing to launch"
        );
    }
    missing
}

/// What the gate (and the rate limiter's key function) sees of a rocket request.
pub(crate) struct Parts<'a, 'r> {
    request: &'a Request<'r>,
    /// Rendered only when the origin check needs it.
    authority: OnceLock<Option<String>>,
}

impl<'a, 'r> Parts<'a, 'r> {
    pub(crate) fn of(request: &'a Request<'r>) -> Self {
        Self {
            request,
            authority: OnceLock::new(),
        }
    }
}

impl RequestParts for Parts<'_, '_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.request.headers().get_one(name).map(str::as_bytes)
    }

    fn header_at(&self, name: &str, index: usize) -> Option<&[u8]> {
        self.request
            .headers()
            .get(name)
            .nth(index)
            .map(str::as_bytes)
    }

    fn query(&self) -> Option<&str> {
        self.request.uri().query().map(|query| query.as_str())
    }

    fn method(&self) -> &str {
        self.request.method().as_str()
    }

    fn authority(&self) -> Option<&str> {
        // Rocket keeps HTTP/2's `:authority` only as its parsed host.
        self.authority
            .get_or_init(|| self.request.host().map(ToString::to_string))
            .as_deref()
    }
}

keygate::extractor_types! {
    /// The session of an authenticated request; the route fails without one.
    ///
    /// Dereferences to [`CurrentSession<T>`](keygate::CurrentSession), which dereferences to the user's data `T`, and
    /// offers [`logout`](CurrentSession::logout),
    /// [`logout_everywhere`](CurrentSession::logout_everywhere),
    /// [`list`](CurrentSession::list) and [`update`](CurrentSession::update).
    ///
    /// Failures, answered with the JSON envelope `{"success":false,"errorMsg":"..."}` by the
    /// catchers that [`KeygateFairing`](crate::KeygateFairing) registers:
    ///
    /// | status | when |
    /// | --- | --- |
    /// | 401 | no token, a malformed token, an unknown, expired or ended session |
    /// | 503 | the session backend is unavailable or timed out |
    ///
    /// The first keygate guard of a request loads the session (one Redis round trip, none for
    /// a missing or malformed token); later ones, in the same request, reuse it. A route using
    /// this guard does not launch without the fairing (a [`Sentinel`]).
    ///
    /// ```
    /// use keygate_rocket::{Auth, Envelope};
    /// use rocket::{get, serde::json::Json};
    /// # #[derive(Clone, serde::Serialize, serde::Deserialize)] struct User { id: u64 }
    /// # impl keygate_rocket::SessionUser for User { fn user_id(&self) -> keygate_rocket::UserId { keygate_rocket::UserId::from(self.id) } }
    ///
    /// #[get("/user/me")]
    /// fn me(user: Auth<User>) -> Json<Envelope<User>> {
    ///     Json(Envelope::ok(user.data().clone()))
    /// }
    /// ```
    Auth;
    /// The session if the request has one: `MaybeAuth(None)` for no token, a malformed one or
    /// an unknown or expired session.
    ///
    /// Backend trouble still fails the route with 503: a route never treats a logged-in user
    /// as anonymous because Redis is down. That is why this exists beside rocket's
    /// `Option<Auth<T>>`, which turns every failure into `None`.
    ///
    /// ```
    /// use keygate_rocket::MaybeAuth;
    /// use rocket::get;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64, nick_name: String }
    /// # impl keygate_rocket::SessionUser for User { fn user_id(&self) -> keygate_rocket::UserId { keygate_rocket::UserId::from(self.id) } }
    ///
    /// #[get("/")]
    /// fn greeting(user: MaybeAuth<User>) -> String {
    ///     match user.0 {
    ///         Some(user) => format!("hello, {}", user.nick_name),
    ///         None => "hello, stranger".to_owned(),
    ///     }
    /// }
    /// ```
    MaybeAuth;
    /// The [`Keygate<T>`] the fairing manages, for logging in:
    /// `sessions.login(&data)`.
    ///
    /// ```
    /// use keygate_rocket::{ApiError, Envelope, Sessions, UserId};
    /// use rocket::{post, serde::json::Json};
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64 }
    /// # impl keygate_rocket::SessionUser for User { fn user_id(&self) -> keygate_rocket::UserId { keygate_rocket::UserId::from(self.id) } }
    ///
    /// #[post("/user/login")]
    /// async fn login(sessions: Sessions<User>) -> Result<Json<Envelope<String>>, ApiError> {
    ///     // (verify the user's credentials first)
    ///     let user = User { id: 598 };
    ///     let token = sessions.login(&user).await?;
    ///     Ok(Json(Envelope::ok(token.expose().to_owned())))
    /// }
    /// ```
    Sessions;
}

#[rocket::async_trait]
impl<'r, T> FromRequest<'r> for Auth<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    type Error = Rejection;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        match resolve::<T>(request).await {
            Ok(Ok(session)) => Outcome::Success(Self(session.clone())),
            Ok(Err(rejection)) => reject(request, *rejection),
            Err(rejection) => reject(request, rejection),
        }
    }
}

impl<T: Send + Sync + 'static> Sentinel for Auth<T> {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        fairing_missing::<T>(rocket)
    }
}

#[rocket::async_trait]
impl<'r, T> FromRequest<'r> for MaybeAuth<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    type Error = Rejection;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        match resolve::<T>(request)
            .await
            .and_then(keygate::adapter::optional)
        {
            Ok(session) => Outcome::Success(Self(session.map(Auth))),
            Err(rejection) => reject(request, rejection),
        }
    }
}

impl<T: Send + Sync + 'static> Sentinel for MaybeAuth<T> {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        fairing_missing::<T>(rocket)
    }
}

#[rocket::async_trait]
impl<'r, T> FromRequest<'r> for Sessions<T>
where
    T: Send + Sync + 'static,
{
    type Error = Rejection;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        match request_gate::<T>(request) {
            Ok(gate) => Outcome::Success(Self(gate.clone())),
            Err(rejection) => reject(request, rejection),
        }
    }
}

impl<T: Send + Sync + 'static> Sentinel for Sessions<T> {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        fairing_missing::<T>(rocket)
    }
}
