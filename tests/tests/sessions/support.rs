use std::time::Duration;

use keygate::{RedisOptions, RedisStore, SessionConfig, SessionManager};
pub use keygate_tests::RedisServer;
pub use keygate_tests::fixtures::Backend;
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

pub trait Managers {
    fn manager<T>(&self, config: SessionConfig) -> SessionManager<T>
    where
        T: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static;
}

impl Managers for Backend {
    fn manager<T>(&self, config: SessionConfig) -> SessionManager<T>
    where
        T: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        SessionManager::from_shared_store(self.sessions(), config).unwrap()
    }
}

pub async fn redis_store(server: &RedisServer) -> RedisStore {
    RedisStore::connect_with(
        RedisOptions::new(server.url()).with_command_timeout(Duration::from_millis(500)),
    )
    .await
    .unwrap()
}
