//! The near cache at run time: lookups, fills, invalidations from the tracking
//! connections, the background refreshes and the supervisor that keeps tracking up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use redis::{PushInfo, PushKind};
use tokio::sync::{Notify, mpsc};

use super::entries::{Decoded, Entries, Held, Lookup};
use super::redis::RefreshKey;
use super::{NearCache, NearCacheStats};
use crate::codec::Layout;
use crate::error::{BackendError, Error, Result};
use crate::redis_store::RedisStore;
use crate::redis_store::tracking::{
    PushHandler, TrackedNodes, TrackingListener, TrackingMode, invalidated_keys,
};
use crate::session::store::{Fetched, SessionKeyRef};
use crate::ttl::millis;

/// Most refreshes sent together.
const REFRESH_BATCH: usize = 512;
/// Longest wait between two attempts to (re)establish tracking.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What the cache served a load.
pub(crate) enum Served {
    /// The session an earlier load decoded and kept.
    Decoded(Decoded),
    /// What the store would have answered, and the stamp of the entry now holding it
    /// (`None` when it is not cached).
    Fetched(Fetched, Option<u64>),
}

/// A TTL refresh a hit made due.
struct RefreshJob {
    key: String,
    /// The session's companion key, if sessions have one.
    companion: Option<String>,
    codec: Layout,
    idle_ms: u64,
}

/// The tracking connections of one epoch.
struct Tracked {
    epoch: u64,
    nodes: TrackedNodes,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    flushes: AtomicU64,
    refreshes: AtomicU64,
    evictions: AtomicU64,
}

pub(crate) struct NearCacheRuntime {
    settings: NearCache,
    prefix: String,
    backend: RedisStore,
    entries: Entries,
    /// The epoch whose tracking connections are up, 0 while none are: entries of another
    /// epoch are never served.
    live_epoch: AtomicU64,
    next_epoch: AtomicU64,
    tracked: Mutex<Option<Arc<Tracked>>>,
    /// Wakes the supervisor when tracking is lost.
    lost: Notify,
    started: AtomicBool,
    refresh_tx: Mutex<Option<mpsc::UnboundedSender<RefreshJob>>>,
    counters: Counters,
    /// Who else hears this cache's tracking connections (the session watchers), if anyone.
    listener: OnceLock<Weak<dyn TrackingListener>>,
}

impl NearCacheRuntime {
    pub(crate) fn new(settings: NearCache, prefix: &str, backend: RedisStore) -> Arc<Self> {
        let runtime = Arc::new(Self {
            entries: Entries::new(
                settings.max_entries(),
                settings.max_bytes(),
                settings.touch_every(),
            ),
            settings,
            prefix: prefix.to_owned(),
            backend,
            live_epoch: AtomicU64::new(0),
            next_epoch: AtomicU64::new(0),
            tracked: Mutex::new(None),
            lost: Notify::new(),
            started: AtomicBool::new(false),
            refresh_tx: Mutex::new(None),
            counters: Counters::default(),
            listener: OnceLock::new(),
        });
        // Start at once inside a runtime; otherwise at the first load.
        if tokio::runtime::Handle::try_current().is_ok() {
            runtime.start();
        }
        runtime
    }

    /// Spawns the supervisor and the refresher, once.
    fn start(self: &Arc<Self>) {
        // Every load calls this: a plain read keeps the hit path free of shared writes.
        if self.started.load(Ordering::Acquire) || self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        *self
            .refresh_tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(tx);
        tokio::spawn(supervise(Arc::downgrade(self)));
        tokio::spawn(refresh_loop(Arc::downgrade(self), rx));
    }

    /// Lets `listener` hear what the tracking connections announce (one listener per cache;
    /// `false` when one is set already). Starts tracking if it is not started yet.
    pub(crate) fn listen(self: &Arc<Self>, listener: Weak<dyn TrackingListener>) -> bool {
        let set = self.listener.set(listener).is_ok();
        self.start();
        set
    }

    /// Whether tracking is up now.
    pub(crate) fn tracking(&self) -> bool {
        self.live_epoch() != 0
    }

    fn listener(&self) -> Option<Arc<dyn TrackingListener>> {
        self.listener.get().and_then(Weak::upgrade)
    }

    fn live_epoch(&self) -> u64 {
        self.live_epoch.load(Ordering::Acquire)
    }

