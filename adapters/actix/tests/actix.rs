//! End-to-end tests of keygate-actix: real actix services (`test::init_service`) over a
//! private redis-server with the Java seed's layout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::test::{self, TestRequest};
use actix_web::{App, web};
use keygate_actix::keygate::web::{Envelope, Rejection};
use keygate_actix::{ApiError, Auth, Keygate, KeygateMiddleware, MaybeAuth, Sessions};
use keygate_tests::fixtures::{
    COOKIE, JavaUser, commands_since_reset, java_gate, malformed_tokens, one_hash_touch,
    plant_java_session, pttl,
};
use keygate_tests::{RedisServer, eventually};
use serde_json::{Value, json};

const MISSING_LAYER: &str = "keygate-actix: KeygateMiddleware is not installed on this route";

// ---- the routes under test ----

async fn me(user: Auth<JavaUser>) -> web::Json<Envelope<JavaUser>> {
    web::Json(Envelope::ok(user.data().clone()))
}

async fn hello(MaybeAuth(user): MaybeAuth<JavaUser>) -> web::Json<Envelope<String>> {
    let who = user.map_or_else(|| "anonymous".to_owned(), |user| user.nick_name.clone());
    web::Json(Envelope::ok(format!("hello, {who}")))
}

async fn public() -> web::Json<Envelope<&'static str>> {
    web::Json(Envelope::ok("public"))
}

async fn login(
    sessions: Sessions<JavaUser>,
    user: web::Json<JavaUser>,
) -> Result<web::Json<Envelope<String>>, ApiError> {
    let token = sessions.login(&user).await?;
    Ok(web::Json(Envelope::ok(token.expose().to_owned())))
}

async fn logout(user: Auth<JavaUser>) -> Result<web::Json<Envelope<bool>>, ApiError> {
    Ok(web::Json(Envelope::ok(user.logout().await?)))
}

async fn logout_all(user: Auth<JavaUser>) -> Result<web::Json<Envelope<u64>>, ApiError> {
    let ended = user.logout_everywhere().await?;
    Ok(web::Json(Envelope::ok(ended)))
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/me", web::get().to(me))
        .route("/hello", web::get().to(hello))
        .route("/public", web::get().to(public))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/logout-all", web::post().to(logout_all));
}

/// The app under test: the middleware on the whole app, and once more on a scope (which
/// must not load the session a second time).
macro_rules! app {
    ($gate:expr) => {{
        let gate: Keygate<JavaUser> = $gate;
        test::init_service(
            App::new()
                .wrap(KeygateMiddleware::new(gate.clone()))
                .configure(routes)
                .service(
                    web::scope("/nested")
                        .wrap(KeygateMiddleware::new(gate))
                        .route("/me", web::get().to(me)),
                ),
        )
        .await
    }};
}

// ---- helpers ----

struct Reply {
    status: StatusCode,
    content_type: Option<String>,
    body: Value,
}

async fn send<S, R, B>(app: &S, req: R) -> Reply
where
    S: Service<R, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let res = test::call_service(app, req).await;
    let status = res.status();
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = test::read_body(res).await;
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("body is not JSON ({e}): {bytes:?}"));
    Reply {
        status,
        content_type,
        body,
    }
}

fn envelope_of(rejection: Rejection) -> Value {
    serde_json::from_str(&rejection.body()).unwrap()
}

fn assert_rejected(reply: &Reply, rejection: Rejection, what: &str) {
    assert_eq!(reply.status.as_u16(), rejection.status(), "{what}");
    assert_eq!(reply.body, envelope_of(rejection), "{what}");
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/json"),
        "{what}"
    );
}

fn user_envelope(user: &JavaUser) -> Value {
    json!({ "success": true, "data": user })
}

/// `GET <path>` with the token in the raw `authorization` header.
fn with_token(path: &str, token: &str) -> TestRequest {
    TestRequest::get()
        .uri(path)
        .insert_header(("authorization", token))
}

/// Every way a client may send its token, for `GET /me`.
fn transports(token: &str) -> Vec<(&'static str, TestRequest)> {
    vec![
        ("raw header", with_token("/me", token)),
        (
            "bearer header",
            TestRequest::get()
                .uri("/me")
                .insert_header(("Authorization", format!("Bearer {token}"))),
        ),
        (
            "query",
            TestRequest::get().uri(&format!("/me?tokenid={token}")),
        ),
        (
            "cookie",
            TestRequest::get()
                .uri("/me")
                .insert_header(("cookie", format!("theme=dark; {COOKIE}={token}"))),
        ),
    ]
}

