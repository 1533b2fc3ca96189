//! actix-session with its `RedisSessionStore`.

use actix_session::config::{PersistentSession, TtlExtensionPolicy};
use actix_session::storage::RedisSessionStore;
use actix_session::{Session, SessionMiddleware};
use actix_web::cookie::{Key, time};
use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, HttpServer, web};

use crate::Result;
use crate::servers::{ServeSpec, workers};
use crate::user::{IDLE_SECS, NodeUser};

const USER_KEY: &str = "user";

pub async fn run(spec: &ServeSpec) -> Result<()> {
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
            .route("/me", web::get().to(me))
            .route("/login", web::post().to(login))
    })
    .workers(workers())
    .bind(("127.0.0.1", spec.port))?
    .run()
    .await?;
    Ok(())
}

fn status(code: StatusCode) -> actix_web::Error {
    actix_web::error::InternalError::new("", code).into()
}

async fn me(session: Session) -> std::result::Result<web::Json<NodeUser>, actix_web::Error> {
    match session.get::<NodeUser>(USER_KEY) {
        Ok(Some(user)) => Ok(web::Json(user)),
        Ok(None) => Err(status(StatusCode::UNAUTHORIZED)),
        Err(_) => Err(status(StatusCode::INTERNAL_SERVER_ERROR)),
    }
}

async fn login(session: Session) -> HttpResponse {
    match session.insert(USER_KEY, NodeUser::seed()) {
        Ok(()) => HttpResponse::Ok().body("ok"),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}
