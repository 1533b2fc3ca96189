//! actix-web 4's hand-written handlers.

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

use super::Reference;
use crate::Result;
use crate::servers::{ServeSpec, Variant, workers};
use crate::user::NodeUser;

/// Serves a reference variant; `Ok(false)` for keygate's and the incumbents'.
pub async fn run(spec: &ServeSpec) -> Result<bool> {
    let addr = ("127.0.0.1", spec.port);
    match spec.variant {
        Variant::Bare => {
            HttpServer::new(|| {
                App::new()
                    .route("/me", web::get().to(bare_me))
                    .route("/login", web::post().to(bare_login))
            })
            .workers(workers())
            .bind(addr)?
            .run()
            .await?;
        }
        Variant::Getex | Variant::GetexVerbatim => {
            let reference = web::Data::new(Reference::connect(&spec.redis_url).await?);
            let verbatim = spec.variant == Variant::GetexVerbatim;
            HttpServer::new(move || {
                let me = if verbatim {
                    web::get().to(getex_verbatim_me)
                } else {
                    web::get().to(getex_me)
                };
                App::new()
                    .app_data(reference.clone())
                    .route("/me", me)
                    .route("/login", web::post().to(login))
            })
            .workers(workers())
            .bind(addr)?
            .run()
            .await?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

async fn bare_me() -> web::Json<NodeUser> {
    web::Json(NodeUser::seed())
}

async fn bare_login() -> &'static str {
    "bare"
}

fn token(req: &HttpRequest) -> &[u8] {
    req.headers()
        .get("authorization")
        .map_or(&b""[..], |v| v.as_bytes())
}

fn status(code: StatusCode) -> actix_web::Error {
    actix_web::error::InternalError::new("", code).into()
}

async fn getex_me(
    reference: web::Data<Reference>,
    req: HttpRequest,
) -> std::result::Result<web::Json<NodeUser>, actix_web::Error> {
    match reference.getex_user(token(&req)).await {
        Ok(Some(user)) => Ok(web::Json(user)),
        Ok(None) => Err(status(StatusCode::UNAUTHORIZED)),
        Err(_) => Err(status(StatusCode::SERVICE_UNAVAILABLE)),
    }
}

async fn getex_verbatim_me(reference: web::Data<Reference>, req: HttpRequest) -> HttpResponse {
    match reference.getex(token(&req)).await {
        Ok(Some(body)) => HttpResponse::Ok()
            .content_type("application/json")
            .body(body),
        Ok(None) => HttpResponse::Unauthorized().finish(),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

async fn login(reference: web::Data<Reference>) -> HttpResponse {
    match reference.login().await {
        Ok(token) => HttpResponse::Ok().body(token),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}
