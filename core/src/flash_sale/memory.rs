//! Flash sales and a minimal stream with consumer groups, in memory, with the Redis
//! scripts' semantics (for one process).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::error::Result;
use crate::flash_sale::{
    Claimed, ConsumerInfo, Entry, FlashSaleStore, GroupInfo, RawOrder, ShardKeys, StreamLengths,
    StreamReader, next_order_id,
};
use crate::memory_store::MemoryStore;
use crate::memory_store::db::{Db, Value};
use crate::memory_store::stream::{MemStream, Pending, entry_id, parse_id};

/// What the dead-letter step adds to an order's fields.
const DEAD_LETTER_FIELDS: [&str; 3] = ["entryId", "deliveries", "error"];

/// The dead letter `id` of `voucher_id`, if the dead-letter stream has it.
fn dead_letter_of(db: &mut Db, keys: &ShardKeys, id: &str, voucher_id: u64) -> Option<u64> {
    // Exactly this id: `parse_id` alone would read `1-999` as entry 1.
    let seq = parse_id(id).filter(|seq| entry_id(*seq) == id)?;
    let dead = db.existing_stream(&keys.dead)?;
    let voucher = voucher_id.to_string();
    dead.entries
        .get(&seq)?
        .iter()
        .any(|(name, value)| name == "voucherId" && *value == voucher)
        .then_some(seq)
}

fn entry_of(
    entries: &BTreeMap<u64, Vec<(String, String)>>,
    seq: u64,
    deliveries: u64,
) -> Option<Entry> {
    entries.get(&seq).map(|fields| Entry {
        id: entry_id(seq),
        fields: fields.clone(),
        deliveries,
    })
}

fn hash_field(db: &mut Db, key: &str, field: &str) -> Option<String> {
    match db.get(key).map(|e| &e.value) {
        Some(Value::Hash(fields)) => fields
            .iter()
            .find(|(n, _)| n == field)
            .map(|(_, v)| v.clone()),
        _ => None,
    }
}

fn set_hash_field(db: &mut Db, key: &str, field: &str, value: Option<String>) {
    let mut fields = match db.get(key).map(|e| &e.value) {
        Some(Value::Hash(fields)) => fields.clone(),
        _ => Vec::new(),
    };
    fields.retain(|(n, _)| n != field);
    if let Some(value) = value {
        fields.push((field.to_owned(), value));
    }
    if fields.is_empty() {
        db.remove(key);
    } else {
        db.set(key, Value::Hash(fields), None);
    }
}

/// Delivers again, to `consumer`, up to `count` pending entries that `pick` selects (its
/// own after a restart, or idle ones of crashed consumers), counting the delivery.
fn redeliver(
    db: &mut Db,
    keys: &ShardKeys,
    group: &str,
    consumer: &str,
    count: usize,
    pick: impl Fn(&Pending) -> bool,
) -> Vec<Entry> {
    let Some(MemStream {
        entries, groups, ..
    }) = db.stream(&keys.stream)
    else {
        return Vec::new();
    };
    let Some(g) = groups.get_mut(group) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (seq, p) in g.pending.iter_mut().filter(|(_, p)| pick(p)).take(count) {
        p.consumer = consumer.to_owned();
        p.deliveries += 1;
        p.delivered_at = Instant::now();
        out.extend(entry_of(entries, *seq, p.deliveries));
    }
    out
}

/// `XAUTOCLAIM`: from `start` on, looks at up to `10 × count` pending entries and takes
/// over those idle for `min_idle` (at most `count`); entries no longer in the stream leave
/// the pending list. The next pass starts after the last entry looked at, or from the
/// beginning (`0-0`) once the end was reached.
fn claim(
    db: &mut Db,
    keys: &ShardKeys,
    group: &str,
    consumer: &str,
    min_idle: Duration,
    start: u64,
    count: usize,
) -> Claimed {
    let mut claimed = Claimed {
        entries: Vec::new(),
        next: "0-0".to_owned(),
    };
    let Some(MemStream {
        entries, groups, ..
    }) = db.stream(&keys.stream)
    else {
        return claimed;
    };
    let Some(g) = groups.get_mut(group) else {
        return claimed;
    };
    let mut attempts = count.saturating_mul(10);
    let mut deleted = Vec::new();
    for (seq, p) in g.pending.range_mut(start..) {
        if claimed.entries.len() >= count || attempts == 0 {
            claimed.next = entry_id(*seq);
            break;
        }
        attempts -= 1;
        if p.delivered_at.elapsed() < min_idle {
            continue;
        }
        if !entries.contains_key(seq) {
            deleted.push(*seq);
            continue;
        }
        p.consumer = consumer.to_owned();
        p.deliveries += 1;
        p.delivered_at = Instant::now();
        claimed
            .entries
            .extend(entry_of(entries, *seq, p.deliveries));
    }
    for seq in deleted {
        g.pending.remove(&seq);
    }
    claimed
}

