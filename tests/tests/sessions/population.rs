//! What a session operation costs must not grow with the number of sessions in Redis: a
//! load is one `GETEX` however many sessions (of the user and of everyone) exist, a login
//! reads at most one page of its user's index, and counting keys scans in bounded batches.
//! `keygate-bench scale` measures the same at a million sessions; these catch a return of
//! population-dependent work without one.

use futures_util::stream::{self, StreamExt};
use keygate::session::INDEX_BATCH;
use keygate::{SessionConfig, SessionManager, UserId};
use keygate_tests::RedisServer;
use keygate_tests::fixtures::commands_since_reset;

use crate::support::{NodeUser, redis_store};

/// Logins in flight at once while populating.
const IN_FLIGHT: usize = 64;

async fn populate(m: &SessionManager<NodeUser>, users: impl Iterator<Item = UserId>) {
    stream::iter(users)
        .for_each_concurrent(IN_FLIGHT, |user| async move {
            m.login(&user, &NodeUser::seed()).await.unwrap();
        })
        .await;
}

fn calls_of(calls: &[(String, u64)], command: &str) -> u64 {
    calls
        .iter()
        .filter(|(name, _)| name == command)
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_is_one_getex_whatever_the_population() {
    let server = RedisServer::start();
    let m = SessionManager::<NodeUser>::new(
        redis_store(&server).await,
        SessionConfig::node_seed("myapp"),
    )
    .unwrap();
    let user = UserId::from(598u64);
    let token = m.login(&user, &NodeUser::seed()).await.unwrap();
    // The user's index beyond one page, and thousands of other users.
    populate(&m, (0..INDEX_BATCH + 44).map(|_| user.clone())).await;
    populate(&m, (0..3_000u64).map(|i| UserId::from(1_000_000 + i))).await;
    let keys: u64 = server.query(&mut redis::cmd("DBSIZE"));
    assert!(keys > 3_000, "{keys} keys");
    server.reset_stats();
    assert!(m.load(&token).await.unwrap().is_some());
    assert_eq!(commands_since_reset(&server), vec![("getex".to_owned(), 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_reads_at_most_one_page_of_its_users_index() {
    let server = RedisServer::start();
    let m = SessionManager::<NodeUser>::new(
        redis_store(&server).await,
        SessionConfig::node_seed("myapp"),
    )
    .unwrap();
    let user = UserId::from(598u64);
    let sessions = 2 * INDEX_BATCH + 10;
    populate(&m, (0..sessions).map(|_| user.clone())).await;
    let indexed: u64 = server.query(redis::cmd("ZCARD").arg("keygate:user-sessions:598"));
    assert_eq!(indexed, sessions as u64);
    server.reset_stats();
    m.login(&user, &NodeUser::seed()).await.unwrap();
    let calls = commands_since_reset(&server);
    assert_eq!(calls_of(&calls, "zrange"), 1, "{calls:?}");
    let checked = calls_of(&calls, "pttl");
    assert!(
        checked <= INDEX_BATCH as u64,
        "a login checked {checked} sessions of a user with {sessions}"
    );
}

#[tokio::test]
async fn counting_keys_scans_in_bounded_batches() {
    let server = RedisServer::start();
    let sessions = 2_500u64;
    let mut pipe = redis::pipe();
    for i in 0..sessions {
        pipe.cmd("SET")
            .arg(format!("myapp_{i:032x}"))
            .arg("{}")
            .ignore();
        pipe.cmd("SET").arg(format!("other:{i}")).arg("x").ignore();
    }
    pipe.query::<()>(&mut server.admin()).unwrap();
    let store = redis_store(&server).await;
    server.reset_stats();
    let mut reports = 0;
    let counted = store
        .count_keys("myapp_", Some("string"), |_| reports += 1)
        .await
        .unwrap();
    assert_eq!(counted, sessions);
    let scans = calls_of(&commands_since_reset(&server), "scan");
    // 5,000 keys (8,192 buckets) in batches of a few hundred: a SCAN call holds the server
    // for its whole batch, so a batch of 1,000 (9 calls here) stalls every other client
    // for milliseconds on a large keyspace.
    assert!(scans >= 16, "{scans} SCAN calls for {} keys", 2 * sessions);
    assert_eq!(reports, scans);
}
