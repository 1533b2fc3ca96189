use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keygate::rate_limit::{Clock, FailureMode, Limit, Quota, RateLimitStore, RateLimiter, Window};
use keygate::web::RateLimitPolicy;
use keygate::{MemoryStore, RedisOptions, RedisStore};
use keygate_tests::RedisServer;

async fn store(server: &RedisServer) -> RedisStore {
    RedisStore::connect_with(
        RedisOptions::new(server.url()).with_command_timeout(Duration::from_millis(500)),
    )
    .await
    .unwrap()
}

fn server_micros(server: &RedisServer) -> u64 {
    let (secs, micros): (u64, u64) = server.query(&mut redis::cmd("TIME"));
    secs * 1_000_000 + micros
}

fn system_micros() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros(),
    )
    .unwrap()
}

/// The script and the memory backend make the same decisions for the same arrivals: the
/// arrivals are driven on Redis (which answers the server time it decided at), then
/// replayed on the memory store with a clock that reads exactly those times.
#[tokio::test]
async fn memory_and_redis_agree_on_a_sequence_of_arrivals() {
    let server = RedisServer::start();
    let redis = store(&server).await;
    // One request every 100 ms, 3 at once.
    let params = Quota::per_second(10).with_burst(3).params();
    let key = "keygate:rate:{agree:s}";
    // The gaps between arrivals, in ms: bursts, waits shorter and longer than the interval.
    let gaps = [
        0, 0, 0, 0, 0, 30, 40, 60, 0, 0, 120, 0, 0, 0, 250, 0, 0, 0, 0, 90, 10, 500, 0, 0, 0, 0,
    ];
    let mut replies = Vec::new();
    for gap in gaps {
        // Sleeping here schedules the arrivals; nothing waits for an event.
        tokio::time::sleep(Duration::from_millis(gap)).await;
        replies.push(redis.gcra(key, params, &Clock::system()).await.unwrap());
    }
    assert!(replies.iter().any(|r| r.allowed) && replies.iter().any(|r| !r.allowed));

    let memory = MemoryStore::new();
    let now = Arc::new(AtomicU64::new(0));
    let clock = {
        let now = now.clone();
        Clock::from_fn(move || now.load(Ordering::SeqCst))
    };
    for (i, reply) in replies.iter().enumerate() {
        now.store(reply.now_us, Ordering::SeqCst);
        let replayed = memory.gcra(key, params, &clock).await.unwrap();
        assert_eq!(&replayed, reply, "arrival {i}");
    }
}

/// The same for the sliding window: the script and the memory backend keep the same log
/// and answer the same decisions, waits and resets.
#[tokio::test]
async fn memory_and_redis_agree_on_a_sequence_of_arrivals_in_a_window() {
    let server = RedisServer::start();
    let redis = store(&server).await;
    // At most 3 in any 300 ms.
    let params = Window::new(3, Duration::from_millis(300)).params();
    let key = "keygate:rate:{agree-window:s}";
    let gaps = [
        0, 0, 0, 0, 0, 30, 40, 60, 0, 0, 120, 0, 0, 0, 250, 0, 0, 0, 0, 90, 10, 500, 0, 0, 0, 0,
        100, 100, 100, 100, 0, 0,
    ];
    let mut replies = Vec::new();
    for gap in gaps {
        // Sleeping here schedules the arrivals; nothing waits for an event.
        tokio::time::sleep(Duration::from_millis(gap)).await;
        replies.push(redis.window(key, params, &Clock::system()).await.unwrap());
    }
    assert!(replies.iter().any(|r| r.allowed) && replies.iter().any(|r| !r.allowed));

    let memory = MemoryStore::new();
    let now = Arc::new(AtomicU64::new(0));
    let clock = {
        let now = now.clone();
        Clock::from_fn(move || now.load(Ordering::SeqCst))
    };
    for (i, reply) in replies.iter().enumerate() {
        now.store(reply.now_us, Ordering::SeqCst);
        let replayed = memory.window(key, params, &clock).await.unwrap();
        assert_eq!(&replayed, reply, "arrival {i}");
    }
}

