//! Test support for keygate: private `redis-server` processes ([`RedisServer`]) and the
//! fixtures every adapter's tests share ([`fixtures`]).
#![allow(
    clippy::expect_used,
    reason = "test support: a failed set-up must stop the test"
)]

pub mod adapter_suite;
mod cluster;
pub mod fixtures;
pub mod load;
pub mod log_capture;
pub mod observed;
mod server;
pub mod tls;

pub use cluster::{RedisCluster, RedisSentinel};
pub use server::{RedisServer, TlsServer, eventually, free_port};
