//! The Redis backend: one multiplexed, auto-reconnecting connection shared by all requests,
//! to one server, a Redis Cluster or a Sentinel-managed master.
// Shared infrastructure serves whichever capabilities are built; with some left out by
// their cargo features, parts of it go unused.
#![cfg_attr(
    not(all(feature = "codes", feature = "locks", feature = "flash-sale")),
    allow(dead_code, unused_imports)
)]

#[cfg(feature = "cluster")]
mod cluster;
pub(crate) mod connection;
mod env;
mod locals;
mod scan;
pub(crate) mod script;
#[cfg(feature = "sentinel")]
mod sentinel;
mod tls;
pub(crate) mod tracking;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::{Cmd, FromRedisValue, RedisResult};

pub use connection::RedisOptions;
use connection::{Conn, Dedicated};
pub use env::{RedisEnv, RedisTarget, RedisTlsFiles, SentinelSettings};
use locals::Locals;
pub use scan::ScanProgress;
use script::LuaScript;

use crate::error::{BackendError, Error};

/// A Redis backend for sessions (and the other keygate capabilities).
///
/// Cheap to clone: clones share one multiplexed connection, which pipelines concurrent
/// commands and reconnects by itself after the server went away. Every operation is bounded
/// by the command timeout ([`RedisOptions::with_command_timeout`]) and fails with
/// [`Error::Backend`] past it, whatever the connection is doing.
///
/// The same store runs on one server, on a Redis Cluster (`RedisOptions::cluster`) and on
/// a Sentinel-managed master (`RedisOptions::sentinel`); only the options differ. On a
/// cluster every script touches one hash slot (keys that belong together share a hash
/// tag), and operations over keys of several slots send one command per key.
///
/// ```no_run
/// # async fn run() -> Result<(), keygate::Error> {
/// use keygate::RedisStore;
/// // Password and database number as in the URL (the Node seed's `auth_pass`, `select(0)`).
/// let store = RedisStore::connect("redis://:222222@127.0.0.1:6379/0").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    /// For dedicated connections (pub/sub waits, blocking stream reads).
    dedicated: Dedicated,
    /// State the capabilities keep per connection (see [`local`](Self::local)).
    locals: Arc<Locals>,
    pub(crate) command_timeout: Duration,
    pub(crate) connect_timeout: Duration,
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

    /// Connects with explicit options: one server, a cluster or a Sentinel-managed master.
    /// Fails if no server answers within the connect timeout.
    pub async fn connect_with(options: RedisOptions) -> Result<Self, Error> {
        let (conn, dedicated) = connection::connect(&options).await?;
        let store = Self {
            conn,
            dedicated,
            locals: Arc::default(),
            command_timeout: options.command_timeout(),
            connect_timeout: options.connect_timeout(),
        };
        store.preload_request_path_scripts().await;
        Ok(store)
    }

    /// Loads `script` into the server's script cache, so that its first call is one round
    /// trip too (a capability preloads the script of its request path). Best effort: on a
    /// cluster, or when it fails, the script is loaded by its first call (`EVALSHA`, then
    /// `EVAL`), as after any restart or failover.
    pub(crate) async fn preload(&self, script: &LuaScript) {
        if self.conn.is_cluster() {
            return;
        }
        let mut cmd = redis::cmd("SCRIPT");
        cmd.arg("LOAD").arg(script.source());
        let mut conn = self.conn();
        if let Err(error) = self.bounded(cmd.query_async::<String>(&mut conn)).await {
            tracing::debug!(%error, "preloading a script failed; it loads on first use");
        }
    }

    /// The same store over another connection (its timeouts, its dedicated connections).
    pub(crate) fn on_connection(&self, conn: Conn) -> Self {
        Self {
            conn,
            dedicated: self.dedicated.clone(),
            locals: Arc::default(),
            command_timeout: self.command_timeout,
            connect_timeout: self.connect_timeout,
        }
    }

    /// Whether this store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.conn.is_cluster()
    }

    /// Whether one script may touch both keys: always on one server, on a cluster when
    /// they hash to the same slot.
    pub(crate) fn same_slot(&self, a: &str, b: &str) -> bool {
        #[cfg(feature = "cluster")]
        if self.conn.is_cluster() {
            use redis::cluster_routing::Slot;
            return Slot::for_key(a) == Slot::for_key(b);
        }
        let _ = (a, b);
        true
    }

    /// A handle on the shared connection, for commands of a keygate module.
    pub(crate) fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// Where dedicated connections come from.
    pub(crate) fn dedicated(&self) -> &Dedicated {
        &self.dedicated
    }

    /// The state of type `S` this store keeps for a capability (for example idle
    /// dedicated connections), created on first use; a store over another connection
    /// ([`on_connection`](Self::on_connection)) starts without any.
    pub(crate) fn local<S: Default + Send + Sync + 'static>(&self) -> Arc<S> {
        self.locals.get_or_default()
    }

    /// Runs independent commands and returns their replies in order: one pipeline on a
    /// single server, one command each (concurrently, on the multiplexed connection) on a
    /// cluster, where a pipeline must stay within one hash slot and these need not.
    pub(crate) async fn query_each<T: FromRedisValue>(
        &self,
        cmds: &[Cmd],
    ) -> Result<Vec<T>, Error> {
        if !self.conn.is_cluster() {
            let mut pipe = redis::pipe();
            for cmd in cmds {
                pipe.add_command(cmd.clone());
            }
            let mut conn = self.conn();
            return self.bounded(pipe.query_async(&mut conn)).await;
        }
        let each = cmds.iter().map(|cmd| {
            let mut conn = self.conn();
            async move { cmd.query_async::<T>(&mut conn).await }
        });
        self.bounded(futures_util::future::try_join_all(each)).await
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

/// Declares a Lua script kept in the invoking capability's `lua/<name>.lua`, hashed once.
macro_rules! lua_script {
    ($name:ident, $file:literal) => {
        pub(crate) static $name: ::std::sync::LazyLock<$crate::redis_store::script::LuaScript> =
            ::std::sync::LazyLock::new(|| {
                $crate::redis_store::script::LuaScript::new(include_str!(concat!("lua/", $file)))
            });
    };
}
pub(crate) use lua_script;

/// Whether a Redis error says the key holds another type than the command expects.
/// (Pipelines report server errors per command, so look at each.)
pub(crate) fn is_wrong_type(e: &redis::RedisError) -> bool {
    e.clone()
        .into_server_errors()
        .is_some_and(|errors| errors.iter().any(|(_, e)| e.code() == "WRONGTYPE"))
}
