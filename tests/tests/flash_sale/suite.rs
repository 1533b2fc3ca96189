use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use keygate::UserId;
use keygate::flash_sale::{
    ConsumerOptions, FlashSale, HandlerError, MAX_STOCK, ORDER_ID_EPOCH, ORDER_SEQ_SPAN, Order,
    OrderConsumer, OrderHandler, OrderOutcome, SaleWindow,
};
use keygate_tests::eventually;
use keygate_tests::fixtures::Backend;
use tokio::sync::Mutex;

fn sale(b: &Backend) -> FlashSale {
    FlashSale::from_shared(b.flash_sale())
}

pub fn fast() -> ConsumerOptions {
    ConsumerOptions::new()
        .with_block(Duration::from_millis(100))
        .with_claim(Duration::from_millis(300), Duration::from_millis(100))
}

/// Records orders; optionally fails or hangs.
#[derive(Clone, Default)]
pub struct Recorder {
    pub seen: Arc<Mutex<Vec<Order>>>,
    calls: Arc<AtomicUsize>,
    fail: bool,
    hang: bool,
}

#[async_trait]
impl OrderHandler for Recorder {
    async fn handle(&self, order: &Order) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.hang {
            std::future::pending::<()>().await;
        }
        if self.fail {
            return Err(HandlerError("database down".into()));
        }
        // A slow database write.
        tokio::time::sleep(Duration::from_millis(1)).await;
        self.seen.lock().await.push(order.clone());
        Ok(())
    }
}

impl Recorder {
    pub async fn ids(&self) -> HashSet<u64> {
        self.seen.lock().await.iter().map(|o| o.order_id).collect()
    }
}

