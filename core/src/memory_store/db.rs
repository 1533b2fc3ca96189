//! A tiny keyspace with Redis-like expiry.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::stream::MemStream;

/// How often (in writes) expired entries are swept, so memory stays bounded when keys are
/// never read again.
const SWEEP_EVERY: u32 = 1024;

#[derive(Debug, Clone)]
pub(crate) enum Value {
    Str(String),
    Hash(Vec<(String, String)>),
    /// Members with their scores.
    ZSet(Vec<(String, i64)>),
    Set(std::collections::HashSet<String>),
    Stream(Box<MemStream>),
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub value: Value,
    pub expires_at: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }

    /// Remaining TTL; `None` for a key without expiry.
    pub fn ttl(&self, now: Instant) -> Option<Duration> {
        self.expires_at.map(|t| t.saturating_duration_since(now))
    }
}

#[derive(Default)]
pub(crate) struct Db {
    entries: HashMap<String, Entry>,
    writes: u32,
}

impl Db {
    /// The stream at `key`, created if missing; `None` when the key holds another type.
    pub fn stream(&mut self, key: &str) -> Option<&mut MemStream> {
        if !self.exists(key) {
            self.set(key, Value::Stream(Box::default()), None);
        }
        match self.get(key).map(|e| &mut e.value) {
            Some(Value::Stream(stream)) => Some(stream),
            _ => None,
        }
    }

    /// The stream at `key`, if there is one.
    pub fn existing_stream(&mut self, key: &str) -> Option<&MemStream> {
        match self.get(key).map(|e| &e.value) {
            Some(Value::Stream(stream)) => Some(stream),
            _ => None,
        }
    }

    /// The live entry at `key`; an expired one is dropped first.
    pub fn get(&mut self, key: &str) -> Option<&mut Entry> {
        let now = Instant::now();
        if self.entries.get(key).is_some_and(|e| !e.live(now)) {
            self.entries.remove(key);
        }
        self.entries.get_mut(key)
    }

    pub fn exists(&mut self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn set(&mut self, key: &str, value: Value, ttl: Option<Duration>) {
        self.note_write();
        let expires_at = ttl.map(|d| Instant::now() + d);
        self.entries
            .insert(key.to_owned(), Entry { value, expires_at });
    }

    pub fn remove(&mut self, key: &str) -> bool {
        let existed = self.exists(key);
        self.entries.remove(key);
        existed
    }

    /// `RENAME`: moves a live entry, value and expiry, to `to` (replacing what was there);
    /// `false` when there is nothing at `from`.
    pub fn rename(&mut self, from: &str, to: &str) -> bool {
        if !self.exists(from) {
            return false;
        }
        match self.entries.remove(from) {
            Some(entry) => {
                self.note_write();
                self.entries.insert(to.to_owned(), entry);
                true
            }
            None => false,
        }
    }

    /// The string at `key`, if live and a string.
    pub fn get_str(&mut self, key: &str) -> Option<&str> {
        match self.get(key).map(|e| &e.value) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// Remaining TTL of a live key with an expiry.
    pub fn ttl(&mut self, key: &str) -> Option<Duration> {
        let now = Instant::now();
        self.get(key).and_then(|e| e.ttl(now))
    }

    /// `INCR`: the new value (a missing or non-numeric value counts as 0); keeps the TTL.
    pub fn incr(&mut self, key: &str) -> i64 {
        let ttl = self.ttl(key);
        let n = self
            .get_str(key)
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
            .saturating_add(1);
        self.set(key, Value::Str(n.to_string()), ttl);
        n
    }

    /// How many live keys start with `prefix`.
    pub fn count_live(&self, prefix: &str) -> usize {
        let now = Instant::now();
        self.entries
            .iter()
            .filter(|(key, entry)| key.starts_with(prefix) && entry.live(now))
            .count()
    }

    fn note_write(&mut self) {
        self.writes = self.writes.wrapping_add(1);
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            let now = Instant::now();
            self.entries.retain(|_, e| e.live(now));
        }
    }
}
