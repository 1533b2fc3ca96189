//! The near cache's Redis commands, sent on a tracking connection. No scripts: Redis (7.0
//! at least) announces the keys a connection's own scripts change to that connection,
//! `NOLOOP` notwithstanding, so a fill by script would invalidate itself. A fill is a
//! pipeline of reads and never writes: every write under the prefix is announced to every
//! other instance and drops their entry, so fills that wrote (a `GETEX`) would make two
//! instances serving one session in turn drop each other's entry on every load. A refresh
//! is a pipeline of `PEXPIRE … GT`s (and reads), sent only when the TTL no longer covers
//! the idle TTL.

use crate::codec::Layout;
use crate::codec::StoredValue;
use crate::error::{BackendError, Result};
use crate::redis_store::{RedisStore, is_wrong_type};
use crate::session::redis::{Companion, hash_fetched, json_fetched, pttl};
use crate::session::store::{Fetched, SessionKeyRef};

/// What a fill learned about the session's expiry, besides its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FillExpiry {
    /// Time left on the session key as the fill leaves it.
    pub ttl_ms: u64,
    /// Time left to the absolute deadline, if any.
    pub deadline_ms: Option<u64>,
    /// The session's own idle TTL, when its login chose one.
    pub own_idle_ms: Option<u64>,
    /// Whether the session's companion key has no deadline and follows the session's TTL:
    /// a refresh then extends it too.
    pub companion_follows: bool,
    /// When the TTL left still covers the idle TTL from now: how long ago a refresh would
    /// have set it (idle TTL plus slack, less the TTL left), so that the next refresh falls
    /// due when it would have. `None`: a refresh is due now.
    pub since_refresh_ms: Option<u64>,
}

impl RedisStore {
    /// Reads a session for the cache in one round trip, without writing: the data, its
    /// `PTTL`, and with a companion key its `PTTL` and value, judged as the touch script
    /// judges them. Whether the TTL left covers the idle TTL (`idle_ms`, or the session's
    /// own) from now decides when the refresh falls due (see [`FillExpiry`]).
    pub(super) async fn near_fill(
        &self,
        keys: SessionKeyRef<'_>,
        codec: Layout,
        idle_ms: u64,
        slack_ms: u64,
    ) -> Result<(Fetched, Option<FillExpiry>)> {
        let mut conn = self.conn();
        let mut pipe = redis::pipe();
        match codec {
            Layout::Json => pipe.cmd("GET").arg(keys.session),
            Layout::Hash => pipe.cmd("HGETALL").arg(keys.session),
        };
        pipe.cmd("PTTL").arg(keys.session);
        if let Some(deadline) = keys.deadline {
            pipe.cmd("PTTL").arg(deadline).cmd("GET").arg(deadline);
        }
        let reply = self
            .bounded(pipe.query_async::<Vec<redis::Value>>(&mut conn))
            .await;
        match reply {
            Ok(replies) => {
                let (fetched, expiry) = judge(keys, codec, replies)?;
                Ok((
                    fetched,
                    expiry.map(|e| e.with_refresh_due(idle_ms, slack_ms)),
                ))
            }
            Err(crate::error::Error::Backend(BackendError::Redis(e))) if is_wrong_type(&e) => Ok((
                Fetched::Corrupt("session key holds another Redis type".into()),
                None,
            )),
            Err(error) => Err(error),
        }
    }
}

/// Decodes a fill's read pipeline: data, `PTTL`, and with a companion its `PTTL` and value.
fn judge(
    keys: SessionKeyRef<'_>,
    codec: Layout,
    replies: Vec<redis::Value>,
) -> Result<(Fetched, Option<FillExpiry>)> {
    let mut replies = replies.into_iter();
    let data = replies.next();
    let fetched = match (codec, data) {
        (Layout::Json, Some(redis::Value::Nil)) => Fetched::Missing,
        (Layout::Json, Some(redis::Value::BulkString(bytes))) => json_fetched(Some(bytes)),
        (Layout::Hash, Some(value)) => {
            let pairs: Vec<(Vec<u8>, Vec<u8>)> = redis::from_redis_value(value)
                .map_err(|_| BackendError::Protocol("HGETALL did not answer pairs"))?;
            hash_fetched(pairs)
        }
        _ => return Err(BackendError::Protocol("unexpected reply to a session read").into()),
    };
    let Fetched::Found(value) = fetched else {
        return Ok((fetched, None));
    };
    let Some(key_ttl) = replies.next().as_ref().map(pttl).transpose()? else {
        return Err(BackendError::Protocol("missing PTTL reply").into());
    };
    // Gone between the two reads; no expiry: refresh at once (TTL 0 known locally).
    let Some(key_ttl) = key_ttl else {
        return Ok((Fetched::Missing, None));
    };
    let (left, held) = (replies.next(), replies.next());
    let (deadline_ms, own_idle_ms, companion_follows) = match keys.deadline {
        None => (None, None, false),
        // Gone, without expiry or in its last millisecond: over, as the script says.
        Some(_) => match Companion::judge(left.as_ref(), held.as_ref(), keys.own_idle)? {
            Companion::Over => return Ok((Fetched::Missing, None)),
            Companion::Follows => (None, None, true),
            Companion::Deadline {
                left_ms,
                own_idle_ms,
            } => (Some(left_ms), own_idle_ms, false),
        },
    };
    let expiry = FillExpiry {
        ttl_ms: key_ttl.unwrap_or(0),
        deadline_ms,
        own_idle_ms,
        companion_follows,
        since_refresh_ms: None,
    };
    Ok((Fetched::Found(value), Some(expiry)))
}

