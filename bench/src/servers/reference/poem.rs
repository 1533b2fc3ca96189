//! poem 3's hand-written handlers.

use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{Request, Response, Route, get, handler, post};

use super::Reference;
use crate::Result;
use crate::servers::{ServeSpec, Variant};
use crate::user::NodeUser;

/// Serves a reference variant; `Ok(false)` for keygate's and the incumbents'.
pub async fn run(spec: &ServeSpec) -> Result<bool> {
    use poem::EndpointExt;
    match spec.variant {
        Variant::Bare => {
            let app = Route::new()
                .at("/me", get(bare_me))
                .at("/login", post(bare_login));
            crate::servers::poem::run(spec.port, app).await?;
        }
        Variant::Getex => {
            let app = Route::new()
                .at("/me", get(getex_me))
                .at("/login", post(login))
                .data(Reference::connect(&spec.redis_url).await?);
            crate::servers::poem::run(spec.port, app).await?;
        }
        Variant::GetexVerbatim => {
            let app = Route::new()
                .at("/me", get(getex_verbatim_me))
                .at("/login", post(login))
                .data(Reference::connect(&spec.redis_url).await?);
            crate::servers::poem::run(spec.port, app).await?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

#[handler]
fn bare_me() -> Json<NodeUser> {
    Json(NodeUser::seed())
}

#[handler]
fn bare_login() -> &'static str {
    "bare"
}

fn token(req: &Request) -> &[u8] {
    req.headers()
        .get("authorization")
        .map_or(&b""[..], |v| v.as_bytes())
}

#[handler]
async fn getex_me(req: &Request, reference: Data<&Reference>) -> poem::Result<Json<NodeUser>> {
    match reference.getex_user(token(req)).await {
        Ok(Some(user)) => Ok(Json(user)),
        Ok(None) => Err(poem::Error::from_status(StatusCode::UNAUTHORIZED)),
        Err(_) => Err(poem::Error::from_status(StatusCode::SERVICE_UNAVAILABLE)),
    }
}

#[handler]
async fn getex_verbatim_me(req: &Request, reference: Data<&Reference>) -> Response {
    match reference.getex(token(req)).await {
        Ok(Some(body)) => Response::builder()
            .content_type("application/json")
            .body(body),
        Ok(None) => Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .finish(),
        Err(_) => Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .finish(),
    }
}

#[handler]
async fn login(reference: Data<&Reference>) -> poem::Result<String> {
    reference
        .login()
        .await
        .map_err(|_| poem::Error::from_status(StatusCode::SERVICE_UNAVAILABLE))
}
