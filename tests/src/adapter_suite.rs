//! One conformance suite for the four framework adapters, run through each framework's own
//! test client: a behaviour that differs between frameworks is a failing test, not a note.
//!
//! An adapter's `tests/conformance.rs` builds a small app with its framework over the gate
//! and the rate-limit policy it is given, wraps that framework's test client in a type
//! implementing [`TestApp`], and invokes
//! [`adapter_conformance!`](crate::adapter_conformance), which generates one test per
//! scenario of this module. This module depends on no web framework.
//!
//! # The routes every conformance app serves
//!
//! All with the gate the scenario asks for, [`java_gate`](crate::fixtures::java_gate)
//! (token in `authorization`, `?tokenid=` or the cookie [`COOKIE`], which nothing sets) or
//! [`cookie_gate`](crate::fixtures::cookie_gate) (the same, and login sets the cookie
//! [`COOKIE`], logout clears it), and [`JavaUser`] as the session data; successes are
//! `keygate::web::Envelope`s:
//!
//! | route | handler |
//! | --- | --- |
//! | `GET /me` | `Auth<JavaUser>` → `Envelope::ok(user)` |
//! | `GET /maybe` | `MaybeAuth<JavaUser>` → `Envelope::ok(user id or null)` |
//! | `GET /option` | `Option<Auth<JavaUser>>` → `Envelope::ok(user id or null)` |
//! | `GET /two` | `Auth<JavaUser>` and `MaybeAuth<JavaUser>` in one handler → `Envelope::ok(user id)` |
//! | `POST /login` | JSON `JavaUser` body; `Sessions<JavaUser>` → `login(&user)` → `Envelope::ok(token)` |
//! | `POST /logout` | `auth.logout()` → `Envelope::ok(bool)` |
//! | `POST /logout-all` | `auth.logout_everywhere()` → `Envelope::ok(count)` |
//! | `GET /public` | no extractor, under the loading component → `Envelope::ok(runs)` ([`Runs::count`]: how many times `/limited` ran) |
//! | `GET /limited` | no keygate extractor, behind the adapter's rate limit with the policy the app was given → `Envelope::ok(runs)` ([`Runs::ran`]) |
//! | `GET /nested/me` | as `/me`, in a nested router/scope that has the loading component again (it is applied twice) |
//! | `GET /unprotected/me`, `GET /unprotected/maybe`, `POST /unprotected/login` | as `/me`, `/maybe`, `/login`, on routes without the loading component |
//! | `GET /error/backend` | the adapter's `ApiError` from `Error::Backend(BackendError::Timeout(..))` |
//! | `GET /error/script` | the adapter's `ApiError` from `Error::Script(..)` |
//! | `GET /error/config` | the adapter's `ApiError` from `Error::Config(..)` |
//!
//! The rate limit of `/limited` is the adapter's own component (axum's `RateLimitLayer`,
//! the actix-web and poem `RateLimitMiddleware`, Rocket's `RateLimitFairing` with the
//! `RateLimited` guard) over the [`RateLimitPolicy`] the scenario chose: [`ip_limit`],
//! [`open_ip_limit`] or [`key_limit`]. The client's peer address is the one
//! [`TestApp::send_from`] names, as the framework reports a connection's.
//!
//! # The extractors while the backend is down
//!
//! Keygate answers 503 rather than treating a logged-in user as anonymous; only where the
//! framework itself turns an extractor's error into `None` does a handler run anonymous.
//! [`TestApp::option_auth_on_outage`] states which, and
//! [`each_extractor_on_outage`] checks it:
//!
//! | extractor | axum | actix-web | poem | Rocket |
//! | --- | --- | --- | --- | --- |
//! | `Auth<T>` | 503 | 503 | 503 | 503 |
//! | `MaybeAuth<T>` | 503 | 503 | 503 | 503 |
//! | `Option<Auth<T>>` | 503 ([`OptionOnOutage::Unavailable`]: axum 0.8 asks the extractor through `OptionalFromRequestParts`) | `None` ([`OptionOnOutage::Anonymous`]) | `None` | `None` |
//!
//! `MaybeAuth<T>` exists for that reason: the same answer in every framework.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keygate::rate_limit::{FailureMode, Quota, RateLimiter};
use keygate::web::Rejection;
use keygate::web::{IpNet, RateLimitPolicy};
use keygate::{RedisOptions, RedisStore};
use serde_json::{Value, json};

use crate::fixtures::{
    COOKIE, COOKIE_LIFETIME, JavaUser, commands_since_reset, malformed_tokens, one_hash_touch,
    plant_java_session, pttl,
};
use crate::log_capture::LogCapture;
use crate::{RedisServer, eventually};

/// A response as the suite sees it: the status, the headers and the body parsed as JSON
/// ([`Value::Null`] when it is not JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The HTTP status code.
    pub status: u16,
    /// The headers, names in lowercase, in the order received (a name may repeat).
    pub headers: Vec<(String, String)>,
    /// The body, parsed.
    pub body: Value,
}

impl Reply {
    /// A reply from a status, the headers (any case; values that are not text are left out)
    /// and the raw body.
    pub fn new<N: AsRef<str>, V: AsRef<[u8]>>(
        status: u16,
        headers: impl IntoIterator<Item = (N, V)>,
        body: &[u8],
    ) -> Self {
        Self {
            status,
            headers: headers
                .into_iter()
                .filter_map(|(name, value)| {
                    let value = std::str::from_utf8(value.as_ref()).ok()?;
                    Some((name.as_ref().to_ascii_lowercase(), value.to_owned()))
                })
                .collect(),
            body: serde_json::from_slice(body).unwrap_or(Value::Null),
        }
    }

    /// Every value of the header `name` (lowercase).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of the header `name` (lowercase), `None` when absent; panics when it
    /// repeats.
    pub fn header(&self, name: &str) -> Option<&str> {
        let values = self.header_values(name);
        assert!(values.len() <= 1, "{name} repeats: {self:?}");
        values.first().copied()
    }
}

/// What a handler taking `Option<Auth<T>>` gets while the session backend is down: the
/// framework's rule, not keygate's (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionOnOutage {
    /// The framework asks the extractor (axum 0.8's `OptionalFromRequestParts`), and
    /// keygate keeps the 503, as for `MaybeAuth<T>`.
    Unavailable,
    /// The framework turns every error of the inner extractor into `None` itself
    /// (actix-web, poem, Rocket): the handler runs as for an anonymous request.
    Anonymous,
}

/// How many times a conformance app's `/limited` handler ran: the app creates one, its
/// `/limited` handler calls [`ran`](Self::ran) and its `/public` handler answers
/// [`count`](Self::count).
#[derive(Debug, Clone, Default)]
pub struct Runs(Arc<AtomicU64>);

