//! Acquiring locks.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::guard::{Fence, LockGuard};
use super::{AcquireOutcome, LockKeys, LockStore};
use crate::config::millis;
use crate::{Error, Token};

/// Lease and waiting behaviour. Defaults: 30 s lease, renewed about every 9.6 s while held,
/// reported lost a safety margin (the store's command timeout plus 1 % of the lease plus
/// 2 ms: 1.3 s on Redis with the default 1 s timeout) before it could end in Redis; waiters
/// poll at most every 200 ms when no release message arrives; no replication wait; fencing
/// counters expire 10 minutes after a name's last acquisition.
#[derive(Debug, Clone, Copy)]
pub struct LockOptions {
    lease: Duration,
    renew: bool,
    poll_interval: Duration,
    replication: Option<(u32, Duration)>,
    /// `None`: derived from the store's command timeout and the lease.
    safety_margin: Option<Duration>,
    fence_ttl: Duration,
}

impl Default for LockOptions {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            renew: true,
            poll_interval: Duration::from_millis(200),
            replication: None,
            safety_margin: None,
            fence_ttl: Duration::from_secs(600),
        }
    }
}

impl LockOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long the lock outlives a holder that stops renewing (crashed, paused).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        // Beyond MAX_TTL Redis would refuse every acquisition; such a lease is a mistake.
        self.lease = lease.clamp(Duration::from_millis(3), crate::config::MAX_TTL);
        self
    }

    /// Whether the guard renews the lease while held (default yes). Without renewal the
    /// lock ends after one lease however long the work takes; the guard reports it lost a
    /// safety margin before that ([`LockGuard::lost`]).
    pub fn with_renewal(mut self, renew: bool) -> Self {
        self.renew = renew;
        self
    }

    /// The longest a waiter sleeps between tries when no release message arrives.
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Reports an acquisition only once `replicas` replicas of the lock's master have
    /// acknowledged it (Redis `WAIT`, up to `timeout`), so that a failover right after
    /// cannot lose it (see the module docs). When fewer acknowledge in time, the lock is
    /// given back and the attempt fails with [`LockError::NotReplicated`]. Renewals are not
    /// waited for. Costs one more round trip per acquisition, on a dedicated connection
    /// that the acquisition has to itself (`WAIT` blocks the connection it runs on), so a
    /// slow `WAIT` delays no other lock: acquisitions running at the same time use
    /// connections of their own (up to 4 idle ones are kept for reuse). One attempt takes
    /// at most `timeout` plus two command timeouts, connecting included. Stores without
    /// replicas (the memory store) count as replicated. `replicas` 0 turns the wait off.
    pub fn with_replication_wait(mut self, replicas: u32, timeout: Duration) -> Self {
        self.replication =
            (replicas > 0).then_some((replicas, timeout.min(crate::config::MAX_TTL)));
        self
    }

    /// How long before the lease could end in Redis the guard reports the lock lost when
    /// no renewal was confirmed. The guard counts the lease from when it *sent* the last
    /// successful renewal (or the acquisition), which is never later than when Redis
    /// started it; the margin covers what that count cannot see: a clock of this process
    /// running slower than Redis's, and a write that the work under the lock sent just
    /// before the loss was reported (it lands or times out within the command timeout).
    ///
    /// The default is the store's command timeout ([`LockStore::command_timeout`]) plus
    /// 1 % of the lease plus 2 ms. The margin used is at most a third of the lease; the
    /// guard renews three times per lease minus margin.
    pub fn with_safety_margin(mut self, margin: Duration) -> Self {
        self.safety_margin = Some(margin);
        self
    }

    /// How long a lock name's fencing counter outlives its last acquisition (default 10
    /// minutes; never less than the lease). Names that are no longer used leave no key
    /// behind after it. Fences stay strictly increasing across the counter's expiry: a
    /// fence is the larger of the stored counter plus one and the store's clock in
    /// microseconds, so after an expiry the clock carries on where the counter was (see
    /// [`Fence`]). Only a step of the store's clock back by more than this TTL could undo
    /// that, so it is the tolerance against such steps.
    pub fn with_fence_ttl(mut self, ttl: Duration) -> Self {
        self.fence_ttl = ttl.min(crate::config::MAX_TTL);
        self
    }

    pub(crate) fn lease(&self) -> Duration {
        self.lease
    }

    /// The safety margin used with a store whose operations take at most
    /// `command_timeout`.
    pub(crate) fn effective_margin(&self, command_timeout: Duration) -> Duration {
        let margin = self.safety_margin.unwrap_or_else(|| {
            command_timeout
                .saturating_add(self.lease / 100)
                .saturating_add(Duration::from_millis(2))
        });
        margin.min(self.lease / 3)
    }

    pub(crate) fn renews(&self) -> bool {
        self.renew
    }
}

/// Why a lock was not obtained or not released cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Held by someone else (try once).
    #[error("lock is held by another owner")]
    Busy {
        /// When the current lease ends at the latest, if known.
        retry_after: Option<Duration>,
    },
    /// Still held by someone else when the wait ended.
    #[error("timed out waiting for the lock")]
    Timeout,
    /// The lock was lost (lease expired, taken over) before release or during the work.
    #[error("lock was lost: the lease ended or another owner took it")]
    NotOwner,
    /// Acquired, but fewer replicas than [`LockOptions::with_replication_wait`] asks for
    /// acknowledged it in time; the lock was given back.
    #[error("lock acquisition reached {acknowledged} of {wanted} replicas in time")]
    NotReplicated {
        /// Replicas that acknowledged.
        acknowledged: u32,
        /// Replicas asked for.
        wanted: u32,
    },
    /// The backend is unreachable or failed: whether the lock is free is unknown.
    #[error(transparent)]
    Backend(#[from] Error),
}

impl LockError {
    /// The HTTP status when a request could not be served under the lock: 503 (try again;
    /// with [`retry_after`](Self::retry_after)), or the backend error's own status.
    pub fn status(&self) -> u16 {
        match self {
            LockError::Backend(e) => e.status(),
            _ => 503,
        }
    }

    /// How long to wait before retrying (for `Retry-After`): the holder's remaining lease
    /// when known, else one second; `None` for backend errors.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LockError::Backend(_) => None,
            LockError::Busy {
                retry_after: Some(wait),
            } => Some(*wait),
            _ => Some(Duration::from_secs(1)),
        }
    }

    /// The JSON envelope, with a message safe to show to clients.
    pub fn body(&self) -> String {
        match self {
            LockError::Backend(e) => e.body(),
            _ => crate::http::Envelope::error("busy, try again").to_json(),
        }
    }
}

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
                Ok(LockGuard::start(self, keys, owner, fence, sent))
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
                    return Ok(LockGuard::start(self, keys, owner, fence, sent));
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
        assert_eq!(options.lease, crate::config::MAX_TTL);
        assert_eq!(options.fence_ttl, crate::config::MAX_TTL);
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
