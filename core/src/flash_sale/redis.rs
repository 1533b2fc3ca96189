//! Flash sales and the orders stream on Redis.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::streams::{
    StreamAutoClaimReply, StreamId, StreamInfoConsumersReply, StreamInfoGroupsReply,
    StreamPendingCountReply, StreamRangeReply, StreamReadReply,
};

use crate::error::{BackendError, Result};
use crate::flash_sale::{
    Claimed, ConsumerInfo, Entry, FlashSaleStore, GroupInfo, ORDER_ID_EPOCH, ORDER_SEQ_SPAN,
    RawOrder, ShardKeys, StreamLengths, StreamReader,
};
use crate::redis_store::connection::BlockingConn;
use crate::redis_store::{RedisStore, lua_script};

lua_script!(FLASH_SALE_LOAD, "flash_sale_load.lua");
lua_script!(FLASH_SALE_ORDER, "flash_sale_order.lua");
lua_script!(FLASH_SALE_DEAD_LETTER, "flash_sale_dead_letter.lua");
lua_script!(FLASH_SALE_TRIM, "flash_sale_trim.lua");
lua_script!(FLASH_SALE_REPLAY, "flash_sale_replay.lua");
lua_script!(FLASH_SALE_DROP, "flash_sale_drop.lua");

fn entry(id: StreamId, deliveries: u64) -> Entry {
    let mut fields: Vec<(String, String)> = id
        .map
        .keys()
        .filter_map(|name| Some((name.clone(), id.get::<String>(name)?)))
        .collect();
    fields.sort();
    Entry {
        id: id.id,
        fields,
        deliveries,
    }
}

fn read_entries(reply: StreamReadReply) -> Vec<Entry> {
    reply
        .keys
        .into_iter()
        .flat_map(|key| key.ids)
        .map(|id| entry(id, 1))
        .collect()
}

/// XREADGROUP ... STREAMS <stream> <from>
fn xreadgroup(
    keys: &ShardKeys,
    group: &str,
    consumer: &str,
    count: usize,
    block_ms: Option<u64>,
    from: &str,
) -> redis::Cmd {
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(group)
        .arg(consumer)
        .arg("COUNT")
        .arg(count);
    if let Some(ms) = block_ms {
        cmd.arg("BLOCK").arg(ms);
    }
    cmd.arg("STREAMS").arg(&keys.stream).arg(from);
    cmd
}

#[async_trait]
impl FlashSaleStore for RedisStore {
    async fn load_sale(
        &self,
        keys: &ShardKeys,
        voucher_id: u64,
        stock: u64,
        begin_ms: u64,
        end_ms: u64,
    ) -> Result<()> {
        let mut invocation = FLASH_SALE_LOAD.prepare_invoke();
        invocation
            .key(keys.voucher(voucher_id))
            .key(keys.buyers(voucher_id))
            .arg(stock)
            .arg(begin_ms)
            .arg(end_ms);
        let mut conn = self.conn();
        self.bounded(invocation.invoke_async::<()>(&mut conn)).await
    }

    async fn stock(&self, keys: &ShardKeys, voucher_id: u64) -> Result<Option<i64>> {
        let mut cmd = redis::cmd("HGET");
        cmd.arg(keys.voucher(voucher_id)).arg("stock");
        let mut conn = self.conn();
        self.bounded(cmd.query_async(&mut conn)).await
    }

    async fn order(
        &self,
        keys: &ShardKeys,
        shard: u64,
        shards: u64,
        voucher_id: u64,
        user_id: &str,
    ) -> Result<RawOrder> {
        let mut invocation = FLASH_SALE_ORDER.prepare_invoke();
        invocation
            .key(keys.voucher(voucher_id))
            .key(keys.buyers(voucher_id))
            .key(&keys.stream)
            .key(&keys.seq)
            .arg(user_id)
            .arg(voucher_id)
            .arg(shards)
            .arg(shard)
            .arg(ORDER_ID_EPOCH)
            .arg(ORDER_SEQ_SPAN);
        let mut conn = self.conn();
        let reply: Vec<String> = self.bounded(invocation.invoke_async(&mut conn)).await?;
        let unknown = || BackendError::Protocol("unknown reply from the order script");
        match reply.first().map(String::as_str) {
            Some("1") => reply
                .get(1)
                .and_then(|id| id.parse().ok())
                .map(RawOrder::Ordered)
                .ok_or_else(|| unknown().into()),
            Some("2") => Ok(RawOrder::SoldOut),
            Some("3") => Ok(RawOrder::AlreadyOrdered),
            Some("4") => Ok(RawOrder::UnknownVoucher),
            Some("5") => Ok(RawOrder::NotStarted),
            Some("6") => Ok(RawOrder::Ended),
            _ => Err(unknown().into()),
        }
    }

