//! keygate-rocket end to end: rocket's local client against a private redis-server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use keygate_rocket::{
    ApiError, Auth, Envelope, Keygate, KeygateFairing, MaybeAuth, Rejection, Sessions, Token,
    UserId,
};
use keygate_tests::RedisServer;
use keygate_tests::fixtures::{
    COOKIE, JavaUser, commands_since_reset, java_gate, malformed_tokens, one_hash_touch,
    plant_java_session, pttl,
};
use rocket::error::ErrorKind;
use rocket::http::uri::Origin;
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use rocket::request::{FromRequest, Outcome};
use rocket::serde::json::Json;
use rocket::{Build, Request, Rocket, catch, catchers, get, post, routes};
use serde_json::{Value, json};

#[get("/me")]
fn me(user: Auth<JavaUser>) -> Json<Envelope<JavaUser>> {
    Json(Envelope::ok(user.data().clone()))
}

#[get("/maybe")]
fn maybe(user: MaybeAuth<JavaUser>) -> Json<Envelope<Option<JavaUser>>> {
    Json(Envelope::ok(user.0.map(|user| user.data().clone())))
}

/// Two guards reading the one session the first of them loaded.
#[get("/both")]
fn both(user: Auth<JavaUser>, again: MaybeAuth<JavaUser>) -> Json<Envelope<Value>> {
    Json(Envelope::ok(json!({
        "auth": user.id,
        "maybe": again.0.map(|again| again.id),
    })))
}

#[post("/login", data = "<user>")]
async fn login(
    sessions: Sessions<JavaUser>,
    user: Json<JavaUser>,
) -> Result<Json<Envelope<String>>, ApiError> {
    let token = sessions.login(&user).await?;
    Ok(Json(Envelope::ok(token.expose().to_owned())))
}

#[post("/logout")]
async fn logout(user: Auth<JavaUser>) -> Result<Json<Envelope<bool>>, ApiError> {
    Ok(Json(Envelope::ok(user.logout().await?)))
}

#[post("/logout-all")]
async fn logout_all(user: Auth<JavaUser>) -> Result<Json<Envelope<u64>>, ApiError> {
    Ok(Json(Envelope::ok(user.logout_everywhere().await?)))
}

#[get("/bad-user")]
fn bad_user() -> Result<Json<Envelope<String>>, ApiError> {
    let id = UserId::new("not a valid id")?;
    Ok(Json(Envelope::ok(id.to_string())))
}

fn quiet() -> Rocket<Build> {
    rocket::custom(rocket::Config::figment().merge(("log_level", "off")))
}

fn app(gate: Keygate<JavaUser>) -> Rocket<Build> {
    quiet()
        .mount(
            "/",
            routes![me, maybe, both, login, logout, logout_all, bad_user],
        )
        .attach(KeygateFairing::new(gate))
}

async fn setup() -> (RedisServer, Client) {
    let server = RedisServer::start();
    let gate = java_gate(&server).await;
    let client = Client::untracked(app(gate)).await.unwrap();
    (server, client)
}

fn fresh_token() -> String {
    Token::generate().unwrap().expose().to_owned()
}

fn authorization(value: impl Into<String>) -> Header<'static> {
    Header::new("authorization", value.into())
}

async fn get_with<'c>(client: &'c Client, uri: &str, token: &str) -> LocalResponse<'c> {
    client
        .get(uri.to_owned())
        .header(authorization(token))
        .dispatch()
        .await
}

/// Status, content type and JSON body of a response.
async fn read(response: LocalResponse<'_>) -> (Status, Option<ContentType>, Value) {
    let status = response.status();
    let content_type = response.content_type();
    let text = response.into_string().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, content_type, body)
}

/// Asserts a rejection: its status and the JSON envelope of `rejection`.
async fn assert_rejected(response: LocalResponse<'_>, rejection: Rejection) {
    let (status, content_type, body) = read(response).await;
    assert_eq!(status.code, rejection.status(), "{body}");
    assert_eq!(content_type, Some(ContentType::JSON));
    let expected: Value = serde_json::from_str(&rejection.body()).unwrap();
    assert_eq!(body, expected);
}

/// Asserts a success whose `data` is `user`.
async fn assert_user(response: LocalResponse<'_>, user: &JavaUser) {
    let (status, _, body) = read(response).await;
    assert_eq!(status, Status::Ok, "{body}");
    assert_eq!(body, json!({ "success": true, "data": user }));
}

