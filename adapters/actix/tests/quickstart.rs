//! The `quickstart` example serves what it says, through actix-web's test service.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../examples/actix_quickstart.rs"]
#[allow(dead_code)]
mod quickstart;

use actix_web::http::StatusCode;
use actix_web::{App, test};
use keygate_actix::MemoryStore;
use serde_json::Value;

#[actix_web::test]
async fn quickstart_serves_login_me_hello_logout() {
    let gate = quickstart::gate(MemoryStore::new()).unwrap();
    let app = test::init_service(App::new().configure(quickstart::routes(gate))).await;

    let request = test::TestRequest::get().uri("/hello").to_request();
    assert_eq!(
        test::call_and_read_body(&app, request).await,
        "hello, stranger"
    );
    let request = test::TestRequest::get().uri("/me").to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let reply: Value = test::read_body_json(response).await;
    assert_eq!(reply["success"], false);

    let request = test::TestRequest::post().uri("/login").to_request();
    let reply: Value = test::call_and_read_body_json(&app, request).await;
    let token = reply["data"].as_str().unwrap().to_owned();

    let request = test::TestRequest::get()
        .uri("/me")
        .insert_header(("authorization", token.as_str()))
        .to_request();
    let reply: Value = test::call_and_read_body_json(&app, request).await;
    assert_eq!(reply["data"]["id"], 598);
    assert_eq!(reply["data"]["nickName"], "demo");
    let request = test::TestRequest::get()
        .uri("/hello")
        .insert_header(("authorization", token.as_str()))
        .to_request();
    assert_eq!(test::call_and_read_body(&app, request).await, "hello, demo");

    let request = test::TestRequest::post()
        .uri("/logout")
        .insert_header(("authorization", token.as_str()))
        .to_request();
    let body = test::call_and_read_body(&app, request).await;
    assert_eq!(body, r#"{"success":true,"data":true}"#);
    let request = test::TestRequest::get()
        .uri("/me")
        .insert_header(("authorization", token.as_str()))
        .to_request();
    assert_eq!(
        test::call_service(&app, request).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
