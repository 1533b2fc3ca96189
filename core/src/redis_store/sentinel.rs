//! Sentinel: a connection to the current master that follows failovers.
//!
//! The master's address is asked from the sentinels (and its role checked) at connect time
//! and again after the connection to it failed: an I/O error, a timeout, or a `READONLY`
//! reply (the node we talk to was demoted to a replica). The command that met the failure
//! fails (as with a single server's reconnect, commands are never replayed: a script may
//! have run); the next one goes to the master the sentinels name then.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionInfo, ErrorKind, Pipeline, RedisError, RedisFuture,
    RedisResult, TlsMode, Value,
};
use tokio::time::Instant;

use super::tls::{self, TlsFiles};
use crate::error::Error;

/// After a failed lookup, requests fail fast for this long instead of asking the sentinels
/// again (during a failover every request would otherwise run its own lookup).
const LOOKUP_BACKOFF: Duration = Duration::from_millis(100);

/// The configured master name, sentinels, and the master's credentials.
#[derive(Clone)]
pub(crate) struct SentinelTarget {
    master: String,
    sentinels: Vec<String>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) db: i64,
    /// Whether the master connection uses TLS; `None`: as the sentinels' URLs do.
    pub(crate) master_tls: Option<bool>,
}

impl SentinelTarget {
    pub(crate) fn new(master: String, sentinels: Vec<String>) -> Self {
        Self {
            master,
            sentinels,
            username: None,
            password: None,
            db: 0,
            master_tls: None,
        }
    }

    /// The sentinels' URLs.
    pub(crate) fn sentinel_urls(&self) -> impl Iterator<Item = &str> {
        self.sentinels.iter().map(String::as_str)
    }
}

/// The shared connection in Sentinel mode. Cheap to clone.
#[derive(Clone)]
pub(crate) struct SentinelConn {
    inner: Arc<Inner>,
}

struct Inner {
    /// Lookups, one at a time.
    lookup: tokio::sync::Mutex<Lookup>,
    /// The connection to the master found last, if it has not failed since.
    current: Mutex<Option<Current>>,
    generation: AtomicU64,
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
    db: i64,
}

struct Lookup {
    sentinel: SentinelClient,
    failed_at: Option<Instant>,
}

#[derive(Clone)]
struct Current {
    generation: u64,
    client: redis::Client,
    conn: MultiplexedConnection,
}

fn lookup_error(message: &'static str) -> RedisError {
    RedisError::from((ErrorKind::Io, message))
}

/// Whether the error means the connection is not to a usable master any more.
fn is_stale(e: &RedisError) -> bool {
    let readonly = e
        .clone()
        .into_server_errors()
        .is_some_and(|errors| errors.iter().any(|(_, e)| e.code() == "READONLY"));
    readonly
        || e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}

/// The client that asks the sentinels for the master: TLS to the sentinels as their URLs
/// say (with the private CA and client certificate, if given), and to the master as
/// [`SentinelTarget::master_tls`] says (by default: as the sentinels).
fn sentinel_client(target: &SentinelTarget, tls: &TlsFiles) -> Result<SentinelClient, Error> {
    let sentinels = target
        .sentinels
        .iter()
        .map(|url| Ok(tls::client(url, tls)?.get_connection_info().clone()))
        .collect::<Result<Vec<ConnectionInfo>, Error>>()?;
    let sentinels_tls = sentinels.iter().any(tls::is_tls);
    if sentinels_tls && !sentinels.iter().all(tls::is_tls) {
        return Err(Error::Config(
            "the sentinel URLs mix redis:// and rediss://".into(),
        ));
    }
    let mut builder = SentinelClientBuilder::new(
        sentinels.iter().map(|info| info.addr().clone()),
        &target.master,
        SentinelServerType::Master,
    )?
    .set_client_to_redis_db(target.db);
    if let Some(username) = &target.username {
        builder = builder.set_client_to_redis_username(username);
    }
    if let Some(password) = &target.password {
        builder = builder.set_client_to_redis_password(password);
    }
    // The sentinels' own credentials: the builder takes one set for all of them.
    if let Some(settings) = sentinels
        .iter()
        .map(ConnectionInfo::redis_settings)
        .find(|s| s.password().is_some())
    {
        if let Some(username) = settings.username() {
            builder = builder.set_client_to_sentinel_username(username);
        }
        if let Some(password) = settings.password() {
            builder = builder.set_client_to_sentinel_password(password);
        }
    }
    if target.master_tls.unwrap_or(sentinels_tls) {
        let mode = if sentinels.iter().any(tls::is_insecure) {
            TlsMode::Insecure
        } else {
            TlsMode::Secure
        };
        builder = builder.set_client_to_redis_tls_mode(mode);
        if tls.is_set() {
            #[cfg(feature = "tls-rustls")]
            {
                builder = builder.set_client_to_redis_certificates(tls.certificates());
            }
            #[cfg(not(feature = "tls-rustls"))]
            return Err(Error::Config(
                "a private CA or client certificate for a Sentinel-managed master needs \
                 keygate's `tls-rustls` feature"
                    .into(),
            ));
        }
    }
    Ok(builder.build()?)
}

