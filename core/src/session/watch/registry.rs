//! The watched sessions of one manager: what is known of each, which need a check, and the
//! task that checks them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{Notify, watch};

use super::reason::EndReason;
use crate::redis_store::tracking::{TrackedNodes, TrackingListener};
use crate::session::store::{Probe, SessionKeyRef, SessionStore};

/// Most checks in flight at once.
const CONCURRENT_PROBES: usize = 256;
/// Most checks the checking task takes at once.
const PROBE_BATCH: usize = 4096;
/// A session found gone at most this long before the expiry last read counts as expired
/// (the expiry read is a lower bound; this covers clock granularity).
const EXPIRY_SLACK: Duration = Duration::from_millis(10);

/// A session's keys, as the registry keeps them.
pub(super) struct WatchKeys {
    pub session: Arc<str>,
    pub deadline: Option<Box<str>>,
    pub own_idle: bool,
}

impl WatchKeys {
    fn key_ref(&self) -> SessionKeyRef<'_> {
        SessionKeyRef {
            session: &self.session,
            deadline: self.deadline.as_deref(),
            own_idle: self.own_idle,
        }
    }
}

/// One watched session.
struct Watched {
    /// Tells this entry from a later one of the same key (a watch started after an end).
    serial: u64,
    deadline: Option<Box<str>>,
    own_idle: bool,
    tx: watch::Sender<Option<EndReason>>,
    /// Live `Ended` futures on it; the entry goes with the last.
    watchers: usize,
    /// When it ends by itself as last read (a lower bound: read time plus the TTL left).
    expires: Option<Instant>,
    /// Changes announced so far: a check answered after a newer announcement is stale.
    changes: u64,
    /// When a check that failed is tried again.
    retry_at: Option<Instant>,
    /// Whether it waits for a check.
    dirty: bool,
    /// Whether a check is in flight.
    probing: bool,
    /// The registry's loss count when a check last found it live with tracking up: it
    /// vanishing without a mark while tracking stayed up since is a deletion.
    tracked_since: Option<u64>,
}

struct State {
    watched: HashMap<Arc<str>, Watched>,
    /// Expiry timers (lazily cancelled: one whose instant is no longer its entry's
    /// `expires` is skipped).
    timers: BinaryHeap<Reverse<(Instant, Arc<str>)>>,
    /// Whether announcements can be relied on.
    healthy: bool,
    /// Times tracking was lost.
    losses: u64,
    /// While not healthy: when every watched session is checked next.
    next_recheck: Option<Instant>,
    /// Whether a check of every watched session is due (a flush, tracking back up).
    all_dirty: bool,
    /// The serial of the last entry made.
    serials: u64,
    /// The registry's own tracking connections while they are up, when they track the
    /// keys read on them: checks go there, and each check re-arms its key's tracking.
    arming: Option<Arc<TrackedNodes>>,
}

/// The checks due now, where to send them, and when more fall due without news.
struct Work {
    checks: Vec<(WatchKeys, u64)>,
    arming: Option<Arc<TrackedNodes>>,
    next: Option<Instant>,
}

/// The watched sessions of one manager and how to check them.
pub(crate) struct Registry {
    store: Arc<dyn SessionStore>,
    mark_prefix: Arc<str>,
    recheck: Duration,
    state: Mutex<State>,
    wake: Arc<Notify>,
    /// Told when a check on an arming connection failed: the connections are suspect.
    suspect: Arc<Notify>,
    /// Checks sent so far.
    checks: AtomicU64,
}

/// What a manager's session watchers hold and did
/// ([`SessionManager::watch_stats`](crate::SessionManager::watch_stats)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct WatchStats {
    /// Sessions watched (one however many futures watch it).
    pub watched: usize,
    /// Whether Redis's announcements of changes are relied on now (tracking up, or a
    /// backend that announces its changes itself); while not, watched sessions are
    /// re-checked at the re-check interval.
    pub tracking: bool,
    /// Watched sessions waiting for a check or being checked.
    pub pending: usize,
    /// Checks sent so far (one read-only script call each on Redis).
    pub checks: u64,
}

