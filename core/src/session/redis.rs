//! Sessions on Redis.

use async_trait::async_trait;

use super::event_log::{EventFields, EventReader, EventStreams, RawEvent};
use super::events::redis::{IndexChange, change_index, read_last, reader};
use super::store::{
    EndMark, Fetched, NewExpiry, Probe, RenameOutcome, SessionKeyRef, SessionStore, SessionTtl,
    UpdateOutcome, end_mark_key, field_changes,
};
use crate::codec::Layout;
use crate::codec::StoredValue;
use crate::error::{BackendError, Result};
use crate::redis_store::{RedisStore, is_wrong_type, lua_script};

lua_script!(SESSION_INSERT, "session_insert.lua");
lua_script!(SESSION_TOUCH, "session_touch.lua");
lua_script!(SESSION_REPLACE_HASH, "session_replace_hash.lua");
lua_script!(SESSION_UPDATE, "session_update.lua");
lua_script!(SESSION_RENAME, "session_rename.lua");
lua_script!(SESSION_INDEX_REPLACE, "session_index_replace.lua");
lua_script!(SESSION_END, "session_end.lua");
lua_script!(SESSION_PROBE, "session_probe.lua");

/// The companion's value: the session's own idle TTL, or `1` for "the configuration's".
fn companion_value(expiry: NewExpiry) -> String {
    if expiry.own_idle {
        expiry.idle_ms.to_string()
    } else {
        "1".to_owned()
    }
}

/// A `PTTL` reply: `None` for a missing key (-2), `Some(None)` for a key without expiry
/// (-1), else the milliseconds left.
pub(super) fn pttl(value: &redis::Value) -> Result<Option<Option<u64>>> {
    match value {
        redis::Value::Int(-2) => Ok(None),
        redis::Value::Int(ms) if *ms < 0 => Ok(Some(None)),
        redis::Value::Int(ms) => Ok(Some(u64::try_from(*ms).ok())),
        _ => Err(BackendError::Protocol("PTTL did not answer an integer").into()),
    }
}

/// What a session's companion key says, read with `PTTL` and `GET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Companion {
    /// Missing, without expiry, or in its last millisecond: the session is over.
    Over,
    /// No deadline (value `0`): the companion follows the session's TTL.
    Follows,
    /// The time left to the session's absolute deadline, and its own idle TTL if its login
    /// chose one.
    Deadline {
        left_ms: u64,
        own_idle_ms: Option<u64>,
    },
}

impl Companion {
    /// Judges a companion from its `PTTL` and `GET` replies, as the touch script does: its
    /// value counts only with login limits (`own_idle`).
    pub(super) fn judge(
        ttl: Option<&redis::Value>,
        value: Option<&redis::Value>,
        own_idle: bool,
    ) -> Result<Self> {
        let left = ttl.map(pttl).transpose()?.flatten().flatten();
        let value = value.filter(|_| own_idle);
        Ok(match left {
            None | Some(0) => Self::Over,
            Some(_) if matches!(value, Some(redis::Value::BulkString(v)) if v == b"0") => {
                Self::Follows
            }
            Some(left_ms) => Self::Deadline {
                left_ms,
                own_idle_ms: value.and_then(self::own_idle),
            },
        })
    }
}

/// The companion's value as the session's own idle TTL (values up to 1 mean "the
/// configuration's", or no deadline).
fn own_idle(value: &redis::Value) -> Option<u64> {
    match value {
        redis::Value::BulkString(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| text.parse::<u64>().ok())
            .filter(|ms| *ms > 1),
        _ => None,
    }
}

impl RedisStore {
    /// [`SessionStore::load_and_touch`] without the trait's boxed future: what the request
    /// path calls when the manager's store is this one (one allocation per request less).
    pub(crate) async fn load_and_touch_inline(
        &self,
        keys: SessionKeyRef<'_>,
        codec: Layout,
        idle_ms: u64,
    ) -> Result<Fetched> {
        let mut conn = self.conn();
        if let (None, Layout::Json) = (keys.deadline, codec) {
            // GETEX checks the type before it touches: a key of another type answers
            // WRONGTYPE and keeps its TTL.
            let mut cmd = redis::cmd("GETEX");
            cmd.arg(keys.session).arg("PX").arg(idle_ms);
            let reply = self.bounded(cmd.query_async(&mut conn)).await;
            return corrupt_on_wrong_type(reply, json_fetched);
        }
        // A hash (whose type must be checked before PEXPIRE) or a session with a deadline:
        // one script, one round trip.
        let mut invocation = SESSION_TOUCH.prepare_invoke();
        invocation.key(keys.session);
        if let Some(deadline) = keys.deadline {
            invocation.key(deadline);
        }
        invocation
            .arg(codec_arg(codec))
            .arg(idle_ms)
            .arg(if keys.own_idle { "own" } else { "" });
        let reply = self.bounded(invocation.invoke_async(&mut conn)).await?;
        script_fetched(codec, reply)
    }

