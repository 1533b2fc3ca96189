//! The session near cache against private Redis servers: hits cost nothing, every change
//! anywhere reaches every instance within milliseconds, and faults drop the cache.
//!
//! The latency tests run alone (see `support::exclusive`); print their figures with
//! `cargo test -p keygate-tests --test near_cache latency -- --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod corrupt;
mod expiry;
mod faults;
mod interleaving;
mod latency;
mod smoke;
mod support;
mod topologies;