/// An instance whose clock is minutes off decides as the others: the script reads the
/// server's clock, not the application's.
#[tokio::test]
async fn instances_with_skewed_clocks_make_the_same_decisions() {
    let server = RedisServer::start();
    let quota = Quota::per_hour(4);
    let ahead = RateLimiter::new(store(&server).await, "skew", quota)
        .unwrap()
        .with_clock(Clock::from_fn(|| system_micros() + 10 * 60 * 1_000_000));
    let behind = RateLimiter::new(store(&server).await, "skew", quota)
        .unwrap()
        .with_clock(Clock::from_fn(|| system_micros() - 10 * 60 * 1_000_000));
    let mut allowed = 0;
    for i in 0..10 {
        let limiter = if i % 2 == 0 { &ahead } else { &behind };
        let decision = limiter.check("s").await.unwrap();
        if decision.allowed {
            allowed += 1;
        } else {
            // 15 minutes per request: the wait is measured on the server's clock.
            assert!(decision.retry_after > Duration::from_secs(14 * 60));
            assert!(decision.retry_after <= Duration::from_secs(15 * 60));
        }
    }
    assert_eq!(allowed, 4);
    // The stored TAT is on the server's clock: one hour (4 × 15 min) ahead of it.
    let tat: u64 = server.query(redis::cmd("GET").arg(ahead.key("s")));
    let now = server_micros(&server);
    let ahead_us = tat - now;
    assert!(
        (3_590_000_000..=3_600_000_000).contains(&ahead_us),
        "{ahead_us}"
    );
}

/// The same for the sliding window: the log holds the server's times.
#[tokio::test]
async fn instances_with_skewed_clocks_make_the_same_window_decisions() {
    let server = RedisServer::start();
    let window = Window::per_hour(4);
    let ahead = RateLimiter::new(store(&server).await, "skew-window", window)
        .unwrap()
        .with_clock(Clock::from_fn(|| system_micros() + 10 * 60 * 1_000_000));
    let behind = RateLimiter::new(store(&server).await, "skew-window", window)
        .unwrap()
        .with_clock(Clock::from_fn(|| system_micros() - 10 * 60 * 1_000_000));
    let mut allowed = 0;
    for i in 0..10 {
        let limiter = if i % 2 == 0 { &ahead } else { &behind };
        let decision = limiter.check("s").await.unwrap();
        if decision.allowed {
            allowed += 1;
        } else {
            // Not before the first admission is an hour old, on the server's clock.
            assert!(decision.retry_after > Duration::from_secs(3590));
            assert!(decision.retry_after <= Duration::from_secs(3600));
        }
    }
    assert_eq!(allowed, 4);
    let scores: Vec<(String, u64)> = server.query(
        redis::cmd("ZRANGE")
            .arg(ahead.key("s"))
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES"),
    );
    assert_eq!(scores.len(), 4);
    let now = server_micros(&server);
    for (_, at) in scores {
        assert!(now - at < 10_000_000, "{at} vs {now}");
    }
}

/// Redis down: a fail-open limiter allows (degraded), a fail-closed one fails with a
/// backend error (503); both recover when Redis is back.
#[tokio::test]
async fn redis_down_fails_open_or_closed_as_configured() {
    fails_open_or_closed(Quota::per_hour(1).into()).await;
}

/// The same with a sliding window.
#[tokio::test]
async fn redis_down_fails_open_or_closed_as_configured_in_a_window() {
    fails_open_or_closed(Window::per_hour(1).into()).await;
}

async fn fails_open_or_closed(limit: Limit) {
    let mut server = RedisServer::start();
    let redis = Arc::new(store(&server).await);
    let open = RateLimiter::from_shared(redis.clone(), "down", limit)
        .unwrap()
        .with_failure_mode(FailureMode::Open);
    let closed = RateLimiter::from_shared(redis.clone(), "down", limit)
        .unwrap()
        .with_failure_mode(FailureMode::Closed);
    assert!(open.check("a").await.unwrap().allowed);
    assert!(!closed.check("a").await.unwrap().allowed);

    server.stop();
    let decision = open.check("a").await.unwrap();
    assert!(decision.allowed && decision.degraded);
    // The refusal the closed limiter holds is still true: it needs no store.
    let held = closed.check("a").await.unwrap();
    assert!(!held.allowed && !held.degraded);
    let error = closed.check("c").await.unwrap_err();
    assert!(error.is_backend(), "{error}");
    assert_eq!(error.status(), 503);
    let subject = Some("c".to_owned());
    let rejection = RateLimitPolicy::new(closed.clone())
        .admit(subject.clone())
        .await
        .unwrap_err();
    assert_eq!(rejection.status, 503);
    assert!(
        RateLimitPolicy::new(open.clone())
            .admit(subject)
            .await
            .is_ok()
    );

    server.restart();
    let back = keygate_tests::eventually(Duration::from_secs(5), async || {
        closed.check("b").await.is_ok()
    })
    .await;
    assert!(back);
    assert!(!open.check("b").await.unwrap().allowed);
}