    /// Loads the session's request-path script (the hash/deadline touch) into the server's
    /// script cache when the store connects, so that the first authenticated request is
    /// one round trip too. The store calls it by name, knowing nothing of sessions; a
    /// manager built later could not do it before its first request.
    pub(crate) async fn preload_request_path_scripts(&self) {
        self.preload(&SESSION_TOUCH).await;
    }
}

fn codec_arg(codec: Layout) -> &'static str {
    match codec {
        Layout::Json => "json",
        Layout::Hash => "hash",
    }
}

fn codec_of(value: &StoredValue) -> Layout {
    match value {
        StoredValue::Json(_) => Layout::Json,
        StoredValue::Hash(_) => Layout::Hash,
    }
}

fn utf8(bytes: Vec<u8>) -> Option<String> {
    String::from_utf8(bytes).ok()
}

pub(super) fn json_fetched(bytes: Option<Vec<u8>>) -> Fetched {
    match bytes.map(utf8) {
        None => Fetched::Missing,
        Some(Some(text)) => Fetched::Found(StoredValue::Json(text)),
        Some(None) => Fetched::Corrupt("session value is not UTF-8".into()),
    }
}

pub(super) fn hash_fetched(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Fetched {
    if pairs.is_empty() {
        return Fetched::Missing;
    }
    let fields: Option<Vec<(String, String)>> = pairs
        .into_iter()
        .map(|(k, v)| Some((utf8(k)?, utf8(v)?)))
        .collect();
    match fields {
        Some(fields) => Fetched::Found(StoredValue::Hash(fields)),
        None => Fetched::Corrupt("session hash field is not UTF-8".into()),
    }
}

/// Decodes the touch script's reply (see `lua/session_touch.lua`).
fn script_fetched(codec: Layout, mut reply: Vec<Vec<u8>>) -> Result<Fetched> {
    if reply.is_empty() {
        return Err(BackendError::Protocol("empty reply from the touch script").into());
    }
    let status = reply.remove(0);
    match (status.as_slice(), codec) {
        (b"missing", _) => Ok(Fetched::Missing),
        (b"wrongtype", _) => Ok(Fetched::Corrupt(format!(
            "session key holds a {}",
            String::from_utf8_lossy(reply.first().map_or(&b"?"[..], |t| t.as_slice()))
        ))),
        (b"ok", Layout::Json) => Ok(json_fetched(reply.pop())),
        (b"ok", Layout::Hash) => {
            let mut pairs = Vec::with_capacity(reply.len() / 2);
            let mut items = reply.into_iter();
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                pairs.push((k, v));
            }
            Ok(hash_fetched(pairs))
        }
        _ => Err(BackendError::Protocol("unknown status from the touch script").into()),
    }
}

/// Decodes the probe script's reply (see `lua/session_probe.lua`).
fn probed(reply: &[redis::Value]) -> Result<Probe> {
    let [session, mark, companion] = reply else {
        return Err(BackendError::Protocol("unexpected reply from the probe script").into());
    };
    let mark = match mark {
        redis::Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        _ => None,
    };
    // A companion that is gone, without expiry or at 0 ms ends the session (-3: none).
    let companion_left = match companion {
        redis::Value::Int(-3) => None,
        redis::Value::Int(ms) if *ms > 0 => u64::try_from(*ms).ok(),
        _ => return Ok(Probe::Gone { mark }),
    };
    match pttl(session)? {
        None => Ok(Probe::Gone { mark }),
        Some(left) => Ok(Probe::Live {
            left_ms: match (left, companion_left) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }),
    }
}

