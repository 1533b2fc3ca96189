//! The loading middleware: reads the token and loads the session once per request.

use keygate::Keygate;
use keygate::serde::Serialize;
use keygate::serde::de::DeserializeOwned;
use keygate::{adapter::Resolved, web::RequestParts};
use poem::http::header::SET_COOKIE;
use poem::http::{HeaderMap, HeaderValue, Method, Uri};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

/// Loads the session of every request passing through it, for the extractors
/// [`Auth`](crate::Auth), [`MaybeAuth`](crate::MaybeAuth) and
/// [`Sessions`](crate::Sessions).
///
/// Per request it reads the token (header, query parameter or cookie, as the
/// [`Keygate`]'s token reader says), loads the session and resets its idle TTL in one Redis
/// round trip (none for a missing or malformed token), and stores the outcome with the
/// request's [`Keygate<T>`] in the request's extensions, for the extractors. It never
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
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        if req.extensions().get::<Loaded<T>>().is_some() {
            // An outer keygate middleware loaded this request and applies its cookie.
            return self.inner.call(req).await.map(IntoResponse::into_response);
        }
        let gate = self.gate.for_request(&Parts::of(&req));
        let resolved = gate.resolve(&Parts::of(&req)).await;
        req.extensions_mut().insert(Loaded {
            resolved,
            gate: gate.clone(),
        });
        let outcome = self.inner.call(req).await;
        let Some(value) = gate.take_set_cookie() else {
            return outcome.map(IntoResponse::into_response);
        };
        // A logout that succeeded before the handler failed still ends the session: the
        // error's response must clear the cookie too.
        let mut response = match outcome {
            Ok(output) => output.into_response(),
            Err(error) => error.into_response(),
        };
        match HeaderValue::try_from(value) {
            Ok(value) => {
                response.headers_mut().append(SET_COOKIE, value);
            }
            Err(_) => tracing::error!("keygate-poem: unrepresentable Set-Cookie value"),
        }
        Ok(response)
    }
}

/// What the middleware loaded for this request, and its gate, kept in the request's
/// extensions as one entry.
pub(crate) struct Loaded<T> {
    pub(crate) resolved: Resolved<T>,
    pub(crate) gate: Keygate<T>,
}

impl<T> Clone for Loaded<T> {
    fn clone(&self) -> Self {
        Self {
            resolved: self.resolved.clone(),
            gate: self.gate.clone(),
        }
    }
}

/// What the gate (and the rate limiter's key function) sees of a poem request.
pub(crate) struct Parts<'r> {
    method: &'r Method,
    headers: &'r HeaderMap,
    uri: &'r Uri,
}

impl<'r> Parts<'r> {
    pub(crate) fn of(req: &'r Request) -> Self {
        Self {
            method: req.method(),
            headers: req.headers(),
            uri: req.uri(),
        }
    }
}

impl RequestParts for Parts<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        match keygate::known_header!(name, poem::http::header) {
            Some(known) => self.headers.get(known),
            None => self.headers.get(name),
        }
        .map(|value| value.as_bytes())
    }

    fn header_at(&self, name: &str, index: usize) -> Option<&[u8]> {
        match keygate::known_header!(name, poem::http::header) {
            Some(known) => self.headers.get_all(known),
            None => self.headers.get_all(name),
        }
        .iter()
        .nth(index)
        .map(|value| value.as_bytes())
    }

    fn query(&self) -> Option<&str> {
        self.uri.query()
    }

    fn method(&self) -> &str {
        self.method.as_str()
    }

    fn authority(&self) -> Option<&str> {
        self.uri.authority().map(|authority| authority.as_str())
    }
}
