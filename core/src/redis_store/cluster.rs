//! Redis Cluster: the shared cluster connection and the dedicated ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{ErrorKind, RedisError, RedisResult};

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

/// The builder both cluster clients share: timeouts, and retries short enough to fit in
/// a command timeout (the redis crate's default waits over a second between retries).
fn builder(seeds: &[String], connect_timeout: Duration) -> redis::cluster::ClusterClientBuilder {
    ClusterClient::builder(seeds.iter().map(String::as_str))
        .connection_timeout(connect_timeout)
        .retries(8)
        .min_retry_wait(10)
        .max_retry_wait(250)
        .retry_wait_formula(10, 2)
}

/// Connects to the cluster through its seed nodes.
pub(super) async fn connect(
    seeds: &[String],
    connect_timeout: Duration,
    command_timeout: Duration,
) -> Result<(ClusterConnection, ClusterNodes), Error> {
    if seeds.is_empty() {
        return Err(Error::Config(
            "a cluster needs at least one seed URL".into(),
        ));
    }
    let shared = builder(seeds, connect_timeout)
        .response_timeout(command_timeout)
        .build()?;
    // Blocking reads are bounded by their caller (block time plus command timeout).
    let readers = builder(seeds, connect_timeout).build()?;
    let clients = seeds
        .iter()
        .map(|url| redis::Client::open(url.as_str()))
        .collect::<RedisResult<Vec<_>>>()?;
    let conn = shared.get_async_connection().await?;
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
}
