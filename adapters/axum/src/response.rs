//! Turning keygate's outcomes into responses with the JSON envelope.

use axum_core::body::Body;
use axum_core::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use keygate::web::Rejection;

fn json(status: u16, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Why an extractor refused the request: 401, 403 (a cross-origin cookie-authenticated
/// unsafe request), 503, or 500 for a missing layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeygateRejection(pub Rejection);

impl IntoResponse for KeygateRejection {
    fn into_response(self) -> Response {
        if let Rejection::MissingLayer(what) = self.0 {
            keygate::adapter::report_missing_component(what);
        }
        keygate::adapter::report_rejection(self.0);
        json(self.0.status(), self.0.body())
    }
}

impl std::fmt::Display for KeygateRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for KeygateRejection {}

/// A keygate error returned from a handler: 503 for backend trouble, 500 otherwise, with
/// the JSON envelope. Handlers use `?` on keygate calls.
#[derive(Debug)]
pub struct ApiError(pub keygate::Error);

impl From<keygate::Error> for ApiError {
    fn from(error: keygate::Error) -> Self {
        Self(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The client gets a generic message; the detail goes to the log (it holds no token).
        tracing::error!(error = %self.0, "request failed");
        json(self.0.status(), self.0.body())
    }
}
