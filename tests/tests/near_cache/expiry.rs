//! Idle expiry with the cache: a session used for a while on one instance (and cached on
//! another, idle one), then left alone, must end between `idle` and `idle + touch_every` after its last use, and
//! never before `idle`. Whether it still exists is read with `EXISTS` on an admin
//! connection: a load would be a use.

use std::time::{Duration, Instant};

use keygate::session::LoginOptions;
use keygate::{LoginLimits, SessionConfig, UserId};
use keygate_tests::RedisServer;
use keygate_tests::fixtures::JavaUser;

use crate::support::{admin, instance, key_of, near, shared};

const IDLE: Duration = Duration::from_secs(1);
const TOUCH_EVERY: Duration = Duration::from_millis(300);
/// Pace of the uses while the session is active.
const USE_EVERY: Duration = Duration::from_millis(100);
/// Redis expires a key on access at once; this covers the send of a due refresh and the
/// scheduling of a shared machine.
const MARGIN: Duration = Duration::from_millis(150);

async fn ends_between_idle_and_idle_plus_touch(config: SessionConfig) {
    let _turn = shared().await;
    let server = RedisServer::start();
    let config = config
        .with_idle_ttl(IDLE)
        .with_near_cache(near(TOUCH_EVERY));
    let a = instance(&server, config.clone()).await;
    let b = instance(&server, config).await;
    let mut admin = admin(&server).await;
    let token = a
        .login(&UserId::from(9u64), &JavaUser::new(9))
        .await
        .unwrap();
    let key = key_of(&a, &token);

    // B has it cached too, and is idle from here on.
    assert!(b.load(&token).await.unwrap().is_some());
    // Used on A every 100 ms for 3 × touch_every: hits, and a refresh per touch_every.
    let started = Instant::now();
    let mut last_use = Instant::now();
    let mut uses = 0;
    while started.elapsed() < 3 * TOUCH_EVERY {
        assert!(a.load(&token).await.unwrap().is_some(), "use {uses}");
        last_use = Instant::now();
        uses += 1;
        tokio::time::sleep(USE_EVERY).await;
    }
    let (sa, sb) = (a.near_cache_stats().unwrap(), b.near_cache_stats().unwrap());
    assert!(
        sa.hits > 0 && sa.refreshes > 0,
        "A served hits and refreshed: {sa:?}"
    );

    // Idle: watch the key until it is gone.
    let limit = IDLE + TOUCH_EVERY + MARGIN;
    let gone_after = loop {
        let exists: i64 = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut admin)
            .await
            .unwrap();
        let since = last_use.elapsed();
        if exists == 0 {
            break since;
        }
        assert!(
            since <= limit,
            "still there {since:?} after the last use (bound {limit:?})"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    eprintln!(
        "near cache expiry | idle {IDLE:?}, touch_every {TOUCH_EVERY:?}: gone {gone_after:?} after the last use; A {sa:?}; B {sb:?}"
    );
    assert!(
        gone_after >= IDLE,
        "the session ended {gone_after:?} after its last use, before the idle TTL {IDLE:?}"
    );
    assert!(a.load(&token).await.unwrap().is_none());
    assert!(b.load(&token).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_expiry_with_the_cache_hash() {
    ends_between_idle_and_idle_plus_touch(SessionConfig::java_seed()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_expiry_with_the_cache_json() {
    ends_between_idle_and_idle_plus_touch(SessionConfig::node_seed("app")).await;
}

/// An absolute lifetime ends a session that B serves from memory on time: B's loads (hits,
/// every few milliseconds) stop finding it by the deadline, as Redis does, and nothing
/// finds it afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_absolute_lifetime_ends_a_cached_session() {
    const LIFETIME: Duration = Duration::from_millis(500);
    let _turn = shared().await;
    let server = RedisServer::start();
    let config = SessionConfig::java_seed()
        .with_absolute_lifetime(LIFETIME)
        .with_near_cache(near(Duration::from_secs(60)));
    let a = instance(&server, config.clone()).await;
    let b = instance(&server, config).await;
    let mut admin = admin(&server).await;
    let before_login = Instant::now();
    let token = a
        .login(&UserId::from(5u64), &JavaUser::new(5))
        .await
        .unwrap();
    let key = key_of(&a, &token);
    crate::support::make_hit(&b, &token).await;
    let hits = b.near_cache_stats().unwrap().hits;
    let ended_after = loop {
        let loaded = b.load(&token).await.unwrap();
        let since = before_login.elapsed();
        if loaded.is_none() {
            break since;
        }
        assert!(
            since <= LIFETIME + MARGIN,
            "B still serves the session {since:?} after login (lifetime {LIFETIME:?})"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let stats = b.near_cache_stats().unwrap();
    eprintln!(
        "near cache expiry | lifetime {LIFETIME:?}: B found nothing {ended_after:?} after login; B {stats:?}"
    );
    assert!(
        stats.hits > hits + 10,
        "B served the session from memory meanwhile: {stats:?}"
    );
    // B's deadline is Redis' as B read it (a little early, by a round trip at most).
    assert!(
        ended_after + Duration::from_millis(20) >= LIFETIME,
        "B ended the session {ended_after:?} after login, before its lifetime {LIFETIME:?}"
    );
    // Redis ends it by then too, and nobody finds it afterwards.
    loop {
        let exists: i64 = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut admin)
            .await
            .unwrap();
        if exists == 0 {
            break;
        }
        assert!(
            before_login.elapsed() <= LIFETIME + MARGIN,
            "Redis kept the key"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(a.load(&token).await.unwrap().is_none());
    assert!(b.load(&token).await.unwrap().is_none());
}

/// Login limits: a session whose login chose nothing has a companion key that follows its
/// TTL; the cache's refreshes extend both, so it lives while used and ends as any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_expiry_with_the_cache_under_login_limits() {
    ends_between_idle_and_idle_plus_touch(SessionConfig::java_seed().with_login_limits(
        LoginLimits::new(Duration::from_secs(600), Duration::from_secs(3600)),
    ))
    .await;
}

/// A remember-me session served from memory ends once its companion key (its deadline)
/// is gone: the next refresh finds it gone and drops the entry, and no fill takes the
/// session for one without a deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_session_ends_when_its_companion_is_gone() {
    let _turn = shared().await;
    let server = RedisServer::start();
    let config = SessionConfig::java_seed()
        .with_idle_ttl(IDLE)
        .with_login_limits(LoginLimits::new(
            Duration::from_secs(600),
            Duration::from_secs(3600),
        ))
        .with_near_cache(near(TOUCH_EVERY));
    let a = instance(&server, config.clone()).await;
    let mut admin = admin(&server).await;
    for options in [
        LoginOptions::new().with_lifetime(Duration::from_secs(1800)),
        LoginOptions::new().with_idle_ttl(Duration::from_secs(300)),
        LoginOptions::new(),
    ] {
        let token = a
            .login_with(&UserId::from(7u64), &JavaUser::new(7), &options)
            .await
            .unwrap();
        crate::support::make_hit(&a, &token).await;
        let companion = format!("keygate:deadline:{{{}}}", key_of(&a, &token));
        let removed: i64 = redis::cmd("DEL")
            .arg(&companion)
            .query_async(&mut admin)
            .await
            .unwrap();
        assert_eq!(removed, 1, "{options:?}: the companion existed");
        let removed_at = Instant::now();
        let ended_after = loop {
            if a.load(&token).await.unwrap().is_none() {
                break removed_at.elapsed();
            }
            assert!(
                removed_at.elapsed() <= TOUCH_EVERY + MARGIN,
                "{options:?}: still served {:?} after its companion went",
                removed_at.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        eprintln!("near cache | companion gone: {options:?} ended after {ended_after:?}");
        // Nothing brings it back: a fill (after an outside change) finds it over too.
        let _: i64 = redis::cmd("PEXPIRE")
            .arg(key_of(&a, &token))
            .arg(60_000)
            .query_async(&mut admin)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(a.load(&token).await.unwrap().is_none(), "{options:?}");
    }
}

/// A session too large for the cache (larger than a shard's share of `max_bytes`) is not
/// cached and evicts nothing, and its loads still reset its idle TTL: used every 200 ms
/// for twice the idle TTL, it lives; the small session cached beside it (used alike) stays
/// cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_too_large_to_cache_is_still_kept_alive() {
    let _turn = shared().await;
    let server = RedisServer::start();
    // 16 shards of 1 KiB each.
    let config = SessionConfig::java_seed()
        .with_idle_ttl(IDLE)
        .with_near_cache(near(TOUCH_EVERY).with_max_bytes(16 * 1024));
    let a = instance(&server, config).await;
    let small = a
        .login(&UserId::from(1u64), &JavaUser::new(1))
        .await
        .unwrap();
    crate::support::make_hit(&a, &small).await;
    let mut large_user = JavaUser::new(2);
    large_user.icon = "x".repeat(4096);
    let large = a.login(&UserId::from(2u64), &large_user).await.unwrap();
    let started = Instant::now();
    while started.elapsed() < 2 * IDLE {
        let loaded = a.load(&large).await.unwrap().map(|s| s.into_data());
        assert!(
            loaded.as_ref() == Some(&large_user),
            "used {:?} after login: {}",
            started.elapsed(),
            if loaded.is_some() {
                "other data"
            } else {
                "gone"
            }
        );
        assert!(a.load(&small).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats = a.near_cache_stats().unwrap();
    assert_eq!((stats.entries, stats.evictions), (1, 0), "{stats:?}");
    let hits = stats.hits;
    assert!(a.load(&small).await.unwrap().is_some());
    assert_eq!(a.near_cache_stats().unwrap().hits, hits + 1, "still cached");
}
