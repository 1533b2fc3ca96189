//! Rate limiting on Rocket: a fairing that installs the limiter and a 429 catcher, and a
//! request guard that counts the request and refuses it over the limit.
//!
//! Rocket fairings cannot answer a request, so the decision is taken by the
//! [`RateLimited`] guard: put it first among a route's parameters (request guards run left
//! to right, data guards after them), and a refused request reaches neither the other
//! guards nor the body nor the handler.

use crate::guard::Parts;
use keygate::rate_limit::{RateLimitDecision, RateLimiter};
use keygate::web::{Envelope, Rejection};
use keygate::web::{
    IpNet, NO_CLIENT_ADDRESS, RateLimitPolicy, RateLimitRejection, Subject, TOO_MANY_REQUESTS,
};
use rocket::fairing::{self, Fairing, Info, Kind};
use rocket::http::{ContentType, Header, Status};
use rocket::request::{FromRequest, Outcome};
use rocket::response::content::RawJson;
use rocket::response::{self, Responder, Response};
use rocket::{Build, Request, Rocket, catch, catchers};

const MISSING_FAIRING: &str = "keygate-rocket: RateLimitFairing is not installed \
     (attach `RateLimitFairing::new(limiter)` to the rocket)";
/// What the framework needs to report a connection's peer address, logged (once) with the
/// first rate-limited request that has none.
const PEER_HINT: &str = "keygate-rocket: Rocket has no remote address for a Unix-socket listener, nor for a local client's request without `.remote(..)`.";

/// Installs a [`RateLimiter`] for the [`RateLimited`] guard, keyed by the client IP (the
/// connection's peer address, `Request::remote`), and registers at `/` a 429 catcher that
/// answers a refusal with `Retry-After`, the `RateLimit-*` headers and the JSON envelope
/// `{"success":false,"errorMsg":"too many requests"}` (unless a 429 catcher is registered
/// there already), and adds the `RateLimit-*` headers to the answer of an allowed request
/// (`on_response`). One limiter per rocket.
///
/// When the limiter's store fails, fail-open limiters let the request through (without the
/// `RateLimit-*` headers: nothing was decided) and fail-closed ones fail the guard with
/// 503, answered by keygate's 503 catcher ([`KeygateFairing`](crate::KeygateFairing)) when
/// it is installed. A request without a remote address (a Unix-socket listener), unless
/// the policy has a key function, fails the guard with 500, answered by keygate's 500
/// catcher likewise.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use keygate_rocket::{RateLimitFairing, RateLimited};
/// use keygate_rocket::keygate::RedisStore;
/// use keygate_rocket::keygate::rate_limit::{Quota, RateLimiter};
/// use rocket::{post, routes};
///
/// #[post("/user/code")]
/// fn send_code(_limit: RateLimited) -> &'static str { "sent" }
///
/// let store = RedisStore::connect("redis://127.0.0.1:6379/0").await?;
/// let limiter = RateLimiter::new(store, "login", Quota::per_minute(30))?;
/// let rocket = rocket::build()
///     .attach(RateLimitFairing::new(limiter))
///     .mount("/", routes![send_code]);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RateLimitFairing {
    policy: RateLimitPolicy,
}

impl RateLimitFairing {
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

/// The managed policy, private so that nothing else can claim the type.
struct Installed(RateLimitPolicy);

#[rocket::async_trait]
impl Fairing for RateLimitFairing {
    fn info(&self) -> Info {
        Info {
            name: "keygate rate limit",
            kind: Kind::Ignite | Kind::Response,
        }
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        // An allowed request's answer carries the budget too; a refusal's come from the
        // catcher.
        if let Some(Ok(decision)) = &request.local_cache(|| Checked(None)).0 {
            for (name, value) in keygate::adapter::rate_limit_headers(decision.as_ref()) {
                response.set_header(Header::new(name, value));
            }
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> fairing::Result {
        let rocket = rocket.manage(Installed(self.policy.clone()));
        let taken = rocket
            .catchers()
            .any(|theirs| theirs.base == "/" && theirs.code == Some(429));
        if taken {
            return Ok(rocket);
        }
        Ok(rocket.register("/", catchers![too_many_requests]))
    }
}

/// The request's decision, taken once and cached for the request (and its catcher).
struct Checked(Option<Result<Option<RateLimitDecision>, RateLimitRejection>>);

/// A request guard that counts the request against the installed limiter
/// ([`RateLimitFairing`]) and fails with 429 over the limit (or 503 when the store failed
/// and the limiter fails closed). Declared several times in one route, it counts once.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RateLimited {
    /// The decision: `None` when the policy's key function exempted the request;
    /// `degraded` set when the store failed and the limiter fails open.
    pub decision: Option<RateLimitDecision>,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for RateLimited {
    type Error = &'static str;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let Some(Installed(policy)) = request.rocket().state::<Installed>() else {
            keygate::adapter::report_missing_component(MISSING_FAIRING);
            return Outcome::Error((Status::InternalServerError, MISSING_FAIRING));
        };
        let checked = request
            .local_cache_async(async {
                let subject = policy.subject(request.remote().map(|a| a.ip()), &Parts::of(request));
                if subject == Subject::NoPeerAddress {
                    // Answered by keygate's 500 catcher with the core's message.
                    crate::catcher::note(request, Rejection::MissingLayer(NO_CLIENT_ADDRESS));
                }
                Checked(Some(policy.admit(subject).await))
            })
            .await;
        match &checked.0 {
            Some(Ok(decision)) => Outcome::Success(RateLimited {
                decision: *decision,
            }),
            Some(Err(refusal)) => {
                if refusal.status == 503 {
                    crate::catcher::note(request, Rejection::BackendUnavailable);
                }
                let status =
                    Status::from_code(refusal.status).unwrap_or(Status::InternalServerError);
                Outcome::Error((status, TOO_MANY_REQUESTS))
            }
            None => Outcome::Error((Status::InternalServerError, MISSING_FAIRING)),
        }
    }
}

/// A refusal as a response.
struct RefusalResponse(RateLimitRejection);

impl<'r> Responder<'r, 'static> for RefusalResponse {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let refusal = self.0;
        let mut response = Response::build();
        response
            .status(Status::from_code(refusal.status).unwrap_or(Status::InternalServerError))
            .header(ContentType::JSON)
            .sized_body(refusal.body.len(), std::io::Cursor::new(refusal.body));
        for (name, value) in refusal.headers {
            response.header(Header::new(name, value));
        }
        Ok(response.finalize())
    }
}

/// Answers a refusal of the guard with its headers; any other 429 with the envelope.
#[catch(429)]
fn too_many_requests(request: &Request<'_>) -> Result<RefusalResponse, (Status, RawJson<String>)> {
    let checked = request.local_cache(|| Checked(None));
    match &checked.0 {
        Some(Err(refusal)) if refusal.status == 429 => Ok(RefusalResponse(refusal.clone())),
        _ => Err(crate::error::json(
            Status::TooManyRequests,
            Envelope::error(TOO_MANY_REQUESTS).to_json(),
        )),
    }
}
