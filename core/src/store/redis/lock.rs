//! Locks on Redis.

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{LOCK_ACQUIRE, LOCK_RELEASE, LOCK_RENEW, RedisStore};
use crate::error::{BackendError, Result};
use crate::lock::{AcquireOutcome, LockKeys, LockStore, ReleaseSignal};

#[async_trait]
impl LockStore for RedisStore {
    async fn try_acquire(
        &self,
        keys: &LockKeys,
        owner: &str,
        lease_ms: u64,
    ) -> Result<AcquireOutcome> {
        let mut invocation = LOCK_ACQUIRE.prepare_invoke();
        invocation
            .key(&keys.lock)
            .key(&keys.fence)
            .arg(owner)
            .arg(lease_ms);
        let mut conn = self.conn();
        let (acquired, value): (i64, u64) =
            self.bounded(invocation.invoke_async(&mut conn)).await?;
        match acquired {
            1 => Ok(AcquireOutcome::Acquired(value)),
            0 => Ok(AcquireOutcome::Held(value)),
            _ => Err(BackendError::Protocol("unknown reply from the lock script").into()),
        }
    }

    async fn release(&self, keys: &LockKeys, owner: &str) -> Result<bool> {
        let mut invocation = LOCK_RELEASE.prepare_invoke();
        invocation.key(&keys.lock).arg(owner).arg(&keys.channel);
        let mut conn = self.conn();
        let released: i64 = self.bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(released == 1)
    }

    async fn renew(&self, keys: &LockKeys, owner: &str, lease_ms: u64) -> Result<bool> {
        let mut invocation = LOCK_RENEW.prepare_invoke();
        invocation.key(&keys.lock).arg(owner).arg(lease_ms);
        let mut conn = self.conn();
        let renewed: i64 = self.bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(renewed == 1)
    }

    async fn subscribe(&self, keys: &LockKeys) -> Result<ReleaseSignal> {
        // Waiting is a blocking read: it gets a dedicated connection, not the shared one.
        let mut pubsub = self.bounded(self.client().get_async_pubsub()).await?;
        self.bounded(pubsub.subscribe(&keys.channel)).await?;
        let (tx, rx) = mpsc::channel(1);
        let task = tokio::spawn(async move {
            let mut messages = pubsub.into_on_message();
            while messages.next().await.is_some() {
                // A full channel already holds a wake-up; dropping this one loses nothing.
                if tx.try_send(()).is_err() && tx.is_closed() {
                    break;
                }
            }
        });
        Ok(ReleaseSignal::new(rx, task))
    }
}
