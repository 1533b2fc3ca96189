//! Where Redis is, read from environment variables: the one reading shared by the example
//! applications and `keygate-cli`, so that a deployment configures both the same way.

use std::path::{Path, PathBuf};

use super::tls;
use super::{RedisOptions, RedisStore};
use crate::error::{Error, Result};

/// The servers named by the environment: one server, a cluster or a Sentinel-managed master.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisTarget {
    /// One Redis server (`REDIS_URL`).
    Single(String),
    /// The seed nodes of a Redis Cluster (`REDIS_CLUSTER_URLS`, comma-separated).
    Cluster(Vec<String>),
    /// A Sentinel-managed master.
    Sentinel(SentinelSettings),
}

/// A Sentinel set-up: the master's name, the sentinels, the master's credentials.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SentinelSettings {
    /// `REDIS_SENTINEL_MASTER`: the name the sentinels know the master by.
    pub master: String,
    /// `REDIS_SENTINEL_URLS`: the sentinels (`redis://` or `rediss://`, comma-separated).
    pub sentinels: Vec<String>,
    /// `REDIS_SENTINEL_MASTER_USER`: the ACL user on the master, if any.
    pub master_user: Option<String>,
    /// `REDIS_SENTINEL_MASTER_PASSWORD`: the master's password, if any.
    pub master_password: Option<String>,
}

/// PEM files for `rediss://` connections, read when the options are built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisTlsFiles {
    /// `REDIS_CA_CERT`: trust only this CA (instead of the platform's roots).
    pub ca_cert: Option<PathBuf>,
    /// `REDIS_CLIENT_CERT`: the client certificate for mutual TLS.
    pub client_cert: Option<PathBuf>,
    /// `REDIS_CLIENT_KEY`: its private key.
    pub client_key: Option<PathBuf>,
}

/// The Redis connection settings of the environment.
///
/// | variable | meaning |
/// | --- | --- |
/// | `REDIS_URL` | one server: `redis://[user:password@]host[:port][/db]`, `rediss://` for TLS |
/// | `REDIS_CLUSTER_URLS` | a cluster's seed nodes, comma-separated (wins over `REDIS_URL`) |
/// | `REDIS_SENTINEL_MASTER` + `REDIS_SENTINEL_URLS` | a Sentinel-managed master and the sentinels (wins over `REDIS_URL`; not with `REDIS_CLUSTER_URLS`) |
/// | `REDIS_SENTINEL_MASTER_USER`, `REDIS_SENTINEL_MASTER_PASSWORD` | the master's credentials |
/// | `REDIS_CA_CERT` | PEM file of the CA to trust instead of the platform's roots |
/// | `REDIS_CLIENT_CERT` + `REDIS_CLIENT_KEY` | PEM files of a client certificate (mutual TLS) |
///
/// Empty values count as unset. No variable set means no Redis ([`target`](Self::target)
/// is `None`): the examples then use the embedded backend. Errors name the variable, never
/// its value (URLs may hold passwords), and `Debug` shows no URL.
///
/// ```
/// use keygate::{RedisEnv, RedisTarget};
///
/// let vars = [("REDIS_URL", "redis://127.0.0.1:6379/0")];
/// let env = RedisEnv::from_lookup(|name| {
///     vars.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
/// })?;
/// assert!(matches!(env.target(), Some(RedisTarget::Single(_))));
/// assert_eq!(env.describe(), "Redis at 127.0.0.1:6379");
/// # Ok::<(), keygate::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RedisEnv {
    target: Option<RedisTarget>,
    tls: RedisTlsFiles,
}

