//! The session crates users would pick instead of keygate, one per framework, configured
//! so that the TTL slides on every request. Built with the `incumbents` feature (on by
//! default; the performance gate's slim build leaves them out).

pub mod actix;
pub mod axum;
pub mod poem;
pub mod rocket;
