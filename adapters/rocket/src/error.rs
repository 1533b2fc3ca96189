//! The adapter's two error types and their rocket responses: the JSON envelope with the
//! status the core chose, logged by the core's one policy.

use rocket::Request;
use rocket::http::Status;
use rocket::response::{self, Responder, content::RawJson};

keygate::error_types! {
    /// The error type for handlers that call keygate: `?` turns a [`keygate::Error`] into it,
    /// and it answers [`keygate::Error::status`] (503 for backend trouble, 500 otherwise) with
    /// the JSON envelope of [`keygate::Error::body`], which never shows internals. The detail
    /// goes to the log by the core's one policy ([`keygate::adapter::report_error`]: backend
    /// trouble at WARN at most once a second, anything else at ERROR).
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
    ApiError;
    /// Why a guard refused the request, the Rocket form of the core's
    /// [`keygate::web::Rejection`]: the error half of `Outcome::Error` for [`Auth`],
    /// [`MaybeAuth`] and [`Sessions`].
    ///
    /// As a responder it answers the rejection's status with its JSON envelope, so a handler
    /// taking `Result<Auth<T>, Rejection>` can return it as it is. When a guard fails,
    /// rocket answers through a catcher instead; the catchers of
    /// [`KeygateFairing`](crate::KeygateFairing) (or [`catchers`](crate::catchers)) give the
    /// same envelope.
    ///
    /// [`Auth`]: crate::Auth
    /// [`MaybeAuth`]: crate::MaybeAuth
    /// [`Sessions`]: crate::Sessions
    Rejection;
}

impl<'r, 'o: 'r> Responder<'r, 'o> for ApiError {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'o> {
        keygate::adapter::report_error(self.inner());
        json(status(self.status()), self.inner().body()).respond_to(request)
    }
}

impl<'r, 'o: 'r> Responder<'r, 'o> for Rejection {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'o> {
        json(status(self.status()), self.inner().body()).respond_to(request)
    }
}

pub(crate) fn status(code: u16) -> Status {
    Status::from_code(code).unwrap_or(Status::InternalServerError)
}

/// `body` (JSON text) with `status` and `content-type: application/json`.
pub(crate) fn json(status: Status, body: String) -> (Status, RawJson<String>) {
    (status, RawJson(body))
}
