//! The adapter conformance suite (`keygate_tests::adapter_suite`) through tower's `oneshot`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::Request;
use http_body_util::BodyExt;
use keygate::Keygate;
use keygate::web::Envelope;
use keygate::web::RateLimitPolicy;
use keygate_axum::{ApiError, Auth, KeygateLayer, MaybeAuth, RateLimitLayer, Sessions};
use keygate_tests::adapter_suite::{OptionOnOutage, Reply, Runs, TestApp};
use keygate_tests::fixtures::JavaUser;
use tower::ServiceExt;

async fn me(user: Auth<JavaUser>) -> Json<Envelope<JavaUser>> {
    Json(Envelope::ok(user.data().clone()))
}

async fn maybe(user: MaybeAuth<JavaUser>) -> Json<Envelope<Option<u64>>> {
    Json(Envelope::ok(user.0.map(|u| u.id)))
}

async fn option(user: Option<Auth<JavaUser>>) -> Json<Envelope<Option<u64>>> {
    Json(Envelope::ok(user.map(|u| u.id)))
}

async fn two(user: Auth<JavaUser>, again: MaybeAuth<JavaUser>) -> Json<Envelope<u64>> {
    assert_eq!(again.0.map(|u| u.id), Some(user.id));
    Json(Envelope::ok(user.id))
}

async fn login(
    sessions: Sessions<JavaUser>,
    Json(user): Json<JavaUser>,
) -> Result<Json<Envelope<String>>, ApiError> {
    let token = sessions.login(&user).await?;
    Ok(Json(Envelope::ok(token.expose().to_owned())))
}

async fn logout(user: Auth<JavaUser>) -> Result<Json<Envelope<bool>>, ApiError> {
    Ok(Json(Envelope::ok(user.logout().await?)))
}

async fn logout_all(user: Auth<JavaUser>) -> Result<Json<Envelope<u64>>, ApiError> {
    Ok(Json(Envelope::ok(user.logout_everywhere().await?)))
}

async fn public(State(runs): State<Runs>) -> Json<Envelope<u64>> {
    Json(Envelope::ok(runs.count()))
}

async fn limited(State(runs): State<Runs>) -> Json<Envelope<u64>> {
    Json(Envelope::ok(runs.ran()))
}

async fn backend_error() -> Result<(), ApiError> {
    Err(keygate::Error::Backend(keygate::BackendError::Timeout(Duration::from_secs(1))).into())
}

async fn script_error() -> Result<(), ApiError> {
    Err(keygate::Error::Script("the script failed".into()).into())
}

async fn config_error() -> Result<(), ApiError> {
    Err(keygate::Error::Config("a bad configuration".into()).into())
}

struct AxumApp(Router);

async fn make_app(gate: Keygate<JavaUser>, limit: RateLimitPolicy) -> AxumApp {
    let nested = Router::new()
        .route("/me", get(me))
        .layer(KeygateLayer::new(gate.clone()));
    let router = Router::new()
        .route("/me", get(me))
        .route("/maybe", get(maybe))
        .route("/option", get(option))
        .route("/two", get(two))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/logout-all", post(logout_all))
        .route("/public", get(public))
        .route(
            "/limited",
            get(limited).layer(RateLimitLayer::with_policy(limit)),
        )
        .nest("/nested", nested)
        .route("/error/backend", get(backend_error))
        .route("/error/script", get(script_error))
        .route("/error/config", get(config_error))
        .layer(KeygateLayer::new(gate))
        .route("/unprotected/me", get(me))
        .route("/unprotected/maybe", get(maybe))
        .route("/unprotected/login", post(login))
        .with_state(Runs::default());
    AxumApp(router)
}

#[async_trait::async_trait(?Send)]
impl TestApp for AxumApp {
    fn component(&self) -> &'static str {
        "KeygateLayer"
    }

    fn option_auth_on_outage(&self) -> OptionOnOutage {
        // axum 0.8 asks the extractor (`OptionalFromRequestParts`), which keeps the 503.
        OptionOnOutage::Unavailable
    }

    fn missing_peer_hint(&self) -> &'static str {
        "into_make_service_with_connect_info::<SocketAddr>()"
    }

    async fn send_from(
        &self,
        peer: Option<IpAddr>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_owned())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        if let Some(peer) = peer {
            // What `into_make_service_with_connect_info::<SocketAddr>()` puts there.
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(peer, 40000)));
        }
        let response = self.0.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let headers: Vec<_> = response
            .headers()
            .iter()
            .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
            .collect();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Reply::new(status, headers, &bytes)
    }
}

keygate_tests::adapter_conformance!(
    #[tokio::test]
    make_app
);
