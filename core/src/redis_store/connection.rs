//! Connection set-up and the connection handles shared by every operation: one Redis, a
//! Redis Cluster, or a master found through Sentinel.
// Shared infrastructure serves whichever capabilities are built; with some left out by
// their cargo features, parts of it go unused.
#![cfg_attr(
    not(all(feature = "codes", feature = "locks", feature = "flash-sale")),
    allow(dead_code, unused_imports)
)]

use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, RedisResult, Value};

#[cfg(feature = "cluster")]
use super::cluster::{self, ClusterNodes};
#[cfg(feature = "sentinel")]
use super::sentinel::{SentinelConn, SentinelTarget};
use super::tls::{self, TlsFiles};
use crate::error::{BackendError, Error};

/// Default time to establish a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time a command may take, reconnects included.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

/// Where the servers are.
#[derive(Clone)]
enum Topology {
    Single(String),
    #[cfg(feature = "cluster")]
    Cluster(Vec<String>),
    #[cfg(feature = "sentinel")]
    Sentinel(SentinelTarget),
}

/// How to reach Redis: one server ([`new`](Self::new)), a Redis Cluster (`cluster`, with
/// the `cluster` feature) or the master of a Sentinel-managed group (`sentinel`, with the
/// `sentinel` feature). Everything else in keygate is the same in the three modes.
///
/// URLs carry user, password and database: `redis://:secret@127.0.0.1:6379/0`,
/// `redis://user:secret@host/2` (an ACL user), `redis+unix:///path`.
///
/// # TLS
///
/// `rediss://host:port` connects with TLS (keygate's `tls-rustls` feature, on by default,
/// or `tls-native-tls`), in all three modes: a single server, every cluster seed and the
/// nodes discovered from it, and in Sentinel mode the sentinels (when their URLs are
/// `rediss://`) and the master they name. The server's certificate is verified against
/// the platform's roots, or only against a private CA given with
/// [`with_ca_cert_pem`](Self::with_ca_cert_pem); servers that require client
/// certificates (mutual TLS, `tls-auth-clients yes`) get the one given with
/// [`with_client_cert_pem`](Self::with_client_cert_pem). A wrong CA, an expired or
/// unknown certificate, a missing client certificate or a plain-text server behind a
/// `rediss://` URL fail the connect within the connect timeout, with the TLS error.
///
/// `rediss://host:port/#insecure` turns verification off: anyone on the network path can
/// then read and change sessions. It exists for throw-away set-ups only; keygate logs a
/// warning at every connect that uses it.
///
/// With `tls-native-tls` alone (no `tls-rustls`), a private CA and client certificates
/// work for a single server only (given for a cluster or Sentinel they are a configuration
/// error); without them all three modes trust the system's store.
///
/// ```no_run
/// # async fn run() -> Result<(), keygate::Error> {
/// use keygate::{RedisOptions, RedisStore};
/// // One server.
/// let single = RedisStore::connect_with(RedisOptions::new("redis://127.0.0.1:6379")).await?;
/// // A cluster: any reachable nodes as seeds; the rest of the topology is discovered.
/// let cluster = RedisStore::connect_with(RedisOptions::cluster([
///     "redis://10.0.0.1:7000",
///     "redis://10.0.0.2:7000",
/// ]))
/// .await?;
/// // Sentinel: the master's name and the sentinels' addresses.
/// let sentinel = RedisStore::connect_with(
///     RedisOptions::sentinel("mymaster", ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379"])
///         .with_master_password("secret"),
/// )
/// .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisOptions {
    topology: Topology,
    tls: TlsFiles,
    connect_timeout: Duration,
    command_timeout: Duration,
}

