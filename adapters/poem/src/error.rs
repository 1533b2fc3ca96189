//! Turning keygate's failures into poem responses: the JSON envelope with the right status.

use keygate::web::Rejection;
use poem::Response;
use poem::error::ResponseError;
use poem::http::StatusCode;

/// The error type for handlers that call keygate: `?` turns a [`keygate::Error`] into it,
/// and it answers [`keygate::Error::status`] (503 for backend trouble, 500 otherwise) with
/// the JSON envelope of [`keygate::Error::body`], which never shows internals.
///
/// ```
/// use keygate_poem::{ApiError, Auth, Envelope};
/// use poem::{handler, web::Json};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64 }
/// # impl keygate_poem::SessionUser for User { fn user_id(&self) -> keygate_poem::UserId { keygate_poem::UserId::from(self.id) } }
///
/// #[handler]
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

impl ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        status(self.0.status())
    }

    fn as_response(&self) -> Response {
        keygate::adapter::report_error(&self.0);
        json_response(self.status(), self.0.body())
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn json_response(status: StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body)
}

/// The error an extractor returns for `rejection`: its status and JSON envelope. The
/// [`Rejection`] rides along as the error's data (`error.data::<Rejection>()`), for
/// applications that re-shape errors in their own `catch_error`.
pub(crate) fn rejection_error(rejection: Rejection) -> poem::Error {
    keygate::adapter::report_rejection(rejection);
    let response = json_response(status(rejection.status()), rejection.body());
    let mut error = poem::Error::from_response(response);
    error.set_error_message(rejection.message());
    error.set_data(rejection);
    error
}
