//! Verification codes on Redis.

use async_trait::async_trait;

use crate::code::{CheckOutcome, CodeKeys, CodeStore, IssueLimits, IssueOutcome};
use crate::error::{BackendError, Result};
use crate::redis_store::{RedisStore, lua_script};

lua_script!(CODE_ISSUE, "code_issue.lua");
lua_script!(CODE_REVOKE, "code_revoke.lua");
lua_script!(CODE_CHECK, "code_check.lua");

#[async_trait]
impl CodeStore for RedisStore {
    async fn issue(
        &self,
        keys: &CodeKeys,
        value: &str,
        limits: IssueLimits,
    ) -> Result<IssueOutcome> {
        let mut invocation = CODE_ISSUE.prepare_invoke();
        invocation
            .key(&keys.code)
            .key(&keys.cooldown)
            .key(&keys.daily)
            .key(&keys.tries)
            .arg(value)
            .arg(limits.ttl_ms)
            .arg(limits.cooldown_ms)
            .arg(limits.daily_cap)
            .arg(limits.window_ms);
        let mut conn = self.conn();
        let (status, wait): (i64, u64) = self.bounded(invocation.invoke_async(&mut conn)).await?;
        match status {
            0 => Ok(IssueOutcome::Issued),
            1 => Ok(IssueOutcome::Cooldown(wait)),
            2 => Ok(IssueOutcome::DailyCap(wait)),
            _ => Err(BackendError::Protocol("unknown reply from the code issue script").into()),
        }
    }

    async fn revoke(&self, keys: &CodeKeys, value: &str) -> Result<()> {
        let mut invocation = CODE_REVOKE.prepare_invoke();
        invocation.key(&keys.code).key(&keys.cooldown).arg(value);
        let mut conn = self.conn();
        self.bounded(invocation.invoke_async::<()>(&mut conn)).await
    }

    async fn check(
        &self,
        keys: &CodeKeys,
        candidate: &str,
        max_tries: u32,
    ) -> Result<CheckOutcome> {
        let mut invocation = CODE_CHECK.prepare_invoke();
        invocation
            .key(&keys.code)
            .key(&keys.tries)
            .arg(candidate)
            .arg(max_tries);
        let mut conn = self.conn();
        let (status, left): (i64, u32) = self.bounded(invocation.invoke_async(&mut conn)).await?;
        match status {
            0 => Ok(CheckOutcome::Missing),
            1 => Ok(CheckOutcome::Valid),
            2 => Ok(CheckOutcome::Wrong(left)),
            3 => Ok(CheckOutcome::Burned),
            _ => Err(BackendError::Protocol("unknown reply from the code check script").into()),
        }
    }
}
