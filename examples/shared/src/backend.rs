//! The store behind sessions, codes, locks and flash sales: the embedded memory backend or
//! Redis.

use std::sync::Arc;

use keygate::backend::SessionStore;
use keygate::code::CodeStore;
use keygate::flash_sale::FlashSaleStore;
use keygate::lock::LockStore;
use keygate::rate_limit::RateLimitStore;
use keygate::{MemoryStore, RedisEnv, RedisStore, RedisTarget};

use crate::StartError;

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
    /// Connects what the environment names (the embedded store when it names no Redis);
    /// fails when Redis cannot be reached now (within the connect timeout), naming the
    /// cause and where (addresses only).
    pub async fn connect(redis: &RedisEnv) -> Result<Self, StartError> {
        let Some(target) = redis.target() else {
            tracing::warn!(
                "no REDIS_URL or REDIS_CLUSTER_URLS: using the embedded in-memory backend \
                 (sessions, codes and orders are lost at exit and not shared between processes)"
            );
            return Ok(Backend::Memory(MemoryStore::new()));
        };
        let store = match redis.connect().await {
            Ok(Some(store)) => store,
            Ok(None) => return Ok(Backend::Memory(MemoryStore::new())),
            Err(e @ keygate::Error::Config(_)) => return Err(StartError::new(e.to_string())),
            Err(e) => {
                return Err(StartError::new(format!(
                    "cannot reach {}: {e}",
                    redis.describe()
                )));
            }
        };
        Ok(match target {
            RedisTarget::Cluster(_) => Backend::Cluster(store),
            RedisTarget::Sentinel(_) => Backend::Sentinel(store),
            _ => Backend::Redis(store),
        })
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