async fn login_as(client: &Client, user: &JavaUser) -> String {
    let response = client.post("/login").json(user).dispatch().await;
    let (status, _, body) = read(response).await;
    assert_eq!(status, Status::Ok, "{body}");
    body["data"].as_str().expect("a token").to_owned()
}

#[tokio::test]
async fn requests_without_a_valid_token_are_401_and_malformed_ones_cost_no_redis_call() {
    let (server, client) = setup().await;

    assert_rejected(client.get("/me").dispatch().await, Rejection::MissingToken).await;

    server.reset_stats();
    for token in malformed_tokens() {
        // Rocket's local client carries any header text, even a control character.
        assert_rejected(
            get_with(&client, "/me", &token).await,
            Rejection::MalformedToken,
        )
        .await;
        let bearer = get_with(&client, "/me", &format!("Bearer {token}")).await;
        assert_rejected(bearer, Rejection::MalformedToken).await;
        let uri = format!("/me?tokenid={token}");
        if Origin::parse(&uri).is_ok() {
            let response = client.get(uri).dispatch().await;
            assert_rejected(response, Rejection::MalformedToken).await;
        }
    }
    assert_eq!(commands_since_reset(&server), Vec::<(String, u64)>::new());

    let unknown = get_with(&client, "/me", &fresh_token()).await;
    assert_rejected(unknown, Rejection::NoSession).await;
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
        assert_user(get_with(&client, "/me", token).await, user).await;
        let bearer = client
            .get("/me")
            .header(Header::new("Authorization", format!("Bearer {token}")))
            .dispatch();
        assert_user(bearer.await, user).await;
        let query = client.get(format!("/me?tokenid={token}")).dispatch();
        assert_user(query.await, user).await;
        let cookie = client
            .get("/me")
            .header(Header::new(
                "cookie",
                format!("theme=dark; {COOKIE}={token}"),
            ))
            .dispatch();
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

    assert_user(get_with(&client, "/me", &token).await, &JavaUser::new(7)).await;

    assert!(pttl(&server, &key) > 1_000_000, "ttl not reset");
}

#[tokio::test]
async fn two_guards_in_one_request_cost_one_round_trip() {
    let (server, client) = setup().await;
    let token = fresh_token();
    plant_java_session(&server, &token, &JavaUser::new(7));

    server.reset_stats();
    let (status, _, body) = read(get_with(&client, "/both", &token).await).await;

    assert_eq!(status, Status::Ok, "{body}");
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

    let response = client.post("/logout").header(authorization(&a1)).dispatch();
    let (status, _, body) = read(response.await).await;
    assert_eq!(
        (status, &body),
        (Status::Ok, &json!({"success": true, "data": true}))
    );
    assert_rejected(get_with(&client, "/me", &a1).await, Rejection::NoSession).await;
    assert_user(get_with(&client, "/me", &a2).await, &alice).await;

    let response = client
        .post("/logout-all")
        .header(authorization(&a2))
        .dispatch();
    let (status, _, body) = read(response.await).await;
    assert_eq!(
        (status, &body),
        (Status::Ok, &json!({"success": true, "data": 2}))
    );
    for token in [&a1, &a2, &a3] {
        assert_rejected(get_with(&client, "/me", token).await, Rejection::NoSession).await;
    }
    assert_user(get_with(&client, "/me", &b1).await, &bob).await;
}

#[tokio::test]
async fn maybe_auth_is_none_without_a_session_and_some_with_one() {
    let (server, client) = setup().await;
    let token = fresh_token();
    plant_java_session(&server, &token, &JavaUser::new(7));
    let none = json!({ "success": true, "data": null });

    for response in [
        client.get("/maybe").dispatch().await,
        get_with(&client, "/maybe", "*").await,
        get_with(&client, "/maybe", &fresh_token()).await,
    ] {
        let (status, _, body) = read(response).await;
        assert_eq!((status, body), (Status::Ok, none.clone()));
    }

    assert_user(get_with(&client, "/maybe", &token).await, &JavaUser::new(7)).await;
}

#[tokio::test]
async fn a_stopped_backend_is_503_quickly_and_a_restarted_one_serves_again() {
    let (mut server, client) = setup().await;
    let token = fresh_token();
    let user = JavaUser::new(7);
    plant_java_session(&server, &token, &user);
    assert_user(get_with(&client, "/me", &token).await, &user).await;

    server.stop();
    for path in ["/me", "/maybe", "/both"] {
        let started = Instant::now();
        let response = get_with(&client, path, &token).await;
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
        get_with(&client, "/me", &token).await.status() == Status::Ok
    })
    .await;
    assert!(served, "no 200 within 10 s of the restart");
    assert_user(get_with(&client, "/me", &token).await, &user).await;
}

