//! A day in fast motion against a private Redis: many users logging in and out,
//! sessions idling out, many distinct lock names, many flash-sale orders through the
//! consumer. While it runs the keyspace grows with the load; once everything has expired
//! or been processed, what remains is bounded by configuration, not by history. The
//! figures are printed (`cargo test --test footprint -- --nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream;
use keygate::flash_sale::{
    ConsumerOptions, FlashSale, HandlerError, Order, OrderConsumer, OrderHandler, OrderOutcome,
    SaleWindow,
};
use keygate::lock::{LockOptions, Locks};
use keygate::{RedisOptions, RedisStore, SessionConfig, SessionManager, UserId};
use keygate_tests::fixtures::JavaUser;
use keygate_tests::{RedisServer, eventually};

const USERS: u64 = 10_000;
const LOCK_NAMES: usize = 1_000;
const CONCURRENCY: usize = 64;
/// 10 vouchers × 10,000 buyers.
const VOUCHERS: u64 = 10;
const ORDERS: u64 = VOUCHERS * USERS;

/// Counts processed orders.
#[derive(Clone, Default)]
struct Counter(Arc<std::sync::atomic::AtomicU64>);

#[async_trait]
impl OrderHandler for Counter {
    async fn handle(&self, _order: &Order) -> Result<(), HandlerError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

fn dbsize(server: &RedisServer) -> u64 {
    server.query(&mut redis::cmd("DBSIZE"))
}

fn used_memory(server: &RedisServer) -> u64 {
    let info: String = server.query(redis::cmd("INFO").arg("memory"));
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn report(server: &RedisServer, when: &str) -> u64 {
    let keys = dbsize(server);
    println!(
        "footprint {when}: {keys} keys, used_memory {} KiB",
        used_memory(server) / 1024
    );
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_in_fast_motion_leaves_a_bounded_footprint() {
    let server = RedisServer::start();
    let store = RedisStore::connect_with(RedisOptions::new(server.url()))
        .await
        .unwrap();
    let baseline = report(&server, "at start");
    assert_eq!(baseline, 0);
    let started = std::time::Instant::now();
    // The keyspace's high-water mark, sampled while the day runs.
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let peak = Arc::clone(&peak);
        let url = server.url();
        tokio::spawn(async move {
            let client = redis::Client::open(url).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            loop {
                let keys: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
                peak.fetch_max(keys, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // Sessions: every user logs in twice; half log out one session, the rest idle out.
    let idle = Duration::from_millis(1500);
    let sessions = SessionManager::<JavaUser>::new(
        store.clone(),
        SessionConfig::java_seed()
            .with_idle_ttl(idle)
            .with_index_retention(Duration::from_secs(2)),
    )
    .unwrap();
    let sessions = Arc::new(sessions);
    stream::iter(0..USERS)
        .for_each_concurrent(CONCURRENCY, |id| {
            let sessions = Arc::clone(&sessions);
            async move {
                let user = JavaUser::new(id);
                let uid = UserId::from(id);
                let first = sessions.login(&uid, &user).await.unwrap();
                sessions.login(&uid, &user).await.unwrap();
                if id % 2 == 0 {
                    assert!(sessions.logout(&first).await.unwrap());
                }
            }
        })
        .await;

    // Locks: 1,000 distinct names, each taken and given back.
    let locks = Locks::new(store.clone()).with_options(
        LockOptions::new()
            .with_lease(Duration::from_secs(1))
            .with_fence_ttl(Duration::from_secs(1)),
    );
    stream::iter(0..LOCK_NAMES)
        .for_each_concurrent(CONCURRENCY, |n| {
            let locks = locks.clone();
            async move {
                let guard = locks.try_acquire(&format!("order:{n}")).await.unwrap();
                guard.release().await.unwrap();
            }
        })
        .await;

    // Flash sales: 100,000 orders through the consumer, which trims what it acknowledged.
    let sale = FlashSale::new(store.clone());
    for voucher in 1..=VOUCHERS {
        sale.load(voucher, USERS, SaleWindow::default())
            .await
            .unwrap();
    }
    let processed = Counter::default();
    let consumer = OrderConsumer::new(
        &sale,
        processed.clone(),
        ConsumerOptions::new()
            .with_batch(256)
            .with_block(Duration::from_millis(50))
            .with_trim_every(Some(Duration::from_millis(200))),
    )
    .spawn();
    stream::iter(0..ORDERS)
        .for_each_concurrent(CONCURRENCY, |n| {
            let sale = sale.clone();
            async move {
                let outcome = sale
                    .order(n / USERS + 1, &UserId::from(n % USERS))
                    .await
                    .unwrap();
                assert!(
                    matches!(outcome, OrderOutcome::Ordered { .. }),
                    "{outcome:?}"
                );
            }
        })
        .await;
    assert!(
        eventually(Duration::from_secs(120), async || {
            processed.0.load(std::sync::atomic::Ordering::Relaxed) >= ORDERS
        })
        .await,
        "the consumer processed every order"
    );
    let lengths = sale.stream_lengths(0).await.unwrap();
    println!("footprint: orders stream after processing: {lengths:?}");

    report(&server, "after the load");
    sampler.abort();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "footprint: the day took {:?}; at most {peak} keys at once",
        started.elapsed()
    );

    // Everything expires: nothing of the sessions, indexes or locks stays behind; what
    // remains is the sales' own data (per voucher: stock, buyers, and per shard the trimmed
    // orders stream and its sequence key), bounded by the vouchers configured.
    let sale_keys = || -> u64 {
        let keys: Vec<String> = server.query(redis::cmd("KEYS").arg("keygate:seckill:*"));
        keys.len() as u64
    };
    assert!(
        eventually(Duration::from_secs(30), async || dbsize(&server)
            == sale_keys())
        .await,
        "{} keys outlived their use",
        dbsize(&server) - sale_keys()
    );
    // The consumer trims what it acknowledged on its own schedule (every 200 ms here).
    let orders_left = || -> u64 {
        server.query(redis::cmd("XLEN").arg("keygate:seckill:{keygate:seckill:0}:orders"))
    };
    assert!(
        eventually(Duration::from_secs(10), async || orders_left() <= 256).await,
        "acknowledged orders are trimmed, {} left",
        orders_left()
    );
    consumer.shutdown().await;
    report(&server, "after expiry (only the sales' own keys)");
}
