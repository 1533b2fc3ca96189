//! The event log in memory: the same streams, trimmed the same way, in the memory
//! backend's stream emulation (entry ids `<seq>-0`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::error::Result;
use crate::memory_store::MemoryStore;
use crate::memory_store::db::Db;
use crate::memory_store::stream::{entry_id, parse_id};
use crate::session::event_log::{EventFields, EventReader, EventStreams, RawEvent};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Appends to one stream, trimmed to `len` entries and `max_age_ms` (by the events' `at`).
fn append(
    db: &mut Db,
    stream: &str,
    len: u64,
    max_age_ms: u64,
    fields: &EventFields,
    expires: bool,
) {
    let Some(entries) = db.stream(stream) else {
        tracing::warn!("a session event stream key holds another type; event not recorded");
        return;
    };
    entries.add(
        fields
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect(),
    );
    let oldest = now_ms().saturating_sub(i64::try_from(max_age_ms).unwrap_or(i64::MAX));
    let at = |fields: &Vec<(String, String)>| {
        fields
            .iter()
            .find(|(n, _)| n == "at")
            .and_then(|(_, v)| v.parse::<i64>().ok())
            .unwrap_or(i64::MAX)
    };
    entries.entries.retain(|_, fields| at(fields) >= oldest);
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    while entries.entries.len() > len {
        entries.entries.pop_first();
    }
    if expires && let Some(entry) = db.get(stream) {
        entry.expires_at = Some(std::time::Instant::now() + Duration::from_millis(max_age_ms));
    }
}

/// Records one event in the user's stream and the global one.
pub(crate) fn record(db: &mut Db, streams: &EventStreams<'_>, fields: &EventFields) {
    append(
        db,
        streams.user,
        streams.user_len,
        streams.max_age_ms,
        fields,
        true,
    );
    append(
        db,
        streams.global,
        streams.global_len,
        streams.max_age_ms,
        fields,
        false,
    );
}

fn raw(seq: u64, fields: &[(String, String)]) -> RawEvent {
    let mut fields = fields.to_vec();
    fields.sort();
    RawEvent {
        id: entry_id(seq),
        fields,
    }
}

/// The last `count` entries of `stream`, oldest first.
pub(crate) fn read_last(db: &mut Db, stream: &str, count: usize) -> Vec<RawEvent> {
    let Some(entries) = db.existing_stream(stream) else {
        return Vec::new();
    };
    let mut last: Vec<RawEvent> = entries
        .entries
        .iter()
        .rev()
        .take(count)
        .map(|(seq, fields)| raw(*seq, fields))
        .collect();
    last.reverse();
    last
}

fn read_after(db: &mut Db, stream: &str, after: u64, count: usize) -> Vec<RawEvent> {
    let Some(entries) = db.existing_stream(stream) else {
        return Vec::new();
    };
    entries
        .entries
        .range(after.saturating_add(1)..)
        .take(count)
        .map(|(seq, fields)| raw(*seq, fields))
        .collect()
}

/// Waits for entries as a blocking `XREAD` does.
pub(crate) struct MemoryEventReader(pub MemoryStore);

#[async_trait]
impl EventReader for MemoryEventReader {
    async fn read_after(
        &mut self,
        stream: &str,
        after: &str,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<RawEvent>> {
        let after = parse_id(after).unwrap_or(0);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(block_ms);
        loop {
            // Register for the wake-up before looking, so an entry added in between is seen.
            let added = self.0.stream_added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            let entries = self.0.with_db(|db| read_after(db, stream, after, count));
            if !entries.is_empty() {
                return Ok(entries);
            }
            if tokio::time::timeout_at(deadline, added).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }
}
