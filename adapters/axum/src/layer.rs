//! The tower layer that loads the session once per request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, Request, Uri};
use keygate::Keygate;
use keygate::adapter::{RequestParts, Resolved};
use keygate::serde::Serialize;
use keygate::serde::de::DeserializeOwned;
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
/// token). It never rejects a request itself; the extractors decide.
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

struct Parts<'a> {
    headers: &'a HeaderMap,
    uri: &'a Uri,
}

impl RequestParts for Parts<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name).map(|v| v.as_bytes())
    }

    fn query(&self) -> Option<&str> {
        self.uri.query()
    }
}

impl<S, T, B> Service<Request<B>> for KeygateService<S, T>
where
    S: Service<Request<B>> + Clone + Send + 'static,
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
        let gate = self.gate.clone();
        Box::pin(async move {
            // Applied twice (router and nested router), the outer layer's load serves: one
            // load-and-touch per request, as in every adapter.
            if request.extensions().get::<Loaded<T>>().is_some() {
                return inner.call(request).await;
            }
            let resolved = gate
                .resolve(&Parts {
                    headers: request.headers(),
                    uri: request.uri(),
                })
                .await;
            request.extensions_mut().insert(Loaded { gate, resolved });
            inner.call(request).await
        })
    }
}