/// A token as a client would put it in a URL.
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

/// Logs `user` in through `POST /login` (as `Sessions::login`) and returns the token.
macro_rules! login_as {
    ($app:expr, $user:expr) => {
        token_of(
            send(
                $app,
                TestRequest::post()
                    .uri("/login")
                    .set_json($user)
                    .to_request(),
            )
            .await,
        )
    };
}

fn token_of(reply: Reply) -> String {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["data"].as_str().expect("a token").to_owned()
}

// ---- the tests ----

#[actix_web::test]
async fn missing_malformed_unknown_and_expired_tokens_are_401() {
    let server = RedisServer::start();
    let app = app!(java_gate(&server).await);

    let reply = send(&app, TestRequest::get().uri("/me").to_request()).await;
    assert_rejected(&reply, Rejection::MissingToken, "no token");

    // Malformed tokens, in every transport that can carry them: 401 without touching Redis.
    server.reset_stats();
    for bad in malformed_tokens() {
        let mut requests = vec![(
            "query",
            TestRequest::get()
                .uri(&format!("/me?tokenid={}", percent_encode(&bad)))
                .to_request(),
        )];
        // Control characters cannot travel in a header at all; non-ASCII only as raw bytes.
        if let Ok(value) = HeaderValue::from_bytes(bad.as_bytes()) {
            requests.push((
                "header",
                TestRequest::get()
                    .uri("/me")
                    .insert_header(("authorization", value))
                    .to_request(),
            ));
        }
        if let Ok(value) = HeaderValue::from_bytes(format!("{COOKIE}={bad}").as_bytes()) {
            requests.push((
                "cookie",
                TestRequest::get()
                    .uri("/me")
                    .insert_header(("cookie", value))
                    .to_request(),
            ));
        }
        for (transport, req) in requests {
            let reply = send(&app, req).await;
            let what = format!("{bad:.40?} in the {transport}");
            assert_rejected(&reply, Rejection::MalformedToken, &what);
        }
    }
    // The middleware never rejects by itself: a route without a session still answers.
    let reply = send(&app, with_token("/public", "*").to_request()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        commands_since_reset(&server),
        vec![],
        "malformed tokens reached Redis"
    );

    let unknown = "0123456789abcdef0123456789abcdef";
    let reply = send(&app, with_token("/me", unknown).to_request()).await;
    assert_rejected(&reply, Rejection::NoSession, "unknown token");

    let expired = "feedfacefeedfacefeedfacefeedface";
    plant_java_session(&server, expired, &JavaUser::new(3));
    let key = format!("login:token:{expired}");
    let _: () = server.query(redis::cmd("PEXPIRE").arg(&key).arg(1));
    assert!(
        eventually(Duration::from_secs(5), async || {
            server.query::<i64>(redis::cmd("EXISTS").arg(&key)) == 0
        })
        .await,
        "the planted session did not expire"
    );
    let reply = send(&app, with_token("/me", expired).to_request()).await;
    assert_rejected(&reply, Rejection::NoSession, "expired token");
}

#[actix_web::test]
async fn every_transport_yields_the_typed_user_of_planted_and_logged_in_sessions() {
    let server = RedisServer::start();
    let app = app!(java_gate(&server).await);

    // A session written by the Java service sharing this Redis.
    let java_user = JavaUser::new(1010);
    let planted = "dd9b7511874889f4192fbda3d8b0881c";
    plant_java_session(&server, planted, &java_user);

    // A session created through `Sessions::login`.
    let mut our_user = JavaUser::new(2020);
    our_user.icon = "/imgs/icons/kitty.jpg".to_owned();
    let ours = login_as!(&app, &our_user);
    assert_eq!(ours.len(), 32, "a fresh token is 32 hex characters");

    for (token, user) in [(planted, &java_user), (ours.as_str(), &our_user)] {
        for (transport, req) in transports(token) {
            let reply = send(&app, req.to_request()).await;
            assert_eq!(reply.status, StatusCode::OK, "{transport}: {}", reply.body);
            assert_eq!(reply.body, user_envelope(user), "{transport}");
        }
    }
}

