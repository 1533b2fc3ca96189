//! Flash sales (秒杀): the decision "may this user buy one?" made atomically in Redis, and
//! the slow work (writing the order to a database) done asynchronously from a Redis Stream.
//!
//! - [`FlashSale::load`] sets a voucher's stock (and optionally its sale window) and
//!   forgets its buyers.
//! - [`FlashSale::order`] runs one script that checks the window, whether the user already
//!   bought, and the stock; if allowed it decrements the stock, records the buyer and
//!   appends `{orderId, userId, voucherId}` to the orders stream, all atomically. It never
//!   oversells and never sells twice to one user. Order ids are 64-bit, generated in Redis,
//!   unique across all shards whatever their number, increasing per shard and roughly
//!   time-ordered: `seconds since 2024-01-01 × 10^7 + n × shards + shard` (see
//!   [`ORDER_SEQ_SPAN`]), below 2^53 until 2052 so JavaScript clients read them exactly.
//! - [`OrderConsumer`] reads the stream with a consumer group on a dedicated connection and
//!   hands each order to an [`OrderHandler`]; entries are acknowledged only after the
//!   handler succeeds, so a handler sees every order **at least once**: make it idempotent
//!   by the order id (a primary key or `INSERT ... ON CONFLICT DO NOTHING`). A handler that
//!   panics counts as a failed delivery (logged at ERROR); the consumer keeps going. Entries
//!   left pending by a crashed consumer are reclaimed after an idle time (each claim pass
//!   resumes where the last one stopped, so idle entries behind busy ones are reached); an
//!   entry delivered more than [`ConsumerOptions::with_max_deliveries`] times, counting the
//!   re-reads of a consumer restarted under the same name, goes to a dead-letter stream with
//!   the handler's last error.
//! - Neither stream grows forever: the consumer trims the orders stream of entries every
//!   consumer group is done with ([`ConsumerOptions::with_trim_every`]; pending and
//!   undelivered orders are never removed), and the dead-letter stream keeps the newest
//!   [`ConsumerOptions::with_dead_letter_cap`] entries (10,000 by default), dropping the
//!   oldest beyond it.
//!
//! ## Keys and Redis Cluster
//!
//! Vouchers are spread over `shards` (default 1) by `voucher id % shards`. All keys of shard
//! `k` carry the hash tag `{keygate:seckill:k}`: a voucher's `...:voucher:<id>` hash (stock,
//! begin, end), `...:buyers:<id>` set, and the shard's `...:orders` stream, `...:seq`
//! (its last order id), `...:orders:dead` stream and `...:errors` hash. Every script declares all its
//! keys and stays in one slot.

mod consumer;
#[cfg(feature = "memory")]
pub(crate) mod memory;
mod operate;
mod redis;
mod sale;

pub use consumer::{ConsumerHandle, ConsumerOptions, HandlerError, OrderConsumer, OrderHandler};
pub use operate::SaleStatus;
pub use sale::{FlashSale, MAX_STOCK, OrderOutcome, SaleWindow};

use async_trait::async_trait;

use crate::error::Result;

/// Order ids count seconds from this instant: 2024-01-01T00:00:00Z, in unix seconds.
pub const ORDER_ID_EPOCH: u64 = 1_704_067_200;

/// Order ids are `seconds since ORDER_ID_EPOCH × ORDER_SEQ_SPAN + n × shards + shard`;
/// that last part stays below this span, so a shard issues at most `ORDER_SEQ_SPAN /
/// shards` ids per second before it borrows from the next second.
pub const ORDER_SEQ_SPAN: u64 = 10_000_000;

