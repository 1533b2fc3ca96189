//! The session store trait: what a backend does for sessions. The Redis commands live in
//! `redis.rs` beside it, the policy (which keys, when to evict, what counts as expired) in
//! the manager.

use async_trait::async_trait;

use super::event_log::{EventFields, EventReader, EventStreams, RawEvent};
use crate::codec::Layout;
use crate::codec::StoredValue;
use crate::error::{Error, Result};

/// What a backend without an event log answers to the event log's operations.
fn no_event_log<T>() -> Result<T> {
    Err(Error::Config(
        "this session backend keeps no event log".into(),
    ))
}

/// What a session load found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fetched {
    /// No such key (never existed, expired, destroyed).
    Missing,
    /// The stored data; its idle TTL has been reset.
    Found(StoredValue),
    /// Something is stored there that is not session data (wrong Redis type, not UTF-8).
    Corrupt(String),
}

/// The result of a conditional update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpdateOutcome {
    /// The new data is stored; the expiry is unchanged.
    Updated,
    /// The session no longer exists; nothing was written (no resurrection).
    Gone,
    /// Another request changed the data since it was loaded (JSON codec only); nothing was
    /// written. Reload and try again.
    Conflict,
}

/// Keys of one session as the store sees them.
#[derive(Clone, Copy)]
pub struct SessionKeyRef<'a> {
    /// The session key, `<prefix><token or hash>`.
    pub session: &'a str,
    /// The companion key, in the same hash slot, when sessions have one (an absolute
    /// lifetime or login limits configured): every session then has it, and a session
    /// whose companion is missing, has no expiry or is in its last millisecond is over.
    /// Its TTL is the absolute deadline; its value the session's own idle TTL (when its
    /// login chose one), `1` (the configuration's idle TTL), or `0` when the session has
    /// no deadline: the companion's TTL then follows the session's.
    pub deadline: Option<&'a str>,
    /// Whether a session's companion may hold its own idle TTL or `0` (the configuration
    /// has login limits), so a load must read the companion's value.
    pub own_idle: bool,
}

/// The expiry of a session being created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewExpiry {
    /// Its idle TTL.
    pub idle_ms: u64,
    /// Its absolute lifetime, the companion key's TTL. Without one, a companion key (when
    /// the keys name one) is written with the value `0` and follows the session's TTL.
    pub lifetime_ms: Option<u64>,
    /// Whether the idle TTL is the session's own (chosen at login) rather than the
    /// configuration's; only then does the companion remember it.
    pub own_idle: bool,
}

/// What is left of a live session's expiry, as read by [`SessionStore::ttls`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTtl {
    /// The session key's remaining TTL; `None` when it has no expiry.
    pub ttl_ms: Option<u64>,
    /// The session's own idle TTL, when its login chose one.
    pub own_idle_ms: Option<u64>,
    /// The companion key's remaining TTL (time to the absolute deadline), if it has one.
    pub deadline_ms: Option<u64>,
}

/// The result of moving a session to a new key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RenameOutcome {
    /// The session now lives under the new key only; with the time left to its absolute
    /// deadline when it has one.
    Renamed {
        /// The companion key's remaining TTL, if the session has a deadline.
        deadline_ms: Option<u64>,
    },
    /// The old session no longer exists; nothing was written.
    Gone,
    /// A key already exists under the new name; nothing was moved.
    TargetExists,
}

/// Why keygate ends sessions, left next to each one it ends (the "end mark"): a key
/// `<prefix>{<session key>}` in the session key's hash slot holding the reason's wire name
/// for `ttl_ms`, written in the same atomic step as the end, so that a watcher in another
/// process ([`SessionManager::ended`](crate::SessionManager::ended)) can tell why when Redis
/// announces the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndMark<'a> {
    /// The mark keys' prefix ([`SessionConfig::with_end_mark_prefix`](crate::SessionConfig::with_end_mark_prefix)).
    pub prefix: &'a str,
    /// The reason's wire name ([`EndReason::as_str`](crate::session::EndReason::as_str)).
    pub reason: &'a str,
    /// How long the mark stays.
    pub ttl_ms: u64,
}

/// The end mark key of `session` under `prefix`: `<prefix>{<session>}`, which hashes like
/// the session key (neither may contain braces).
pub fn end_mark_key(prefix: &str, session: &str) -> String {
    let mut key = String::with_capacity(prefix.len() + session.len() + 2);
    key.push_str(prefix);
    key.push('{');
    key.push_str(session);
    key.push('}');
    key
}

