//! keygate-axum end to end: tower's `oneshot` against a private Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use keygate::web::Envelope;
use keygate_axum::{ApiError, Auth, KeygateLayer, MaybeAuth, Sessions};
use keygate_tests::fixtures::{
    COOKIE, JavaUser, commands_since_reset, java_gate, malformed_tokens, one_hash_touch,
    plant_java_session, pttl,
};
use keygate_tests::{RedisServer, eventually};
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "dd9b7511874889f4192fbda3d8b0881c";

async fn me(user: Auth<JavaUser>) -> Json<Envelope<JavaUser>> {
    Json(Envelope::ok(user.data().clone()))
}

async fn maybe(user: MaybeAuth<JavaUser>) -> Json<Envelope<Option<u64>>> {
    Json(Envelope::ok(user.0.map(|u| u.id)))
}

async fn option(user: Option<Auth<JavaUser>>) -> Json<Envelope<Option<u64>>> {
    Json(Envelope::ok(user.map(|u| u.id)))
}

async fn login(
    sessions: Sessions<JavaUser>,
    Json(user): Json<JavaUser>,
) -> Result<Json<Envelope<String>>, ApiError> {
    let token = sessions.login(&user).await?;
    Ok(Json(Envelope::ok(token.expose().to_owned())))
}

async fn logout(user: Auth<JavaUser>) -> Result<Json<Envelope<bool>>, ApiError> {
    Ok(Json(Envelope::ok(user.logout().await?)))
}

async fn logout_all(user: Auth<JavaUser>) -> Result<Json<Envelope<u64>>, ApiError> {
    Ok(Json(Envelope::ok(user.logout_everywhere().await?)))
}

async fn app(server: &RedisServer) -> Router {
    Router::new()
        .route("/me", get(me))
        .route("/maybe", get(maybe))
        .route("/option", get(option))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/logout-all", post(logout_all))
        .layer(KeygateLayer::new(java_gate(server).await))
        .route("/unprotected-me", get(me))
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn get_with(uri: &str, header: Option<(&str, HeaderValue)>) -> Request<Body> {
    let mut builder = Request::get(uri);
    if let Some((name, value)) = header {
        builder = builder.header(name, value);
    }
    builder.body(Body::empty()).unwrap()
}

fn bearer(token: &str) -> Request<Body> {
    get_with(
        "/me",
        Some(("authorization", HeaderValue::from_str(token).unwrap())),
    )
}

#[tokio::test]
async fn rejects_missing_malformed_and_unknown_tokens_with_401() {
    let server = RedisServer::start();
    let app = app(&server).await;
    let (status, body) = call(&app, get_with("/me", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["success"], json!(false));
    assert!(body["errorMsg"].as_str().unwrap().contains("no token"));

    server.reset_stats();
    for bad in malformed_tokens() {
        // Control characters cannot travel in a header; they come percent-encoded in the query.
        let request = match HeaderValue::from_bytes(bad.as_bytes()) {
            Ok(value) => get_with("/me", Some(("authorization", value))),
            Err(_) => get_with(
                &format!("/me?tokenid={}", bad.replace('\u{1}', "%01")),
                None,
            ),
        };
        let (status, body) = call(&app, request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad:?}");
        assert!(body["errorMsg"].as_str().unwrap().contains("malformed"));
    }
    // Oversized input is refused cheaply: a 1 MiB header and a query string near the
    // 64 KiB a URI may have.
    let huge = "a".repeat(1024 * 1024);
    let (status, _) = call(&app, bearer(&huge)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let huge = "a".repeat(30 * 1024);
    let (status, _) = call(
        &app,
        get_with(&format!("/me?x={huge}&tokenid={huge}"), None),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        commands_since_reset(&server).is_empty(),
        "no Redis call for malformed or oversized tokens"
    );

    let (status, body) = call(&app, bearer(TOKEN)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["errorMsg"]
            .as_str()
            .unwrap()
            .contains("unknown or expired")
    );
}

#[tokio::test]
async fn every_transport_loads_the_typed_user() {
    let server = RedisServer::start();
    let app = app(&server).await;
    let user = JavaUser::new(598);
    plant_java_session(&server, TOKEN, &user);
    let expected =
        json!({"success": true, "data": {"id": 598, "nickName": "user_598", "icon": ""}});
    for request in [
        get_with(
            "/me",
            Some(("authorization", HeaderValue::from_static(TOKEN))),
        ),
        get_with(
            "/me",
            Some((
                "Authorization",
                HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
            )),
        ),
        get_with(&format!("/me?tokenid={TOKEN}"), None),
        get_with(
            "/me",
            Some((
                "cookie",
                HeaderValue::from_str(&format!("{COOKIE}={TOKEN}")).unwrap(),
            )),
        ),
    ] {
        assert_eq!(
            call(&app, request).await,
            (StatusCode::OK, expected.clone())
        );
    }
}

#[tokio::test]
async fn login_then_me_with_one_round_trip_and_ttl_reset() {
    let server = RedisServer::start();
    let app = app(&server).await;
    let login = Request::post("/login")
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&JavaUser::new(7)).unwrap()))
        .unwrap();
    let (status, body) = call(&app, login).await;
    assert_eq!(status, StatusCode::OK);
    let token = body["data"].as_str().unwrap().to_owned();
    let key = format!("login:token:{token}");

    // The first call of the touch script on a fresh server loads it (NOSCRIPT, then EVAL).
    assert_eq!(call(&app, bearer(&token)).await.0, StatusCode::OK);
    let _: () = server.query(redis::cmd("PEXPIRE").arg(&key).arg(5000));
    let idle = {
        let before = server.info_stat("total_reads_processed");
        server.info_stat("total_reads_processed") - before
    };
    server.reset_stats();
    let before = server.info_stat("total_reads_processed");
    let (status, body) = call(&app, bearer(&token)).await;
    let reads = server.info_stat("total_reads_processed") - before;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["id"], json!(7));
    assert_eq!(reads - idle, 1, "one round trip per authenticated request");
    assert_eq!(commands_since_reset(&server), one_hash_touch());
    assert!(
        pttl(&server, &key) > 1_000_000,
        "the request reset the idle TTL"
    );
}

