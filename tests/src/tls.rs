//! A private certificate authority made at run time (with rcgen), and the certificates the
//! TLS servers and clients of the tests use: a server certificate for `127.0.0.1` and
//! `localhost`, a client certificate for mutual TLS, an expired server certificate, and a
//! second, unrelated CA (the "wrong CA").
//!
//! One set per test process ([`Pki::shared`]), written to a temp directory that is removed
//! when the process exits.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

use crate::cluster::TempDir;

/// A certificate and its key, in PEM, and where they are written.
#[derive(Clone)]
pub struct CertFiles {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
    /// Where the certificate is written.
    pub cert_path: PathBuf,
    /// Where the key is written.
    pub key_path: PathBuf,
}

/// The test PKI.
pub struct Pki {
    /// The CA's certificate, PEM.
    pub ca_pem: String,
    /// Where the CA's certificate is written.
    pub ca_path: PathBuf,
    /// The servers' certificate (SAN `127.0.0.1`, `localhost`), valid now.
    pub server: CertFiles,
    /// A server certificate that expired a month ago (same CA, same names).
    pub expired_server: CertFiles,
    /// The client certificate for mutual TLS.
    pub client: CertFiles,
    /// Another CA that signed none of the above.
    pub other_ca_pem: String,
    /// Where the other CA's certificate is written.
    pub other_ca_path: PathBuf,
    _dir: TempDir,
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA cert")
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    name: &str,
    usages: Vec<ExtendedKeyUsagePurpose>,
    expired: bool,
    dir: &Path,
) -> CertFiles {
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("leaf params");
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = usages;
    let now = time::OffsetDateTime::now_utc();
    if expired {
        params.not_before = now - time::Duration::days(60);
        params.not_after = now - time::Duration::days(30);
    } else {
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(30);
    }
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, issuer).expect("leaf cert");
    let files = CertFiles {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_path: dir.join(format!("{name}.crt")),
        key_path: dir.join(format!("{name}.key")),
    };
    write(&files.cert_path, &files.cert_pem);
    write(&files.key_path, &files.key_pem);
    files
}

impl Pki {
    /// Makes a CA and its certificates in a fresh temp directory.
    pub fn generate() -> Self {
        let dir = TempDir::new("pki");
        let authority = ca("keygate test CA");
        let other = ca("some other CA");
        let ca_path = dir.path.join("ca.crt");
        write(&ca_path, &authority.pem());
        let other_ca_path = dir.path.join("other-ca.crt");
        write(&other_ca_path, &other.pem());
        let server = leaf(
            &authority,
            "server",
            // Servers are clients too: of each other on the cluster bus and in replication.
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            false,
            &dir.path,
        );
        let expired_server = leaf(
            &authority,
            "expired-server",
            vec![ExtendedKeyUsagePurpose::ServerAuth],
            true,
            &dir.path,
        );
        let client = leaf(
            &authority,
            "client",
            vec![ExtendedKeyUsagePurpose::ClientAuth],
            false,
            &dir.path,
        );
        Self {
            ca_pem: authority.pem(),
            ca_path,
            server,
            expired_server,
            client,
            other_ca_pem: other.pem(),
            other_ca_path,
            _dir: dir,
        }
    }

    /// The PKI shared by every test of the process.
    pub fn shared() -> Arc<Pki> {
        static SHARED: OnceLock<Arc<Pki>> = OnceLock::new();
        Arc::clone(SHARED.get_or_init(|| Arc::new(Pki::generate())))
    }

    /// What a trusting client of the test servers presents: this CA and the client
    /// certificate.
    pub fn client_certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: self.client.cert_pem.clone().into_bytes(),
                client_key: self.client.key_pem.clone().into_bytes(),
            }),
            root_cert: Some(self.ca_pem.clone().into_bytes()),
        }
    }

    /// `redis-server` arguments serving TLS only, on `port`, with `cert` and this CA;
    /// `require_client_cert` turns on mutual TLS (`tls-auth-clients yes`).
    pub fn server_args(
        &self,
        port: u16,
        cert: &CertFiles,
        require_client_cert: bool,
    ) -> Vec<String> {
        vec![
            "--port".to_owned(),
            "0".to_owned(),
            "--tls-port".to_owned(),
            port.to_string(),
            "--tls-cert-file".to_owned(),
            cert.cert_path.display().to_string(),
            "--tls-key-file".to_owned(),
            cert.key_path.display().to_string(),
            "--tls-ca-cert-file".to_owned(),
            self.ca_path.display().to_string(),
            "--tls-auth-clients".to_owned(),
            if require_client_cert { "yes" } else { "no" }.to_owned(),
        ]
    }
}

/// Installs rustls's `ring` provider for the harness's own connections, once.
pub(crate) fn crypto_provider() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    });
}

/// A client for a test TLS server on `port`, trusting the test CA and presenting the
/// client certificate; `verify` false skips verification (for the expired-certificate
/// server).
pub(crate) fn admin_client(
    pki: &Pki,
    port: u16,
    password: Option<&str>,
    verify: bool,
) -> redis::RedisResult<redis::Client> {
    crypto_provider();
    let auth = password.map(|p| format!(":{p}@")).unwrap_or_default();
    let fragment = if verify { "" } else { "/#insecure" };
    redis::Client::build_with_tls(
        format!("rediss://{auth}127.0.0.1:{port}{fragment}"),
        pki.client_certificates(),
    )
}
