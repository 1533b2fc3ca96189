//! The rate-limit layer: refuses requests over a [`RateLimiter`]'s quota before the handler
//! runs.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::ConnectInfo;
use axum::extract::connect_info::MockConnectInfo;
use axum_core::response::Response;
use http::{HeaderMap, HeaderName, HeaderValue, Request};

use crate::layer::Parts;
use keygate::rate_limit::RateLimiter;
use keygate::web::{IpNet, RateLimitPolicy, RateLimitRejection};
use tower_layer::Layer;
use tower_service::Service;

/// What the framework needs to report a connection's peer address, logged (once) with the
/// first rate-limited request that has none.
const PEER_HINT: &str = "keygate-axum: axum reports the peer address only to an app served with `into_make_service_with_connect_info::<SocketAddr>()` (or given `MockConnectInfo` in tests).";

/// Applies a [`RateLimiter`] to every request through it, keyed by the client IP (the
/// socket's peer address from `ConnectInfo<SocketAddr>`: serve the app with
/// `into_make_service_with_connect_info::<SocketAddr>()`), or by a key function. A request
/// over the limit is answered 429 with `Retry-After` and the `RateLimit-*` headers and the
/// JSON envelope `{"success":false,"errorMsg":"too many requests"}`, and the handler does
/// not run; an allowed request's answer carries the `RateLimit-*` headers too. When the
/// limiter's store fails, fail-open limiters let the request through (without those
/// headers: nothing was decided) and fail-closed ones answer 503. A request without
/// `ConnectInfo` (an app not served as above) is answered 500 unless the policy has a key
/// function, and the first one is logged at ERROR.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use axum::{Router, routing::post};
/// use keygate_axum::RateLimitLayer;
/// use keygate_axum::keygate::RedisStore;
/// use keygate_axum::keygate::rate_limit::{Quota, RateLimiter};
/// use keygate_axum::keygate::web::IpNet;
///
/// let store = RedisStore::connect("redis://127.0.0.1:6379/0").await?;
/// let limiter = RateLimiter::new(store, "login", Quota::per_minute(30))?;
/// let app: Router = Router::new()
///     .route("/user/code", post(|| async { "sent" }))
///     .route_layer(RateLimitLayer::new(limiter).with_trusted_proxies(["10.0.0.0/24".parse::<IpNet>()?]));
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
        Self {
            policy: policy.with_peer_hint(PEER_HINT),
        }
    }

    /// Trusts the proxies in these CIDR ranges ([`IpNet`], or plain [`IpAddr`](std::net::IpAddr)s)
    /// to tell the client's address in `X-Forwarded-For` (see
    /// [`RateLimitPolicy::with_trusted_proxies`]).
    pub fn with_trusted_proxies(self, proxies: impl IntoIterator<Item = impl Into<IpNet>>) -> Self {
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
    let mut response = crate::response::json(refusal.status, refusal.body);
    set_headers(response.headers_mut(), refusal.headers);
    response
}

/// Sets the core's rate-limit headers (`RateLimit-Limit`, ...).
fn set_headers(headers: &mut HeaderMap, list: Vec<(&'static str, String)>) {
    for (name, value) in list {
        if let (Some(name), Ok(value)) = (header_name(name), HeaderValue::try_from(value)) {
            headers.insert(name, value);
        }
    }
}

/// `http` keeps names in lowercase: the core's names as constants (no parsing and no
/// allocation on every allowed request), any other name parsed.
fn header_name(name: &'static str) -> Option<HeaderName> {
    const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
    const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
    const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
    match name {
        "RateLimit-Limit" => Some(LIMIT),
        "RateLimit-Remaining" => Some(REMAINING),
        "RateLimit-Reset" => Some(RESET),
        "Retry-After" => Some(http::header::RETRY_AFTER),
        other => HeaderName::from_bytes(other.as_bytes()).ok(),
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
                Ok(decision) => {
                    let mut response = inner.call(request).await?;
                    let headers = keygate::adapter::rate_limit_headers(decision.as_ref());
                    set_headers(response.headers_mut(), headers);
                    Ok(response)
                }
                Err(refusal) => Ok(refusal_response(refusal)),
            }
        })
    }
}
