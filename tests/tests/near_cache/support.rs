//! Instances with the near cache on, and waiting for what they promise.

use std::time::{Duration, Instant};

use keygate::session::NearCache;
use keygate::{RedisOptions, RedisStore, SessionConfig, SessionManager};
use keygate_tests::fixtures::JavaUser;
use keygate_tests::RedisServer;

/// The settings the tests use: a touch interval long enough not to interfere, and a
/// quick tracking check.
pub fn near(touch_every: Duration) -> NearCache {
    NearCache::new(10_000, touch_every).with_tracking_check(Duration::from_millis(50))
}

/// One "instance": its own connections to `server`, the Java layout, the near cache on.
pub async fn instance(server: &RedisServer, config: SessionConfig) -> SessionManager<JavaUser> {
    let store = RedisStore::connect_with(RedisOptions::new(server.url()))
        .await
        .unwrap();
    let manager = SessionManager::new(store, config).unwrap();
    wait_tracking(&manager).await;
    manager
}

/// Waits until the instance's tracking is up (at most 5 s).
pub async fn wait_tracking(manager: &SessionManager<JavaUser>) {
    wait_for(Duration::from_secs(5), || {
        manager.near_cache_stats().is_some_and(|s| s.tracking)
    })
    .await
    .expect("tracking came up");
}

/// Polls `condition` every 100 µs until it holds; the time it took, or `None` past
/// `limit`.
pub async fn wait_for(limit: Duration, mut condition: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if condition() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
}
