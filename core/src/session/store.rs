//! The session store trait: what a backend does for sessions. The Redis commands live in
//! `redis.rs` beside it, the policy (which keys, when to evict, what counts as expired) in
//! the manager.

use async_trait::async_trait;

use crate::Result;
use crate::codec::StoredValue;
use crate::config::Codec;

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
    /// The companion key holding the absolute deadline as its TTL, in the same hash slot.
    pub deadline: Option<&'a str>,
}

/// A session backend. Implemented by [`RedisStore`](crate::RedisStore) and
/// [`MemoryStore`](crate::MemoryStore); every operation is atomic where it says so on
/// both.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Writes a new session with the idle TTL if the key does not exist yet (returns
    /// `false` if it does). With a deadline key, also writes it with the absolute lifetime
    /// as its TTL.
    async fn insert(
        &self,
        keys: SessionKeyRef<'_>,
        value: &StoredValue,
        idle_ms: u64,
        lifetime_ms: Option<u64>,
    ) -> Result<bool>;

    /// Reads the session and resets its TTL to the idle TTL, capped by the deadline key's
    /// remaining TTL when there is one, in one round trip.
    async fn load_and_touch(
        &self,
        keys: SessionKeyRef<'_>,
        codec: Codec,
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

    /// Which of these keys exist.
    async fn exists(&self, keys: &[&str]) -> Result<Vec<bool>>;

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

    /// Removes members from an index.
    async fn index_remove(&self, index: &str, members: &[&str]) -> Result<()>;
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
