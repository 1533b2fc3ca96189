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
        first(self.gcra_batch(&[(key, 1)], params, clock).await?)
    }

    async fn window(&self, key: &str, params: WindowParams, clock: &Clock) -> Result<LimitReply> {
        first(self.window_batch(&[(key, 1)], params, clock).await?)
    }

    async fn gcra_batch(
        &self,
        subjects: &[(&str, u32)],
        params: GcraParams,
        _clock: &Clock,
    ) -> Result<Vec<Vec<LimitReply>>> {
        self.decide_all(&GCRA, subjects, [params.interval_us, params.tolerance_us])
            .await
    }

    async fn window_batch(
        &self,
        subjects: &[(&str, u32)],
        params: WindowParams,
        _clock: &Clock,
    ) -> Result<Vec<Vec<LimitReply>>> {
        self.decide_all(&WINDOW, subjects, [params.period_us, params.limit])
            .await
    }
}

fn first(replies: Vec<Vec<LimitReply>>) -> Result<LimitReply> {
    replies
        .into_iter()
        .next()
        .and_then(|decided| decided.into_iter().next())
        .ok_or_else(|| BackendError::Protocol("no decision from a rate limit script").into())
}

impl RedisStore {
    /// Decides every subject's arrivals: one script call, or on a Cluster (where keys of
    /// different slots cannot share a call) one per subject, sent together.
    async fn decide_all(
        &self,
        script: &LuaScript,
        subjects: &[(&str, u32)],
        limit: [u64; 2],
    ) -> Result<Vec<Vec<LimitReply>>> {
        if !self.conn().is_cluster() || subjects.len() < 2 {
            return self.decide(script, subjects, limit).await;
        }
        let calls = subjects
            .iter()
            .map(|subject| self.decide(script, std::slice::from_ref(subject), limit));
        let mut decided = Vec::with_capacity(subjects.len());
        for outcome in futures_util::future::join_all(calls).await {
            decided.extend(outcome?);
        }
        Ok(decided)
    }

    /// Runs one of the limiter's scripts: the subjects' keys, the limit's two integers and
    /// each subject's arrivals, answering the server's time and four integers per arrival,
    /// in one string.
    async fn decide(
        &self,
        script: &LuaScript,
        subjects: &[(&str, u32)],
        limit: [u64; 2],
    ) -> Result<Vec<Vec<LimitReply>>> {
        let mut invocation = script.prepare_invoke();
        for (key, _) in subjects {
            invocation.key(*key);
        }
        invocation.arg(limit[0]).arg(limit[1]);
        for (_, arrivals) in subjects {
            invocation.arg(*arrivals);
        }
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
        let mut decided = Vec::with_capacity(subjects.len());
        for (_, arrivals) in subjects {
            let mut replies = Vec::with_capacity(*arrivals as usize);
            for _ in 0..*arrivals {
                let allowed = match next()? {
                    1 => true,
                    0 => false,
                    _ => return Err(unexpected().into()),
                };
                replies.push(LimitReply {
                    allowed,
                    remaining: next()?,
                    retry_after_us: next()?,
                    reset_us: next()?,
                    now_us,
                });
            }
            decided.push(replies);
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
