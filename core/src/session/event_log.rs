//! The event log's settings and what a store exchanges to write and read it (the storage
//! side of [`session::events`](crate::session::events)).

use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::ttl::{check_ttl, millis};

/// Default length of a user's stream: the last 100 events.
pub const DEFAULT_USER_LEN: u64 = 100;
/// Default length of the stream of all users: about the last 100,000 events.
pub const DEFAULT_GLOBAL_LEN: u64 = 100_000;
/// Default age beyond which events are trimmed: 30 days.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Settings of the session event log
/// ([`SessionConfig::with_event_log`](crate::SessionConfig::with_event_log)); [the module
/// docs](crate::session::events) say what is recorded where.
///
/// ```
/// use std::time::Duration;
/// use keygate::{SessionConfig, session::EventLog};
///
/// let log = EventLog::new()
///     .with_user_len(50)
///     .with_max_age(Duration::from_secs(7 * 86_400));
/// let config = SessionConfig::java_seed().with_event_log(log);
/// assert_eq!(config.event_log().map(EventLog::user_len), Some(50));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLog {
    prefix: String,
    user_len: u64,
    global_len: u64,
    max_age: Duration,
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new()
    }
}

impl EventLog {
    /// Prefix `keygate:events:`, [`DEFAULT_USER_LEN`] events per user,
    /// [`DEFAULT_GLOBAL_LEN`] in all, none older than [`DEFAULT_MAX_AGE`].
    pub fn new() -> Self {
        Self {
            prefix: "keygate:events:".to_owned(),
            user_len: DEFAULT_USER_LEN,
            global_len: DEFAULT_GLOBAL_LEN,
            max_age: DEFAULT_MAX_AGE,
        }
    }

    /// The prefix of the stream keys (default `keygate:events:`); no braces, whitespace
    /// or control characters.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// At most this many events per user (default [`DEFAULT_USER_LEN`]).
    pub fn with_user_len(mut self, len: u64) -> Self {
        self.user_len = len;
        self
    }

    /// About this many events of all users (default [`DEFAULT_GLOBAL_LEN`]).
    pub fn with_global_len(mut self, len: u64) -> Self {
        self.global_len = len;
        self
    }

    /// Events older than this are trimmed, and a user's stream expires this long after
    /// its last event (default [`DEFAULT_MAX_AGE`]).
    pub fn with_max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// The stream key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Events kept per user.
    pub fn user_len(&self) -> u64 {
        self.user_len
    }

    /// Events kept for all users (about).
    pub fn global_len(&self) -> u64 {
        self.global_len
    }

    /// The age beyond which events are trimmed.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// The stream of the user whose index key is `index_key`: hash-tagged by it, so it
    /// shares the index's slot on a cluster.
    pub(crate) fn user_stream(&self, index_key: &str) -> String {
        format!("{}{{{index_key}}}", self.prefix)
    }

    /// The stream of all users.
    pub(crate) fn global_stream(&self) -> String {
        format!("{}all", self.prefix)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self
            .prefix
            .chars()
            .any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control())
        {
            return Err(Error::Config(format!(
                "event log prefix {:?} may not contain braces, whitespace or control characters",
                self.prefix
            )));
        }
        if self.user_len == 0 || self.global_len == 0 {
            return Err(Error::Config("event log lengths must be at least 1".into()));
        }
        check_ttl("event log maximum age", self.max_age)
    }
}

/// An event's fields as a stream entry holds them.
pub type EventFields = Vec<(&'static str, String)>;

/// A stream entry as read back: its id and fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    /// The entry id.
    pub id: String,
    /// Field names and values.
    pub fields: Vec<(String, String)>,
}

/// Where a store writes the events of one change.
#[derive(Debug, Clone, Copy)]
pub struct EventStreams<'a> {
    /// The user's stream (in the index key's hash slot).
    pub user: &'a str,
    /// The stream of all users.
    pub global: &'a str,
    /// The user stream's length, trimmed exactly.
    pub user_len: u64,
    /// The global stream's length, trimmed approximately.
    pub global_len: u64,
    /// Entries older than this are trimmed; the user's stream expires this long after its
    /// last event.
    pub max_age_ms: u64,
}

/// Reads stream entries newer than a position, waiting for them: on Redis a blocking
/// `XREAD` on a connection of its own.
#[async_trait]
pub trait EventReader: Send + Sync {
    /// Up to `count` entries of `stream` after entry id `after` (`0-0` for all), waiting up
    /// to `block_ms` for one; empty when none came.
    async fn read_after(
        &mut self,
        stream: &str,
        after: &str,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<RawEvent>>;
}

/// The streams of `log` for the user whose index key is `index_key`.
pub(crate) struct StreamKeys {
    pub user: String,
    pub global: String,
    pub user_len: u64,
    pub global_len: u64,
    pub max_age_ms: u64,
}

impl StreamKeys {
    pub fn new(log: &EventLog, index_key: &str) -> Self {
        Self {
            user: log.user_stream(index_key),
            global: log.global_stream(),
            user_len: log.user_len,
            global_len: log.global_len,
            max_age_ms: millis(log.max_age),
        }
    }

    pub fn streams(&self) -> EventStreams<'_> {
        EventStreams {
            user: &self.user,
            global: &self.global,
            user_len: self.user_len,
            global_len: self.global_len,
            max_age_ms: self.max_age_ms,
        }
    }
}