impl RedisEnv {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let target = match (
            sentinel_settings(var)?,
            var("REDIS_CLUSTER_URLS"),
            var("REDIS_URL"),
        ) {
            (Some(_), Some(_), _) => {
                return Err(Error::Config(
                    "set REDIS_SENTINEL_MASTER/REDIS_SENTINEL_URLS or REDIS_CLUSTER_URLS, not both"
                        .into(),
                ));
            }
            (Some(sentinel), None, _) => Some(RedisTarget::Sentinel(sentinel)),
            (None, Some(urls), _) => {
                Some(RedisTarget::Cluster(url_list("REDIS_CLUSTER_URLS", &urls)?))
            }
            (None, None, Some(url)) => {
                let url = url.trim().to_owned();
                check_url("REDIS_URL", &url)?;
                Some(RedisTarget::Single(url))
            }
            (None, None, None) => None,
        };
        let tls = RedisTlsFiles {
            ca_cert: var("REDIS_CA_CERT").map(PathBuf::from),
            client_cert: var("REDIS_CLIENT_CERT").map(PathBuf::from),
            client_key: var("REDIS_CLIENT_KEY").map(PathBuf::from),
        };
        if tls.client_cert.is_some() != tls.client_key.is_some() {
            return Err(Error::Config(
                "REDIS_CLIENT_CERT and REDIS_CLIENT_KEY must be set together".into(),
            ));
        }
        Ok(Self { target, tls })
    }

    /// The servers named, `None` when no variable names any.
    pub fn target(&self) -> Option<&RedisTarget> {
        self.target.as_ref()
    }

    /// The PEM files named.
    pub fn tls_files(&self) -> &RedisTlsFiles {
        &self.tls
    }

    /// The options for [`RedisStore::connect_with`], with the PEM files read; `None` when no
    /// server is named. Fails when a file cannot be read (naming the variable and the path)
    /// or when the named mode is not built in (features `cluster`, `sentinel`).
    pub fn options(&self) -> Result<Option<RedisOptions>> {
        let Some(target) = &self.target else {
            return Ok(None);
        };
        let options = match target {
            RedisTarget::Single(url) => RedisOptions::new(url.as_str()),
            #[cfg(feature = "cluster")]
            RedisTarget::Cluster(urls) => RedisOptions::cluster(urls.iter().cloned()),
            #[cfg(feature = "sentinel")]
            RedisTarget::Sentinel(sentinel) => {
                let mut options = RedisOptions::sentinel(
                    sentinel.master.as_str(),
                    sentinel.sentinels.iter().cloned(),
                );
                if let Some(user) = &sentinel.master_user {
                    options = options.with_master_username(user.as_str());
                }
                if let Some(password) = &sentinel.master_password {
                    options = options.with_master_password(password.as_str());
                }
                options
            }
            #[allow(
                unreachable_patterns,
                reason = "reachable without `cluster` or `sentinel`"
            )]
            _ => {
                return Err(Error::Config(format!(
                    "{} needs keygate's `cluster`/`sentinel` feature",
                    self.describe()
                )));
            }
        };
        self.with_tls(options).map(Some)
    }

    /// `options` with the CA and the client certificate of the environment.
    #[cfg_attr(
        not(any(feature = "tls-rustls", feature = "tls-native-tls")),
        allow(unused_mut)
    )]
    fn with_tls(&self, mut options: RedisOptions) -> Result<RedisOptions> {
        let ca = self
            .tls
            .ca_cert
            .as_deref()
            .map(|path| read_pem("REDIS_CA_CERT", path))
            .transpose()?;
        let client = match (&self.tls.client_cert, &self.tls.client_key) {
            (Some(cert_path), Some(key)) => {
                let cert = read_pem("REDIS_CLIENT_CERT", cert_path)?;
                // Named by its variable and file: the TLS stack's own words would blame
                // the server ("invalid peer certificate").
                if let Some(problem) = tls::client_certificate_problem(&cert) {
                    return Err(Error::Config(format!(
                        "REDIS_CLIENT_CERT {} {problem}",
                        cert_path.display()
                    )));
                }
                Some((cert, read_pem("REDIS_CLIENT_KEY", key)?))
            }
            _ => None,
        };
        #[cfg(any(feature = "tls-rustls", feature = "tls-native-tls"))]
        {
            if let Some(ca) = ca {
                options = options.with_ca_cert_pem(ca);
            }
            if let Some((cert, key)) = client {
                options = options.with_client_cert_pem(cert, key);
            }
            Ok(options)
        }
        #[cfg(not(any(feature = "tls-rustls", feature = "tls-native-tls")))]
        {
            if ca.is_some() || client.is_some() {
                return Err(Error::Config(
                    "REDIS_CA_CERT and REDIS_CLIENT_CERT need a TLS feature of keygate".into(),
                ));
            }
            Ok(options)
        }
    }

    /// Connects to the named servers; `None` when none is named. Connection errors are
    /// the store's; put [`describe`](Self::describe) beside them to say where.
    pub async fn connect(&self) -> Result<Option<RedisStore>> {
        match self.options()? {
            Some(options) => RedisStore::connect_with(options).await.map(Some),
            None => Ok(None),
        }
    }

    /// Where the servers are, for messages: addresses only, never user, password or
    /// database (`Redis at 10.0.0.1:6379`, `the Redis Cluster at a:7000, b:7001`).
    pub fn describe(&self) -> String {
        match &self.target {
            None => "no Redis (none of REDIS_URL, REDIS_CLUSTER_URLS, REDIS_SENTINEL_* is set)"
                .to_owned(),
            Some(RedisTarget::Single(url)) => format!("Redis at {}", redact(url)),
            Some(RedisTarget::Cluster(urls)) => {
                format!("the Redis Cluster at {}", redact_all(urls))
            }
            Some(RedisTarget::Sentinel(sentinel)) => format!(
                "the Redis master {:?} through the sentinels at {}",
                sentinel.master,
                redact_all(&sentinel.sentinels)
            ),
        }
    }
}