/// A frozen Redis: the check fails after the command timeout, not later.
#[tokio::test]
async fn a_frozen_redis_is_bounded_by_the_command_timeout() {
    let server = RedisServer::start();
    let limiter = RateLimiter::new(store(&server).await, "frozen", Quota::per_hour(1)).unwrap();
    assert!(limiter.check("a").await.unwrap().allowed);
    server.pause();
    let started = std::time::Instant::now();
    let error = limiter.check("a").await.unwrap_err();
    let took = started.elapsed();
    server.resume();
    assert!(error.is_backend());
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

/// One script call (one round trip) per decision asked of the store (no refusal held), and
/// the keys are the documented ones.
#[tokio::test]
async fn one_script_call_per_decision() {
    let server = RedisServer::start();
    let limiter = RateLimiter::new(store(&server).await, "calls", Quota::per_minute(5))
        .unwrap()
        .with_refusal_cache(0);
    limiter.check("warm").await.unwrap();
    server.reset_stats();
    for _ in 0..7 {
        limiter.check("ip:198.51.100.7").await.unwrap();
    }
    let calls = keygate_tests::fixtures::commands_since_reset(&server);
    // Inside the script: TIME, GET, and SET for the 5 allowed requests.
    let expected: Vec<(String, u64)> = [("evalsha", 7), ("get", 7), ("set", 5), ("time", 7)]
        .into_iter()
        .map(|(name, n)| (name.to_owned(), n))
        .collect();
    assert_eq!(calls, expected);
    assert_eq!(
        limiter.key("ip:198.51.100.7"),
        "keygate:rate:{calls:ip:198.51.100.7}"
    );
}

/// The window's script: one call per decision asked of the store (no refusal held);
/// refusals read the log and write nothing.
#[tokio::test]
async fn one_script_call_per_window_decision() {
    let server = RedisServer::start();
    let limiter = RateLimiter::new(store(&server).await, "calls", Window::per_minute(5))
        .unwrap()
        .with_refusal_cache(0);
    limiter.check("warm").await.unwrap();
    server.reset_stats();
    for _ in 0..7 {
        limiter.check("ip:198.51.100.7").await.unwrap();
    }
    let calls = keygate_tests::fixtures::commands_since_reset(&server);
    // Inside the script: TIME, a trim and a count each time; ZADD and PEXPIRE for the 5
    // admitted; for each of the 2 refused, the entry that makes room and the newest.
    let expected: Vec<(String, u64)> = [
        ("evalsha", 7),
        ("pexpire", 5),
        ("time", 7),
        ("zadd", 5),
        ("zcard", 7),
        ("zrange", 4),
        ("zremrangebyscore", 7),
    ]
    .into_iter()
    .map(|(name, n)| (name.to_owned(), n))
    .collect();
    assert_eq!(calls, expected);
    let entries: u64 = server.query(redis::cmd("ZCARD").arg(limiter.key("ip:198.51.100.7")));
    assert_eq!(entries, 5);
}

/// Arrivals decided together in one script call (a subject's checks that overlapped on
/// an instance) get what that many calls at one instant would get: replayed one by one on
/// the memory store with its clock stopped at the server's time, the decisions are the
/// same.
#[tokio::test]
async fn arrivals_decided_together_are_that_many_calls_at_one_instant() {
    let server = RedisServer::start();
    let redis = store(&server).await;
    let quota = Quota::per_second(10).with_burst(3).params();
    let window = Window::new(3, Duration::from_millis(300)).params();
    let memory = MemoryStore::new();
    let now = Arc::new(AtomicU64::new(0));
    let clock = {
        let now = now.clone();
        Clock::from_fn(move || now.load(Ordering::SeqCst))
    };
    // Gaps (ms) before each batch, and its arrivals: a flood, a trickle, a refill.
    let batches = [(0, 5), (0, 1), (120, 2), (0, 4), (350, 7), (90, 1), (0, 3)];
    for (gap, arrivals) in batches {
        // Sleeping here schedules the arrivals; nothing waits for an event.
        tokio::time::sleep(Duration::from_millis(gap)).await;
        for kind in ["quota", "window"] {
            let key = format!("{{together}}:{kind}");
            let together = match kind {
                "quota" => {
                    redis
                        .gcra_arrivals(&key, quota, &Clock::system(), arrivals)
                        .await
                }
                _ => {
                    redis
                        .window_arrivals(&key, window, &Clock::system(), arrivals)
                        .await
                }
            }
            .unwrap();
            assert_eq!(together.len(), arrivals as usize);
            now.store(together[0].now_us, Ordering::SeqCst);
            for (i, reply) in together.iter().enumerate() {
                let one = match kind {
                    "quota" => memory.gcra(&key, quota, &clock).await,
                    _ => memory.window(&key, window, &clock).await,
                }
                .unwrap();
                assert_eq!(&one, reply, "{kind}: {arrivals} together, arrival {i}");
            }
        }
    }
}

/// Checks of 64 subjects at once, two each, on one instance: each subject is allowed
/// exactly once (a quota of one an hour), and subjects never share a call (one
/// subject's flood must not hold up the others): two calls per subject. The first calls
/// are held (the server frozen) until every check has begun.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_of_many_subjects_at_once_are_each_exact_and_apart() {
    let server = RedisServer::start();
    let limiter = RateLimiter::new(store(&server).await, "many", Quota::per_hour(1)).unwrap();
    limiter.check("warm").await.unwrap();
    server.reset_stats();
    server.pause();
    let begun = Arc::new(AtomicU64::new(0));
    let mut checks = Vec::new();
    for i in 0..128 {
        let (limiter, begun) = (limiter.clone(), begun.clone());
        checks.push(tokio::spawn(async move {
            begun.fetch_add(1, Ordering::SeqCst);
            (
                i % 64,
                limiter
                    .check(&format!("ip:192.0.2.{}", i % 64))
                    .await
                    .unwrap(),
            )
        }));
    }
    while begun.load(Ordering::SeqCst) < 128 {
        tokio::task::yield_now().await;
    }
    server.resume();
    let mut allowed = [0u32; 64];
    for check in checks {
        let (subject, decision) = check.await.unwrap();
        assert!(!decision.degraded);
        allowed[subject] += u32::from(decision.allowed);
    }
    assert_eq!(allowed, [1; 64], "each subject once");
    let calls = keygate_tests::fixtures::commands_since_reset(&server);
    let evalsha = calls
        .iter()
        .find(|(name, _)| name == "evalsha")
        .map_or(0, |(_, n)| *n);
    // A subject's second check joins no call of another subject's: it waits for its
    // first check's call, or comes after it.
    assert_eq!(evalsha, 128, "{calls:?}");
}

