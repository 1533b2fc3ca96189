//! # keygate-rocket
//!
//! [keygate] login sessions for [Rocket](https://rocket.rs) 0.5: a token issued at login,
//! the user's data kept in Redis under it with a sliding idle expiry, loaded once per
//! request.
//!
//! One dependency is enough: this crate re-exports the core as [`keygate`] and its main
//! types at its root.
//!
//! ## The pieces
//!
//! - [`KeygateFairing`] is attached once (`.attach(KeygateFairing::new(gate))`). At ignite
//!   it manages the [`Keygate<T>`] and registers [`catchers`] that answer keygate's failures
//!   with the JSON envelope.
//! - Request guards do the work, since Rocket fairings cannot answer requests:
//!   - [`Auth<T>`]: the session, or the route fails (401 without a valid session, 503 when
//!     the backend is down);
//!   - [`MaybeAuth<T>`]: `Some` session or `None`, but still 503 when the backend is down;
//!   - [`Sessions<T>`]: the [`Keygate<T>`], to log users in.
//!
//!   The first of them in a request reads the token (the `authorization` header, raw or
//!   `Bearer`, then the `tokenid` query parameter, plus whatever [`TokenReader`] you
//!   configure), loads the session **and** resets its idle TTL in one Redis round trip, and
//!   caches the outcome in the request-local cache; every other keygate guard of the
//!   request reuses it. A missing or malformed token costs no Redis call.
//! - [`ApiError`] lets handlers use `?` on keygate's calls (logout, login, ...);
//!   [`Rejection`] is the guards' error.
//!
//! A route using a keygate guard refuses to launch when the fairing is missing: the guards
//! are [`Sentinel`](rocket::Sentinel)s, so the mistake shows at start-up, not as a 500 at
//! the first request.
//!
//! ## Failures and the envelope
//!
//! Every failure carries the JSON envelope `{"success":false,"errorMsg":"..."}` with
//! `content-type: application/json`. A failing guard reaches Rocket only as a status, so
//! the guard notes its rejection (the core's [`keygate::web::Rejection`]) in the
//! request-local cache and the fairing's catchers (401, 403, 503, 500 at `/`) answer its
//! message. A catcher you registered yourself for one of these codes at `/` is kept;
//! [`rejection`] gives it keygate's message. A handler can also take
//! `Result<Auth<T>, Rejection>` and decide itself; [`Rejection`] is a responder giving the
//! same envelope.
//!
//! ## Typed data
//!
//! `T` is your user type: `Serialize + DeserializeOwned`, and [`SessionUser`] (it names the
//! user) for logging in, logging out everywhere, listing, ending and rotating sessions. With
//! [`SessionConfig::java_seed`] it is stored as a Redis hash of string fields at
//! `login:token:<token>` (what a Spring service of the Java seed writes and reads), with
//! [`SessionConfig::node_seed`] as a JSON string. [`Auth<T>`] dereferences to
//! [`CurrentSession<T>`], which dereferences to `T`: `auth.nick_name` reads a field.
//!
//! ## Runnable example
//!
//! One file with a login route (`Sessions<T>`), a route that needs a session (`Auth<T>`),
//! one that takes it if there is one (`MaybeAuth<T>`), logout, and `ApiError` in the
//! handlers that call keygate, on Redis when `REDIS_URL` is set and on the embedded backend
//! otherwise: see `examples/rocket_quickstart.rs`; run it with
//! `cargo run -p keygate-rocket --example rocket_quickstart` (port from `PORT`, default 3000).
//!
//! ## Example
//!
//! Login, a protected route, logout and logout-everywhere, on the embedded
//! [`MemoryStore`] (use [`RedisStore::connect`] in production):
//!
//! ```no_run
//! use keygate_rocket::{
//!     ApiError, Auth, Envelope, Keygate, KeygateFairing, MemoryStore, SessionConfig,
//!     SessionManager, Sessions, UserId,
//! };
//! use rocket::serde::json::Json;
//! use rocket::{get, post, routes};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Serialize, Deserialize)]
//! #[serde(rename_all = "camelCase")]
//! struct User {
//!     id: u64,
//!     nick_name: String,
//!     icon: String,
//! }
//!
//! // The session names its user: login, logout everywhere and the session list need it.
//! impl keygate_rocket::SessionUser for User {
//!     fn user_id(&self) -> keygate_rocket::UserId {
//!         keygate_rocket::UserId::from(self.id)
//!     }
//! }
//!
//! #[derive(Deserialize)]
//! struct LoginForm {
//!     id: u64,
//! }
//!
//! #[post("/user/login", data = "<form>")]
//! async fn login(
//!     sessions: Sessions<User>,
//!     form: Json<LoginForm>,
//! ) -> Result<Json<Envelope<String>>, ApiError> {
//!     // A real service verifies a code or a password here.
//!     let user = User { id: form.id, nick_name: format!("user_{}", form.id), icon: String::new() };
//!     let token = sessions.login(&user).await?;
//!     Ok(Json(Envelope::ok(token.expose().to_owned())))
//! }
//!
//! #[get("/user/me")]
//! fn me(user: Auth<User>) -> Json<Envelope<User>> {
//!     Json(Envelope::ok(user.data().clone()))
//! }
//!
//! #[post("/user/logout")]
//! async fn logout(user: Auth<User>) -> Result<Json<Envelope<()>>, ApiError> {
//!     user.logout().await?;
//!     Ok(Json(Envelope::done()))
//! }
//!
//! #[post("/user/logout-all")]
//! async fn logout_all(user: Auth<User>) -> Result<Json<Envelope<u64>>, ApiError> {
//!     let ended = user.logout_everywhere().await?;
//!     Ok(Json(Envelope::ok(ended)))
//! }
//!
//! #[rocket::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let manager = SessionManager::<User>::new(MemoryStore::new(), SessionConfig::java_seed())?;
//!     let _ = rocket::build()
//!         .mount("/", routes![login, me, logout, logout_all])
//!         .attach(KeygateFairing::new(Keygate::new(manager)))
//!         .launch()
//!         .await?;
//!     Ok(())
//! }
//! ```
//!
//! The same kind of route driven by Rocket's local client:
//!
//! ```
//! use keygate_rocket::{Auth, Envelope, Keygate, KeygateFairing, MemoryStore, SessionConfig,
//!     SessionManager, UserId};
//! use rocket::http::{Header, Status};
//! use rocket::local::asynchronous::Client;
//! use rocket::{get, routes, serde::json::Json};
//! #[derive(Clone, serde::Serialize, serde::Deserialize)]
//! struct User { id: u64 }
//!
//! // The session names its user: login, logout everywhere and the session list need it.
//! impl keygate_rocket::SessionUser for User {
//!     fn user_id(&self) -> keygate_rocket::UserId {
//!         keygate_rocket::UserId::from(self.id)
//!     }
//! }
//!
//! #[get("/me")]
//! fn me(user: Auth<User>) -> Json<Envelope<u64>> {
//!     Json(Envelope::ok(user.id))
//! }
//!
//! # #[rocket::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let gate = Keygate::new(SessionManager::new(MemoryStore::new(), SessionConfig::java_seed())?);
//! let token = gate.login(&User { id: 598 }).await?;
//! let rocket = rocket::build().mount("/", routes![me]).attach(KeygateFairing::new(gate));
//! let client = Client::untracked(rocket).await?;
//!
//! let response = client.get("/me").header(Header::new("authorization", token.expose().to_owned()));
//! let response = response.dispatch().await;
//! assert_eq!(response.status(), Status::Ok);
//! assert_eq!(response.into_string().await.as_deref(), Some(r#"{"success":true,"data":598}"#));
//!
//! let response = client.get("/me").dispatch().await;
//! assert_eq!(response.status(), Status::Unauthorized);
//! assert_eq!(
//!     response.into_string().await.as_deref(),
//!     Some(r#"{"success":false,"errorMsg":"not logged in: no token"}"#)
//! );
//! # Ok(()) }
//! ```
//!
//! ## Sessions of another service
//!
//! A session hash another service wrote at `login:token:<token>` (with the fields of `T`)
//! is a valid session here, and the other way round. See the core's documentation for
//! which layouts keep which metadata.
//!
//! ## Session cookie (browsers)
//!
//! Opt in per gate with [`Keygate::with_cookie`]: login through [`Sessions`] then sets the
//! session cookie, logout clears it (the fairing appends the `Set-Cookie` header in
//! `on_response`), and an unsafe request authenticated by the cookie must come from an
//! allowed origin (403 otherwise). The cookie's attributes and the origin check are the
//! core's, the same in every adapter: see [`keygate::SessionCookie`].
//!
//! ```
//! use keygate_rocket::{Keygate, KeygateFairing, MemoryStore, SessionConfig, SessionCookie, SessionManager};
//! # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64 }
//! let manager = SessionManager::<User>::new(MemoryStore::new(), SessionConfig::java_seed())?;
//! let gate = Keygate::new(manager)
//!     .with_cookie(SessionCookie::new()) // `.with_secure(false)` for plain-HTTP development only
//!     .with_allowed_origins(["https://app.example"])?; // only behind a proxy rewriting `Host`
//! let rocket = rocket::build().attach(KeygateFairing::new(gate));
//! # Ok::<(), keygate_rocket::Error>(())
//! ```
//!
//! ## Features
//!
//! | feature | default | what |
//! | --- | --- | --- |
//! | `memory` | yes | the core's embedded in-memory backend, [`MemoryStore`] (development, tests, demos) |
//! | `rate-limit` | yes | the shared rate limiter ([`keygate::rate_limit`]) and [`RateLimitFairing`] with the [`RateLimited`] guard |
//! | `cluster` | yes | Redis Cluster connections (`RedisOptions::cluster`) |
//! | `sentinel` | yes | Redis Sentinel connections (`RedisOptions::sentinel`) |
//! | `tls-rustls` | yes | TLS to Redis (`rediss://`) with rustls (pure Rust, `ring`) |
//! | `tls-native-tls` | no | TLS to Redis (`rediss://`) with the platform's TLS library (native-tls) |
//! | `codes` | yes | phone + SMS-code login in the core (`keygate::code`, `keygate::login`) |
//! | `locks` | yes | the core's distributed lock (`keygate::lock`) |
//! | `flash-sale` | yes | the core's flash sales (`keygate::flash_sale`) |
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod catcher;
mod error;
mod fairing;
mod guard;
#[cfg(feature = "rate-limit")]
mod rate_limit;

pub use catcher::{catchers, rejection};
pub use error::{ApiError, Rejection};
pub use fairing::KeygateFairing;
pub use guard::{Auth, MaybeAuth, Sessions};
#[cfg(feature = "rate-limit")]
pub use rate_limit::{RateLimitFairing, RateLimited};

keygate::adapter_reexports!();