impl std::fmt::Debug for RedisEnv {
    // URLs may carry passwords: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEnv")
            .field("target", &self.describe())
            .field("tls", &self.tls)
            .finish()
    }
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisTarget::Single(_) => f.write_str("Single(<redacted>)"),
            RedisTarget::Cluster(urls) => write!(f, "Cluster({} seed nodes)", urls.len()),
            RedisTarget::Sentinel(s) => f
                .debug_tuple("Sentinel")
                .field(&s.master)
                .field(&format_args!("{} sentinels", s.sentinels.len()))
                .finish(),
        }
    }
}

impl std::fmt::Debug for SentinelSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelSettings")
            .field("master", &self.master)
            .field("sentinels", &self.sentinels.len())
            .field("master_user", &self.master_user)
            .field(
                "master_password",
                &self.master_password.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// `REDIS_SENTINEL_MASTER` with `REDIS_SENTINEL_URLS`, if set.
fn sentinel_settings(var: impl Fn(&str) -> Option<String>) -> Result<Option<SentinelSettings>> {
    match (var("REDIS_SENTINEL_MASTER"), var("REDIS_SENTINEL_URLS")) {
        (None, None) => Ok(None),
        (Some(master), Some(urls)) => Ok(Some(SentinelSettings {
            master: master.trim().to_owned(),
            sentinels: url_list("REDIS_SENTINEL_URLS", &urls)?,
            master_user: var("REDIS_SENTINEL_MASTER_USER"),
            master_password: var("REDIS_SENTINEL_MASTER_PASSWORD"),
        })),
        _ => Err(Error::Config(
            "REDIS_SENTINEL_MASTER and REDIS_SENTINEL_URLS must be set together".into(),
        )),
    }
}

/// Comma-separated URLs, each checked.
fn url_list(variable: &str, urls: &str) -> Result<Vec<String>> {
    let urls: Vec<String> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    if urls.is_empty() {
        return Err(Error::Config(format!("{variable} names no server")));
    }
    for url in &urls {
        check_url(variable, url)?;
    }
    Ok(urls)
}

/// A URL the redis client accepts; the message names the variable, never the URL.
fn check_url(variable: &str, url: &str) -> Result<()> {
    tls::parse(url).map(|_| ()).map_err(|e| match e {
        Error::Config(reason) => Error::Config(format!("{variable} is {reason}")),
        other => other,
    })
}

/// Reads a PEM file named by `variable`; the error names the variable and the path.
fn read_pem(variable: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::Config(format!("cannot read {variable} {}: {e}", path.display())))
}

