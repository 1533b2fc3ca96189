//! keygate's login example on Rocket: phone + SMS-code login and sessions, on the HTTP
//! contract of `docs/http-api.md` in the repository. The logic lives in
//! `keygate-example`; this file only wires Rocket and keygate-rocket to it.
//!
//! ```sh
//! cargo run -p rocket-login                                 # embedded backend
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p rocket-login
//! ```

use std::io::Cursor;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use keygate_example::handlers::{ADMIN_TOKEN_HEADER, EVENT_STREAM, EventStream};
use keygate_example::page::{self, Asset};
use keygate_example::{App, Caller, MAX_BODY_BYTES, Reply, StartError, UserDto, startup};
use keygate_rocket::{Auth, KeygateFairing, RateLimitFairing, RateLimited, Sessions};
use rocket::config::LogLevel;
use rocket::data::{Data, ToByteUnit};
use rocket::error::ErrorKind;
use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::http::uri::Origin;
use rocket::request::{self, FromRequest};
use rocket::response::{self, Responder, Response};
use rocket::{Request, State, catch, catchers, delete, get, post, routes};

const FRAMEWORK: &str = "rocket";

type Shared = State<Arc<App>>;

#[rocket::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => startup::fail(FRAMEWORK, &error),
    }
}

async fn run() -> Result<(), StartError> {
    let (config, app) = startup::prepare().await?;
    let (backend, near_cache) = (app.backend_name(), app.near_cache());
    // Rocket's own log stays off: it would print request lines with their query string,
    // which can carry a token.
    let figment = rocket::Config::figment()
        .merge(("address", config.bind.ip()))
        .merge(("port", config.bind.port()))
        .merge(("log_level", LogLevel::Off))
        .merge(("cli_colors", false));
    let launched = rocket::custom(figment)
        .attach(KeygateFairing::new(app.gate()))
        // The per-IP budget of `send_code` and `login` (their `RateLimited` guard); its
        // catcher answers 429 with `Retry-After`.
        .attach(RateLimitFairing::with_policy(app.login_policy()))
        .attach(AdHoc::on_liftoff("ready line", move |rocket| {
            Box::pin(async move {
                let c = rocket.config();
                let addr = SocketAddr::new(c.address, c.port);
                startup::announce_ready(FRAMEWORK, addr, backend, near_cache);
            })
        }))
        .manage(app)
        .mount(
            "/",
            routes![
                index,
                script,
                style,
                send_code,
                login,
                me,
                logout,
                sessions,
                end_session,
                logout_all,
                events,
                metrics
            ],
        )
        .register("/", catchers![not_found, any_status])
        .launch()
        .await;
    match launched {
        Ok(_) => Ok(()),
        Err(e) => Err(StartError::new(match e.kind() {
            ErrorKind::Bind(io) => format!("cannot listen on {}: {io}", config.bind),
            other => format!("server failed: {other}"),
        })),
    }
}

/// A [`Reply`] as a Rocket response.
struct Json(Reply);

impl<'r> Responder<'r, 'static> for Json {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let Reply {
            status,
            body,
            retry_after,
            content_type,
            ..
        } = self.0;
        let mut response = Response::build();
        response
            .status(Status::new(status))
            .raw_header("Content-Type", content_type)
            .sized_body(body.len(), Cursor::new(body));
        if let Some(seconds) = retry_after {
            response.raw_header("Retry-After", seconds.to_string());
        }
        response.ok()
    }
}

/// The body, at most [`MAX_BODY_BYTES`].
async fn read_body(data: Data<'_>) -> Result<Vec<u8>, Json> {
    match data.open(MAX_BODY_BYTES.bytes()).into_bytes().await {
        Ok(body) if body.is_complete() => Ok(body.into_inner()),
        Ok(_) => Err(Json(Reply::body_too_large())),
        Err(_) => Err(Json(Reply::unreadable_body())),
    }
}

#[catch(404)]
fn not_found() -> Json {
    Json(Reply::route_not_found())
}