/// One `Ended` future's claim on an entry; dropping it lets the entry go.
pub(super) struct Claim {
    registry: Arc<Registry>,
    key: Arc<str>,
    serial: u64,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut state = self.registry.state();
        if let Some(entry) = state.watched.get_mut(&self.key)
            && entry.serial == self.serial
        {
            entry.watchers = entry.watchers.saturating_sub(1);
            if entry.watchers == 0 {
                state.watched.remove(&self.key);
            }
        }
    }
}

impl Registry {
    pub(super) fn new(store: Arc<dyn SessionStore>, mark_prefix: &str, recheck: Duration) -> Self {
        Self {
            store,
            mark_prefix: Arc::from(mark_prefix),
            recheck,
            state: Mutex::new(State {
                watched: HashMap::new(),
                timers: BinaryHeap::new(),
                healthy: false,
                losses: 0,
                next_recheck: Some(Instant::now()),
                all_dirty: false,
                serials: 0,
                arming: None,
            }),
            wake: Arc::new(Notify::new()),
            suspect: Arc::new(Notify::new()),
            checks: AtomicU64::new(0),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How often sessions are re-checked while announcements cannot be relied on.
    pub(super) fn recheck(&self) -> Duration {
        self.recheck
    }

    /// The store the registry checks sessions with.
    pub(super) fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// Starts watching a session (or joins its watch): the receiver sees its end.
    pub(super) fn watch(
        self: &Arc<Self>,
        keys: WatchKeys,
    ) -> (watch::Receiver<Option<EndReason>>, Claim) {
        let (rx, serial) = {
            let mut state = self.state();
            let state = &mut *state;
            let serials = &mut state.serials;
            let entry = state
                .watched
                .entry(Arc::clone(&keys.session))
                .or_insert_with(|| Watched {
                    serial: {
                        *serials += 1;
                        *serials
                    },
                    deadline: keys.deadline,
                    own_idle: keys.own_idle,
                    tx: watch::channel(None).0,
                    watchers: 0,
                    expires: None,
                    retry_at: None,
                    changes: 0,
                    // Checked once when the watch starts: it may have ended since its load.
                    dirty: true,
                    probing: false,
                    tracked_since: None,
                });
            entry.watchers += 1;
            (entry.tx.subscribe(), entry.serial)
        };
        self.wake.notify_one();
        let claim = Claim {
            registry: Arc::clone(self),
            key: keys.session,
            serial,
        };
        (rx, claim)
    }

    /// What the registry watches and did.
    pub(crate) fn stats(&self) -> WatchStats {
        let state = self.state();
        WatchStats {
            watched: state.watched.len(),
            tracking: state.healthy,
            pending: state
                .watched
                .values()
                .filter(|e| e.dirty || e.probing)
                .count()
                + usize::from(state.all_dirty),
            checks: self.checks.load(Ordering::Relaxed),
        }
    }

    /// Like [`tracking_up`](Self::tracking_up), on connections that track the keys read on
    /// them: every check goes there (and arms its key).
    pub(super) fn tracking_up_arming(&self, nodes: Arc<TrackedNodes>) {
        self.state().arming = Some(nodes);
        self.tracking_up();
    }

    /// What the own connections' keeper waits on besides their check: a check on them
    /// failed.
    pub(super) fn suspicion(&self) -> Arc<Notify> {
        Arc::clone(&self.suspect)
    }

    /// Announcements can be relied on from now: every watched session is checked once
    /// (changes before may have gone unannounced).
    pub(super) fn tracking_up(&self) {
        {
            let mut state = self.state();
            state.healthy = true;
            state.next_recheck = None;
            state.all_dirty = true;
        }
        self.wake.notify_one();
    }

    /// Announcements cannot be relied on: check every watched session now and then every
    /// `recheck` until tracking is up again.
    pub(super) fn tracking_lost(&self) {
        {
            let mut state = self.state();
            if state.healthy {
                state.losses += 1;
            }
            state.healthy = false;
            state.arming = None;
            state.next_recheck = Some(Instant::now());
        }
        self.wake.notify_one();
    }

    /// Redis announced changes to these keys.
    pub(super) fn keys_changed<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        let mut woke = false;
        {
            let mut state = self.state();
            for key in keys {
                if let Some(entry) = state.watched.get_mut(key) {
                    entry.changes += 1;
                    entry.dirty = true;
                    woke = true;
                }
            }
        }
        if woke {
            self.wake.notify_one();
        }
    }

    /// Any key may have changed.
    pub(super) fn everything_changed(&self) {
        self.state().all_dirty = true;
        self.wake.notify_one();
    }

    /// Takes the checks due now: changed sessions, expiry timers that fired, and while
    /// tracking is down every session each `recheck`.
    fn take_work(&self, now: Instant) -> Work {
        let mut state = self.state();
        let state = &mut *state;
        let mut all = std::mem::take(&mut state.all_dirty);
        if let Some(at) = state.next_recheck
            && at <= now
        {
            all = true;
            state.next_recheck = Some(now + self.recheck);
        }
        if all {
            for entry in state.watched.values_mut() {
                entry.dirty = true;
            }
        }
        while let Some(Reverse((at, _))) = state.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, key))) = state.timers.pop() else {
                break;
            };
            if let Some(entry) = state.watched.get_mut(&key)
                && (entry.expires == Some(at) || entry.retry_at == Some(at))
            {
                entry.dirty = true;
            }
        }
        let mut checks = Vec::new();
        for (key, entry) in &mut state.watched {
            if checks.len() >= PROBE_BATCH {
                break;
            }
            if entry.dirty && !entry.probing {
                entry.dirty = false;
                entry.probing = true;
                let keys = WatchKeys {
                    session: Arc::clone(key),
                    deadline: entry.deadline.clone(),
                    own_idle: entry.own_idle,
                };
                checks.push((keys, entry.changes));
            }
        }
        let timer = state.timers.peek().map(|Reverse((at, _))| *at);
        let next = match (timer, state.next_recheck) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Work {
            checks,
            arming: state.arming.clone(),
            next,
        }
    }

    /// Applies what a check found.
    fn apply(&self, checked: Checked, found: crate::Result<Probe>) {
        let Checked {
            keys,
            changes,
            sent,
            route,
        } = checked;
        let keys = &keys;
        let mut state = self.state();
        let state = &mut *state;
        let (healthy, losses) = (state.healthy, state.losses);
        let Some(entry) = state.watched.get_mut(&keys.session) else {
            return;
        };
        entry.probing = false;
        match found {
            Ok(Probe::Gone { mark }) => {
                let now = Instant::now();
                let reason = match mark.as_deref() {
                    Some(mark) => EndReason::parse(mark).unwrap_or(EndReason::Unknown),
                    None if entry.expires.is_some_and(|at| now + EXPIRY_SLACK >= at) => {
                        EndReason::Expired
                    }
                    None if healthy && entry.tracked_since == Some(losses) => EndReason::Deleted,
                    None => EndReason::Unknown,
                };
                entry.tx.send_replace(Some(reason));
                state.watched.remove(&keys.session);
            }
            Ok(Probe::Live { left_ms }) => {
                if entry.changes != changes {
                    // Changed again while the check was on its way: check again.
                    entry.dirty = true;
                    return;
                }
                entry.expires = left_ms.map(|ms| sent + Duration::from_millis(ms));
                entry.retry_at = None;
                entry.tracked_since = (healthy && route != Route::Unarmed).then_some(losses);
                if let Some(at) = entry.expires {
                    state.timers.push(Reverse((at, Arc::clone(&keys.session))));
                }
                if route == Route::Unarmed {
                    // Its changes are not announced (no tracking connection serves its
                    // slot): checked again after `recheck`.
                    let at = Instant::now() + self.recheck;
                    entry.retry_at = Some(at);
                    state.timers.push(Reverse((at, Arc::clone(&keys.session))));
                }
            }
            Err(error) => {
                tracing::debug!(%error, "session watch: a check failed; trying again");
                if route == Route::Arming {
                    // The tracking connection failed a command: it may miss changes.
                    self.suspect.notify_one();
                }
                let at = Instant::now() + self.recheck;
                entry.retry_at = Some(at);
                state.timers.push(Reverse((at, Arc::clone(&keys.session))));
            }
        }
    }

    /// Runs these checks, `CONCURRENT_PROBES` at a time: on the arming connection of each
    /// key's node when there are such connections, else on the store.
    async fn check(&self, checks: Vec<(WatchKeys, u64)>, arming: Option<Arc<TrackedNodes>>) {
        let mut answers = futures_util::stream::iter(checks.into_iter().map(|(keys, changes)| {
            self.checks.fetch_add(1, Ordering::Relaxed);
            let store = Arc::clone(&self.store);
            let arming = arming.clone();
            let prefix = Arc::clone(&self.mark_prefix);
            async move {
                let sent = Instant::now();
                let node = arming
                    .as_ref()
                    .and_then(|nodes| nodes.store_for(&keys.session));
                let (route, found) = match (node, &arming) {
                    (Some(node), _) => (Route::Arming, node.probe(keys.key_ref(), &prefix).await),
                    (None, Some(_)) => (Route::Unarmed, store.probe(keys.key_ref(), &prefix).await),
                    (None, None) => (Route::Store, store.probe(keys.key_ref(), &prefix).await),
                };
                let checked = Checked {
                    keys,
                    changes,
                    sent,
                    route,
                };
                (checked, found)
            }
        }))
        .buffer_unordered(CONCURRENT_PROBES);
        while let Some((checked, found)) = answers.next().await {
            self.apply(checked, found);
        }
    }
}

