//! Sessions in memory.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::event_log::{EventFields, EventReader, EventStreams, RawEvent};
use super::events::memory::{MemoryEventReader, read_last, record};
use super::store::{
    EndMark, Fetched, NewExpiry, Probe, RenameOutcome, SessionKeyRef, SessionStore, SessionTtl,
    UpdateOutcome, end_mark_key, field_changes,
};
use crate::codec::Layout;
use crate::codec::StoredValue;
use crate::error::Result;
use crate::memory_store::MemoryStore;
use crate::memory_store::db::{Db, Value};

fn to_value(stored: &StoredValue) -> Value {
    match stored {
        StoredValue::Json(text) => Value::Str(text.clone()),
        StoredValue::Hash(fields) => Value::Hash(fields.clone()),
    }
}

/// The companion's value as the session's own idle TTL (values up to 1 mean "the
/// configuration's").
fn own_idle_of(value: &Value) -> Option<u64> {
    match value {
        Value::Str(text) => text.parse::<u64>().ok().filter(|ms| *ms > 1),
        _ => None,
    }
}

/// What a session's companion key says (see the touch script).
enum Companion {
    /// Missing, without expiry, or in its last instant: the session is over.
    Over,
    /// No deadline (value `0`): the companion follows the session's TTL.
    Follows,
    /// The time left to the absolute deadline, and the session's own idle TTL if any.
    Deadline {
        left: Duration,
        own_idle_ms: Option<u64>,
    },
}

/// Reads a companion as the touch script does: gone, without expiry or in its last
/// instant, the session is over; its value counts only with login limits (`own_idle`).
fn companion(db: &mut Db, key: &str, own_idle: bool, now: Instant) -> Companion {
    let Some(entry) = db.get(key) else {
        return Companion::Over;
    };
    match entry.ttl(now) {
        Some(left) if !left.is_zero() => match &entry.value {
            _ if !own_idle => Companion::Deadline {
                left,
                own_idle_ms: None,
            },
            Value::Str(text) if text == "0" => Companion::Follows,
            value => Companion::Deadline {
                left,
                own_idle_ms: own_idle_of(value),
            },
        },
        _ => Companion::Over,
    }
}

/// `ZADD` + `PEXPIRE` of an index.
fn zadd(db: &mut Db, index: &str, member: &str, created_us: i64, ttl_ms: u64) {
    let mut members = match db.get(index).map(|e| &e.value) {
        Some(Value::ZSet(members)) => members.clone(),
        _ => Vec::new(),
    };
    members.retain(|(m, _)| m != member);
    members.push((member.to_owned(), created_us));
    db.set(
        index,
        Value::ZSet(members),
        Some(Duration::from_millis(ttl_ms)),
    );
}

/// `ZREM` of one member: whether it was there.
fn zrem(db: &mut Db, index: &str, member: &str) -> bool {
    let Some(Value::ZSet(current)) = db.get(index).map(|e| &mut e.value) else {
        return false;
    };
    let before = current.len();
    current.retain(|(m, _)| m != member);
    let removed = current.len() < before;
    if current.is_empty() {
        db.remove(index);
    }
    removed
}

