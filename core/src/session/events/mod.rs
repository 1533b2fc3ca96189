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

pub(crate) use super::event_log::StreamKeys;
pub use super::event_log::{
    DEFAULT_GLOBAL_LEN, DEFAULT_MAX_AGE, DEFAULT_USER_LEN, EventFields, EventLog, EventReader,
    EventStreams, RawEvent,
};
use super::index::SessionId;
use super::keys::UserId;
use crate::error::Result;
use crate::ttl::millis;

/// How long one blocking read of a follower waits before it asks again.
const FOLLOW_BLOCK: Duration = Duration::from_secs(2);
/// Most entries one read returns.
const READ_BATCH: usize = 128;

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