impl FillExpiry {
    /// Sets [`since_refresh_ms`](Self::since_refresh_ms): a refresh is due now unless the
    /// TTL left reaches the idle TTL (or the deadline, when that comes first).
    fn with_refresh_due(mut self, idle_ms: u64, slack_ms: u64) -> Self {
        let idle = self.own_idle_ms.unwrap_or(idle_ms);
        let needed = self.deadline_ms.map_or(idle, |left| idle.min(left));
        self.since_refresh_ms = (self.ttl_ms >= needed)
            .then(|| idle.saturating_add(slack_ms).saturating_sub(self.ttl_ms));
        self
    }
}

/// One key of a refresh.
pub(super) struct RefreshKey<'a> {
    /// The session key.
    pub key: &'a str,
    /// The TTL to set (ms).
    pub ttl_ms: u64,
    /// The layout to read it back in.
    pub codec: Layout,
    /// The session's companion key, checked (and extended alike when it follows the
    /// session's TTL): a refresh that finds it gone ends the entry.
    pub companion: Option<&'a str>,
    /// Whether the companion follows the session's TTL.
    pub companion_follows: bool,
}

/// What a refresh read back of one key: its data and the TTL it has left (ms).
pub(super) type Held = Option<(StoredValue, u64)>;

impl RedisStore {
    /// Extends each key's TTL and reads its data and TTL right after, in one pipeline on
    /// this (one node's) connection: what each key holds and how long it has left, `None`
    /// where it is gone (or holds something that is not a session of its layout, or has no
    /// expiry).
    ///
    /// The `PEXPIRE` is `GT`: it only ever pushes an expiry later. A value another
    /// service wrote over the key in the instant before the refresh (a refresh is
    /// queued before it is sent) thus keeps living: one without an expiry never gets
    /// one, and one with an expiry never expires sooner (at most later). Nothing is
    /// lost. A script could check the type first, but Redis announces a connection's
    /// own scripts' writes to it, `NOLOOP` notwithstanding, and each refresh would drop
    /// the entry it refreshes.
    ///
    /// The read keeps the entry honest. Redis remembers one writer per key per turn of its
    /// event loop, the last, and leaves that connection out when it announces the key
    /// (`NOLOOP`): a change by someone else that Redis runs in the same turn just before
    /// this `PEXPIRE` is announced to everyone but this connection. The read, which Redis
    /// runs right after the `PEXPIRE`, sees it; a change after it is announced.
    ///
    /// A session's companion key is read too (its `PTTL`, after the same `PEXPIRE … GT`
    /// when it follows the session's TTL): one gone, without expiry or at 0 ms ends the
    /// session, as the touch script says, and its entry is dropped.
    pub(super) async fn near_refresh(&self, keys: &[RefreshKey<'_>]) -> Result<Vec<Held>> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for refresh in keys {
            let (key, ttl_ms) = (refresh.key, refresh.ttl_ms);
            if let Some(companion) = refresh.companion {
                // Outside the tracked prefix: the write announces nothing.
                if refresh.companion_follows {
                    pipe.cmd("PEXPIRE").arg(companion).arg(ttl_ms).arg("GT");
                }
                pipe.cmd("PTTL").arg(companion);
            }
            pipe.cmd("PEXPIRE").arg(key).arg(ttl_ms).arg("GT");
            match refresh.codec {
                Layout::Json => pipe.cmd("GET").arg(key),
                Layout::Hash => pipe.cmd("HGETALL").arg(key),
            };
            pipe.cmd("PTTL").arg(key);
        }
        let mut conn = self.conn();
        let replies: Vec<redis::Value> = self.bounded(pipe.query_async(&mut conn)).await?;
        let mut replies = replies.into_iter();
        let mut held = Vec::with_capacity(keys.len());
        for refresh in keys {
            // A companion that is gone (or lost its expiry) ends the session: its entry is
            // dropped, and the next load finds nothing.
            let companion_over = match refresh.companion {
                None => false,
                Some(_) => {
                    if refresh.companion_follows {
                        replies.next();
                    }
                    let Some(left) = replies.next() else {
                        return Err(BackendError::Protocol("missing reply to a refresh").into());
                    };
                    !matches!(pttl(&left), Ok(Some(Some(ms))) if ms > 0)
                }
            };
            let (Some(extended), Some(data), Some(ttl)) =
                (replies.next(), replies.next(), replies.next())
            else {
                return Err(BackendError::Protocol("missing reply to a refresh").into());
            };
            if companion_over {
                held.push(None);
                continue;
            }
            // The key's refresh failed (a node turned replica, an expiry out of range):
            // its entry is dropped, the others stand.
            if let redis::Value::ServerError(_) = extended {
                held.push(None);
                continue;
            }
            let fetched = match (refresh.codec, data) {
                (Layout::Json, redis::Value::BulkString(bytes)) => json_fetched(Some(bytes)),
                (Layout::Hash, data @ (redis::Value::Array(_) | redis::Value::Map(_))) => {
                    match redis::from_redis_value::<Vec<(Vec<u8>, Vec<u8>)>>(data) {
                        Ok(pairs) => hash_fetched(pairs),
                        Err(_) => Fetched::Missing,
                    }
                }
                _ => Fetched::Missing,
            };
            let left = match pttl(&ttl) {
                Ok(Some(Some(ms))) => Some(ms),
                _ => None,
            };
            held.push(match (fetched, left) {
                (Fetched::Found(value), Some(ms)) => Some((value, ms)),
                _ => None,
            });
        }
        Ok(held)
    }
}