async fn take_orders(
    sale: &FlashSale,
    voucher: u64,
    users: u64,
    attempts: u64,
) -> Vec<(u64, OrderOutcome)> {
    let tasks: Vec<_> = (0..attempts)
        .map(|i| {
            let sale = sale.clone();
            let user = i % users;
            tokio::spawn(async move {
                (
                    user,
                    sale.order(voucher, &UserId::from(user)).await.unwrap(),
                )
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

fn ordered(results: &[(u64, OrderOutcome)]) -> Vec<(u64, u64)> {
    results
        .iter()
        .filter_map(|(user, o)| match o {
            OrderOutcome::Ordered { order_id } => Some((*user, *order_id)),
            _ => None,
        })
        .collect()
}

pub async fn never_oversells_never_sells_twice(b: &Backend) {
    let sale = sale(b);
    sale.load(1, 100, SaleWindow::default()).await.unwrap();
    // 2,000 attempts from 500 users: every user tries 4 times.
    let results = take_orders(&sale, 1, 500, 2000).await;
    let orders = ordered(&results);
    assert_eq!(orders.len(), 100, "exactly the stock");
    let buyers: HashSet<u64> = orders.iter().map(|(u, _)| *u).collect();
    assert_eq!(buyers.len(), 100, "one per user");
    let ids: HashSet<u64> = orders.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids.len(), 100, "unique order ids");
    assert_eq!(sale.stock(1).await.unwrap(), Some(0), "never negative");
    let sold_out = results
        .iter()
        .filter(|(_, o)| *o == OrderOutcome::SoldOut)
        .count();
    let again = results
        .iter()
        .filter(|(_, o)| *o == OrderOutcome::AlreadyOrdered)
        .count();
    assert_eq!(sold_out + again, 1900);
    assert!(
        again >= 300,
        "each buyer's retries are refused as already ordered"
    );
}

pub async fn the_consumer_sees_every_order_once_acked(b: &Backend) {
    let sale = sale(b);
    sale.load(2, 50, SaleWindow::default()).await.unwrap();
    let recorder = Recorder::default();
    let consumer = OrderConsumer::new(&sale, recorder.clone(), fast()).spawn();
    let orders = ordered(&take_orders(&sale, 2, 80, 80).await);
    let expected: HashSet<u64> = orders.iter().map(|(_, id)| *id).collect();
    assert_eq!(expected.len(), 50);
    assert!(
        eventually(Duration::from_secs(10), async || recorder.ids().await
            == expected)
        .await
    );
    let seen = recorder.seen.lock().await.clone();
    for order in &seen {
        assert_eq!(order.voucher_id, 2);
        assert!(orders.contains(&(order.user_id.parse().unwrap(), order.order_id)));
    }
    consumer.shutdown().await;
    if let Some(server) = b.server() {
        let stream = "keygate:seckill:{keygate:seckill:0}:orders";
        let pending: Vec<redis::Value> =
            server.query(redis::cmd("XPENDING").arg(stream).arg("keygate-orders"));
        assert_eq!(
            pending.first(),
            Some(&redis::Value::Int(0)),
            "every order acknowledged"
        );
    }
}

pub async fn a_crashed_consumers_orders_are_reclaimed(b: &Backend) {
    let sale = sale(b);
    sale.load(3, 20, SaleWindow::default()).await.unwrap();
    let stuck = Recorder {
        hang: true,
        ..Recorder::default()
    };
    let first = OrderConsumer::new(&sale, stuck.clone(), fast().with_batch(100)).spawn();
    let orders = ordered(&take_orders(&sale, 3, 20, 20).await);
    // The first consumer takes the batch and hangs on it; then it dies.
    assert!(
        eventually(Duration::from_secs(5), async || stuck
            .calls
            .load(Ordering::SeqCst)
            > 0)
        .await
    );
    first.abort();
    let recorder = Recorder::default();
    let second = OrderConsumer::new(&sale, recorder.clone(), fast()).spawn();
    let expected: HashSet<u64> = orders.iter().map(|(_, id)| *id).collect();
    assert!(
        eventually(Duration::from_secs(10), async || recorder.ids().await
            == expected)
        .await,
        "the second consumer processed the dead one's orders"
    );
    second.shutdown().await;
}

pub async fn failing_orders_are_retried_then_dead_lettered(b: &Backend) {
    let sale = sale(b);
    sale.load(4, 1, SaleWindow::default()).await.unwrap();
    let failing = Recorder {
        fail: true,
        ..Recorder::default()
    };
    let options = fast()
        .with_claim(Duration::from_millis(50), Duration::from_millis(50))
        .with_max_deliveries(3);
    let consumer = OrderConsumer::new(&sale, failing.clone(), options).spawn();
    let order = sale.order(4, &UserId::from(1u64)).await.unwrap();
    let OrderOutcome::Ordered { order_id } = order else {
        panic!("{order:?}")
    };
    let dead = async || {
        b.server().is_none_or(|server| {
            let entries: Vec<(String, Vec<(String, String)>)> = server.query(
                redis::cmd("XRANGE")
                    .arg("keygate:seckill:{keygate:seckill:0}:orders:dead")
                    .arg("-")
                    .arg("+"),
            );
            entries.len() == 1
                && entries[0]
                    .1
                    .contains(&("error".into(), "database down".into()))
                && entries[0]
                    .1
                    .contains(&("orderId".into(), order_id.to_string()))
        })
    };
    assert!(
        eventually(Duration::from_secs(10), async || failing
            .calls
            .load(Ordering::SeqCst)
            == 3
            && dead().await)
        .await
    );
    // Dead-lettered: no fourth attempt.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        failing.calls.load(Ordering::SeqCst),
        3,
        "handled 3 times, then dead-lettered"
    );
    consumer.shutdown().await;
}

pub async fn order_ids_are_unique_and_increasing(b: &Backend) {
    let sale = sale(b);
    sale.load(5, 1000, SaleWindow::default()).await.unwrap();
    let mut last = 0;
    for user in 0..300u64 {
        match sale.order(5, &UserId::from(user)).await.unwrap() {
            OrderOutcome::Ordered { order_id } => {
                assert!(order_id > last, "{order_id} after {last}");
                last = order_id;
            }
            other => panic!("{other:?}"),
        }
    }
    // Roughly time-ordered: seconds since 2024-01-01 in the high digits.
    let since_2024 = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - ORDER_ID_EPOCH;
    assert!((last / ORDER_SEQ_SPAN).abs_diff(since_2024) <= 5);
    assert!(last < 1 << 53, "JavaScript reads the id exactly");
}

pub async fn the_sale_window_is_respected(b: &Backend) {
    let sale = sale(b);
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    sale.load(
        6,
        10,
        SaleWindow {
            begin: Some(now + hour),
            end: None,
        },
    )
    .await
    .unwrap();
    sale.load(
        7,
        10,
        SaleWindow {
            begin: Some(now - hour - hour),
            end: Some(now - hour),
        },
    )
    .await
    .unwrap();
    sale.load(
        8,
        10,
        SaleWindow {
            begin: Some(now - hour),
            end: Some(now + hour),
        },
    )
    .await
    .unwrap();
    let user = UserId::from(1u64);
    assert_eq!(
        sale.order(6, &user).await.unwrap(),
        OrderOutcome::NotStarted
    );
    assert_eq!(sale.order(7, &user).await.unwrap(), OrderOutcome::Ended);
    assert!(matches!(
        sale.order(8, &user).await.unwrap(),
        OrderOutcome::Ordered { .. }
    ));
    assert_eq!(
        sale.stock(6).await.unwrap(),
        Some(10),
        "refused orders take no stock"
    );
    assert!(
        sale.load(
            9,
            1,
            SaleWindow {
                begin: Some(now),
                end: Some(now - hour)
            }
        )
        .await
        .is_err()
    );
}

pub async fn unknown_vouchers_are_reported_not_errors(b: &Backend) {
    let sale = sale(b);
    assert_eq!(
        sale.order(404, &UserId::from(1u64)).await.unwrap(),
        OrderOutcome::UnknownVoucher
    );
    assert_eq!(sale.stock(404).await.unwrap(), None);
    // Reloading resets stock and buyers.
    sale.load(10, 1, SaleWindow::default()).await.unwrap();
    assert!(matches!(
        sale.order(10, &UserId::from(1u64)).await.unwrap(),
        OrderOutcome::Ordered { .. }
    ));
    sale.load(10, 1, SaleWindow::default()).await.unwrap();
    assert!(matches!(
        sale.order(10, &UserId::from(1u64)).await.unwrap(),
        OrderOutcome::Ordered { .. }
    ));
}

/// A stock the order script could not decrement (above a signed 64-bit integer) is refused
/// by `load` itself, and the sale loaded before stays as it was.
pub async fn a_stock_the_script_cannot_hold_is_refused(b: &Backend) {
    let sale = sale(b);
    sale.load(12, 3, SaleWindow::default()).await.unwrap();
    for stock in [MAX_STOCK + 1, u64::MAX] {
        let refused = sale.load(12, stock, SaleWindow::default()).await;
        assert!(
            matches!(refused, Err(keygate::Error::Config(_))),
            "stock {stock}: {refused:?}"
        );
        let fresh = sale.load(13, stock, SaleWindow::default()).await;
        assert!(fresh.is_err(), "stock {stock} for a new voucher: {fresh:?}");
    }
    assert_eq!(
        sale.stock(12).await.unwrap(),
        Some(3),
        "the old sale is kept"
    );
    assert_eq!(sale.stock(13).await.unwrap(), None, "no sale was created");
    // The largest accepted stock still sells.
    sale.load(14, MAX_STOCK, SaleWindow::default())
        .await
        .unwrap();
    assert!(matches!(
        sale.order(14, &UserId::from(1u64)).await.unwrap(),
        OrderOutcome::Ordered { .. }
    ));
    assert_eq!(
        sale.stock(14).await.unwrap(),
        Some(i64::MAX - 1),
        "decremented once"
    );
}

/// Holds each order until released, to observe shutdown.
#[derive(Clone)]
struct Gate {
    entered: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Semaphore>,
    done: Arc<AtomicUsize>,
}

#[async_trait]
impl OrderHandler for Gate {
    async fn handle(&self, _order: &Order) -> Result<(), HandlerError> {
        self.entered.notify_one();
        let _permit = self
            .release
            .acquire()
            .await
            .map_err(|e| HandlerError(e.to_string()))?;
        self.done.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

pub async fn shutdown_finishes_the_order_in_hand(b: &Backend) {
    let sale = sale(b);
    sale.load(11, 5, SaleWindow::default()).await.unwrap();
    let gate = Gate {
        entered: Arc::default(),
        release: Arc::new(tokio::sync::Semaphore::new(0)),
        done: Arc::default(),
    };
    let consumer = OrderConsumer::new(&sale, gate.clone(), fast().with_batch(1)).spawn();
    sale.order(11, &UserId::from(1u64)).await.unwrap();
    gate.entered.notified().await;
    let shutdown = tokio::spawn(consumer.shutdown());
    gate.release.add_permits(1);
    shutdown.await.unwrap();
    assert_eq!(
        gate.done.load(Ordering::SeqCst),
        1,
        "the order in hand was finished"
    );
}

pub async fn status_reports_stock_buyers_streams_and_groups(b: &Backend) {
    let sale = sale(b);
    assert_eq!(sale.status(12).await.unwrap(), None, "no sale loaded");
    sale.load(11, 3, SaleWindow::default()).await.unwrap();
    let fresh = sale.status(11).await.unwrap().unwrap();
    assert_eq!((fresh.stock, fresh.buyers, fresh.shard), (3, 0, 0));
    for user in [1u64, 2] {
        let outcome = sale.order(11, &UserId::from(user)).await.unwrap();
        assert!(
            matches!(outcome, OrderOutcome::Ordered { .. }),
            "{outcome:?}"
        );
    }
    // A consumer that takes both orders and hangs on the first: both stay pending with it.
    let hanging = Recorder {
        hang: true,
        ..Recorder::default()
    };
    let consumer = OrderConsumer::new(&sale, hanging, fast().with_name("worker-a")).spawn();
    let mut status = None;
    let settled = eventually(Duration::from_secs(10), async || {
        let s = sale.status(11).await.unwrap().unwrap();
        let done = s.groups.len() == 1 && s.groups[0].pending == 2;
        status = Some(s);
        done
    })
    .await;
    consumer.abort();
    let status = status.unwrap();
    assert!(settled, "{status:?}");
    assert_eq!((status.stock, status.buyers), (1, 2));
    assert_eq!(status.streams.orders, 2);
    assert_eq!(status.streams.dead_letters, 0);
    let group = &status.groups[0];
    assert_eq!(group.name, "keygate-orders");
    assert_eq!(group.lag, Some(0), "everything was delivered");
    assert_eq!(group.consumers.len(), 1);
    assert_eq!(group.consumers[0].name, "worker-a");
    assert_eq!(group.consumers[0].pending, 2);
}

pub async fn dead_letters_are_replayed_exactly_once_or_dropped(b: &Backend) {
    let sale = sale(b);
    sale.load(9, 5, SaleWindow::default()).await.unwrap();
    let failing = Recorder {
        fail: true,
        ..Recorder::default()
    };
    let options = fast()
        .with_claim(Duration::from_millis(50), Duration::from_millis(50))
        .with_max_deliveries(1)
        .with_trim_every(None);
    let consumer = OrderConsumer::new(&sale, failing, options).spawn();
    let mut order_ids = HashSet::new();
    for user in [1u64, 2] {
        let OrderOutcome::Ordered { order_id } = sale.order(9, &UserId::from(user)).await.unwrap()
        else {
            panic!("ordered")
        };
        order_ids.insert(order_id);
    }
    let shard = sale.shard_of(9);
    assert!(
        eventually(Duration::from_secs(10), async || sale
            .stream_lengths(shard)
            .await
            .unwrap()
            .dead_letters
            == 2)
        .await
    );
    consumer.shutdown().await;
    let dead = sale.dead_letters(shard, 10).await.unwrap();
    let replayed_order = dead[0].order().unwrap().order_id;
    let before = sale.stream_lengths(shard).await.unwrap().orders;

    // Only the voucher's own dead letters, only well-formed ids.
    assert_eq!(
        sale.replay_dead_letter(10, &dead[0].id).await.unwrap(),
        None
    );
    assert_eq!(sale.replay_dead_letter(9, "not-an-id").await.unwrap(), None);
    assert_eq!(sale.replay_dead_letter(9, "1-999").await.unwrap(), None);

    let entry = sale.replay_dead_letter(9, &dead[0].id).await.unwrap();
    assert!(entry.is_some(), "replayed");
    assert_eq!(
        sale.replay_dead_letter(9, &dead[0].id).await.unwrap(),
        None,
        "a second replay finds nothing"
    );
    let lengths = sale.stream_lengths(shard).await.unwrap();
    assert_eq!(lengths.orders, before + 1, "enqueued exactly once");
    assert_eq!(lengths.dead_letters, 1);

    // The consumers get the order again, with its order id.
    let recorder = Recorder::default();
    let consumer = OrderConsumer::new(&sale, recorder.clone(), fast()).spawn();
    assert!(
        eventually(Duration::from_secs(10), async || recorder.ids().await
            == HashSet::from([replayed_order]))
        .await
    );
    consumer.shutdown().await;
    assert_eq!(recorder.seen.lock().await.len(), 1, "handled once");
    assert!(order_ids.contains(&replayed_order));

    assert!(!sale.drop_dead_letter(10, &dead[1].id).await.unwrap());
    assert!(sale.drop_dead_letter(9, &dead[1].id).await.unwrap());
    assert!(!sale.drop_dead_letter(9, &dead[1].id).await.unwrap());
    assert_eq!(sale.stream_lengths(shard).await.unwrap().dead_letters, 0);
}

/// A shutdown while the consumer waits in a blocking read (XREADGROUP … BLOCK, here 30 s)
/// ends within a second, far before the block would, and on Redis leaves no blocked client
/// behind (an order arriving later is not taken by the stopped consumer).
pub async fn shutdown_during_a_blocking_read_is_prompt(b: &Backend) {
    const BLOCK: Duration = Duration::from_secs(30);
    let sale = sale(b);
    sale.load(13, 5, SaleWindow::default()).await.unwrap();
    let options = ConsumerOptions::new()
        .with_block(BLOCK)
        .with_claim(Duration::from_secs(60), Duration::from_secs(60));
    let recorder = Recorder::default();
    let consumer = OrderConsumer::new(&sale, recorder.clone(), options).spawn();
    let blocked_readers = || -> usize {
        let Some(server) = b.server() else { return 0 };
        let clients: String = server.query(redis::cmd("CLIENT").arg("LIST"));
        clients
            .lines()
            .filter(|l| l.contains("cmd=xreadgroup") && l.contains("flags=b"))
            .count()
    };
    match b.server() {
        // The read is in flight: Redis holds the consumer's connection blocked.
        Some(_) => assert!(
            eventually(Duration::from_secs(5), async || blocked_readers() == 1).await,
            "the consumer blocks in XREADGROUP"
        ),
        None => tokio::time::sleep(Duration::from_millis(300)).await,
    }
    let started = std::time::Instant::now();
    consumer.shutdown().await;
    let took = started.elapsed();
    eprintln!("shutdown during a {BLOCK:?} blocking read took {took:?}");
    assert!(
        took < Duration::from_secs(1),
        "shutdown took {took:?} with a read blocking for {BLOCK:?}"
    );
    if b.server().is_some() {
        assert!(
            eventually(Duration::from_secs(1), async || blocked_readers() == 0).await,
            "a blocked read outlived the consumer"
        );
    }
    sale.order(13, &UserId::from(1u64)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        recorder.ids().await.is_empty(),
        "a stopped consumer took an order"
    );
}
