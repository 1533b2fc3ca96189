//! The adapter conformance suite (`keygate_tests::adapter_suite`) through poem's
//! `TestClient`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use keygate_poem::{ApiError, Auth, Envelope, Keygate, KeygateMiddleware, MaybeAuth, Sessions};
use keygate_tests::adapter_suite::{Reply, TestApp};
use keygate_tests::fixtures::JavaUser;
use poem::endpoint::BoxEndpoint;
use poem::test::TestClient;
use poem::web::Json;
use poem::{EndpointExt, Route, get, handler, post};

#[handler]
fn me(user: Auth<JavaUser>) -> Json<Envelope<JavaUser>> {
    Json(Envelope::ok(user.data().clone()))
}

#[handler]
fn maybe(MaybeAuth(user): MaybeAuth<JavaUser>) -> Json<Envelope<Option<u64>>> {
    Json(Envelope::ok(user.map(|u| u.id)))
}

#[handler]
fn two(user: Auth<JavaUser>, again: MaybeAuth<JavaUser>) -> Json<Envelope<u64>> {
    assert_eq!(again.0.map(|u| u.id), Some(user.id));
    Json(Envelope::ok(user.id))
}

#[handler]
async fn login(
    sessions: Sessions<JavaUser>,
    Json(user): Json<JavaUser>,
) -> Result<Json<Envelope<String>>, ApiError> {
    let token = sessions.login(&user).await?;
    Ok(Json(Envelope::ok(token.expose().to_owned())))
}

#[handler]
async fn logout(user: Auth<JavaUser>) -> Result<Json<Envelope<bool>>, ApiError> {
    Ok(Json(Envelope::ok(user.logout().await?)))
}

#[handler]
async fn logout_all(user: Auth<JavaUser>) -> Result<Json<Envelope<u64>>, ApiError> {
    Ok(Json(Envelope::ok(user.logout_everywhere().await?)))
}

#[handler]
fn backend_error() -> Result<(), ApiError> {
    Err(keygate::Error::Backend(keygate::BackendError::Timeout(Duration::from_secs(1))).into())
}

#[handler]
fn script_error() -> Result<(), ApiError> {
    Err(keygate::Error::Script("the script failed".into()).into())
}

#[handler]
fn config_error() -> Result<(), ApiError> {
    Err(keygate::Error::Config("a bad configuration".into()).into())
}

/// The app (middleware around it and again around `/nested`), and beside it an app
/// without the middleware for `/unprotected/...`.
struct PoemApp {
    app: TestClient<BoxEndpoint<'static>>,
    unprotected: TestClient<BoxEndpoint<'static>>,
}

async fn make_app(gate: Keygate<JavaUser>) -> PoemApp {
    let nested = Route::new()
        .at("/me", get(me))
        .with(KeygateMiddleware::new(gate.clone()));
    let app = Route::new()
        .at("/me", get(me))
        .at("/maybe", get(maybe))
        .at("/two", get(two))
        .at("/login", post(login))
        .at("/logout", post(logout))
        .at("/logout-all", post(logout_all))
        .at("/error/backend", get(backend_error))
        .at("/error/script", get(script_error))
        .at("/error/config", get(config_error))
        .nest("/nested", nested)
        .with(KeygateMiddleware::new(gate))
        .boxed();
    let unprotected = Route::new().at("/unprotected/me", get(me)).boxed();
    PoemApp {
        app: TestClient::new(app),
        unprotected: TestClient::new(unprotected),
    }
}

#[async_trait::async_trait(?Send)]
impl TestApp for PoemApp {
    fn component(&self) -> &'static str {
        "KeygateMiddleware"
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        let client = if path.starts_with("/unprotected/") {
            &self.unprotected
        } else {
            &self.app
        };
        let mut request = client.request(method.parse().unwrap(), path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .content_type("application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.0;
        let status = response.status().as_u16();
        let headers: Vec<_> = response
            .headers()
            .iter()
            .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
            .collect();
        let bytes = response.into_body().into_vec().await.unwrap();
        Reply::new(status, headers, &bytes)
    }
}

keygate_tests::adapter_conformance!(
    #[tokio::test]
    make_app
);
