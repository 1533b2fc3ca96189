//! Locks on Redis.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::{BackendError, Result};
use crate::lock::{AcquireOutcome, LockKeys, LockStatus, LockStore, ReleaseSignal};
use crate::redis_store::connection::BlockingConn;
use crate::redis_store::script::Invocation;
use crate::redis_store::{RedisStore, lua_script};

lua_script!(LOCK_ACQUIRE, "lock_acquire.lua");
lua_script!(LOCK_RELEASE, "lock_release.lua");
lua_script!(LOCK_RENEW, "lock_renew.lua");

fn acquire_invocation<'a>(
    keys: &LockKeys,
    owner: &str,
    lease_ms: u64,
    fence_ttl_ms: u64,
) -> Invocation<'a> {
    let mut invocation = LOCK_ACQUIRE.prepare_invoke();
    invocation
        .key(&keys.lock)
        .key(&keys.fence)
        .arg(owner)
        .arg(lease_ms)
        .arg(fence_ttl_ms);
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
    acquire: &Invocation<'_>,
    keys: &LockKeys,
    replicas: u32,
    timeout_ms: u64,
) -> redis::RedisResult<(AcquireOutcome, u32)> {
    let reply = acquire.invoke_async(conn).await?;
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

/// Most idle dedicated connections kept for acquisitions that wait for replication; more
/// are opened while more acquisitions run at once, and closed when they end.
const IDLE_REPLICATION_CONNS: usize = 4;

/// Idle dedicated connections for acquisitions followed by `WAIT`. An acquisition takes one
/// for itself and puts it back when done; the lock on the list is held only to take or put.
#[derive(Default)]
struct ReplicationConns {
    idle: Mutex<Vec<BlockingConn>>,
}

impl ReplicationConns {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<BlockingConn>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self) -> Option<BlockingConn> {
        self.idle().pop()
    }

    fn put(&self, conn: BlockingConn) {
        let mut idle = self.idle();
        if idle.len() < IDLE_REPLICATION_CONNS {
            idle.push(conn);
        }
    }

    fn clear(&self) {
        self.idle().clear();
    }
}

impl RedisStore {
    /// After a failed or timed-out acquisition on a dedicated connection: releases by owner
    /// on that same connection, in the background and bounded by the command timeout, then
    /// closes it. The release is queued behind the acquisition (and its `WAIT`), so Redis
    /// runs it after the acquisition even if it runs both late.
    fn give_back_on(&self, mut conn: BlockingConn, keys: &LockKeys, owner: &str) {
        let mut invocation = LOCK_RELEASE.prepare_invoke();
        invocation.key(&keys.lock).arg(owner).arg(&keys.channel);
        let bound = self.command_timeout + Duration::from_millis(100);
        tokio::spawn(async move {
            let release = invocation.invoke_async::<i64>(&mut conn);
            if let Ok(Err(error)) = tokio::time::timeout(bound, release).await {
                tracing::debug!(%error, "giving back a failed acquisition on its connection failed");
            }
        });
    }
}

#[async_trait]
impl LockStore for RedisStore {
    async fn try_acquire(
        &self,
        keys: &LockKeys,
        owner: &str,
        lease_ms: u64,
        fence_ttl_ms: u64,
    ) -> Result<AcquireOutcome> {
        let invocation = acquire_invocation(keys, owner, lease_ms, fence_ttl_ms);
        let mut conn = self.conn();
        acquire_outcome(self.bounded(invocation.invoke_async(&mut conn)).await?)
    }

    async fn try_acquire_replicated(
        &self,
        keys: &LockKeys,
        owner: &str,
        lease_ms: u64,
        fence_ttl_ms: u64,
        replicas: u32,
        timeout_ms: u64,
    ) -> Result<(AcquireOutcome, u32)> {
        // WAIT blocks the connection it runs on and counts the writes sent on it: the
        // script and the WAIT share a dedicated connection, never the shared one, and each
        // acquisition has that connection to itself, so a slow WAIT delays no other lock.
        // Everything, opening a connection included, is bounded by `limit`.
        let limit = self.command_timeout * 2 + Duration::from_millis(timeout_ms);
        let deadline = Instant::now() + limit;
        let timed_out = || crate::error::Error::from(BackendError::Timeout(limit));
        let acquire = acquire_invocation(keys, owner, lease_ms, fence_ttl_ms);
        loop {
            let pooled = self.local::<ReplicationConns>().take();
            let reused = pooled.is_some();
            let mut conn = match pooled {
                Some(conn) => conn,
                None => {
                    let opening = self.dedicated().blocking(self.connect_timeout);
                    tokio::time::timeout_at(deadline, opening)
                        .await
                        .map_err(|_| timed_out())??
                }
            };
            let attempt = acquire_and_wait(&mut conn, &acquire, keys, replicas, timeout_ms);
            match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Ok(done)) => {
                    self.local::<ReplicationConns>().put(conn);
                    return Ok(done);
                }
                Ok(Err(e)) => {
                    // A connection kept from before may have died since (a failover), and
                    // the other idle ones with it: one retry on a fresh one. The script is
                    // idempotent for its owner.
                    let dropped = e.is_io_error() || e.is_connection_dropped();
                    if reused && dropped {
                        self.local::<ReplicationConns>().clear();
                        continue;
                    }
                    self.give_back_on(conn, keys, owner);
                    return Err(crate::error::Error::from(e));
                }
                Err(_) => {
                    self.give_back_on(conn, keys, owner);
                    return Err(timed_out());
                }
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

    async fn status(&self, keys: &LockKeys) -> Result<LockStatus> {
        // Both keys share the lock's hash tag: one pipeline, also on a cluster.
        let mut pipe = redis::pipe();
        pipe.cmd("PTTL").arg(&keys.lock);
        pipe.cmd("GET").arg(&keys.fence);
        let mut conn = self.conn();
        let (pttl, fence): (i64, Option<String>) =
            self.bounded(pipe.query_async(&mut conn)).await?;
        Ok(LockStatus {
            // -2: no lock; -1 (no expiry) cannot come from keygate's scripts but is held.
            held: pttl != -2,
            lease_left: u64::try_from(pttl).ok().map(Duration::from_millis),
            fence: fence.and_then(|f| f.parse().ok()),
        })
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
