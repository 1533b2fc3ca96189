//! The session near cache against private Redis servers: hits cost nothing, every change
//! anywhere reaches every instance within milliseconds, and faults drop the cache.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;
mod smoke;
