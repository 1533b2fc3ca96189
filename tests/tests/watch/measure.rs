//! Measurements (ignored by default; run with `cargo test -p keygate-tests --test watch
//! measure -- --ignored --nocapture`): the delay from the ending command to the watcher's
//! completion in another process per reason, loads with and without a watch on every
//! session, and what 10,000 idle watches cost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keygate::{RedisOptions, RedisStore, SessionConfig, SessionManager, Token, UserId};
use keygate_tests::RedisServer;
use keygate_tests::fixtures::JavaUser;

use crate::support::{Target, Watcher, unix_us};

const TRIALS: usize = 1000;
const BATCH: usize = 100;

fn summary(name: &str, mut delays_us: Vec<u128>) {
    delays_us.sort_unstable();
    let at = |q: f64| {
        let i = ((delays_us.len() as f64 - 1.0) * q).round() as usize;
        delays_us.get(i).copied().unwrap_or(0) as f64 / 1000.0
    };
    println!(
        "{name:<28} n={:<5} p50={:>7.2} ms  p99={:>7.2} ms  max={:>7.2} ms",
        delays_us.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

struct Bench {
    server: RedisServer,
    m: SessionManager<JavaUser>,
    capped: SessionManager<JavaUser>,
    raw: redis::aio::MultiplexedConnection,
    next_user: u64,
}

impl Bench {
    async fn login(&mut self) -> (UserId, Token) {
        self.next_user += 1;
        let user = UserId::from(self.next_user);
        let token = self
            .m
            .login(&user, &JavaUser::new(self.next_user))
            .await
            .unwrap();
        (user, token)
    }

    /// Ends the session one way; returns the time just before the ending command (unix µs).
    async fn end(&mut self, how: &str, user: &UserId, token: &Token) -> u128 {
        let session = if how == "rotated" {
            Some(self.m.load(token).await.unwrap().unwrap())
        } else {
            None
        };
        let since = unix_us();
        match how {
            "logged-out" => assert!(self.m.logout(token).await.unwrap()),
            "ended-from-another-device" => {
                assert!(
                    self.m
                        .end_session(user, &self.m.session_id(token))
                        .await
                        .unwrap()
                )
            }
            "logged-out-everywhere" => assert_eq!(self.m.logout_everywhere(user).await.unwrap(), 1),
            "rotated" => {
                self.m
                    .rotate(session.as_ref().unwrap())
                    .await
                    .unwrap()
                    .unwrap();
            }
            "session-limit" => {
                let n: u64 = user.as_str().parse().unwrap();
                self.capped.login(user, &JavaUser::new(n)).await.unwrap();
            }
            "ended-by-operator" => {
                assert_eq!(
                    self.m
                        .operator_end(user, Some(&self.m.session_id(token)))
                        .await
                        .unwrap(),
                    1
                )
            }
            "deleted" => {
                let key = format!("login:token:{}", token.expose());
                let _: i64 = redis::cmd("DEL")
                    .arg(key)
                    .query_async(&mut self.raw)
                    .await
                    .unwrap();
            }
            other => panic!("{other}"),
        }
        since
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: prints delays, costs and memory"]
async fn measure_watch_delays_and_costs() {
    let server = RedisServer::start();
    let store = RedisStore::connect_with(RedisOptions::new(server.url()))
        .await
        .unwrap();
    let raw = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut bench = Bench {
        m: SessionManager::new(store.clone(), SessionConfig::java_seed()).unwrap(),
        capped: SessionManager::new(
            store.clone(),
            SessionConfig::java_seed().with_max_sessions_per_user(1),
        )
        .unwrap(),
        server,
        raw,
        next_user: 0,
    };
    let target = Target::Single(bench.server.url());
    let mut watcher = Watcher::start(&target, &[]).await;
    println!(
        "delay from the ending command to the watcher's completion in another process ({TRIALS} trials each, loopback, debug build):"
    );
    for how in [
        "logged-out",
        "ended-from-another-device",
        "logged-out-everywhere",
        "rotated",
        "session-limit",
        "ended-by-operator",
        "deleted",
    ] {
        let mut delays = Vec::with_capacity(TRIALS);
        for _ in 0..TRIALS / BATCH {
            let mut batch = Vec::with_capacity(BATCH);
            for _ in 0..BATCH {
                let (user, token) = bench.login().await;
                let id = watcher.watch(&token).await;
                batch.push((user, token, id));
            }
            watcher.armed().await;
            let mut sent = Vec::with_capacity(BATCH);
            for (user, token, id) in &batch {
                sent.push((id.clone(), bench.end(how, user, token).await));
            }
            for (id, since) in sent {
                let (reason, at) = watcher
                    .ended(&id, Duration::from_secs(10))
                    .await
                    .expect("ended");
                assert_eq!(reason.as_str(), how);
                delays.push(at.saturating_sub(since));
            }
        }
        summary(how, delays);
    }

    // Expiry: sessions of a 3 s idle TTL, never used again; the delay from the end of
    // their TTL (the login's return plus 3 s) to the completion.
    let short = SessionManager::<JavaUser>::new(
        store.clone(),
        SessionConfig::java_seed().with_idle_ttl(Duration::from_secs(3)),
    )
    .unwrap();
    let mut delays = Vec::with_capacity(TRIALS);
    for _ in 0..TRIALS / 250 {
        let mut batch = Vec::new();
        for _ in 0..250 {
            bench.next_user += 1;
            let n = bench.next_user;
            let token = short
                .login(&UserId::from(n), &JavaUser::new(n))
                .await
                .unwrap();
            let expires = unix_us() + 3_000_000;
            batch.push((watcher.watch(&token).await, expires));
        }
        for (id, expires) in batch {
            let (reason, at) = watcher
                .ended(&id, Duration::from_secs(10))
                .await
                .expect("ended");
            assert_eq!(reason, keygate::EndReason::Expired);
            delays.push(at.saturating_sub(expires));
        }
    }
    summary("expired", delays);

    // Loads ("GET /me") with and without a watch on every session.
    let mut tokens = Vec::new();
    for _ in 0..200 {
        tokens.push(bench.login().await.1);
    }
    let m = Arc::new(bench.m.clone());
    let without = loads(&bench.server, &m, &tokens).await;
    for token in &tokens {
        watcher.watch(token).await;
    }
    watcher.armed().await;
    let with = loads(&bench.server, &m, &tokens).await;
    println!("loads of 200 sessions, 16 concurrent, 5 s: without watches {without}");
    println!("loads of 200 sessions, 16 concurrent, 5 s: every session watched {with}");
    // The loading process with the near cache: hits write nothing, so a watched session's
    // use announces nothing and costs the watcher no check.
    let cached = Arc::new(
        SessionManager::<JavaUser>::new(
            store.clone(),
            SessionConfig::java_seed().with_near_cache(keygate::session::NearCache::new(
                10_000,
                Duration::from_secs(60),
            )),
        )
        .unwrap(),
    );
    for token in &tokens {
        cached.load(token).await.unwrap();
    }
    let (_, _, _, checks_before) = watcher.stats().await;
    let near = loads(&bench.server, &cached, &tokens).await;
    let (_, _, _, checks_after) = watcher.stats().await;
    println!(
        "loads of 200 sessions, 16 concurrent, 5 s: near cache on, every session watched {near}; {} watcher checks",
        checks_after - checks_before
    );
    drop(watcher);
    drop(cached);

    // 10,000 idle watches in a fresh watcher.
    let mut watcher = Watcher::start(&target, &[]).await;
    let (_, token) = bench.login().await;
    watcher.watch(&token).await;
    watcher.armed().await;
    let rss_before = watcher.rss_kb().await;
    let mut idle = Vec::new();
    for _ in 0..10_000 {
        idle.push(bench.login().await.1);
    }
    for token in &idle {
        watcher.watch(token).await;
    }
    assert_eq!(watcher.armed().await, 10_001);
    let rss_after = watcher.rss_kb().await;
    bench.server.reset_stats();
    let window = Duration::from_secs(10);
    watcher.drain(window).await;
    let calls: Vec<(String, u64)> = bench
        .server
        .command_calls()
        .into_iter()
        .filter(|(name, _)| name != "info" && name != "config|resetstat")
        .collect();
    let total: u64 = calls.iter().map(|(_, n)| n).sum();
    println!(
        "10,000 idle watched sessions: {:.2} Redis commands/s over {window:?} ({calls:?}); watcher RSS {rss_before} kB -> {rss_after} kB, {:.0} bytes per watched session",
        total as f64 / window.as_secs_f64(),
        (rss_after.saturating_sub(rss_before) * 1024) as f64 / 10_000.0
    );
}

/// Loads the sessions round-robin from 16 tasks for 5 s: loads/s, p50/p99 latency, and
/// Redis commands per load.
async fn loads(
    server: &RedisServer,
    m: &Arc<SessionManager<JavaUser>>,
    tokens: &[Token],
) -> String {
    let tokens = Arc::new(tokens.to_vec());
    server.reset_stats();
    let until = Instant::now() + Duration::from_secs(5);
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let (m, tokens) = (Arc::clone(m), Arc::clone(&tokens));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = t;
                while Instant::now() < until {
                    let started = Instant::now();
                    assert!(m.load(&tokens[i % tokens.len()]).await.unwrap().is_some());
                    latencies.push(started.elapsed().as_micros());
                    i += 16;
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let calls: u64 = server
        .command_calls()
        .into_iter()
        .filter(|(name, _)| name == "evalsha" || name == "getex")
        .map(|(_, n)| n)
        .sum();
    all.sort_unstable();
    let p = |q: f64| all[((all.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    format!(
        "{:.0} loads/s, p50 {:.2} ms, p99 {:.2} ms, {:.2} script/GETEX calls per load",
        all.len() as f64 / 5.0,
        p(0.5),
        p(0.99),
        calls as f64 / all.len() as f64
    )
}
