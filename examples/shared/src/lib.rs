//! # keygate-example
//!
//! What the four keygate example applications (`axum-login`, `actix-login`,
//! `rocket-login`, `poem-login`) share, so that each of them is a small `main.rs` wiring its
//! framework's adapter:
//!
//! - [`Config`]: the start-up settings from the environment (`BIND_ADDR`, `REDIS_URL`,
//!   `REDIS_CLUSTER_URLS`, `DATABASE_URL`, `RUST_LOG`, `ADMIN_TOKEN`,
//!   `PAY_CALLBACK_SECRET`, `RATE_LIMIT_PER_IP`, `TRUSTED_PROXIES`, `COOKIE_SECURE`, `SESSION_NEAR_CACHE`);
//! - [`App`]: the services, built once ([`App::build`]): phone + SMS-code login over the
//!   SQLite users table, sessions in the Java seed's Redis layout (`login:token:<token>`, a
//!   hash of `id`, `nickName`, `icon`), flash sales, distributed locks;
//! - the handlers of every route of the HTTP contract (`docs/http-api.md` in the
//!   repository) as methods of
//!   [`App`], returning a framework-neutral [`Reply`]: status, the JSON envelope, and
//!   `Retry-After`. Routes that need a session take the
//!   [`CurrentSession`](keygate::CurrentSession) the adapter's `Auth<UserDto>` extractor
//!   or guard loaded;
//! - [`page`]: the login page served at `GET /`, its script and style sheet, and the
//!   `Content-Security-Policy` they are served with;
//! - [`startup`]: logging, binding, the ready line and one-line start-up failures.
//!
//! ```no_run
//! # async fn run() -> Result<(), keygate_example::StartError> {
//! use keygate_example::{App, Config, startup};
//!
//! let config = Config::from_env()?;
//! startup::init_logging(&config.log_filter)?;
//! // No metrics recorder here (`startup::prepare` installs one for GET /metrics).
//! let app = App::build(&config, None).await?;
//! let listener = startup::bind(config.bind)?;
//! // ... hand `app.gate()` to the adapter, route requests to `app`'s handlers ...
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod app;
mod backend;
mod caller;
pub mod config;
pub mod db;
pub mod handlers;
mod orders;
pub mod page;
mod reply;
mod secrets;
pub mod startup;
mod user;

pub use app::{App, LOGIN_LIMITER, NearCacheState, OPERATOR_LIMITER, OPERATOR_REQUESTS_PER_MINUTE};
pub use backend::Backend;
pub use caller::Caller;
pub use config::{Config, Database};
pub use orders::SqliteOrders;
pub use reply::{JSON, MAX_BODY_BYTES, Reply};
pub use secrets::Secret;
pub use startup::StartError;
pub use user::{SqliteUsers, UserDto};

pub use keygate;

/// The login page's HTML (`GET /`); it loads [`page::SCRIPT`] and [`page::STYLE`].
pub const INDEX_HTML: &str = page::INDEX.body;

/// The content type of [`INDEX_HTML`].
pub const HTML: &str = page::INDEX.content_type;
