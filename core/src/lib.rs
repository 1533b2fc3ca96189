//! # keygate
//!
//! Redis-backed login sessions for async Rust services, and the Redis building blocks that
//! sit beside them.
//!
//! Services that run on several machines cannot keep logins in process memory. keygate
//! implements the established answer: at login, issue an unguessable [`Token`]; keep the
//! user's data in Redis under `<prefix><token>` with a 30-minute TTL; the client sends the
//! token on every call; every authenticated call resets the TTL in the same round trip that
//! loads the data; 30 idle minutes and the user must log in again.
//!
//! This crate is framework-neutral. The adapters `keygate-axum`, `keygate-actix`,
//! `keygate-rocket` and `keygate-poem` plug it into their frameworks.
//!
//! ## The seeds
//!
//! keygate reads and writes the Redis layouts of two existing services, so that a keygate
//! service and one of them can share a Redis and each other's sessions. These docs call
//! them the seeds:
//!
//! - the **Java seed** is a Spring Boot service that logs users in by phone + SMS code. It
//!   keeps the code at `login:code:<phone>` for 2 minutes, and the user as a Redis hash of
//!   string fields at `login:token:<token>` (the token a 32-hex UUID without dashes) with a
//!   30-minute TTL that an interceptor refreshes on each request;
//! - the **Node seed** is an Express service that keeps the user's JSON string at
//!   `<custom>_<tokenid>` with a 30-minute TTL refreshed on each call; the client sends
//!   `tokenid` as a query parameter.
//!
//! [`SessionConfig::java_seed`] and [`SessionConfig::node_seed`] select their layouts, and
//! [`code`] keeps codes as the Java seed does.
//!
//! ## Usage
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), keygate::Error> {
//! use keygate::{MemoryStore, SessionConfig, SessionManager, UserId};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! #[serde(rename_all = "camelCase")]
//! struct User { id: u64, nick_name: String, icon: String }
//!
//! // The Java seed's layout: `login:token:<token>` holds a hash, 30 minutes idle TTL.
//! // In production: `keygate::RedisStore::connect(url).await?`.
//! let sessions = SessionManager::<User>::new(MemoryStore::new(), SessionConfig::java_seed())?;
//!
//! let user = User { id: 598, nick_name: "user_x1y2z3".into(), icon: String::new() };
//! let token = sessions.login(&UserId::from(user.id), &user).await?;   // at login
//! let session = sessions.load(&token).await?;                           // on each call
//! assert_eq!(session.map(|s| s.id), Some(598));
//! sessions.logout(&token).await?;                                      // at logout
//! # Ok(()) }
//! ```
//!
//! ## Browsers: the session cookie
//!
//! [`Keygate::with_cookie`] turns on a [`SessionCookie`]: a login through the gate of a
//! request sets `token=<token>; Path=/; HttpOnly; SameSite=Lax; Secure` (with `Max-Age` the
//! session's absolute lifetime, if any), logging out clears it, and the adapters put the
//! `Set-Cookie` header on the response. Unsafe requests authenticated by a cookie must come
//! from an allowed origin ([`web::AllowedOrigins`]), or they are refused with 403 before any Redis
//! command.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), keygate::Error> {
//! use keygate::web::RequestParts;
//! use keygate::{Keygate, MemoryStore, SessionConfig, SessionCookie, SessionManager, UserId};
//! # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64 }
//! # impl keygate::SessionUser for User { fn user_id(&self) -> UserId { UserId::from(self.id) } }
//! # struct Request;
//! # impl RequestParts for Request {
//! #     fn header(&self, _: &str) -> Option<&[u8]> { None }
//! #     fn query(&self) -> Option<&str> { None }
//! #     fn method(&self) -> &str { "POST" }
//! # }
//! let manager = SessionManager::<User>::new(MemoryStore::new(), SessionConfig::java_seed())?;
//! let gate = Keygate::new(manager).with_cookie(SessionCookie::new());
//!
//! // What an adapter does per request: a request's gate, the handler, then the header.
//! let request = gate.for_request(&Request);
//! let token = request.login(&User { id: 598 }).await?;
//! let set_cookie = request.take_set_cookie();
//! assert_eq!(
//!     set_cookie,
//!     Some(format!("token={}; Path=/; HttpOnly; SameSite=Lax; Secure", token.expose()))
//! );
//! # Ok(()) }
//! ```
//!
//! ## Module map
//!
//! | module | what it is for |
//! | --- | --- |
//! | sessions: [`session`], with [`SessionManager`], [`Keygate`] and [`Token`] at the root | log in (create a session, get its token), load-and-touch the session of each request, update it, list a user's sessions, log out one or everywhere |
//! | [`code`] | SMS verification codes as in the Java seed: issue with a resend cooldown and a daily cap, verify once, burned after 5 wrong tries ([`code::Codes`]) |
//! | [`login`] | phone + code login: validate the phone, verify the code, find or create the user, create a session ([`login::PhoneLogin`]) |
//! | [`lock`] | a distributed lock for work only one instance may do: owner-checked release, lease renewal, fencing tokens ([`lock::Locks`]) |
//! | [`flash_sale`] | flash sales (秒杀): one atomic script decides whether a user may buy, orders go through a Redis Stream to [`flash_sale::OrderConsumer`] |
//! | [`rate_limit`] | a rate limiter shared by every instance, a GCRA quota or an exact sliding window (one script call per decision, on the Redis server's clock), fail open or closed; the adapters' per-IP middleware builds on it (feature `rate-limit`) |
//! | [`web`] | the framework-neutral HTTP side every adapter shares: reading the token from a request ([`TokenReader`]: `authorization` header raw or `Bearer`, `tokenid` query parameter, a cookie), the session cookie ([`SessionCookie`]: `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` by default), CSRF protection for cookie-authenticated unsafe requests ([`web::AllowedOrigins`]), the JSON envelope ([`web::Envelope`]), each rejection's status and body ([`web::Rejection`]), and the rate limiter as a middleware applies it ([`web::RateLimitPolicy`], feature `rate-limit`) |
//! | [`backend`] | the store traits every backend implements ([`backend::SessionStore`], [`backend::CodeStore`], [`backend::LockStore`], [`backend::FlashSaleStore`], [`backend::RateLimitStore`]); the backends themselves are [`RedisStore`] (one server, Cluster or Sentinel) and [`MemoryStore`] (embedded, feature `memory`) |
//! | [`session`] | also [`SessionConfig`]: key prefix, [`Layout`], idle TTL, absolute lifetime, hashed keys, sessions per user, token form; the seeds' presets |
//! | [`ttl`] | the longest expiry keygate accepts ([`ttl::MAX_TTL`]) and `Retry-After` rounding |
//! | [`codec`] | how session data is stored: a JSON string or a hash of string fields ([`backend::StoredValue`]) |
//! | [`adapter`] | for adapter authors: the one logging policy for failures ([`adapter::report_error`]), the missing-component report, the shared re-export list and extractor newtypes; handler authors do not need it |
//!
//! ## Layouts
//!
//! | layout | config | key | value | absolute lifetime | per-user index |
//! | --- | --- | --- | --- | --- | --- |
//! | Node seed | [`SessionConfig::node_seed`] | `<custom>_<token>` | the user's JSON, exactly | yes | yes |
//! | Java seed | [`SessionConfig::java_seed`] | `login:token:<token>` | hash of string fields | yes | yes |
//!
//! keygate's own metadata never changes the session key's value, so other services that
//! read or write the same layout keep working:
//!
//! - the per-user index is a sorted set at `<index prefix><user id>` (default
//!   `keygate:user-sessions:`), members the key ids, scores the creation times (unix µs);
//!   it is never touched on the request path. Sessions created by other services are not in
//!   it, so `sessions`/`logout_everywhere` see only sessions created through keygate;
//! - with an absolute lifetime, a companion key `<deadline prefix>{<session key>}` (default
//!   prefix `keygate:deadline:`) lives exactly the lifetime; loading caps the idle TTL by
//!   it, in one script call. It shares the session key's hash slot. With a lifetime
//!   configured, a session whose deadline key is gone (evicted, or created elsewhere
//!   without one) is over.
//!
//! ## Features
//!
//! | feature | default | what |
//! | --- | --- | --- |
//! | `memory` | yes | [`MemoryStore`], the embedded backend |
//! | `cluster` | yes | Redis Cluster: `RedisOptions::cluster` (redis crate `cluster-async`) |
//! | `rate-limit` | yes | [`rate_limit`]: the shared limiter (GCRA quota, sliding window) |
//! | `sentinel` | yes | Sentinel-managed masters: `RedisOptions::sentinel` (redis crate `sentinel`) |
//! | `codes` | yes | phone + SMS-code login: [`code`], [`login`] |
//! | `locks` | yes | the distributed lock: [`lock`] |
//! | `flash-sale` | yes | flash sales with a stream consumer: [`flash_sale`] |
//! | `tls-rustls` | yes | `rediss://` with rustls (pure Rust, `ring` provider, no system OpenSSL), the platform's roots or a private CA, client certificates, in all three modes; see [`RedisOptions`](crate::RedisOptions#tls) |
//! | `tls-native-tls` | no | `rediss://` with the platform's TLS library (OpenSSL on Linux) and the system's certificate store; rustls wins when both are on |
//!
//! Sessions are always built; a service that wants only sessions turns the default features
//! off and keeps `memory`, `cluster`, `sentinel` as it needs.
//!
//! ## Redis Cluster and Sentinel
//!
//! [`RedisOptions`] takes one URL, a cluster's seed nodes or a Sentinel master name with the
//! sentinels' addresses; everything else is the same in the three modes. On a cluster every
//! script touches one hash slot: keys that belong together share a hash tag (a session and
//! its deadline key, a code and its counters, a lock and its fence, a flash-sale shard's
//! keys), keys that cannot share a slot (a session and its user's index) are never in one
//! script, and operations over many sessions send one command per key. What a failover can
//! do to a lock is in [`lock`](crate::lock#failover). [`RedisEnv`] reads the choice from
//! environment variables (`REDIS_URL`, `REDIS_CLUSTER_URLS`, `REDIS_SENTINEL_*`, the TLS
//! files), as the example applications and `keygate-cli` do.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod adapter;
pub mod backend;
#[cfg(feature = "codes")]
pub mod code;
pub mod codec;
mod error;
#[cfg(feature = "flash-sale")]
pub mod flash_sale;
mod key_escape;
#[cfg(feature = "locks")]
pub mod lock;
mod log_throttle;
#[cfg(feature = "codes")]
pub mod login;
#[cfg(feature = "memory")]
mod memory_store;
#[cfg(feature = "rate-limit")]
pub mod rate_limit;
mod redis_store;
pub mod session;
pub mod telemetry;
mod token;
pub mod ttl;
pub mod web;

pub use codec::Layout;
pub use error::{BackendError, Error, Result};
#[cfg(feature = "memory")]
pub use memory_store::MemoryStore;
pub use redis_store::{
    RedisEnv, RedisOptions, RedisStore, RedisTarget, RedisTlsFiles, ScanProgress, SentinelSettings,
};
pub use session::{
    EndReason, Ended, LoginLimits, LoginOptions, Session, SessionConfig, SessionId, SessionInfo,
    SessionManager, SessionUser, UpdateOutcome, UserId,
};
pub use token::{MAX_TOKEN_LEN, MIN_TOKEN_LEN, MalformedToken, Token, TokenFormat, TokenFormats};
pub use web::{CurrentSession, Keygate, SessionCookie, TokenReader, TokenSource};

// Re-exported so adapters and users name one version of these.
pub use serde;
