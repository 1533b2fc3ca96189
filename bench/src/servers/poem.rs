//! poem 3: bare, hand-written GETEX, keygate-poem, `ServerSession` + `RedisStorage`.

use std::time::Duration;

use keygate_poem::{ApiError, Auth, KeygateMiddleware, Sessions};
use poem::http::StatusCode;
use poem::listener::TcpListener;
use poem::session::{CookieConfig, RedisStorage, ServerSession, Session};
use poem::web::{Data, Json};
use poem::{Endpoint, EndpointExt, Request, Route, Server, get, handler, post};
use redis::aio::ConnectionManager;

use super::{ServeSpec, Variant, getex_connection, getex_login, getex_me, keygate_gate, runtime};
use crate::Result;
use crate::user::{IDLE_SECS, NodeUser};

const USER_KEY: &str = "user";

pub fn serve(spec: &ServeSpec) -> Result<()> {
    runtime()?.block_on(async {
        match spec.variant {
            Variant::Bare => {
                let app = Route::new()
                    .at("/me", get(bare_me))
                    .at("/login", post(bare_login));
                run(spec.port, app).await
            }
            Variant::Getex => {
                let app = Route::new()
                    .at("/me", get(getex_me_route))
                    .at("/login", post(getex_login_route))
                    .data(getex_connection(&spec.redis_url).await?);
                run(spec.port, app).await
            }
            Variant::Keygate | Variant::KeygateHash => {
                let gate = keygate_gate(&spec.redis_url, spec.variant).await?;
                let app = Route::new()
                    .at("/me", get(keygate_me))
                    .at("/login", post(keygate_login))
                    .with(KeygateMiddleware::new(gate));
                run(spec.port, app).await
            }
            Variant::LimitedQuota
            | Variant::LimitedQuotaSpread
            | Variant::LimitedWindow
            | Variant::KeygateMetrics
            | Variant::KeygateNear
            | Variant::KeygateNearSmall => Err("axum only".into()),
            Variant::Incumbent => {
                // poem's RedisStorage is built on the redis crate 0.32.
                let client = redis_0_32::Client::open(spec.redis_url.as_str())?;
                let conn = redis_0_32::aio::ConnectionManager::new(client).await?;
                let cookie = CookieConfig::default().max_age(Duration::from_secs(IDLE_SECS));
                let app = Route::new()
                    .at("/me", get(poem_me))
                    .at("/login", post(poem_login))
                    .with(ServerSession::new(cookie, RedisStorage::new(conn)));
                run(spec.port, app).await
            }
        }
    })
}

async fn run(port: u16, app: impl Endpoint + 'static) -> Result<()> {
    Server::new(TcpListener::bind(format!("127.0.0.1:{port}")))
        .run(app)
        .await?;
    Ok(())
}

#[handler]
fn bare_me() -> Json<NodeUser> {
    Json(NodeUser::seed())
}

#[handler]
fn bare_login() -> &'static str {
    "bare"
}

#[handler]
async fn getex_me_route(
    req: &Request,
    conn: Data<&ConnectionManager>,
) -> poem::Result<Json<NodeUser>> {
    let token = req
        .headers()
        .get("authorization")
        .map_or(&b""[..], |v| v.as_bytes());
    let mut conn = conn.0.clone();
    match getex_me(&mut conn, token).await {
        Ok(Some(user)) => Ok(Json(user)),
        Ok(None) => Err(poem::Error::from_status(StatusCode::UNAUTHORIZED)),
        Err(_) => Err(poem::Error::from_status(StatusCode::SERVICE_UNAVAILABLE)),
    }
}

#[handler]
async fn getex_login_route(conn: Data<&ConnectionManager>) -> poem::Result<String> {
    let mut conn = conn.0.clone();
    getex_login(&mut conn)
        .await
        .map_err(|_| poem::Error::from_status(StatusCode::SERVICE_UNAVAILABLE))
}

#[handler]
fn keygate_me(user: Auth<NodeUser>) -> Json<NodeUser> {
    Json(user.data().clone())
}

#[handler]
async fn keygate_login(sessions: Sessions<NodeUser>) -> std::result::Result<String, ApiError> {
    let user = NodeUser::seed();
    let token = sessions.login(&user).await?;
    Ok(token.expose().to_owned())
}

#[handler]
fn poem_me(session: &Session) -> poem::Result<Json<NodeUser>> {
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
fn poem_login(session: &Session) -> &'static str {
    session.set(USER_KEY, NodeUser::seed());
    "ok"
}