impl Runs {
    /// Counts a run; returns the count with it.
    pub fn ran(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The runs so far.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// One framework's conformance app behind its own test client.
///
/// The client must send no `host`, `origin` or `referer` header of its own: the scenarios
/// set them.
#[async_trait::async_trait(?Send)]
pub trait TestApp {
    /// The name of the adapter's loading component (`KeygateLayer`, `KeygateMiddleware`,
    /// `KeygateFairing`), which a route without it must name in its 500.
    fn component(&self) -> &'static str;

    /// What `GET /option` (`Option<Auth<T>>`) answers while the backend is down, by the
    /// framework's rule.
    fn option_auth_on_outage(&self) -> OptionOnOutage;

    /// Words of the adapter's hint, logged when a rate-limited request has no peer address
    /// (for axum, `into_make_service_with_connect_info`).
    fn missing_peer_hint(&self) -> &'static str;

    /// Sends one request over a connection from `peer` (as the framework reports a
    /// connection's peer address to the rate limit; `None`: a connection whose peer
    /// address the framework does not know, as axum without `ConnectInfo` or a Unix
    /// socket): `headers` as given, `body` (JSON text) with `content-type:
    /// application/json`; the reply carries every response header.
    async fn send_from(
        &self,
        peer: Option<IpAddr>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply;

    /// [`send_from`](Self::send_from) a connection without a peer address.
    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        self.send_from(None, method, path, headers, body).await
    }
}

/// Invokes `$callback!(scenario, gate, limit);` for every scenario of the suite, `gate`
/// naming the fixture that makes the app's gate and `limit` the function of this module
/// that makes the rate-limit policy of its `/limited` route.
#[macro_export]
#[doc(hidden)]
macro_rules! __adapter_scenarios {
    ($callback:ident) => {
        $callback!(no_token_is_401, java_gate, ip_limit);
        $callback!(
            malformed_tokens_are_401_without_a_redis_call,
            java_gate,
            ip_limit
        );
        $callback!(unknown_token_is_401, java_gate, ip_limit);
        $callback!(
            login_then_every_transport_loads_the_user,
            java_gate,
            ip_limit
        );
        $callback!(
            a_planted_session_loads_in_every_transport_and_its_ttl_resets,
            java_gate,
            ip_limit
        );
        $callback!(two_extractors_cost_one_load_and_touch, java_gate, ip_limit);
        $callback!(
            component_applied_twice_costs_one_load_and_touch,
            java_gate,
            ip_limit
        );
        $callback!(maybe_without_token_is_null, java_gate, ip_limit);
        $callback!(option_auth_reads_no_session_as_none, java_gate, ip_limit);
        $callback!(logout_ends_the_session, java_gate, ip_limit);
        $callback!(
            logout_everywhere_ends_every_session_of_the_user,
            java_gate,
            ip_limit
        );
        $callback!(
            route_without_the_component_is_500_naming_it,
            java_gate,
            ip_limit
        );
        $callback!(handler_errors_answer_like_the_core, java_gate, ip_limit);
        $callback!(failures_are_logged_by_the_core_policy, java_gate, ip_limit);
        $callback!(
            redis_down_is_503_then_serves_again_without_rebuild,
            java_gate,
            ip_limit
        );
        $callback!(each_extractor_on_outage, java_gate, ip_limit);
        $callback!(without_a_session_cookie_nothing_is_set, java_gate, ip_limit);
        $callback!(
            login_sets_the_cookie_and_the_cookie_alone_authenticates,
            cookie_gate,
            ip_limit
        );
        $callback!(
            logout_and_logout_everywhere_clear_the_cookie,
            cookie_gate,
            ip_limit
        );
        $callback!(
            cross_origin_cookie_post_is_403_without_a_redis_call,
            cookie_gate,
            ip_limit
        );
        $callback!(same_origin_cookie_post_passes, cookie_gate, ip_limit);
        $callback!(
            header_authenticated_cross_origin_post_is_exempt,
            cookie_gate,
            ip_limit
        );
        $callback!(
            rate_limit_over_the_limit_is_429_with_headers,
            java_gate,
            ip_limit
        );
        $callback!(
            rate_limit_honours_forwarded_for_only_from_a_trusted_proxy,
            java_gate,
            ip_limit
        );
        $callback!(
            rate_limit_reads_every_forwarded_for_line,
            java_gate,
            ip_limit
        );
        $callback!(
            rate_limit_counts_ipv6_per_64_and_mapped_ipv4_as_ipv4,
            java_gate,
            ip_limit
        );
        $callback!(
            rate_limit_without_a_peer_address_is_500_logged_once,
            java_gate,
            ip_limit
        );
        $callback!(
            rate_limit_refusals_cost_no_redis_command_until_retry_after,
            java_gate,
            ip_limit
        );
        $callback!(rate_limit_fails_closed_with_503, java_gate, ip_limit);
        $callback!(rate_limit_fails_open, java_gate, open_ip_limit);
        $callback!(rate_limit_keys_by_a_key_function, java_gate, key_limit);
    };
}

/// Generates one test per scenario of [`adapter_suite`](crate::adapter_suite) for an
/// adapter: each starts a private Redis, makes the gate the scenario needs
/// ([`java_gate`](crate::fixtures::java_gate) or
/// [`cookie_gate`](crate::fixtures::cookie_gate)) and the rate-limit policy of its
/// `/limited` route ([`ip_limit`], [`open_ip_limit`] or [`key_limit`]), builds the app over
/// them with `$make` (an `async fn(Keygate<JavaUser>, RateLimitPolicy) -> App` where
/// `App: TestApp` is a type without lifetimes) and runs the scenario. `#[$test]` is the
/// test attribute the framework's client needs (`#[tokio::test]`, `#[actix_web::test]`).
///
/// An adapter that really behaves differently names the scenario under
/// `known_differences`, with the reason: that test is still generated, `#[ignore]`d with
/// the reason (`cargo test -- --ignored` runs it and shows the failure), so the difference
/// stays visible instead of being hidden by a test that asserts something else.
///
/// ```ignore
/// keygate_tests::adapter_conformance!(#[tokio::test] make_app);
/// keygate_tests::adapter_conformance!(#[tokio::test] make_app, known_differences: {
///     route_without_the_component_is_500_naming_it: "why",
/// });
/// ```
#[macro_export]
macro_rules! adapter_conformance {
    (#[$test:meta] $make:path $(, known_differences: { $($skip:ident: $why:literal),* $(,)? })? $(,)?) => {
        $crate::__adapter_conformance!(#[$test] $make { $($($skip: $why),*)? } $);
    };
}

#[macro_export]
#[doc(hidden)]
macro_rules! __adapter_conformance {
    (#[$test:meta] $make:path { $($skip:ident: $why:literal),* } $d:tt) => {
        macro_rules! __keygate_conformance_case {
            $(
                ($skip, $d gate:ident, $d limit:ident) => {
                    #[$test]
                    #[ignore = $why]
                    async fn $skip() {
                        let mut server = $crate::RedisServer::start();
                        let app = $make(
                            $crate::fixtures::$d gate(&server).await,
                            $crate::adapter_suite::$d limit(&server).await,
                        )
                        .await;
                        $crate::adapter_suite::$skip(&app, &mut server).await;
                    }
                };
            )*
            ($d name:ident, $d gate:ident, $d limit:ident) => {
                #[$test]
                async fn $d name() {
                    let mut server = $crate::RedisServer::start();
                    let app = $make(
                        $crate::fixtures::$d gate(&server).await,
                        $crate::adapter_suite::$d limit(&server).await,
                    )
                    .await;
                    $crate::adapter_suite::$d name(&app, &mut server).await;
                }
            };
        }
        $crate::__adapter_scenarios!(__keygate_conformance_case);
    };
}

// ---- the rate-limit policies of `/limited` ----

/// A proxy [`ip_limit`] and [`open_ip_limit`] trust: they trust the range `10.0.0.0/24`
/// ([`trusted_proxies`]).
pub const PROXY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

/// The proxies [`ip_limit`] and [`open_ip_limit`] trust: `10.0.0.0/24`.
pub fn trusted_proxies() -> IpNet {
    "10.0.0.0/24".parse().expect("a CIDR range")
}

/// The rate limiter of the policies: 2 a minute (at most 2 at once, one more every 30 s),
/// named `suite`, on a store of its own on the private Redis.
async fn limiter(server: &RedisServer, failure: FailureMode) -> RateLimiter {
    let store = RedisStore::connect_with(
        RedisOptions::new(server.url()).with_command_timeout(Duration::from_millis(500)),
    )
    .await
    .expect("connect to the private redis-server");
    RateLimiter::new(store, "suite", Quota::per_minute(2))
        .expect("a valid quota")
        .with_failure_mode(failure)
}

/// Each client IP 2 a minute, trusting the `X-Forwarded-For` of the proxies in
/// [`trusted_proxies`]; fails closed (503) when Redis is down.
pub async fn ip_limit(server: &RedisServer) -> RateLimitPolicy {
    RateLimitPolicy::new(limiter(server, FailureMode::Closed).await)
        .with_trusted_proxies([trusted_proxies()])
}

/// As [`ip_limit`], failing open: while Redis is down requests pass uncounted.
pub async fn open_ip_limit(server: &RedisServer) -> RateLimitPolicy {
    RateLimitPolicy::new(limiter(server, FailureMode::Open).await)
        .with_trusted_proxies([trusted_proxies()])
}

/// The header [`key_limit`] keys requests by.
pub const API_KEY: &str = "x-api-key";

/// Each value of the header [`API_KEY`] 2 a minute (subject `key:<value>`), whatever the
/// client IP; a request without it is exempt (not counted).
pub async fn key_limit(server: &RedisServer) -> RateLimitPolicy {
    RateLimitPolicy::new(limiter(server, FailureMode::Closed).await).with_key(|input| {
        let key = std::str::from_utf8(input.request.header(API_KEY)?).ok()?;
        Some(format!("key:{key}"))
    })
}

// ---- helpers ----

const TOKEN: &str = "dd9b7511874889f4192fbda3d8b0881c";

fn auth(token: &str) -> [(&'static str, &str); 1] {
    [("authorization", token)]
}

async fn get(app: &(impl TestApp + ?Sized), path: &str, headers: &[(&str, &str)]) -> Reply {
    app.send("GET", path, headers, None).await
}

async fn login(app: &(impl TestApp + ?Sized), user: &JavaUser) -> String {
    let body = serde_json::to_string(user).expect("a user serializes");
    let reply = app.send("POST", "/login", &[], Some(&body)).await;
    assert_eq!(reply.status, 200, "login: {reply:?}");
    assert_eq!(reply.body["success"], json!(true), "login: {reply:?}");
    reply.body["data"]
        .as_str()
        .unwrap_or_else(|| panic!("login answers the token: {reply:?}"))
        .to_owned()
}

/// `text` as a query parameter's value: every byte but the unreserved ones percent-encoded.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The start of a token, for messages.
fn short(token: &str) -> String {
    token.chars().take(16).collect()
}

/// `{"success": true, "data": null}`: the optional extractors' anonymous answer.
fn anonymous() -> Value {
    json!({"success": true, "data": null})
}

/// The envelope of a rejection or error, exactly.
fn failure(message: &str) -> Value {
    json!({"success": false, "errorMsg": message})
}

fn user_json(user: &JavaUser) -> Value {
    json!({"success": true, "data": serde_json::to_value(user).expect("a user serializes")})
}

fn assert_reply(reply: &Reply, status: u16, body: &Value, what: &str) {
    assert_eq!(
        (reply.status, &reply.body),
        (status, body),
        "{what}: expected {status} {body}, got {reply:?}"
    );
}

// ---- the scenarios ----

/// No token anywhere: 401 with the core's message.
pub async fn no_token_is_401(app: &impl TestApp, _server: &mut RedisServer) {
    let expected = failure(Rejection::MissingToken.message());
    assert_reply(&get(app, "/me", &[]).await, 401, &expected, "/me");
    assert_reply(&get(app, "/two", &[]).await, 401, &expected, "/two");
    let reply = app.send("POST", "/logout", &[], None).await;
    assert_reply(&reply, 401, &expected, "/logout");
}

/// Malformed tokens (in the query, and those a client can put in a header also raw, as
/// `Bearer` and in the cookie) and oversized inputs: 401 with the core's message, and not
/// one Redis command; the optional extractor reads them as no session. The loading
/// component never answers by itself: a route without an extractor still serves.
pub async fn malformed_tokens_are_401_without_a_redis_call(
    app: &impl TestApp,
    server: &mut RedisServer,
) {
    let expected = failure(Rejection::MalformedToken.message());
    let tokens = malformed_tokens();
    let printable = |t: &str| t.bytes().all(|b| (0x21..0x7f).contains(&b));
    assert!(tokens.iter().any(|t| t == "*") && tokens.iter().any(|t| t.len() == 10 * 1024));
    assert!(
        tokens.iter().any(|t| !printable(t)),
        "tokens only the query can carry"
    );
    server.reset_stats();
    for token in &tokens {
        let short = short(token);
        let query = format!("/me?tokenid={}", percent_encode(token));
        let reply = get(app, &query, &[]).await;
        assert_reply(&reply, 401, &expected, &format!("query {short:?}"));
        if !printable(token) {
            // Control characters and non-ASCII fit no header value a client sends.
            continue;
        }
        let reply = get(app, "/me", &auth(token)).await;
        assert_reply(&reply, 401, &expected, &format!("header {short}"));
        let bearer = format!("Bearer {token}");
        let reply = get(app, "/me", &auth(&bearer)).await;
        assert_reply(&reply, 401, &expected, &format!("Bearer {short}"));
        let cookie = format!("theme=dark; {COOKIE}={token}");
        let reply = get(app, "/me", &[("cookie", &cookie)]).await;
        assert_reply(&reply, 401, &expected, &format!("cookie {short}"));
        // The optional extractor reads a malformed token as no session (the core's
        // `gate::optional`): anonymous, not 401.
        let reply = get(app, "/maybe", &auth(token)).await;
        assert_reply(&reply, 200, &anonymous(), &format!("/maybe {short}"));
    }
    // Oversized input is refused as cheaply: a 1 MiB header, and a query near the 64 KiB a
    // URI may have.
    let huge = "a".repeat(1024 * 1024);
    let reply = get(app, "/me", &auth(&huge)).await;
    assert_reply(&reply, 401, &expected, "a 1 MiB header");
    let long = "a".repeat(30 * 1024);
    let reply = get(app, &format!("/me?x={long}&tokenid={long}"), &[]).await;
    assert_reply(&reply, 401, &expected, "a 60 KiB query");
    let reply = get(app, "/public", &auth("*")).await;
    let public = json!({"success": true, "data": 0});
    assert_reply(&reply, 200, &public, "/public with a malformed token");
    assert_eq!(
        commands_since_reset(server),
        Vec::<(String, u64)>::new(),
        "no Redis command for a malformed token"
    );
}

/// A well-formed token without a session (unknown, or expired: Redis dropped the key): 401
/// with the core's message; the optional extractor reads it as no session (200,
/// `data: null`), and a route without an extractor serves.
pub async fn unknown_token_is_401(app: &impl TestApp, _server: &mut RedisServer) {
    let expected = failure(Rejection::NoSession.message());
    assert_reply(&get(app, "/me", &auth(TOKEN)).await, 401, &expected, "/me");
    let reply = get(app, &format!("/me?tokenid={TOKEN}"), &[]).await;
    assert_reply(&reply, 401, &expected, "/me?tokenid=");
    let reply = get(app, "/maybe", &auth(TOKEN)).await;
    assert_reply(&reply, 200, &anonymous(), "/maybe");
    let reply = get(app, "/public", &auth(TOKEN)).await;
    let public = json!({"success": true, "data": 0});
    assert_reply(&reply, 200, &public, "/public with an unknown token");
}

/// Log in, then `/me` with the token in each transport: 200 with the user.
pub async fn login_then_every_transport_loads_the_user(
    app: &impl TestApp,
    _server: &mut RedisServer,
) {
    let user = JavaUser::new(598);
    let token = login(app, &user).await;
    assert_eq!(token.len(), 32, "a 32-hex token: {token}");
    let expected = user_json(&user);
    let bearer = format!("Bearer {token}");
    let cookie = format!("{COOKIE}={token}");
    for (what, path, headers) in [
        (
            "header",
            "/me".to_owned(),
            vec![("authorization", token.as_str())],
        ),
        (
            "Bearer",
            "/me".to_owned(),
            vec![("Authorization", bearer.as_str())],
        ),
        ("query", format!("/me?tokenid={token}"), vec![]),
        (
            "cookie",
            "/me".to_owned(),
            vec![("cookie", cookie.as_str())],
        ),
    ] {
        assert_reply(&get(app, &path, &headers).await, 200, &expected, what);
    }
    let reply = get(app, "/maybe", &auth(&token)).await;
    assert_reply(
        &reply,
        200,
        &json!({"success": true, "data": 598}),
        "/maybe",
    );
}

/// A session another service wrote (the Java seed's hash, `HSET` + `EXPIRE`) loads in
/// every transport, the cookie among others; an authenticated request resets its idle
/// TTL.
pub async fn a_planted_session_loads_in_every_transport_and_its_ttl_resets(
    app: &impl TestApp,
    server: &mut RedisServer,
) {
    let user = JavaUser {
        icon: "/imgs/icons/kitty.jpg".to_owned(),
        ..JavaUser::new(1010)
    };
    plant_java_session(server, TOKEN, &user);
    let key = format!("login:token:{TOKEN}");
    let _: () = server.query(redis::cmd("PEXPIRE").arg(&key).arg(5000));
    assert!(pttl(server, &key) <= 5000);
    let expected = user_json(&user);
    let bearer = format!("Bearer {TOKEN}");
    let cookie = format!("theme=dark; {COOKIE}={TOKEN}");
    for (what, path, headers) in [
        ("header", "/me".to_owned(), vec![("authorization", TOKEN)]),
        (
            "Bearer",
            "/me".to_owned(),
            vec![("Authorization", bearer.as_str())],
        ),
        ("query", format!("/me?tokenid={TOKEN}"), vec![]),
        (
            "cookie",
            "/me".to_owned(),
            vec![("cookie", cookie.as_str())],
        ),
    ] {
        assert_reply(&get(app, &path, &headers).await, 200, &expected, what);
    }
    let ttl = pttl(server, &key);
    assert!(ttl > 1_000_000, "the idle TTL was not reset: {ttl} ms");
}

/// `Auth` and `MaybeAuth` in one handler: one load-and-touch for the request.
pub async fn two_extractors_cost_one_load_and_touch(app: &impl TestApp, server: &mut RedisServer) {
    let token = login(app, &JavaUser::new(21)).await;
    // Warm-up: a fresh server loads the touch script on its first use.
    assert_eq!(get(app, "/me", &auth(&token)).await.status, 200);
    server.reset_stats();
    let reply = get(app, "/two", &auth(&token)).await;
    assert_reply(&reply, 200, &json!({"success": true, "data": 21}), "/two");
    assert_eq!(commands_since_reset(server), one_hash_touch(), "/two");
}

/// The loading component applied twice (around the app and around a nested router or
/// scope): one load-and-touch for the request.
pub async fn component_applied_twice_costs_one_load_and_touch(
    app: &impl TestApp,
    server: &mut RedisServer,
) {
    let user = JavaUser::new(9);
    let token = login(app, &user).await;
    assert_eq!(get(app, "/me", &auth(&token)).await.status, 200);
    server.reset_stats();
    let reply = get(app, "/nested/me", &auth(&token)).await;
    assert_reply(&reply, 200, &user_json(&user), "/nested/me");
    assert_eq!(commands_since_reset(server), one_hash_touch(), "/nested/me");
    let reply = get(app, "/nested/me", &[]).await;
    let expected = failure(Rejection::MissingToken.message());
    assert_reply(&reply, 401, &expected, "/nested/me without a token");
}

/// The optional extractor without a token: 200 with `data: null`.
pub async fn maybe_without_token_is_null(app: &impl TestApp, server: &mut RedisServer) {
    server.reset_stats();
    let reply = get(app, "/maybe", &[]).await;
    assert_reply(
        &reply,
        200,
        &json!({"success": true, "data": null}),
        "/maybe",
    );
    assert_eq!(commands_since_reset(server), Vec::<(String, u64)>::new());
}

/// `Option<Auth<T>>` reads no session (no token, a malformed or an unknown one) as `None`
/// and a session as `Some`, in every framework.
pub async fn option_auth_reads_no_session_as_none(app: &impl TestApp, _server: &mut RedisServer) {
    for (what, headers) in [
        ("no token", vec![]),
        ("a malformed token", vec![("authorization", "*")]),
        ("an unknown token", vec![("authorization", TOKEN)]),
    ] {
        let reply = get(app, "/option", &headers).await;
        assert_reply(&reply, 200, &anonymous(), &format!("/option with {what}"));
    }
    let token = login(app, &JavaUser::new(12)).await;
    let reply = get(app, "/option", &auth(&token)).await;
    assert_reply(
        &reply,
        200,
        &json!({"success": true, "data": 12}),
        "/option",
    );
}

/// Logout ends the session: the token is 401 afterwards and its key is gone; the user's
/// other session stays.
pub async fn logout_ends_the_session(app: &impl TestApp, server: &mut RedisServer) {
    let user = JavaUser::new(33);
    let token = login(app, &user).await;
    let other = login(app, &user).await;
    assert_eq!(get(app, "/me", &auth(&token)).await.status, 200);
    let reply = app.send("POST", "/logout", &auth(&token), None).await;
    assert_reply(
        &reply,
        200,
        &json!({"success": true, "data": true}),
        "/logout",
    );
    let expected = failure(Rejection::NoSession.message());
    assert_reply(
        &get(app, "/me", &auth(&token)).await,
        401,
        &expected,
        "after logout",
    );
    let key = format!("login:token:{token}");
    let exists: i64 = server.query(redis::cmd("EXISTS").arg(&key));
    assert_eq!(exists, 0, "the session key survived logout");
    let reply = get(app, "/me", &auth(&other)).await;
    assert_reply(&reply, 200, &user_json(&user), "the user's other session");
}

/// Logout everywhere ends every session of the user (and answers how many), not another
/// user's.
pub async fn logout_everywhere_ends_every_session_of_the_user(
    app: &impl TestApp,
    _server: &mut RedisServer,
) {
    let user = JavaUser::new(44);
    let first = login(app, &user).await;
    let second = login(app, &user).await;
    let stranger = JavaUser::new(45);
    let theirs = login(app, &stranger).await;
    let reply = app.send("POST", "/logout-all", &auth(&second), None).await;
    assert_reply(
        &reply,
        200,
        &json!({"success": true, "data": 2}),
        "/logout-all",
    );
    let expected = failure(Rejection::NoSession.message());
    for token in [&first, &second] {
        assert_reply(
            &get(app, "/me", &auth(token)).await,
            401,
            &expected,
            "ended",
        );
    }
    let reply = get(app, "/me", &auth(&theirs)).await;
    assert_reply(&reply, 200, &user_json(&stranger), "another user's session");
}

/// A route without the loading component asking for a session (`Auth`, `MaybeAuth`) or
/// the gate (`Sessions`): 500 with a message naming the component (a programming error, not
/// the client's), never a panic.
pub async fn route_without_the_component_is_500_naming_it(
    app: &impl TestApp,
    _server: &mut RedisServer,
) {
    let token = login(app, &JavaUser::new(55)).await;
    let body = serde_json::to_string(&JavaUser::new(56)).expect("a user serializes");
    for headers in [vec![], vec![("authorization", token.as_str())]] {
        for (method, path, body) in [
            ("GET", "/unprotected/me", None),
            ("GET", "/unprotected/maybe", None),
            ("POST", "/unprotected/login", Some(body.as_str())),
        ] {
            let reply = app.send(method, path, &headers, body).await;
            assert_eq!(reply.status, 500, "{path}: {reply:?}");
            assert_eq!(reply.body["success"], json!(false), "{reply:?}");
            let message = reply.body["errorMsg"].as_str().unwrap_or_default();
            assert!(
                message.contains(app.component()),
                "the 500 names {}: {reply:?}",
                app.component()
            );
        }
    }
}

/// A handler's `ApiError` answers as the core says: 503 with the public backend message
/// for backend trouble, 500 "internal error" for a script or configuration failure.
pub async fn handler_errors_answer_like_the_core(app: &impl TestApp, _server: &mut RedisServer) {
    let backend = keygate::Error::Backend(keygate::BackendError::Timeout(Duration::from_secs(1)));
    let script = keygate::Error::Script("x".into());
    assert_eq!(backend.status(), 503);
    assert_eq!(script.status(), 500);
    for (path, status, message) in [
        ("/error/backend", 503, backend.public_message()),
        ("/error/script", 500, script.public_message()),
        ("/error/config", 500, "internal error"),
    ] {
        assert_reply(&get(app, path, &[]).await, status, &failure(message), path);
    }
}

/// What a scenario's thread logged at WARN and at ERROR, line by line.
fn logged(log: &LogCapture) -> (Vec<String>, Vec<String>) {
    let text = log.text();
    let at = |level: &str| -> Vec<String> {
        text.lines()
            .filter(|line| line.trim_start().starts_with(level))
            .map(str::to_owned)
            .collect()
    };
    (at("WARN"), at("ERROR"))
}

/// Failures are logged by the core's one policy
/// ([`report_error`](keygate::adapter::report_error)), whatever the framework: a handler's
/// backend error at WARN, at most once a second, never at ERROR; a configuration error at
/// ERROR; a script error not again (the core logs it where it recognises it); a rejection
/// not at all (it is counted).
pub async fn failures_are_logged_by_the_core_policy(app: &impl TestApp, _server: &mut RedisServer) {
    // What keygate and the adapter log on this thread (every framework's test client runs
    // the app on the test's thread).
    let log = LogCapture::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("keygate=trace")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .without_time()
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let nothing = (Vec::<String>::new(), Vec::<String>::new());

    assert_eq!(get(app, "/me", &[]).await.status, 401);
    assert_eq!(logged(&log), nothing, "a rejection is not logged");
    assert_eq!(get(app, "/error/script", &[]).await.status, 500);
    assert_eq!(
        logged(&log),
        nothing,
        "a script error is logged where it is recognised"
    );

    assert_eq!(get(app, "/error/config", &[]).await.status, 500);
    let (warnings, errors) = logged(&log);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        errors.len(),
        1,
        "a configuration error at ERROR: {errors:?}"
    );
    assert!(errors[0].contains("keygate call failed"), "{errors:?}");

    // Backend errors warn at most once a second per process: other tests of this binary
    // may have taken this second's warning, so ask until one is ours.
    let mut sent_at = Instant::now();
    let warned = eventually(Duration::from_secs(10), async || {
        sent_at = Instant::now();
        let reply = get(app, "/error/backend", &[]).await;
        assert_eq!(reply.status, 503, "{reply:?}");
        !logged(&log).0.is_empty()
    })
    .await;
    assert!(warned, "a backend error is logged at WARN");
    let (warnings, errors) = logged(&log);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("session backend failed"),
        "{warnings:?}"
    );
    assert_eq!(
        errors.len(),
        1,
        "a backend error is never an ERROR: {errors:?}"
    );
    for _ in 0..3 {
        assert_eq!(get(app, "/error/backend", &[]).await.status, 503);
    }
    if sent_at.elapsed() < Duration::from_millis(900) {
        let (warnings, _) = logged(&log);
        assert_eq!(
            warnings.len(),
            1,
            "at most one warning a second: {warnings:?}"
        );
    }
}

/// Redis stopped: `/me` and `/maybe` (the optional extractor keeps the 503) answer 503
/// promptly; after a restart the same app serves 200 again.
pub async fn redis_down_is_503_then_serves_again_without_rebuild(
    app: &impl TestApp,
    server: &mut RedisServer,
) {
    let user = JavaUser::new(66);
    let token = login(app, &user).await;
    assert_eq!(get(app, "/me", &auth(&token)).await.status, 200);

    server.stop();
    let expected = failure(Rejection::BackendUnavailable.message());
    for path in ["/me", "/maybe", "/two"] {
        let started = Instant::now();
        let reply = get(app, path, &auth(&token)).await;
        assert_reply(&reply, 503, &expected, path);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{path} answered promptly"
        );
    }

    server.restart();
    // The restarted server is empty: log in again through the same app.
    let mut token = String::new();
    let served = eventually(Duration::from_secs(10), async || {
        let body = serde_json::to_string(&user).expect("a user serializes");
        let reply = app.send("POST", "/login", &[], Some(&body)).await;
        if reply.status != 200 {
            return false;
        }
        token = reply.body["data"].as_str().unwrap_or_default().to_owned();
        get(app, "/me", &auth(&token)).await.status == 200
    })
    .await;
    assert!(
        served,
        "the same app serves again within 10 s of the restart"
    );
    assert_reply(
        &get(app, "/me", &auth(&token)).await,
        200,
        &user_json(&user),
        "/me",
    );
    let reply = get(app, "/maybe", &auth(&token)).await;
    assert_reply(&reply, 200, &json!({"success": true, "data": 66}), "/maybe");
}

/// Each extractor while Redis is down, with a token: `Auth` 503, `MaybeAuth` 503 (never a
/// logged-in user served as anonymous), `Option<Auth>` as the framework decides
/// ([`TestApp::option_auth_on_outage`]), `Sessions` reaching the backend in the handler
/// 503 through `ApiError`. Without a token nothing needs Redis: `MaybeAuth` is anonymous
/// and a route without an extractor serves.
pub async fn each_extractor_on_outage(app: &impl TestApp, server: &mut RedisServer) {
    let user = JavaUser::new(67);
    let token = login(app, &user).await;
    assert_eq!(get(app, "/option", &auth(&token)).await.status, 200);

    server.stop();
    let unavailable = failure(Rejection::BackendUnavailable.message());
    for path in ["/me", "/maybe"] {
        assert_reply(
            &get(app, path, &auth(&token)).await,
            503,
            &unavailable,
            path,
        );
    }
    let reply = get(app, "/option", &auth(&token)).await;
    match app.option_auth_on_outage() {
        OptionOnOutage::Unavailable => assert_reply(&reply, 503, &unavailable, "/option"),
        OptionOnOutage::Anonymous => assert_reply(&reply, 200, &anonymous(), "/option"),
    }
    let body = serde_json::to_string(&user).expect("a user serializes");
    let reply = app.send("POST", "/login", &[], Some(&body)).await;
    assert_reply(&reply, 503, &unavailable, "/login");

    assert_reply(&get(app, "/maybe", &[]).await, 200, &anonymous(), "/maybe");
    assert_reply(
        &get(app, "/option", &[]).await,
        200,
        &anonymous(),
        "/option",
    );
    let reply = get(app, "/public", &[]).await;
    assert_reply(&reply, 200, &json!({"success": true, "data": 0}), "/public");
}

// ---- the session cookie and the origin check ----

/// The host the cookie scenarios send their requests to.
const HOST: (&str, &str) = ("host", "app.test");
/// The app's own origin, as a browser names it (https: the cookie is `Secure`, so the app
/// is served over HTTPS).
const OWN_ORIGIN: &str = "https://app.test";

/// The exact `Set-Cookie` value of a login through [`cookie_gate`](crate::fixtures::cookie_gate).
fn set_cookie(token: &str) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age={}",
        COOKIE_LIFETIME.as_secs()
    )
}

