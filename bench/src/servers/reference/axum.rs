//! axum 0.8's hand-written handlers.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{Reference, last_forwarded};
use crate::Result;
use crate::servers::{ServeSpec, Variant};
use crate::user::NodeUser;

/// The router of a reference variant; `None` for keygate's and the incumbents'.
pub async fn router(spec: &ServeSpec) -> Result<Option<Router>> {
    let me = match spec.variant {
        Variant::Bare => {
            return Ok(Some(
                Router::new()
                    .route("/me", get(bare_me))
                    .route("/login", post(bare_login)),
            ));
        }
        Variant::Getex => get(getex_me),
        Variant::GetexVerbatim => get(getex_verbatim_me),
        Variant::HashScript => get(hash_script_me),
        Variant::GcraGetexSpread => get(gcra_getex_me),
        _ => return Ok(None),
    };
    let reference = Arc::new(Reference::connect(&spec.redis_url).await?);
    Ok(Some(
        Router::new()
            .route("/me", me)
            .route("/login", post(login))
            .with_state(reference),
    ))
}

async fn bare_me() -> Json<NodeUser> {
    Json(NodeUser::seed())
}

async fn bare_login() -> &'static str {
    "bare"
}

fn token(headers: &HeaderMap) -> &[u8] {
    headers
        .get("authorization")
        .map_or(&b""[..], |v| v.as_bytes())
}

async fn getex_me(
    State(reference): State<Arc<Reference>>,
    headers: HeaderMap,
) -> std::result::Result<Json<NodeUser>, StatusCode> {
    match reference.getex_user(token(&headers)).await {
        Ok(Some(user)) => Ok(Json(user)),
        Ok(None) => Err(StatusCode::UNAUTHORIZED),
        Err(_) => Err(StatusCode::SERVICE_UNAVAILABLE),
    }
}

fn json(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn getex_verbatim_me(
    State(reference): State<Arc<Reference>>,
    headers: HeaderMap,
) -> std::result::Result<Response, StatusCode> {
    match reference.getex(token(&headers)).await {
        Ok(Some(body)) => Ok(json(body)),
        Ok(None) => Err(StatusCode::UNAUTHORIZED),
        Err(_) => Err(StatusCode::SERVICE_UNAVAILABLE),
    }
}

async fn hash_script_me(
    State(reference): State<Arc<Reference>>,
    headers: HeaderMap,
) -> std::result::Result<Response, StatusCode> {
    match reference.hash_json(token(&headers)).await {
        Ok(Some(body)) => Ok(json(body)),
        Ok(None) => Err(StatusCode::UNAUTHORIZED),
        Err(_) => Err(StatusCode::SERVICE_UNAVAILABLE),
    }
}

async fn gcra_getex_me(
    State(reference): State<Arc<Reference>>,
    headers: HeaderMap,
) -> std::result::Result<Json<NodeUser>, StatusCode> {
    let subject = headers
        .get("x-forwarded-for")
        .map_or(&b""[..], |v| last_forwarded(v.as_bytes()));
    match reference.gcra_admits(subject).await {
        Ok(true) => {}
        Ok(false) => return Err(StatusCode::TOO_MANY_REQUESTS),
        Err(_) => return Err(StatusCode::SERVICE_UNAVAILABLE),
    }
    match reference.getex_user(token(&headers)).await {
        Ok(Some(user)) => Ok(Json(user)),
        Ok(None) => Err(StatusCode::UNAUTHORIZED),
        Err(_) => Err(StatusCode::SERVICE_UNAVAILABLE),
    }
}

async fn login(State(reference): State<Arc<Reference>>) -> std::result::Result<String, StatusCode> {
    reference
        .login()
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)
}
