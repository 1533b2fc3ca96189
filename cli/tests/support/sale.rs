//! Flash-sale orders that end up as dead letters, through the real consumer.

use std::time::Duration;

use async_trait::async_trait;
use keygate::UserId;
use keygate::flash_sale::{
    ConsumerOptions, FlashSale, HandlerError, Order, OrderConsumer, OrderHandler, OrderOutcome,
    SaleWindow,
};
use keygate_tests::eventually;

/// A handler whose database is down.
struct Failing;

#[async_trait]
impl OrderHandler for Failing {
    async fn handle(&self, _order: &Order) -> Result<(), HandlerError> {
        Err(HandlerError("database down".into()))
    }
}

/// Loads `voucher` with `stock`, orders it for `users`, and lets a failing consumer
/// dead-letter every order (one delivery each, no trimming); returns the order ids.
pub async fn dead_lettered_orders(
    sale: &FlashSale,
    voucher: u64,
    stock: u64,
    users: &[u64],
) -> Vec<u64> {
    let shard = sale.shard_of(voucher);
    let before = sale.stream_lengths(shard).await.unwrap().dead_letters;
    sale.load(voucher, stock, SaleWindow::default())
        .await
        .unwrap();
    let options = ConsumerOptions::new()
        .with_block(Duration::from_millis(50))
        .with_claim(Duration::from_millis(50), Duration::from_millis(50))
        .with_max_deliveries(1)
        .with_trim_every(None);
    let consumer = OrderConsumer::new(sale, Failing, options).spawn();
    let mut ids = Vec::new();
    for user in users {
        match sale.order(voucher, &UserId::from(*user)).await.unwrap() {
            OrderOutcome::Ordered { order_id } => ids.push(order_id),
            other => panic!("{other:?}"),
        }
    }
    let all = before + users.len() as u64;
    assert!(
        eventually(Duration::from_secs(20), async || sale
            .stream_lengths(shard)
            .await
            .unwrap()
            .dead_letters
            >= all)
        .await,
        "the orders are dead-lettered"
    );
    consumer.shutdown().await;
    ids
}
