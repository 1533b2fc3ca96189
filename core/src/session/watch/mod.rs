//! Watching sessions end: [`SessionManager::ended`](crate::SessionManager::ended) and
//! [`CurrentSession::ended`](crate::CurrentSession::ended) give a future that completes,
//! with an [`EndReason`], when a session stops being valid anywhere: so that a WebSocket or
//! Server-Sent-Events stream opened by a request ends with its session, whichever instance
//! (or other service) ended it.
//!
//! ```no_run
//! # async fn stream(auth: keygate::CurrentSession<serde_json::Value>,
//! #     mut socket: tokio::sync::mpsc::Receiver<String>) {
//! let ended = auth.ended();
//! tokio::pin!(ended);
//! loop {
//!     tokio::select! {
//!         reason = &mut ended => {
//!             // Tell the client why, then close.
//!             println!("session ended: {reason}");
//!             break;
//!         }
//!         message = socket.recv() => match message {
//!             Some(message) => println!("{message}"),
//!             None => break,
//!         },
//!     }
//! }
//! # }
//! ```
//!
//! # What it promises
//!
//! - **Every way a session ends is seen**, in every process that watches it: its logout,
//!   an end by its id, "log out everywhere", rotation, the per-user cap, an operator's
//!   end, expiry (idle or absolute), and its key deleted by anything else. The reasons
//!   keygate causes itself are told to watchers elsewhere by an *end mark*, a small key
//!   (`keygate:ended:{<session key>}`, in the session key's hash slot, kept for 10 s)
//!   written in the same atomic step as the end; the seed layouts are unchanged.
//! - **A watch never keeps a session alive, and never ends a live one.** It reads, never
//!   touches: an open stream is not a request. It completes only once a check found the
//!   session gone (its key, or its companion key, missing).
//! - **Failures end nothing by themselves.** While the watcher cannot rely on Redis's
//!   announcements (the tracking connection closed or failed its check, Redis restarted,
//!   Redis older than 7.0, a backend that announces nothing), it re-checks every watched
//!   session right away and then every
//!   [`with_watch_recheck`](crate::SessionConfig::with_watch_recheck) interval (default
//!   1 s) until it can again; then it checks each once more. So a session that ends during
//!   an outage is seen within that interval of the watcher being able to read Redis, and
//!   none that still exists ends. An outage warns once.
//!
//! # How
//!
//! Built on Redis client tracking (RESP3 push). With the near cache on, its tracking
//! connections are shared (one per master, `CLIENT TRACKING ON BCAST PREFIX <session
//! prefix> NOLOOP`: every change under the prefix is announced, and the watchers pick the
//! watched keys). Without it, the first `ended()` opens connections of the watchers' own,
//! one per master, in the default mode (`CLIENT TRACKING ON NOLOOP`): Redis announces a
//! change only for keys read on that connection, once per read, and the watchers' checks
//! run there, so each check (re)arms its session's key and only watched sessions are
//! announced (at most `tracking-table-max-keys`, default one million, per master: beyond,
//! Redis drops keys from its table with an announcement, and each is checked and armed
//! again). Both kinds are checked (`CLIENT TRACKINGINFO`, `ROLE`, on a cluster the slot
//! map, behind Sentinel the master) the same way. One registry per manager holds the
//! watched sessions:
//!
//! - **While nothing changes, no command per watched session**: only the tracking check,
//!   every `with_watch_recheck` interval per master, whatever the number watched.
//! - **One command per change of a watched session**: when Redis announces a change to a
//!   watched key (a logout, or merely a touch by another instance's request), the
//!   registry checks it once with a read-only script (`PTTL` of the key and its companion,
//!   `GET` of its end mark); a change announced while a check is on its way is checked
//!   once more. Nothing is polled.
//! - **Expiry** is seen from Redis's own announcement of it or from a local timer at the
//!   expiry read by the last check (which re-checks), whichever comes first. A refresh by
//!   this process's near cache (announced to no one on its own connection) only makes
//!   that timer's check find the session live and set the next.
//! - **One check when a watch starts** (the session may have ended since it was loaded);
//!   watches of one session share an entry, which goes with the last future.
//! - **Memory**: an entry per watched session (its key, a channel, a few instants), freed
//!   when its last future completes or is dropped.
//!
//! On the embedded backend ([`MemoryStore`](crate::MemoryStore)) the store announces ends
//! and rotations itself, and expiry is seen by the timer. On a backend that announces
//! nothing (a store of your own), every watched session is re-checked each interval.
//!
//! A session gone without an end mark is [`EndReason::Expired`] when its last-read expiry
//! has come, [`EndReason::Deleted`] when tracking stayed up since the check that last
//! found it live, and [`EndReason::Unknown`] otherwise (also when the mark had expired).
//! A session key overwritten by another service with something else stays watched while
//! the key exists.

