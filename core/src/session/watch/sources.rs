//! Where a registry hears of changes: Redis client tracking on connections of its own (when
//! the near cache is off), the near cache's tracking connections, or the embedded backend's
//! own announcements.

use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::{PushInfo, PushKind};
use tokio::sync::{Notify, broadcast};

use super::registry::Registry;
use crate::error::Error;
use crate::redis_store::RedisStore;
use crate::redis_store::tracking::{PushHandler, TrackingMode, invalidated_keys};

/// Longest wait between two attempts to establish tracking after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Wait before asking again a server that cannot track (older than 7.0).
const UNSUPPORTED_RETRY: Duration = Duration::from_secs(60);

/// Keeps tracking connections of the registry's own up (one per master, in the default
/// mode with `NOLOOP`: each announces changes to the keys read on it, and the registry's
/// checks read the watched keys there, so only watched sessions are announced), checks them
/// every `recheck` as the near cache does, and tells the registry when it can rely on them
/// and when not. Ends when the registry is dropped.
pub(super) async fn track_on_own_connections(weak: Weak<Registry>, backend: RedisStore) {
    let mut backoff = Duration::from_millis(50);
    let mut warned = false;
    loop {
        let Some((recheck, suspect)) = weak.upgrade().map(|r| (r.recheck(), r.suspicion())) else {
            return;
        };
        // Per set of connections: a push of an older set (its close) must not touch the next.
        let lost = Arc::new(Notify::new());
        let handler: PushHandler = {
            let (weak, lost) = (weak.clone(), Arc::clone(&lost));
            Arc::new(move |push: PushInfo| on_push(&weak, &lost, &push))
        };
        let nodes = match backend.track(TrackingMode::Reads, handler).await {
            Ok(nodes) => nodes,
            Err(error) => {
                if !warned {
                    tracing::warn!(
                        %error,
                        every = ?recheck,
                        "session watch: Redis client tracking is unavailable; watched sessions are re-checked at this interval meanwhile"
                    );
                    warned = true;
                }
                let wait = if matches!(error, Error::Config(_)) {
                    UNSUPPORTED_RETRY
                } else {
                    backoff
                };
                backoff = (backoff * 2).min(MAX_BACKOFF);
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        if warned {
            tracing::info!("session watch: Redis client tracking is on");
            warned = false;
        }
        let nodes = Arc::new(nodes);
        match weak.upgrade() {
            Some(registry) => registry.tracking_up_arming(Arc::clone(&nodes)),
            None => return,
        }
        loop {
            tokio::select! {
                () = lost.notified() => break,
                () = suspect.notified() => break,
                () = tokio::time::sleep(recheck) => {}
            }
            if weak.strong_count() == 0 {
                return;
            }
            if !matches!(nodes.still_valid(&backend).await, Ok(true)) {
                break;
            }
        }
        tracing::info!(
            "session watch: tracking lost; re-checking watched sessions until it is back"
        );
        match weak.upgrade() {
            Some(registry) => registry.tracking_lost(),
            None => return,
        }
    }
}

fn on_push(weak: &Weak<Registry>, lost: &Notify, push: &PushInfo) {
    match push.kind {
        PushKind::Invalidate => {
            let Some(registry) = weak.upgrade() else {
                return;
            };
            match invalidated_keys(push) {
                Some(keys) => registry.keys_changed(keys),
                None => registry.everything_changed(),
            }
        }
        PushKind::Disconnection => lost.notify_one(),
        _ => {}
    }
}

/// Relays the embedded backend's announcements to the registry. Ends when the registry is
/// dropped or the backend is gone.
pub(super) async fn relay_announcements(
    weak: Weak<Registry>,
    mut changes: broadcast::Receiver<String>,
) {
    loop {
        let change = changes.recv().await;
        let Some(registry) = weak.upgrade() else {
            return;
        };
        match change {
            Ok(key) => registry.keys_changed([key.as_str()]),
            // Fell behind: some announcements are lost, so check everything.
            Err(broadcast::error::RecvError::Lagged(_)) => registry.everything_changed(),
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
