//! Redis Cluster: the shared cluster connection and the dedicated ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{ErrorKind, RedisError, RedisResult};

use super::tls::{self, TlsFiles};
use crate::error::Error;

/// Where dedicated connections to a cluster come from.
#[derive(Clone)]
pub(crate) struct ClusterNodes {
    /// One client per seed node, for pub/sub.
    seeds: Arc<[redis::Client]>,
    /// The seed to try first for the next subscription (spreads subscribers).
    next: Arc<AtomicUsize>,
    /// Cluster connections without a response timeout, for blocking stream reads.
    readers: ClusterClient,
    connect_timeout: Duration,
}

/// The builder both cluster clients share: TLS certificates, timeouts, and retries short
/// enough to fit in a command timeout (the redis crate's default waits over a second
/// between retries). The TLS mode comes from the seeds' scheme (`rediss://`) and applies
/// to every node discovered through them.
#[cfg_attr(not(feature = "tls-rustls"), allow(unused_variables))]
fn builder(
    seeds: &[String],
    tls: &TlsFiles,
    connect_timeout: Duration,
) -> Result<redis::cluster::ClusterClientBuilder, Error> {
    let builder = ClusterClient::builder(seeds.iter().map(String::as_str))
        .connection_timeout(connect_timeout)
        .retries(8)
        .min_retry_wait(10)
        .max_retry_wait(250)
        .retry_wait_formula(10, 2);
    if !tls.is_set() {
        return Ok(builder);
    }
    #[cfg(feature = "tls-rustls")]
    {
        Ok(builder.certs(tls.certificates()))
    }
    #[cfg(not(feature = "tls-rustls"))]
    {
        Err(Error::Config(
            "a private CA or client certificate for a Redis Cluster needs keygate's \
             `tls-rustls` feature"
                .into(),
        ))
    }
}

/// Connects to the cluster through its seed nodes.
pub(super) async fn connect(
    seeds: &[String],
    tls: &TlsFiles,
    connect_timeout: Duration,
    command_timeout: Duration,
) -> Result<(ClusterConnection, ClusterNodes), Error> {
    if seeds.is_empty() {
        return Err(Error::Config(
            "a cluster needs at least one seed URL".into(),
        ));
    }
    let schemes: Vec<bool> = seeds
        .iter()
        .map(|url| tls::parse(url).map(|info| tls::is_tls(&info)))
        .collect::<Result<_, _>>()?;
    if schemes.iter().any(|t| *t) && !schemes.iter().all(|t| *t) {
        return Err(Error::Config(
            "the cluster's seed URLs mix redis:// and rediss://".into(),
        ));
    }
    let shared = builder(seeds, tls, connect_timeout)?
        .response_timeout(command_timeout)
        .build()?;
    // Blocking reads are bounded by their caller (block time plus command timeout).
    let readers = builder(seeds, tls, connect_timeout)?.build()?;
    let clients = seeds
        .iter()
        .map(|url| tls::client(url, tls))
        .collect::<Result<Vec<_>, _>>()?;
    let conn = match shared.get_async_connection().await {
        Ok(conn) => conn,
        // The cluster client reports "failed to create initial connections" and drops the
        // reason; ask one seed directly, so a TLS or authentication failure is named.
        Err(e) => {
            return Err(diagnose(&clients, connect_timeout)
                .await
                .unwrap_or(e)
                .into());
        }
    };
    Ok((
        conn,
        ClusterNodes {
            seeds: clients.into(),
            next: Arc::new(AtomicUsize::new(0)),
            readers,
            connect_timeout,
        },
    ))
}

/// Why the seeds cannot be reached, from a direct connection to each: the first error, or
/// `None` if one of them answers (the cluster itself is then the trouble).
async fn diagnose(seeds: &[redis::Client], connect_timeout: Duration) -> Option<RedisError> {
    let mut first = None;
    for client in seeds {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(connect_timeout));
        match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(_) => return None,
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    first
}

