//! rocket-session-store with its Redis store.

use std::time::Duration;

use rocket::http::Status;
use rocket::http::private::cookie::CookieBuilder;
use rocket::serde::json::Json;
use rocket::{Build, Rocket, get, post, routes};
use rocket_session_store::SessionStore;

use crate::Result;
use crate::servers::ServeSpec;
use crate::user::{IDLE_SECS, NodeUser};

pub fn mount(base: Rocket<Build>, spec: &ServeSpec) -> Result<Rocket<Build>> {
    // rocket-session-store's Redis store is built on the redis crate 0.29.
    let client = redis_0_29::Client::open(spec.redis_url.as_str())?;
    let store: SessionStore<NodeUser> = SessionStore {
        store: Box::new(rocket_session_store::redis::RedisStore::new(client)),
        name: "token".into(),
        duration: Duration::from_secs(IDLE_SECS),
        cookie_builder: CookieBuilder::new("", "").path("/"),
    };
    Ok(base.attach(store.fairing()).mount("/", routes![me, login]))
}

#[get("/me")]
async fn me(
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
async fn login(
    session: rocket_session_store::Session<'_, NodeUser>,
) -> std::result::Result<&'static str, Status> {
    session
        .set(NodeUser::seed())
        .await
        .map_err(|_| Status::ServiceUnavailable)?;
    Ok("ok")
}
