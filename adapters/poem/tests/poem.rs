//! keygate-poem end to end: poem's test client against a private redis-server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use keygate_poem::{
    ApiError, Auth, Envelope, Keygate, KeygateMiddleware, MaybeAuth, Rejection, Sessions, Token,
};
use keygate_tests::RedisServer;
use keygate_tests::fixtures::{
    COOKIE, JavaUser, commands_since_reset, java_gate, malformed_tokens, one_hash_touch,
    plant_java_session, pttl,
};
use poem::http::{HeaderValue, StatusCode, Uri};
use poem::test::{TestClient, TestResponse};
use poem::web::Json;
use poem::{Endpoint, EndpointExt, IntoEndpoint, Route, get, handler, post};
use serde_json::{Value, json};

#[handler]
fn me(user: Auth<JavaUser>) -> Json<Envelope<JavaUser>> {
    Json(Envelope::ok(user.data().clone()))
}

#[handler]
fn maybe(MaybeAuth(user): MaybeAuth<JavaUser>) -> Json<Envelope<Option<JavaUser>>> {
    Json(Envelope::ok(user.map(|user| user.data().clone())))
}

/// Two extractors reading the one session the middleware loaded.
#[handler]
fn both(user: Auth<JavaUser>, MaybeAuth(again): MaybeAuth<JavaUser>) -> Json<Envelope<Value>> {
    Json(Envelope::ok(json!({
        "auth": user.id,
        "maybe": again.map(|again| again.id),
    })))
}

#[handler]
async fn login(
    sessions: Sessions<JavaUser>,
    Json(user): Json<JavaUser>,
) -> Result<Json<Envelope<String>>, ApiError> {
    let token = sessions.login(&user).await?;
    Ok(Json(Envelope::ok(token.expose().to_owned())))
}

#[handler]
async fn logout(user: Auth<JavaUser>) -> Result<Json<Envelope<bool>>, ApiError> {
    Ok(Json(Envelope::ok(user.logout().await?)))
}

#[handler]
async fn logout_all(user: Auth<JavaUser>) -> Result<Json<Envelope<u64>>, ApiError> {
    Ok(Json(Envelope::ok(user.logout_everywhere().await?)))
}

fn routes() -> Route {
    Route::new()
        .at("/me", get(me))
        .at("/maybe", get(maybe))
        .at("/both", get(both))
        .at("/login", post(login))
        .at("/logout", post(logout))
        .at("/logout-all", post(logout_all))
}

fn app(gate: Keygate<JavaUser>) -> impl Endpoint {
    routes().with(KeygateMiddleware::new(gate)).into_endpoint()
}

async fn setup() -> (RedisServer, TestClient<impl Endpoint>) {
    let server = RedisServer::start();
    let gate = java_gate(&server).await;
    (server, TestClient::new(app(gate)))
}

fn fresh_token() -> String {
    Token::generate().unwrap().expose().to_owned()
}

/// Status, content type and JSON body of a response.
async fn read(response: TestResponse) -> (StatusCode, String, Value) {
    let status = response.0.status();
    let content_type = response.0.content_type().unwrap_or_default().to_owned();
    let text = response.0.into_body().into_string().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, content_type, body)
}

/// Asserts a rejection: its status and the JSON envelope of `rejection`.
async fn assert_rejected(response: TestResponse, rejection: Rejection) {
    let (status, content_type, body) = read(response).await;
    assert_eq!(status.as_u16(), rejection.status(), "{body}");
    assert_eq!(content_type, "application/json");
    let expected: Value = serde_json::from_str(&rejection.body()).unwrap();
    assert_eq!(body, expected);
}

/// Asserts a success whose `data` is `user`.
async fn assert_user(response: TestResponse, user: &JavaUser) {
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "success": true, "data": user }));
}

