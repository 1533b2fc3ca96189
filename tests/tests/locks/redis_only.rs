use std::time::{Duration, Instant};

use keygate::lock::{LockError, LockOptions, Locks};
use keygate_tests::fixtures::{Backend, pttl};

async fn redis() -> Backend {
    Backend::redis().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_counter_under_the_lock_is_exact() {
    let b = redis().await;
    let server = b.server().unwrap();
    let locks = Locks::from_shared(b.locks());
    let client = redis::Client::open(server.url()).unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (locks, client) = (locks.clone(), client.clone());
            tokio::spawn(async move {
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                for _ in 0..200 {
                    let guard = locks
                        .acquire("counter", Duration::from_secs(30))
                        .await
                        .unwrap();
                    // GET then SET: an unprotected read-modify-write.
                    let n: Option<u64> = redis::cmd("GET")
                        .arg("counter")
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    let () = redis::cmd("SET")
                        .arg("counter")
                        .arg(n.unwrap_or(0) + 1)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    guard.release().await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let total: u64 = server.query(redis::cmd("GET").arg("counter"));
    assert_eq!(total, 1600);
}

#[tokio::test]
async fn the_lock_key_carries_the_lease() {
    let b = redis().await;
    let locks = Locks::from_shared(b.locks())
        .with_options(LockOptions::new().with_lease(Duration::from_secs(20)));
    let guard = locks.try_acquire("order:{7}").await.unwrap();
    let ttl = pttl(b.server().unwrap(), "keygate:lock:{order:%7B7%7D}");
    assert!((19_000..=20_000).contains(&ttl), "{ttl}");
    // The fence key expires too, by default 10 minutes after the last acquisition.
    let ttl = pttl(b.server().unwrap(), "keygate:lock:{order:%7B7%7D}:fence");
    assert!((599_000..=600_000).contains(&ttl), "{ttl}");
    guard.release().await.unwrap();
}

#[tokio::test]
async fn renewal_keeps_the_lock_past_its_lease_and_detects_loss() {
    let b = redis().await;
    let server = b.server().unwrap();
    let locks = Locks::from_shared(b.locks())
        .with_options(LockOptions::new().with_lease(Duration::from_millis(300)));
    let guard = locks.try_acquire("order:8").await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(!guard.is_lost(), "renewed three times over");
    assert!(matches!(
        locks.try_acquire("order:8").await,
        Err(LockError::Busy { .. })
    ));

    // A failover loses the key; someone else takes the lock.
    let _: () = server.query(redis::cmd("DEL").arg("keygate:lock:{order:8}"));
    let thief = locks.try_acquire("order:8").await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), guard.lost())
        .await
        .expect("the renewal noticed the loss");
    assert!(guard.is_lost());
    assert!(matches!(guard.release().await, Err(LockError::NotOwner)));
    thief.release().await.unwrap();
}

#[tokio::test]
async fn with_lock_stops_work_when_the_lock_is_lost() {
    let b = redis().await;
    let server_url = b.server().unwrap().url();
    let locks = Locks::from_shared(b.locks())
        .with_options(LockOptions::new().with_lease(Duration::from_millis(300)));
    let result = locks
        .with_lock("order:9", Duration::from_secs(1), |_| async move {
            let client = redis::Client::open(server_url).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let () = redis::cmd("DEL")
                .arg("keygate:lock:{order:9}")
                .query_async(&mut conn)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            "finished"
        })
        .await;
    assert!(matches!(result, Err(LockError::NotOwner)), "{result:?}");
}

#[tokio::test]
async fn redis_down_is_a_backend_error_not_busy() {
    let mut b = redis().await;
    let locks = Locks::from_shared(b.locks());
    if let Backend::Redis(_, server) = &mut b {
        server.stop();
    }
    let started = Instant::now();
    let error = locks.try_acquire("order:10").await.unwrap_err();
    assert!(
        matches!(error, LockError::Backend(ref e) if e.is_backend()),
        "{error:?}"
    );
    let error = locks
        .acquire("order:10", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(error, LockError::Backend(_)),
        "fail closed, not a timeout: {error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_replication_wait_without_replicas_gives_the_lock_back() {
    let b = redis().await;
    let server = b.server().unwrap();
    let waiting = Locks::from_shared(b.locks())
        .with_options(LockOptions::new().with_replication_wait(1, Duration::from_millis(100)));
    let started = Instant::now();
    match waiting.try_acquire("order:9").await {
        Err(LockError::NotReplicated {
            acknowledged,
            wanted,
        }) => assert_eq!((acknowledged, wanted), (0, 1)),
        other => panic!("expected NotReplicated, got {other:?}"),
    }
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "WAIT waited"
    );
    // Given back: free for the next one, whose fence is larger.
    let exists: i64 = server.query(redis::cmd("EXISTS").arg("keygate:lock:{order:9}"));
    assert_eq!(exists, 0);
    let given_back: u64 = server.query(redis::cmd("GET").arg("keygate:lock:{order:9}:fence"));
    let plain = Locks::from_shared(b.locks());
    let guard = plain.try_acquire("order:9").await.unwrap();
    assert!(
        guard.fence() > given_back,
        "{} > {given_back}",
        guard.fence()
    );
    guard.release().await.unwrap();
    // WAIT ran on a dedicated connection: the shared one never blocked.
    let calls = server.command_calls();
    assert!(
        calls.iter().any(|(name, n)| name == "wait" && *n == 1),
        "{calls:?}"
    );
}

/// A holder cut off from Redis must learn that its lock may be gone
/// before the lease ends in Redis, i.e. before another instance could take it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_cut_off_from_redis_learns_of_the_loss_before_the_lease_ends() {
    let b = redis().await;
    let server = b.server().unwrap();
    let lease = Duration::from_secs(2);
    let locks = Locks::from_shared(b.locks()).with_options(LockOptions::new().with_lease(lease));
    let guard = locks.try_acquire("order:11").await.unwrap();
    // When the lease ends in Redis at the earliest: the remaining TTL counted from before
    // the question was asked (a renewal in between only moves the end later).
    let asked = Instant::now();
    let left = pttl(server, "keygate:lock:{order:11}");
    assert!(left > 0, "{left}");
    let lease_ends = asked + Duration::from_millis(u64::try_from(left).unwrap());
    server.pause();
    let learned = tokio::time::timeout(Duration::from_secs(10), guard.lost()).await;
    let learned_at = Instant::now();
    server.resume();
    assert!(learned.is_ok(), "the loss was never reported");
    assert!(guard.is_lost());
    assert!(
        learned_at < lease_ends,
        "loss reported {:?} after the lease ended in Redis",
        learned_at - lease_ends
    );
    eprintln!(
        "loss reported {:?} before the lease ended in Redis",
        lease_ends - learned_at
    );
    // The lease did end: another instance takes the lock, with a larger fence.
    let other = Locks::from_shared(b.locks())
        .acquire("order:11", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(other.fence() > guard.fence());
    assert!(matches!(guard.release().await, Err(LockError::NotOwner)));
    other.release().await.unwrap();
}

/// An acquisition that timed out may still have run (its reply was
/// lost); it must not leave a lock that nobody holds blocking others for a whole lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_acquisition_leaves_no_orphaned_lock() {
    let b = redis().await;
    let server = b.server().unwrap();
    let locks = Locks::from_shared(b.locks())
        .with_options(LockOptions::new().with_lease(Duration::from_secs(60)));
    // As in production, Redis knows the script already (else the frozen EVALSHA would
    // fail with NOSCRIPT and nothing would run).
    locks
        .try_acquire("warm-up")
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
    // Frozen: the acquisition is sent, Redis runs it only after the client gave up.
    server.pause();
    let error = locks.try_acquire("order:12").await.unwrap_err();
    server.resume();
    assert!(
        matches!(error, LockError::Backend(ref e) if e.is_backend()),
        "{error:?}"
    );
    // Another instance (its own connection) gets the lock at once, not after 60 s.
    let other = keygate::RedisStore::connect(&server.url()).await.unwrap();
    let started = Instant::now();
    let guard = Locks::new(other)
        .acquire("order:12", Duration::from_secs(3))
        .await
        .unwrap_or_else(|e| {
            let owner: Option<String> =
                server.query(redis::cmd("GET").arg("keygate:lock:{order:12}"));
            panic!("{e:?}: the lock is held by a ghost owner {owner:?}")
        });
    eprintln!(
        "acquired {:?} after the timed-out attempt",
        started.elapsed()
    );
    guard.release().await.unwrap();
}

/// Acquisitions that wait for replication must not queue behind each
/// other: a `WAIT` still blocked for lock A does not delay lock B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_replication_wait_does_not_delay_other_locks() {
    let b = redis().await;
    let server = b.server().unwrap();
    // No replica: every WAIT blocks until its timeout.
    let slow = Locks::from_shared(b.locks())
        .with_options(LockOptions::new().with_replication_wait(1, Duration::from_secs(5)));
    let fast = Locks::from_shared(b.locks())
        .with_options(LockOptions::new().with_replication_wait(1, Duration::from_millis(100)));
    let a = tokio::spawn(async move { slow.try_acquire("order:A").await });
    let blocked = keygate_tests::eventually(Duration::from_secs(5), async || {
        let info: String = server.query(redis::cmd("INFO").arg("clients"));
        info.lines()
            .any(|l| l.strip_prefix("blocked_clients:") == Some("1"))
    })
    .await;
    assert!(blocked, "A's WAIT is pending");
    let started = Instant::now();
    let b_result = tokio::time::timeout(Duration::from_secs(2), fast.try_acquire("order:B")).await;
    let took = started.elapsed();
    assert!(!a.is_finished(), "A's WAIT is still pending");
    match b_result {
        Ok(Err(LockError::NotReplicated {
            acknowledged: 0,
            wanted: 1,
        })) => {}
        Ok(other) => panic!("expected NotReplicated for B, got {other:?}"),
        Err(_) => panic!("B waited {took:?} behind A's WAIT"),
    }
    eprintln!("B done in {took:?} while A's WAIT was pending");
    assert!(matches!(
        a.await.unwrap(),
        Err(LockError::NotReplicated {
            acknowledged: 0,
            wanted: 1
        })
    ));
    // Both given back.
    for key in ["keygate:lock:{order:A}", "keygate:lock:{order:B}"] {
        let exists: i64 = server.query(redis::cmd("EXISTS").arg(key));
        assert_eq!(exists, 0, "{key}");
    }
}
