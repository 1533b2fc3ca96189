//! Flash sales (秒杀): the decision "may this user buy one?" made atomically in Redis, and
//! the slow work (writing the order to a database) done asynchronously from a Redis Stream.
//!
//! - [`FlashSale::load`] sets a voucher's stock (and optionally its sale window) and
//!   forgets its buyers.
//! - [`FlashSale::order`] runs one script that checks the window, whether the user already
//!   bought, and the stock; if allowed it decrements the stock, records the buyer and
//!   appends `{orderId, userId, voucherId}` to the orders stream, all atomically. It never
//!   oversells and never sells twice to one user. Order ids are 64-bit, generated in Redis,
//!   unique and roughly time-ordered: `seconds since 2024-01-01 × 10^7 + sequence`, below
//!   2^53 until 2052 so JavaScript clients read them exactly.
//! - [`OrderConsumer`] reads the stream with a consumer group on a dedicated connection and
//!   hands each order to an [`OrderHandler`]; entries are acknowledged only after the
//!   handler succeeds, so a handler sees every order **at least once**: make it idempotent
//!   by the order id (a primary key or `INSERT ... ON CONFLICT DO NOTHING`). Entries left
//!   pending by a crashed consumer are reclaimed after an idle time; an entry delivered more
//!   than [`ConsumerOptions::with_max_deliveries`] times goes to a dead-letter stream with the
//!   handler's last error.
//!
//! ## Keys and Redis Cluster
//!
//! Vouchers are spread over `shards` (default 1) by `voucher id % shards`. All keys of shard
//! `k` carry the hash tag `{keygate:seckill:k}`: a voucher's `...:voucher:<id>` hash (stock,
//! begin, end), `...:buyers:<id>` set, and the shard's `...:orders` stream, `...:seq`
//! counter, `...:orders:dead` stream and `...:errors` hash. Every script declares all its
//! keys and stays in one slot.

mod consumer;
mod sale;

pub use consumer::{ConsumerHandle, ConsumerOptions, HandlerError, OrderConsumer, OrderHandler};
pub use sale::{FlashSale, MAX_STOCK, OrderOutcome, SaleWindow};

use async_trait::async_trait;

use crate::Result;

/// An order taken by the script, as it travels through the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Order {
    /// The order id.
    pub order_id: u64,
    /// The buyer.
    pub user_id: String,
    /// The voucher.
    pub voucher_id: u64,
}

/// A stream entry with its id and how often it was delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The stream entry id.
    pub id: String,
    /// The entry's fields.
    pub fields: Vec<(String, String)>,
    /// Deliveries so far, this one included.
    pub deliveries: u64,
}

impl Entry {
    /// The order the entry carries, or why it is not one.
    pub fn order(&self) -> std::result::Result<Order, String> {
        order_from_fields(&self.fields)
    }
}

/// Keys of one shard.
#[derive(Debug, Clone)]
pub struct ShardKeys {
    /// The orders stream.
    pub stream: String,
    /// The order id sequence.
    pub seq: String,
    /// Dead letters.
    pub dead: String,
    /// Last handler error per pending entry id.
    pub errors: String,
    prefix: String,
}

impl ShardKeys {
    pub(crate) fn new(shard: u64) -> Self {
        let prefix = format!("keygate:seckill:{{keygate:seckill:{shard}}}");
        Self {
            stream: format!("{prefix}:orders"),
            seq: format!("{prefix}:seq"),
            dead: format!("{prefix}:orders:dead"),
            errors: format!("{prefix}:errors"),
            prefix,
        }
    }

    /// The voucher's hash (stock, begin, end).
    pub fn voucher(&self, voucher_id: u64) -> String {
        format!("{}:voucher:{voucher_id}", self.prefix)
    }

    /// The voucher's buyers.
    pub fn buyers(&self, voucher_id: u64) -> String {
        format!("{}:buyers:{voucher_id}", self.prefix)
    }
}

/// Raw result of the order script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RawOrder {
    /// Taken, with the order id.
    Ordered(u64),
    /// No stock left.
    SoldOut,
    /// This user already bought this voucher.
    AlreadyBought,
    /// No such voucher loaded.
    UnknownVoucher,
    /// The sale has not started.
    NotStarted,
    /// The sale is over.
    Ended,
}

/// Storage of flash sales and their order stream. Every method is one atomic step.
#[async_trait]
pub trait SeckillStore: Send + Sync + 'static {
    /// Sets the stock and window (unix ms, 0 = unbounded) and forgets the buyers.
    async fn load_sale(
        &self,
        keys: &ShardKeys,
        voucher_id: u64,
        stock: u64,
        begin_ms: u64,
        end_ms: u64,
    ) -> Result<()>;

    /// The remaining stock, `None` for an unknown voucher.
    async fn stock(&self, keys: &ShardKeys, voucher_id: u64) -> Result<Option<i64>>;

    /// The order script.
    async fn order(
        &self,
        keys: &ShardKeys,
        shard: u64,
        shards: u64,
        voucher_id: u64,
        user_id: &str,
    ) -> Result<RawOrder>;

    /// Creates the consumer group (from the stream's start) if missing.
    async fn ensure_group(&self, keys: &ShardKeys, group: &str) -> Result<()>;

    /// Entries delivered to `consumer` and not acknowledged (after a restart).
    async fn read_own_pending(
        &self,
        keys: &ShardKeys,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<Entry>>;

    /// A reader for new entries, with its own connection where reads block.
    async fn reader(&self) -> Result<Box<dyn StreamReader>>;

    /// Takes over entries idle for at least `min_idle_ms` (from crashed consumers), with
    /// their delivery counts.
    async fn claim_idle(
        &self,
        keys: &ShardKeys,
        group: &str,
        consumer: &str,
        min_idle_ms: u64,
        count: usize,
    ) -> Result<Vec<Entry>>;

    /// Acknowledges an entry (and forgets its last error).
    async fn ack(&self, keys: &ShardKeys, group: &str, id: &str) -> Result<()>;

    /// Remembers the handler's error for a pending entry.
    async fn record_error(&self, keys: &ShardKeys, id: &str, error: &str) -> Result<()>;

    /// Moves an entry to the dead-letter stream with its last error, and acknowledges it.
    async fn dead_letter(&self, keys: &ShardKeys, group: &str, entry: &Entry) -> Result<()>;
}

/// Reads new stream entries; blocking reads get a connection of their own.
#[async_trait]
pub trait StreamReader: Send + Sync {
    /// New entries for `consumer`, waiting up to `block_ms` for some.
    async fn read_new(
        &mut self,
        keys: &ShardKeys,
        group: &str,
        consumer: &str,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<Entry>>;
}

/// Parses stream entry fields into an order.
fn order_from_fields(fields: &[(String, String)]) -> std::result::Result<Order, String> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| format!("missing field {name}"))
    };
    let number = |name: &str| -> std::result::Result<u64, String> {
        field(name)?
            .parse()
            .map_err(|_| format!("field {name} is not a number"))
    };
    Ok(Order {
        order_id: number("orderId")?,
        user_id: field("userId")?.to_owned(),
        voucher_id: number("voucherId")?,
    })
}
