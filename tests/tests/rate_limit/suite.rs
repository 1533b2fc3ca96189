use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keygate::rate_limit::{Clock, Quota, RateLimitStore, RateLimiter, Window};
use keygate::{RedisOptions, RedisStore};
use keygate_tests::eventually;
use keygate_tests::fixtures::Backend;

/// `n` stores as `n` instances of a service would have: separate connections to the same
/// Redis, or the one memory store.
pub async fn instances(b: &Backend, n: usize) -> Vec<Arc<dyn RateLimitStore>> {
    let mut stores = Vec::new();
    for _ in 0..n {
        match b.server() {
            Some(server) => {
                let store = RedisStore::connect_with(RedisOptions::new(server.url()))
                    .await
                    .unwrap();
                stores.push(Arc::new(store) as Arc<dyn RateLimitStore>);
            }
            None => stores.push(b.rate_limit()),
        }
    }
    stores
}

pub async fn four_instances_hammering_one_subject_get_exactly_the_burst(b: &Backend) {
    // 20 at once, then one every 3 minutes: nothing refills during the test.
    let quota = Quota::per_hour(20);
    let allowed = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for store in instances(b, 4).await {
        let limiter = RateLimiter::from_shared(store, "hammer", quota).unwrap();
        for _ in 0..8 {
            let (limiter, allowed, refused) = (limiter.clone(), allowed.clone(), refused.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..10 {
                    let decision = limiter.check("ip:192.0.2.1").await.unwrap();
                    assert!(!decision.degraded);
                    if decision.allowed {
                        allowed.fetch_add(1, Ordering::SeqCst);
                    } else {
                        assert!(decision.retry_after > Duration::ZERO);
                        refused.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(allowed.load(Ordering::SeqCst), 20);
    assert_eq!(refused.load(Ordering::SeqCst), 300);
}

pub async fn the_refusal_says_exactly_when_to_retry(b: &Backend) {
    let limiter = RateLimiter::from_shared(b.rate_limit(), "exact", Quota::per_minute(3)).unwrap();
    for left in [2, 1, 0] {
        let decision = limiter.check("s").await.unwrap();
        assert!(decision.allowed);
        assert_eq!(decision.remaining, left);
        assert_eq!(decision.limit, 3);
    }
    let refused = limiter.check("s").await.unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    // One request every 20 s: the next is allowed 20 s after the first (less the time
    // the test took), and the whole budget is back 60 s after it.
    assert!(
        refused.retry_after <= Duration::from_secs(20)
            && refused.retry_after > Duration::from_secs(19),
        "{:?}",
        refused.retry_after
    );
    assert!(refused.reset <= Duration::from_secs(60) && refused.reset > Duration::from_secs(59));
    let headers = refused.headers();
    for expected in [
        ("RateLimit-Limit", "3"),
        ("RateLimit-Remaining", "0"),
        ("RateLimit-Reset", "60"),
        ("Retry-After", "20"),
    ] {
        assert!(
            headers.contains(&(expected.0, expected.1.to_owned())),
            "{headers:?}"
        );
    }
}

pub async fn idle_subjects_leave_no_key(b: &Backend) {
    // Burst 2 of 10 per second: a subject's key lives until its budget is full again.
    let quota = Quota::per_second(10).with_burst(2);
    let limiter = RateLimiter::from_shared(b.rate_limit(), "idle", quota).unwrap();
    assert!(limiter.check("a").await.unwrap().allowed);
    assert!(limiter.check("a").await.unwrap().allowed);
    let key = limiter.key("a");
    let pttl = |key: &str| -> i64 {
        match b {
            Backend::Redis(_, server) => keygate_tests::fixtures::pttl(server, key),
            Backend::Cluster(_, cluster) => cluster.query_key(key, redis::cmd("PTTL").arg(key)),
            Backend::Memory(_) => unreachable!("the memory store has no PTTL"),
        }
    };
    match b {
        Backend::Memory(store) => {
            assert_eq!(store.rate_limit_keys(), 1);
            assert!(
                eventually(Duration::from_secs(3), async || store.rate_limit_keys()
                    == 0)
                .await
            );
        }
        _ => {
            let ttl = pttl(&key);
            assert!((1..=200).contains(&ttl), "{ttl}");
            assert!(eventually(Duration::from_secs(3), async || pttl(&key) == -2).await);
        }
    }
    // Once the key is gone the whole burst is back.
    assert_eq!(limiter.check("a").await.unwrap().remaining, 1);
}

pub async fn subjects_with_odd_characters_are_distinct_and_safe(b: &Backend) {
    let limiter = RateLimiter::from_shared(b.rate_limit(), "odd", Quota::per_hour(1)).unwrap();
    let long = "x".repeat(10_000);
    let subjects = [
        "a}b{c* d%",
        "a%7Db%7Bc%2A%20d%25",
        "",
        "{}",
        "*",
        "phone:13800138000",
        "\u{4e2d}\u{6587}\n\r\0",
        long.as_str(),
    ];
    for subject in subjects {
        let key = limiter.key(subject);
        assert!(key.len() <= 13 + 4 + 3 * 128 + 3, "{}", key.len());
        assert_eq!(key.matches('{').count(), 1, "{key}");
        assert_eq!(key.matches('}').count(), 1, "{key}");
        assert!(!key.contains('*') && !key.contains(' '), "{key}");
        assert!(limiter.check(subject).await.unwrap().allowed);
    }
    // Each subject had a budget of its own, now spent.
    for subject in subjects {
        assert!(!limiter.check(subject).await.unwrap().allowed);
    }
    if let Some(server) = b.server() {
        let keys: Vec<String> = server.query(redis::cmd("KEYS").arg("keygate:rate:*"));
        assert_eq!(keys.len(), subjects.len());
    }
}

pub async fn limiters_with_different_names_do_not_share_budgets(b: &Backend) {
    let quota = Quota::per_hour(1);
    let sms = RateLimiter::from_shared(b.rate_limit(), "sms", quota).unwrap();
    let login = RateLimiter::from_shared(b.rate_limit(), "login", quota).unwrap();
    assert!(sms.check("x").await.unwrap().allowed);
    assert!(!sms.check("x").await.unwrap().allowed);
    assert!(login.check("x").await.unwrap().allowed);
    assert!(RateLimiter::from_shared(b.rate_limit(), "", quota).is_err());
    assert!(RateLimiter::from_shared(b.rate_limit(), "n", Quota::per_hour(0)).is_err());
}

pub async fn four_instances_hammering_one_subject_get_exactly_the_window_limit(b: &Backend) {
    // At most 20 in any minute: the test takes far less than one.
    let window = Window::per_minute(20);
    let allowed = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for store in instances(b, 4).await {
        let limiter = RateLimiter::from_shared(store, "hammer-window", window).unwrap();
        for _ in 0..8 {
            let (limiter, allowed, refused) = (limiter.clone(), allowed.clone(), refused.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..10 {
                    let decision = limiter.check("ip:192.0.2.1").await.unwrap();
                    assert!(!decision.degraded);
                    assert_eq!(decision.limit, 20);
                    if decision.allowed {
                        allowed.fetch_add(1, Ordering::SeqCst);
                    } else {
                        assert!(decision.retry_after > Duration::ZERO);
                        assert!(decision.retry_after <= Duration::from_secs(60));
                        refused.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(allowed.load(Ordering::SeqCst), 20);
    assert_eq!(refused.load(Ordering::SeqCst), 300);
    // The log holds the admitted requests only: refusals are not recorded.
    let key = RateLimiter::from_shared(b.rate_limit(), "hammer-window", window)
        .unwrap()
        .key("ip:192.0.2.1");
    let entries: Option<u64> = match b {
        Backend::Redis(_, server) => Some(server.query(redis::cmd("ZCARD").arg(&key))),
        Backend::Cluster(_, cluster) => {
            Some(cluster.query_key(&key, redis::cmd("ZCARD").arg(&key)))
        }
        Backend::Memory(_) => None,
    };
    if let Some(entries) = entries {
        assert_eq!(entries, 20);
    }
}

pub async fn the_window_refusal_says_when_the_oldest_leaves(b: &Backend) {
    let limiter =
        RateLimiter::from_shared(b.rate_limit(), "exact-window", Window::per_minute(3)).unwrap();
    for left in [2, 1, 0] {
        let decision = limiter.check("s").await.unwrap();
        assert!(decision.allowed);
        assert_eq!(decision.remaining, left);
        assert_eq!(decision.limit, 3);
        assert_eq!(decision.reset, Duration::from_secs(60));
    }
    let refused = limiter.check("s").await.unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    // All three went through at once: none may follow until the first is a minute old
    // (less the time the test took); a GCRA quota would allow one after 20 s.
    assert!(
        refused.retry_after <= Duration::from_secs(60)
            && refused.retry_after > Duration::from_secs(59),
        "{:?}",
        refused.retry_after
    );
    assert!(refused.reset <= Duration::from_secs(60) && refused.reset > Duration::from_secs(59));
    let headers = refused.headers();
    for expected in [
        ("RateLimit-Limit", "3"),
        ("RateLimit-Remaining", "0"),
        ("RateLimit-Reset", "60"),
        ("Retry-After", "60"),
    ] {
        assert!(
            headers.contains(&(expected.0, expected.1.to_owned())),
            "{headers:?}"
        );
    }
}

/// The rolling property, on the store's own clock (each reply says when it decided): a
/// request is admitted exactly when fewer than `limit` admitted requests lie in the
/// `period` before it, and a refusal's wait is exactly until the oldest of them leaves.
pub async fn the_window_rolls_exactly(b: &Backend) {
    let store = b.rate_limit();
    let params = Window::new(3, Duration::from_millis(400)).params();
    let key = RateLimiter::from_shared(store.clone(), "rolling", Window::per_second(1))
        .unwrap()
        .key("s");
    let mut admitted: Vec<u64> = Vec::new();
    let mut decisions = 0;
    let clock = Clock::system();
    // Bursts of 5 every 70 ms for about 1.5 s: windows fill, empty and fill again.
    for _ in 0..20 {
        for _ in 0..5 {
            let reply = store.window(&key, params, &clock).await.unwrap();
            let now = reply.now_us;
            let in_window: Vec<u64> = admitted
                .iter()
                .copied()
                .filter(|&t| t > now - params.period_us)
                .collect();
            assert_eq!(
                reply.allowed,
                (in_window.len() as u64) < params.limit,
                "decision {decisions}"
            );
            if reply.allowed {
                assert_eq!(reply.remaining, params.limit - in_window.len() as u64 - 1);
                admitted.push(now);
            } else {
                assert_eq!(
                    reply.retry_after_us,
                    in_window[0] + params.period_us - now,
                    "decision {decisions}"
                );
            }
            decisions += 1;
        }
        // Sleeping here schedules the arrivals; nothing waits for an event.
        tokio::time::sleep(Duration::from_millis(70)).await;
    }
    // Admissions spread over several windows, each never above the limit.
    assert!(admitted.len() >= 9, "{}", admitted.len());
}

pub async fn idle_windows_leave_no_key(b: &Backend) {
    let window = Window::new(2, Duration::from_millis(200));
    let limiter = RateLimiter::from_shared(b.rate_limit(), "idle-window", window).unwrap();
    assert!(limiter.check("a").await.unwrap().allowed);
    assert!(limiter.check("a").await.unwrap().allowed);
    assert!(!limiter.check("a").await.unwrap().allowed);
    let key = limiter.key("a");
    let pttl = |key: &str| -> i64 {
        match b {
            Backend::Redis(_, server) => keygate_tests::fixtures::pttl(server, key),
            Backend::Cluster(_, cluster) => cluster.query_key(key, redis::cmd("PTTL").arg(key)),
            Backend::Memory(_) => unreachable!("the memory store has no PTTL"),
        }
    };
    match b {
        Backend::Memory(store) => {
            assert_eq!(store.rate_limit_keys(), 1);
            assert!(
                eventually(Duration::from_secs(3), async || store.rate_limit_keys()
                    == 0)
                .await
            );
        }
        _ => {
            let ttl = pttl(&key);
            assert!((1..=200).contains(&ttl), "{ttl}");
            assert!(eventually(Duration::from_secs(3), async || pttl(&key) == -2).await);
        }
    }
    assert_eq!(limiter.check("a").await.unwrap().remaining, 1);
}
