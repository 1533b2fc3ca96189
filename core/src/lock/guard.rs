//! The held lock: renewal, loss detection, release.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::error::LockError;
use super::options::LockOptions;
use super::{LockKeys, LockStore};
use crate::ttl::millis;

/// A fencing token: strictly larger for every successful acquisition of a lock name. Its
/// value is the larger of the previous token plus one and the store's clock in microseconds
/// since the Unix epoch at the acquisition: a large number, not a count of acquisitions
/// (see the [module docs](super)).
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
    /// Starts guarding an acquisition whose request was sent at `sent` (the lease in the
    /// store started later than that).
    pub(super) fn start(
        store: &Arc<dyn LockStore>,
        options: &LockOptions,
        keys: LockKeys,
        owner: String,
        fence: u64,
        sent: Instant,
    ) -> Self {
        let shared = Arc::new(Shared {
            store: Arc::clone(store),
            keys,
            owner,
            fence,
            lost: AtomicBool::new(false),
        });
        let (lost_tx, lost_rx) = watch::channel(false);
        let watchdog = Watchdog {
            lease: options.lease(),
            valid: options
                .lease()
                .saturating_sub(options.effective_margin(store.command_timeout())),
            renew: options.renews(),
        };
        let renewal = Some(tokio::spawn(watchdog.run(
            Arc::clone(&shared),
            sent,
            lost_tx,
        )));
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

    /// Whether the lock is lost or may be: a renewal found it gone (lease expired, taken
    /// over), or no renewal was confirmed in time (see [`lost`](Self::lost)).
    pub fn is_lost(&self) -> bool {
        self.shared.lost.load(Ordering::SeqCst)
    }

    /// Completes when the lock is lost or may be; never while it is certainly held. Select
    /// on it to stop work.
    ///
    /// The guard counts the lease from when the last successful renewal (or the
    /// acquisition) was *sent*, so its count never ends later than Redis's. It reports the
    /// lock lost when a renewal is refused, and at the latest at that send time plus the
    /// lease minus the safety margin ([`LockOptions::with_safety_margin`]) when no renewal
    /// was confirmed by then (Redis unreachable or frozen, renewals timing out, or renewal
    /// turned off): before another instance can acquire the lock.
    ///
    /// [`LockOptions::with_safety_margin`]: super::LockOptions::with_safety_margin
    pub async fn lost(&self) {
        let mut rx = self.lost_rx.clone();
        // Err: the watchdog ended without loss (the guard was released): wait forever.
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
            mark_lost(shared);
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

/// What the watchdog of one guard does.
struct Watchdog {
    lease: Duration,
    /// How long after sending an acquisition or renewal the lock counts as held: the lease
    /// minus the safety margin.
    valid: Duration,
    renew: bool,
}

impl Watchdog {
    /// Renews three times per validity period while the lock is ours, and reports the
    /// lock lost when a renewal is refused or when the validity of the last confirmed
    /// acquisition or renewal, counted from when it was sent, runs out (Redis unreachable
    /// or too slow: fail closed). Without renewal it only waits for that deadline.
    async fn run(self, shared: Arc<Shared>, acquired: Instant, lost: watch::Sender<bool>) {
        let mut deadline = acquired + self.valid;
        if self.renew {
            let every = self.valid / 3;
            let mut next = acquired + every;
            loop {
                tokio::time::sleep_until(next.min(deadline)).await;
                let sent = Instant::now();
                if sent >= deadline {
                    break;
                }
                next = sent + every;
                let renewal = shared
                    .store
                    .renew(&shared.keys, &shared.owner, millis(self.lease));
                match tokio::time::timeout_at(deadline, renewal).await {
                    Ok(Ok(true)) => deadline = sent + self.valid,
                    Ok(Ok(false)) => break,
                    Ok(Err(error)) => tracing::warn!(%error, "lock renewal failed"),
                    Err(_) => {
                        tracing::warn!("no lock renewal confirmed within the lease");
                        break;
                    }
                }
            }
        } else {
            tokio::time::sleep_until(deadline).await;
        }
        mark_lost(&shared);
        let _ = lost.send(true);
    }
}

/// Flags the lock lost, counting it once however it was found out.
fn mark_lost(shared: &Shared) {
    if !shared.lost.swap(true, Ordering::SeqCst) {
        crate::telemetry::count_n(crate::telemetry::names::LOCK_LOST, 1);
    }
}
