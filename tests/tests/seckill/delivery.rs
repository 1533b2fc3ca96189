//! Order ids over shards, and how the consumer survives panics, crash loops, busy pending
//! lists and streams that would otherwise grow forever (review, issue 14, items 9–13).

use std::collections::HashSet;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use keygate::UserId;
use keygate::seckill::{
    Entry, FlashSale, HandlerError, ORDER_SEQ_SPAN, Order, OrderConsumer, OrderHandler,
    OrderOutcome, SaleWindow, ShardKeys,
};
use keygate_tests::eventually;
use keygate_tests::fixtures::Backend;

use crate::suite::fast;

keygate_tests::on_both_backends!(crate::delivery:
    order_ids_are_unique_for_any_shard_count,
    a_panicking_handler_does_not_stop_the_consumer,
    a_consumer_restarting_under_its_name_dead_letters_a_poison_order,
    reclaiming_gets_past_busy_entries,
);

const GROUP: &str = "keygate-orders";

/// What the probe does with the orders it misbehaves on.
#[derive(Clone, Copy, Default)]
enum Mode {
    #[default]
    Succeed,
    Panic,
    Hang,
    Fail,
}

/// Records the orders it handled; misbehaves (per `mode`) on the orders of `poison`, or on
/// every order when `poison` is `None`.
#[derive(Clone, Default)]
struct Probe {
    handled: Arc<Mutex<HashSet<u64>>>,
    calls: Arc<AtomicUsize>,
    poison: Option<String>,
    mode: Mode,
}

#[async_trait]
impl OrderHandler for Probe {
    async fn handle(&self, order: &Order) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self
            .poison
            .as_deref()
            .is_none_or(|user| user == order.user_id)
        {
            match self.mode {
                Mode::Succeed => {}
                Mode::Panic => panic!("handler bug"),
                Mode::Hang => std::future::pending::<()>().await,
                Mode::Fail => return Err(HandlerError("database down".into())),
            }
        }
        self.handled.lock().unwrap().insert(order.order_id);
        Ok(())
    }
}

impl Probe {
    fn with(mode: Mode, poison: Option<u64>) -> Self {
        Self {
            mode,
            poison: poison.map(|user| user.to_string()),
            ..Self::default()
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn handled(&self) -> HashSet<u64> {
        self.handled.lock().unwrap().clone()
    }

    fn handled_count(&self) -> usize {
        self.handled.lock().unwrap().len()
    }

    fn has_handled_all(&self, ids: &[u64]) -> bool {
        let handled = self.handled.lock().unwrap();
        ids.iter().all(|id| handled.contains(id))
    }
}

fn order_id(outcome: OrderOutcome) -> u64 {
    match outcome {
        OrderOutcome::Ordered { order_id } => order_id,
        other => panic!("not ordered: {other:?}"),
    }
}

/// One order of `voucher` per user, one after the other; their ids.
async fn order_many(sale: &FlashSale, voucher: u64, users: Range<u64>) -> Vec<u64> {
    let mut ids = Vec::new();
    for user in users {
        ids.push(order_id(
            sale.order(voucher, &UserId::from(user)).await.unwrap(),
        ));
    }
    ids
}

fn field<'a>(entry: &'a Entry, name: &str) -> &'a str {
    entry
        .fields
        .iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.as_str())
}

async fn dead_letters(sale: &FlashSale) -> u64 {
    sale.stream_lengths(0).await.unwrap().dead_letters
}

/// Item 9: ids never collide across shards, whatever the shard count, and grow per shard.
pub async fn order_ids_are_unique_for_any_shard_count(b: &Backend) {
    const PER_SHARD: u64 = 40;
    for shards in [1u64, 2, 3, 7, 16] {
        let sale = FlashSale::from_shared(b.seckill()).with_shards(shards);
        // One voucher per shard (consecutive ids cover every residue).
        let vouchers: Vec<u64> = (0..shards).map(|i| 1000 + shards * 100 + i).collect();
        for &voucher in &vouchers {
            sale.load(voucher, PER_SHARD, SaleWindow::default())
                .await
                .unwrap();
        }
        if let Some(server) = b.server() {
            // Shard 0 has taken about 10^7 / shards orders before (its sequence key holds
            // that count, as an `INCR` counter did): where an interleaving modulo 10^7
            // wraps around.
            let taken = ORDER_SEQ_SPAN / shards - PER_SHARD / 2;
            let _: () = server.query(redis::cmd("SET").arg(ShardKeys::new(0).seq).arg(taken));
        }
        let mut ids = HashSet::new();
        let mut last = vec![0u64; usize::try_from(shards).unwrap()];
        // Round-robin over the shards: orders of every shard within the same seconds.
        for user in 0..PER_SHARD {
            for &voucher in &vouchers {
                let shard = usize::try_from(voucher % shards).unwrap();
                let id = order_id(sale.order(voucher, &UserId::from(user)).await.unwrap());
                assert!(
                    ids.insert(id),
                    "{shards} shards: order id {id} issued twice (shard {shard}, user {user})"
                );
                assert!(
                    id > last[shard],
                    "{shards} shards: shard {shard} issued {id} after {}",
                    last[shard]
                );
                assert!(id < 1 << 53, "JavaScript reads {id} exactly");
                last[shard] = id;
            }
        }
        assert_eq!(ids.len() as u64, shards * PER_SHARD);
    }
}

