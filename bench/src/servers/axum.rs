//! axum 0.8: keygate-axum's servers; the hand-written ones are in `reference`, the
//! incumbent in `incumbent`.

use axum::Json;
use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use keygate_axum::{ApiError, Auth, KeygateLayer, RateLimitLayer, Sessions};

use super::{ServeSpec, Variant, keygate_gate, limiter, reference, runtime};
use crate::user::NodeUser;

pub fn serve(spec: &ServeSpec) -> crate::Result<()> {
    // Recorded for real: the exporter the examples use, installed before keygate records.
    #[cfg(feature = "incumbents")]
    let _metrics = match spec.variant {
        Variant::KeygateMetrics => {
            Some(metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?)
        }
        _ => None,
    };
    runtime()?.block_on(async {
        let app = match reference::axum::router(spec).await? {
            Some(app) => app,
            None => app(spec).await?,
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

async fn app(spec: &ServeSpec) -> crate::Result<Router> {
    let loopback = [std::net::IpAddr::from([127, 0, 0, 1])];
    Ok(match spec.variant {
        Variant::Keygate
        | Variant::KeygateHash
        | Variant::KeygateMetrics
        | Variant::KeygateNear
        | Variant::KeygateNearSmall => keygate_routes().layer(KeygateLayer::new(
            keygate_gate(&spec.redis_url, spec.variant).await?,
        )),
        Variant::KeygateLimitedSpread => keygate_routes()
            .layer(KeygateLayer::new(
                keygate_gate(&spec.redis_url, spec.variant).await?,
            ))
            .layer(
                RateLimitLayer::new(limiter(&spec.redis_url, spec.variant).await?)
                    .with_trusted_proxies(loopback),
            ),
        Variant::LimitedQuota | Variant::LimitedWindow => bare_routes().layer(RateLimitLayer::new(
            limiter(&spec.redis_url, spec.variant).await?,
        )),
        Variant::LimitedQuotaSpread => bare_routes().layer(
            RateLimitLayer::new(limiter(&spec.redis_url, spec.variant).await?)
                .with_trusted_proxies(loopback),
        ),
        #[cfg(feature = "incumbents")]
        Variant::Incumbent => super::incumbent::axum::router(&spec.redis_url).await?,
        other => return Err(super::not_built(other)),
    })
}

fn keygate_routes() -> Router {
    Router::new()
        .route("/me", get(keygate_me))
        .route("/login", post(keygate_login))
}

fn bare_routes() -> Router {
    Router::new()
        .route("/me", get(bare_me))
        .route("/login", post(|| async { "bare" }))
}

async fn bare_me() -> Json<NodeUser> {
    Json(NodeUser::seed())
}

/// The user as JSON, serialized from the session (no copy of it).
async fn keygate_me(user: Auth<NodeUser>) -> Response {
    Json(user.data()).into_response()
}

async fn keygate_login(sessions: Sessions<NodeUser>) -> Result<String, ApiError> {
    let user = NodeUser::seed();
    let token = sessions.login(&user).await?;
    Ok(token.expose().to_owned())
}
