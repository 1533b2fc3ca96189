//! The user documents' Rust blocks as doc tests: each document below is included as the
//! documentation of a module that exists only while rustdoc collects doc tests, so
//! `cargo test -p keygate-docs-check` (and `scripts/test`) compiles every Rust block of
//! them, and runs those not marked `no_run`. A block that cannot compile is marked
//! `ignore` with the reason beside it.
//!
//! `tests/mirror.rs` checks that README.md and README.zh-CN.md have the same headings and
//! the same code blocks.

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme {}

#[cfg(doctest)]
#[doc = include_str!("../../README.zh-CN.md")]
mod readme_zh_cn {}

#[cfg(doctest)]
#[doc = include_str!("../../SECURITY.md")]
mod security {}

#[cfg(doctest)]
#[doc = include_str!("../../docs/sessions.md")]
mod sessions {}

#[cfg(doctest)]
#[doc = include_str!("../../docs/browsers.md")]
mod browsers {}

#[cfg(doctest)]
#[doc = include_str!("../../docs/redis.md")]
mod redis {}

#[cfg(doctest)]
#[doc = include_str!("../../docs/rate-limiting.md")]
mod rate_limiting {}

#[cfg(doctest)]
#[doc = include_str!("../../docs/near-cache.md")]
mod near_cache {}

#[cfg(doctest)]
#[doc = include_str!("../../docs/operations.md")]
mod operations {}

#[cfg(doctest)]
#[doc = include_str!("../../docs/capacity.md")]
mod capacity {}

#[cfg(doctest)]
#[doc = include_str!("../../docs/benchmarks.md")]
mod benchmarks {}

#[cfg(doctest)]
#[doc = include_str!("../../docs/http-api.md")]
mod http_api {}

#[cfg(doctest)]
#[doc = include_str!("../../docs/events.md")]
mod events {}
