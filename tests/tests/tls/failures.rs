//! What goes wrong, and how fast it is reported: a wrong CA, a missing client certificate,
//! an expired server certificate and a plain-text server behind `rediss://` each fail the
//! connect within the connect timeout, with an error that names the cause. `#insecure`
//! connects anyway, and says so in a warning.

use std::time::{Duration, Instant};

use keygate::{Error, RedisOptions, RedisStore};
use keygate_tests::fixtures::with_test_certificates;
use keygate_tests::log_capture::LogCapture;
use keygate_tests::tls::Pki;
use keygate_tests::{RedisCluster, RedisServer, TlsServer};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects with `options` (connect timeout 2 s); returns the error and how long it took.
async fn failed_connect(options: RedisOptions) -> (String, Duration) {
    let started = Instant::now();
    let result = RedisStore::connect_with(options.with_connect_timeout(CONNECT_TIMEOUT)).await;
    let took = started.elapsed();
    let error = match result {
        Ok(_) => panic!("the connect succeeded"),
        Err(e) => e,
    };
    assert!(error.is_backend(), "a backend error: {error:?}");
    assert!(
        !matches!(error, Error::Backend(keygate::BackendError::Timeout(_))),
        "the cause, not a timeout: {error}"
    );
    assert!(
        took < CONNECT_TIMEOUT,
        "failed within the connect timeout, took {took:?}"
    );
    (error.to_string(), took)
}

fn tls_server(require_client_cert: bool, expired_cert: bool) -> RedisServer {
    RedisServer::start_tls(
        TlsServer {
            require_client_cert,
            expired_cert,
        },
        &[],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_is_named() {
    let pki = Pki::shared();
    let server = tls_server(false, false);
    let (error, took) =
        failed_connect(RedisOptions::new(server.url()).with_ca_cert_pem(pki.other_ca_pem.clone()))
            .await;
    eprintln!("wrong CA: {error} ({took:?})");
    assert!(error.contains("UnknownIssuer"), "{error}");
    // The platform's roots do not know the test CA either.
    let (error, _) = failed_connect(RedisOptions::new(server.url())).await;
    assert!(error.contains("UnknownIssuer"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_client_certificate_is_named() {
    let pki = Pki::shared();
    let server = tls_server(true, false);
    let (error, took) =
        failed_connect(RedisOptions::new(server.url()).with_ca_cert_pem(pki.ca_pem.clone())).await;
    eprintln!("no client certificate: {error} ({took:?})");
    assert!(error.contains("CertificateRequired"), "{error}");
    // With it, the same server accepts the connection.
    let store = RedisStore::connect_with(with_test_certificates(RedisOptions::new(server.url())))
        .await
        .unwrap();
    assert!(!store.is_cluster());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_named() {
    let server = tls_server(false, true);
    let (error, took) =
        failed_connect(with_test_certificates(RedisOptions::new(server.url()))).await;
    eprintln!("expired certificate: {error} ({took:?})");
    assert!(error.contains("certificate expired"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_server_behind_rediss_is_named() {
    let server = RedisServer::start();
    let url = server.url().replace("redis://", "rediss://");
    let (error, took) = failed_connect(with_test_certificates(RedisOptions::new(url))).await;
    eprintln!("plain server behind rediss://: {error} ({took:?})");
    assert!(error.contains("plain text, not TLS"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_on_a_cluster_is_named() {
    let pki = Pki::shared();
    let cluster = tokio::task::spawn_blocking(RedisCluster::shared_tls)
        .await
        .unwrap();
    let (error, took) = failed_connect(
        RedisOptions::cluster(cluster.urls()).with_ca_cert_pem(pki.other_ca_pem.clone()),
    )
    .await;
    eprintln!("cluster, wrong CA: {error} ({took:?})");
    assert!(error.contains("UnknownIssuer"), "{error}");
}

#[tokio::test]
async fn certificates_with_a_plain_url_are_a_configuration_error() {
    let pki = Pki::shared();
    let error = RedisStore::connect_with(
        RedisOptions::new("redis://127.0.0.1:1").with_ca_cert_pem(pki.ca_pem.clone()),
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(error, Error::Config(_)), "{error:?}");
    let error = RedisStore::connect_with(
        RedisOptions::new("rediss://127.0.0.1:1").with_ca_cert_pem("not a PEM file"),
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(error, Error::Config(_)), "{error:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn insecure_connects_to_anything_and_warns() {
    let captured = LogCapture::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // An expired certificate of a CA nobody configured: only `#insecure` gets through.
    let server = tls_server(false, true);
    let url = format!("{}/#insecure", server.url());
    let store = RedisStore::connect_with(RedisOptions::new(url))
        .await
        .unwrap();
    assert!(!store.is_cluster());
    let logs = captured.text();
    assert!(
        logs.contains("WARN") && logs.contains("certificate verification is OFF"),
        "{logs}"
    );
}

/// An X.509 v1 client certificate (what `openssl x509 -req` writes without an extension
/// file), which rustls refuses to present: the error names the client certificate and the
/// version, in one line, before any connection is tried, where it used to be the
/// misleading "invalid peer certificate: UnsupportedCertVersion".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_client_certificate_is_named() {
    let pki = Pki::shared();
    let server = tls_server(true, false);
    let options = RedisOptions::new(server.url())
        .with_ca_cert_pem(pki.ca_pem.clone())
        .with_client_cert_pem(
            pki.v1_client.cert_pem.clone(),
            pki.v1_client.key_pem.clone(),
        )
        .with_connect_timeout(CONNECT_TIMEOUT);
    let error = RedisStore::connect_with(options).await.err().unwrap();
    let line = error.to_string();
    eprintln!("v1 client certificate: {line}");
    assert!(matches!(error, Error::Config(_)), "{error:?}");
    assert!(
        line.contains("client certificate") && line.contains("X.509 v1"),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1, "{line}");
}