/// The exact `Set-Cookie` value that clears the cookie of
/// [`cookie_gate`](crate::fixtures::cookie_gate).
fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=0")
}

fn assert_set_cookie(reply: &Reply, expected: Option<&str>, what: &str) {
    let expected: Vec<&str> = expected.into_iter().collect();
    assert_eq!(
        reply.header_values("set-cookie"),
        expected,
        "{what}: Set-Cookie of {reply:?}"
    );
}

/// Logs in and checks the cookie the response sets; returns the token.
async fn cookie_login(app: &(impl TestApp + ?Sized), user: &JavaUser) -> String {
    let body = serde_json::to_string(user).expect("a user serializes");
    let reply = app.send("POST", "/login", &[HOST], Some(&body)).await;
    assert_eq!(reply.status, 200, "login: {reply:?}");
    let token = reply.body["data"]
        .as_str()
        .unwrap_or_else(|| panic!("login answers the token: {reply:?}"))
        .to_owned();
    assert_set_cookie(&reply, Some(&set_cookie(&token)), "login");
    token
}

/// A gate without a session cookie sets none: not at login, not at logout. Its reader
/// still accepts the cookie [`COOKIE`], so a cross-origin POST authenticated by that cookie
/// is refused there too.
pub async fn without_a_session_cookie_nothing_is_set(app: &impl TestApp, server: &mut RedisServer) {
    let user = JavaUser::new(70);
    let body = serde_json::to_string(&user).expect("a user serializes");
    let reply = app.send("POST", "/login", &[HOST], Some(&body)).await;
    assert_eq!(reply.status, 200, "login: {reply:?}");
    assert_set_cookie(&reply, None, "login");
    let token = login(app, &user).await;
    let cookie = format!("{COOKIE}={token}");
    server.reset_stats();
    let reply = app
        .send(
            "POST",
            "/logout",
            &[HOST, ("origin", "https://evil.test"), ("cookie", &cookie)],
            None,
        )
        .await;
    let expected = failure(Rejection::CrossOrigin.message());
    assert_reply(&reply, 403, &expected, "cross-origin cookie POST");
    assert_eq!(commands_since_reset(server), Vec::<(String, u64)>::new());
    let reply = app.send("POST", "/logout", &auth(&token), None).await;
    assert_reply(
        &reply,
        200,
        &json!({"success": true, "data": true}),
        "/logout",
    );
    assert_set_cookie(&reply, None, "logout");
    let token = login(app, &user).await;
    let reply = app.send("POST", "/logout-all", &auth(&token), None).await;
    assert_eq!(reply.status, 200, "/logout-all: {reply:?}");
    assert_set_cookie(&reply, None, "logout-all");
}

