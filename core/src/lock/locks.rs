//! Acquiring locks.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::error::LockError;
use super::guard::{Fence, LockGuard};
use super::options::LockOptions;
use super::{AcquireOutcome, LockKeys, LockStore};
use crate::token::Token;
use crate::ttl::millis;

/// Distributed locks over a [`LockStore`]. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), keygate::lock::LockError> {
/// use std::time::Duration;
/// use keygate::MemoryStore;
/// use keygate::lock::Locks;
///
/// let locks = Locks::new(MemoryStore::new());
/// let first = locks
///     .with_lock("order:42", Duration::from_secs(2), |fence| async move {
///         // Process the payment callback; pass `fence` to storage that checks it.
///         fence.value()
///     })
///     .await?;
/// let next = locks
///     .with_lock("order:42", Duration::from_secs(2), |fence| async move { fence.value() })
///     .await?;
/// assert!(next > first, "every acquisition of a name gets a larger fence");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Locks {
    pub(crate) store: Arc<dyn LockStore>,
    pub(crate) options: LockOptions,
}

impl std::fmt::Debug for Locks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locks")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Locks {
    /// Locks with the default options.
    pub fn new(store: impl LockStore) -> Self {
        Self::from_shared(Arc::new(store))
    }

    /// Like [`new`](Self::new) for a shared store.
    pub fn from_shared(store: Arc<dyn LockStore>) -> Self {
        Self {
            store,
            options: LockOptions::default(),
        }
    }

    /// Replaces the options.
    pub fn with_options(mut self, options: LockOptions) -> Self {
        self.options = options;
        self
    }

    /// Tries once. Fails with [`LockError::Backend`] when the store fails or times out; the
    /// attempt is then given back by owner first (see the module docs), so a failure takes
    /// up to two command timeouts.
    pub async fn try_acquire(&self, name: &str) -> Result<LockGuard, LockError> {
        traced(self.try_acquire_untraced(name)).await
    }

    async fn try_acquire_untraced(&self, name: &str) -> Result<LockGuard, LockError> {
        let keys = LockKeys::new(name);
        let owner = Token::generate()?.expose().to_owned();
        let sent = Instant::now();
        match self.attempt(&keys, &owner).await? {
            AcquireOutcome::Acquired(fence) => {
                acquired_after(sent);
                Ok(LockGuard::start(
                    &self.store,
                    &self.options,
                    keys,
                    owner,
                    fence,
                    sent,
                ))
            }
            AcquireOutcome::Held(ms) => {
                crate::telemetry::count_n(crate::telemetry::names::LOCK_BUSY, 1);
                Err(LockError::Busy {
                    retry_after: (ms > 0).then(|| Duration::from_millis(ms)),
                })
            }
        }
    }

    /// Waits up to `wait` for the lock: woken by the holder's release, polling as a
    /// fallback. Backend errors end the wait at once (fail closed), after giving the
    /// attempt back as [`try_acquire`](Self::try_acquire) does.
    pub async fn acquire(&self, name: &str, wait: Duration) -> Result<LockGuard, LockError> {
        traced(self.acquire_untraced(name, wait)).await
    }

    async fn acquire_untraced(&self, name: &str, wait: Duration) -> Result<LockGuard, LockError> {
        let keys = LockKeys::new(name);
        let owner = Token::generate()?.expose().to_owned();
        let asked = Instant::now();
        let deadline = asked + wait;
        let mut signal = None;
        loop {
            let sent = Instant::now();
            let held_ms = match self.attempt(&keys, &owner).await? {
                AcquireOutcome::Acquired(fence) => {
                    acquired_after(asked);
                    return Ok(LockGuard::start(
                        &self.store,
                        &self.options,
                        keys,
                        owner,
                        fence,
                        sent,
                    ));
                }
                AcquireOutcome::Held(ms) => ms,
            };
            let now = Instant::now();
            if now >= deadline {
                crate::telemetry::count_n(crate::telemetry::names::LOCK_BUSY, 1);
                return Err(LockError::Timeout);
            }
            if signal.is_none() {
                // Subscribe, then try again at once: a release between the failed try and
                // the subscription would otherwise be missed.
                match self.store.subscribe(&keys).await {
                    Ok(s) => {
                        signal = Some(s);
                        continue;
                    }
                    Err(error) => {
                        tracing::debug!(%error, "lock release subscription failed; polling");
                    }
                }
            }
            let pause = self.pause(held_ms).min(deadline - now);
            match signal.as_mut() {
                Some(s) => {
                    tokio::select! {
                        alive = s.next() => if !alive { signal = None },
                        () = tokio::time::sleep(pause) => {}
                    }
                }
                None => tokio::time::sleep(pause).await,
            }
        }
    }

    /// Runs `work` while holding the lock named `name` (waiting up to `wait` for it) and
    /// releases it afterwards. If the lock is lost meanwhile, the work is stopped (its
    /// future dropped) and [`LockError::NotOwner`] returned.
    pub async fn with_lock<F, Fut, R>(
        &self,
        name: &str,
        wait: Duration,
        work: F,
    ) -> Result<R, LockError>
    where
        F: FnOnce(Fence) -> Fut,
        Fut: Future<Output = R>,
    {
        let guard = self.acquire(name, wait).await?;
        let outcome = tokio::select! {
            result = work(guard.fence_token()) => Some(result),
            () = guard.lost() => None,
        };
        match outcome {
            Some(result) => {
                guard.release().await?;
                Ok(result)
            }
            None => Err(LockError::NotOwner),
        }
    }

    /// One acquisition attempt. When it fails with a backend error its outcome is unknown:
    /// the request may have run and only its reply been lost (a timeout, a dropped
    /// connection), or run later (a frozen server works off what it received when it
    /// thaws). The lock is then given back by owner before the error is reported, so no
    /// lock is left held by nobody for a whole lease.
    async fn attempt(&self, keys: &LockKeys, owner: &str) -> Result<AcquireOutcome, LockError> {
        match self.attempt_unguarded(keys, owner).await {
            Err(LockError::Backend(error)) => {
                self.give_back(keys, owner, "an acquisition of unknown outcome")
                    .await;
                Err(LockError::Backend(error))
            }
            other => other,
        }
    }

    async fn attempt_unguarded(
        &self,
        keys: &LockKeys,
        owner: &str,
    ) -> Result<AcquireOutcome, LockError> {
        let lease = millis(self.options.lease);
        let fence_ttl = millis(self.options.fence_ttl.max(self.options.lease));
        let Some((wanted, timeout)) = self.options.replication else {
            return Ok(self
                .store
                .try_acquire(keys, owner, lease, fence_ttl)
                .await?);
        };
        let (outcome, acknowledged) = self
            .store
            .try_acquire_replicated(keys, owner, lease, fence_ttl, wanted, millis(timeout))
            .await?;
        if matches!(outcome, AcquireOutcome::Acquired(_)) && acknowledged < wanted {
            // Not safe against a failover: give it back rather than hand out a lock that
            // may vanish.
            self.give_back(keys, owner, "an unreplicated lock").await;
            return Err(LockError::NotReplicated {
                acknowledged,
                wanted,
            });
        }
        Ok(outcome)
    }

    /// Releases by owner, best effort (bounded by the store's command timeout). On the
    /// shared connection of a single Redis the release is queued behind the acquisition,
    /// so it runs after it even when Redis runs both late. If it fails, the lease ends
    /// the lock.
    async fn give_back(&self, keys: &LockKeys, owner: &str, what: &str) {
        if let Err(error) = self.store.release(keys, owner).await {
            tracing::warn!(%error, "giving back {what} failed; the lease will end it");
        }
    }

    /// Sleep before the next try: at most the poll interval, jittered to 50–100 % so
    /// waiters spread out, and no longer than the holder's remaining lease.
    fn pause(&self, held_ms: u64) -> Duration {
        let cap = self.options.poll_interval;
        let cap = if held_ms > 0 {
            cap.min(Duration::from_millis(held_ms))
        } else {
            cap
        };
        cap.mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

/// Runs one lock request inside a `keygate.lock` span (DEBUG) that records how it ended and
/// how long it waited; the lock's name stays out of it (names may hold ids).
async fn traced(
    work: impl std::future::Future<Output = Result<LockGuard, LockError>>,
) -> Result<LockGuard, LockError> {
    use tracing::Instrument;
    let span = tracing::debug_span!(
        target: "keygate",
        "keygate.lock",
        outcome = tracing::field::Empty,
        waited_us = tracing::field::Empty
    );
    let asked = Instant::now();
    let result = work.instrument(span.clone()).await;
    let outcome = match &result {
        Ok(_) => "acquired",
        Err(LockError::Busy { .. } | LockError::Timeout) => "busy",
        Err(_) => "failed",
    };
    span.record("outcome", outcome);
    span.record(
        "waited_us",
        u64::try_from(asked.elapsed().as_micros()).unwrap_or(u64::MAX),
    );
    result
}

/// Counts a lock taken `asked` after it was asked for.
fn acquired_after(asked: Instant) {
    use crate::telemetry::names;
    metrics::counter!(names::LOCK_ACQUIRED).increment(1);
    metrics::histogram!(names::LOCK_WAITED).record(asked.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_durations_are_brought_within_what_redis_accepts() {
        let options = LockOptions::new()
            .with_lease(Duration::MAX)
            .with_fence_ttl(Duration::MAX);
        assert_eq!(options.lease, crate::ttl::MAX_TTL);
        assert_eq!(options.fence_ttl, crate::ttl::MAX_TTL);
    }

    #[test]
    fn the_safety_margin_covers_the_command_timeout_and_drift_and_leaves_most_of_the_lease() {
        let default = LockOptions::new();
        assert_eq!(
            default.effective_margin(Duration::from_secs(1)),
            Duration::from_millis(1302)
        );
        assert_eq!(
            default.effective_margin(Duration::ZERO),
            Duration::from_millis(302)
        );
        let short = LockOptions::new().with_lease(Duration::from_millis(300));
        assert_eq!(
            short.effective_margin(Duration::from_secs(1)),
            Duration::from_millis(100),
            "at most a third of the lease"
        );
        let set = LockOptions::new().with_safety_margin(Duration::from_secs(5));
        assert_eq!(
            set.effective_margin(Duration::from_secs(1)),
            Duration::from_secs(5)
        );
    }
}