/// Whatever else Rocket answers by itself (malformed requests): the envelope too.
#[catch(default)]
fn any_status(status: Status, _: &Request<'_>) -> Json {
    Json(Reply::error(status.code, status.reason_lossy()))
}

/// A file of the page, with the page's headers (its Content-Security-Policy).
struct Static(&'static Asset);

impl<'r> Responder<'r, 'static> for Static {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let Asset {
            content_type, body, ..
        } = *self.0;
        let mut response = Response::build();
        response
            .raw_header("Content-Type", content_type)
            .sized_body(body.len(), Cursor::new(body));
        for (name, value) in page::HEADERS {
            response.raw_header(name, value);
        }
        response.ok()
    }
}

// Rocket's routes are attributes, which take literals: the paths of `page::ASSETS`.
#[get("/")]
fn index() -> Static {
    Static(&page::INDEX)
}

#[get("/app.js")]
fn script() -> Static {
    Static(&page::SCRIPT)
}

#[get("/app.css")]
fn style() -> Static {
    Static(&page::STYLE)
}

#[post("/user/code", data = "<body>")]
async fn send_code(_limit: RateLimited, app: &Shared, origin: &Origin<'_>, body: Data<'_>) -> Json {
    match read_body(body).await {
        Ok(body) => Json(
            app.send_code(origin.query().map(|q| q.as_str()), &body)
                .await,
        ),
        Err(reply) => reply,
    }
}

#[post("/user/login", data = "<body>")]
async fn login(
    _limit: RateLimited,
    sessions: Sessions<UserDto>,
    app: &Shared,
    body: Data<'_>,
) -> Json {
    match read_body(body).await {
        Ok(body) => Json(app.login(&sessions, &body).await),
        Err(reply) => reply,
    }
}

/// The operator's `x-admin-token`, as presented (or absent), and who sent it (the client IP
/// of the operator routes' budget).
struct AdminToken<'r>(Option<&'r str>, Caller<'r>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AdminToken<'r> {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        request::Outcome::Success(Self(
            request.headers().get_one(ADMIN_TOKEN_HEADER),
            Caller::new(
                request.remote().map(|addr| addr.ip()),
                request.headers().get("x-forwarded-for").map(str::as_bytes),
            ),
        ))
    }
}

#[get("/metrics")]
async fn metrics(admin: AdminToken<'_>, app: &Shared) -> Json {
    Json(
        match app.operator(&admin.1, admin.0.map(str::as_bytes)).await {
            Ok(operator) => app.metrics(&operator),
            Err(refused) => refused,
        },
    )
}

#[get("/user/me")]
fn me(session: Auth<UserDto>, app: &Shared) -> Json {
    Json(app.me(&session))
}

#[post("/user/logout")]
async fn logout(session: Auth<UserDto>, app: &Shared) -> Json {
    Json(app.logout(&session).await)
}

#[get("/user/sessions")]
async fn sessions(session: Auth<UserDto>, app: &Shared) -> Json {
    Json(app.sessions(&session).await)
}

#[delete("/user/sessions/<id>")]
async fn end_session(id: &str, session: Auth<UserDto>, app: &Shared) -> Json {
    Json(app.end_session(&session, id).await)
}

#[post("/user/logout-all")]
async fn logout_all(session: Auth<UserDto>, app: &Shared) -> Json {
    Json(app.logout_all(&session).await)
}

/// `GET /user/events`: Server-Sent Events until the session ends (or the server stops).
#[get("/user/events")]
async fn events(session: Auth<UserDto>, app: &Shared) -> Events {
    Events(app.session_events(&session).await)
}

/// The event stream as a Rocket response, or the envelope when it cannot start.
struct Events(Result<EventStream, Reply>);

impl<'r> Responder<'r, 'r> for Events {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'r> {
        let stream = match self.0 {
            Ok(stream) => stream,
            Err(reply) => return Json(reply).respond_to(request),
        };
        let mut response =
            rocket::response::stream::TextStream::from(stream).respond_to(request)?;
        response.set_raw_header("content-type", EVENT_STREAM);
        for (name, value) in App::EVENT_STREAM_HEADERS {
            response.set_raw_header(name, value);
        }
        Ok(response)
    }
}