/// Where a check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// The store (announcements, if any, need no reads).
    Store,
    /// The tracking connection of the key's node, which it arms.
    Arming,
    /// The store, although the key's announcements need a read on a tracking connection
    /// that does not exist (a cluster slot that no master served when tracking began).
    Unarmed,
}

/// A check on its way back.
struct Checked {
    keys: WatchKeys,
    /// The key's announced changes when the check was taken.
    changes: u64,
    sent: Instant,
    route: Route,
}

impl TrackingListener for Registry {
    fn changed(&self, keys: &[&str]) {
        self.keys_changed(keys.iter().copied());
    }

    fn all_changed(&self) {
        self.everything_changed();
    }

    fn up(&self) {
        self.tracking_up();
    }

    fn lost(&self) {
        self.tracking_lost();
    }
}

/// The checking task: runs the checks that fall due, sleeps until the next or until news.
/// Ends when the registry is dropped.
pub(super) async fn run_checks(weak: Weak<Registry>, wake: Arc<Notify>) {
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        // Registered before looking for work, so news that comes meanwhile is not lost.
        notified.as_mut().enable();
        let Some(registry) = weak.upgrade() else {
            return;
        };
        let work = registry.take_work(Instant::now());
        if !work.checks.is_empty() {
            registry.check(work.checks, work.arming).await;
            continue;
        }
        drop(registry);
        match work.next {
            Some(at) => {
                tokio::select! {
                    () = notified => {}
                    () = tokio::time::sleep_until(at.into()) => {}
                }
            }
            None => notified.await,
        }
    }
}

/// The registry's wake-up, for its checking task.
impl Registry {
    pub(super) fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }
}
