//! Session configuration: key scheme, expiry, codec. Built once, shared behind an `Arc`.

use std::time::Duration;

use crate::codec::Layout;
use crate::error::Error;
use crate::session::NearCache;
use crate::session::event_log::EventLog;
use crate::token::{TokenFormat, TokenFormats, check_issuable};
use crate::ttl::check_ttl;

/// Default idle TTL: 30 minutes, the seeds' value.
pub const DEFAULT_IDLE_TTL: Duration = Duration::from_secs(1800);

/// Default life of a per-user index key after the user's last login, when sessions have no
/// absolute lifetime: 30 days.
pub const DEFAULT_INDEX_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Default interval of the session watchers' re-checks while changes cannot be relied on,
/// and of the check of their own tracking connections
/// ([`SessionConfig::with_watch_recheck`]).
pub const DEFAULT_WATCH_RECHECK: Duration = Duration::from_secs(1);
/// How long an end mark stays ([`SessionConfig::with_end_mark_prefix`]): a watcher that
/// learns of an end later (after a longer outage) reports
/// [`EndReason::Unknown`](crate::session::EndReason::Unknown).
pub const END_MARK_TTL: Duration = Duration::from_secs(10);

/// Configuration of a [`SessionManager`](crate::SessionManager).
///
/// ```
/// use std::time::Duration;
/// use keygate::{Layout, SessionConfig};
///
/// // The Java seed's layout: `login:token:<token>` holding a hash, 30 minutes idle.
/// let java = SessionConfig::java_seed();
/// assert_eq!(java.prefix(), "login:token:");
///
/// // The Node seed's layout: `<custom>_<token>` holding JSON.
/// let node = SessionConfig::node_seed("myapp").with_absolute_lifetime(Duration::from_secs(86_400));
/// assert_eq!(node.prefix(), "myapp_");
/// assert_eq!(node.layout(), Layout::Json);
/// ```
#[derive(Debug, Clone)]
pub struct SessionConfig {
    prefix: String,
    codec: Layout,
    idle_ttl: Duration,
    absolute_lifetime: Option<Duration>,
    hashed_keys: bool,
    max_sessions_per_user: Option<usize>,
    index_prefix: String,
    deadline_prefix: String,
    token_format: TokenFormat,
    token_formats: TokenFormats,
    index_retention: Duration,
    login_limits: Option<LoginLimits>,
    near_cache: Option<NearCache>,
    event_log: Option<EventLog>,
    end_mark_prefix: String,
    watch_recheck: Duration,
}

/// How far a login may choose its own session expiry
/// ([`LoginOptions`](crate::session::LoginOptions), e.g. "remember me"). Without limits in
/// the configuration, logins cannot choose.
///
/// A session whose login chose an idle TTL but no lifetime gets the configuration's
/// absolute lifetime, or else `max_lifetime`: a session with its own expiry always has an
/// end.
///
/// With limits, every session has a companion key (its deadline as TTL; for a session
/// without one, `0` and the session's own TTL, reset with it), and a session whose
/// companion is missing, has lost its expiry or is in its last millisecond is over: an
/// evicted or deleted deadline ends the session rather than letting it slide for ever.
/// Sessions written by another service without a companion are not accepted then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// The longest idle TTL a login may choose.
    pub max_idle_ttl: Duration,
    /// The longest absolute lifetime a login may choose.
    pub max_lifetime: Duration,
}

impl LoginLimits {
    /// Limits of `max_idle_ttl` idle and `max_lifetime` in all.
    pub fn new(max_idle_ttl: Duration, max_lifetime: Duration) -> Self {
        Self {
            max_idle_ttl,
            max_lifetime,
        }
    }
}

impl Default for SessionConfig {
    /// Prefix `keygate:session:`, JSON codec, 30 minutes idle, no absolute lifetime.
    fn default() -> Self {
        Self::new("keygate:session:", Layout::Json)
    }
}

