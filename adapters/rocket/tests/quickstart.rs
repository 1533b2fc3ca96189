//! The `quickstart` example serves what it says, through Rocket's local client.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../examples/rocket_quickstart.rs"]
#[allow(dead_code)]
mod quickstart;

use keygate_rocket::MemoryStore;
use rocket::http::{Header, Status};
use rocket::local::asynchronous::Client;
use serde_json::Value;

#[rocket::async_test]
async fn quickstart_serves_login_me_hello_logout() {
    let client = Client::untracked(quickstart::app(MemoryStore::new()).unwrap())
        .await
        .unwrap();
    let get = |uri: &'static str, token: Option<&str>| {
        let request = client.get(uri);
        match token {
            Some(token) => request.header(Header::new("authorization", token.to_owned())),
            None => request,
        }
    };

    let response = get("/hello", None).dispatch().await;
    assert_eq!(
        response.into_string().await.as_deref(),
        Some("hello, stranger")
    );
    let response = get("/me", None).dispatch().await;
    assert_eq!(response.status(), Status::Unauthorized);
    let reply: Value = response.into_json().await.unwrap();
    assert_eq!(reply["success"], false);

    let reply: Value = client
        .post("/login")
        .dispatch()
        .await
        .into_json()
        .await
        .unwrap();
    let token = reply["data"].as_str().unwrap().to_owned();

    let reply: Value = get("/me", Some(&token))
        .dispatch()
        .await
        .into_json()
        .await
        .unwrap();
    assert_eq!(reply["data"]["id"], 598);
    assert_eq!(reply["data"]["nickName"], "demo");
    let response = get("/hello", Some(&token)).dispatch().await;
    assert_eq!(response.into_string().await.as_deref(), Some("hello, demo"));

    let logout = client
        .post("/logout")
        .header(Header::new("authorization", token.clone()));
    let response = logout.dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    let body = response.into_string().await;
    assert_eq!(body.as_deref(), Some(r#"{"success":true,"data":true}"#));
    let response = get("/me", Some(&token)).dispatch().await;
    assert_eq!(response.status(), Status::Unauthorized);
}
