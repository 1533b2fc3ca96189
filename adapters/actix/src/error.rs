//! The adapter's errors and their HTTP answers: the JSON envelope with the status the core
//! chose.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, ResponseError};
use keygate::web::Rejection;

/// Why an extractor did not give a session: 401 (no token, malformed token, unknown or
/// expired session), 503 (session backend unavailable) or 500 (the middleware is not
/// installed), with the envelope `{"success":false,"errorMsg":"..."}` as body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeygateRejection(pub Rejection);

impl KeygateRejection {
    /// The core's rejection.
    pub fn rejection(&self) -> Rejection {
        self.0
    }
}

impl From<Rejection> for KeygateRejection {
    fn from(rejection: Rejection) -> Self {
        Self(rejection)
    }
}

impl fmt::Display for KeygateRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for KeygateRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl ResponseError for KeygateRejection {
    fn status_code(&self) -> StatusCode {
        status(self.0.status())
    }

    fn error_response(&self) -> HttpResponse {
        if let Rejection::MissingLayer(what) = self.0 {
            keygate::adapter::report_missing_component(what);
        }
        keygate::adapter::report_rejection(self.0);
        envelope(self.status_code(), self.0.body())
    }
}

/// An error for handlers that call the core (login, logout, listing): converts from
/// [`keygate::Error`] with `?` and answers 503 for backend trouble, 500 otherwise, with
/// the envelope as body and without internals in it.
///
/// ```
/// use actix_web::web;
/// use keygate_actix::keygate::web::Envelope;
/// use keygate_actix::{ApiError, Auth};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64 }
/// # impl keygate_actix::SessionUser for User { fn user_id(&self) -> keygate_actix::UserId { keygate_actix::UserId::from(self.id) } }
///
/// async fn logout(user: Auth<User>) -> Result<web::Json<Envelope<()>>, ApiError> {
///     user.logout().await?;
///     Ok(web::Json(Envelope::done()))
/// }
/// ```
#[derive(Debug)]
pub struct ApiError(pub keygate::Error);

impl ApiError {
    /// The core's error.
    pub fn into_inner(self) -> keygate::Error {
        self.0
    }
}

impl From<keygate::Error> for ApiError {
    fn from(error: keygate::Error) -> Self {
        Self(error)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status(self.0.status())
    }

    fn error_response(&self) -> HttpResponse {
        keygate::adapter::report_error(&self.0);
        envelope(self.status_code(), self.0.body())
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn envelope(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(ContentType::json())
        .body(body)
}
