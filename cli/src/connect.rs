//! Reaching Redis the way the example applications do: keygate's `RedisEnv` reads
//! `REDIS_URL`, `REDIS_CLUSTER_URLS`, `REDIS_SENTINEL_*` and the TLS variables.

use keygate::{RedisEnv, RedisStore};

use crate::error::{CliError, CliResult};

/// The connected store and where it is (addresses only, for messages).
pub struct Target {
    /// The store.
    pub store: RedisStore,
    /// Where it is, e.g. `Redis at 127.0.0.1:6379`.
    pub place: String,
}

/// Connects to the Redis the environment names; an error when it names none.
pub async fn connect() -> CliResult<Target> {
    let env = RedisEnv::from_env()?;
    let place = env.describe();
    match env.connect().await {
        Ok(Some(store)) => Ok(Target { store, place }),
        Ok(None) => Err(CliError::new(
            "no Redis configured: set REDIS_URL, REDIS_CLUSTER_URLS, or REDIS_SENTINEL_MASTER \
             with REDIS_SENTINEL_URLS",
        )),
        Err(e @ keygate::Error::Config(_)) => Err(e.into()),
        Err(e) => Err(CliError::new(format!("cannot reach {place}: {e}"))),
    }
}
