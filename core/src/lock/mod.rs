//! A distributed lock on Redis, for work that only one instance may do at a time (two
//! payment callbacks racing for one order).
//!
//! - Acquire is `SET key owner NX PX lease` (with a random owner per acquisition) plus a
//!   fencing counter, in one script; [`Locks::try_acquire`] tries once,
//!   [`Locks::acquire`] waits up to a deadline, [`Locks::with_lock`] runs a future while
//!   holding the lock.
//! - Waiters are woken by a message on the lock's release channel and poll as a fallback
//!   (at most [`LockOptions::with_poll_interval`], jittered), so a lost wake-up costs at
//!   most one poll interval.
//! - Only the owner releases (compare-and-delete); releasing a lock that was lost is
//!   reported ([`LockError::NotOwner`]).
//! - While held, the guard renews the lease every lease/3 (owner-checked, like Redisson's
//!   watchdog); when a renewal finds the lock gone, [`LockGuard::is_lost`] turns true and
//!   [`LockGuard::lost`] completes, and `with_lock` stops the work.
//! - Every successful acquisition of a name returns a strictly larger fencing token
//!   ([`LockGuard::fence`]): pass it to the storage you protect and let it reject writes
//!   carrying an older token, which is what keeps a holder that was paused past its lease
//!   from doing damage.
//! - "Held by someone else" ([`LockError::Busy`], [`LockError::Timeout`]) and "Redis is
//!   unreachable" ([`LockError::Backend`]) are different errors: callers fail closed.
//! - Keys `keygate:lock:{<name>}` and `keygate:lock:{<name>}:fence` share a hash tag, so
//!   the scripts are single-slot on Redis Cluster. Names are escaped into the tag, so any
//!   name is safe.
//!
//! A guard dropped without [`LockGuard::release`] releases in the background; a process
//! that dies holding a lock blocks others for at most the lease.

mod guard;
mod locks;

pub use guard::{Fence, LockGuard};
pub use locks::{LockError, LockOptions, Locks};

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::Result;

/// The keys and channel of one lock name.
#[derive(Debug, Clone)]
pub struct LockKeys {
    /// Holds the owner token, with the lease as TTL.
    pub lock: String,
    /// The fencing counter.
    pub fence: String,
    /// Release notifications.
    pub channel: String,
}

impl LockKeys {
    pub(crate) fn new(name: &str) -> Self {
        let tag = escape(name);
        Self {
            lock: format!("keygate:lock:{{{tag}}}"),
            fence: format!("keygate:lock:{{{tag}}}:fence"),
            channel: format!("keygate:lock:{{{tag}}}:released"),
        }
    }
}

/// Percent-encodes everything but `[A-Za-z0-9:_.@/-]`, so a name can never close the hash
/// tag, act as a glob, or collide with another name.
fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b":_.@/-".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What one acquisition attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AcquireOutcome {
    /// The lock is ours, with this fencing token.
    Acquired(u64),
    /// Someone holds it; their lease ends in this many ms (or is unknown: 0).
    Held(u64),
}

/// Wake-ups when a lock is released. Dropping it stops the subscription.
pub struct ReleaseSignal {
    rx: mpsc::Receiver<()>,
    task: JoinHandle<()>,
}

impl ReleaseSignal {
    /// A signal fed by `task` through the sender side of `rx`.
    pub fn new(rx: mpsc::Receiver<()>, task: JoinHandle<()>) -> Self {
        Self { rx, task }
    }

    /// Waits for the next release; `false` when the subscription ended (then poll).
    pub async fn next(&mut self) -> bool {
        self.rx.recv().await.is_some()
    }
}

impl Drop for ReleaseSignal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for ReleaseSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseSignal").finish_non_exhaustive()
    }
}

/// Storage of locks. Every method is one atomic step.
#[async_trait]
pub trait LockStore: Send + Sync + 'static {
    /// Takes the lock for `owner` with this lease if it is free, incrementing the fence.
    async fn try_acquire(
        &self,
        keys: &LockKeys,
        owner: &str,
        lease_ms: u64,
    ) -> Result<AcquireOutcome>;

    /// Releases the lock if `owner` holds it (and notifies waiters); `false` otherwise.
    async fn release(&self, keys: &LockKeys, owner: &str) -> Result<bool>;

    /// Extends the lease if `owner` holds it; `false` otherwise.
    async fn renew(&self, keys: &LockKeys, owner: &str, lease_ms: u64) -> Result<bool>;

    /// Subscribes to release notifications of this lock.
    async fn subscribe(&self, keys: &LockKeys) -> Result<ReleaseSignal>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_break_out_of_the_hash_tag() {
        let keys = LockKeys::new("order:42");
        assert_eq!(keys.lock, "keygate:lock:{order:42}");
        assert_eq!(keys.fence, "keygate:lock:{order:42}:fence");
        let odd = LockKeys::new("a}b{c* d%");
        assert_eq!(odd.lock, "keygate:lock:{a%7Db%7Bc%2A%20d%25}");
        assert_ne!(LockKeys::new("a%7D").lock, LockKeys::new("a}").lock);
    }
}
