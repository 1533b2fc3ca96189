//! The rate-limit middleware: refuses requests over a [`RateLimiter`]'s quota before the
//! handler runs.

use std::future::{Ready, ready};
use std::rc::Rc;

use actix_web::HttpResponse;
use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use futures_util::future::LocalBoxFuture;

use crate::middleware::Parts;
use keygate::rate_limit::RateLimiter;
use keygate::web::{IpNet, RateLimitPolicy, RateLimitRejection};

/// What the framework needs to report a connection's peer address, logged (once) with the
/// first rate-limited request that has none.
const PEER_HINT: &str = "keygate-actix: actix-web has no peer address for a Unix-socket listener (`HttpServer::bind_uds`) nor for a `TestRequest` without `peer_addr`.";

/// Applies a [`RateLimiter`] to every request it wraps, keyed by the client IP (the
/// connection's peer address), or by a policy's key function. A request over the limit is
/// answered 429 with `Retry-After` and the `RateLimit-*` headers and the JSON envelope
/// `{"success":false,"errorMsg":"too many requests"}`, and the handler does not run; an
/// allowed request's answer carries the `RateLimit-*` headers too. When the limiter's
/// store fails, fail-open limiters let the request through (without those headers:
/// nothing was decided) and fail-closed ones answer 503. A request without a peer address
/// (a Unix-socket listener) is answered 500 unless the policy has a key function, and the
/// first one is logged at ERROR.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use actix_web::{App, web};
/// use keygate_actix::RateLimitMiddleware;
/// use keygate_actix::keygate::RedisStore;
/// use keygate_actix::keygate::rate_limit::{Quota, RateLimiter};
///
/// let store = RedisStore::connect("redis://127.0.0.1:6379/0").await?;
/// let limiter = RateLimiter::new(store, "login", Quota::per_minute(30))?;
/// let app = App::new().service(
///     web::resource("/user/code")
///         .wrap(RateLimitMiddleware::new(limiter))
///         .route(web::post().to(|| async { "sent" })),
/// );
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

impl<S, B> Transform<S, ServiceRequest> for RateLimitMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = RateLimitService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RateLimitService {
            service: Rc::new(service),
            policy: self.policy.clone(),
        }))
    }
}

/// The service [`RateLimitMiddleware`] wraps around each worker's inner service.
#[doc(hidden)]
pub struct RateLimitService<S> {
    service: Rc<S>,
    policy: RateLimitPolicy,
}

/// The response of a refusal.
pub(crate) fn refusal_response(refusal: RateLimitRejection) -> HttpResponse {
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status)
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

impl<S, B> Service<ServiceRequest> for RateLimitService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let peer = req.peer_addr().map(|addr| addr.ip());
        let subject = self.policy.subject(peer, &Parts(&req));
        let policy = self.policy.clone();
        Box::pin(async move {
            match policy.admit(subject).await {
                Ok(decision) => {
                    let mut response = service.call(req).await?;
                    let headers = keygate::adapter::rate_limit_headers(decision.as_ref());
                    set_headers(response.headers_mut(), headers);
                    Ok(response.map_into_left_body())
                }
                Err(refusal) => Ok(req
                    .into_response(refusal_response(refusal))
                    .map_into_right_body()),
            }
        })
    }
}
