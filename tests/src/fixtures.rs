//! What the adapters' end-to-end tests share: the Java seed's user, a gate on a private
//! Redis, planting sessions as another service would, and counting commands.

use std::time::Duration;

use keygate::{
    Keygate, RedisOptions, RedisStore, SessionConfig, SessionCookie, SessionManager, TokenReader,
    TokenSource, UserId,
};
use serde::{Deserialize, Serialize};

use crate::tls::Pki;
use crate::{RedisCluster, RedisServer, TlsServer};

/// The Java seed's `UserDTO`, stored as a hash at `login:token:<token>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JavaUser {
    /// The user id.
    pub id: u64,
    /// The nickname.
    pub nick_name: String,
    /// The avatar.
    pub icon: String,
}

impl JavaUser {
    /// A user with this id.
    pub fn new(id: u64) -> Self {
        Self {
            id,
            nick_name: format!("user_{id}"),
            icon: String::new(),
        }
    }
}

impl keygate::SessionUser for JavaUser {
    fn user_id(&self) -> UserId {
        UserId::from(self.id)
    }
}

/// Tokens the adapters must refuse with 401 without a Redis call.
pub fn malformed_tokens() -> Vec<String> {
    vec![
        "*".to_owned(),
        "a".repeat(10 * 1024),
        "dd9b7511874889f4192fbda3d8b088é".to_owned(),
        "dd9b7511874889f4\u{1}192fbda3d8b0881c".to_owned(),
        "login:token:*".to_owned(),
    ]
}

/// The cookie name the adapters' tests enable as a third transport.
pub const COOKIE: &str = "kg_token";

/// A gate over a private Redis with the Java seed's layout, reading the header, the query
/// parameter and the [`COOKIE`].
pub async fn java_gate(server: &RedisServer) -> Keygate<JavaUser> {
    java_gate_with(server, SessionConfig::java_seed()).await
}

/// The absolute lifetime of the sessions of [`cookie_gate`]: the cookie's `Max-Age`.
pub const COOKIE_LIFETIME: Duration = Duration::from_secs(86_400);

/// Like [`java_gate`], with sessions of at most [`COOKIE_LIFETIME`] and the session cookie
/// [`COOKIE`] (with `Secure`) turned on: login sets it, logout clears it, and unsafe
/// requests it authenticates must come from the request's own host.
pub async fn cookie_gate(server: &RedisServer) -> Keygate<JavaUser> {
    let config = SessionConfig::java_seed().with_absolute_lifetime(COOKIE_LIFETIME);
    java_gate_with(server, config)
        .await
        .with_cookie(SessionCookie::named(COOKIE).expect("a valid cookie name"))
}

/// Like [`java_gate`] with another configuration.
pub async fn java_gate_with<T>(server: &RedisServer, config: SessionConfig) -> Keygate<T>
where
    T: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let store = RedisStore::connect_with(
        RedisOptions::new(server.url()).with_command_timeout(Duration::from_millis(500)),
    )
    .await
    .expect("connect to the private redis-server");
    let manager = SessionManager::new(store, config).expect("valid config");
    Keygate::new(manager)
        .with_reader(TokenReader::default().with_source(TokenSource::Cookie(COOKIE.into())))
}

/// `options` trusting the test CA ([`Pki::shared`]) and presenting its client certificate.
pub fn with_test_certificates(options: RedisOptions) -> RedisOptions {
    let pki = Pki::shared();
    options
        .with_ca_cert_pem(pki.ca_pem.clone())
        .with_client_cert_pem(pki.client.cert_pem.clone(), pki.client.key_pem.clone())
}

/// Writes a session hash the way the Java seed's Spring service does (`HSET` + `EXPIRE`).
pub fn plant_java_session(server: &RedisServer, token: &str, user: &JavaUser) {
    let key = format!("login:token:{token}");
    let _: () = server.query(
        redis::cmd("HSET")
            .arg(&key)
            .arg("id")
            .arg(user.id.to_string())
            .arg("nickName")
            .arg(&user.nick_name)
            .arg("icon")
            .arg(&user.icon),
    );
    let _: () = server.query(redis::cmd("EXPIRE").arg(&key).arg(1800));
}

