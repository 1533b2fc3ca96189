//! Test support for keygate: private `redis-server` processes ([`RedisServer`]) and the
//! fixtures every adapter's tests share ([`fixtures`]).
#![allow(
    clippy::expect_used,
    reason = "test support: a failed set-up must stop the test"
)]

pub mod fixtures;
mod server;

pub use server::{RedisServer, eventually, free_port};
