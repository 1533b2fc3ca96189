//! The session manager: policy over a [`SessionStore`].

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::config::END_MARK_TTL;
use super::config::SessionConfig;
use super::events::{
    self, EventFields, EventFollower, NewEvent, SessionEvent, SessionEventKind, StreamKeys,
};
use super::index::{IndexEntry, SessionId};
use super::keys::{SessionKeys, UserId, index_key};
use super::near_cache::{Decoded, NearCacheRuntime, NearCacheStats, NearCachedStore, Served};
use super::store::{
    EndMark, Fetched, NewExpiry, RenameOutcome, SessionKeyRef, SessionStore, SessionTtl,
    UpdateOutcome,
};
use super::watch::{EndReason, Ended, WatchStats, Watchers};
use super::{LoginOptions, Session, SessionInfo, SessionUser};
use crate::codec::Layout;
use crate::codec::{self, StoredValue};
use crate::error::{Error, Result};
use crate::redis_store::RedisStore;
use crate::telemetry::{self, LoadMetrics, LoadOutcome, names};
use crate::token::Token;
use crate::token::TokenFormat;
use crate::ttl::{check_ttl, millis};

/// Token collisions at 128 bits do not happen; the retry guards against a broken RNG
/// overwriting someone's session.
const CREATE_ATTEMPTS: usize = 3;

/// Most index entries one call reads, checks or removes at once: `sessions`, `logout_everywhere` and
/// the pruning at login work through a user's index in pages of this size.
pub const INDEX_BATCH: usize = 256;

/// Creates, loads, updates and destroys sessions holding a `T`.
///
/// Cheap to clone (an `Arc` inside); build it once at start-up and share it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), keygate::Error> {
/// use keygate::{MemoryStore, SessionConfig, SessionManager, UserId};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct User { user_id: u64, openid: String }
///
/// let sessions = SessionManager::new(MemoryStore::new(), SessionConfig::node_seed("myapp"))?;
/// let token = sessions
///     .login(&UserId::from(598u64), &User { user_id: 598, openid: "o".into() })
///     .await?;
/// // On every request: load the session and reset its idle TTL in one round trip.
/// let session = sessions.load(&token).await?.expect("just created");
/// assert_eq!(session.user_id, 598);
/// sessions.logout(&token).await?;
/// assert!(sessions.load(&token).await?.is_none());
/// # Ok(()) }
/// ```
pub struct SessionManager<T> {
    inner: Arc<Inner>,
    /// How to name the user of loaded session data, once
    /// [`with_session_users`](SessionManager::with_session_users) said so.
    user_of: Option<fn(&T) -> UserId>,
    _data: PhantomData<fn() -> T>,
}

struct Inner {
    config: SessionConfig,
    store: Arc<dyn SessionStore>,
    /// The store itself when it is Redis (below the near cache, if any): loads call it
    /// directly, without the trait's boxed future.
    redis: Option<RedisStore>,
    idle_ms: u64,
    lifetime_ms: Option<u64>,
    index_ttl_ms: u64,
    load_metrics: LoadMetrics,
    near_cache: Option<Arc<NearCacheRuntime>>,
    watchers: Arc<Watchers>,
}

impl<T> Clone for SessionManager<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            user_of: self.user_of,
            _data: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for SessionManager<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Creation time as index score: unix microseconds, so that logins in the same
/// millisecond still order (and evict) oldest first. Exact in Redis' f64 scores.
fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// How a session ends: what the event log records and what its watchers are told.
#[derive(Debug, Clone, Copy)]
struct Ending {
    kind: SessionEventKind,
    reason: EndReason,
}

impl Ending {
    fn new(kind: SessionEventKind, reason: EndReason) -> Self {
        Self { kind, reason }
    }
}

