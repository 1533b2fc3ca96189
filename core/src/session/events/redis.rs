//! The event log on Redis: index changes with their events in one script, reads, and the
//! follower's blocking reads.

use std::time::Duration;

use async_trait::async_trait;
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};

use crate::error::{BackendError, Result};
use crate::redis_store::connection::BlockingConn;
use crate::redis_store::script::Invocation;
use crate::redis_store::{RedisStore, lua_script};
use crate::session::event_log::{EventFields, EventReader, EventStreams, RawEvent};
use crate::telemetry::{self, names};

lua_script!(SESSION_INDEX_LOGGED, "session_index_logged.lua");

/// An index change that records events.
pub(crate) enum IndexChange<'a> {
    /// Adds `member` with `score`: one event.
    Add { score: i64, member: &'a str },
    /// Replaces `old` by `new` (score `score`) if `old` is there: one event.
    Replace {
        score: i64,
        old: &'a str,
        new: &'a str,
    },
    /// Removes each member that is there: one event per member.
    Remove(&'a [&'a str]),
}

fn push_event(invocation: &mut Invocation<'_>, fields: &EventFields) {
    invocation.arg(fields.len() * 2);
    for (name, value) in fields {
        invocation.arg(*name).arg(value);
    }
}

fn common_args(
    invocation: &mut Invocation<'_>,
    op: &str,
    streams: &EventStreams<'_>,
    index_ttl_ms: u64,
) {
    invocation
        .arg(op)
        .arg(streams.user_len)
        .arg(streams.global_len)
        .arg(streams.max_age_ms)
        .arg(index_ttl_ms);
}

fn recorded(reply: Vec<i64>, expected: usize) -> Result<Vec<bool>> {
    if reply.len() != expected {
        return Err(BackendError::Protocol("unexpected reply from the index script").into());
    }
    Ok(reply.into_iter().map(|n| n == 1).collect())
}

/// Runs `change` on `index` and records `events` (one per added, moved or removed member,
/// in order) in the user's stream in the same script; the global stream in it too when it
/// shares the slot, else right after. Returns which events were recorded.
pub(crate) async fn change_index(
    store: &RedisStore,
    index: &str,
    index_ttl_ms: u64,
    change: IndexChange<'_>,
    streams: &EventStreams<'_>,
    events: &[EventFields],
) -> Result<Vec<bool>> {
    let mut invocation = SESSION_INDEX_LOGGED.prepare_invoke();
    invocation.key(index).key(streams.user);
    let global_inside = store.same_slot(index, streams.global);
    if global_inside {
        invocation.key(streams.global);
    }
    let empty = EventFields::new();
    let event = |i: usize| events.get(i).unwrap_or(&empty);
    match change {
        IndexChange::Add { score, member } => {
            common_args(&mut invocation, "add", streams, index_ttl_ms);
            invocation.arg(score).arg(member);
            push_event(&mut invocation, event(0));
        }
        IndexChange::Replace { score, old, new } => {
            common_args(&mut invocation, "replace", streams, index_ttl_ms);
            invocation.arg(score).arg(old).arg(new);
            push_event(&mut invocation, event(0));
        }
        IndexChange::Remove(members) => {
            common_args(&mut invocation, "remove", streams, index_ttl_ms);
            invocation.arg(members.len());
            for (i, member) in members.iter().enumerate() {
                invocation.arg(*member);
                push_event(&mut invocation, event(i));
            }
        }
    }
    let expected = match change {
        IndexChange::Remove(members) => members.len(),
        _ => 1,
    };
    let mut conn = store.conn();
    let reply: Vec<i64> = store.bounded(invocation.invoke_async(&mut conn)).await?;
    let done = recorded(reply, expected)?;
    if !global_inside {
        let copies: Vec<&EventFields> = events
            .iter()
            .zip(&done)
            .filter(|(_, done)| **done)
            .map(|(fields, _)| fields)
            .collect();
        append_global(store, streams, &copies).await;
    }
    Ok(done)
}

/// The global copies of one call's events on a cluster, where the global stream lives in
/// another slot than the index. The change and its user-stream events are done: a failure
/// here is logged and counted, not returned.
async fn append_global(store: &RedisStore, streams: &EventStreams<'_>, events: &[&EventFields]) {
    if events.is_empty() {
        return;
    }
    let mut invocation = SESSION_INDEX_LOGGED.prepare_invoke();
    invocation.key(streams.global);
    common_args(&mut invocation, "append", streams, 0);
    invocation.arg(events.len());
    for fields in events {
        push_event(&mut invocation, fields);
    }
    let mut conn = store.conn();
    if let Err(error) = store
        .bounded(invocation.invoke_async::<Vec<i64>>(&mut conn))
        .await
    {
        tracing::warn!(%error, dropped = events.len(), "session events not copied to the global stream");
        telemetry::count_n(names::SESSION_EVENTS_DROPPED, events.len() as u64);
    }
}

fn raw(id: StreamId) -> RawEvent {
    let mut fields: Vec<(String, String)> = id
        .map
        .keys()
        .filter_map(|name| Some((name.clone(), id.get::<String>(name)?)))
        .collect();
    fields.sort();
    RawEvent { id: id.id, fields }
}

/// The last `count` entries of `stream`, oldest first.
pub(crate) async fn read_last(
    store: &RedisStore,
    stream: &str,
    count: usize,
) -> Result<Vec<RawEvent>> {
    let mut cmd = redis::cmd("XREVRANGE");
    cmd.arg(stream).arg("+").arg("-").arg("COUNT").arg(count);
    let mut conn = store.conn();
    let reply: StreamRangeReply = store.bounded(cmd.query_async(&mut conn)).await?;
    let mut events: Vec<RawEvent> = reply.ids.into_iter().map(raw).collect();
    events.reverse();
    Ok(events)
}

/// A reader on a connection of its own.
pub(crate) async fn reader(store: &RedisStore) -> Result<Box<dyn EventReader>> {
    let conn = store
        .bounded(store.dedicated().blocking(store.connect_timeout))
        .await?;
    Ok(Box::new(RedisEventReader {
        conn,
        command_timeout: store.command_timeout,
    }))
}

struct RedisEventReader {
    conn: BlockingConn,
    command_timeout: Duration,
}

#[async_trait]
impl EventReader for RedisEventReader {
    async fn read_after(
        &mut self,
        stream: &str,
        after: &str,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<RawEvent>> {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(stream)
            .arg(after);
        let limit = Duration::from_millis(block_ms) + self.command_timeout;
        let reply: Option<StreamReadReply> =
            tokio::time::timeout(limit, cmd.query_async(&mut self.conn))
                .await
                .map_err(|_| BackendError::Timeout(limit))??;
        Ok(reply
            .map(|reply| {
                reply
                    .keys
                    .into_iter()
                    .flat_map(|key| key.ids)
                    .map(raw)
                    .collect()
            })
            .unwrap_or_default())
    }
}