impl SessionConfig {
    /// A configuration with the given key prefix and codec and the defaults for the rest.
    /// The prefix is free-form (`myapp_`, `login:token:`) but may not contain `{`, `}`,
    /// whitespace or control characters; [`SessionManager::new`](crate::SessionManager::new)
    /// checks that.
    pub fn new(prefix: impl Into<String>, codec: Layout) -> Self {
        Self {
            prefix: prefix.into(),
            codec,
            idle_ttl: DEFAULT_IDLE_TTL,
            absolute_lifetime: None,
            hashed_keys: false,
            max_sessions_per_user: None,
            index_prefix: "keygate:user-sessions:".to_owned(),
            deadline_prefix: "keygate:deadline:".to_owned(),
            token_format: TokenFormat::Hex32,
            token_formats: TokenFormats::standard(),
            index_retention: DEFAULT_INDEX_RETENTION,
            login_limits: None,
            near_cache: None,
            event_log: None,
            end_mark_prefix: "keygate:ended:".to_owned(),
            watch_recheck: DEFAULT_WATCH_RECHECK,
        }
    }

    /// Sessions as a JSON string of the user's data under `<prefix><token>` (the layout the
    /// Node seed uses, with any prefix).
    ///
    /// ```
    /// use keygate::{Layout, SessionConfig};
    /// assert_eq!(SessionConfig::json("myapp_").layout(), Layout::Json);
    /// assert_eq!(SessionConfig::hash("login:token:").prefix(), "login:token:");
    /// ```
    pub fn json(prefix: impl Into<String>) -> Self {
        Self::new(prefix, Layout::Json)
    }

    /// Sessions as a Redis hash of string fields under `<prefix><token>` (the layout the
    /// Java seed uses, with any prefix).
    pub fn hash(prefix: impl Into<String>) -> Self {
        Self::new(prefix, Layout::Hash)
    }

    /// The Java seed's layout: `login:token:<token>` holding a hash of string fields
    /// (`SessionConfig::hash("login:token:")`).
    pub fn java_seed() -> Self {
        Self::hash("login:token:")
    }

    /// The Node seed's layout: `<custom>_<token>` holding the user's JSON
    /// (`SessionConfig::json(format!("{custom}_"))`).
    pub fn node_seed(custom: &str) -> Self {
        Self::json(format!("{custom}_"))
    }

    /// Idle TTL, reset on every authenticated access (default 1800 s). Redis expiries have
    /// millisecond resolution; a TTL under 1 ms is raised to 1 ms.
    pub fn with_idle_ttl(mut self, ttl: Duration) -> Self {
        self.idle_ttl = ttl;
        self
    }

    /// A session dies this long after login however active it is.
    pub fn with_absolute_lifetime(mut self, lifetime: Duration) -> Self {
        self.absolute_lifetime = Some(lifetime);
        self
    }

    /// Store SHA-256(token) in the key instead of the token, so that read access to Redis
    /// does not yield usable tokens. Sessions written by other services under the raw token
    /// are then not found.
    pub fn with_hashed_keys(mut self, hashed: bool) -> Self {
        self.hashed_keys = hashed;
        self
    }

    /// At most this many live sessions per user; a login beyond it ends the oldest.
    pub fn with_max_sessions_per_user(mut self, max: usize) -> Self {
        self.max_sessions_per_user = Some(max);
        self
    }

