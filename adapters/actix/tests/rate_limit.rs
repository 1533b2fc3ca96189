//! The actix rate-limit middleware through actix's test service, on a private Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::{App, web};
use keygate::rate_limit::{Quota, RateLimiter};
use keygate::{RedisOptions, RedisStore};
use keygate_actix::RateLimitMiddleware;
use keygate_tests::RedisServer;

const PROXY: &str = "10.0.0.1";

async fn limiter(server: &RedisServer) -> RateLimiter {
    let store = RedisStore::connect_with(RedisOptions::new(server.url()))
        .await
        .unwrap();
    RateLimiter::new(store, "actix", Quota::per_minute(2)).unwrap()
}

macro_rules! app {
    ($limiter:expr, $runs:expr) => {{
        let runs = $runs.clone();
        test::init_service(
            App::new()
                .wrap(
                    RateLimitMiddleware::new($limiter.clone())
                        .with_trusted_proxies([PROXY.parse().unwrap()]),
                )
                .route(
                    "/user/code",
                    web::post().to(move || {
                        let runs = runs.clone();
                        async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            "sent"
                        }
                    }),
                ),
        )
        .await
    }};
}

fn post(peer: &str, forwarded_for: Option<&str>) -> TestRequest {
    let mut request = TestRequest::post()
        .uri("/user/code")
        .peer_addr(format!("{peer}:40000").parse().unwrap());
    if let Some(xff) = forwarded_for {
        request = request.insert_header(("x-forwarded-for", xff));
    }
    request
}

#[actix_web::test]
async fn over_the_limit_is_429_with_headers_and_the_handler_does_not_run() {
    let server = RedisServer::start();
    let runs = Arc::new(AtomicU64::new(0));
    let limiter = limiter(&server).await;
    let app = app!(limiter, runs);
    for _ in 0..2 {
        let response = test::call_service(&app, post("192.0.2.10", None).to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let refused = test::call_service(&app, post("192.0.2.10", None).to_request()).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let header = |name: &str| {
        refused
            .headers()
            .get(name)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(header("retry-after"), "30");
    assert_eq!(header("ratelimit-limit"), "2");
    assert_eq!(header("ratelimit-remaining"), "0");
    assert_eq!(header("ratelimit-reset"), "60");
    assert_eq!(header("content-type"), "application/json");
    let body = test::read_body(refused).await;
    assert_eq!(
        &body[..],
        br#"{"success":false,"errorMsg":"too many requests"}"#
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[actix_web::test]
async fn forwarded_for_is_honoured_only_from_a_trusted_proxy() {
    let server = RedisServer::start();
    let runs = Arc::new(AtomicU64::new(0));
    let limiter = limiter(&server).await;
    let app = app!(limiter, runs);
    for client in ["198.51.100.1", "198.51.100.2"] {
        let xff = format!("6.6.6.6, {client}");
        for _ in 0..2 {
            let response = test::call_service(&app, post(PROXY, Some(&xff)).to_request()).await;
            assert_eq!(response.status(), StatusCode::OK);
        }
        let response = test::call_service(&app, post(PROXY, Some(&xff)).to_request()).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    for (i, fake) in ["198.51.100.10", "198.51.100.11", "198.51.100.12"]
        .iter()
        .enumerate()
    {
        let response = test::call_service(&app, post("203.0.113.5", Some(fake)).to_request()).await;
        let expected = if i < 2 {
            StatusCode::OK
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(response.status(), expected, "request {i}");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 6);
}

#[actix_web::test]
async fn redis_down_fails_closed_with_503_or_open() {
    let mut server = RedisServer::start();
    let runs = Arc::new(AtomicU64::new(0));
    let closed = limiter(&server).await;
    let open = closed
        .clone()
        .with_failure_mode(keygate::rate_limit::FailureMode::Open);
    let closed_app = app!(closed, runs);
    let open_app = app!(open, runs);
    server.stop();
    let refused = test::call_service(&closed_app, post("192.0.2.1", None).to_request()).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = serde_json::from_slice(&test::read_body(refused).await).unwrap();
    assert_eq!(body["success"], false);
    let allowed = test::call_service(&open_app, post("192.0.2.1", None).to_request()).await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
