//! The limiter on Redis: one script call per decision, or per batch of one subject's
//! checks that overlapped on an instance, on the server's clock.

use async_trait::async_trait;

use super::{Clock, GcraParams, LimitReply, RateLimitStore, WindowParams};
use crate::error::{BackendError, Result};
use crate::redis_store::script::LuaScript;
use crate::redis_store::{RedisStore, lua_script};

lua_script!(GCRA, "gcra.lua");
lua_script!(WINDOW, "window.lua");

#[async_trait]
impl RateLimitStore for RedisStore {
    async fn gcra(&self, key: &str, params: GcraParams, clock: &Clock) -> Result<LimitReply> {
        first(self.gcra_arrivals(key, params, clock, 1).await?)
    }

    async fn window(&self, key: &str, params: WindowParams, clock: &Clock) -> Result<LimitReply> {
        first(self.window_arrivals(key, params, clock, 1).await?)
    }

    async fn gcra_arrivals(
        &self,
        key: &str,
        params: GcraParams,
        _clock: &Clock,
        arrivals: u32,
    ) -> Result<Vec<LimitReply>> {
        let limit = [params.interval_us, params.tolerance_us];
        self.decide(&GCRA, key, limit, arrivals).await
    }

    async fn window_arrivals(
        &self,
        key: &str,
        params: WindowParams,
        _clock: &Clock,
        arrivals: u32,
    ) -> Result<Vec<LimitReply>> {
        let limit = [params.period_us, params.limit];
        self.decide(&WINDOW, key, limit, arrivals).await
    }
}

fn first(replies: Vec<LimitReply>) -> Result<LimitReply> {
    replies
        .into_iter()
        .next()
        .ok_or_else(|| BackendError::Protocol("no decision from a rate limit script").into())
}

impl RedisStore {
    /// Runs one of the limiter's scripts: the subject's key, the limit's two integers and
    /// the number of arrivals, answering the server's time and four integers per arrival,
    /// in one string.
    async fn decide(
        &self,
        script: &LuaScript,
        key: &str,
        limit: [u64; 2],
        arrivals: u32,
    ) -> Result<Vec<LimitReply>> {
        let mut invocation = script.prepare_invoke();
        invocation
            .key(key)
            .arg(limit[0])
            .arg(limit[1])
            .arg(arrivals);
        let mut conn = self.conn();
        let reply: Vec<u8> = self.bounded(invocation.invoke_async(&mut conn)).await?;
        let unexpected = || BackendError::Protocol("unknown reply from a rate limit script");
        let mut numbers = reply.split(|b| *b == b' ').map(|word| {
            std::str::from_utf8(word)
                .ok()
                .and_then(|word| word.parse::<u64>().ok())
                .ok_or_else(unexpected)
        });
        let now_us = numbers.next().ok_or_else(unexpected)??;
        let mut next = || numbers.next().ok_or_else(unexpected)?;
        let mut decided = Vec::with_capacity(arrivals as usize);
        for _ in 0..arrivals {
            let allowed = match next()? {
                1 => true,
                0 => false,
                _ => return Err(unexpected().into()),
            };
            decided.push(LimitReply {
                allowed,
                remaining: next()?,
                retry_after_us: next()?,
                reset_us: next()?,
                now_us,
            });
        }
        if numbers.next().is_some() {
            return Err(unexpected().into());
        }
        Ok(decided)
    }
}

/// The source of the limiter's scripts, for benchmarks that run them without keygate
/// (`redis-benchmark ... EVALSHA`): `(gcra, sliding window)`.
#[doc(hidden)]
pub fn script_sources() -> (&'static str, &'static str) {
    (GCRA.source(), WINDOW.source())
}
