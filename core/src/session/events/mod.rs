//! The session event log: who logged in where, and how each session ended, as capped Redis
//! streams (one per user, one for all users). Off unless configured
//! ([`SessionConfig::with_event_log`](crate::SessionConfig::with_event_log)); when off it
//! costs nothing, not one command.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), keygate::Error> {
//! use keygate::session::{EventLog, LoginOptions, SessionEventKind};
//! use keygate::{MemoryStore, SessionConfig, SessionManager, UserId};
//!
//! let config = SessionConfig::java_seed().with_event_log(EventLog::new());
//! let sessions = SessionManager::<std::collections::HashMap<String, String>>::new(
//!     MemoryStore::new(),
//!     config,
//! )?;
//! let user = UserId::from(598u64);
//! let data = [("id".to_owned(), "598".to_owned())].into_iter().collect();
//! let token = sessions
//!     .login_with(&user, &data, &LoginOptions::new().with_device("Firefox"))
//!     .await?;
//! sessions.logout_everywhere(&user).await?;
//!
//! let events = sessions.events(&user, 10).await?;
//! let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
//! assert_eq!(kinds, [SessionEventKind::Login, SessionEventKind::LogoutAll]);
//! assert_eq!(events[0].session, sessions.session_id(&token));
//! assert_eq!(events[0].device.as_deref(), Some("Firefox"));
//! # Ok(()) }
//! ```
//!
//! # What is recorded
//!
//! | kind | wire name | recorded when |
//! | --- | --- | --- |
//! | [`Login`](SessionEventKind::Login) | `login` | a login created a session: its id, device and, when the login chose them (remember-me), its own idle TTL and lifetime |
//! | [`Logout`](SessionEventKind::Logout) | `logout` | the session was ended by its own logout ([`SessionManager::logout_session`](crate::SessionManager::logout_session), or a handler's `logout` once the manager knows its users) |
//! | [`SessionEnded`](SessionEventKind::SessionEnded) | `session-ended` | the session was ended by id from another session of its user ("log out that device") |
//! | [`LogoutAll`](SessionEventKind::LogoutAll) | `logout-all` | the session was ended by "log out everywhere" (one event per session ended) |
//! | [`Rotated`](SessionEventKind::Rotated) | `rotated` | the session got a new token; `session` is the old id, `new_session` the new one |
//! | [`Expired`](SessionEventKind::Expired) | `expired` | keygate's per-user index found the session gone and pruned its entry (at a login, a listing, a logout everywhere of its user): it expired, was evicted by Redis or deleted by another program |
//! | [`Evicted`](SessionEventKind::Evicted) | `evicted` | a login beyond the per-user cap ended the session |
//! | [`OperatorEnded`](SessionEventKind::OperatorEnded) | `operator-ended` | an operator ended it ([`SessionManager::operator_end`](crate::SessionManager::operator_end), `keygate-cli sessions end`) |
//!
//! Events never hold a token, nor anything a token can be computed from: sessions are
//! named by their public [`SessionId`]. A load of a token, known or not, records nothing
//! and stays one round trip. Events are recorded for the sessions in keygate's per-user
//! index (those its `login` created); a session another service created is not in it.
//!
//! # Where the events are
//!
//! - per user: a stream at `<prefix>{<index key>}` (default
//!   `keygate:events:{keygate:user-sessions:<user id>}`): its hash tag is the user's index
//!   key, so on a Redis Cluster it lives in the index's hash slot. At most
//!   [`EventLog::with_user_len`] entries (trimmed exactly), none older than
//!   [`EventLog::with_max_age`], and the stream itself expires that long after its last
//!   event.
//! - for all users: a stream at `<prefix>all`, at most about [`EventLog::with_global_len`]
//!   entries (trimmed approximately: up to one stream node, 100 entries, more) and none
//!   much older than the maximum age.
//!
//! # What is atomic, and the crash window
//!
//! An event is written by the call that changes its session's entry in the user's index,
//! **in the same script as that change**: the `ZADD` of a login, the move of a rotation,
//! the `ZREM` of an ending or a pruning. An entry leaves the index once, so each
//! session's end is recorded once, by whichever call removed its entry, even when several
//! instances end or prune the same session at the same time. On one server the global
//! stream is written in that script too; on a Cluster it lives in another hash slot and is
//! written by the same call right after the script.
//!
//! The session key itself cannot share a slot with the index (the seed layouts fix its
//! name), so a session change and its index change are two steps of one call, in this
//! order:
//!
//! - login: the session is created, then its index entry and `login` event (one script);
//! - an ending (logout, ending by id, logout everywhere, the cap, an operator): the
//!   session keys are deleted, then the index entries are removed with their events (one
//!   script); the kind is the call's own when its delete found the session, `expired`
//!   when the session was already gone;
//! - rotation: the session is renamed, then its index entry is moved with its `rotated`
//!   event (one script).
//!
//! So no event is ever written without its change. If the process dies (or Redis becomes
//! unreachable) between the two steps:
//!
//! - at a login, the session exists without index entry and without event; its token
//!   was never handed out, and it idles away;
//! - at an ending, the session is gone and its entry and event are not written; the
//!   entry is pruned at the user's next login, listing or logout everywhere, and its end
//!   recorded then, as `expired`;
//! - at a rotation, the session lives under its new key while the index names the old
//!   one; the next pruning records it as `expired` (and "log out everywhere" no longer
//!   reaches it: the window existed before the event log).
//!
//! At most the event of the change in progress is lost (recorded late, as `expired`), and
//! on a Cluster also the global copy of the events of that one call (counted in
//! `keygate_session_events_dropped_total` when Redis refused it). A session ended by one
//! call while another call's pruning walks the same index between the first call's two
//! steps is recorded once, as `expired`.
//!
//! # Reading
//!
//! [`SessionManager::events`](crate::SessionManager::events) reads a user's recent
//! events, [`SessionManager::recent_events`](crate::SessionManager::recent_events) every
//! user's, and [`SessionManager::follow_events`](crate::SessionManager::follow_events)
//! waits for new ones ([`EventFollower`]: a blocking `XREAD` on a connection of its own),
//! e.g. to tell a user "a new device logged in to your account".

