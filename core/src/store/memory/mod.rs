//! The embedded in-memory backend: the same semantics as Redis (TTL, sliding refresh,
//! atomic conditional writes) inside the process, for development, demos and tests of code
//! that uses keygate. Data is lost when the process exits and is not shared between
//! processes.

mod code;
pub(crate) mod db;
mod lock;
mod seckill;
mod session;

use std::sync::{Arc, Mutex, PoisonError};

use db::Db;

/// An in-process backend. Cheap to clone; clones share the data.
#[derive(Clone)]
pub struct MemoryStore {
    db: Arc<Mutex<Db>>,
    /// Lock release notifications (the lock key), as Redis pub/sub carries them.
    released: tokio::sync::broadcast::Sender<String>,
    /// Wakes blocked stream readers when an entry is added.
    stream_added: Arc<tokio::sync::Notify>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            db: Arc::default(),
            released: tokio::sync::broadcast::channel(64).0,
            stream_added: Arc::default(),
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
