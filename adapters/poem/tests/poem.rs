//! What only poem has, beside the conformance suite (`tests/conformance.rs`): extractors
//! fail with a `poem::Error`, which an application's own error handler recognises as
//! keygate's `Rejection`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keygate_poem::{
    Auth, Keygate, KeygateMiddleware, MemoryStore, Rejection, SessionConfig, SessionManager,
};
use keygate_tests::fixtures::JavaUser;
use poem::http::StatusCode;
use poem::test::TestClient;
use poem::{EndpointExt, IntoResponse, Response, Route, get, handler};

#[handler]
fn me(user: Auth<JavaUser>) -> String {
    user.id.to_string()
}

/// Re-shapes keygate's 401s, leaves every other error as it is.
async fn answer_error(error: poem::Error) -> Response {
    match error.downcast_ref::<Rejection>() {
        Some(rejection) if rejection.status() == 401 => {
            let text = format!("please log in ({})", rejection.inner().message());
            (StatusCode::UNAUTHORIZED, text).into_response()
        }
        _ => error.into_response(),
    }
}

#[tokio::test]
async fn an_applications_error_handler_recognises_the_rejection() {
    let gate: Keygate<JavaUser> =
        Keygate::new(SessionManager::new(MemoryStore::new(), SessionConfig::java_seed()).unwrap());
    let app = Route::new()
        .at("/me", get(me))
        .with(KeygateMiddleware::new(gate))
        .catch_all_error(answer_error);
    let unprotected = Route::new()
        .at("/me", get(me))
        .catch_all_error(answer_error);
    let client = TestClient::new(app);

    let response = client.get("/me").header("authorization", "*").send().await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    response
        .assert_text("please log in (not logged in: malformed token)")
        .await;

    // Not a 401: the handler keeps keygate's envelope.
    let response = TestClient::new(unprotected).get("/me").send().await;
    response.assert_status(StatusCode::INTERNAL_SERVER_ERROR);
    response.assert_content_type("application/json");
    let body = response.0.into_body().into_string().await.unwrap();
    assert!(
        body.contains("keygate-poem: KeygateMiddleware is not installed"),
        "{body}"
    );
}