/// What a watcher's check of one session found ([`SessionStore::probe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Probe {
    /// The session exists; the time left to its end (the sooner of its TTL and its
    /// absolute deadline), `None` when it has no expiry.
    Live {
        /// Milliseconds left, if it expires.
        left_ms: Option<u64>,
    },
    /// The session is over (its key or its companion is gone, or the companion lost its
    /// expiry); with the end mark's text when keygate left one.
    Gone {
        /// The end mark, if any.
        mark: Option<String>,
    },
}

/// A session backend. Implemented by [`RedisStore`](crate::RedisStore) and
/// [`MemoryStore`](crate::MemoryStore); every operation is atomic where it says so on
/// both.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Writes a new session with the idle TTL if the key does not exist yet (returns
    /// `false` if it does). When the keys name a companion, also writes it: with a
    /// lifetime, the lifetime as its TTL and, as its value, the session's own idle TTL or
    /// `1`; without, the session's TTL and `0`.
    async fn insert(
        &self,
        keys: SessionKeyRef<'_>,
        value: &StoredValue,
        expiry: NewExpiry,
    ) -> Result<bool>;

    /// Reads the session and resets its TTL to its idle TTL (the companion's value when the
    /// login chose one, else `idle_ms`), capped by the companion key's remaining TTL (or,
    /// for a companion without deadline, resetting the companion's TTL alike), in one
    /// round trip. A session whose companion is missing, has no expiry or is in its last
    /// millisecond is [`Fetched::Missing`].
    async fn load_and_touch(
        &self,
        keys: SessionKeyRef<'_>,
        codec: Layout,
        idle_ms: u64,
    ) -> Result<Fetched>;

    /// Overwrites the data if the key still exists, keeping its TTL.
    async fn replace(&self, key: &str, value: &StoredValue) -> Result<bool>;

    /// Writes `new` over `old` if the key still exists: JSON only if the stored text is
    /// still `old`; a hash field by field, touching only fields that differ.
    async fn update(
        &self,
        key: &str,
        old: &StoredValue,
        new: &StoredValue,
    ) -> Result<UpdateOutcome>;

    /// Deletes sessions (each with its deadline key); returns how many session keys existed.
    async fn remove(&self, sessions: &[SessionKeyRef<'_>]) -> Result<u64>;

    /// Deletes sessions as [`remove`](Self::remove) does, saying for each whether its
    /// session key existed, and leaves `mark` for each that existed, in the same atomic
    /// step as its end. The default removes one session at a time without marks
    /// (watchers then learn of the end without its reason).
    async fn remove_marked(
        &self,
        sessions: &[SessionKeyRef<'_>],
        mark: EndMark<'_>,
    ) -> Result<Vec<bool>> {
        let _ = mark;
        let mut existed = Vec::with_capacity(sessions.len());
        for keys in sessions {
            existed.push(self.remove(std::slice::from_ref(keys)).await? > 0);
        }
        Ok(existed)
    }

    /// Which of these keys exist.
    async fn exists(&self, keys: &[&str]) -> Result<Vec<bool>>;

    /// The remaining expiry of each session, `None` for a session that is gone (which
    /// includes one whose companion is missing, without expiry or at 0 ms); without
    /// touching anything, in one pipeline (on a cluster, one batch per node).
    async fn ttls(&self, sessions: &[SessionKeyRef<'_>]) -> Result<Vec<Option<SessionTtl>>>;

    /// Moves a session (and its companion) to new keys atomically, keeping data and TTLs:
    /// no concurrent load finds it under both names or under neither.
    async fn rename(&self, from: SessionKeyRef<'_>, to: SessionKeyRef<'_>)
    -> Result<RenameOutcome>;

    /// Like [`rename`](Self::rename), and leaves `mark` for the old key in the same atomic
    /// step when the session moved. The default renames without a mark.
    async fn rename_marked(
        &self,
        from: SessionKeyRef<'_>,
        to: SessionKeyRef<'_>,
        mark: EndMark<'_>,
    ) -> Result<RenameOutcome> {
        let _ = mark;
        self.rename(from, to).await
    }

    /// What a watcher needs to know of one session, without touching it, in one round trip
    /// (on Redis one read-only script): whether it is live and for how long, or the end
    /// mark under `mark_prefix` when it is gone. The default reads [`ttls`](Self::ttls)
    /// and knows no marks.
    async fn probe(&self, keys: SessionKeyRef<'_>, mark_prefix: &str) -> Result<Probe> {
        let _ = mark_prefix;
        let ttl = self.ttls(&[keys]).await?.into_iter().next().flatten();
        Ok(match ttl {
            Some(ttl) => Probe::Live {
                left_ms: match (ttl.ttl_ms, ttl.deadline_ms) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                },
            },
            None => Probe::Gone { mark: None },
        })
    }

    /// The session keys this backend itself announces as changed (the embedded backend:
    /// ended and renamed sessions), for watchers; `None` when it announces nothing here
    /// (Redis announces through client tracking instead).
    #[doc(hidden)]
    fn key_changes(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        None
    }

    /// Whether [`rename`](Self::rename) can move a session between these two keys. Always
    /// on one server; on a cluster only within one hash slot, so a rotation picks a new
    /// token whose key lands in the old key's slot.
    fn can_rename(&self, from: &str, to: &str) -> bool {
        let _ = (from, to);
        true
    }

    /// Adds a member to a per-user index with its creation time (unix µs) and sets the
    /// index key's TTL, in one round trip.
    async fn index_add(
        &self,
        index: &str,
        member: &str,
        created_us: i64,
        ttl_ms: u64,
    ) -> Result<()>;

    /// At most `count` of the index's members with their creation times, oldest first,
    /// starting at rank `offset`.
    async fn index_page(
        &self,
        index: &str,
        offset: usize,
        count: usize,
    ) -> Result<Vec<(String, i64)>>;

    /// Replaces `old` by `new` (with score `created_us`, and the index TTL) if `old` is
    /// still a member, in one step; `false`, writing nothing, when it is not.
    async fn index_replace(
        &self,
        index: &str,
        old: &str,
        new: &str,
        created_us: i64,
        ttl_ms: u64,
    ) -> Result<bool>;

    /// Removes members from an index.
    async fn index_remove(&self, index: &str, members: &[&str]) -> Result<()>;

    /// [`index_add`](Self::index_add), recording `event` in `streams` in the same atomic
    /// step (see [`session::events`](crate::session::events) for what is atomic where).
    async fn index_add_logged(
        &self,
        index: &str,
        member: &str,
        created_us: i64,
        ttl_ms: u64,
        streams: &EventStreams<'_>,
        event: &EventFields,
    ) -> Result<()> {
        let _ = (index, member, created_us, ttl_ms, streams, event);
        no_event_log()
    }

    /// [`index_replace`](Self::index_replace), recording `event` if and only if the entry
    /// moved, in the same atomic step.
    #[allow(clippy::too_many_arguments)]
    async fn index_replace_logged(
        &self,
        index: &str,
        old: &str,
        new: &str,
        created_us: i64,
        ttl_ms: u64,
        streams: &EventStreams<'_>,
        event: &EventFields,
    ) -> Result<bool> {
        let _ = (index, old, new, created_us, ttl_ms, streams, event);
        no_event_log()
    }

    /// Removes members from an index, recording `events[i]` if and only if `members[i]`
    /// was there, in the same atomic step; says which were.
    async fn index_remove_logged(
        &self,
        index: &str,
        members: &[&str],
        streams: &EventStreams<'_>,
        events: &[EventFields],
    ) -> Result<Vec<bool>> {
        let _ = (index, members, streams, events);
        no_event_log()
    }

    /// The last `count` entries of an event stream, oldest first.
    async fn read_events(&self, stream: &str, count: usize) -> Result<Vec<RawEvent>> {
        let _ = (stream, count);
        no_event_log()
    }

    /// A reader that waits for new entries of an event stream.
    async fn event_reader(&self) -> Result<Box<dyn EventReader>> {
        no_event_log()
    }

    /// The Redis store underneath, for the near cache's tracking connections and for
    /// session loads, which call it directly (so a wrapper that answers it sees no
    /// `load_and_touch`); `None` for other backends (the near cache is then off).
    #[doc(hidden)]
    fn redis_store(&self) -> Option<crate::redis_store::RedisStore> {
        None
    }
}

/// The hash fields that differ between two stored hashes: fields to set, fields to delete.
pub(crate) fn field_changes<'a>(
    old: &'a [(String, String)],
    new: &'a [(String, String)],
) -> (Vec<(&'a str, &'a str)>, Vec<&'a str>) {
    let set = new
        .iter()
        .filter(|(name, value)| !old.iter().any(|(n, v)| n == name && v == value))
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let delete = old
        .iter()
        .filter(|(name, _)| !new.iter().any(|(n, _)| n == name))
        .map(|(n, _)| n.as_str())
        .collect();
    (set, delete)
}
