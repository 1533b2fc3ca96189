//! Runs the flows with every log at TRACE (keygate's tracing and the redis crate's `log`
//! records) and checks that no token, code or password reaches the logs. The development
//! code sender, which exists to show codes, is the one exception, and proves the capture
//! works.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use keygate::SessionUser as _;
use std::time::Duration;

use keygate::code::{CodeConfig, Codes, LogCodeSender};
use keygate::lock::Locks;
use keygate::rate_limit::{FailureMode, Quota, RateLimiter};
use keygate::{Keygate, RedisOptions, RedisStore, SessionConfig, SessionManager, Token};
use keygate_tests::RedisServer;
use keygate_tests::fixtures::{Authorization, CapturingSender, JavaUser};
use keygate_tests::log_capture::LogCapture;

const PASSWORD: &str = "hunter2-very-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs() {
    let capture = LogCapture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        // No timestamps: their microseconds could spell a 6-digit code by chance.
        .without_time()
        .init();
    // The redis crate logs through `log`; tracing-subscriber's init bridged it.
    log_is_bridged();

    let mut server = RedisServer::start_with(&["--requirepass", PASSWORD]);
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}/0", server.port());
    let store = RedisStore::connect_with(
        RedisOptions::new(&url).with_command_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    tracing::debug!(options = ?RedisOptions::new(&url), "options are redacted in Debug");
    let mut secrets: Vec<String> = vec![PASSWORD.to_owned()];

    // Sessions: create, load through the gate, update, corrupt data, logout.
    let manager =
        SessionManager::<JavaUser>::new(store.clone(), SessionConfig::java_seed()).unwrap();
    let gate = Keygate::new(manager.clone());
    let user = JavaUser::new(1);
    let token = manager.login(&user.user_id(), &user).await.unwrap();
    secrets.push(token.expose().to_owned());
    let session = gate
        .resolve(&Authorization::new(format!("Bearer {}", token.expose())))
        .await
        .unwrap();
    tracing::info!(?session, token = %token, "a session and its token, as Debug and Display");
    let corrupt = Token::generate().unwrap();
    secrets.push(corrupt.expose().to_owned());
    let _: () = server.query(
        redis::cmd("SET")
            .arg(format!("login:token:{}", corrupt.expose()))
            .arg("not a hash"),
    );
    assert!(manager.load(&corrupt).await.unwrap().is_none());
    manager.logout(&token).await.unwrap();

    // Codes: send, a wrong try, the right one.
    let sender = CapturingSender::default();
    let codes = Codes::new(store.clone(), sender.clone(), CodeConfig::new()).unwrap();
    let phone = codes.phone("13800138000").unwrap();
    codes.send(&phone).await.unwrap();
    let code = sender.last("13800138000").unwrap();
    secrets.push(code.clone());
    let _ = codes.verify(&phone, "000000").await;
    codes.verify(&phone, &code).await.unwrap();

    // Locks.
    let locks = Locks::new(store.clone());
    locks
        .try_acquire("order:1")
        .await
        .unwrap()
        .release()
        .await
        .unwrap();

    // Rate limits keyed by a phone number.
    let subject = "phone:13900139000".to_owned();
    secrets.push(subject.clone());
    // Refusals not held, so that the outage below reaches the store for this subject.
    let limiter = RateLimiter::new(store.clone(), "sms", Quota::per_minute(1))
        .unwrap()
        .with_failure_mode(FailureMode::Open)
        .with_refusal_cache(0);
    assert!(limiter.check(&subject).await.unwrap().allowed);
    assert!(!limiter.check(&subject).await.unwrap().allowed);

    // Failures: Redis gone, errors logged.
    server.stop();
    assert!(manager.load(&Token::generate().unwrap()).await.is_err());
    // Every request fails during an outage; the warning is logged at most once a second.
    let outage = std::time::Instant::now();
    for _ in 0..20 {
        let _ = gate
            .resolve(&Authorization::new(Token::generate().unwrap().expose()))
            .await;
    }
    let outage_secs = outage.elapsed().as_secs() as usize;
    // A fail-open limiter warns (at most once a second) without the subject.
    let warned = keygate_tests::eventually(Duration::from_secs(3), async || {
        assert!(limiter.check(&subject).await.unwrap().degraded);
        capture.text().contains("rate limit store failed")
    })
    .await;
    assert!(warned, "the fail-open limiter warned");

    // The development sender is the one place that logs a code.
    let dev = Codes::new(
        keygate::MemoryStore::new(),
        LogCodeSender::new(),
        CodeConfig::new(),
    )
    .unwrap();
    dev.send(&phone).await.unwrap();

    let logs = capture.text();
    assert!(
        logs.contains("corrupt session data"),
        "the capture works: {logs}"
    );
    assert!(logs.contains("DEVELOPMENT CODE SENDER"));
    assert!(
        logs.contains("log bridge"),
        "the redis crate's log records are captured too"
    );
    let warnings = logs.matches("session backend failed").count();
    assert!(
        (1..=outage_secs + 1).contains(&warnings),
        "20 failing requests over {outage_secs} s logged {warnings} warnings"
    );
    let dev_lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("development code sender"))
        .collect();
    assert_eq!(dev_lines.len(), 1);
    for secret in &secrets {
        let leaks: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains(secret.as_str()) && !dev_lines.contains(l))
            .collect();
        assert!(leaks.is_empty(), "a secret reached the logs: {leaks:?}");
    }
    eprintln!(
        "checked {} log lines for {} secrets",
        logs.lines().count(),
        secrets.len()
    );
}

fn log_is_bridged() {
    log::trace!(target: "bridge-check", "log bridge");
}
