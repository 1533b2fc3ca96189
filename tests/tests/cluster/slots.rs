//! Each key family's slot rule, checked on the cluster with `CLUSTER KEYSLOT`, and the
//! operations that span slots.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use keygate::code::{CodeConfig, CodeError, Codes};
use keygate::flash_sale::{
    ConsumerOptions, FlashSale, HandlerError, Order, OrderConsumer, OrderHandler, OrderOutcome,
    SaleWindow,
};
use keygate::lock::Locks;
use keygate::{SessionConfig, SessionManager, UserId};
use keygate_tests::RedisCluster;
use keygate_tests::eventually;
use keygate_tests::fixtures::{CapturingSender, JavaUser};

fn exists(cluster: &RedisCluster, key: &str) -> bool {
    cluster.query_key::<i64>(key, redis::cmd("EXISTS").arg(key)) == 1
}

/// Asserts that every key exists (so the names are the real ones) and that all hash to
/// one slot; returns the slot.
fn one_slot(cluster: &RedisCluster, keys: &[String]) -> u16 {
    let slots: Vec<u16> = keys.iter().map(|k| cluster.keyslot(k)).collect();
    assert!(
        slots.windows(2).all(|w| w[0] == w[1]),
        "one slot for {keys:?}: {slots:?}"
    );
    slots[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_and_its_deadline_share_a_slot() {
    let (_turn, b) = crate::turn().await;
    let cluster = b.redis_cluster().unwrap();
    let m = SessionManager::<JavaUser>::from_shared_store(
        b.sessions(),
        SessionConfig::java_seed().with_absolute_lifetime(Duration::from_secs(60)),
    )
    .unwrap();
    let mut slots = HashSet::new();
    for i in 0..8 {
        let token = m.login(&UserId::from(i), &JavaUser::new(i)).await.unwrap();
        let session = format!("login:token:{}", token.expose());
        let deadline = format!("keygate:deadline:{{{session}}}");
        for key in [&session, &deadline] {
            assert!(exists(cluster, key), "{key} is the real key");
        }
        slots.insert(one_slot(cluster, &[session, deadline]));
        // The session loads through the two-key script on its node.
        assert!(m.load(&token).await.unwrap().is_some());
    }
    assert!(slots.len() > 1, "sessions spread over slots: {slots:?}");
    // The per-user index is a key of its own, never in a script with a session.
    assert!(exists(cluster, "keygate:user-sessions:0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_and_its_companions_share_a_slot() {
    let (_turn, b) = crate::turn().await;
    let cluster = b.redis_cluster().unwrap();
    let sender = CapturingSender::default();
    let codes = Codes::from_shared(b.codes(), Arc::new(sender.clone()), CodeConfig::new()).unwrap();
    let mut slots = HashSet::new();
    for phone in ["13800138000", "13900139000", "13700137000"] {
        let p = codes.phone(phone).unwrap();
        codes.send(&p).await.unwrap();
        let right = sender.last(phone).unwrap();
        let wrong = if right == "000000" {
            "000001"
        } else {
            "000000"
        };
        assert!(matches!(
            codes.verify(&p, wrong).await,
            Err(CodeError::WrongCode { .. })
        ));
        let code = format!("login:code:{phone}");
        let keys: Vec<String> = ["cooldown", "daily", "tries"]
            .iter()
            .map(|what| format!("keygate:code-{what}:{{{code}}}"))
            .chain([code.clone()])
            .collect();
        for key in &keys {
            assert!(exists(cluster, key), "{key} is the real key");
        }
        slots.insert(one_slot(cluster, &keys));
        codes.verify(&p, &right).await.unwrap();
    }
    assert!(slots.len() > 1, "phones spread over slots: {slots:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_and_its_fence_share_a_slot() {
    let (_turn, b) = crate::turn().await;
    let cluster = b.redis_cluster().unwrap();
    let locks = Locks::from_shared(b.locks());
    let mut slots = HashSet::new();
    for (name, tag) in [
        ("order:42", "order:42"),
        ("payment:7", "payment:7"),
        ("x}y{z", "x%7Dy%7Bz"),
    ] {
        let guard = locks.try_acquire(name).await.unwrap();
        let lock = format!("keygate:lock:{{{tag}}}");
        let fence = format!("{lock}:fence");
        for key in [&lock, &fence] {
            assert!(exists(cluster, key), "{key} is the real key");
        }
        slots.insert(one_slot(cluster, &[lock, fence]));
        guard.release().await.unwrap();
    }
    assert!(slots.len() > 1, "locks spread over slots: {slots:?}");
}

/// Fails every order, so entries get an error recorded and end as dead letters.
struct Failing(Arc<AtomicUsize>);

#[async_trait]
impl OrderHandler for Failing {
    async fn handle(&self, _order: &Order) -> Result<(), HandlerError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(HandlerError("database down".into()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vouchers_keys_share_a_slot_per_shard() {
    let (_turn, b) = crate::turn().await;
    let cluster = b.redis_cluster().unwrap();
    let sale = FlashSale::from_shared(b.flash_sale()).with_shards(3);
    let calls = Arc::new(AtomicUsize::new(0));
    let consumer = OrderConsumer::new(
        &sale,
        Failing(calls.clone()),
        ConsumerOptions::new()
            .with_block(Duration::from_millis(100))
            .with_claim(Duration::from_millis(50), Duration::from_millis(50))
            .with_max_deliveries(1),
    )
    .spawn();
    // Vouchers 30, 31, 32 fall in shards 0, 1, 2.
    for voucher in 30..33u64 {
        sale.load(voucher, 5, SaleWindow::default()).await.unwrap();
        assert!(matches!(
            sale.order(voucher, &UserId::from(1u64)).await.unwrap(),
            OrderOutcome::Ordered { .. }
        ));
    }
    let mut slots = HashSet::new();
    for voucher in 30..33u64 {
        let shard = voucher % 3;
        let prefix = format!("keygate:seckill:{{keygate:seckill:{shard}}}");
        let dead = format!("{prefix}:orders:dead");
        // Failed once, then dead-lettered by the three-key script on the shard's node.
        assert!(
            eventually(Duration::from_secs(10), async || exists(cluster, &dead)).await,
            "shard {shard} has its dead letter"
        );
        let present = [
            format!("{prefix}:voucher:{voucher}"),
            format!("{prefix}:buyers:{voucher}"),
            format!("{prefix}:orders"),
            format!("{prefix}:seq"),
            dead,
        ];
        for key in &present {
            assert!(exists(cluster, key), "{key} is the real key");
        }
        let mut all = present.to_vec();
        // The errors hash only lives while an entry is failing: checked by name.
        all.push(format!("{prefix}:errors"));
        slots.insert(one_slot(cluster, &all));
    }
    assert_eq!(slots.len(), 3, "the shards hash to different slots");
    assert!(calls.load(Ordering::SeqCst) >= 3);
    consumer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_over_many_slots_split_per_key() {
    let (_turn, b) = crate::turn().await;
    let cluster = b.redis_cluster().unwrap();
    let m = SessionManager::<JavaUser>::from_shared_store(b.sessions(), SessionConfig::java_seed())
        .unwrap();
    let alice = UserId::new("alice").unwrap();
    let mut tokens = Vec::new();
    for _ in 0..30 {
        tokens.push(m.login(&alice, &JavaUser::new(1)).await.unwrap());
    }
    let owners: HashSet<u16> = tokens
        .iter()
        .map(|t| cluster.master_of(&format!("login:token:{}", t.expose())))
        .collect();
    assert_eq!(owners.len(), 3, "one user's sessions live on every master");
    // `list` checks every session key at once, `destroy_all` deletes them all at once.
    assert_eq!(m.sessions(&alice, None).await.unwrap().len(), 30);
    assert_eq!(m.logout_everywhere(&alice).await.unwrap(), 30);
    for token in &tokens {
        assert!(m.load(token).await.unwrap().is_none());
        assert!(!exists(cluster, &format!("login:token:{}", token.expose())));
    }
    assert!(m.sessions(&alice, None).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_acquisitions_can_wait_for_a_replica() {
    let (_turn, b) = crate::turn().await;
    let cluster = b.redis_cluster().unwrap();
    let locks = Locks::from_shared(b.locks()).with_options(
        keygate::lock::LockOptions::new().with_replication_wait(1, Duration::from_secs(1)),
    );
    // Names on every master: WAIT must go to the master of each lock's slot.
    let names: Vec<String> = (0..12).map(|i| format!("order:{i}")).collect();
    let owners: HashSet<u16> = names
        .iter()
        .map(|n| cluster.master_of(&format!("keygate:lock:{{{n}}}")))
        .collect();
    assert_eq!(owners.len(), 3);
    for name in &names {
        let guard = locks.try_acquire(name).await.unwrap();
        let fence_key = format!("keygate:lock:{{{name}}}:fence");
        let stored: u64 = cluster.query_key(&fence_key, redis::cmd("GET").arg(&fence_key));
        assert_eq!(
            guard.fence(),
            stored,
            "the fence written on the lock's master"
        );
        guard.release().await.unwrap();
    }
    // Asking for more replicas than a master has gives the lock back.
    let greedy = Locks::from_shared(b.locks()).with_options(
        keygate::lock::LockOptions::new().with_replication_wait(2, Duration::from_millis(100)),
    );
    assert!(matches!(
        greedy.try_acquire("order:0").await,
        Err(keygate::lock::LockError::NotReplicated {
            acknowledged: 1,
            wanted: 2
        })
    ));
    assert!(!exists(cluster, "keygate:lock:{order:0}"));
}
