//! actix-web 4: keygate-actix's servers; the hand-written ones are in `reference`, the
//! incumbent in `incumbent`.

use actix_web::{App, HttpResponse, HttpServer, web};
use keygate_actix::{ApiError, Auth, KeygateMiddleware, Sessions};

use super::{ServeSpec, Variant, keygate_gate, reference, workers};
use crate::Result;
use crate::user::NodeUser;

pub fn serve(spec: &ServeSpec) -> Result<()> {
    actix_web::rt::System::new().block_on(run(spec.clone()))
}

async fn run(spec: ServeSpec) -> Result<()> {
    if reference::actix::run(&spec).await? {
        return Ok(());
    }
    match spec.variant {
        Variant::Keygate
        | Variant::KeygateHash
        | Variant::KeygateNear
        | Variant::KeygateNearSmall => {
            let gate = keygate_gate(&spec.redis_url, spec.variant).await?;
            HttpServer::new(move || {
                App::new()
                    .wrap(KeygateMiddleware::new(gate.clone()))
                    .route("/me", web::get().to(keygate_me))
                    .route("/login", web::post().to(keygate_login))
            })
            .workers(workers())
            .bind(("127.0.0.1", spec.port))?
            .run()
            .await?;
            Ok(())
        }
        #[cfg(feature = "incumbents")]
        Variant::Incumbent => super::incumbent::actix::run(&spec).await,
        other => Err(super::not_built(other)),
    }
}

/// The user as JSON, serialized from the session (no copy of it).
async fn keygate_me(user: Auth<NodeUser>) -> HttpResponse {
    HttpResponse::Ok().json(user.data())
}

async fn keygate_login(sessions: Sessions<NodeUser>) -> std::result::Result<String, ApiError> {
    let user = NodeUser::seed();
    let token = sessions.login(&user).await?;
    Ok(token.expose().to_owned())
}
