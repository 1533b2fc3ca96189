//! The store behind sessions, codes, locks and flash sales: the embedded memory backend or
//! Redis.

use std::sync::Arc;

use keygate::backend::SessionStore;
use keygate::code::CodeStore;
use keygate::flash_sale::FlashSaleStore;
use keygate::lock::LockStore;
use keygate::rate_limit::RateLimitStore;
use keygate::{MemoryStore, RedisOptions, RedisStore};

use crate::StartError;
use crate::config::{RedisChoice, RedisTlsFiles, SentinelChoice};

/// A connected backend. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The embedded in-memory store.
    Memory(MemoryStore),
    /// A Redis server.
    Redis(RedisStore),
    /// A Redis Cluster.
    Cluster(RedisStore),
    /// A Sentinel-managed master.
    Sentinel(RedisStore),
}

impl Backend {
    /// Connects what `choice` names, with the TLS files if any; fails when Redis cannot be
    /// reached now (within the connect timeout), naming the cause.
    pub async fn connect(choice: &RedisChoice, tls: &RedisTlsFiles) -> Result<Self, StartError> {
        match choice {
            RedisChoice::Embedded => {
                tracing::warn!(
                    "no REDIS_URL or REDIS_CLUSTER_URLS: using the embedded in-memory backend \
                     (sessions, codes and orders are lost at exit and not shared between processes)"
                );
                Ok(Backend::Memory(MemoryStore::new()))
            }
            RedisChoice::Single(url) => {
                RedisStore::connect_with(with_tls(RedisOptions::new(url.as_str()), tls)?)
                    .await
                    .map(Backend::Redis)
                    .map_err(|e| {
                        StartError::new(format!("cannot reach Redis at {}: {e}", redact(url)))
                    })
            }
            RedisChoice::Cluster(urls) => connect_cluster(urls, tls).await.map(Backend::Cluster),
            RedisChoice::Sentinel(sentinel) => {
                connect_sentinel(sentinel, tls).await.map(Backend::Sentinel)
            }
        }
    }

    /// The name shown in the ready line: `memory`, `redis` or `redis-cluster`.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
            Backend::Cluster(_) => "redis-cluster",
            Backend::Sentinel(_) => "redis-sentinel",
        }
    }

    /// The store as a session backend.
    pub fn sessions(&self) -> Arc<dyn SessionStore> {
        match self {
            Backend::Memory(s) => Arc::new(s.clone()),
            Backend::Redis(s) | Backend::Cluster(s) | Backend::Sentinel(s) => Arc::new(s.clone()),
        }
    }

    /// The store as a verification-code backend.
    pub fn codes(&self) -> Arc<dyn CodeStore> {
        match self {
            Backend::Memory(s) => Arc::new(s.clone()),
            Backend::Redis(s) | Backend::Cluster(s) | Backend::Sentinel(s) => Arc::new(s.clone()),
        }
    }

    /// The store as a lock backend.
    pub fn locks(&self) -> Arc<dyn LockStore> {
        match self {
            Backend::Memory(s) => Arc::new(s.clone()),
            Backend::Redis(s) | Backend::Cluster(s) | Backend::Sentinel(s) => Arc::new(s.clone()),
        }
    }

    /// The store as a rate-limit backend.
    pub fn rate_limit(&self) -> Arc<dyn RateLimitStore> {
        match self {
            Backend::Memory(s) => Arc::new(s.clone()),
            Backend::Redis(s) | Backend::Cluster(s) | Backend::Sentinel(s) => Arc::new(s.clone()),
        }
    }

    /// The store as a flash-sale backend.
    pub fn flash_sale(&self) -> Arc<dyn FlashSaleStore> {
        match self {
            Backend::Memory(s) => Arc::new(s.clone()),
            Backend::Redis(s) | Backend::Cluster(s) | Backend::Sentinel(s) => Arc::new(s.clone()),
        }
    }
}

/// Reads a PEM file named by `variable`; the error names the variable and the path.
fn read_pem(variable: &str, path: &std::path::Path) -> Result<Vec<u8>, StartError> {
    std::fs::read(path)
        .map_err(|e| StartError::new(format!("cannot read {variable} {}: {e}", path.display())))
}

/// `options` with the CA and client certificate from `REDIS_CA_CERT`, `REDIS_CLIENT_CERT`
/// and `REDIS_CLIENT_KEY`.
fn with_tls(mut options: RedisOptions, tls: &RedisTlsFiles) -> Result<RedisOptions, StartError> {
    if let Some(path) = &tls.ca_cert {
        options = options.with_ca_cert_pem(read_pem("REDIS_CA_CERT", path)?);
    }
    if let (Some(cert), Some(key)) = (&tls.client_cert, &tls.client_key) {
        options = options.with_client_cert_pem(
            read_pem("REDIS_CLIENT_CERT", cert)?,
            read_pem("REDIS_CLIENT_KEY", key)?,
        );
    }
    Ok(options)
}

/// A Sentinel-managed master.
async fn connect_sentinel(
    sentinel: &SentinelChoice,
    tls: &RedisTlsFiles,
) -> Result<RedisStore, StartError> {
    let mut options =
        RedisOptions::sentinel(sentinel.master.as_str(), sentinel.sentinels.iter().cloned());
    if let Some(user) = &sentinel.master_user {
        options = options.with_master_username(user.as_str());
    }
    if let Some(password) = &sentinel.master_password {
        options = options.with_master_password(password.as_str());
    }
    RedisStore::connect_with(with_tls(options, tls)?)
        .await
        .map_err(|e| {
            let sentinels: Vec<String> = sentinel.sentinels.iter().map(|u| redact(u)).collect();
            StartError::new(format!(
                "cannot reach the Redis master {:?} through the sentinels at {}: {e}",
                sentinel.master,
                sentinels.join(", ")
            ))
        })
}

/// A Redis Cluster through its seed nodes.
async fn connect_cluster(urls: &[String], tls: &RedisTlsFiles) -> Result<RedisStore, StartError> {
    RedisStore::connect_with(with_tls(RedisOptions::cluster(urls.iter().cloned()), tls)?)
        .await
        .map_err(|e| {
            let seeds: Vec<String> = urls.iter().map(|u| redact(u)).collect();
            StartError::new(format!(
                "cannot reach the Redis Cluster at {}: {e}",
                seeds.join(", ")
            ))
        })
}

/// `host:port` of a Redis URL, without scheme, user, password or database.
pub(crate) fn redact(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    if host.is_empty() {
        "<redacted>".to_owned()
    } else {
        host.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redaction_keeps_only_the_address() {
        assert_eq!(redact("redis://:secret@10.0.0.1:6380/2"), "10.0.0.1:6380");
        assert_eq!(redact("redis://user:p@ss@host"), "host");
        assert_eq!(redact("redis://127.0.0.1:6379"), "127.0.0.1:6379");
        assert_eq!(redact("redis:///"), "<redacted>");
    }
}
