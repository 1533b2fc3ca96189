//! The adapter's two error types and their HTTP answers: the JSON envelope with the status
//! the core chose, logged by the core's one policy.

use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, ResponseError};

keygate::error_types! {
    /// An error for handlers that call the core (login, logout, listing): converts from
    /// [`keygate::Error`] with `?` and answers 503 for backend trouble, 500 otherwise, with
    /// the envelope as body and without internals in it. The detail goes to the log by the
    /// core's one policy ([`keygate::adapter::report_error`]: backend trouble at WARN at
    /// most once a second, anything else at ERROR).
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
    ApiError;
    /// Why an extractor did not give a session, the actix-web form of the core's
    /// [`keygate::web::Rejection`]: 401 (no token, malformed token, unknown or expired
    /// session), 403 (a cross-origin cookie-authenticated unsafe request), 503 (session
    /// backend unavailable) or 500 (the middleware is not installed), with the envelope
    /// `{"success":false,"errorMsg":"..."}` as body.
    Rejection;
}

impl ResponseError for Rejection {
    fn status_code(&self) -> StatusCode {
        status(self.status())
    }

    fn error_response(&self) -> HttpResponse {
        let rejection = self.inner();
        if let keygate::web::Rejection::MissingLayer(what) = rejection {
            keygate::adapter::report_missing_component(what);
        }
        keygate::adapter::report_rejection(rejection);
        envelope(self.status_code(), rejection.body())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status(self.status())
    }

    fn error_response(&self) -> HttpResponse {
        keygate::adapter::report_error(self.inner());
        envelope(self.status_code(), self.inner().body())
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
