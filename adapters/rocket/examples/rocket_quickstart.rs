//! keygate-rocket in one file: `cargo run -p keygate-rocket --example rocket_quickstart`.
//!
//! Uses Redis when `REDIS_URL` is set (`redis://:password@127.0.0.1:6379/0`), else the
//! embedded memory backend; listens on 127.0.0.1:`PORT` (default 3000).
//!
//! `curl -X POST localhost:3000/login` answers a token; send it as `authorization: <token>`
//! to `GET /me`, `GET /hello` and `POST /logout`.

use keygate_rocket::keygate::backend::SessionStore;
use keygate_rocket::keygate::{self};
use keygate_rocket::{ApiError, Auth, Envelope, Keygate, KeygateFairing, MaybeAuth, Sessions};
use keygate_rocket::{MemoryStore, RedisStore, SessionConfig, SessionManager, UserId};
use rocket::serde::json::Json;
use rocket::{Build, Rocket, get, post, routes};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    id: u64,
    nick_name: String,
}

impl keygate_rocket::SessionUser for User {
    fn user_id(&self) -> UserId {
        UserId::from(self.id)
    }
}

/// Logs in a fixed demo user (a real service checks a code or a password first).
#[post("/login")]
async fn login(sessions: Sessions<User>) -> Result<Json<Envelope<String>>, ApiError> {
    let user = User {
        id: 598,
        nick_name: "demo".into(),
    };
    let token = sessions.login(&user).await?;
    Ok(Json(Envelope::ok(token.expose().to_owned())))
}

#[get("/me")]
fn me(user: Auth<User>) -> Json<Envelope<User>> {
    Json(Envelope::ok(user.data().clone()))
}

#[get("/hello")]
fn hello(user: MaybeAuth<User>) -> String {
    match user.into_inner() {
        Some(user) => format!("hello, {}", user.nick_name),
        None => "hello, stranger".to_owned(),
    }
}

#[post("/logout")]
async fn logout(user: Auth<User>) -> Result<Json<Envelope<bool>>, ApiError> {
    Ok(Json(Envelope::ok(user.logout().await?)))
}

/// The application on `store`: the routes and the fairing that backs the keygate guards
/// (the test in `tests/quickstart.rs` serves it too).
pub(crate) fn app(store: impl SessionStore) -> Result<Rocket<Build>, keygate::Error> {
    let manager = SessionManager::<User>::new(store, SessionConfig::java_seed())?;
    Ok(rocket::build()
        .mount("/", routes![login, me, hello, logout])
        .attach(KeygateFairing::new(Keygate::new(manager))))
}

#[rocket::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = match std::env::var("REDIS_URL") {
        Ok(url) => app(RedisStore::connect(&url).await?)?,
        Err(_) => app(MemoryStore::new())?,
    };
    let port: u16 = std::env::var("PORT").map_or(Ok(3000), |port| port.parse())?;
    let config = rocket::Config::figment()
        .merge(("address", "127.0.0.1"))
        .merge(("port", port));
    app.configure(config).launch().await?;
    Ok(())
}
