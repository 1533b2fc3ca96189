//! Start-up settings, read from the environment (the contract: `docs/http-api.md`,
//! § Start-up).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use keygate::rate_limit::MAX_WINDOW_LIMIT;
use keygate::session::{EventLog, NearCache};
use keygate::web::IpNet;
use keygate::{RedisEnv, SessionConfig};

use crate::StartError;
use crate::secrets::Secret;

/// Where the examples listen by default.
pub const DEFAULT_BIND_ADDR: &str = "127.0.0.1:8080";

/// The SQLite file used when `DATABASE_URL` is unset, in the working directory.
pub const DEFAULT_DATABASE_FILE: &str = "keygate-example.sqlite3";

/// The log filter used when `RUST_LOG` is unset.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// Where the users table lives.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Database {
    /// A SQLite file.
    File(PathBuf),
    /// A private in-memory database (`sqlite::memory:`), gone at exit.
    Memory,
}

/// Requests to `POST /user/code` and `POST /user/login` per client IP and minute when
/// `RATE_LIMIT_PER_IP` is unset.
pub const DEFAULT_RATE_LIMIT_PER_IP: u32 = 30;

/// The shortest `ADMIN_TOKEN` an example starts with: shorter ones could be guessed.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// The most sessions one process keeps in its near cache when `SESSION_NEAR_CACHE=1`.
pub const NEAR_CACHE_SESSIONS: usize = 100_000;

/// With `SESSION_NEAR_CACHE=1`, each session's TTL is refreshed in Redis at most this often
/// per process (the contract says 60 s): a session then ends between 30 and 31 idle
/// minutes after its last use.
pub const NEAR_CACHE_TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The example's configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// `BIND_ADDR`: where to listen (port 0 picks a free port, reported in the ready line).
    pub bind: SocketAddr,
    /// `REDIS_SENTINEL_MASTER` + `REDIS_SENTINEL_URLS`, else `REDIS_CLUSTER_URLS`, else
    /// `REDIS_URL`, else (no target) the embedded backend; `REDIS_CA_CERT`,
    /// `REDIS_CLIENT_CERT`, `REDIS_CLIENT_KEY`: PEM files for TLS. Read by keygate's
    /// [`RedisEnv`], as `keygate-cli` reads them.
    pub redis: RedisEnv,
    /// `DATABASE_URL`: the SQLite database.
    pub database: Database,
    /// `RUST_LOG`: the log filter.
    pub log_filter: String,
    /// `ADMIN_TOKEN`: what operator routes require in `x-admin-token`, at least
    /// [`MIN_ADMIN_TOKEN_CHARS`] characters (a shorter one refuses the start); unset, they
    /// answer 403.
    pub admin_token: Option<Secret>,
    /// `PAY_CALLBACK_SECRET`: the key of the payment provider's callback signatures;
    /// unset, provider callbacks answer 403.
    pub pay_callback_secret: Option<Secret>,
    /// `RATE_LIMIT_PER_IP`: how many `POST /user/code` and `POST /user/login`, counted
    /// together, one client IP may make per rolling minute (default 30, at most
    /// `MAX_WINDOW_LIMIT`).
    pub rate_limit_per_ip: u32,
    /// `TRUSTED_PROXIES`: the reverse proxies (addresses or CIDR ranges) whose
    /// `X-Forwarded-For` names the client IP of the per-IP budgets; empty, that header is
    /// ignored and the client IP is the connection's peer.
    pub trusted_proxies: Vec<IpNet>,
    /// `COOKIE_SECURE=1`: the session cookie carries `Secure` (the app is served over
    /// HTTPS); otherwise it does not, so the examples work over plain HTTP on localhost.
    pub cookie_secure: bool,
    /// `SESSION_NEAR_CACHE=1`: sessions are served from process memory while Redis client
    /// tracking vouches for them (see [`session_config`](Self::session_config)); any other
    /// value, or none, leaves every load to Redis. Only the Redis backends have it.
    pub session_near_cache: bool,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, StartError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (the environment, or a map in tests). Empty
    /// values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, StartError> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let bind_text = var("BIND_ADDR").unwrap_or_else(|| DEFAULT_BIND_ADDR.to_owned());
        let bind = parse_bind(&bind_text)?;
        let redis = RedisEnv::from_lookup(&lookup).map_err(|e| StartError::new(e.to_string()))?;
        let database = match var("DATABASE_URL") {
            Some(url) => parse_database_url(&url)?,
            None => Database::File(PathBuf::from(DEFAULT_DATABASE_FILE)),
        };
        let rate_limit_per_ip = match var("RATE_LIMIT_PER_IP") {
            None => DEFAULT_RATE_LIMIT_PER_IP,
            // The limit is a sliding window, whose log per client is bounded.
            Some(text) => text
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_WINDOW_LIMIT).contains(n))
                .ok_or_else(|| {
                    StartError::new(format!(
                        "RATE_LIMIT_PER_IP {text:?} is not a whole number from 1 to {MAX_WINDOW_LIMIT}"
                    ))
                })?,
        };
        let trusted_proxies = match var("TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(text) => parse_trusted_proxies(&text)?,
        };
        let admin_token = var("ADMIN_TOKEN").map(Secret::new);
        if admin_token
            .as_ref()
            .is_some_and(|token| token.expose().chars().count() < MIN_ADMIN_TOKEN_CHARS)
        {
            return Err(StartError::new(format!(
                "ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN_CHARS} characters \
                 (generate one with `openssl rand -hex 32`)"
            )));
        }
        let log_filter = var("RUST_LOG").unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned());
        Ok(Self {
            bind,
            redis,
            database,
            log_filter,
            admin_token,
            pay_callback_secret: var("PAY_CALLBACK_SECRET").map(Secret::new),
            rate_limit_per_ip,
            trusted_proxies,
            cookie_secure: var("COOKIE_SECURE").is_some_and(|v| v.trim() == "1"),
            session_near_cache: var("SESSION_NEAR_CACHE").is_some_and(|v| v.trim() == "1"),
        })
    }

    /// The sessions' configuration: the Java seed's layout, with the near cache
    /// ([`NEAR_CACHE_SESSIONS`] sessions, [`NEAR_CACHE_TOUCH_EVERY`]) when
    /// `SESSION_NEAR_CACHE=1`. The one place all four examples take it from.
    pub fn session_config(&self) -> SessionConfig {
        // The event log feeds `GET /user/events`.
        let config = SessionConfig::java_seed().with_event_log(EventLog::new());
        if self.session_near_cache {
            config.with_near_cache(NearCache::new(NEAR_CACHE_SESSIONS, NEAR_CACHE_TOUCH_EVERY))
        } else {
            config
        }
    }
}

