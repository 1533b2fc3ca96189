//! The rocket rate-limit guard and catcher through rocket's local client, on a private
//! Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};

use keygate::rate_limit::{FailureMode, Quota, RateLimiter};
use keygate::{RedisOptions, RedisStore};
use keygate_rocket::{RateLimitFairing, RateLimited};
use keygate_tests::RedisServer;
use rocket::http::{Header, Status};
use rocket::local::asynchronous::Client;
use rocket::{State, post, routes};

const PROXY: &str = "10.0.0.1";

struct Runs(AtomicU64);

#[post("/user/code")]
fn send_code(_limit: RateLimited, runs: &State<Runs>) -> &'static str {
    runs.0.fetch_add(1, Ordering::SeqCst);
    "sent"
}

async fn client(server: &RedisServer) -> Client {
    client_failing(server, FailureMode::Closed).await
}

async fn client_failing(server: &RedisServer, failure: FailureMode) -> Client {
    let store = RedisStore::connect_with(RedisOptions::new(server.url()))
        .await
        .unwrap();
    let limiter = RateLimiter::new(store, "rocket", Quota::per_minute(2))
        .unwrap()
        .with_failure_mode(failure);
    let rocket = rocket::build()
        .attach(RateLimitFairing::new(limiter).with_trusted_proxies([PROXY.parse().unwrap()]))
        .manage(Runs(AtomicU64::new(0)))
        .mount("/", routes![send_code]);
    Client::untracked(rocket).await.unwrap()
}

async fn post(client: &Client, peer: &str, forwarded_for: Option<&str>) -> Status {
    let mut request = client
        .post("/user/code")
        .remote(format!("{peer}:40000").parse().unwrap());
    if let Some(xff) = forwarded_for {
        request = request.header(Header::new("X-Forwarded-For", xff.to_owned()));
    }
    request.dispatch().await.status()
}

fn runs(client: &Client) -> u64 {
    client
        .rocket()
        .state::<Runs>()
        .unwrap()
        .0
        .load(Ordering::SeqCst)
}

#[rocket::async_test]
async fn over_the_limit_is_429_with_headers_and_the_handler_does_not_run() {
    let server = RedisServer::start();
    let client = client(&server).await;
    for _ in 0..2 {
        assert_eq!(post(&client, "192.0.2.10", None).await, Status::Ok);
    }
    let refused = client
        .post("/user/code")
        .remote("192.0.2.10:40000".parse().unwrap())
        .dispatch()
        .await;
    assert_eq!(refused.status(), Status::TooManyRequests);
    let header = |name: &str| refused.headers().get_one(name).unwrap().to_owned();
    assert_eq!(header("Retry-After"), "30");
    assert_eq!(header("RateLimit-Limit"), "2");
    assert_eq!(header("RateLimit-Remaining"), "0");
    assert_eq!(header("RateLimit-Reset"), "60");
    assert_eq!(header("Content-Type"), "application/json");
    assert_eq!(
        refused.into_string().await.unwrap(),
        r#"{"success":false,"errorMsg":"too many requests"}"#
    );
    assert_eq!(runs(&client), 2);
}

#[rocket::async_test]
async fn forwarded_for_is_honoured_only_from_a_trusted_proxy() {
    let server = RedisServer::start();
    let client = client(&server).await;
    for who in ["198.51.100.1", "198.51.100.2"] {
        let xff = format!("6.6.6.6, {who}");
        for i in 0..3 {
            let expected = if i < 2 {
                Status::Ok
            } else {
                Status::TooManyRequests
            };
            assert_eq!(post(&client, PROXY, Some(&xff)).await, expected);
        }
    }
    for (i, fake) in ["198.51.100.10", "198.51.100.11", "198.51.100.12"]
        .iter()
        .enumerate()
    {
        let expected = if i < 2 {
            Status::Ok
        } else {
            Status::TooManyRequests
        };
        assert_eq!(
            post(&client, "203.0.113.5", Some(fake)).await,
            expected,
            "{i}"
        );
    }
    assert_eq!(runs(&client), 6);
}

#[rocket::async_test]
async fn redis_down_fails_closed_with_503_or_open() {
    let mut server = RedisServer::start();
    let closed = client(&server).await;
    let open = client_failing(&server, FailureMode::Open).await;
    server.stop();
    assert_eq!(
        post(&closed, "192.0.2.1", None).await,
        Status::ServiceUnavailable
    );
    assert_eq!(runs(&closed), 0);
    assert_eq!(post(&open, "192.0.2.1", None).await, Status::Ok);
    assert_eq!(runs(&open), 1);
}
