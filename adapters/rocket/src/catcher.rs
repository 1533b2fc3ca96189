//! Catchers that answer a failed keygate guard with the JSON envelope.
//!
//! A guard's error reaches rocket only as a status; the guards therefore note their
//! rejection in the request-local cache, and these catchers read it back.

use std::sync::OnceLock;

use keygate::web::{Envelope, Rejection};
use rocket::http::Status;
use rocket::response::content::RawJson;
use rocket::{Catcher, Request, catch, catchers};

use crate::error::json;

/// The first rejection a keygate guard made in this request.
struct Noted(OnceLock<Rejection>);

/// Notes `rejection` for the catchers (the first one of a request wins).
pub(crate) fn note(request: &Request<'_>, rejection: Rejection) {
    let _ = request
        .local_cache(|| Noted(OnceLock::new()))
        .0
        .set(rejection);
}

/// The rejection a keygate guard made in this request, if any, as the core's enum: what a
/// catcher of your own can answer (`rejection.body()` is the JSON envelope).
///
/// ```
/// use keygate_rocket::rejection;
/// use rocket::{Request, catch};
///
/// #[catch(401)]
/// fn unauthorized(request: &Request<'_>) -> String {
///     rejection(request).map_or_else(|| "unauthorized".to_owned(), |r| r.body())
/// }
/// ```
pub fn rejection(request: &Request<'_>) -> Option<Rejection> {
    request
        .local_cache(|| Noted(OnceLock::new()))
        .0
        .get()
        .copied()
}

/// Catchers for 401, 403, 503 and 500 that answer the JSON envelope: the message of the keygate
/// guard's rejection when one caused the status, a generic one otherwise.
///
/// [`KeygateFairing`](crate::KeygateFairing) registers them at `/` unless told
/// [`without_catchers`](crate::KeygateFairing::without_catchers); register them yourself
/// (`rocket.register("/api", keygate_rocket::catchers())`) to put them elsewhere.
pub fn catchers() -> Vec<Catcher> {
    catchers![unauthorized, forbidden, unavailable, internal]
}

fn answer(status: Status, request: &Request<'_>) -> (Status, RawJson<String>) {
    let body = match rejection(request) {
        Some(rejection) if rejection.status() == status.code => rejection.body(),
        _ => Envelope::error(status.reason_lossy()).to_json(),
    };
    json(status, body)
}

#[catch(401)]
fn unauthorized(request: &Request<'_>) -> (Status, RawJson<String>) {
    answer(Status::Unauthorized, request)
}

#[catch(403)]
fn forbidden(request: &Request<'_>) -> (Status, RawJson<String>) {
    answer(Status::Forbidden, request)
}

#[catch(503)]
fn unavailable(request: &Request<'_>) -> (Status, RawJson<String>) {
    answer(Status::ServiceUnavailable, request)
}

#[catch(500)]
fn internal(request: &Request<'_>) -> (Status, RawJson<String>) {
    answer(Status::InternalServerError, request)
}
