//! Rocket 0.5: keygate-rocket's servers; the hand-written ones are in `reference`, the
//! incumbent in `incumbent`.

use std::net::Ipv4Addr;

use keygate_rocket::{ApiError, Auth, KeygateFairing, Sessions};
use rocket::config::LogLevel;
use rocket::http::{ContentType, Status};
use rocket::{Build, Rocket, get, post, routes};

use super::{ServeSpec, Variant, keygate_gate, reference, runtime};
use crate::Result;
use crate::user::NodeUser;

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
        let rocket: Rocket<Build> =
            match reference::rocket::mount(rocket::custom(config), spec).await? {
                Ok(rocket) => rocket,
                Err(base) => match spec.variant {
                    Variant::Keygate
                    | Variant::KeygateHash
                    | Variant::KeygateNear
                    | Variant::KeygateNearSmall => base
                        .attach(KeygateFairing::new(
                            keygate_gate(&spec.redis_url, spec.variant).await?,
                        ))
                        .mount("/", routes![keygate_me, keygate_login]),
                    #[cfg(feature = "incumbents")]
                    Variant::Incumbent => super::incumbent::rocket::mount(base, spec)?,
                    other => return Err(super::not_built(other)),
                },
            };
        rocket.launch().await.map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// The user as JSON, serialized from the session (no copy of it).
#[get("/me")]
fn keygate_me(user: Auth<NodeUser>) -> std::result::Result<(ContentType, Vec<u8>), Status> {
    let body = serde_json::to_vec(user.data()).map_err(|_| Status::InternalServerError)?;
    Ok((ContentType::JSON, body))
}

#[post("/login")]
async fn keygate_login(sessions: Sessions<NodeUser>) -> std::result::Result<String, ApiError> {
    let user = NodeUser::seed();
    let token = sessions.login(&user).await?;
    Ok(token.expose().to_owned())
}