impl SentinelConn {
    /// Finds the master through the sentinels and connects to it.
    pub(super) async fn connect(
        target: &SentinelTarget,
        tls: &TlsFiles,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Self, Error> {
        if target.sentinels.is_empty() {
            return Err(Error::Config(
                "Sentinel mode needs at least one sentinel URL".into(),
            ));
        }
        let sentinel = sentinel_client(target, tls)?;
        let this = Self {
            inner: Arc::new(Inner {
                lookup: tokio::sync::Mutex::new(Lookup {
                    sentinel,
                    failed_at: None,
                }),
                current: Mutex::new(None),
                generation: AtomicU64::new(0),
                config: AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(command_timeout)),
                connect_timeout,
                db: target.db,
            }),
        };
        this.current().await?;
        Ok(this)
    }

    fn cached(&self) -> Option<Current> {
        self.inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The connection to the current master, looked up if there is none.
    async fn current(&self) -> RedisResult<Current> {
        if let Some(current) = self.cached() {
            return Ok(current);
        }
        let mut lookup = self.inner.lookup.lock().await;
        // Another request may have reconnected while this one waited.
        if let Some(current) = self.cached() {
            return Ok(current);
        }
        if lookup
            .failed_at
            .is_some_and(|at| at.elapsed() < LOOKUP_BACKOFF)
        {
            return Err(lookup_error("no reachable master (looked up moments ago)"));
        }
        let found = async {
            let client = lookup.sentinel.async_get_client().await?;
            let conn = client
                .get_multiplexed_async_connection_with_config(&self.inner.config)
                .await?;
            Ok::<_, RedisError>((client, conn))
        };
        let found = match tokio::time::timeout(self.inner.connect_timeout, found).await {
            Ok(found) => found,
            Err(_) => Err(lookup_error("timed out looking up the master")),
        };
        match found {
            Ok((client, conn)) => {
                lookup.failed_at = None;
                let current = Current {
                    generation: self.inner.generation.fetch_add(1, Ordering::Relaxed) + 1,
                    client,
                    conn,
                };
                *self
                    .inner
                    .current
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(current.clone());
                Ok(current)
            }
            Err(e) => {
                lookup.failed_at = Some(Instant::now());
                tracing::warn!(error = %e, "no master found through the sentinels");
                Err(e)
            }
        }
    }

    /// Drops the connection of this generation, so the next request looks the master up.
    fn forget(&self, generation: u64) {
        let mut current = self
            .inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|c| c.generation == generation) {
            *current = None;
        }
    }

    fn check<T>(&self, generation: u64, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &result
            && is_stale(e)
        {
            tracing::debug!(error = %e, "master connection failed; asking the sentinels next time");
            self.forget(generation);
        }
        result
    }

    /// A client for the master the sentinels name now, not the cached one: the near
    /// cache's tracking follows a failover even while no request fails on the old master.
    /// When it differs from the cached master, the cached connection is dropped too.
    pub(crate) async fn client_now(&self) -> RedisResult<redis::Client> {
        let client = {
            let mut lookup = self.inner.lookup.lock().await;
            match tokio::time::timeout(
                self.inner.connect_timeout,
                lookup.sentinel.async_get_client(),
            )
            .await
            {
                Ok(found) => found?,
                Err(_) => return Err(lookup_error("timed out looking up the master")),
            }
        };
        if let Some(current) = self.cached()
            && current.client.get_connection_info().addr() != client.get_connection_info().addr()
        {
            self.forget(current.generation);
        }
        Ok(client)
    }

    /// A client for the current master, for dedicated connections.
    pub(crate) async fn client(&self) -> RedisResult<redis::Client> {
        Ok(self.current().await?.client)
    }
}

impl ConnectionLike for SentinelConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut current = self.current().await?;
            let result = current.conn.req_packed_command(cmd).await;
            self.check(current.generation, result)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut current = self.current().await?;
            let result = current
                .conn
                .req_packed_commands(pipeline, offset, count)
                .await;
            self.check(current.generation, result)
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.db
    }
}
