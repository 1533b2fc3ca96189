//! Order ids over shards, and how the consumer survives panics, crash loops, busy pending
//! lists and streams that would otherwise grow forever.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use keygate::UserId;
use keygate::flash_sale::{
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
    processed_orders_are_trimmed_from_the_stream,
    trimming_keeps_a_crashed_consumers_orders,
    the_dead_letter_stream_is_capped,
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
        let sale = FlashSale::from_shared(b.flash_sale()).with_shards(shards);
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
    let sale = FlashSale::from_shared(b.flash_sale());
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
    let sale = FlashSale::from_shared(b.flash_sale());
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
    let store = b.flash_sale();
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

/// Item 13: 100,000 orders through the consumer leave a stream of acknowledged entries
/// trimmed to (almost) nothing.
pub async fn processed_orders_are_trimmed_from_the_stream(b: &Backend) {
    const ORDERS: u64 = 100_000;
    const PRODUCERS: u64 = 64;
    let sale = FlashSale::from_shared(b.flash_sale());
    sale.load(23, ORDERS, SaleWindow::default()).await.unwrap();
    let probe = Probe::default();
    let consumer = OrderConsumer::new(
        &sale,
        probe.clone(),
        fast()
            .with_batch(256)
            .with_trim_every(Some(Duration::from_millis(100))),
    )
    .spawn();
    let started = Instant::now();
    let producers: Vec<_> = match b.server() {
        // On Redis, order-shaped entries added in pipelines of 1,000: the stream and the
        // consumer are under test here, not the order script (which the other tests use).
        Some(server) => {
            let url = server.url();
            vec![tokio::task::spawn_blocking(move || {
                let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
                let stream = ShardKeys::new(0).stream;
                for chunk in 0..ORDERS / 1000 {
                    let mut pipe = redis::pipe();
                    for user in chunk * 1000..(chunk + 1) * 1000 {
                        pipe.cmd("XADD")
                            .arg(&stream)
                            .arg("*")
                            .arg("orderId")
                            .arg(user + 1)
                            .arg("userId")
                            .arg(user)
                            .arg("voucherId")
                            .arg(23)
                            .ignore();
                    }
                    let () = pipe.query(&mut conn).unwrap();
                }
            })]
        }
        // In memory, concurrent producers through the order script's twin.
        None => (0..PRODUCERS)
            .map(|first| {
                let sale = sale.clone();
                tokio::spawn(async move {
                    for user in (first..ORDERS).step_by(PRODUCERS as usize) {
                        order_id(sale.order(23, &UserId::from(user)).await.unwrap());
                    }
                })
            })
            .collect(),
    };
    let sampler = {
        let sale = sale.clone();
        let probe = probe.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while probe.handled_count() < ORDERS as usize {
                peak = peak.max(sale.stream_lengths(0).await.unwrap().orders);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        })
    };
    for producer in producers {
        producer.await.unwrap();
    }
    let produced = started.elapsed();
    let all = eventually(Duration::from_secs(120), async || {
        probe.handled_count() == ORDERS as usize
    })
    .await;
    let processed = started.elapsed();
    let peak = sampler.await.unwrap();
    assert!(all, "{} of {ORDERS} handled", probe.handled_count());
    let trimmed = eventually(Duration::from_secs(10), async || {
        sale.stream_lengths(0).await.unwrap().orders <= 1
    })
    .await;
    let lengths = sale.stream_lengths(0).await.unwrap();
    eprintln!(
        "{ORDERS} orders: produced in {produced:?}, processed in {processed:?}; stream length \
         peak {peak}, at the end {}",
        lengths.orders
    );
    assert!(
        trimmed,
        "acknowledged orders are trimmed: {} left",
        lengths.orders
    );
    assert_eq!(lengths.dead_letters, 0);
    consumer.shutdown().await;
}

