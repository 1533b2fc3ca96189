//! Turning keygate's failures into rocket responses: the JSON envelope with the right status.

use keygate::web::Rejection;
use rocket::Request;
use rocket::http::Status;
use rocket::response::{self, Responder, content::RawJson};

/// The error type for handlers that call keygate: `?` turns a [`keygate::Error`] into it,
/// and it answers [`keygate::Error::status`] (503 for backend trouble, 500 otherwise) with
/// the JSON envelope of [`keygate::Error::body`], which never shows internals.
///
/// ```
/// use keygate_rocket::{ApiError, Auth, Envelope};
/// use rocket::{post, serde::json::Json};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64 }
/// # impl keygate_rocket::SessionUser for User { fn user_id(&self) -> keygate_rocket::UserId { keygate_rocket::UserId::from(self.id) } }
///
/// #[post("/user/logout")]
/// async fn logout(auth: Auth<User>) -> Result<Json<Envelope<()>>, ApiError> {
///     auth.logout().await?;
///     Ok(Json(Envelope::done()))
/// }
/// ```
#[derive(Debug)]
pub struct ApiError(pub keygate::Error);

impl From<keygate::Error> for ApiError {
    fn from(error: keygate::Error) -> Self {
        Self(error)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl<'r, 'o: 'r> Responder<'r, 'o> for ApiError {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'o> {
        keygate::adapter::report_error(&self.0);
        json(status(self.0.status()), self.0.body()).respond_to(request)
    }
}

/// Why a guard refused the request: the error half of `Outcome::Error` for [`Auth`],
/// [`MaybeAuth`] and [`Sessions`].
///
/// As a responder it answers the rejection's status with its JSON envelope, so a handler
/// taking `Result<Auth<T>, KeygateRejection>` can return it as it is. When a guard fails,
/// rocket answers through a catcher instead; the catchers of
/// [`KeygateFairing`](crate::KeygateFairing) (or [`catchers`](crate::catchers)) give the
/// same envelope.
///
/// [`Auth`]: crate::Auth
/// [`MaybeAuth`]: crate::MaybeAuth
/// [`Sessions`]: crate::Sessions
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeygateRejection(pub Rejection);

impl KeygateRejection {
    /// The HTTP status.
    pub fn status(self) -> Status {
        status(self.0.status())
    }
}

impl std::fmt::Display for KeygateRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for KeygateRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl<'r, 'o: 'r> Responder<'r, 'o> for KeygateRejection {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'o> {
        json(self.status(), self.0.body()).respond_to(request)
    }
}

pub(crate) fn status(code: u16) -> Status {
    Status::from_code(code).unwrap_or(Status::InternalServerError)
}

/// `body` (JSON text) with `status` and `content-type: application/json`.
pub(crate) fn json(status: Status, body: String) -> (Status, RawJson<String>) {
    (status, RawJson(body))
}
