//! A distributed lock on Redis, for work that only one instance may do at a time (two
//! payment callbacks racing for one order).
//!
//! - Acquire is `SET key owner NX PX lease` (with a random owner per acquisition) plus a
//!   fencing token, in one script; [`Locks::try_acquire`] tries once,
//!   [`Locks::acquire`] waits up to a deadline, [`Locks::with_lock`] runs a future while
//!   holding the lock.
//! - Waiters are woken by a message on the lock's release channel and poll as a fallback
//!   (at most [`LockOptions::with_poll_interval`], jittered), so a lost wake-up costs at
//!   most one poll interval.
//! - Only the owner releases (compare-and-delete); releasing a lock that was lost is
//!   reported ([`LockError::NotOwner`]).
//! - While held, the guard renews the lease (owner-checked, like Redisson's watchdog) three
//!   times per lease minus safety margin. It counts the lease from when it *sent* the last
//!   successful renewal (or the acquisition), never from when the reply came, so its count
//!   ends no later than Redis's. When a renewal finds the lock gone, or when no renewal was
//!   confirmed by that send time plus the lease minus the safety margin
//!   ([`LockOptions::with_safety_margin`]; Redis unreachable, frozen or too slow),
//!   [`LockGuard::is_lost`] turns true and [`LockGuard::lost`] completes — before the
//!   lease can end in Redis and another instance acquire the lock — and `with_lock` stops
//!   the work.
//! - Every successful acquisition of a name returns a strictly larger fencing token
//!   ([`LockGuard::fence`]) as long as Redis keeps its writes (see [Failover](#failover)):
//!   pass it to the storage you protect and let it reject writes carrying an older token,
//!   which is what keeps a holder that was paused past its lease from doing damage. The
//!   token is the larger of the name's stored token plus one and the Redis server's clock
//!   in microseconds (`TIME`, inside the script), so the stored token can expire
//!   ([`LockOptions::with_fence_ttl`], default 10 minutes after the name's last
//!   acquisition) without tokens ever going back: unused names leave no keys behind.
//!   Tokens are therefore large (about 1.8 × 10¹⁵ in 2026, below 2⁵³) and not consecutive.
//!   Only a step of the server's clock back by more than the fence TTL could make a token
//!   smaller than an earlier one.
//! - "Held by someone else" ([`LockError::Busy`], [`LockError::Timeout`]) and "Redis is
//!   unreachable" ([`LockError::Backend`]) are different errors: callers fail closed.
//! - An acquisition that fails with a backend error (a timeout, a dropped connection) may
//!   still have taken the lock: its reply was lost, or a frozen Redis runs it when it
//!   thaws. Before reporting the error, keygate releases by the attempt's owner id (best
//!   effort, bounded by the command timeout; on one server the release is queued behind
//!   the acquisition on the same connection, so it runs after it), so no lock is left held
//!   by nobody for a whole lease. The acquire script treats "held by this owner" as
//!   acquired, so retries within one [`Locks::acquire`] are idempotent. If the release
//!   cannot reach Redis either, the lease ends the lock.
//! - Keys `keygate:lock:{<name>}` (TTL: the lease) and `keygate:lock:{<name>}:fence`
//!   (TTL: the fence TTL) share a hash tag, so the scripts are single-slot on Redis Cluster.
//!   Names are escaped into the tag, so any name is safe. The scripts touch only these keys.
//!
//! A guard dropped without [`LockGuard::release`] releases in the background; a process
//! that dies holding a lock blocks others for at most the lease.
//!
//! ## Failover
//!
//! Redis replicates asynchronously: the master acknowledges the acquiring `SET NX` before
//! its replicas have it. If the master crashes in that window and a replica is promoted
//! (by Sentinel, or by the cluster itself), the new master has never seen the lock. Another
//! instance acquires it and **two hold it at once**, each told it is the only one. The
//! stored fencing token lives in the lock's slot and is written by the same script, so it is
//! lost with the same write. The second holder's token is still larger than every token
//! whose acquisition survived (the replica has it stored), and larger than the lost one as
//! long as the new master's clock reads later than the old master's did at the lost
//! acquisition — normally, as detecting a failure and promoting a replica takes seconds. If
//! the masters' clocks differ by more than that, the second holder can receive a token
//! **equal to or smaller** than the first's: keep the Redis servers' clocks synchronised
//! (NTP). A lost release only lets the lock linger until its lease ends; a lost renewal
//! shortens the lease to what the replica had.
//!
//! What keygate gives against it:
//!
//! - **The lost-lock signal bounds the overlap.** The guard renews three times per lease
//!   minus safety margin, checking the owner. On the promoted master the lock is absent or
//!   someone else's, so the first renewal after the failover fails: [`LockGuard::is_lost`]
//!   turns true, [`LockGuard::lost`] completes, [`Locks::with_lock`] drops the work, and
//!   [`LockGuard::release`] reports [`LockError::NotOwner`]. Renewals that keep failing
//!   while no master answers report the lock lost a safety margin before the last
//!   confirmed lease could end. The two holders therefore overlap for at most about one
//!   renewal interval after the failover completes. Work that must not overlap at all has
//!   to select on [`LockGuard::lost`] *and* be fenced. Without renewal
//!   ([`LockOptions::with_renewal`]`(false)`) the guard reports the lock lost a safety
//!   margin before its one lease ends, and a loss by failover shows only at release.
//! - **The fencing token closes the gap at the resource,** if the resource checks it
//!   strictly. Store the token of the last write with the record and accept a write only if
//!   its token is *greater* than the stored one
//!   (`UPDATE orders SET paid = true, fence = $1 WHERE id = $2 AND fence < $1`): once the
//!   second holder of a failover (larger token) wrote, the first's writes are refused. A
//!   check that accepts an *equal* token (`fence <= $1`, needed if one holding writes the
//!   same record several times) lets both through when clock skew gave them the same
//!   token. Store the token in a 64-bit integer column.
//! - **Waiting for replication narrows the window.**
//!   [`LockOptions::with_replication_wait`]`(n, timeout)` reports an acquisition only after
//!   `n` replicas acknowledged it (Redis `WAIT`), and gives the lock back otherwise
//!   ([`LockError::NotReplicated`]). The replica that gets promoted is normally the most
//!   up-to-date one, so an acknowledged acquisition survives a crash of the master. `WAIT`
//!   does not make Redis strongly consistent: a failover that promotes a replica that did
//!   not acknowledge, or a partition in which the old master keeps accepting writes, can
//!   still lose it. On a cluster the `WAIT` goes to the master of the lock's slot.
//!
//! keygate does not implement Redlock (one lock on several independent masters); where
//! double execution is unacceptable, the fencing check at the resource is what makes it
//! safe.

