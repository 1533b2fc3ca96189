//! The held lock: renewal, loss detection, release.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::locks::{LockError, Locks};
use super::{LockKeys, LockStore};
use crate::config::millis;

/// A fencing token: strictly larger for every successful acquisition of a lock name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fence(u64);

impl Fence {
    /// The number, to store next to what the lock protects.
    pub fn value(self) -> u64 {
        self.0
    }
}

/// A held lock. Release it with [`release`](Self::release); dropping it releases in the
/// background.
#[derive(Debug)]
pub struct LockGuard {
    shared: Arc<Shared>,
    lost_rx: watch::Receiver<bool>,
    renewal: Option<JoinHandle<()>>,
    released: bool,
}

struct Shared {
    store: Arc<dyn LockStore>,
    keys: LockKeys,
    owner: String,
    fence: u64,
    lost: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("lock", &self.keys.lock)
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}

impl LockGuard {
    pub(super) fn start(locks: &Locks, keys: LockKeys, owner: String, fence: u64) -> Self {
        let shared = Arc::new(Shared {
            store: Arc::clone(&locks.store),
            keys,
            owner,
            fence,
            lost: AtomicBool::new(false),
        });
        let (lost_tx, lost_rx) = watch::channel(false);
        let renewal = locks
            .options
            .renews()
            .then(|| tokio::spawn(renew(Arc::clone(&shared), locks.options.lease(), lost_tx)));
        Self {
            shared,
            lost_rx,
            renewal,
            released: false,
        }
    }

    /// The fencing token of this acquisition.
    pub fn fence(&self) -> u64 {
        self.shared.fence
    }

    pub(super) fn fence_token(&self) -> Fence {
        Fence(self.shared.fence)
    }

    /// Whether a renewal found the lock gone (lease expired, taken over).
    pub fn is_lost(&self) -> bool {
        self.shared.lost.load(Ordering::SeqCst)
    }

    /// Completes when the lock is found lost; never while it is held. Select on it to stop
    /// work. Without renewal, loss is only discovered at release.
    pub async fn lost(&self) {
        let mut rx = self.lost_rx.clone();
        // Err: the renewal task ended without loss (no renewal configured): wait forever.
        if rx.wait_for(|lost| *lost).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Releases the lock. [`LockError::NotOwner`] if it was lost meanwhile: whatever was
    /// done under it may have overlapped with another holder.
    pub async fn release(mut self) -> Result<(), LockError> {
        self.stop_renewal();
        self.released = true;
        let shared = &self.shared;
        if shared.store.release(&shared.keys, &shared.owner).await? {
            Ok(())
        } else {
            shared.lost.store(true, Ordering::SeqCst);
            Err(LockError::NotOwner)
        }
    }

    fn stop_renewal(&mut self) {
        if let Some(task) = self.renewal.take() {
            task.abort();
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.stop_renewal();
        if self.released {
            return;
        }
        // Without a runtime (process shutting down) the lease ends the lock instead.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let shared = Arc::clone(&self.shared);
            runtime.spawn(async move {
                if let Err(error) = shared.store.release(&shared.keys, &shared.owner).await {
                    tracing::warn!(%error, "releasing a dropped lock guard failed; the lease will end it");
                }
            });
        }
    }
}

/// The watchdog: renews every lease/3 while the lock is ours. A refused renewal means the
/// lock is lost; renewals that fail for a whole lease mean it may be lost, so it is
/// reported lost too (fail closed).
async fn renew(shared: Arc<Shared>, lease: Duration, lost: watch::Sender<bool>) {
    let every = lease / 3;
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(every).await;
        match shared
            .store
            .renew(&shared.keys, &shared.owner, millis(lease))
            .await
        {
            Ok(true) => last_renewed = tokio::time::Instant::now(),
            Ok(false) => break,
            Err(error) => {
                tracing::warn!(%error, "lock renewal failed");
                if last_renewed.elapsed() < lease {
                    continue;
                }
                break;
            }
        }
    }
    shared.lost.store(true, Ordering::SeqCst);
    let _ = lost.send(true);
}
