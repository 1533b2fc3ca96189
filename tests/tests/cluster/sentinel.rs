//! Sentinel: after the master crashes and a sentinel promotes the replica, the same store
//! reads what was written before and writes again, without being rebuilt.

use std::sync::Arc;
use std::time::Duration;

use keygate::lock::{LockError, LockOptions, Locks};
use keygate::{RedisOptions, RedisStore, SessionConfig, SessionManager, UserId};
use keygate_tests::fixtures::JavaUser;
use keygate_tests::{RedisSentinel, eventually};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_is_followed_without_rebuilding_the_store() {
    let setup = Arc::new(
        tokio::task::spawn_blocking(RedisSentinel::start)
            .await
            .unwrap(),
    );
    let store = RedisStore::connect_with(
        RedisOptions::sentinel(RedisSentinel::MASTER_NAME, setup.sentinel_urls())
            .with_command_timeout(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    assert!(!store.is_cluster());
    let m = SessionManager::<JavaUser>::new(store.clone(), SessionConfig::java_seed()).unwrap();
    let locks = Locks::new(store.clone())
        .with_options(LockOptions::new().with_poll_interval(Duration::from_secs(5)));

    let before = m
        .login(&UserId::from(1u64), &JavaUser::new(1))
        .await
        .unwrap();
    let old = setup.master_port().unwrap();
    let key = format!("login:token:{}", before.expose());
    assert_eq!(setup.query::<i64>(old, redis::cmd("EXISTS").arg(&key)), 1);
    // Replication is asynchronous: wait until the replica has the session.
    assert!(eventually(Duration::from_secs(10), async || setup.replica_caught_up()).await);

    // With a replica, an acquisition can wait for it.
    let replicated = Locks::new(store.clone())
        .with_options(LockOptions::new().with_replication_wait(1, Duration::from_millis(300)));
    replicated
        .try_acquire("order:2")
        .await
        .unwrap()
        .release()
        .await
        .unwrap();

    assert_eq!(setup.kill_master(), old);
    let killed_at = Instant::now();
    let mut promoted = None;
    assert!(
        eventually(Duration::from_secs(30), async || {
            promoted = setup.failover_done(old);
            promoted.is_some()
        })
        .await,
        "the sentinels promoted the replica"
    );
    let promoted_at = Instant::now();
    let promoted = promoted.unwrap();
    assert_ne!(promoted, old);

    // The same manager reads the session written before the crash, from the new master.
    assert!(
        eventually(Duration::from_secs(20), async || matches!(
            m.load(&before).await,
            Ok(Some(session)) if session.id == 1
        ))
        .await,
        "the session written before the failover is read after it"
    );
    let recovered_at = Instant::now();
    eprintln!(
        "sentinel failover: replica promoted {:?} after the kill; the store reads again {:?} \
         after the kill",
        promoted_at - killed_at,
        recovered_at - killed_at
    );

    // New writes go to the new master.
    let after = m
        .login(&UserId::from(2u64), &JavaUser::new(2))
        .await
        .unwrap();
    assert_eq!(m.load(&after).await.unwrap().map(|s| s.id), Some(2));
    let key = format!("login:token:{}", after.expose());
    assert_eq!(
        setup.query::<i64>(promoted, redis::cmd("EXISTS").arg(&key)),
        1
    );

    // The promoted master has no replica left (the old master is dead): acquisitions that
    // wait for one are refused, through the dedicated connection opened before the crash.
    assert!(matches!(
        replicated.try_acquire("order:2").await,
        Err(LockError::NotReplicated {
            acknowledged: 0,
            wanted: 1
        })
    ));

    // Dedicated connections (a lock waiter's subscription) reach the new master too: the
    // waiter is woken by the release, not by its 5 s poll.
    let holder = locks.try_acquire("order:1").await.unwrap();
    let waiter = {
        let locks = locks.clone();
        tokio::spawn(async move {
            let guard = locks
                .acquire("order:1", Duration::from_secs(10))
                .await
                .unwrap();
            (Instant::now(), guard)
        })
    };
    assert!(
        eventually(Duration::from_secs(5), async || {
            let subscribers: Vec<(String, i64)> = setup.query(
                promoted,
                redis::cmd("PUBSUB")
                    .arg("NUMSUB")
                    .arg("keygate:lock:{order:1}:released"),
            );
            subscribers.first().is_some_and(|(_, n)| *n == 1)
        })
        .await,
        "the waiter subscribed on the new master"
    );
    let released_at = Instant::now();
    holder.release().await.unwrap();
    let (acquired_at, guard) = waiter.await.unwrap();
    assert!(acquired_at - released_at < Duration::from_secs(2));
    guard.release().await.unwrap();
}
