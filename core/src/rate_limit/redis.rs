//! The limiter on Redis: one script call per decision, on the server's clock.

use async_trait::async_trait;

use super::{Clock, GcraParams, LimitReply, RateLimitStore, WindowParams};
use crate::error::{BackendError, Result};
use crate::redis_store::script::LuaScript;
use crate::redis_store::{RedisStore, lua_script};

lua_script!(GCRA, "gcra.lua");
lua_script!(WINDOW, "window.lua");

#[async_trait]
impl RateLimitStore for RedisStore {
    async fn gcra(&self, key: &str, params: GcraParams, _clock: &Clock) -> Result<LimitReply> {
        self.decide(&GCRA, key, params.interval_us, params.tolerance_us)
            .await
    }

    async fn window(&self, key: &str, params: WindowParams, _clock: &Clock) -> Result<LimitReply> {
        self.decide(&WINDOW, key, params.period_us, params.limit)
            .await
    }
}

impl RedisStore {
    /// Runs one of the limiter's scripts: one key, two integer arguments, and the reply
    /// both scripts answer.
    async fn decide(&self, script: &LuaScript, key: &str, a: u64, b: u64) -> Result<LimitReply> {
        let mut invocation = script.prepare_invoke();
        invocation.key(key).arg(a).arg(b);
        let mut conn = self.conn();
        let (allowed, remaining, retry_after_us, reset_us, now_us): (i64, u64, u64, u64, u64) =
            self.bounded(invocation.invoke_async(&mut conn)).await?;
        let allowed = match allowed {
            1 => true,
            0 => false,
            _ => {
                return Err(
                    BackendError::Protocol("unknown reply from a rate limit script").into(),
                );
            }
        };
        Ok(LimitReply {
            allowed,
            remaining,
            retry_after_us,
            reset_us,
            now_us,
        })
    }
}

/// The source of the limiter's scripts, for benchmarks that run them without keygate
/// (`redis-benchmark ... EVALSHA`): `(gcra, sliding window)`.
#[doc(hidden)]
pub fn script_sources() -> (&'static str, &'static str) {
    (GCRA.source(), WINDOW.source())
}
