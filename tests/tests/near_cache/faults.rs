//! Faults: no load ever returns data that Redis no longer holds. Every answer of B is
//! checked against what Redis holds right after it (read on an admin connection); the only
//! answers let through are those of the short race after an outside change, which is
//! waited out with a deadline before the strict checks.

use std::time::{Duration, Instant};

use keygate::{Layout, SessionConfig, SessionManager, Token, UserId};
use keygate_tests::fixtures::JavaUser;
use keygate_tests::{RedisServer, free_port};

use crate::support::{
    admin, change_outside, in_redis, instance, key_of, make_hit, near, poll_until, shared,
    wait_for, wait_tracking,
};

type Admin = redis::aio::MultiplexedConnection;

fn renamed(id: u64, round: &str) -> JavaUser {
    JavaUser {
        nick_name: format!("{round}_{id}"),
        ..JavaUser::new(id)
    }
}

/// `count` sessions made on `a`, users `first..`, each cached on `b`.
async fn cached_sessions(
    a: &SessionManager<JavaUser>,
    b: &SessionManager<JavaUser>,
    first: u64,
    count: u64,
) -> Vec<(u64, Token)> {
    let mut sessions = Vec::new();
    for id in first..first + count {
        let token = a
            .login(&UserId::from(id), &JavaUser::new(id))
            .await
            .unwrap();
        make_hit(b, &token).await;
        sessions.push((id, token));
    }
    sessions
}

/// Loads every session on `m` and compares each answer with what Redis holds right
/// after: they must be equal.
async fn check_all(m: &SessionManager<JavaUser>, admin: &mut Admin, sessions: &[(u64, Token)]) {
    let codec = m.config().layout();
    for (id, token) in sessions {
        let loaded = m.load(token).await.unwrap().map(|s| s.into_data());
        let held = in_redis(admin, codec, &key_of(m, token)).await;
        assert_eq!(loaded, held, "user {id}: the load and Redis disagree");
    }
}

/// Waits (at most `limit`) until each session's load on `m` agrees with Redis: the race
/// right after a change. Returns the longest wait.
async fn settle(
    m: &SessionManager<JavaUser>,
    admin: &mut Admin,
    sessions: &[(u64, Token)],
    limit: Duration,
) -> Duration {
    let codec = m.config().layout();
    let mut longest = Duration::ZERO;
    for (id, token) in sessions {
        let key = key_of(m, token);
        let took = poll_until(limit, async || {
            let loaded = m.load(token).await.ok().map(|s| s.map(|s| s.into_data()));
            loaded == Some(in_redis(admin, codec, &key).await)
        })
        .await
        .unwrap_or_else(|| panic!("user {id}: the load never agreed with Redis"));
        longest = longest.max(took);
    }
    longest
}

/// Ids of the clients with tracking on (`t` among their flags).
async fn tracking_clients(admin: &mut Admin) -> Vec<u64> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(admin)
        .await
        .unwrap();
    list.lines()
        .filter(|line| {
            line.split(' ').any(|f| {
                f.strip_prefix("flags=")
                    .is_some_and(|flags| flags.contains('t'))
            })
        })
        .filter_map(|line| {
            line.split(' ')
                .find_map(|f| f.strip_prefix("id="))
                .and_then(|id| id.parse().ok())
        })
        .collect()
}