#[cfg(feature = "memory")]
pub(crate) mod memory;
pub(crate) mod redis;

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use super::index::SessionId;
use super::keys::UserId;
use crate::error::{Error, Result};
use crate::ttl::{check_ttl, millis};

/// Default length of a user's stream: the last 100 events.
pub const DEFAULT_USER_LEN: u64 = 100;
/// Default length of the stream of all users: about the last 100,000 events.
pub const DEFAULT_GLOBAL_LEN: u64 = 100_000;
/// Default age beyond which events are trimmed: 30 days.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long one blocking read of a follower waits before it asks again.
const FOLLOW_BLOCK: Duration = Duration::from_secs(2);
/// Most entries one read returns.
const READ_BATCH: usize = 128;

/// Settings of the session event log
/// ([`SessionConfig::with_event_log`](crate::SessionConfig::with_event_log)); [the module
/// docs](self) say what is recorded where.
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

/// What happened to a session. The wire names ([`as_str`](Self::as_str)) are stable: they
/// are what the streams hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionEventKind {
    /// A login created the session.
    Login,
    /// The session's own logout ended it.
    Logout,
    /// Another session of its user ended it by id.
    SessionEnded,
    /// "Log out everywhere" ended it.
    LogoutAll,
    /// It got a new token (and a new id).
    Rotated,
    /// The index found it gone (expired, evicted by Redis, deleted by another program).
    Expired,
    /// A login beyond the per-user cap ended it.
    Evicted,
    /// An operator ended it.
    OperatorEnded,
}

impl SessionEventKind {
    /// Every kind.
    pub const ALL: [Self; 8] = [
        Self::Login,
        Self::Logout,
        Self::SessionEnded,
        Self::LogoutAll,
        Self::Rotated,
        Self::Expired,
        Self::Evicted,
        Self::OperatorEnded,
    ];