    async fn ensure_group(&self, keys: &ShardKeys, group: &str) -> Result<()> {
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATE")
            .arg(&keys.stream)
            .arg(group)
            .arg("0")
            .arg("MKSTREAM");
        let mut conn = self.conn();
        match self.bounded(cmd.query_async::<()>(&mut conn)).await {
            Err(crate::error::Error::Backend(BackendError::Redis(e)))
                if e.code() == Some("BUSYGROUP") =>
            {
                Ok(())
            }
            other => other,
        }
    }

    async fn read_own_pending(
        &self,
        keys: &ShardKeys,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<Entry>> {
        // Reading its own pending entries again counts as a delivery in Redis: the real
        // counts (XPENDING of the same first `count` entries of this consumer, after the
        // read) let a consumer that crashes on an entry at every start dead-letter it.
        let mut pipe = redis::pipe();
        pipe.add_command(xreadgroup(keys, group, consumer, count, None, "0"));
        pipe.cmd("XPENDING")
            .arg(&keys.stream)
            .arg(group)
            .arg("-")
            .arg("+")
            .arg(count)
            .arg(consumer);
        let mut conn = self.conn();
        let (read, pending): (Option<StreamReadReply>, StreamPendingCountReply) =
            self.bounded(pipe.query_async(&mut conn)).await?;
        let deliveries: HashMap<String, u64> = pending
            .ids
            .into_iter()
            .map(|p| (p.id, p.times_delivered as u64))
            .collect();
        let mut entries = read.map(read_entries).unwrap_or_default();
        for entry in &mut entries {
            // An entry another consumer claimed in between keeps the count of 1.
            if let Some(&n) = deliveries.get(&entry.id) {
                entry.deliveries = n;
            }
        }
        Ok(entries)
    }

    async fn reader(&self) -> Result<Box<dyn StreamReader>> {
        // A blocking read would stall every request pipelined behind it on the shared
        // connection: readers get their own (on a cluster, a cluster connection of their
        // own, so each read reaches the node of its stream), each read bounded by its block
        // time plus the command timeout.
        let conn = self
            .bounded(self.dedicated().blocking(self.connect_timeout))
            .await?;
        Ok(Box::new(RedisReader {
            conn,
            command_timeout: self.command_timeout,
        }))
    }

    async fn claim_idle(
        &self,
        keys: &ShardKeys,
        group: &str,
        consumer: &str,
        min_idle_ms: u64,
        start: &str,
        count: usize,
    ) -> Result<Claimed> {
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(&keys.stream)
            .arg(group)
            .arg(consumer)
            .arg(min_idle_ms)
            .arg(start)
            .arg("COUNT")
            .arg(count);
        let mut conn = self.conn();
        let claimed: StreamAutoClaimReply = self.bounded(cmd.query_async(&mut conn)).await?;
        let next = claimed.next_stream_id;
        if claimed.claimed.is_empty() {
            return Ok(Claimed {
                entries: Vec::new(),
                next,
            });
        }
        // Delivery counts (the claim counted as one) for the dead-letter decision.
        let mut pipe = redis::pipe();
        for id in &claimed.claimed {
            pipe.cmd("XPENDING")
                .arg(&keys.stream)
                .arg(group)
                .arg(&id.id)
                .arg(&id.id)
                .arg(1);
        }
        let pending: Vec<StreamPendingCountReply> =
            self.bounded(pipe.query_async(&mut conn)).await?;
        let entries = claimed
            .claimed
            .into_iter()
            .zip(pending)
            .map(|(id, p)| {
                let deliveries = p.ids.first().map_or(1, |p| p.times_delivered as u64);
                entry(id, deliveries)
            })
            .collect();
        Ok(Claimed { entries, next })
    }

    async fn ack(&self, keys: &ShardKeys, group: &str, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.cmd("XACK")
            .arg(&keys.stream)
            .arg(group)
            .arg(ids)
            .ignore();
        pipe.cmd("HDEL").arg(&keys.errors).arg(ids).ignore();
        let mut conn = self.conn();
        self.bounded(pipe.query_async::<()>(&mut conn)).await
    }

    async fn record_error(&self, keys: &ShardKeys, id: &str, error: &str) -> Result<()> {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(&keys.errors).arg(id).arg(error);
        let mut conn = self.conn();
        self.bounded(cmd.query_async::<()>(&mut conn)).await
    }

    async fn dead_letter(
        &self,
        keys: &ShardKeys,
        group: &str,
        entry: &Entry,
        cap: u64,
    ) -> Result<()> {
        let mut invocation = FLASH_SALE_DEAD_LETTER.prepare_invoke();
        invocation
            .key(&keys.dead)
            .key(&keys.stream)
            .key(&keys.errors)
            .arg(group)
            .arg(&entry.id)
            .arg(entry.deliveries)
            .arg(cap.max(1));
        for (name, value) in &entry.fields {
            invocation.arg(name).arg(value);
        }
        let mut conn = self.conn();
        self.bounded(invocation.invoke_async::<()>(&mut conn)).await
    }

    async fn trim(&self, keys: &ShardKeys) -> Result<u64> {
        let mut invocation = FLASH_SALE_TRIM.prepare_invoke();
        invocation.key(&keys.stream);
        let mut conn = self.conn();
        self.bounded(invocation.invoke_async(&mut conn)).await
    }

    async fn lengths(&self, keys: &ShardKeys) -> Result<StreamLengths> {
        let mut pipe = redis::pipe();
        pipe.cmd("XLEN").arg(&keys.stream);
        pipe.cmd("XLEN").arg(&keys.dead);
        let mut conn = self.conn();
        let (orders, dead_letters): (u64, u64) = self.bounded(pipe.query_async(&mut conn)).await?;
        Ok(StreamLengths {
            orders,
            dead_letters,
        })
    }

    async fn dead_letters(&self, keys: &ShardKeys, count: usize) -> Result<Vec<Entry>> {
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(&keys.dead)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(count);
        let mut conn = self.conn();
        let reply: StreamRangeReply = self.bounded(cmd.query_async(&mut conn)).await?;
        Ok(reply.ids.into_iter().map(dead_entry).collect())
    }

    async fn buyers(&self, keys: &ShardKeys, voucher_id: u64) -> Result<u64> {
        let mut cmd = redis::cmd("SCARD");
        cmd.arg(keys.buyers(voucher_id));
        let mut conn = self.conn();
        self.bounded(cmd.query_async(&mut conn)).await
    }

    async fn groups(&self, keys: &ShardKeys) -> Result<Vec<GroupInfo>> {
        let mut conn = self.conn();
        let mut exists = redis::cmd("EXISTS");
        exists.arg(&keys.stream);
        let stream_exists: bool = self.bounded(exists.query_async(&mut conn)).await?;
        if !stream_exists {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("XINFO");
        cmd.arg("GROUPS").arg(&keys.stream);
        let reply: StreamInfoGroupsReply = self.bounded(cmd.query_async(&mut conn)).await?;
        let mut groups = Vec::with_capacity(reply.groups.len());
        for group in reply.groups {
            let mut cmd = redis::cmd("XINFO");
            cmd.arg("CONSUMERS").arg(&keys.stream).arg(&group.name);
            let consumers: StreamInfoConsumersReply =
                self.bounded(cmd.query_async(&mut conn)).await?;
            groups.push(GroupInfo {
                name: group.name,
                pending: group.pending as u64,
                lag: group.lag.map(|lag| lag as u64),
                last_delivered: group.last_delivered_id,
                consumers: consumers
                    .consumers
                    .into_iter()
                    .map(|c| ConsumerInfo {
                        name: c.name,
                        pending: c.pending as u64,
                        idle_ms: c.idle as u64,
                    })
                    .collect(),
            });
        }
        Ok(groups)
    }

    async fn replay_dead_letter(
        &self,
        keys: &ShardKeys,
        id: &str,
        voucher_id: u64,
    ) -> Result<Option<String>> {
        let mut invocation = FLASH_SALE_REPLAY.prepare_invoke();
        invocation
            .key(&keys.dead)
            .key(&keys.stream)
            .arg(id)
            .arg(voucher_id);
        let mut conn = self.conn();
        self.bounded(invocation.invoke_async(&mut conn)).await
    }

    async fn drop_dead_letter(&self, keys: &ShardKeys, id: &str, voucher_id: u64) -> Result<bool> {
        let mut invocation = FLASH_SALE_DROP.prepare_invoke();
        invocation.key(&keys.dead).arg(id).arg(voucher_id);
        let mut conn = self.conn();
        let dropped: i64 = self.bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(dropped == 1)
    }
}

/// A dead letter: its `deliveries` field is the count it was dead-lettered with.
fn dead_entry(id: StreamId) -> Entry {
    let mut entry = entry(id, 0);
    entry.deliveries = entry
        .fields
        .iter()
        .find(|(name, _)| name == "deliveries")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    entry
}

/// New entries, read on a dedicated connection.
struct RedisReader {
    conn: BlockingConn,
    command_timeout: Duration,
}

#[async_trait]
impl StreamReader for RedisReader {
    async fn read_new(
        &mut self,
        keys: &ShardKeys,
        group: &str,
        consumer: &str,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<Entry>> {
        let cmd = xreadgroup(keys, group, consumer, count, Some(block_ms), ">");
        let limit = Duration::from_millis(block_ms) + self.command_timeout;
        let reply: Option<StreamReadReply> =
            tokio::time::timeout(limit, cmd.query_async(&mut self.conn))
                .await
                .map_err(|_| BackendError::Timeout(limit))??;
        Ok(reply.map(read_entries).unwrap_or_default())
    }
}
