//! One conformance suite for the four framework adapters, run through each framework's own
//! test client: a behaviour that differs between frameworks is a failing test, not a note.
//!
//! An adapter's `tests/conformance.rs` builds a small app with its framework over the gate
//! it is given, wraps that framework's test client in a type implementing [`TestApp`], and
//! invokes [`adapter_conformance!`](crate::adapter_conformance), which generates one test per
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
//! | `GET /two` | `Auth<JavaUser>` and `MaybeAuth<JavaUser>` in one handler → `Envelope::ok(user id)` |
//! | `POST /login` | JSON `JavaUser` body; `Sessions<JavaUser>` → `login(&user)` → `Envelope::ok(token)` |
//! | `POST /logout` | `auth.logout()` → `Envelope::ok(bool)` |
//! | `POST /logout-all` | `auth.logout_everywhere()` → `Envelope::ok(count)` |
//! | `GET /nested/me` | as `/me`, in a nested router/scope that has the loading component again (it is applied twice) |
//! | `GET /unprotected/me` | as `/me`, on a route without the loading component |
//! | `GET /error/backend` | the adapter's `ApiError` from `Error::Backend(BackendError::Timeout(..))` |
//! | `GET /error/script` | the adapter's `ApiError` from `Error::Script(..)` |
//! | `GET /error/config` | the adapter's `ApiError` from `Error::Config(..)` |

use std::time::{Duration, Instant};

use keygate::web::Rejection;
use serde_json::{Value, json};

use crate::fixtures::{
    COOKIE, COOKIE_LIFETIME, JavaUser, commands_since_reset, malformed_tokens, one_hash_touch,
};
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

    /// Sends one request: `headers` as given, `body` (JSON text) with
    /// `content-type: application/json`; the reply carries every response header.
    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply;
}

/// Invokes `$callback!(scenario, gate);` for every scenario of the suite, `gate` naming the
/// fixture that makes the app's gate.
#[macro_export]
#[doc(hidden)]
macro_rules! __adapter_scenarios {
    ($callback:ident) => {
        $callback!(no_token_is_401, java_gate);
        $callback!(malformed_tokens_are_401_without_a_redis_call, java_gate);
        $callback!(unknown_token_is_401, java_gate);
        $callback!(login_then_every_transport_loads_the_user, java_gate);
        $callback!(two_extractors_cost_one_load_and_touch, java_gate);
        $callback!(component_applied_twice_costs_one_load_and_touch, java_gate);
        $callback!(maybe_without_token_is_null, java_gate);
        $callback!(logout_ends_the_session, java_gate);
        $callback!(logout_everywhere_ends_every_session_of_the_user, java_gate);
        $callback!(route_without_the_component_is_500_naming_it, java_gate);
        $callback!(handler_errors_answer_like_the_core, java_gate);
        $callback!(
            redis_down_is_503_then_serves_again_without_rebuild,
            java_gate
        );
        $callback!(without_a_session_cookie_nothing_is_set, java_gate);
        $callback!(
            login_sets_the_cookie_and_the_cookie_alone_authenticates,
            cookie_gate
        );
        $callback!(logout_and_logout_everywhere_clear_the_cookie, cookie_gate);
        $callback!(
            cross_origin_cookie_post_is_403_without_a_redis_call,
            cookie_gate
        );
        $callback!(same_origin_cookie_post_passes, cookie_gate);
        $callback!(
            header_authenticated_cross_origin_post_is_exempt,
            cookie_gate
        );
    };
}

