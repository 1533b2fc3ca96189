//! The adapter conformance suite (`keygate_tests::adapter_suite`) through actix-web's
//! `test::init_service`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use actix_web::test::{self, TestRequest};
use actix_web::{App, HttpResponse, web};
use futures_util::future::LocalBoxFuture;
use keygate_actix::Keygate;
use keygate_actix::keygate::web::Envelope;
use keygate_actix::keygate::web::RateLimitPolicy;
use keygate_actix::{ApiError, Auth, KeygateMiddleware, MaybeAuth, RateLimitMiddleware, Sessions};
use keygate_tests::adapter_suite::{OptionOnOutage, Reply, Runs, TestApp};
use keygate_tests::fixtures::JavaUser;

async fn me(user: Auth<JavaUser>) -> web::Json<Envelope<JavaUser>> {
    web::Json(Envelope::ok(user.data().clone()))
}

async fn maybe(MaybeAuth(user): MaybeAuth<JavaUser>) -> web::Json<Envelope<Option<u64>>> {
    web::Json(Envelope::ok(user.map(|u| u.id)))
}

async fn option(user: Option<Auth<JavaUser>>) -> web::Json<Envelope<Option<u64>>> {
    web::Json(Envelope::ok(user.map(|u| u.id)))
}

async fn two(user: Auth<JavaUser>, again: MaybeAuth<JavaUser>) -> web::Json<Envelope<u64>> {
    assert_eq!(again.0.map(|u| u.id), Some(user.id));
    web::Json(Envelope::ok(user.id))
}

async fn login(
    sessions: Sessions<JavaUser>,
    user: web::Json<JavaUser>,
) -> Result<web::Json<Envelope<String>>, ApiError> {
    let token = sessions.login(&user).await?;
    Ok(web::Json(Envelope::ok(token.expose().to_owned())))
}

async fn logout(user: Auth<JavaUser>) -> Result<web::Json<Envelope<bool>>, ApiError> {
    Ok(web::Json(Envelope::ok(user.logout().await?)))
}

async fn logout_all(user: Auth<JavaUser>) -> Result<web::Json<Envelope<u64>>, ApiError> {
    Ok(web::Json(Envelope::ok(user.logout_everywhere().await?)))
}

async fn public(runs: web::Data<Runs>) -> web::Json<Envelope<u64>> {
    web::Json(Envelope::ok(runs.count()))
}

async fn limited(runs: web::Data<Runs>) -> web::Json<Envelope<u64>> {
    web::Json(Envelope::ok(runs.ran()))
}

async fn backend_error() -> Result<HttpResponse, ApiError> {
    Err(keygate::Error::Backend(keygate::BackendError::Timeout(Duration::from_secs(1))).into())
}

async fn script_error() -> Result<HttpResponse, ApiError> {
    Err(keygate::Error::Script("the script failed".into()).into())
}

async fn config_error() -> Result<HttpResponse, ApiError> {
    Err(keygate::Error::Config("a bad configuration".into()).into())
}

type Sender = Rc<dyn Fn(TestRequest) -> LocalBoxFuture<'static, Reply>>;

/// The app (middleware around it and again around `/nested`), and beside it an app
/// without the middleware for `/unprotected/...` (in actix, `wrap` on an `App` covers all
/// of its routes).
struct ActixApp {
    app: Sender,
    unprotected: Sender,
}

macro_rules! sender {
    ($app:expr) => {{
        let service = Rc::new(test::init_service($app).await);
        let send: Sender = Rc::new(move |request: TestRequest| {
            let service = Rc::clone(&service);
            Box::pin(async move {
                let response = test::call_service(&*service, request.to_request()).await;
                let status = response.status().as_u16();
                let headers: Vec<_> = response
                    .headers()
                    .iter()
                    .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
                    .collect();
                let bytes = test::read_body(response).await;
                Reply::new(status, headers, &bytes)
            })
        });
        send
    }};
}

async fn make_app(gate: Keygate<JavaUser>, limit: RateLimitPolicy) -> ActixApp {
    let app = sender!(
        App::new()
            .wrap(KeygateMiddleware::new(gate.clone()))
            .app_data(web::Data::new(Runs::default()))
            .route("/me", web::get().to(me))
            .route("/maybe", web::get().to(maybe))
            .route("/option", web::get().to(option))
            .route("/two", web::get().to(two))
            .route("/login", web::post().to(login))
            .route("/logout", web::post().to(logout))
            .route("/logout-all", web::post().to(logout_all))
            .route("/public", web::get().to(public))
            .service(
                web::resource("/limited")
                    .wrap(RateLimitMiddleware::with_policy(limit))
                    .route(web::get().to(limited)),
            )
            .route("/error/backend", web::get().to(backend_error))
            .route("/error/script", web::get().to(script_error))
            .route("/error/config", web::get().to(config_error))
            .service(
                web::scope("/nested")
                    .wrap(KeygateMiddleware::new(gate))
                    .route("/me", web::get().to(me)),
            )
    );
    let unprotected = sender!(
        App::new()
            .route("/unprotected/me", web::get().to(me))
            .route("/unprotected/maybe", web::get().to(maybe))
            .route("/unprotected/login", web::post().to(login))
    );
    ActixApp { app, unprotected }
}

#[async_trait::async_trait(?Send)]
impl TestApp for ActixApp {
    fn component(&self) -> &'static str {
        "KeygateMiddleware"
    }

    fn option_auth_on_outage(&self) -> OptionOnOutage {
        // actix-web's `Option<T>` turns any error of `T`'s extractor into `None`.
        OptionOnOutage::Anonymous
    }

    fn missing_peer_hint(&self) -> &'static str {
        "bind_uds"
    }

    async fn send_from(
        &self,
        peer: Option<IpAddr>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        let mut request = TestRequest::default()
            .method(method.parse().unwrap())
            .uri(path);
        for (name, value) in headers {
            request = request.append_header((*name, *value));
        }
        if let Some(peer) = peer {
            request = request.peer_addr(SocketAddr::new(peer, 40000));
        }
        if let Some(body) = body {
            request = request
                .insert_header(("content-type", "application/json"))
                .set_payload(body.to_owned());
        }
        if path.starts_with("/unprotected/") {
            (self.unprotected)(request).await
        } else {
            (self.app)(request).await
        }
    }
}

keygate_tests::adapter_conformance!(
    #[actix_web::test]
    make_app
);