impl ClusterNodes {
    /// A pub/sub connection to the first seed node that answers. `PUBLISH` is broadcast to
    /// every node of a cluster, so any node receives every release message.
    pub(crate) async fn pubsub(&self) -> RedisResult<redis::aio::PubSub> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = None;
        for i in 0..self.seeds.len() {
            let Some(client) = self.seeds.get((start + i) % self.seeds.len()) else {
                continue;
            };
            match tokio::time::timeout(self.connect_timeout, client.get_async_pubsub()).await {
                Ok(Ok(pubsub)) => return Ok(pubsub),
                Ok(Err(e)) => last = Some(e),
                Err(_) => {
                    last = Some(RedisError::from((
                        ErrorKind::Io,
                        "timed out connecting to a cluster node",
                    )));
                }
            }
        }
        Err(last.unwrap_or_else(|| RedisError::from((ErrorKind::Io, "no cluster seed node"))))
    }

    /// A cluster connection of its own for blocking reads: each read goes to the node
    /// that owns its key's slot, and blocks no one else.
    pub(crate) async fn blocking(&self) -> RedisResult<ClusterConnection> {
        self.readers.get_async_connection().await
    }

    /// How to reach a node (credentials, TLS): the first seed's settings.
    pub(crate) fn seed_info(&self) -> Option<&redis::ConnectionInfo> {
        self.seeds.first().map(redis::Client::get_connection_info)
    }
}

/// One range of slots and the master that serves it, from `CLUSTER SLOTS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotRange {
    pub start: u16,
    pub end: u16,
    pub host: String,
    pub port: u16,
}

/// The cluster's slot map as a node answers `CLUSTER SLOTS` now.
pub(crate) async fn slot_map(
    conn: &mut redis::cluster_async::ClusterConnection,
) -> RedisResult<Vec<SlotRange>> {
    use redis::Value;
    use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
    let reply = conn
        .route_command(
            redis::cmd("CLUSTER").arg("SLOTS").to_owned(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await?;
    let malformed = || RedisError::from((ErrorKind::Parse, "unexpected CLUSTER SLOTS reply"));
    let Value::Array(ranges) = reply else {
        return Err(malformed());
    };
    let mut map = Vec::with_capacity(ranges.len());
    for range in ranges {
        let Value::Array(parts) = range else {
            return Err(malformed());
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (parts.first(), parts.get(1), parts.get(2))
        else {
            return Err(malformed());
        };
        let (Some(Value::BulkString(host)), Some(Value::Int(port))) =
            (master.first(), master.get(1))
        else {
            return Err(malformed());
        };
        map.push(SlotRange {
            start: u16::try_from(*start).map_err(|_| malformed())?,
            end: u16::try_from(*end).map_err(|_| malformed())?,
            host: String::from_utf8(host.clone()).map_err(|_| malformed())?,
            port: u16::try_from(*port).map_err(|_| malformed())?,
        });
    }
    map.sort_by_key(|range| range.start);
    Ok(map)
}

/// One slot of each master, from `CLUSTER SLOTS`: routing a command by such a slot reaches
/// that master through the cluster connection's own slot map (and its TLS settings).
pub(super) async fn one_slot_per_master(
    conn: &mut redis::cluster_async::ClusterConnection,
) -> RedisResult<Vec<u16>> {
    let mut masters: Vec<SlotRange> = Vec::new();
    for range in slot_map(conn).await? {
        if !masters
            .iter()
            .any(|m| m.host == range.host && m.port == range.port)
        {
            masters.push(range);
        }
    }
    Ok(masters.into_iter().map(|m| m.start).collect())
}

/// Runs `cmd` on the master that serves `slot`.
pub(super) async fn on_master_of(
    conn: &mut redis::cluster_async::ClusterConnection,
    slot: u16,
    cmd: redis::Cmd,
) -> RedisResult<redis::Value> {
    use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
    let route = Route::new(slot, SlotAddr::Master);
    conn.route_command(
        cmd,
        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
    )
    .await
}
