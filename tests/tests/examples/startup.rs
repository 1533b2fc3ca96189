//! Starting the examples: the embedded backend without Redis, and one-line failures.

use std::net::TcpListener;

use serde_json::json;

use crate::http::Client;
use crate::launcher::Process;
use crate::login::phone;

/// docs/http-api.md § Start-up: without `REDIS_URL` an example says it uses the embedded backend and serves the login
/// flow: the code comes from its log (the development sender), as a person would read it.
pub async fn embedded_backend_without_redis(example: &'static str) {
    let mut process = Process::spawn(example, &[("BIND_ADDR", "127.0.0.1:0".to_owned())]);
    let addr = process.ready().await;
    let ready = process
        .stdout
        .find(" ready on http://")
        .expect("ready line");
    assert!(
        ready.contains("(backend: memory) (session near cache: off)"),
        "{ready}"
    );
    assert!(
        process.stdout.find("embedded in-memory backend").is_some(),
        "the embedded backend is announced: {:?}",
        process.stdout.all()
    );
    assert_eq!(
        process
            .stdout
            .all()
            .iter()
            .filter(|l| l.contains(" ready on http://"))
            .count(),
        1,
        "exactly one ready line"
    );
    // No DATABASE_URL: the default SQLite file in the working directory.
    assert!(
        process.dir().join("keygate-example.sqlite3").exists(),
        "the default database file is in the working directory"
    );

    let http = Client::new(addr);
    let phone = phone();
    http.post(&format!("/user/code?phone={phone}"))
        .send()
        .await
        .envelope(200);
    let code = process.logged_code(&phone).await;
    let token = http
        .post("/user/login")
        .json(&json!({"phone": phone, "code": code}))
        .send()
        .await
        .data();
    let token = token.as_str().expect("a token");
    let me = http.get("/user/me").token(token).send().await.data();
    assert!(me["id"].as_u64().is_some(), "{me}");
    assert!(
        me["nickName"]
            .as_str()
            .is_some_and(|n| n.starts_with("user_")),
        "{me}"
    );
    // Tokens never reach the log; only the development sender logs codes.
    let log = process.stdout.all().join("\n");
    assert!(!log.contains(token), "the token was logged");
}

/// Runs `example` with `env` and expects it to exit non-zero with one line on stderr
/// containing `expected`.
async fn fails_to_start(example: &'static str, env: &[(&str, String)], expected: &str) {
    let mut process = Process::spawn(example, env);
    let status = process.exit_status().await;
    assert!(!status.success(), "{example} started with {env:?}");
    let stderr = process.stderr.all();
    assert_eq!(stderr.len(), 1, "exactly one line on stderr: {stderr:?}");
    assert!(
        stderr[0].contains(expected),
        "{expected:?} in the error line {:?}",
        stderr[0]
    );
    assert!(
        process.stdout.find(" ready on ").is_none(),
        "no ready line when start-up fails"
    );
}

/// docs/http-api.md § Start-up: bad URLs, unreachable Redis, a taken port and a bad
/// database: non-zero exit, one line.
pub async fn startup_failures_are_one_line(example: &'static str) {
    let any_port = || ("BIND_ADDR", "127.0.0.1:0".to_owned());
    fails_to_start(
        example,
        &[
            any_port(),
            ("REDIS_URL", "http://:hunter2@127.0.0.1:1".to_owned()),
        ],
        "REDIS_URL",
    )
    .await;
    let mut process = Process::spawn(
        example,
        &[
            any_port(),
            ("REDIS_URL", "http://:hunter2@127.0.0.1:1".to_owned()),
        ],
    );
    process.exit_status().await;
    assert!(
        !process.stderr.all().concat().contains("hunter2"),
        "the password is never printed"
    );

    // Nobody listens on a fresh free port.
    let nobody = format!("redis://127.0.0.1:{}", keygate_tests::free_port());
    fails_to_start(example, &[any_port(), ("REDIS_URL", nobody)], "Redis").await;

    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a port to take");
    let addr = taken.local_addr().expect("addr");
    fails_to_start(
        example,
        &[("BIND_ADDR", addr.to_string())],
        &format!("cannot listen on {addr}"),
    )
    .await;

    fails_to_start(
        example,
        &[
            any_port(),
            ("DATABASE_URL", "postgres://db/users".to_owned()),
        ],
        "DATABASE_URL",
    )
    .await;
    fails_to_start(
        example,
        &[
            any_port(),
            (
                "DATABASE_URL",
                "sqlite:///nonexistent-dir/x/users.db".to_owned(),
            ),
        ],
        "DATABASE_URL",
    )
    .await;
    fails_to_start(
        example,
        &[("BIND_ADDR", "nonsense".to_owned())],
        "BIND_ADDR",
    )
    .await;
    drop(taken);
}

