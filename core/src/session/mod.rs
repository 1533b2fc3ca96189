//! Sessions: the typed model handed to handlers and the manager that creates and loads them.

mod config;
mod event_log;
pub mod events;
mod index;
pub(crate) mod keys;
mod manager;
#[cfg(feature = "memory")]
mod memory;
pub mod near_cache;
mod options;
mod redis;
pub(crate) mod store;
mod watch;

use std::fmt;
use std::ops::Deref;

pub use config::{
    DEFAULT_IDLE_TTL, DEFAULT_INDEX_RETENTION, DEFAULT_WATCH_RECHECK, END_MARK_TTL, LoginLimits,
    SessionConfig,
};
pub use events::{EventFollower, EventLog, SessionEvent, SessionEventKind};
pub use index::SessionId;
pub use keys::UserId;
pub use manager::{INDEX_BATCH, Rotated, SessionManager};
pub use near_cache::{NearCache, NearCacheStats};
pub use options::{DEVICE_LABEL_MAX_CHARS, LoginOptions};
pub use store::UpdateOutcome;
pub use watch::{EndReason, Ended, WatchStats};

use crate::codec::StoredValue;
use crate::token::Token;

/// Session data that names its user, as axum-login's `AuthUser::id` does: it lets a handler
/// log in (`sessions.login(&user)`), end every session of its user
/// (`auth.logout_everywhere()`) and list them (`auth.sessions()`) without passing a user id,
/// so that a handler can only touch its own user's sessions.
///
/// ```
/// use keygate::{SessionUser, UserId};
///
/// struct User { id: u64 }
///
/// impl SessionUser for User {
///     fn user_id(&self) -> UserId {
///         UserId::from(self.id)
///     }
/// }
/// assert_eq!(User { id: 598 }.user_id().as_str(), "598");
/// ```
pub trait SessionUser {
    /// The id of the user this data belongs to: the key of the user's session index.
    fn user_id(&self) -> UserId;
}

/// A live session: the user's data, loaded (and its idle TTL reset) by
/// [`SessionManager::load`].
///
/// Dereferences to the data. `Debug` shows the data but never the token.
#[derive(Clone)]
pub struct Session<T> {
    token: Token,
    data: T,
    /// The data as loaded, so an update writes only what changed.
    stored: StoredValue,
}

impl<T> Session<T> {
    /// The token this session was loaded with (for logout).
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// The user's data.
    pub fn data(&self) -> &T {
        &self.data
    }

    /// Takes the user's data.
    pub fn into_data(self) -> T {
        self.data
    }

    pub(crate) fn stored(&self) -> &StoredValue {
        &self.stored
    }
}

/// What the near cache keeps of a session a load decoded: hits share it.
impl<T: Send + Sync + 'static> near_cache::DecodedSession for Session<T> {
    fn stored(&self) -> &StoredValue {
        &self.stored
    }
}

impl<T> Deref for Session<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.data
    }
}

impl<T: fmt::Debug> fmt::Debug for Session<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("token", &self.token)
            .field("data", &self.data)
            .finish()
    }
}

/// One live session of a user, as listed by [`SessionManager::sessions`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The session's public id: what [`SessionManager::end_session`] takes. Not the token,
    /// and the token cannot be computed from it.
    pub id: SessionId,
    /// When the session was created, in unix milliseconds.
    pub created_at_ms: i64,
    /// When the session was last loaded (its last authenticated request), in unix
    /// milliseconds; never before `created_at_ms`.
    pub last_seen_ms: i64,
    /// The device label given at login (typically its `User-Agent`, cut).
    pub device: Option<String>,
    /// Whether this is the session of the token passed to `sessions`.
    pub current: bool,
}