/// The key's remaining TTL in milliseconds (`PTTL`).
pub fn pttl(server: &RedisServer, key: &str) -> i64 {
    server.query(redis::cmd("PTTL").arg(key))
}

/// Commands Redis ran since the last [`RedisServer::reset_stats`], leaving out the
/// test's own `INFO`/`CONFIG` calls, sorted by name.
pub fn commands_since_reset(server: &RedisServer) -> Vec<(String, u64)> {
    let mut calls: Vec<_> = server
        .command_calls()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("info") && !name.starts_with("config"))
        .collect();
    calls.sort();
    calls
}

/// The commands one authenticated request of the Java layout must cost: one script call
/// (one round trip) that checks the key's `TYPE` before `PEXPIRE` and `HGETALL`, so that a
/// key of another type is never touched.
pub fn one_hash_touch() -> Vec<(String, u64)> {
    vec![
        ("evalsha".to_owned(), 1),
        ("hgetall".to_owned(), 1),
        ("pexpire".to_owned(), 1),
        ("type".to_owned(), 1),
    ]
}

/// A real backend for suites that run on both: the embedded store, or a private Redis.
#[allow(clippy::large_enum_variant, reason = "a handful per test run")]
pub enum Backend {
    /// The embedded memory store.
    Memory(keygate::MemoryStore),
    /// A private Redis server and a store connected to it.
    Redis(RedisStore, RedisServer),
    /// A store on a private Redis Cluster (shared by the tests of one binary).
    Cluster(RedisStore, std::sync::Arc<RedisCluster>),
}

impl Backend {
    /// The embedded memory store.
    pub fn memory() -> Self {
        Backend::Memory(keygate::MemoryStore::new())
    }

    /// A fresh private Redis.
    pub async fn redis() -> Self {
        let server = RedisServer::start();
        let store = RedisStore::connect_with(
            RedisOptions::new(server.url()).with_command_timeout(Duration::from_millis(500)),
        )
        .await
        .expect("connect to the private redis-server");
        Backend::Redis(store, server)
    }

    /// A fresh private TLS-only Redis that requires client certificates (mutual TLS), and
    /// a store that trusts the test CA and presents the test client certificate.
    pub async fn redis_tls() -> Self {
        let server = RedisServer::start_tls(
            TlsServer {
                require_client_cert: true,
                ..TlsServer::default()
            },
            &[],
        );
        let store = RedisStore::connect_with(
            // Handshakes of many parallel tests share two cores: more room than plain TCP.
            with_test_certificates(RedisOptions::new(server.url()))
                .with_command_timeout(Duration::from_secs(2)),
        )
        .await
        .expect("connect to the private TLS redis-server");
        Backend::Redis(store, server)
    }

    /// A store connected to this private cluster (with the test certificates if it serves
    /// TLS).
    pub async fn cluster(cluster: std::sync::Arc<RedisCluster>) -> Self {
        let mut options =
            RedisOptions::cluster(cluster.urls()).with_command_timeout(Duration::from_secs(2));
        if cluster.is_tls() {
            options = with_test_certificates(options);
        }
        let store = RedisStore::connect_with(options)
            .await
            .expect("connect to the private cluster");
        Backend::Cluster(store, cluster)
    }

    /// The private server, for Redis-only inspection (none on a cluster: single-server
    /// inspections are skipped there).
    pub fn server(&self) -> Option<&RedisServer> {
        match self {
            Backend::Memory(_) | Backend::Cluster(..) => None,
            Backend::Redis(_, server) => Some(server),
        }
    }

    /// The private cluster, for cluster-only inspection.
    pub fn redis_cluster(&self) -> Option<&std::sync::Arc<RedisCluster>> {
        match self {
            Backend::Cluster(_, cluster) => Some(cluster),
            _ => None,
        }
    }

    /// The Redis store, on a server or a cluster.
    pub fn redis_store(&self) -> Option<&RedisStore> {
        match self {
            Backend::Memory(_) => None,
            Backend::Redis(store, _) | Backend::Cluster(store, _) => Some(store),
        }
    }