/// Replaces `old` by `new` if `old` is a member (the index-replace script).
fn zreplace(db: &mut Db, index: &str, old: &str, new: &str, created_us: i64, ttl_ms: u64) -> bool {
    let Some(Value::ZSet(members)) = db.get(index).map(|e| &mut e.value) else {
        return false;
    };
    let Some(at) = members.iter().position(|(m, _)| m == old) else {
        return false;
    };
    members.remove(at);
    members.retain(|(m, _)| m != new);
    members.push((new.to_owned(), created_us));
    if let Some(entry) = db.get(index) {
        entry.expires_at = Some(Instant::now() + Duration::from_millis(ttl_ms));
    }
    true
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Writes an end mark with the reason for `session`.
fn write_mark(db: &mut Db, mark: EndMark<'_>, session: &str) {
    db.set(
        &end_mark_key(mark.prefix, session),
        Value::Str(mark.reason.to_owned()),
        Some(Duration::from_millis(mark.ttl_ms)),
    );
}

impl MemoryStore {
    /// Removes sessions (with their companions), leaving `mark` for each that existed, and
    /// announces their keys to watchers.
    fn end_sessions(&self, sessions: &[SessionKeyRef<'_>], mark: Option<EndMark<'_>>) -> Vec<bool> {
        let ended = self.with_db(|db| {
            sessions
                .iter()
                .map(|keys| {
                    if let Some(deadline) = keys.deadline {
                        db.remove(deadline);
                    }
                    let existed = db.remove(keys.session);
                    if let (true, Some(mark)) = (existed, mark) {
                        write_mark(db, mark, keys.session);
                    }
                    existed
                })
                .collect()
        });
        for keys in sessions {
            // No receiver is no watcher: nothing to tell.
            let _ = self.changed_keys.send(keys.session.to_owned());
        }
        ended
    }

    /// Moves a session (see the rename script), leaving `mark` for the old key if given,
    /// and announces both keys to watchers.
    fn rename_session(
        &self,
        from: SessionKeyRef<'_>,
        to: SessionKeyRef<'_>,
        mark: Option<EndMark<'_>>,
    ) -> RenameOutcome {
        let outcome = self.with_db(|db| {
            if !db.exists(from.session) {
                return RenameOutcome::Gone;
            }
            // A session whose companion is gone is over.
            if from.deadline.is_some_and(|key| !db.exists(key)) {
                return RenameOutcome::Gone;
            }
            if db.exists(to.session) {
                return RenameOutcome::TargetExists;
            }
            db.rename(from.session, to.session);
            let mut deadline_ms = None;
            if let (Some(from), Some(to)) = (from.deadline, to.deadline)
                && db.rename(from, to)
                && db.get_str(to) != Some("0")
            {
                deadline_ms = db.ttl(to).map(duration_ms);
            }
            if let Some(mark) = mark {
                write_mark(db, mark, from.session);
            }
            RenameOutcome::Renamed { deadline_ms }
        });
        if matches!(outcome, RenameOutcome::Renamed { .. }) {
            let _ = self.changed_keys.send(from.session.to_owned());
            let _ = self.changed_keys.send(to.session.to_owned());
        }
        outcome
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn insert(
        &self,
        keys: SessionKeyRef<'_>,
        value: &StoredValue,
        expiry: NewExpiry,
    ) -> Result<bool> {
        Ok(self.with_db(|db| {
            if db.exists(keys.session) {
                return false;
            }
            let mut ttl = expiry.idle_ms;
            match (keys.deadline, expiry.lifetime_ms) {
                (Some(deadline), Some(lifetime)) => {
                    ttl = ttl.min(lifetime);
                    let own = if expiry.own_idle {
                        expiry.idle_ms.to_string()
                    } else {
                        "1".to_owned()
                    };
                    db.set(
                        deadline,
                        Value::Str(own),
                        Some(Duration::from_millis(lifetime)),
                    );
                }
                (Some(deadline), None) => db.set(
                    deadline,
                    Value::Str("0".to_owned()),
                    Some(Duration::from_millis(ttl)),
                ),
                (None, _) => {}
            }
            db.set(
                keys.session,
                to_value(value),
                Some(Duration::from_millis(ttl)),
            );
            true
        }))
    }

    async fn load_and_touch(
        &self,
        keys: SessionKeyRef<'_>,
        codec: Layout,
        idle_ms: u64,
    ) -> Result<Fetched> {
        Ok(self.with_db(|db| {
            let now = Instant::now();
            let mut ttl = Duration::from_millis(idle_ms);
            // With a companion, every session has one: gone, without expiry or in its last
            // instant, the session is over.
            let follower = match keys
                .deadline
                .map(|key| (key, companion(db, key, keys.own_idle, now)))
            {
                Some((_, Companion::Over)) => return Fetched::Missing,
                Some((key, Companion::Follows)) => Some(key),
                Some((_, Companion::Deadline { left, own_idle_ms })) => {
                    if let Some(own) = own_idle_ms {
                        ttl = Duration::from_millis(own);
                    }
                    ttl = ttl.min(left);
                    None
                }
                None => None,
            };
            let Some(entry) = db.get(keys.session) else {
                return Fetched::Missing;
            };
            let fetched = match (&entry.value, codec) {
                (Value::Str(text), Layout::Json) => StoredValue::Json(text.clone()),
                (Value::Hash(fields), Layout::Hash) => StoredValue::Hash(fields.clone()),
                _ => return Fetched::Corrupt("session key holds another type".into()),
            };
            entry.expires_at = Some(now + ttl);
            if let Some(entry) = follower.and_then(|key| db.get(key)) {
                entry.expires_at = Some(now + ttl);
            }
            Fetched::Found(fetched)
        }))
    }

    async fn replace(&self, key: &str, value: &StoredValue) -> Result<bool> {
        Ok(self.with_db(|db| match db.get(key) {
            Some(entry) => {
                entry.value = to_value(value);
                true
            }
            None => false,
        }))
    }

    async fn update(
        &self,
        key: &str,
        old: &StoredValue,
        new: &StoredValue,
    ) -> Result<UpdateOutcome> {
        Ok(self.with_db(|db| {
            let Some(entry) = db.get(key) else {
                return UpdateOutcome::Gone;
            };
            match (&mut entry.value, old, new) {
                (Value::Str(current), StoredValue::Json(old), StoredValue::Json(new)) => {
                    if current != old {
                        return UpdateOutcome::Conflict;
                    }
                    new.clone_into(current);
                }
                (Value::Hash(current), StoredValue::Hash(old), StoredValue::Hash(new)) => {
                    let (set, delete) = field_changes(old, new);
                    for (name, value) in set {
                        match current.iter_mut().find(|(n, _)| n == name) {
                            Some(field) => value.clone_into(&mut field.1),
                            None => current.push((name.to_owned(), value.to_owned())),
                        }
                    }
                    current.retain(|(n, _)| !delete.contains(&n.as_str()));
                }
                _ => return UpdateOutcome::Conflict,
            }
            UpdateOutcome::Updated
        }))
    }

    async fn remove(&self, sessions: &[SessionKeyRef<'_>]) -> Result<u64> {
        Ok(self
            .end_sessions(sessions, None)
            .iter()
            .filter(|&&e| e)
            .count() as u64)
    }

    async fn remove_marked(
        &self,
        sessions: &[SessionKeyRef<'_>],
        mark: EndMark<'_>,
    ) -> Result<Vec<bool>> {
        Ok(self.end_sessions(sessions, Some(mark)))
    }

    async fn probe(&self, keys: SessionKeyRef<'_>, mark_prefix: &str) -> Result<Probe> {
        let now = Instant::now();
        Ok(self.with_db(|db| {
            let mark = |db: &mut Db| {
                let key = end_mark_key(mark_prefix, keys.session);
                db.get_str(&key).map(str::to_owned)
            };
            let companion_left = match keys.deadline.map(|key| db.get(key).map(|e| e.ttl(now))) {
                None => None,
                Some(Some(Some(left))) if !left.is_zero() => Some(duration_ms(left)),
                Some(_) => return Probe::Gone { mark: mark(db) },
            };
            let Some(entry) = db.get(keys.session) else {
                return Probe::Gone { mark: mark(db) };
            };
            let left = entry.ttl(now).map(duration_ms);
            Probe::Live {
                left_ms: match (left, companion_left) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                },
            }
        }))
    }

    fn key_changes(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        Some(self.changed_keys.subscribe())
    }

    async fn exists(&self, keys: &[&str]) -> Result<Vec<bool>> {
        Ok(self.with_db(|db| keys.iter().map(|k| db.exists(k)).collect()))
    }

    async fn ttls(&self, sessions: &[SessionKeyRef<'_>]) -> Result<Vec<Option<SessionTtl>>> {
        let now = Instant::now();
        Ok(self.with_db(|db| {
            sessions
                .iter()
                .map(|keys| {
                    let ttl_ms = db.get(keys.session)?.ttl(now).map(duration_ms);
                    let (deadline_ms, own_idle_ms) = match keys
                        .deadline
                        .map(|key| companion(db, key, keys.own_idle, now))
                    {
                        Some(Companion::Over) => return None,
                        Some(Companion::Deadline { left, own_idle_ms }) => {
                            (Some(duration_ms(left)), own_idle_ms)
                        }
                        Some(Companion::Follows) | None => (None, None),
                    };
                    Some(SessionTtl {
                        ttl_ms,
                        own_idle_ms,
                        deadline_ms,
                    })
                })
                .collect()
        }))
    }

    async fn rename(
        &self,
        from: SessionKeyRef<'_>,
        to: SessionKeyRef<'_>,
    ) -> Result<RenameOutcome> {
        Ok(self.rename_session(from, to, None))
    }

    async fn rename_marked(
        &self,
        from: SessionKeyRef<'_>,
        to: SessionKeyRef<'_>,
        mark: EndMark<'_>,
    ) -> Result<RenameOutcome> {
        Ok(self.rename_session(from, to, Some(mark)))
    }

    async fn index_add(
        &self,
        index: &str,
        member: &str,
        created_us: i64,
        ttl_ms: u64,
    ) -> Result<()> {
        self.with_db(|db| zadd(db, index, member, created_us, ttl_ms));
        Ok(())
    }

    async fn index_page(
        &self,
        index: &str,
        offset: usize,
        count: usize,
    ) -> Result<Vec<(String, i64)>> {
        Ok(self.with_db(|db| match db.get(index).map(|e| &e.value) {
            Some(Value::ZSet(members)) => {
                let mut members = members.clone();
                members.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
                members.into_iter().skip(offset).take(count).collect()
            }
            _ => Vec::new(),
        }))
    }

    async fn index_replace(
        &self,
        index: &str,
        old: &str,
        new: &str,
        created_us: i64,
        ttl_ms: u64,
    ) -> Result<bool> {
        Ok(self.with_db(|db| zreplace(db, index, old, new, created_us, ttl_ms)))
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
        self.with_db(|db| {
            zadd(db, index, member, created_us, ttl_ms);
            record(db, streams, event);
        });
        self.stream_added.notify_waiters();
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
        let moved = self.with_db(|db| {
            let moved = zreplace(db, index, old, new, created_us, ttl_ms);
            if moved {
                record(db, streams, event);
            }
            moved
        });
        if moved {
            self.stream_added.notify_waiters();
        }
        Ok(moved)
    }

    async fn index_remove_logged(
        &self,
        index: &str,
        members: &[&str],
        streams: &EventStreams<'_>,
        events: &[EventFields],
    ) -> Result<Vec<bool>> {
        let done: Vec<bool> = self.with_db(|db| {
            members
                .iter()
                .enumerate()
                .map(|(i, member)| {
                    let removed = zrem(db, index, member);
                    if let (true, Some(event)) = (removed, events.get(i)) {
                        record(db, streams, event);
                    }
                    removed
                })
                .collect()
        });
        if done.contains(&true) {
            self.stream_added.notify_waiters();
        }
        Ok(done)
    }

    async fn read_events(&self, stream: &str, count: usize) -> Result<Vec<RawEvent>> {
        Ok(self.with_db(|db| read_last(db, stream, count)))
    }

    async fn event_reader(&self) -> Result<Box<dyn EventReader>> {
        Ok(Box::new(MemoryEventReader(self.clone())))
    }

    async fn index_remove(&self, index: &str, members: &[&str]) -> Result<()> {
        self.with_db(|db| {
            if let Some(Value::ZSet(current)) = db.get(index).map(|e| &mut e.value) {
                current.retain(|(m, _)| !members.contains(&m.as_str()));
                if current.is_empty() {
                    db.remove(index);
                }
            }
        });
        Ok(())
    }
}
