//! The `quickstart` example serves what it says, through poem's test client.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../examples/poem_quickstart.rs"]
#[allow(dead_code)]
mod quickstart;

use keygate_poem::MemoryStore;
use poem::http::StatusCode;
use poem::test::{TestClient, TestResponse};
use serde_json::Value;

async fn json(response: TestResponse) -> Value {
    serde_json::from_str(&response.0.into_body().into_string().await.unwrap()).unwrap()
}

#[tokio::test]
async fn quickstart_serves_login_me_hello_logout() {
    let client = TestClient::new(quickstart::app(MemoryStore::new()).unwrap());

    let response = client.get("/hello").send().await;
    response.assert_status_is_ok();
    response.assert_text("hello, stranger").await;
    let response = client.get("/me").send().await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    let reply: Value = json(response).await;
    assert_eq!(reply["success"], false);

    let response = client.post("/login").send().await;
    response.assert_status_is_ok();
    let reply: Value = json(response).await;
    let token = reply["data"].as_str().unwrap().to_owned();

    let response = client
        .get("/me")
        .header("authorization", &token)
        .send()
        .await;
    response.assert_status_is_ok();
    let reply: Value = json(response).await;
    assert_eq!(reply["data"]["id"], 598);
    assert_eq!(reply["data"]["nickName"], "demo");
    let response = client
        .get("/hello")
        .header("authorization", &token)
        .send()
        .await;
    response.assert_text("hello, demo").await;

    let response = client
        .post("/logout")
        .header("authorization", &token)
        .send()
        .await;
    response.assert_status_is_ok();
    response
        .assert_text(r#"{"success":true,"data":true}"#)
        .await;
    let response = client
        .get("/me")
        .header("authorization", &token)
        .send()
        .await;
    response.assert_status(StatusCode::UNAUTHORIZED);
}
