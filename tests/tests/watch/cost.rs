//! What watching costs Redis: no command per watched session while nothing changes, one
//! check per change of a watched session (a touch by another instance too), nothing ended
//! by a touch.

use std::time::Duration;

use keygate::{RedisOptions, RedisStore, SessionConfig, SessionManager, UserId};
use keygate_tests::RedisServer;
use keygate_tests::fixtures::JavaUser;

use crate::support::{Target, Watcher};

/// Commands of the test itself, not counted.
const OWN: [&str; 2] = ["info", "config|resetstat"];

/// Calls per command since the last reset, without the test's own.
fn calls(server: &RedisServer) -> Vec<(String, u64)> {
    let mut calls: Vec<(String, u64)> = server
        .command_calls()
        .into_iter()
        .filter(|(name, _)| !OWN.contains(&name.as_str()))
        .collect();
    calls.sort();
    calls
}

fn total(calls: &[(String, u64)]) -> u64 {
    calls.iter().map(|(_, n)| n).sum()
}

fn count(calls: &[(String, u64)], name: &str) -> u64 {
    calls.iter().find(|(n, _)| n == name).map_or(0, |(_, n)| *n)
}

async fn idle_commands(
    server: &RedisServer,
    watcher: &mut Watcher,
    window: Duration,
) -> Vec<(String, u64)> {
    watcher.armed().await;
    server.reset_stats();
    watcher.drain(window).await;
    calls(server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_watches_cost_no_command_and_a_touch_costs_one_check() {
    let server = RedisServer::start();
    let store = RedisStore::connect_with(RedisOptions::new(server.url()))
        .await
        .unwrap();
    let m = SessionManager::<JavaUser>::new(store, SessionConfig::java_seed()).unwrap();
    let mut watcher = Watcher::start(&Target::Single(server.url()), &[]).await;
    let window = Duration::from_secs(3);

    let first = m
        .login(&UserId::from(0u64), &JavaUser::new(0))
        .await
        .unwrap();
    let first_id = watcher.watch(&first).await;
    let one = idle_commands(&server, &mut watcher, window).await;

    for user in 1..1000u64 {
        let token = m
            .login(&UserId::from(user), &JavaUser::new(user))
            .await
            .unwrap();
        watcher.watch(&token).await;
    }
    assert_eq!(watcher.armed().await, 1000);
    let thousand = idle_commands(&server, &mut watcher, window).await;
    // The tracking check only (CLIENT TRACKINGINFO and ROLE, once a second), whatever the
    // number watched.
    assert!(total(&one) <= 2 * 4, "1 watched: {one:?}");
    assert!(
        total(&thousand) <= total(&one) + 2,
        "1,000 watched: {thousand:?} vs {one:?}"
    );
    assert_eq!(count(&thousand, "evalsha"), 0);
    // Only watched keys are tracked (each check reads the session key and its end mark on
    // the watcher's tracking connection): the other sessions' changes are announced to no
    // one.
    for user in 1000..1100u64 {
        m.login(&UserId::from(user), &JavaUser::new(user))
            .await
            .unwrap();
    }
    assert_eq!(server.info_stat("tracking_total_keys"), 2 * 1000);

    // Another instance's request touches a watched session: one check, no end.
    let (_, _, _, checks_before) = watcher.stats().await;
    server.reset_stats();
    assert!(m.load(&first).await.unwrap().is_some());
    assert!(
        keygate_tests::eventually(Duration::from_secs(2), async || {
            watcher.stats().await.3 > checks_before
        })
        .await,
        "the touch was not checked"
    );
    watcher.drain(Duration::from_millis(300)).await;
    let (_, _, pending, checks_after) = watcher.stats().await;
    assert_eq!((pending, checks_after - checks_before), (0, 1));
    let touched = calls(&server);
    // The load is one script call (the hash touch), the watcher's check another (its PTTL
    // and GET run inside it).
    assert_eq!(count(&touched, "evalsha"), 2, "{touched:?}");
    assert_eq!(count(&touched, "pttl"), 1, "{touched:?}");
    assert!(watcher.ended(&first_id, Duration::ZERO).await.is_none());
}