/// The order id that follows `last` (the shard's previous id, 0 for none) in `shard` of
/// `shards`, at `now_unix_secs`. `flash_sale_order.lua` computes the same in Redis.
///
/// Within a second, shard `k` issues `k`, `shards + k`, `2 × shards + k`, ... below
/// [`ORDER_SEQ_SPAN`]: no two shards share a residue modulo `shards`, so ids never
/// collide, whatever the shard count. When a second is full, or the clock went back, the
/// shard carries on in the second after its last id, so its ids only grow.
#[cfg_attr(not(feature = "memory"), allow(dead_code))]
pub(crate) fn next_order_id(last: u64, now_unix_secs: u64, shard: u64, shards: u64) -> u64 {
    let shards = shards.clamp(1, ORDER_SEQ_SPAN);
    let shard = shard % shards;
    let secs = now_unix_secs.saturating_sub(ORDER_ID_EPOCH);
    let (last_secs, last_low) = (last / ORDER_SEQ_SPAN, last % ORDER_SEQ_SPAN);
    let (mut secs, mut n) = if secs > last_secs {
        (secs, 0)
    } else {
        (last_secs, last_low / shards + 1)
    };
    if n * shards + shard >= ORDER_SEQ_SPAN {
        secs += 1;
        n = 0;
    }
    secs.saturating_mul(ORDER_SEQ_SPAN)
        .saturating_add(n * shards + shard)
}

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
    /// The shard's last order id, from which the next one follows.
    pub seq: String,
    /// Dead letters.
    pub dead: String,
    /// Last handler error per pending entry id.
    pub errors: String,
    prefix: String,
}

impl ShardKeys {
    /// The keys of shard `shard`.
    pub fn new(shard: u64) -> Self {
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

/// The lengths of one shard's streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamLengths {
    /// Entries in the orders stream (pending, undelivered, and acknowledged ones not yet
    /// trimmed).
    pub orders: u64,
    /// Entries in the dead-letter stream.
    pub dead_letters: u64,
}

/// A consumer group of a shard's orders stream (`XINFO GROUPS`, `XINFO CONSUMERS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupInfo {
    /// The group's name.
    pub name: String,
    /// Entries delivered to its consumers and not acknowledged yet.
    pub pending: u64,
    /// Entries of the stream not delivered to the group yet; `None` when the server cannot
    /// tell (Redis computes it only while no entry was deleted in between).
    pub lag: Option<u64>,
    /// The id of the last entry delivered to the group.
    pub last_delivered: String,
    /// Its consumers.
    pub consumers: Vec<ConsumerInfo>,
}

/// One consumer of a group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerInfo {
    /// The consumer's name.
    pub name: String,
    /// Entries delivered to it and not acknowledged yet.
    pub pending: u64,
    /// Milliseconds since it last read or claimed.
    pub idle_ms: u64,
}

/// What one pass of [`FlashSaleStore::claim_idle`] gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claimed {
    /// The entries taken over, with their delivery counts.
    pub entries: Vec<Entry>,
    /// Where the next pass starts: after the pending entries this pass looked at, or
    /// `0-0` (the beginning) once it reached the end of the pending list.
    pub next: String,
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
    AlreadyOrdered,
    /// No such voucher loaded.
    UnknownVoucher,
    /// The sale has not started.
    NotStarted,
    /// The sale is over.
    Ended,
}

