//! The limiter on Redis: one script call per decision, on the server's clock.

use async_trait::async_trait;

use super::{Clock, GcraParams, GcraReply, RateLimitStore};
use crate::error::{BackendError, Result};
use crate::redis_store::{RedisStore, lua_script};

lua_script!(GCRA, "gcra.lua");

#[async_trait]
impl RateLimitStore for RedisStore {
    async fn gcra(&self, key: &str, params: GcraParams, _clock: &Clock) -> Result<GcraReply> {
        let mut invocation = GCRA.prepare_invoke();
        invocation
            .key(key)
            .arg(params.interval_us)
            .arg(params.tolerance_us);
        let mut conn = self.conn();
        let (allowed, remaining, retry_after_us, reset_us, now_us): (i64, u64, u64, u64, u64) =
            self.bounded(invocation.invoke_async(&mut conn)).await?;
        let allowed = match allowed {
            1 => true,
            0 => false,
            _ => {
                return Err(
                    BackendError::Protocol("unknown reply from the rate limit script").into(),
                );
            }
        };
        Ok(GcraReply {
            allowed,
            remaining,
            retry_after_us,
            reset_us,
            now_us,
        })
    }
}