impl RedisStore {
    /// Moves a session with the rename script, leaving `mark` for the old key if given.
    async fn rename_session(
        &self,
        from: SessionKeyRef<'_>,
        to: SessionKeyRef<'_>,
        mark: Option<EndMark<'_>>,
    ) -> Result<RenameOutcome> {
        let mut invocation = SESSION_RENAME.prepare_invoke();
        invocation.key(from.session).key(to.session);
        match mark {
            Some(mark) => {
                invocation
                    .key(end_mark_key(mark.prefix, from.session))
                    .arg(mark.reason)
                    .arg(mark.ttl_ms);
            }
            None => {
                invocation.arg("").arg(0);
            }
        }
        if let (Some(from), Some(to)) = (from.deadline, to.deadline) {
            invocation.key(from).key(to);
        }
        let mut conn = self.conn();
        let reply: redis::Value = self.bounded(invocation.invoke_async(&mut conn)).await?;
        match reply {
            redis::Value::Int(0) => Ok(RenameOutcome::Gone),
            redis::Value::Int(2) => Ok(RenameOutcome::TargetExists),
            redis::Value::Array(items) if items.first() == Some(&redis::Value::Int(1)) => {
                let deadline_ms = match items.get(1) {
                    Some(redis::Value::Int(ms)) => u64::try_from(*ms).ok(),
                    _ => None,
                };
                Ok(RenameOutcome::Renamed { deadline_ms })
            }
            _ => Err(BackendError::Protocol("unknown reply from the rename script").into()),
        }
    }
}

