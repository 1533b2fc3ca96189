use std::time::Duration;

use keygate::{SessionConfig, UserId};
use keygate_tests::RedisServer;
use keygate_tests::fixtures::{JavaUser, commands_since_reset};

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
    assert_eq!(b.load(&token).await.unwrap().unwrap().id, 7);
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