/// 64 checks of one subject at once on one instance: exactly the burst is allowed, and
/// they share script calls. The first call is held (the server frozen) until every check
/// has begun, so the other 63 queue behind it and go together in the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_subject_costs_one_call_per_round_trip() {
    let server = RedisServer::start();
    for (name, limit) in [
        ("flood-quota", Limit::from(Quota::per_hour(20))),
        ("flood-window", Limit::from(Window::per_hour(20))),
    ] {
        let limiter = RateLimiter::new(store(&server).await, name, limit).unwrap();
        limiter.check("warm").await.unwrap();
        server.reset_stats();
        server.pause();
        let begun = Arc::new(AtomicU64::new(0));
        let mut checks = Vec::new();
        for _ in 0..64 {
            let (limiter, begun) = (limiter.clone(), begun.clone());
            checks.push(tokio::spawn(async move {
                begun.fetch_add(1, Ordering::SeqCst);
                limiter.check("ip:192.0.2.9").await.unwrap()
            }));
        }
        while begun.load(Ordering::SeqCst) < 64 {
            tokio::task::yield_now().await;
        }
        server.resume();
        let mut allowed = 0;
        for check in checks {
            let decision = check.await.unwrap();
            assert!(!decision.degraded);
            allowed += u64::from(decision.allowed);
        }
        assert_eq!(allowed, 20, "{limit:?}");
        let calls = keygate_tests::fixtures::commands_since_reset(&server);
        let evalsha = calls
            .iter()
            .find(|(name, _)| name == "evalsha")
            .map_or(0, |(_, n)| *n);
        // The held call and one for the 63 behind it (a check still on its way to the
        // queue when the server thawed may make a third).
        assert!((2..=3).contains(&evalsha), "{limit:?}: {calls:?}");
    }
}

/// The script calls since the last reset.
fn evalsha(server: &RedisServer) -> u64 {
    keygate_tests::fixtures::commands_since_reset(server)
        .iter()
        .find(|(name, _)| name == "evalsha")
        .map_or(0, |(_, n)| *n)
}