impl<T> SessionManager<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// A manager over `store` with `config`; fails on an invalid configuration.
    pub fn new(store: impl SessionStore, config: SessionConfig) -> Result<Self> {
        Self::from_shared_store(Arc::new(store), config)
    }

    /// Like [`new`](Self::new), for a store already behind an `Arc` (several managers on
    /// one connection).
    pub fn from_shared_store(store: Arc<dyn SessionStore>, config: SessionConfig) -> Result<Self> {
        config.validate()?;
        let near_cache = match (config.near_cache(), store.redis_store()) {
            (Some(settings), Some(redis)) => {
                Some(NearCacheRuntime::new(*settings, config.prefix(), redis))
            }
            (Some(_), None) => {
                tracing::debug!("near cache off: the backend is not Redis");
                None
            }
            _ => None,
        };
        let redis = store.redis_store();
        let store: Arc<dyn SessionStore> = match &near_cache {
            Some(cache) => Arc::new(NearCachedStore {
                inner: store,
                cache: Arc::clone(cache),
            }),
            None => store,
        };
        let watchers = Arc::new(Watchers::new(
            Arc::clone(&store),
            near_cache.clone(),
            config.end_mark_prefix(),
            config.watch_recheck(),
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                watchers,
                near_cache,
                idle_ms: millis(config.idle_ttl()),
                lifetime_ms: config.absolute_lifetime().map(millis),
                load_metrics: LoadMetrics::register(),
                index_ttl_ms: millis(config.index_ttl()),
                config,
                store,
                redis,
            }),
            user_of: None,
            _data: PhantomData,
        })
    }

    /// Lets this manager name the user of a loaded session from its data
    /// ([`SessionUser`]), so that with the event log on a logout through the web layer
    /// ([`CurrentSession::logout`](crate::CurrentSession::logout), the adapters'
    /// `auth.logout()`) removes the session's index entry at once and records a `logout`
    /// event for its user. Without it such a logout is recorded when the user's index is
    /// next pruned, as `expired`. With the event log off it changes nothing.
    ///
    /// ```
    /// use keygate::{MemoryStore, SessionConfig, SessionManager, SessionUser, UserId};
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64 }
    /// # impl SessionUser for User { fn user_id(&self) -> UserId { UserId::from(self.id) } }
    /// let sessions = SessionManager::<User>::new(MemoryStore::new(), SessionConfig::java_seed())?
    ///     .with_session_users();
    /// # Ok::<(), keygate::Error>(())
    /// ```
    #[must_use]
    pub fn with_session_users(mut self) -> Self
    where
        T: SessionUser,
    {
        self.user_of = Some(|data: &T| data.user_id());
        self
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// What the near cache holds and did, when it is on (configured, on the Redis
    /// backend).
    pub fn near_cache_stats(&self) -> Option<NearCacheStats> {
        self.inner.near_cache.as_ref().map(|cache| cache.stats())
    }

    /// The event streams of the user whose index key is `index`, when the log is on.
    fn streams(&self, index: &str) -> Option<StreamKeys> {
        self.inner
            .config
            .event_log()
            .map(|log| StreamKeys::new(log, index))
    }

    fn keys(&self, token: &Token) -> SessionKeys {
        SessionKeys::for_token(&self.inner.config, token)
    }

    /// The public id of the session of `token` (what [`sessions`](Self::sessions) lists).
    pub fn session_id(&self, token: &Token) -> SessionId {
        SessionId::for_key_id(self.keys(token).id())
    }

    /// Creates a session for `user` holding `data` and returns its new token. The session
    /// is registered in the user's index (for [`sessions`](Self::sessions) and
    /// [`logout_everywhere`](Self::logout_everywhere)), whose entries of ended sessions are pruned on
    /// the way; with a per-user cap the oldest sessions beyond it end.
    pub async fn login(&self, user: &UserId, data: &T) -> Result<Token> {
        self.login_with(user, data, &LoginOptions::default()).await
    }

    /// Like [`login`](Self::login), with per-login choices: the device label shown in
    /// [`sessions`](Self::sessions) and, within the configured
    /// [`LoginLimits`](crate::session::LoginLimits), the session's own idle TTL and lifetime
    /// (remember-me). Choosing an expiry without limits configured, or beyond them, is an
    /// [`Error::Config`].
    pub async fn login_with(
        &self,
        user: &UserId,
        data: &T,
        options: &LoginOptions,
    ) -> Result<Token> {
        telemetry::timed("login", async {
            let inner = &*self.inner;
            let expiry = self.expiry_for(options)?;
            let value = self.encode(data)?;
            let index = index_key(&inner.config, user);
            for _ in 0..CREATE_ATTEMPTS {
                let token = Token::generate_as(inner.config.token_format())?;
                let keys = self.keys(&token);
                if !inner.store.insert(keys.key_ref(), &value, expiry).await? {
                    continue;
                }
                // Session first, index entry second: a `sessions`, cap or `logout_everywhere` running in
                // between cannot prune an entry whose session does not exist yet (the entry
                // would be lost and the session invisible to "log out everywhere" for good).
                // If indexing fails, the token is never handed out and the session idles away.
                let member = IndexEntry::member_for(keys.id(), options.device());
                match self.streams(&index) {
                    Some(streams) => {
                        let chosen = options.idle_ttl().is_some() || options.lifetime().is_some();
                        let event = NewEvent {
                            kind: SessionEventKind::Login,
                            user,
                            session: SessionId::for_key_id(keys.id()),
                            new_session: None,
                            device: options.device(),
                            at_ms: now_micros() / 1000,
                            idle_ms: chosen.then_some(expiry.idle_ms),
                            lifetime_ms: expiry.lifetime_ms.filter(|_| chosen),
                        };
                        inner
                            .store
                            .index_add_logged(
                                &index,
                                &member,
                                now_micros(),
                                inner.index_ttl_ms,
                                &streams.streams(),
                                &event.fields(),
                            )
                            .await?;
                        count_event(SessionEventKind::Login);
                    }
                    None => {
                        inner
                            .store
                            .index_add(&index, &member, now_micros(), inner.index_ttl_ms)
                            .await?;
                    }
                }
                match inner.config.max_sessions_per_user() {
                    Some(cap) => self.evict_beyond(user, &index, cap).await?,
                    None => self
                        .prune_page(user, &index, 0, Prune::Yes)
                        .await
                        .map(|_| ())?,
                }
                telemetry::count_n(names::LOGINS, 1);
                return Ok(token);
            }
            Err(Error::Random("generated tokens keep colliding".into()))
        })
        .await
    }

    /// The absolute lifetime a session created with `options` gets, if any: what a cookie's
    /// `Max-Age` should say.
    pub fn lifetime_for(&self, options: &LoginOptions) -> Result<Option<Duration>> {
        Ok(self
            .expiry_for(options)?
            .lifetime_ms
            .map(Duration::from_millis))
    }

    /// The expiry of a new session: the configuration's, or what the login chose within
    /// the limits.
    fn expiry_for(&self, options: &LoginOptions) -> Result<NewExpiry> {
        let inner = &*self.inner;
        if options.idle_ttl().is_none() && options.lifetime().is_none() {
            return Ok(NewExpiry {
                idle_ms: inner.idle_ms,
                lifetime_ms: inner.lifetime_ms,
                own_idle: false,
            });
        }
        let Some(limits) = inner.config.login_limits() else {
            return Err(Error::Config(
                "a login may choose its session's expiry only with SessionConfig::with_login_limits"
                    .into(),
            ));
        };
        let idle = options.idle_ttl().unwrap_or(inner.config.idle_ttl());
        let lifetime = options
            .lifetime()
            .or(inner.config.absolute_lifetime())
            .unwrap_or(limits.max_lifetime);
        if idle > limits.max_idle_ttl.max(inner.config.idle_ttl()) {
            return Err(Error::Config(format!(
                "idle TTL {idle:?} is beyond the configured limit {:?}",
                limits.max_idle_ttl
            )));
        }
        if lifetime
            > limits
                .max_lifetime
                .max(inner.config.absolute_lifetime().unwrap_or_default())
        {
            return Err(Error::Config(format!(
                "lifetime {lifetime:?} is beyond the configured limit {:?}",
                limits.max_lifetime
            )));
        }
        check_ttl("idle TTL", idle)?;
        check_ttl("lifetime", lifetime)?;
        Ok(NewExpiry {
            idle_ms: millis(idle),
            lifetime_ms: Some(millis(lifetime)),
            own_idle: options.idle_ttl().is_some(),
        })
    }

    /// Encodes session data; a hash needs at least one field (an empty hash is no key).
    fn encode(&self, data: &T) -> Result<StoredValue> {
        let value = codec::encode(self.inner.config.layout(), data)?;
        if matches!(&value, StoredValue::Hash(fields) if fields.is_empty()) {
            return Err(Error::Encode(
                "the hash codec needs at least one non-null field".into(),
            ));
        }
        Ok(value)
    }

    /// Loads the session of `token` and resets its idle TTL, in one round trip.
    ///
    /// `None` when there is no such session (never existed, expired, past its absolute
    /// lifetime, destroyed) and when the stored data cannot be decoded into `T` (logged as
    /// a warning, without the token).
    pub async fn load(&self, token: &Token) -> Result<Option<Session<T>>> {
        let shared = self.load_shared(token.clone()).await?;
        Ok(shared.and_then(unshare))
    }

    /// [`load`](Self::load) for the request path: the session keeps the token handed over
    /// (never copied), and with the near cache a hit shares the session an earlier load
    /// decoded instead of decoding it again.
    pub(crate) async fn load_shared(&self, token: Token) -> Result<Option<Arc<Session<T>>>> {
        let timing = telemetry::LoadTiming::start(self.layout());
        let now = timing.started();
        let (result, outcome) = match timing.span() {
            None => self.load_untimed(token, now).await,
            Some(span) => self.load_untimed(token, now).instrument(span.clone()).await,
        };
        timing.finish(&self.inner.load_metrics, outcome);
        result
    }

    /// The layout's name in spans.
    fn layout(&self) -> &'static str {
        match self.inner.config.layout() {
            Layout::Json => "json",
            Layout::Hash => "hash",
        }
    }

    async fn load_untimed(
        &self,
        token: Token,
        now: Instant,
    ) -> (Result<Option<Arc<Session<T>>>>, LoadOutcome) {
        let inner = &*self.inner;
        let keys = self.keys(&token);
        let (layout, idle_ms) = (inner.config.layout(), inner.idle_ms);
        // The near cache and a Redis store are called directly, without the store trait's
        // boxed future; the cache answers `None` when it cannot serve the load.
        let cached = match &inner.near_cache {
            Some(cache) => {
                cache
                    .load_shared(keys.key_ref(), layout, idle_ms, Some(now))
                    .await
            }
            None => None,
        };
        let (fetched, stamp) = match (cached, &inner.redis) {
            (Some(Ok(Served::Decoded(decoded))), _) => {
                match (decoded as Arc<dyn Any + Send + Sync>).downcast::<Session<T>>() {
                    Ok(session) => return (Ok(Some(session)), LoadOutcome::Hit),
                    // One cache per manager, so never another type; were it one, the store answers.
                    Err(_) => (self.load_uncached(keys.key_ref()).await, None),
                }
            }
            (Some(Ok(Served::Fetched(fetched, stamp))), _) => (Ok(fetched), stamp),
            (Some(Err(error)), _) => (Err(error), None),
            (None, Some(redis)) => (
                Box::pin(redis.load_and_touch_inline(keys.key_ref(), layout, idle_ms)).await,
                None,
            ),
            (None, None) => (self.load_uncached(keys.key_ref()).await, None),
        };
        let stored = match fetched {
            Ok(Fetched::Found(stored)) => stored,
            Ok(Fetched::Missing) => return (Ok(None), LoadOutcome::Miss),
            Ok(Fetched::Corrupt(reason)) => {
                tracing::warn!(%reason, "corrupt session data treated as no session");
                return (Ok(None), LoadOutcome::Corrupt);
            }
            Err(error) => return (Err(error), LoadOutcome::BackendError),
        };
        match codec::decode::<T>(&stored) {
            Ok(data) => {
                let session = Arc::new(Session {
                    token,
                    data,
                    stored,
                });
                if let (Some(cache), Some(stamp)) = (&inner.near_cache, stamp) {
                    cache.keep_decoded(&keys.session, stamp, Arc::clone(&session) as Decoded);
                }
                (Ok(Some(session)), LoadOutcome::Hit)
            }
            Err(reason) => {
                tracing::warn!(%reason, "undecodable session data treated as no session");
                (Ok(None), LoadOutcome::Corrupt)
            }
        }
    }

    /// A load by the store, without the near cache's shortcuts.
    async fn load_uncached(&self, keys: SessionKeyRef<'_>) -> Result<Fetched> {
        let inner = &*self.inner;
        inner
            .store
            .load_and_touch(keys, inner.config.layout(), inner.idle_ms)
            .await
    }

    /// Replaces the whole session data, keeping the expiry. Writes nothing and returns
    /// `false` when the session no longer exists, so a concurrent logout is never undone.
    /// Prefer [`update`](Self::update) when other requests may change the same session.
    pub async fn replace(&self, token: &Token, data: &T) -> Result<bool> {
        telemetry::timed("replace", async {
            let value = self.encode(data)?;
            self.inner
                .store
                .replace(&self.keys(token).session, &value)
                .await
        })
        .await
    }

    /// Writes `data` over the session as it was loaded, keeping the expiry and never
    /// resurrecting a destroyed session. With the hash codec only the fields that differ
    /// from the loaded data are written, so fields changed meanwhile by other requests
    /// survive; with the JSON codec the write happens only if nobody changed the data since
    /// it was loaded ([`UpdateOutcome::Conflict`] otherwise).
    pub async fn update(&self, session: &Session<T>, data: &T) -> Result<UpdateOutcome> {
        telemetry::timed("update", async {
            let value = self.encode(data)?;
            self.inner
                .store
                .update(
                    &self.keys(session.token()).session,
                    session.stored(),
                    &value,
                )
                .await
        })
        .await
    }

    /// Ends the session of `token` at once; `false` if there was none.
    pub async fn logout(&self, token: &Token) -> Result<bool> {
        telemetry::timed("logout", async {
            let keys = self.keys(token);
            let existed = self
                .inner
                .store
                .remove_marked(&[keys.key_ref()], self.mark(EndReason::LoggedOut))
                .await?;
            let removed = existed.iter().filter(|&&found| found).count() as u64;
            telemetry::count_label_n(names::LOGOUTS, "kind", "one", removed);
            // The user's index entry goes at the user's next login, `sessions` or `logout_everywhere` (the
            // token does not tell whose it is).
            Ok(removed > 0)
        })
        .await
    }

    /// Ends `session` at once (logout), as [`logout`](Self::logout) does. With the event
    /// log on, knowing its user, it also removes the session's index entry and records a
    /// `logout` event. `false` if the session had ended already.
    pub async fn logout_session(&self, session: &Session<T>) -> Result<bool>
    where
        T: SessionUser,
    {
        self.logout_of(&session.data().user_id(), session.token())
            .await
    }

    /// The logout of a loaded session through the web layer: by its user when this manager
    /// knows how to name it ([`with_session_users`](Self::with_session_users)).
    pub(crate) async fn logout_loaded(&self, session: &Session<T>) -> Result<bool> {
        match self.user_of {
            Some(user_of) => {
                self.logout_of(&user_of(session.data()), session.token())
                    .await
            }
            None => self.logout(session.token()).await,
        }
    }

    async fn logout_of(&self, user: &UserId, token: &Token) -> Result<bool> {
        let index = index_key(&self.inner.config, user);
        let Some(streams) = self.streams(&index) else {
            return self.logout(token).await;
        };
        telemetry::timed("logout", async {
            let keys = self.keys(token);
            let store = &self.inner.store;
            let existed = store
                .remove_marked(&[keys.key_ref()], self.mark(EndReason::LoggedOut))
                .await?
                .first()
                .copied()
                .unwrap_or(false);
            telemetry::count_label_n(names::LOGOUTS, "kind", "one", u64::from(existed));
            if let Some(entry) = self.find_entry(&index, |e| e.key_id() == keys.id()).await? {
                let kind = if existed {
                    SessionEventKind::Logout
                } else {
                    SessionEventKind::Expired
                };
                self.record_removals(user, &index, &streams, &[entry], &[kind])
                    .await?;
            }
            Ok(existed)
        })
        .await
    }

    /// The user's live sessions, oldest first, each with its public id, creation and
    /// last-use times and device label; `current` marks the session of `current`. Entries
    /// of ended sessions are pruned on the way.
    ///
    /// Last use costs no write per request: every load resets the idle TTL, so the time
    /// since the last load is the idle TTL minus what is left of it, read here with one
    /// `PTTL` per session (one pipeline). In a session's last idle period before its
    /// absolute deadline the reset is capped by the deadline, and the last use is reported
    /// as the start of that period at the latest. With the near cache, TTLs are refreshed
    /// at most once per `touch_every`, so the last use is known to within `touch_every`.
    pub async fn sessions(
        &self,
        user: &UserId,
        current: Option<&Token>,
    ) -> Result<Vec<SessionInfo>> {
        telemetry::timed("sessions", self.list(user, current, Prune::Yes)).await
    }

    /// Like [`sessions`](Self::sessions), but writes nothing: entries of ended sessions
    /// stay in the index. For tools that look at a Redis with a layout that may not be the
    /// one its sessions were written in (an operator's `--layout`), where pruning would
    /// drop the index entries of every live session of the right layout.
    pub async fn peek_sessions(&self, user: &UserId) -> Result<Vec<SessionInfo>> {
        self.list(user, None, Prune::No).await
    }

    async fn list(
        &self,
        user: &UserId,
        current: Option<&Token>,
        prune: Prune,
    ) -> Result<Vec<SessionInfo>> {
        let index = index_key(&self.inner.config, user);
        let live = self.live_members(user, &index, prune).await?;
        let current_id = current.map(|t| self.keys(t).id().to_owned());
        let now_ms = now_micros() / 1000;
        Ok(live
            .into_iter()
            .map(|(entry, ttl)| {
                let created_at_ms = entry.created_us / 1000;
                SessionInfo {
                    id: entry.session_id(),
                    created_at_ms,
                    last_seen_ms: self.last_seen_ms(now_ms, created_at_ms, ttl),
                    device: entry.device().map(str::to_owned),
                    current: current_id.as_deref() == Some(entry.key_id()),
                }
            })
            .collect())
    }

    /// When a session was last loaded, from what is left of its idle TTL.
    fn last_seen_ms(&self, now_ms: i64, created_at_ms: i64, ttl: SessionTtl) -> i64 {
        let idle_ms = ttl.own_idle_ms.unwrap_or(self.inner.idle_ms);
        let Some(left_ms) = ttl.ttl_ms else {
            // No expiry (set by someone else): nothing tells when it was used.
            return created_at_ms;
        };
        let since_ms = idle_ms.saturating_sub(left_ms);
        let mut seen = now_ms.saturating_sub(i64::try_from(since_ms).unwrap_or(i64::MAX));
        if let Some(deadline_ms) = ttl.deadline_ms {
            // The last reset was capped by the deadline when both expire together: the
            // session was used at some point in its final idle period.
            if deadline_ms.abs_diff(left_ms) <= 1 {
                let period_start = now_ms
                    .saturating_add(i64::try_from(deadline_ms).unwrap_or(i64::MAX))
                    .saturating_sub(i64::try_from(idle_ms).unwrap_or(i64::MAX));
                seen = seen.min(period_start);
            }
        }
        seen.clamp(created_at_ms, now_ms.max(created_at_ms))
    }

    /// Ends one session of `user`, named by its public id (for "log out that device");
    /// `false` when the user has no live session with that id, which includes every
    /// session of another user. Its watchers see [`EndReason::EndedFromAnotherDevice`];
    /// the event log records `session-ended`.
    pub async fn end_session(&self, user: &UserId, id: &SessionId) -> Result<bool> {
        telemetry::timed("end_session", async {
            let ending = Ending::new(
                SessionEventKind::SessionEnded,
                EndReason::EndedFromAnotherDevice,
            );
            let removed = self.end_one(user, id, ending).await?;
            telemetry::count_label_n(names::LOGOUTS, "kind", "session", removed);
            Ok(removed > 0)
        })
        .await
    }

    /// An operator ends one session of `user` (by id) or, with `None`, all of them, as
    /// [`end_session`](Self::end_session) and [`logout_everywhere`](Self::logout_everywhere)
    /// do (what `keygate-cli sessions end` uses): their watchers see
    /// [`EndReason::EndedByOperator`], the event log records `operator-ended`. Returns how
    /// many sessions were live.
    pub async fn operator_end(&self, user: &UserId, id: Option<&SessionId>) -> Result<u64> {
        telemetry::timed("operator_end", async {
            let ending = Ending::new(SessionEventKind::OperatorEnded, EndReason::EndedByOperator);
            let removed = match id {
                Some(id) => self.end_one(user, id, ending).await?,
                None => self.end_all(user, ending).await?,
            };
            telemetry::count_label_n(names::LOGOUTS, "kind", "operator", removed);
            Ok(removed)
        })
        .await
    }

    /// A future that completes when the session of `token` ends, anywhere, with why: its
    /// logout, an end by id, "log out everywhere", rotation, the per-user cap, an
    /// operator, expiry, or its key deleted by another program. It watches without touching
    /// the session (an open stream does not keep it alive) and costs no Redis command while
    /// nothing changes; see [the watch's promises](crate::session::Ended) and
    /// [`EndReason`]. A token with no live session completes at once (with the reason its
    /// end left, when it ended within [`END_MARK_TTL`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), keygate::Error> {
    /// use keygate::{MemoryStore, SessionConfig, SessionManager, UserId};
    /// use keygate::session::EndReason;
    ///
    /// let sessions = SessionManager::<String>::new(MemoryStore::new(), SessionConfig::default())?;
    /// let token = sessions.login(&UserId::from(7u64), &"alice".to_owned()).await?;
    /// let ended = tokio::spawn(sessions.ended(&token));
    /// sessions.logout(&token).await?;
    /// assert_eq!(ended.await.unwrap(), EndReason::LoggedOut);
    /// # Ok(()) }
    /// ```
    pub fn ended(&self, token: &Token) -> Ended {
        self.inner.watchers.ended(&self.keys(token))
    }

    /// What this manager's session watchers hold and did ([`ended`](Self::ended)).
    pub fn watch_stats(&self) -> WatchStats {
        self.inner.watchers.stats()
    }

    /// The end mark of `reason` (see [`EndMark`]).
    fn mark(&self, reason: EndReason) -> EndMark<'_> {
        EndMark {
            prefix: self.inner.config.end_mark_prefix(),
            reason: reason.as_str(),
            ttl_ms: millis(END_MARK_TTL),
        }
    }

    async fn end_one(&self, user: &UserId, id: &SessionId, ending: Ending) -> Result<u64> {
        let index = index_key(&self.inner.config, user);
        let Some(entry) = self.find_entry(&index, |e| &e.session_id() == id).await? else {
            return Ok(0);
        };
        self.remove_members(user, &index, std::slice::from_ref(&entry), ending)
            .await
    }

    /// Gives the session a new token and ends the old one, atomically: a concurrent request
    /// with the old token finds either the session (before) or nothing (after), never both
    /// tokens working nor neither (with the near cache, other instances may still accept
    /// the old token until Redis' invalidation reaches them, usually within a
    /// millisecond). Data, expiry, creation time and device stay; the public
    /// id changes with the token. Renew the token this way when the session's privileges
    /// change (OWASP, session management). `None` when the session has ended meanwhile.
    ///
    /// On a Redis Cluster the new token is drawn so that its key lands in the old key's
    /// hash slot (a rename cannot cross slots); that leaves 114 of the token's 128 random
    /// bits to guess, which stays far beyond reach.
    pub async fn rotate(&self, session: &Session<T>) -> Result<Option<Rotated>>
    where
        T: SessionUser,
    {
        telemetry::timed("rotate", async {
            let inner = &*self.inner;
            let old = self.keys(session.token());
            let index = index_key(&inner.config, &session.data().user_id());
            // The entry is looked up before the session moves: once it has moved, an entry
            // that is gone can only mean that something ended or pruned it meanwhile.
            let entry = self.find_entry(&index, |e| e.key_id() == old.id()).await?;
            for _ in 0..CREATE_ATTEMPTS {
                let token = self.token_in_slot_of(&old.session).await?;
                let new = self.keys(&token);
                let deadline_ms = match inner
                    .store
                    .rename_marked(old.key_ref(), new.key_ref(), self.mark(EndReason::Rotated))
                    .await?
                {
                    RenameOutcome::Renamed { deadline_ms } => deadline_ms,
                    RenameOutcome::Gone => return Ok(None),
                    RenameOutcome::TargetExists => continue,
                };
                let user = session.data().user_id();
                if !self
                    .move_entry(&user, &index, entry.as_ref(), old.id(), new.id())
                    .await?
                {
                    // A "log out everywhere" (or a listing that saw the old key gone) ran
                    // while the session moved: end it rather than leave it live where
                    // "log out everywhere" cannot find it.
                    inner.store.remove(&[new.key_ref()]).await?;
                    return Ok(None);
                }
                telemetry::count_n(names::ROTATIONS, 1);
                return Ok(Some(Rotated {
                    token,
                    lifetime_left: deadline_ms.map(Duration::from_millis),
                }));
            }
            Err(Error::Random("generated tokens keep colliding".into()))
        })
        .await
    }

    /// Points the index entry of a rotated session at its new key id, keeping creation
    /// time and device, in one step that fails if the entry is gone; a session that was
    /// never indexed (created by another service) is indexed now.
    async fn move_entry(
        &self,
        user: &UserId,
        index: &str,
        entry: Option<&IndexEntry>,
        old_id: &str,
        new_id: &str,
    ) -> Result<bool> {
        let inner = &*self.inner;
        if let Some(streams) = self.streams(index) {
            let event = NewEvent {
                kind: SessionEventKind::Rotated,
                user,
                session: SessionId::for_key_id(old_id),
                new_session: Some(SessionId::for_key_id(new_id)),
                device: entry.and_then(IndexEntry::device),
                at_ms: now_micros() / 1000,
                idle_ms: None,
                lifetime_ms: None,
            }
            .fields();
            let streams = streams.streams();
            let moved = match entry {
                Some(entry) => {
                    let member = IndexEntry::member_for(new_id, entry.device());
                    inner
                        .store
                        .index_replace_logged(
                            index,
                            &entry.member,
                            &member,
                            entry.created_us,
                            inner.index_ttl_ms,
                            &streams,
                            &event,
                        )
                        .await?
                }
                None => {
                    let member = IndexEntry::member_for(new_id, None);
                    inner
                        .store
                        .index_add_logged(
                            index,
                            &member,
                            now_micros(),
                            inner.index_ttl_ms,
                            &streams,
                            &event,
                        )
                        .await?;
                    true
                }
            };
            if moved {
                count_event(SessionEventKind::Rotated);
            }
            return Ok(moved);
        }
        match entry {
            Some(entry) => {
                let member = IndexEntry::member_for(new_id, entry.device());
                inner
                    .store
                    .index_replace(
                        index,
                        &entry.member,
                        &member,
                        entry.created_us,
                        inner.index_ttl_ms,
                    )
                    .await
            }
            None => {
                let member = IndexEntry::member_for(new_id, None);
                inner
                    .store
                    .index_add(index, &member, now_micros(), inner.index_ttl_ms)
                    .await?;
                Ok(true)
            }
        }
    }

    /// The first entry of the index that `matches`, walking it page by page.
    async fn find_entry(
        &self,
        index: &str,
        matches: impl Fn(&IndexEntry) -> bool,
    ) -> Result<Option<IndexEntry>> {
        let mut offset = 0;
        loop {
            let page = self.index_page(index, offset).await?;
            let full = page.len() == INDEX_BATCH;
            if let Some(entry) = page.into_iter().find(&matches) {
                return Ok(Some(entry));
            }
            if !full {
                return Ok(None);
            }
            offset += INDEX_BATCH;
        }
    }

    /// A fresh token whose session key the store can rename `old_key` to.
    async fn token_in_slot_of(&self, old_key: &str) -> Result<Token> {
        /// Draws tried on the calling task: on one server the first one fits.
        const INLINE_DRAWS: usize = 4;
        let mut draws = TokenDraws::new()?;
        if let Some(token) = find_token(&self.inner, old_key, &mut draws, INLINE_DRAWS) {
            return Ok(token);
        }
        // A cluster slot: thousands of draws (milliseconds of CPU), off the async workers.
        let inner = Arc::clone(&self.inner);
        let old_key = old_key.to_owned();
        tokio::task::spawn_blocking(move || find_token(&inner, &old_key, &mut draws, 1 << 20))
            .await
            .map_err(|e| Error::Random(e.to_string()))?
            .ok_or_else(|| Error::Random("no token found for the session's hash slot".into()))
    }

    /// Ends every session of `user`; returns how many were live. Their watchers see
    /// [`EndReason::LoggedOutEverywhere`].
    pub async fn logout_everywhere(&self, user: &UserId) -> Result<u64> {
        telemetry::timed("logout_everywhere", async {
            let ending = Ending::new(SessionEventKind::LogoutAll, EndReason::LoggedOutEverywhere);
            let removed = self.end_all(user, ending).await?;
            telemetry::count_label_n(names::LOGOUTS, "kind", "everywhere", removed);
            Ok(removed)
        })
        .await
    }

    async fn end_all(&self, user: &UserId, ending: Ending) -> Result<u64> {
        let index = index_key(&self.inner.config, user);
        let mut removed = 0;
        loop {
            // Each page is removed from the index, so the next one starts at rank 0 again.
            let page = self.index_page(&index, 0).await?;
            let full = page.len() == INDEX_BATCH;
            removed += self.remove_members(user, &index, &page, ending).await?;
            if !full {
                return Ok(removed);
            }
        }
    }

    /// The last `count` events of `user`, oldest first (see
    /// [`session::events`](crate::session::events)). An [`Error::Config`] when the event
    /// log is off.
    pub async fn events(&self, user: &UserId, count: usize) -> Result<Vec<SessionEvent>> {
        let stream = self
            .event_log()?
            .user_stream(&index_key(&self.inner.config, user));
        self.read_events(&stream, count).await
    }

    /// The last `count` events of all users, oldest first.
    pub async fn recent_events(&self, count: usize) -> Result<Vec<SessionEvent>> {
        let stream = self.event_log()?.global_stream();
        self.read_events(&stream, count).await
    }

    /// Follows the events of `user` (or, with `None`, of all users) recorded from now on:
    /// see [`EventFollower`]. Each follower reads on a Redis connection of its own.
    pub async fn follow_events(&self, user: Option<&UserId>) -> Result<EventFollower> {
        let stream = self.stream_of(user)?;
        let last = self.inner.store.read_events(&stream, 1).await?;
        let after = last
            .last()
            .map_or_else(|| "0-0".to_owned(), |e| e.id.clone());
        let reader = self.inner.store.event_reader().await?;
        Ok(EventFollower::new(reader, stream, after))
    }

    /// Like [`follow_events`](Self::follow_events), from the event after `position` (an
    /// event's [`position`](SessionEvent::position) in the same stream, or `0-0` for the
    /// oldest kept), so a consumer that stopped resumes without a gap (as long as the
    /// stream still holds it).
    pub async fn follow_events_after(
        &self,
        user: Option<&UserId>,
        position: &str,
    ) -> Result<EventFollower> {
        let stream = self.stream_of(user)?;
        if !is_entry_id(position) {
            return Err(Error::Config(format!(
                "{position:?} is not a stream position (<ms>-<seq>)"
            )));
        }
        let reader = self.inner.store.event_reader().await?;
        Ok(EventFollower::new(reader, stream, position.to_owned()))
    }

    fn event_log(&self) -> Result<&events::EventLog> {
        self.inner.config.event_log().ok_or_else(|| {
            Error::Config("the event log is off: see SessionConfig::with_event_log".into())
        })
    }

    fn stream_of(&self, user: Option<&UserId>) -> Result<String> {
        let log = self.event_log()?;
        Ok(match user {
            Some(user) => log.user_stream(&index_key(&self.inner.config, user)),
            None => log.global_stream(),
        })
    }

    async fn read_events(&self, stream: &str, count: usize) -> Result<Vec<SessionEvent>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let raw = self.inner.store.read_events(stream, count).await?;
        Ok(raw.into_iter().filter_map(events::parse).collect())
    }

    /// One page of the index from rank `offset`.
    async fn index_page(&self, index: &str, offset: usize) -> Result<Vec<IndexEntry>> {
        let page = self
            .inner
            .store
            .index_page(index, offset, INDEX_BATCH)
            .await?;
        Ok(page
            .into_iter()
            .map(|(member, created_us)| IndexEntry { member, created_us })
            .collect())
    }

    /// Index entries whose session still exists, oldest first, with what is left of their
    /// expiry; prunes the others.
    async fn live_members(
        &self,
        user: &UserId,
        index: &str,
        prune: Prune,
    ) -> Result<Vec<(IndexEntry, SessionTtl)>> {
        let mut live = Vec::new();
        let mut offset = 0;
        loop {
            let (alive, seen, full) = self.prune_page(user, index, offset, prune).await?;
            // Pruned entries left the index: the next page starts after the live ones.
            offset += match prune {
                Prune::Yes => alive.len(),
                Prune::No => seen,
            };
            live.extend(alive);
            if !full {
                return Ok(live);
            }
        }
    }

    /// Checks one page of the index from rank `offset`: removes the entries of ended
    /// sessions (with [`Prune::Yes`]) and returns the live ones, with how many entries the
    /// page had and whether it was full.
    async fn prune_page(
        &self,
        user: &UserId,
        index: &str,
        offset: usize,
        prune: Prune,
    ) -> Result<(Vec<(IndexEntry, SessionTtl)>, usize, bool)> {
        let store = &self.inner.store;
        let entries = self.index_page(index, offset).await?;
        let seen = entries.len();
        let full = seen == INDEX_BATCH;
        let keys = self.keys_of(&entries);
        let refs: Vec<SessionKeyRef<'_>> = keys.iter().map(SessionKeys::key_ref).collect();
        let ttls = store.ttls(&refs).await?;
        let mut live = Vec::with_capacity(entries.len());
        let mut dead = Vec::new();
        for (entry, ttl) in entries.into_iter().zip(ttls) {
            match ttl {
                Some(ttl) => live.push((entry, ttl)),
                None => dead.push(entry),
            }
        }
        if prune == Prune::Yes && !dead.is_empty() {
            match self.streams(index) {
                Some(streams) => {
                    let kinds = vec![SessionEventKind::Expired; dead.len()];
                    self.record_removals(user, index, &streams, &dead, &kinds)
                        .await?;
                }
                None => {
                    let dead: Vec<&str> = dead.iter().map(|e| e.member.as_str()).collect();
                    store.index_remove(index, &dead).await?;
                }
            }
        }
        Ok((live, seen, full))
    }

    fn keys_of(&self, entries: &[IndexEntry]) -> Vec<SessionKeys> {
        entries
            .iter()
            .map(|entry| SessionKeys::for_id(&self.inner.config, entry.key_id()))
            .collect()
    }

    /// Ends the oldest live sessions beyond `cap`.
    async fn evict_beyond(&self, user: &UserId, index: &str, cap: usize) -> Result<()> {
        let live = self.live_members(user, index, Prune::Yes).await?;
        let excess = live.len().saturating_sub(cap);
        let oldest: Vec<IndexEntry> = live.into_iter().take(excess).map(|(e, _)| e).collect();
        for batch in oldest.chunks(INDEX_BATCH) {
            let ending = Ending::new(SessionEventKind::Evicted, EndReason::SessionLimit);
            self.remove_members(user, index, batch, ending).await?;
        }
        Ok(())
    }

    /// Ends the sessions of these index entries (leaving their watchers `ending`'s reason)
    /// and removes the entries; with the event log on, records `ending`'s kind for each
    /// session this call ended (`expired` for one found gone) with the removal of its entry.
    async fn remove_members(
        &self,
        user: &UserId,
        index: &str,
        entries: &[IndexEntry],
        ending: Ending,
    ) -> Result<u64> {
        if entries.is_empty() {
            return Ok(0);
        }
        let store = &self.inner.store;
        let keys = self.keys_of(entries);
        let refs: Vec<SessionKeyRef<'_>> = keys.iter().map(SessionKeys::key_ref).collect();
        let existed = store.remove_marked(&refs, self.mark(ending.reason)).await?;
        let removed = existed.iter().filter(|&&found| found).count() as u64;
        let Some(streams) = self.streams(index) else {
            let members: Vec<&str> = entries.iter().map(|e| e.member.as_str()).collect();
            store.index_remove(index, &members).await?;
            return Ok(removed);
        };
        let kinds: Vec<SessionEventKind> = existed
            .iter()
            .map(|&found| {
                if found {
                    ending.kind
                } else {
                    SessionEventKind::Expired
                }
            })
            .collect();
        self.record_removals(user, index, &streams, entries, &kinds)
            .await?;
        Ok(removed)
    }

    /// Removes index entries, recording `kinds[i]` for `entries[i]` if and only if this
    /// call removed it (one script: see [`session::events`](crate::session::events)).
    async fn record_removals(
        &self,
        user: &UserId,
        index: &str,
        streams: &StreamKeys,
        entries: &[IndexEntry],
        kinds: &[SessionEventKind],
    ) -> Result<()> {
        let at_ms = now_micros() / 1000;
        let events: Vec<EventFields> = entries
            .iter()
            .zip(kinds)
            .map(|(entry, &kind)| {
                NewEvent {
                    kind,
                    user,
                    session: entry.session_id(),
                    new_session: None,
                    device: entry.device(),
                    at_ms,
                    idle_ms: None,
                    lifetime_ms: None,
                }
                .fields()
            })
            .collect();
        let members: Vec<&str> = entries.iter().map(|e| e.member.as_str()).collect();
        let done = self
            .inner
            .store
            .index_remove_logged(index, &members, &streams.streams(), &events)
            .await?;
        for (&kind, recorded) in kinds.iter().zip(done) {
            if recorded {
                count_event(kind);
            }
        }
        Ok(())
    }
}

