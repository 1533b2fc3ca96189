//! The rate-limit layer: refuses requests over a [`RateLimiter`]'s quota before the handler
//! runs.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::ConnectInfo;
use axum::extract::connect_info::MockConnectInfo;
use axum_core::body::Body;
use axum_core::response::Response;
use http::{HeaderName, HeaderValue, Request, StatusCode, header};

use crate::layer::Parts;
use keygate::rate_limit::RateLimiter;
use keygate::web::{RateLimitPolicy, RateLimitRejection};
use tower_layer::Layer;
use tower_service::Service;

/// Applies a [`RateLimiter`] to every request through it, keyed by the client IP (the
/// socket's peer address from `ConnectInfo<SocketAddr>`: serve the app with
/// `into_make_service_with_connect_info::<SocketAddr>()`), or by a key function. A request
/// over the limit is answered 429 with `Retry-After` and the `RateLimit-*` headers and the
/// JSON envelope `{"success":false,"errorMsg":"too many requests"}`, and the handler does
/// not run; when the limiter's store fails, fail-open limiters let it through and
/// fail-closed ones answer 503.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use axum::{Router, routing::post};
/// use keygate_axum::RateLimitLayer;
/// use keygate_axum::keygate::RedisStore;
/// use keygate_axum::keygate::rate_limit::{Quota, RateLimiter};
///
/// let store = RedisStore::connect("redis://127.0.0.1:6379/0").await?;
/// let limiter = RateLimiter::new(store, "login", Quota::per_minute(30))?;
/// let app: Router = Router::new()
///     .route("/user/code", post(|| async { "sent" }))
///     .route_layer(RateLimitLayer::new(limiter).with_trusted_proxies(["10.0.0.1".parse()?]));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    policy: RateLimitPolicy,
}

impl RateLimitLayer {
    /// Limits each client IP by `limiter`.
    pub fn new(limiter: RateLimiter) -> Self {
        Self::with_policy(RateLimitPolicy::new(limiter))
    }

    /// Limits by a policy (key function, trusted proxies).
    pub fn with_policy(policy: RateLimitPolicy) -> Self {
        Self { policy }
    }

    /// Trusts these proxies' `X-Forwarded-For` (see
    /// [`RateLimitPolicy::with_trusted_proxies`]).
    pub fn with_trusted_proxies(self, proxies: impl IntoIterator<Item = IpAddr>) -> Self {
        Self {
            policy: self.policy.with_trusted_proxies(proxies),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service of [`RateLimitLayer`].
#[derive(Clone, Debug)]
pub struct RateLimitService<S> {
    inner: S,
    policy: RateLimitPolicy,
}

/// The response of a refusal.
pub(crate) fn refusal_response(refusal: RateLimitRejection) -> Response {
    let mut response = Response::new(Body::from(refusal.body));
    *response.status_mut() =
        StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in refusal.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name_lower(name)), value);
        }
    }
    response
}

/// The lowercase form `http` wants for static header names.
fn name_lower(name: &'static str) -> &'static str {
    match name {
        "RateLimit-Limit" => "ratelimit-limit",
        "RateLimit-Remaining" => "ratelimit-remaining",
        "RateLimit-Reset" => "ratelimit-reset",
        "Retry-After" => "retry-after",
        _ => "x-ratelimit-unknown",
    }
}

impl<S, B> Service<Request<B>> for RateLimitService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .or_else(|| {
                // As axum's `ConnectInfo` extractor: the test helper's address otherwise.
                request
                    .extensions()
                    .get::<MockConnectInfo<SocketAddr>>()
                    .map(|MockConnectInfo(addr)| addr.ip())
            });
        let subject = self.policy.subject(peer, &Parts::of(&request));
        let policy = self.policy.clone();
        Box::pin(async move {
            match policy.admit(subject).await {
                Ok(_) => inner.call(request).await,
                Err(refusal) => Ok(refusal_response(refusal)),
            }
        })
    }
}