/// Login sets the cookie with its attributes byte for byte; the cookie alone then
/// authenticates a GET, the header and query tokens keep working beside it, and requests
/// that neither log in nor out set nothing.
pub async fn login_sets_the_cookie_and_the_cookie_alone_authenticates(
    app: &impl TestApp,
    _server: &mut RedisServer,
) {
    let user = JavaUser::new(71);
    let token = cookie_login(app, &user).await;
    let cookie = format!("{COOKIE}={token}");
    let reply = get(app, "/me", &[HOST, ("cookie", &cookie)]).await;
    assert_reply(&reply, 200, &user_json(&user), "/me with the cookie alone");
    assert_set_cookie(&reply, None, "/me");
    let reply = get(app, "/me", &[("cookie", &cookie)]).await;
    assert_reply(&reply, 200, &user_json(&user), "a GET needs no origin");
    assert_reply(
        &get(app, "/me", &auth(&token)).await,
        200,
        &user_json(&user),
        "header",
    );
    let reply = get(app, &format!("/me?tokenid={token}"), &[]).await;
    assert_reply(&reply, 200, &user_json(&user), "query");
    // HTTP/2 clients split cookies over several `cookie` fields: the token may be in any.
    let split = [
        ("cookie", "theme=dark; lang=zh"),
        ("cookie", cookie.as_str()),
    ];
    let reply = get(app, "/me", &split).await;
    assert_reply(
        &reply,
        200,
        &user_json(&user),
        "the cookie in a second field",
    );
    let reply = get(app, "/maybe", &[("cookie", &cookie)]).await;
    assert_reply(&reply, 200, &json!({"success": true, "data": 71}), "/maybe");
}