    fn current(&self) -> Option<Arc<Tracked>> {
        self.tracked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A load through the cache; `None` when the cache cannot serve it (tracking is not up,
    /// or the tracking connection failed): the caller then loads as without a cache.
    pub(crate) async fn load(
        self: &Arc<Self>,
        keys: SessionKeyRef<'_>,
        codec: Layout,
        idle_ms: u64,
    ) -> Option<Result<Fetched>> {
        match self.load_shared(keys, codec, idle_ms, None).await? {
            Ok(Served::Fetched(fetched, _)) => Some(Ok(fetched)),
            // Not asked for: never served.
            Ok(Served::Decoded(_)) => None,
            Err(error) => Some(Err(error)),
        }
    }

    /// [`load`](Self::load) for a caller that decodes sessions and shares them, having read
    /// the clock already (`Some(now)`): a hit serves the session an earlier load kept
    /// ([`keep_decoded`](Self::keep_decoded)) when there is one.
    pub(crate) async fn load_shared(
        self: &Arc<Self>,
        keys: SessionKeyRef<'_>,
        codec: Layout,
        idle_ms: u64,
        decoder_at: Option<Instant>,
    ) -> Option<Result<Served>> {
        self.start();
        let epoch = self.live_epoch();
        if epoch == 0 {
            return None;
        }
        let (now, decoded) = match decoder_at {
            Some(now) => (now, true),
            None => (Instant::now(), false),
        };
        if let Lookup::Hit { held, refresh } =
            self.entries.lookup(keys.session, now, epoch, decoded)
        {
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
            if refresh {
                self.queue_refresh(keys, codec, idle_ms);
            }
            return Some(Ok(match held {
                Held::Decoded(session) => Served::Decoded(session),
                Held::Stored { value, stamp } => {
                    Served::Fetched(Fetched::Found(value), Some(stamp))
                }
            }));
        }
        let tracked = self.current().filter(|t| t.epoch == epoch)?;
        if tracked.nodes.store_for(keys.session).is_none() {
            // A cluster slot no master served when tracking began (a cluster running
            // without full coverage): nothing tracks its keys, so none is cached, and the
            // load goes to Redis as without the cache. Entries of other slots are tracked
            // and stay; a changed slot map is the periodic check's to notice.
            self.invalidate(keys.session);
            return None;
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        // Boxed: a miss pays a round trip anyway, and unboxed, the fill's future would make
        // every hit's future (which the request path moves) as large as a Redis command's.
        match Box::pin(self.fill(&tracked, keys, codec, idle_ms)).await {
            Ok(Some((fetched, stamp))) => Some(Ok(Served::Fetched(fetched, stamp))),
            // Too large to cache: loaded (and touched) as without the cache.
            Ok(None) => None,
            // Past the command timeout already: failing now keeps the request within it.
            Err(error @ Error::Backend(BackendError::Timeout(_))) => Some(Err(error)),
            Err(_) => None,
        }
    }

    /// Keeps `session`, decoded from the data a load was served with the entry's `stamp`,
    /// for the next hits of `key` to share.
    pub(crate) fn keep_decoded(&self, key: &str, stamp: u64, session: Decoded) {
        let evicted = self.entries.keep_decoded(key, stamp, session);
        self.counters
            .evictions
            .fetch_add(evicted, Ordering::Relaxed);
    }

    /// Reads the session on the tracking connection of its node and caches it unless
    /// something invalidated it meanwhile; a fill whose TTL left does not cover the idle
    /// TTL queues the refresh. `None` for a session too large to cache: a fill never
    /// writes, so its load must go to Redis as without the cache to reset its TTL. An
    /// error loses tracking (the connection is suspect).
    async fn fill(
        &self,
        tracked: &Tracked,
        keys: SessionKeyRef<'_>,
        codec: Layout,
        idle_ms: u64,
    ) -> Result<Option<(Fetched, Option<u64>)>> {
        let Some(store) = tracked.nodes.store_for(keys.session) else {
            // Checked by the caller; nothing else is at fault, so tracking stays up.
            return Err(BackendError::Protocol("no tracking connection for the key").into());
        };
        let ticket = self.entries.begin_fill(keys.session, tracked.epoch);
        let result = store.near_fill(keys, codec, idle_ms, self.slack_ms()).await;
        let epoch = self.live_epoch();
        match result {
            Ok((Fetched::Found(value), Some(expiry))) => {
                let filled = self
                    .entries
                    .finish_fill(ticket, Some((value.clone(), expiry)), epoch);
                self.counters
                    .evictions
                    .fetch_add(filled.evicted, Ordering::Relaxed);
                if filled.too_large {
                    return Ok(None);
                }
                if filled.refresh {
                    self.queue_refresh(keys, codec, idle_ms);
                }
                let stamp = filled.cached.then_some(filled.stamp);
                Ok(Some((Fetched::Found(value), stamp)))
            }
            Ok((fetched, _)) => {
                self.entries.finish_fill(ticket, None, epoch);
                Ok(Some((fetched, None)))
            }
            Err(error) => {
                self.entries.finish_fill(ticket, None, epoch);
                self.lose_tracking(tracked.epoch, "a command on the tracking connection failed");
                Err(error)
            }
        }
    }

    fn slack_ms(&self) -> u64 {
        millis(self.settings.touch_every())
    }

    fn queue_refresh(&self, keys: SessionKeyRef<'_>, codec: Layout, idle_ms: u64) {
        let key = keys.session;
        let job = RefreshJob {
            key: key.to_owned(),
            companion: keys.deadline.map(str::to_owned),
            codec,
            idle_ms,
        };
        let sent = self
            .refresh_tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|tx| tx.send(job).is_ok());
        if !sent {
            // No refresher: never serve the entry again without Redis.
            self.entries.invalidate(key);
        }
    }

    /// Sends a batch of refreshes: one pipeline per node, each key's `PEXPIRE … GT` followed
    /// by a read of its data and TTL. A key found gone, or holding other data than the entry, is
    /// dropped (the next load asks Redis); a failure loses tracking.
    async fn refresh(&self, batch: &[RefreshJob]) {
        let epoch = self.live_epoch();
        let Some(tracked) = self.current().filter(|t| t.epoch == epoch && epoch != 0) else {
            for job in batch {
                self.entries.invalidate(&job.key);
            }
            return;
        };
        let now = Instant::now();
        let mut per_node: Vec<(usize, Vec<RefreshKey<'_>>)> = Vec::new();
        for job in batch {
            let Some((ttl_ms, follows)) =
                self.entries
                    .refresh_ttl(&job.key, epoch, job.idle_ms, self.slack_ms(), now)
            else {
                continue;
            };
            let Some(node) = tracked.nodes.node_of(&job.key) else {
                self.entries.invalidate(&job.key);
                continue;
            };
            let key = RefreshKey {
                key: &job.key,
                ttl_ms,
                codec: job.codec,
                // In the session key's hash slot, so on its node.
                companion: job.companion.as_deref(),
                companion_follows: follows,
            };
            match per_node.iter_mut().find(|(n, _)| *n == node) {
                Some((_, keys)) => keys.push(key),
                None => per_node.push((node, vec![key])),
            }
        }
        let sends = per_node.iter().filter_map(|(node, keys)| {
            let store = tracked.nodes.node(*node)?;
            Some(async move { (keys, store.near_refresh(keys).await) })
        });
        for (keys, outcome) in futures_util::future::join_all(sends).await {
            self.counters
                .refreshes
                .fetch_add(keys.len() as u64, Ordering::Relaxed);
            match outcome {
                Ok(held) => {
                    for (refreshed, held) in keys.iter().zip(held) {
                        let key = refreshed.key;
                        let kept = held.is_some_and(|(value, left_ms)| {
                            self.entries.refreshed(key, epoch, now, left_ms, &value)
                        });
                        if !kept {
                            self.invalidate(key);
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "near cache: a refresh failed");
                    self.lose_tracking(epoch, "a refresh on the tracking connection failed");
                    return;
                }
            }
        }
    }

    /// A change made by this process (logout, update, rotation): drop the entry at once,
    /// before the tracking push arrives.
    pub(crate) fn invalidate(&self, key: &str) {
        if self.entries.invalidate(key) {
            self.counters.invalidations.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A push from a tracking connection of `epoch`.
    fn on_push(&self, epoch: u64, push: &PushInfo) {
        match push.kind {
            PushKind::Invalidate => match invalidated_keys(push) {
                Some(keys) => {
                    if let Some(listener) = self.listener() {
                        listener.changed(&keys);
                    }
                    if self.live_epoch() != epoch {
                        return;
                    }
                    for key in keys {
                        self.invalidate(key);
                    }
                }
                // A null list: the server flushed (FLUSHALL, FLUSHDB) and tells every
                // client to drop everything.
                None => {
                    if let Some(listener) = self.listener() {
                        listener.all_changed();
                    }
                    self.flush(epoch);
                }
            },
            PushKind::Disconnection => {
                self.lose_tracking(epoch, "the tracking connection closed");
            }
            _ => {}
        }
    }

    /// Drops every entry, keeping tracking up.
    fn flush(&self, epoch: u64) {
        if self.live_epoch() == epoch {
            self.entries.clear();
            self.counters.flushes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Tracking of `epoch` is over: drop everything, serve nothing from memory until a new
    /// epoch's connections are up.
    fn lose_tracking(&self, epoch: u64, why: &str) {
        if self
            .live_epoch
            .compare_exchange(epoch, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        // Only this epoch's connections: the supervisor may have established the next
        // epoch already while the entries were being cleared.
        {
            let mut tracked = self.tracked.lock().unwrap_or_else(PoisonError::into_inner);
            if tracked.as_ref().is_some_and(|t| t.epoch == epoch) {
                *tracked = None;
            }
        }
        self.entries.clear();
        self.counters.flushes.fetch_add(1, Ordering::Relaxed);
        tracing::info!(reason = why, "near cache: tracking lost, cache dropped");
        if let Some(listener) = self.listener() {
            listener.lost();
        }
        self.lost.notify_one();
    }

    /// Opens new tracking connections and makes them live.
    async fn establish(self: &Arc<Self>) -> Result<()> {
        let epoch = self.next_epoch.fetch_add(1, Ordering::AcqRel) + 1;
        let weak = Arc::downgrade(self);
        let handler: PushHandler = Arc::new(move |push: PushInfo| {
            if let Some(runtime) = weak.upgrade() {
                runtime.on_push(epoch, &push);
            }
        });
        let nodes = self
            .backend
            .track(TrackingMode::Broadcast(&self.prefix), handler)
            .await?;
        // Entries of older epochs are dead already (their epoch is not live); clear them
        // to return their memory.
        self.entries.clear();
        *self.tracked.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Arc::new(Tracked { epoch, nodes }));
        self.live_epoch.store(epoch, Ordering::Release);
        if let Some(listener) = self.listener() {
            listener.up();
        }
        tracing::info!("near cache: tracking is on");
        Ok(())
    }

    /// What the cache holds and did so far.
    pub(crate) fn stats(&self) -> NearCacheStats {
        let (entries, bytes) = self.entries.size();
        let c = &self.counters;
        NearCacheStats {
            tracking: self.live_epoch() != 0,
            entries,
            bytes,
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            invalidations: c.invalidations.load(Ordering::Relaxed),
            flushes: c.flushes.load(Ordering::Relaxed),
            refreshes: c.refreshes.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
        }
    }
}

/// Keeps tracking up: establishes it, checks it every `tracking_check`, re-establishes it
/// after a loss. Ends when the cache is dropped.
async fn supervise(weak: Weak<NearCacheRuntime>) {
    let mut backoff = Duration::from_millis(50);
    let mut logged_failure = false;
    loop {
        let Some(runtime) = weak.upgrade() else {
            return;
        };
        if runtime.live_epoch() == 0 {
            match runtime.establish().await {
                Ok(()) => {
                    backoff = Duration::from_millis(50);
                    logged_failure = false;
                }
                Err(error) => {
                    if !logged_failure {
                        tracing::warn!(%error, "near cache: cannot establish tracking; loads go to Redis meanwhile");
                        logged_failure = true;
                    }
                    // A server too old for the cache stays so for a while: ask again
                    // only once a minute (an upgrade is then picked up).
                    let wait = if matches!(error, Error::Config(_)) {
                        Duration::from_secs(60)
                    } else {
                        backoff
                    };
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    drop(runtime);
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
        }
        let check = runtime.settings.tracking_check();
        tokio::select! {
            () = runtime.lost.notified() => continue,
            () = tokio::time::sleep(check) => {}
        }
        let live = runtime.live_epoch();
        match runtime.current() {
            Some(tracked) if tracked.epoch == live => {
                let valid = tracked.nodes.still_valid(&runtime.backend).await;
                if !matches!(valid, Ok(true)) {
                    runtime.lose_tracking(tracked.epoch, "the tracking check failed");
                }
            }
            // Live without its connections: never serve from memory that way.
            _ if live != 0 => runtime.lose_tracking(live, "no connections for the live epoch"),
            _ => {}
        }
    }
}

/// Sends the refreshes that hits queued, those queued together in one batch.
async fn refresh_loop(weak: Weak<NearCacheRuntime>, mut rx: mpsc::UnboundedReceiver<RefreshJob>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < REFRESH_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let Some(runtime) = weak.upgrade() else {
            return;
        };
        runtime.refresh(&batch).await;
    }
}
