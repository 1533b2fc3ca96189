//! The adapter's two error types and their poem responses: the JSON envelope with the
//! status the core chose, logged by the core's one policy when rendered.

use poem::Response;
use poem::error::ResponseError;
use poem::http::StatusCode;

keygate::error_types! {
    /// The error type for handlers that call keygate: `?` turns a [`keygate::Error`] into it,
    /// and it answers [`keygate::Error::status`] (503 for backend trouble, 500 otherwise) with
    /// the JSON envelope of [`keygate::Error::body`], which never shows internals. The detail
    /// goes to the log by the core's one policy ([`keygate::adapter::report_error`]: backend
    /// trouble at WARN at most once a second, anything else at ERROR).
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
    ApiError;
    /// Why an extractor refused the request, the poem form of the core's
    /// [`keygate::web::Rejection`]: 401 (no valid session), 403 (a cross-origin
    /// cookie-authenticated unsafe request), 503 (backend unavailable) or 500 naming
    /// [`KeygateMiddleware`](crate::KeygateMiddleware) when it is missing, with the JSON
    /// envelope.
    ///
    /// The extractors [`Auth`](crate::Auth), [`MaybeAuth`](crate::MaybeAuth) and
    /// [`Sessions`](crate::Sessions) fail with a `poem::Error` made of it, so an
    /// application that re-shapes errors in its own `catch_error` recognises keygate's
    /// with `error.is::<Rejection>()` or `error.downcast_ref::<Rejection>()`.
    ///
    /// ```
    /// use keygate_poem::Rejection;
    /// use poem::{Response, http::StatusCode};
    ///
    /// async fn answer_error(error: poem::Error) -> Response {
    ///     match error.downcast_ref::<Rejection>() {
    ///         Some(rejection) if rejection.status() == 401 => Response::builder()
    ///             .status(StatusCode::UNAUTHORIZED)
    ///             .body("please log in"),
    ///         _ => error.into_response(), // keygate's envelope, or poem's own answer
    ///     }
    /// }
    /// ```
    Rejection;
}

impl ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        status(ApiError::status(self))
    }

    fn as_response(&self) -> Response {
        keygate::adapter::report_error(self.inner());
        json_response(ResponseError::status(self), self.inner().body())
    }
}

impl ResponseError for Rejection {
    fn status(&self) -> StatusCode {
        status(Rejection::status(self))
    }

    fn as_response(&self) -> Response {
        let rejection = self.inner();
        if let keygate::web::Rejection::MissingLayer(what) = rejection {
            keygate::adapter::report_missing_component(what);
        }
        keygate::adapter::report_rejection(rejection);
        json_response(ResponseError::status(self), rejection.body())
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