/// Logout and logout-everywhere clear the cookie (the exact clearing value), and the
/// token is refused afterwards.
pub async fn logout_and_logout_everywhere_clear_the_cookie(
    app: &impl TestApp,
    _server: &mut RedisServer,
) {
    let user = JavaUser::new(72);
    let token = cookie_login(app, &user).await;
    let cookie = format!("{COOKIE}={token}");
    let same_origin = [HOST, ("origin", OWN_ORIGIN), ("cookie", cookie.as_str())];
    let reply = app.send("POST", "/logout", &same_origin, None).await;
    assert_reply(
        &reply,
        200,
        &json!({"success": true, "data": true}),
        "/logout",
    );
    assert_set_cookie(&reply, Some(&clear_cookie()), "logout");
    let reply = get(app, "/me", &[("cookie", &cookie)]).await;
    assert_reply(
        &reply,
        401,
        &failure(Rejection::NoSession.message()),
        "after logout",
    );

    let first = cookie_login(app, &user).await;
    let second = cookie_login(app, &user).await;
    let reply = app.send("POST", "/logout-all", &auth(&second), None).await;
    assert_reply(
        &reply,
        200,
        &json!({"success": true, "data": 2}),
        "/logout-all",
    );
    assert_set_cookie(&reply, Some(&clear_cookie()), "logout-all");
    for token in [&first, &second] {
        let reply = get(app, "/me", &auth(token)).await;
        assert_reply(
            &reply,
            401,
            &failure(Rejection::NoSession.message()),
            "ended",
        );
    }
}

