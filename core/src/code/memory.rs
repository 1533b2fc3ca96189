//! Verification codes in memory, with the Redis scripts' semantics.

use std::time::Duration;

use async_trait::async_trait;
use subtle::ConstantTimeEq;

use crate::code::{CheckOutcome, CodeKeys, CodeStore, IssueLimits, IssueOutcome};
use crate::error::Result;
use crate::memory_store::MemoryStore;
use crate::memory_store::db::Value;
use crate::ttl::millis;

#[async_trait]
impl CodeStore for MemoryStore {
    async fn issue(
        &self,
        keys: &CodeKeys,
        value: &str,
        limits: IssueLimits,
    ) -> Result<IssueOutcome> {
        Ok(self.with_db(|db| {
            if let Some(wait) = db.ttl(&keys.cooldown) {
                return IssueOutcome::Cooldown(millis(wait));
            }
            let sent: u32 = db
                .get_str(&keys.daily)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if sent >= limits.daily_cap {
                let wait = db.ttl(&keys.daily).unwrap_or(Duration::ZERO);
                return IssueOutcome::DailyCap(millis(wait));
            }
            db.set(
                &keys.code,
                Value::Str(value.to_owned()),
                Some(Duration::from_millis(limits.ttl_ms)),
            );
            db.remove(&keys.tries);
            if limits.cooldown_ms > 0 {
                db.set(
                    &keys.cooldown,
                    Value::Str("1".into()),
                    Some(Duration::from_millis(limits.cooldown_ms)),
                );
            }
            if db.incr(&keys.daily) == 1 {
                let count = Value::Str("1".into());
                db.set(
                    &keys.daily,
                    count,
                    Some(Duration::from_millis(limits.window_ms)),
                );
            }
            IssueOutcome::Issued
        }))
    }

    async fn revoke(&self, keys: &CodeKeys, value: &str) -> Result<()> {
        self.with_db(|db| {
            if db.get_str(&keys.code) == Some(value) {
                db.remove(&keys.code);
                db.remove(&keys.cooldown);
            }
        });
        Ok(())
    }

    async fn check(
        &self,
        keys: &CodeKeys,
        candidate: &str,
        max_tries: u32,
    ) -> Result<CheckOutcome> {
        Ok(self.with_db(|db| {
            let tries_so_far = |db: &mut crate::memory_store::db::Db| -> i64 {
                db.get_str(&keys.tries)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0)
            };
            let Some(stored) = db.get_str(&keys.code) else {
                return if tries_so_far(db) >= i64::from(max_tries) {
                    CheckOutcome::Burned
                } else {
                    CheckOutcome::Missing
                };
            };
            if bool::from(stored.as_bytes().ct_eq(candidate.as_bytes())) {
                db.remove(&keys.code);
                db.remove(&keys.tries);
                return CheckOutcome::Valid;
            }
            let code_ttl = db.ttl(&keys.code);
            let tries = db.incr(&keys.tries);
            if tries == 1 {
                db.set(&keys.tries, Value::Str("1".into()), code_ttl);
            }
            if tries >= i64::from(max_tries) {
                db.remove(&keys.code);
                return CheckOutcome::Burned;
            }
            CheckOutcome::Wrong(u32::try_from(i64::from(max_tries) - tries).unwrap_or(0))
        }))
    }
}
