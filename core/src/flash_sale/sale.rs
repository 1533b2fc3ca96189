//! Loading sales and taking orders.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Entry, FlashSaleStore, RawOrder, ShardKeys, StreamLengths};
use crate::error::{Error, Result};
use crate::session::UserId;
use crate::telemetry::{self, names};

/// The largest stock [`FlashSale::load`] accepts: the order script keeps the stock as a
/// Redis integer (signed 64-bit), so a larger one could be stored but never decremented.
pub const MAX_STOCK: u64 = i64::MAX as u64;

/// When a sale is open. `None` bounds are open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaleWindow {
    /// Orders are refused before this time.
    pub begin: Option<SystemTime>,
    /// Orders are refused from this time on.
    pub end: Option<SystemTime>,
}

/// What an order attempt gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OrderOutcome {
    /// Taken; the order is on its way to the consumers.
    Ordered {
        /// The order id.
        order_id: u64,
    },
    /// No stock left (409).
    SoldOut,
    /// This user already ordered this voucher (409).
    AlreadyOrdered,
    /// No sale loaded for this voucher (404).
    UnknownVoucher,
    /// The sale has not started yet.
    NotStarted,
    /// The sale is over.
    Ended,
}

impl OrderOutcome {
    /// A message for the envelope.
    pub fn message(&self) -> &'static str {
        match self {
            OrderOutcome::Ordered { .. } => "ordered",
            OrderOutcome::UnknownVoucher => "unknown voucher",
            OrderOutcome::SoldOut => "sold out",
            OrderOutcome::AlreadyOrdered => "you already ordered this voucher",
            OrderOutcome::NotStarted => "the sale has not started",
            OrderOutcome::Ended => "the sale is over",
        }
    }
}

/// Flash sales over a [`FlashSaleStore`]. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), keygate::Error> {
/// use keygate::{MemoryStore, UserId};
/// use keygate::flash_sale::{FlashSale, OrderOutcome, SaleWindow};
///
/// let sale = FlashSale::new(MemoryStore::new());
/// sale.load(1, 1, SaleWindow::default()).await?;
/// let first = sale.order(1, &UserId::from(7u64)).await?;
/// assert!(matches!(first, OrderOutcome::Ordered { .. }));
/// assert_eq!(sale.order(1, &UserId::from(8u64)).await?, OrderOutcome::SoldOut);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FlashSale {
    pub(crate) store: Arc<dyn FlashSaleStore>,
    pub(crate) shards: u64,
}

impl std::fmt::Debug for FlashSale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlashSale")
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}

fn unix_ms(t: Option<SystemTime>) -> u64 {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl FlashSale {
    /// Flash sales on one shard.
    pub fn new(store: impl FlashSaleStore) -> Self {
        Self::from_shared(Arc::new(store))
    }

    /// Like [`new`](Self::new) for a shared store.
    pub fn from_shared(store: Arc<dyn FlashSaleStore>) -> Self {
        Self { store, shards: 1 }
    }

    /// Spreads vouchers over `shards` hash slots (and streams) for Redis Cluster; all
    /// producers and consumers of a deployment must use the same number (order ids are
    /// unique across shards only then). At least 1, at most
    /// [`ORDER_SEQ_SPAN`](super::ORDER_SEQ_SPAN).
    pub fn with_shards(mut self, shards: u64) -> Self {
        self.shards = shards.clamp(1, super::ORDER_SEQ_SPAN);
        self
    }

    /// The shard count.
    pub fn shards(&self) -> u64 {
        self.shards
    }

    pub(crate) fn keys(&self, voucher_id: u64) -> (u64, ShardKeys) {
        let shard = voucher_id % self.shards;
        (shard, ShardKeys::new(shard))
    }

    /// Loads (or resets) a voucher's sale: its stock and window; previous buyers are
    /// forgotten.
    ///
    /// A stock above [`MAX_STOCK`] or a window that ends before it begins is refused with
    /// [`Error::Config`] and changes nothing.
    pub async fn load(&self, voucher_id: u64, stock: u64, window: SaleWindow) -> Result<()> {
        if stock > MAX_STOCK {
            return Err(Error::Config(format!(
                "stock {stock} is above the largest the sale can hold ({MAX_STOCK})"
            )));
        }
        if let (Some(begin), Some(end)) = (window.begin, window.end)
            && end <= begin
        {
            return Err(Error::Config("sale window ends before it begins".into()));
        }
        let (_, keys) = self.keys(voucher_id);
        self.store
            .load_sale(
                &keys,
                voucher_id,
                stock,
                unix_ms(window.begin),
                unix_ms(window.end),
            )
            .await
    }

    /// The stock left, `None` for an unknown voucher.
    pub async fn stock(&self, voucher_id: u64) -> Result<Option<i64>> {
        let (_, keys) = self.keys(voucher_id);
        self.store.stock(&keys, voucher_id).await
    }

    /// Tries to order one `voucher_id` for `user`: one atomic script.
    pub async fn order(&self, voucher_id: u64, user: &UserId) -> Result<OrderOutcome> {
        let (shard, keys) = self.keys(voucher_id);
        let raw = telemetry::timed(
            "flash_sale_order",
            self.store
                .order(&keys, shard, self.shards, voucher_id, user.as_str()),
        )
        .await?;
        let (outcome, label) = match raw {
            RawOrder::Ordered(order_id) => (OrderOutcome::Ordered { order_id }, "ordered"),
            RawOrder::SoldOut => (OrderOutcome::SoldOut, "sold_out"),
            RawOrder::AlreadyOrdered => (OrderOutcome::AlreadyOrdered, "already_ordered"),
            RawOrder::UnknownVoucher => (OrderOutcome::UnknownVoucher, "unknown_voucher"),
            RawOrder::NotStarted => (OrderOutcome::NotStarted, "not_started"),
            RawOrder::Ended => (OrderOutcome::Ended, "ended"),
        };
        telemetry::count(names::FLASH_SALE_ORDERS, "outcome", label);
        Ok(outcome)
    }

    /// The lengths of shard `shard`'s orders and dead-letter streams (for monitoring).
    pub async fn stream_lengths(&self, shard: u64) -> Result<StreamLengths> {
        self.store.lengths(&ShardKeys::new(shard)).await
    }

    /// Up to `count` of shard `shard`'s dead letters, oldest first. Each carries the
    /// order's fields plus `entryId` (its id in the orders stream), `deliveries` and
    /// `error` (the handler's last error).
    pub async fn dead_letters(&self, shard: u64, count: usize) -> Result<Vec<Entry>> {
        self.store.dead_letters(&ShardKeys::new(shard), count).await
    }
}