/// Item 10: a handler that panics is a failed delivery, not a dead worker.
pub async fn a_panicking_handler_does_not_stop_the_consumer(b: &Backend) {
    let sale = FlashSale::from_shared(b.seckill());
    sale.load(20, 10, SaleWindow::default()).await.unwrap();
    let probe = Probe::with(Mode::Panic, Some(13));
    let options = fast()
        .with_claim(Duration::from_millis(50), Duration::from_millis(50))
        .with_max_deliveries(2);
    let consumer = OrderConsumer::new(&sale, probe.clone(), options).spawn();
    let poison = order_id(sale.order(20, &UserId::from(13u64)).await.unwrap());
    assert!(eventually(Duration::from_secs(5), async || probe.calls() >= 1).await);
    let fine = order_id(sale.order(20, &UserId::from(1u64)).await.unwrap());
    assert!(
        eventually(Duration::from_secs(10), async || probe
            .has_handled_all(&[fine]))
        .await,
        "the shard's worker survived the panic and handled the next order"
    );
    assert!(
        eventually(Duration::from_secs(10), async || dead_letters(&sale).await
            == 1)
        .await,
        "the panicking order is dead-lettered after 2 deliveries"
    );
    let dead = sale.dead_letters(0, 10).await.unwrap();
    assert_eq!(field(&dead[0], "orderId"), poison.to_string());
    assert_eq!(field(&dead[0], "error"), "handler panicked");
    assert_eq!(
        probe.calls(),
        3,
        "2 panicking deliveries and the good order"
    );
    consumer.shutdown().await;
}

/// Item 11: a consumer that crashes on an order and restarts under the same name sees the
/// real delivery count and dead-letters the order after the limit.
pub async fn a_consumer_restarting_under_its_name_dead_letters_a_poison_order(b: &Backend) {
    let sale = FlashSale::from_shared(b.seckill());
    sale.load(21, 10, SaleWindow::default()).await.unwrap();
    // Hangs on every order: each start ends as a crash would, with the order in hand.
    let probe = Probe::with(Mode::Hang, None);
    let options = fast()
        .with_name("fixed")
        .with_claim(Duration::from_secs(60), Duration::from_millis(50))
        .with_max_deliveries(3);
    let poison = order_id(sale.order(21, &UserId::from(1u64)).await.unwrap());
    let mut starts = 0;
    while starts < 8 {
        starts += 1;
        let before = probe.calls();
        let consumer = OrderConsumer::new(&sale, probe.clone(), options.clone()).spawn();
        let progressed = eventually(Duration::from_secs(10), async || {
            probe.calls() > before || dead_letters(&sale).await == 1
        })
        .await;
        consumer.abort();
        assert!(
            progressed,
            "start {starts} took the order or dead-lettered it"
        );
        if dead_letters(&sale).await == 1 {
            break;
        }
    }
    assert_eq!(
        dead_letters(&sale).await,
        1,
        "dead-lettered after {starts} starts and {} deliveries",
        probe.calls()
    );
    assert_eq!(probe.calls(), 3, "handled max_deliveries times");
    assert_eq!(starts, 4, "the fourth start dead-letters it");
    let dead = sale.dead_letters(0, 10).await.unwrap();
    assert_eq!(field(&dead[0], "orderId"), poison.to_string());
    assert_eq!(dead[0].deliveries, 4);
}

/// Item 12: idle entries behind more busy ones than one claim scans are still reclaimed.
pub async fn reclaiming_gets_past_busy_entries(b: &Backend) {
    const IDLE: Duration = Duration::from_secs(3);
    let store = b.seckill();
    let sale = FlashSale::from_shared(store.clone());
    let keys = ShardKeys::new(0);
    sale.load(22, 300, SaleWindow::default()).await.unwrap();
    store.ensure_group(&keys, GROUP).await.unwrap();
    let mut reader = store.reader().await.unwrap();
    // 200 orders taken by a live consumer, then 20 by one that crashes.
    let busy = order_many(&sale, 22, 0..200).await;
    let taken = reader
        .read_new(&keys, GROUP, "busy", 200, 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 200);
    let lost = order_many(&sale, 22, 200..220).await;
    let taken = reader.read_new(&keys, GROUP, "lost", 20, 10).await.unwrap();
    assert_eq!(taken.len(), 20);
    // The crashed consumer's entries go idle (the wait is the condition: idle time)...
    tokio::time::sleep(IDLE).await;
    // ... while the live one works through its own again: recently delivered, not idle.
    let again = store
        .read_own_pending(&keys, GROUP, "busy", 200)
        .await
        .unwrap();
    assert_eq!(again.len(), 200);
    let refreshed = Instant::now();
    // Batches of 16: one XAUTOCLAIM looks at 160 pending entries at most.
    let probe = Probe::default();
    let consumer = OrderConsumer::new(
        &sale,
        probe.clone(),
        fast().with_claim(IDLE, Duration::from_millis(50)),
    )
    .spawn();
    let reclaimed = eventually(IDLE - Duration::from_secs(1), async || {
        probe.has_handled_all(&lost)
    })
    .await;
    let handled = probe.handled();
    let in_time = refreshed.elapsed() < IDLE;
    assert!(
        reclaimed,
        "the crashed consumer's 20 orders were reclaimed past 200 busy ones ({} handled)",
        handled.len()
    );
    assert!(in_time, "checked before the busy entries went idle");
    assert!(
        busy.iter().all(|id| !handled.contains(id)),
        "busy entries stay with their consumer"
    );
    consumer.shutdown().await;
}
