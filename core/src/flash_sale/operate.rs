//! What an operator looks at and does with a sale: its status (stock, buyers, streams,
//! consumer groups) and the dead letters, replayed or dropped one by one.

use super::sale::FlashSale;
use super::{GroupInfo, ShardKeys, StreamLengths, is_entry_id};
use crate::error::Result;

/// A sale as an operator sees it ([`FlashSale::status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SaleStatus {
    /// The voucher.
    pub voucher_id: u64,
    /// The shard whose streams carry its orders.
    pub shard: u64,
    /// The stock left.
    pub stock: i64,
    /// How many users bought it.
    pub buyers: u64,
    /// The lengths of the shard's orders and dead-letter streams (all vouchers of the
    /// shard).
    pub streams: StreamLengths,
    /// The consumer groups of the shard's orders stream.
    pub groups: Vec<GroupInfo>,
}

impl FlashSale {
    /// The shard of `voucher_id`: whose streams carry its orders and dead letters.
    pub fn shard_of(&self, voucher_id: u64) -> u64 {
        self.keys(voucher_id).0
    }

    /// Stock, buyers, the shard's stream lengths and its consumer groups with their lag and
    /// pending entries; `None` when no sale is loaded for `voucher_id`. Not one atomic
    /// snapshot: a few reads, each of them current.
    pub async fn status(&self, voucher_id: u64) -> Result<Option<SaleStatus>> {
        let (shard, keys) = self.keys(voucher_id);
        let Some(stock) = self.store.stock(&keys, voucher_id).await? else {
            return Ok(None);
        };
        Ok(Some(SaleStatus {
            voucher_id,
            shard,
            stock,
            buyers: self.store.buyers(&keys, voucher_id).await?,
            streams: self.store.lengths(&keys).await?,
            groups: self.store.groups(&keys).await?,
        }))
    }

    /// Puts the order of dead letter `id` of `voucher_id` back on the orders stream, for
    /// the consumers to handle again, and deletes the dead letter, in one atomic step:
    /// replaying the same id again finds nothing and enqueues nothing. Returns the order's
    /// new id in the orders stream, `None` when the voucher's shard has no such dead letter
    /// (or it belongs to another voucher).
    ///
    /// The handler sees the order again with its original order id: handlers are
    /// idempotent by order id already (delivery is at least once).
    pub async fn replay_dead_letter(&self, voucher_id: u64, id: &str) -> Result<Option<String>> {
        if !is_entry_id(id) {
            return Ok(None);
        }
        let keys = self.shard_keys(voucher_id);
        self.store.replay_dead_letter(&keys, id, voucher_id).await
    }

    /// Deletes dead letter `id` of `voucher_id` for good; `false` when the voucher's shard
    /// has no such dead letter (or it belongs to another voucher).
    pub async fn drop_dead_letter(&self, voucher_id: u64, id: &str) -> Result<bool> {
        if !is_entry_id(id) {
            return Ok(false);
        }
        let keys = self.shard_keys(voucher_id);
        self.store.drop_dead_letter(&keys, id, voucher_id).await
    }

    fn shard_keys(&self, voucher_id: u64) -> ShardKeys {
        self.keys(voucher_id).1
    }
}