/// Generates one test per scenario of [`adapter_suite`](crate::adapter_suite) for an
/// adapter: each starts a private Redis, makes the gate the scenario needs
/// ([`java_gate`](crate::fixtures::java_gate) or
/// [`cookie_gate`](crate::fixtures::cookie_gate)), builds the app over it with `$make` (an
/// `async fn(Keygate<JavaUser>) -> App` where `App: TestApp` is a type without lifetimes)
/// and runs the scenario. `#[$test]` is the test attribute the framework's client needs
/// (`#[tokio::test]`, `#[actix_web::test]`).
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
                ($skip, $d gate:ident) => {
                    #[$test]
                    #[ignore = $why]
                    async fn $skip() {
                        let mut server = $crate::RedisServer::start();
                        let app = $make($crate::fixtures::$d gate(&server).await).await;
                        $crate::adapter_suite::$skip(&app, &mut server).await;
                    }
                };
            )*
            ($d name:ident, $d gate:ident) => {
                #[$test]
                async fn $d name() {
                    let mut server = $crate::RedisServer::start();
                    let app = $make($crate::fixtures::$d gate(&server).await).await;
                    $crate::adapter_suite::$d name(&app, &mut server).await;
                }
            };
        }
        $crate::__adapter_scenarios!(__keygate_conformance_case);
    };
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

/// Malformed tokens (in the header, as `Bearer`, in the query): 401 with the core's
/// message, and not one Redis command.
pub async fn malformed_tokens_are_401_without_a_redis_call(
    app: &impl TestApp,
    server: &mut RedisServer,
) {
    let expected = failure(Rejection::MalformedToken.message());
    // Tokens every client can put in a header: printable ASCII.
    let tokens: Vec<String> = malformed_tokens()
        .into_iter()
        .filter(|t| t.bytes().all(|b| (0x21..0x7f).contains(&b)))
        .collect();
    assert!(tokens.iter().any(|t| t == "*") && tokens.iter().any(|t| t.len() == 10 * 1024));
    server.reset_stats();
    for token in &tokens {
        let short = &token[..token.len().min(16)];
        let reply = get(app, "/me", &auth(token)).await;
        assert_reply(&reply, 401, &expected, &format!("header {short}"));
        let bearer = format!("Bearer {token}");
        let reply = get(app, "/me", &auth(&bearer)).await;
        assert_reply(&reply, 401, &expected, &format!("Bearer {short}"));
        let reply = get(
            app,
            &format!("/me?tokenid={}", token.replace('*', "%2A")),
            &[],
        )
        .await;
        assert_reply(&reply, 401, &expected, &format!("query {short}"));
        // The optional extractor reads a malformed token as no session (the core's
        // `gate::optional`): anonymous, not 401.
        let reply = get(app, "/maybe", &auth(token)).await;
        let anonymous = json!({"success": true, "data": null});
        assert_reply(&reply, 200, &anonymous, &format!("/maybe {short}"));
    }
    assert_eq!(
        commands_since_reset(server),
        Vec::<(String, u64)>::new(),
        "no Redis command for a malformed token"
    );
}

/// A well-formed token without a session: 401 with the core's message; the optional
/// extractor reads it as no session (200, `data: null`).
pub async fn unknown_token_is_401(app: &impl TestApp, _server: &mut RedisServer) {
    let expected = failure(Rejection::NoSession.message());
    assert_reply(&get(app, "/me", &auth(TOKEN)).await, 401, &expected, "/me");
    let reply = get(app, &format!("/me?tokenid={TOKEN}"), &[]).await;
    assert_reply(&reply, 401, &expected, "/me?tokenid=");
    let reply = get(app, "/maybe", &auth(TOKEN)).await;
    assert_reply(
        &reply,
        200,
        &json!({"success": true, "data": null}),
        "/maybe",
    );
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

/// Logout ends the session: the token is 401 afterwards.
pub async fn logout_ends_the_session(app: &impl TestApp, _server: &mut RedisServer) {
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

/// A route without the loading component asking for a session: 500 with a message
/// naming the component (a programming error, not the client's).
pub async fn route_without_the_component_is_500_naming_it(
    app: &impl TestApp,
    _server: &mut RedisServer,
) {
    let token = login(app, &JavaUser::new(55)).await;
    for headers in [vec![], vec![("authorization", token.as_str())]] {
        let reply = get(app, "/unprotected/me", &headers).await;
        assert_eq!(reply.status, 500, "/unprotected/me: {reply:?}");
        assert_eq!(reply.body["success"], json!(false), "{reply:?}");
        let message = reply.body["errorMsg"].as_str().unwrap_or_default();
        assert!(
            message.contains(app.component()),
            "the 500 names {}: {reply:?}",
            app.component()
        );
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