impl std::fmt::Debug for RedisOptions {
    // URLs may hold passwords.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.topology {
            Topology::Single(_) => "single",
            #[cfg(feature = "cluster")]
            Topology::Cluster(_) => "cluster",
            #[cfg(feature = "sentinel")]
            Topology::Sentinel(_) => "sentinel",
        };
        f.debug_struct("RedisOptions")
            .field("mode", &mode)
            .field("urls", &"<redacted>")
            .field("ca_cert", &self.tls.ca.as_ref().map(|_| "<set>"))
            .field(
                "client_cert",
                &self.tls.client.as_ref().map(|_| "<redacted>"),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

impl RedisOptions {
    fn with_topology(topology: Topology) -> Self {
        Self {
            topology,
            tls: TlsFiles::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }

    /// One Redis server at this URL, with the default timeouts (connect 2 s, command 1 s).
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_topology(Topology::Single(url.into()))
    }

    /// A Redis Cluster reached through these seed nodes (any subset of its nodes; the rest
    /// of the topology is discovered, and followed through resharding and failovers with
    /// the redis crate's `MOVED`/`ASK` handling and reconnects). Credentials come from the
    /// seed URLs and must be the same on all of them; a database number must be 0.
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub fn cluster(seed_urls: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self::with_topology(Topology::Cluster(
            seed_urls.into_iter().map(Into::into).collect(),
        ))
    }

    /// The master named `master_name` of a group watched by these sentinels
    /// (`redis://host:26379`, with the sentinels' own password if they have one). The
    /// master's address is asked from the sentinels at connect time and again whenever the
    /// connection to it fails or it answers as a replica, so a failover is followed without
    /// rebuilding the store. Credentials and database of the master itself are set with
    /// [`with_master_password`](Self::with_master_password),
    /// [`with_master_username`](Self::with_master_username) and
    /// [`with_master_database`](Self::with_master_database).
    #[cfg(feature = "sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sentinel")))]
    pub fn sentinel(
        master_name: impl Into<String>,
        sentinel_urls: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self::with_topology(Topology::Sentinel(SentinelTarget::new(
            master_name.into(),
            sentinel_urls.into_iter().map(Into::into).collect(),
        )))
    }

    /// Sentinel mode: the password of the master (`requirepass`). Ignored in other modes,
    /// where the URL carries it.
    #[cfg(feature = "sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sentinel")))]
    pub fn with_master_password(mut self, password: impl Into<String>) -> Self {
        if let Topology::Sentinel(target) = &mut self.topology {
            target.password = Some(password.into());
        }
        self
    }

    /// Sentinel mode: the ACL user on the master. Ignored in other modes.
    #[cfg(feature = "sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sentinel")))]
    pub fn with_master_username(mut self, username: impl Into<String>) -> Self {
        if let Topology::Sentinel(target) = &mut self.topology {
            target.username = Some(username.into());
        }
        self
    }

    /// Sentinel mode: the database number on the master (default 0). Ignored in other
    /// modes.
    #[cfg(feature = "sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sentinel")))]
    pub fn with_master_database(mut self, db: i64) -> Self {
        if let Topology::Sentinel(target) = &mut self.topology {
            target.db = db;
        }
        self
    }

    /// Sentinel mode: whether the connection to the master uses TLS. By default it does
    /// when the sentinels' URLs are `rediss://` (and skips verification when they carry
    /// `#insecure`); set it when the sentinels and the data nodes differ.
    #[cfg(all(
        feature = "sentinel",
        any(feature = "tls-rustls", feature = "tls-native-tls")
    ))]
    #[cfg_attr(
        docsrs,
        doc(cfg(all(
            feature = "sentinel",
            any(feature = "tls-rustls", feature = "tls-native-tls")
        )))
    )]
    pub fn with_master_tls(mut self, tls: bool) -> Self {
        if let Topology::Sentinel(target) = &mut self.topology {
            target.master_tls = Some(tls);
        }
        self
    }

    /// Trusts only this CA (PEM: one certificate or a bundle) for `rediss://` servers,
    /// instead of the platform's roots: the way to reach servers whose certificates come
    /// from a private CA (most managed Redis offerings). Applies to every server of the
    /// mode: the single server, every cluster node, the sentinels and the master.
    /// Certificates with a `redis://` (plain) URL are a configuration error.
    #[cfg(any(feature = "tls-rustls", feature = "tls-native-tls"))]
    #[cfg_attr(
        docsrs,
        doc(cfg(any(feature = "tls-rustls", feature = "tls-native-tls")))
    )]
    pub fn with_ca_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.ca = Some(pem.into());
        self
    }

    /// Presents this client certificate (PEM chain) and private key (PEM, PKCS#8, PKCS#1
    /// or SEC1) to servers that require one (mutual TLS, `tls-auth-clients yes`). The key
    /// is never logged or printed.
    #[cfg(any(feature = "tls-rustls", feature = "tls-native-tls"))]
    #[cfg_attr(
        docsrs,
        doc(cfg(any(feature = "tls-rustls", feature = "tls-native-tls")))
    )]
    pub fn with_client_cert_pem(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls.client = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Whether any URL of these options asks for TLS (`rediss://`).
    pub fn uses_tls(&self) -> bool {
        self.urls()
            .into_iter()
            .any(|url| url.trim_start().to_ascii_lowercase().starts_with("rediss:"))
    }

    /// Every URL of the options.
    fn urls(&self) -> Vec<&str> {
        match &self.topology {
            Topology::Single(url) => vec![url.as_str()],
            #[cfg(feature = "cluster")]
            Topology::Cluster(seeds) => seeds.iter().map(String::as_str).collect(),
            #[cfg(feature = "sentinel")]
            Topology::Sentinel(target) => target.sentinel_urls().collect(),
        }
    }

    /// Time allowed to establish a connection (also bounds each reconnect attempt, and in
    /// Sentinel mode each lookup of the master).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for one operation, including waiting for a reconnect (and on a cluster
    /// for redirections and retries). Past it the operation fails with a backend error
    /// (adapters answer 503).
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

    /// Whether these options describe a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        match &self.topology {
            #[cfg(feature = "cluster")]
            Topology::Cluster(_) => true,
            _ => false,
        }
    }
}