    /// The store as a session backend.
    pub fn sessions(&self) -> std::sync::Arc<dyn keygate::backend::SessionStore> {
        match self {
            Backend::Memory(store) => std::sync::Arc::new(store.clone()),
            Backend::Redis(store, _) | Backend::Cluster(store, _) => {
                std::sync::Arc::new(store.clone())
            }
        }
    }

    /// The store as a lock backend.
    pub fn locks(&self) -> std::sync::Arc<dyn keygate::lock::LockStore> {
        match self {
            Backend::Memory(store) => std::sync::Arc::new(store.clone()),
            Backend::Redis(store, _) | Backend::Cluster(store, _) => {
                std::sync::Arc::new(store.clone())
            }
        }
    }

    /// The store as a flash-sale backend.
    pub fn flash_sale(&self) -> std::sync::Arc<dyn keygate::flash_sale::FlashSaleStore> {
        match self {
            Backend::Memory(store) => std::sync::Arc::new(store.clone()),
            Backend::Redis(store, _) | Backend::Cluster(store, _) => {
                std::sync::Arc::new(store.clone())
            }
        }
    }

    /// The store as a rate-limit backend.
    pub fn rate_limit(&self) -> std::sync::Arc<dyn keygate::rate_limit::RateLimitStore> {
        match self {
            Backend::Memory(store) => std::sync::Arc::new(store.clone()),
            Backend::Redis(store, _) | Backend::Cluster(store, _) => {
                std::sync::Arc::new(store.clone())
            }
        }
    }

    /// The store as a verification-code backend.
    pub fn codes(&self) -> std::sync::Arc<dyn keygate::code::CodeStore> {
        match self {
            Backend::Memory(store) => std::sync::Arc::new(store.clone()),
            Backend::Redis(store, _) | Backend::Cluster(store, _) => {
                std::sync::Arc::new(store.clone())
            }
        }
    }
}

/// Generates, for each named async fn of `$suite` taking `&Backend`, one test on the
/// memory backend and one on a private Redis.
#[macro_export]
macro_rules! on_both_backends {
    ($suite:path: $($name:ident),* $(,)?) => {
        mod memory_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    use $suite as suite;
                    suite::$name(&$crate::fixtures::Backend::memory()).await;
                }
            )*
        }
        mod redis_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    use $suite as suite;
                    suite::$name(&$crate::fixtures::Backend::redis().await).await;
                }
            )*
        }
    };
}

/// A code sender that keeps the last code per phone, so tests can log in.
#[derive(Default, Clone)]
pub struct CapturingSender {
    codes: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
    /// When set, every send fails.
    pub fail: bool,
}

impl CapturingSender {
    /// A sender whose every send fails.
    pub fn failing() -> Self {
        Self {
            fail: true,
            ..Self::default()
        }
    }

    /// The last code sent to `phone`.
    pub fn last(&self, phone: &str) -> Option<String> {
        self.codes.lock().expect("not poisoned").get(phone).cloned()
    }
}

#[async_trait::async_trait]
impl keygate::code::CodeSender for CapturingSender {
    async fn send(
        &self,
        phone: &keygate::code::Phone,
        code: &keygate::code::VerificationCode,
    ) -> Result<(), keygate::code::SendError> {
        if self.fail {
            return Err(keygate::code::SendError("gateway down".into()));
        }
        self.codes
            .lock()
            .expect("not poisoned")
            .insert(phone.as_str().to_owned(), code.expose().to_owned());
        Ok(())
    }
}

/// A `GET` request carrying `authorization: <value>` and nothing else: what the gate reads
/// a token from by default.
pub struct Authorization(pub Vec<u8>);

impl Authorization {
    /// The request with this header value (raw bytes, so malformed values too).
    pub fn new(value: impl AsRef<[u8]>) -> Self {
        Self(value.as_ref().to_vec())
    }
}

impl keygate::web::RequestParts for Authorization {
    fn header(&self, name: &str) -> Option<&[u8]> {
        (name == "authorization").then_some(self.0.as_slice())
    }
    fn query(&self) -> Option<&str> {
        None
    }
    fn method(&self) -> &str {
        "GET"
    }
}
