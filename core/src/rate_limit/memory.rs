//! The limiter in memory: the same decisions as the Redis scripts, on the limiter's clock.

use std::time::Duration;

use async_trait::async_trait;

use super::{Clock, GcraParams, LimitReply, RateLimitStore, WindowParams, gcra, sliding_window};
use crate::error::Result;
use crate::memory_store::MemoryStore;
use crate::memory_store::db::Value;

#[async_trait]
impl RateLimitStore for MemoryStore {
    async fn gcra(&self, key: &str, params: GcraParams, clock: &Clock) -> Result<LimitReply> {
        let now_us = clock.now_us();
        Ok(self.with_db(|db| {
            let stored = db.get_str(key).and_then(|s| s.parse::<u64>().ok());
            let (reply, new_tat) = gcra(stored, now_us, params);
            if let Some(tat) = new_tat {
                // As the script: the key lives until the budget is full again (whole ms,
                // rounded up).
                let ttl = Duration::from_millis((tat - now_us).div_ceil(1000));
                db.set(key, Value::Str(tat.to_string()), Some(ttl));
            }
            reply
        }))
    }

    async fn window(&self, key: &str, params: WindowParams, clock: &Clock) -> Result<LimitReply> {
        let now_us = clock.now_us();
        Ok(self.with_db(|db| {
            let mut log: Vec<u64> = match db.get(key).map(|e| &e.value) {
                Some(Value::ZSet(entries)) => entries
                    .iter()
                    .filter_map(|&(_, t)| u64::try_from(t).ok())
                    .collect(),
                _ => Vec::new(),
            };
            log.sort_unstable();
            let reply = sliding_window(&mut log, now_us, params);
            if reply.allowed {
                // As the script: the key lives one window after the newest admission
                // (whole ms, rounded up); a refusal leaves its expiry alone.
                let ttl = Duration::from_millis(params.period_us.div_ceil(1000));
                let entries = log
                    .iter()
                    .map(|&t| (t.to_string(), i64::try_from(t).unwrap_or(i64::MAX)))
                    .collect();
                db.set(key, Value::ZSet(entries), Some(ttl));
            }
            reply
        }))
    }
}

impl MemoryStore {
    /// How many rate-limit keys are live (idle subjects leave none behind).
    pub fn rate_limit_keys(&self) -> usize {
        self.with_db(|db| db.count_live("keygate:rate:"))
    }
}