/// An unsafe request authenticated by the cookie alone, from another origin or naming
/// none: 403 with the core's message, not one Redis command, no handler (the session is
/// not logged out); the session still works afterwards.
pub async fn cross_origin_cookie_post_is_403_without_a_redis_call(
    app: &impl TestApp,
    server: &mut RedisServer,
) {
    let user = JavaUser::new(73);
    let token = cookie_login(app, &user).await;
    let cookie = format!("{COOKIE}={token}");
    let expected = failure(Rejection::CrossOrigin.message());
    let cases: [(&str, Vec<(&str, &str)>); 8] = [
        ("a foreign Origin", vec![("origin", "https://evil.test")]),
        ("Origin null", vec![("origin", "null")]),
        (
            "a foreign Referer",
            vec![("referer", "https://evil.test/app.test")],
        ),
        ("neither Origin nor Referer", vec![]),
        (
            "a foreign Origin with a same-origin Referer",
            vec![
                ("origin", "https://evil.test"),
                ("referer", "https://app.test/"),
            ],
        ),
        ("another port", vec![("origin", "https://app.test:8080")]),
        ("a sibling host", vec![("origin", "https://evil.app.test")]),
        (
            "the app's host over plain http",
            vec![("origin", "http://app.test")],
        ),
    ];
    server.reset_stats();
    for (what, extra) in &cases {
        let mut headers = vec![HOST, ("cookie", cookie.as_str())];
        headers.extend(extra.iter().copied());
        for path in ["/logout", "/logout-all"] {
            let reply = app.send("POST", path, &headers, None).await;
            assert_reply(&reply, 403, &expected, &format!("POST {path} with {what}"));
            assert_set_cookie(&reply, None, what);
        }
    }
    assert_eq!(
        commands_since_reset(server),
        Vec::<(String, u64)>::new(),
        "no Redis command for a refused cross-origin request"
    );
    let reply = get(app, "/me", &[("cookie", &cookie)]).await;
    assert_reply(&reply, 200, &user_json(&user), "the session still works");
}

