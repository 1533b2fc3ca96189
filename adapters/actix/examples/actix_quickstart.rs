//! keygate-actix in one file: `cargo run -p keygate-actix --example actix_quickstart`.
//!
//! Uses Redis when `REDIS_URL` is set (`redis://:password@127.0.0.1:6379/0`), else the
//! embedded memory backend; listens on 127.0.0.1:`PORT` (default 3000).
//!
//! `curl -X POST localhost:3000/login` answers a token; send it as `authorization: <token>`
//! to `GET /me`, `GET /hello` and `POST /logout`.

use actix_web::{App, HttpServer, web};
use keygate_actix::keygate::backend::SessionStore;
use keygate_actix::keygate::{self};
use keygate_actix::{ApiError, Auth, Envelope, Keygate, KeygateMiddleware, MaybeAuth, Sessions};
use keygate_actix::{MemoryStore, RedisStore, SessionConfig, SessionManager, UserId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct User {
    id: u64,
    nick_name: String,
}

impl keygate_actix::SessionUser for User {
    fn user_id(&self) -> UserId {
        UserId::from(self.id)
    }
}

/// Logs in a fixed demo user (a real service checks a code or a password first).
async fn login(sessions: Sessions<User>) -> Result<web::Json<Envelope<String>>, ApiError> {
    let user = User {
        id: 598,
        nick_name: "demo".into(),
    };
    let token = sessions.login(&user).await?;
    Ok(web::Json(Envelope::ok(token.expose().to_owned())))
}

async fn me(user: Auth<User>) -> web::Json<Envelope<User>> {
    web::Json(Envelope::ok(user.data().clone()))
}

async fn hello(MaybeAuth(user): MaybeAuth<User>) -> String {
    match user {
        Some(user) => format!("hello, {}", user.nick_name),
        None => "hello, stranger".to_owned(),
    }
}

async fn logout(user: Auth<User>) -> Result<web::Json<Envelope<bool>>, ApiError> {
    Ok(web::Json(Envelope::ok(user.logout().await?)))
}

/// The gate on `store` (the test in `tests/quickstart.rs` uses it too).
pub(crate) fn gate(store: impl SessionStore) -> Result<Keygate<User>, keygate::Error> {
    let manager = SessionManager::new(store, SessionConfig::java_seed())?;
    Ok(Keygate::new(manager))
}

/// The routes, behind the middleware that loads the session: `App::new().configure(...)`.
pub(crate) fn routes(gate: Keygate<User>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config| {
        config.service(
            web::scope("")
                .wrap(KeygateMiddleware::new(gate))
                .route("/login", web::post().to(login))
                .route("/me", web::get().to(me))
                .route("/hello", web::get().to(hello))
                .route("/logout", web::post().to(logout)),
        );
    }
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gate = match std::env::var("REDIS_URL") {
        Ok(url) => gate(RedisStore::connect(&url).await?)?,
        Err(_) => gate(MemoryStore::new())?,
    };
    let port: u16 = std::env::var("PORT").map_or(Ok(3000), |port| port.parse())?;
    let server = HttpServer::new(move || App::new().configure(routes(gate.clone())));
    let server = server.bind(("127.0.0.1", port))?;
    println!("listening on http://127.0.0.1:{port}");
    server.run().await?;
    Ok(())
}