/// A refusal holds until its retry-after (a quota's and a window's state only grows
/// until then): a subject that keeps sending over its limit costs no script call until
/// the wait is over, and then one. The held refusals say what Redis would: no budget
/// left, the wait and the reset counting down.
#[tokio::test]
async fn a_refused_subject_costs_no_script_call_until_its_retry_after() {
    let server = RedisServer::start();
    let period = Duration::from_millis(800);
    for (name, limit) in [
        ("held-quota", Limit::from(Quota::new(1, period))),
        ("held-window", Limit::from(Window::new(1, period))),
    ] {
        let limiter = RateLimiter::new(store(&server).await, name, limit).unwrap();
        assert!(limiter.check("s").await.unwrap().allowed);
        let first = limiter.check("s").await.unwrap();
        assert!(!first.allowed, "{name}");
        server.reset_stats();
        let mut last = first;
        for _ in 0..50 {
            let held = limiter.check("s").await.unwrap();
            assert!(!held.allowed && !held.degraded, "{name}: {held:?}");
            assert_eq!((held.limit, held.remaining), (1, 0), "{name}");
            assert!(
                held.retry_after > Duration::ZERO && held.retry_after <= last.retry_after,
                "{name}: {held:?} after {last:?}"
            );
            assert!(
                held.reset >= held.retry_after && held.reset <= last.reset,
                "{name}: {held:?} after {last:?}"
            );
            last = held;
        }
        assert_eq!(evalsha(&server), 0, "{name}: held refusals cost no call");
        // Sleeping here waits out the refusal the limiter holds (and the time Redis
        // decided after the limiter sent the call, which it cannot know).
        tokio::time::sleep(last.retry_after + Duration::from_millis(50)).await;
        assert!(limiter.check("s").await.unwrap().allowed, "{name}");
        assert_eq!(evalsha(&server), 1, "{name}: then one call");
    }
}

/// The refusals a limiter holds are bounded (`with_refusal_cache`): past the bound the
/// least recently used goes first, and a subject it forgot costs a call again.
#[tokio::test]
async fn refusals_held_are_bounded_the_least_recent_going_first() {
    let server = RedisServer::start();
    let limiter = RateLimiter::new(store(&server).await, "bounded", Quota::per_hour(1))
        .unwrap()
        .with_refusal_cache(2);
    for subject in ["a", "b", "c"] {
        assert!(limiter.check(subject).await.unwrap().allowed);
        assert!(!limiter.check(subject).await.unwrap().allowed);
    }
    server.reset_stats();
    for subject in ["c", "b"] {
        assert!(!limiter.check(subject).await.unwrap().allowed);
    }
    assert_eq!(evalsha(&server), 0, "b and c are held");
    assert!(!limiter.check("a").await.unwrap().allowed);
    assert_eq!(evalsha(&server), 1, "a was forgotten");
    // Holding a again forgot c, the least recently used.
    assert!(!limiter.check("b").await.unwrap().allowed);
    assert_eq!(evalsha(&server), 1);
    assert!(!limiter.check("c").await.unwrap().allowed);
    assert_eq!(evalsha(&server), 2);

    let unheld = RateLimiter::new(store(&server).await, "unheld", Quota::per_hour(1))
        .unwrap()
        .with_refusal_cache(0);
    assert!(unheld.check("a").await.unwrap().allowed);
    server.reset_stats();
    for _ in 0..3 {
        assert!(!unheld.check("a").await.unwrap().allowed);
    }
    assert_eq!(evalsha(&server), 3, "0 holds nothing");
    assert_eq!(keygate::rate_limit::DEFAULT_REFUSAL_CACHE, 10_000);
}

/// Checks of a subject queued behind a call that comes back refused are refused with it,
/// without a call of their own: the held refusal answers them. The call is held (the
/// server frozen) until every check has begun.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_queued_behind_a_refused_call_cost_no_call_of_their_own() {
    let server = RedisServer::start();
    let limiter = RateLimiter::new(store(&server).await, "queued", Quota::per_hour(1)).unwrap();
    assert!(limiter.check("s").await.unwrap().allowed);
    server.reset_stats();
    server.pause();
    let begun = Arc::new(AtomicU64::new(0));
    let mut checks = Vec::new();
    for _ in 0..32 {
        let (limiter, begun) = (limiter.clone(), begun.clone());
        checks.push(tokio::spawn(async move {
            begun.fetch_add(1, Ordering::SeqCst);
            limiter.check("s").await.unwrap()
        }));
    }
    while begun.load(Ordering::SeqCst) < 32 {
        tokio::task::yield_now().await;
    }
    server.resume();
    for check in checks {
        let decision = check.await.unwrap();
        assert!(!decision.allowed && !decision.degraded);
        assert!(decision.retry_after > Duration::from_secs(3590));
    }
    assert_eq!(evalsha(&server), 1);
}
