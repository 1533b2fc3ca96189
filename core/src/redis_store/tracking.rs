//! Connections with server-assisted client-side caching (`CLIENT TRACKING` over RESP3), for
//! the session near cache and the session watchers: one per master, each told about every
//! change under a prefix ([`TrackingMode::Broadcast`], the near cache) or about changes to
//! the keys read on it ([`TrackingMode::Reads`], the watchers' own connections).
//!
//! Broadcasting mode (`BCAST PREFIX`) with `NOLOOP`: the server announces each change to a
//! key under the prefix, whoever makes it, except changes made on the tracking connection
//! itself. keygate's own TTL refreshes and cache fills go over that connection, so they do
//! not invalidate what this process caches, while every other writer (another instance, a
//! Node or Spring service, `redis-cli`, expiry, eviction) does. The default mode would
//! track only keys read on the connection, but any write there (a refresh is one) drops
//! the key from the server's tracking table, so each refresh would need a read in the same
//! transaction, and the table's limit (`tracking-table-max-keys`) would evict entries.

use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, ProtocolVersion, PushInfo};

use super::RedisStore;
use super::connection::{Conn, Dedicated};
use crate::error::{BackendError, Error};

/// Receives every push of a tracking connection (invalidations, and the library's own
/// `Disconnection` when the connection closes), synchronously on its reader.
pub(crate) type PushHandler = Arc<dyn Fn(PushInfo) + Send + Sync>;

/// A second user of tracking connections that someone else keeps up (the session watchers
/// on the near cache's connections): told what the owner hears and when tracking comes and
/// goes. Called synchronously on the connection's reader or the owner's task: keep it short.
pub(crate) trait TrackingListener: Send + Sync {
    /// Redis announced changes to these keys.
    fn changed(&self, keys: &[&str]);
    /// Any key may have changed (the server flushed).
    fn all_changed(&self);
    /// Tracking is up on new connections; changes before may have gone unannounced.
    fn up(&self);
    /// Tracking is lost: changes may go unannounced until it is up again.
    fn lost(&self);
}