/// Waits until the refreshes that fills queued are done (hash fills only read, and queue
/// a refresh each), so that they do not overlap the changes a test makes.
async fn refreshes_done(m: &SessionManager<JavaUser>, at_least: u64) {
    let done = wait_for(Duration::from_secs(5), || {
        m.near_cache_stats().unwrap().refreshes >= at_least
    })
    .await;
    assert!(done.is_some(), "{:?}", m.near_cache_stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_tracking_connection_drops_the_cache() {
    let _turn = shared().await;
    let server = RedisServer::start();
    let config = SessionConfig::node_seed("app").with_near_cache(near(Duration::from_secs(60)));
    let a = instance(&server, config.clone()).await;
    let b = instance(&server, config).await;
    let mut admin = admin(&server).await;
    let sessions = cached_sessions(&a, &b, 1, 20).await;
    let before = b.near_cache_stats().unwrap();
    assert_eq!(before.entries, 20, "{before:?}");

    let ids = tracking_clients(&mut admin).await;
    assert_eq!(ids.len(), 2, "A's and B's tracking connections: {ids:?}");
    for id in &ids {
        let _: () = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(*id)
            .query_async(&mut admin)
            .await
            .unwrap();
    }
    let killed = Instant::now();
    // Changes while tracking is down: nobody announces them to B.
    let (down, later) = sessions.split_at(10);
    for (id, token) in down {
        change_outside(
            &mut admin,
            Layout::Json,
            &key_of(&b, token),
            &renamed(*id, "down"),
        )
        .await;
    }
    let flushed = wait_for(Duration::from_secs(2), || {
        b.near_cache_stats().unwrap().flushes > before.flushes
    })
    .await;
    let since_kill = killed.elapsed();
    assert!(flushed.is_some(), "B dropped its cache");
    eprintln!("near cache faults | CLIENT KILL -> B's flush within {since_kill:?}");
    // From the flush on, nothing stale: the changes made while down are seen.
    check_all(&b, &mut admin, &sessions).await;

    wait_tracking(&b).await;
    let back = tracking_clients(&mut admin).await;
    assert!(
        back.len() >= 2 && back.iter().all(|id| !ids.contains(id)),
        "new tracking connections: {back:?} (killed {ids:?})"
    );
    // Cached again, on the new connection; then changes right after.
    for (_, token) in &sessions {
        make_hit(&b, token).await;
    }
    for (id, token) in later {
        change_outside(
            &mut admin,
            Layout::Json,
            &key_of(&b, token),
            &renamed(*id, "after"),
        )
        .await;
    }
    let raced = settle(&b, &mut admin, &sessions, Duration::from_secs(1)).await;
    eprintln!("near cache faults | changes after tracking came back seen within {raced:?}");
    check_all(&b, &mut admin, &sessions).await;
    let stats = b.near_cache_stats().unwrap();
    assert!(stats.tracking && stats.hits > before.hits, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_empty_redis_serves_no_lost_session() {
    let _turn = shared().await;
    let mut server = RedisServer::start();
    let config = SessionConfig::node_seed("app").with_near_cache(near(Duration::from_secs(60)));
    let a = instance(&server, config.clone()).await;
    let b = instance(&server, config).await;
    let sessions = cached_sessions(&a, &b, 1, 20).await;
    assert_eq!(b.near_cache_stats().unwrap().entries, 20);

    tokio::task::block_in_place(|| server.restart());
    // Right after the restart: never a session (errors while reconnecting are no data).
    for (id, token) in &sessions {
        assert!(
            !matches!(b.load(token).await, Ok(Some(_))),
            "user {id}: B served a session Redis lost"
        );
    }
    wait_tracking(&b).await;
    let mut admin = admin(&server).await;
    let reconnected = poll_until(Duration::from_secs(5), async || {
        b.load(&sessions[0].1).await.is_ok()
    })
    .await;
    assert!(reconnected.is_some(), "B's loads work again");
    check_all(&b, &mut admin, &sessions).await;
    for (_, token) in &sessions {
        assert!(b.load(token).await.unwrap().is_none());
    }
    // The cache works again: a new session is served from memory (once A's own
    // connection is back too).
    let mut token = None;
    let a_back = poll_until(Duration::from_secs(5), async || {
        token = a
            .login(&UserId::from(100u64), &JavaUser::new(100))
            .await
            .ok();
        token.is_some()
    })
    .await;
    assert!(a_back.is_some(), "A logs in again");
    let fresh = vec![(100, token.unwrap())];
    make_hit(&b, &fresh[0].1).await;
    check_all(&b, &mut admin, &fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_tracking_table_misses_no_change() {
    let _turn = shared().await;
    let server = RedisServer::start();
    let config = SessionConfig::java_seed().with_near_cache(near(Duration::from_secs(60)));
    let a = instance(&server, config.clone()).await;
    let b = instance(&server, config).await;
    let mut admin = admin(&server).await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("tracking-table-max-keys")
        .arg(10)
        .query_async(&mut admin)
        .await
        .unwrap();
    let sessions = cached_sessions(&a, &b, 1, 1_000).await;
    refreshes_done(&b, 1_000).await;
    let before = b.near_cache_stats().unwrap();
    assert_eq!(before.entries, 1_000, "{before:?}");
    for (id, token) in &sessions {
        change_outside(
            &mut admin,
            Layout::Hash,
            &key_of(&b, token),
            &renamed(*id, "changed"),
        )
        .await;
    }
    let raced = settle(&b, &mut admin, &sessions, Duration::from_secs(1)).await;
    eprintln!(
        "near cache faults | 1,000 outside changes with tracking-table-max-keys 10: all seen within {raced:?}"
    );
    check_all(&b, &mut admin, &sessions).await;
    for (id, token) in &sessions {
        let loaded = b.load(token).await.unwrap().unwrap().into_data();
        assert_eq!(loaded, renamed(*id, "changed"));
    }
    eprintln!(
        "near cache faults | B after the changes: {:?}",
        b.near_cache_stats()
    );
}

/// `CLIENT TRACKING off` cannot be forced on another connection (it only acts on the
/// connection that sends it), so the periodic check is verified with what else it looks
/// at: the node stops being a master (`REPLICAOF` a port nobody listens on, which keeps
/// the data and announces nothing). B must drop its cache within a few check intervals
/// (50 ms here), and take tracking up again once the node is a master again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_check_drops_the_cache_when_the_node_is_no_master() {
    let _turn = shared().await;
    let server = RedisServer::start();
    let config = SessionConfig::node_seed("app").with_near_cache(near(Duration::from_secs(60)));
    let a = instance(&server, config.clone()).await;
    let b = instance(&server, config).await;
    let mut admin = admin(&server).await;
    let sessions = cached_sessions(&a, &b, 1, 5).await;
    let before = b.near_cache_stats().unwrap();

    let nobody = free_port();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(nobody)
        .query_async(&mut admin)
        .await
        .unwrap();
    let demoted = Instant::now();
    let noticed = wait_for(Duration::from_secs(2), || {
        b.near_cache_stats().unwrap().flushes > before.flushes
    })
    .await;
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut admin)
        .await
        .unwrap();
    let noticed = noticed.expect("the check noticed the node is no longer a master");
    eprintln!(
        "near cache faults | REPLICAOF (no longer a master) -> flush after {noticed:?} (check every 50 ms)"
    );
    assert!(demoted.elapsed() >= noticed);
    assert_eq!(b.near_cache_stats().unwrap().entries, 0);

    wait_tracking(&b).await;
    check_all(&b, &mut admin, &sessions).await;
    for (_, token) in &sessions {
        make_hit(&b, token).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_from_outside_leaves_nothing_served() {
    let _turn = shared().await;
    let server = RedisServer::start();
    let config = SessionConfig::java_seed().with_near_cache(near(Duration::from_secs(60)));
    let a = instance(&server, config.clone()).await;
    let b = instance(&server, config).await;
    let mut admin = admin(&server).await;
    let sessions = cached_sessions(&a, &b, 1, 50).await;
    refreshes_done(&b, 50).await;
    let before = b.near_cache_stats().unwrap();
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut admin)
        .await
        .unwrap();
    let flushed = wait_for(Duration::from_secs(1), || {
        b.near_cache_stats().unwrap().flushes > before.flushes
    })
    .await;
    let flushed = flushed.expect("B dropped its cache on the server's flush");
    eprintln!("near cache faults | FLUSHALL -> B's flush after {flushed:?}");
    for (id, token) in &sessions {
        assert!(b.load(token).await.unwrap().is_none(), "user {id}");
        assert!(a.load(token).await.unwrap().is_none(), "user {id} on A");
    }
    check_all(&b, &mut admin, &sessions).await;
}

/// B's own TTL refresh goes on its tracking connection, which `NOLOOP` keeps from
/// announcing B's own writes to B. Redis remembers one writer per key per event-loop
/// iteration (the last), so an outside change that Redis runs in the same iteration just
/// before B's refresh is announced to everyone but B. Made deterministic here with
/// `CLIENT PAUSE WRITE`: the outside `HSET` and B's `PEXPIRE` wait, in that order, and run
/// together when the pause ends. Redis then holds the new nickname; B must not keep
/// serving the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_just_before_bs_own_refresh_reaches_b() {
    let _turn = shared().await;
    let server = RedisServer::start();
    let config = SessionConfig::java_seed().with_near_cache(near(Duration::from_secs(60)));
    let a = instance(&server, config.clone()).await;
    let b = instance(&server, config).await;
    let mut admin = admin(&server).await;
    let token = a
        .login(&UserId::from(1u64), &JavaUser::new(1))
        .await
        .unwrap();
    let key = key_of(&a, &token);

    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(10_000)
        .arg("WRITE")
        .query_async(&mut admin)
        .await
        .unwrap();
    let mut other = crate::support::admin(&server).await;
    let outside_key = key.clone();
    let hset = tokio::spawn(async move {
        change_outside(
            &mut other,
            Layout::Hash,
            &outside_key,
            &renamed(1, "outside"),
        )
        .await;
    });
    blocked(&mut admin, 1).await;
    // B's fill only reads (the pause lets reads through) and queues the refresh, which
    // waits behind the HSET.
    let loaded = b.load(&token).await.unwrap().unwrap().into_data();
    assert_eq!(loaded, JavaUser::new(1));
    blocked(&mut admin, 2).await;
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(&mut admin)
        .await
        .unwrap();
    hset.await.unwrap();
    let refreshed = wait_for(Duration::from_secs(2), || {
        b.near_cache_stats().unwrap().refreshes >= 1
    })
    .await;
    assert!(refreshed.is_some(), "{:?}", b.near_cache_stats());
    assert_eq!(
        in_redis(&mut admin, Layout::Hash, &key).await,
        Some(renamed(1, "outside"))
    );
    let seen = poll_until(Duration::from_secs(1), async || {
        b.load(&token)
            .await
            .unwrap()
            .is_some_and(|s| s.data() == &renamed(1, "outside"))
    })
    .await;
    assert!(
        seen.is_some(),
        "B still serves the old data a second after Redis changed it: {:?}",
        b.near_cache_stats()
    );
}

/// Waits until `n` clients are blocked (here: postponed by `CLIENT PAUSE`).
async fn blocked(admin: &mut Admin, n: u64) {
    let waited = poll_until(Duration::from_secs(5), async || {
        let info: String = redis::cmd("INFO")
            .arg("clients")
            .query_async(admin)
            .await
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("blocked_clients:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            == Some(n)
    })
    .await;
    assert!(waited.is_some(), "{n} clients never waited on the pause");
}

/// A network that silently stops delivering (no reset, no close) between B and Redis:
/// B cannot hear of changes, and nothing tells it so until its periodic check times out.
/// Measured: how long B keeps serving a session that A logged out meanwhile. It must be
/// no longer than the check interval plus the command timeout (and a scheduling margin);
/// after that B answers no data (errors, as Redis is unreachable) until the network is
/// back, and then the truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silently_stalled_network_is_noticed_within_check_plus_timeout() {
    const CHECK: Duration = Duration::from_millis(50);
    const TIMEOUT: Duration = Duration::from_millis(200);
    let _turn = shared().await;
    let server = RedisServer::start();
    let proxy = crate::support::FreezableProxy::start(server.port()).await;
    let config = SessionConfig::node_seed("app").with_near_cache(near(Duration::from_secs(60)));
    let a = instance(&server, config.clone()).await;
    let b = crate::support::instance_with(
        keygate::RedisOptions::new(proxy.url()).with_command_timeout(TIMEOUT),
        config,
    )
    .await;
    let mut admin = admin(&server).await;
    let sessions = cached_sessions(&a, &b, 1, 3).await;
    let before = b.near_cache_stats().unwrap();

    proxy.freeze(true);
    let (_, token) = &sessions[0];
    assert!(a.logout(token).await.unwrap());
    let logged_out = Instant::now();
    let mut stale = Duration::ZERO;
    let answered = poll_until(Duration::from_secs(5), async || match b.load(token).await {
        Ok(Some(_)) => {
            stale = logged_out.elapsed();
            false
        }
        Ok(None) | Err(_) => true,
    })
    .await;
    assert!(answered.is_some(), "B kept serving the logged-out session");
    let stats = b.near_cache_stats().unwrap();
    eprintln!(
        "near cache faults | stalled network: B served a logged-out session for {stale:?} (check {CHECK:?}, command timeout {TIMEOUT:?}); {stats:?}"
    );
    assert!(stats.flushes > before.flushes, "{stats:?}");
    let bound = CHECK + TIMEOUT + Duration::from_millis(100);
    assert!(stale <= bound, "stale for {stale:?}, beyond {bound:?}");
    // No data while the network is down.
    for (id, token) in &sessions {
        assert!(!matches!(b.load(token).await, Ok(Some(_))), "user {id}");
    }
    proxy.freeze(false);
    wait_tracking(&b).await;
    let back = poll_until(Duration::from_secs(5), async || b.load(token).await.is_ok()).await;
    assert!(back.is_some(), "B's loads work again");
    check_all(&b, &mut admin, &sessions).await;
}
