//! What only axum has, beside the conformance suite (`tests/conformance.rs`): where the
//! rate-limit layer finds a request's peer address.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::routing::get;
use http::Request;
use keygate_axum::MemoryStore;
use keygate_axum::RateLimitLayer;
use keygate_axum::keygate::rate_limit::{Quota, RateLimiter};
use keygate_axum::keygate::web::RateLimitPolicy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

type Seen = Arc<Mutex<Vec<Option<IpAddr>>>>;

/// An app whose rate limit records the peer address its key function is given (and
/// exempts the request).
fn app(seen: &Seen) -> Router {
    let seen = Arc::clone(seen);
    let limiter = RateLimiter::new(MemoryStore::new(), "axum", Quota::per_minute(1)).unwrap();
    let policy = RateLimitPolicy::new(limiter).with_key(move |input| {
        seen.lock().unwrap().push(input.peer);
        None
    });
    Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(RateLimitLayer::with_policy(policy))
}

/// Served with `into_make_service_with_connect_info::<SocketAddr>()`, as the layer's docs
/// say, the layer sees the connection's peer.
#[tokio::test]
async fn served_with_connect_info_the_layer_sees_the_connections_peer() {
    let seen = Seen::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = app(&seen).into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, service).await });
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    server.abort();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(*seen.lock().unwrap(), [Some(IpAddr::from([127, 0, 0, 1]))]);
}

/// In tests, axum's `MockConnectInfo` stands in for the connection (as for axum's own
/// `ConnectInfo` extractor); without either, the peer is unknown.
#[tokio::test]
async fn mock_connect_info_stands_in_for_the_peer() {
    let seen = Seen::default();
    let mocked = app(&seen).layer(MockConnectInfo(SocketAddr::from(([192, 0, 2, 7], 40000))));
    for app in [mocked, app(&seen)] {
        let response = app
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(
        *seen.lock().unwrap(),
        [Some(IpAddr::from([192, 0, 2, 7])), None]
    );
}