/// Counts one recorded event by kind.
fn count_event(kind: SessionEventKind) {
    telemetry::count(names::SESSION_EVENTS, "kind", kind.as_str());
}

/// Whether `id` has the form of a stream entry id (`<ms>-<seq>`).
fn is_entry_id(id: &str) -> bool {
    id.split_once('-').is_some_and(|(ms, seq)| {
        [ms, seq].iter().all(|part| {
            !part.is_empty() && part.len() <= 20 && part.bytes().all(|b| b.is_ascii_digit())
        })
    })
}

/// A rotated session: its new token, and what is left of its absolute lifetime (for the
/// cookie's `Max-Age`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rotated {
    /// The new token; the old one no longer works.
    pub token: Token,
    /// Time left to the session's absolute deadline, if it has one.
    pub lifetime_left: Option<Duration>,
}

/// Whether a walk over a user's index removes the entries of ended sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prune {
    Yes,
    No,
}

/// Up to `max` draws for a token whose session key `inner`'s store can rename `old_key` to
/// (2^20 draws for one slot in 16,384: failing is a 1-in-e^64 event).
fn find_token(inner: &Inner, old_key: &str, draws: &mut TokenDraws, max: usize) -> Option<Token> {
    let format = inner.config.token_format();
    (0..max).map(|_| draws.next(format)).find(|token| {
        let key = SessionKeys::for_token(&inner.config, token).session;
        inner.store.can_rename(old_key, &key)
    })
}

