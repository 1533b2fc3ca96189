//! The adapter conformance suite (`keygate_tests::adapter_suite`) through poem's
//! `Endpoint::get_response`, with requests built as poem's server builds them (with the
//! connection's remote address).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use keygate_poem::keygate::web::RateLimitPolicy;
use keygate_poem::{
    ApiError, Auth, Envelope, Keygate, KeygateMiddleware, MaybeAuth, RateLimitMiddleware, Sessions,
};
use keygate_tests::adapter_suite::{OptionOnOutage, Reply, Runs, TestApp};
use keygate_tests::fixtures::JavaUser;
use poem::endpoint::BoxEndpoint;
use poem::web::{Data, Json, LocalAddr, RemoteAddr};
use poem::{Addr, Body, Endpoint, EndpointExt, Request, Route, get, handler, post};

#[handler]
fn me(user: Auth<JavaUser>) -> Json<Envelope<JavaUser>> {
    Json(Envelope::ok(user.data().clone()))
}

#[handler]
fn maybe(MaybeAuth(user): MaybeAuth<JavaUser>) -> Json<Envelope<Option<u64>>> {
    Json(Envelope::ok(user.map(|u| u.id)))
}

#[handler]
fn option(user: Option<Auth<JavaUser>>) -> Json<Envelope<Option<u64>>> {
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
fn public(Data(runs): Data<&Runs>) -> Json<Envelope<u64>> {
    Json(Envelope::ok(runs.count()))
}

#[handler]
fn limited(Data(runs): Data<&Runs>) -> Json<Envelope<u64>> {
    Json(Envelope::ok(runs.ran()))
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
    app: BoxEndpoint<'static>,
    unprotected: BoxEndpoint<'static>,
}

async fn make_app(gate: Keygate<JavaUser>, limit: RateLimitPolicy) -> PoemApp {
    let nested = Route::new()
        .at("/me", get(me))
        .with(KeygateMiddleware::new(gate.clone()));
    let app = Route::new()
        .at("/me", get(me))
        .at("/maybe", get(maybe))
        .at("/option", get(option))
        .at("/two", get(two))
        .at("/login", post(login))
        .at("/logout", post(logout))
        .at("/logout-all", post(logout_all))
        .at("/public", get(public))
        .at(
            "/limited",
            get(limited).with(RateLimitMiddleware::with_policy(limit)),
        )
        .at("/error/backend", get(backend_error))
        .at("/error/script", get(script_error))
        .at("/error/config", get(config_error))
        .nest("/nested", nested)
        .with(KeygateMiddleware::new(gate))
        .data(Runs::default())
        .boxed();
    let unprotected = Route::new()
        .at("/unprotected/me", get(me))
        .at("/unprotected/maybe", get(maybe))
        .at("/unprotected/login", post(login))
        .boxed();
    PoemApp { app, unprotected }
}

#[async_trait::async_trait(?Send)]
impl TestApp for PoemApp {
    fn component(&self) -> &'static str {
        "KeygateMiddleware"
    }

    fn option_auth_on_outage(&self) -> OptionOnOutage {
        // poem's `Option<T>` turns any error of `T`'s extractor into `None`.
        OptionOnOutage::Anonymous
    }

    fn missing_peer_hint(&self) -> &'static str {
        "RemoteAddr"
    }

    async fn send_from(
        &self,
        peer: Option<IpAddr>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        let endpoint = if path.starts_with("/unprotected/") {
            &self.unprotected
        } else {
            &self.app
        };
        let mut request = poem::http::Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap();
        for (name, value) in headers {
            request.headers_mut().append(
                poem::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        let body = match body {
            Some(body) => {
                request
                    .headers_mut()
                    .insert("content-type", "application/json".parse().unwrap());
                Body::from(body.to_owned())
            }
            None => Body::empty(),
        };
        let remote = match peer {
            Some(peer) => Addr::SocketAddr(SocketAddr::new(peer, 40000)),
            None => Addr::Custom("test", "".into()),
        };
        let (parts, ()) = request.into_parts();
        let parts = poem::RequestParts::from((
            parts,
            LocalAddr(Addr::Custom("test", "".into())),
            RemoteAddr(remote),
            poem::http::uri::Scheme::HTTP,
        ));
        let response = endpoint
            .get_response(Request::from_parts(parts, body))
            .await;
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
