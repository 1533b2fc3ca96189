//! Instances with the near cache on, and waiting for what they promise.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use keygate::session::NearCache;
use keygate::{Layout, RedisOptions, RedisStore, SessionConfig, SessionManager, Token};
use keygate_tests::RedisServer;
use keygate_tests::fixtures::JavaUser;
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The settings the tests use: a touch interval long enough not to interfere, and a
/// quick tracking check.
pub fn near(touch_every: Duration) -> NearCache {
    NearCache::new(10_000, touch_every).with_tracking_check(Duration::from_millis(50))
}

/// One "instance": its own connections to `server`, the near cache on.
pub async fn instance(server: &RedisServer, config: SessionConfig) -> SessionManager<JavaUser> {
    instance_with(RedisOptions::new(server.url()), config).await
}

/// One instance on a store made from `options` (TLS, cluster, Sentinel).
pub async fn instance_with(
    options: RedisOptions,
    config: SessionConfig,
) -> SessionManager<JavaUser> {
    let store = RedisStore::connect_with(options).await.unwrap();
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

/// Like [`wait_for`] for an async condition (a load), checked every ~20 µs. The pause is
/// a thread sleep: the async timer's resolution (1 ms) would round every figure up, and
/// spinning without a pause would take a core from Redis and the connection's reader on
/// a two-core machine.
pub async fn poll_until(
    limit: Duration,
    mut condition: impl AsyncFnMut() -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if condition().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_micros(20));
        tokio::task::yield_now().await;
    }
}

/// The latency tests run alone (every other test of this binary takes [`shared`]), so
/// that what they measure is the cache and not the other tests on two cores.
static TURNS: RwLock<()> = RwLock::const_new(());

/// A turn for a timing test: no other test of this binary runs meanwhile.
pub async fn exclusive() -> RwLockWriteGuard<'static, ()> {
    TURNS.write().await
}

/// A turn for any other test: runs alongside the others, never beside a timing test.
pub async fn shared() -> RwLockReadGuard<'static, ()> {
    TURNS.read().await
}

/// An async connection to `server` from "another service", for outside changes and for
/// reading what Redis holds (plain TCP servers only).
pub async fn admin(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The Redis key of `token` under `manager`'s layout.
pub fn key_of(manager: &SessionManager<JavaUser>, token: &Token) -> String {
    format!("{}{}", manager.config().prefix(), token.expose())
}

/// What Redis holds under `key` right now, decoded as the layout `codec` stores it.
pub async fn in_redis(
    admin: &mut redis::aio::MultiplexedConnection,
    codec: Layout,
    key: &str,
) -> Option<JavaUser> {
    match codec {
        Layout::Hash => {
            let fields: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(key)
                .query_async(admin)
                .await
                .unwrap();
            if fields.is_empty() {
                return None;
            }
            Some(JavaUser {
                id: fields["id"].parse().unwrap(),
                nick_name: fields["nickName"].clone(),
                icon: fields.get("icon").cloned().unwrap_or_default(),
            })
        }
        _ => {
            let text: Option<String> = redis::cmd("GET").arg(key).query_async(admin).await.unwrap();
            text.map(|t| serde_json::from_str(&t).unwrap())
        }
    }
}

/// Changes one field of the session under `key` as another service would: `HSET` of the
/// nickname for hashes, a `SET ... KEEPTTL` of the changed JSON otherwise.
pub async fn change_outside(
    admin: &mut redis::aio::MultiplexedConnection,
    codec: Layout,
    key: &str,
    user: &JavaUser,
) {
    match codec {
        Layout::Hash => {
            let _: i64 = redis::cmd("HSET")
                .arg(key)
                .arg("nickName")
                .arg(&user.nick_name)
                .query_async(admin)
                .await
                .unwrap();
        }
        _ => {
            let _: () = redis::cmd("SET")
                .arg(key)
                .arg(serde_json::to_string(user).unwrap())
                .arg("XX")
                .arg("KEEPTTL")
                .query_async(admin)
                .await
                .unwrap();
        }
    }
}

/// Loads `token` on `manager` until a load is served from memory (at most 1 s): the
/// session is then cached there. A fill can lose a race with the push of the write that
/// created the session, so the first load after a fill is not always a hit.
pub async fn make_hit(manager: &SessionManager<JavaUser>, token: &Token) {
    let start = Instant::now();
    loop {
        let before = manager.near_cache_stats().unwrap().hits;
        assert!(
            manager.load(token).await.unwrap().is_some(),
            "the session loads"
        );
        if manager.near_cache_stats().unwrap().hits > before {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "no load was served from memory within 1 s: {:?}",
            manager.near_cache_stats()
        );
    }
}

/// p50, p99 and max of `samples` (sorted in place).
pub fn percentiles(samples: &mut [Duration]) -> (Duration, Duration, Duration) {
    assert!(!samples.is_empty());
    samples.sort_unstable();
    let at = |q: usize| samples[(samples.len() * q).div_ceil(100).saturating_sub(1)];
    (at(50), at(99), samples[samples.len() - 1])
}

/// Prints a case's figures (run with `--nocapture` to see them) and returns them.
pub fn report(case: &str, samples: &mut [Duration]) -> (Duration, Duration, Duration) {
    let (p50, p99, max) = percentiles(samples);
    eprintln!(
        "near cache latency | {case:<48} | n={:>4} p50={:>9.3?} p99={:>9.3?} max={:>9.3?}",
        samples.len(),
        p50,
        p99,
        max
    );
    (p50, p99, max)
}

#[test]
fn percentiles_pick_the_nearest_rank() {
    let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
    let (p50, p99, max) = percentiles(&mut samples);
    assert_eq!(
        (p50, p99, max),
        (
            Duration::from_millis(50),
            Duration::from_millis(99),
            Duration::from_millis(100)
        )
    );
}

/// A loopback TCP proxy in front of a server that can stop forwarding, in both
/// directions, without closing anything: a network that silently stops delivering.
pub struct FreezableProxy {
    port: u16,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl FreezableProxy {
    /// Listens on a free loopback port and forwards every connection to `target_port`.
    pub async fn start(target_port: u16) -> Self {
        use std::sync::atomic::AtomicBool;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = std::sync::Arc::new(AtomicBool::new(false));
        let gate = std::sync::Arc::clone(&frozen);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await
                else {
                    continue;
                };
                let (client_rx, client_tx) = client.into_split();
                let (server_rx, server_tx) = server.into_split();
                tokio::spawn(forward(client_rx, server_tx, std::sync::Arc::clone(&gate)));
                tokio::spawn(forward(server_rx, client_tx, std::sync::Arc::clone(&gate)));
            }
        });
        Self { port, frozen, task }
    }

    /// `redis://127.0.0.1:<proxy port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops (`true`) or resumes forwarding.
    pub fn freeze(&self, frozen: bool) {
        self.frozen
            .store(frozen, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for FreezableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to`, holding what it read while the gate is frozen.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // A frozen network: hold the bytes until it thaws (checked every millisecond).
        while frozen.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
