//! actix-web 4: bare, hand-written GETEX, keygate-actix, actix-session.

use actix_session::config::{PersistentSession, TtlExtensionPolicy};
use actix_session::storage::RedisSessionStore;
use actix_session::{Session, SessionMiddleware};
use actix_web::cookie::{Key, time};
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use keygate_actix::{ApiError, Auth, KeygateMiddleware, Sessions};
use redis::aio::ConnectionManager;

use super::{ServeSpec, Variant, getex_connection, getex_login, getex_me, keygate_gate};
use crate::Result;
use crate::user::{IDLE_SECS, NodeUser};

const USER_KEY: &str = "user";

pub fn serve(spec: &ServeSpec) -> Result<()> {
    actix_web::rt::System::new().block_on(run(spec.clone()))
}

async fn run(spec: ServeSpec) -> Result<()> {
    let addr = ("127.0.0.1", spec.port);
    match spec.variant {
        Variant::Bare => {
            HttpServer::new(|| {
                App::new()
                    .route("/me", web::get().to(bare_me))
                    .route("/login", web::post().to(bare_login))
            })
            .workers(super::workers())
            .bind(addr)?
            .run()
            .await?;
        }
        Variant::Getex => {
            let conn = getex_connection(&spec.redis_url).await?;
            HttpServer::new(move || {
                App::new()
                    .app_data(web::Data::new(conn.clone()))
                    .route("/me", web::get().to(getex_me_route))
                    .route("/login", web::post().to(getex_login_route))
            })
            .workers(super::workers())
            .bind(addr)?
            .run()
            .await?;
        }
        Variant::Keygate | Variant::KeygateHash => {
            let gate = keygate_gate(&spec.redis_url, spec.variant).await?;
            HttpServer::new(move || {
                App::new()
                    .wrap(KeygateMiddleware::new(gate.clone()))
                    .route("/me", web::get().to(keygate_me))
                    .route("/login", web::post().to(keygate_login))
            })
            .workers(super::workers())
            .bind(addr)?
            .run()
            .await?;
        }
        Variant::LimitedQuota
        | Variant::LimitedQuotaSpread
        | Variant::LimitedWindow
        | Variant::KeygateMetrics
        | Variant::KeygateNear
        | Variant::KeygateNearSmall => {
            return Err("axum only".into());
        }
        Variant::Incumbent => {
            let store = RedisSessionStore::new(spec.redis_url.clone())
                .await
                .map_err(|e| format!("actix-session RedisSessionStore: {e}"))?;
            let key = Key::generate();
            let ttl = time::Duration::seconds(i64::try_from(IDLE_SECS)?);
            HttpServer::new(move || {
                let lifecycle = PersistentSession::default()
                    .session_ttl(ttl)
                    .session_ttl_extension_policy(TtlExtensionPolicy::OnEveryRequest);
                App::new()
                    .wrap(
                        SessionMiddleware::builder(store.clone(), key.clone())
                            .cookie_secure(false)
                            .session_lifecycle(lifecycle)
                            .build(),
                    )
                    .route("/me", web::get().to(actix_me))
                    .route("/login", web::post().to(actix_login))
            })
            .workers(super::workers())
            .bind(addr)?
            .run()
            .await?;
        }
    }
    Ok(())
}

async fn bare_me() -> web::Json<NodeUser> {
    web::Json(NodeUser::seed())
}

async fn bare_login() -> &'static str {
    "bare"
}

async fn getex_me_route(
    conn: web::Data<ConnectionManager>,
    req: HttpRequest,
) -> std::result::Result<web::Json<NodeUser>, actix_web::Error> {
    let token = req
        .headers()
        .get("authorization")
        .map_or(&b""[..], |v| v.as_bytes());
    let mut conn = conn.get_ref().clone();
    match getex_me(&mut conn, token).await {
        Ok(Some(user)) => Ok(web::Json(user)),
        Ok(None) => Err(status(StatusCode::UNAUTHORIZED)),
        Err(_) => Err(status(StatusCode::SERVICE_UNAVAILABLE)),
    }
}

async fn getex_login_route(conn: web::Data<ConnectionManager>) -> HttpResponse {
    let mut conn = conn.get_ref().clone();
    match getex_login(&mut conn).await {
        Ok(token) => HttpResponse::Ok().body(token),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

fn status(code: StatusCode) -> actix_web::Error {
    actix_web::error::InternalError::new("", code).into()
}

async fn keygate_me(user: Auth<NodeUser>) -> web::Json<NodeUser> {
    web::Json(user.data().clone())
}

async fn keygate_login(sessions: Sessions<NodeUser>) -> std::result::Result<String, ApiError> {
    let user = NodeUser::seed();
    let token = sessions.login(&user).await?;
    Ok(token.expose().to_owned())
}

async fn actix_me(session: Session) -> std::result::Result<web::Json<NodeUser>, actix_web::Error> {
    match session.get::<NodeUser>(USER_KEY) {
        Ok(Some(user)) => Ok(web::Json(user)),
        Ok(None) => Err(status(StatusCode::UNAUTHORIZED)),
        Err(_) => Err(status(StatusCode::INTERNAL_SERVER_ERROR)),
    }
}

async fn actix_login(session: Session) -> HttpResponse {
    match session.insert(USER_KEY, NodeUser::seed()) {
        Ok(()) => HttpResponse::Ok().body("ok"),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}
