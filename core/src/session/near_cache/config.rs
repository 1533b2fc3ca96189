//! The near cache's settings.

use std::time::Duration;

use crate::error::Error;
use crate::ttl::{MAX_TTL, check_ttl};

/// Default bound on the memory the cached sessions take: 64 MiB.
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;
/// Default interval of the check that tracking is still on (and, on a cluster or behind
/// Sentinel, that the masters are the same).
pub const DEFAULT_TRACKING_CHECK: Duration = Duration::from_secs(1);

/// Settings of the session near cache
/// ([`SessionConfig::with_near_cache`](crate::SessionConfig::with_near_cache)); see [the
/// module docs](super) for what it promises.
///
/// ```
/// use std::time::Duration;
/// use keygate::{SessionConfig, session::NearCache};
///
/// // Up to 100,000 sessions (and 64 MiB), each TTL refreshed at most once a minute.
/// let config = SessionConfig::java_seed()
///     .with_near_cache(NearCache::new(100_000, Duration::from_secs(60)));
/// assert_eq!(config.near_cache().map(|c| c.touch_every()), Some(Duration::from_secs(60)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NearCache {
    max_entries: usize,
    max_bytes: usize,
    touch_every: Duration,
    tracking_check: Duration,
}

impl NearCache {
    /// At most `max_entries` sessions (least recently used leave first) and
    /// [`DEFAULT_MAX_BYTES`]; each session's idle TTL refreshed in Redis at most once per
    /// `touch_every` per process.
    pub fn new(max_entries: usize, touch_every: Duration) -> Self {
        Self {
            max_entries,
            max_bytes: DEFAULT_MAX_BYTES,
            touch_every,
            tracking_check: DEFAULT_TRACKING_CHECK,
        }
    }

    /// Bounds the memory of the cached sessions (keys, data and bookkeeping, as estimated
    /// by [`NearCacheStats::bytes`](super::NearCacheStats::bytes); a session that requests
    /// have used also holds its decoded form, counted as one more copy of its key and data).
    /// The bound is split over the cache's shards (up to 16); a session larger than one
    /// shard's share is not cached.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// How often the tracking connection is checked with `CLIENT TRACKINGINFO` (and the
    /// cluster's slot map or the Sentinel master compared): the longest an outside change
    /// that Redis does not announce (tracking switched off on the connection by something
    /// else than keygate, a proxy in between) can go unnoticed. A connection that silently
    /// stops delivering (a network partition, no reset) is noticed when the check's command
    /// times out: meanwhile hits keep serving what is cached, for up to this interval plus
    /// the store's command timeout. Default 1 s.
    pub fn with_tracking_check(mut self, every: Duration) -> Self {
        self.tracking_check = every;
        self
    }

    /// The most sessions kept.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// The most bytes kept.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The shortest interval between two TTL refreshes of one session by one process.
    pub fn touch_every(&self) -> Duration {
        self.touch_every
    }

    /// The interval of the tracking check.
    pub fn tracking_check(&self) -> Duration {
        self.tracking_check
    }

    /// Checks the settings against the session configuration's idle TTL.
    pub(crate) fn validate(&self, idle_ttl: Duration) -> Result<(), Error> {
        if self.max_entries == 0 || self.max_bytes == 0 {
            return Err(Error::Config(
                "the near cache needs room for at least one session".into(),
            ));
        }
        check_ttl("near cache touch interval", self.touch_every)?;
        check_ttl("near cache tracking check", self.tracking_check)?;
        if idle_ttl.saturating_add(self.touch_every) > MAX_TTL {
            return Err(Error::Config(format!(
                "idle TTL plus the near cache's touch interval is beyond {MAX_TTL:?}"
            )));
        }
        Ok(())
    }
}
