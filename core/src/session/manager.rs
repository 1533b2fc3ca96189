//! The session manager: policy over a [`SessionStore`].

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::store::{Fetched, SessionKeyRef, SessionStore, UpdateOutcome};
use super::{LoginOptions, Session, SessionInfo};
use crate::codec::{self, StoredValue};
use crate::config::{SessionConfig, check_ttl, millis};
use crate::keys::{SessionKeys, UserId, index_key};
use crate::{Error, Result, Token};

/// A new session's idle TTL and absolute lifetime, in milliseconds.
struct Expiry {
    idle_ms: u64,
    lifetime_ms: Option<u64>,
}

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
    _data: PhantomData<fn() -> T>,
}

struct Inner {
    config: SessionConfig,
    store: Arc<dyn SessionStore>,
    idle_ms: u64,
    lifetime_ms: Option<u64>,
    index_ttl_ms: u64,
}

impl<T> Clone for SessionManager<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
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
        Ok(Self {
            inner: Arc::new(Inner {
                idle_ms: millis(config.idle_ttl()),
                lifetime_ms: config.absolute_lifetime().map(millis),
                index_ttl_ms: millis(config.index_ttl()),
                config,
                store,
            }),
            _data: PhantomData,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    fn keys(&self, token: &Token) -> SessionKeys {
        SessionKeys::for_token(&self.inner.config, token)
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
    /// [`LoginLimits`](crate::config::LoginLimits), the session's own idle TTL and lifetime
    /// (remember-me). Choosing an expiry without limits configured, or beyond them, is an
    /// [`Error::Config`].
    pub async fn login_with(
        &self,
        user: &UserId,
        data: &T,
        options: &LoginOptions,
    ) -> Result<Token> {
        let inner = &*self.inner;
        let expiry = self.expiry_for(options)?;
        let value = self.encode(data)?;
        let index = index_key(&inner.config, user);
        for _ in 0..CREATE_ATTEMPTS {
            let token = Token::generate_as(inner.config.token_encoding())?;
            let keys = self.keys(&token);
            let key_ref = SessionKeyRef {
                session: &keys.session,
                deadline: keys.deadline.as_deref(),
            };
            if !inner
                .store
                .insert(key_ref, &value, expiry.idle_ms, expiry.lifetime_ms)
                .await?
            {
                continue;
            }
            // Session first, index entry second: a `sessions`, cap or `logout_everywhere` running in
            // between cannot prune an entry whose session does not exist yet (the entry
            // would be lost and the session invisible to "log out everywhere" for good).
            // If indexing fails, the token is never handed out and the session idles away.
            inner
                .store
                .index_add(&index, &keys.id, now_micros(), inner.index_ttl_ms)
                .await?;
            match inner.config.max_sessions_per_user() {
                Some(cap) => self.evict_beyond(&index, cap).await?,
                None => self.prune_page(&index, 0).await.map(|_| ())?,
            }
            return Ok(token);
        }
        Err(Error::Random("generated tokens keep colliding".into()))
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
    fn expiry_for(&self, options: &LoginOptions) -> Result<Expiry> {
        let inner = &*self.inner;
        if options.idle_ttl().is_none() && options.lifetime().is_none() {
            return Ok(Expiry {
                idle_ms: inner.idle_ms,
                lifetime_ms: inner.lifetime_ms,
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
        Ok(Expiry {
            idle_ms: millis(idle),
            lifetime_ms: Some(millis(lifetime)),
        })
    }

    /// Encodes session data; a hash needs at least one field (an empty hash is no key).
    fn encode(&self, data: &T) -> Result<StoredValue> {
        let value = codec::encode(self.inner.config.codec(), data)?;
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
        let inner = &*self.inner;
        let keys = self.keys(token);
        let key_ref = SessionKeyRef {
            session: &keys.session,
            deadline: keys.deadline.as_deref(),
        };
        let fetched = inner
            .store
            .load_and_touch(key_ref, inner.config.codec(), inner.idle_ms)
            .await?;
        let stored = match fetched {
            Fetched::Found(stored) => stored,
            Fetched::Missing => return Ok(None),
            Fetched::Corrupt(reason) => {
                tracing::warn!(%reason, "corrupt session data treated as no session");
                return Ok(None);
            }
        };
        match codec::decode::<T>(&stored) {
            Ok(data) => Ok(Some(Session {
                token: token.clone(),
                data,
                stored,
            })),
            Err(reason) => {
                tracing::warn!(%reason, "undecodable session data treated as no session");
                Ok(None)
            }
        }
    }

    /// Replaces the whole session data, keeping the expiry. Writes nothing and returns
    /// `false` when the session no longer exists, so a concurrent logout is never undone.
    /// Prefer [`update`](Self::update) when other requests may change the same session.
    pub async fn replace(&self, token: &Token, data: &T) -> Result<bool> {
        let value = self.encode(data)?;
        self.inner
            .store
            .replace(&self.keys(token).session, &value)
            .await
    }

    /// Writes `data` over the session as it was loaded, keeping the expiry and never
    /// resurrecting a destroyed session. With the hash codec only the fields that differ
    /// from the loaded data are written, so fields changed meanwhile by other requests
    /// survive; with the JSON codec the write happens only if nobody changed the data since
    /// it was loaded ([`UpdateOutcome::Conflict`] otherwise).
    pub async fn update(&self, session: &Session<T>, data: &T) -> Result<UpdateOutcome> {
        let value = self.encode(data)?;
        self.inner
            .store
            .update(
                &self.keys(session.token()).session,
                session.stored(),
                &value,
            )
            .await
    }

    /// Ends the session of `token` at once; `false` if there was none.
    pub async fn logout(&self, token: &Token) -> Result<bool> {
        let keys = self.keys(token);
        let removed = self
            .inner
            .store
            .remove(&[SessionKeyRef {
                session: &keys.session,
                deadline: keys.deadline.as_deref(),
            }])
            .await?;
        // The user's index entry goes at the user's next login, `sessions` or `logout_everywhere` (the
        // token does not tell whose it is).
        Ok(removed > 0)
    }

    /// The user's live sessions, oldest first. `current` marks the session of `current`.
    pub async fn sessions(
        &self,
        user: &UserId,
        current: Option<&Token>,
    ) -> Result<Vec<SessionInfo>> {
        let index = index_key(&self.inner.config, user);
        let live = self.live_members(&index).await?;
        let current_id = current.map(|t| self.keys(t).id);
        Ok(live
            .into_iter()
            .map(|(id, created_micros)| SessionInfo {
                created_at_ms: created_micros / 1000,
                current: current_id.as_deref() == Some(id.as_str()),
            })
            .collect())
    }

    /// Ends every session of `user`; returns how many were live.
    pub async fn logout_everywhere(&self, user: &UserId) -> Result<u64> {
        let index = index_key(&self.inner.config, user);
        let mut removed = 0;
        loop {
            // Each page is removed from the index, so the next one starts at rank 0 again.
            let page = self.inner.store.index_page(&index, 0, INDEX_BATCH).await?;
            let full = page.len() == INDEX_BATCH;
            removed += self
                .remove_members(&index, page.into_iter().map(|(id, _)| id).collect())
                .await?;
            if !full {
                return Ok(removed);
            }
        }
    }

    /// Index members whose session still exists, oldest first; prunes the others.
    async fn live_members(&self, index: &str) -> Result<Vec<(String, i64)>> {
        let mut live = Vec::new();
        let mut offset = 0;
        loop {
            let (alive, full) = self.prune_page(index, offset).await?;
            offset += alive.len();
            live.extend(alive);
            if !full {
                return Ok(live);
            }
        }
    }

    /// Checks one page of the index from rank `offset`: removes the entries of ended
    /// sessions and returns the live ones, with whether the page was full.
    async fn prune_page(&self, index: &str, offset: usize) -> Result<(Vec<(String, i64)>, bool)> {
        let store = &self.inner.store;
        let members = store.index_page(index, offset, INDEX_BATCH).await?;
        let full = members.len() == INDEX_BATCH;
        let keys: Vec<SessionKeys> = members
            .iter()
            .map(|(id, _)| SessionKeys::for_id(&self.inner.config, id.clone()))
            .collect();
        let session_keys: Vec<&str> = keys.iter().map(|k| k.session.as_str()).collect();
        let exists = store.exists(&session_keys).await?;
        let (live, dead): (Vec<_>, Vec<_>) = members
            .into_iter()
            .zip(exists)
            .partition(|(_, exists)| *exists);
        let dead: Vec<&str> = dead.iter().map(|((id, _), _)| id.as_str()).collect();
        store.index_remove(index, &dead).await?;
        Ok((live.into_iter().map(|(member, _)| member).collect(), full))
    }

    /// Ends the oldest live sessions beyond `cap`.
    async fn evict_beyond(&self, index: &str, cap: usize) -> Result<()> {
        let live = self.live_members(index).await?;
        let excess = live.len().saturating_sub(cap);
        let oldest: Vec<String> = live.into_iter().take(excess).map(|(id, _)| id).collect();
        for batch in oldest.chunks(INDEX_BATCH) {
            self.remove_members(index, batch.to_vec()).await?;
        }
        Ok(())
    }

    async fn remove_members(&self, index: &str, ids: Vec<String>) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let store = &self.inner.store;
        let keys: Vec<SessionKeys> = ids
            .into_iter()
            .map(|id| SessionKeys::for_id(&self.inner.config, id))
            .collect();
        let refs: Vec<SessionKeyRef<'_>> = keys
            .iter()
            .map(|k| SessionKeyRef {
                session: &k.session,
                deadline: k.deadline.as_deref(),
            })
            .collect();
        let removed = store.remove(&refs).await?;
        let members: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        store.index_remove(index, &members).await?;
        Ok(removed)
    }
}
