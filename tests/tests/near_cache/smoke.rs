use std::time::Duration;

use keygate::{SessionConfig, UserId};
use keygate_tests::RedisServer;
use keygate_tests::fixtures::{Authorization, JavaUser, commands_since_reset};

use crate::support::{instance, near};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_costs_no_command_and_a_logout_elsewhere_ends_it() {
    let _turn = crate::support::shared().await;
    let server = RedisServer::start();
    let config = SessionConfig::java_seed().with_near_cache(near(Duration::from_secs(60)));
    let a = instance(&server, config.clone()).await;
    let b = instance(&server, config).await;
    let user = JavaUser::new(7);
    let token = a.login(&UserId::from(7u64), &user).await.unwrap();
    // The fill found less than the idle TTL left (login set exactly that) and queued a
    // refresh, sent in the background: it is not a hit's cost, so let it land first. A
    // fill can be spoiled by the push of A's login arriving after it began (not cached,
    // nothing queued): load until one is cached.
    let refreshed = crate::support::poll_until(Duration::from_secs(5), async || {
        assert_eq!(b.load(&token).await.unwrap().unwrap().id, 7);
        b.near_cache_stats().unwrap().refreshes >= 1
    })
    .await;
    assert!(refreshed.is_some(), "{:?}", b.near_cache_stats());
    server.reset_stats();
    for _ in 0..100 {
        assert_eq!(b.load(&token).await.unwrap().unwrap().id, 7);
    }
    let calls = commands_since_reset(&server);
    let client_cmds: u64 = calls
        .iter()
        .filter(|(name, _)| !name.starts_with("client") && name != "role")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(client_cmds, 0, "{calls:?}");
    let stats = b.near_cache_stats().unwrap();
    assert!(stats.hits >= 100, "{stats:?}");
    a.logout(&token).await.unwrap();
    let took = crate::support::wait_for(Duration::from_secs(1), || {
        b.near_cache_stats().unwrap().entries == 0
    })
    .await;
    assert!(took.is_some());
    assert!(b.load(&token).await.unwrap().is_none());
}

/// Behind a load balancer, one user's requests alternate between instances. A hot session
/// must then still be served from memory on both: neither instance's loads may keep
/// dropping the other's entry. Loads alternate A, B, A, B… a millisecond apart (a busy
/// user's pace; room for pushes to arrive), and at least 90% of them must be hits.
async fn alternating_loads_are_hits(config: SessionConfig) {
    let _turn = crate::support::shared().await;
    let server = RedisServer::start();
    let a = instance(&server, config.clone()).await;
    let b = instance(&server, config).await;
    let token = a
        .login(&UserId::from(7u64), &JavaUser::new(7))
        .await
        .unwrap();
    const ROUNDS: u64 = 200;
    for _ in 0..ROUNDS {
        for m in [&a, &b] {
            assert_eq!(m.load(&token).await.unwrap().unwrap().id, 7);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (sa, sb) = (a.near_cache_stats().unwrap(), b.near_cache_stats().unwrap());
    let hits = sa.hits + sb.hits;
    eprintln!(
        "near cache alternating loads | {hits} hits of {} loads; A {sa:?}; B {sb:?}",
        2 * ROUNDS
    );
    assert!(
        hits * 10 >= 2 * ROUNDS * 9,
        "{hits} hits of {} loads alternating between two instances",
        2 * ROUNDS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_alternating_between_instances_are_hits_json() {
    alternating_loads_are_hits(
        SessionConfig::node_seed("app").with_near_cache(near(Duration::from_secs(60))),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_alternating_between_instances_are_hits_hash() {
    alternating_loads_are_hits(
        SessionConfig::java_seed().with_near_cache(near(Duration::from_secs(60))),
    )
    .await;
}

/// Requests that hit share the session the first one decoded, and a change made anywhere
/// is never served from what was decoded before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_share_one_decoded_session_until_it_changes() {
    let _turn = crate::support::shared().await;
    let server = RedisServer::start();
    let config = SessionConfig::java_seed().with_near_cache(near(Duration::from_secs(60)));
    let a = instance(&server, config.clone()).await;
    let b = instance(&server, config).await;
    let token = a
        .login(&UserId::from(7u64), &JavaUser::new(7))
        .await
        .unwrap();
    let gate = keygate::Keygate::new(b.clone());
    let request = Authorization::new(token.expose());
    let shared = crate::support::poll_until(Duration::from_secs(5), async || {
        let first = gate.resolve(&request).await.unwrap();
        let second = gate.resolve(&request).await.unwrap();
        std::ptr::eq(first.session(), second.session())
    })
    .await;
    assert!(shared.is_some(), "{:?}", b.near_cache_stats());
    // A caller of `load` gets a session of its own, with the same data.
    let owned = b.load(&token).await.unwrap().unwrap();
    assert_eq!(*owned.data(), JavaUser::new(7));
    let before = gate.resolve(&request).await.unwrap();
    // Changed by the other instance: the push drops the entry, and with it what was
    // decoded from it.
    let renamed = JavaUser {
        nick_name: "renamed".into(),
        ..JavaUser::new(7)
    };
    assert!(a.replace(&token, &renamed).await.unwrap());
    let seen = crate::support::poll_until(Duration::from_secs(1), async || {
        gate.resolve(&request).await.unwrap().nick_name == "renamed"
    })
    .await;
    assert!(seen.is_some());
    assert_eq!(before.nick_name, JavaUser::new(7).nick_name);
    let after = gate.resolve(&request).await.unwrap();
    assert!(!std::ptr::eq(before.session(), after.session()));
    assert_eq!(*after.data(), renamed);
}
