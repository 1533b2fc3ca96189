//! The flash-sale order consumer's handler: processed orders go to SQLite, once each.

use async_trait::async_trait;
use keygate::flash_sale::{HandlerError, Order, OrderHandler};

use crate::db::Db;

/// Stores each order from the stream in `voucher_orders`, idempotently by order id
/// (`INSERT OR IGNORE`), since the consumer delivers at least once.
#[derive(Debug, Clone)]
pub struct SqliteOrders {
    db: Db,
}

impl SqliteOrders {
    /// The handler over this database.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

#[async_trait]
impl OrderHandler for SqliteOrders {
    async fn handle(&self, order: &Order) -> Result<(), HandlerError> {
        let number = |what: &str, n: u64| {
            i64::try_from(n).map_err(|_| HandlerError(format!("{what} {n} is out of range")))
        };
        let id = number("order id", order.order_id)?;
        let voucher_id = number("voucher id", order.voucher_id)?;
        let user_id: i64 = order
            .user_id
            .parse()
            .map_err(|_| HandlerError("user id is not a number".into()))?;
        let stored = self
            .db
            .insert_order(id, voucher_id, user_id)
            .await
            .map_err(|e| HandlerError(e.to_string()))?;
        tracing::debug!(order_id = id, voucher_id, stored, "order processed");
        Ok(())
    }
}
