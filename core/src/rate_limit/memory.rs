//! The limiter in memory: the same decisions as the Redis script, on the limiter's clock.

use std::time::Duration;

use async_trait::async_trait;

use super::{Clock, GcraParams, GcraReply, RateLimitStore, gcra};
use crate::error::Result;
use crate::memory_store::MemoryStore;
use crate::memory_store::db::Value;

#[async_trait]
impl RateLimitStore for MemoryStore {
    async fn gcra(&self, key: &str, params: GcraParams, clock: &Clock) -> Result<GcraReply> {
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
}

impl MemoryStore {
    /// How many rate-limit keys are live (idle subjects leave none behind).
    pub fn rate_limit_keys(&self) -> usize {
        self.with_db(|db| db.count_live("keygate:rate:"))
    }
}
