//! The tower layer that loads the session once per request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri};
use keygate::Keygate;
use keygate::serde::Serialize;
use keygate::serde::de::DeserializeOwned;
use keygate::{adapter::Resolved, web::RequestParts};
use tower_layer::Layer;
use tower_service::Service;

/// What the layer leaves in the request's extensions for the extractors.
pub(crate) struct Loaded<T> {
    pub gate: Keygate<T>,
    pub resolved: Resolved<T>,
}

impl<T> Clone for Loaded<T> {
    fn clone(&self) -> Self {
        Self {
            gate: self.gate.clone(),
            resolved: self.resolved.clone(),
        }
    }
}

/// Loads the session of every request that passes through it: reads the token, loads the
/// data and resets the idle TTL in one Redis round trip (none for a missing or malformed
/// token). It never rejects a request itself; the extractors decide (an unsafe request
/// authenticated by the cookie from another origin: 403, before any Redis command).
///
/// With a session cookie on the gate ([`Keygate::with_cookie`]), it appends the
/// `Set-Cookie` header that the handler's login or logout asked for to the response.
pub struct KeygateLayer<T> {
    gate: Keygate<T>,
}

impl<T> Clone for KeygateLayer<T> {
    fn clone(&self) -> Self {
        Self {
            gate: self.gate.clone(),
        }
    }
}

impl<T> KeygateLayer<T> {
    /// A layer over this gate (session manager and token reader).
    pub fn new(gate: Keygate<T>) -> Self {
        Self { gate }
    }
}

impl<S, T> Layer<S> for KeygateLayer<T> {
    type Service = KeygateService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        KeygateService {
            inner,
            gate: self.gate.clone(),
        }
    }
}

/// The service of [`KeygateLayer`].
pub struct KeygateService<S, T> {
    inner: S,
    gate: Keygate<T>,
}

impl<S: Clone, T> Clone for KeygateService<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            gate: self.gate.clone(),
        }
    }
}

/// What the gate (and the rate limiter's key function) sees of a request.
pub(crate) struct Parts<'a> {
    method: &'a Method,
    headers: &'a HeaderMap,
    uri: &'a Uri,
}

impl<'a> Parts<'a> {
    pub(crate) fn of<B>(request: &'a Request<B>) -> Self {
        Self {
            method: request.method(),
            headers: request.headers(),
            uri: request.uri(),
        }
    }
}

impl RequestParts for Parts<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        match keygate::known_header!(name, http::header) {
            Some(known) => self.headers.get(known),
            None => self.headers.get(name),
        }
        .map(|v| v.as_bytes())
    }

    fn header_at(&self, name: &str, index: usize) -> Option<&[u8]> {
        match keygate::known_header!(name, http::header) {
            Some(known) => self.headers.get_all(known),
            None => self.headers.get_all(name),
        }
        .iter()
        .nth(index)
        .map(|v| v.as_bytes())
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

impl<S, T, B, R> Service<Request<B>> for KeygateService<S, T>
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The service that was polled ready is the one to call; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        // Applied twice (router and nested router), the outer layer's load serves: one
        // load-and-touch per request, as in every adapter.
        if request.extensions().get::<Loaded<T>>().is_some() {
            return Box::pin(inner.call(request));
        }
        let gate = self.gate.for_request(&Parts::of(&request));
        Box::pin(async move {
            let resolved = gate.resolve(&Parts::of(&request)).await;
            request.extensions_mut().insert(Loaded {
                gate: gate.clone(),
                resolved,
            });
            let mut response = inner.call(request).await?;
            if let Some(value) = gate.take_set_cookie() {
                match HeaderValue::try_from(value) {
                    Ok(value) => {
                        response.headers_mut().append(SET_COOKIE, value);
                    }
                    Err(_) => tracing::error!("keygate-axum: unrepresentable Set-Cookie value"),
                }
            }
            Ok(response)
        })
    }
}