/// `XACK`: the entry leaves the group's pending list.
fn acknowledge(db: &mut Db, keys: &ShardKeys, group: &str, id: &str) {
    if let (Some(stream), Some(seq)) = (db.stream(&keys.stream), parse_id(id))
        && let Some(g) = stream.groups.get_mut(group)
    {
        g.pending.remove(&seq);
    }
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

#[async_trait]
impl FlashSaleStore for MemoryStore {
    async fn load_sale(
        &self,
        keys: &ShardKeys,
        voucher_id: u64,
        stock: u64,
        begin_ms: u64,
        end_ms: u64,
    ) -> Result<()> {
        self.with_db(|db| {
            db.remove(&keys.buyers(voucher_id));
            let fields = vec![
                ("stock".to_owned(), stock.to_string()),
                ("begin".to_owned(), begin_ms.to_string()),
                ("end".to_owned(), end_ms.to_string()),
            ];
            db.set(&keys.voucher(voucher_id), Value::Hash(fields), None);
        });
        Ok(())
    }

    async fn stock(&self, keys: &ShardKeys, voucher_id: u64) -> Result<Option<i64>> {
        Ok(self.with_db(|db| {
            hash_field(db, &keys.voucher(voucher_id), "stock").and_then(|s| s.parse().ok())
        }))
    }

    async fn order(
        &self,
        keys: &ShardKeys,
        shard: u64,
        shards: u64,
        voucher_id: u64,
        user_id: &str,
    ) -> Result<RawOrder> {
        let outcome = self.with_db(|db| {
            let voucher = keys.voucher(voucher_id);
            if !db.exists(&voucher) {
                return RawOrder::UnknownVoucher;
            }
            let number = |db: &mut Db, field| {
                hash_field(db, &voucher, field)
                    .and_then(|s| s.parse::<i64>().ok())
                    .unwrap_or(0)
            };
            let (stock, begin, end) = (number(db, "stock"), number(db, "begin"), number(db, "end"));
            let now = now();
            let now_ms = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
            if begin > 0 && now_ms < begin {
                return RawOrder::NotStarted;
            }
            if end > 0 && now_ms >= end {
                return RawOrder::Ended;
            }
            let buyers_key = keys.buyers(voucher_id);
            let bought = matches!(
                db.get(&buyers_key).map(|e| &e.value),
                Some(Value::Set(set)) if set.contains(user_id)
            );
            if bought {
                return RawOrder::AlreadyOrdered;
            }
            if stock <= 0 {
                return RawOrder::SoldOut;
            }
            set_hash_field(db, &voucher, "stock", Some((stock - 1).to_string()));
            // In place: copying the set would make each order cost as much as all buyers.
            if let Some(Value::Set(buyers)) = db.get(&buyers_key).map(|e| &mut e.value) {
                buyers.insert(user_id.to_owned());
            } else {
                let buyers = HashSet::from([user_id.to_owned()]);
                db.set(&buyers_key, Value::Set(buyers), None);
            }
            let last = db
                .get_str(&keys.seq)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let order_id = next_order_id(last, now.as_secs(), shard, shards);
            db.set(&keys.seq, Value::Str(order_id.to_string()), None);
            if let Some(stream) = db.stream(&keys.stream) {
                stream.add(vec![
                    ("orderId".into(), order_id.to_string()),
                    ("userId".into(), user_id.to_owned()),
                    ("voucherId".into(), voucher_id.to_string()),
                ]);
            }
            RawOrder::Ordered(order_id)
        });
        if matches!(outcome, RawOrder::Ordered(_)) {
            self.stream_added.notify_waiters();
        }
        Ok(outcome)
    }

    async fn ensure_group(&self, keys: &ShardKeys, group: &str) -> Result<()> {
        self.with_db(|db| {
            if let Some(stream) = db.stream(&keys.stream) {
                stream.groups.entry(group.to_owned()).or_default();
            }
        });
        Ok(())
    }

    async fn read_own_pending(
        &self,
        keys: &ShardKeys,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<Entry>> {
        Ok(self
            .with_db(|db| redeliver(db, keys, group, consumer, count, |p| p.consumer == consumer)))
    }

    async fn reader(&self) -> Result<Box<dyn StreamReader>> {
        Ok(Box::new(MemoryReader(self.clone())))
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
        let min_idle = Duration::from_millis(min_idle_ms);
        let start = parse_id(start).unwrap_or(0);
        Ok(self.with_db(|db| claim(db, keys, group, consumer, min_idle, start, count)))
    }

    async fn ack(&self, keys: &ShardKeys, group: &str, ids: &[String]) -> Result<()> {
        self.with_db(|db| {
            for id in ids {
                acknowledge(db, keys, group, id);
                set_hash_field(db, &keys.errors, id, None);
            }
        });
        Ok(())
    }

    async fn record_error(&self, keys: &ShardKeys, id: &str, error: &str) -> Result<()> {
        self.with_db(|db| set_hash_field(db, &keys.errors, id, Some(error.to_owned())));
        Ok(())
    }

    async fn dead_letter(
        &self,
        keys: &ShardKeys,
        group: &str,
        entry: &Entry,
        cap: u64,
    ) -> Result<()> {
        self.with_db(|db| {
            let error = hash_field(db, &keys.errors, &entry.id).unwrap_or_default();
            let mut fields = vec![
                ("entryId".to_owned(), entry.id.clone()),
                ("deliveries".to_owned(), entry.deliveries.to_string()),
                ("error".to_owned(), error),
            ];
            fields.extend(entry.fields.iter().cloned());
            if let Some(dead) = db.stream(&keys.dead) {
                dead.add(fields);
                let cap = usize::try_from(cap.max(1)).unwrap_or(usize::MAX);
                while dead.entries.len() > cap {
                    dead.entries.pop_first();
                }
            }
            acknowledge(db, keys, group, &entry.id);
            set_hash_field(db, &keys.errors, &entry.id, None);
        });
        Ok(())
    }

    async fn trim(&self, keys: &ShardKeys) -> Result<u64> {
        Ok(self.with_db(|db| {
            let Some(Value::Stream(stream)) = db.get(&keys.stream).map(|e| &mut e.value) else {
                return 0;
            };
            let Some(min) = stream
                .groups
                .values()
                .map(|g| {
                    let oldest_pending = g.pending.keys().next().copied().unwrap_or(u64::MAX);
                    oldest_pending.min(g.last_delivered)
                })
                .min()
            else {
                return 0;
            };
            let kept = stream.entries.split_off(&min);
            let removed = std::mem::replace(&mut stream.entries, kept).len();
            removed as u64
        }))
    }

    async fn lengths(&self, keys: &ShardKeys) -> Result<StreamLengths> {
        Ok(self.with_db(|db| StreamLengths {
            orders: db
                .existing_stream(&keys.stream)
                .map_or(0, |s| s.entries.len() as u64),
            dead_letters: db
                .existing_stream(&keys.dead)
                .map_or(0, |s| s.entries.len() as u64),
        }))
    }

    async fn dead_letters(&self, keys: &ShardKeys, count: usize) -> Result<Vec<Entry>> {
        Ok(self.with_db(|db| {
            let Some(dead) = db.existing_stream(&keys.dead) else {
                return Vec::new();
            };
            dead.entries
                .iter()
                .take(count)
                .map(|(seq, fields)| Entry {
                    id: entry_id(*seq),
                    fields: fields.clone(),
                    deliveries: fields
                        .iter()
                        .find(|(name, _)| name == "deliveries")
                        .and_then(|(_, value)| value.parse().ok())
                        .unwrap_or(0),
                })
                .collect()
        }))
    }

    async fn buyers(&self, keys: &ShardKeys, voucher_id: u64) -> Result<u64> {
        Ok(self.with_db(
            |db| match db.get(&keys.buyers(voucher_id)).map(|e| &e.value) {
                Some(Value::Set(buyers)) => buyers.len() as u64,
                _ => 0,
            },
        ))
    }

    async fn groups(&self, keys: &ShardKeys) -> Result<Vec<GroupInfo>> {
        Ok(self.with_db(|db| {
            let Some(stream) = db.existing_stream(&keys.stream) else {
                return Vec::new();
            };
            let mut groups: Vec<GroupInfo> = stream
                .groups
                .iter()
                .map(|(name, g)| {
                    let mut consumers: Vec<ConsumerInfo> = Vec::new();
                    for p in g.pending.values() {
                        let idle_ms =
                            u64::try_from(p.delivered_at.elapsed().as_millis()).unwrap_or(u64::MAX);
                        match consumers.iter_mut().find(|c| c.name == p.consumer) {
                            Some(c) => {
                                c.pending += 1;
                                c.idle_ms = c.idle_ms.min(idle_ms);
                            }
                            None => consumers.push(ConsumerInfo {
                                name: p.consumer.clone(),
                                pending: 1,
                                idle_ms,
                            }),
                        }
                    }
                    consumers.sort_by(|a, b| a.name.cmp(&b.name));
                    GroupInfo {
                        name: name.clone(),
                        pending: g.pending.len() as u64,
                        lag: Some(stream.entries.range(g.last_delivered + 1..).count() as u64),
                        last_delivered: entry_id(g.last_delivered),
                        consumers,
                    }
                })
                .collect();
            groups.sort_by(|a, b| a.name.cmp(&b.name));
            groups
        }))
    }

    async fn replay_dead_letter(
        &self,
        keys: &ShardKeys,
        id: &str,
        voucher_id: u64,
    ) -> Result<Option<String>> {
        let replayed = self.with_db(|db| {
            let seq = dead_letter_of(db, keys, id, voucher_id)?;
            let fields = match db.get(&keys.dead).map(|e| &mut e.value) {
                Some(Value::Stream(dead)) => dead.entries.remove(&seq)?,
                _ => return None,
            };
            let order: Vec<(String, String)> = fields
                .into_iter()
                .filter(|(name, _)| !DEAD_LETTER_FIELDS.contains(&name.as_str()))
                .collect();
            let orders = db.stream(&keys.stream)?;
            orders.add(order);
            Some(entry_id(orders.next))
        });
        if replayed.is_some() {
            self.stream_added.notify_waiters();
        }
        Ok(replayed)
    }

    async fn drop_dead_letter(&self, keys: &ShardKeys, id: &str, voucher_id: u64) -> Result<bool> {
        Ok(self.with_db(|db| {
            let Some(seq) = dead_letter_of(db, keys, id, voucher_id) else {
                return false;
            };
            match db.get(&keys.dead).map(|e| &mut e.value) {
                Some(Value::Stream(dead)) => dead.entries.remove(&seq).is_some(),
                _ => false,
            }
        }))
    }
}

struct MemoryReader(MemoryStore);

impl MemoryReader {
    /// Delivers up to `count` undelivered entries to `consumer`.
    fn take_new(&self, keys: &ShardKeys, group: &str, consumer: &str, count: usize) -> Vec<Entry> {
        self.0.with_db(|db| {
            let Some(stream) = db.stream(&keys.stream) else {
                return Vec::new();
            };
            let MemStream {
                entries, groups, ..
            } = stream;
            let Some(g) = groups.get_mut(group) else {
                return Vec::new();
            };
            let new: Vec<u64> = entries
                .range(g.last_delivered + 1..)
                .take(count)
                .map(|(seq, _)| *seq)
                .collect();
            let mut out = Vec::new();
            for seq in new {
                g.last_delivered = seq;
                g.pending.insert(
                    seq,
                    Pending {
                        consumer: consumer.to_owned(),
                        deliveries: 1,
                        delivered_at: Instant::now(),
                    },
                );
                out.extend(entry_of(entries, seq, 1));
            }
            out
        })
    }
}

#[async_trait]
impl StreamReader for MemoryReader {
    async fn read_new(
        &mut self,
        keys: &ShardKeys,
        group: &str,
        consumer: &str,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<Entry>> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(block_ms);
        loop {
            // Register for the wake-up before looking, so an entry added in between is seen.
            let added = self.0.stream_added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            let entries = self.take_new(keys, group, consumer, count);
            if !entries.is_empty() {
                return Ok(entries);
            }
            if tokio::time::timeout_at(deadline, added).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids stay unique across shards, and grow per shard, also once a shard's sequence has
    /// come a long way (here: to where an interleaving modulo 10^7 wraps around).
    #[tokio::test]
    async fn order_ids_are_unique_across_shards_after_long_sequences() {
        for shards in [1u64, 2, 3, 7, 16] {
            let store = MemoryStore::new();
            let keys: Vec<ShardKeys> = (0..shards).map(ShardKeys::new).collect();
            // `voucher % shards == shard`.
            let voucher = |shard: u64| 100 * shards + shard;
            for (shard, keys) in (0..shards).zip(&keys) {
                store
                    .load_sale(keys, voucher(shard), 40, 0, 0)
                    .await
                    .unwrap();
            }
            let taken = 10_000_000 / shards - 20;
            store.with_db(|db| db.set(&keys[0].seq, Value::Str(taken.to_string()), None));
            let mut seen = HashSet::new();
            let mut last = vec![0u64; keys.len()];
            for user in 0..40u64 {
                for (shard, keys) in (0..shards).zip(&keys) {
                    let ordered = store
                        .order(keys, shard, shards, voucher(shard), &user.to_string())
                        .await
                        .unwrap();
                    let RawOrder::Ordered(id) = ordered else {
                        panic!("{ordered:?}")
                    };
                    let i = usize::try_from(shard).unwrap();
                    assert!(seen.insert(id), "{shards} shards: {id} issued twice");
                    assert!(id > last[i], "{shards} shards: {id} after {}", last[i]);
                    last[i] = id;
                }
            }
        }
    }
}