/// `host:port` of a Redis URL, without scheme, user, password or database.
pub(crate) fn redact(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() {
        "<redacted>".to_owned()
    } else {
        host.to_owned()
    }
}

fn redact_all(urls: &[String]) -> String {
    urls.iter()
        .map(|u| redact(u))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<RedisEnv> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        RedisEnv::from_lookup(|name| map.get(name).map(|v| (*v).to_owned()))
    }

    #[test]
    fn nothing_set_is_no_redis() {
        let e = env(&[("REDIS_URL", " ")]).unwrap();
        assert_eq!(e.target(), None);
        assert!(e.options().unwrap().is_none());
    }

    #[cfg(feature = "cluster")]
    #[test]
    fn cluster_wins_over_single() {
        let e = env(&[
            ("REDIS_URL", "redis://127.0.0.1:1"),
            (
                "REDIS_CLUSTER_URLS",
                "redis://127.0.0.1:7000, redis://127.0.0.1:7001",
            ),
        ])
        .unwrap();
        assert_eq!(
            e.target(),
            Some(&RedisTarget::Cluster(vec![
                "redis://127.0.0.1:7000".into(),
                "redis://127.0.0.1:7001".into()
            ]))
        );
        assert!(e.options().unwrap().unwrap().is_cluster());
        assert_eq!(
            e.describe(),
            "the Redis Cluster at 127.0.0.1:7000, 127.0.0.1:7001"
        );
    }

    #[test]
    fn sentinel_wins_over_single_and_tls_files_are_read() {
        let e = env(&[
            ("REDIS_URL", "redis://127.0.0.1:1"),
            ("REDIS_SENTINEL_MASTER", "mymaster"),
            (
                "REDIS_SENTINEL_URLS",
                "redis://127.0.0.1:26379,redis://127.0.0.1:26380",
            ),
            ("REDIS_SENTINEL_MASTER_PASSWORD", "s3cret"),
            ("REDIS_CA_CERT", "/nonexistent/ca.pem"),
        ])
        .unwrap();
        match e.target() {
            Some(RedisTarget::Sentinel(s)) => {
                assert_eq!(s.master, "mymaster");
                assert_eq!(s.sentinels.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            e.tls_files().ca_cert,
            Some(PathBuf::from("/nonexistent/ca.pem"))
        );
        assert!(!format!("{e:?}").contains("s3cret"));
        let unreadable = e.options().unwrap_err().to_string();
        assert!(unreadable.contains("REDIS_CA_CERT"), "{unreadable}");
        assert!(env(&[("REDIS_SENTINEL_MASTER", "mymaster")]).is_err());
        assert!(env(&[("REDIS_CLIENT_CERT", "/c.pem")]).is_err());
        assert!(
            env(&[
                ("REDIS_SENTINEL_MASTER", "m"),
                ("REDIS_SENTINEL_URLS", "redis://127.0.0.1:26379"),
                ("REDIS_CLUSTER_URLS", "redis://127.0.0.1:7000"),
            ])
            .is_err()
        );
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_secrets() {
        let e = env(&[("REDIS_URL", "http://:hunter2@example")]).unwrap_err();
        assert!(e.to_string().contains("REDIS_URL"), "{e}");
        assert!(!e.to_string().contains("hunter2"));
        let e = env(&[("REDIS_CLUSTER_URLS", " , ")]).unwrap_err();
        assert!(e.to_string().contains("names no server"), "{e}");
    }

    #[test]
    fn redaction_keeps_only_the_address() {
        assert_eq!(redact("redis://:secret@10.0.0.1:6380/2"), "10.0.0.1:6380");
        assert_eq!(redact("redis://user:p@ss@host"), "host");
        assert_eq!(redact("redis://127.0.0.1:6379"), "127.0.0.1:6379");
        assert_eq!(redact("rediss://h:1/#insecure"), "h:1");
        assert_eq!(redact("redis:///"), "<redacted>");
    }
}
