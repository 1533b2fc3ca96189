use std::sync::Arc;
use std::time::Duration;

use keygate::{MemoryStore, RedisOptions, RedisStore, SessionConfig, SessionManager, SessionStore};
pub use keygate_tests::RedisServer;
pub use keygate_tests::fixtures::JavaUser;
use serde::{Deserialize, Serialize};

/// The Node seed's user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeUser {
    pub user_id: u64,
    pub mobile_phone: String,
    pub openid: String,
}

impl NodeUser {
    pub fn seed() -> Self {
        Self {
            user_id: 598,
            mobile_phone: String::new(),
            openid: "oGrf0v4ov5ETTCNtW_A-Zq61kgsI".into(),
        }
    }
}

pub struct Backend {
    pub store: Arc<dyn SessionStore>,
    /// Keeps the private server alive as long as the backend.
    _server: Option<RedisServer>,
}

impl Backend {
    pub fn memory() -> Self {
        Self {
            store: Arc::new(MemoryStore::new()),
            _server: None,
        }
    }

    pub async fn redis() -> Self {
        let server = RedisServer::start();
        let store = redis_store(&server).await;
        Self {
            store: Arc::new(store),
            _server: Some(server),
        }
    }

    pub fn manager<T>(&self, config: SessionConfig) -> SessionManager<T>
    where
        T: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        SessionManager::from_shared_store(Arc::clone(&self.store), config).unwrap()
    }
}

pub async fn redis_store(server: &RedisServer) -> RedisStore {
    RedisStore::connect_with(
        RedisOptions::new(server.url()).with_command_timeout(Duration::from_millis(500)),
    )
    .await
    .unwrap()
}
