//! Sessions in memory.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::store::{Fetched, SessionKeyRef, SessionStore, UpdateOutcome, field_changes};
use crate::codec::StoredValue;
use crate::config::Codec;
use crate::error::Result;
use crate::memory_store::MemoryStore;
use crate::memory_store::db::Value;

fn to_value(stored: &StoredValue) -> Value {
    match stored {
        StoredValue::Json(text) => Value::Str(text.clone()),
        StoredValue::Hash(fields) => Value::Hash(fields.clone()),
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn insert(
        &self,
        keys: SessionKeyRef<'_>,
        value: &StoredValue,
        idle_ms: u64,
        lifetime_ms: Option<u64>,
    ) -> Result<bool> {
        Ok(self.with_db(|db| {
            if db.exists(keys.session) {
                return false;
            }
            let mut ttl = idle_ms;
            if let (Some(deadline), Some(lifetime)) = (keys.deadline, lifetime_ms) {
                ttl = ttl.min(lifetime);
                db.set(
                    deadline,
                    Value::Str("1".into()),
                    Some(Duration::from_millis(lifetime)),
                );
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
        codec: Codec,
        idle_ms: u64,
    ) -> Result<Fetched> {
        Ok(self.with_db(|db| {
            let now = Instant::now();
            let mut ttl = Duration::from_millis(idle_ms);
            if let Some(deadline) = keys.deadline {
                // A deadline key that is gone or has no expiry left ends the session.
                match db.get(deadline).and_then(|entry| entry.ttl(now)) {
                    Some(left) if !left.is_zero() => ttl = ttl.min(left),
                    _ => return Fetched::Missing,
                }
            }
            let Some(entry) = db.get(keys.session) else {
                return Fetched::Missing;
            };
            let fetched = match (&entry.value, codec) {
                (Value::Str(text), Codec::Json) => StoredValue::Json(text.clone()),
                (Value::Hash(fields), Codec::Hash) => StoredValue::Hash(fields.clone()),
                _ => return Fetched::Corrupt("session key holds another type".into()),
            };
            entry.expires_at = Some(now + ttl);
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
        Ok(self.with_db(|db| {
            sessions
                .iter()
                .map(|keys| {
                    if let Some(deadline) = keys.deadline {
                        db.remove(deadline);
                    }
                    u64::from(db.remove(keys.session))
                })
                .sum()
        }))
    }

    async fn exists(&self, keys: &[&str]) -> Result<Vec<bool>> {
        Ok(self.with_db(|db| keys.iter().map(|k| db.exists(k)).collect()))
    }

    async fn index_add(
        &self,
        index: &str,
        member: &str,
        created_us: i64,
        ttl_ms: u64,
    ) -> Result<()> {
        self.with_db(|db| {
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
        });
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
