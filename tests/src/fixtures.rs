//! What the adapters' end-to-end tests share: the Java seed's user, a gate on a private
//! Redis, planting sessions as another service would, and counting commands.

use std::time::Duration;

use keygate::{
    Keygate, RedisOptions, RedisStore, SessionConfig, SessionManager, TokenReader, TokenSource,
    UserId,
};
use serde::{Deserialize, Serialize};

use crate::RedisServer;

/// The Java seed's `UserDTO`, stored as a hash at `login:token:<token>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JavaUser {
    /// The user id.
    pub id: u64,
    /// The nickname.
    pub nick_name: String,
    /// The avatar.
    pub icon: String,
}

impl JavaUser {
    /// A user with this id.
    pub fn new(id: u64) -> Self {
        Self {
            id,
            nick_name: format!("user_{id}"),
            icon: String::new(),
        }
    }

    /// The user's id for the per-user index.
    pub fn user_id(&self) -> UserId {
        UserId::from(self.id)
    }
}

/// Tokens the adapters must refuse with 401 without a Redis call.
pub fn malformed_tokens() -> Vec<String> {
    vec![
        "*".to_owned(),
        "a".repeat(10 * 1024),
        "dd9b7511874889f4192fbda3d8b088é".to_owned(),
        "dd9b7511874889f4\u{1}192fbda3d8b0881c".to_owned(),
        "login:token:*".to_owned(),
    ]
}

/// The cookie name the adapters' tests enable as a third transport.
pub const COOKIE: &str = "kg_token";

/// A gate over a private Redis with the Java seed's layout, reading the header, the query
/// parameter and the [`COOKIE`].
pub async fn java_gate(server: &RedisServer) -> Keygate<JavaUser> {
    java_gate_with(server, SessionConfig::java_seed()).await
}

/// Like [`java_gate`] with another configuration.
pub async fn java_gate_with<T>(server: &RedisServer, config: SessionConfig) -> Keygate<T>
where
    T: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let store = RedisStore::connect_with(
        RedisOptions::new(server.url()).with_command_timeout(Duration::from_millis(500)),
    )
    .await
    .expect("connect to the private redis-server");
    let manager = SessionManager::new(store, config).expect("valid config");
    Keygate::new(manager)
        .with_reader(TokenReader::default().with_source(TokenSource::Cookie(COOKIE.into())))
}

/// Writes a session hash the way the Java seed's Spring service does (`HSET` + `EXPIRE`).
pub fn plant_java_session(server: &RedisServer, token: &str, user: &JavaUser) {
    let key = format!("login:token:{token}");
    let _: () = server.query(
        redis::cmd("HSET")
            .arg(&key)
            .arg("id")
            .arg(user.id.to_string())
            .arg("nickName")
            .arg(&user.nick_name)
            .arg("icon")
            .arg(&user.icon),
    );
    let _: () = server.query(redis::cmd("EXPIRE").arg(&key).arg(1800));
}

/// The key's remaining TTL in milliseconds (`PTTL`).
pub fn pttl(server: &RedisServer, key: &str) -> i64 {
    server.query(redis::cmd("PTTL").arg(key))
}

/// Commands Redis ran since the last [`RedisServer::reset_stats`], leaving out the
/// test's own `INFO`/`CONFIG` calls, sorted by name.
pub fn commands_since_reset(server: &RedisServer) -> Vec<(String, u64)> {
    let mut calls: Vec<_> = server
        .command_calls()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("info") && !name.starts_with("config"))
        .collect();
    calls.sort();
    calls
}

/// The commands one authenticated request of the Java layout must cost: `HGETALL` and
/// `PEXPIRE`, pipelined in one round trip.
pub fn one_hash_touch() -> Vec<(String, u64)> {
    vec![("hgetall".to_owned(), 1), ("pexpire".to_owned(), 1)]
}
