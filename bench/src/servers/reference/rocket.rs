//! Rocket 0.5's hand-written handlers.

use rocket::http::{ContentType, Status};
use rocket::request::{FromRequest, Outcome};
use rocket::serde::json::Json;
use rocket::{Build, Request, Rocket, State, get, post, routes};

use super::Reference;
use crate::Result;
use crate::servers::{ServeSpec, Variant};
use crate::user::NodeUser;

/// `base` with the routes of a reference variant; `Err(base)` for keygate's and the
/// incumbents'.
pub async fn mount(
    base: Rocket<Build>,
    spec: &ServeSpec,
) -> Result<std::result::Result<Rocket<Build>, Rocket<Build>>> {
    Ok(Ok(match spec.variant {
        Variant::Bare => base.mount("/", routes![bare_me, bare_login]),
        Variant::Getex => base
            .manage(Reference::connect(&spec.redis_url).await?)
            .mount("/", routes![getex_me, login]),
        Variant::GetexVerbatim => base
            .manage(Reference::connect(&spec.redis_url).await?)
            .mount("/", routes![getex_verbatim_me, login]),
        _ => return Ok(Err(base)),
    }))
}

#[get("/me")]
fn bare_me() -> Json<NodeUser> {
    Json(NodeUser::seed())
}

#[post("/login")]
fn bare_login() -> &'static str {
    "bare"
}

/// The raw `authorization` header, empty when absent.
struct RawToken<'r>(&'r str);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for RawToken<'r> {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, ()> {
        Outcome::Success(RawToken(
            request.headers().get_one("authorization").unwrap_or(""),
        ))
    }
}

#[get("/me")]
async fn getex_me(
    token: RawToken<'_>,
    reference: &State<Reference>,
) -> std::result::Result<Json<NodeUser>, Status> {
    match reference.getex_user(token.0.as_bytes()).await {
        Ok(Some(user)) => Ok(Json(user)),
        Ok(None) => Err(Status::Unauthorized),
        Err(_) => Err(Status::ServiceUnavailable),
    }
}

#[get("/me")]
async fn getex_verbatim_me(
    token: RawToken<'_>,
    reference: &State<Reference>,
) -> std::result::Result<(ContentType, Vec<u8>), Status> {
    match reference.getex(token.0.as_bytes()).await {
        Ok(Some(body)) => Ok((ContentType::JSON, body)),
        Ok(None) => Err(Status::Unauthorized),
        Err(_) => Err(Status::ServiceUnavailable),
    }
}

#[post("/login")]
async fn login(reference: &State<Reference>) -> std::result::Result<String, Status> {
    reference
        .login()
        .await
        .map_err(|_| Status::ServiceUnavailable)
}