mod error;
mod guard;
mod locks;
#[cfg(feature = "memory")]
mod memory;
mod options;
mod redis;
mod status;

pub use error::LockError;
pub use guard::{Fence, LockGuard};
pub use locks::Locks;
pub use options::LockOptions;
pub use status::LockStatus;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::Result;
use crate::key_escape::escape;

/// The keys and channel of one lock name.
#[derive(Debug, Clone)]
pub struct LockKeys {
    /// Holds the owner token, with the lease as TTL.
    pub lock: String,
    /// The fencing counter, which expires a while after the name's last acquisition.
    pub fence: String,
    /// Release notifications.
    pub channel: String,
}

impl LockKeys {
    pub(crate) fn new(name: &str) -> Self {
        let tag = escape(name);
        Self {
            lock: format!("keygate:lock:{{{tag}}}"),
            fence: format!("keygate:lock:{{{tag}}}:fence"),
            channel: format!("keygate:lock:{{{tag}}}:released"),
        }
    }
}

/// What one acquisition attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AcquireOutcome {
    /// The lock is ours, with this fencing token.
    Acquired(u64),
    /// Someone holds it; their lease ends in this many ms (or is unknown: 0).
    Held(u64),
}

/// Wake-ups when a lock is released. Dropping it stops the subscription.
pub struct ReleaseSignal {
    rx: mpsc::Receiver<()>,
    task: JoinHandle<()>,
}

impl ReleaseSignal {
    /// A signal fed by `task` through the sender side of `rx`.
    pub fn new(rx: mpsc::Receiver<()>, task: JoinHandle<()>) -> Self {
        Self { rx, task }
    }

    /// Waits for the next release; `false` when the subscription ended (then poll).
    pub async fn next(&mut self) -> bool {
        self.rx.recv().await.is_some()
    }
}

impl Drop for ReleaseSignal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for ReleaseSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseSignal").finish_non_exhaustive()
    }
}

/// Storage of locks. Every method is one atomic step.
#[async_trait]
pub trait LockStore: Send + Sync + 'static {
    /// Takes the lock for `owner` with this lease if it is free, with a new fence: the
    /// larger of the stored fence plus one and the store's clock in microseconds, stored
    /// with the TTL `fence_ttl_ms` (at least the lease). If `owner` holds it already (a
    /// retry whose first reply was lost), reports it acquired with the stored fence.
    async fn try_acquire(
        &self,
        keys: &LockKeys,
        owner: &str,
        lease_ms: u64,
        fence_ttl_ms: u64,
    ) -> Result<AcquireOutcome>;

    /// Releases the lock if `owner` holds it (and notifies waiters); `false` otherwise.
    async fn release(&self, keys: &LockKeys, owner: &str) -> Result<bool>;

    /// Extends the lease if `owner` holds it; `false` otherwise.
    async fn renew(&self, keys: &LockKeys, owner: &str, lease_ms: u64) -> Result<bool>;

    /// Subscribes to release notifications of this lock.
    async fn subscribe(&self, keys: &LockKeys) -> Result<ReleaseSignal>;

    /// Whether the lock is held, the lease left and the stored fence, changing nothing.
    async fn status(&self, keys: &LockKeys) -> Result<LockStatus>;

    /// The longest one of these operations may take before it fails (the Redis command
    /// timeout); part of the default safety margin of [`LockOptions::with_safety_margin`].
    /// The default, for stores that answer at once, is zero.
    fn command_timeout(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// Like [`try_acquire`](Self::try_acquire), then, if acquired, waits up to
    /// `timeout_ms` until `replicas` replicas acknowledged the acquisition; returns the
    /// outcome and how many replicas acknowledged. The default, for stores without
    /// replication (no failover can lose their writes), acquires and reports `replicas`.
    async fn try_acquire_replicated(
        &self,
        keys: &LockKeys,
        owner: &str,
        lease_ms: u64,
        fence_ttl_ms: u64,
        replicas: u32,
        _timeout_ms: u64,
    ) -> Result<(AcquireOutcome, u32)> {
        Ok((
            self.try_acquire(keys, owner, lease_ms, fence_ttl_ms)
                .await?,
            replicas,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_break_out_of_the_hash_tag() {
        let keys = LockKeys::new("order:42");
        assert_eq!(keys.lock, "keygate:lock:{order:42}");
        assert_eq!(keys.fence, "keygate:lock:{order:42}:fence");
        let odd = LockKeys::new("a}b{c* d%");
        assert_eq!(odd.lock, "keygate:lock:{a%7Db%7Bc%2A%20d%25}");
        assert_ne!(LockKeys::new("a%7D").lock, LockKeys::new("a}").lock);
    }
}
