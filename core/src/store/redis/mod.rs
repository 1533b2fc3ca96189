//! The Redis backend: one multiplexed, auto-reconnecting connection shared by all requests.

mod code;
mod connection;
mod lock;
mod seckill;
mod session;

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use redis::{RedisResult, Script};

use connection::Conn;
pub use connection::RedisOptions;

use crate::error::{BackendError, Error};

/// A Redis backend for sessions (and the other keygate capabilities).
///
/// Cheap to clone: clones share one multiplexed connection, which pipelines concurrent
/// commands and reconnects by itself after the server went away. Every operation is bounded
/// by the command timeout ([`RedisOptions::with_command_timeout`]) and fails with
/// [`Error::Backend`] past it, whatever the connection is doing.
///
/// ```no_run
/// # async fn run() -> Result<(), keygate::Error> {
/// use keygate::store::redis::RedisStore;
/// // Password and database number as in the URL (the Node seed's `auth_pass`, `select(0)`).
/// let store = RedisStore::connect("redis://:222222@127.0.0.1:6379/0").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    /// For dedicated connections (pub/sub waits, blocking stream reads).
    client: redis::Client,
    pub(crate) command_timeout: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to one Redis server with the default timeouts; fails if it cannot be
    /// reached within the connect timeout.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(RedisOptions::new(url)).await
    }

    /// Connects with explicit options.
    pub async fn connect_with(options: RedisOptions) -> Result<Self, Error> {
        let command_timeout = options.command_timeout();
        let (client, conn) = connection::connect(&options).await?;
        Ok(Self {
            conn,
            client,
            command_timeout,
        })
    }

    /// A handle on the shared connection, for commands of a keygate module.
    pub(crate) fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// The client, for dedicated connections.
    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Runs one backend operation under the command timeout.
    pub(crate) async fn bounded<T>(
        &self,
        operation: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.command_timeout, operation).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(BackendError::Timeout(self.command_timeout).into()),
        }
    }
}

/// Declares a Lua script kept in `lua/<name>.lua`, hashed once.
macro_rules! lua_script {
    ($name:ident, $file:literal) => {
        pub(crate) static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(include_str!(concat!("lua/", $file))));
    };
}

lua_script!(SESSION_INSERT, "session_insert.lua");
lua_script!(SESSION_TOUCH, "session_touch.lua");
lua_script!(SESSION_REPLACE_HASH, "session_replace_hash.lua");
lua_script!(SESSION_UPDATE, "session_update.lua");
lua_script!(CODE_ISSUE, "code_issue.lua");
lua_script!(CODE_REVOKE, "code_revoke.lua");
lua_script!(CODE_CHECK, "code_check.lua");
lua_script!(LOCK_ACQUIRE, "lock_acquire.lua");
lua_script!(LOCK_RELEASE, "lock_release.lua");
lua_script!(LOCK_RENEW, "lock_renew.lua");
lua_script!(SECKILL_LOAD, "seckill_load.lua");
lua_script!(SECKILL_ORDER, "seckill_order.lua");
lua_script!(SECKILL_DEAD_LETTER, "seckill_dead_letter.lua");

/// Whether a Redis error says the key holds another type than the command expects.
/// (Pipelines report server errors per command, so look at each.)
pub(crate) fn is_wrong_type(e: &redis::RedisError) -> bool {
    e.clone()
        .into_server_errors()
        .is_some_and(|errors| errors.iter().any(|(_, e)| e.code() == "WRONGTYPE"))
}
