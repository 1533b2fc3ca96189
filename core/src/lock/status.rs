//! A lock as an operator sees it: whether someone holds it, for how much longer, and the
//! last fencing token issued. Never who holds it: the owner id is a secret of the holder
//! (whoever knows it can release the lock).

use std::time::Duration;

use super::{LockKeys, Locks};
use crate::error::Result;

/// What [`Locks::status`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockStatus {
    /// Whether someone holds the lock now.
    pub held: bool,
    /// What is left of the holder's lease (`None` when nobody holds it).
    pub lease_left: Option<Duration>,
    /// The last fencing token issued for the name; `None` once its counter expired (a
    /// while after the last acquisition, see
    /// [`LockOptions::with_fence_ttl`](super::LockOptions::with_fence_ttl)).
    pub fence: Option<u64>,
}

impl Locks {
    /// Whether the lock `name` is held, the lease left and the last fence, read without
    /// changing anything.
    pub async fn status(&self, name: &str) -> Result<LockStatus> {
        self.store.status(&LockKeys::new(name)).await
    }
}
