//! axum 0.8: bare, hand-written GETEX, keygate-axum, tower-sessions.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use keygate_axum::{ApiError, Auth, KeygateLayer, RateLimitLayer, Sessions};
use redis::aio::ConnectionManager;
use tower_sessions::cookie::time;
use tower_sessions::{Expiry, Session, SessionManagerLayer};
use tower_sessions_redis_store::RedisStore as TowerRedisStore;
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};

use super::{
    ServeSpec, Variant, getex_connection, getex_login, getex_me, keygate_gate, limiter, runtime,
};
use crate::user::{IDLE_SECS, NodeUser};

const USER_KEY: &str = "user";

pub fn serve(spec: &ServeSpec) -> crate::Result<()> {
    // Recorded for real: the exporter the examples use, installed before keygate records.
    let _metrics = match spec.variant {
        Variant::KeygateMetrics => {
            Some(metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?)
        }
        _ => None,
    };
    runtime()?.block_on(async {
        let app = match spec.variant {
            Variant::Bare => Router::new()
                .route("/me", get(bare_me))
                .route("/login", post(bare_login)),
            Variant::Getex => Router::new()
                .route("/me", get(getex_me_route))
                .route("/login", post(getex_login_route))
                .with_state(getex_connection(&spec.redis_url).await?),
            Variant::Keygate
            | Variant::KeygateHash
            | Variant::KeygateMetrics
            | Variant::KeygateNear
            | Variant::KeygateNearSmall => Router::new()
                .route("/me", get(keygate_me))
                .route("/login", post(keygate_login))
                .layer(KeygateLayer::new(
                    keygate_gate(&spec.redis_url, spec.variant).await?,
                )),
            Variant::LimitedQuota | Variant::LimitedWindow => Router::new()
                .route("/me", get(bare_me))
                .route("/login", post(bare_login))
                .layer(RateLimitLayer::new(
                    limiter(&spec.redis_url, spec.variant).await?,
                )),
            Variant::LimitedQuotaSpread => Router::new()
                .route("/me", get(bare_me))
                .route("/login", post(bare_login))
                .layer(
                    RateLimitLayer::new(limiter(&spec.redis_url, spec.variant).await?)
                        .with_trusted_proxies([std::net::IpAddr::from([127, 0, 0, 1])]),
                ),
            Variant::Incumbent => {
                // The store's README: a fred pool of 6 connections.
                let pool = Pool::new(Config::from_url(&spec.redis_url)?, None, None, None, 6)?;
                pool.init().await?;
                let ttl = i64::try_from(IDLE_SECS)?;
                let layer = SessionManagerLayer::new(TowerRedisStore::new(pool))
                    .with_secure(false)
                    .with_expiry(Expiry::OnInactivity(time::Duration::seconds(ttl)))
                    // Without it the record (and its TTL) is written only when it changes:
                    // the session would expire 30 minutes after login however active.
                    .with_always_save(true);
                Router::new()
                    .route("/me", get(tower_me))
                    .route("/login", post(tower_login))
                    .layer(layer)
            }
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", spec.port)).await?;
        if spec.variant.is_limited() {
            // The rate-limit layer keys requests by the peer address.
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await?;
        } else {
            axum::serve(listener, app).await?;
        }
        Ok(())
    })
}

async fn bare_me() -> Json<NodeUser> {
    Json(NodeUser::seed())
}

async fn bare_login() -> &'static str {
    "bare"
}

async fn getex_me_route(
    State(mut conn): State<ConnectionManager>,
    headers: HeaderMap,
) -> Result<Json<NodeUser>, StatusCode> {
    let token = headers
        .get("authorization")
        .map_or(&b""[..], |v| v.as_bytes());
    match getex_me(&mut conn, token).await {
        Ok(Some(user)) => Ok(Json(user)),
        Ok(None) => Err(StatusCode::UNAUTHORIZED),
        Err(_) => Err(StatusCode::SERVICE_UNAVAILABLE),
    }
}

async fn getex_login_route(
    State(mut conn): State<ConnectionManager>,
) -> Result<String, StatusCode> {
    getex_login(&mut conn)
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)
}

async fn keygate_me(user: Auth<NodeUser>) -> Json<NodeUser> {
    Json(user.data().clone())
}

async fn keygate_login(sessions: Sessions<NodeUser>) -> Result<String, ApiError> {
    let user = NodeUser::seed();
    let token = sessions.login(&user).await?;
    Ok(token.expose().to_owned())
}

async fn tower_me(session: Session) -> Result<Json<NodeUser>, StatusCode> {
    match session.get::<NodeUser>(USER_KEY).await {
        Ok(Some(user)) => Ok(Json(user)),
        Ok(None) => Err(StatusCode::UNAUTHORIZED),
        Err(_) => Err(StatusCode::SERVICE_UNAVAILABLE),
    }
}

async fn tower_login(session: Session) -> Result<&'static str, StatusCode> {
    session
        .insert(USER_KEY, NodeUser::seed())
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    Ok("ok")
}
