//! The session near cache: hot sessions served from process memory, kept honest by Redis
//! client tracking. Opt-in with
//! [`SessionConfig::with_near_cache`](crate::SessionConfig::with_near_cache); Redis
//! backend only (Redis 7.0 or newer: RESP3, `CLIENT TRACKINGINFO` for the check and
//! `PEXPIRE … GT` for refreshes; on an older server tracking is refused with a warning and
//! loads go to Redis as without the cache).
//!
//! # What it promises
//!
//! - **Hits cost no Redis command.** A load first looks in this process's cache. It is
//!   served from memory, with zero Redis commands, when the entry was read while this
//!   process's tracking connection was up and that connection has not been interrupted
//!   since, and when the entry is within the TTL it has in Redis as known locally (which
//!   also caps it at the session's absolute deadline). Otherwise the load is a miss: one
//!   round trip, as without the cache, of reads only (the data and its `PTTL`, with a
//!   companion key its `PTTL` and value), sent on the tracking connection, and the answer
//!   is cached. A miss never writes: every write is announced to the other instances and
//!   drops their entry, so two instances serving one session in turn would otherwise
//!   keep dropping each other's.
//! - **The idle TTL is still refreshed while the session is used**, at most once per
//!   `touch_every` per session per process, and only once the TTL left in Redis no
//!   longer covers the idle TTL from the session's last use, in the background:
//!   refreshes that fall due
//!   together go out together, pipelined on the tracking connection. Every TTL the cache
//!   sets is the idle TTL **plus `touch_every`** (capped at the absolute deadline), so a
//!   session ends between `idle` and `idle + touch_every` after its last use on any
//!   instance (plus the few milliseconds a due refresh waits to be sent), **never before
//!   `idle`**, with two exceptions: a session found with a millisecond or so left, whose
//!   refresh reaches Redis after it expired (the request that found it is served; the next
//!   is a 401, where without the cache it would have been kept); and a refresh that falls
//!   due but is not sent because the entry was dropped first (invalidated by another
//!   instance's change, or the cache dropped when tracking was lost) — the session then
//!   ends when its TTL in Redis does, up to `touch_every` before `idle` after that use,
//!   unless it is used again. A refresh that finds the key gone evicts the entry: the next
//!   request is a 401. Each refresh reads the data and TTL back, and drops the entry if
//!   the data differs: Redis does not announce to a connection a change that it ran in the
//!   same turn of its event loop just before that connection's own write to the key
//!   (`NOLOOP` below). A refresh only ever pushes an expiry later (`PEXPIRE … GT`): a value
//!   another service wrote over the key just before the refresh reached Redis never gets
//!   an expiry if it had none, and never expires sooner if it had one.
//! - **Any change to the session key by anyone invalidates the entry**: a logout,
//!   logout-everywhere, update or rotation on any instance, expiry, eviction, another
//!   service on the same Redis (a Node or Spring service, `redis-cli`). Redis pushes the
//!   invalidation to the tracking connection, usually within a millisecond of the change;
//!   changes made by this process drop the entry at once. Fills that were in flight when
//!   their key was invalidated are not cached. The companion key (absolute deadline, own
//!   idle TTL) is outside the session prefix: a change to it alone (another service
//!   deleting or shortening only the companion, an eviction) is seen when the entry is
//!   next read from Redis or refreshed (each refresh reads the companion's `PTTL`), at the
//!   latest `touch_every` after the next use or at the deadline as cached; a companion
//!   found gone ends the session, as without the cache. `SWAPDB` of the sessions'
//!   database announces nothing and is not supported with the cache.
//! - **When an invalidation could have been missed, everything is dropped**: the tracking
//!   connection closed or failed a command, the server flushed (`FLUSHALL`, and the null
//!   invalidation it sends), or the check that runs every
//!   [`tracking_check`](NearCache::tracking_check) (default 1 s) found tracking off, a
//!   node no longer a master, behind Sentinel another master named by the sentinels, or
//!   on a cluster another slot map. Nothing is
//!   served from memory again until tracking is re-established on new connections; in
//!   between, loads go to Redis exactly as without the cache.
//! - **Memory is bounded**: at most [`max_entries`](NearCache::max_entries) sessions and
//!   [`max_bytes`](NearCache::max_bytes), least recently used out first. The bounds are
//!   split over up to 16 shards; a session larger than its shard's share of `max_bytes`
//!   is not cached and evicts nothing (its loads go to Redis as without the cache);
//!   [`SessionManager::near_cache_stats`](crate::SessionManager::near_cache_stats)
//!   reports entries, bytes, hits, misses, invalidations, flushes, refreshes and evictions.
//!
//! # How
//!
//! One RESP3 connection per master (one server, the Sentinel-managed master, each master
//! of a cluster; over TLS when the store uses TLS), with `CLIENT TRACKING ON BCAST PREFIX
//! <session prefix> NOLOOP`: the server announces every change under the session prefix,
//! except the ones made on that connection, which is where the cache's own fills and
//! refreshes go. Broadcasting rather than the default mode because every refresh is a
//! write, and a write drops the key from the server's table of keys a connection read (it
//! would have to be read again in the same transaction to stay tracked); broadcasting
//! needs no such table, so `tracking-table-max-keys` never evicts anything. The cost is
//! that each instance hears of every change under the prefix, including to sessions it
//! does not cache: as many pushes as the fleet makes session writes (logins, updates,
//! logouts, and at most one refresh per session per `touch_every` per instance). On a
//! cluster, a key is filled on the connection to the master of its slot, which tracks it;
//! a slot map that changes (resharding, failover) drops the cache, as does a `MOVED` on a
//! fill. A key of a slot that no master served when tracking began (a cluster running
//! without full coverage) is not cached, its loads go to Redis, and nothing else is
//! dropped.
//!
//! The session watchers ([`SessionManager::ended`](crate::SessionManager::ended)) of the
//! same manager share these connections: they hear the same announcements, and learn when
//! tracking is lost and back.
//!
//! The redis crate's own experimental client-side cache (`cache-aio`) is not used: it
//! caches command replies by command, does not know a session's deadlines, and keygate
//! needs the refresh bookkeeping and the flush rules above to be its own.
//!
//! ```no_run
//! # async fn run() -> Result<(), keygate::Error> {
//! use std::time::Duration;
//! use keygate::{RedisStore, SessionConfig, SessionManager, session::NearCache};
//!
//! let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
//! let config = SessionConfig::java_seed()
//!     .with_near_cache(NearCache::new(100_000, Duration::from_secs(60)));
//! let sessions = SessionManager::<serde_json::Value>::new(store, config)?;
//! # Ok(()) }
//! ```

mod config;
mod entries;
mod redis;
mod runtime;
mod store;

pub use config::{DEFAULT_MAX_BYTES, DEFAULT_TRACKING_CHECK, NearCache};
pub(crate) use entries::{Decoded, DecodedSession};
pub(crate) use runtime::{NearCacheRuntime, Served};
pub(crate) use store::NearCachedStore;

/// What a near cache holds and has done since it was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct NearCacheStats {
    /// Whether tracking is up (hits possible).
    pub tracking: bool,
    /// Sessions cached.
    pub entries: usize,
    /// Estimated memory of the cached sessions: keys, data, bookkeeping.
    pub bytes: usize,
    /// Loads served from memory.
    pub hits: u64,
    /// Loads that went to Redis while tracking was up.
    pub misses: u64,
    /// Entries dropped because their key changed.
    pub invalidations: u64,
    /// Times the whole cache was dropped (tracking lost, server flush).
    pub flushes: u64,
    /// Background TTL refreshes sent.
    pub refreshes: u64,
    /// Entries dropped to stay within the bounds.
    pub evictions: u64,
}
