//! The embedded in-memory backend: the same semantics as Redis (TTL, sliding refresh,
//! atomic conditional writes) inside the process, for development, demos and tests of code
//! that uses keygate. Data is lost when the process exits and is not shared between
//! processes.

// General means for whichever capabilities are built: with some left out by their cargo
// features, parts of them go unused.
#![cfg_attr(
    not(all(feature = "codes", feature = "locks", feature = "flash-sale")),
    allow(dead_code, unused_imports)
)]

pub(crate) mod db;
pub(crate) mod stream;

use std::sync::{Arc, Mutex, PoisonError};

use db::Db;

/// Announced key changes a slow receiver may fall behind by before it is told it lagged
/// (it then checks everything it watches).
const CHANGED_KEYS_BUFFER: usize = 1024;

/// An in-process backend. Cheap to clone; clones share the data.
#[derive(Clone)]
pub struct MemoryStore {
    db: Arc<Mutex<Db>>,
    /// Messages published on a channel (the channel's name), as Redis pub/sub carries them.
    pub(crate) published: tokio::sync::broadcast::Sender<String>,
    /// Wakes blocked stream readers when an entry is added.
    pub(crate) stream_added: Arc<tokio::sync::Notify>,
    /// Keys a capability announces as changed, as Redis client tracking announces them
    /// (sessions: the keys of ended and moved sessions, for their watchers).
    pub(crate) changed_keys: tokio::sync::broadcast::Sender<String>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            db: Arc::default(),
            published: tokio::sync::broadcast::channel(64).0,
            stream_added: Arc::default(),
            changed_keys: tokio::sync::broadcast::channel(CHANGED_KEYS_BUFFER).0,
        }
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` with exclusive access: each call is atomic, as a Redis script is. The lock is
    /// never held across an `.await`.
    pub(crate) fn with_db<R>(&self, f: impl FnOnce(&mut Db) -> R) -> R {
        let mut db = self.db.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut db)
    }
}