#[actix_web::test]
async fn an_authenticated_request_resets_the_idle_ttl() {
    let server = RedisServer::start();
    let app = app!(java_gate(&server).await);
    let token = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
    let key = format!("login:token:{token}");
    plant_java_session(&server, token, &JavaUser::new(5));
    let _: () = server.query(redis::cmd("PEXPIRE").arg(&key).arg(5000));
    assert!(pttl(&server, &key) <= 5000);

    let reply = send(&app, with_token("/me", token).to_request()).await;
    assert_eq!(reply.status, StatusCode::OK);
    let ttl = pttl(&server, &key);
    assert!(ttl > 1_000_000, "the TTL was not reset: {ttl} ms");
}

#[actix_web::test]
async fn an_authenticated_request_costs_one_round_trip() {
    let server = RedisServer::start();
    let app = app!(java_gate(&server).await);
    let user = JavaUser::new(77);
    let token = login_as!(&app, &user);
    // The first call of the touch script on a fresh server loads it (NOSCRIPT, then EVAL).
    send(&app, with_token("/me", &token).to_request()).await;

    // Wrapped once, and wrapped twice (app and scope): the same single load-and-touch.
    for path in ["/me", "/nested/me"] {
        server.reset_stats();
        let reply = send(&app, with_token(path, &token).to_request()).await;
        assert_eq!(reply.body, user_envelope(&user), "{path}");
        assert_eq!(commands_since_reset(&server), one_hash_touch(), "{path}");
    }

    // One read on the server's side. The measurement reads INFO over one admin connection
    // (a fresh connection per reading would add set-up reads, and the closing of earlier
    // admin connections lands at unpredictable times): wait until a reading without a
    // request costs the same twice in a row, then compare a reading with one request.
    let mut admin = server.admin();
    let mut last = total_reads(&mut admin);
    let mut previous_cost = None;
    let mut baseline = 0;
    let settled = eventually(Duration::from_secs(5), async || {
        let now = total_reads(&mut admin);
        let cost = now - last;
        last = now;
        baseline = cost;
        previous_cost.replace(cost) == Some(cost)
    })
    .await;
    assert!(settled, "the server's read counter never settled");
    let reply = send(&app, with_token("/me", &token).to_request()).await;
    assert_eq!(reply.status, StatusCode::OK);
    let with_request = total_reads(&mut admin) - last;
    assert_eq!(
        with_request - baseline,
        1,
        "reads: a reading alone {baseline}, with the request {with_request}"
    );
}

/// `total_reads_processed` of `INFO stats`, over `conn`.
fn total_reads(conn: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("stats").query(conn).unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("total_reads_processed:"))
        .and_then(|value| value.trim().parse().ok())
        .expect("total_reads_processed in INFO stats")
}

#[actix_web::test]
async fn logout_ends_the_token_at_once() {
    let server = RedisServer::start();
    let app = app!(java_gate(&server).await);
    let user = JavaUser::new(8);
    let token = login_as!(&app, &user);
    let other = login_as!(&app, &user);

    let req = TestRequest::post()
        .uri("/logout")
        .insert_header(("Authorization", format!("Bearer {token}")))
        .to_request();
    let reply = send(&app, req).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({ "success": true, "data": true }));

    let reply = send(&app, with_token("/me", &token).to_request()).await;
    assert_rejected(&reply, Rejection::NoSession, "after logout");
    let exists: i64 = server.query(redis::cmd("EXISTS").arg(format!("login:token:{token}")));
    assert_eq!(exists, 0, "the session key survived logout");

    // The same user's other session is untouched.
    let reply = send(&app, with_token("/me", &other).to_request()).await;
    assert_eq!(reply.body, user_envelope(&user));
}

