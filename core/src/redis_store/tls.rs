//! TLS settings shared by the three connection modes (a private CA, a client certificate
//! for mutual TLS) and the one place where URLs become clients.

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use crate::error::Error;

/// Whether this build can speak TLS to Redis.
pub(crate) const TLS_BUILT_IN: bool = cfg!(any(feature = "tls-rustls", feature = "tls-native-tls"));

/// Certificates for `rediss://` connections, in PEM. Never printed.
#[derive(Clone, Default)]
pub(crate) struct TlsFiles {
    /// The CA (one or more certificates) to trust instead of the platform's roots.
    pub(crate) ca: Option<Vec<u8>>,
    /// Certificate chain and private key presented to servers that ask for one.
    pub(crate) client: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsFiles {
    /// Whether a CA or a client certificate was given.
    pub(crate) fn is_set(&self) -> bool {
        self.ca.is_some() || self.client.is_some()
    }

    /// The redis crate's form.
    #[cfg(any(feature = "tls-rustls", feature = "tls-native-tls"))]
    pub(crate) fn certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self
                .client
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
            root_cert: self.ca.clone(),
        }
    }

    /// Refuses certificates that cannot work, before any connection is tried.
    pub(crate) fn check(&self) -> Result<(), Error> {
        const BEGIN_CERT: &[u8] = b"-----BEGIN CERTIFICATE-----";
        let has_cert = |pem: &[u8]| pem.windows(BEGIN_CERT.len()).any(|w| w == BEGIN_CERT);
        if let Some(ca) = &self.ca
            && !has_cert(ca)
        {
            return Err(Error::Config(
                "the Redis CA certificate is not a PEM certificate (no BEGIN CERTIFICATE block)"
                    .into(),
            ));
        }
        if let Some((cert, key)) = &self.client {
            if !has_cert(cert) {
                return Err(Error::Config(
                    "the Redis client certificate is not a PEM certificate (no BEGIN CERTIFICATE \
                     block)"
                        .into(),
                ));
            }
            if !key
                .windows(b"PRIVATE KEY-----".len())
                .any(|w| w == b"PRIVATE KEY-----")
            {
                return Err(Error::Config(
                    "the Redis client key is not a PEM private key".into(),
                ));
            }
        }
        if self.is_set() && !TLS_BUILT_IN {
            return Err(no_tls_feature());
        }
        Ok(())
    }
}

fn no_tls_feature() -> Error {
    Error::Config(
        "TLS to Redis (rediss:// or certificates) needs keygate's `tls-rustls` or \
         `tls-native-tls` feature"
            .into(),
    )
}

/// Parses a URL; `rediss://` without a TLS feature is a configuration error that says so.
/// Errors never repeat the URL (it may hold a password).
pub(crate) fn parse(url: &str) -> Result<ConnectionInfo, Error> {
    if !TLS_BUILT_IN && url.trim_start().to_ascii_lowercase().starts_with("rediss:") {
        return Err(no_tls_feature());
    }
    url.into_connection_info().map_err(|e| {
        Error::Config(format!(
            "not a valid Redis URL (redis://[user:password@]host[:port][/db], rediss:// for \
             TLS): {:?}",
            e.kind()
        ))
    })
}

/// Whether the URL asks for TLS.
pub(crate) fn is_tls(info: &ConnectionInfo) -> bool {
    matches!(info.addr(), ConnectionAddr::TcpTls { .. })
}

/// Whether the URL asks for TLS without verifying the server (`#insecure`).
pub(crate) fn is_insecure(info: &ConnectionInfo) -> bool {
    matches!(info.addr(), ConnectionAddr::TcpTls { insecure: true, .. })
}

/// Logs, loudly, that some URL turns certificate verification off.
pub(crate) fn warn_if_insecure<'a>(urls: impl IntoIterator<Item = &'a str>) {
    let insecure = urls
        .into_iter()
        .filter_map(|url| parse(url).ok())
        .any(|info| is_insecure(&info));
    if insecure {
        tracing::warn!(
            "TLS certificate verification is OFF for Redis (`#insecure` in a URL): the server \
             is not authenticated, so anyone on the network path can read and change sessions, \
             codes and locks. Trust the server's CA instead (RedisOptions::with_ca_cert_pem)."
        );
    }
}

/// A client for this URL with these certificates. Certificates without `rediss://` are a
/// configuration error (they would silently not be used).
pub(crate) fn client(url: &str, tls: &TlsFiles) -> Result<redis::Client, Error> {
    let info = parse(url)?;
    if !is_tls(&info) {
        if tls.is_set() {
            return Err(Error::Config(
                "a Redis CA or client certificate was given, but the URL is not rediss://".into(),
            ));
        }
        return Ok(redis::Client::open(info)?);
    }
    #[cfg(any(feature = "tls-rustls", feature = "tls-native-tls"))]
    if tls.is_set() {
        return redis::Client::build_with_tls(info, tls.certificates())
            .map_err(|e| Error::Config(format!("the Redis TLS certificates cannot be used: {e}")));
    }
    Ok(redis::Client::open(info)?)
}

/// `host:port` of a `rediss://` URL, for the plain-text probe.
pub(crate) fn tls_address(url: &str) -> Option<(String, u16)> {
    match parse(url).ok()?.addr() {
        ConnectionAddr::TcpTls { host, port, .. } => Some((host.clone(), *port)),
        _ => None,
    }
}

/// Whether the server at `host:port` answers a plain-text `PING` with a RESP reply
/// (`+PONG`, or an error such as `-NOAUTH`): then it does not speak TLS there. Bounded by
/// `within`.
pub(crate) async fn answers_plain_text(host: &str, port: u16, within: std::time::Duration) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut reply = [0u8; 1];
        stream.read_exact(&mut reply).await.ok()?;
        Some(matches!(reply[0], b'+' | b'-'))
    };
    matches!(tokio::time::timeout(within, probe).await, Ok(Some(true)))
}

/// Makes sure rustls has a crypto provider: `ring`'s, unless the application installed one.
#[cfg(feature = "tls-rustls")]
pub(crate) fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may have installed one meanwhile; either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Without rustls there is nothing to install.
#[cfg(not(feature = "tls-rustls"))]
pub(crate) fn ensure_crypto_provider() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_without_rediss_are_refused() {
        let tls = TlsFiles {
            ca: Some(b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".to_vec()),
            client: None,
        };
        let error = client("redis://127.0.0.1:6379", &tls).err();
        assert!(
            matches!(&error, Some(Error::Config(m)) if m.contains("not rediss://")),
            "{error:?}"
        );
    }

    #[test]
    fn garbage_pem_is_refused_before_connecting() {
        let tls = TlsFiles {
            ca: Some(b"not a certificate".to_vec()),
            client: None,
        };
        assert!(matches!(tls.check(), Err(Error::Config(m)) if m.contains("CA certificate")));
    }

    #[test]
    fn url_errors_do_not_echo_the_password() {
        let error = parse("http://:hunter2@host").err();
        assert!(!format!("{error:?}").contains("hunter2"));
    }

    #[cfg(feature = "tls-rustls")]
    #[test]
    fn insecure_is_recognised() {
        let info = parse("rediss://127.0.0.1:6380/#insecure").ok();
        assert!(info.as_ref().is_some_and(is_insecure));
        let info = parse("rediss://127.0.0.1:6380").ok();
        assert!(info.as_ref().is_some_and(|i| is_tls(i) && !is_insecure(i)));
    }
}
