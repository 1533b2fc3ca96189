//! tower-sessions with tower-sessions-redis-store.

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tower_sessions::cookie::time;
use tower_sessions::{Expiry, Session, SessionManagerLayer};
use tower_sessions_redis_store::RedisStore as TowerRedisStore;
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};

use crate::Result;
use crate::user::{IDLE_SECS, NodeUser};

const USER_KEY: &str = "user";

pub async fn router(redis_url: &str) -> Result<Router> {
    // The store's README: a fred pool of 6 connections.
    let pool = Pool::new(Config::from_url(redis_url)?, None, None, None, 6)?;
    pool.init().await?;
    let ttl = i64::try_from(IDLE_SECS)?;
    let layer = SessionManagerLayer::new(TowerRedisStore::new(pool))
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(ttl)))
        // Without it the record (and its TTL) is written only when it changes: the
        // session would expire 30 minutes after login however active.
        .with_always_save(true);
    Ok(Router::new()
        .route("/me", get(me))
        .route("/login", post(login))
        .layer(layer))
}

async fn me(session: Session) -> std::result::Result<Json<NodeUser>, StatusCode> {
    match session.get::<NodeUser>(USER_KEY).await {
        Ok(Some(user)) => Ok(Json(user)),
        Ok(None) => Err(StatusCode::UNAUTHORIZED),
        Err(_) => Err(StatusCode::SERVICE_UNAVAILABLE),
    }
}

async fn login(session: Session) -> std::result::Result<&'static str, StatusCode> {
    session
        .insert(USER_KEY, NodeUser::seed())
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    Ok("ok")
}