    /// The wire name: `login`, `logout`, `session-ended`, `logout-all`, `rotated`,
    /// `expired`, `evicted`, `operator-ended`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Logout => "logout",
            Self::SessionEnded => "session-ended",
            Self::LogoutAll => "logout-all",
            Self::Rotated => "rotated",
            Self::Expired => "expired",
            Self::Evicted => "evicted",
            Self::OperatorEnded => "operator-ended",
        }
    }

    /// The kind of a wire name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Whether the session named by the event (its `session`) no longer works after it:
    /// every kind but [`Login`](Self::Login).
    pub fn ends_session(self) -> bool {
        self != Self::Login
    }
}

impl fmt::Display for SessionEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One recorded event. Never a token: sessions are named by their public id.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionEvent {
    /// The stream entry's id (`<ms>-<seq>`): its position, to resume following after it
    /// ([`SessionManager::follow_events_after`](crate::SessionManager::follow_events_after)).
    /// A user's stream and the global one give the same event different ids.
    pub position: String,
    /// What happened.
    pub kind: SessionEventKind,
    /// Whose session.
    pub user: UserId,
    /// The session's public id (for a rotation, the old one).
    pub session: SessionId,
    /// For a rotation, the session's new id.
    pub new_session: Option<SessionId>,
    /// The device label given at login.
    pub device: Option<String>,
    /// When, in unix milliseconds, by the clock of the instance that recorded it.
    pub at_ms: i64,
    /// For a login that chose its own expiry (remember-me): its idle TTL.
    pub idle_ttl: Option<Duration>,
    /// For a login that chose its own expiry (remember-me): its absolute lifetime.
    pub lifetime: Option<Duration>,
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

/// What to record for one change: built by the manager, written by the store.
pub(crate) struct NewEvent<'a> {
    pub kind: SessionEventKind,
    pub user: &'a UserId,
    pub session: SessionId,
    pub new_session: Option<SessionId>,
    pub device: Option<&'a str>,
    pub at_ms: i64,
    pub idle_ms: Option<u64>,
    pub lifetime_ms: Option<u64>,
}

impl NewEvent<'_> {
    /// The stream entry's fields.
    pub fn fields(&self) -> EventFields {
        let mut fields = vec![
            ("kind", self.kind.as_str().to_owned()),
            ("user", self.user.as_str().to_owned()),
            ("session", self.session.as_str().to_owned()),
            ("at", self.at_ms.to_string()),
        ];
        if let Some(id) = &self.new_session {
            fields.push(("newSession", id.as_str().to_owned()));
        }
        if let Some(device) = self.device {
            fields.push(("device", device.to_owned()));
        }
        if let Some(ms) = self.idle_ms {
            fields.push(("idleMs", ms.to_string()));
        }
        if let Some(ms) = self.lifetime_ms {
            fields.push(("lifetimeMs", ms.to_string()));
        }
        fields
    }
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

/// Reads an entry back; `None` (and a warning) for one keygate did not write.
pub(crate) fn parse(raw: RawEvent) -> Option<SessionEvent> {
    let field = |name: &str| {
        raw.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let ms = |name: &str| {
        field(name)
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis)
    };
    let event = (|| {
        Some(SessionEvent {
            kind: SessionEventKind::parse(field("kind")?)?,
            user: UserId::new(field("user")?).ok()?,
            session: SessionId::parse(field("session")?)?,
            new_session: match field("newSession") {
                Some(id) => Some(SessionId::parse(id)?),
                None => None,
            },
            device: field("device").map(str::to_owned),
            at_ms: field("at")?.parse().ok()?,
            idle_ttl: ms("idleMs"),
            lifetime: ms("lifetimeMs"),
            position: raw.id.clone(),
        })
    })();
    if event.is_none() {
        tracing::warn!(id = %raw.id, "a session event stream holds an entry keygate did not write; skipped");
    }
    event
}

