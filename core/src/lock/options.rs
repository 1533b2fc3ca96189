//! How a lock is held: the lease, its renewal, the safety margin, the wait, replication.

use std::time::Duration;

/// Lease and waiting behaviour. Defaults: 30 s lease, renewed about every 9.6 s while held,
/// reported lost a safety margin (the store's command timeout plus 1 % of the lease plus
/// 2 ms: 1.3 s on Redis with the default 1 s timeout) before it could end in Redis; waiters
/// poll at most every 200 ms when no release message arrives; no replication wait; fencing
/// counters expire 10 minutes after a name's last acquisition.
#[derive(Debug, Clone, Copy)]
pub struct LockOptions {
    pub(super) lease: Duration,
    pub(super) renew: bool,
    pub(super) poll_interval: Duration,
    pub(super) replication: Option<(u32, Duration)>,
    /// `None`: derived from the store's command timeout and the lease.
    pub(super) safety_margin: Option<Duration>,
    pub(super) fence_ttl: Duration,
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
        self.lease = lease.clamp(Duration::from_millis(3), crate::ttl::MAX_TTL);
        self
    }

    /// Whether the guard renews the lease while held (default yes). Without renewal the
    /// lock ends after one lease however long the work takes; the guard reports it lost a
    /// safety margin before that ([`LockGuard::lost`](super::LockGuard::lost)).
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
    /// given back and the attempt fails with [`LockError::NotReplicated`](super::LockError::NotReplicated). Renewals are not
    /// waited for. Costs one more round trip per acquisition, on a dedicated connection
    /// that the acquisition has to itself (`WAIT` blocks the connection it runs on), so a
    /// slow `WAIT` delays no other lock: acquisitions running at the same time use
    /// connections of their own (up to 4 idle ones are kept for reuse). One attempt takes
    /// at most `timeout` plus two command timeouts, connecting included. Stores without
    /// replicas (the memory store) count as replicated. `replicas` 0 turns the wait off.
    pub fn with_replication_wait(mut self, replicas: u32, timeout: Duration) -> Self {
        self.replication = (replicas > 0).then_some((replicas, timeout.min(crate::ttl::MAX_TTL)));
        self
    }

    /// How long before the lease could end in Redis the guard reports the lock lost when
    /// no renewal was confirmed. The guard counts the lease from when it *sent* the last
    /// successful renewal (or the acquisition), which is never later than when Redis
    /// started it; the margin covers what that count cannot see: a clock of this process
    /// running slower than Redis's, and a write that the work under the lock sent just
    /// before the loss was reported (it lands or times out within the command timeout).
    ///
    /// The default is the store's command timeout ([`LockStore::command_timeout`](super::LockStore::command_timeout)) plus
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
    /// [`Fence`](super::Fence)). Only a step of the store's clock back by more than this TTL could undo
    /// that, so it is the tolerance against such steps.
    pub fn with_fence_ttl(mut self, ttl: Duration) -> Self {
        self.fence_ttl = ttl.min(crate::ttl::MAX_TTL);
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