mod reason;
mod registry;
mod sources;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

pub use reason::EndReason;
pub use registry::WatchStats;
use registry::{Registry, WatchKeys, run_checks};

use super::keys::SessionKeys;
use super::near_cache::NearCacheRuntime;
use super::store::SessionStore;
use crate::redis_store::tracking::TrackingListener;

/// A future that completes when a watched session ends, with why
/// ([`SessionManager::ended`](crate::SessionManager::ended)). `'static`, `Send` and
/// `Unpin`: keep it beyond the request that loaded the session, `select!` on it by
/// reference. Dropping it stops the watch (when no other future watches that session).
#[must_use = "a watch does nothing unless awaited"]
pub struct Ended {
    inner: Pin<Box<dyn Future<Output = EndReason> + Send>>,
}

impl Future for Ended {
    type Output = EndReason;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<EndReason> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ended").finish_non_exhaustive()
    }
}

/// A manager's watchers: the registry, made (and its tasks started) at the first watch.
pub(crate) struct Watchers {
    store: Arc<dyn SessionStore>,
    near_cache: Option<Arc<NearCacheRuntime>>,
    mark_prefix: String,
    recheck: Duration,
    registry: OnceLock<Arc<Registry>>,
}

impl Watchers {
    pub(crate) fn new(
        store: Arc<dyn SessionStore>,
        near_cache: Option<Arc<NearCacheRuntime>>,
        mark_prefix: &str,
        recheck: Duration,
    ) -> Self {
        Self {
            store,
            near_cache,
            mark_prefix: mark_prefix.to_owned(),
            recheck,
            registry: OnceLock::new(),
        }
    }

    /// A future completing when the session of `keys` ends. Nothing happens until it is
    /// first polled (inside the runtime).
    pub(crate) fn ended(self: &Arc<Self>, keys: &SessionKeys) -> Ended {
        let watchers = Arc::clone(self);
        let keys = WatchKeys {
            session: Arc::from(keys.session.as_str()),
            deadline: keys.deadline.as_deref().map(Box::from),
            own_idle: keys.own_idle,
        };
        Ended {
            inner: Box::pin(async move {
                let registry = watchers.registry();
                let (mut rx, _claim) = registry.watch(keys);
                drop(watchers);
                let reason = match rx.wait_for(Option::is_some).await {
                    Ok(reason) => *reason,
                    Err(_) => None,
                };
                reason.unwrap_or(EndReason::Unknown)
            }),
        }
    }

    /// What the watchers hold and did; all zero before the first watch.
    pub(crate) fn stats(&self) -> WatchStats {
        self.registry.get().map(|r| r.stats()).unwrap_or_default()
    }

    /// The registry, made and started on first use.
    fn registry(&self) -> Arc<Registry> {
        let mut started = None;
        let registry = self.registry.get_or_init(|| {
            let registry = Arc::new(Registry::new(
                Arc::clone(&self.store),
                &self.mark_prefix,
                self.recheck,
            ));
            started = Some(Arc::clone(&registry));
            registry
        });
        if let Some(registry) = started {
            self.start(&registry);
        }
        Arc::clone(registry)
    }

    /// Starts the registry's checking task and the source of its news.
    fn start(&self, registry: &Arc<Registry>) {
        let weak = Arc::downgrade(registry);
        tokio::spawn(run_checks(weak.clone(), registry.waker()));
        if let Some(changes) = registry.store().key_changes() {
            registry.tracking_up();
            tokio::spawn(sources::relay_announcements(weak, changes));
        } else if let Some(cache) = &self.near_cache {
            let listener: Weak<dyn TrackingListener> = weak;
            cache.listen(listener);
            if cache.tracking() {
                registry.tracking_up();
            }
        } else if let Some(redis) = registry.store().redis_store() {
            tokio::spawn(sources::track_on_own_connections(weak, redis));
        } else {
            tracing::warn!(
                every = ?self.recheck,
                "session watch: the backend announces no changes; watched sessions are re-checked at this interval"
            );
        }
    }
}
