//! Locks on Redis.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::connection::BlockingConn;
use super::script::Invocation;
use super::{LOCK_ACQUIRE, LOCK_RELEASE, LOCK_RENEW, RedisStore};
use crate::error::{BackendError, Result};
use crate::lock::{AcquireOutcome, LockKeys, LockStore, ReleaseSignal};

fn acquire_invocation<'a>(keys: &LockKeys, owner: &str, lease_ms: u64) -> Invocation<'a> {
    let mut invocation = LOCK_ACQUIRE.prepare_invoke();
    invocation
        .key(&keys.lock)
        .key(&keys.fence)
        .arg(owner)
        .arg(lease_ms);
    invocation
}

fn acquire_outcome((acquired, value): (i64, u64)) -> Result<AcquireOutcome> {
    match acquired {
        1 => Ok(AcquireOutcome::Acquired(value)),
        0 => Ok(AcquireOutcome::Held(value)),
        _ => Err(BackendError::Protocol("unknown reply from the lock script").into()),
    }
}

/// The acquire script, then `WAIT` if acquired, on one dedicated connection.
async fn acquire_and_wait(
    conn: &mut BlockingConn,
    keys: &LockKeys,
    owner: &str,
    lease_ms: u64,
    replicas: u32,
    timeout_ms: u64,
) -> redis::RedisResult<(AcquireOutcome, u32)> {
    let reply = acquire_invocation(keys, owner, lease_ms)
        .invoke_async(conn)
        .await?;
    let outcome = match reply {
        (1, fence) => AcquireOutcome::Acquired(fence),
        (0, left) => AcquireOutcome::Held(left),
        _ => {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Parse,
                "unknown reply from the lock script",
            )));
        }
    };
    let acknowledged = match outcome {
        AcquireOutcome::Acquired(_) => {
            conn.wait_for_replicas(&keys.lock, replicas, timeout_ms)
                .await?
        }
        AcquireOutcome::Held(_) => 0,
    };
    Ok((outcome, acknowledged))
}

#[async_trait]
impl LockStore for RedisStore {
    async fn try_acquire(
        &self,
        keys: &LockKeys,
        owner: &str,
        lease_ms: u64,
    ) -> Result<AcquireOutcome> {
        let invocation = acquire_invocation(keys, owner, lease_ms);
        let mut conn = self.conn();
        acquire_outcome(self.bounded(invocation.invoke_async(&mut conn)).await?)
    }

    async fn try_acquire_replicated(
        &self,
        keys: &LockKeys,
        owner: &str,
        lease_ms: u64,
        replicas: u32,
        timeout_ms: u64,
    ) -> Result<(AcquireOutcome, u32)> {
        // WAIT blocks the connection it runs on and counts the writes sent on it: the
        // script and the WAIT share a dedicated connection, never the shared one.
        let limit = self.command_timeout * 2 + Duration::from_millis(timeout_ms);
        let mut slot = self.replication().lock().await;
        let attempt = async {
            loop {
                let reused = slot.is_some();
                let conn = match slot.as_mut() {
                    Some(conn) => conn,
                    None => slot.insert(self.dedicated().blocking(self.connect_timeout).await?),
                };
                match acquire_and_wait(conn, keys, owner, lease_ms, replicas, timeout_ms).await {
                    Ok(done) => return Ok(done),
                    Err(e) => {
                        // Reconnect next time: the server may be gone, or be another one.
                        *slot = None;
                        // A connection kept from before may have died since (a failover):
                        // one retry on a fresh one. The script is idempotent for its owner.
                        let dropped = e.is_io_error() || e.is_connection_dropped();
                        if !(reused && dropped) {
                            return Err(crate::Error::from(e));
                        }
                    }
                }
            }
        };
        match tokio::time::timeout(limit, attempt).await {
            Ok(result) => result,
            Err(_) => {
                *slot = None;
                Err(BackendError::Timeout(limit).into())
            }
        }
    }

    fn command_timeout(&self) -> Duration {
        self.command_timeout
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
        // Waiting is a blocking read: it gets a dedicated connection, not the shared one. On
        // a cluster any node will do: PUBLISH reaches every node.
        let mut pubsub = self.bounded(self.dedicated().pubsub()).await?;
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