    /// Prefix of the per-user index keys (default `keygate:user-sessions:`).
    pub fn with_index_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.index_prefix = prefix.into();
        self
    }

    /// Prefix of the companion keys that hold absolute deadlines (default
    /// `keygate:deadline:`).
    pub fn with_deadline_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.deadline_prefix = prefix.into();
        self
    }

    /// Prefix of the end marks (default `keygate:ended:`): when keygate ends a session
    /// (logout, an end by id, "log out everywhere", rotation, the per-user cap, an operator)
    /// it writes `<prefix>{<session key>}` holding the reason's wire name
    /// ([`EndReason`](crate::session::EndReason)), for [`END_MARK_TTL`](crate::session::END_MARK_TTL),
    /// in the same atomic step, so that watchers in other processes
    /// ([`SessionManager::ended`](crate::SessionManager::ended)) learn why. It must not start
    /// with the session prefix.
    pub fn with_end_mark_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.end_mark_prefix = prefix.into();
        self
    }

    /// How often watched sessions are re-checked while Redis's announcements of changes
    /// cannot be relied on (tracking lost or unavailable), and how often the watchers' own
    /// tracking connections are checked (default
    /// [`DEFAULT_WATCH_RECHECK`](crate::session::DEFAULT_WATCH_RECHECK), 1 s): the longest a
    /// session that ends during such an outage stays unnoticed once Redis answers again.
    /// It must be shorter than [`END_MARK_TTL`](crate::session::END_MARK_TTL).
    pub fn with_watch_recheck(mut self, every: Duration) -> Self {
        self.watch_recheck = every;
        self
    }

    /// The end marks' prefix.
    pub fn end_mark_prefix(&self) -> &str {
        &self.end_mark_prefix
    }

    /// The watchers' re-check interval.
    pub fn watch_recheck(&self) -> Duration {
        self.watch_recheck
    }

    /// The form new tokens are issued in (default [`TokenFormat::Hex32`], the seeds' form).
    /// [`TokenFormat::Base64Url22`] makes every session key 10 bytes shorter; choose it only
    /// when no other service expects hex tokens. Other forms cannot be issued: building a
    /// manager with one is an [`Error::Config`].
    pub fn with_token_format(mut self, format: TokenFormat) -> Self {
        self.token_format = format;
        self
    }

    /// Token forms accepted from clients (default [`TokenFormats::standard`]: 32 hex
    /// characters, UUIDs with dashes, 22 URL-safe base64 characters). Anything else is
    /// refused before Redis is asked, so a client cannot name another key under the prefix;
    /// widen it (with [`TokenFormat::Custom`](crate::TokenFormat::Custom)) only for tokens
    /// another service really issues, and keep the prefix for sessions only.
    pub fn with_token_formats(mut self, formats: TokenFormats) -> Self {
        self.token_formats = formats;
        self
    }

    /// Token forms accepted from clients.
    pub fn token_formats(&self) -> TokenFormats {
        self.token_formats
    }

    /// How long a user's index key lives after the user's last login when sessions have no
    /// absolute lifetime (default 30 days; with a lifetime the index lives as long as the
    /// lifetime). A session kept alive by use for longer than this without any new login of
    /// its user drops out of the index, so [`sessions`](crate::SessionManager::sessions) and
    /// [`logout_everywhere`](crate::SessionManager::logout_everywhere) no longer see it: set an absolute
    /// lifetime to rule that out.
    pub fn with_index_retention(mut self, retention: Duration) -> Self {
        self.index_retention = retention;
        self
    }

    /// How long an index key lives after the last login: the absolute lifetime when there
    /// is one, else the index retention; with login limits, at least the longest lifetime a
    /// login may choose (a constant, so a later login never shortens it below a live
    /// session's life).
    pub fn index_ttl(&self) -> Duration {
        let ttl = self.absolute_lifetime.unwrap_or(self.index_retention);
        match self.login_limits {
            Some(limits) => ttl.max(limits.max_lifetime),
            None => ttl,
        }
    }

    /// The form new tokens are issued in.
    pub fn token_format(&self) -> TokenFormat {
        self.token_format
    }

    /// The session key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The codec.
    pub fn layout(&self) -> Layout {
        self.codec
    }

    /// The idle TTL.
    pub fn idle_ttl(&self) -> Duration {
        self.idle_ttl
    }

    /// The absolute lifetime, if any.
    pub fn absolute_lifetime(&self) -> Option<Duration> {
        self.absolute_lifetime
    }

    /// Whether keys hold SHA-256(token).
    pub fn hashed_keys(&self) -> bool {
        self.hashed_keys
    }

    /// The per-user cap, if any.
    pub fn max_sessions_per_user(&self) -> Option<usize> {
        self.max_sessions_per_user
    }

    /// The per-user index prefix.
    pub fn index_prefix(&self) -> &str {
        &self.index_prefix
    }

    /// The deadline companion key prefix.
    pub fn deadline_prefix(&self) -> &str {
        &self.deadline_prefix
    }

    /// Lets each login choose its session's idle TTL and lifetime within `limits`
    /// ([`SessionManager::login_with`](crate::SessionManager::login_with)). Every session
    /// then has a companion key in its hash slot holding its own expiry, and each load is
    /// one script call (one round trip, as with the hash layout) instead of a `GETEX`. A
    /// session whose companion is gone is over (see [`LoginLimits`]).
    pub fn with_login_limits(mut self, limits: LoginLimits) -> Self {
        self.login_limits = Some(limits);
        self
    }

    /// How far logins may choose their session's expiry, if at all.
    pub fn login_limits(&self) -> Option<LoginLimits> {
        self.login_limits
    }

    /// Serves hot sessions from process memory, invalidated by Redis client tracking
    /// ([`session::near_cache`](crate::session::near_cache) says exactly what that
    /// promises). Off by default; only the Redis backend caches (the memory backend is
    /// process memory already).
    pub fn with_near_cache(mut self, near_cache: NearCache) -> Self {
        self.near_cache = Some(near_cache);
        self
    }

    /// The near cache's settings, when it is on.
    pub fn near_cache(&self) -> Option<&NearCache> {
        self.near_cache.as_ref()
    }

    /// Records every login and every end of a session in capped Redis streams, per user
    /// and for all users ([`session::events`](crate::session::events) says what is recorded
    /// and what is atomic where). Off by default; when off it costs nothing. A load never
    /// records anything, so requests cost what they cost without it.
    pub fn with_event_log(mut self, log: EventLog) -> Self {
        self.event_log = Some(log);
        self
    }

    /// The event log's settings, when it is on.
    pub fn event_log(&self) -> Option<&EventLog> {
        self.event_log.as_ref()
    }

    /// Whether sessions have a companion key: with an absolute lifetime (its TTL is the
    /// deadline) or with login limits (it holds a session's own idle TTL, or `0` for no
    /// deadline). Every session then has one, and one without it is over.
    pub(crate) fn has_companion_key(&self) -> bool {
        self.absolute_lifetime.is_some() || self.login_limits.is_some()
    }

    /// Checks what cannot be checked by the type system.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        for (what, prefix) in [
            ("session prefix", &self.prefix),
            ("index prefix", &self.index_prefix),
            ("deadline prefix", &self.deadline_prefix),
            ("end mark prefix", &self.end_mark_prefix),
        ] {
            if prefix
                .chars()
                .any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control())
            {
                return Err(Error::Config(format!(
                    "{what} {prefix:?} may not contain braces, whitespace or control characters"
                )));
            }
        }
        check_ttl("idle TTL", self.idle_ttl)?;
        if let Some(lifetime) = self.absolute_lifetime {
            check_ttl("absolute lifetime", lifetime)?;
        }
        check_ttl("index retention", self.index_retention)?;
        check_ttl("watch re-check interval", self.watch_recheck)?;
        if self.watch_recheck >= END_MARK_TTL {
            return Err(Error::Config(format!(
                "the watch re-check interval must be shorter than the end marks' life ({END_MARK_TTL:?})"
            )));
        }
        if self.end_mark_prefix.starts_with(&self.prefix) {
            return Err(Error::Config(format!(
                "end mark prefix {:?} may not start with the session prefix {:?}",
                self.end_mark_prefix, self.prefix
            )));
        }
        if let Some(limits) = self.login_limits {
            check_ttl("longest idle TTL a login may choose", limits.max_idle_ttl)?;
            check_ttl("longest lifetime a login may choose", limits.max_lifetime)?;
        }
        check_issuable(self.token_format)?;
        self.token_formats.validate()?;
        if let Some(near_cache) = &self.near_cache {
            near_cache.validate(self.idle_ttl)?;
        }
        if let Some(log) = &self.event_log {
            log.validate()?;
        }
        if self.max_sessions_per_user == Some(0) {
            return Err(Error::Config(
                "max sessions per user must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