/// New events of a stream as they are recorded
/// ([`SessionManager::follow_events`](crate::SessionManager::follow_events)): a hook for
/// "a new device logged in to your account" notifications.
///
/// Each [`next`](Self::next) waits on a connection of its own (a blocking `XREAD`,
/// renewed every 2 s), never on the connection that serves requests. Dropping a pending
/// `next` (in a `select!`) loses nothing: events are taken from the stream only when
/// `next` returns them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), keygate::Error> {
/// use keygate::session::{EventLog, SessionEventKind};
/// use keygate::{MemoryStore, SessionConfig, SessionManager, UserId};
///
/// let sessions = SessionManager::<serde_json::Value>::new(
///     MemoryStore::new(),
///     SessionConfig::node_seed("app").with_event_log(EventLog::new()),
/// )?;
/// let user = UserId::from(7u64);
/// let mut follower = sessions.follow_events(Some(&user)).await?;
/// sessions.login(&user, &serde_json::json!({"id": 7})).await?;
/// let event = follower.next().await?;
/// if event.kind == SessionEventKind::Login {
///     // e.g. mail the user: "a new device logged in" (event.device)
/// }
/// assert_eq!(event.user, user);
/// # Ok(()) }
/// ```
pub struct EventFollower {
    reader: Box<dyn EventReader>,
    stream: String,
    after: String,
    ready: VecDeque<SessionEvent>,
}

impl fmt::Debug for EventFollower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventFollower")
            .field("stream", &self.stream)
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

impl EventFollower {
    pub(crate) fn new(reader: Box<dyn EventReader>, stream: String, after: String) -> Self {
        Self {
            reader,
            stream,
            after,
            ready: VecDeque::new(),
        }
    }

    /// The next event, waiting for one to be recorded. An error (Redis unreachable) leaves
    /// the follower where it was: call `next` again to resume.
    pub async fn next(&mut self) -> Result<SessionEvent> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(event);
            }
            let block_ms = millis(FOLLOW_BLOCK);
            let entries = self
                .reader
                .read_after(&self.stream, &self.after, READ_BATCH, block_ms)
                .await?;
            if let Some(last) = entries.last() {
                self.after.clone_from(&last.id);
            }
            self.ready.extend(entries.into_iter().filter_map(parse));
        }
    }

    /// The position of the last event taken from the stream (returned or about to be):
    /// pass it to [`SessionManager::follow_events_after`](crate::SessionManager::follow_events_after)
    /// to resume after it.
    pub fn position(&self) -> &str {
        &self.after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_their_wire_names() {
        for kind in SessionEventKind::ALL {
            assert_eq!(SessionEventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(SessionEventKind::parse("Login"), None);
        assert!(!SessionEventKind::Login.ends_session());
        assert!(SessionEventKind::Rotated.ends_session());
    }

    #[test]
    fn user_streams_share_the_index_keys_hash_tag() {
        let log = EventLog::new();
        assert_eq!(
            log.user_stream("keygate:user-sessions:598"),
            "keygate:events:{keygate:user-sessions:598}"
        );
        assert_eq!(log.global_stream(), "keygate:events:all");
        assert!(EventLog::new().with_prefix("a{b").validate().is_err());
        assert!(EventLog::new().with_user_len(0).validate().is_err());
    }

    #[test]
    fn events_read_back_as_written() {
        let user = UserId::from(598u64);
        let event = NewEvent {
            kind: SessionEventKind::Rotated,
            user: &user,
            session: SessionId::for_key_id("a"),
            new_session: Some(SessionId::for_key_id("b")),
            device: Some("Firefox"),
            at_ms: 1_700_000_000_000,
            idle_ms: None,
            lifetime_ms: Some(60_000),
        };
        let raw = RawEvent {
            id: "1-0".into(),
            fields: event
                .fields()
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v))
                .collect(),
        };
        let back = parse(raw).unwrap();
        assert_eq!(back.kind, SessionEventKind::Rotated);
        assert_eq!(back.user, user);
        assert_eq!(back.new_session, Some(SessionId::for_key_id("b")));
        assert_eq!(back.lifetime, Some(Duration::from_millis(60_000)));
        assert_eq!(back.idle_ttl, None);
        assert_eq!(back.position, "1-0");
        let junk = RawEvent {
            id: "2-0".into(),
            fields: vec![("kind".into(), "nonsense".into())],
        };
        assert!(parse(junk).is_none());
    }
}