/// Item 13: trimming never drops an order that is pending with a crashed consumer.
pub async fn trimming_keeps_a_crashed_consumers_orders(b: &Backend) {
    let sale = FlashSale::from_shared(b.flash_sale());
    sale.load(24, 300, SaleWindow::default()).await.unwrap();
    let probe = Probe::default();
    let options = fast()
        .with_claim(Duration::from_secs(4), Duration::from_millis(50))
        .with_trim_every(Some(Duration::from_millis(50)));
    // 100 orders processed and acknowledged.
    let first = OrderConsumer::new(&sale, probe.clone(), options.clone()).spawn();
    let done = order_many(&sale, 24, 0..100).await;
    assert!(
        eventually(Duration::from_secs(10), async || probe
            .has_handled_all(&done))
        .await
    );
    first.shutdown().await;
    // 20 taken by a consumer that crashes with them.
    let lost = order_many(&sale, 24, 100..120).await;
    let hung = Probe::with(Mode::Hang, None);
    let crashed = OrderConsumer::new(&sale, hung.clone(), fast().with_batch(20)).spawn();
    assert!(eventually(Duration::from_secs(5), async || hung.calls() > 0).await);
    crashed.abort();
    // 100 more, processed by a consumer that trims.
    let second = OrderConsumer::new(&sale, probe.clone(), options).spawn();
    let later = order_many(&sale, 24, 120..220).await;
    assert!(
        eventually(Duration::from_secs(10), async || probe
            .has_handled_all(&later))
        .await
    );
    // The first 100 are gone; the crashed consumer's 20, and what follows them, are kept.
    let kept = eventually(Duration::from_secs(3), async || {
        sale.stream_lengths(0).await.unwrap().orders == 120
    })
    .await;
    let lengths = sale.stream_lengths(0).await.unwrap();
    assert!(
        kept,
        "trimmed to the crashed consumer's oldest order: {} entries",
        lengths.orders
    );
    assert!(
        lost.iter().all(|id| !probe.handled().contains(id)),
        "not reclaimed yet"
    );
    // Reclaimed once idle, handled, then trimmed too.
    assert!(
        eventually(Duration::from_secs(15), async || probe
            .has_handled_all(&lost))
        .await,
        "the crashed consumer's orders survived the trims and were reclaimed"
    );
    assert!(
        eventually(Duration::from_secs(5), async || sale
            .stream_lengths(0)
            .await
            .unwrap()
            .orders
            <= 1)
        .await
    );
    second.shutdown().await;
}

/// Item 13: the dead-letter stream keeps the newest `cap` entries.
pub async fn the_dead_letter_stream_is_capped(b: &Backend) {
    let sale = FlashSale::from_shared(b.flash_sale());
    sale.load(25, 30, SaleWindow::default()).await.unwrap();
    let probe = Probe::with(Mode::Fail, None);
    let options = fast()
        .with_claim(Duration::from_millis(50), Duration::from_millis(50))
        .with_max_deliveries(1)
        .with_dead_letter_cap(10);
    let consumer = OrderConsumer::new(&sale, probe.clone(), options).spawn();
    let ids = order_many(&sale, 25, 0..30).await;
    let last = ids[29].to_string();
    // Each fails once and is dead-lettered on its next delivery, in order.
    assert!(
        eventually(Duration::from_secs(15), async || {
            let dead = sale.dead_letters(0, 100).await.unwrap();
            dead.iter().any(|e| field(e, "orderId") == last)
        })
        .await
    );
    let dead = sale.dead_letters(0, 100).await.unwrap();
    let kept: Vec<String> = dead
        .iter()
        .map(|e| field(e, "orderId").to_owned())
        .collect();
    let newest: Vec<String> = ids[20..].iter().map(u64::to_string).collect();
    assert_eq!(kept, newest, "the newest 10 dead letters are kept");
    assert_eq!(dead_letters(&sale).await, 10);
    consumer.shutdown().await;
}
