//! The poem rate-limit middleware through poem's test client, on a private Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use keygate::rate_limit::{Quota, RateLimiter};
use keygate::{RedisOptions, RedisStore};
use keygate_poem::RateLimitMiddleware;
use keygate_tests::RedisServer;
use poem::http::StatusCode;
use poem::test::TestClient;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, EndpointExt, Request, Route, post};

const PROXY: &str = "10.0.0.1";

async fn limiter(server: &RedisServer) -> RateLimiter {
    let store = RedisStore::connect_with(RedisOptions::new(server.url()))
        .await
        .unwrap();
    RateLimiter::new(store, "poem", Quota::per_minute(2)).unwrap()
}

/// The request as a server would have built it for a connection from `x-test-peer`.
fn with_peer(req: Request) -> Request {
    let peer: SocketAddr = format!("{}:40000", req.headers()["x-test-peer"].to_str().unwrap())
        .parse()
        .unwrap();
    let (parts, body) = req.into_parts();
    let mut http = poem::http::Request::builder()
        .method(parts.method)
        .uri(parts.uri)
        .body(())
        .unwrap();
    *http.headers_mut() = parts.headers;
    let (http, ()) = http.into_parts();
    let parts = poem::RequestParts::from((
        http,
        LocalAddr(Addr::Custom("test", "".into())),
        RemoteAddr(Addr::SocketAddr(peer)),
        poem::http::uri::Scheme::HTTP,
    ));
    Request::from_parts(parts, body)
}

fn app(limiter: RateLimiter, runs: Arc<AtomicU64>) -> impl Endpoint {
    let handler = poem::endpoint::make(move |_| {
        let runs = runs.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            "sent"
        }
    });
    Route::new()
        .at(
            "/user/code",
            post(handler).with(
                RateLimitMiddleware::new(limiter).with_trusted_proxies([PROXY.parse().unwrap()]),
            ),
        )
        .before(|req| async move { Ok(with_peer(req)) })
}

#[tokio::test]
async fn over_the_limit_is_429_with_headers_and_the_handler_does_not_run() {
    let server = RedisServer::start();
    let runs = Arc::new(AtomicU64::new(0));
    let client = TestClient::new(app(limiter(&server).await, runs.clone()));
    for _ in 0..2 {
        let response = client
            .post("/user/code")
            .header("x-test-peer", "192.0.2.10")
            .send()
            .await;
        response.assert_status_is_ok();
    }
    let refused = client
        .post("/user/code")
        .header("x-test-peer", "192.0.2.10")
        .send()
        .await;
    refused.assert_status(StatusCode::TOO_MANY_REQUESTS);
    refused.assert_header("retry-after", "30");
    refused.assert_header("ratelimit-limit", "2");
    refused.assert_header("ratelimit-remaining", "0");
    refused.assert_header("ratelimit-reset", "60");
    refused.assert_content_type("application/json");
    refused
        .assert_text(r#"{"success":false,"errorMsg":"too many requests"}"#)
        .await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn forwarded_for_is_honoured_only_from_a_trusted_proxy() {
    let server = RedisServer::start();
    let runs = Arc::new(AtomicU64::new(0));
    let client = TestClient::new(app(limiter(&server).await, runs.clone()));
    for who in ["198.51.100.1", "198.51.100.2"] {
        let xff = format!("6.6.6.6, {who}");
        for i in 0..3 {
            let response = client
                .post("/user/code")
                .header("x-test-peer", PROXY)
                .header("x-forwarded-for", xff.as_str())
                .send()
                .await;
            let expected = if i < 2 {
                StatusCode::OK
            } else {
                StatusCode::TOO_MANY_REQUESTS
            };
            response.assert_status(expected);
        }
    }
    for (i, fake) in ["198.51.100.10", "198.51.100.11", "198.51.100.12"]
        .iter()
        .enumerate()
    {
        let response = client
            .post("/user/code")
            .header("x-test-peer", "203.0.113.5")
            .header("x-forwarded-for", *fake)
            .send()
            .await;
        let expected = if i < 2 {
            StatusCode::OK
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        response.assert_status(expected);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn redis_down_fails_closed_with_503_or_open() {
    let mut server = RedisServer::start();
    let runs = Arc::new(AtomicU64::new(0));
    let closed = limiter(&server).await;
    let open = closed
        .clone()
        .with_failure_mode(keygate::rate_limit::FailureMode::Open);
    let closed = TestClient::new(app(closed, runs.clone()));
    let open = TestClient::new(app(open, runs.clone()));
    server.stop();
    let refused = closed
        .post("/user/code")
        .header("x-test-peer", "192.0.2.1")
        .send()
        .await;
    refused.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    refused.assert_content_type("application/json");
    open.post("/user/code")
        .header("x-test-peer", "192.0.2.1")
        .send()
        .await
        .assert_status_is_ok();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
