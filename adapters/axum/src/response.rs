//! The adapter's two error types and their answers: the JSON envelope with the status the
//! core chose, logged by the core's one policy.

use axum_core::body::Body;
use axum_core::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

pub(crate) fn json(status: u16, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

keygate::error_types! {
    /// A keygate error returned from a handler: `?` turns a [`keygate::Error`] into it, and
    /// it answers 503 for backend trouble, 500 otherwise, with the JSON envelope of
    /// [`keygate::Error::body`] (no internals). The detail goes to the log by the core's one
    /// policy ([`keygate::adapter::report_error`]: backend trouble at WARN at most once a
    /// second, anything else at ERROR).
    ///
    /// ```
    /// use keygate_axum::{ApiError, Auth};
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64 }
    /// # impl keygate_axum::SessionUser for User { fn user_id(&self) -> keygate_axum::UserId { keygate_axum::UserId::from(self.id) } }
    ///
    /// async fn logout(user: Auth<User>) -> Result<(), ApiError> {
    ///     user.logout().await?;
    ///     Ok(())
    /// }
    /// ```
    ApiError;
    /// Why an extractor refused the request, the axum form of the core's
    /// [`keygate::web::Rejection`]: 401 (no valid session), 403 (a cross-origin
    /// cookie-authenticated unsafe request), 503 (backend unavailable) or 500 naming
    /// [`KeygateLayer`](crate::KeygateLayer) when it is missing, with the JSON envelope.
    Rejection;
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let rejection = self.inner();
        if let keygate::web::Rejection::MissingLayer(what) = rejection {
            keygate::adapter::report_missing_component(what);
        }
        keygate::adapter::report_rejection(rejection);
        json(rejection.status(), rejection.body())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The client gets a generic message; the detail goes to the log (it holds no token).
        keygate::adapter::report_error(self.inner());
        json(self.status(), self.inner().body())
    }
}
