//! What only actix-web has, beside the conformance suite (`tests/conformance.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::{App, web};
use keygate_actix::keygate::web::Envelope;
use keygate_actix::{ApiError, Keygate, MemoryStore, SessionConfig, SessionManager, Sessions};
use keygate_tests::fixtures::JavaUser;
use serde_json::Value;

async fn login(
    sessions: Sessions<JavaUser>,
    user: web::Json<JavaUser>,
) -> Result<web::Json<Envelope<String>>, ApiError> {
    let token = sessions.login(&user).await?;
    Ok(web::Json(Envelope::ok(token.expose().to_owned())))
}

/// As in every adapter, `Sessions` is the gate of the loading component on the route: a
/// gate registered as actix app data does not stand in for `KeygateMiddleware`.
#[actix_web::test]
async fn a_gate_in_app_data_does_not_stand_in_for_the_middleware() {
    let manager = SessionManager::new(MemoryStore::new(), SessionConfig::java_seed()).unwrap();
    let gate: Keygate<JavaUser> = Keygate::new(manager);
    let app = test::init_service(
        App::new()
            .app_data(gate.clone())
            .app_data(web::Data::new(gate))
            .route("/login", web::post().to(login)),
    )
    .await;
    let request = TestRequest::post()
        .uri("/login")
        .set_json(JavaUser::new(1))
        .to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = test::read_body_json(response).await;
    let message = body["errorMsg"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("keygate-actix: KeygateMiddleware is not installed"),
        "{body}"
    );
}