#[actix_web::test]
async fn logout_everywhere_ends_every_session_of_the_user_only() {
    let server = RedisServer::start();
    let app = app!(java_gate(&server).await);
    let alice = JavaUser::new(100);
    let bob = JavaUser::new(200);
    let alice_tokens = [
        login_as!(&app, &alice),
        login_as!(&app, &alice),
        login_as!(&app, &alice),
    ];
    let bob_token = login_as!(&app, &bob);

    let req = TestRequest::post()
        .uri(&format!("/logout-all?tokenid={}", alice_tokens[1]))
        .to_request();
    let reply = send(&app, req).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, json!({ "success": true, "data": 3 }));

    for token in &alice_tokens {
        let reply = send(&app, with_token("/me", token).to_request()).await;
        assert_rejected(&reply, Rejection::NoSession, "alice after logout-all");
    }
    let reply = send(&app, with_token("/me", &bob_token).to_request()).await;
    assert_eq!(reply.body, user_envelope(&bob), "bob must stay logged in");
}

#[actix_web::test]
async fn maybe_auth_is_none_without_a_session_and_some_with_one() {
    let server = RedisServer::start();
    let app = app!(java_gate(&server).await);
    let user = JavaUser::new(42);
    let token = login_as!(&app, &user);
    let anonymous = json!({ "success": true, "data": "hello, anonymous" });

    let reply = send(&app, TestRequest::get().uri("/hello").to_request()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, anonymous, "no token");
    for bad in ["*", "0123456789abcdef0123456789abcdef"] {
        let reply = send(&app, with_token("/hello", bad).to_request()).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, anonymous, "token {bad}");
    }

    let reply = send(&app, with_token("/hello", &token).to_request()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({ "success": true, "data": "hello, user_42" })
    );
}

#[actix_web::test]
async fn backend_down_is_a_prompt_503_and_the_same_service_recovers() {
    let mut server = RedisServer::start();
    let app = app!(java_gate(&server).await);
    let user = JavaUser::new(9);
    let token = "abcdefabcdefabcdefabcdefabcdef01";
    plant_java_session(&server, token, &user);
    let reply = send(&app, with_token("/me", token).to_request()).await;
    assert_eq!(reply.body, user_envelope(&user));

    server.stop();
    for path in ["/me", "/hello", "/me"] {
        let started = Instant::now();
        let reply = send(&app, with_token(path, token).to_request()).await;
        let took = started.elapsed();
        assert_rejected(&reply, Rejection::BackendUnavailable, path);
        assert!(took < Duration::from_secs(2), "{path} took {took:?}");
    }
    // Without a token nothing needs Redis: anonymous routes keep working.
    let reply = send(&app, TestRequest::get().uri("/hello").to_request()).await;
    assert_eq!(reply.status, StatusCode::OK);
    // Login needs Redis: 503 through `ApiError`.
    let reply = send(
        &app,
        TestRequest::post()
            .uri("/login")
            .set_json(&user)
            .to_request(),
    )
    .await;
    assert_rejected(&reply, Rejection::BackendUnavailable, "login");

    server.restart();
    plant_java_session(&server, token, &user);
    let recovered = eventually(Duration::from_secs(10), async || {
        send(&app, with_token("/me", token).to_request())
            .await
            .status
            == StatusCode::OK
    })
    .await;
    assert!(
        recovered,
        "the service did not recover after Redis came back"
    );
    let reply = send(&app, with_token("/hello", token).to_request()).await;
    assert_eq!(
        reply.body,
        json!({ "success": true, "data": "hello, user_9" })
    );
}

#[actix_web::test]
async fn extractors_without_the_middleware_answer_500_naming_it() {
    let server = RedisServer::start();
    let gate = java_gate(&server).await;
    let token = "dd9b7511874889f4192fbda3d8b0881c";
    plant_java_session(&server, token, &JavaUser::new(1));
    let app = test::init_service(App::new().configure(routes)).await;

    for path in ["/me", "/hello"] {
        let reply = send(&app, with_token(path, token).to_request()).await;
        assert_rejected(&reply, Rejection::MissingLayer(MISSING_LAYER), path);
    }
    let reply = send(
        &app,
        TestRequest::post()
            .uri("/login")
            .set_json(JavaUser::new(1))
            .to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    let message = reply.body["errorMsg"].as_str().unwrap_or_default();
    assert!(message.starts_with(MISSING_LAYER), "{message}");

    // As in every adapter, `Sessions` is the loading component's gate: a gate registered
    // as app data does not stand in for the middleware.
    let app = test::init_service(App::new().app_data(gate).configure(routes)).await;
    let reply = send(
        &app,
        TestRequest::post()
            .uri("/login")
            .set_json(JavaUser::new(1))
            .to_request(),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        reply.body
    );
}
