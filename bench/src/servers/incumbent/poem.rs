//! poem's `ServerSession` with `RedisStorage`.

use std::time::Duration;

use poem::http::StatusCode;
use poem::session::{CookieConfig, RedisStorage, ServerSession, Session};
use poem::web::Json;
use poem::{EndpointExt, Route, get, handler, post};

use crate::Result;
use crate::servers::ServeSpec;
use crate::user::{IDLE_SECS, NodeUser};

const USER_KEY: &str = "user";

pub async fn run(spec: &ServeSpec) -> Result<()> {
    // poem's RedisStorage is built on the redis crate 0.32.
    let client = redis_0_32::Client::open(spec.redis_url.as_str())?;
    let conn = redis_0_32::aio::ConnectionManager::new(client).await?;
    let cookie = CookieConfig::default().max_age(Duration::from_secs(IDLE_SECS));
    let app = Route::new()
        .at("/me", get(me))
        .at("/login", post(login))
        .with(ServerSession::new(cookie, RedisStorage::new(conn)));
    crate::servers::poem::run(spec.port, app).await
}

#[handler]
fn me(session: &Session) -> poem::Result<Json<NodeUser>> {
    match session.get::<NodeUser>(USER_KEY) {
        Some(user) => {
            // Without a write-back poem never refreshes the TTL: the session would expire
            // 30 minutes after login however active. Setting the value again marks the
            // session changed, so the middleware writes it back with `SETEX`.
            session.set(USER_KEY, &user);
            Ok(Json(user))
        }
        None => Err(poem::Error::from_status(StatusCode::UNAUTHORIZED)),
    }
}

#[handler]
fn login(session: &Session) -> &'static str {
    session.set(USER_KEY, NodeUser::seed());
    "ok"
}
