//! # keygate-actix
//!
//! [keygate] login sessions for [actix-web](actix_web) 4: Redis-backed sessions
//! under an unguessable token, with a sliding idle expiry, compatible with the Java and
//! Node services that share the same Redis.
//!
//! - [`KeygateMiddleware`] wraps an [`App`](actix_web::App) or a
//!   [`Scope`](actix_web::Scope). Per request it reads the token (header
//!   `authorization: <token>` or `Authorization: Bearer <token>`, query `tokenid=<token>`,
//!   optionally a cookie: whatever the gate's [`TokenReader`] says)
//!   and loads the session **and** resets its idle TTL in one Redis round trip. A missing or
//!   malformed token costs no Redis call. The middleware never answers by itself.
//! - The extractors read what the middleware loaded, never Redis again:
//!   - [`Auth<T>`]: the session, or 401 (no token, malformed, unknown or expired) / 503
//!     (session backend unavailable);
//!   - [`MaybeAuth<T>`]: `Some` session or `None`, but still 503 when the backend is down;
//!   - [`Sessions<T>`]: the [`Keygate`] itself, to log users in.
//! - [`ApiError`] turns the core's errors into responses (503 for backend trouble) in
//!   handlers that call it (login, logout, listing); [`Rejection`] is the extractors'
//!   error.
//!
//! Every rejection answers with the JSON envelope `{"success":false,"errorMsg":"..."}` and
//! `content-type: application/json`. A route that asks for a session without the
//! middleware answers 500 saying so, rather than panicking.
//!
//! `T` is your user type: `Serialize + DeserializeOwned`, and [`SessionUser`] (it names the
//! user) for logging in, logging out everywhere, listing, ending and rotating sessions. The
//! [`SessionConfig`] decides how it is stored (a Redis hash in the Java seed's layout, a
//! JSON string in the Node seed's).
//!
//! ## Runnable example
//!
//! One file with a login route (`Sessions<T>`), a route that needs a session (`Auth<T>`),
//! one that takes it if there is one (`MaybeAuth<T>`), logout, and `ApiError` in the
//! handlers that call keygate, on Redis when `REDIS_URL` is set and on the embedded backend
//! otherwise: see `examples/actix_quickstart.rs`; run it with
//! `cargo run -p keygate-actix --example actix_quickstart` (port from `PORT`, default 3000).
//!
//! ## Example
//!
//! Login, a protected route, logout and logout everywhere, on the embedded
//! [`MemoryStore`] (use [`RedisStore`] in production, see below):
//!
//! ```
//! use actix_web::http::StatusCode;
//! use actix_web::{App, test, web};
//! use keygate_actix::keygate::web::Envelope;
//! use keygate_actix::{
//!     ApiError, Auth, Keygate, KeygateMiddleware, MaybeAuth, MemoryStore, SessionConfig,
//!     SessionManager, Sessions, UserId,
//! };
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! #[serde(rename_all = "camelCase")]
//! struct User {
//!     id: u64,
//!     nick_name: String,
//! }
//!
//! // The session names its user: login, logout everywhere and the session list need it.
//! impl keygate_actix::SessionUser for User {
//!     fn user_id(&self) -> keygate_actix::UserId {
//!         keygate_actix::UserId::from(self.id)
//!     }
//! }
//!
//! async fn login(
//!     sessions: Sessions<User>,
//!     user: web::Json<User>,
//! ) -> Result<web::Json<Envelope<String>>, ApiError> {
//!     // A real service checks credentials (a verification code) first.
//!     let token = sessions.login(&user).await?;
//!     Ok(web::Json(Envelope::ok(token.expose().to_owned())))
//! }
//!
//! async fn me(user: Auth<User>) -> web::Json<Envelope<User>> {
//!     web::Json(Envelope::ok(user.data().clone()))
//! }
//!
//! async fn hello(MaybeAuth(user): MaybeAuth<User>) -> String {
//!     match user {
//!         Some(user) => format!("hello, {}", user.nick_name),
//!         None => "hello, stranger".to_owned(),
//!     }
//! }
//!
//! async fn logout(user: Auth<User>) -> Result<web::Json<Envelope<()>>, ApiError> {
//!     user.logout().await?;
//!     Ok(web::Json(Envelope::done()))
//! }
//!
//! async fn logout_all(user: Auth<User>) -> Result<web::Json<Envelope<u64>>, ApiError> {
//!     let ended = user.logout_everywhere().await?;
//!     Ok(web::Json(Envelope::ok(ended)))
//! }
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), keygate_actix::keygate::Error> {
//!     let manager = SessionManager::<User>::new(MemoryStore::new(), SessionConfig::java_seed())?;
//!     let gate = Keygate::new(manager);
//!     let app = test::init_service(
//!         App::new()
//!             .wrap(KeygateMiddleware::new(gate))
//!             .route("/user/login", web::post().to(login))
//!             .route("/user/me", web::get().to(me))
//!             .route("/hello", web::get().to(hello))
//!             .route("/user/logout", web::post().to(logout))
//!             .route("/user/logout-all", web::post().to(logout_all)),
//!     )
//!     .await;
//!
//!     // Log in twice (two devices).
//!     let mut tokens = Vec::new();
//!     for _ in 0..2 {
//!         let user = User { id: 7, nick_name: "user_7".into() };
//!         let req = test::TestRequest::post().uri("/user/login").set_json(&user).to_request();
//!         let reply: Envelope<String> = test::call_and_read_body_json(&app, req).await;
//!         tokens.push(reply.data.unwrap_or_default());
//!     }
//!
//!     // The token works in the `authorization` header, raw or `Bearer`, or as `?tokenid=`.
//!     let req = test::TestRequest::get()
//!         .uri("/user/me")
//!         .insert_header(("Authorization", format!("Bearer {}", tokens[0])))
//!         .to_request();
//!     let reply: serde_json::Value = test::call_and_read_body_json(&app, req).await;
//!     assert_eq!(reply["data"]["nickName"], "user_7");
//!
//!     let req = test::TestRequest::get().uri("/hello").to_request();
//!     assert_eq!(test::call_and_read_body(&app, req).await, "hello, stranger");
//!
//!     // Without a token: 401 with the envelope.
//!     let req = test::TestRequest::get().uri("/user/me").to_request();
//!     assert_eq!(test::call_service(&app, req).await.status(), StatusCode::UNAUTHORIZED);
//!
//!     // Logout ends this token at once.
//!     let req = test::TestRequest::post()
//!         .uri("/user/logout")
//!         .insert_header(("authorization", tokens[0].as_str()))
//!         .to_request();
//!     assert_eq!(test::call_service(&app, req).await.status(), StatusCode::OK);
//!     let req = test::TestRequest::get()
//!         .uri(&format!("/user/me?tokenid={}", tokens[0]))
//!         .to_request();
//!     assert_eq!(test::call_service(&app, req).await.status(), StatusCode::UNAUTHORIZED);
//!
//!     // Logout everywhere ends every session of the user.
//!     let req = test::TestRequest::post()
//!         .uri("/user/logout-all")
//!         .insert_header(("authorization", tokens[1].as_str()))
//!         .to_request();
//!     let reply: Envelope<u64> = test::call_and_read_body_json(&app, req).await;
//!     assert_eq!(reply.data, Some(1));
//!     let req = test::TestRequest::get()
//!         .uri(&format!("/user/me?tokenid={}", tokens[1]))
//!         .to_request();
//!     assert_eq!(test::call_service(&app, req).await.status(), StatusCode::UNAUTHORIZED);
//!     Ok(())
//! }
//! ```
//!
//! ## With Redis
//!
//! Build the gate once, before the server, and clone it into each worker's app: the
//! clones share one multiplexed Redis connection.
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use keygate_actix::{Auth, Keygate, KeygateMiddleware, RedisStore, SessionConfig, SessionManager};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct User { id: u64 }
//!
//! // The session names its user: login, logout everywhere and the session list need it.
//! impl keygate_actix::SessionUser for User {
//!     fn user_id(&self) -> keygate_actix::UserId {
//!         keygate_actix::UserId::from(self.id)
//!     }
//! }
//!
//! async fn me(user: Auth<User>) -> String {
//!     user.id.to_string()
//! }
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
//!     let store = RedisStore::connect(&url).await.map_err(std::io::Error::other)?;
//!     let manager = SessionManager::<User>::new(store, SessionConfig::java_seed())
//!         .map_err(std::io::Error::other)?;
//!     let gate = Keygate::new(manager);
//!     HttpServer::new(move || {
//!         App::new()
//!             .wrap(KeygateMiddleware::new(gate.clone()))
//!             .route("/user/me", web::get().to(me))
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await
//! }
//! ```
//!
//! To also accept the token from a cookie, and set and clear it, see
//! [Session cookie](#session-cookie-browsers) below.
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
//! use actix_web::App;
//! use keygate_actix::{Keygate, KeygateMiddleware, MemoryStore, SessionConfig, SessionCookie, SessionManager};
//! # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64 }
//! let manager = SessionManager::<User>::new(MemoryStore::new(), SessionConfig::java_seed())?;
//! let gate = Keygate::new(manager)
//!     .with_cookie(SessionCookie::new()) // `.with_secure(false)` for plain-HTTP development only
//!     .with_allowed_origins(["https://app.example"])?; // only behind a proxy rewriting `Host`
//! let app = App::new().wrap(KeygateMiddleware::new(gate));
//! # Ok::<(), keygate_actix::Error>(())
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
pub use middleware::KeygateMiddleware;
#[doc(hidden)]
pub use middleware::KeygateService;
#[cfg(feature = "rate-limit")]
pub use rate_limit::RateLimitMiddleware;
#[cfg(feature = "rate-limit")]
#[doc(hidden)]
pub use rate_limit::RateLimitService;

keygate::adapter_reexports!();
