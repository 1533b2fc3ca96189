//! Locks in memory, with the Redis scripts' semantics (for one process).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::{broadcast, mpsc};

use crate::error::Result;
use crate::lock::{AcquireOutcome, LockKeys, LockStatus, LockStore, ReleaseSignal};
use crate::memory_store::MemoryStore;
use crate::memory_store::db::Value;
use crate::ttl::millis;

/// The system clock in microseconds since the Unix epoch (0 before it), as Redis `TIME`.
fn clock_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl MemoryStore {
    /// How many lock keys (held locks and their fencing counters) are live: lock names
    /// that are no longer used leave none behind once their fence TTL has passed
    /// ([`LockOptions::with_fence_ttl`](crate::lock::LockOptions::with_fence_ttl)).
    pub fn lock_keys(&self) -> usize {
        self.with_db(|db| db.count_live("keygate:lock:"))
    }
}

#[async_trait]
impl LockStore for MemoryStore {
    async fn try_acquire(
        &self,
        keys: &LockKeys,
        owner: &str,
        lease_ms: u64,
        fence_ttl_ms: u64,
    ) -> Result<AcquireOutcome> {
        Ok(self.with_db(|db| {
            if db.get_str(&keys.lock) == Some(owner) {
                // A retry of this owner's acquisition (as in the Redis script).
                let fence = db.get_str(&keys.fence).and_then(|f| f.parse().ok());
                return AcquireOutcome::Acquired(fence.unwrap_or(0));
            }
            if db.exists(&keys.lock) {
                let left = db.ttl(&keys.lock).map_or(0, millis);
                return AcquireOutcome::Held(left);
            }
            let lease = Some(Duration::from_millis(lease_ms));
            db.set(&keys.lock, Value::Str(owner.to_owned()), lease);
            // As the Redis script: the larger of the stored fence plus one and the clock in
            // microseconds, so fences keep increasing after the fence key expired.
            let stored: u64 = db
                .get_str(&keys.fence)
                .and_then(|f| f.parse().ok())
                .unwrap_or(0);
            let fence = stored.saturating_add(1).max(clock_micros());
            let fence_ttl = Some(Duration::from_millis(fence_ttl_ms));
            db.set(&keys.fence, Value::Str(fence.to_string()), fence_ttl);
            AcquireOutcome::Acquired(fence)
        }))
    }

    async fn release(&self, keys: &LockKeys, owner: &str) -> Result<bool> {
        let released = self.with_db(|db| {
            let ours = db.get_str(&keys.lock) == Some(owner);
            if ours {
                db.remove(&keys.lock);
            }
            ours
        });
        if released {
            // No receiver is not an error: nobody waits.
            let _ = self.published.send(keys.lock.clone());
        }
        Ok(released)
    }

    async fn renew(&self, keys: &LockKeys, owner: &str, lease_ms: u64) -> Result<bool> {
        Ok(self.with_db(|db| {
            let ours = db.get_str(&keys.lock) == Some(owner);
            if ours {
                let lease = Some(Duration::from_millis(lease_ms));
                db.set(&keys.lock, Value::Str(owner.to_owned()), lease);
            }
            ours
        }))
    }

    async fn status(&self, keys: &LockKeys) -> Result<LockStatus> {
        Ok(self.with_db(|db| {
            let held = db.exists(&keys.lock);
            LockStatus {
                held,
                lease_left: if held { db.ttl(&keys.lock) } else { None },
                fence: db.get_str(&keys.fence).and_then(|f| f.parse().ok()),
            }
        }))
    }

    async fn subscribe(&self, keys: &LockKeys) -> Result<ReleaseSignal> {
        let mut released = self.published.subscribe();
        let lock = keys.lock.clone();
        let (tx, rx) = mpsc::channel(1);
        let task = tokio::spawn(async move {
            loop {
                match released.recv().await {
                    Ok(key) if key == lock => {
                        if tx.try_send(()).is_err() && tx.is_closed() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    // Missed messages may include ours: wake the waiter to try again.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx.try_send(());
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        Ok(ReleaseSignal::new(rx, task))
    }
}
