//! keygate-axum in one file: `cargo run -p keygate-axum --example axum_quickstart`.
//!
//! Uses Redis when `REDIS_URL` is set (`redis://:password@127.0.0.1:6379/0`), else the
//! embedded memory backend; listens on 127.0.0.1:`PORT` (default 3000).
//!
//! `curl -X POST localhost:3000/login` answers a token; send it as `authorization: <token>`
//! to `GET /me`, `GET /hello` and `POST /logout`.

use axum::routing::{get, post};
use axum::{Json, Router};
use keygate_axum::keygate::backend::SessionStore;
use keygate_axum::keygate::{self, web::Envelope};
use keygate_axum::{ApiError, Auth, Keygate, KeygateLayer, MaybeAuth, Sessions};
use keygate_axum::{MemoryStore, RedisStore, SessionConfig, SessionManager, UserId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    id: u64,
    nick_name: String,
}

impl keygate_axum::SessionUser for User {
    fn user_id(&self) -> UserId {
        UserId::from(self.id)
    }
}

/// Logs in a fixed demo user (a real service checks a code or a password first).
async fn login(sessions: Sessions<User>) -> Result<Json<Envelope<String>>, ApiError> {
    let user = User {
        id: 598,
        nick_name: "demo".into(),
    };
    let token = sessions.login(&user).await?;
    Ok(Json(Envelope::ok(token.expose().to_owned())))
}

async fn me(user: Auth<User>) -> Json<Envelope<User>> {
    Json(Envelope::ok(user.data().clone()))
}

async fn hello(MaybeAuth(user): MaybeAuth<User>) -> String {
    match user {
        Some(user) => format!("hello, {}", user.nick_name),
        None => "hello, stranger".to_owned(),
    }
}

async fn logout(user: Auth<User>) -> Result<Json<Envelope<bool>>, ApiError> {
    Ok(Json(Envelope::ok(user.logout().await?)))
}

/// The application on `store`: every route behind the layer that loads the session (the
/// test in `tests/quickstart.rs` serves it too).
pub(crate) fn app(store: impl SessionStore) -> Result<Router, keygate::Error> {
    let manager = SessionManager::<User>::new(store, SessionConfig::java_seed())?;
    Ok(Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/hello", get(hello))
        .route("/logout", post(logout))
        .layer(KeygateLayer::new(Keygate::new(manager))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = match std::env::var("REDIS_URL") {
        Ok(url) => app(RedisStore::connect(&url).await?)?,
        Err(_) => app(MemoryStore::new())?,
    };
    let port: u16 = std::env::var("PORT").map_or(Ok(3000), |port| port.parse())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://127.0.0.1:{port}");
    axum::serve(listener, app).await?;
    Ok(())
}
