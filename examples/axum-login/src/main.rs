//! keygate's flagship example on axum: phone + SMS-code login and sessions, plus flash
//! sales with an in-process order consumer and payment callbacks under a distributed lock.
//! The HTTP contract is `docs/http-api.md` in the repository; the logic lives in
//! `keygate-example`, this file only wires axum and keygate-axum to it.
//!
//! ```sh
//! cargo run -p axum-login                                 # embedded backend
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p axum-login
//! ADMIN_TOKEN=... PAY_CALLBACK_SECRET=... cargo run -p axum-login   # operator route, provider callbacks
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{delete, get, post};
use keygate_axum::{Auth, KeygateLayer, RateLimitLayer, Sessions};
use keygate_example::handlers::{
    ADMIN_TOKEN_HEADER, EVENT_STREAM, PAY_SIGNATURE_HEADER, body_chunks,
};
use keygate_example::page::{self, Asset};
use keygate_example::{App, Caller, MAX_BODY_BYTES, Reply, StartError, UserDto, startup};

const FRAMEWORK: &str = "axum";

type Shared = State<Arc<App>>;
type Segment = Result<Path<String>, PathRejection>;
/// The connection's peer: the client IP of the operator routes' budget.
type Peer = ConnectInfo<std::net::SocketAddr>;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => startup::fail(FRAMEWORK, &error),
    }
}

async fn run() -> Result<(), StartError> {
    let (config, app) = startup::prepare().await?;
    let listener = tokio::net::TcpListener::from_std(startup::bind(config.bind)?)
        .map_err(|e| StartError::new(format!("cannot listen on {}: {e}", config.bind)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::new(format!("cannot listen on {}: {e}", config.bind)))?;
    let consumer = app.start_order_consumer();
    let router = routes(Arc::clone(&app));
    startup::announce_ready(FRAMEWORK, addr, app.backend_name(), app.near_cache());
    // The peer address is the client IP of the rate limit.
    let served = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(startup::shutdown_signal())
    .await;
    consumer.shutdown().await;
    served.map_err(|e| StartError::new(format!("server failed: {e}")))
}

/// Every route of the contract; the session is loaded only on routes that need it.
fn routes(app: Arc<App>) -> Router {
    let authenticated = Router::new()
        .route("/user/me", get(me))
        .route("/user/logout", post(logout))
        .route("/user/sessions", get(sessions))
        .route("/user/sessions/{id}", delete(end_session))
        .route("/user/logout-all", post(logout_all))
        .route("/user/events", get(events))
        .route("/voucher-order/seckill/{voucher_id}", post(order_voucher))
        .route("/voucher-order/{order_id}", get(order))
        // The session is optional here: the buyer's browser sends one, the provider does not.
        .route("/order/{order_id}/pay-callback", post(pay_callback))
        .route_layer(KeygateLayer::new(app.gate()));
    Router::new()
        .route(page::INDEX.path, get(|| async { asset(&page::INDEX) }))
        .route(page::SCRIPT.path, get(|| async { asset(&page::SCRIPT) }))
        .route(page::STYLE.path, get(|| async { asset(&page::STYLE) }))
        .merge(
            // One per-IP budget for both, checked before the handler reads anything.
            // Login goes through the session layer too: its gate sets the cookie.
            Router::new()
                .route("/user/code", post(send_code))
                .route(
                    "/user/login",
                    post(login).layer(KeygateLayer::new(app.gate())),
                )
                .route_layer(RateLimitLayer::with_policy(app.login_policy())),
        )
        .route("/voucher/seckill", post(load_voucher))
        .route("/metrics", get(metrics))
        .merge(authenticated)
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .with_state(app)
}

/// A [`Reply`] as an axum response.
fn respond(reply: Reply) -> Response {
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    if let Some(seconds) = reply.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The body, at most [`MAX_BODY_BYTES`].
async fn read_body(body: Body) -> Result<axum::body::Bytes, Response> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            respond(if too_large {
                Reply::body_too_large()
            } else {
                Reply::unreadable_body()
            })
        })
}

