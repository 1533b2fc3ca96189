//! Redis memory per session: `INFO memory` `used_memory` before and after creating
//! sessions through `SessionManager::login`, never `MEMORY USAGE` of one key (which leaves
//! out the keyspace's own tables and the expiry entries).

use keygate::{RedisStore, SessionManager, UserId};
use keygate_tests::fixtures::JavaUser;

use super::cases::{self, Extra, Seed};
use super::populate;
use crate::Result;
use crate::redis_admin::Admin;
use crate::user::NodeUser;

/// Bytes per session at one population.
#[derive(Debug, Clone)]
pub struct MemoryPoint {
    pub seed: Seed,
    pub extra: Extra,
    pub sessions: usize,
    /// `used_memory` grown per session since the empty server.
    pub bytes_per_session: f64,
    /// Keys per session (session, companion, index).
    pub keys_per_session: f64,
    /// Logins per second while growing to this population.
    pub logins_per_sec: f64,
}

/// The per-user index's part of a session's bytes: `used_memory` freed per session by
/// deleting every index key of the population (one user per session).
#[derive(Debug, Clone)]
pub struct IndexShare {
    pub seed: Seed,
    pub sessions: usize,
    pub bytes_per_session: f64,
}

/// A user with many sessions: the index key's size.
#[derive(Debug, Clone)]
pub struct BigIndex {
    pub sessions: usize,
    /// `MEMORY USAGE` of the index key.
    pub index_bytes: u64,
    /// `used_memory` grown per session (sessions and index).
    pub bytes_per_session: f64,
    /// The index's Redis encoding (`listpack` or `skiplist`).
    pub encoding: String,
}

/// A manager of `seed` with `extra` on `store`, for whichever user type the seed stores.
pub enum AnyManager {
    Node(SessionManager<NodeUser>),
    Java(SessionManager<JavaUser>),
}

impl AnyManager {
    pub fn new(store: RedisStore, seed: Seed, extra: Extra) -> Result<Self> {
        let config = cases::config(seed, extra);
        Ok(match seed {
            Seed::NodeJson => Self::Node(SessionManager::new(store, config)?),
            Seed::JavaHash => Self::Java(SessionManager::new(store, config)?),
        })
    }

    /// Logs in users `from..to` of population `tag`, one session each.
    pub async fn login_range(
        &self,
        tag: &'static str,
        from: usize,
        to: usize,
        keep: bool,
    ) -> Result<(Vec<String>, f64)> {
        match self {
            Self::Node(m) => populate::login_range(m, tag, &NodeUser::seed(), from, to, keep).await,
            Self::Java(m) => {
                populate::login_range(m, tag, &JavaUser::new(598), from, to, keep).await
            }
        }
    }

    /// Logs `user` in `count` times.
    pub async fn login_one_user(&self, user: &UserId, count: usize) -> Result<Vec<String>> {
        match self {
            Self::Node(m) => populate::login_one_user(m, user, &NodeUser::seed(), count).await,
            Self::Java(m) => populate::login_one_user(m, user, &JavaUser::new(598), count).await,
        }
    }
}

/// Grows a population of `seed`/`extra` through `checkpoints` (ascending), calling
/// `at(checkpoint, tokens so far)` after each: the memory per session is read first.
/// Returns the points and the tokens when `keep`.
#[allow(clippy::too_many_arguments)]
pub async fn grow(
    admin: &mut Admin,
    manager: &AnyManager,
    seed: Seed,
    extra: Extra,
    tag: &'static str,
    checkpoints: &[usize],
    keep: bool,
    mut at: impl FnMut(usize, &[String], &mut Admin) -> Result<()>,
) -> Result<Vec<MemoryPoint>> {
    let base = admin.used_memory()?;
    let base_keys = admin.dbsize()?;
    let mut tokens = Vec::new();
    let mut points = Vec::new();
    let mut have = 0;
    for &n in checkpoints {
        let (mut new, rate) = manager.login_range(tag, have, n, keep).await?;
        tokens.append(&mut new);
        have = n;
        let used = admin.used_memory()?;
        let keys = admin.dbsize()?;
        let point = MemoryPoint {
            seed,
            extra,
            sessions: n,
            bytes_per_session: used.saturating_sub(base) as f64 / n as f64,
            keys_per_session: keys.saturating_sub(base_keys) as f64 / n as f64,
            logins_per_sec: rate,
        };
        eprintln!(
            "scale:   {} {}: {n} sessions, {:.0} B/session, {:.2} keys/session, {:.0} logins/s",
            seed.label(),
            extra.label(),
            point.bytes_per_session,
            point.keys_per_session,
            rate
        );
        points.push(point);
        at(n, &tokens, admin)?;
    }
    Ok(points)
}

/// Deletes the population's index keys and reads what that freed per session.
pub fn index_share(admin: &mut Admin, seed: Seed, sessions: usize) -> Result<IndexShare> {
    let before = admin.used_memory()?;
    let deleted = admin.delete_matching("keygate:user-sessions:*")?;
    let after = admin.used_memory()?;
    let share = IndexShare {
        seed,
        sessions,
        bytes_per_session: before.saturating_sub(after) as f64 / deleted.max(1) as f64,
    };
    eprintln!(
        "scale:   {}: the per-user index takes {:.0} B/session ({deleted} index keys)",
        seed.label(),
        share.bytes_per_session
    );
    Ok(share)
}

/// One user with `count` sessions: the index key's size and encoding.
pub async fn big_index(admin: &mut Admin, manager: &AnyManager, count: usize) -> Result<BigIndex> {
    let user = UserId::new("many")?;
    let base = admin.used_memory()?;
    manager.login_one_user(&user, count).await?;
    let used = admin.used_memory()?;
    let key = "keygate:user-sessions:many";
    let index_bytes = admin.memory_usage(key)?.unwrap_or(0);
    let encoding = admin.object_encoding(key)?;
    let big = BigIndex {
        sessions: count,
        index_bytes,
        bytes_per_session: used.saturating_sub(base) as f64 / count as f64,
        encoding,
    };
    eprintln!(
        "scale:   one user with {count} sessions: index {} B ({}), {:.0} B/session in all",
        big.index_bytes, big.encoding, big.bytes_per_session
    );
    Ok(big)
}
