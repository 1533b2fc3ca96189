//! poem 3: keygate-poem's servers; the hand-written ones are in `reference`, the
//! incumbent in `incumbent`.

use keygate_poem::{ApiError, Auth, KeygateMiddleware, Sessions};
use poem::listener::TcpListener;
use poem::web::Json;
use poem::{Endpoint, EndpointExt, IntoResponse, Response, Route, Server, get, handler, post};

use super::{ServeSpec, Variant, keygate_gate, reference, runtime};
use crate::Result;
use crate::user::NodeUser;

pub fn serve(spec: &ServeSpec) -> Result<()> {
    runtime()?.block_on(async {
        if reference::poem::run(spec).await? {
            return Ok(());
        }
        match spec.variant {
            Variant::Keygate
            | Variant::KeygateHash
            | Variant::KeygateNear
            | Variant::KeygateNearSmall => {
                let gate = keygate_gate(&spec.redis_url, spec.variant).await?;
                let app = Route::new()
                    .at("/me", get(keygate_me))
                    .at("/login", post(keygate_login))
                    .with(KeygateMiddleware::new(gate));
                run(spec.port, app).await
            }
            #[cfg(feature = "incumbents")]
            Variant::Incumbent => super::incumbent::poem::run(spec).await,
            other => Err(super::not_built(other)),
        }
    })
}

/// Serves `app` on the loopback port until the process is killed.
pub async fn run(port: u16, app: impl Endpoint + 'static) -> Result<()> {
    Server::new(TcpListener::bind(format!("127.0.0.1:{port}")))
        .run(app)
        .await?;
    Ok(())
}

/// The user as JSON, serialized from the session (no copy of it).
#[handler]
fn keygate_me(user: Auth<NodeUser>) -> Response {
    Json(user.data()).into_response()
}

#[handler]
async fn keygate_login(sessions: Sessions<NodeUser>) -> std::result::Result<String, ApiError> {
    let user = NodeUser::seed();
    let token = sessions.login(&user).await?;
    Ok(token.expose().to_owned())
}