/// A file of the page, with the page's headers (its Content-Security-Policy).
fn asset(asset: &'static Asset) -> Response {
    let mut response = Response::new(Body::from(asset.body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    for (name, value) in page::HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

/// A request header's bytes.
fn header_bytes<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers.get(name).map(HeaderValue::as_bytes)
}

async fn not_found() -> Response {
    respond(Reply::route_not_found())
}

async fn send_code(State(app): Shared, RawQuery(query): RawQuery, body: Body) -> Response {
    match read_body(body).await {
        Ok(body) => respond(app.send_code(query.as_deref(), &body).await),
        Err(response) => response,
    }
}

async fn login(State(app): Shared, sessions: Sessions<UserDto>, body: Body) -> Response {
    match read_body(body).await {
        Ok(body) => respond(app.login(&sessions, &body).await),
        Err(response) => response,
    }
}

async fn me(State(app): Shared, session: Auth<UserDto>) -> Response {
    respond(app.me(&session))
}

async fn logout(State(app): Shared, session: Auth<UserDto>) -> Response {
    respond(app.logout(&session).await)
}

async fn sessions(State(app): Shared, session: Auth<UserDto>) -> Response {
    respond(app.sessions(&session).await)
}

async fn end_session(State(app): Shared, session: Auth<UserDto>, id: Segment) -> Response {
    match id {
        Ok(Path(id)) => respond(app.end_session(&session, &id).await),
        Err(_) => respond(Reply::not_found("session")),
    }
}

async fn logout_all(State(app): Shared, session: Auth<UserDto>) -> Response {
    respond(app.logout_all(&session).await)
}

/// `GET /user/events`: Server-Sent Events until the session ends (or the server stops).
async fn events(State(app): Shared, session: Auth<UserDto>) -> Response {
    let stream = match app.session_events(&session).await {
        Ok(stream) => stream,
        Err(reply) => return respond(reply),
    };
    let body = body_chunks::<String, std::convert::Infallible>(stream);
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(EVENT_STREAM));
    for (name, value) in App::EVENT_STREAM_HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

/// The client as the operator routes' budget sees it: the peer and `X-Forwarded-For`.
fn caller<'a>(peer: &Peer, headers: &'a HeaderMap) -> Caller<'a> {
    Caller::new(
        Some(peer.0.ip()),
        headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.as_bytes()),
    )
}

async fn metrics(State(app): Shared, peer: Peer, headers: HeaderMap) -> Response {
    let presented = header_bytes(&headers, ADMIN_TOKEN_HEADER);
    match app.operator(&caller(&peer, &headers), presented).await {
        Ok(operator) => respond(app.metrics(&operator)),
        Err(refused) => respond(refused),
    }
}

async fn load_voucher(State(app): Shared, peer: Peer, headers: HeaderMap, body: Body) -> Response {
    // The operator's budget and token are checked before the body is read.
    let presented = header_bytes(&headers, ADMIN_TOKEN_HEADER);
    let operator = match app.operator(&caller(&peer, &headers), presented).await {
        Ok(operator) => operator,
        Err(refused) => return respond(refused),
    };
    match read_body(body).await {
        Ok(body) => respond(app.load_voucher(&operator, &body).await),
        Err(response) => response,
    }
}

async fn order_voucher(State(app): Shared, session: Auth<UserDto>, id: Segment) -> Response {
    match id {
        Ok(Path(id)) => respond(app.order_voucher(&session, &id).await),
        Err(_) => respond(Reply::not_found("voucher")),
    }
}

async fn order(State(app): Shared, session: Auth<UserDto>, id: Segment) -> Response {
    match id {
        Ok(Path(id)) => respond(app.order(&session, &id).await),
        Err(_) => respond(Reply::not_found("order")),
    }
}

async fn pay_callback(
    State(app): Shared,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    session: Option<Auth<UserDto>>,
    id: Segment,
) -> Response {
    let Ok(Path(id)) = id else {
        return respond(Reply::not_found("order"));
    };
    let signature = header_bytes(&headers, PAY_SIGNATURE_HEADER);
    respond(
        app.pay_callback(&id, query.as_deref(), session.as_deref(), signature)
            .await,
    )
}
