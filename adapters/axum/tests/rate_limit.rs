//! The axum rate-limit layer through tower's `oneshot`, on a private Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::routing::post;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use keygate::rate_limit::{FailureMode, Quota, RateLimiter};
use keygate::{RedisOptions, RedisStore};
use keygate_axum::RateLimitLayer;
use keygate_tests::RedisServer;
use tower::ServiceExt;

const PROXY: &str = "10.0.0.1";

async fn limiter(server: &RedisServer, failure: FailureMode) -> RateLimiter {
    let store = RedisStore::connect_with(
        RedisOptions::new(server.url()).with_command_timeout(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    RateLimiter::new(store, "axum", Quota::per_minute(2))
        .unwrap()
        .with_failure_mode(failure)
}

/// An app whose handler counts its runs, seen from `peer`.
fn app(limiter: RateLimiter, runs: Arc<AtomicU64>, peer: &str) -> Router {
    let peer: SocketAddr = format!("{peer}:40000").parse().unwrap();
    Router::new()
        .route(
            "/user/code",
            post(move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                "sent"
            }),
        )
        .layer(RateLimitLayer::new(limiter).with_trusted_proxies([PROXY.parse().unwrap()]))
        .layer(MockConnectInfo(peer))
}

async fn post_code(app: &Router, forwarded_for: Option<&str>) -> http::Response<Body> {
    let mut request = Request::post("/user/code");
    if let Some(xff) = forwarded_for {
        request = request.header("x-forwarded-for", xff);
    }
    app.clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn over_the_limit_is_429_with_headers_and_the_handler_does_not_run() {
    let server = RedisServer::start();
    let runs = Arc::new(AtomicU64::new(0));
    let app = app(
        limiter(&server, FailureMode::Closed).await,
        runs.clone(),
        "192.0.2.10",
    );
    for _ in 0..2 {
        assert_eq!(post_code(&app, None).await.status(), StatusCode::OK);
    }
    let refused = post_code(&app, None).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let header = |name: &str| refused.headers()[name].to_str().unwrap().to_owned();
    // 2 per minute: the next request fits 30 s after the first.
    assert_eq!(header("retry-after"), "30");
    assert_eq!(header("ratelimit-limit"), "2");
    assert_eq!(header("ratelimit-remaining"), "0");
    assert_eq!(header("ratelimit-reset"), "60");
    assert_eq!(header("content-type"), "application/json");
    let body = refused.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        &body[..],
        br#"{"success":false,"errorMsg":"too many requests"}"#
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    // Keyed by the peer address.
    let keys: Vec<String> = server.query(redis::cmd("KEYS").arg("keygate:rate:*"));
    assert_eq!(keys, vec!["keygate:rate:{axum:ip:192.0.2.10}".to_owned()]);
}

#[tokio::test]
async fn forwarded_for_is_honoured_only_from_a_trusted_proxy() {
    let server = RedisServer::start();
    let runs = Arc::new(AtomicU64::new(0));
    let limiter = limiter(&server, FailureMode::Closed).await;
    // Through the proxy, two clients have budgets of their own.
    let via_proxy = app(limiter.clone(), runs.clone(), PROXY);
    for client in ["198.51.100.1", "198.51.100.2"] {
        for _ in 0..2 {
            let xff = format!("6.6.6.6, {client}");
            assert_eq!(
                post_code(&via_proxy, Some(&xff)).await.status(),
                StatusCode::OK
            );
        }
        let xff = format!("6.6.6.6, {client}");
        assert_eq!(
            post_code(&via_proxy, Some(&xff)).await.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    // A direct client cannot pick its subject by sending the header.
    let direct = app(limiter, runs.clone(), "203.0.113.5");
    for (i, fake) in ["198.51.100.10", "198.51.100.11", "198.51.100.12"]
        .iter()
        .enumerate()
    {
        let status = post_code(&direct, Some(fake)).await.status();
        let expected = if i < 2 {
            StatusCode::OK
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(status, expected, "request {i}");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn redis_down_fails_open_or_closed_through_the_layer() {
    let mut server = RedisServer::start();
    let runs = Arc::new(AtomicU64::new(0));
    let open = app(
        limiter(&server, FailureMode::Open).await,
        runs.clone(),
        "192.0.2.1",
    );
    let closed = app(
        limiter(&server, FailureMode::Closed).await,
        runs.clone(),
        "192.0.2.2",
    );
    server.stop();
    assert_eq!(post_code(&open, None).await.status(), StatusCode::OK);
    let refused = post_code(&closed, None).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = refused.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
