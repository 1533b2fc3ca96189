//! The hand-written handlers keygate is measured against: reference code, frozen. They do
//! by hand, in the most direct way each framework offers, what keygate's route does, so
//! that the difference is keygate's cost. A change to any file of this folder is a commit
//! of its own that says why: the performance gate (`keygate-bench gate`) refuses commits
//! after its baseline that change this folder together with anything else.
//!
//! Every framework has the same routes: `POST /login` stores the Node seed's user in a new
//! session (`SET myapp_<token> <json> PX ttl NX`) and answers the token; `GET /me` answers
//! the session's user, or 401.
//!
//! - bare: no session, a constant user from process memory (the framework's ceiling);
//! - getex: one `GETEX myapp_<token> PX ttl`, the user decoded into its type and encoded
//!   again, as keygate hands it to handlers (keygate's like-for-like floor);
//! - getex-verbatim: the same `GETEX`, the stored JSON returned as it is;
//! - hash-script (axum): the Java seed's hash session loaded by keygate's own
//!   type-checked touch script (`EVALSHA`), the fields returned as a JSON object;
//! - gcra-getex-spread (axum): keygate's GCRA script (`EVALSHA`) for the address in
//!   `X-Forwarded-For`, then the `GETEX`.

pub mod actix;
pub mod axum;
pub mod poem;
pub mod rocket;

use redis::aio::ConnectionManager;

use crate::Result;
use crate::user::{IDLE_SECS, NODE_CUSTOM, NodeUser};

/// The Java seed's key prefix (`login:token:<token>`).
pub const JAVA_PREFIX: &str = "login:token:";

/// keygate's load-and-touch script of a hash session, run here by `EVALSHA`.
const TOUCH_SCRIPT: &str = include_str!("../../../../core/src/session/lua/session_touch.lua");

/// The rate-limited reference's quota: a million a second (interval 1 µs, burst a
/// million), which admits every request, as the keygate variant's.
const GCRA_INTERVAL_US: u64 = 1;
const GCRA_TOLERANCE_US: u64 = 1_000_000;

/// What the handlers share: one multiplexed `ConnectionManager`, as keygate's, and the
/// scripts (hashed once).
#[derive(Clone)]
pub struct Reference {
    pub conn: ConnectionManager,
    touch: redis::Script,
    gcra: redis::Script,
}

impl Reference {
    pub async fn connect(url: &str) -> Result<Self> {
        let client = redis::Client::open(url)?;
        Ok(Self {
            conn: ConnectionManager::new(client).await?,
            touch: redis::Script::new(TOUCH_SCRIPT),
            gcra: redis::Script::new(keygate::rate_limit::script_sources().0),
        })
    }

    /// `GETEX myapp_<token> PX <30 min>`: the stored JSON, `None` without a session.
    pub async fn getex(&self, token: &[u8]) -> redis::RedisResult<Option<Vec<u8>>> {
        if token.is_empty() {
            return Ok(None);
        }
        let mut key = Vec::with_capacity(NODE_CUSTOM.len() + 1 + token.len());
        key.extend_from_slice(NODE_CUSTOM.as_bytes());
        key.push(b'_');
        key.extend_from_slice(token);
        redis::cmd("GETEX")
            .arg(key)
            .arg("PX")
            .arg(IDLE_SECS * 1000)
            .query_async(&mut self.conn.clone())
            .await
    }

    /// [`getex`](Self::getex), the user decoded into its type.
    pub async fn getex_user(&self, token: &[u8]) -> redis::RedisResult<Option<NodeUser>> {
        let value = self.getex(token).await?;
        Ok(value.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    /// The hash session of `token` through the touch script, as a JSON object of its
    /// fields: `None` without a session (or with a key of another type).
    pub async fn hash_json(&self, token: &[u8]) -> redis::RedisResult<Option<Vec<u8>>> {
        if token.is_empty() {
            return Ok(None);
        }
        let mut key = Vec::with_capacity(JAVA_PREFIX.len() + token.len());
        key.extend_from_slice(JAVA_PREFIX.as_bytes());
        key.extend_from_slice(token);
        let reply: Vec<Vec<u8>> = self
            .touch
            .key(key)
            .arg("hash")
            .arg(IDLE_SECS * 1000)
            .arg("")
            .invoke_async(&mut self.conn.clone())
            .await?;
        let Some((status, fields)) = reply.split_first() else {
            return Ok(None);
        };
        if status.as_slice() != b"ok" {
            return Ok(None);
        }
        let mut object = serde_json::Map::with_capacity(fields.len() / 2);
        for pair in fields.chunks_exact(2) {
            object.insert(
                String::from_utf8_lossy(&pair[0]).into_owned(),
                serde_json::Value::String(String::from_utf8_lossy(&pair[1]).into_owned()),
            );
        }
        Ok(serde_json::to_vec(&object).ok())
    }

    /// keygate's GCRA script for `subject` (the last `X-Forwarded-For` address): whether
    /// the request is admitted.
    pub async fn gcra_admits(&self, subject: &[u8]) -> redis::RedisResult<bool> {
        let mut key = Vec::with_capacity(16 + subject.len());
        key.extend_from_slice(b"bench-reference:");
        key.extend_from_slice(subject);
        let reply: String = self
            .gcra
            .key(key)
            .arg(GCRA_INTERVAL_US)
            .arg(GCRA_TOLERANCE_US)
            .arg(1)
            .invoke_async(&mut self.conn.clone())
            .await?;
        // "<server time> <allowed> <remaining> <retry after> <reset>"
        Ok(reply.split(' ').nth(1) == Some("1"))
    }

    /// `SET myapp_<token> <json> PX ttl NX` with a fresh 128-bit token.
    pub async fn login(&self) -> Result<String> {
        let token = keygate::Token::generate()?;
        let json = serde_json::to_string(&NodeUser::seed())?;
        let stored: Option<String> = redis::cmd("SET")
            .arg(format!("{NODE_CUSTOM}_{}", token.expose()))
            .arg(json)
            .arg("PX")
            .arg(IDLE_SECS * 1000)
            .arg("NX")
            .query_async(&mut self.conn.clone())
            .await?;
        match stored {
            Some(_) => Ok(token.expose().to_owned()),
            None => Err("token collision".into()),
        }
    }
}

/// The last address of `X-Forwarded-For` (the one the trusted proxy appended).
pub fn last_forwarded(value: &[u8]) -> &[u8] {
    let last = value.rsplit(|&b| b == b',').next().unwrap_or(value);
    last.trim_ascii()
}