async fn login_as<E: Endpoint>(client: &TestClient<E>, user: &JavaUser) -> String {
    let (status, _, body) = read(client.post("/login").body_json(user).send().await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_str().expect("a token").to_owned()
}

#[tokio::test]
async fn requests_without_a_valid_token_are_401_and_malformed_ones_cost_no_redis_call() {
    let (server, client) = setup().await;

    assert_rejected(client.get("/me").send().await, Rejection::MissingToken).await;

    server.reset_stats();
    for token in malformed_tokens() {
        let mut sent = 0;
        if HeaderValue::from_str(&token).is_ok() {
            let response = client
                .get("/me")
                .header("authorization", &token)
                .send()
                .await;
            assert_rejected(response, Rejection::MalformedToken).await;
            let response = client
                .get("/me")
                .header("authorization", format!("Bearer {token}"))
                .send()
                .await;
            assert_rejected(response, Rejection::MalformedToken).await;
            sent += 2;
        }
        let uri = format!("/me?tokenid={token}");
        if uri.parse::<Uri>().is_ok() {
            assert_rejected(client.get(uri).send().await, Rejection::MalformedToken).await;
            sent += 1;
        } else if HeaderValue::from_str(&token).is_err() {
            // A control character fits neither a header value nor a URI: no HTTP client or
            // server lets it through raw. Its percent-encoded form is not a token either.
            let encoded = token.replace('\u{1}', "%01");
            let uri = format!("/me?tokenid={encoded}");
            assert_rejected(client.get(uri).send().await, Rejection::MalformedToken).await;
            sent += 1;
        }
        assert!(sent > 0, "{token:?} was never sent");
    }
    assert_eq!(commands_since_reset(&server), Vec::<(String, u64)>::new());

    let response = client
        .get("/me")
        .header("authorization", fresh_token())
        .send()
        .await;
    assert_rejected(response, Rejection::NoSession).await;
}

#[tokio::test]
async fn every_transport_authenticates_planted_and_logged_in_sessions() {
    let (server, client) = setup().await;
    let planted_user = JavaUser::new(7);
    let planted = fresh_token();
    plant_java_session(&server, &planted, &planted_user);
    let logged_in_user = JavaUser::new(8);
    let logged_in = login_as(&client, &logged_in_user).await;

    for (token, user) in [(&planted, &planted_user), (&logged_in, &logged_in_user)] {
        let raw = client.get("/me").header("authorization", token).send();
        assert_user(raw.await, user).await;
        let bearer = client
            .get("/me")
            .header("Authorization", format!("Bearer {token}"))
            .send();
        assert_user(bearer.await, user).await;
        let query = client.get(format!("/me?tokenid={token}")).send();
        assert_user(query.await, user).await;
        let cookie = client
            .get("/me")
            .header("cookie", format!("theme=dark; {COOKIE}={token}"))
            .send();
        assert_user(cookie.await, user).await;
    }
}

#[tokio::test]
async fn an_authenticated_request_resets_the_idle_ttl() {
    let (server, client) = setup().await;
    let token = fresh_token();
    plant_java_session(&server, &token, &JavaUser::new(7));
    let key = format!("login:token:{token}");
    let _: () = server.query(redis::cmd("PEXPIRE").arg(&key).arg(5000));
    assert!(pttl(&server, &key) <= 5000);

    let response = client
        .get("/me")
        .header("authorization", &token)
        .send()
        .await;
    assert_user(response, &JavaUser::new(7)).await;

    assert!(pttl(&server, &key) > 1_000_000, "ttl not reset");
}

#[tokio::test]
async fn an_authenticated_request_costs_one_round_trip_even_with_two_extractors() {
    let (server, client) = setup().await;
    let token = fresh_token();
    plant_java_session(&server, &token, &JavaUser::new(7));

    server.reset_stats();
    let (status, _, body) = read(
        client
            .get("/both")
            .header("authorization", &token)
            .send()
            .await,
    )
    .await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"], json!({ "auth": 7, "maybe": 7 }));
    assert_eq!(commands_since_reset(&server), one_hash_touch());
}

#[tokio::test]
async fn logout_ends_one_session_and_logout_everywhere_ends_all_of_the_user() {
    let (_server, client) = setup().await;
    let alice = JavaUser::new(1);
    let bob = JavaUser::new(2);
    let [a1, a2, a3] = [
        login_as(&client, &alice).await,
        login_as(&client, &alice).await,
        login_as(&client, &alice).await,
    ];
    let b1 = login_as(&client, &bob).await;

    let (status, _, body) = read(
        client
            .post("/logout")
            .header("authorization", &a1)
            .send()
            .await,
    )
    .await;
    assert_eq!(
        (status, &body),
        (StatusCode::OK, &json!({"success": true, "data": true}))
    );
    let gone = client.get("/me").header("authorization", &a1).send();
    assert_rejected(gone.await, Rejection::NoSession).await;
    let still = client.get("/me").header("authorization", &a2).send();
    assert_user(still.await, &alice).await;

    let (status, _, body) = read(
        client
            .post("/logout-all")
            .header("authorization", &a2)
            .send()
            .await,
    )
    .await;
    assert_eq!(
        (status, &body),
        (StatusCode::OK, &json!({"success": true, "data": 2}))
    );
    for token in [&a1, &a2, &a3] {
        let gone = client.get("/me").header("authorization", token).send();
        assert_rejected(gone.await, Rejection::NoSession).await;
    }
    let other = client.get("/me").header("authorization", &b1).send();
    assert_user(other.await, &bob).await;
}

#[tokio::test]
async fn maybe_auth_is_none_without_a_session_and_some_with_one() {
    let (server, client) = setup().await;
    let token = fresh_token();
    plant_java_session(&server, &token, &JavaUser::new(7));
    let none = json!({ "success": true, "data": null });

    for response in [
        client.get("/maybe").send().await,
        client
            .get("/maybe")
            .header("authorization", "*")
            .send()
            .await,
        client
            .get("/maybe")
            .header("authorization", fresh_token())
            .send()
            .await,
    ] {
        let (status, _, body) = read(response).await;
        assert_eq!((status, body), (StatusCode::OK, none.clone()));
    }

    let some = client.get("/maybe").header("authorization", &token).send();
    assert_user(some.await, &JavaUser::new(7)).await;
}

#[tokio::test]
async fn a_stopped_backend_is_503_quickly_and_a_restarted_one_serves_again() {
    let (mut server, client) = setup().await;
    let token = fresh_token();
    let user = JavaUser::new(7);
    plant_java_session(&server, &token, &user);
    let ok = client.get("/me").header("authorization", &token).send();
    assert_user(ok.await, &user).await;

    server.stop();
    for path in ["/me", "/maybe"] {
        let started = Instant::now();
        let response = client
            .get(path)
            .header("authorization", &token)
            .send()
            .await;
        assert_rejected(response, Rejection::BackendUnavailable).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{path} took {:?}",
            started.elapsed()
        );
    }

    server.restart();
    plant_java_session(&server, &token, &user);
    let served = keygate_tests::eventually(Duration::from_secs(10), async || {
        let response = client
            .get("/me")
            .header("authorization", &token)
            .send()
            .await;
        response.0.status() == StatusCode::OK
    })
    .await;
    assert!(served, "no 200 within 10 s of the restart");
    let ok = client.get("/me").header("authorization", &token).send();
    assert_user(ok.await, &user).await;
}