/// Token draws for a rotation on a cluster, which may take thousands: one OS randomness
/// call seeds a CSPRNG instead of one call per draw.
struct TokenDraws(rand::rngs::StdRng);

impl TokenDraws {
    fn new() -> Result<Self> {
        use rand::SeedableRng;
        rand::rngs::StdRng::try_from_os_rng()
            .map(Self)
            .map_err(|e| Error::Random(e.to_string()))
    }

    fn next(&mut self, format: TokenFormat) -> Token {
        use rand::RngCore;
        let mut bytes = [0u8; crate::token::TOKEN_BYTES];
        self.0.fill_bytes(&mut bytes);
        Token::from_random_bytes(&bytes, format)
    }
}

/// A session of the caller's own from a loaded one: the same one when nothing else holds
/// it, else decoded again from its data (a near cache hit shares the session with later
/// hits).
fn unshare<T: DeserializeOwned>(shared: Arc<Session<T>>) -> Option<Session<T>> {
    let shared = match Arc::try_unwrap(shared) {
        Ok(session) => return Some(session),
        Err(shared) => shared,
    };
    // It decoded once, so it decodes again.
    let data = codec::decode::<T>(&shared.stored).ok()?;
    Some(Session {
        token: shared.token.clone(),
        data,
        stored: shared.stored.clone(),
    })
}
