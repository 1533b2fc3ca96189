//! keygate's login example on poem: phone + SMS-code login and sessions, on the HTTP
//! contract of `docs/http-api.md` in the repository. The logic lives in
//! `keygate-example`; this file only wires poem and keygate-poem to it.
//!
//! ```sh
//! cargo run -p poem-login                                 # embedded backend
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p poem-login
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use keygate_example::handlers::{ADMIN_TOKEN_HEADER, EVENT_STREAM, body_chunks};
use keygate_example::page::{self, Asset};
use keygate_example::{App, Caller, MAX_BODY_BYTES, Reply, StartError, UserDto, startup};
use keygate_poem::{Auth, KeygateMiddleware, RateLimitMiddleware, Rejection, Sessions};
use poem::error::ReadBodyError;
use poem::http::StatusCode;
use poem::listener::TcpAcceptor;
use poem::web::{Data, Path};
use poem::{
    Body, EndpointExt, IntoResponse, Request, Response, Route, Server, delete, get, handler, post,
};

const FRAMEWORK: &str = "poem";

type Shared<'a> = Data<&'a Arc<App>>;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => startup::fail(FRAMEWORK, &error),
    }
}

async fn run() -> Result<(), StartError> {
    let (config, app) = startup::prepare().await?;
    let cannot_listen =
        |e: std::io::Error| StartError::new(format!("cannot listen on {}: {e}", config.bind));
    let listener = startup::bind(config.bind)?;
    let addr = listener.local_addr().map_err(cannot_listen)?;
    let acceptor = TcpAcceptor::from_std(listener).map_err(cannot_listen)?;
    // The session is loaded only on the routes that need it.
    let auth = || KeygateMiddleware::new(app.gate());
    let limit = || RateLimitMiddleware::with_policy(app.login_policy());
    let routes = Route::new()
        .at(page::INDEX.path, get(index))
        .at(page::SCRIPT.path, get(script))
        .at(page::STYLE.path, get(style))
        // One per-IP budget for both, checked before the handler reads anything.
        .at("/user/code", post(send_code).with(limit()))
        .at("/user/login", post(login).with(auth()).with(limit()))
        .at("/user/me", get(me).with(auth()))
        .at("/user/logout", post(logout).with(auth()))
        .at("/user/sessions", get(sessions).with(auth()))
        .at("/user/sessions/:id", delete(end_session).with(auth()))
        .at("/user/logout-all", post(logout_all).with(auth()))
        .at("/user/events", get(events).with(auth()))
        .at("/metrics", get(metrics))
        .data(Arc::clone(&app))
        .catch_all_error(answer_error);
    startup::announce_ready(FRAMEWORK, addr, app.backend_name(), app.near_cache());
    // Open event streams close when the shutdown starts: it does not wait for them.
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(routes, startup::shutdown_signal(), None)
        .await
        .map_err(|e| StartError::new(format!("server failed: {e}")))
}

/// A [`Reply`] as a poem response.
struct Json(Reply);

impl IntoResponse for Json {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = Response::builder()
            .status(status)
            .content_type(self.0.content_type);
        if let Some(seconds) = self.0.retry_after {
            response = response.header("retry-after", seconds);
        }
        response.body(self.0.body)
    }
}

/// Errors poem raises itself (no route, wrong method, ...) get the envelope too;
/// keygate's rejections already carry it.
async fn answer_error(error: poem::Error) -> Response {
    if error.is::<Rejection>() {
        return error.into_response();
    }
    let status = error.status();
    let reply = if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
        Reply::route_not_found()
    } else {
        Reply::error(
            status.as_u16(),
            status.canonical_reason().unwrap_or("error"),
        )
    };
    Json(reply).into_response()
}

/// The body, at most [`MAX_BODY_BYTES`].
async fn read_body(body: Body) -> Result<Vec<u8>, Json> {
    match body.into_bytes_limit(MAX_BODY_BYTES).await {
        Ok(body) => Ok(body.to_vec()),
        Err(ReadBodyError::PayloadTooLarge) => Err(Json(Reply::body_too_large())),
        Err(_) => Err(Json(Reply::unreadable_body())),
    }
}

/// A file of the page, with the page's headers (its Content-Security-Policy).
fn asset(asset: &'static Asset) -> Response {
    let mut response = Response::builder().content_type(asset.content_type);
    for (name, value) in page::HEADERS {
        response = response.header(name, value);
    }
    response.body(asset.body)
}

#[handler]
fn index() -> Response {
    asset(&page::INDEX)
}

#[handler]
fn script() -> Response {
    asset(&page::SCRIPT)
}

#[handler]
fn style() -> Response {
    asset(&page::STYLE)
}

#[handler]
async fn send_code(Data(app): Shared<'_>, request: &Request, body: Body) -> Json {
    match read_body(body).await {
        Ok(body) => Json(app.send_code(request.uri().query(), &body).await),
        Err(reply) => reply,
    }
}

#[handler]
async fn login(Data(app): Shared<'_>, gate: Sessions<UserDto>, body: Body) -> Json {
    match read_body(body).await {
        Ok(body) => Json(app.login(&gate, &body).await),
        Err(reply) => reply,
    }
}

#[handler]
async fn metrics(Data(app): Shared<'_>, request: &Request) -> Json {
    let presented = request
        .headers()
        .get(ADMIN_TOKEN_HEADER)
        .map(|v| v.as_bytes());
    let caller = Caller::new(
        request.remote_addr().as_socket_addr().map(|addr| addr.ip()),
        request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.as_bytes()),
    );
    Json(match app.operator(&caller, presented).await {
        Ok(operator) => app.metrics(&operator),
        Err(refused) => refused,
    })
}

#[handler]
fn me(Data(app): Shared<'_>, session: Auth<UserDto>) -> Json {
    Json(app.me(&session))
}

#[handler]
async fn logout(Data(app): Shared<'_>, session: Auth<UserDto>) -> Json {
    Json(app.logout(&session).await)
}

#[handler]
async fn sessions(Data(app): Shared<'_>, session: Auth<UserDto>) -> Json {
    Json(app.sessions(&session).await)
}

#[handler]
async fn end_session(
    Data(app): Shared<'_>,
    session: Auth<UserDto>,
    Path(id): Path<String>,
) -> Json {
    Json(app.end_session(&session, &id).await)
}

#[handler]
async fn logout_all(Data(app): Shared<'_>, session: Auth<UserDto>) -> Json {
    Json(app.logout_all(&session).await)
}

/// `GET /user/events`: Server-Sent Events until the session ends (or the server stops).
#[handler]
async fn events(Data(app): Shared<'_>, session: Auth<UserDto>) -> Response {
    match app.session_events(&session).await {
        Ok(stream) => {
            let mut response = Response::builder().content_type(EVENT_STREAM);
            for (name, value) in App::EVENT_STREAM_HEADERS {
                response = response.header(name, value);
            }
            response.body(Body::from_bytes_stream(
                body_chunks::<String, std::io::Error>(stream),
            ))
        }
        Err(reply) => Json(reply).into_response(),
    }
}