/// docs/http-api.md § Start-up: an `ADMIN_TOKEN` under 32 characters is refused at start
/// (non-zero exit, one line naming the variable, never the token); 32 characters start.
pub async fn a_short_admin_token_refuses_to_start(example: &'static str) {
    let any_port = || ("BIND_ADDR", "127.0.0.1:0".to_owned());
    for short in ["Q", "0123456789abcdef0123456789abcde"] {
        let env = [any_port(), ("ADMIN_TOKEN", short.to_owned())];
        fails_to_start(example, &env, "ADMIN_TOKEN").await;
        let mut process = Process::spawn(example, &env);
        process.exit_status().await;
        let stderr = process.stderr.all().concat();
        assert!(
            stderr.contains("at least 32 characters"),
            "the line says why: {stderr}"
        );
        assert!(!stderr.contains(short), "the token is never printed");
    }
    let mut process = Process::spawn(
        example,
        &[
            any_port(),
            ("ADMIN_TOKEN", "0123456789abcdef0123456789abcdef".to_owned()),
        ],
    );
    process.ready().await;
}

/// Redis over TLS: a wrong CA, a plain-text server behind `rediss://`, a missing client
/// certificate and an X.509 v1 one each make the example exit with status 1 and one line
/// naming the cause,
/// within the connect timeout; with the right CA and client certificate (mutual TLS) it
/// serves.
pub async fn tls_redis_failures_are_one_line(example: &'static str) {
    let pki = keygate_tests::tls::Pki::shared();
    let any_port = || ("BIND_ADDR", "127.0.0.1:0".to_owned());
    let path = |p: &std::path::Path| p.display().to_string();
    let server = keygate_tests::RedisServer::start_tls(
        keygate_tests::TlsServer {
            require_client_cert: true,
            ..Default::default()
        },
        &[],
    );
    let client_cert = || {
        [
            ("REDIS_CLIENT_CERT", path(&pki.client.cert_path)),
            ("REDIS_CLIENT_KEY", path(&pki.client.key_path)),
        ]
    };
    let mut wrong_ca = vec![
        any_port(),
        ("REDIS_URL", server.url()),
        ("REDIS_CA_CERT", path(&pki.other_ca_path)),
    ];
    wrong_ca.extend(client_cert());
    fails_to_start_with_1(
        example,
        &wrong_ca,
        "invalid peer certificate: UnknownIssuer",
    )
    .await;

    let no_client_cert = [
        any_port(),
        ("REDIS_URL", server.url()),
        ("REDIS_CA_CERT", path(&pki.ca_path)),
    ];
    fails_to_start_with_1(example, &no_client_cert, "CertificateRequired").await;

    // An X.509 v1 client certificate: the file and the reason, not "invalid peer
    // certificate" as if the server's were at fault.
    let v1_client = [
        any_port(),
        ("REDIS_URL", server.url()),
        ("REDIS_CA_CERT", path(&pki.ca_path)),
        ("REDIS_CLIENT_CERT", path(&pki.v1_client.cert_path)),
        ("REDIS_CLIENT_KEY", path(&pki.v1_client.key_path)),
    ];
    let expected = format!(
        "REDIS_CLIENT_CERT {} is an X.509 v1 certificate",
        path(&pki.v1_client.cert_path)
    );
    fails_to_start_with_1(example, &v1_client, &expected).await;

    let plain = keygate_tests::RedisServer::start();
    let plain_url = plain.url().replace("redis://", "rediss://");
    fails_to_start_with_1(
        example,
        &[
            any_port(),
            ("REDIS_URL", plain_url),
            ("REDIS_CA_CERT", path(&pki.ca_path)),
        ],
        "plain text, not TLS",
    )
    .await;

    let mut right = vec![
        any_port(),
        ("REDIS_URL", server.url()),
        ("REDIS_CA_CERT", path(&pki.ca_path)),
    ];
    right.extend(client_cert());
    let mut process = Process::spawn(example, &right);
    process.ready().await;
    let ready = process
        .stdout
        .find(" ready on http://")
        .expect("ready line");
    assert!(ready.contains("(backend: redis)"), "{ready}");
}

/// [`fails_to_start`], and the exit status is exactly 1, within the connect timeout (2 s)
/// plus time for the process to start on a busy machine.
async fn fails_to_start_with_1(example: &'static str, env: &[(&str, String)], expected: &str) {
    let mut process = Process::spawn(example, env);
    let started = std::time::Instant::now();
    let status = process.exit_status().await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{example} took {:?} to fail",
        started.elapsed()
    );
    assert_eq!(status.code(), Some(1), "{example} with {env:?}");
    let stderr = process.stderr.all();
    assert_eq!(stderr.len(), 1, "exactly one line on stderr: {stderr:?}");
    assert!(
        stderr[0].contains(expected),
        "{expected:?} in the error line {:?}",
        stderr[0]
    );
    assert!(
        process.stdout.find(" ready on ").is_none(),
        "no ready line when start-up fails"
    );
}
