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

/// The common name of the test CA.
const CA_NAME: &str = "keygate test CA";

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
    /// A client certificate of the same CA in X.509 v1 (no extensions), which rustls
    /// refuses to present ([`v1_certificate`]).
    pub v1_client: CertFiles,
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
        let authority = ca(CA_NAME);
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
        let v1_client = {
            let key = KeyPair::generate().expect("v1 client key");
            let files = CertFiles {
                cert_pem: v1_certificate("v1-client", &key, CA_NAME, authority.key()),
                key_pem: key.serialize_pem(),
                cert_path: dir.path.join("v1-client.crt"),
                key_path: dir.path.join("v1-client.key"),
            };
            write(&files.cert_path, &files.cert_pem);
            write(&files.key_path, &files.key_pem);
            files
        };
        Self {
            ca_pem: authority.pem(),
            ca_path,
            server,
            expired_server,
            client,
            v1_client,
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

/// An X.509 **v1** certificate for `name` (no version field, no extensions: what
/// `openssl x509 -req` writes without an extension file), for `key`, issued under the
/// name `issuer_cn` and signed with `issuer_key` (the certificate's own key for a
/// self-signed one), valid from yesterday for 30 days; in PEM. rcgen writes v3 only, so
/// the DER is put together here: ECDSA P-256 with SHA-256, which is what
/// [`KeyPair::generate`] makes.
pub fn v1_certificate(name: &str, key: &KeyPair, issuer_cn: &str, issuer_key: &KeyPair) -> String {
    use rcgen::{PublicKeyData, SigningKey};
    const ECDSA_SHA256: &[u8] = &[
        0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
    ];
    let common_name = |cn: &str| {
        let attribute = der(
            0x30,
            &[der(0x06, &[0x55, 0x04, 0x03]), der(0x0c, cn.as_bytes())].concat(),
        );
        der(0x30, &der(0x31, &attribute))
    };
    let utc = |t: time::OffsetDateTime| {
        let text = format!(
            "{:02}{:02}{:02}{:02}{:02}{:02}Z",
            t.year() % 100,
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        der(0x17, text.as_bytes())
    };
    let now = time::OffsetDateTime::now_utc();
    let serial = now.unix_timestamp_nanos().to_be_bytes();
    let tbs = der(
        0x30,
        &[
            // No `[0] version`: v1.
            der(0x02, &[&[0x00][..], &serial[8..]].concat()),
            ECDSA_SHA256.to_vec(),
            common_name(issuer_cn),
            der(
                0x30,
                &[
                    utc(now - time::Duration::days(1)),
                    utc(now + time::Duration::days(30)),
                ]
                .concat(),
            ),
            common_name(name),
            key.subject_public_key_info(),
        ]
        .concat(),
    );
    let signature = issuer_key.sign(&tbs).expect("sign the certificate");
    let certificate = der(
        0x30,
        &[
            tbs,
            ECDSA_SHA256.to_vec(),
            der(0x03, &[&[0x00][..], &signature].concat()),
        ]
        .concat(),
    );
    pem("CERTIFICATE", &certificate)
}

/// One DER element: `tag`, its length, `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// `der` as a PEM block labelled `label`.
fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                text.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                text.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
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