#[tokio::test]
async fn extractors_without_the_middleware_answer_500_naming_it() {
    let server = RedisServer::start();
    let token = fresh_token();
    plant_java_session(&server, &token, &JavaUser::new(7));
    let client = TestClient::new(routes());

    for response in [
        client
            .get("/me")
            .header("authorization", &token)
            .send()
            .await,
        client.get("/maybe").send().await,
        client
            .post("/login")
            .body_json(&JavaUser::new(8))
            .send()
            .await,
    ] {
        let (status, content_type, body) = read(response).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(content_type, "application/json");
        assert_eq!(body["success"], json!(false));
        let message = body["errorMsg"].as_str().unwrap();
        assert!(
            message.starts_with("keygate-poem: KeygateMiddleware is not installed"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn api_error_answers_503_for_backend_trouble_and_500_otherwise() {
    let mut server = RedisServer::start();
    let client = TestClient::new(
        routes()
            .at("/bad-user", get(bad_user))
            .with(KeygateMiddleware::new(java_gate(&server).await)),
    );

    let (status, content_type, body) = read(client.get("/bad-user").send().await).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(content_type, "application/json");
    assert_eq!(
        body,
        json!({ "success": false, "errorMsg": "internal error" })
    );

    // Login touches Redis only in the handler, through `?` on the core's error.
    server.stop();
    let response = client
        .post("/login")
        .body_json(&JavaUser::new(9))
        .send()
        .await;
    assert_rejected(response, Rejection::BackendUnavailable).await;
}

#[handler]
fn bad_user() -> Result<Json<Envelope<String>>, ApiError> {
    let id = keygate_poem::UserId::new("not a valid id")?;
    Ok(Json(Envelope::ok(id.to_string())))
}
