//! Flash sales: order attempts per second through the order script with 64 concurrent
//! clients, sold-out rejections per second, and how fast `OrderConsumer` drains the orders
//! stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keygate::flash_sale::{
    ConsumerOptions, FlashSale, HandlerError, Order, OrderConsumer, OrderHandler, OrderOutcome,
    SaleWindow,
};
use keygate::{RedisStore, UserId};
use tokio::time::Instant;

use crate::Result;
use crate::args::Options;
use crate::redis_admin;
use crate::servers::WORKERS;
use crate::stats::{latency_percentiles, micros};

/// Concurrent clients ordering.
pub const CLIENTS: usize = 64;

/// Longest the consumer may take to drain the stream.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct FlashSaleReport {
    pub duration: Duration,
    /// Orders taken per second (ample stock, a new user each attempt).
    pub orders_per_sec: f64,
    pub order_p50_us: f64,
    pub order_p99_us: f64,
    /// Attempts on a sold-out voucher rejected per second.
    pub rejections_per_sec: f64,
    pub rejection_p50_us: f64,
    pub rejection_p99_us: f64,
    /// Unexpected outcomes and errors in both phases.
    pub errors: u64,
    /// Orders in the stream and how long the consumer took to handle them all.
    pub stream_orders: u64,
    pub consumed: u64,
    pub consume_secs: f64,
    pub consumer_batch: usize,
}

impl FlashSaleReport {
    pub fn consumed_per_sec(&self) -> f64 {
        if self.consume_secs > 0.0 {
            self.consumed as f64 / self.consume_secs
        } else {
            0.0
        }
    }
}

/// Counts what it is handed: the cheapest possible handler, so the consumer's own cost
/// shows.
struct Counting(Arc<AtomicU64>);

#[async_trait::async_trait]
impl OrderHandler for Counting {
    async fn handle(&self, _order: &Order) -> std::result::Result<(), HandlerError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

pub fn run(options: &Options) -> Result<FlashSaleReport> {
    eprintln!("flash-sale: orders, sold-out rejections, stream consumer ...");
    let redis = redis_admin::start()?;
    let url = redis.url();
    let duration = options.duration;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()?;
    let report = rt.block_on(async move {
        let sale = FlashSale::new(RedisStore::connect(&url).await?);
        let mut report = FlashSaleReport {
            duration,
            consumer_batch: 16,
            ..FlashSaleReport::default()
        };
        const PLENTY: u64 = 100_000_000;
        const SOLD_OUT: u64 = 2;
        sale.load(1, PLENTY, SaleWindow::default()).await?;
        sale.load(SOLD_OUT, 0, SaleWindow::default()).await?;

        let users = Arc::new(AtomicU64::new(1));
        let (ordered, mut latencies, errors) = attempts(&sale, 1, &users, duration, |o| {
            matches!(o, OrderOutcome::Ordered { .. })
        })
        .await?;
        report.orders_per_sec = ordered as f64 / duration.as_secs_f64();
        (report.order_p50_us, report.order_p99_us) = latency_percentiles(&mut latencies);
        report.errors += errors;
        report.stream_orders = ordered;
        eprintln!("flash-sale:   {:.0} orders/s", report.orders_per_sec);

        let (rejected, mut latencies, errors) = attempts(&sale, SOLD_OUT, &users, duration, |o| {
            matches!(o, OrderOutcome::SoldOut)
        })
        .await?;
        report.rejections_per_sec = rejected as f64 / duration.as_secs_f64();
        (report.rejection_p50_us, report.rejection_p99_us) = latency_percentiles(&mut latencies);
        report.errors += errors;
        eprintln!(
            "flash-sale:   {:.0} sold-out rejections/s",
            report.rejections_per_sec
        );

        let handled = Arc::new(AtomicU64::new(0));
        let options = ConsumerOptions::new()
            .with_batch(report.consumer_batch)
            .with_block(Duration::from_millis(100));
        let start = Instant::now();
        let consumer = OrderConsumer::new(&sale, Counting(Arc::clone(&handled)), options).spawn();
        while handled.load(Ordering::Relaxed) < ordered && start.elapsed() < DRAIN_LIMIT {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        report.consume_secs = start.elapsed().as_secs_f64();
        report.consumed = handled.load(Ordering::Relaxed);
        consumer.shutdown().await;
        eprintln!(
            "flash-sale:   consumer: {} of {} orders in {:.2} s",
            report.consumed, ordered, report.consume_secs
        );
        Ok::<_, crate::Error>(report)
    })?;
    drop(redis);
    Ok(report)
}

/// `CLIENTS` tasks ordering `voucher` as new users until `duration` is over. Returns the
/// attempts whose outcome is `expected`, their latencies, and the other attempts.
async fn attempts(
    sale: &FlashSale,
    voucher: u64,
    users: &Arc<AtomicU64>,
    duration: Duration,
    expected: fn(&OrderOutcome) -> bool,
) -> Result<(u64, Vec<u32>, u64)> {
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let sale = sale.clone();
            let users = Arc::clone(users);
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(1 << 14);
                let mut errors = 0u64;
                loop {
                    let start = Instant::now();
                    if start >= deadline {
                        break;
                    }
                    let user = UserId::from(users.fetch_add(1, Ordering::Relaxed));
                    match sale.order(voucher, &user).await {
                        Ok(outcome) if expected(&outcome) => {
                            latencies.push(micros(start.elapsed()));
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await?;
        latencies.extend(l);
        errors += e;
    }
    Ok((latencies.len() as u64, latencies, errors))
}
