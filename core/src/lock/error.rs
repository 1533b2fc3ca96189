//! Why a lock was not obtained or not released cleanly.

use std::time::Duration;

use crate::error::Error;

/// Why a lock was not obtained or not released cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Held by someone else (try once).
    #[error("lock is held by another owner")]
    Busy {
        /// When the current lease ends at the latest, if known.
        retry_after: Option<Duration>,
    },
    /// Still held by someone else when the wait ended.
    #[error("timed out waiting for the lock")]
    Timeout,
    /// The lock was lost (lease expired, taken over) before release or during the work.
    #[error("lock was lost: the lease ended or another owner took it")]
    NotOwner,
    /// Acquired, but fewer replicas than [`LockOptions::with_replication_wait`](super::LockOptions::with_replication_wait) asks for
    /// acknowledged it in time; the lock was given back.
    #[error("lock acquisition reached {acknowledged} of {wanted} replicas in time")]
    NotReplicated {
        /// Replicas that acknowledged.
        acknowledged: u32,
        /// Replicas asked for.
        wanted: u32,
    },
    /// The backend is unreachable or failed: whether the lock is free is unknown.
    #[error(transparent)]
    Backend(#[from] Error),
}

impl LockError {
    /// How long to wait before retrying (for `Retry-After`): the holder's remaining lease
    /// when known, else one second; `None` for backend errors.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LockError::Backend(_) => None,
            LockError::Busy {
                retry_after: Some(wait),
            } => Some(*wait),
            _ => Some(Duration::from_secs(1)),
        }
    }
}