/// An unsafe cookie-authenticated request from the app's own origin passes, by `Origin`
/// or, without one, by `Referer`.
pub async fn same_origin_cookie_post_passes(app: &impl TestApp, _server: &mut RedisServer) {
    let user = JavaUser::new(74);
    for (what, proof) in [
        ("Origin", ("origin", OWN_ORIGIN)),
        ("Origin in capitals", ("origin", "HTTPS://APP.TEST")),
        ("Referer", ("referer", "https://app.test/page?x=1")),
    ] {
        let token = cookie_login(app, &user).await;
        let cookie = format!("{COOKIE}={token}");
        let reply = app
            .send("POST", "/logout", &[HOST, proof, ("cookie", &cookie)], None)
            .await;
        assert_reply(&reply, 200, &json!({"success": true, "data": true}), what);
        assert_set_cookie(&reply, Some(&clear_cookie()), what);
    }
}

/// A request authenticated by the header is exempt from the origin check, even with a
/// foreign `Origin` and the cookie beside it: a browser never adds that header cross-site.
pub async fn header_authenticated_cross_origin_post_is_exempt(
    app: &impl TestApp,
    _server: &mut RedisServer,
) {
    let user = JavaUser::new(75);
    let token = cookie_login(app, &user).await;
    let cookie = format!("{COOKIE}={token}");
    let headers = [
        HOST,
        ("origin", "https://evil.test"),
        ("authorization", token.as_str()),
        ("cookie", cookie.as_str()),
    ];
    let reply = app.send("POST", "/logout", &headers, None).await;
    assert_reply(
        &reply,
        200,
        &json!({"success": true, "data": true}),
        "/logout",
    );
    let reply = get(app, "/me", &auth(&token)).await;
    assert_reply(
        &reply,
        401,
        &failure(Rejection::NoSession.message()),
        "logged out",
    );
}

// ---- the rate limit ----

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an IP address")
}

async fn limited(app: &(impl TestApp + ?Sized), peer: IpAddr, headers: &[(&str, &str)]) -> Reply {
    app.send_from(Some(peer), "GET", "/limited", headers, None)
        .await
}

/// How many times `/limited` ran, from `/public` (which needs no Redis).
async fn runs(app: &(impl TestApp + ?Sized)) -> u64 {
    let reply = get(app, "/public", &[]).await;
    assert_eq!(reply.status, 200, "/public: {reply:?}");
    reply.body["data"]
        .as_u64()
        .unwrap_or_else(|| panic!("/public answers the runs: {reply:?}"))
}

/// The rate limiter's keys in Redis, sorted.
fn rate_keys(server: &RedisServer) -> Vec<String> {
    let mut keys: Vec<String> = server.query(redis::cmd("KEYS").arg("keygate:rate:*"));
    keys.sort();
    keys
}

/// The `RateLimit-*` and `Retry-After` headers of a reply, in that order (`None` when
/// absent).
fn limit_headers(reply: &Reply) -> [Option<&str>; 4] {
    [
        reply.header("ratelimit-limit"),
        reply.header("ratelimit-remaining"),
        reply.header("ratelimit-reset"),
        reply.header("retry-after"),
    ]
}

/// An allowed request of `/limited` that ran the handler for the `run`th time.
fn assert_ran(reply: &Reply, run: u64, what: &str) {
    assert_reply(reply, 200, &json!({"success": true, "data": run}), what);
}

/// Over the limit: 429 with the envelope `too many requests`, `Retry-After` and the
/// `RateLimit-*` headers, and the handler does not run; the allowed answers before carry
/// the `RateLimit-*` headers too. Subjects are the client IP (`ip:<address>`).
pub async fn rate_limit_over_the_limit_is_429_with_headers(
    app: &impl TestApp,
    server: &mut RedisServer,
) {
    let peer = ip("192.0.2.10");
    // 2 a minute: the first leaves one and is all refilled in 30 s, the second none.
    for (run, remaining, reset) in [(1, "1", "30"), (2, "0", "60")] {
        let reply = limited(app, peer, &[]).await;
        assert_ran(&reply, run, "allowed");
        assert_eq!(
            limit_headers(&reply),
            [Some("2"), Some(remaining), Some(reset), None],
            "allowed {run}: {reply:?}"
        );
    }
    let refused = limited(app, peer, &[]).await;
    assert_reply(
        &refused,
        429,
        &failure("too many requests"),
        "over the limit",
    );
    // The next request fits 30 s after the first.
    assert_eq!(
        limit_headers(&refused),
        [Some("2"), Some("0"), Some("60"), Some("30")],
        "{refused:?}"
    );
    assert_eq!(refused.header("content-type"), Some("application/json"));
    assert_eq!(runs(app).await, 2, "the refused request ran no handler");
    assert_eq!(rate_keys(server), ["keygate:rate:{suite:ip:192.0.2.10}"]);
}

/// `X-Forwarded-For` names the client only when the peer is a trusted proxy: through the
/// proxy two clients have budgets of their own, while a direct client cannot pick its
/// subject by sending the header.
pub async fn rate_limit_honours_forwarded_for_only_from_a_trusted_proxy(
    app: &impl TestApp,
    server: &mut RedisServer,
) {
    for client in ["198.51.100.1", "198.51.100.2"] {
        let xff = format!("6.6.6.6, {client}");
        for i in 0..3 {
            let reply = limited(app, PROXY, &[("x-forwarded-for", &xff)]).await;
            let expected = if i < 2 { 200 } else { 429 };
            assert_eq!(
                reply.status, expected,
                "{client} via the proxy, {i}: {reply:?}"
            );
        }
    }
    let direct = ip("203.0.113.5");
    for (i, fake) in ["198.51.100.10", "198.51.100.11", "198.51.100.12"]
        .into_iter()
        .enumerate()
    {
        let reply = limited(app, direct, &[("x-forwarded-for", fake)]).await;
        let expected = if i < 2 { 200 } else { 429 };
        assert_eq!(reply.status, expected, "direct, claiming {fake}: {reply:?}");
    }
    assert_eq!(runs(app).await, 6);
    assert_eq!(
        rate_keys(server),
        [
            "keygate:rate:{suite:ip:198.51.100.1}",
            "keygate:rate:{suite:ip:198.51.100.2}",
            "keygate:rate:{suite:ip:203.0.113.5}",
        ]
    );
}

/// `X-Forwarded-For` sent as several header lines is one list, the lines in order: behind a
/// trusted proxy that appends a line of its own (HAProxy's `option forwardfor`), the
/// client's own line cannot pick its subject; the address the proxy appended (the
/// rightmost one that is not inside a trusted range, across all lines) is counted.
pub async fn rate_limit_reads_every_forwarded_for_line(
    app: &impl TestApp,
    server: &mut RedisServer,
) {
    for (i, fake) in ["198.51.100.20", "198.51.100.21", "198.51.100.22"]
        .into_iter()
        .enumerate()
    {
        let headers = [
            ("x-forwarded-for", fake),
            ("x-forwarded-for", "203.0.113.77, 10.0.0.2"),
        ];
        let reply = limited(app, PROXY, &headers).await;
        let expected = if i < 2 { 200 } else { 429 };
        assert_eq!(reply.status, expected, "claiming {fake}, {i}: {reply:?}");
    }
    assert_eq!(runs(app).await, 2);
    assert_eq!(rate_keys(server), ["keygate:rate:{suite:ip:203.0.113.77}"]);
}

