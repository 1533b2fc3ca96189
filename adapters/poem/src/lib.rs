//! # keygate-poem
//!
//! [keygate] login sessions for [poem](https://docs.rs/poem): a token issued at
//! login, the user's data kept in Redis under it with a sliding idle expiry, loaded once
//! per request.
//!
//! One dependency is enough: this crate re-exports the core as [`keygate`] and its main
//! types at its root.
//!
//! ## The pieces
//!
//! - [`KeygateMiddleware`] wraps your routes (`.with(KeygateMiddleware::new(gate))`). Per
//!   request it reads the token (the `authorization` header, raw or `Bearer`, then the
//!   `tokenid` query parameter, plus whatever [`TokenReader`] you configure), loads the
//!   session **and** resets its idle TTL in one Redis round trip, and stores the outcome in
//!   the request's extensions. A missing or malformed token costs no Redis call. The
//!   middleware never rejects anything itself.
//! - Extractors read what it stored, without another Redis call:
//!   - [`Auth<T>`]: the session, or the request is rejected (401 without a valid session,
//!     503 when the backend is down);
//!   - [`MaybeAuth<T>`]: `Some` session or `None`, but still 503 when the backend is down;
//!   - [`Sessions<T>`]: the [`Keygate<T>`], to log users in.
//! - [`ApiError`] lets handlers use `?` on keygate's calls (logout, login, ...);
//!   [`Rejection`] is what the extractors fail with (inside a `poem::Error`).
//!
//! Every rejection carries the JSON envelope `{"success":false,"errorMsg":"..."}` with
//! `content-type: application/json`. Forgetting the middleware on a route is a 500 whose
//! message says so, never a panic.
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
//! otherwise: see `examples/poem_quickstart.rs`; run it with
//! `cargo run -p keygate-poem --example poem_quickstart` (port from `PORT`, default 3000).
//!
//! ## Example
//!
//! Login, a protected route, logout and logout-everywhere, on the embedded
//! [`MemoryStore`] (use [`RedisStore::connect`] in production):
//!
//! ```no_run
//! use keygate_poem::{
//!     ApiError, Auth, Envelope, Keygate, KeygateMiddleware, MemoryStore, SessionConfig,
//!     SessionManager, Sessions, UserId,
//! };
//! use poem::{EndpointExt, Route, Server, get, handler, listener::TcpListener, post, web::Json};
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
//! impl keygate_poem::SessionUser for User {
//!     fn user_id(&self) -> keygate_poem::UserId {
//!         keygate_poem::UserId::from(self.id)
//!     }
//! }
//!
//! #[derive(Deserialize)]
//! struct LoginForm {
//!     id: u64,
//! }
//!
//! #[handler]
//! async fn login(
//!     sessions: Sessions<User>,
//!     Json(form): Json<LoginForm>,
//! ) -> Result<Json<Envelope<String>>, ApiError> {
//!     // A real service verifies a code or a password here.
//!     let user = User { id: form.id, nick_name: format!("user_{}", form.id), icon: String::new() };
//!     let token = sessions.login(&user).await?;
//!     Ok(Json(Envelope::ok(token.expose().to_owned())))
//! }
//!
//! #[handler]
//! fn me(user: Auth<User>) -> Json<Envelope<User>> {
//!     Json(Envelope::ok(user.data().clone()))
//! }
//!
//! #[handler]
//! async fn logout(user: Auth<User>) -> Result<Json<Envelope<()>>, ApiError> {
//!     user.logout().await?;
//!     Ok(Json(Envelope::done()))
//! }
//!
//! #[handler]
//! async fn logout_all(user: Auth<User>) -> Result<Json<Envelope<u64>>, ApiError> {
//!     let ended = user.logout_everywhere().await?;
//!     Ok(Json(Envelope::ok(ended)))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let manager = SessionManager::<User>::new(MemoryStore::new(), SessionConfig::java_seed())?;
//!     let app = Route::new()
//!         .at("/user/login", post(login))
//!         .at("/user/me", get(me))
//!         .at("/user/logout", post(logout))
//!         .at("/user/logout-all", post(logout_all))
//!         .with(KeygateMiddleware::new(Keygate::new(manager)));
//!     Server::new(TcpListener::bind("127.0.0.1:8080")).run(app).await?;
//!     Ok(())
//! }
//! ```
//!
//! The same routes driven by poem's test client:
//!
//! ```
//! use keygate_poem::{Auth, Envelope, Keygate, KeygateMiddleware, MemoryStore, SessionConfig,
//!     SessionManager, UserId};
//! use poem::{EndpointExt, Route, get, handler, http::StatusCode, test::TestClient, web::Json};
//! #[derive(Clone, serde::Serialize, serde::Deserialize)]
//! struct User { id: u64 }
//!
//! // The session names its user: login, logout everywhere and the session list need it.
//! impl keygate_poem::SessionUser for User {
//!     fn user_id(&self) -> keygate_poem::UserId {
//!         keygate_poem::UserId::from(self.id)
//!     }
//! }
//!
//! #[handler]
//! fn me(user: Auth<User>) -> Json<Envelope<u64>> {
//!     Json(Envelope::ok(user.id))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), keygate_poem::keygate::Error> {
//! let gate = Keygate::new(SessionManager::new(MemoryStore::new(), SessionConfig::java_seed())?);
//! let token = gate.login(&User { id: 598 }).await?;
//! let client = TestClient::new(Route::new().at("/me", get(me)).with(KeygateMiddleware::new(gate)));
//!
//! let response = client.get("/me").header("authorization", token.expose()).send().await;
//! response.assert_status_is_ok();
//! response.assert_text(r#"{"success":true,"data":598}"#).await;
//!
//! client.get("/me").send().await.assert_status(StatusCode::UNAUTHORIZED);
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
//! session cookie, logout clears it (the middleware appends the `Set-Cookie` header), and
//! an unsafe request authenticated by the cookie must come from an allowed origin (403
//! otherwise). The cookie's attributes and the origin check are the core's, the same in
//! every adapter: see [`keygate::SessionCookie`].
//!
//! ```
//! use poem::{EndpointExt, Route};
//! use keygate_poem::{Keygate, KeygateMiddleware, MemoryStore, SessionConfig, SessionCookie, SessionManager};
//! # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64 }
//! let manager = SessionManager::<User>::new(MemoryStore::new(), SessionConfig::java_seed())?;
//! let gate = Keygate::new(manager)
//!     .with_cookie(SessionCookie::new()) // `.with_secure(false)` for plain-HTTP development only
//!     .with_allowed_origins(["https://app.example"])?; // only behind a proxy rewriting `Host`
//! let app = Route::new().with(KeygateMiddleware::new(gate));
//! # Ok::<(), keygate_poem::Error>(())
//! ```
//!
//! ## Features
//!
//! | feature | default | what |
//! | --- | --- | --- |
//! | `memory` | yes | the core's embedded in-memory backend, [`MemoryStore`] (development, tests, demos) |
//! | `rate-limit` | yes | the shared rate limiter ([`keygate::rate_limit`]) and [`RateLimitMiddleware`] |
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

mod error;
mod extract;
mod middleware;
#[cfg(feature = "rate-limit")]
mod rate_limit;

pub use error::{ApiError, Rejection};
pub use extract::{Auth, MaybeAuth, Sessions};
#[doc(hidden)]
pub use middleware::KeygateEndpoint;
pub use middleware::KeygateMiddleware;
#[cfg(feature = "rate-limit")]
#[doc(hidden)]
pub use rate_limit::RateLimitEndpoint;
#[cfg(feature = "rate-limit")]
pub use rate_limit::RateLimitMiddleware;

keygate::adapter_reexports!();