/// The keys of an invalidation push, or `None` for a null list (the server flushed).
pub(crate) fn invalidated_keys(push: &PushInfo) -> Option<Vec<&str>> {
    match push.data.first() {
        Some(redis::Value::Array(keys)) => Some(
            keys.iter()
                .filter_map(|key| match key {
                    redis::Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
                    redis::Value::SimpleString(text) => Some(text.as_str()),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    }
}

/// What a tracking connection is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrackingMode<'a> {
    /// Every change to a key under this prefix (`BCAST PREFIX`), whoever reads it.
    Broadcast(&'a str),
    /// Changes to the keys read on the connection, each once after each read (the default
    /// mode): a key is tracked again by reading it again.
    Reads,
}

/// The tracking connections of one moment of the topology: one store per master.
pub(crate) struct TrackedNodes {
    nodes: Vec<TrackedNode>,
    /// Whether they broadcast (see [`TrackingMode`]).
    broadcast: bool,
    /// Cluster only: slot ranges (sorted by start) and the index of their node.
    slots: Vec<(u16, u16, usize)>,
}

struct TrackedNode {
    store: RedisStore,
    addr: String,
}

impl TrackedNodes {
    /// The store whose connection serves `key` and tracks its changes.
    pub(crate) fn store_for(&self, key: &str) -> Option<&RedisStore> {
        self.node_of(key).and_then(|index| self.node(index))
    }

    /// The store of the node at `index` (see [`node_of`](Self::node_of)).
    pub(crate) fn node(&self, index: usize) -> Option<&RedisStore> {
        self.nodes.get(index).map(|n| &n.store)
    }

    /// The index of the node that serves `key`.
    pub(crate) fn node_of(&self, key: &str) -> Option<usize> {
        if self.slots.is_empty() {
            return (!self.nodes.is_empty()).then_some(0);
        }
        #[cfg(feature = "cluster")]
        let found = {
            let slot = slot_of(key);
            let index = self.slots.partition_point(|(_, end, _)| *end < slot);
            self.slots
                .get(index)
                .filter(|(start, _, _)| *start <= slot)
                .map(|(_, _, node)| *node)
        };
        #[cfg(not(feature = "cluster"))]
        let found = {
            let _ = key;
            None
        };
        found
    }

    /// Whether every connection still tracks (`CLIENT TRACKINGINFO`) and talks to a master
    /// (`ROLE`), and on a cluster whether the slot map is still the one connected to.
    pub(crate) async fn still_valid(&self, backend: &RedisStore) -> Result<bool, Error> {
        for node in &self.nodes {
            let mut pipe = redis::pipe();
            pipe.cmd("CLIENT").arg("TRACKINGINFO").cmd("ROLE");
            let mut conn = node.store.conn();
            let (info, role): (redis::Value, redis::Value) =
                node.store.bounded(pipe.query_async(&mut conn)).await?;
            if !tracking_is_on(&info, self.broadcast) || !is_master(&role) {
                tracing::info!(node = %node.addr, "near cache: tracking is off or the node is no longer a master");
                return Ok(false);
            }
        }
        #[cfg(feature = "sentinel")]
        if let Dedicated::Sentinel(sentinel) = &backend.dedicated {
            let named = backend.bounded(sentinel.client_now()).await?;
            let named = describe(named.get_connection_info());
            if self.nodes.iter().all(|node| node.addr != named) {
                tracing::info!("near cache: the sentinels name another master");
                return Ok(false);
            }
        }
        #[cfg(feature = "cluster")]
        if let Conn::Cluster(conn) = &backend.conn {
            let mut conn = conn.clone();
            let map = backend.bounded(super::cluster::slot_map(&mut conn)).await?;
            let now: Vec<(u16, u16, String)> = map
                .iter()
                .map(|r| (r.start, r.end, format!("{}:{}", r.host, r.port)))
                .collect();
            let tracked: Vec<(u16, u16, String)> = self
                .slots
                .iter()
                .filter_map(|(s, e, n)| self.nodes.get(*n).map(|node| (*s, *e, node.addr.clone())))
                .collect();
            if now != tracked {
                tracing::info!("near cache: the cluster's slot map changed");
                return Ok(false);
            }
        }
        let _ = backend;
        Ok(true)
    }
}

/// The cluster slot of `key`: CRC16 (XMODEM) of its hash tag (the text between the first
/// `{` and the next `}`, when not empty) or of the whole key, modulo 16384.
#[cfg(feature = "cluster")]
fn slot_of(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes.iter().position(|b| *b == b'{').and_then(|open| {
        let rest = bytes.get(open + 1..)?;
        let close = rest.iter().position(|b| *b == b'}')?;
        rest.get(..close).filter(|tag| !tag.is_empty())
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(bytes)) % 16384
}

/// Whether a `CLIENT TRACKINGINFO` reply says tracking is on with `NOLOOP`, in broadcast
/// mode when `broadcast`.
fn tracking_is_on(info: &redis::Value, broadcast: bool) -> bool {
    let redis::Value::Map(fields) = info else {
        return false;
    };
    fields.iter().any(|(name, value)| {
        text(name).as_deref() == Some("flags")
            && matches!(value, redis::Value::Array(flags) | redis::Value::Set(flags)
                if ["on", "noloop"]
                    .iter()
                    .chain(broadcast.then_some(&"bcast"))
                    .all(|want| flags.iter().any(|f| text(f).as_deref() == Some(want))))
    })
}

/// Whether a `ROLE` reply names a master.
fn is_master(role: &redis::Value) -> bool {
    matches!(role, redis::Value::Array(parts) if parts.first().and_then(text).as_deref() == Some("master"))
}

fn text(value: &redis::Value) -> Option<String> {
    match value {
        redis::Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// `info` speaking RESP3, at another address when given (a cluster master), with the
/// same credentials and TLS settings.
fn resp3(info: &ConnectionInfo, at: Option<(&str, u16)>) -> ConnectionInfo {
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let info = info.clone().set_redis_settings(settings);
    let Some((host, port)) = at else {
        return info;
    };
    let addr = match info.addr() {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(host.to_owned(), port),
    };
    info.set_addr(addr)
}

fn describe(info: &ConnectionInfo) -> String {
    match info.addr() {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        other => format!("{other:?}"),
    }
}

impl RedisStore {
    /// Opens one tracking connection per master, each announcing the changes `mode` says
    /// to `on_push`.
    pub(crate) async fn track(
        &self,
        mode: TrackingMode<'_>,
        on_push: PushHandler,
    ) -> Result<TrackedNodes, Error> {
        let mut targets: Vec<ConnectionInfo> = Vec::new();
        #[cfg_attr(not(feature = "cluster"), allow(unused_mut))]
        let mut slots = Vec::new();
        match &self.dedicated {
            Dedicated::Single(client) => targets.push(resp3(client.get_connection_info(), None)),
            #[cfg(feature = "sentinel")]
            Dedicated::Sentinel(sentinel) => {
                let client = self.bounded(sentinel.client_now()).await?;
                targets.push(resp3(client.get_connection_info(), None));
            }
            #[cfg(feature = "cluster")]
            Dedicated::Cluster(nodes) => {
                let Conn::Cluster(conn) = &self.conn else {
                    return Err(BackendError::Protocol(
                        "cluster nodes without a cluster connection",
                    )
                    .into());
                };
                let Some(seed) = nodes.seed_info() else {
                    return Err(Error::Config(
                        "a cluster needs at least one seed URL".into(),
                    ));
                };
                let mut conn = conn.clone();
                let map = self.bounded(super::cluster::slot_map(&mut conn)).await?;
                let mut masters: Vec<(String, u16)> = Vec::new();
                for range in map {
                    let at = (range.host.clone(), range.port);
                    let index = match masters.iter().position(|m| *m == at) {
                        Some(index) => index,
                        None => {
                            masters.push(at);
                            masters.len() - 1
                        }
                    };
                    slots.push((range.start, range.end, index));
                }
                for (host, port) in &masters {
                    targets.push(resp3(seed, Some((host.as_str(), *port))));
                }
            }
        }
        let mut nodes = Vec::with_capacity(targets.len());
        for info in targets {
            let addr = describe(&info);
            let conn = self
                .tracking_connection(info, mode, Arc::clone(&on_push))
                .await?;
            nodes.push(TrackedNode {
                store: self.on_connection(Conn::Node(conn)),
                addr,
            });
        }
        Ok(TrackedNodes {
            nodes,
            broadcast: matches!(mode, TrackingMode::Broadcast(_)),
            slots,
        })
    }

    async fn tracking_connection(
        &self,
        info: ConnectionInfo,
        mode: TrackingMode<'_>,
        on_push: PushHandler,
    ) -> Result<MultiplexedConnection, Error> {
        let client = redis::Client::open(info)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.command_timeout))
            .set_push_sender(move |push: PushInfo| {
                on_push(push);
                Ok::<(), redis::aio::SendError>(())
            });
        let mut conn = tokio::time::timeout(
            self.connect_timeout,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| BackendError::Timeout(self.connect_timeout))??;
        // `HELLO` again only to read the version; it keeps the connection's user.
        let hello: redis::Value = self
            .bounded(redis::cmd("HELLO").arg(3).query_async(&mut conn))
            .await?;
        match server_version(&hello) {
            Some(version) if version >= MIN_VERSION => {}
            found => {
                let found = found.map_or("an unknown version".to_owned(), |(major, minor)| {
                    format!("{major}.{minor}")
                });
                return Err(Error::Config(format!(
                    "client tracking for sessions needs Redis {}.{} or newer (`CLIENT TRACKINGINFO`, and `PEXPIRE … GT` for the near cache); \
                     {} runs {found}",
                    MIN_VERSION.0,
                    MIN_VERSION.1,
                    describe(client.get_connection_info()),
                )));
            }
        }
        let mut cmd = redis::cmd("CLIENT");
        cmd.arg("TRACKING").arg("ON");
        if let TrackingMode::Broadcast(prefix) = mode {
            cmd.arg("BCAST").arg("PREFIX").arg(prefix);
        }
        cmd.arg("NOLOOP");
        self.bounded(cmd.query_async::<()>(&mut conn)).await?;
        Ok(conn)
    }
}

/// The oldest Redis the near cache runs on: 7.0 brought `PEXPIRE … GT`, which refreshes
/// use so that they never shorten or add an expiry.
const MIN_VERSION: (u32, u32) = (7, 0);

/// The major and minor version in a `HELLO` reply.
fn server_version(hello: &redis::Value) -> Option<(u32, u32)> {
    let redis::Value::Map(fields) = hello else {
        return None;
    };
    let version = fields
        .iter()
        .find(|(name, _)| text(name).as_deref() == Some("version"))
        .and_then(|(_, value)| text(value))?;
    let mut parts = version.split('.').map(|part| part.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn trackinginfo_needs_on_noloop_and_the_mode() {
        let info = |flags: &[&str]| {
            Value::Map(vec![
                (
                    bulk("flags"),
                    Value::Array(flags.iter().map(|f| bulk(f)).collect()),
                ),
                (bulk("redirect"), Value::Int(-1)),
            ])
        };
        assert!(tracking_is_on(&info(&["on", "bcast", "noloop"]), true));
        assert!(!tracking_is_on(&info(&["off"]), true));
        assert!(!tracking_is_on(&info(&["on", "noloop"]), true));
        assert!(tracking_is_on(&info(&["on", "noloop"]), false));
        assert!(!tracking_is_on(&info(&["on"]), false));
        assert!(!tracking_is_on(&Value::Nil, false));
    }

    #[cfg(feature = "cluster")]
    #[test]
    fn slots_agree_with_the_redis_crate() {
        use redis::cluster_routing::Slot;
        for key in [
            "a",
            "login:token:abc",
            "{user1000}.following",
            "foo{}{bar}",
            "{}x",
            "x{y",
        ] {
            assert_eq!(Slot::new(slot_of(key)), Some(Slot::for_key(key)), "{key}");
        }
    }

    #[test]
    fn version_from_hello() {
        let hello = |version: &str| {
            Value::Map(vec![
                (bulk("server"), bulk("redis")),
                (bulk("version"), bulk(version)),
                (bulk("proto"), Value::Int(3)),
            ])
        };
        assert_eq!(server_version(&hello("7.0.15")), Some((7, 0)));
        assert_eq!(server_version(&hello("6.2.14")), Some((6, 2)));
        assert!(server_version(&hello("6.2.14")) < Some(MIN_VERSION));
        assert!(server_version(&hello("10.1.0")) >= Some(MIN_VERSION));
        assert_eq!(server_version(&hello("seven")), None);
        assert_eq!(server_version(&Value::Nil), None);
    }

    #[test]
    fn role_must_be_master() {
        assert!(is_master(&Value::Array(vec![
            bulk("master"),
            Value::Int(0)
        ])));
        assert!(!is_master(&Value::Array(vec![bulk("slave")])));
    }

    #[test]
    fn resp3_keeps_credentials_and_moves_the_address() {
        let info: ConnectionInfo =
            redis::IntoConnectionInfo::into_connection_info("redis://user:pw@127.0.0.1:7000/0")
                .unwrap_or_else(|e| panic!("{e}"));
        let moved = resp3(&info, Some(("127.0.0.2", 7001)));
        assert_eq!(describe(&moved), "127.0.0.2:7001");
        assert_eq!(moved.redis_settings().password(), Some("pw"));
        assert_eq!(moved.redis_settings().protocol(), ProtocolVersion::RESP3);
    }
}
