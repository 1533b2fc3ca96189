//! rocket 0.5: bare, hand-written GETEX, keygate-rocket, rocket-session-store.

use std::net::Ipv4Addr;
use std::time::Duration;

use keygate_rocket::{ApiError, Auth, KeygateFairing, Sessions};
use redis::aio::ConnectionManager;
use rocket::config::LogLevel;
use rocket::http::Status;
use rocket::http::private::cookie::CookieBuilder;
use rocket::request::{FromRequest, Outcome};
use rocket::serde::json::Json;
use rocket::{Build, Request, Rocket, State, get, post, routes};
use rocket_session_store::SessionStore;

use super::{ServeSpec, Variant, getex_connection, getex_login, getex_me, keygate_gate, runtime};
use crate::Result;
use crate::user::{IDLE_SECS, NodeUser};

pub fn serve(spec: &ServeSpec) -> Result<()> {
    runtime()?.block_on(async {
        let config = rocket::Config {
            address: Ipv4Addr::LOCALHOST.into(),
            port: spec.port,
            workers: super::workers(),
            // Rocket logs every request by default; no other server here does.
            log_level: LogLevel::Off,
            cli_colors: false,
            ..rocket::Config::release_default()
        };
        let base = rocket::custom(config);
        let rocket: Rocket<Build> = match spec.variant {
            Variant::Bare => base.mount("/", routes![bare_me, bare_login]),
            Variant::Getex => base
                .manage(getex_connection(&spec.redis_url).await?)
                .mount("/", routes![getex_me_route, getex_login_route]),
            Variant::Keygate | Variant::KeygateHash => base
                .attach(KeygateFairing::new(
                    keygate_gate(&spec.redis_url, spec.variant).await?,
                ))
                .mount("/", routes![keygate_me, keygate_login]),
            Variant::LimitedQuota
            | Variant::LimitedQuotaSpread
            | Variant::LimitedWindow
            | Variant::KeygateMetrics
            | Variant::KeygateNear
            | Variant::KeygateNearSmall => {
                return Err("axum only".into());
            }
            Variant::Incumbent => {
                // rocket-session-store's Redis store is built on the redis crate 0.29.
                let client = redis_0_29::Client::open(spec.redis_url.as_str())?;
                let store: SessionStore<NodeUser> = SessionStore {
                    store: Box::new(rocket_session_store::redis::RedisStore::new(client)),
                    name: "token".into(),
                    duration: Duration::from_secs(IDLE_SECS),
                    cookie_builder: CookieBuilder::new("", "").path("/"),
                };
                base.attach(store.fairing())
                    .mount("/", routes![store_me, store_login])
            }
        };
        rocket.launch().await.map_err(|e| e.to_string())?;
        Ok(())
    })
}

#[get("/me")]
fn bare_me() -> Json<NodeUser> {
    Json(NodeUser::seed())
}

#[post("/login")]
fn bare_login() -> &'static str {
    "bare"
}

/// The raw `authorization` header, empty when absent: what the hand-written handler reads.
struct RawToken<'r>(&'r str);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for RawToken<'r> {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, ()> {
        Outcome::Success(RawToken(
            request.headers().get_one("authorization").unwrap_or(""),
        ))
    }
}

#[get("/me")]
async fn getex_me_route(
    token: RawToken<'_>,
    conn: &State<ConnectionManager>,
) -> std::result::Result<Json<NodeUser>, Status> {
    let mut conn = conn.inner().clone();
    match getex_me(&mut conn, token.0.as_bytes()).await {
        Ok(Some(user)) => Ok(Json(user)),
        Ok(None) => Err(Status::Unauthorized),
        Err(_) => Err(Status::ServiceUnavailable),
    }
}

#[post("/login")]
async fn getex_login_route(conn: &State<ConnectionManager>) -> std::result::Result<String, Status> {
    let mut conn = conn.inner().clone();
    getex_login(&mut conn)
        .await
        .map_err(|_| Status::ServiceUnavailable)
}

#[get("/me")]
fn keygate_me(user: Auth<NodeUser>) -> Json<NodeUser> {
    Json(user.data().clone())
}

#[post("/login")]
async fn keygate_login(sessions: Sessions<NodeUser>) -> std::result::Result<String, ApiError> {
    let user = NodeUser::seed();
    let token = sessions.login(&user).await?;
    Ok(token.expose().to_owned())
}

#[get("/me")]
async fn store_me(
    session: rocket_session_store::Session<'_, NodeUser>,
) -> std::result::Result<Json<NodeUser>, Status> {
    match session.get().await {
        Ok(Some(user)) => {
            // The store's `get` does not extend the expiry; `touch` does (`EXPIRE`).
            session
                .touch()
                .await
                .map_err(|_| Status::ServiceUnavailable)?;
            Ok(Json(user))
        }
        Ok(None) => Err(Status::Unauthorized),
        Err(_) => Err(Status::ServiceUnavailable),
    }
}

#[post("/login")]
async fn store_login(
    session: rocket_session_store::Session<'_, NodeUser>,
) -> std::result::Result<&'static str, Status> {
    session
        .set(NodeUser::seed())
        .await
        .map_err(|_| Status::ServiceUnavailable)?;
    Ok("ok")
}
