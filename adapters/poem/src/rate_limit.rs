//! The rate-limit middleware: refuses requests over a [`RateLimiter`]'s quota before the
//! handler runs.

use crate::middleware::Parts;
use keygate::rate_limit::RateLimiter;
use keygate::web::{IpNet, RateLimitPolicy, RateLimitRejection};
use poem::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

/// What the framework needs to report a connection's peer address, logged (once) with the
/// first rate-limited request that has none.
const PEER_HINT: &str = "keygate-poem: poem has no socket address for a Unix-socket or custom listener (the request's `RemoteAddr` is not `Addr::SocketAddr`).";

/// Applies a [`RateLimiter`] to every request passing through it, keyed by the client IP
/// (the connection's peer address), or by a policy's key function. A request over the
/// limit is answered 429 with `Retry-After` and the `RateLimit-*` headers and the JSON
/// envelope `{"success":false,"errorMsg":"too many requests"}`, and the handler does not
/// run; an allowed request's answer carries the `RateLimit-*` headers too. When the
/// limiter's store fails, fail-open limiters let the request through (without those
/// headers: nothing was decided) and fail-closed ones answer 503. A request without a
/// socket address (a Unix-socket listener) is answered 500 unless the policy has a key
/// function, and the first one is logged at ERROR.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use keygate_poem::RateLimitMiddleware;
/// use keygate_poem::keygate::RedisStore;
/// use keygate_poem::keygate::rate_limit::{Quota, RateLimiter};
/// use poem::{EndpointExt, Route, handler, post};
/// # #[handler] fn send_code() {}
///
/// let store = RedisStore::connect("redis://127.0.0.1:6379/0").await?;
/// let limiter = RateLimiter::new(store, "login", Quota::per_minute(30))?;
/// let app = Route::new().at("/user/code", post(send_code.with(RateLimitMiddleware::new(limiter))));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RateLimitMiddleware {
    policy: RateLimitPolicy,
}

impl RateLimitMiddleware {
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

impl<E: Endpoint> Middleware<E> for RateLimitMiddleware {
    type Output = RateLimitEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        RateLimitEndpoint {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The endpoint [`RateLimitMiddleware`] wraps around its inner endpoint.
#[doc(hidden)]
pub struct RateLimitEndpoint<E> {
    inner: E,
    policy: RateLimitPolicy,
}

/// The response of a refusal.
pub(crate) fn refusal_response(refusal: RateLimitRejection) -> Response {
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::builder()
        .status(status)
        .content_type("application/json")
        .body(refusal.body);
    set_headers(response.headers_mut(), refusal.headers);
    response
}

/// Sets the core's rate-limit headers (`RateLimit-Limit`, ...).
fn set_headers(headers: &mut HeaderMap, list: Vec<(&'static str, String)>) {
    for (name, value) in list {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.insert(name, value);
        }
    }
}

impl<E: Endpoint> Endpoint for RateLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        let peer = req.remote_addr().as_socket_addr().map(|addr| addr.ip());
        let subject = self.policy.subject(peer, &Parts::of(&req));
        match self.policy.admit(subject).await {
            Ok(decision) => {
                let mut response = self.inner.call(req).await?.into_response();
                let headers = keygate::adapter::rate_limit_headers(decision.as_ref());
                set_headers(response.headers_mut(), headers);
                Ok(response)
            }
            Err(refusal) => Ok(refusal_response(refusal)),
        }
    }
}
