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
            if let Some(problem) = client_certificate_problem(cert) {
                return Err(Error::Config(format!(
                    "the Redis client certificate {problem}"
                )));
            }
        }
        if self.is_set() && !TLS_BUILT_IN {
            return Err(no_tls_feature());
        }
        Ok(())
    }
}

/// Why the TLS stack cannot present this client certificate (the first of the PEM
/// chain), as the end of a sentence naming the file; `None` when nothing is known against
/// it. rustls (webpki) takes only X.509 v3 end-entity certificates and would otherwise say
/// "invalid peer certificate: UnsupportedCertVersion", as if the server's were at fault.
/// CA certificates may be v1: rustls takes them as trust anchors.
pub(crate) fn client_certificate_problem(pem: &[u8]) -> Option<String> {
    #[cfg(feature = "tls-rustls")]
    {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let first = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
        match x509_version(&first)? {
            3 => None,
            version => Some(format!(
                "is an X.509 v{version} certificate, which rustls refuses to present (it needs \
                 v3): issue it with extensions, e.g. `openssl x509 -req ... -extfile` with \
                 `extendedKeyUsage=clientAuth`"
            )),
        }
    }
    #[cfg(not(feature = "tls-rustls"))]
    {
        let _ = pem;
        None
    }
}

/// The X.509 version (1 to 3) of a DER certificate, from its `tbsCertificate`'s explicit
/// `[0] version` (absent: v1); `None` when the DER does not have that shape.
#[cfg_attr(not(feature = "tls-rustls"), allow(dead_code))]
fn x509_version(der: &[u8]) -> Option<u8> {
    /// The content of the DER element at the start of `input` if its tag is `tag`, and
    /// what follows it.
    fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&found, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        if found != tag {
            return None;
        }
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let len = rest[..count]
                .iter()
                .fold(0usize, |len, b| len << 8 | usize::from(*b));
            (len, &rest[count..])
        };
        (rest.len() >= len).then(|| rest.split_at(len))
    }
    let (certificate, _) = element(der, 0x30)?;
    let (tbs, _) = element(certificate, 0x30)?;
    match element(tbs, 0xa0) {
        None => Some(1),
        Some((explicit, _)) => match element(explicit, 0x02)? {
            ([version @ 0..=2], _) => Some(version + 1),
            _ => None,
        },
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
    fn x509_versions_are_read_from_the_der() {
        // SEQUENCE { SEQUENCE { [0] { INTEGER 2 }, INTEGER 1 } }: v3.
        let v3 = [
            0x30, 0x09, 0x30, 0x07, 0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x01,
        ];
        assert_eq!(x509_version(&v3), Some(3));
        assert_eq!(x509_version(&v3[..6]), None, "truncated");
        // No `[0] version`: v1.
        let v1 = [0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x01];
        assert_eq!(x509_version(&v1), Some(1));
        assert_eq!(x509_version(b"not DER"), None);
        assert_eq!(x509_version(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
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
