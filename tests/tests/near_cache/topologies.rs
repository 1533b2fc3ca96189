//! The smoke scenario (a hit costs no command; a logout on A is seen by B) on the other
//! topologies: one TLS server with mutual TLS, a Redis Cluster (3 masters, 3 replicas;
//! sessions spread over every master) and a master behind Sentinel.

use std::sync::Arc;
use std::time::Duration;

use keygate::{RedisOptions, SessionConfig, SessionManager, Token, UserId};
use keygate_tests::fixtures::{JavaUser, with_test_certificates};
use keygate_tests::{RedisCluster, RedisSentinel, RedisServer, TlsServer};

use crate::support::{instance_with, key_of, make_hit, near, poll_until, shared};

/// Commands counted from `INFO commandstats` that are not the tests' own or the
/// supervisor's (tracking check, slot map) or the connections' set-up.
fn session_commands(calls: &[(String, u64)]) -> u64 {
    const NOT_SESSION: [&str; 8] = [
        "client", "role", "cluster", "info", "config", "hello", "ping", "readonly",
    ];
    calls
        .iter()
        .filter(|(name, _)| !NOT_SESSION.iter().any(|n| name.starts_with(n)))
        .map(|(_, n)| n)
        .sum()
}

fn parse_commandstats(info: &str) -> Vec<(String, u64)> {
    info.lines()
        .filter_map(|l| {
            let (name, stats) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect()
}

/// `count` sessions made on A and cached on B; then `reset` (of the servers' command
/// stats), 100 loads of each on B, all hits, and `calls` must show no session command;
/// then a logout of each on A, seen by B.
async fn scenario(
    a: &SessionManager<JavaUser>,
    b: &SessionManager<JavaUser>,
    count: u64,
    reset: impl Fn(),
    calls: impl Fn() -> Vec<(String, u64)>,
) {
    let mut tokens: Vec<Token> = Vec::new();
    for id in 1..=count {
        let token = a
            .login(&UserId::from(id), &JavaUser::new(id))
            .await
            .unwrap();
        make_hit(b, &token).await;
        tokens.push(token);
    }
    // The refreshes the fills queued are sent in the background: let them land first.
    let wait = crate::support::wait_for(Duration::from_secs(5), || {
        b.near_cache_stats().unwrap().refreshes >= count
    })
    .await;
    assert!(wait.is_some(), "{:?}", b.near_cache_stats());
    let before = b.near_cache_stats().unwrap().hits;
    reset();
    for _ in 0..100 {
        for (i, token) in tokens.iter().enumerate() {
            assert_eq!(b.load(token).await.unwrap().unwrap().id, i as u64 + 1);
        }
    }
    let seen = calls();
    assert_eq!(session_commands(&seen), 0, "{seen:?}");
    let hits = b.near_cache_stats().unwrap().hits - before;
    assert_eq!(hits, 100 * count);
    for token in &tokens {
        assert!(a.logout(token).await.unwrap());
        let took = poll_until(Duration::from_secs(1), async || {
            b.load(token).await.unwrap().is_none()
        })
        .await;
        assert!(took.is_some(), "B never saw the logout");
    }
}

fn java() -> SessionConfig {
    SessionConfig::java_seed().with_near_cache(near(Duration::from_secs(60)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_mutual_tls() {
    let _turn = shared().await;
    let server = RedisServer::start_tls(
        TlsServer {
            require_client_cert: true,
            ..TlsServer::default()
        },
        &[],
    );
    let options = || {
        with_test_certificates(RedisOptions::new(server.url()))
            .with_command_timeout(Duration::from_secs(2))
    };
    let a = instance_with(options(), java()).await;
    let b = instance_with(options(), java()).await;
    scenario(
        &a,
        &b,
        5,
        || server.reset_stats(),
        || server.command_calls(),
    )
    .await;
}

/// The shared cluster, to one test at a time, flushed.
async fn cluster_turn() -> (tokio::sync::MutexGuard<'static, ()>, Arc<RedisCluster>) {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let guard = TURN.lock().await;
    let cluster = tokio::task::spawn_blocking(|| {
        let cluster = RedisCluster::shared();
        cluster.flush();
        cluster
    })
    .await
    .unwrap();
    (guard, cluster)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster() {
    let _turn = shared().await;
    let (_cluster_turn, cluster) = cluster_turn().await;
    let options =
        || RedisOptions::cluster(cluster.urls()).with_command_timeout(Duration::from_secs(2));
    let a = instance_with(options(), java()).await;
    let b = instance_with(options(), java()).await;
    // 30 sessions: spread over the three masters (all but surely each has some).
    let count = 30;
    let reset = || {
        let _: Vec<()> = cluster.query_masters(redis::cmd("CONFIG").arg("RESETSTAT"));
    };
    let calls = || {
        let infos: Vec<String> = cluster.query_masters(redis::cmd("INFO").arg("commandstats"));
        infos.iter().flat_map(|i| parse_commandstats(i)).collect()
    };
    scenario(&a, &b, count, reset, calls).await;
    let masters = cluster.masters().len();
    assert_eq!(masters, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_sentinel() {
    let _turn = shared().await;
    let setup = Arc::new(
        tokio::task::spawn_blocking(RedisSentinel::start)
            .await
            .unwrap(),
    );
    let options = || {
        RedisOptions::sentinel(RedisSentinel::MASTER_NAME, setup.sentinel_urls())
            .with_command_timeout(Duration::from_secs(2))
    };
    let a = instance_with(options(), java()).await;
    let b = instance_with(options(), java()).await;
    let master = setup.master_port().unwrap();
    let reset = || {
        let _: () = setup.query(master, redis::cmd("CONFIG").arg("RESETSTAT"));
    };
    let calls = || {
        let info: String = setup.query(master, redis::cmd("INFO").arg("commandstats"));
        parse_commandstats(&info)
    };
    scenario(&a, &b, 5, reset, calls).await;
}

/// What the cluster holds under `key` (a Java-layout hash).
fn held_on_cluster(cluster: &RedisCluster, key: &str) -> Option<JavaUser> {
    let fields: std::collections::HashMap<String, String> =
        tokio::task::block_in_place(|| cluster.query_key(key, redis::cmd("HGETALL").arg(key)));
    (!fields.is_empty()).then(|| JavaUser {
        id: fields["id"].parse().unwrap(),
        nick_name: fields["nickName"].clone(),
        icon: fields.get("icon").cloned().unwrap_or_default(),
    })
}

/// On a cluster there is one tracking connection per master: killing those of one
/// master drops the whole cache, and keys changed meanwhile, on every master, are never
/// served stale once B has noticed; tracking comes back on every master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_killed_tracking_connection_drops_the_cache() {
    let _turn = shared().await;
    let (_cluster_turn, cluster) = cluster_turn().await;
    let options =
        || RedisOptions::cluster(cluster.urls()).with_command_timeout(Duration::from_secs(2));
    let a = instance_with(options(), java()).await;
    let b = instance_with(options(), java()).await;
    let mut sessions = Vec::new();
    for id in 1..=30u64 {
        let token = a
            .login(&UserId::from(id), &JavaUser::new(id))
            .await
            .unwrap();
        make_hit(&b, &token).await;
        sessions.push((id, token));
    }
    let settled = crate::support::wait_for(Duration::from_secs(5), || {
        b.near_cache_stats().unwrap().refreshes >= 30
    })
    .await;
    assert!(settled.is_some(), "{:?}", b.near_cache_stats());
    let before = b.near_cache_stats().unwrap();

    let master = cluster.masters()[0];
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{master}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    let ids: Vec<u64> = list
        .lines()
        .filter(|l| {
            l.split(' ')
                .any(|f| f.strip_prefix("flags=").is_some_and(|x| x.contains('t')))
        })
        .filter_map(|l| {
            l.split(' ')
                .find_map(|f| f.strip_prefix("id="))?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(
        ids.len(),
        2,
        "A's and B's tracking connections on {master}: {list}"
    );
    for id in ids {
        let _: () = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    for (id, token) in &sessions {
        let key = key_of(&b, token);
        let _: i64 = tokio::task::block_in_place(|| {
            cluster.query_key(
                &key,
                redis::cmd("HSET")
                    .arg(&key)
                    .arg("nickName")
                    .arg(format!("changed_{id}")),
            )
        });
    }
    let flushed = crate::support::wait_for(Duration::from_secs(2), || {
        b.near_cache_stats().unwrap().flushes > before.flushes
    })
    .await;
    assert!(
        flushed.is_some(),
        "B dropped its cache: {:?}",
        b.near_cache_stats()
    );
    for (id, token) in &sessions {
        let loaded = b.load(token).await.unwrap().map(|s| s.into_data());
        assert_eq!(
            loaded,
            held_on_cluster(&cluster, &key_of(&b, token)),
            "user {id}"
        );
        assert_eq!(loaded.map(|u| u.nick_name), Some(format!("changed_{id}")));
    }
    crate::support::wait_tracking(&b).await;
    for (_, token) in &sessions {
        make_hit(&b, token).await;
    }
}

/// Two instances behind Sentinel with five sessions cached on B, then a crash of the
/// master and the replica's promotion: the setup, A, B, the sessions and the new master's
/// port. B has dropped its cache by then.
async fn after_a_sentinel_failover() -> (
    Arc<RedisSentinel>,
    SessionManager<JavaUser>,
    SessionManager<JavaUser>,
    Vec<(u64, Token)>,
    u16,
) {
    let setup = Arc::new(
        tokio::task::spawn_blocking(RedisSentinel::start)
            .await
            .unwrap(),
    );
    let options = || {
        RedisOptions::sentinel(RedisSentinel::MASTER_NAME, setup.sentinel_urls())
            .with_command_timeout(Duration::from_secs(1))
    };
    let a = instance_with(options(), java()).await;
    let b = instance_with(options(), java()).await;
    let mut sessions = Vec::new();
    for id in 1..=5u64 {
        let token = a
            .login(&UserId::from(id), &JavaUser::new(id))
            .await
            .unwrap();
        make_hit(&b, &token).await;
        sessions.push((id, token));
    }
    let settled = crate::support::wait_for(Duration::from_secs(5), || {
        b.near_cache_stats().unwrap().refreshes >= 5
    })
    .await;
    assert!(settled.is_some());
    let replicated =
        keygate_tests::eventually(Duration::from_secs(10), async || setup.replica_caught_up())
            .await;
    assert!(replicated, "the replica has the sessions");
    let before = b.near_cache_stats().unwrap();

    let old = setup.kill_master();
    let mut promoted = None;
    let failed_over = keygate_tests::eventually(Duration::from_secs(30), async || {
        promoted = setup.failover_done(old);
        promoted.is_some()
    })
    .await;
    assert!(failed_over, "the sentinels promoted the replica");
    let flushed = b.near_cache_stats().unwrap();
    assert!(
        flushed.flushes > before.flushes,
        "B dropped its cache: {flushed:?}"
    );
    (setup, a, b, sessions, promoted.unwrap())
}

/// Behind Sentinel, a failover moves tracking to the new master once requests come: B
/// answers no stale data meanwhile (errors while the master is gone), then loads from the
/// new master, and a change made there from outside reaches B through tracking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_sentinel_a_failover_moves_tracking() {
    let _turn = shared().await;
    let (setup, _a, b, sessions, promoted) = after_a_sentinel_failover().await;
    let (id, token) = &sessions[0];
    let key = key_of(&b, token);
    // Requests arrive: the first ones may fail while the store finds the new master.
    let back = poll_until(Duration::from_secs(20), async || {
        b.load(token).await.is_ok_and(|s| s.is_some())
    })
    .await;
    assert!(back.is_some(), "B loads the session from the new master");
    crate::support::wait_tracking(&b).await;
    make_hit(&b, token).await;
    let _: i64 = setup.query(
        promoted,
        redis::cmd("HSET").arg(&key).arg("nickName").arg("moved"),
    );
    let seen = poll_until(Duration::from_secs(1), async || {
        b.load(token)
            .await
            .unwrap()
            .is_some_and(|s| s.data().nick_name == "moved")
    })
    .await;
    assert!(
        seen.is_some(),
        "user {id}: the change on the new master reached B"
    );
    let stats = b.near_cache_stats().unwrap();
    eprintln!("near cache sentinel failover | B after: {stats:?}");
    assert!(stats.tracking);
}

/// After a failover, an instance that gets no request re-establishes tracking on the new
/// master by itself. It failed while the supervisor took the master from
/// `SentinelConn::client()`, the cached client of the old (dead) master until the store's
/// own connection had failed a command; it now asks the sentinels (`client_now`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_sentinel_tracking_comes_back_without_traffic() {
    let _turn = shared().await;
    let (_setup, _a, b, _sessions, _promoted) = after_a_sentinel_failover().await;
    let up = crate::support::wait_for(Duration::from_secs(5), || {
        b.near_cache_stats().unwrap().tracking
    })
    .await;
    assert!(
        up.is_some(),
        "tracking did not come back within 5 s of the failover without a request: {:?}",
        b.near_cache_stats()
    );
}

/// Whether a `CLUSTER NODES` view assigns `slot` to some node.
fn serves(nodes: &str, slot: u16) -> bool {
    nodes.lines().any(|line| {
        line.split_whitespace()
            .skip(8)
            .filter(|range| !range.starts_with('['))
            .any(|range| {
                let (start, end) = range.split_once('-').unwrap_or((range, range));
                match (start.parse::<u16>(), end.parse::<u16>()) {
                    (Ok(start), Ok(end)) => (start..=end).contains(&slot),
                    _ => false,
                }
            })
    })
}

/// A slot that no master serves (the cluster runs with `cluster-require-full-coverage no`
/// and the slot was deleted from every node's map) takes nothing else from the cache: a
/// load of a key in that slot goes to Redis as without the cache, while the sessions of
/// every other slot stay cached and served from memory, and nothing is flushed. It used to
/// drop the whole cache (and re-establish tracking) at every such load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_slot_no_master_serves_drops_nothing_else() {
    let _turn = shared().await;
    let cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .unwrap();
    let unserved = Token::generate().unwrap();
    let unserved_key = format!("login:token:{}", unserved.expose());
    let slot = cluster.keyslot(&unserved_key);
    let every_node = |cmd: &redis::Cmd| {
        for outcome in cluster.query_every_node::<()>(cmd) {
            outcome.unwrap();
        }
    };
    every_node(
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("cluster-require-full-coverage")
            .arg("no"),
    );
    // Deleted from every node's map until no node claims it any more: a node that still
    // claims it (or whose replica reports it) gossips it back to the others.
    let unassigned_everywhere = || {
        cluster
            .query_every_node::<String>(redis::cmd("CLUSTER").arg("NODES"))
            .into_iter()
            .all(|view| view.is_ok_and(|text| !serves(&text, slot)))
    };
    let mut rounds = 0;
    loop {
        // A node that no longer has the slot answers an error: expected.
        let _ = cluster.query_every_node::<()>(redis::cmd("CLUSTER").arg("DELSLOTS").arg(slot));
        std::thread::sleep(Duration::from_millis(1500));
        if unassigned_everywhere() {
            break;
        }
        rounds += 1;
        assert!(rounds < 10, "slot {slot} keeps coming back");
    }
    let options =
        RedisOptions::cluster(cluster.urls()).with_command_timeout(Duration::from_secs(2));
    let a = instance_with(options, java()).await;
    let mut sessions = Vec::new();
    for id in 1..=10u64 {
        let token = a
            .login(&UserId::from(id), &JavaUser::new(id))
            .await
            .unwrap();
        assert_ne!(cluster.keyslot(&key_of(&a, &token)), slot, "a served slot");
        make_hit(&a, &token).await;
        sessions.push(token);
    }
    let before = a.near_cache_stats().unwrap();
    for _ in 0..3 {
        // Whatever Redis answers for the unserved slot (it serves no such key).
        let loaded = a.load(&unserved).await;
        assert!(!matches!(loaded, Ok(Some(_))), "{loaded:?}");
    }
    let after = a.near_cache_stats().unwrap();
    assert!(after.tracking, "{after:?}");
    assert_eq!(after.flushes, before.flushes, "nothing flushed: {after:?}");
    assert_eq!(after.entries, before.entries, "nothing dropped: {after:?}");
    for token in &sessions {
        let hits = a.near_cache_stats().unwrap().hits;
        assert!(a.load(token).await.unwrap().is_some());
        assert_eq!(
            a.near_cache_stats().unwrap().hits,
            hits + 1,
            "served from memory"
        );
    }
}
