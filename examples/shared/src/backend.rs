//! The store behind sessions, codes, locks and flash sales: the embedded memory backend or
//! Redis.

use std::sync::Arc;

use keygate::code::CodeStore;
use keygate::lock::LockStore;
use keygate::rate_limit::RateLimitStore;
use keygate::seckill::SeckillStore;
use keygate::{MemoryStore, RedisOptions, RedisStore, SessionStore};

use crate::StartError;
use crate::config::RedisChoice;

/// A connected backend. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The embedded in-memory store.
    Memory(MemoryStore),
    /// A Redis server.
    Redis(RedisStore),
    /// A Redis Cluster.
    Cluster(RedisStore),
}

impl Backend {
    /// Connects what `choice` names; fails when Redis cannot be reached now.
    pub async fn connect(choice: &RedisChoice) -> Result<Self, StartError> {
        match choice {
            RedisChoice::Embedded => {
                tracing::warn!(
                    "no REDIS_URL or REDIS_CLUSTER_URLS: using the embedded in-memory backend \
                     (sessions, codes and orders are lost at exit and not shared between processes)"
                );
                Ok(Backend::Memory(MemoryStore::new()))
            }
            RedisChoice::Single(url) => RedisStore::connect_with(RedisOptions::new(url.as_str()))
                .await
                .map(Backend::Redis)
                .map_err(|e| {
                    StartError::new(format!("cannot reach Redis at {}: {e}", redact(url)))
                }),
            RedisChoice::Cluster(urls) => connect_cluster(urls).await.map(Backend::Cluster),
        }
    }

    /// The name shown in the ready line: `memory`, `redis` or `redis-cluster`.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
            Backend::Cluster(_) => "redis-cluster",
        }
    }

    /// The store as a session backend.
    pub fn sessions(&self) -> Arc<dyn SessionStore> {
        match self {
            Backend::Memory(s) => Arc::new(s.clone()),
            Backend::Redis(s) | Backend::Cluster(s) => Arc::new(s.clone()),
        }
    }

    /// The store as a verification-code backend.
    pub fn codes(&self) -> Arc<dyn CodeStore> {
        match self {
            Backend::Memory(s) => Arc::new(s.clone()),
            Backend::Redis(s) | Backend::Cluster(s) => Arc::new(s.clone()),
        }
    }

    /// The store as a lock backend.
    pub fn locks(&self) -> Arc<dyn LockStore> {
        match self {
            Backend::Memory(s) => Arc::new(s.clone()),
            Backend::Redis(s) | Backend::Cluster(s) => Arc::new(s.clone()),
        }
    }

    /// The store as a rate-limit backend.
    pub fn rate_limit(&self) -> Arc<dyn RateLimitStore> {
        match self {
            Backend::Memory(s) => Arc::new(s.clone()),
            Backend::Redis(s) | Backend::Cluster(s) => Arc::new(s.clone()),
        }
    }

    /// The store as a flash-sale backend.
    pub fn seckill(&self) -> Arc<dyn SeckillStore> {
        match self {
            Backend::Memory(s) => Arc::new(s.clone()),
            Backend::Redis(s) | Backend::Cluster(s) => Arc::new(s.clone()),
        }
    }
}

/// A Redis Cluster through its seed nodes.
async fn connect_cluster(urls: &[String]) -> Result<RedisStore, StartError> {
    RedisStore::connect_with(RedisOptions::cluster(urls.iter().cloned()))
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