/// A `WRONGTYPE` reply means the key holds something that is not a session.
pub(super) fn corrupt_on_wrong_type<T>(
    result: Result<T>,
    found: impl FnOnce(T) -> Fetched,
) -> Result<Fetched> {
    match result {
        Ok(value) => Ok(found(value)),
        Err(crate::error::Error::Backend(BackendError::Redis(e))) if is_wrong_type(&e) => Ok(
            Fetched::Corrupt("session key holds another Redis type".into()),
        ),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn insert(
        &self,
        keys: SessionKeyRef<'_>,
        value: &StoredValue,
        expiry: NewExpiry,
    ) -> Result<bool> {
        let mut invocation = SESSION_INSERT.prepare_invoke();
        invocation.key(keys.session);
        if let Some(deadline) = keys.deadline {
            invocation.key(deadline);
        }
        let lifetime = expiry
            .lifetime_ms
            .filter(|_| keys.deadline.is_some())
            .map_or_else(String::new, |lifetime| lifetime.to_string());
        invocation
            .arg(codec_arg(codec_of(value)))
            .arg(expiry.idle_ms)
            .arg(lifetime)
            .arg(companion_value(expiry));
        match value {
            StoredValue::Json(text) => {
                invocation.arg(text);
            }
            StoredValue::Hash(fields) => {
                for (name, value) in fields {
                    invocation.arg(name).arg(value);
                }
            }
        }
        let mut conn = self.conn();
        let created: i64 = self.bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(created == 1)
    }

    async fn load_and_touch(
        &self,
        keys: SessionKeyRef<'_>,
        codec: Layout,
        idle_ms: u64,
    ) -> Result<Fetched> {
        self.load_and_touch_inline(keys, codec, idle_ms).await
    }

    async fn replace(&self, key: &str, value: &StoredValue) -> Result<bool> {
        let mut conn = self.conn();
        match value {
            StoredValue::Json(text) => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(key).arg(text).arg("XX").arg("KEEPTTL");
                let reply: Option<String> = self.bounded(cmd.query_async(&mut conn)).await?;
                Ok(reply.is_some())
            }
            StoredValue::Hash(fields) => {
                let mut invocation = SESSION_REPLACE_HASH.prepare_invoke();
                invocation.key(key);
                for (name, value) in fields {
                    invocation.arg(name).arg(value);
                }
                let replaced: i64 = self.bounded(invocation.invoke_async(&mut conn)).await?;
                Ok(replaced == 1)
            }
        }
    }

    async fn update(
        &self,
        key: &str,
        old: &StoredValue,
        new: &StoredValue,
    ) -> Result<UpdateOutcome> {
        let mut invocation = SESSION_UPDATE.prepare_invoke();
        invocation.key(key);
        match (old, new) {
            (StoredValue::Json(old), StoredValue::Json(new)) => {
                invocation.arg("json").arg(old).arg(new);
            }
            (StoredValue::Hash(old), StoredValue::Hash(new)) => {
                let (set, delete) = field_changes(old, new);
                if set.is_empty() && delete.is_empty() {
                    // Nothing changed; still report whether the session exists.
                    let exists = self.exists(&[key]).await?;
                    return Ok(if exists.first() == Some(&true) {
                        UpdateOutcome::Updated
                    } else {
                        UpdateOutcome::Gone
                    });
                }
                invocation.arg("hash").arg(set.len());
                for (name, value) in set {
                    invocation.arg(name).arg(value);
                }
                for name in delete {
                    invocation.arg(name);
                }
            }
            _ => {
                return Err(crate::error::Error::Encode(
                    "codec changed between load and update".into(),
                ));
            }
        }
        let mut conn = self.conn();
        let outcome: i64 = self.bounded(invocation.invoke_async(&mut conn)).await?;
        match outcome {
            0 => Ok(UpdateOutcome::Gone),
            1 => Ok(UpdateOutcome::Updated),
            2 => Ok(UpdateOutcome::Conflict),
            _ => Err(BackendError::Protocol("unknown reply from the update script").into()),
        }
    }

    async fn remove(&self, sessions: &[SessionKeyRef<'_>]) -> Result<u64> {
        if sessions.is_empty() {
            return Ok(0);
        }
        // One DEL per key: keys of different sessions may live in different cluster slots
        // (`query_each` pipelines them on a single server). Only session keys count.
        let mut cmds = Vec::with_capacity(sessions.len() * 2);
        let mut counted = Vec::with_capacity(sessions.len() * 2);
        for keys in sessions {
            cmds.push(redis::cmd("DEL").arg(keys.session).to_owned());
            counted.push(true);
            if let Some(deadline) = keys.deadline {
                cmds.push(redis::cmd("DEL").arg(deadline).to_owned());
                counted.push(false);
            }
        }
        let removed: Vec<u64> = self.query_each(&cmds).await?;
        Ok(removed
            .iter()
            .zip(counted)
            .filter(|(_, counts)| *counts)
            .map(|(n, _)| n)
            .sum())
    }

    async fn exists(&self, keys: &[&str]) -> Result<Vec<bool>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let cmds: Vec<_> = keys
            .iter()
            .map(|key| redis::cmd("EXISTS").arg(*key).to_owned())
            .collect();
        self.query_each(&cmds).await
    }

    async fn ttls(&self, sessions: &[SessionKeyRef<'_>]) -> Result<Vec<Option<SessionTtl>>> {
        let mut cmds = Vec::with_capacity(sessions.len() * 3);
        for keys in sessions {
            cmds.push(redis::cmd("PTTL").arg(keys.session).to_owned());
            if let Some(deadline) = keys.deadline {
                cmds.push(redis::cmd("PTTL").arg(deadline).to_owned());
                cmds.push(redis::cmd("GET").arg(deadline).to_owned());
            }
        }
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        let replies: Vec<redis::Value> = self.query_each(&cmds).await?;
        let mut replies = replies.iter();
        let mut ttls = Vec::with_capacity(sessions.len());
        for keys in sessions {
            let session = replies.next().map(pttl).transpose()?.flatten();
            let companion = match keys.deadline {
                Some(_) => Some(Companion::judge(
                    replies.next(),
                    replies.next(),
                    keys.own_idle,
                )?),
                None => None,
            };
            let (deadline_ms, own_idle_ms) = match companion {
                Some(Companion::Over) => {
                    ttls.push(None);
                    continue;
                }
                Some(Companion::Deadline {
                    left_ms,
                    own_idle_ms,
                }) => (Some(left_ms), own_idle_ms),
                Some(Companion::Follows) | None => (None, None),
            };
            ttls.push(session.map(|ttl_ms| SessionTtl {
                ttl_ms,
                own_idle_ms,
                deadline_ms,
            }));
        }
        Ok(ttls)
    }

    async fn rename(
        &self,
        from: SessionKeyRef<'_>,
        to: SessionKeyRef<'_>,
    ) -> Result<RenameOutcome> {
        self.rename_session(from, to, None).await
    }

    async fn rename_marked(
        &self,
        from: SessionKeyRef<'_>,
        to: SessionKeyRef<'_>,
        mark: EndMark<'_>,
    ) -> Result<RenameOutcome> {
        self.rename_session(from, to, Some(mark)).await
    }

    async fn remove_marked(
        &self,
        sessions: &[SessionKeyRef<'_>],
        mark: EndMark<'_>,
    ) -> Result<Vec<bool>> {
        // One script per session (sessions may live in different cluster slots), sent
        // together: the multiplexed connection pipelines them.
        let ends = sessions.iter().map(|keys| {
            let mut invocation = SESSION_END.prepare_invoke();
            invocation
                .key(keys.session)
                .key(end_mark_key(mark.prefix, keys.session));
            if let Some(deadline) = keys.deadline {
                invocation.key(deadline);
            }
            invocation.arg(mark.reason).arg(mark.ttl_ms);
            let mut conn = self.conn();
            async move { invocation.invoke_async::<u64>(&mut conn).await }
        });
        let ended = self
            .bounded(futures_util::future::try_join_all(ends))
            .await?;
        Ok(ended.iter().map(|&n| n > 0).collect())
    }

    async fn probe(&self, keys: SessionKeyRef<'_>, mark_prefix: &str) -> Result<Probe> {
        let mut invocation = SESSION_PROBE.prepare_invoke();
        invocation
            .key(keys.session)
            .key(end_mark_key(mark_prefix, keys.session));
        if let Some(deadline) = keys.deadline {
            invocation.key(deadline);
        }
        let mut conn = self.conn();
        let reply: Vec<redis::Value> = self.bounded(invocation.invoke_async(&mut conn)).await?;
        probed(&reply)
    }

    fn can_rename(&self, from: &str, to: &str) -> bool {
        self.same_slot(from, to)
    }

    fn redis_store(&self) -> Option<RedisStore> {
        Some(self.clone())
    }

    async fn index_add(
        &self,
        index: &str,
        member: &str,
        created_us: i64,
        ttl_ms: u64,
    ) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.cmd("ZADD")
            .arg(index)
            .arg(created_us)
            .arg(member)
            .ignore()
            .cmd("PEXPIRE")
            .arg(index)
            .arg(ttl_ms)
            .ignore();
        let mut conn = self.conn();
        self.bounded(pipe.query_async::<()>(&mut conn)).await
    }

    async fn index_page(
        &self,
        index: &str,
        offset: usize,
        count: usize,
    ) -> Result<Vec<(String, i64)>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(index)
            .arg(offset)
            .arg(offset + count - 1)
            .arg("WITHSCORES");
        let mut conn = self.conn();
        let members: Vec<(String, f64)> = self.bounded(cmd.query_async(&mut conn)).await?;
        // Scores are unix microseconds, exact in an f64 (below 2^53).
        #[allow(clippy::cast_possible_truncation)]
        Ok(members.into_iter().map(|(m, s)| (m, s as i64)).collect())
    }

    async fn index_replace(
        &self,
        index: &str,
        old: &str,
        new: &str,
        created_us: i64,
        ttl_ms: u64,
    ) -> Result<bool> {
        let mut invocation = SESSION_INDEX_REPLACE.prepare_invoke();
        invocation
            .key(index)
            .arg(old)
            .arg(new)
            .arg(created_us)
            .arg(ttl_ms);
        let mut conn = self.conn();
        let moved: i64 = self.bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(moved == 1)
    }

    async fn index_add_logged(
        &self,
        index: &str,
        member: &str,
        created_us: i64,
        ttl_ms: u64,
        streams: &EventStreams<'_>,
        event: &EventFields,
    ) -> Result<()> {
        let change = IndexChange::Add {
            score: created_us,
            member,
        };
        change_index(
            self,
            index,
            ttl_ms,
            change,
            streams,
            std::slice::from_ref(event),
        )
        .await?;
        Ok(())
    }

    async fn index_replace_logged(
        &self,
        index: &str,
        old: &str,
        new: &str,
        created_us: i64,
        ttl_ms: u64,
        streams: &EventStreams<'_>,
        event: &EventFields,
    ) -> Result<bool> {
        let change = IndexChange::Replace {
            score: created_us,
            old,
            new,
        };
        let done = change_index(
            self,
            index,
            ttl_ms,
            change,
            streams,
            std::slice::from_ref(event),
        )
        .await?;
        Ok(done.first() == Some(&true))
    }

    async fn index_remove_logged(
        &self,
        index: &str,
        members: &[&str],
        streams: &EventStreams<'_>,
        events: &[EventFields],
    ) -> Result<Vec<bool>> {
        if members.is_empty() {
            return Ok(Vec::new());
        }
        change_index(
            self,
            index,
            0,
            IndexChange::Remove(members),
            streams,
            events,
        )
        .await
    }

    async fn read_events(&self, stream: &str, count: usize) -> Result<Vec<RawEvent>> {
        read_last(self, stream, count).await
    }

    async fn event_reader(&self) -> Result<Box<dyn EventReader>> {
        reader(self).await
    }

    async fn index_remove(&self, index: &str, members: &[&str]) -> Result<()> {
        if members.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("ZREM");
        cmd.arg(index).arg(members);
        let mut conn = self.conn();
        self.bounded(cmd.query_async::<()>(&mut conn)).await
    }
}