fn parse_bind(text: &str) -> Result<SocketAddr, StartError> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            StartError::new(format!(
                "BIND_ADDR {text:?} is not an address like 127.0.0.1:8080"
            ))
        })
}

/// `sqlite://path`, `sqlite:path`, `file:path`, a plain path, or `sqlite::memory:`.
fn parse_database_url(url: &str) -> Result<Database, StartError> {
    let url = url.trim();
    if matches!(url, ":memory:" | "sqlite::memory:" | "sqlite://:memory:") {
        return Ok(Database::Memory);
    }
    let path = if let Some(rest) = url.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = url.strip_prefix("sqlite:") {
        rest
    } else if let Some(rest) = url.strip_prefix("file:") {
        rest
    } else if url.contains("://") {
        return Err(StartError::new(
            "DATABASE_URL must name a SQLite database (sqlite://path/to/file.db or a plain path)",
        ));
    } else {
        url
    };
    // Query parameters (`?mode=rwc`) are not supported; refuse rather than guess.
    if path.is_empty() || path.contains('?') {
        return Err(StartError::new(
            "DATABASE_URL must name a SQLite file (sqlite://path/to/file.db or a plain path)",
        ));
    }
    Ok(Database::File(PathBuf::from(path)))
}

/// `TRUSTED_PROXIES`: comma-separated addresses (`::1`) or CIDR ranges (`10.0.0.0/8`).
fn parse_trusted_proxies(text: &str) -> Result<Vec<IpNet>, StartError> {
    text.split(',')
        .map(str::trim)
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    StartError::new(format!(
                        "TRUSTED_PROXIES {item:?} is not an address or a CIDR range \
                         (e.g. 10.0.0.0/8, ::1)"
                    ))
                })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, StartError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.redis.target(), None);
        assert_eq!(
            c.database,
            Database::File(PathBuf::from(DEFAULT_DATABASE_FILE))
        );
        assert_eq!(c.log_filter, "info");
        assert_eq!((c.admin_token, c.pay_callback_secret), (None, None));
    }

    #[test]
    fn trusted_proxies_are_addresses_or_ranges() {
        assert!(config(&[]).unwrap().trusted_proxies.is_empty());
        let c = config(&[("TRUSTED_PROXIES", " 10.0.0.0/8, ::1 ,192.0.2.7")]).unwrap();
        let expected: Vec<IpNet> = ["10.0.0.0/8", "::1/128", "192.0.2.7/32"]
            .iter()
            .map(|text| text.parse().unwrap())
            .collect();
        assert_eq!(c.trusted_proxies, expected);
        for bad in ["10.0.0.0/33", "proxy.local", "10.0.0.1,", "::1/129"] {
            let error = config(&[("TRUSTED_PROXIES", bad)]).unwrap_err();
            assert!(
                error.to_string().contains("TRUSTED_PROXIES"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn rate_limit_per_ip() {
        assert_eq!(config(&[]).unwrap().rate_limit_per_ip, 30);
        let c = config(&[("RATE_LIMIT_PER_IP", " 3 ")]).unwrap();
        assert_eq!(c.rate_limit_per_ip, 3);
        let most = config(&[("RATE_LIMIT_PER_IP", "10000")]).unwrap();
        assert_eq!(most.rate_limit_per_ip, 10_000);
        for bad in ["0", "-1", "ten", "1.5", "10001", "99999999999"] {
            let error = config(&[("RATE_LIMIT_PER_IP", bad)]).unwrap_err();
            assert!(error.to_string().contains("RATE_LIMIT_PER_IP"), "{error}");
        }
    }

    #[test]
    fn session_near_cache_only_with_1() {
        assert!(!config(&[]).unwrap().session_near_cache);
        assert_eq!(config(&[]).unwrap().session_config().near_cache(), None);
        let on = config(&[("SESSION_NEAR_CACHE", " 1 ")]).unwrap();
        assert!(on.session_near_cache);
        let near_cache = on.session_config().near_cache().copied().unwrap();
        assert_eq!(near_cache.max_entries(), 100_000);
        assert_eq!(near_cache.touch_every(), Duration::from_secs(60));
        // Everything else about the sessions stays the Java seed's.
        assert_eq!(
            on.session_config().prefix(),
            SessionConfig::java_seed().prefix()
        );
        assert_eq!(
            on.session_config().idle_ttl(),
            SessionConfig::java_seed().idle_ttl()
        );
        for other in ["0", "true", "on", "yes", "11", ""] {
            let c = config(&[("SESSION_NEAR_CACHE", other)]).unwrap();
            assert!(!c.session_near_cache, "{other:?}");
            assert_eq!(c.session_config().near_cache(), None, "{other:?}");
        }
    }

    #[test]
    fn operator_and_callback_secrets_are_read_but_never_printed() {
        let admin = "operator-s3cret-0123456789abcdef";
        let c = config(&[
            ("ADMIN_TOKEN", admin),
            ("PAY_CALLBACK_SECRET", "pay-s3cret"),
        ])
        .unwrap();
        assert_eq!(c.admin_token, Some(Secret::new(admin)));
        assert_eq!(c.pay_callback_secret, Some(Secret::new("pay-s3cret")));
        let printed = format!("{c:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        let blank = config(&[("ADMIN_TOKEN", " "), ("PAY_CALLBACK_SECRET", "")]).unwrap();
        assert_eq!((blank.admin_token, blank.pay_callback_secret), (None, None));
    }

    #[test]
    fn admin_tokens_under_32_characters_are_refused() {
        for short in ["Q", "s3cret", &"é".repeat(31)] {
            let error = config(&[("ADMIN_TOKEN", short)]).unwrap_err();
            let line = error.to_string();
            assert!(
                line.contains("ADMIN_TOKEN") && line.contains("32"),
                "{line}"
            );
            assert!(!line.contains(short), "{line}");
        }
        // Characters, not bytes.
        let c = config(&[("ADMIN_TOKEN", &"é".repeat(32))]).unwrap();
        assert!(c.admin_token.is_some());
    }

    /// The Redis variables are keygate's `RedisEnv` (tested in the core): the examples read
    /// them through it, as keygate-cli does.
    #[test]
    fn redis_settings_are_keygates_redis_env() {
        let vars = [
            ("REDIS_URL", "redis://127.0.0.1:1"),
            (
                "REDIS_CLUSTER_URLS",
                "redis://127.0.0.1:7000, redis://127.0.0.1:7001",
            ),
            ("REDIS_CA_CERT", "/etc/redis/ca.pem"),
        ];
        let c = config(&vars).unwrap();
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        let env = RedisEnv::from_lookup(|name| map.get(name).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(c.redis, env);
        assert!(matches!(
            c.redis.target(),
            Some(keygate::RedisTarget::Cluster(seeds)) if seeds.len() == 2
        ));
        assert!(config(&[("REDIS_SENTINEL_MASTER", "mymaster")]).is_err());
        assert!(config(&[("REDIS_CLIENT_CERT", "/c.pem")]).is_err());
    }

    #[test]
    fn bad_values_are_refused_without_echoing_secrets() {
        let e = config(&[("REDIS_URL", "http://:hunter2@example")]).unwrap_err();
        assert!(e.to_string().contains("REDIS_URL"));
        assert!(!e.to_string().contains("hunter2"));
        assert!(config(&[("BIND_ADDR", "nonsense")]).is_err());
        assert!(config(&[("DATABASE_URL", "postgres://db/users")]).is_err());
        assert_eq!(
            config(&[("DATABASE_URL", "sqlite:///srv/app/x.db")])
                .unwrap()
                .database,
            Database::File(PathBuf::from("/srv/app/x.db"))
        );
        assert_eq!(
            config(&[("DATABASE_URL", "sqlite::memory:")])
                .unwrap()
                .database,
            Database::Memory
        );
    }
}