/// IPv6 clients count per /64 (the default prefix): two addresses of one /64 share a
/// budget, another /64 has its own. An IPv4 client seen through a dual-stack socket
/// (`::ffff:a.b.c.d`) is that IPv4 client, as a peer, as a trusted proxy and in
/// `X-Forwarded-For`.
pub async fn rate_limit_counts_ipv6_per_64_and_mapped_ipv4_as_ipv4(
    app: &impl TestApp,
    server: &mut RedisServer,
) {
    for (peer, expected) in [
        ("2001:db8:1:2::a", 200),
        ("2001:db8:1:2:ffff::b", 200),
        ("2001:db8:1:2::c", 429),
        ("2001:db8:1:3::1", 200),
        ("::ffff:192.0.2.44", 200),
        ("192.0.2.44", 200),
        ("::ffff:192.0.2.44", 429),
    ] {
        let reply = limited(app, ip(peer), &[]).await;
        assert_eq!(reply.status, expected, "{peer}: {reply:?}");
    }
    let mapped_proxy = ip("::ffff:10.0.0.1");
    let headers = [("x-forwarded-for", "::ffff:198.51.100.9")];
    for expected in [200, 200, 429] {
        let reply = limited(app, mapped_proxy, &headers).await;
        assert_eq!(reply.status, expected, "via the mapped proxy: {reply:?}");
    }
    assert_eq!(runs(app).await, 7);
    assert_eq!(
        rate_keys(server),
        [
            "keygate:rate:{suite:ip:192.0.2.44}",
            "keygate:rate:{suite:ip:198.51.100.9}",
            "keygate:rate:{suite:ip:2001:db8:1:2::/64}",
            "keygate:rate:{suite:ip:2001:db8:1:3::/64}",
        ]
    );
}

/// A request whose peer address the framework does not know, on a policy without a key
/// function, is answered 500 with the envelope, without a Redis command and without
/// running the handler (it used to share one budget, `ip:unknown`, with every other such
/// request); the misconfiguration is logged once per process at ERROR, naming the fix.
/// Every adapter's framework can report a connection without a peer address (axum
/// without `ConnectInfo`, Unix-socket listeners of the others), and every test client can
/// send one.
pub async fn rate_limit_without_a_peer_address_is_500_logged_once(
    app: &impl TestApp,
    server: &mut RedisServer,
) {
    let log = LogCapture::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("keygate=trace,keygate_axum=trace,keygate_actix=trace,keygate_rocket=trace,keygate_poem=trace")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .without_time()
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    server.reset_stats();
    for i in 0..3 {
        let reply = app.send_from(None, "GET", "/limited", &[], None).await;
        assert_reply(
            &reply,
            500,
            &failure("rate limit: the client's address is unknown"),
            &format!("no peer, {i}"),
        );
        assert_eq!(limit_headers(&reply), [None; 4], "{reply:?}");
    }
    assert_eq!(commands_since_reset(server), [], "no Redis command");
    assert_eq!(runs(app).await, 0, "the handler did not run");
    let (_, errors) = logged(&log);
    assert_eq!(errors.len(), 1, "logged once: {errors:?}");
    assert!(
        errors[0].contains("no peer address") && errors[0].contains("with_key"),
        "names the fix: {errors:?}"
    );
    assert!(
        errors[0].contains(app.missing_peer_hint()),
        "names the framework's fix: {errors:?}"
    );
    assert!(rate_keys(server).is_empty());
}

/// A refusal holds until its retry-after: once the limiter has been told a client is over
/// its limit, the client's further requests are refused by the instance itself, with the
/// same 429 and headers (no budget left, the waits counting down), at no Redis command.
pub async fn rate_limit_refusals_cost_no_redis_command_until_retry_after(
    app: &impl TestApp,
    server: &mut RedisServer,
) {
    let peer = ip("192.0.2.30");
    for run in 1..=2 {
        assert_ran(&limited(app, peer, &[]).await, run, "allowed");
    }
    let first = limited(app, peer, &[]).await;
    assert_reply(&first, 429, &failure("too many requests"), "first refusal");
    assert_eq!(
        limit_headers(&first),
        [Some("2"), Some("0"), Some("60"), Some("30")],
        "{first:?}"
    );
    server.reset_stats();
    for i in 0..4 {
        let refused = limited(app, peer, &[]).await;
        assert_reply(&refused, 429, &failure("too many requests"), "held refusal");
        let [limit, remaining, reset, retry_after] = limit_headers(&refused);
        assert_eq!((limit, remaining), (Some("2"), Some("0")), "{refused:?}");
        let seconds = |value: Option<&str>| -> u64 {
            value
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("whole seconds: {refused:?}"))
        };
        let (reset, retry_after) = (seconds(reset), seconds(retry_after));
        assert!(
            (1..=30).contains(&retry_after) && (retry_after..=60).contains(&reset),
            "{i}: {refused:?}"
        );
    }
    assert_eq!(
        commands_since_reset(server),
        [],
        "the 2nd to 5th refusals cost no Redis command"
    );
    assert_eq!(runs(app).await, 2);
}

/// A fail-closed limiter whose Redis is down answers 503 with the core's envelope and
/// runs no handler; the same app limits again once Redis is back.
pub async fn rate_limit_fails_closed_with_503(app: &impl TestApp, server: &mut RedisServer) {
    let peer = ip("192.0.2.1");
    assert_ran(&limited(app, peer, &[]).await, 1, "before the outage");
    server.stop();
    let unavailable = failure(Rejection::BackendUnavailable.message());
    for _ in 0..2 {
        let reply = limited(app, peer, &[]).await;
        assert_reply(&reply, 503, &unavailable, "fail closed");
        assert_eq!(limit_headers(&reply), [None; 4], "{reply:?}");
    }
    assert_eq!(runs(app).await, 1, "a refused request ran no handler");
    server.restart();
    let limits = eventually(Duration::from_secs(10), async || {
        limited(app, peer, &[]).await.status == 200
    })
    .await;
    assert!(
        limits,
        "the same app limits again within 10 s of the restart"
    );
}

/// A fail-open limiter whose Redis is down lets every request through, uncounted and
/// without `RateLimit-*` headers (nothing was decided).
pub async fn rate_limit_fails_open(app: &impl TestApp, server: &mut RedisServer) {
    let peer = ip("192.0.2.2");
    server.stop();
    // More than the quota allows: nothing counts them.
    for run in 1..=3 {
        let reply = limited(app, peer, &[]).await;
        assert_ran(&reply, run, "fail open");
        assert_eq!(limit_headers(&reply), [None; 4], "{reply:?}");
    }
}

/// A policy's key function picks the subject: each API key has its own budget whatever
/// the client IP, and a request without one is exempt (never refused, no headers).
pub async fn rate_limit_keys_by_a_key_function(app: &impl TestApp, server: &mut RedisServer) {
    let peer = ip("192.0.2.20");
    for i in 0..3 {
        let reply = limited(app, peer, &[(API_KEY, "alpha")]).await;
        let expected = if i < 2 { 200 } else { 429 };
        assert_eq!(reply.status, expected, "alpha {i}: {reply:?}");
    }
    let reply = limited(app, peer, &[(API_KEY, "beta")]).await;
    assert_ran(&reply, 3, "beta");
    assert_eq!(reply.header("ratelimit-remaining"), Some("1"), "{reply:?}");
    for run in 4..=6 {
        let reply = limited(app, peer, &[]).await;
        assert_ran(&reply, run, "exempt");
        assert_eq!(limit_headers(&reply), [None; 4], "{reply:?}");
    }
    assert_eq!(
        rate_keys(server),
        [
            "keygate:rate:{suite:key:alpha}",
            "keygate:rate:{suite:key:beta}"
        ]
    );
}
