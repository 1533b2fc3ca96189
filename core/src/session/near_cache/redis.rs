//! The near cache's Redis commands, sent on a tracking connection. A fill only reads (the
//! data and the TTLs, one pipeline): a write would tell every other instance to drop its
//! copy, so writes are left to the refresh, which runs only when the TTL no longer covers
//! the idle time. No scripts: Redis (7.0 at least) announces the keys a connection's own
//! scripts change to that connection, `NOLOOP` notwithstanding.

use crate::config::Codec;
use crate::error::{BackendError, Result};
use crate::redis_store::{RedisStore, is_wrong_type};
use crate::session::redis::{hash_fetched, json_fetched, own_idle, pttl};
use crate::session::store::{Fetched, SessionKeyRef};

/// What a fill learned about the session's expiry, besides its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FillExpiry {
    /// Time left on the session key (0 when it has no expiry: refresh at once).
    pub ttl_ms: u64,
    /// Time left to the absolute deadline, if any.
    pub deadline_ms: Option<u64>,
    /// The session's own idle TTL, when its login chose one.
    pub own_idle_ms: Option<u64>,
}

impl RedisStore {
    /// Reads a session for the cache in one round trip: the data, its `PTTL`, and with a
    /// companion key the companion's `PTTL` and value, judged as the touch script judges
    /// them. Writes nothing.
    pub(super) async fn near_fill(
        &self,
        keys: SessionKeyRef<'_>,
        codec: Codec,
    ) -> Result<(Fetched, Option<FillExpiry>)> {
        let mut conn = self.conn();
        let mut pipe = redis::pipe();
        match codec {
            Codec::Json => pipe.cmd("GET").arg(keys.session),
            Codec::Hash => pipe.cmd("HGETALL").arg(keys.session),
        };
        pipe.cmd("PTTL").arg(keys.session);
        if let Some(deadline) = keys.deadline {
            pipe.cmd("PTTL").arg(deadline).cmd("GET").arg(deadline);
        }
        let reply = self
            .bounded(pipe.query_async::<Vec<redis::Value>>(&mut conn))
            .await;
        match reply {
            Ok(replies) => judge(keys, codec, replies),
            Err(crate::Error::Backend(BackendError::Redis(e))) if is_wrong_type(&e) => Ok((
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
    codec: Codec,
    replies: Vec<redis::Value>,
) -> Result<(Fetched, Option<FillExpiry>)> {
    let mut replies = replies.into_iter();
    let data = replies.next();
    let fetched = match (codec, data) {
        (Codec::Json, Some(redis::Value::Nil)) => Fetched::Missing,
        (Codec::Json, Some(redis::Value::BulkString(bytes))) => json_fetched(Some(bytes)),
        (Codec::Hash, Some(value)) => {
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
    let (deadline_ms, own_idle_ms) = match keys.deadline {
        None => (None, None),
        Some(_) => {
            let left = replies.next().as_ref().map(pttl).transpose()?;
            let own = replies.next().as_ref().and_then(own_idle);
            match left.flatten() {
                // The companion is gone: the session is over when every session has one.
                None if keys.deadline_required => return Ok((Fetched::Missing, None)),
                None => (None, None),
                // It lost its expiry or is in its last millisecond: over, as the script says.
                Some(None | Some(0)) => return Ok((Fetched::Missing, None)),
                Some(Some(ms)) => (Some(ms), own.filter(|_| keys.own_idle)),
            }
        }
    };
    let expiry = FillExpiry {
        ttl_ms: key_ttl.unwrap_or(0),
        deadline_ms,
        own_idle_ms,
    };
    Ok((Fetched::Found(value), Some(expiry)))
}

impl RedisStore {
    /// Sets each key's TTL if it still exists, in one pipeline on this (one node's)
    /// connection; whether each key existed.
    pub(super) async fn near_refresh(&self, keys: &[(&str, u64)]) -> Result<Vec<bool>> {
        let mut pipe = redis::pipe();
        for (key, ttl_ms) in keys {
            pipe.cmd("PEXPIRE").arg(*key).arg(*ttl_ms);
        }
        let mut conn = self.conn();
        self.bounded(pipe.query_async(&mut conn)).await
    }
}
