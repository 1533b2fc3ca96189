use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keygate::lock::{LockError, LockOptions, Locks};
use keygate_tests::fixtures::Backend;

pub fn locks(b: &Backend, options: LockOptions) -> Locks {
    Locks::from_shared(b.locks()).with_options(options)
}

pub async fn mutual_exclusion_and_increasing_fences(b: &Backend) {
    let locks = locks(b, LockOptions::new());
    // A counter updated by read, yield, write: without mutual exclusion, updates get lost.
    let counter = Arc::new(AtomicU64::new(0));
    let fences = Arc::new(std::sync::Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (locks, counter, fences) = (locks.clone(), counter.clone(), fences.clone());
            tokio::spawn(async move {
                for _ in 0..200 {
                    let guard = locks
                        .acquire("counter", Duration::from_secs(30))
                        .await
                        .unwrap();
                    let seen = counter.load(Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    counter.store(seen + 1, Ordering::SeqCst);
                    fences.lock().unwrap().push(guard.fence());
                    guard.release().await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(counter.load(Ordering::SeqCst), 1600);
    let fences = fences.lock().unwrap();
    assert_eq!(fences.len(), 1600);
    assert!(
        fences.windows(2).all(|w| w[0] < w[1]),
        "fences strictly increase across holders"
    );
}

pub async fn a_paused_holder_loses_the_lock_and_its_release_is_refused(b: &Backend) {
    let options = LockOptions::new()
        .with_lease(Duration::from_millis(300))
        .with_renewal(false);
    let locks = locks(b, options);
    let first = locks.try_acquire("order:1").await.unwrap();
    // The holder is paused longer than its lease...
    tokio::time::sleep(Duration::from_millis(500)).await;
    // ...so another instance takes over, with a larger fencing token.
    let second = locks.try_acquire("order:1").await.unwrap();
    assert!(second.fence() > first.fence());
    assert!(matches!(first.release().await, Err(LockError::NotOwner)));
    second.release().await.unwrap();
}

pub async fn try_acquire_on_a_held_lock_fails_fast(b: &Backend) {
    let locks = locks(b, LockOptions::new().with_lease(Duration::from_secs(10)));
    let held = locks.try_acquire("order:2").await.unwrap();
    let started = Instant::now();
    let busy = locks.try_acquire("order:2").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(200));
    assert_eq!(busy.status(), 503);
    assert!(
        busy.retry_after().unwrap() > Duration::from_secs(9),
        "Retry-After is the lease left"
    );
    assert!(busy.body().contains("busy"));
    match busy {
        LockError::Busy { retry_after } => {
            let wait = retry_after.unwrap();
            assert!(wait > Duration::from_secs(9) && wait <= Duration::from_secs(10));
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    let started = Instant::now();
    let timeout = locks
        .acquire("order:2", Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(timeout, LockError::Timeout));
    assert!(started.elapsed() >= Duration::from_millis(300));
    held.release().await.unwrap();
}

pub async fn waiters_are_woken_by_the_release_not_the_poll(b: &Backend) {
    // Polling every 5 s: a prompt hand-over can only come from the release message.
    let locks = locks(
        b,
        LockOptions::new().with_poll_interval(Duration::from_secs(5)),
    );
    let holder = locks.try_acquire("order:3").await.unwrap();
    let waiter = {
        let locks = locks.clone();
        tokio::spawn(async move {
            let guard = locks
                .acquire("order:3", Duration::from_secs(10))
                .await
                .unwrap();
            (Instant::now(), guard)
        })
    };
    // Let the waiter find the lock held and subscribe.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let released_at = Instant::now();
    holder.release().await.unwrap();
    let (acquired_at, guard) = waiter.await.unwrap();
    let handover = acquired_at - released_at;
    eprintln!("hand-over latency: {handover:?}");
    assert!(
        handover < Duration::from_millis(1000),
        "woken, not polled: {handover:?}"
    );
    guard.release().await.unwrap();
}

pub async fn names_with_odd_characters_are_distinct_and_safe(b: &Backend) {
    let locks = locks(b, LockOptions::new());
    let names = [
        "order:{42}",
        "order:%7B42%7D",
        "*",
        "a b\nc",
        "订单:42",
        "x}y{z",
    ];
    let guards: Vec<_> = futures_util::future::join_all(names.iter().map(|n| locks.try_acquire(n)))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        guards.len(),
        names.len(),
        "distinct names are distinct locks"
    );
    for name in names {
        assert!(matches!(
            locks.try_acquire(name).await,
            Err(LockError::Busy { .. })
        ));
    }
    for guard in guards {
        guard.release().await.unwrap();
    }
}

pub async fn a_dropped_guard_releases_in_the_background(b: &Backend) {
    let locks = locks(b, LockOptions::new().with_lease(Duration::from_secs(30)));
    let guard = locks.try_acquire("order:4").await.unwrap();
    drop(guard);
    let started = Instant::now();
    let again = locks
        .acquire("order:4", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "not the 30 s lease"
    );
    again.release().await.unwrap();
}

pub async fn with_lock_runs_the_work_and_releases(b: &Backend) {
    let locks = locks(b, LockOptions::new());
    let first = locks
        .with_lock("order:5", Duration::from_secs(1), |fence| async move {
            fence.value()
        })
        .await
        .unwrap();
    let second = locks
        .with_lock("order:5", Duration::from_secs(1), |fence| async move {
            fence.value()
        })
        .await
        .unwrap();
    assert!(
        second > first,
        "released after the first run, new fence for the second"
    );
}

pub async fn without_renewal_the_loss_is_reported_before_the_lease_ends(b: &Backend) {
    let lease = Duration::from_millis(1500);
    let options = LockOptions::new()
        .with_lease(lease)
        .with_renewal(false)
        .with_safety_margin(Duration::from_millis(500));
    let locks = locks(b, options);
    let guard = locks.try_acquire("order:7").await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), guard.lost())
        .await
        .expect("the loss is reported");
    assert!(guard.is_lost());
    // Reported before the lease ended: nobody else could take the lock yet.
    assert!(
        matches!(
            locks.try_acquire("order:7").await,
            Err(LockError::Busy { .. })
        ),
        "reported lost while the lease still runs"
    );
    // The lease ends: another instance takes it.
    let next = locks
        .acquire("order:7", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(next.fence() > guard.fence());
    assert!(matches!(guard.release().await, Err(LockError::NotOwner)));
    next.release().await.unwrap();
}

/// Keys of keygate locks (locks and fencing counters) in the backend.
fn lock_keys(b: &Backend) -> usize {
    let pattern = redis::cmd("KEYS").arg("keygate:lock:*").to_owned();
    match b {
        Backend::Memory(store) => store.lock_keys(),
        Backend::Redis(_, server) => server.query::<Vec<String>>(&mut pattern.clone()).len(),
        Backend::Cluster(_, cluster) => cluster
            .query_masters::<Vec<String>>(&pattern)
            .iter()
            .map(Vec::len)
            .sum(),
    }
}

pub async fn fence_keys_expire_and_fences_keep_increasing(b: &Backend) {
    let options = LockOptions::new()
        .with_lease(Duration::from_millis(200))
        // Long enough that "the fence key lives" can be seen even over TLS on a loaded machine.
        .with_fence_ttl(Duration::from_secs(2));
    let locks = locks(b, options);
    // 1,000 lock names, each used once.
    for i in 0..1000 {
        let guard = locks.try_acquire(&format!("bulk:{i}")).await.unwrap();
        guard.release().await.unwrap();
    }
    let expired = keygate_tests::eventually(Duration::from_secs(10), async || lock_keys(b) == 0);
    assert!(expired.await, "{} lock keys left behind", lock_keys(b));

    // One name: fences increase while its fence key lives...
    let first = locks.try_acquire("order:8").await.unwrap();
    let first_fence = first.fence();
    first.release().await.unwrap();
    let second = locks.try_acquire("order:8").await.unwrap();
    let second_fence = second.fence();
    second.release().await.unwrap();
    assert!(second_fence > first_fence);
    assert!(lock_keys(b) > 0, "the fence key lives for its TTL");
    // ...and after it expired.
    let expired = keygate_tests::eventually(Duration::from_secs(10), async || lock_keys(b) == 0);
    assert!(expired.await, "the fence key expires");
    let third = locks.try_acquire("order:8").await.unwrap();
    assert!(
        third.fence() > second_fence,
        "{} after {second_fence}: a fence never goes back, even across an expiry of its key",
        third.fence(),
    );
    third.release().await.unwrap();
}

pub async fn status_shows_whether_held_the_lease_left_and_the_fence(b: &Backend) {
    let locks = locks(b, LockOptions::new().with_lease(Duration::from_secs(30)));
    let free = locks.status("report:7").await.unwrap();
    assert_eq!(
        (free.held, free.lease_left, free.fence),
        (false, None, None)
    );
    let guard = locks.try_acquire("report:7").await.unwrap();
    let held = locks.status("report:7").await.unwrap();
    assert!(held.held);
    let left = held.lease_left.expect("a held lock has a lease");
    assert!(
        left > Duration::ZERO && left <= Duration::from_secs(30),
        "{left:?}"
    );
    assert_eq!(held.fence, Some(guard.fence()));
    let fence = guard.fence();
    guard.release().await.unwrap();
    let released = locks.status("report:7").await.unwrap();
    assert_eq!(
        (released.held, released.lease_left, released.fence),
        (false, None, Some(fence)),
        "the fence outlives the holding"
    );
    assert!(
        !locks.status("report:8").await.unwrap().held,
        "another name"
    );
}
