//! keygate's login example on actix-web: phone + SMS-code login and sessions, on the HTTP
//! contract of `docs/http-api.md` in the repository. The logic lives in
//! `keygate-example`; this file only wires actix-web and keygate-actix to it.
//!
//! ```sh
//! cargo run -p actix-login                                 # embedded backend
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p actix-login
//! ```

use std::process::ExitCode;

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, RETRY_AFTER};
use actix_web::{HttpRequest, HttpResponse, HttpServer, Resource, Route, web};
use keygate_actix::{Auth, KeygateMiddleware, RateLimitMiddleware, Sessions};
use keygate_example::handlers::{ADMIN_TOKEN_HEADER, EVENT_STREAM, body_chunks};
use keygate_example::page::{self, Asset};
use keygate_example::{App, Caller, MAX_BODY_BYTES, Reply, StartError, UserDto, startup};

const FRAMEWORK: &str = "actix";

type Shared = web::Data<App>;

#[actix_web::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => startup::fail(FRAMEWORK, &error),
    }
}

async fn run() -> Result<(), StartError> {
    let (config, app) = startup::prepare().await?;
    let listener = startup::bind(config.bind)?;
    let cannot_listen =
        |e: std::io::Error| StartError::new(format!("cannot listen on {}: {e}", config.bind));
    let addr = listener.local_addr().map_err(cannot_listen)?;
    let state = web::Data::from(std::sync::Arc::clone(&app));
    let gate = app.gate();
    let policy = app.login_policy();
    let server = HttpServer::new(move || {
        // The session is loaded only on the routes that need it.
        let authenticated =
            |path: &str, route: Route| open(path, route).wrap(KeygateMiddleware::new(gate.clone()));
        // One per-IP budget for both, checked before the handler reads anything.
        let limited = |path: &str, route: Route| {
            open(path, route).wrap(RateLimitMiddleware::with_policy(policy.clone()))
        };
        actix_web::App::new()
            .app_data(state.clone())
            .service(open(
                page::INDEX.path,
                web::get().to(|| asset(&page::INDEX)),
            ))
            .service(open(
                page::SCRIPT.path,
                web::get().to(|| asset(&page::SCRIPT)),
            ))
            .service(open(
                page::STYLE.path,
                web::get().to(|| asset(&page::STYLE)),
            ))
            .service(limited("/user/code", web::post().to(send_code)))
            // Login goes through the session middleware too (its gate sets the cookie),
            // inside the limiter: in actix the last `wrap` runs first, and a refused login
            // must not load a session.
            .service(
                open("/user/login", web::post().to(login))
                    .wrap(KeygateMiddleware::new(gate.clone()))
                    .wrap(RateLimitMiddleware::with_policy(policy.clone())),
            )
            .service(authenticated("/user/me", web::get().to(me)))
            .service(authenticated("/user/logout", web::post().to(logout)))
            .service(authenticated("/user/sessions", web::get().to(sessions)))
            .service(authenticated(
                "/user/sessions/{id}",
                web::delete().to(end_session),
            ))
            .service(authenticated(
                "/user/logout-all",
                web::post().to(logout_all),
            ))
            .service(authenticated("/user/events", web::get().to(events)))
            .service(open("/metrics", web::get().to(metrics)))
            .default_service(web::to(not_found))
    })
    .listen(listener)
    .map_err(cannot_listen)?
    .run();
    startup::announce_ready(FRAMEWORK, addr, app.backend_name(), app.near_cache());
    server
        .await
        .map_err(|e| StartError::new(format!("server failed: {e}")))
}

/// A resource whose other methods answer 404 like unknown routes.
fn open(path: &str, route: Route) -> Resource {
    web::resource(path)
        .route(route)
        .default_service(web::to(not_found))
}

/// A [`Reply`] as an actix-web response.
fn respond(reply: Reply) -> HttpResponse {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    response.insert_header((CONTENT_TYPE, reply.content_type));
    if let Some(seconds) = reply.retry_after {
        response.insert_header((RETRY_AFTER, seconds));
    }
    response.body(reply.body)
}

/// The body, at most [`MAX_BODY_BYTES`].
async fn read_body(payload: web::Payload) -> Result<web::Bytes, HttpResponse> {
    match payload.to_bytes_limited(MAX_BODY_BYTES).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(_)) => Err(respond(Reply::unreadable_body())),
        Err(_) => Err(respond(Reply::body_too_large())),
    }
}

/// A file of the page, with the page's headers (its Content-Security-Policy).
async fn asset(asset: &'static Asset) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    response.content_type(asset.content_type);
    for header in page::HEADERS {
        response.insert_header(header);
    }
    response.body(asset.body)
}

async fn metrics(app: Shared, request: HttpRequest) -> HttpResponse {
    let presented = request
        .headers()
        .get(ADMIN_TOKEN_HEADER)
        .map(|v| v.as_bytes());
    let caller = Caller::new(
        request.peer_addr().map(|addr| addr.ip()),
        request
            .headers()
            .get_all("x-forwarded-for")
            .map(|v| v.as_bytes()),
    );
    match app.operator(&caller, presented).await {
        Ok(operator) => respond(app.metrics(&operator)),
        Err(refused) => respond(refused),
    }
}

async fn not_found() -> HttpResponse {
    respond(Reply::route_not_found())
}

async fn send_code(app: Shared, request: HttpRequest, body: web::Payload) -> HttpResponse {
    match read_body(body).await {
        Ok(body) => respond(app.send_code(Some(request.query_string()), &body).await),
        Err(response) => response,
    }
}

async fn login(app: Shared, sessions: Sessions<UserDto>, body: web::Payload) -> HttpResponse {
    match read_body(body).await {
        Ok(body) => respond(app.login(&sessions, &body).await),
        Err(response) => response,
    }
}

async fn me(app: Shared, session: Auth<UserDto>) -> HttpResponse {
    respond(app.me(&session))
}

async fn logout(app: Shared, session: Auth<UserDto>) -> HttpResponse {
    respond(app.logout(&session).await)
}

async fn sessions(app: Shared, session: Auth<UserDto>) -> HttpResponse {
    respond(app.sessions(&session).await)
}

async fn end_session(app: Shared, session: Auth<UserDto>, id: web::Path<String>) -> HttpResponse {
    respond(app.end_session(&session, &id).await)
}

async fn logout_all(app: Shared, session: Auth<UserDto>) -> HttpResponse {
    respond(app.logout_all(&session).await)
}

/// `GET /user/events`: Server-Sent Events until the session ends (or the server stops).
async fn events(app: Shared, session: Auth<UserDto>) -> HttpResponse {
    match app.session_events(&session).await {
        Ok(stream) => {
            let mut response = HttpResponse::Ok();
            response.insert_header((CONTENT_TYPE, EVENT_STREAM));
            for header in App::EVENT_STREAM_HEADERS {
                response.insert_header(header);
            }
            response.streaming(body_chunks::<web::Bytes, std::convert::Infallible>(stream))
        }
        Err(reply) => respond(reply),
    }
}
