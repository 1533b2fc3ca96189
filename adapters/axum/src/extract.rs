//! Extractors: they read what [`KeygateLayer`](crate::KeygateLayer) stored, never Redis.

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use keygate::serde::Serialize;
use keygate::serde::de::DeserializeOwned;

use crate::layer::Loaded;
use crate::response::Rejection;

const MISSING_LAYER: keygate::web::Rejection = keygate::web::Rejection::MissingLayer(
    "keygate-axum: KeygateLayer is not installed on this route",
);

fn loaded<T: Send + Sync + 'static>(parts: &Parts) -> Result<&Loaded<T>, Rejection> {
    parts
        .extensions
        .get::<Loaded<T>>()
        .ok_or(Rejection::from(MISSING_LAYER))
}

keygate::extractor_types! {
    /// The logged-in user's session; rejects with 401 (no valid session) or 503 (backend
    /// unavailable). Dereferences to [`CurrentSession`](keygate::CurrentSession), which dereferences to `T`.
    Auth;
    /// The session if there is one: `None` for a missing, malformed, unknown or expired token;
    /// still 503 when the backend is unavailable. Same as `Option<Auth<T>>`.
    MaybeAuth;
    /// The gate, for logging in (`sessions.login(&data)`) and managing sessions.
    Sessions;
}

impl<T, S> FromRequestParts<S> for Auth<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match &loaded::<T>(parts)?.resolved {
            Ok(session) => Ok(Auth(session.clone())),
            Err(rejection) => Err(Rejection::from(*rejection)),
        }
    }
}

impl<T, S> OptionalFromRequestParts<S> for Auth<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        keygate::adapter::optional(&loaded::<T>(parts)?.resolved)
            .map(|session| session.map(Auth))
            .map_err(Rejection::from)
    }
}

impl<T, S> FromRequestParts<S> for MaybeAuth<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        <Auth<T> as OptionalFromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(MaybeAuth)
    }
}

impl<T, S> FromRequestParts<S> for Sessions<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Sessions(loaded::<T>(parts)?.gate.clone()))
    }
}
