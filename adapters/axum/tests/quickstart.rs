//! The `quickstart` example serves what it says, through tower's `oneshot`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../examples/axum_quickstart.rs"]
#[allow(dead_code)]
mod quickstart;

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use keygate_axum::MemoryStore;
use serde_json::Value;
use tower::ServiceExt;

async fn call(app: &Router, method: &str, uri: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", token);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn quickstart_serves_login_me_hello_logout() {
    let app = quickstart::app(MemoryStore::new()).unwrap();

    assert_eq!(
        call(&app, "GET", "/hello", None).await,
        (StatusCode::OK, "hello, stranger".to_owned())
    );
    let (status, body) = call(&app, "GET", "/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["success"],
        false
    );

    let (status, body) = call(&app, "POST", "/login", None).await;
    assert_eq!(status, StatusCode::OK);
    let reply: Value = serde_json::from_str(&body).unwrap();
    let token = reply["data"].as_str().unwrap().to_owned();

    let (status, body) = call(&app, "GET", "/me", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["data"]["id"], 598);
    assert_eq!(reply["data"]["nickName"], "demo");
    assert_eq!(
        call(&app, "GET", "/hello", Some(&token)).await,
        (StatusCode::OK, "hello, demo".to_owned())
    );

    let (status, body) = call(&app, "POST", "/logout", Some(&token)).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"success":true,"data":true}"#)
    );
    assert_eq!(
        call(&app, "GET", "/me", Some(&token)).await.0,
        StatusCode::UNAUTHORIZED
    );
}