/// The connection every operation clones (an `Arc` inside).
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    /// One node's connection that must not reconnect by itself (the near cache's tracking
    /// connection: a new connection would not track).
    Node(MultiplexedConnection),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
    #[cfg(feature = "sentinel")]
    Sentinel(SentinelConn),
}

impl Conn {
    /// Whether a pipeline may only hold commands of one hash slot.
    pub(crate) fn is_cluster(&self) -> bool {
        match self {
            #[cfg(feature = "cluster")]
            Conn::Cluster(_) => true,
            _ => false,
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Node(c) => c.req_packed_command(cmd),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => c.req_packed_command(cmd),
            #[cfg(feature = "sentinel")]
            Conn::Sentinel(c) => c.req_packed_command(cmd),
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
            Conn::Node(c) => c.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "sentinel")]
            Conn::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Node(c) => c.get_db(),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => c.get_db(),
            #[cfg(feature = "sentinel")]
            Conn::Sentinel(c) => c.get_db(),
        }
    }
}

/// Where dedicated connections come from: blocking commands (stream reads, pub/sub waits)
/// must not stall the requests pipelined on the shared connection.
#[derive(Clone)]
pub(crate) enum Dedicated {
    // Boxed: with TLS parameters a client is large.
    Single(Box<redis::Client>),
    #[cfg(feature = "cluster")]
    Cluster(Box<ClusterNodes>),
    #[cfg(feature = "sentinel")]
    Sentinel(SentinelConn),
}

/// Settings of a dedicated connection for blocking reads: no response timeout (the caller
/// bounds each read by its block time).
fn blocking_config(connect_timeout: Duration) -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(None)
}

impl Dedicated {
    /// A pub/sub connection that receives every `PUBLISH`: the server itself, any node of
    /// a cluster (`PUBLISH` is broadcast cluster-wide), or the current master.
    pub(crate) async fn pubsub(&self) -> RedisResult<redis::aio::PubSub> {
        match self {
            Dedicated::Single(client) => client.get_async_pubsub().await,
            #[cfg(feature = "cluster")]
            Dedicated::Cluster(nodes) => nodes.pubsub().await,
            #[cfg(feature = "sentinel")]
            Dedicated::Sentinel(sentinel) => sentinel.client().await?.get_async_pubsub().await,
        }
    }

    /// A connection of its own for blocking reads, reaching every key (on a cluster: a
    /// cluster connection of its own, routing each read to the node of its key's slot).
    pub(crate) async fn blocking(&self, connect_timeout: Duration) -> RedisResult<BlockingConn> {
        let config = blocking_config(connect_timeout);
        match self {
            Dedicated::Single(client) => Ok(BlockingConn::Node(
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?,
            )),
            #[cfg(feature = "cluster")]
            Dedicated::Cluster(nodes) => Ok(BlockingConn::Cluster(nodes.blocking().await?)),
            #[cfg(feature = "sentinel")]
            Dedicated::Sentinel(sentinel) => Ok(BlockingConn::Node(
                sentinel
                    .client()
                    .await?
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?,
            )),
        }
    }
}

/// A dedicated connection for blocking commands (stream reads, `WAIT`).
pub(crate) enum BlockingConn {
    Node(MultiplexedConnection),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl BlockingConn {
    /// `WAIT replicas timeout` on the connection that wrote `key` (on a cluster: the
    /// connection to the master of `key`'s slot): how many replicas acknowledged every
    /// write sent on it so far.
    #[cfg_attr(not(feature = "cluster"), allow(unused_variables))]
    pub(crate) async fn wait_for_replicas(
        &mut self,
        key: &str,
        replicas: u32,
        timeout_ms: u64,
    ) -> RedisResult<u32> {
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(replicas).arg(timeout_ms);
        match self {
            BlockingConn::Node(c) => cmd.query_async(c).await,
            #[cfg(feature = "cluster")]
            BlockingConn::Cluster(c) => {
                use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
                // Routed by key: the cluster client would send a keyless WAIT to every
                // master and report the smallest count.
                let route = Route::with_key(key, SlotAddr::Master);
                let reply = c
                    .route_command(
                        cmd,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?;
                Ok(redis::from_redis_value(reply)?)
            }
        }
    }
}

impl ConnectionLike for BlockingConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            BlockingConn::Node(c) => c.req_packed_command(cmd),
            #[cfg(feature = "cluster")]
            BlockingConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            BlockingConn::Node(c) => c.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "cluster")]
            BlockingConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            BlockingConn::Node(c) => c.get_db(),
            #[cfg(feature = "cluster")]
            BlockingConn::Cluster(c) => c.get_db(),
        }
    }
}