#[tokio::test]
async fn api_error_answers_503_for_backend_trouble_and_500_otherwise() {
    let (mut server, client) = setup().await;

    let (status, content_type, body) = read(client.get("/bad-user").dispatch().await).await;
    assert_eq!(status, Status::InternalServerError);
    assert_eq!(content_type, Some(ContentType::JSON));
    assert_eq!(
        body,
        json!({ "success": false, "errorMsg": "internal error" })
    );

    // Login touches Redis only in the handler, through `?` on the core's error.
    server.stop();
    let response = client.post("/login").json(&JavaUser::new(9)).dispatch();
    assert_rejected(response.await, Rejection::BackendUnavailable).await;
}

#[tokio::test]
async fn ignite_fails_when_a_route_needs_the_missing_fairing() {
    let rocket = quiet().mount("/", routes![me, maybe, login]);

    let Err(error) = Client::untracked(rocket).await else {
        panic!("ignite succeeded");
    };

    let ErrorKind::SentinelAborts(sentries) = error.kind() else {
        panic!("not a sentinel abort: {:?}", error.kind());
    };
    let mut aborted: Vec<_> = sentries.iter().map(|sentry| sentry.type_name).collect();
    aborted.sort_unstable();
    assert_eq!(aborted.len(), 3, "{aborted:?}");
    assert!(aborted[0].contains("Auth<"), "{aborted:?}");
    assert!(aborted[1].contains("MaybeAuth<"), "{aborted:?}");
    assert!(aborted[2].contains("Sessions<"), "{aborted:?}");
}

/// A guard of the application built on `Auth`, out of the sentinels' sight.
struct Wrapped(Auth<JavaUser>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Wrapped {
    type Error = keygate_rocket::KeygateRejection;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        request.guard::<Auth<JavaUser>>().await.map(Wrapped)
    }
}

#[get("/wrapped")]
fn wrapped(user: Wrapped) -> String {
    user.0.nick_name.clone()
}

#[tokio::test]
async fn a_guard_without_the_fairing_is_a_500_naming_it_not_a_panic() {
    let rocket = quiet()
        .mount("/", routes![wrapped])
        .register("/", keygate_rocket::catchers());
    let client = Client::untracked(rocket).await.unwrap();

    let response = get_with(&client, "/wrapped", &fresh_token()).await;

    let (status, content_type, body) = read(response).await;
    assert_eq!(status, Status::InternalServerError);
    assert_eq!(content_type, Some(ContentType::JSON));
    assert_eq!(body["success"], json!(false));
    let message = body["errorMsg"].as_str().unwrap();
    assert!(
        message.starts_with("keygate-rocket: KeygateFairing is not installed"),
        "{message}"
    );
}

#[catch(401)]
fn own_unauthorized(request: &Request<'_>) -> String {
    let message = keygate_rocket::rejection(request).map_or("none", Rejection::message);
    format!("own catcher: {message}")
}

#[tokio::test]
async fn an_applications_own_catcher_is_kept_and_sees_the_rejection() {
    let mut server = RedisServer::start();
    let rocket = app(java_gate(&server).await).register("/", catchers![own_unauthorized]);
    let client = Client::untracked(rocket).await.unwrap();

    let response = client.get("/me").dispatch().await;
    assert_eq!(response.status(), Status::Unauthorized);
    assert_eq!(
        response.into_string().await.as_deref(),
        Some("own catcher: not logged in: no token")
    );

    // The fairing's other catchers are still there.
    server.stop();
    let response = get_with(&client, "/me", &fresh_token()).await;
    assert_rejected(response, Rejection::BackendUnavailable).await;
}

#[tokio::test]
async fn a_second_gate_for_the_same_user_type_fails_ignite() {
    let server = RedisServer::start();
    let rocket =
        app(java_gate(&server).await).attach(KeygateFairing::new(java_gate(&server).await));

    let Err(error) = Client::untracked(rocket).await else {
        panic!("ignite succeeded");
    };

    assert!(
        matches!(error.kind(), ErrorKind::FailedFairings(failed) if failed.iter().any(|f| f.name == "keygate")),
        "{:?}",
        error.kind()
    );
}