#[tokio::test]
async fn optional_session_is_none_without_token() {
    let server = RedisServer::start();
    let app = app(&server).await;
    plant_java_session(&server, TOKEN, &JavaUser::new(3));
    for path in ["/maybe", "/option"] {
        let (status, body) = call(&app, get_with(path, None)).await;
        assert_eq!(
            (status, body["data"].clone()),
            (StatusCode::OK, Value::Null)
        );
        let (status, body) = call(&app, get_with(&format!("{path}?tokenid=*"), None)).await;
        assert_eq!(
            (status, body["data"].clone()),
            (StatusCode::OK, Value::Null)
        );
        let (status, body) = call(&app, get_with(&format!("{path}?tokenid={TOKEN}"), None)).await;
        assert_eq!((status, body["data"].clone()), (StatusCode::OK, json!(3)));
    }
}

#[tokio::test]
async fn logout_and_logout_everywhere() {
    let server = RedisServer::start();
    let app = app(&server).await;
    let mut tokens = Vec::new();
    for id in [1, 1, 1, 2] {
        let login = Request::post("/login")
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&JavaUser::new(id)).unwrap()))
            .unwrap();
        let (_, body) = call(&app, login).await;
        tokens.push(body["data"].as_str().unwrap().to_owned());
    }
    let post = |token: &str, path: &str| {
        Request::post(path)
            .header("authorization", token)
            .body(Body::empty())
            .unwrap()
    };
    let (status, body) = call(&app, post(&tokens[0], "/logout")).await;
    assert_eq!(
        (status, body["data"].clone()),
        (StatusCode::OK, json!(true))
    );
    assert_eq!(
        call(&app, bearer(&tokens[0])).await.0,
        StatusCode::UNAUTHORIZED
    );

    let (status, body) = call(&app, post(&tokens[1], "/logout-all")).await;
    assert_eq!((status, body["data"].clone()), (StatusCode::OK, json!(2)));
    assert_eq!(
        call(&app, bearer(&tokens[1])).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, bearer(&tokens[2])).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, bearer(&tokens[3])).await.0,
        StatusCode::OK,
        "user 2 unaffected"
    );
}

#[tokio::test]
async fn redis_down_is_503_then_recovers_without_rebuild() {
    let mut server = RedisServer::start();
    let app = app(&server).await;
    plant_java_session(&server, TOKEN, &JavaUser::new(5));
    assert_eq!(call(&app, bearer(TOKEN)).await.0, StatusCode::OK);

    server.stop();
    for path in ["/me", "/maybe"] {
        let started = Instant::now();
        let (status, body) = call(&app, get_with(&format!("{path}?tokenid={TOKEN}"), None)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(body["success"], json!(false));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "answered promptly"
        );
    }

    server.restart();
    plant_java_session(&server, TOKEN, &JavaUser::new(5));
    let recovered = eventually(Duration::from_secs(5), async || {
        call(&app, bearer(TOKEN)).await.0 == StatusCode::OK
    })
    .await;
    assert!(recovered, "the same app serves again after Redis restarted");
}

#[tokio::test]
async fn missing_layer_is_a_500_naming_it() {
    let server = RedisServer::start();
    let app = app(&server).await;
    let (status, body) = call(
        &app,
        get_with(&format!("/unprotected-me?tokenid={TOKEN}"), None),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body["errorMsg"].as_str().unwrap().contains("KeygateLayer"));
}

/// Applied twice (on a nested router and around it), the layer still loads once: the outer
/// load serves, as in actix and poem (issue 13: one behaviour for all adapters).
#[tokio::test]
async fn a_layer_applied_twice_loads_once() {
    let server = RedisServer::start();
    let gate = java_gate(&server).await;
    let nested = Router::new()
        .route("/me", get(me))
        .layer(KeygateLayer::new(gate.clone()));
    let app = Router::new()
        .nest("/nested", nested)
        .route("/login", post(login))
        .layer(KeygateLayer::new(gate));
    let login = Request::post("/login")
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&JavaUser::new(9)).unwrap()))
        .unwrap();
    let (_, body) = call(&app, login).await;
    let token = body["data"].as_str().unwrap().to_owned();
    // Warm the touch script up (a fresh server loads it on first use).
    let warm = get_with(
        "/nested/me",
        Some(("authorization", HeaderValue::from_str(&token).unwrap())),
    );
    assert_eq!(call(&app, warm).await.0, StatusCode::OK);

    server.reset_stats();
    let request = get_with(
        "/nested/me",
        Some(("authorization", HeaderValue::from_str(&token).unwrap())),
    );
    let (status, body) = call(&app, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["id"], json!(9));
    assert_eq!(commands_since_reset(&server), one_hash_touch());
}