/// Connects in the configured mode, within the connect timeout.
pub(super) async fn connect(options: &RedisOptions) -> Result<(Conn, Dedicated), Error> {
    options.tls.check()?;
    if options.uses_tls() || options.tls.is_set() {
        tls::ensure_crypto_provider();
    }
    tls::warn_if_insecure(options.urls());
    let connecting = async {
        match &options.topology {
            Topology::Single(url) => connect_single(url, options).await,
            #[cfg(feature = "cluster")]
            Topology::Cluster(seeds) => {
                let (conn, nodes) = cluster::connect(
                    seeds,
                    &options.tls,
                    options.connect_timeout,
                    options.command_timeout,
                )
                .await?;
                Ok((Conn::Cluster(conn), Dedicated::Cluster(Box::new(nodes))))
            }
            #[cfg(feature = "sentinel")]
            Topology::Sentinel(target) => {
                let conn = SentinelConn::connect(
                    target,
                    &options.tls,
                    options.connect_timeout,
                    options.command_timeout,
                )
                .await?;
                Ok((Conn::Sentinel(conn.clone()), Dedicated::Sentinel(conn)))
            }
        }
    };
    if !options.uses_tls() {
        return tokio::time::timeout(options.connect_timeout, connecting)
            .await
            .map_err(|_| BackendError::Timeout(options.connect_timeout))?;
    }
    // A plain-text server behind a `rediss://` URL never answers the TLS handshake (it
    // waits for the end of an inline command). Keep a quarter of the connect timeout to
    // find that out, so the error says so instead of only "timed out".
    let handshake = options.connect_timeout.mul_f64(0.75);
    match tokio::time::timeout(handshake, connecting).await {
        Ok(result) => result,
        Err(_) => {
            let probe = options.connect_timeout.saturating_sub(handshake);
            if let Some((host, port)) = options.urls().first().and_then(|u| tls::tls_address(u))
                && tls::answers_plain_text(&host, port, probe).await
            {
                return Err(BackendError::NotTls(format!("{host}:{port}")).into());
            }
            Err(BackendError::Timeout(options.connect_timeout).into())
        }
    }
}

async fn connect_single(url: &str, options: &RedisOptions) -> Result<(Conn, Dedicated), Error> {
    let client = tls::client(url, &options.tls)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(options.connect_timeout))
        // No response timeout of its own: every command on the shared connection runs
        // under `RedisStore::bounded`, whose one timer also covers the wait for a
        // reconnect (which the manager's would not); a second timer per command would only
        // cost time on the request path.
        .set_response_timeout(None)
        // Reconnects run in the background; a request never waits longer than the command
        // timeout for one, so a short backoff suffices.
        .set_number_of_retries(3)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    let manager = ConnectionManager::new_with_config(client.clone(), config).await?;
    Ok((Conn::Single(manager), Dedicated::Single(Box::new(client))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_urls() {
        let single = RedisOptions::new("redis://:secret@127.0.0.1:6379/0");
        assert!(!format!("{single:?}").contains("secret"));
        assert!(!single.is_cluster());
        #[cfg(feature = "cluster")]
        {
            let cluster = RedisOptions::cluster(["redis://:secret@10.0.0.1:7000"]);
            let debug = format!("{cluster:?}");
            assert!(!debug.contains("secret") && debug.contains("cluster"));
            assert!(cluster.is_cluster());
        }
        #[cfg(feature = "sentinel")]
        {
            let sentinel = RedisOptions::sentinel("mymaster", ["redis://:secret@10.0.0.1:26379"])
                .with_master_password("secret");
            let debug = format!("{sentinel:?}");
            assert!(!debug.contains("secret") && debug.contains("sentinel"));
        }
    }

    #[cfg(feature = "cluster")]
    #[tokio::test]
    async fn a_cluster_needs_seeds() {
        let empty: [&str; 0] = [];
        let error = connect(&RedisOptions::cluster(empty)).await.err();
        assert!(matches!(error, Some(Error::Config(_))), "{error:?}");
    }
}