/// Storage of flash sales and their order stream. Every method is one atomic step.
#[async_trait]
pub trait FlashSaleStore: Send + Sync + 'static {
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

    /// Takes over up to `count` entries idle for at least `min_idle_ms` (from crashed
    /// consumers), with their delivery counts, looking at the group's pending entries from
    /// `start` on (`XAUTOCLAIM`: at most `10 × count` of them per pass). Passes resume at
    /// [`Claimed::next`], so idle entries behind many busy ones are reached too.
    async fn claim_idle(
        &self,
        keys: &ShardKeys,
        group: &str,
        consumer: &str,
        min_idle_ms: u64,
        start: &str,
        count: usize,
    ) -> Result<Claimed>;

    /// Acknowledges entries (and forgets their last errors), all in one round trip.
    async fn ack(&self, keys: &ShardKeys, group: &str, ids: &[String]) -> Result<()>;

    /// Remembers the handler's error for a pending entry.
    async fn record_error(&self, keys: &ShardKeys, id: &str, error: &str) -> Result<()>;

    /// Moves an entry to the dead-letter stream with its last error, and acknowledges it;
    /// the dead-letter stream keeps the newest `cap` entries.
    async fn dead_letter(
        &self,
        keys: &ShardKeys,
        group: &str,
        entry: &Entry,
        cap: u64,
    ) -> Result<()>;

    /// Removes from the orders stream the entries that every consumer group is done with:
    /// those before the smallest, over all groups, of the oldest pending entry and the
    /// last-delivered id. Nothing pending or not yet delivered is removed, nor anything of
    /// a stream without groups. Returns how many entries went.
    async fn trim(&self, keys: &ShardKeys) -> Result<u64>;

    /// The lengths of the orders and dead-letter streams.
    async fn lengths(&self, keys: &ShardKeys) -> Result<StreamLengths>;

    /// Up to `count` dead letters, oldest first.
    async fn dead_letters(&self, keys: &ShardKeys, count: usize) -> Result<Vec<Entry>>;

    /// How many users bought the voucher.
    async fn buyers(&self, keys: &ShardKeys, voucher_id: u64) -> Result<u64>;

    /// The consumer groups of the orders stream, each with its consumers; none when the
    /// stream does not exist.
    async fn groups(&self, keys: &ShardKeys) -> Result<Vec<GroupInfo>>;

    /// Appends the order of dead letter `id` (its fields without `entryId`, `deliveries`
    /// and `error`) to the orders stream and deletes the dead letter, atomically, if it
    /// exists and carries `voucherId` `voucher_id`; returns the new entry's id.
    async fn replay_dead_letter(
        &self,
        keys: &ShardKeys,
        id: &str,
        voucher_id: u64,
    ) -> Result<Option<String>>;

    /// Deletes dead letter `id` if it exists and carries `voucherId` `voucher_id`.
    async fn drop_dead_letter(&self, keys: &ShardKeys, id: &str, voucher_id: u64) -> Result<bool>;
}

/// Whether `id` has the form of a stream entry id (`<ms>-<seq>`), the only form the
/// dead-letter operations pass on.
pub(crate) fn is_entry_id(id: &str) -> bool {
    id.split_once('-').is_some_and(|(ms, seq)| {
        [ms, seq].iter().all(|part| {
            !part.is_empty() && part.len() <= 20 && part.bytes().all(|b| b.is_ascii_digit())
        })
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = ORDER_ID_EPOCH + 86_400;

    #[test]
    fn ids_of_shards_never_collide_and_grow_per_shard() {
        for shards in [1u64, 2, 3, 7, 16] {
            let mut seen = std::collections::HashSet::new();
            for shard in 0..shards {
                let mut last = 0;
                for _ in 0..1000 {
                    let id = next_order_id(last, NOW, shard, shards);
                    assert!(id > last);
                    assert_eq!(id / ORDER_SEQ_SPAN, 86_400, "within the second");
                    assert!(seen.insert(id), "{shards} shards: {id} twice");
                    last = id;
                }
            }
        }
    }

    #[test]
    fn a_full_second_continues_in_the_next() {
        let shards = 3;
        let first = next_order_id(0, NOW, 2, shards);
        assert_eq!(first, 86_400 * ORDER_SEQ_SPAN + 2);
        // The last id of shard 2 that fits in the second: 3 × 3,333,332 + 2 = 9,999,998.
        let full = 86_400 * ORDER_SEQ_SPAN + 9_999_998;
        assert_eq!(
            next_order_id(full, NOW, 2, shards),
            86_401 * ORDER_SEQ_SPAN + 2
        );
        // Shard 0's last fitting id is 9,999,999.
        let full = 86_400 * ORDER_SEQ_SPAN + 9_999_999;
        assert_eq!(next_order_id(full, NOW, 0, shards), 86_401 * ORDER_SEQ_SPAN);
    }

    #[test]
    fn a_clock_that_went_back_never_repeats_an_id() {
        let last = next_order_id(0, NOW + 10, 1, 2);
        let next = next_order_id(last, NOW, 1, 2);
        assert!(next > last);
        assert_eq!(next % 2, 1, "still shard 1's residue");
    }

    #[test]
    fn ids_stay_below_2_pow_53_until_2052() {
        // 2052-01-01T00:00:00Z.
        let id = next_order_id(0, 2_587_680_000, 0, 1);
        assert!(id < 1 << 53);
    }
}
