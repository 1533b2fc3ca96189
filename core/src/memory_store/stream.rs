//! A minimal stream with consumer groups, as the memory backend emulates Redis streams:
//! entries by sequence number (ids `<seq>-0`), groups with their last delivered entry and
//! their pending entries.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// A stream: entries by sequence number, and consumer groups.
#[derive(Debug, Clone, Default)]
pub(crate) struct MemStream {
    pub next: u64,
    pub entries: BTreeMap<u64, Vec<(String, String)>>,
    pub groups: HashMap<String, Group>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Group {
    pub last_delivered: u64,
    pub pending: BTreeMap<u64, Pending>,
}

#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub consumer: String,
    pub deliveries: u64,
    pub delivered_at: Instant,
}

pub(crate) fn entry_id(seq: u64) -> String {
    format!("{seq}-0")
}

pub(crate) fn parse_id(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

impl MemStream {
    /// Appends an entry.
    pub fn add(&mut self, fields: Vec<(String, String)>) {
        self.next += 1;
        self.entries.insert(self.next, fields);
    }
}
