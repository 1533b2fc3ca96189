//! # keygate-axum
//!
//! Redis-backed login sessions for [axum](https://docs.rs/axum) 0.8, on the
//! [`keygate`] core.
//!
//! - [`KeygateLayer`] (a tower layer, on a `Router` or a single route) reads the token of
//!   each request and loads the session **and** resets its idle TTL in one Redis round trip;
//! - the extractors [`Auth`] (a session is required: 401 otherwise), `Option<Auth<T>>` or
//!   [`MaybeAuth`] (optional) and [`Sessions`] (to log in) read what the layer stored and
//!   never call Redis again;
//! - rejections ([`Rejection`]) are the JSON envelope `{"success":false,"errorMsg":"..."}`
//!   with 401 for a missing, malformed, unknown or expired token and 503 when Redis is
//!   unavailable; [`ApiError`] lets handlers use `?` on keygate's calls.
//!
//! ## Runnable example
//!
//! One file with a login route (`Sessions<T>`), a route that needs a session (`Auth<T>`),
//! one that takes it if there is one (`MaybeAuth<T>`), logout, and `ApiError` in the
//! handlers that call keygate, on Redis when `REDIS_URL` is set and on the embedded backend
//! otherwise: see `examples/axum_quickstart.rs`; run it with
//! `cargo run -p keygate-axum --example axum_quickstart` (port from `PORT`, default 3000).
//!
//! ## Example
//!
//! ```no_run
//! use axum::{Router, Json, routing::{get, post}};
//! use keygate_axum::{ApiError, Auth, KeygateLayer, Sessions};
//! use keygate_axum::keygate::{Keygate, MemoryStore, SessionConfig, SessionManager, UserId};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Serialize, Deserialize)]
//! #[serde(rename_all = "camelCase")]
//! struct User { id: u64, nick_name: String }
//!
//! // The session names its user: login, logout everywhere and the session list need it.
//! impl keygate_axum::SessionUser for User {
//!     fn user_id(&self) -> keygate_axum::UserId {
//!         keygate_axum::UserId::from(self.id)
//!     }
//! }
//!
//! async fn login(sessions: Sessions<User>) -> Result<String, ApiError> {
//!     let user = User { id: 598, nick_name: "user_a1b2c3".into() };
//!     Ok(sessions.login(&user).await?.expose().to_owned())
//! }
//!
//! async fn me(user: Auth<User>) -> Json<User> {
//!     Json(user.data().clone())
//! }
//!
//! async fn logout(user: Auth<User>) -> Result<(), ApiError> {
//!     user.logout().await?;
//!     Ok(())
//! }
//!
//! async fn logout_everywhere(user: Auth<User>) -> Result<String, ApiError> {
//!     Ok(user.logout_everywhere().await?.to_string())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // In production: RedisStore::connect("redis://127.0.0.1:6379/0").await?
//!     let manager = SessionManager::<User>::new(MemoryStore::new(), SessionConfig::java_seed())?;
//!     let app = Router::new()
//!         .route("/login", post(login))
//!         .route("/me", get(me))
//!         .route("/logout", post(logout))
//!         .route("/logout-all", post(logout_everywhere))
//!         .layer(KeygateLayer::new(Keygate::new(manager)));
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```
//!
//! A route that uses [`Auth`] without the layer answers 500 with a message naming
//! `KeygateLayer`: axum cannot check extractors against layers at start-up.
//!
//! ## Session cookie (browsers)
//!
//! Opt in per gate with [`Keygate::with_cookie`]: login through [`Sessions`] then sets the
//! session cookie, logout clears it (the layer appends the `Set-Cookie` header), and an
//! unsafe request authenticated by the cookie must come from an allowed origin (403
//! otherwise). The cookie's attributes and the origin check are the core's, the same in
//! every adapter: see [`keygate::SessionCookie`].
//!
//! ```
//! use axum::Router;
//! use keygate_axum::{Keygate, KeygateLayer, MemoryStore, SessionConfig, SessionCookie, SessionManager};
//! # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64 }
//! let manager = SessionManager::<User>::new(MemoryStore::new(), SessionConfig::java_seed())?;
//! let gate = Keygate::new(manager)
//!     .with_cookie(SessionCookie::new()) // `.with_secure(false)` for plain-HTTP development only
//!     .with_allowed_origins(["https://app.example"])?; // only behind a proxy rewriting `Host`
//! let app: Router = Router::new().layer(KeygateLayer::new(gate));
//! # Ok::<(), keygate_axum::Error>(())
//! ```
//!
//! ## Features
//!
//! | feature | default | what |
//! | --- | --- | --- |
//! | `memory` | yes | the core's embedded in-memory backend, [`MemoryStore`] (development, tests, demos) |
//! | `rate-limit` | yes | the shared rate limiter ([`keygate::rate_limit`]) and [`RateLimitLayer`] |
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

mod extract;
mod layer;
#[cfg(feature = "rate-limit")]
mod rate_limit;
mod response;

pub use extract::{Auth, MaybeAuth, Sessions};
keygate::adapter_reexports!();
pub use layer::{KeygateLayer, KeygateService};
#[cfg(feature = "rate-limit")]
pub use rate_limit::{RateLimitLayer, RateLimitService};
pub use response::{ApiError, Rejection};
