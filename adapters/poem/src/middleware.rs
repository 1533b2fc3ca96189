//! The loading middleware: reads the token and loads the session once per request.

use keygate::Keygate;
use keygate::adapter::{RequestParts, Resolved};
use keygate::serde::Serialize;
use keygate::serde::de::DeserializeOwned;
use poem::http::HeaderMap;
use poem::{Endpoint, Middleware, Request, Result};

/// Loads the session of every request passing through it, for the extractors
/// [`Auth`](crate::Auth), [`MaybeAuth`](crate::MaybeAuth) and
/// [`Sessions`](crate::Sessions).
///
/// Per request it reads the token (header, query parameter or cookie, as the
/// [`Keygate`]'s token reader says), loads the session and resets its idle TTL in one Redis
/// round trip (none for a missing or malformed token), and stores the outcome, a
/// [`Resolved<T>`], together with the [`Keygate<T>`] in the request's extensions. It never
/// answers a request by itself: the extractors decide what a route needs.
///
/// If an outer `KeygateMiddleware<T>` (same `T`) already loaded the request, an inner one
/// does not load it again.
///
/// ```
/// use keygate_poem::{KeygateMiddleware, Keygate, MemoryStore, SessionConfig, SessionManager};
/// use poem::{EndpointExt, Route, get, handler};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64 }
/// # impl keygate_poem::SessionUser for User { fn user_id(&self) -> keygate_poem::UserId { keygate_poem::UserId::from(self.id) } }
/// # #[handler] fn me() {}
///
/// let manager = SessionManager::<User>::new(MemoryStore::new(), SessionConfig::java_seed())?;
/// let app = Route::new()
///     .at("/user/me", get(me))
///     .with(KeygateMiddleware::new(Keygate::new(manager)));
/// # Ok::<(), keygate_poem::keygate::Error>(())
/// ```
pub struct KeygateMiddleware<T> {
    gate: Keygate<T>,
}

impl<T> KeygateMiddleware<T> {
    /// A middleware loading sessions through `gate`.
    pub fn new(gate: Keygate<T>) -> Self {
        Self { gate }
    }
}

impl<T> Clone for KeygateMiddleware<T> {
    fn clone(&self) -> Self {
        Self {
            gate: self.gate.clone(),
        }
    }
}

impl<T> std::fmt::Debug for KeygateMiddleware<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeygateMiddleware")
            .field("gate", &self.gate)
            .finish()
    }
}

impl<E, T> Middleware<E> for KeygateMiddleware<T>
where
    E: Endpoint,
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    type Output = KeygateEndpoint<E, T>;

    fn transform(&self, inner: E) -> Self::Output {
        KeygateEndpoint {
            inner,
            gate: self.gate.clone(),
        }
    }
}

/// The endpoint [`KeygateMiddleware`] wraps around its inner endpoint.
#[doc(hidden)]
pub struct KeygateEndpoint<E, T> {
    inner: E,
    gate: Keygate<T>,
}

impl<E, T> Endpoint for KeygateEndpoint<E, T>
where
    E: Endpoint,
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        if req.extensions().get::<Resolved<T>>().is_none() {
            let resolved = self.gate.resolve(&Parts::of(&req)).await;
            let extensions = req.extensions_mut();
            extensions.insert(resolved);
            extensions.insert(self.gate.clone());
        }
        self.inner.call(req).await
    }
}

/// What the token reader sees of a poem request.
struct Parts<'r> {
    headers: &'r HeaderMap,
    query: Option<&'r str>,
}

impl<'r> Parts<'r> {
    fn of(req: &'r Request) -> Self {
        Self {
            headers: req.headers(),
            query: req.uri().query(),
        }
    }
}

impl RequestParts for Parts<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name).map(|value| value.as_bytes())
    }

    fn query(&self) -> Option<&str> {
        self.query
    }
}
