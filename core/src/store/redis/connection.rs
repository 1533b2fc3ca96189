//! Connection set-up and the connection handle shared by every operation.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::error::{BackendError, Error};

/// Default time to establish a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time a command may take, reconnects included.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

/// How to reach Redis.
///
/// The URL carries password and database: `redis://:secret@127.0.0.1:6379/0`,
/// `redis://user:secret@host/2`, `rediss://` for TLS (with the `tls` feature of the redis
/// crate), `redis+unix:///path`.
#[derive(Clone)]
pub struct RedisOptions {
    url: String,
    connect_timeout: Duration,
    command_timeout: Duration,
}

impl std::fmt::Debug for RedisOptions {
    // The URL may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &"<redacted>")
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

impl RedisOptions {
    /// Options for this URL with the default timeouts (connect 2 s, command 1 s).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }

    /// Time allowed to establish a connection (also bounds each reconnect attempt).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for one operation, including waiting for a reconnect. Past it the
    /// operation fails with a backend error (adapters answer 503).
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The command timeout.
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }
}

/// The connection every operation clones (an `Arc` inside).
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
        }
    }
}

pub(super) async fn connect(options: &RedisOptions) -> Result<(redis::Client, Conn), Error> {
    let client = redis::Client::open(options.url.as_str())?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(options.connect_timeout))
        .set_response_timeout(Some(options.command_timeout))
        // Reconnects run in the background; a request never waits longer than the command
        // timeout for one, so a short backoff suffices.
        .set_number_of_retries(3)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    let manager = tokio::time::timeout(
        options.connect_timeout,
        ConnectionManager::new_with_config(client.clone(), config),
    )
    .await
    .map_err(|_| BackendError::Timeout(options.connect_timeout))??;
    Ok((client, Conn::Single(manager)))
}
